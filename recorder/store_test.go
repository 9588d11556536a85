package recorder_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// store is one implementation under test: how to open it, and how to run
// SQL on it behind warden's back (the triggers off), with %[1]s standing
// for the condition that selects the chain's record %[2]d.
type store struct {
	name   string
	open   func(t *testing.T) (recorder.Store, func(q string), func() (recorder.Store, error))
	record string // format: a WHERE condition for seq %d of the chain
}

var stores = []store{
	{
		name: "sqlite",
		open: func(t *testing.T) (recorder.Store, func(string), func() (recorder.Store, error)) {
			path := filepath.Join(t.TempDir(), "w.db")
			s, err := sqlite.Open(context.Background(), "sqlite:"+path)
			if err != nil {
				t.Fatal(err)
			}
			return s, func(q string) {
					db, err := sql.Open("sqlite", "file:"+path)
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					if _, err := db.Exec(`DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete; ` + q); err != nil {
						t.Fatal(err)
					}
				}, func() (recorder.Store, error) {
					return sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{ReadOnly: true})
				}
		},
		record: "seq = %d",
	},
	{
		name: "postgres",
		open: func(t *testing.T) (recorder.Store, func(string), func() (recorder.Store, error)) {
			url, keys := pgtest.New(t, ""), t.TempDir()
			s, err := postgres.Open(context.Background(), url, recorder.Options{KeyDir: keys, Instance: "a"})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(q string) {
					conn, err := pgx.Connect(context.Background(), url)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(context.Background())
					if _, err := conn.Exec(context.Background(), `ALTER TABLE records DISABLE TRIGGER USER; `+q); err != nil {
						t.Fatal(err)
					}
				}, func() (recorder.Store, error) {
					return postgres.Open(context.Background(), url, recorder.Options{KeyDir: keys, ReadOnly: true})
				}
		},
		record: "instance = 'a' AND seq = %d",
	},
}

var t0 = time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)

func fill(t *testing.T, s recorder.Store) {
	ctx := context.Background()
	caller := &warden.Caller{Subject: "alice", Method: "local"}
	if err := s.StartSession(ctx, &warden.Session{ID: "s1", Transport: "stdio", Caller: caller, StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		c := &warden.Call{ID: fmt.Sprintf("c%d", i), SessionID: "s1", Caller: caller, Tool: "sql_query", Args: []byte(`{"sql":"SELECT 1"}`),
			Action:    &warden.Action{Backend: "shop", Kind: "select", Statement: "SELECT 1"},
			Decision:  &warden.Decision{Effect: warden.Allow, Rule: "r"},
			StartedAt: t0, EndedAt: t0.Add(time.Millisecond), Result: &warden.Result{Structured: map[string]any{"n": i}, Count: 1}}
		if err := s.StartCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEveryStoreKeepsAndVerifiesTheRecording runs the same story on each
// store: what was written reads back, verifies, and every kind of change
// behind warden's back is caught.
func TestEveryStoreKeepsAndVerifiesTheRecording(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ctx := context.Background()
			s, _, _ := st.open(t)
			fill(t, s)
			sum, calls, err := s.Session(ctx, "s1")
			if err != nil || sum.Calls != 4 || len(calls) != 4 || calls[3].Statement != "SELECT 1" || calls[3].Outcome != "ok" {
				t.Fatalf("Session(s1) = %+v, %d calls, %v; want 4 calls read back", sum, len(calls), err)
			}
			if err := s.StartCall(ctx, &warden.Call{ID: "c1", StartedAt: t0}); err == nil {
				t.Error("StartCall of a call already started = nil; want an error")
			}
			if _, err := s.Audit(ctx, recorder.AuditOptions{}); err != nil {
				t.Fatalf("Audit = %v; want a clean recording", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
		for _, tc := range []struct {
			name   string
			tamper string
			want   recorder.Tamper
		}{
			{"Changed", `UPDATE records SET body = replace(body, 'SELECT 1', 'SELECT 2') WHERE ` + st.record, recorder.Changed},
			{"Deleted", `DELETE FROM records WHERE ` + st.record, recorder.Deleted},
			{"Truncated", `DELETE FROM records WHERE seq >= %[1]d`, recorder.Truncated},
		} {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				s, exec, reopen := st.open(t)
				fill(t, s)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				exec(fmt.Sprintf(tc.tamper, 4)) // record 4 is a call_start, which holds the statement
				ro, err := reopen()
				if err != nil {
					t.Fatal(err)
				}
				defer ro.Close()
				_, err = ro.Audit(context.Background(), recorder.AuditOptions{})
				var ce *recorder.ChainError
				if !errors.As(err, &ce) || ce.Tamper != tc.want {
					t.Errorf("Audit after %s = %v; want %s", tc.name, err, tc.want)
				}
			})
		}
	}
}
