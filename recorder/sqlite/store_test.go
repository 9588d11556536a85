package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// t0 is not in UTC on purpose: the store must record UTC.
var t0 = time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))

var (
	alice = &warden.Caller{Subject: "alice@example.com", Issuer: "https://idp.example.com/",
		Email: "alice@example.com", Groups: []string{"analysts"}, Method: "oidc"}
	bob = &warden.Caller{Subject: "bob@example.com", Groups: []string{"dba"}, Method: "local"}
)

func openStore(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open(sqlite:%s) = %v; want nil", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func session(id string, c *warden.Caller, at time.Time) *warden.Session {
	return &warden.Session{ID: id, Transport: "stdio", Caller: c, StartedAt: at}
}

// allowedCall is a call that policy allowed and that ran successfully.
func allowedCall(id, sessionID string, c *warden.Caller, at time.Time) *warden.Call {
	return &warden.Call{
		ID: id, SessionID: sessionID, Caller: c, Tool: "sql_query",
		Args: json.RawMessage(`{"database": "shop", "sql": "SELECT id FROM public.orders WHERE total > 10"}`),
		Action: &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select",
			Ops:       []warden.Op{{Verb: warden.VerbSelect, Object: "public.orders"}},
			Functions: []string{"count"},
			Statement: "SELECT id FROM public.orders WHERE total > 10",
			Purpose:   "find large orders"},
		Risk: warden.RiskRead,
		Decision: &warden.Decision{Effect: warden.Allow, Rule: "roles.analyst.grants[0]",
			Reasons: []string{"select on public.orders is granted to analyst"}},
		StartedAt: at,
	}
}

// finish completes c as the pipeline does after Execute.
func finish(c *warden.Call, res *warden.Result, err *warden.Error, took time.Duration) *warden.Call {
	c.Result, c.Err, c.EndedAt = res, err, c.StartedAt.Add(took)
	return c
}

// deniedCall is refused by policy before it runs: it has only a finish.
func deniedCall(id, sessionID string, c *warden.Caller, at time.Time) *warden.Call {
	call := allowedCall(id, sessionID, c, at)
	call.Args = json.RawMessage(`{"database":"shop","sql":"DELETE FROM public.orders"}`)
	call.Action.Kind, call.Action.Statement = "delete", "DELETE FROM public.orders"
	call.Action.Ops = []warden.Op{{Verb: warden.VerbDelete, Object: "public.orders"}}
	call.Risk = ""
	call.Decision = &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
		Reasons: []string{"delete on public.orders is not granted"},
		Allowed: []string{"select on public.orders", "select on public.customers"}}
	return finish(call, nil, call.Decision.Err().(*warden.Error), time.Millisecond)
}

func TestOpen(t *testing.T) {
	ctx := context.Background()

	t.Run("CreatesParentDirectoryAndPrivateFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err != nil {
			t.Fatalf("Open(sqlite:%s) = %v; want nil", path, err)
		}
		defer s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %v; want 0600", path, got)
		}
	})

	t.Run("AcceptsRelativeAndTripleSlashPaths", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		for _, url := range []string{"sqlite:rel.db", "sqlite:sub/rel.db", "sqlite://" + filepath.Join(dir, "abs.db")} {
			s, err := sqlite.Open(ctx, url)
			if err != nil {
				t.Errorf("Open(%s) = %v; want nil", url, err)
				continue
			}
			s.Close()
		}
		for _, p := range []string{"rel.db", "sub/rel.db", "abs.db"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("after Open, %s: %v", p, err)
			}
		}
	})

	t.Run("RejectsOtherURLsNamingTheProblem", func(t *testing.T) {
		tests := []struct {
			url, want string
		}{
			{"postgres://warden:s3cret@db/warden", `scheme "postgres" is not supported`},
			{"warden.db", "sqlite:PATH"},
			{"sqlite:", "has no path"},
			{"sqlite::memory:", "in-memory"},
			{"sqlite://host/warden.db", "sqlite://HOST is not supported"},
		}
		for _, tt := range tests {
			s, err := sqlite.Open(ctx, tt.url)
			if err == nil {
				s.Close()
				t.Errorf("Open(%q) = nil error; want one containing %q", tt.url, tt.want)
				continue
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q) = %q; want it to contain %q", tt.url, err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%q) = %q; must not repeat the URL's password", tt.url, err)
			}
		}
	})

	t.Run("ReopenKeepsRecords", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = sqlite.Open(ctx, "sqlite:"+path)
		if err != nil {
			t.Fatalf("second Open = %v; want nil", err)
		}
		defer s.Close()
		if _, _, err := s.Session(ctx, "s1"); err != nil {
			t.Errorf("Session(s1) after reopen = %v; want nil", err)
		}
		if got := userVersion(t, path); got != 4 {
			t.Errorf("user_version = %d; want 4", got)
		}
	})

	t.Run("RefusesNewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "warden.db")
		db := rawDB(t, path)
		if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err == nil {
			s.Close()
			t.Fatal("Open(store with user_version 99) = nil; want an error")
		}
		if !strings.Contains(err.Error(), "version 99") {
			t.Errorf("Open(store with user_version 99) = %q; want it to name the version", err)
		}
	})

	t.Run("RefusesReadOnlyFile", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		chmod(t, path, 0o444)
		chmod(t, dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755); os.Chmod(path, 0o644) })
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			f.Close()
			t.Skip("file permissions are not enforced for this user (root); MakeReadOnly tests the same failure below")
		}
		s, err = sqlite.Open(ctx, "sqlite:"+path)
		if err == nil {
			s.Close()
			t.Fatal("Open(read-only store) = nil; want an error")
		}
	})
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)

	if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
		t.Fatalf("StartSession = %v", err)
	}
	update := &warden.Session{ID: "s1", ClientName: "claude-code", ClientVersion: "2.1.0", ProtocolVersion: "2025-06-18"}
	if err := s.UpdateSession(ctx, update); err != nil {
		t.Fatalf("UpdateSession = %v", err)
	}

	allowed := allowedCall("c1", "s1", alice, t0.Add(time.Second))
	if err := s.StartCall(ctx, allowed); err != nil {
		t.Fatalf("StartCall(c1) = %v", err)
	}
	finish(allowed, &warden.Result{Structured: map[string]any{"rows": []any{[]any{1}, []any{2}}, "row_count": 2}, Count: 2, Truncated: true},
		nil, 1500*time.Microsecond)
	if err := s.FinishCall(ctx, allowed); err != nil {
		t.Fatalf("FinishCall(c1) = %v", err)
	}

	denied := deniedCall("c2", "s1", alice, t0.Add(2*time.Second))
	if err := s.FinishCall(ctx, denied); err != nil {
		t.Fatalf("FinishCall(c2) = %v", err)
	}

	failed := allowedCall("c3", "s1", alice, t0.Add(3*time.Second))
	if err := s.StartCall(ctx, failed); err != nil {
		t.Fatalf("StartCall(c3) = %v", err)
	}
	finish(failed, nil, warden.Wrap(warden.Internal, errors.New("pgconn: connection reset by peer"), "internal error"), 20*time.Millisecond)
	if err := s.FinishCall(ctx, failed); err != nil {
		t.Fatalf("FinishCall(c3) = %v", err)
	}
	if err := s.EndSession(ctx, "s1", t0.Add(time.Minute)); err != nil {
		t.Fatalf("EndSession = %v", err)
	}

	sum, calls, err := s.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("Session(s1) = %v", err)
	}
	ended := t0.Add(time.Minute).UTC()
	wantSum := &recorder.SessionSummary{ID: "s1", Transport: "stdio", ClientName: "claude-code", ClientVersion: "2.1.0",
		ProtocolVersion: "2025-06-18", Caller: *alice, StartedAt: t0.UTC(), EndedAt: &ended, Calls: 3, Denied: 1, Failed: 1}
	if !reflect.DeepEqual(sum, wantSum) {
		t.Errorf("Session(s1) summary = %+v; want %+v", sum, wantSum)
	}

	want := []recorder.CallRecord{
		{
			ID: "c1", SessionID: "s1", Tool: "sql_query", Caller: *alice,
			Args:    json.RawMessage(`{"database":"shop","sql":"SELECT id FROM public.orders WHERE total > 10"}`),
			Backend: "shop", Kind: "select", Statement: "SELECT id FROM public.orders WHERE total > 10",
			Purpose: "find large orders", Risk: "read",
			Ops: []warden.Op{{Verb: "select", Object: "public.orders"}}, Functions: []string{"count"},
			Decision: allowed.Decision, Outcome: "ok",
			Result: json.RawMessage(`{"row_count":2,"rows":[[1],[2]]}`), Count: 2, Truncated: true,
			StartedAt: t0.Add(time.Second).UTC(), EndedAt: t0.Add(time.Second + 1500*time.Microsecond).UTC(),
			DurationMS: 1.5, Status: "finished",
		},
		{
			ID: "c2", SessionID: "s1", Tool: "sql_query", Caller: *alice,
			Args:    json.RawMessage(`{"database":"shop","sql":"DELETE FROM public.orders"}`),
			Backend: "shop", Kind: "delete", Statement: "DELETE FROM public.orders", Purpose: "find large orders",
			Ops: []warden.Op{{Verb: "delete", Object: "public.orders"}}, Functions: []string{"count"},
			Decision: denied.Decision, Outcome: "denied",
			ErrorCode: "denied", ErrorMessage: "delete on public.orders is not granted",
			StartedAt: t0.Add(2 * time.Second).UTC(), EndedAt: t0.Add(2*time.Second + time.Millisecond).UTC(),
			DurationMS: 1, Status: "finished",
		},
		{
			ID: "c3", SessionID: "s1", Tool: "sql_query", Caller: *alice,
			Args:    json.RawMessage(`{"database":"shop","sql":"SELECT id FROM public.orders WHERE total > 10"}`),
			Backend: "shop", Kind: "select", Statement: "SELECT id FROM public.orders WHERE total > 10",
			Purpose: "find large orders", Risk: "read",
			Ops: []warden.Op{{Verb: "select", Object: "public.orders"}}, Functions: []string{"count"},
			Decision: failed.Decision, Outcome: "error",
			ErrorCode: "internal", ErrorMessage: "internal error", ErrorDetail: "pgconn: connection reset by peer",
			StartedAt: t0.Add(3 * time.Second).UTC(), EndedAt: t0.Add(3*time.Second + 20*time.Millisecond).UTC(),
			DurationMS: 20, Status: "finished",
		},
	}
	if len(calls) != len(want) {
		t.Fatalf("Session(s1) has %d calls; want %d", len(calls), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(calls[i], want[i]) {
			t.Errorf("Session(s1) call %d =\n%+v\nwant\n%+v", i, calls[i], want[i])
		}
	}

	all, err := s.Calls(ctx, "")
	if err != nil {
		t.Fatalf("Calls(\"\") = %v", err)
	}
	if !reflect.DeepEqual(all, calls) {
		t.Errorf("Calls(\"\") = %+v; want the session's calls %+v", all, calls)
	}
}

func TestSessionsFilterAndOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	// Started in this order; s4 is the newest.
	for i, sess := range []*warden.Session{
		session("s1", alice, t0),
		session("s2", bob, t0.Add(time.Hour)),
		session("s3", alice, t0.Add(2*time.Hour)),
		session("s4", alice, t0.Add(2*time.Hour+time.Nanosecond)),
	} {
		if err := s.StartSession(ctx, sess); err != nil {
			t.Fatalf("StartSession(%d) = %v", i, err)
		}
	}
	// A call and a denial in s3 show in its counts.
	if err := s.StartCall(ctx, allowedCall("c1", "s3", alice, t0.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCall(ctx, deniedCall("c2", "s3", alice, t0.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		filter recorder.SessionFilter
		want   []string
	}{
		{"AllNewestFirst", recorder.SessionFilter{}, []string{"s4", "s3", "s2", "s1"}},
		{"BySubject", recorder.SessionFilter{Subject: "alice@example.com"}, []string{"s4", "s3", "s1"}},
		{"BySubjectNobody", recorder.SessionFilter{Subject: "mallory@example.com"}, nil},
		{"SinceIsInclusive", recorder.SessionFilter{Since: t0.Add(time.Hour)}, []string{"s4", "s3", "s2"}},
		{"SinceInAnotherZone", recorder.SessionFilter{Since: t0.Add(2 * time.Hour).In(time.FixedZone("PST", -8*3600))}, []string{"s4", "s3"}},
		{"SinceWithNanoseconds", recorder.SessionFilter{Since: t0.Add(2*time.Hour + time.Nanosecond)}, []string{"s4"}},
		{"Limit", recorder.SessionFilter{Limit: 2}, []string{"s4", "s3"}},
		{"SubjectSinceLimit", recorder.SessionFilter{Subject: "alice@example.com", Since: t0.Add(time.Minute), Limit: 1}, []string{"s4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.Sessions(ctx, tt.filter)
			if err != nil {
				t.Fatalf("Sessions(%+v) = %v", tt.filter, err)
			}
			var got []string
			for _, sum := range list {
				got = append(got, sum.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Sessions(%+v) = %v; want %v", tt.filter, got, tt.want)
			}
		})
	}

	list, err := s.Sessions(ctx, recorder.SessionFilter{Subject: "alice@example.com", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := list[1]; got.ID != "s3" || got.Calls != 2 || got.Denied != 1 || got.Failed != 0 || got.EndedAt != nil {
		t.Errorf("Sessions()[1] = %+v; want s3 with 2 calls, 1 denied, 0 failed, not ended", got)
	}
}

func TestSessionUnknownIsNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if _, _, err := s.Session(ctx, "nope"); !errors.Is(err, recorder.ErrNotFound) {
		t.Errorf("Session(nope) = %v; want ErrNotFound", err)
	}
	if err := s.UpdateSession(ctx, &warden.Session{ID: "nope"}); !errors.Is(err, recorder.ErrNotFound) {
		t.Errorf("UpdateSession(nope) = %v; want ErrNotFound", err)
	}
	if err := s.EndSession(ctx, "nope", t0); !errors.Is(err, recorder.ErrNotFound) {
		t.Errorf("EndSession(nope) = %v; want ErrNotFound", err)
	}
}

func TestCallWithOnlyAStartIsRunning(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCall(ctx, allowedCall("c1", "s1", alice, t0)); err != nil {
		t.Fatal(err)
	}
	sum, calls, err := s.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Status != "running" || calls[0].Outcome != "" || !calls[0].EndedAt.IsZero() {
		t.Errorf("Session(s1) calls = %+v; want one call with status running, no outcome, no end", calls)
	}
	if sum.Calls != 1 {
		t.Errorf("Session(s1).Calls = %d; want 1", sum.Calls)
	}
	list, err := s.Sessions(ctx, recorder.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Calls != 1 {
		t.Errorf("Sessions() = %+v; want s1 with 1 call", list)
	}
}

func TestConcurrentCallsAreAllRecorded(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	const workers, perWorker = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*2)
	for w := range workers {
		wg.Go(func() {
			sid := fmt.Sprintf("s%d", w)
			if err := s.StartSession(ctx, session(sid, alice, t0)); err != nil {
				errs <- err
				return
			}
			for i := range perWorker {
				c := allowedCall(fmt.Sprintf("c%d-%d", w, i), sid, alice, t0.Add(time.Duration(i)*time.Second))
				if err := s.StartCall(ctx, c); err != nil {
					errs <- err
					continue
				}
				if err := s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"i": i}, Count: 1}, nil, time.Millisecond)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write = %v; want nil", err)
	}
	calls, err := s.Calls(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != workers*perWorker {
		t.Errorf("Calls(\"\") has %d calls; want %d", len(calls), workers*perWorker)
	}
	for _, c := range calls {
		if c.Status != "finished" || c.Outcome != "ok" {
			t.Errorf("call %s: status %s, outcome %s; want finished, ok", c.ID, c.Status, c.Outcome)
		}
	}
	list, err := s.Sessions(ctx, recorder.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range list {
		if sum.Calls != perWorker {
			t.Errorf("session %s has %d calls; want %d", sum.ID, sum.Calls, perWorker)
		}
	}
}

func TestWritesThatCannotBeMadeDurableFail(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		breakStore func(*sqlite.Store) error
	}{
		{"Closed", func(s *sqlite.Store) error { return s.Close() }},
		{"ReadOnly", sqlite.MakeReadOnly},
		{"DiskFull", func(s *sqlite.Store) error { return sqlite.FillDisk(ctx, s) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openStore(t)
			if err := tt.breakStore(s); err != nil {
				t.Fatalf("breaking the store: %v", err)
			}
			c := allowedCall("c1", "", alice, t0)
			// Large arguments need new pages, which a full disk cannot give.
			c.Args = json.RawMessage(`{"sql":"SELECT '` + strings.Repeat("x", 64<<10) + `'"}`)
			if err := s.StartCall(ctx, c); err == nil {
				t.Errorf("StartCall on a %s store = nil; want an error", tt.name)
			} else if strings.Contains(err.Error(), "xxxx") {
				t.Errorf("StartCall error %q repeats the arguments", err)
			}
			if err := s.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)); err == nil {
				t.Errorf("FinishCall on a %s store = nil; want an error", tt.name)
			}
			if n := countRows(t, path, ""); n != 0 {
				t.Errorf("after failed writes, the store has %d records; want 0", n)
			}
		})
	}
}

func TestRecordsAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	c := allowedCall("c1", "", bob, t0)
	if err := s.StartCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	before := rows(t, path, "c1")
	if err := s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{}}, nil, time.Second)); err != nil {
		t.Fatal(err)
	}
	after := rows(t, path, "c1")
	if len(before) != 1 || len(after) != 2 {
		t.Fatalf("records for c1: %d after StartCall, %d after FinishCall; want 1, 2", len(before), len(after))
	}
	if after[0] != before[0] {
		t.Errorf("call_start record changed:\n%s\nwas\n%s", after[0], before[0])
	}
	if !strings.Contains(after[1], "call_finish") {
		t.Errorf("second record = %s; want a call_finish", after[1])
	}

	for _, q := range []string{"UPDATE records SET body = '{}'", "DELETE FROM records"} {
		if err := sqlite.ExecWriter(ctx, s, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s = %v; want an append-only error", q, err)
		}
	}
	if got := rows(t, path, "c1"); !reflect.DeepEqual(got, after) {
		t.Errorf("records after refused UPDATE/DELETE = %v; want %v", got, after)
	}
}

func TestRepeatedRecordsAreRefused(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
		t.Fatal(err)
	}
	c := allowedCall("c1", "s1", alice, t0)
	if err := s.StartCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := s.EndSession(ctx, "s1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write func() error
	}{
		{"StartSessionTwice", func() error { return s.StartSession(ctx, session("s1", alice, t0)) }},
		{"StartCallTwice", func() error { return s.StartCall(ctx, c) }},
		{"FinishCallTwice", func() error { return s.FinishCall(ctx, c) }},
		{"EndSessionTwice", func() error { return s.EndSession(ctx, "s1", t0.Add(2*time.Hour)) }},
		{"UpdateEndedSession", func() error { return s.UpdateSession(ctx, &warden.Session{ID: "s1", ClientName: "x"}) }},
		{"CallWithoutID", func() error { return s.StartCall(ctx, &warden.Call{Tool: "sql_query"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.write(); err == nil {
				t.Errorf("%s = nil; want an error", tt.name)
			}
		})
	}
	if n := countRows(t, path, ""); n != 4 {
		t.Errorf("store has %d records; want 4", n)
	}
}

func TestRecordEncoding(t *testing.T) {
	ctx := context.Background()

	t.Run("IsDeterministicAndUTC", func(t *testing.T) {
		var bodies [2][]string
		for i := range bodies {
			s, path := openStore(t)
			c := allowedCall("c1", "", alice, t0)
			if err := s.StartCall(ctx, c); err != nil {
				t.Fatal(err)
			}
			res := &warden.Result{Structured: map[string]any{"z": 1, "a": []string{"x < y & z"}, "m": map[string]int{"b": 2, "a": 1}}}
			if err := s.FinishCall(ctx, finish(c, res, nil, time.Second)); err != nil {
				t.Fatal(err)
			}
			bodies[i] = rows(t, path, "c1")
		}
		if !reflect.DeepEqual(bodies[0], bodies[1]) {
			t.Errorf("the same call recorded twice differs:\n%v\n%v", bodies[0], bodies[1])
		}
		for _, want := range []string{
			`call_start|2025-03-01T12:00:00.000000000Z|`,
			`"result":{"a":["x < y & z"],"m":{"a":1,"b":2},"z":1}`,
			`"started_at":"2025-03-01T12:00:00.000000000Z"`,
		} {
			if !strings.Contains(strings.Join(bodies[0], "\n"), want) {
				t.Errorf("records = %v; want them to contain %s", bodies[0], want)
			}
		}
	})

	t.Run("ArgsThatAreNotJSONAreRecordedAsAString", func(t *testing.T) {
		s, _ := openStore(t)
		c := allowedCall("c1", "", alice, t0)
		c.Args = json.RawMessage(`{"sql": unterminated`)
		if err := s.FinishCall(ctx, finish(c, nil, warden.Errorf(warden.Invalid, "arguments are not valid JSON"), 0)); err != nil {
			t.Fatalf("FinishCall(invalid args) = %v; want nil", err)
		}
		calls, err := s.Calls(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := `"{\"sql\": unterminated"`; len(calls) != 1 || string(calls[0].Args) != want {
			t.Errorf("Calls() args = %s; want %s", calls[0].Args, want)
		}
	})

	t.Run("UnencodableResultIsWithheldButRecorded", func(t *testing.T) {
		s, _ := openStore(t)
		c := allowedCall("c1", "", alice, t0)
		if err := s.StartCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		err := s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"x": math.NaN()}}, nil, time.Millisecond))
		if err == nil {
			t.Fatal("FinishCall(NaN result) = nil; want an error so the result is withheld")
		}
		calls, err := s.Calls(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := calls[0]; got.Status != "finished" || got.Outcome != "error" || got.ErrorCode != "internal" || got.Result != nil {
			t.Errorf("Calls()[0] = %+v; want finished with an internal error and no result", got)
		}
	})
}

func BenchmarkStartFinishCall(b *testing.B) {
	ctx := context.Background()
	s, _ := openStore(b)
	if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
		b.Fatal(err)
	}
	res := &warden.Result{Structured: map[string]any{"columns": []string{"id"}, "rows": [][]int{{1}, {2}, {3}}, "row_count": 3}, Count: 3}
	i := 0
	for b.Loop() {
		c := allowedCall(fmt.Sprintf("c%d", i), "s1", alice, t0)
		i++
		if err := s.StartCall(ctx, c); err != nil {
			b.Fatal(err)
		}
		if err := s.FinishCall(ctx, finish(c, res, nil, time.Millisecond)); err != nil {
			b.Fatal(err)
		}
	}
}

// rawDB opens the store's file directly, bypassing the package.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rows returns the records of a call as "kind|at|body", in order.
func rows(t testing.TB, path, callID string) []string {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	rs, err := db.Query(`SELECT kind, at, body FROM records WHERE call_id = ? ORDER BY seq`, callID)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var kind, at, body string
		if err := rs.Scan(&kind, &at, &body); err != nil {
			t.Fatal(err)
		}
		out = append(out, kind+"|"+at+"|"+body)
	}
	return out
}

func countRows(t testing.TB, path, callID string) int {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM records WHERE ? = '' OR call_id = ?`, callID, callID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func userVersion(t testing.TB, path string) int {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func chmod(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
