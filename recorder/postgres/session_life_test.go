package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
)

// TestSessionCheckReadsOnlyStartAndEnd checks that the query that finds
// whether a session is open is answered from records_session_life, both
// planned for the session id it is given and planned once for every id (as
// the server may plan a statement pgx prepared), and never by reading the
// session's call records through records_session or the table.
func TestSessionCheckReadsOnlyStartAndEnd(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t, "")
	s, err := Open(ctx, url, recorder.Options{KeyDir: t.TempDir(), Instance: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)
	caller := &warden.Caller{Subject: "alice", Method: "local"}
	for i := range 20 {
		id := fmt.Sprintf("s%d", i)
		if err := s.StartSession(ctx, &warden.Session{ID: id, Transport: "http", Caller: caller, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.EndSession(ctx, id, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Session s1 is long: 2,000 calls, 4,000 records.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= 2000; i = next.Add(1) {
				c := &warden.Call{ID: fmt.Sprintf("c%d", i), SessionID: "s1", Caller: caller, Tool: "sql_query", Args: []byte(`{"sql":"SELECT 1"}`),
					Decision: &warden.Decision{Effect: warden.Allow, Rule: "r"}, StartedAt: t0, EndedAt: t0.Add(time.Millisecond)}
				if err := s.StartCall(ctx, c); err != nil {
					t.Error(err)
					return
				}
				if err := s.FinishCall(ctx, c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ANALYZE records`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `PREPARE session_life(text) AS `+sessionLifeSQL); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mode, explain string
		args                []any
	}{
		{"PlannedForItsSession", "force_custom_plan", `EXPLAIN (FORMAT JSON) ` + sessionLifeSQL, []any{"s1"}},
		{"PlannedForEverySession", "force_generic_plan", `EXPLAIN (FORMAT JSON) EXECUTE session_life('s1')`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+tc.mode); err != nil {
				t.Fatal(err)
			}
			var plan []byte
			if err := conn.QueryRow(ctx, tc.explain, tc.args...).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			nodes, indexes := planScans(t, plan)
			if !slices.Equal(indexes, []string{"records_session_life"}) || slices.Contains(nodes, "Seq Scan") {
				t.Errorf("EXPLAIN %s = scans %v, indexes %v; want records_session_life alone\n%s", sessionLifeSQL, nodes, indexes, plan)
			}
		})
	}
	var started, ended int
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var err error
		started, ended, err = countSession(ctx, tx, "s1")
		return err
	})
	if err != nil || started != 1 || ended != 0 {
		t.Errorf("countSession(s1) = %d, %d, %v; want 1 start, 0 ends", started, ended, err)
	}
}

// planScans returns the node types of an EXPLAIN (FORMAT JSON) plan, and
// the indexes it reads, each once.
func planScans(t *testing.T, text []byte) (nodes, indexes []string) {
	t.Helper()
	type node struct {
		Type  string `json:"Node Type"`
		Index string `json:"Index Name"`
		Plans []node `json:"Plans"`
	}
	var plans []struct{ Plan node }
	if err := json.Unmarshal(text, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN (FORMAT JSON) = %s, %v; want one plan", text, err)
	}
	var walk func(n node)
	walk = func(n node) {
		nodes = append(nodes, n.Type)
		if n.Index != "" && !slices.Contains(indexes, n.Index) {
			indexes = append(indexes, n.Index)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	return nodes, indexes
}
