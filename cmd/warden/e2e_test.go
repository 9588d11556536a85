package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
)

// wardenBin is the warden wardenBin under test, built once by TestMain.
var wardenBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warden-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wardenBin = filepath.Join(dir, "warden")
	args := []string{"build", "-o", wardenBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building warden:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const e2eSchema = `
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, total numeric(10,2), status text);
CREATE TABLE payroll (employee text PRIMARY KEY, salary numeric(10,2));
CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 12) i;
INSERT INTO orders SELECT i, 1 + i % 12, i * 10.5, CASE WHEN i % 3 = 0 THEN 'refunded' ELSE 'paid' END FROM generate_series(1, 30) i;
INSERT INTO payroll VALUES ('ada', 100000);
`

// e2eConfig is the config under test: analysts may read orders and
// customers and insert notes; nothing else.
func e2eConfig(t *testing.T, dsn, timeout string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
  allow_unauthenticated_loopback: true
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: %s, max_rows: 5}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders, public.customers], actions: [select]}
      - {backend: shop, tables: [public.notes], actions: [insert, select]}
`, timeout)
	path := filepath.Join(dir, "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	return path
}

// startStdio starts `warden serve` over stdio and connects a client
// speaking the given protocol version.
func startStdio(t *testing.T, config, version string) *client.Client {
	t.Helper()
	tr := transport.NewStdio(wardenBin, []string{"E2E_DSN=" + os.Getenv("E2E_DSN")}, "serve", "--config", config)
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion(version))
	t.Cleanup(func() { c.Close() })
	initialize(t, c, version)
	return c
}

// server is a `warden serve` process on an HTTP transport that the test
// controls.
type server struct {
	cmd    *exec.Cmd
	base   string
	exited chan error
}

// launchServer starts `warden serve` on a free loopback port and waits until
// it listens. The test stops it; a cleanup kills it if the test did not.
func launchServer(t *testing.T, config, transportName string) *server {
	t.Helper()
	cmd := exec.Command(wardenBin, "serve", "--config", config, "--transport", transportName, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-s.exited:
		t.Fatalf("warden exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("warden did not start listening within 30s")
	}
	return s
}

// stop sends SIGINT and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("warden did not shut down cleanly: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("warden did not stop within 15s of SIGINT")
	}
}

// startServer runs `warden serve` on an HTTP transport and returns its base
// URL; the process is stopped with SIGINT when the test ends.
func startServer(t *testing.T, config, transportName string) string {
	t.Helper()
	s := launchServer(t, config, transportName)
	t.Cleanup(func() { s.stop(t) })
	return s.base
}

// startHTTP starts `warden serve` on an HTTP transport and connects a
// client without a token.
func startHTTP(t *testing.T, config, transportName, version string) *client.Client {
	t.Helper()
	return connect(t, startServer(t, config, transportName), transportName, &tokenSource{}, version)
}

// tokenSource is the bearer token a client sends, which the test can
// change mid-session; empty sends none.
type tokenSource struct {
	mu    sync.Mutex
	token string
}

func (s *tokenSource) set(tok string) { s.mu.Lock(); s.token = tok; s.mu.Unlock() }

func (s *tokenSource) header(context.Context) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + s.token}
}

// connect connects a client to a running server over streamable HTTP or
// SSE, sending src's token.
func connect(t *testing.T, base, transportName string, src *tokenSource, version string) *client.Client {
	t.Helper()
	var tr transport.Interface
	var err error
	if transportName == "sse" {
		tr, err = transport.NewSSE(base+"/sse", transport.WithHeaderFunc(src.header))
	} else {
		tr, err = transport.NewStreamableHTTP(base+"/mcp", transport.WithHTTPHeaderFunc(src.header))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion(version))
	t.Cleanup(func() { c.Close() })
	initialize(t, c, version)
	return c
}

var listening = regexp.MustCompile(`warden listening.*addr=(\S+)`)

func initialize(t *testing.T, c *client.Client, version string) {
	t.Helper()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "e2e-agent", Version: "1.0"}
	req.Params.ProtocolVersion = version
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize (%s): %v", version, err)
	}
	if res.ProtocolVersion != version {
		t.Fatalf("negotiated protocol %s; want %s", res.ProtocolVersion, version)
	}
}

// result is a tool result as an agent reads it.
type result struct {
	IsError bool
	Text    string
	Body    map[string]any
}

func call(t *testing.T, c *client.Client, tool string, args map[string]any) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s(%v): protocol error %v", tool, args, err)
	}
	r := result{IsError: res.IsError}
	for _, content := range res.Content {
		if tc, ok := content.(mcp.TextContent); ok {
			r.Text += tc.Text
		}
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &r.Body); err != nil {
		t.Fatalf("%s: structured content is not an object: %s", tool, b)
	}
	return r
}

func (r result) callID() string { id, _ := r.Body["call_id"].(string); return id }

func (r result) rows() []any { rows, _ := r.Body["rows"].([]any); return rows }

// expectation is what the recording must say about one call.
type expectation struct {
	id, outcome, effect string
}

func TestServeGovernsSQLEndToEnd(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	versions := []string{mcp.ProtocolVersion20250618, mcp.ProtocolVersion20251125, mcp.ProtocolVersion20260728}
	type transportCase struct {
		name    string
		connect func(t *testing.T, config, version string) *client.Client
		skip    func(version string) bool
	}
	transports := []transportCase{
		{"stdio", startStdio, func(string) bool { return false }},
		{"http", func(t *testing.T, config, version string) *client.Client {
			return startHTTP(t, config, "http", version)
		}, func(string) bool { return false }},
		// SSE is the pre-2025-03-26 transport: only session-era clients use it.
		{"sse", func(t *testing.T, config, version string) *client.Client { return startHTTP(t, config, "sse", version) },
			func(v string) bool { return v != mcp.ProtocolVersion20250618 }},
	}
	for _, tr := range transports {
		for _, version := range versions {
			if tr.skip(version) {
				continue
			}
			t.Run(tr.name+"/"+version, func(t *testing.T) {
				config := e2eConfig(t, dsn, "1s")
				// Cleanups run last-in first-out: the recording is checked
				// after the client has closed and warden has stopped.
				var expect []expectation
				t.Cleanup(func() { checkRecording(t, config, expect, version) })
				c := tr.connect(t, config, version)
				expect = exerciseSQL(t, c, dsn)
			})
		}
	}
}

// exerciseSQL runs the scenarios every transport and protocol must get
// right, and returns what the recording must hold.
func exerciseSQL(t *testing.T, c *client.Client, dsn string) []expectation {
	var expect []expectation
	record := func(r result, outcome, effect string) {
		if r.callID() == "" {
			t.Errorf("result has no call_id: %s", r.Text)
		}
		expect = append(expect, expectation{r.callID(), outcome, effect})
	}

	t.Run("ListsOnlyGrantedToolsWithBackendEnum", func(t *testing.T) {
		res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
			var schema struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			}
			raw, _ := json.Marshal(tool.InputSchema)
			if len(tool.RawInputSchema) > 0 {
				raw = tool.RawInputSchema
			}
			_ = json.Unmarshal(raw, &schema)
			if got := schema.Properties["database"].Enum; !slices.Equal(got, []string{"shop"}) {
				t.Errorf("%s database enum = %v; want [shop]", tool.Name, got)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"sql_query", "sql_schema"}) {
			t.Errorf("tools = %v; want [sql_query sql_schema]", names)
		}
	})

	t.Run("AllowsGrantedSelect", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "purpose": "e2e",
			"sql": "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id <= 2 ORDER BY o.id"})
		if r.IsError {
			t.Fatalf("allowed select refused: %s", r.Text)
		}
		rows := r.rows()
		if len(rows) != 2 || fmt.Sprint(rows[0]) != "[1 10.5 c2@example.com]" {
			t.Errorf("rows = %v; want [[1 10.5 c2@example.com] ...]", rows)
		}
		cols, _ := r.Body["columns"].([]any)
		if len(cols) != 3 || cols[1].(map[string]any)["type"] != "numeric" {
			t.Errorf("columns = %v; want id, total (numeric), email", cols)
		}
		record(r, "ok", "allow")
	})

	t.Run("DescribesGrantedTablesOnly", func(t *testing.T) {
		r := call(t, c, "sql_schema", map[string]any{"database": "shop"})
		if r.IsError {
			t.Fatalf("sql_schema refused: %s", r.Text)
		}
		var names []string
		for _, tbl := range r.Body["tables"].([]any) {
			names = append(names, tbl.(map[string]any)["name"].(string))
		}
		if !slices.Equal(names, []string{"customers", "notes", "orders"}) {
			t.Errorf("sql_schema tables = %v; want [customers notes orders] (never payroll)", names)
		}
		record(r, "ok", "allow")
	})

	t.Run("DeniesUngrantedTable", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll"})
		if !r.IsError || !strings.Contains(r.Text, "select public.payroll") || !strings.Contains(r.Text, "Rule: default-deny") ||
			!strings.Contains(r.Text, "select on public.orders, public.customers") {
			t.Errorf("payroll read = %v %q; want a denial naming the table, the rule and what is allowed", r.IsError, r.Text)
		}
		record(r, "denied", "deny")
	})

	t.Run("DeniesWrite", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "DELETE FROM orders"})
		if !r.IsError || !strings.Contains(r.Text, "delete public.orders") {
			t.Errorf("delete = %v %q; want a denial naming delete public.orders", r.IsError, r.Text)
		}
		record(r, "denied", "deny")
	})

	t.Run("DeniesWriteInDataModifyingCTE", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d"})
		if !r.IsError || !strings.Contains(r.Text, "delete public.orders") {
			t.Errorf("CTE delete = %v %q; want a denial naming delete public.orders", r.IsError, r.Text)
		}
		record(r, "denied", "deny")
	})

	t.Run("DeniesStackedStatements", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1; DROP TABLE orders"})
		if !r.IsError || !strings.Contains(r.Text, "sql.statement") {
			t.Errorf("stacked = %v %q; want a denial by sql.statement", r.IsError, r.Text)
		}
		record(r, "denied", "deny")
	})

	t.Run("AllowsGrantedWriteAndCommitsIt", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ($1)", "params": []any{"from " + t.Name()}})
		if r.IsError || r.Body["row_count"] != float64(1) || r.Body["command"] != "INSERT 0 1" {
			t.Fatalf("insert = %v %s; want INSERT 0 1", r.IsError, r.Text)
		}
		record(r, "ok", "allow")
		if n := count(t, dsn, "SELECT count(*) FROM notes WHERE body = $1", "from "+t.Name()); n != 1 {
			t.Errorf("notes with the inserted body = %d; want 1 (committed)", n)
		}
	})

	t.Run("CapsRows", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders ORDER BY id"})
		if r.IsError || len(r.rows()) != 5 || r.Body["truncated"] != true || r.Body["row_count"] != float64(5) {
			t.Errorf("30-row select = %d rows, truncated %v; want 5 rows, truncated", len(r.rows()), r.Body["truncated"])
		}
		record(r, "ok", "allow")
	})

	t.Run("EnforcesStatementTimeout", func(t *testing.T) {
		start := time.Now()
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT pg_sleep(10)"})
		if !r.IsError || !strings.Contains(r.Text, "statement timeout of 1s") {
			t.Errorf("pg_sleep(10) = %v %q; want a statement timeout error", r.IsError, r.Text)
		}
		if time.Since(start) > 8*time.Second {
			t.Errorf("pg_sleep(10) took %s; the 1s statement_timeout did not apply", time.Since(start))
		}
		record(r, "error", "allow")
	})

	t.Run("BindsParametersAsData", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT name FROM customers WHERE id = $1 AND email = $2", "params": []any{3, "c3@example.com"}})
		if r.IsError || fmt.Sprint(r.rows()) != "[[customer 3]]" {
			t.Errorf("bound select = %v %s; want [[customer 3]]", r.IsError, r.Text)
		}
		record(r, "ok", "allow")
		r = call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT name FROM customers WHERE name = $1", "params": []any{"x'; DELETE FROM orders; --"}})
		if r.IsError || len(r.rows()) != 0 {
			t.Errorf("injection attempt as a parameter = %v %s; want zero rows", r.IsError, r.Text)
		}
		record(r, "ok", "allow")
		if n := count(t, dsn, "SELECT count(*) FROM orders"); n != 30 {
			t.Errorf("orders = %d; want 30 (untouched)", n)
		}
	})

	t.Run("ReportsInvalidArgumentsAsToolErrors", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "nope", "sql": "SELECT 1"})
		if !r.IsError || !strings.Contains(r.Text, `unknown database "nope"`) {
			t.Errorf("unknown database = %v %q", r.IsError, r.Text)
		}
		record(r, "error", "deny")
	})

	t.Run("NeverLeaksTheDSN", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELEC 1"})
		if !r.IsError || !strings.Contains(r.Text, "syntax error") || strings.Contains(r.Text, dsn) || strings.Contains(r.Text, "postgres://") {
			t.Errorf("syntax error = %v %q; want a syntax error without connection details", r.IsError, r.Text)
		}
		record(r, "error", "")
	})
	return expect
}

func count(t *testing.T, dsn, q string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// openRecording opens the recording next to config, read-only.
func openRecording(t *testing.T, config string) recorder.Store {
	t.Helper()
	store, err := openStore(context.Background(), "sqlite:"+filepath.Join(filepath.Dir(config), "recording.db"), recorder.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// recordedCalls reads every call in the recording next to config, by id.
func recordedCalls(t *testing.T, config string) map[string]recorder.CallRecord {
	t.Helper()
	calls, err := openRecording(t, config).Calls(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]recorder.CallRecord{}
	for _, c := range calls {
		out[c.ID] = c
	}
	return out
}

// checkRecording opens the store and checks that every call is recorded
// with the right outcome and decision, in a session that names the client.
func checkRecording(t *testing.T, config string, expect []expectation, version string) {
	t.Helper()
	byID := recordedCalls(t, config)
	for _, e := range expect {
		c, ok := byID[e.id]
		if !ok {
			t.Errorf("call %s is not in the recording", e.id)
			continue
		}
		if c.Outcome != e.outcome {
			t.Errorf("recorded outcome of %s (%s) = %q; want %q", e.id, c.Statement, c.Outcome, e.outcome)
		}
		if e.effect != "" && (c.Decision == nil || string(c.Decision.Effect) != e.effect) {
			t.Errorf("recorded decision of %s (%s) = %+v; want %s", e.id, c.Statement, c.Decision, e.effect)
		}
		if c.Caller.Subject != "alice@example.com" {
			t.Errorf("recorded caller of %s = %q; want alice@example.com", e.id, c.Caller.Subject)
		}
	}
	sessions, err := openRecording(t, config).Sessions(context.Background(), recorder.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) == 0 {
		t.Fatal("no session recorded")
	}
	s := sessions[0]
	if s.ClientName != "e2e-agent" || s.ProtocolVersion != version || s.Caller.Subject != "alice@example.com" {
		t.Errorf("session = client %q, protocol %q, caller %q; want e2e-agent, %s, alice@example.com", s.ClientName, s.ProtocolVersion, s.Caller.Subject, version)
	}
	if s.EndedAt == nil {
		t.Errorf("session %s has no end after the client disconnected and warden stopped", s.ID)
	}
}

// TestCancellingTheCallCancelsTheQuery shows that an agent's cancellation
// reaches PostgreSQL: the backend query stops long before it would end.
func TestCancellingTheCallCancelsTheQuery(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "60s")
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req := mcp.CallToolRequest{}
		req.Params.Name = "sql_query"
		req.Params.Arguments = map[string]any{"database": "shop", "sql": "SELECT pg_sleep(30)"}
		_, err := c.CallTool(ctx, req)
		done <- err
	}()
	active := "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden' AND query LIKE '%pg_sleep(30)%' AND state = 'active'"
	waitFor(t, 20*time.Second, func() bool { return count(t, dsn, active) == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled call returned no error")
	}
	waitFor(t, 10*time.Second, func() bool { return count(t, dsn, active) == 0 })
}

// waitFor polls cond until it holds or the deadline passes: the condition
// lives in another process (PostgreSQL), so there is nothing to wait on.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCLI(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "1s")
	run := func(args ...string) (string, int) {
		out, errOut, code := runWarden(t, args...)
		return out + errOut, code
	}
	t.Run("CheckPrintsEffectiveGrants", func(t *testing.T) {
		out, code := run("check", "--config", config, "--as", "bob@example.com:analysts")
		if code != 0 || !strings.Contains(out, "select on public.orders, public.customers") || !strings.Contains(out, "roles analyst") {
			t.Errorf("check = %d\n%s", code, out)
		}
		if strings.Contains(out, dsn) {
			t.Errorf("check prints the DSN:\n%s", out)
		}
	})
	t.Run("CheckFailsWithKeyPath", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		data, _ := os.ReadFile(config)
		_ = os.WriteFile(bad, []byte(strings.Replace(string(data), "{backend: shop, tables: [public.orders", "{backend: shp, tables: [public.orders", 1)), 0o600)
		out, code := run("check", "--config", bad)
		if code != 1 || !strings.Contains(out, `roles.analyst.grants[0].backend: unknown backend "shp"`) {
			t.Errorf("check(bad) = %d\n%s", code, out)
		}
	})
	t.Run("ExplainDecidesWithoutExecuting", func(t *testing.T) {
		out, code := run("explain", "--config", config, "--as", "bob@example.com:analysts", "sql_query", "database=shop", "sql=DELETE FROM orders")
		if code != 1 || !strings.Contains(out, "op        delete public.orders") || !strings.Contains(out, "decision  deny by default-deny") {
			t.Errorf("explain delete = %d\n%s", code, out)
		}
		if n := count(t, dsn, "SELECT count(*) FROM orders"); n != 30 {
			t.Errorf("orders after explain = %d; want 30 (nothing executed)", n)
		}
		out, code = run("explain", "--config", config, "--as", "bob@example.com:analysts", "sql_query", "database=shop", "sql=SELECT * FROM orders")
		if code != 0 || !strings.Contains(out, "decision  allow by roles.analyst.grants[0]") {
			t.Errorf("explain select = %d\n%s", code, out)
		}
		out, code = run("explain", "--config", config, "--as", "eve@example.com", "sql_query", "database=shop", "sql=SET role postgres")
		if code != 1 || !strings.Contains(out, "decision  denied by sql.statement") {
			t.Errorf("explain SET = %d\n%s", code, out)
		}
	})
	t.Run("UsageErrorExitsTwo", func(t *testing.T) {
		if _, code := run("serve", "--transport", "carrier-pigeon"); code != 2 {
			t.Errorf("serve --transport carrier-pigeon exit = %d; want 2", code)
		}
	})
	t.Run("SessionsListAndShow", func(t *testing.T) {
		c := startStdio(t, config, mcp.ProtocolVersion20251125)
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll", "purpose": "cli test"})
		c.Close()
		out, code := run("sessions", "list", "--config", config)
		if code != 0 || !strings.Contains(out, "alice@example.com") {
			t.Fatalf("sessions list = %d\n%s", code, out)
		}
		id := regexp.MustCompile(`s-[0-9a-z]+`).FindString(out)
		out, code = run("sessions", "show", id, "--config", config)
		if code != 0 || !strings.Contains(out, r.callID()) || !strings.Contains(out, "SELECT * FROM payroll") || !strings.Contains(out, "deny") {
			t.Errorf("sessions show %s = %d\n%s", id, code, out)
		}
	})
}

// TestShutdownFinishesInFlightCalls sends SIGTERM while a call runs: the
// HTTP server stops accepting, lets the call finish within the grace
// period, records it, and exits 0.
func TestShutdownFinishesInFlightCalls(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "30s")
	srv := launchServer(t, config, "http")
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)

	results := make(chan result, 1)
	go func() {
		results <- call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT pg_sleep(1.5), 42 AS answer"})
	}()
	active := "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden' AND query LIKE '%pg_sleep(1.5)%' AND state = 'active'"
	waitFor(t, 20*time.Second, func() bool { return count(t, dsn, active) == 1 })
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-results
	if r.IsError || fmt.Sprint(r.rows()) != "[[ 42]]" {
		t.Errorf("in-flight call during shutdown = %v %s; want it to finish with 42", r.IsError, r.Text)
	}
	if err := <-srv.exited; err != nil {
		t.Errorf("warden exit after SIGTERM = %v; want 0", err)
	}
	calls := recordedCalls(t, config)
	if len(calls) != 1 || calls[r.callID()].Outcome != "ok" {
		t.Errorf("recorded calls = %+v; want the one in-flight call, ok", calls)
	}
}
