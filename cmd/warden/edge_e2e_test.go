package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// edgeConfig is a config whose analysts may read orders and insert notes.
// With an issuer, every HTTP request needs its token; without, the local
// identity is served on loopback without one — the case a web page would
// most like to drive. httpSection is the `http:` section, if any.
func edgeConfig(t *testing.T, dsn, issuer, httpSection string) string {
	t.Helper()
	identity := `
identity:
  local: {subject: alice@example.com, groups: [analysts]}
  allow_unauthenticated_loopback: true`
	if issuer != "" {
		identity = fmt.Sprintf(`
identity:
  oidc:
    - {issuer: %q, audience: warden, groups_claim: realm_access.roles}`, issuer)
	}
	cfg := `
store: sqlite:recording.db` + identity + "\n" + httpSection + `
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s, max_rows: 5}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders], actions: [select]}
      - {backend: shop, tables: [public.notes], actions: [insert, select]}
`
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	return path
}

// insertNote is a tools/call that leaves a trace in the database if it
// runs: judged by outcome, not by what warden answers.
func insertNote(id int, body string) string {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{
		"name": "sql_query", "arguments": map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ('" + body + "')"}}})
	return string(b)
}

// rawResponse is what a raw HTTP client got.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// send sends one request with exactly the given header values (names
// as written, repeated as listed) and returns the response.
func send(t *testing.T, method, target string, header [][2]string, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	for _, h := range header {
		if h[0] == "Host" {
			req.Host = h[1]
			continue
		}
		req.Header[h[0]] = append(req.Header[h[0]], h[1]) // not canonicalised: sent as written
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	var b []byte
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		b, _ = io.ReadAll(res.Body)
	}
	return rawResponse{res.StatusCode, res.Header, string(b)}
}

// TestSessionsBelongToTheirSubject: bob, holding a valid token of the same
// issuer and the same grants, tries to act inside alice's session by every
// way of naming it — header and query, duplicates, case variants, his own
// session id beside hers — on both transports. Judged by the database (did
// his insert run?) and the recording (is any call of bob's in her
// session?); bob's own session must still work.
func TestSessionsBelongToTheirSubject(t *testing.T) {
	for _, transportName := range []string{"http", "sse"} {
		t.Run(transportName, func(t *testing.T) {
			dsn := pgtest.New(t, e2eSchema)
			idp := oidctest.New(t)
			config := edgeConfig(t, dsn, idp.Issuer(), "")
			srv := launchServer(t, config, transportName)

			aliceTok := idp.Token(t, analystClaims("alice@example.com"))
			bobTok := idp.Token(t, analystClaims("bob@example.com"))
			aliceSrc, bobSrc := &tokenSource{}, &tokenSource{}
			aliceSrc.set(aliceTok)
			bobSrc.set(bobTok)
			alice := connect(t, srv.base, transportName, aliceSrc, mcp.ProtocolVersion20250618)
			bob := connect(t, srv.base, transportName, bobSrc, mcp.ProtocolVersion20250618)
			aliceSID, bobSID := sessionID(alice), sessionID(bob)
			if aliceSID == "" || bobSID == "" || aliceSID == bobSID {
				t.Fatalf("session ids alice %q, bob %q; want two distinct ids", aliceSID, bobSID)
			}

			auth := [2]string{"Authorization", "Bearer " + bobTok}
			// hers: the id the transport routes on is alice's, so the
			// request must not run at all. Every other attempt may run
			// only in bob's own session.
			type attempt struct {
				name   string
				hers   bool
				query  string
				header [][2]string
			}
			var attempts []attempt
			endpoint := srv.base + "/mcp"
			if transportName == "http" {
				proto := [2]string{"Mcp-Protocol-Version", mcp.ProtocolVersion20250618}
				attempts = []attempt{
					{"HerHeader", true, "", [][2]string{auth, proto, {"Mcp-Session-Id", aliceSID}}},
					{"HerHeaderLowerCase", true, "", [][2]string{auth, proto, {"mcp-session-id", aliceSID}}},
					{"HerHeaderUpperCase", true, "", [][2]string{auth, proto, {"MCP-SESSION-ID", aliceSID}}},
					{"HersThenHisHeader", true, "", [][2]string{auth, proto, {"Mcp-Session-Id", aliceSID}, {"Mcp-Session-Id", bobSID}}},
					{"HisThenHersHeader", false, "", [][2]string{auth, proto, {"Mcp-Session-Id", bobSID}, {"Mcp-Session-Id", aliceSID}}},
					{"HerHeaderAcrossCases", false, "", [][2]string{auth, proto, {"mcp-session-id", aliceSID}, {"Mcp-Session-Id", bobSID}}},
					{"HisHeaderHerQuery", false, "?sessionId=" + aliceSID, [][2]string{auth, proto, {"Mcp-Session-Id", bobSID}}},
					{"HerHeaderHisQuery", true, "?sessionId=" + bobSID, [][2]string{auth, proto, {"Mcp-Session-Id", aliceSID}}},
				}
			} else {
				endpoint = srv.base + "/message"
				attempts = []attempt{
					{"HerQuery", true, "?sessionId=" + aliceSID, [][2]string{auth}},
					{"HerQueryHisHeader", true, "?sessionId=" + aliceSID, [][2]string{auth, {"Mcp-Session-Id", bobSID}}},
					{"HisQueryHerHeader", false, "?sessionId=" + bobSID, [][2]string{auth, {"Mcp-Session-Id", aliceSID}}},
					{"HersThenHisQuery", true, "?sessionId=" + aliceSID + "&sessionId=" + bobSID, [][2]string{auth}},
					{"HisThenHersQuery", false, "?sessionId=" + bobSID + "&sessionId=" + aliceSID, [][2]string{auth}},
					{"EncodedName", true, "?session%49d=" + aliceSID, [][2]string{auth}},
					{"SemicolonSeparated", true, "?x=1;sessionId=" + aliceSID, [][2]string{auth}},
					{"CaseVariantName", false, "?sessionid=" + aliceSID + "&sessionId=" + bobSID, [][2]string{auth}},
				}
			}
			var hers []string
			for i, a := range attempts {
				if a.hers {
					hers = append(hers, "bob-"+a.name)
				}
				t.Run("Bob"+a.name, func(t *testing.T) {
					res := send(t, http.MethodPost, endpoint+a.query, a.header, insertNote(100+i, "bob-"+a.name))
					if a.hers && res.status < 400 {
						t.Errorf("= %d %q; want it refused: the session it would reach is alice's", res.status, res.body)
					}
				})
			}

			if transportName == "http" {
				// Listening on her stream would deliver her messages to
				// bob; deleting her session would end it.
				for _, method := range []string{"GET", "DELETE"} {
					t.Run("Bob"+method+"sHerSession", func(t *testing.T) {
						h := [][2]string{auth, {"Mcp-Protocol-Version", mcp.ProtocolVersion20250618}, {"Mcp-Session-Id", aliceSID}}
						if res := send(t, method, srv.base+"/mcp", h, ""); res.status != http.StatusForbidden {
							t.Errorf("= %d %q; want 403", res.status, res.body)
						}
					})
				}
			}
			t.Run("ForeignOriginGetsNoMetadata", func(t *testing.T) {
				res := send(t, "GET", srv.base+"/.well-known/oauth-protected-resource/mcp", [][2]string{{"Origin", "https://evil.example"}}, "")
				if res.status != http.StatusForbidden || res.header.Get("Access-Control-Allow-Origin") != "" {
					t.Errorf("= %d, ACAO %q; want 403 without ACAO", res.status, res.header.Get("Access-Control-Allow-Origin"))
				}
			})

			// Bob's own session works: the refusals above were not
			// refusals of bob.
			r := call(t, bob, "sql_query", map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ('bob-own')"})
			if r.IsError {
				t.Fatalf("bob's insert on his own session = %s", r.Text)
			}
			r = call(t, alice, "sql_query", map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ('alice-own')"})
			if r.IsError {
				t.Fatalf("alice's insert on her own session after the attempts = %s", r.Text)
			}
			srv.stop(t)

			// What ran: nothing whose routing id was alice's; and nothing
			// of bob's is recorded in alice's session.
			if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = ANY($1)", hers); n != 0 {
				t.Errorf("%d of bob's inserts into alice's session ran", n)
			}
			calls := recordedCalls(t, config)
			aliceSessions := map[string]bool{}
			for _, c := range calls {
				if c.Caller.Subject == "alice@example.com" && c.SessionID != "" {
					aliceSessions[c.SessionID] = true
				}
			}
			if len(aliceSessions) != 1 {
				t.Errorf("alice's calls are recorded in %d sessions; want 1", len(aliceSessions))
			}
			for _, c := range calls {
				if c.Caller.Subject != "alice@example.com" && aliceSessions[c.SessionID] {
					t.Errorf("%s's call %s (%s, %s) is recorded in alice's session %s", c.Caller.Subject, c.ID, c.Statement, c.Outcome, c.SessionID)
				}
			}
			if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body IN ('bob-own', 'alice-own')"); n != 2 {
				t.Errorf("own-session inserts that ran = %d; want 2 (a false refusal)", n)
			}
		})
	}
}

// sessionID is the id the server routes a client's requests on.
func sessionID(c *client.Client) string {
	if sse, ok := c.GetTransport().(*transport.SSE); ok {
		return sse.GetEndpoint().Query().Get("sessionId")
	}
	return c.GetTransport().GetSessionId()
}

// TestBrowsersCannotDriveWarden: a loopback warden serving the local
// identity without a token is exactly what a web page would like to reach.
// A request from a foreign origin, a cross-site request without Origin,
// and a DNS-rebound Host are refused on every endpoint before MCP sees
// them: no session opens, no call runs, nothing answers ACAO: *.
func TestBrowsersCannotDriveWarden(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := edgeConfig(t, dsn, "", "http: {allowed_origins: [\"https://App.Example.com:443\"]}")
	for _, transportName := range []string{"http", "sse"} {
		t.Run(transportName, func(t *testing.T) {
			srv := launchServer(t, config, transportName)
			u, _ := url.Parse(srv.base)
			rebound := "attacker.example:" + u.Port()
			initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"page","version":"1"}}}`
			modern := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":{"database":"shop","sql":"INSERT INTO notes (body) VALUES ('page')"},` +
				`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"page","version":"1"}}}}`
			modernHeader := [][2]string{{"Mcp-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"}, {"Mcp-Name", "sql_query"}}
			type probe struct {
				method, path, body string
				header             [][2]string
			}
			probes := []probe{{"GET", "/healthz", "", nil}}
			if transportName == "http" {
				probes = append(probes, probe{"POST", "/mcp", initialize, nil}, probe{"POST", "/mcp", modern, modernHeader}, probe{"GET", "/mcp", "", nil}, probe{"OPTIONS", "/mcp", "", nil})
			} else {
				probes = append(probes, probe{"GET", "/sse", "", nil}, probe{"POST", "/message?sessionId=x", modern, modernHeader}, probe{"OPTIONS", "/message", "", nil})
			}
			foreign := []struct {
				name   string
				header [][2]string
			}{
				{"ForeignOrigin", [][2]string{{"Origin", "https://evil.example"}}},
				{"NullOrigin", [][2]string{{"Origin", "null"}}},
				{"LoopbackPageOrigin", [][2]string{{"Origin", srv.base}}},
				{"AllowedOriginWithDifferentCase", [][2]string{{"Origin", "https://APP.example.com"}}},
				{"AllowedOriginWithPort", [][2]string{{"Origin", "https://app.example.com:443"}}},
				{"TwoOriginsOneAllowed", [][2]string{{"Origin", "https://app.example.com"}, {"Origin", "https://evil.example"}}},
				{"CrossSiteWithoutOrigin", [][2]string{{"Sec-Fetch-Site", "cross-site"}}},
				{"SameSiteWithoutOrigin", [][2]string{{"Sec-Fetch-Site", "same-site"}}},
				{"DNSRebinding", [][2]string{{"Host", rebound}}},
				{"DNSRebindingWithAllowedOrigin", [][2]string{{"Host", rebound}, {"Origin", "https://app.example.com"}}},
			}
			for _, f := range foreign {
				for _, p := range probes {
					t.Run(f.name+"/"+p.method+p.path, func(t *testing.T) {
						h := append(append([][2]string{{"Access-Control-Request-Method", "POST"}}, p.header...), f.header...)
						res := send(t, p.method, srv.base+p.path, h, p.body)
						if res.status != http.StatusForbidden || !strings.Contains(res.body, "error_description") {
							t.Errorf("= %d %q; want 403 with a reason", res.status, res.body)
						}
						if v := res.header.Values("Access-Control-Allow-Origin"); len(v) > 0 {
							t.Errorf("refusal answers Access-Control-Allow-Origin %q", v)
						}
					})
				}
			}
			t.Run("AllowedOriginIsServed", func(t *testing.T) {
				for _, p := range probes {
					if p.method == "GET" && p.path != "/healthz" {
						continue // streams; checked below
					}
					h := append([][2]string{{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "POST"}}, p.header...)
					res := send(t, p.method, srv.base+p.path, h, p.body)
					if res.status == http.StatusForbidden || res.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
						t.Errorf("%s %s from the allowed origin = %d, ACAO %q; want served, ACAO naming the origin\n%v\n%s", p.method, p.path, res.status, res.header.Get("Access-Control-Allow-Origin"), res.header, res.body)
					}
				}
			})
			t.Run("NoEndpointAnswersACAOStar", func(t *testing.T) {
				// mcp-go's SSE transport answers "*" on its own.
				path := "/mcp"
				if transportName == "sse" {
					path = "/sse"
				}
				for _, origin := range []string{"", "https://app.example.com"} {
					req, _ := http.NewRequest("GET", srv.base+path, nil)
					req.Header.Set("Accept", "text/event-stream")
					if origin != "" {
						req.Header.Set("Origin", origin)
					}
					ctx, cancel := context.WithCancel(context.Background())
					res, err := http.DefaultClient.Do(req.WithContext(ctx))
					if err != nil {
						t.Fatal(err)
					}
					if got := res.Header.Get("Access-Control-Allow-Origin"); got != origin {
						t.Errorf("GET %s with Origin %q answers ACAO %q; want %q", path, origin, got, origin)
					}
					cancel()
					res.Body.Close()
				}
			})
			srv.stop(t)
			if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = 'page'"); n != 1 {
				// Only the allowed origin's modern call may have run.
				t.Errorf("page inserts that ran = %d; want 1 (from the allowed origin only)", n)
			}
			for _, c := range recordedCalls(t, config) {
				if c.Outcome == "ok" && c.Tool == "sql_query" && c.Caller.Subject == "alice@example.com" {
					continue
				}
				if c.Outcome == "ok" {
					t.Errorf("call %s %s ran from a refused request", c.ID, c.Tool)
				}
			}
		})
	}
}

// TestOversizedBodiesAreNotRead: a body over http.max_request_bytes is
// refused without warden reading it — declared or chunked, authenticated
// or not. Judged by how much of a 1 GiB body the client could send before
// warden answered and closed the connection.
func TestOversizedBodiesAreNotRead(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	const limit = 64 << 10
	section := fmt.Sprintf("http: {max_request_bytes: %d}", limit)
	loopback := launchServer(t, edgeConfig(t, dsn, "", section), "http")
	oidc := launchServer(t, edgeConfig(t, dsn, idp.Issuer(), section), "http")
	token := idp.Token(t, analystClaims("alice@example.com"))

	tests := []struct {
		name       string
		base, auth string
		chunked    bool
		want       int
	}{
		{"DeclaredLengthLoopback", loopback.base, "", false, http.StatusRequestEntityTooLarge},
		{"ChunkedLoopback", loopback.base, "", true, http.StatusRequestEntityTooLarge},
		{"DeclaredLengthWithToken", oidc.base, "Bearer " + token, false, http.StatusRequestEntityTooLarge},
		{"ChunkedWithToken", oidc.base, "Bearer " + token, true, http.StatusRequestEntityTooLarge},
		{"DeclaredLengthWithoutToken", oidc.base, "", false, http.StatusUnauthorized},
		{"ChunkedWithoutToken", oidc.base, "", true, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, sent := sendHuge(t, tt.base, tt.auth, tt.chunked, 1<<30)
			if status != tt.want {
				t.Errorf("status = %d; want %d", status, tt.want)
			}
			// Kernel socket buffers take some megabytes before the peer
			// reads anything; a body that warden read to the end would be
			// the whole gigabyte.
			if sent > 64<<20 {
				t.Errorf("the client sent %d MiB of a 1 GiB body before warden answered; want it cut near the start", sent>>20)
			}
			t.Logf("sent %d KiB before the answer", sent>>10)
		})
	}
	t.Run("BodyAtTheLimitIsServed", func(t *testing.T) {
		pad := strings.Repeat(" ", limit-2000)
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"big","version":"1"}}}` + pad
		res := send(t, "POST", loopback.base+"/mcp", nil, body)
		if res.status != http.StatusOK || res.header.Get("Mcp-Session-Id") == "" {
			t.Errorf("initialize padded to just under the limit = %d %q; want a session", res.status, res.body)
		}
	})
}

// sendHuge posts up to size bytes to /mcp on a raw connection, reading the
// answer concurrently, and returns the status and the bytes sent.
func sendHuge(t *testing.T, base, auth string, chunked bool, size int64) (int, int64) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	head := "POST /mcp HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
	if auth != "" {
		head += "Authorization: " + auth + "\r\n"
	}
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	status := make(chan int, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			status <- 0
			return
		}
		res.Body.Close()
		status <- res.StatusCode
	}()
	chunk := bytes.Repeat([]byte("a"), 32<<10)
	if chunked {
		chunk = append(append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), chunk...), "\r\n"...)
	}
	var sent int64
	for sent < size {
		select {
		case s := <-status:
			return s, sent
		default:
		}
		n, err := conn.Write(chunk)
		sent += int64(n)
		if err != nil {
			break
		}
	}
	return <-status, sent
}

// TestSlowClientsAreCut: headers or a body that trickle in, and idle
// kept-alive connections, are cut after the configured timeouts.
func TestSlowClientsAreCut(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	srv := launchServer(t, edgeConfig(t, dsn, "", "http: {read_timeout: 300ms, idle_timeout: 300ms}"), "http")
	u, _ := url.Parse(srv.base)
	tests := []struct {
		name    string
		head    string // sent at once
		trickle string // then one byte at a time
	}{
		{"Headers", "POST /mcp HTTP/1.1\r\nHost: " + u.Host + "\r\n", strings.Repeat("X-Slow: 1\r\n", 1000)},
		{"Body", "POST /mcp HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", strings.Repeat(" ", 100000)},
		{"IdleKeepAlive", "GET /healthz HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.head); err != nil {
				t.Fatal(err)
			}
			closed := make(chan []byte, 1)
			go func() {
				_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				b, _ := io.ReadAll(conn) // until warden closes
				closed <- b
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case got := <-closed:
					if tt.name == "Body" && !bytes.Contains(got, []byte("408")) {
						t.Errorf("a trickled body was cut with %q; want a 408 answer", got)
					}
					return
				case <-tick.C:
					if i < len(tt.trickle) {
						_, _ = conn.Write([]byte{tt.trickle[i]})
					}
					if i > 30*20 {
						t.Fatal("warden kept the slow connection open for 30s")
					}
				}
			}
		})
	}
}

// TestEventStreamsOutliveTimeouts: with read, write and idle timeouts far
// shorter than a session, an SSE session and a streamable HTTP listening
// stream stay open and keep working.
func TestEventStreamsOutliveTimeouts(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := edgeConfig(t, dsn, "", "http: {read_timeout: 200ms, write_timeout: 200ms, idle_timeout: 200ms}")
	for _, transportName := range []string{"sse", "http"} {
		t.Run(transportName, func(t *testing.T) {
			srv := launchServer(t, config, transportName)
			c := connect(t, srv.base, transportName, &tokenSource{}, mcp.ProtocolVersion20250618)
			var streamDone chan struct{}
			if transportName == "http" {
				// The standalone GET stream of the session.
				req, _ := http.NewRequest("GET", srv.base+"/mcp", nil)
				req.Header.Set("Accept", "text/event-stream")
				req.Header.Set("Mcp-Session-Id", c.GetTransport().GetSessionId())
				req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20250618)
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					t.Fatalf("GET stream = %v %v", res, err)
				}
				defer res.Body.Close()
				streamDone = make(chan struct{})
				go func() { _, _ = io.Copy(io.Discard, res.Body); close(streamDone) }()
			}
			// Let every timeout pass several times over.
			time.Sleep(time.Second)
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT count(*) FROM orders"})
			if r.IsError || fmt.Sprint(r.rows()) != "[[30]]" {
				t.Fatalf("call after the timeouts passed = %v %s", r.IsError, r.Text)
			}
			if streamDone != nil {
				select {
				case <-streamDone:
					t.Error("the GET event stream was cut by a timeout")
				default:
				}
			}
			c.Close()
			srv.stop(t)
		})
	}
}

// TestUnauthenticatedFloodIsBounded: thousands of refused requests without
// a token, each with a large body, grow the recording by a bounded number
// of compact records; no body reaches it.
func TestUnauthenticatedFloodIsBounded(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	config := edgeConfig(t, dsn, idp.Issuer(), "")
	srv := launchServer(t, config, "http")
	store := filepath.Join(filepath.Dir(config), "recording.db")
	size := func() int64 {
		var n int64
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(store + suffix); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	// One refusal first, so the file exists and the schema is counted
	// before the flood.
	send(t, "POST", srv.base+"/mcp", nil, insertNote(1, "warmup"))
	before := size()

	const flood = 2000
	const marker = "FLOOD-BODY-MARKER"
	body := insertNote(2, marker+strings.Repeat("x", 16<<10))
	variants := [][][2]string{
		nil,
		{{"Authorization", "Bearer not-a-token"}},
		{{"Authorization", "Bearer " + idp.Token(t, map[string]any{"aud": "billing"})}},
		{{"Origin", "https://evil.example/" + strings.Repeat("o", 4000)}},
	}
	sem := make(chan struct{}, 8)
	errs := make(chan error, flood)
	var resets atomic.Int64
	for i := 0; i < flood; i++ {
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem }()
			req, _ := http.NewRequest("POST", srv.base+"/mcp", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for _, h := range variants[i%len(variants)] {
				req.Header.Set(h[0], h[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				// warden answers without reading the body and closes:
				// the client may still be writing it.
				resets.Add(1)
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
				errs <- fmt.Errorf("request %d answered %d", i, res.StatusCode)
			}
		}(i)
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.stop(t) // records the window's count

	grown := size() - before
	calls := recordedCalls(t, config)
	var individual, counted int
	for _, c := range calls {
		if c.Caller.Subject != "" {
			t.Errorf("call %s has a caller %q", c.ID, c.Caller.Subject)
		}
		if c.Tool == "http:refused" {
			var s struct {
				Count int `json:"count"`
			}
			_ = json.Unmarshal(c.Args, &s)
			counted += s.Count
		} else {
			individual++
		}
	}
	t.Logf("%d refused requests of %d KiB (%d cut while sending): %d records, %d counted in summaries; the recording grew %d KiB", flood+1, len(body)>>10, resets.Load(), len(calls), counted, grown>>10)
	if individual+counted != flood+1 {
		t.Errorf("recorded %d + counted %d refusals; want all %d accounted for", individual, counted, flood+1)
	}
	// One window's budget (a slow run may span two), plus summaries.
	if len(calls) > 2*21 {
		t.Errorf("the flood left %d records; want at most %d", len(calls), 2*21)
	}
	if total := size(); grown > 1<<20 || total > 2<<20 {
		t.Errorf("the recording grew by %d KiB to %d KiB for a flood of %d MiB of bodies; want it to grow under 1 MiB", grown>>10, total>>10, flood*len(body)>>20)
	}
	raw, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, []byte(strings.Repeat("o", 300))) {
		t.Error("a refused request's body or its unbounded Origin reached the recording")
	}
}

// TestProtocolEdges: where mcp-go departs from the specification, warden's
// transport layer answers as the specification says.
func TestProtocolEdges(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := edgeConfig(t, dsn, "", "")

	t.Run("StdioRefusesRequestsBeforeInitialize", func(t *testing.T) {
		out := rawStdio(t, config,
			insertNote(1, "before-init"),
			`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
			`{"jsonrpc":"2.0","id":3,"method":"ping"}`,
			`{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			insertNote(5, "after-init"),
		)
		for _, id := range []string{"1", "2"} {
			if e := out[id]; e.Error == nil || !strings.Contains(e.Error.Message, "before initialize") {
				t.Errorf("request %s before initialize = %+v; want an error naming initialize", id, e)
			}
		}
		if out["3"].Error != nil || out["4"].Error != nil {
			t.Errorf("ping or initialize refused: %+v %+v", out["3"], out["4"])
		}
		if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = 'before-init'"); n != 0 {
			t.Errorf("the insert sent before initialize ran")
		}
		if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = 'after-init'"); n != 1 {
			t.Errorf("the insert after initialize ran %d times; want once", n)
		}
	})

	t.Run("SSERefusesRequestsBeforeInitialize", func(t *testing.T) {
		srv := launchServer(t, config, "sse")
		stream := openSSE(t, srv.base)
		post := func(body string) {
			res := send(t, "POST", srv.base+stream.endpoint, nil, body)
			if res.status != http.StatusAccepted {
				t.Fatalf("POST %s = %d %q; want 202", stream.endpoint, res.status, res.body)
			}
		}
		post(insertNote(1, "sse-before-init"))
		if e := stream.response(t, "1"); e.Error == nil || !strings.Contains(e.Error.Message, "before initialize") {
			t.Errorf("tools/call before initialize over SSE = %+v; want an error naming initialize", e)
		}
		post(`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		if e := stream.response(t, "2"); e.Error != nil {
			t.Fatalf("initialize = %+v", e)
		}
		post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		post(insertNote(3, "sse-after-init"))
		if e := stream.response(t, "3"); e.Error != nil {
			t.Errorf("tools/call after initialize = %+v", e)
		}
		stream.close()
		srv.stop(t)
		if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = 'sse-before-init'"); n != 0 {
			t.Errorf("the insert sent before initialize ran")
		}
		if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = 'sse-after-init'"); n != 1 {
			t.Errorf("the insert after initialize ran %d times; want once", n)
		}
	})

	malformed := []struct {
		name, msg, want string
	}{
		{"NameIsANumber", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5,"arguments":{}}}`, "params.name must be a string, not a number"},
		{"ParamsIsAnArray", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":[1]}`, "params must be an object, not an array"},
		{"ArgumentsIsAnArray", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"sql_query","arguments":[1]}}`, "params.arguments must be an object"},
		{"CursorIsANumber", `{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"cursor":5}}`, "params.cursor must be a string, not a number"},
		{"PingParamsIsAString", `{"jsonrpc":"2.0","id":9,"method":"ping","params":"x"}`, "params must be an object, not a string"},
	}
	t.Run("MalformedRequestsNameNoGoType", func(t *testing.T) {
		for _, m := range malformed {
			t.Run(m.name, func(t *testing.T) {
				out := rawStdio(t, config,
					`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
					`{"jsonrpc":"2.0","method":"notifications/initialized"}`, m.msg)
				e := out["9"]
				if e.Error == nil || !strings.Contains(e.Error.Message, m.want) {
					t.Fatalf("%s = %+v; want an error saying %q", m.msg, e, m.want)
				}
				for _, leak := range []string{"Go ", "struct", "of type", "mcp.", "unmarshal"} {
					if strings.Contains(e.Error.Message, leak) {
						t.Errorf("error %q names Go internals (%q)", e.Error.Message, leak)
					}
				}
			})
		}
	})

	srv := launchServer(t, config, "http")
	t.Run("MissingSessionIsBadRequest", func(t *testing.T) {
		proto := [2]string{"Mcp-Protocol-Version", mcp.ProtocolVersion20250618}
		for _, tt := range []struct {
			name, method, body string
			header             [][2]string
			want               int
		}{
			{"PostWithoutSession", "POST", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, [][2]string{proto}, http.StatusBadRequest},
			{"DeleteWithoutSession", "DELETE", "", [][2]string{proto}, http.StatusBadRequest},
			{"GetWithoutSession", "GET", "", [][2]string{proto}, http.StatusBadRequest},
			{"PostWithUnknownSession", "POST", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, [][2]string{proto, {"Mcp-Session-Id", "mcp-session-00000000-0000-4000-8000-000000000000"}}, http.StatusNotFound},
			{"GetWithUnknownSession", "GET", "", [][2]string{proto, {"Mcp-Session-Id", "made-up"}}, http.StatusNotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if res := send(t, tt.method, srv.base+"/mcp", tt.header, tt.body); res.status != tt.want {
					t.Errorf("= %d %q; want %d", res.status, res.body, tt.want)
				}
			})
		}
		// And the 400 does not catch what needs no session.
		res := send(t, "POST", srv.base+"/mcp", nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		if res.status != http.StatusOK || res.header.Get("Mcp-Session-Id") == "" {
			t.Errorf("initialize without a session = %d %q; want 200 with a session", res.status, res.body)
		}
		status, _, _ := rawCall(t, srv.base, "")
		if status != http.StatusOK {
			t.Errorf("a 2026-07-28 request without a session = %d; want 200", status)
		}
	})
	t.Run("MalformedOverHTTPNamesNoGoType", func(t *testing.T) {
		c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20250618)
		h := [][2]string{{"Mcp-Protocol-Version", mcp.ProtocolVersion20250618}, {"Mcp-Session-Id", c.GetTransport().GetSessionId()}}
		res := send(t, "POST", srv.base+"/mcp", h, malformed[0].msg)
		if !strings.Contains(res.body, malformed[0].want) || strings.Contains(res.body, "Go struct") {
			t.Errorf("malformed tools/call over HTTP = %d %q; want %q", res.status, res.body, malformed[0].want)
		}
	})
	srv.stop(t)
}

// sseStream is a raw SSE session: the endpoint to post to and the
// messages that arrive on the stream.
type sseStream struct {
	endpoint string
	messages chan rpcResponse
	close    context.CancelFunc
}

// openSSE opens GET /sse and reads its events until the test ends.
func openSSE(t *testing.T, base string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse = %v %v", res, err)
	}
	s := &sseStream{messages: make(chan rpcResponse, 16), close: cancel}
	endpoint := make(chan string, 1)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:") && event == "endpoint":
				endpoint <- strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			case strings.HasPrefix(line, "data:"):
				var r rpcResponse
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data:")), &r) == nil && len(r.ID) > 0 && (r.Result != nil || r.Error != nil) {
					s.messages <- r
				}
			}
		}
	}()
	select {
	case s.endpoint = <-endpoint:
	case <-time.After(10 * time.Second):
		t.Fatal("no endpoint event on the SSE stream")
	}
	return s
}

// response waits for the response with the given id.
func (s *sseStream) response(t *testing.T, id string) rpcResponse {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case r := <-s.messages:
			if string(r.ID) == id {
				return r
			}
		case <-timeout:
			t.Fatalf("no response %s on the SSE stream", id)
		}
	}
}

// rpcResponse is one JSON-RPC response.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rawStdio runs `warden serve` over stdio, writes each line in order
// (waiting for the answer to each request before the next), and returns
// the responses by id.
func rawStdio(t *testing.T, config string, lines ...string) map[string]rpcResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wardenBin, "serve", "--config", config)
	cmd.Env = append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN"))
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(outPipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	out := map[string]rpcResponse{}
	for _, line := range lines {
		if _, err := io.WriteString(in, line+"\n"); err != nil {
			t.Fatal(err)
		}
		var id struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal([]byte(line), &id) != nil || len(id.ID) == 0 {
			continue // a notification: no answer
		}
		for sc.Scan() {
			var r rpcResponse
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || len(r.ID) == 0 {
				continue // a notification from warden
			}
			out[string(r.ID)] = r
			if string(r.ID) == string(id.ID) {
				break
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out
}
