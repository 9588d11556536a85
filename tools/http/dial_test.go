package http

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestDialerConnectsOnlyToThePinnedHost: whatever the request names, the
// transport connects only to the configured host, and only at the
// addresses resolved once; a later DNS answer is never consulted.
func TestDialerConnectsOnlyToThePinnedHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok from " + r.Host))
	}))
	defer srv.Close()
	su, _ := url.Parse(srv.URL)

	// api.invalid never resolves (RFC 6761); pinning it to the test
	// server stands for "resolved at start, DNS changed since".
	cfg := Config{BaseURL: "http://api.invalid:" + su.Port() + "/api", Headers: map[string]string{"X-Api-Key": "k3y-abcdefghijklmnop"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(context.Background(), "billing", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.dialer.mu.Lock()
	b.dialer.addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	b.dialer.mu.Unlock()

	tool := &Call{Backends: Backends{"billing": b}}
	a, err := tool.Plan(context.Background(), []byte(`{"api":"billing","method":"GET","path":"/x"}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tool.Execute(context.Background(), a)
	if err != nil {
		t.Fatalf("Execute = %v; want the pinned address used", err)
	}
	if got := res.Structured.(*CallResult).Body; got != "ok from api.invalid:"+su.Port() {
		t.Errorf("body = %v; want the request to reach the pinned address with the configured Host", got)
	}

	for _, addr := range []string{"127.0.0.1:" + su.Port(), "evil.example:" + su.Port(), "api.invalid:1", "api.invalid.evil.example:" + su.Port()} {
		if _, err := b.dialer.DialContext(context.Background(), "tcp", addr); !errors.Is(err, errOtherHost) {
			t.Errorf("DialContext(%s) = %v; want errOtherHost", addr, err)
		}
	}
	// Through the transport too: a request for another host (as a
	// redirect would make) is refused before any connection.
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+su.Port()+"/", nil)
	if _, err := b.client.RoundTrip(req); err == nil || !strings.Contains(err.Error(), errOtherHost.Error()) {
		t.Errorf("RoundTrip(another host) = %v; want refused", err)
	}
}

func TestLiteralIPIsPinnedWithoutDNS(t *testing.T) {
	cfg := Config{BaseURL: "https://[::1]:8443/api"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(context.Background(), "v6", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.dialer.addrs) != 1 || b.dialer.addrs[0] != netip.MustParseAddr("::1") || b.port != "8443" || b.basePath != "/api" {
		t.Errorf("backend pinned %v port %s base %s; want [::1] 8443 /api", b.dialer.addrs, b.port, b.basePath)
	}
}
