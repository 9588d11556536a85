package main

import (
	"bufio"
	"bytes"
	"context"
	dbsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/examples"
	"github.com/warden-mcp/warden/recorder"
)

// demo creates a demo database, writes the demo's config to a directory of
// its own, starts `warden serve` on it and drives it with real MCP clients,
// printing what the agent sees; then it reads, verifies and tampers with
// (a copy of) the recording. It never touches a recording it did not
// create: its directory is new, or empty when given with --dir.
func (m *Main) demo(ctx context.Context, args []string) error {
	fs := m.flags("demo")
	dbURL := fs.String("database-url", "", "PostgreSQL server to create the demo database in (default $DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)")
	dbName := fs.String("database", "warden_demo", "the database the demo (re)creates there: dropped first, unless it is in use")
	dirFlag := fs.String("dir", "", "write the demo's config and recording to `DIR`, which must be new or empty (default: a new temporary directory)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo takes no arguments, got %q", fs.Arg(0))
	}
	if !demoDBName.MatchString(*dbName) {
		return usagef("--database %q: use lower-case letters, digits and _", *dbName)
	}
	if *dbURL == "" {
		*dbURL = "postgres://postgres@127.0.0.1:5432/postgres"
		if v, ok := m.Getenv("DATABASE_URL"); ok && v != "" {
			*dbURL = v
		}
	}
	dir, err := demoDir(*dirFlag)
	if err != nil {
		return err
	}
	for _, name := range []string{"demo.yaml", "demo-dba.yaml"} {
		data, err := examples.FS.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	config, dba := filepath.Join(dir, "demo.yaml"), filepath.Join(dir, "demo-dba.yaml")
	seed, err := examples.FS.ReadFile("demo.sql")
	if err != nil {
		return err
	}
	w := m.Stdout
	demoDSN, err := createDemoDatabase(ctx, *dbURL, *dbName, string(seed))
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "== warden demo ==")
	fmt.Fprintf(w, "Created database %s: 40 customers (emails, card numbers), 300 orders, and a payroll table.\n", *dbName)
	fmt.Fprintf(w, "The demo's config and its fresh recording are in %s.\n", dir)
	fmt.Fprintln(w, "Starting `warden serve --config demo.yaml` over stdio. The agent below is a real MCP client;")
	fmt.Fprintln(w, "it has no database password — only the tools warden gives it, as alice@example.com (group analysts).")

	getenv := m.Getenv
	m.Getenv = func(k string) (string, bool) {
		if k == "WARDEN_DEMO_DSN" {
			return demoDSN, true
		}
		return getenv(k)
	}
	env := []string{"WARDEN_DEMO_DSN=" + demoDSN}

	// alice, at the client: she answers warden's questions from this list.
	alice := &demoUser{w: w}
	connect := func(version string, u *demoUser) (*client.Client, *mcp.InitializeResult, error) {
		var tr transport.Interface = transport.NewStdio(exe, env, "serve", "--config", config)
		// The wire tap shows how warden asks: a request of its own, or a
		// result that asks.
		tr = transport.NewLogging(tr, slog.New(wireTap{w}))
		opts := []client.ClientOption{client.WithProtocolVersion(version)}
		if u != nil {
			opts = append(opts, client.WithElicitationHandler(u))
		}
		c := client.NewClient(tr, opts...)
		if err := c.Start(ctx); err != nil {
			return nil, nil, fmt.Errorf("start warden: %w", err)
		}
		res, err := demoInitialize(ctx, c, version)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, res, nil
	}
	c, res, err := connect(mcp.ProtocolVersion20251125, alice)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(w, "\nConnected to %s %s (MCP %s, the protocol today's IDE clients speak).\n", res.ServerInfo.Name, res.ServerInfo.Version, res.ProtocolVersion)

	n := 0
	step := func(title string) {
		n++
		fmt.Fprintf(w, "\n── %d. %s\n", n, title)
	}

	step("tools/list — alice sees only the tools she holds grants for, with her databases as the enum")
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
	for _, call := range calls {
		step(call.title)
		if _, err := do(c, call.tool, call.args); err != nil {
			return err
		}
	}

	// Approvals: the update is granted, and still needs a human.
	update := func(order int, purpose string) map[string]any {
		return map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'refunded' WHERE id = $1", "params": []any{order}, "purpose": purpose}
	}
	step("an update is granted but needs a human: warden asks alice in her client (elicitation/create), and she declines")
	alice.answers = []mcp.ElicitationResponseAction{mcp.ElicitationResponseActionDecline}
	if _, err := do(c, "sql_query", update(42, "refund order 42, customer complaint")); err != nil {
		return err
	}
	step("asked again, alice accepts: exactly that call runs, once")
	alice.answers = []mcp.ElicitationResponseAction{mcp.ElicitationResponseActionAccept}
	if _, err := do(c, "sql_query", update(42, "refund order 42, customer complaint")); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}

	step("the same question on MCP 2026-07-28: the result itself asks (input_required), and the client calls again with the answer")
	modern, res, err := connect(mcp.ProtocolVersion20260728, alice)
	if err != nil {
		return err
	}
	defer modern.Close()
	fmt.Fprintf(w, "   (a new client, MCP %s)\n", res.ProtocolVersion)
	alice.answers = []mcp.ElicitationResponseAction{mcp.ElicitationResponseActionAccept}
	if _, err := do(modern, "sql_query", update(44, "refund order 44")); err != nil {
		return err
	}
	if err := modern.Close(); err != nil {
		return err
	}

	step("a client that cannot ask its user gets the reviewer path: the call is pending, with an approval_id")
	other, _, err := connect(mcp.ProtocolVersion20251125, nil)
	if err != nil {
		return err
	}
	defer other.Close()
	held := update(43, "refund order 43")
	out, err := do(other, "sql_query", held)
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
	step("bob (group dba) approves it from his terminal")
	fmt.Fprintf(w, "   $ warden approvals approve --config demo-dba.yaml --reason 'ticket CS-1043' %s\n", pending.ApprovalID)
	bob := *m
	bob.Stdout = indentLines(w)
	if err := bob.approvals(ctx, []string{"approve", pending.ApprovalID, "--config", dba, "--reason", "ticket CS-1043"}); err != nil {
		return err
	}
	step("the agent retries with the same arguments and the approval_id: it runs once; the approval is then spent")
	held["approval_id"] = pending.ApprovalID
	if _, err := do(other, "sql_query", held); err != nil {
		return err
	}
	if _, err := do(other, "sql_query", held); err != nil {
		return err
	}
	if err := other.Close(); err != nil {
		return err
	}

	step("one call over streamable HTTP: warden serve --transport http")
	if err := m.demoHTTP(ctx, w, exe, env, config, do); err != nil {
		return err
	}

	step("the recording: every call, allowed or not (warden sessions list)")
	cfg, err := m.loadRecordingConfig(config)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg.Store.URL, cfg.Store.Options())
	if err != nil {
		return err
	}
	list, err := st.Sessions(ctx, recorder.SessionFilter{Limit: 10})
	if err == nil && len(list) == 0 {
		err = errors.New("the demo's sessions were not recorded")
	}
	if err != nil {
		st.Close()
		return err
	}
	if err := WriteSessionList(indentLines(w), list); err != nil {
		st.Close()
		return err
	}
	last := list[0] // the HTTP session: one call
	fmt.Fprintf(w, "\n   $ warden sessions show --config demo.yaml %s\n", last.ID)
	s, records, err := st.Session(ctx, last.ID)
	if err == nil {
		err = WriteSession(indentLines(w), s, records)
	}
	st.Close()
	if err != nil {
		return err
	}

	step("warden sessions verify: the hash chain, the signed checkpoints and head, each record's MAC")
	fmt.Fprintln(w, "   $ warden sessions verify --config demo.yaml")
	auditor := *m
	auditor.Stdout = indentLines(w)
	if err := auditor.sessionsVerify(ctx, []string{"--config", config}); err != nil {
		return err
	}

	step("a tampered copy is caught: one denied call edited to read as allowed")
	tampered, seq, err := tamperedCopy(dir, cfg.Store.URL)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "   copied the recording to tampered/ and edited record %d: \"outcome\":\"denied\" → \"outcome\":\"ok\"\n", seq)
	fmt.Fprintln(w, "   $ warden sessions verify --config tampered/demo.yaml")
	err = auditor.sessionsVerify(ctx, []string{"--config", tampered})
	if err == nil {
		return errors.New("the tampered copy of the recording verified")
	}
	writeLines(indentLines(w), "warden: ", err.Error())
	fmt.Fprintln(w, "   (exit status 1)")

	fmt.Fprintf(w, "\nDone. Explore it yourself (the files stay in %s; remove it when done):\n"+
		"   %[2]s sessions list   --config %[3]s\n"+
		"   %[2]s sessions replay --config %[3]s %[4]s\n"+
		"   %[2]s approvals show  --config %[3]s %[5]s\n"+
		"   WARDEN_DEMO_DSN=%[6]s %[2]s serve --config %[3]s --transport http\n",
		dir, exe, config, list[len(list)-1].ID, pending.ApprovalID, demoDSN)
	return nil
}

// demoDir returns the demo's directory: dir, new or empty, or a new
// temporary directory.
func demoDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "warden-demo-")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dir, os.MkdirAll(dir, 0o700)
	case err != nil:
		return "", err
	case len(entries) > 0:
		return "", usagef("--dir %s is not empty: the demo writes a fresh recording of its own and never replaces one", dir)
	}
	return dir, nil
}

// demoInitialize starts an MCP session (on 2026-07-28, negotiates the
// version) and names the demo's client.
func demoInitialize(ctx context.Context, c *client.Client, version string) (*mcp.InitializeResult, error) {
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "warden-demo-agent", Version: Version}
	init.Params.ProtocolVersion = version
	res, err := c.Initialize(ctx, init)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	return res, nil
}

// demoHTTP starts `warden serve --transport http` on a free loopback
// port, makes one call over streamable HTTP and stops it with SIGINT.
func (m *Main) demoHTTP(ctx context.Context, w io.Writer, exe string, env []string, config string,
	do func(*client.Client, string, map[string]any) (*mcp.CallToolResult, error)) error {
	cmd := exec.Command(exe, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// SIGINT: warden finishes, signs its head and exits 0.
	stop := func() { _ = cmd.Process.Signal(os.Interrupt) }
	defer stop()
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	endpoint := ""
	for endpoint == "" && sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if mm := listeningMCP.FindStringSubmatch(line); mm != nil {
			endpoint = mm[1]
			fmt.Fprintf(w, "   $ warden serve --config demo.yaml --transport http --listen 127.0.0.1:0\n   %s\n", line)
		}
	}
	drained := make(chan struct{})
	go func() { // the rest of its log, shown only if it fails
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
		close(drained)
	}()
	fail := func(err error) error {
		stop()
		_ = cmd.Wait()
		<-drained
		return fmt.Errorf("%w\n%s", err, log.String())
	}
	if endpoint == "" {
		return fail(errors.New("warden serve --transport http did not start"))
	}
	c, err := client.NewStreamableHttpClient(endpoint)
	if err != nil {
		return fail(err)
	}
	if err := c.Start(ctx); err != nil {
		return fail(err)
	}
	res, err := demoInitialize(ctx, c, mcp.LATEST_PROTOCOL_VERSION)
	if err != nil {
		c.Close()
		return fail(err)
	}
	fmt.Fprintf(w, "   (an MCP client at %s, MCP %s)\n", endpoint, res.ProtocolVersion)
	_, err = do(c, "sql_query", map[string]any{"database": "shop", "purpose": "refund check",
		"sql": "SELECT status, count(*) FROM orders WHERE id IN (42, 43, 44) GROUP BY status"})
	c.Close()
	if err != nil {
		return fail(err)
	}
	stop()
	err = cmd.Wait()
	<-drained
	if err != nil {
		return fmt.Errorf("warden serve --transport http did not stop cleanly: %w\n%s", err, log.String())
	}
	return nil
}

// listeningMCP finds the endpoint in warden's listening message.
var listeningMCP = regexp.MustCompile(`warden listening.* mcp=(\S+)`)

// tamperedCopy copies the recording at storeURL (with its key and head)
// to dir/tampered, with the demo's config, and edits one denied call to
// read as allowed. It returns the copy's config and the record edited.
func tamperedCopy(dir, storeURL string) (string, int64, error) {
	src := strings.TrimPrefix(storeURL, "sqlite:")
	to := filepath.Join(dir, "tampered")
	if err := os.Mkdir(to, 0o700); err != nil {
		return "", 0, err
	}
	dst := filepath.Join(to, filepath.Base(src))
	for _, f := range [][2]string{
		{filepath.Join(dir, "demo.yaml"), filepath.Join(to, "demo.yaml")},
		{src, dst}, {src + "-wal", dst + "-wal"}, {src + ".key", dst + ".key"}, {src + ".head", dst + ".head"},
	} {
		data, err := os.ReadFile(f[0])
		if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(f[0], "-wal") {
			continue
		}
		if err != nil {
			return "", 0, err
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			return "", 0, err
		}
	}
	db, err := dbsql.Open("sqlite", "file:"+dst)
	if err != nil {
		return "", 0, err
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT min(seq) FROM records WHERE body LIKE '%"outcome":"denied"%'`).Scan(&seq); err != nil {
		return "", 0, fmt.Errorf("find a denied call in the copy: %w", err)
	}
	// The trigger that keeps records append-only stops mistakes, not
	// someone with the file: they drop it.
	for _, q := range []string{`DROP TRIGGER records_no_update`,
		`UPDATE records SET body = replace(body, '"outcome":"denied"', '"outcome":"ok"') WHERE seq = ?`} {
		var args []any
		if strings.HasPrefix(q, "UPDATE") {
			args = append(args, seq)
		}
		if _, err := db.Exec(q, args...); err != nil {
			return "", 0, err
		}
	}
	return filepath.Join(to, "demo.yaml"), seq, db.Close()
}

// wireTap prints the protocol messages that show how warden asked the
// user: it is the slog handler of the demo client's logging transport.
type wireTap struct{ w io.Writer }

func (wireTap) Enabled(context.Context, slog.Level) bool { return true }
func (t wireTap) WithAttrs([]slog.Attr) slog.Handler     { return t }
func (t wireTap) WithGroup(string) slog.Handler          { return t }

func (t wireTap) Handle(_ context.Context, r slog.Record) error {
	var method, result string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "result":
			result = a.Value.String()
		}
		return true
	})
	switch {
	case r.Message == "← request" && method == string(mcp.MethodElicitationCreate):
		fmt.Fprintln(t.w, "   wire: warden → client: elicitation/create, a request of warden's own in the middle of the tools/call")
	case r.Message == "← response" && method == string(mcp.MethodToolsCall) && strings.Contains(result, `"input_required"`):
		fmt.Fprintln(t.w, "   wire: warden → client: the tools/call result is input_required (the question, and a signed requestState);")
		fmt.Fprintln(t.w, "         the client asks alice, then sends the tools/call again with her answer in inputResponses")
	}
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

// indentLines returns a writer that indents each line by three spaces.
func indentLines(w io.Writer) io.Writer { return &indenter{w: w, start: true} }

type indenter struct {
	w     io.Writer
	start bool // at the start of a line
}

func (in *indenter) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if in.start && c != '\n' {
			b.WriteString("   ")
		}
		b.WriteByte(c)
		in.start = c == '\n'
	}
	if _, err := in.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

var demoDBName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// createDemoDatabase (re)creates the database name on the server at
// adminURL and loads the demo data; it returns the demo database's URL. It
// refuses while another session uses the database rather than cut it off.
func createDemoDatabase(ctx context.Context, adminURL, name, seed string) (string, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL (set DATABASE_URL or --database-url): %w", err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" { // object_in_use
			return "", fmt.Errorf("the database %s is in use (by a warden serve from an earlier demo?): stop that, then run the demo again", name)
		}
		return "", fmt.Errorf("drop old demo database: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create demo database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, seed); err != nil {
		return "", fmt.Errorf("load demo data: %w", err)
	}
	return u.String(), nil
}
