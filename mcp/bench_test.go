package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

// The MCP layer alone, in process: what warden adds around the pipeline
// to decode a tools/call and encode its result. The tool returns a fixed
// result shaped like sql_query's for internal/mcpbench's 100-row SELECT,
// and recording is a no-op, so the figures are the transport's own
// (internal/mcpbench measures the whole server). docs/BENCHMARKS.md
// records them; timings are never asserted.

// benchResult is sql_query's result for 100 rows of (integer, text,
// numeric, timestamptz, boolean), as the tool encodes it.
func benchResult() []byte {
	var b strings.Builder
	b.WriteString(`{"columns":[{"name":"id","type":"integer","masked":false},{"name":"name","type":"text","masked":false},{"name":"price","type":"numeric","masked":false},{"name":"added","type":"timestamp with time zone","masked":false},{"name":"active","type":"boolean","masked":false}],"rows":[`)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 100; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `[%d,"item %d",%s,"%s",%t]`, i, i, strconv.FormatFloat(float64(i)*1.25, 'f', 2, 64),
			start.Add(time.Duration(i)*time.Hour).Format(time.RFC3339), i%2 == 0)
	}
	b.WriteString(`],"row_count":100,"truncated":false,"command":"SELECT 100","call_id":"c-0123456789abcdef"}`)
	return []byte(b.String())
}

type fixedTool struct{ body []byte }

func (t fixedTool) Spec() warden.ToolSpec {
	return warden.ToolSpec{Name: "sql_query", BackendKind: "postgres", BackendArg: "database", ReadOnly: true,
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{"database": map[string]any{"type": "string"}, "sql": map[string]any{"type": "string"}}}}
}

func (t fixedTool) Plan(context.Context, json.RawMessage) (*warden.Action, error) {
	return &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select"}, nil
}

func (t fixedTool) Execute(context.Context, *warden.Action) (*warden.Result, error) {
	return &warden.Result{JSON: t.body, Count: 100}, nil
}

type allowAll struct{}

func (allowAll) Authorize(*warden.Caller, *warden.Action) *warden.Decision {
	return &warden.Decision{Effect: warden.Allow, Rule: "bench"}
}
func (allowAll) Backends(*warden.Caller, string) []string { return []string{"shop"} }

type nopRecorder struct{}

func (nopRecorder) StartCall(context.Context, *warden.Call) error        { return nil }
func (nopRecorder) FinishCall(context.Context, *warden.Call) error       { return nil }
func (nopRecorder) StartSession(context.Context, *warden.Session) error  { return nil }
func (nopRecorder) UpdateSession(context.Context, *warden.Session) error { return nil }
func (nopRecorder) EndSession(context.Context, string, time.Time) error  { return nil }

func benchServer(b testing.TB, body []byte) *Server {
	reg, err := warden.NewRegistry(fixedTool{body: body})
	if err != nil {
		b.Fatal(err)
	}
	seq := 0
	p := &warden.Pipeline{Tools: reg, Policy: allowAll{}, Recorder: nopRecorder{}, Clock: time.Now,
		NewID: func() string { seq++; return "c-bench-" + strconv.Itoa(seq) }}
	return New(Options{Pipeline: p, Policy: allowAll{}, Sessions: nopRecorder{},
		Identity: &IdentityConfig{Local: &LocalIdentity{Subject: "bench@example.com"}}})
}

const benchCall = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"sql_query","arguments":{"database":"shop","sql":"SELECT id, name, price, added, active FROM items ORDER BY id"}}}` + "\n"

// BenchmarkToolsCall serves stdio in process: each iteration writes one
// tools/call line and reads the response line, so it counts everything
// warden and mcp-go do per call around the (fixed) tool, allocations
// included.
func BenchmarkToolsCall(b *testing.B) {
	off := false
	b.Run("text+structured", func(b *testing.B) { benchToolsCall(b, nil, benchCall) })
	b.Run("text", func(b *testing.B) { benchToolsCall(b, &ResultsConfig{StructuredContent: &off}, benchCall) })
	// As a 2026-07-28 client sends it (the official Go SDK's client in
	// internal/mcpbench): the protocol version, capabilities and client in
	// every request's _meta.
	b.Run("text/2026-07-28", func(b *testing.B) { benchToolsCall(b, &ResultsConfig{StructuredContent: &off}, benchCallModern) })
}

const benchCallModern = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"mcpbench","version":"v1.0.0"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"name":"sql_query","arguments":{"database":"shop","sql":"SELECT id, name, price, added, active FROM items ORDER BY id"}}}` + "\n"

func benchToolsCall(b *testing.B, results *ResultsConfig, call string) {
	s := benchServer(b, benchResult())
	s.opts.Results = results
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeStdio(ctx, inR, outW, "") }()
	defer func() { cancel(); inW.Close(); <-done }()
	out := bufio.NewReaderSize(outR, 64<<10)
	send := func(line string) {
		if _, err := io.WriteString(inW, line); err != nil {
			b.Fatal(err)
		}
	}
	read := func() []byte {
		line, err := out.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		return line
	}
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}` + "\n")
	read()
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	send(fmt.Sprintf(call, 1))
	if first := read(); !strings.Contains(string(first), `row_count`) || strings.Contains(string(first), `"isError":true`) {
		b.Fatalf("unexpected response: %.300s", first)
	}
	timeCalls(b, func(i int) {
		send(fmt.Sprintf(call, i+2))
		read()
	})
}

// BenchmarkEncodeResult is the response half alone as mcp-go encodes it:
// the pipeline's outcome to the bytes of the JSON-RPC response, through
// mcp-go's json.Marshal (what its StdioServer wrote, and the baseline of
// BenchmarkAppendToolResponse, warden's own encoding, which the stdio loop
// now uses).
func BenchmarkEncodeResult(b *testing.B) {
	encode := func(resp mcp.JSONRPCMessage) error {
		_, err := json.Marshal(resp)
		return err
	}
	b.Run("text+structured", func(b *testing.B) { benchEncodeResult(b, true, encode) })
	b.Run("text", func(b *testing.B) { benchEncodeResult(b, false, encode) })
}

// benchEncodeResult measures encode over the JSON-RPC response holding the
// benchmark's result (with or without structured content).
func benchEncodeResult(b *testing.B, structured bool, encode func(mcp.JSONRPCMessage) error) {
	body := benchResult()
	call := &warden.Call{ID: "c-1", Result: &warden.Result{JSON: body, Count: 100}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	cpu := startCPU()
	for i := range b.N {
		res := toolResult(call, nil)
		if !structured {
			res.StructuredContent = nil
		}
		if err := encode(mcp.NewJSONRPCResultResponse(mcp.NewRequestId(i), res)); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuClock reads the process's CPU time (user + system, all threads), the
// steadier figure on a shared machine where wall-clock time swings with
// other work.
type cpuClock struct{ start time.Duration }

// timeCalls runs call b.N times (i from 0), after the calls the benchmark
// made to set up, and reports the process's CPU and the p50 per call.
func timeCalls(b *testing.B, call func(i int)) {
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		start := time.Now()
		call(i)
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	cpu.report(b)
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds())/1e3, "p50-µs")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-c.start).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkToolsCallHTTP is BenchmarkToolsCall over streamable HTTP on
// loopback: warden's edge, authentication and session checks, and mcp-go's
// streamable HTTP server, with a plain HTTP client.
func BenchmarkToolsCallHTTP(b *testing.B) {
	off := false
	b.Run("text+structured", func(b *testing.B) { benchToolsCallHTTP(b, nil) })
	b.Run("text", func(b *testing.B) { benchToolsCallHTTP(b, &ResultsConfig{StructuredContent: &off}) })
	// As the official Go SDK's client sends a call at 2026-07-28: no
	// session, the version in a header and in _meta. Served directly
	// (direct.go), and through mcp-go for comparison.
	b.Run("text/2026-07-28", func(b *testing.B) {
		benchToolsCallHTTPModern(b, &ResultsConfig{StructuredContent: &off}, true)
	})
	b.Run("text/2026-07-28/mcp-go", func(b *testing.B) {
		benchToolsCallHTTPModern(b, &ResultsConfig{StructuredContent: &off}, false)
	})
}

// serveBenchHTTP serves s's streamable HTTP transport on a loopback port
// until the benchmark ends and returns its MCP endpoint.
func serveBenchHTTP(b *testing.B, s *Server) string {
	h, shutdown, err := s.HTTPHandler("http")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = shutdown(context.Background()); _ = hs.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func benchToolsCallHTTPModern(b *testing.B, results *ResultsConfig, direct bool) {
	s := benchServer(b, benchResult())
	s.opts.Results = results
	s.httpDirect = direct
	s.opts.Identity.AllowUnauthenticatedLoopback = true
	url := serveBenchHTTP(b, s)
	client := &http.Client{}
	post := func(id int) []byte {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(benchCallModern, id)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", "sql_query")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	if first := post(1); !strings.Contains(string(first), `row_count`) || strings.Contains(string(first), `"isError":true`) {
		b.Fatalf("unexpected response: %.300s", first)
	}
	if got := s.httpDirectCalls.Load(); got != map[bool]int64{true: 1, false: 0}[direct] {
		b.Fatalf("%d calls served directly", got)
	}
	timeCalls(b, func(i int) {
		post(i + 2)
	})
}

func benchToolsCallHTTP(b *testing.B, results *ResultsConfig) {
	s := benchServer(b, benchResult())
	s.opts.Results = results
	s.opts.Identity.AllowUnauthenticatedLoopback = true
	url := serveBenchHTTP(b, s)
	client := &http.Client{}
	session := ""
	post := func(body string) []byte {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
			session = id
		}
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if first := post(fmt.Sprintf(benchCall, 1)); !strings.Contains(string(first), `row_count`) || strings.Contains(string(first), `"isError":true`) {
		b.Fatalf("unexpected response: %.300s", first)
	}
	timeCalls(b, func(i int) {
		post(fmt.Sprintf(benchCall, i+2))
	})
}
