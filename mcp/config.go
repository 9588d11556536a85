package mcp

import (
	"github.com/warden-mcp/warden"
)

// IdentityConfig is the `identity` section of warden.yaml.
type IdentityConfig struct {
	// Local is the caller on stdio.
	Local *LocalIdentity `yaml:"local"`
	// OIDC lists trusted token issuers; not supported by this version.
	OIDC []map[string]any `yaml:"oidc"`
	// AllowUnauthenticatedLoopback lets the HTTP transports serve the local
	// identity without a token, and only on a loopback address.
	AllowUnauthenticatedLoopback bool `yaml:"allow_unauthenticated_loopback"`
}

// LocalIdentity is a configured principal.
type LocalIdentity struct {
	Subject string   `yaml:"subject"`
	Email   string   `yaml:"email"`
	Groups  []string `yaml:"groups"`
}

// Validate checks the identity config; paths are relative to `identity`.
func (c *IdentityConfig) Validate() error {
	if len(c.OIDC) > 0 {
		return warden.FieldErrorf("oidc", "OIDC bearer tokens are not supported by this version of warden yet; remove identity.oidc and use identity.local over stdio or a loopback listener")
	}
	if c.Local != nil && c.Local.Subject == "" {
		return warden.FieldErrorf("local.subject", "missing subject")
	}
	return nil
}

// Caller returns the local identity as a caller, or nil when none is
// configured.
func (c *IdentityConfig) Caller() *warden.Caller {
	if c == nil || c.Local == nil {
		return nil
	}
	return &warden.Caller{
		Subject: c.Local.Subject,
		Email:   c.Local.Email,
		Groups:  append([]string(nil), c.Local.Groups...),
		Method:  "local",
	}
}
