package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// oidcConfig trusts idp for audience "warden"; analysts (a nested Keycloak
// style claim) may read orders and customers.
func oidcConfig(t *testing.T, dsn, issuer string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  oidc:
    - {issuer: %q, audience: warden, groups_claim: realm_access.roles}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s, max_rows: 5}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders, public.customers], actions: [select]}
`, issuer)
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	return path
}

func analystClaims(sub string) map[string]any {
	return map[string]any{"sub": sub, "email": sub, "realm_access": map[string]any{"roles": []any{"analysts"}}}
}

// rawCall posts one tools/call with the given Authorization header value
// (none when empty) and returns the status, challenge and body.
func rawCall(t *testing.T, base, auth string) (int, string, map[string]any) {
	t.Helper()
	// A 2026-07-28 request stands alone: no initialize, no session.
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":{"database":"shop","sql":"SELECT 1"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"raw-http","version":"1"}}}}`
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "sql_query")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, res.Header.Get("WWW-Authenticate"), out
}

func TestOIDCOverHTTP(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	other := oidctest.New(t) // a real issuer warden does not trust
	config := oidcConfig(t, dsn, idp.Issuer())
	var refusals []refusal
	t.Cleanup(func() {
		calls := recordedCalls(t, config)
		for _, want := range refusals {
			c, ok := calls[want.id]
			if !ok {
				t.Errorf("refusal %s is not in the recording", want.id)
				continue
			}
			if c.Outcome != "denied" || c.Decision == nil || c.Decision.Rule != want.rule {
				t.Errorf("recorded refusal %s = %s, %+v; want denied by %s", want.id, c.Outcome, c.Decision, want.rule)
			}
		}
		var alice, bob int
		for _, c := range calls {
			switch {
			case c.Caller.Subject == "alice@example.com" && c.Outcome == "ok":
				alice++
				if c.Caller.Issuer != idp.Issuer() || len(c.Caller.Groups) != 1 || c.Caller.Groups[0] != "analysts" {
					t.Errorf("recorded caller = %+v; want alice from %s in analysts", c.Caller, idp.Issuer())
				}
			case c.Caller.Subject == "bob@example.com" && c.Decision != nil && c.Decision.Rule == "session-binding":
				bob++
			}
		}
		if alice < 2 || bob != 1 {
			t.Errorf("recorded %d allowed calls by alice, %d session-binding refusals of bob; want >= 2 and 1", alice, bob)
		}
	})
	base := startServer(t, config, "http")

	t.Run("MissingTokenGetsChallengeAndMetadata", func(t *testing.T) {
		status, challenge, body := rawCall(t, base, "")
		want := `Bearer resource_metadata="` + base + `/.well-known/oauth-protected-resource/mcp"`
		if status != http.StatusUnauthorized || challenge != want {
			t.Fatalf("no token = %d %q; want 401 %q", status, challenge, want)
		}
		refusals = append(refusals, refusal{callID(body), "identity"})
		for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
			res, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			var meta struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
			}
			_ = json.NewDecoder(res.Body).Decode(&meta)
			res.Body.Close()
			if res.StatusCode != 200 || meta.Resource != base+"/mcp" || len(meta.AuthorizationServers) != 1 || meta.AuthorizationServers[0] != idp.Issuer() {
				t.Errorf("GET %s = %d %+v; want resource %s/mcp, authorization server %s", path, res.StatusCode, meta, base, idp.Issuer())
			}
		}
	})

	now := time.Now()
	bad := []struct {
		name  string
		token string
	}{
		{"WrongAudience", idp.Token(t, map[string]any{"aud": "billing"})},
		{"WrongIssuer", other.Token(t, analystClaims("alice@example.com"))},
		{"Expired", idp.Token(t, map[string]any{"exp": now.Add(-10 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()})},
		{"NotYetValid", idp.Token(t, map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})},
		{"AlgNone", idp.Token(t, analystClaims("alice@example.com"), oidctest.Unsigned())},
		{"HS256WithThePublicKey", idp.Token(t, analystClaims("alice@example.com"), oidctest.HS256WithPublicKey())},
		{"TamperedPayload", idp.Token(t, analystClaims("alice@example.com"), oidctest.Tamper())},
		{"NotAJWT", "hello"},
	}
	for _, tt := range bad {
		t.Run("Refuses"+tt.name, func(t *testing.T) {
			status, challenge, body := rawCall(t, base, "Bearer "+tt.token)
			if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "resource_metadata=") {
				t.Fatalf("%s = %d %q; want 401 with error=\"invalid_token\"", tt.name, status, challenge)
			}
			if strings.Contains(fmt.Sprint(body), tt.token) {
				t.Errorf("%s: the refusal echoes the token", tt.name)
			}
			refusals = append(refusals, refusal{callID(body), "identity"})
		})
	}

	t.Run("ValidTokenEverySigningAlgorithm", func(t *testing.T) {
		for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA} {
			status, _, body := rawCall(t, base, "Bearer "+idp.Token(t, analystClaims("alice@example.com"), oidctest.WithAlg(alg)))
			if status != http.StatusOK {
				t.Errorf("%s token = %d %v; want 200", alg, status, body)
			}
		}
	})

	src := &tokenSource{}
	src.set(idp.Token(t, analystClaims("alice@example.com")))
	alice := connect(t, base, "http", src, mcp.ProtocolVersion20251125)

	t.Run("ValidTokenIsTheCaller", func(t *testing.T) {
		r := call(t, alice, "sql_query", map[string]any{"database": "shop", "sql": "SELECT count(*) FROM orders"})
		if r.IsError || fmt.Sprint(r.rows()) != "[[30]]" {
			t.Fatalf("alice's select = %v %s", r.IsError, r.Text)
		}
	})

	t.Run("KeyRotationMidRun", func(t *testing.T) {
		kid := idp.Rotate(t)
		src.set(idp.Token(t, analystClaims("alice@example.com")))
		r := call(t, alice, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1"})
		if r.IsError {
			t.Fatalf("token signed with rotated key %s refused: %s", kid, r.Text)
		}
	})

	t.Run("RefusesUnknownKid", func(t *testing.T) {
		status, challenge, body := rawCall(t, base, "Bearer "+idp.Token(t, analystClaims("alice@example.com"), oidctest.WithKID("nobody-knows-me")))
		if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
			t.Fatalf("unknown kid = %d %q; want 401 invalid_token", status, challenge)
		}
		refusals = append(refusals, refusal{callID(body), "identity"})
	})

	t.Run("ExpiredTokenStopsWorkingMidSession", func(t *testing.T) {
		src.set(idp.Token(t, map[string]any{"sub": "alice@example.com", "realm_access": map[string]any{"roles": []any{"analysts"}},
			"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-time.Hour).Unix()}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := mcp.CallToolRequest{}
		req.Params.Name = "sql_query"
		req.Params.Arguments = map[string]any{"database": "shop", "sql": "SELECT 1"}
		if _, err := alice.CallTool(ctx, req); !errors.Is(err, transport.ErrAuthorizationRequired) {
			t.Errorf("call with an expired token on a live session = %v; want 401 (authorization required)", err)
		}
	})

	t.Run("BobCannotUseAlicesSession", func(t *testing.T) {
		src.set(idp.Token(t, analystClaims("bob@example.com")))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := mcp.CallToolRequest{}
		req.Params.Name = "sql_query"
		req.Params.Arguments = map[string]any{"database": "shop", "sql": "SELECT * FROM customers"}
		_, err := alice.CallTool(ctx, req)
		if err == nil || !strings.Contains(err.Error(), "access_denied") {
			t.Errorf("bob's call on alice's session = %v; want 403 access_denied", err)
		}
		src.set(idp.Token(t, analystClaims("alice@example.com")))
	})
}

type refusal struct{ id, rule string }

func callID(body map[string]any) string { id, _ := body["call_id"].(string); return id }

func TestOIDCOverSSE(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	config := oidcConfig(t, dsn, idp.Issuer())
	base := startServer(t, config, "sse")

	res, err := http.Get(base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), base+"/.well-known/oauth-protected-resource/sse") {
		t.Errorf("GET /sse without a token = %d %q; want 401 naming the /sse metadata", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}

	src := &tokenSource{}
	src.set(idp.Token(t, analystClaims("alice@example.com")))
	c := connect(t, base, "sse", src, mcp.ProtocolVersion20250618)
	r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT count(*) FROM customers"})
	if r.IsError || fmt.Sprint(r.rows()) != "[[12]]" {
		t.Fatalf("alice over SSE = %v %s", r.IsError, r.Text)
	}
	src.set(idp.Token(t, analystClaims("bob@example.com")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = "sql_query"
	req.Params.Arguments = map[string]any{"database": "shop", "sql": "SELECT 1"}
	if _, err := c.CallTool(ctx, req); err == nil {
		t.Errorf("bob's message on alice's SSE session was accepted")
	}
}

func TestWardenTokenOnStdio(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	config := oidcConfig(t, dsn, idp.Issuer())

	t.Run("ValidTokenIsTheCaller", func(t *testing.T) {
		tok := idp.Token(t, analystClaims("carol@example.com"))
		tr := transport.NewStdio(wardenBin, []string{"E2E_DSN=" + dsn, "WARDEN_TOKEN=" + tok}, "serve", "--config", config)
		if err := tr.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		initialize(t, c, mcp.ProtocolVersion20251125)
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1"})
		c.Close()
		if r.IsError {
			t.Fatalf("call with a valid WARDEN_TOKEN = %s", r.Text)
		}
		rec := recordedCalls(t, config)[r.callID()]
		if rec.Caller.Subject != "carol@example.com" || rec.Caller.Issuer != idp.Issuer() || rec.Caller.Method != "oidc" {
			t.Errorf("recorded caller = %+v; want carol from %s via oidc", rec.Caller, idp.Issuer())
		}
	})

	t.Run("InvalidTokenRefusesToStart", func(t *testing.T) {
		tok := idp.Token(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})
		cmd := exec.Command(wardenBin, "serve", "--config", config)
		cmd.Env = append(os.Environ(), "E2E_DSN="+dsn, "WARDEN_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "WARDEN_TOKEN is not valid: token expired") {
			t.Errorf("serve with an expired WARDEN_TOKEN = %v\n%s\nwant exit 1 naming the reason", err, out)
		}
		if strings.Contains(string(out), tok) {
			t.Errorf("the error echoes the token")
		}
	})

	t.Run("NoTokenAndNoLocalIdentityRefusesToStart", func(t *testing.T) {
		cmd := exec.Command(wardenBin, "serve", "--config", config)
		cmd.Env = append(os.Environ(), "E2E_DSN="+dsn, "WARDEN_TOKEN=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "stdio needs a caller") {
			t.Errorf("serve with neither = %v\n%s", err, out)
		}
	})
}

func TestUnreachableIssuerFailsAtStart(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	config := oidcConfig(t, dsn, idp.Issuer())
	idp.Close()
	cmd := exec.Command(wardenBin, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "E2E_DSN="+dsn)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "identity.oidc") {
		t.Errorf("serve with an unreachable issuer = %v\n%s\nwant exit 1 naming identity.oidc", err, out)
	}
}
