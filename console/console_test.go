package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"LocalOnly", Config{}, ""},
		{"OIDC", Config{Issuer: "https://idp.example.com", ClientID: "c", BaseURL: "https://warden.example.com/"}, ""},
		{"HTTPBaseOnLoopback", Config{BaseURL: "http://127.0.0.1:8765"}, ""},
		{"RefusesHTTPBaseElsewhere", Config{BaseURL: "http://warden.example.com"}, "base_url: \"http://warden.example.com\" must use https"},
		{"RefusesBaseWithPath", Config{BaseURL: "https://warden.example.com/x"}, "must not have a path"},
		{"NeedsClientID", Config{Issuer: "https://idp.example.com"}, "client_id: missing client_id"},
		{"ClientWithoutIssuer", Config{ClientID: "c"}, "issuer: missing issuer"},
		{"RedirectMustBeTheCallback", Config{Issuer: "https://idp.example.com", ClientID: "c", RedirectURL: "https://warden.example.com/cb"}, "must end in /console/callback"},
		{"BoundedSession", Config{SessionTTL: warden.Duration(48 * time.Hour)}, "session_ttl: must be between 1m and 24h"},
		{"ListenIsHostPort", Config{Listen: "8766"}, "listen: \"8766\" is not host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
	c := Config{}
	if err := c.Validate(); err != nil || time.Duration(c.SessionTTL) != DefaultSessionTTL {
		t.Errorf("Validate() = %v, session_ttl %s; want the default %s", err, time.Duration(c.SessionTTL), DefaultSessionTTL)
	}
}

// TestLocalReviewerOnLoopback: without an issuer the local reviewer uses
// the console on a loopback listener; changes need the console's origin
// and the session's CSRF token.
func TestLocalReviewerOnLoopback(t *testing.T) {
	alice := &warden.Caller{Subject: "alice@example.com", Method: "local"}
	c, err := New(context.Background(), Options{Config: Config{SessionTTL: warden.Duration(time.Hour)}, Local: alice, Approvals: noApprovals{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	get := func(path string) (int, string, http.Header) {
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, _, h := get("/console/approvals"); code != http.StatusUnauthorized || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("before sign-in: %d, CSP %q; want 401 with a strict CSP", code, h.Get("Content-Security-Policy"))
	}
	if code, body, _ := get("/console/login"); code != http.StatusOK || !strings.Contains(body, "alice@example.com") {
		t.Fatalf("local sign-in = %d %s", code, body)
	}
	for _, ck := range jar.Cookies(mustURL(t, srv.URL+"/console/")) {
		if ck.Name == sessionCookie && ck.Value == "" {
			t.Fatal("no session cookie")
		}
	}
	_, page, _ := get("/console/approvals")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the page: %s", page)
	}
	post := func(origin, token string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/logout", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("", csrf[1]); code != http.StatusForbidden {
		t.Errorf("sign-out without an Origin = %d; want 403", code)
	}
	if code := post("http://evil.example", csrf[1]); code != http.StatusForbidden {
		t.Errorf("sign-out from another origin = %d; want 403", code)
	}
	if code := post(srv.URL, "wrong"); code != http.StatusForbidden {
		t.Errorf("sign-out with a wrong CSRF token = %d; want 403", code)
	}
	if code := post(srv.URL, csrf[1]); code != http.StatusOK {
		t.Errorf("sign-out = %d; want 200", code)
	}
	if code, _, _ := get("/console/approvals"); code != http.StatusUnauthorized {
		t.Errorf("after sign-out = %d; want 401", code)
	}
	// A page whose name now resolves to 127.0.0.1 (DNS rebinding).
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/console/login", nil)
	req.Host = "evil.example"
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign Host on loopback = %d; want 403", resp.StatusCode)
	}
}

// TestBaseURLHostOnLoopback: behind a reverse proxy on the same host the
// console is addressed by base_url's host; other names are still refused.
func TestBaseURLHostOnLoopback(t *testing.T) {
	alice := &warden.Caller{Subject: "alice@example.com", Method: "local"}
	c, err := New(context.Background(), Options{Config: Config{BaseURL: "https://warden.example.com"}, Local: alice, Approvals: noApprovals{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for host, want := range map[string]int{"warden.example.com": http.StatusUnauthorized, "evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/console/approvals", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s = %d; want %d", host, resp.StatusCode, want)
		}
	}
}

func TestNeedsAnIssuerOrTheLocalReviewer(t *testing.T) {
	if _, err := New(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "missing issuer") {
		t.Errorf("New without issuer or local reviewer = %v; want refused", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type noApprovals struct{ warden.ApprovalStore }

func (noApprovals) Approvals(context.Context, warden.ApprovalFilter) ([]*warden.Approval, error) {
	return nil, nil
}
