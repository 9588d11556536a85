package sql_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/console"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder/sqlite"
	"github.com/warden-mcp/warden/tools/sql"
)

// The write preview (issue 17, item 3), through the pipeline, the approval
// stage and the SQLite store, against a real PostgreSQL.

const previewSetup = `
CREATE TABLE people (id integer PRIMARY KEY, name text, card text, status text);
INSERT INTO people SELECT i, 'person ' || i, 'CARDSECRET-' || lpad(i::text, 4, '0'), 'new' FROM generate_series(1, 30) i;
CREATE TABLE logs (id serial PRIMARY KEY, msg text);
CREATE TABLE notes (id integer PRIMARY KEY, body text);
CREATE TABLE parts (id integer, region text, v integer) PARTITION BY LIST (region);
CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');
CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');
INSERT INTO parts VALUES (1, 'eu', 1), (1, 'us', 1), (2, 'eu', 2);
CREATE TABLE audited (id integer PRIMARY KEY, v integer);
INSERT INTO audited VALUES (1, 1);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('x', 'y'); RETURN NEW; END $$;
CREATE TRIGGER audited_touch BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW people_v AS SELECT id, name FROM people;`

// rawCard is in every raw card value; a masked one (last4) never has it.
const rawCard = "CARDSECRET"

type previewFixture struct {
	q     *sql.Query
	dir   string
	db    *pgx.Conn
	p     *warden.Pipeline
	svc   *approvals.Service
	store *sqlite.Store
	agent context.Context
	dba   *warden.Caller
}

func newPreviewFixture(t *testing.T) *previewFixture {
	t.Helper()
	ctx := t.Context()
	dsn := pgtest.New(t, previewSetup)
	cfg := sql.Config{DSN: dsn}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	backend, err := sql.NewBackend("shop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	cols := mask.Columns{"public.people.card": {Strategy: "last4"}}
	if err := cols.Validate(); err != nil {
		t.Fatal(err)
	}
	backend.SetMasking(cols, mask.NewMasker([]byte("0123456789abcdef0123456789abcdef")))
	backends := sql.Backends{"shop": backend}
	kinds := map[string]string{"shop": "postgres"}
	pol, err := policy.New(policy.Config{"writer": {
		Members: policy.Members{Groups: []string{"writers"}},
		Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"public.people", "public.logs", "public.notes", "public.parts", "public.audited", "public.people_v"},
			Actions: []string{"select", "insert", "update", "delete"}}},
	}}, kinds)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(dir, "rec.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	q := &sql.Query{Backends: backends}
	reg, err := warden.NewRegistry(q, &sql.Schema{Backends: backends, Grants: pol})
	if err != nil {
		t.Fatal(err)
	}
	zero := warden.Duration(0)
	rules := approvals.Config{{Name: "writes", Backend: "shop", When: []string{"insert", "update", "delete"},
		Approvers: &warden.Approvers{Groups: []string{"dba"}}, Wait: &zero}}
	if err := rules.Validate(kinds); err != nil {
		t.Fatal(err)
	}
	seq, aseq := 0, 0
	svc := &approvals.Service{Rules: rules, Kinds: kinds, Store: store, Key: []byte("0123456789abcdef0123456789abcdef"),
		Clock: time.Now, NewID: func() string { aseq++; return "a-" + itoa(aseq) }}
	p := &warden.Pipeline{Tools: reg, Policy: pol, Recorder: store, Clock: time.Now, Approvals: svc,
		NewID: func() string { seq++; return "c-" + itoa(seq) }}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return &previewFixture{q: q, dir: dir, db: db, p: p, svc: svc, store: store,
		agent: warden.WithCaller(ctx, &warden.Caller{Subject: "agent@example.com", Groups: []string{"writers"}, Method: "local"}),
		dba:   &warden.Caller{Subject: "dba@example.com", Groups: []string{"dba"}, Method: "local"}}
}

func (f *previewFixture) call(t *testing.T, sqlText, approvalID string) (*warden.Call, error) {
	t.Helper()
	args := map[string]any{"database": "shop", "sql": sqlText}
	if approvalID != "" {
		args["approval_id"] = approvalID
	}
	raw, _ := json.Marshal(args)
	return f.p.Run(f.agent, "sql_query", raw)
}

// hold makes the call, which the rule holds, and returns its request.
func (f *previewFixture) hold(t *testing.T, sqlText string) *warden.Approval {
	t.Helper()
	_, err := f.call(t, sqlText, "")
	var we *warden.Error
	if !errors.As(err, &we) || we.Code != warden.NeedsApproval || we.Pending == nil {
		t.Fatalf("call(%q) = %v; want it held for approval", sqlText, err)
	}
	appr, err := f.store.Approval(t.Context(), we.Pending.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	return appr
}

func (f *previewFixture) approve(t *testing.T, id string) {
	t.Helper()
	if _, err := f.svc.Decide(t.Context(), f.dba, id, true, "looks right"); err != nil {
		t.Fatalf("Decide(%s) = %v", id, err)
	}
}

// dump is every table's content and the serial's next value: the state a
// preview must leave as it found it.
func (f *previewFixture) dump(t *testing.T) string {
	t.Helper()
	var s string
	err := f.db.QueryRow(t.Context(), `SELECT
		(SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s', ctid, id, name, card, status), ';' ORDER BY id), '') FROM people) || '#' ||
		(SELECT coalesce(string_agg(format('%s|%s', id, msg), ';' ORDER BY id), '') FROM logs) || '#' ||
		(SELECT coalesce(string_agg(format('%s|%s', id, body), ';' ORDER BY id), '') FROM notes) || '#' ||
		(SELECT last_value || '/' || is_called FROM logs_id_seq)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordingHasNo fails when s appears in any file of the recording.
func (f *previewFixture) recordingHasNo(t *testing.T, s string) {
	t.Helper()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			t.Errorf("the recording file %s holds %q", e.Name(), s)
		}
	}
}

func cells(rows [][]*string) string {
	var out []string
	for _, r := range rows {
		var cs []string
		for _, c := range r {
			if c == nil {
				cs = append(cs, "NULL")
			} else {
				cs = append(cs, *c)
			}
		}
		out = append(out, strings.Join(cs, ","))
	}
	return strings.Join(out, "\n")
}

func TestPreviewUpdateShowsMaskedBeforeAndAfter(t *testing.T) {
	f := newPreviewFixture(t)
	before := f.dump(t)
	appr := f.hold(t, "UPDATE people SET status = 'gone', name = upper(name) WHERE id <= 25")
	if f.dump(t) != before {
		t.Fatalf("the preview changed the database:\n%s\n→\n%s", before, f.dump(t))
	}
	pv := appr.Preview
	if pv == nil || pv.NotPreviewed != "" || pv.Digest == "" {
		t.Fatalf("preview = %+v; want a preview with a digest", pv)
	}
	if pv.Rows != 25 || len(pv.Before) != warden.PreviewRowsShown || len(pv.After) != warden.PreviewRowsShown {
		t.Fatalf("preview rows = %d, before %d, after %d; want 25, 20, 20", pv.Rows, len(pv.Before), len(pv.After))
	}
	if got := strings.Join(pv.Columns, ","); got != "id,name,card,status" {
		t.Errorf("columns = %s", got)
	}
	if got := strings.Join(pv.Masked, ","); got != "card" {
		t.Errorf("masked = %s; want card", got)
	}
	b, a := cells(pv.Before), cells(pv.After)
	if !strings.Contains(b, "3,person 3,") || !strings.Contains(b, ",new") || !strings.Contains(a, "3,PERSON 3,") || !strings.Contains(a, ",gone") {
		t.Errorf("before:\n%s\nafter:\n%s\nwant person 3 new before, PERSON 3 gone after", b, a)
	}
	if strings.Contains(b+a, rawCard) || !strings.Contains(b, "0003") {
		t.Errorf("the card column is not masked with last4:\n%s", b)
	}
	f.recordingHasNo(t, rawCard)

	// The console's approvals page shows it to the reviewer, masked.
	page := f.consolePage(t)
	for _, want := range []string{`class="affected-rows">25<`, "the first 20 are shown", "card (masked)", "PERSON 3", "gone", "0003"} {
		if !strings.Contains(page, want) {
			t.Errorf("the approvals page does not show %q", want)
		}
	}
	if strings.Contains(page, rawCard) {
		t.Errorf("the approvals page shows a raw card number")
	}
}

// consolePage signs the dba in to the console (local reviewer on
// loopback) and returns the approvals page.
func (f *previewFixture) consolePage(t *testing.T) string {
	t.Helper()
	c, err := console.New(t.Context(), console.Options{Config: console.Config{SessionTTL: warden.Duration(time.Hour)},
		Local: f.dba, Approvals: f.store, Decider: f.svc})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	var body string
	for _, path := range []string{"/console/login", "/console/approvals"} {
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		body = string(b)
	}
	return body
}

func TestPreviewDeleteAndInsert(t *testing.T) {
	f := newPreviewFixture(t)
	before := f.dump(t)
	del := f.hold(t, "DELETE FROM people WHERE id > 27")
	if pv := del.Preview; pv == nil || pv.Rows != 3 || len(pv.Before) != 3 || len(pv.After) != 0 ||
		!strings.Contains(cells(pv.Before), "28,person 28,") || strings.Contains(cells(pv.Before), rawCard) {
		t.Errorf("DELETE preview = %+v", pv)
	}
	ins := f.hold(t, "INSERT INTO notes (id, body) SELECT id, name FROM people WHERE id <= 2")
	if pv := ins.Preview; pv == nil || pv.Rows != 2 || len(pv.Before) != 0 || cells(pv.After) != "1,person 1\n2,person 2" || pv.Digest == "" {
		t.Errorf("INSERT preview = %+v", pv)
	}
	if got := f.dump(t); got != before {
		t.Errorf("the previews changed the database:\n%s\n→\n%s", before, got)
	}
	// The approved INSERT runs.
	f.approve(t, ins.ID)
	if _, err := f.call(t, "INSERT INTO notes (id, body) SELECT id, name FROM people WHERE id <= 2", ins.ID); err != nil {
		t.Fatalf("approved INSERT = %v", err)
	}
	var n int
	if err := f.db.QueryRow(t.Context(), "SELECT count(*) FROM notes").Scan(&n); err != nil || n != 2 {
		t.Errorf("notes = %d, %v; want 2", n, err)
	}
}

func TestPreviewBindsTheApproval(t *testing.T) {
	const stmt = "UPDATE people SET status = 'gone' WHERE status = 'new' AND id <= 5"
	t.Run("unchanged runs", func(t *testing.T) {
		f := newPreviewFixture(t)
		appr := f.hold(t, stmt)
		if appr.Preview == nil || appr.Preview.Digest == "" || appr.Preview.Rows != 5 {
			t.Fatalf("preview = %+v; want 5 rows and a digest", appr.Preview)
		}
		f.approve(t, appr.ID)
		c, err := f.call(t, stmt, appr.ID)
		if err != nil {
			t.Fatalf("approved call = %v", err)
		}
		var n int
		if err := f.db.QueryRow(t.Context(), "SELECT count(*) FROM people WHERE status = 'gone'").Scan(&n); err != nil || n != 5 || c.Result.Count != 5 {
			t.Errorf("gone = %d (%v), count %d; want 5", n, err, c.Result.Count)
		}
	})
	for name, change := range map[string]string{
		"an affected row changed": "UPDATE people SET name = 'someone else' WHERE id = 3",
		"a row starts matching":   "INSERT INTO people VALUES (0, 'late', 'CARDSECRET-0000', 'new')",
		"a row stops matching":    "UPDATE people SET status = 'old' WHERE id = 2",
	} {
		t.Run(name, func(t *testing.T) {
			f := newPreviewFixture(t)
			appr := f.hold(t, stmt)
			f.approve(t, appr.ID)
			if _, err := f.db.Exec(t.Context(), change); err != nil {
				t.Fatal(err)
			}
			changed := f.dump(t)
			_, err := f.call(t, stmt, appr.ID)
			var we *warden.Error
			if !errors.As(err, &we) || we.Code != warden.Denied || !strings.Contains(we.Message, "changed since it was approved") {
				t.Fatalf("approved call after the data changed = %v; want it refused", err)
			}
			if got := f.dump(t); got != changed {
				t.Errorf("the refused call changed the table:\n%s\n→\n%s", changed, got)
			}
		})
	}
}

func TestPreviewRefusesWhatARollbackCannotUndo(t *testing.T) {
	f := newPreviewFixture(t)
	before := f.dump(t)
	appr := f.hold(t, "INSERT INTO logs (msg) VALUES ('hello')")
	pv := appr.Preview
	if pv == nil || !strings.Contains(pv.NotPreviewed, "nextval") || pv.Digest != "" || len(pv.After) != 0 {
		t.Fatalf("preview = %+v; want not previewed because of the serial's nextval default", pv)
	}
	if got := f.dump(t); got != before {
		t.Errorf("the sequence or table moved:\n%s\n→\n%s", before, got)
	}
	if page := f.consolePage(t); !strings.Contains(page, "Not previewed: a rollback may not undo all it does: public.logs has a nextval default") {
		t.Errorf("the approvals page does not say why it was not previewed")
	}
	// Not previewed, the approval binds the call alone: it runs.
	f.approve(t, appr.ID)
	if _, err := f.call(t, "INSERT INTO logs (msg) VALUES ('hello')", appr.ID); err != nil {
		t.Fatalf("approved call = %v", err)
	}
}

// TestPreviewForms: aliases, joins, partitions (a ctid repeats across
// partitions), and what is not previewed; none of it changes the database.
func TestPreviewForms(t *testing.T) {
	f := newPreviewFixture(t)
	before := f.dump(t)
	var parts string
	partsDump := func() string {
		var s string
		if err := f.db.QueryRow(t.Context(), "SELECT string_agg(format('%s|%s|%s|%s', tableoid::regclass, id, region, v), ';' ORDER BY region, id) FROM parts").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts = partsDump()
	for _, tc := range []struct {
		sql  string
		rows int64
		why  string
	}{
		{sql: "UPDATE people AS p SET status = n.body FROM notes n WHERE n.id = p.id", rows: 0},
		{sql: "UPDATE people p SET status = 'x' WHERE p.id IN (SELECT id FROM people WHERE id < 4)", rows: 3},
		{sql: "UPDATE parts SET v = v + 10 WHERE id = 1", rows: 2},
		{sql: "UPDATE parts SET region = 'us' WHERE id = 2 AND region = 'eu'", rows: 1},
		{sql: "DELETE FROM parts WHERE id = 1", rows: 2},
		{sql: "DELETE FROM people USING notes WHERE notes.id = people.id", rows: 0},
		{sql: "WITH ids AS (SELECT id FROM people WHERE id < 3) DELETE FROM people WHERE id IN (SELECT id FROM ids)", rows: 2},
		{sql: "UPDATE audited SET v = 2", why: "public.audited has triggers"},
		{sql: "INSERT INTO notes VALUES (nextval('logs_id_seq'), 'x')", why: "nextval"},
		{sql: "UPDATE notes SET body = 'x' WHERE pg_notify('c', 'm') IS NULL", why: "pg_notify"},
		{sql: "DELETE FROM notes WHERE pg_try_advisory_xact_lock(1) AND pg_advisory_lock(2) IS NULL", why: "advisory"},
		{sql: "WITH d AS (DELETE FROM notes RETURNING id) UPDATE people SET status = 'x' WHERE id IN (SELECT id FROM d)", why: "data-modifying WITH"},
		{sql: "INSERT INTO notes VALUES (1, 'a') ON CONFLICT (id) DO NOTHING", why: "ON CONFLICT"},
		{sql: "UPDATE people SET status = 'x' WHERE id IN (SELECT id FROM people_v)", why: "public.people_v is not a table"},
	} {
		a, err := f.q.Plan(f.agent, queryArgsJSONFor(t, tc.sql))
		if err != nil {
			t.Fatalf("Plan(%q) = %v", tc.sql, err)
		}
		pv, err := f.q.Preview(f.agent, a)
		if err != nil {
			t.Fatalf("Preview(%q) = %v", tc.sql, err)
		}
		switch {
		case pv == nil:
			t.Errorf("Preview(%q) = nil", tc.sql)
		case tc.why != "" && !strings.Contains(pv.NotPreviewed, tc.why):
			t.Errorf("Preview(%q) = %+v; want not previewed because %q", tc.sql, pv, tc.why)
		case tc.why == "" && (pv.NotPreviewed != "" || pv.Rows != tc.rows || pv.Digest == ""):
			t.Errorf("Preview(%q) = %+v; want %d rows and a digest", tc.sql, pv, tc.rows)
		}
	}
	if got := f.dump(t); got != before {
		t.Errorf("previews changed the database:\n%s\n→\n%s", before, got)
	}
	if got := partsDump(); got != parts {
		t.Errorf("previews changed parts:\n%s\n→\n%s", parts, got)
	}
}

func queryArgsJSONFor(t *testing.T, sqlText string) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"database": "shop", "sql": sqlText})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
