package mcp

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/warden-mcp/warden"
)

// IdentityConfig is the `identity` section of warden.yaml.
type IdentityConfig struct {
	// Local is the caller on stdio when WARDEN_TOKEN is not set.
	Local *LocalIdentity `yaml:"local"`
	// OIDC lists the trusted token issuers. When any is configured, every
	// HTTP request needs a valid bearer token from one of them.
	OIDC []OIDCConfig `yaml:"oidc"`
	// Resource is warden's public resource identifier, such as
	// https://warden.example.com/mcp, named in the protected-resource
	// metadata; by default it is derived from each request's host.
	Resource string `yaml:"resource"`
	// AllowUnauthenticatedLoopback lets the HTTP transports serve the
	// local identity without a token when no issuer is configured, and
	// only on a loopback address.
	AllowUnauthenticatedLoopback bool `yaml:"allow_unauthenticated_loopback"`
}

// LocalIdentity is a configured principal.
type LocalIdentity struct {
	Subject string   `yaml:"subject"`
	Email   string   `yaml:"email"`
	Groups  []string `yaml:"groups"`
	// Reviewer lets this identity decide approval requests with `warden
	// approvals approve|deny` without a token: for single-user setups
	// only, and refused with identity.oidc, where reviewers are verified.
	// Off by default, so a config file that merely names a subject and
	// points at the store makes nobody a reviewer.
	Reviewer bool `yaml:"reviewer"`
}

// Validate checks the identity config; paths are relative to `identity`.
func (c *IdentityConfig) Validate() error {
	var errs []error
	if c.Local != nil && c.Local.Subject == "" {
		errs = append(errs, warden.FieldErrorf("local.subject", "missing subject"))
	}
	for i := range c.OIDC {
		errs = append(errs, warden.Under(fmt.Sprintf("oidc[%d]", i), c.OIDC[i].Validate()))
	}
	if c.Resource != "" {
		if u, err := url.Parse(c.Resource); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, warden.FieldErrorf("resource", "must be an absolute http(s) URL, like https://warden.example.com/mcp"))
		}
	}
	if c.Local != nil && c.Local.Reviewer && len(c.OIDC) > 0 {
		errs = append(errs, warden.FieldErrorf("local.reviewer", "cannot be combined with oidc: with issuers configured a reviewer decides with a token (--token or WARDEN_TOKEN)"))
	}
	if len(c.OIDC) > 0 && c.AllowUnauthenticatedLoopback {
		errs = append(errs, warden.FieldErrorf("allow_unauthenticated_loopback", "cannot be combined with oidc: with issuers configured every HTTP request needs a token"))
	}
	return errors.Join(errs...)
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
