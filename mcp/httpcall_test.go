package mcp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// httpCase is one HTTP request of TestHTTPDirectAnswersAsMCPGo. Headers
// holding "$SID" get the session the run's initialize opened. A case
// marked async is sent without waiting: its answer is read after the
// next case's (which cancels it).
type httpCase struct {
	method string // POST when empty
	header map[string]string
	host   string
	body   string
	async  bool
}

// A 2026-07-28 request's _meta, with the client's capabilities (caps) and
// anything else (extra, a JSON fragment to add).
func modernMeta(caps, extra string) string {
	m := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps
	if extra != "" {
		m += "," + extra
	}
	return m + "}"
}

// modernCall is a 2026-07-28 tools/call of tool with the headers a client
// sends with it, params being the rest of its params (a JSON fragment).
func modernCall(id, tool, params string, caps string) httpCase {
	if params != "" {
		params += ","
	}
	return httpCase{
		header: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool},
		body:   `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tool + `",` + params + modernMeta(caps, "") + `}}`,
	}
}

// with returns c with the headers in kv (name, value pairs) set; a value
// of "-" removes the header when the request is sent.
func (c httpCase) with(kv ...string) httpCase {
	h := map[string]string{}
	for k, v := range c.header {
		h[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	c.header = h
	return c
}

func legacyRequest(body string) httpCase {
	return httpCase{header: map[string]string{"Mcp-Session-Id": "$SID", "Mcp-Protocol-Version": "2025-11-25"}, body: body}
}

const sqlArgs = `"arguments":{"database":"shop","sql":"SELECT id, name, price, added, active FROM items ORDER BY id"}`

var httpCases = func() []httpCase {
	full := `{"elicitation":{"form":{},"url":{}}}`
	good := modernCall("10", "sql_query", sqlArgs, `{}`)
	cases := []httpCase{
		// The session era: all of it is mcp-go's.
		{body: `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`},
		legacyRequest(`{"jsonrpc":"2.0","method":"notifications/initialized"}`),
		legacyRequest(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`),
		legacyRequest(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sql_query",` + sqlArgs + `}}`),
		legacyRequest(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fails","arguments":{}}}`),
		legacyRequest(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`).with("Mcp-Session-Id", "no-such-session"),
		legacyRequest(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`).with("Mcp-Session-Id", "-"),
		legacyRequest(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`).with("Mcp-Protocol-Version", "1999-01-01"),
		// A session-era call carrying 2026-07-28 _meta but no such header.
		legacyRequest(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, "") + `}}`),

		// 2026-07-28: what is served directly.
		good,
		modernCall(`"str-<&>"`, "sql_query", sqlArgs, full),
		modernCall("1e21", "sql_query", `"arguments":{}`, `{}`),
		modernCall("11", "sql_query", `"arguments":null`, `{}`),
		modernCall("12", "sql_query", "", `{}`),
		modernCall("13", "fails", `"arguments":{"database":"shop"}`, `{}`),
		modernCall("14", "boom", `"arguments":{}`, `{}`),
		modernCall("15", "panics", `"arguments":{}`, `{}`),
		modernCall("16", "ask_form", `"arguments":{}`, full),
		modernCall("17", "ask_form", `"arguments":{},"requestState":"st","inputResponses":{"warden_approval":{"action":"accept","content":{"confirm":true}}}`, full),
		modernCall("18", "ask_form", `"arguments":{},"requestState":"st","inputResponses":{"warden_approval":{"action":"decline"}}`, full),
		modernCall("19", "ask_form", `"arguments":{}`, `{}`),
		modernCall("20", "ask_url", `"arguments":{}`, full),
		modernCall("21", "ask_url", `"arguments":{}`, `{}`),
		// With a session id, which a 2026-07-28 request does not use
		// (authenticate still checks it).
		good.with("Mcp-Session-Id", "$SID"),
		good.with("Mcp-Session-Id", "no-such-session"),
		// Another client name, info in _meta.
		{header: good.header, body: `{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"sql_query",` + sqlArgs + `,` + modernMeta(`{}`, `"io.modelcontextprotocol/clientInfo":{"name":"m","version":"2"},"io.modelcontextprotocol/logLevel":"info"`) + `}}`},
		// Headers as mcp-go accepts them: the name in Base64, localhost.
		good.with("Mcp-Name", "=?base64?c3FsX3F1ZXJ5?="),
		func() httpCase { c := good; c.host = "localhost"; return c }(),

		// 2026-07-28: what is left to mcp-go.
		modernCall("30", "nope", `"arguments":{}`, `{}`),
		modernCall("31", "hidden", `"arguments":{}`, `{}`),
		modernCall("32", "sql_query", `"arguments":[1]`, `{}`),
		modernCall("33", "sql_query", `"arguments":" {}"`, `{}`),
		modernCall("34", "sql_query", `"arguments":{},"task":{"ttl":5}`, `{}`),
		modernCall("35", "sql_query", `"arguments":{}`, `5`),
		{header: good.header, body: `{"jsonrpc":"2.0","id":37,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`},
		{header: good.header, body: `{"jsonrpc":"2.0","id":38,"method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, `"progressToken":"p-38"`) + `}}`},
		{header: good.header, body: `{"jsonrpc":"2.0","id":39,"method":"tools/call","params":{"name":5,"arguments":{},` + modernMeta(`{}`, "") + `}}`},
		{header: good.header, body: `{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, "") + `}}`},
		{header: good.header, body: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, "") + `}}`},
		{header: good.header, body: `{"jsonrpc":"1.0","id":40,"method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, "") + `}}`},
		{header: good.header, body: `{"jsonrpc":"2.0","id":41,"result":{},"method":"tools/call","params":{"name":"sql_query","arguments":{},` + modernMeta(`{}`, "") + `}}`},
		{header: good.header, body: `[` + good.body + `]`},
		{header: good.header, body: `not json`},
		{header: good.header, body: ``},
		{header: good.header, body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}`},
		good.with("Mcp-Protocol-Version", "2099-01-01"),
		good.with("Mcp-Protocol-Version", "-"),
		good.with("Mcp-Protocol-Version", "2025-11-25"),
		good.with("Mcp-Method", "-"),
		good.with("Mcp-Method", "tools/list"),
		good.with("Mcp-Name", "-"),
		good.with("Mcp-Name", "fails"),
		good.with("Mcp-Name", "=?base64?!!!?="),
		good.with("Last-Event-ID", "1"),
		good.with("Content-Type", "text/plain"),
		good.with("Content-Type", "application/json; charset=utf-8"),
		good.with("Content-Type", "-"),
		func() httpCase { c := good; c.host = "warden.example"; return c }(), // identity.resource: warden's edge admits it, mcp-go does not
		func() httpCase { c := good; c.method = http.MethodGet; return c }(),
		func() httpCase { c := good; c.method = http.MethodDelete; return c }(),
		func() httpCase { c := good; c.method = http.MethodPut; return c }(),
		// A notification and a response, as a 2026-07-28 client would
		// (not) send them.
		{header: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "notifications/cancelled"},
			body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99,` + modernMeta(`{}`, "") + `}}`},
		{header: map[string]string{"Mcp-Protocol-Version": "2026-07-28"}, body: `{"jsonrpc":"2.0","id":43,"result":{}}`},

		// A call cancelled while it runs, by a 2026-07-28 notification.
		func() httpCase { c := modernCall("50", "waits", `"arguments":{}`, `{}`); c.async = true; return c }(),
		{header: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "notifications/cancelled"},
			body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":50,"reason":"x",` + modernMeta(`{}`, "") + `}}`},
		// The session era after all that.
		legacyRequest(`{"jsonrpc":"2.0","id":60,"method":"tools/call","params":{"name":"sql_query",` + sqlArgs + `}}`),
		func() httpCase {
			c := legacyRequest(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			c.method = http.MethodDelete
			return c
		}(),
	}
	return cases
}()

// httpAnswer is what a client saw of a response: its status, headers
// (Date dropped, the session id replaced by <sid>) and body.
type httpAnswer struct {
	status int
	header string
	body   string
}

// httpExchange sends cases to a streamable HTTP server built on s, one
// after the other, and returns the answers. started is told when the
// "waits" tool starts running.
func httpExchange(t *testing.T, s *Server, cases []httpCase, started <-chan struct{}) []httpAnswer {
	t.Helper()
	s.opts.Identity.AllowUnauthenticatedLoopback = true
	s.opts.Identity.Resource = "https://warden.example/mcp"
	h, shutdown, err := s.HTTPHandler("http")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() { _ = shutdown(context.Background()); srv.Close() }()
	sid := ""
	send := func(c httpCase) httpAnswer {
		method := c.method
		if method == "" {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, srv.URL+"/mcp", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range c.header {
			if v == "-" {
				req.Header.Del(k)
			} else {
				req.Header.Set(k, strings.ReplaceAll(v, "$SID", sid))
			}
		}
		if c.host != "" {
			req.Host = c.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if id := resp.Header.Get("Mcp-Session-Id"); id != "" && sid == "" {
			sid = id
		}
		var hs []string
		for k, vs := range resp.Header {
			if k == "Date" {
				continue
			}
			hs = append(hs, k+": "+strings.Join(vs, ", "))
		}
		slices.Sort(hs)
		norm := func(s string) string {
			if sid == "" {
				return s
			}
			return strings.ReplaceAll(s, sid, "<sid>")
		}
		return httpAnswer{status: resp.StatusCode, header: norm(strings.Join(hs, "\n")), body: norm(string(body))}
	}
	answers := make([]httpAnswer, len(cases))
	var pending chan httpAnswer
	pendingAt := -1
	for i, c := range cases {
		if c.async {
			pending, pendingAt = make(chan httpAnswer, 1), i
			go func() { pending <- send(c) }()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatalf("case %d: the call did not start", i)
			}
			continue
		}
		answers[i] = send(c)
		if pending != nil {
			select {
			case answers[pendingAt] = <-pending:
			case <-time.After(10 * time.Second):
				t.Fatalf("case %d: the call was not answered", pendingAt)
			}
			pending = nil
		}
	}
	return answers
}

// httpDirectServer is directTestServer with a tool that runs until its
// call is cancelled, telling started when it starts.
func httpDirectServer(t *testing.T, direct bool) (*Server, chan struct{}) {
	s := directTestServer(t)
	s.httpDirect = direct
	started := make(chan struct{}, 1)
	waits := func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
			return mcp.NewToolResultText("not cancelled"), nil
		}
	}
	s.specs["waits"] = stubTool{name: "waits", kind: "postgres"}.Spec()
	s.handlers["waits"] = waits
	s.mcp.AddTool(mcp.Tool{Name: "waits", RawInputSchema: s.schema(s.specs["waits"], nil)}, waits)
	return s, started
}

// A POST carrying an ordinary 2026-07-28 tools/call is answered by
// warden's direct path exactly as by mcp-go's streamable HTTP server and
// HandleMessage: status, headers and body, for everything around it too
// (the session era, refusals, malformed and mismatched requests, a
// cancelled call). Only the session id mcp-go mints at random is
// normalised.
//
// With direct calls off, a 2026-07-28 cancellation is still kept to its
// sender by warden (cancel.go), in front of mcp-go: the cancelled call
// here is its own caller's, which mcp-go answers the same way (the
// handler's context ends and what it returns is the answer). Where warden
// differs from mcp-go by design, a cancellation sent by another subject
// (which mcp-go would carry out), TestCancelReachesOnlyTheCallersCalls
// checks the outcome.
func TestHTTPDirectAnswersAsMCPGo(t *testing.T) {
	run := func(direct bool) ([]httpAnswer, int64) {
		s, started := httpDirectServer(t, direct)
		answers := httpExchange(t, s, httpCases, started)
		return answers, s.httpDirectCalls.Load()
	}
	theirs, none := run(false)
	ours, served := run(true)
	if none != 0 {
		t.Errorf("%d calls were served directly with direct calls off", none)
	}
	for i, c := range httpCases {
		if ours[i] != theirs[i] {
			t.Errorf("case %d: %s %v %.150s\n direct: %d %q\n  %.500q\n mcp-go: %d %q\n  %.500q", i, c.method, c.header, c.body,
				ours[i].status, ours[i].header, ours[i].body, theirs[i].status, theirs[i].header, theirs[i].body)
		}
		if testing.Verbose() {
			t.Logf("case %d: %v %.120s\n  => %d %q %.300s", i, c.header, c.body, ours[i].status, ours[i].header, ours[i].body)
		}
	}
	// Every call of the "served directly" block, and the cancelled one.
	if served != 19 {
		t.Errorf("%d calls were served directly; want 19", served)
	}
	var all strings.Builder
	for _, a := range ours {
		all.WriteString(a.body)
	}
	for _, want := range []string{`row_count`, `"resultType":"input_required"`, `"code":-32603,"message":"context canceled"`, `\"ok\":true`, `Forbidden: invalid Host header`, `"io.modelcontextprotocol/serverInfo"`} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no answer holds %s", want)
		}
	}
}

// Direct calls served concurrently each get their own answer (run with
// -race: the cancels, the tool cache, the splicing).
func TestHTTPDirectConcurrentCalls(t *testing.T) {
	s, _ := httpDirectServer(t, true)
	s.opts.Identity.AllowUnauthenticatedLoopback = true
	var seq atomic.Int64 // the fixture's call ids are for one call at a time
	s.opts.Pipeline.NewID = func() string { return "c-" + strconv.FormatInt(seq.Add(1), 10) }
	h, shutdown, err := s.HTTPHandler("http")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() { _ = shutdown(context.Background()); srv.Close() }()
	const workers, calls = 8, 20
	errs := make(chan error, workers*calls)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				id := strconv.Itoa(w*1000 + i)
				c := modernCall(id, "sql_query", sqlArgs, `{}`)
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(c.body))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range c.header {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), `{"jsonrpc":"2.0","id":`+id+`,"result":`) || !strings.Contains(string(body), `row_count`) {
					errs <- fmt.Errorf("call %s: %d %.200s", id, resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.httpDirectCalls.Load(); n != workers*calls {
		t.Errorf("%d calls were served directly; want %d", n, workers*calls)
	}
}
