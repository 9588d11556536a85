package mcp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"testing"

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
	out := bufio.NewReaderSize(outR, 1<<20)
	var answers []string
	for i, line := range lines {
		line, silent := strings.CutPrefix(line, "silent:")
		if !silent {
			if _, err := io.WriteString(inW, line+"\n"); err != nil {
				t.Fatal(err)
			}
			l, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			answers = append(answers, l)
			continue
		}
		ping := fmt.Sprintf(`{"jsonrpc":"2.0","id":"sync-%d","method":"ping"}`, i)
		if _, err := io.WriteString(inW, line+"\n"+ping+"\n"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
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

// warden's stdio loop answers every message as mcp-go's StdioServer does,
// byte for byte (the tools/call responses are built by warden).
func TestStdioAnswersAsMCPGo(t *testing.T) {
	lines := []string{
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
	}
	caller := &warden.Caller{Subject: "bench@example.com"}
	base := func(ctx context.Context) context.Context {
		return warden.WithCaller(withTransport(ctx, "stdio"), caller)
	}

	// mcp-go's StdioServer keeps one session for the whole process; it
	// runs first, before anything here has initialized it.
	theirs := stdioExchange(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		s := benchServer(t, benchResult())
		std := server.NewStdioServer(s.mcp)
		std.SetErrorLogger(log.New(io.Discard, "", 0))
		std.SetContextFunc(base)
		return std.Listen(ctx, in, out)
	}, lines)
	ours := stdioExchange(t, func(ctx context.Context, in io.Reader, out io.Writer) error {
		s := benchServer(t, benchResult())
		return serveStdio(ctx, s.mcp, in, out, base, stdioLimits{})
	}, lines)
	// mcp-go's one session outlives its StdioServer, so only the first run
	// in a process sees it uninitialized; warden's session is the
	// connection's own.
	const before = `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"tools/list before initialize: this session has not been initialized; send initialize first"}}` + "\n"
	if ours[0] != before {
		t.Errorf("before initialize: %q", ours[0])
	}
	for i := range lines {
		if i == 0 {
			continue
		}
		if ours[i] != theirs[i] {
			t.Errorf("%.120s\n warden: %.400q\n mcp-go: %.400q", lines[i], ours[i], theirs[i])
		}
	}
	if !strings.Contains(ours[4], `row_count`) {
		t.Errorf("tools/call answered %.300q", ours[4])
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
			if err := serveStdio(ctx, s.mcp, in, &out, func(ctx context.Context) context.Context { return ctx }, limits); err != nil {
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
			func(ctx context.Context) context.Context { return ctx }, stdioLimits{MaxLine: max})
		if err != nil || !strings.Contains(out.String(), `"id":9`) || strings.Contains(out.String(), "error") {
			t.Fatalf("err %v, reply %q", err, out.String())
		}
	})
}
