package http

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Backend is one configured HTTP API: its base URL, the credential
// headers warden sends, and a transport that can connect to the API's
// host only.
type Backend struct {
	Name string
	cfg  Config
	// base is the scheme and host; basePath the base URL's path,
	// canonical and without a trailing slash.
	base     url.URL
	basePath string
	port     string

	creds http.Header
	// secrets are the credential values (and their parts) scrubbed out
	// of responses.
	secrets  secrets
	dialer   *pinnedDialer
	client   *http.Transport
	jsonMask *mask.JSONMasks
}

// NewBackend builds a backend from a validated config. It resolves the
// host now and pins the addresses: later DNS answers are never used. A
// host that cannot be resolved now is resolved (and pinned) at the first
// call, so an API that is down at start does not stop warden.
func NewBackend(ctx context.Context, name string, cfg Config) (*Backend, error) {
	u, msg := parseBaseURL(cfg.BaseURL)
	if msg != "" {
		return nil, warden.FieldErrorf("base_url", "%s", msg)
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	b := &Backend{Name: name, cfg: cfg, base: url.URL{Scheme: u.Scheme, Host: u.Host}, port: u.Port()}
	if b.port == "" {
		b.port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		if b.basePath, err = canonicalPath(p); err != nil {
			return nil, warden.FieldErrorf("base_url", "its path must be plain: no dot segments, empty segments or unusual characters")
		}
	}
	b.creds = make(http.Header, len(cfg.Headers))
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		b.creds[http.CanonicalHeaderKey(k)] = []string{cfg.Headers[k]}
		b.addSecrets(cfg.Headers[k])
	}
	b.dialer = &pinnedDialer{host: u.Hostname(), port: b.port, dialer: net.Dialer{Timeout: time.Duration(cfg.Timeout), KeepAlive: 30 * time.Second}}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		b.dialer.addrs = []netip.Addr{ip.Unmap()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Timeout))
		_, _ = b.dialer.pinned(rctx) // failure: retried at the first call
		cancel()
	}
	b.client = &http.Transport{
		// Never a proxy from the environment: the connection goes to
		// the configured host and nowhere else.
		Proxy:                  nil,
		DialContext:            b.dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    time.Duration(cfg.Timeout),
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return b, nil
}

// SetMasking sets the backend's JSON path rules; call it before the
// backend serves calls.
func (b *Backend) SetMasking(m *mask.JSONMasks) { b.jsonMask = m }

// Close closes idle connections.
func (b *Backend) Close() { b.client.CloseIdleConnections() }

// addSecrets records a credential value and the parts of it an upstream
// might echo on their own: the token after an auth scheme ("Bearer t"),
// and for Basic the decoded "user:password", the user and the password.
func (b *Backend) addSecrets(v string) {
	b.secrets.add(v)
	scheme, token, ok := strings.Cut(v, " ")
	if !ok {
		return
	}
	token = strings.TrimSpace(token)
	b.secrets.add(token)
	if strings.EqualFold(scheme, "Basic") {
		if dec, err := base64.StdEncoding.DecodeString(token); err == nil {
			b.secrets.add(string(dec))
			user, pw, _ := strings.Cut(string(dec), ":")
			b.secrets.add(user)
			b.secrets.add(pw)
		}
	}
}

// Backends is the set of configured HTTP APIs, by name.
type Backends map[string]*Backend

func (bs Backends) lookup(name string) (*Backend, error) {
	if name == "" {
		return nil, warden.Errorf(warden.Invalid, "missing argument \"api\"")
	}
	b, ok := bs[name]
	if !ok {
		return nil, warden.Errorf(warden.Invalid, "unknown api %q: use one of the values listed in the tool's input schema", name)
	}
	return b, nil
}

// Close closes every backend's idle connections.
func (bs Backends) Close() {
	for _, b := range bs {
		b.Close()
	}
}

// SortedNames returns the backend names, sorted.
func (bs Backends) SortedNames() []string { return slices.Sorted(maps.Keys(bs)) }

// errOtherHost is returned by the dialer for any address but the API's.
var errOtherHost = errors.New("refused to connect: not the configured host")

// pinnedDialer connects only to the configured host and port, and only to
// the addresses it resolved once: a DNS answer that changes later
// (rebinding) is never used.
type pinnedDialer struct {
	host, port string
	dialer     net.Dialer

	mu    sync.Mutex
	addrs []netip.Addr
}

// pinned returns the pinned addresses, resolving them once.
func (d *pinnedDialer) pinned(ctx context.Context) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.addrs != nil {
		return d.addrs, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", d.host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: d.host, IsNotFound: true}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	d.addrs = addrs
	return addrs, nil
}

// DialContext is the transport's dialer.
func (d *pinnedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !strings.EqualFold(strings.TrimSuffix(host, "."), strings.TrimSuffix(d.host, ".")) || port != d.port {
		return nil, errOtherHost
	}
	addrs, err := d.pinned(ctx)
	if err != nil {
		return nil, err
	}
	var first error
	for _, a := range addrs {
		c, err := d.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// Probe checks that the API's host can be reached over the configured
// transport: it connects to the pinned address and, for https, completes
// the TLS handshake (with the configured CA and client certificate), then
// hangs up. No HTTP request is sent, so no credential leaves warden and
// the API sees no call. A failure is a *warden.Error whose message names
// the cause, never the URL or a credential.
func (b *Backend) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.cfg.Timeout))
	defer cancel()
	conn, err := b.dialer.DialContext(ctx, "tcp", net.JoinHostPort(b.base.Hostname(), b.port))
	if err != nil {
		return b.failure(ctx, err)
	}
	defer conn.Close()
	if b.base.Scheme != "https" {
		return nil
	}
	cfg := &tls.Config{}
	if b.client.TLSClientConfig != nil {
		cfg = b.client.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = b.base.Hostname()
	}
	if err := tls.Client(conn, cfg).HandshakeContext(ctx); err != nil {
		return b.failure(ctx, err)
	}
	return nil
}
