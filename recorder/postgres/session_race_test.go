package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder/postgres"
)

// TestSessionStartedAndEndedOnce: callers that start, or end, the same
// session at the same moment record it once, whether they write through
// different instances sharing the store or through one (whose writer
// commits their records in one transaction). Each of 50 sessions is
// started by every caller at once, then ended the same way: exactly one
// StartSession and one EndSession per session return nil, every other
// says the session was already started or already ended, and the store
// holds one start and one end per session. With all sessions at once,
// each instance's transactions hold many sessions' records, in whatever
// order they came.
func TestSessionStartedAndEndedOnce(t *testing.T) {
	for _, tc := range []struct {
		name               string
		instances, callers int
		allAtOnce          bool
	}{
		{"AcrossInstances", 3, 1, false},
		{"WithinAnInstance", 1, 4, false},
		{"Both", 3, 2, false},
		{"AllSessionsAtOnce", 3, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testSessionOnce(t, tc.instances, tc.callers, tc.allAtOnce) })
	}
}

func testSessionOnce(t *testing.T, instances, callers int, allAtOnce bool) {
	const sessions = 50
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	var stores []*postgres.Store
	for i := range instances {
		stores = append(stores, open(t, url, keys, fmt.Sprintf("i%d", i)))
	}
	id := func(i int) string { return fmt.Sprintf("s%d", i) }
	// race runs do for sessions from..to-1 through every instance,
	// callers times each, all released at once, and counts per session
	// the calls that returned nil; it fails the test on an error that
	// does not say refusal.
	race := func(name string, from, to int, do func(s *postgres.Store, id string) error, refusal string, ok []int) {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			gate = make(chan struct{})
		)
		for i := from; i < to; i++ {
			for _, s := range stores {
				for range callers {
					wg.Go(func() {
						<-gate
						err := do(s, id(i))
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							ok[i]++
						case !strings.Contains(err.Error(), refusal):
							t.Errorf("%s(%s) = %v; want nil or %q", name, id(i), err, refusal)
						}
					})
				}
			}
		}
		close(gate)
		wg.Wait()
	}
	phase := func(name string, do func(s *postgres.Store, id string) error, refusal string) {
		ok := make([]int, sessions)
		if allAtOnce {
			race(name, 0, sessions, do, refusal, ok)
		} else {
			for i := range sessions {
				race(name, i, i+1, do, refusal, ok)
			}
		}
		wrong := 0
		for _, n := range ok {
			if n != 1 {
				wrong++
			}
		}
		if wrong > 0 {
			t.Errorf("%d of %d sessions: not exactly one of the %d concurrent %s calls returned nil (per session: %v)",
				wrong, sessions, instances*callers, name, ok)
		}
	}
	phase("StartSession", func(s *postgres.Store, id string) error {
		return s.StartSession(ctx, &warden.Session{ID: id, Transport: "http", Caller: &warden.Caller{Subject: "alice", Method: "local"}, StartedAt: t0})
	}, "already started")
	phase("EndSession", func(s *postgres.Store, id string) error {
		return s.EndSession(ctx, id, t0.Add(time.Minute))
	}, "already ended")

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, started, ended int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE starts <> 1), count(*) FILTER (WHERE ends <> 1) FROM (
		SELECT count(*) FILTER (WHERE kind = 'session_start') AS starts, count(*) FILTER (WHERE kind = 'session_end') AS ends
		FROM records WHERE kind IN ('session_start', 'session_end') GROUP BY session_id) s`).Scan(&n, &started, &ended); err != nil {
		t.Fatal(err)
	}
	if n != sessions || started != 0 || ended != 0 {
		t.Errorf("of %d sessions recorded (want %d): %d not started exactly once, %d not ended exactly once", n, sessions, started, ended)
	}
}
