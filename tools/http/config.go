package http

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// Config is one `kind: http` entry of `backends` in warden.yaml.
type Config struct {
	Kind string `yaml:"kind"`
	// BaseURL is the API's root (scheme, host, optional port and base
	// path); every request stays under it.
	BaseURL string `yaml:"base_url"`
	// Headers are credential headers sent with every request
	// (Authorization: "Bearer ${TOKEN}"). Only warden sees their values:
	// the agent cannot set or read these headers, and their values are
	// replaced wherever an upstream echoes them.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds a whole call: connect, TLS, request, response body
	// (default 10s).
	Timeout warden.Duration `yaml:"timeout"`
	// MaxResponseBytes caps the response body read (default 1 MiB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// FollowRedirects is "" (redirects are returned as is) or
	// "same_origin" (followed while they stay under base_url and the
	// caller's grants allow the new request).
	FollowRedirects string `yaml:"follow_redirects"`
	// CAFile is a PEM bundle of the CAs trusted for the API's certificate,
	// instead of the system's; CertFile and KeyFile are a client
	// certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults, applied by Validate.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	// MinCredentialLength is the shortest header value accepted: values
	// are scrubbed out of responses by exact replacement, which needs
	// values that do not also occur as ordinary text.
	MinCredentialLength = 8
)

// FollowSameOrigin is the one FollowRedirects mode besides "".
const FollowSameOrigin = "same_origin"

// Validate fills defaults and checks the config, loading the TLS files.
// Errors carry key paths relative to the backend entry and never include
// a header value or the base URL.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	u, msg := parseBaseURL(c.BaseURL)
	if msg != "" {
		add("base_url", "%s", msg)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		if msg := checkConfigHeader(name, c.Headers[name]); msg != "" {
			add("headers."+name, "%s", msg)
		}
	}
	if seen := map[string]string{}; len(c.Headers) > 1 {
		for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
			canon := http.CanonicalHeaderKey(name)
			if prev, dup := seen[canon]; dup {
				add("headers."+name, "the same header as %s (header names are case-insensitive)", prev)
			}
			seen[canon] = name
		}
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = warden.Duration(DefaultTimeout)
	case c.Timeout < warden.Duration(time.Millisecond):
		add("timeout", "must be at least 1ms")
	}
	switch {
	case c.MaxResponseBytes == 0:
		c.MaxResponseBytes = DefaultMaxResponseBytes
	case c.MaxResponseBytes < 0:
		add("max_response_bytes", "must be positive, got %d", c.MaxResponseBytes)
	}
	switch c.FollowRedirects {
	case "", FollowSameOrigin:
	default:
		add("follow_redirects", "unknown value %q (leave it unset to return redirects as they are, or same_origin)", c.FollowRedirects)
	}
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		if u != nil && u.Scheme != "https" {
			add("base_url", "ca_file, cert_file and key_file need an https base_url")
		}
		if _, err := c.tlsConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parseBaseURL parses and checks base_url; the message never quotes it,
// since it could carry a credential.
func parseBaseURL(s string) (*url.URL, string) {
	if s == "" {
		return nil, "missing base_url (like https://billing.internal/api)"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, "not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an http:// or https:// URL"
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, "must name a host, like https://billing.internal/api"
	case u.User != nil:
		return nil, "must not carry credentials (user:password@): put them in headers, like Authorization: Basic ..."
	case u.RawQuery != "" || u.ForceQuery:
		return nil, "must not have a query: credentials go in headers, and the agent's query is added per call"
	case u.Fragment != "":
		return nil, "must not have a fragment"
	}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		if _, err := canonicalPath(p); err != nil {
			return nil, "its path must be plain: no dot segments, empty segments or unusual characters"
		}
	}
	return u, ""
}

// checkConfigHeader checks one credential header; messages never quote
// the value.
func checkConfigHeader(name, value string) string {
	if !validHeaderName(name) {
		return "not a valid header name"
	}
	canon := http.CanonicalHeaderKey(name)
	switch {
	case isHopByHop(canon) || canon == "Host" || canon == "Content-Length":
		return canon + " is set by warden itself, not by config"
	case isAgentHeader(canon) || canon == "Accept-Encoding" || canon == "Content-Encoding":
		return canon + " describes content, not a credential; headers holds credentials only"
	case value == "":
		return "empty value (is the environment variable set?)"
	case len(value) < MinCredentialLength:
		return fmt.Sprintf("the value is shorter than %d characters; warden keeps credential values out of responses by exact replacement, which needs longer values", MinCredentialLength)
	case !validHeaderValue(value):
		return "the value contains a line break or control character"
	}
	if scheme, token, ok := strings.Cut(value, " "); ok && strings.EqualFold(scheme, "Basic") {
		// Each part is scrubbed on its own: the password must be long
		// enough for exact replacement too.
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		_, pw, _ := strings.Cut(string(dec), ":")
		if err != nil || len(pw) < MinCredentialLength {
			return fmt.Sprintf("a Basic credential must be base64 of user:password with a password of at least %d characters", MinCredentialLength)
		}
	}
	return ""
}

// tlsConfig builds the client TLS configuration from the files.
func (c *Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, warden.FieldErrorf("ca_file", "cannot read %s: %v", c.CAFile, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, warden.FieldErrorf("ca_file", "%s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// The error can quote key material in rare cases; say
			// which files, not why.
			return nil, warden.FieldErrorf("cert_file", "cannot load the client certificate %s with key %s", c.CertFile, c.KeyFile)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "":
		return nil, warden.FieldErrorf("key_file", "cert_file needs key_file")
	case c.KeyFile != "":
		return nil, warden.FieldErrorf("cert_file", "key_file needs cert_file")
	}
	return cfg, nil
}
