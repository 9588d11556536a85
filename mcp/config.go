package mcp

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

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

// HTTPConfig is the `http` section of warden.yaml: the edges of the HTTP
// transports (serve --transport http|sse). Every field has a safe default.
type HTTPConfig struct {
	// AllowedOrigins are the browser origins (scheme://host[:port]) that
	// may call warden. A request carrying any other Origin is refused
	// before it is authenticated or parsed. Default: none, so no web page
	// can drive warden.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxRequestBytes bounds a request body; a larger one is refused
	// before it is read (declared length) or as soon as it passes the
	// limit (chunked). It bounds a stdio message (one line) too: a longer
	// line is read to its end without being kept, and refused. Default
	// 4 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// ReadTimeout bounds reading a request's headers, and separately its
	// body. Default 10s.
	ReadTimeout warden.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write of a response: a client that stops
	// reading is cut. Long-lived event streams live on as long as their
	// writes complete. Default 30s.
	WriteTimeout warden.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a kept-alive connection without a request.
	// Default 2m.
	IdleTimeout warden.Duration `yaml:"idle_timeout"`
}

// HTTP edge defaults.
const (
	DefaultMaxRequestBytes = 4 << 20
	DefaultReadTimeout     = 10 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 2 * time.Minute
)

// Validate checks the section and fills in defaults; paths are relative
// to `http`.
func (c *HTTPConfig) Validate() error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		canon, err := canonicalOrigin(o)
		if err != nil {
			errs = append(errs, warden.FieldErrorf(fmt.Sprintf("allowed_origins[%d]", i), "%v", err))
			continue
		}
		c.AllowedOrigins[i] = canon
	}
	switch {
	case c.MaxRequestBytes == 0:
		c.MaxRequestBytes = DefaultMaxRequestBytes
	case c.MaxRequestBytes < 1024:
		errs = append(errs, warden.FieldErrorf("max_request_bytes", "%d is too small for an MCP request: use at least 1024", c.MaxRequestBytes))
	}
	for _, d := range []struct {
		key string
		v   *warden.Duration
		def time.Duration
	}{{"read_timeout", &c.ReadTimeout, DefaultReadTimeout}, {"write_timeout", &c.WriteTimeout, DefaultWriteTimeout}, {"idle_timeout", &c.IdleTimeout, DefaultIdleTimeout}} {
		switch {
		case *d.v == 0:
			*d.v = warden.Duration(d.def)
		case time.Duration(*d.v) < 100*time.Millisecond:
			errs = append(errs, warden.FieldErrorf(d.key, "%s is too short: use at least 100ms", time.Duration(*d.v)))
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns the config with defaults filled in, for servers
// built without a validated config.
func (c *HTTPConfig) withDefaults() HTTPConfig {
	var out HTTPConfig
	if c != nil {
		out = *c
		out.AllowedOrigins = slices.Clone(c.AllowedOrigins)
	}
	_ = out.Validate()
	return out
}

// canonicalOrigin is the serialized origin a browser sends (RFC 6454):
// lower-case scheme and host, no default port, no path. "*" and "null" are
// refused: the first would allow every page, the second every sandboxed
// or file: page.
func canonicalOrigin(s string) (string, error) {
	if s == "*" || s == "null" {
		return "", fmt.Errorf("%q is not allowed: name each origin, like https://app.example.com", s)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin: use scheme://host[:port], like https://app.example.com", s)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		return u.Scheme + "://" + host, nil
	}
	return u.Scheme + "://" + host + ":" + port, nil
}

// ResultsConfig is the `results` section of warden.yaml: what a
// successful tool result carries.
type ResultsConfig struct {
	// StructuredContent sends a successful result's JSON twice: as
	// structuredContent and, escaped, as the text block (the 2025-06-18
	// specification's backwards-compatible form). Default true. With
	// false, the result is the text block alone: the same JSON, half the
	// bytes on the wire, and no second decode in the client. Clients that
	// prefer structuredContent (Claude Code, VS Code, Copilot CLI, Codex)
	// hand the model that JSON serialized, so a model sees the same text
	// either way; docs/BENCHMARKS.md (issue 14) has the measurements.
	// Refusals and failures always carry both: their text is a summary
	// for people and models, their structured content the codes.
	StructuredContent *bool `yaml:"structured_content"`
}

// structured reports whether successful results carry structuredContent.
func (c *ResultsConfig) structured() bool {
	return c == nil || c.StructuredContent == nil || *c.StructuredContent
}
