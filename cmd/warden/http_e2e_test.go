package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// TestHTTPCallEndToEnd drives http_call through the built binary: the
// credential comes from warden's config and never reaches the agent, even
// when the upstream echoes it; paths outside the grants are refused.
func TestHTTPCallEndToEnd(t *testing.T) {
	const secret = "s3cr3t-billing-token-0042"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=abc")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "echo": r.Header.Get("Authorization"),
			"data": []any{map[string]any{"id": 1, "card": map[string]any{"number": "4111 1111 1111 1111"}, "owner": "ada@example.com"}},
		})
	}))
	defer upstream.Close()
	dsn := pgtest.New(t, "")
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}"}
  billing: {kind: http, base_url: %q, headers: {Authorization: "Bearer ${BILLING_TOKEN}"}}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: billing, methods: [GET], paths: ["/v1/invoices/**"]}
masking:
  json_paths:
    billing: {"$.data[*].card.number": last4}
  detectors: [email]
`, upstream.URL+"/api")
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	t.Setenv("BILLING_TOKEN", secret)
	t.Cleanup(func() {
		if strings.Contains(recordingBytes(t, config), secret) {
			t.Errorf("the recording contains the credential")
		}
	})
	c := startStdio(t, config, mcp.ProtocolVersion20251125)

	r := call(t, c, "http_call", map[string]any{"api": "billing", "method": "GET", "path": "/v1/invoices/42"})
	body, _ := json.Marshal(r.Body)
	if r.IsError || !strings.Contains(string(body), `"path":"/api/v1/invoices/42"`) {
		t.Fatalf("allowed GET = %v %s", r.IsError, body)
	}
	for _, leak := range []string{secret, "session=abc", "4111 1111 1111 1111", "ada@example.com"} {
		if strings.Contains(r.Text+string(body), leak) {
			t.Errorf("the response contains %q: %s", leak, body)
		}
	}
	if !strings.Contains(string(body), "1111") || !strings.Contains(string(body), "[masked:email]") {
		t.Errorf("response = %s; want the card masked by its JSON path and the email by the detector", body)
	}

	r = call(t, c, "http_call", map[string]any{"api": "billing", "method": "GET", "path": "/v1/customers"})
	if !r.IsError || !strings.Contains(r.Text, "GET on /v1/invoices/**") {
		t.Errorf("ungranted path = %v %q; want a denial listing the granted paths", r.IsError, r.Text)
	}
	r = call(t, c, "http_call", map[string]any{"api": "billing", "method": "GET", "path": "/v1/invoices/../customers"})
	if !r.IsError || !strings.Contains(r.Text, "http.path") {
		t.Errorf("traversal = %v %q; want a refusal by http.path", r.IsError, r.Text)
	}
	r = call(t, c, "http_call", map[string]any{"api": "billing", "method": "GET", "path": "/v1/invoices/1", "headers": map[string]any{"Authorization": "Bearer mine"}})
	if !r.IsError || !strings.Contains(r.Text, "http.headers") {
		t.Errorf("agent Authorization header = %v %q; want a refusal by http.headers", r.IsError, r.Text)
	}
}

// TestHTTPCallEdgesEndToEnd drives the hardened edges of http_call through
// the built binary and a real MCP client, judged by what an upstream that
// reads requests loosely (case-insensitive, decoding, honouring method
// overrides and Accept) dispatched, and by what the agent and the
// recording got.
func TestHTTPCallEdgesEndToEnd(t *testing.T) {
	const (
		user     = "svc-billing"
		password = "pa55/word+long-enough"
		card     = "4111 1111 1111 1111"
	)
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	var mu sync.Mutex
	var dispatched []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if v := r.Header.Get("X-HTTP-Method-Override"); v != "" {
			method = v
		}
		if v := r.URL.Query().Get("_method"); v != "" {
			method = strings.ToUpper(v)
		}
		route := strings.TrimSuffix(strings.ToLower(r.URL.Path), "/")
		mu.Lock()
		dispatched = append(dispatched, method+" "+route+" accept="+r.Header.Get("Accept"))
		mu.Unlock()
		switch route {
		case "/v1/public/to-admin":
			http.Redirect(w, r, "/v1/Admin/users", http.StatusTemporaryRedirect)
		case "/v1/report":
			if strings.Contains(r.Header.Get("Accept"), "json") {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"card":{"number":%q}}`, card)
				return
			}
			w.Header().Set("Content-Type", "text/csv")
			fmt.Fprintf(w, "number\n%s\n", card)
		case "/v1/report.xml":
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, "<number>%s</number>", card)
		case "/v1/echo":
			// Echo the credential, decoded and re-encoded.
			dec, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
			_, pw, _ := strings.Cut(string(dec), ":")
			w.Header().Set("X-Request-Id", r.Header.Get("Authorization"))
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"b64url":%q,"escaped":%q,"inside":%q}`, base64.RawURLEncoding.EncodeToString([]byte(pw)),
				strings.ReplaceAll(pw, "/", `\/`), base64.StdEncoding.EncodeToString([]byte("x"+pw+"y")))
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"route":%q,"method":%q,"q":%q}`, route, method, r.URL.Query().Get("q"))
		}
	}))
	defer upstream.Close()
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
backends:
  billing: {kind: http, base_url: %q, follow_redirects: same_origin, headers: {Authorization: "Basic ${BILLING_BASIC}"}}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: billing, methods: [GET, POST, DELETE], paths: ["/**"]}
approvals:
  - {name: admin, backend: billing, paths: ["/v1/admin/**"], approvers: {groups: [dba]}, wait: 0s}
  - {name: deletes, backend: billing, when: [DELETE], approvers: {groups: [dba]}, wait: 0s}
masking:
  json_paths:
    billing: {"$..number": last4}
`, upstream.URL)
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BILLING_BASIC", basic)
	secrets := []string{password, basic, user + ":" + password, base64.RawURLEncoding.EncodeToString([]byte(password))[:12]}
	t.Cleanup(func() {
		rec := recordingBytes(t, config)
		for _, s := range append(secrets, strings.ReplaceAll(password, "/", `\/`), "4111111111111111") {
			if strings.Contains(strings.ReplaceAll(rec, " ", ""), strings.ReplaceAll(s, " ", "")) {
				t.Errorf("the recording contains %q", s)
			}
		}
	})
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		d := dispatched
		dispatched = nil
		return d
	}
	send := func(method, path string, extra map[string]any) result {
		args := map[string]any{"api": "billing", "method": method, "path": path}
		for k, v := range extra {
			args[k] = v
		}
		return call(t, c, "http_call", args)
	}

	t.Run("HoldRulesMatchEverySpelling", func(t *testing.T) {
		for _, p := range []string{"/V1/ADMIN/users", "/v1/%61dmin/users/", "/v1/Admin.json"} {
			r := send("GET", p, nil)
			if !r.IsError || !strings.Contains(r.Text, "admin") {
				t.Errorf("GET %s = %v %q; want it held by rule admin", p, r.IsError, r.Text)
			}
		}
		if d := take(); len(d) != 0 {
			t.Errorf("held calls reached the upstream: %v", d)
		}
	})
	t.Run("AmbiguousPathsRefused", func(t *testing.T) {
		for _, p := range []string{"/v1/public/..%3B/admin", "/v1/public/%252e%252e/admin", "/v1/public/..\u2215admin", "/v1/admin./users"} {
			if r := send("GET", p, nil); !r.IsError || !strings.Contains(r.Text, "http.path") {
				t.Errorf("GET %q = %v %q; want a refusal by http.path", p, r.IsError, r.Text)
			}
		}
		if d := take(); len(d) != 0 {
			t.Errorf("refused paths reached the upstream: %v", d)
		}
	})
	t.Run("MethodOverrideIsJudgedAsDelete", func(t *testing.T) {
		r := send("POST", "/v1/notes/1", map[string]any{"query": map[string]any{"_method": "DELETE"}})
		if !r.IsError || !strings.Contains(r.Text, "deletes") {
			t.Errorf("POST ?_method=DELETE = %v %q; want it held by rule deletes", r.IsError, r.Text)
		}
		r = send("POST", "/v1/notes/1", map[string]any{"headers": map[string]any{"X-HTTP-Method-Override": "DELETE"}})
		if !r.IsError || !strings.Contains(r.Text, "http.headers") {
			t.Errorf("X-HTTP-Method-Override = %v %q; want a refusal", r.IsError, r.Text)
		}
		if d := take(); len(d) != 0 {
			t.Errorf("override attempts reached the upstream: %v", d)
		}
	})
	t.Run("RedirectIsJudgedAgain", func(t *testing.T) {
		r := send("GET", "/v1/public/to-admin", nil)
		notes, _ := json.Marshal(r.Body["notes"])
		if r.IsError || r.Body["status"] != float64(307) || !strings.Contains(string(notes), `would hold it`) {
			t.Errorf("redirect to an admin path = %v %v; want the 307 returned, not followed", r.IsError, r.Body)
		}
		if d := take(); len(d) != 1 {
			t.Errorf("upstream dispatched %v; want only the first request", d)
		}
	})
	t.Run("MaskingCannotBeNegotiatedAway", func(t *testing.T) {
		r := send("GET", "/v1/report", map[string]any{"headers": map[string]any{"Accept": "text/csv"}})
		body, _ := json.Marshal(r.Body)
		if r.IsError || !strings.Contains(string(body), "**** **** **** 1111") {
			t.Errorf("GET /v1/report = %v %s; want masked JSON", r.IsError, body)
		}
		if d := take(); len(d) != 1 || !strings.HasSuffix(d[0], "accept=application/json") {
			t.Errorf("upstream dispatched %v; want Accept: application/json", d)
		}
		r = send("GET", "/v1/report.xml", nil)
		body, _ = json.Marshal(r.Body)
		if r.IsError || r.Body["body_kind"] != "withheld" || strings.Contains(string(body), "1111 1111") {
			t.Errorf("GET /v1/report.xml = %v %s; want the XML withheld", r.IsError, body)
		}
		take()
	})
	t.Run("CredentialsNeverComeBack", func(t *testing.T) {
		r := send("GET", "/v1/echo", nil)
		body, _ := json.Marshal(r.Body)
		for _, s := range append(secrets, strings.ReplaceAll(password, "/", `\/`)) {
			if strings.Contains(r.Text+string(body), s) {
				t.Errorf("the agent got %q: %s", s, body)
			}
		}
		if r.IsError || !strings.Contains(string(body), "[masked:credential]") {
			t.Errorf("GET /v1/echo = %v %s; want the echoes masked", r.IsError, body)
		}
		take()
	})
	t.Run("OrdinaryCallsRun", func(t *testing.T) {
		r := send("GET", "/v1/invoices/INV-2024-001", map[string]any{"query": map[string]any{"q": "a b Zürich"}})
		body, _ := json.Marshal(r.Body)
		if r.IsError || !strings.Contains(string(body), `"q":"a b Zürich"`) || !strings.Contains(string(body), `/v1/invoices/inv-2024-001`) {
			t.Errorf("ordinary GET = %v %q %s; want it answered", r.IsError, r.Text, body)
		}
		take()
	})
}
