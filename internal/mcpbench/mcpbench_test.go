package mcpbench_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// The query and table of tools/sql's BenchmarkSelect100Rows: 100 rows of
// integer, text, numeric(10,2), timestamptz and boolean.
const (
	benchSetup = `
CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2), added timestamptz, active boolean);
INSERT INTO items SELECT i, 'item ' || i, i * 1.25, timestamptz '2025-01-01' + i * interval '1 hour', i % 2 = 0
FROM generate_series(1, 100) i;`
	benchQuery = "SELECT id, name, price, added, active FROM items ORDER BY id"
	// concurrency is the number of clients of the c=8 runs, each with its
	// own session, each calling in a loop.
	concurrency = 8
)

// BenchmarkMCP measures, in one run against one database, a 100-row
// SELECT as an agent sees it: through the official Go SDK client, over
// stdio and streamable HTTP, from
//
//   - pgx: the query run in process (pool.Query + rows.Values), no MCP;
//   - floor-text: a do-nothing MCP server (official Go SDK) that returns
//     warden's exact result text for this query as one text block;
//   - floor-structured: the same, with the text also sent as
//     structuredContent;
//   - floor-query: floor-text that also runs the query on every call
//     (pgx, raw rows, nothing converted): the least a server that really
//     runs it can cost;
//   - warden: the real binary (cmd/warden) with its recording, default
//     config (text block and structuredContent);
//   - warden-text: the same with results.structured_content: false.
//
// Sub-benchmarks are KIND/SERVER, KIND one of stdio, http (one client,
// calls one after the other) and http-c8 (eight clients, each with its
// own session, calling in a loop). Metrics: p50-µs, calls/s (c=8),
// server-cpu-µs/call (user plus system time of the server process over
// the measured calls, from /proc/PID/stat in 10 ms ticks),
// client-cpu-µs/call (this process's, at c=1: the Go SDK client), rss-MB (the
// server's resident set after the c=8 calls; rss-anon-MB and rss-file-MB
// its anonymous and file-backed parts) and x-floor-text,
// x-floor-structured, x-floor-query (p50, or the reciprocal of calls/s, against that
// floor in the same round). MCPBENCH_ROUNDS (default 3) sets the rounds
// and MCPBENCH_PROTOCOL the protocol version the client asks for. Every
// server of a round must end up speaking the version the first one did
// (for a 2026-07-28 client the floors serve HTTP statelessly: see
// floor's -stateless), or the benchmark stops: a ratio across protocol
// eras measures the eras.
// MCPBENCH_BASE names another checkout of warden (a directory): its
// cmd/warden is built too and run, as base-warden and base-warden-text,
// just before warden and warden-text in every round, with x-base their
// figure's ratio — before and after a change measured in one window. Run
// with a fixed count of calls (make bench-mcp: -benchtime 300x); timings
// are never asserted.
func BenchmarkMCP(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads server CPU and memory from /proc")
	}
	bins := buildBinaries(b)
	dsn := pgtest.New(b, benchSetup)
	dir := b.TempDir()
	config := wardenConfig(b, dir, "")
	textConfig := wardenConfig(b, dir, "results: {structured_content: false}\n")
	env := append(os.Environ(), "BENCH_DSN="+dsn)

	// The floor returns warden's exact text: take it from a real call.
	textFile := filepath.Join(dir, "result.json")
	{
		srv := startServer(b, "warden-sample", env, "", bins.warden, "serve", "--config", config)
		text := callOnce(b, srv.session)
		srv.close()
		if err := os.WriteFile(textFile, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		b.Logf("result text: %d bytes", len(text))
	}

	// A floor and warden must speak the protocol version the client asks
	// for, or they are measured in two eras (see floor's -stateless).
	floorListen := []string{"-listen", "127.0.0.1:0"}
	if modernClient() {
		floorListen = append(floorListen, "-stateless")
	}
	servers := []struct {
		name string
		bin  string
		args []string
		// listen is the flag that makes the server listen on HTTP.
		listen []string
	}{
		{"floor-text", bins.floor, []string{"-text", textFile}, floorListen},
		{"floor-structured", bins.floor, []string{"-text", textFile, "-structured"}, floorListen},
		{"floor-query", bins.floor, []string{"-text", textFile, "-query", benchQuery}, floorListen},
		{"warden", bins.warden, []string{"serve", "--config", config}, []string{"--transport", "http", "--listen", "127.0.0.1:0"}},
		{"warden-text", bins.warden, []string{"serve", "--config", textConfig}, []string{"--transport", "http", "--listen", "127.0.0.1:0"}},
	}
	if bins.base != "" {
		for i := len(servers) - 1; i >= 0; i-- {
			if s := servers[i]; strings.HasPrefix(s.name, "warden") {
				s.name, s.bin = "base-"+s.name, bins.base
				servers = slices.Insert(servers, i, s)
			}
		}
	}

	// Each round runs every server back to back, per kind of measurement,
	// so that a ratio compares figures taken within seconds of each other:
	// on a shared machine the load moves more between minutes than the
	// servers differ.
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("MCPBENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	kinds := []struct {
		name    string
		http    bool
		measure func(*testing.B, *server) float64
	}{
		{"stdio", false, benchSequential},
		{"http", true, benchSequential},
		// Higher is better: the reciprocal makes a ratio above 1 slower
		// than the floor here too.
		{"http-c8", true, func(b *testing.B, srv *server) float64 { return 1 / benchConcurrent(b, srv) }},
	}
	for _, k := range kinds {
		for range rounds {
			b.Run(k.name+"/pgx", func(b *testing.B) { benchPGX(b, dsn) })
			floors := map[string]float64{}
			spoke := ""
			for _, s := range servers {
				b.Run(k.name+"/"+s.name, func(b *testing.B) {
					args := s.args
					transport := ""
					if k.http {
						args, transport = append(slices.Clone(s.args), s.listen...), "http"
					}
					srv := startServer(b, s.name, env, transport, s.bin, args...)
					defer srv.close()
					v := srv.session.InitializeResult().ProtocolVersion
					if spoke == "" {
						spoke = v
						b.Logf("protocol %s", v)
					} else if v != spoke {
						b.Fatalf("%s spoke protocol %s, the servers before it %s: the ratios would compare two protocol eras", s.name, v, spoke)
					}
					ratios(b, floors, s.name, k.measure(b, srv))
				})
			}
		}
	}
}

// ratios records a floor's (or a base warden's) figure, and reports the
// other servers' against both floors of the same round, and a warden's
// against the base warden's run just before it.
func ratios(b *testing.B, floors map[string]float64, name string, v float64) {
	if strings.HasPrefix(name, "floor") {
		floors[name] = v
		return
	}
	if strings.HasPrefix(name, "base-") {
		floors[name] = v
	} else if bv := floors["base-"+name]; bv > 0 && v > 0 {
		b.ReportMetric(v/bv, "x-base")
	}
	for _, f := range []string{"floor-text", "floor-structured", "floor-query"} {
		if fv := floors[f]; fv > 0 && v > 0 {
			b.ReportMetric(v/fv, "x-"+f)
		}
	}
}

func benchPGX(b *testing.B, dsn string) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	run := func() {
		rows, err := pool.Query(ctx, benchQuery)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if rows.Err() != nil || n != 100 {
			b.Fatalf("rows = %d, err %v", n, rows.Err())
		}
	}
	run()
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		run()
		durations = append(durations, time.Since(start))
	}
	b.ReportMetric(p50(durations), "p50-µs")
}

// benchSequential makes b.N calls one after the other on one session and
// returns the p50 in µs.
func benchSequential(b *testing.B, srv *server) float64 {
	for range 20 { // warm caches and connections
		callOnce(b, srv.session)
	}
	cpu0, client0 := srv.cpu(b), clientCPU()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		callOnce(b, srv.session)
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64((srv.cpu(b)-cpu0).Microseconds())/float64(b.N), "server-cpu-µs/call")
	b.ReportMetric(float64((clientCPU()-client0).Microseconds())/float64(b.N), "client-cpu-µs/call")
	v := p50(durations)
	b.ReportMetric(v, "p50-µs")
	return v
}

// benchConcurrent makes b.N calls from concurrency clients, each on its own
// session, and returns the calls per second.
func benchConcurrent(b *testing.B, srv *server) float64 {
	sessions := []*mcp.ClientSession{srv.session}
	for len(sessions) < concurrency {
		s := connectHTTP(b, srv.base)
		defer s.Close()
		sessions = append(sessions, s)
	}
	warm(b, sessions)
	cpu0 := srv.cpu(b)
	perSec, _ := loop(b, sessions)
	b.ReportMetric(float64((srv.cpu(b)-cpu0).Microseconds())/float64(b.N), "server-cpu-µs/call")
	srv.rss(b)
	return perSec
}

func p50(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds()) / 1e3
}

// call runs the benchmark query through a tools/call and checks that a
// result of the expected size came back.
func call(s *mcp.ClientSession) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "sql_query", Arguments: map[string]any{"database": "shop", "sql": benchQuery}})
	if err != nil {
		return "", err
	}
	var text strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text.WriteString(t.Text)
		}
	}
	if res.IsError || !strings.Contains(text.String(), `"row_count":100`) {
		return "", fmt.Errorf("unexpected result (isError %v): %.300s", res.IsError, text.String())
	}
	return text.String(), nil
}

func callOnce(b *testing.B, s *mcp.ClientSession) string {
	b.Helper()
	text, err := call(s)
	if err != nil {
		b.Fatal(err)
	}
	return text
}

// binaries are the servers BenchmarkMCP runs: warden from this tree, the
// floor, and warden from MCPBENCH_BASE's tree if it is set.
type binaries struct{ warden, floor, base string }

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
)

// buildBinaries builds warden and the floor server once per test binary,
// and drops them from the page cache: a server's resident set is measured
// as a deployed binary's, read from disk (dropPageCache).
func buildBinaries(b testing.TB) binaries {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpbench-")
		if err != nil {
			buildErr = err
			return
		}
		built = binaries{warden: filepath.Join(dir, "warden"), floor: filepath.Join(dir, "floor")}
		builds := map[string]string{"../../cmd/warden": built.warden, "./floor": built.floor}
		// MCPBENCH_WARDEN runs that warden binary instead of building
		// this tree's, so that two builds can be run in turn by one
		// test binary.
		if w := os.Getenv("MCPBENCH_WARDEN"); w != "" {
			built.warden = w
			delete(builds, "../../cmd/warden")
		}
		base := os.Getenv("MCPBENCH_BASE")
		if base != "" {
			built.base = filepath.Join(dir, "base-warden")
			builds["./cmd/warden"] = built.base
		}
		for pkg, out := range builds {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			if out == built.base {
				cmd.Dir = base
			}
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
				return
			}
			if err := dropPageCache(out); err != nil {
				buildErr = fmt.Errorf("dropping %s from the page cache: %v", out, err)
				return
			}
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return built
}

// wardenConfig grants the local identity select on items; the recording
// goes to a SQLite store in dir. extra is appended to the config.
func wardenConfig(b *testing.B, dir, extra string) string {
	name := fmt.Sprintf("warden-%d", len(extra))
	return writeConfig(b, filepath.Join(dir, name+".yaml"), filepath.Join(dir, name+".db"), extra)
}

// writeConfig writes to path a config granting the local identity select
// on items, recording to the SQLite store at store, with extra added.
func writeConfig(b *testing.B, path, store, extra string) string {
	if !strings.HasPrefix(store, "{") {
		store = "sqlite:" + store
	}
	cfg := extra + `
store: ` + store + `
identity:
  local: {subject: bench@example.com, groups: [analysts]}
  allow_unauthenticated_loopback: true
backends:
  shop: {kind: postgres, dsn: "${BENCH_DSN}"}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.items], actions: [select]}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// server is a server process under measurement and the first client
// session connected to it.
type server struct {
	cmd     *exec.Cmd
	base    string // http://HOST:PORT for HTTP servers
	session *mcp.ClientSession
	exited  chan struct{}
}

var listening = regexp.MustCompile(`listening.*addr=(\S+)`)

// startServer starts bin with args and connects the official Go SDK client
// over stdio (transport "") or streamable HTTP ("http").
func startServer(b *testing.B, name string, env []string, transport, bin string, args ...string) *server {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	srv := &server{cmd: cmd, exited: make(chan struct{})}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpbench", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if transport == "" {
		cmd.Stderr = os.Stderr
		s, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, sessionOptions())
		if err != nil {
			b.Fatalf("%s over stdio: %v", name, err)
		}
		srv.session = s // closing it closes stdin and waits for the process
		return srv
	}
	srv.base = startHTTP(b, name, cmd, srv.exited)
	srv.session = connectHTTP(b, srv.base)
	return srv
}

// startHTTP starts cmd, a server that prints where it listens on stderr
// ("listening addr=HOST:PORT"), and returns its base URL once it listens;
// exited is closed when the process has exited.
func startHTTP(tb testing.TB, name string, cmd *exec.Cmd, exited chan struct{}) string {
	tb.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-exited:
		tb.Fatalf("%s exited before listening", name)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		tb.Fatalf("%s did not listen within 60s", name)
	}
	return ""
}

// modernClient reports whether the client asks for 2026-07-28 or later:
// MCPBENCH_PROTOCOL's version, or the SDK's latest when it is unset.
func modernClient() bool {
	v := os.Getenv("MCPBENCH_PROTOCOL")
	return v == "" || v >= "2026-07-28"
}

// sessionOptions asks for the protocol version in MCPBENCH_PROTOCOL
// (default: the SDK's latest, 2026-07-28 for v1.8.0).
func sessionOptions() *mcp.ClientSessionOptions {
	return &mcp.ClientSessionOptions{ProtocolVersion: os.Getenv("MCPBENCH_PROTOCOL")}
}

func connectHTTP(b *testing.B, base string) *mcp.ClientSession {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpbench", Version: "1"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", DisableStandaloneSSE: true}, sessionOptions())
	if err != nil {
		b.Fatalf("connect %s: %v", base, err)
	}
	return s
}

// close ends the session and stops the process: over stdio closing the
// session ends it; over HTTP SIGINT does, or kill.
func (s *server) close() {
	_ = s.session.Close()
	if s.base == "" {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// cpu is the user plus system time the server process has used
// (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms).
func (s *server) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// clientCPU is the CPU time this process (the client) has used, all
// threads.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss reports the server's resident set: rss-MB (VmRSS), and its two
// parts, rss-anon-MB (RssAnon: the heap, stacks, SQLite's and the SQL
// parser's allocations — what the process itself allocated) and
// rss-file-MB (RssFile: pages of the binary and other mapped files, page
// cache every process running the same binary shares).
func (s *server) rss(b *testing.B) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := map[string]string{"VmRSS:": "rss-MB", "RssAnon:": "rss-anon-MB", "RssFile:": "rss-file-MB"}
	found := 0
	for _, line := range strings.Split(string(raw), "\n") {
		for prefix, unit := range fields {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				b.ReportMetric(kb/1024, unit)
				found++
			}
		}
	}
	if found != len(fields) {
		b.Fatal("no VmRSS, RssAnon or RssFile in /proc status")
	}
}
