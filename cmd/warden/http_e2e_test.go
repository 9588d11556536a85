package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
