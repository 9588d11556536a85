package main

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
)

// stop sends SIGINT and waits for a clean exit.

// tryCall makes a call and returns what the agent saw, or the protocol
// error (a dead server).
func tryCall(c *client.Client, tool string, args map[string]any) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = tool, args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return result{}, err
	}
	r := result{IsError: res.IsError}
	for _, content := range res.Content {
		if tc, ok := content.(mcp.TextContent); ok {
			r.Text += tc.Text
		}
	}
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &r.Body)
	return r, nil
}

// runWarden runs a warden command and returns its stdout, stderr and exit
// code.
func runWarden(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runWardenEnv(t, append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN")), args...)
}

// runWardenEnv is runWarden with the environment env.
func runWardenEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(wardenBin, args...)
	cmd.Env = env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

func storePath(config string) string { return filepath.Join(filepath.Dir(config), "recording.db") }

// TestKillDuringLoadLosesNoAnsweredCall drives concurrent calls from
// several clients, kills warden with SIGKILL in the middle of them,
// restarts it, and checks that every call a client saw answered is in the
// recording, and that the chain verifies against the key printed before
// the crash.
func TestKillDuringLoadLosesNoAnsweredCall(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	srv := launchServer(t, config, "http")

	keyFile := printedKeyFile(t, config)

	var cs []*client.Client
	for range 4 {
		cs = append(cs, connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125))
	}
	enough, done := callLoad(t, cs, 3, 300)
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Log("fewer than 300 calls answered in 60s; killing anyway")
	}
	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL, calls in flight
		t.Fatal(err)
	}
	<-srv.exited
	got := done()
	t.Logf("%d calls answered before SIGKILL", len(got))

	// Restart: warden opens the store a crash left, and records on.
	srv = launchServer(t, config, "http")
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	if r, err := tryCall(c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1 AS one FROM orders LIMIT 1"}); err != nil || r.IsError {
		t.Fatalf("call after restart = %v %v %q", err, r.IsError, r.Text)
	}
	c.Close()
	srv.stop(t)

	out := verifiesWith(t, config, keyFile, "after the crash")
	t.Logf("sessions verify after the crash:\n%s", out)
	checkAnswered(t, config, got)
}

// answered is a call a client saw answered: its id, and ok or denied.
type answered struct{ id, outcome string }

// callLoad has workers goroutines per client call warden in a loop (a
// select, an insert, a select of a table no role may read, in turn) until
// a call fails (warden is gone). enough is closed once that many calls
// were answered; done waits for the workers and returns the answered
// calls.
func callLoad(t *testing.T, clients []*client.Client, workers, enough int) (<-chan struct{}, func() []answered) {
	t.Helper()
	var mu sync.Mutex
	var seen []answered
	reached := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i, c := range clients {
		for w := range workers {
			wg.Go(func() {
				for n := 0; ; n++ {
					var r result
					var err error
					want := "ok"
					switch n % 3 {
					case 0:
						r, err = tryCall(c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id, total FROM orders WHERE id <= $1", "params": []any{n % 30}})
					case 1:
						r, err = tryCall(c, "sql_query", map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ($1)", "params": []any{fmt.Sprintf("client %d worker %d call %d", i, w, n)}})
					case 2:
						r, err = tryCall(c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll"})
						want = "denied"
					}
					if err != nil {
						return // warden is gone
					}
					if r.callID() == "" || r.IsError != (want == "denied") {
						t.Errorf("call answered %v %q; want %s with a call id", r.IsError, r.Text, want)
						return
					}
					mu.Lock()
					seen = append(seen, answered{r.callID(), want})
					if len(seen) >= enough {
						once.Do(func() { close(reached) })
					}
					mu.Unlock()
				}
			})
		}
	}
	return reached, func() []answered {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return append([]answered(nil), seen...)
	}
}

// printedKeyFile writes the store's public key, as `sessions verify
// --print-key` prints it, to a file, and returns its path.
func printedKeyFile(t *testing.T, config string) string {
	t.Helper()
	out, stderr, code := runWarden(t, "sessions", "verify", "--print-key", "--config", config)
	if code != 0 {
		t.Fatalf("sessions verify --print-key = %d: %s", code, stderr)
	}
	keyFile := filepath.Join(t.TempDir(), "warden.pub")
	if err := os.WriteFile(keyFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// verifiesWith checks that `sessions verify --pubkey keyFile` passes, and
// returns what it printed.
func verifiesWith(t *testing.T, config, keyFile, when string) string {
	t.Helper()
	out, stderr, code := runWarden(t, "sessions", "verify", "--config", config, "--pubkey", keyFile)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("sessions verify %s = %d\n%s%s", when, code, out, stderr)
	}
	return out
}

// checkAnswered checks that every call a client saw answered is in the
// recording, finished with the outcome the client saw.
func checkAnswered(t *testing.T, config string, got []answered) {
	t.Helper()
	byID := recordedCalls(t, config)
	for _, a := range got {
		c, ok := byID[a.id]
		switch {
		case !ok:
			t.Errorf("call %s was answered but is not in the recording", a.id)
		case c.Status != recorder.StatusFinished || c.Outcome != a.outcome:
			t.Errorf("call %s: recorded %s, %s; the client saw it answered, %s", a.id, c.Status, c.Outcome, a.outcome)
		}
	}
}

// TestKillRelayLosesNoAnsweredCall runs two wardens on one store, the
// first the relay that commits the second's call records (recorder/sqlite
// relay.go), kills the relay with SIGKILL while both are under load, and
// goes on calling the second, which writes its own records and becomes
// the relay. Every call a client saw answered, through either warden, is
// in the recording, finished as the client saw it, and the chain verifies.
func TestKillRelayLosesNoAnsweredCall(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	relay := launchServer(t, config, "http")
	other := launchServer(t, config, "http")
	keyFile := printedKeyFile(t, config)
	toRelay := []*client.Client{connect(t, relay.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)}
	toOther := []*client.Client{connect(t, other.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)}
	relayEnough, relayDone := callLoad(t, toRelay, 3, 150)
	otherEnough, otherDone := callLoad(t, toOther, 3, 150)
	for _, ch := range []<-chan struct{}{relayEnough, otherEnough} {
		select {
		case <-ch:
		case <-time.After(60 * time.Second):
			t.Log("fewer than 150 calls answered in 60s; killing anyway")
		}
	}
	if err := relay.cmd.Process.Kill(); err != nil { // SIGKILL, both wardens' calls in flight
		t.Fatal(err)
	}
	<-relay.exited
	got := relayDone()
	// The other warden goes on: its calls keep being answered.
	after := 0
	for range 30 {
		r, err := tryCall(toOther[0], "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1 AS one FROM orders LIMIT 1"})
		if err != nil || r.IsError || r.callID() == "" {
			t.Fatalf("a call to the other warden after the relay was killed = %v %v %q", err, r.IsError, r.Text)
		}
		got = append(got, answered{r.callID(), "ok"})
		after++
	}
	other.stop(t)
	got = append(got, otherDone()...)
	t.Logf("%d calls answered, %d of them after the relay was killed", len(got), after)

	verifiesWith(t, config, keyFile, "after the relay was killed")
	checkAnswered(t, config, got)
}

// TestSessionsCommands drives a session over stdio and reads it back with
// every sessions subcommand, then tampers with the file.
func TestSessionsCommands(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	allowed := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id < 3", "purpose": "replay test"})
	denied := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll"})
	schema := call(t, c, "sql_schema", map[string]any{"database": "shop"})
	c.Close()
	// A second session with only an allowed call.
	c = startStdio(t, config, mcp.ProtocolVersion20251125)
	call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1 FROM orders LIMIT 1"})
	c.Close()

	list := func(args ...string) []string {
		t.Helper()
		out, stderr, code := runWarden(t, append([]string{"sessions", "list", "--config", config}, args...)...)
		if code != 0 {
			t.Fatalf("sessions list %v = %d: %s", args, code, stderr)
		}
		return regexp.MustCompile(`(?m)^s-[0-9a-z]+`).FindAllString(out, -1)
	}
	all := list()
	if len(all) != 2 {
		t.Fatalf("sessions list = %v; want two sessions", all)
	}
	first := all[1] // newest first
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--denied"}, []string{first}},
		{[]string{"--tool", "sql_schema"}, []string{first}},
		{[]string{"--tool", "kube_get"}, nil},
		{[]string{"--since", "1h"}, all},
		{[]string{"--until", "1h"}, nil},
		{[]string{"--subject", "alice@example.com", "--limit", "1"}, all[:1]},
	} {
		if got := list(tt.args...); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("sessions list %v = %v; want %v", tt.args, got, tt.want)
		}
	}

	t.Run("Replay", func(t *testing.T) {
		out, stderr, code := runWarden(t, "sessions", "replay", first, "--config", config)
		if code != 0 {
			t.Fatalf("replay = %d: %s", code, stderr)
		}
		for _, want := range []string{"replay of session " + first, "who        alice@example.com via local",
			"client     e2e-agent 1.0, protocol 2025-11-25, over stdio", allowed.callID(), denied.callID(), schema.callID(),
			"purpose    replay test", "decision   denied by default-deny", "outcome    ok: 2 rows/objects"} {
			if !strings.Contains(out, want) {
				t.Errorf("replay lacks %q:\n%s", want, out)
			}
		}
		out, _, code = runWarden(t, "sessions", "replay", "--json", first, "--config", config)
		var tr Transcript
		if err := json.Unmarshal([]byte(out), &tr); code != 0 || err != nil {
			t.Fatalf("replay --json = %d, %v:\n%s", code, err, out)
		}
		if len(tr.Calls) != 3 || tr.Calls[1].ID != denied.callID() || tr.Calls[1].Outcome != "denied" {
			t.Errorf("replay --json calls = %+v; want three, the second denied", tr.Calls)
		}
		if _, _, code := runWarden(t, "sessions", "replay", "s-nope", "--config", config); code != 1 {
			t.Errorf("replay of an unknown session = exit %d; want 1", code)
		}
	})

	out, _, code := runWarden(t, "sessions", "verify", "--print-key", "--config", config)
	if code != 0 {
		t.Fatalf("verify --print-key = %d", code)
	}
	key := strings.TrimSpace(out)

	t.Run("ExportVerifiesWithoutTheStore", func(t *testing.T) {
		out, stderr, code := runWarden(t, "sessions", "export", "--format", "jsonl", "--config", config)
		if code != 0 {
			t.Fatalf("export = %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for i, l := range lines {
			var rec struct {
				Seq  int64  `json:"seq"`
				Kind string `json:"kind"`
				Hash string `json:"hash"`
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Seq != int64(i+1) || len(rec.Hash) != 64 {
				t.Fatalf("export line %d = %s (%v); want record %d with a hash", i+1, l, err, i+1)
			}
		}
		file := filepath.Join(t.TempDir(), "export.jsonl")
		if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		// No config: an auditor with the file and the key.
		out, stderr, code = runWarden(t, "sessions", "verify", "--export", file, "--pubkey", key)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("ok: %d records", len(lines))) {
			t.Errorf("verify --export = %d\n%s%s", code, out, stderr)
		}
		if _, _, code := runWarden(t, "sessions", "export", "--format", "csv", "--config", config); code != 2 {
			t.Errorf("export --format csv = exit %d; want 2", code)
		}
	})

	t.Run("TamperingFailsVerify", func(t *testing.T) {
		if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 {
			t.Fatalf("verify before tampering = %d\n%s%s", code, out, stderr)
		}
		seq := editRecordOfCall(t, storePath(config), denied.callID())
		out, stderr, code := runWarden(t, "sessions", "verify", "--config", config, "--pubkey", key)
		if code != 1 || !strings.Contains(stderr, fmt.Sprintf("record %d was changed", seq)) {
			t.Errorf("verify after editing record %d = %d\n%s%s", seq, code, out, stderr)
		}
	})
}

// editRecordOfCall rewrites the outcome of a call in the SQLite file, as
// someone hiding a denial would, and returns the record's seq.
func editRecordOfCall(t *testing.T, path, callID string) int64 {
	t.Helper()
	db, err := sqlOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM records WHERE call_id = ? AND kind = 'call_finish'`, callID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER records_no_update`,
		fmt.Sprintf(`UPDATE records SET body = replace(body, '"outcome":"denied"', '"outcome":"ok"') WHERE seq = %d`, seq),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return seq
}

// TestServePrunesByRetention starts serve on a store holding a session
// from 40 days ago with retention 30d: the old session goes, the chain
// still verifies, and verify says it was pruned.
func TestServePrunesByRetention(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	data, _ := os.ReadFile(config)
	data = []byte(strings.Replace(string(data), "store: sqlite:recording.db", "store: {url: sqlite:recording.db, retention: 30d}", 1))
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := time.Now().Add(-40 * 24 * time.Hour)
	s, err := openStore(ctx, "sqlite:"+storePath(config), recorder.Options{Clock: func() time.Time { return old }})
	if err != nil {
		t.Fatal(err)
	}
	sess := &warden.Session{ID: "s-old", Transport: "stdio", Caller: &warden.Caller{Subject: "alice@example.com", Method: "local"}, StartedAt: old}
	if err := s.StartSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := s.EndSession(ctx, "s-old", old.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	srv := launchServer(t, config, "http")
	waitFor(t, 20*time.Second, func() bool {
		out, _, _ := runWarden(t, "sessions", "list", "--config", config)
		return !strings.Contains(out, "s-old")
	})
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT 1 FROM orders LIMIT 1"})
	c.Close()
	srv.stop(t)

	out, stderr, code := runWarden(t, "sessions", "verify", "--config", config)
	if code != 0 || !strings.Contains(out, "were pruned by retention") {
		t.Errorf("verify after pruning = %d\n%s%s", code, out, stderr)
	}
}

func TestStoreConfig(t *testing.T) {
	withEnv := env(map[string]string{"SHOP_DSN": "postgres://u@db/shop"})
	for _, tt := range []struct {
		store string
		url   string
		keep  time.Duration
	}{
		{"", DefaultStore, 90 * 24 * time.Hour},
		{"store: sqlite:x.db\n", "sqlite:x.db", 90 * 24 * time.Hour},
		{"store: {url: sqlite:x.db, retention: 30d}\n", "sqlite:x.db", 30 * 24 * time.Hour},
		{"store: {retention: 12h}\n", DefaultStore, 12 * time.Hour},
		{"store: {url: sqlite:x.db, retention: forever}\n", "sqlite:x.db", 0},
	} {
		cfg, err := ParseConfig([]byte(goodConfig+tt.store), withEnv)
		if err != nil {
			t.Errorf("ParseConfig(%q) = %v", tt.store, err)
			continue
		}
		if cfg.Store.URL != tt.url || cfg.Store.Keep != tt.keep {
			t.Errorf("ParseConfig(%q) store = %s, keep %s; want %s, %s", tt.store, cfg.Store.URL, cfg.Store.Keep, tt.url, tt.keep)
		}
	}
	for _, tt := range []struct{ store, want string }{
		{"store: {retention: 90s}\n", `store.retention: "90s" is not a retention`},
		{"store: {retention: soon}\n", `store.retention: "soon" is not a retention`},
		{"store: {url: sqlite:x.db, keep: 1d}\n", "store.keep: unknown key"},
		{"store: {url: \"postgres://u@db/rec\", keys: k, relay: false}\n", "store.relay: applies to a SQLite store only"},
	} {
		if _, err := ParseConfig([]byte(goodConfig+tt.store), withEnv); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%q) = %v; want an error containing %q", tt.store, err, tt.want)
		}
	}
	// store.relay reaches the recorder: off only when said so.
	for store, noRelay := range map[string]bool{
		"store: sqlite:x.db\n":                      false,
		"store: {url: sqlite:x.db, relay: true}\n":  false,
		"store: {url: sqlite:x.db, relay: false}\n": true,
	} {
		cfg, err := ParseConfig([]byte(goodConfig+store), withEnv)
		if err != nil {
			t.Errorf("ParseConfig(%q) = %v", store, err)
			continue
		}
		if got := cfg.Store.Options().NoRelay; got != noRelay {
			t.Errorf("ParseConfig(%q): NoRelay = %v; want %v", store, got, noRelay)
		}
	}
}

// sqlOpen opens a store's file directly, bypassing the recorder.
func sqlOpen(path string) (*dbsql.DB, error) {
	return dbsql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
}
