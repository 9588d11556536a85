package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
)

var t0 = time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)

// keyDir returns a directory holding a signing key, as every instance of
// a fleet is given one.
func keyDir(t *testing.T) string {
	dir := t.TempDir()
	if _, err := recorder.CreateKeyFile(filepath.Join(dir, postgres.KeyName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func open(t *testing.T, url, keys, instance string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: keys, Instance: instance})
	if err != nil {
		t.Fatalf("Open(%s) = %v", instance, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func call(id string, at time.Time) *warden.Call {
	return &warden.Call{ID: id, Caller: &warden.Caller{Subject: "alice", Method: "local"}, Tool: "sql_query",
		Args:     []byte(`{"sql":"SELECT 1"}`),
		Action:   &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select", Statement: "SELECT 1"},
		Decision: &warden.Decision{Effect: warden.Allow, Rule: "r"}, StartedAt: at, EndedAt: at.Add(time.Millisecond),
		Result: &warden.Result{Structured: map[string]any{"rows": 1}, Count: 1}}
}

func TestInstancesStartedTogetherMigrateOnce(t *testing.T) {
	url, keys := pgtest.New(t, ""), keyDir(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: keys, Instance: fmt.Sprintf("i%d", i)})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("five instances started together: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM warden_migrations`).Scan(&n); err != nil || n != postgres.SchemaVersion() {
		t.Errorf("migrations applied = %d, %v; want %d, each once", n, err, postgres.SchemaVersion())
	}
}

func TestDSNNeverInErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	url := "postgres://warden:" + secret + "@127.0.0.1:1/warden?connect_timeout=2"
	_, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: t.TempDir(), Instance: "a"})
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("Open(unreachable) = %v; want an error naming neither password nor host", err)
	}
}

func TestOneInstanceNameOneWriter(t *testing.T) {
	url, keys := pgtest.New(t, ""), keyDir(t)
	open(t, url, keys, "a")
	if _, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: keys, Instance: "a"}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Open as instance a = %v; want a refusal", err)
	}
}

func TestInstancesMustShareTheKey(t *testing.T) {
	url := pgtest.New(t, "")
	a := open(t, url, keyDir(t), "a")
	if err := a.StartCall(context.Background(), call("c1", t0)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: keyDir(t), Instance: "b"}); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Errorf("Open with another key = %v; want a refusal", err)
	}
}

func TestApprovalDecidedOnAnotherInstance(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	a, b := open(t, url, keys, "a"), open(t, url, keys, "b")
	req := &warden.Approval{ID: "ap1", Rule: "r", Via: warden.ViaReviewer, Requester: &warden.Caller{Subject: "alice"}, CallID: "c1",
		Tool: "sql_query", CallHash: "h", Status: warden.ApprovalPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := a.CreateApproval(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ChangeApproval(ctx, warden.ApprovalChange{ID: "ap1", From: []warden.ApprovalStatus{warden.ApprovalPending},
		To: warden.ApprovalApproved, By: &warden.Caller{Subject: "bob"}, At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Approval(ctx, "ap1")
	if err != nil || got.Status != warden.ApprovalApproved || got.DecidedBy.Subject != "bob" {
		t.Fatalf("Approval on a after b approved = %+v, %v; want approved by bob", got, err)
	}
	hist, err := a.ApprovalHistory(ctx, "ap1")
	if err != nil || len(hist) != 2 {
		t.Errorf("ApprovalHistory = %+v, %v; want request and approval", hist, err)
	}
	// A row changed in the database, not by warden, releases nothing.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := a.CreateApproval(ctx, &warden.Approval{ID: "ap2", Rule: "r", Via: warden.ViaReviewer, Requester: &warden.Caller{Subject: "alice"},
		CallID: "c2", Tool: "sql_query", CallHash: "h2", Status: warden.ApprovalPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE approvals SET status = 'approved', body = replace(body, '"pending"', '"approved"') WHERE id = 'ap2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Approval(ctx, "ap2"); !errors.Is(err, warden.ErrApprovalForged) {
		t.Errorf("Approval(forged row) = %v; want ErrApprovalForged", err)
	}
}

// TestVerifyNamesEachInstance: two instances write into one store; verify
// checks both chains and names who wrote what; every kind of tampering is
// caught and attributed to the chain it hit.
func TestVerifyCatchesTamperingPerInstance(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper string // SQL run with the triggers off
		want   recorder.Tamper
	}{
		{"Changed", `UPDATE records SET body = replace(body, 'SELECT 1', 'SELECT 2') WHERE instance = 'b' AND seq = 3`, recorder.Changed},
		{"Deleted", `DELETE FROM records WHERE instance = 'b' AND seq = 3`, recorder.Deleted},
		{"Reordered", `UPDATE records SET seq = 999 WHERE instance = 'b' AND seq = 3;
			UPDATE records SET seq = 3 WHERE instance = 'b' AND seq = 4; UPDATE records SET seq = 4 WHERE instance = 'b' AND seq = 999`, ""},
		{"Inserted", `INSERT INTO records SELECT instance, seq + 1000, kind, session_id, 'x' || call_id, at, body, prev_hash, hash, mac FROM records WHERE instance = 'b' AND seq = 3`, ""},
		{"Truncated", `DELETE FROM records WHERE instance = 'b' AND seq > 4`, recorder.Truncated},
		{"MovedToAnotherChain", `UPDATE records SET instance = 'a', seq = seq + 100 WHERE instance = 'b' AND seq = 2`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, keys := pgtest.New(t, ""), keyDir(t)
			a, b := open(t, url, keys, "a"), open(t, url, keys, "b")
			for i := range 4 {
				if err := a.FinishCall(ctx, call(fmt.Sprintf("a%d", i), t0)); err != nil {
					t.Fatal(err)
				}
				if err := b.FinishCall(ctx, call(fmt.Sprintf("b%d", i), t0)); err != nil {
					t.Fatal(err)
				}
			}
			a.Close()
			b.Close()
			s := open(t, url, keys, "auditor")
			rep, err := s.Audit(ctx, recorder.AuditOptions{})
			if err != nil || len(rep.Chains) != 2 || rep.Chains[0].Instance != "a" || rep.Chains[1].Instance != "b" || rep.Records != 10 {
				t.Fatalf("Audit before tampering = %+v, %v; want chains a and b, 10 records", rep, err)
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `ALTER TABLE records DISABLE TRIGGER USER; `+tc.tamper); err != nil {
				t.Fatal(err)
			}
			_, err = s.Audit(ctx, recorder.AuditOptions{})
			var ce *recorder.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Audit after %s = %v; want a ChainError", tc.name, err)
			}
			if tc.want != "" && ce.Tamper != tc.want {
				t.Errorf("Audit after %s = %v (%s); want %s", tc.name, err, ce.Tamper, tc.want)
			}
			if ce.Instance == "" {
				t.Errorf("Audit after %s = %v; want the instance named", tc.name, err)
			}
		})
	}
}

func TestRecordsSurviveAcrossInstances(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	a, b := open(t, url, keys, "a"), open(t, url, keys, "b")
	sess := &warden.Session{ID: "s1", Transport: "http", Caller: &warden.Caller{Subject: "alice", Method: "local"}, StartedAt: t0}
	if err := a.StartSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := b.StartSession(ctx, sess); err == nil {
		t.Error("StartSession twice, through two instances = nil; want an error")
	}
	c := call("c1", t0)
	c.SessionID = "s1"
	if err := a.StartCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := b.StartCall(ctx, c); err == nil {
		t.Error("StartCall of one call id through two instances = nil; want an error")
	}
	if err := a.FinishCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := b.EndSession(ctx, "s1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	sum, calls, err := b.Session(ctx, "s1")
	if err != nil || sum.Calls != 1 || sum.EndedAt == nil || len(calls) != 1 || calls[0].Statement != "SELECT 1" || calls[0].Outcome != "ok" {
		t.Fatalf("Session(s1) = %+v, %+v, %v", sum, calls, err)
	}
	list, err := a.Sessions(ctx, recorder.SessionFilter{Subject: "alice"})
	if err != nil || len(list) != 1 {
		t.Errorf("Sessions = %+v, %v; want s1", list, err)
	}
	k1, _ := a.Secret(ctx, "approvals.state_key", 32)
	k2, _ := b.Secret(ctx, "approvals.state_key", 32)
	if string(k1) != string(k2) || len(k1) != 32 {
		t.Error("two instances derive different approval state keys")
	}
	// The refused duplicates left both chains whole: b wrote after its
	// refusals, and every chain verifies.
	if _, err := a.Audit(ctx, recorder.AuditOptions{}); err != nil {
		t.Errorf("Audit after refused duplicates = %v; want every chain to verify", err)
	}
}

func TestRetentionPrunesTheSharedStore(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	now := t0.Add(-40 * 24 * time.Hour)
	clock := func() time.Time { return now }
	a, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, Instance: "a", Clock: clock, CheckpointEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := open(t, url, keys, "b")
	for i := range 6 {
		if err := a.FinishCall(ctx, call(fmt.Sprintf("old%d", i), now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.FinishCall(ctx, call("b0", t0)); err != nil {
		t.Fatal(err)
	}
	now = t0
	if err := a.FinishCall(ctx, call("new", t0)); err != nil {
		t.Fatal(err)
	}
	p, err := a.Prune(ctx, t0.Add(-30*24*time.Hour))
	if err != nil || p.Records == 0 {
		t.Fatalf("Prune = %+v, %v; want old records pruned", p, err)
	}
	calls, err := a.Calls(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if strings.HasPrefix(c.ID, "old") && c.ID != "old5" {
			t.Errorf("call %s survived retention", c.ID)
		}
	}
	rep, err := a.Audit(ctx, recorder.AuditOptions{})
	if err != nil || len(rep.Chains) != 2 || rep.Chains[0].PrunedBefore != p.Anchor {
		t.Fatalf("Audit after pruning = %+v, %v; want both chains, a's anchored at %d", rep, err, p.Anchor)
	}
}

// TestSessionMustBeOpen: a session is updated and ended only between its
// start and its end, however many calls it recorded in between.
func TestSessionMustBeOpen(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.New(t, ""), keyDir(t), "a")
	sess := func(id string) *warden.Session {
		return &warden.Session{ID: id, Transport: "http", Caller: &warden.Caller{Subject: "alice", Method: "local"}, StartedAt: t0}
	}
	steps := []struct {
		name     string
		do       func() error
		ok       bool
		notFound bool
	}{
		{"UpdateNeverStarted", func() error { return s.UpdateSession(ctx, sess("s1")) }, false, true},
		{"EndNeverStarted", func() error { return s.EndSession(ctx, "s1", t0) }, false, true},
		{"Start", func() error { return s.StartSession(ctx, sess("s1")) }, true, false},
		{"StartAnother", func() error { return s.StartSession(ctx, sess("s2")) }, true, false},
		{"StartTwice", func() error { return s.StartSession(ctx, sess("s1")) }, false, false},
		{"Calls", func() error {
			for i := range 3 {
				c := call(fmt.Sprintf("c%d", i), t0)
				c.SessionID = "s1"
				if err := errors.Join(s.StartCall(ctx, c), s.FinishCall(ctx, c)); err != nil {
					return err
				}
			}
			return nil
		}, true, false},
		{"Update", func() error { return s.UpdateSession(ctx, sess("s1")) }, true, false},
		{"End", func() error { return s.EndSession(ctx, "s1", t0.Add(time.Minute)) }, true, false},
		{"EndTwice", func() error { return s.EndSession(ctx, "s1", t0.Add(2*time.Minute)) }, false, false},
		{"UpdateEnded", func() error { return s.UpdateSession(ctx, sess("s1")) }, false, false},
		{"StartEnded", func() error { return s.StartSession(ctx, sess("s1")) }, false, false},
		{"EndTheOther", func() error { return s.EndSession(ctx, "s2", t0.Add(time.Minute)) }, true, false},
	}
	for _, st := range steps {
		err := st.do()
		if (err == nil) != st.ok || errors.Is(err, recorder.ErrNotFound) != st.notFound {
			t.Errorf("%s = %v; want ok %v, ErrNotFound %v", st.name, err, st.ok, st.notFound)
		}
	}
}

// TestStoreWithoutTheSessionIndexGetsIt: a store written by a warden from
// before records_session_life gets the index when instances open it for
// writing, several at once, without a new schema version (which those
// wardens would refuse).
func TestStoreWithoutTheSessionIndexGetsIt(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	old := open(t, url, keys, "old")
	if err := old.StartSession(ctx, &warden.Session{ID: "s1", Transport: "http", Caller: &warden.Caller{Subject: "alice"}, StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP INDEX records_session_life`); err != nil {
		t.Fatal(err)
	}
	ro, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, ReadOnly: true})
	if err != nil {
		t.Fatalf("Open(read-only) without the index = %v", err)
	}
	ro.Close()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'records_session_life'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("indexes named records_session_life after a read-only open = %d, %v; want 0", n, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, Instance: fmt.Sprintf("i%d", i)})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("four instances opening the store together: %v", err)
	}
	var valid bool
	if err := conn.QueryRow(ctx, `SELECT count(*), bool_and(i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname = 'records_session_life'`).Scan(&n, &valid); err != nil || n != 1 || !valid {
		t.Errorf("records_session_life indexes = %d (valid %v), %v; want one, valid", n, valid, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM warden_migrations`).Scan(&n); err != nil || n != postgres.SchemaVersion() {
		t.Errorf("migrations applied = %d, %v; want %d: the index needs no new version", n, err, postgres.SchemaVersion())
	}
	s := open(t, url, keys, "new")
	if err := s.EndSession(ctx, "s1", t0.Add(time.Minute)); err != nil {
		t.Errorf("EndSession(s1) of the old store's session = %v", err)
	}
}
