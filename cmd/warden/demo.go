package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/recorder"
)

// demo creates a demo database, starts `warden serve` on it over stdio and
// drives it with a real MCP client, printing what the agent sees.
func (m *Main) demo(ctx context.Context, args []string) error {
	fs := m.flags("demo")
	dbURL := fs.String("database-url", "", "PostgreSQL server to create the demo database in (default $DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)")
	config := fs.String("config", "examples/demo.yaml", "the demo's warden config")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dbURL == "" {
		*dbURL = "postgres://postgres@127.0.0.1:5432/postgres"
		if v, ok := m.Getenv("DATABASE_URL"); ok && v != "" {
			*dbURL = v
		}
	}
	w := m.Stdout
	demoDSN, err := createDemoDatabase(ctx, *dbURL, filepath.Join(filepath.Dir(*config), "demo.sql"))
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "== warden demo ==")
	fmt.Fprintln(w, "Created database warden_demo: 40 customers (emails, card numbers), 300 orders, and a payroll table.")
	fmt.Fprintf(w, "Starting `warden serve --config %s` over stdio. The agent below is a real MCP client;\n", *config)
	fmt.Fprintln(w, "it has no database password — only the tools warden gives it, as alice@example.com (group analysts).")

	getenv := m.Getenv
	m.Getenv = func(k string) (string, bool) {
		if k == "WARDEN_DEMO_DSN" {
			return demoDSN, true
		}
		return getenv(k)
	}
	cfg, err := m.loadConfig(*config)
	if err != nil {
		return err
	}
	// Start from an empty recording so the tour shows only its own session:
	// the store and its signed head go together (a head naming records the
	// store lacks would rightly stop warden); the signing key stays.
	store := strings.TrimPrefix(cfg.Store.URL, "sqlite:")
	for _, suffix := range []string{"", "-wal", "-shm", ".head"} {
		_ = os.Remove(store + suffix)
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// alice, at the client: she answers warden's questions from this list.
	alice := &demoUser{w: w}
	connect := func(u *demoUser) (*client.Client, *mcp.InitializeResult, error) {
		var opts []client.ClientOption
		if u != nil {
			opts = append(opts, client.WithElicitationHandler(u))
		}
		c := client.NewClient(transport.NewStdio(exe, []string{"WARDEN_DEMO_DSN=" + demoDSN}, "serve", "--config", *config), opts...)
		if err := c.Start(ctx); err != nil {
			return nil, nil, fmt.Errorf("start warden: %w", err)
		}
		init := mcp.InitializeRequest{}
		init.Params.ClientInfo = mcp.Implementation{Name: "warden-demo-agent", Version: Version}
		init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
		res, err := c.Initialize(ctx, init)
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("initialize: %w", err)
		}
		return c, res, nil
	}
	c, res, err := connect(alice)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(w, "\nConnected to %s %s (MCP %s).\n", res.ServerInfo.Name, res.ServerInfo.Version, res.ProtocolVersion)

	step := func(n int, title string) { fmt.Fprintf(w, "\n── %d. %s\n", n, title) }

	step(1, "tools/list — alice sees only the tools she holds grants for, with her databases as the enum")
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return err
	}
	for _, t := range tools.Tools {
		var schema struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		}
		raw, _ := json.Marshal(t.InputSchema)
		_ = json.Unmarshal(raw, &schema)
		fmt.Fprintf(w, "   %s  database ∈ %v\n", t.Name, schema.Properties["database"].Enum)
	}

	calls := []struct {
		title string
		tool  string
		args  map[string]any
	}{
		{"sql_schema — what may I read? (payroll is not listed)", "sql_schema", map[string]any{"database": "shop"}},
		{"an allowed read: revenue by country (a join, run in BEGIN READ ONLY)", "sql_query", map[string]any{
			"database": "shop", "purpose": "weekly revenue report",
			"sql": "SELECT c.country, count(*) AS orders, sum(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status <> 'refunded' GROUP BY c.country ORDER BY revenue DESC LIMIT 3"}},
		{"parameters are bound as $1, never spliced into the text", "sql_query", map[string]any{
			"database": "shop", "sql": "SELECT id, total, status, placed_at FROM orders WHERE customer_id = $1 ORDER BY placed_at LIMIT 2", "params": []any{7}}},
		{"masking at the source: an alias or an expression only ever sees masked card numbers", "sql_query", map[string]any{
			"database": "shop", "sql": "SELECT name, email, card_number AS pan, upper(card_number) AS shouted FROM customers ORDER BY id LIMIT 2"}},
		{"a filter on a masked column compares masked values, so it cannot find a card by its digits", "sql_query", map[string]any{
			"database": "shop", "sql": "SELECT count(*) FROM customers WHERE card_number LIKE '4111%'"}},
		{"a refused table: payroll is not in alice's grants", "sql_query", map[string]any{
			"database": "shop", "sql": "SELECT employee, salary FROM payroll"}},
		{"a refused table hidden in a subquery", "sql_query", map[string]any{
			"database": "shop", "sql": "SELECT name FROM customers WHERE id IN (SELECT length(employee) FROM payroll)"}},
		{"a refused write", "sql_query", map[string]any{
			"database": "shop", "sql": "DELETE FROM orders WHERE status = 'refunded'"}},
		{"a write hidden in a data-modifying CTE", "sql_query", map[string]any{
			"database": "shop", "sql": "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone"}},
		{"transaction control belongs to warden", "sql_query", map[string]any{
			"database": "shop", "sql": "SET statement_timeout = 0"}},
	}
	do := func(c *client.Client, tool string, args map[string]any) (*mcp.CallToolResult, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(args)
		fmt.Fprintf(w, "   agent → %s %s", tool, b.String())
		req := mcp.CallToolRequest{}
		req.Params.Name = tool
		req.Params.Arguments = args
		out, err := c.CallTool(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		printResult(w, out)
		return out, nil
	}
	n := 1
	for _, call := range calls {
		n++
		step(n, call.title)
		if _, err := do(c, call.tool, call.args); err != nil {
			return err
		}
	}

	// Approvals: the update is granted, and still needs a human.
	update := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'refunded' WHERE id = $1", "params": []any{42},
		"purpose": "refund order 42, customer complaint"}
	n++
	step(n, "an update is granted but needs a human: warden asks alice in her client, and she declines")
	alice.answers = []mcp.ElicitationResponseAction{mcp.ElicitationResponseActionDecline}
	if _, err := do(c, "sql_query", update); err != nil {
		return err
	}
	n++
	step(n, "asked again, alice accepts: exactly that call runs, once")
	alice.answers = []mcp.ElicitationResponseAction{mcp.ElicitationResponseActionAccept}
	if _, err := do(c, "sql_query", update); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}

	n++
	step(n, "a client that cannot ask its user gets the reviewer path: the call is pending, with an approval_id")
	other, _, err := connect(nil)
	if err != nil {
		return err
	}
	defer other.Close()
	update["params"] = []any{43}
	update["purpose"] = "refund order 43"
	out, err := do(other, "sql_query", update)
	if err != nil {
		return err
	}
	var pending struct {
		ApprovalID string `json:"approval_id"`
	}
	raw, _ := json.Marshal(out.StructuredContent)
	if err := json.Unmarshal(raw, &pending); err != nil || pending.ApprovalID == "" {
		return errors.New("the reviewer path returned no approval_id")
	}
	n++
	dba := filepath.Join(filepath.Dir(*config), "demo-dba.yaml")
	step(n, "bob (group dba) approves it from his terminal: warden approvals approve "+pending.ApprovalID+" --config "+dba)
	bob := *m
	bob.Stdout = indent(w)
	if err := bob.approvals(ctx, []string{"approve", pending.ApprovalID, "--config", dba, "--reason", "ticket CS-1043"}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	n++
	step(n, "the agent retries with the same arguments and the approval_id: it runs once; the approval is then spent")
	update["approval_id"] = pending.ApprovalID
	if _, err := do(other, "sql_query", update); err != nil {
		return err
	}
	if _, err := do(other, "sql_query", update); err != nil {
		return err
	}
	if err := other.Close(); err != nil {
		return err
	}

	n++
	step(n, "the recording: every call, allowed or not (`warden sessions list` / `show`)")
	st, err := openStore(ctx, cfg.Store.URL, cfg.Store.Options())
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.Sessions(ctx, recorder.SessionFilter{Limit: 2})
	if err != nil {
		return err
	}
	if err := WriteSessionList(indent(w), list); err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New("the demo session was not recorded")
	}
	fmt.Fprintln(w)
	first := list[len(list)-1] // alice's first session: the tour
	s, records, err := st.Session(ctx, first.ID)
	if err != nil {
		return err
	}
	if err := WriteSession(indent(w), s, records); err != nil {
		return err
	}
	env := "WARDEN_DEMO_DSN=" + demoDSN
	fmt.Fprintf(w, "\nDone. Explore it yourself:\n"+
		"   %[1]s bin/warden sessions list   --config %[2]s\n"+
		"   %[1]s bin/warden sessions replay --config %[2]s %[3]s\n"+
		"   %[1]s bin/warden sessions verify --config %[2]s\n"+
		"   %[1]s bin/warden approvals show  --config %[2]s %[4]s\n", env, *config, first.ID, pending.ApprovalID)
	return nil
}

// demoUser is alice at the client: it prints the question warden asks
// and answers with the next of its answers.
type demoUser struct {
	w       io.Writer
	answers []mcp.ElicitationResponseAction
}

func (u *demoUser) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	fmt.Fprintf(u.w, "   client asks alice:\n     %s\n", strings.ReplaceAll(strings.TrimSpace(req.Params.Message), "\n", "\n     "))
	action := mcp.ElicitationResponseActionDecline
	if len(u.answers) > 0 {
		action, u.answers = u.answers[0], u.answers[1:]
	}
	fmt.Fprintf(u.w, "   alice → %s\n", action)
	res := &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: action}}
	if action == mcp.ElicitationResponseActionAccept {
		res.Content = map[string]any{"confirm": true}
	}
	return res, nil
}

// printResult prints what the agent received: the text content, with JSON
// indented for reading.
func printResult(w io.Writer, res *mcp.CallToolResult) {
	label := "warden → "
	if res.IsError {
		label = "warden → isError: "
	}
	for _, c := range res.Content {
		tc, ok := c.(mcp.TextContent)
		if !ok {
			continue
		}
		text := compactJSON(tc.Text)
		lines := strings.Split(text, "\n")
		if len(lines) > 40 {
			lines = append(lines[:40], fmt.Sprintf("... (%d more lines)", len(lines)-40))
		}
		fmt.Fprintf(w, "   %s%s\n", label, strings.Join(lines, "\n     "))
	}
}

// compactJSON lays out a JSON object one key per line with compact values,
// and arrays of rows or tables one element per line, so a result reads like
// a table; anything else is returned as is.
func compactJSON(text string) string {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return text
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	order := map[string]int{"columns": 0, "rows": 1, "tables": 1, "row_count": 2, "truncated": 3, "command": 4}
	sort.SliceStable(keys, func(i, j int) bool {
		oi, iok := order[keys[i]]
		oj, jok := order[keys[j]]
		if iok != jok {
			return iok
		}
		if iok {
			return oi < oj
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		var elems []json.RawMessage
		if (k == "rows" || k == "tables") && json.Unmarshal(obj[k], &elems) == nil && len(elems) > 0 {
			fmt.Fprintf(&b, "\n  %q: [", k)
			for j, e := range elems {
				var c bytes.Buffer
				_ = json.Compact(&c, e)
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n    " + c.String())
			}
			b.WriteString("]")
			continue
		}
		var c bytes.Buffer
		_ = json.Compact(&c, obj[k])
		fmt.Fprintf(&b, "\n  %q: %s", k, c.String())
	}
	b.WriteString("\n}")
	return b.String()
}

type indentWriter struct{ w io.Writer }

func (iw indentWriter) Write(p []byte) (int, error) {
	s := strings.ReplaceAll(string(p), "\n", "\n   ")
	if _, err := io.WriteString(iw.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

func indent(w io.Writer) io.Writer {
	_, _ = io.WriteString(w, "   ")
	return indentWriter{w}
}

// createDemoDatabase (re)creates warden_demo on the server at adminURL and
// loads the demo data; it returns the demo database's URL.
func createDemoDatabase(ctx context.Context, adminURL, sqlFile string) (string, error) {
	seed, err := os.ReadFile(sqlFile)
	if err != nil {
		return "", fmt.Errorf("read demo data: %w", err)
	}
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL (set DATABASE_URL): %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS warden_demo WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop old demo database: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE warden_demo"); err != nil {
		return "", fmt.Errorf("create demo database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/warden_demo"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(seed)); err != nil {
		return "", fmt.Errorf("load demo data: %w", err)
	}
	return u.String(), nil
}
