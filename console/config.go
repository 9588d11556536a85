package console

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// Config is the `console` section of warden.yaml.
//
//	console:
//	  base_url: https://warden.example.com
//	  issuer: https://idp.example.com/realms/main
//	  client_id: warden-console
//	  client_secret: ${WARDEN_CONSOLE_SECRET}   # for confidential clients
//	  session_ttl: 8h
//	  auditors: {groups: [security]}
type Config struct {
	// Listen, when set, serves the console on its own listener instead of
	// beside the HTTP transport (required with the stdio transport).
	Listen string `yaml:"listen"`
	// BaseURL is where browsers reach the console, without /console
	// (https://warden.example.com). It fixes the origin that state-changing
	// requests must come from and is linked from notifications. It may be
	// left out only on a loopback listener, where the origin is the
	// loopback Host the browser used.
	BaseURL string `yaml:"base_url"`
	// Issuer, ClientID and ClientSecret are the console's own OpenID
	// Connect client. Without Issuer, only identity.local with reviewer:
	// true may use the console, and only on a loopback listener.
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RedirectURL is the redirect URI registered with the issuer; default
	// BaseURL + /console/callback.
	RedirectURL string `yaml:"redirect_url"`
	// SessionTTL bounds a console session (default 8h, at most 24h).
	SessionTTL warden.Duration `yaml:"session_ttl"`
	// SubjectClaim, EmailClaim and GroupsClaim map ID token claims to a
	// reviewer, as identity.oidc does; unset, they are taken from the
	// identity.oidc entry of the same issuer, so that a reviewer is the
	// same principal in the console and with `approvals approve --token`.
	SubjectClaim string `yaml:"subject_claim"`
	EmailClaim   string `yaml:"email_claim"`
	GroupsClaim  string `yaml:"groups_claim"`
	// Auditors may read the audit pages (sessions, replays, the chain's
	// verification). Default: nobody.
	Auditors Members `yaml:"auditors"`
}

// Members names principals by subject or group.
type Members struct {
	Subjects []string `yaml:"subjects"`
	Groups   []string `yaml:"groups"`
}

// Includes reports whether c is one of the members.
func (m Members) Includes(c *warden.Caller) bool {
	return warden.Approvers{Subjects: m.Subjects, Groups: m.Groups}.Includes(c)
}

// Session lifetimes.
const (
	DefaultSessionTTL = 8 * time.Hour
	MaxSessionTTL     = 24 * time.Hour
)

// Validate fills in defaults and checks the section; paths are relative
// to `console`.
func (c *Config) Validate() error {
	var errs []error
	if c.BaseURL != "" {
		if err := checkURL(c.BaseURL, false); err != nil {
			errs = append(errs, warden.FieldErrorf("base_url", "%v", err))
		} else {
			c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
		}
	}
	if c.Issuer != "" {
		if err := checkURL(c.Issuer, true); err != nil {
			errs = append(errs, warden.FieldErrorf("issuer", "%v", err))
		}
		if c.ClientID == "" {
			errs = append(errs, warden.FieldErrorf("client_id", "missing client_id: the console's own client at the issuer (its ID tokens are minted for it)"))
		}
	} else if c.ClientID != "" || c.ClientSecret != "" || c.RedirectURL != "" {
		errs = append(errs, warden.FieldErrorf("issuer", "missing issuer: client_id, client_secret and redirect_url belong to a client of an issuer"))
	}
	if c.RedirectURL != "" {
		if err := checkURL(c.RedirectURL, true); err != nil {
			errs = append(errs, warden.FieldErrorf("redirect_url", "%v", err))
		} else if u, _ := url.Parse(c.RedirectURL); u.Path != CallbackPath {
			errs = append(errs, warden.FieldErrorf("redirect_url", "must end in %s, where the console takes the issuer's answer", CallbackPath))
		}
	}
	switch ttl := time.Duration(c.SessionTTL); {
	case ttl == 0:
		c.SessionTTL = warden.Duration(DefaultSessionTTL)
	case ttl < time.Minute || ttl > MaxSessionTTL:
		errs = append(errs, warden.FieldErrorf("session_ttl", "must be between 1m and %s, got %s", MaxSessionTTL, ttl))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, warden.FieldErrorf("listen", "%q is not host:port", c.Listen))
		}
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute https URL, or http on a loopback host;
// withPath allows a path.
func checkURL(s string, withPath bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL like https://warden.example.com", s)
	}
	if !withPath && u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q must not have a path: the console is served at /console/ under it", s)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopbackName(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q must use https (http only on a loopback host): session cookies and tokens would travel in clear", s)
}

func loopbackName(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
