package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mark3labs/mcp-go/mcp"
	"io"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// stdioExchange feeds lines to a stdio server one at a time and returns
// what it answered to each: the one line answering a request, or, for a
// line that gets no answer (silent), everything written before the answer
// to a ping sent after it.
func stdioExchange(t *testing.T, serve func(ctx context.Context, in io.Reader, out io.Writer) error, lines []string) []string {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, inR, outW); outW.Close() }()
	// Lines are read on their own goroutine so that a message that gets
	// no answer fails the test instead of hanging it.
	outLines := make(chan string)
	go func() {
		r := bufio.NewReaderSize(outR, 1<<20)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(outLines)
				return
			}
			outLines <- l
		}
	}()
	next := func(i int) string {
		select {
		case l, ok := <-outLines:
			if !ok {
				t.Fatalf("line %d (%.200s): the server's output ended", i, lines[i])
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d (%.200s): no answer", i, lines[i])
		}
		return ""
	}
	var answers []string
	for i, line := range lines {
		line, silent := strings.CutPrefix(line, "silent:")
		if !silent {
			if _, err := io.WriteString(inW, line+"\n"); err != nil {
				t.Fatal(err)
			}
			answers = append(answers, next(i))
			continue
		}
		ping := fmt.Sprintf(`{"jsonrpc":"2.0","id":"sync-%d","method":"ping"}`, i)
		if _, err := io.WriteString(inW, line+"\n"+ping+"\n"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			l := next(i)
			if strings.Contains(l, `"id":"sync-`) {
				break
			}
			got = append(got, l)
		}
		answers = append(answers, strings.Join(got, ""))
	}
	inW.Close()
	cancel()
	<-done
	return answers
}

// stdioCases are messages whose answers mcp-go's StdioServer and warden's
// loop must agree on, in this order (each may change the session).
var stdioCases = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, // before initialize
	`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`,
	`silent:{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
	fmt.Sprintf(strings.TrimSuffix(benchCall, "\n"), 3),
	`{"jsonrpc":"2.0","id":"str-<&>","method":"tools/call","params":{"name":"sql_query","arguments":{"database":"shop","sql":"select 1"}}}`,
	`{"jsonrpc":"2.0","id":1e21,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sql_query","arguments":[1]}}`,
	`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":5}}`,
	`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"nope","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":7,"method":"no/such"}`,
	`{"jsonrpc":"1.0","id":8,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"1"}}}}`,
	`not json`,
	``,
	`[1,2]`,
	`"string"`,
	`{"jsonrpc":"2.0","method":5,"id":10}`,
	`silent:{"jsonrpc":"2.0","id":11,"result":{}}`,
	`{"jsonrpc":"2.0","id":12,"error":{"code":1,"message":"x"}}`,
	`silent:{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}`,
	`silent:{"jsonrpc":"2.0","id":null,"method":"ping"}`,

	// tools/call in the session era: what a direct call serves, and
	// what it leaves to HandleMessage.
	`{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"fails","arguments":{"database":"shop"}}}`,
	`{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"boom","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"panics","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"hidden","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":24,"method":"tools/call","params":{"name":"sql_query","arguments":{},"task":{"ttl":1000}}}`,
	`silent:{"jsonrpc":"2.0","id":25,"method":"tools/call","result":{},"params":{"name":"sql_query","arguments":{}}}`,
	`silent:{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`,
	`silent:{"jsonrpc":"2.0","method":"tools/call","params":{"name":"sql_query","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"name":"sql_query","arguments":null}}`,
	`{"jsonrpc":"2.0","id":27,"method":"tools/call"}`,
	`{"jsonrpc":"2.0","id":28,"method":"tools/call","params":null}`,
	`{"jsonrpc":"2.0","id":29,"method":"tools/call","params":{"name":"sql_query","arguments":{"n":123456789012345678901234567890}}}`,
	`{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"progressToken":"p-1"}}}`,
	`{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":5}}`,
	`{"jsonrpc":"2.0","id":32,"method":"tools/call","params":{"name":"sql_query","arguments":" {}"}}`,
	`{"jsonrpc":"2.0","ID":33,"Method":"tools/call","PARAMS":{"NAME":"sql_query","Arguments":{}}}`,
	`{"jsonrpc":"2.0","id":34,"id":35,"method":"tools/call","params":{"name":"nope","name":"sql_query","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":36,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}`,
	`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"sql_query","arguments":{}}}`,
	// A cancelled call: its tool reports progress once it runs (so the
	// cancel is not sent before), and the call is answered once the tool
	// sees the cancel.
	`{"jsonrpc":"2.0","id":46,"method":"tools/call","params":{"name":"blocks","arguments":{},"_meta":{"progressToken":46}}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":46}}`,
	`{"jsonrpc":"2.0","id":"s-47","method":"tools/call","params":{"name":"blocks","arguments":{},"_meta":{"progressToken":"s-47"}}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s-47","reason":"x"}}`,

	// tools/call in the 2026-07-28 era.
	`{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"2"},"io.modelcontextprotocol/logLevel":"info","progressToken":7}}}`,
	`{"jsonrpc":"2.0","id":51,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
	`{"jsonrpc":"2.0","id":52,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":53,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":5}}}`,
	`{"jsonrpc":"2.0","id":54,"method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":"x"}}}`,
	`{"jsonrpc":"2.0","id":55,"method":"tools/call","params":{"name":"fails","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":56,"method":"tools/call","params":{"name":"panics","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":57,"method":"tools/call","params":{"name":"hidden","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":58,"method":"tools/call","params":{"name":"nope","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":59,"method":"tools/call","params":{"name":"sql_query","arguments":[],"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":60,"method":"tools/call","params":{"name":"ask_form","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}}`,
	`{"jsonrpc":"2.0","id":61,"method":"tools/call","params":{"name":"ask_form","arguments":{},"requestState":"st","inputResponses":{"warden_approval":{"action":"accept","content":{"confirm":true}}},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}}`,
	`{"jsonrpc":"2.0","id":62,"method":"tools/call","params":{"name":"ask_form","arguments":{},"requestState":"st","inputResponses":{"warden_approval":{"action":"decline"}},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}}`,
	`{"jsonrpc":"2.0","id":63,"method":"tools/call","params":{"name":"ask_form","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":64,"method":"tools/call","params":{"name":"ask_url","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}`,
	`{"jsonrpc":"2.0","id":65,"method":"tools/call","params":{"name":"sql_query","arguments":{},"task":{"ttl":5},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","id":66,"method":"tools/call","params":{"name":"blocks","arguments":{},"_meta":{"progressToken":66,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":66}}`,
}

// warden's stdio loop answers every message as mcp-go's StdioServer does,
// byte for byte (the tools/call responses are built by warden).
func TestStdioAnswersAsMCPGo(t *testing.T) {
	lines := stdioCases

	caller := &warden.Caller{Subject: "bench@example.com"}
	base := func(ctx context.Context) context.Context {
		return warden.WithCaller(withTransport(ctx, "stdio"), caller)
	}

	// mcp-go's StdioServer keeps one session for the whole process; it
	// runs first, before anything here has initialized it.
	theirs := stdioExchange(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		s := directTestServer(t)
		std := server.NewStdioServer(s.mcp)
		std.SetErrorLogger(log.New(io.Discard, "", 0))
		std.SetContextFunc(base)
		return std.Listen(ctx, in, out)
	}, lines)
	// warden's loop with every message served by HandleMessage, and with
	// tools/call served directly where it can be (direct.go).
	for _, direct := range []bool{false, true} {
		ours := stdioExchange(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
			s := directTestServer(t)
			var d directFunc
			if direct {
				d = s.callTool
			}
			return serveStdio(ctx, s.mcp, in, out, base, stdioLimits{}, d)
		}, lines)
		// mcp-go's one session outlives its StdioServer, so only the first run
		// in a process sees it uninitialized; warden's session is the
		// connection's own.
		const before = `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"tools/list before initialize: this session has not been initialized; send initialize first"}}` + "\n"
		if ours[0] != before {
			t.Errorf("direct %v, before initialize: %q", direct, ours[0])
		}
		for i := range lines {
			if i == 0 {
				continue
			}
			if ours[i] != theirs[i] {
				t.Errorf("direct %v: %.120s\n warden: %.400q\n mcp-go: %.400q", direct, lines[i], ours[i], theirs[i])
			}
		}
		if !strings.Contains(ours[4], `row_count`) {
			t.Errorf("tools/call answered %.300q", ours[4])
		}
	}
}

// stdioOwnCases are messages that warden's stdio session answers unlike
// mcp-go's, which keeps no client capabilities (so never asks the user
// before 2026-07-28): warden's loop must answer them the same with and
// without direct calls. ownLegacy runs right after initialize, ownTail
// after stdioCases.
var (
	ownLegacy = []string{
		// Asking the user during a call: elicitation/create goes out, the
		// answer comes back (accepted, declined, refused), the call ends.
		`{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"action":"accept","content":{"confirm":true}}}`,
		`{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":2,"result":{"action":"decline"}}`,
		`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no <user>"}}`,
		`{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":4,"result":{"action":5}}`,
		`{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":"ask_url","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":45,"method":"tools/call","params":{"name":"ask_form","arguments":{},"requestState":"st","inputResponses":{"warden_approval":{"action":"accept","content":{"confirm":true}}}}}`,
	}
	ownTail = []string{
		// The session era again, after 2026-07-28 requests changed the
		// session's client capabilities, and with URL elicitation.
		`{"jsonrpc":"2.0","id":70,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":71,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":72,"method":"tools/call","params":{"name":"ask_url","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":73,"method":"tools/call","params":{"name":"ask_form","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":5,"result":{"action":"accept","content":{"confirm":true}}}`,
	}
)

// A tools/call served directly is answered byte for byte as HandleMessage
// answers it in warden's loop, in both protocol eras: results, refusals,
// errors and panics, questions put to the user during the call and their
// answers, cancellation.
func TestStdioDirectAnswersAsHandleMessage(t *testing.T) {
	// A 2026-07-28 client sends no initialize: its first call initializes
	// the session, then the session-era client below starts afresh.
	lines := []string{`{"jsonrpc":"2.0","id":"first","method":"tools/call","params":{"name":"sql_query","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"2"}}}}`}
	lines = append(lines, stdioCases[:4]...)
	lines = append(lines, ownLegacy...)
	lines = append(lines, stdioCases[4:]...)
	lines = append(lines, ownTail...)
	caller := &warden.Caller{Subject: "bench@example.com"}
	base := func(ctx context.Context) context.Context {
		return warden.WithCaller(withTransport(ctx, "stdio"), caller)
	}
	var served atomic.Int64
	run := func(direct bool) []string {
		return stdioExchange(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
			s := directTestServer(t)
			var d directFunc
			if direct {
				d = func(ctx context.Context, msg json.RawMessage, inflight *inflightCalls) (mcp.JSONRPCMessage, bool) {
					resp, ok := s.callTool(ctx, msg, inflight)
					if ok {
						served.Add(1)
					}
					return resp, ok
				}
			}
			return serveStdio(ctx, s.mcp, in, out, base, stdioLimits{}, d)
		}, lines)
	}
	handled, direct := run(false), run(true)
	if testing.Verbose() {
		for i := range lines {
			t.Logf("%.150s\n  => %.400s", lines[i], direct[i])
		}
	}
	for i := range lines {
		if direct[i] != handled[i] {
			t.Errorf("%.120s\n direct:        %.400q\n HandleMessage: %.400q", lines[i], direct[i], handled[i])
		}
	}
	if n := served.Load(); n < 30 {
		t.Errorf("%d calls were served directly", n)
	}
	t.Logf("%d calls were served directly", served.Load())
	// The exchange went as intended: the user was asked and answered.
	for _, want := range []string{`"method":"elicitation/create"`, `"code":-32042`, `{\"ok\":true}`, `"resultType":"input_required"`, `elicitation request failed: no \u003cuser\u003e`} {
		if !strings.Contains(strings.Join(direct, ""), want) {
			t.Errorf("no answer holds %s", want)
		}
	}
}

// TestStdioBoundsEachMessage: a line longer than the limit is never
// kept or parsed — the client is told it was too large, the refusal is
// recorded, and the messages after it are served as usual. Judged by what
// the client received and what was recorded.
func TestStdioBoundsEachMessage(t *testing.T) {
	const max = 4096
	for _, size := range []int{max + 1, 3 * max, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			// A tools/call whose arguments carry the padding: if any of it
			// were parsed, the call would run and the reply carry its id.
			pad := strings.Repeat("x", size)
			long := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sql_query","arguments":{"sql":"` + pad + `"}}}`
			ping := `{"jsonrpc":"2.0","id":8,"method":"ping"}`
			var refused []*warden.Error
			var mu sync.Mutex
			limits := stdioLimits{MaxLine: max, Refused: func(_ context.Context, e *warden.Error) {
				mu.Lock()
				refused = append(refused, e)
				mu.Unlock()
			}}
			s := benchServer(t, benchResult())
			in := strings.NewReader(long + "\n" + ping + "\n")
			var out bytes.Buffer
			ctx := context.Background()
			if err := serveStdio(ctx, s.mcp, in, &out, func(ctx context.Context) context.Context { return ctx }, limits, nil); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("replies: %q", out.String())
			}
			want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message too large: a message may be at most 4096 bytes (http.max_request_bytes); it was not read"}}`
			if lines[0] != want {
				t.Errorf("reply to the long line: %s", lines[0])
			}
			if !strings.Contains(lines[1], `"id":8`) || strings.Contains(lines[1], "error") {
				t.Errorf("the message after it was not served: %s", lines[1])
			}
			if strings.Contains(out.String(), `"id":7`) || strings.Contains(out.String(), "xxxx") {
				t.Errorf("something of the long line was parsed or echoed: %.300s", out.String())
			}
			if len(refused) != 1 || refused[0].Rule != "http.max_request_bytes" {
				t.Errorf("refusals recorded: %v", refused)
			}
		})
	}
	t.Run("AtTheLimit", func(t *testing.T) {
		// A message of exactly max bytes (newline included) is served.
		ping := `{"jsonrpc":"2.0","id":9,"method":"ping"}`
		ping += strings.Repeat(" ", max-len(ping)-1)
		s := benchServer(t, benchResult())
		var out bytes.Buffer
		err := serveStdio(context.Background(), s.mcp, strings.NewReader(ping+"\n"), &out,
			func(ctx context.Context) context.Context { return ctx }, stdioLimits{MaxLine: max}, nil)
		if err != nil || !strings.Contains(out.String(), `"id":9`) || strings.Contains(out.String(), "error") {
			t.Fatalf("err %v, reply %q", err, out.String())
		}
	})
}
