package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// BenchmarkThreeInstances has three instances (three stores, each with its
// own pool and chain) record calls into one database, 32 writers each, as
// three busy warden processes would. It reports records/s together.
func BenchmarkThreeInstances(b *testing.B) {
	const instances, writers = 3, 32
	ctx := context.Background()
	url, keys := pgtest.New(b, ""), b.TempDir()
	if _, err := recorder.CreateKeyFile(filepath.Join(keys, postgres.KeyName)); err != nil {
		b.Fatal(err)
	}
	var stores []*postgres.Store
	for i := range instances {
		s, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, Instance: fmt.Sprintf("i%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	res := &warden.Result{Structured: map[string]any{"rows": [][]int{{1}, {2}, {3}}, "row_count": 3}, Count: 3}
	res.JSON, _ = json.Marshal(res.Structured)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range stores {
		for range writers {
			wg.Go(func() {
				for {
					i := next.Add(2)
					if i > int64(b.N)+1 {
						return
					}
					c := call(fmt.Sprintf("c%d", i), t0)
					c.Result = res
					if err := recordCall(ctx, s, c); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	b.ReportMetric(float64(next.Load())/time.Since(start).Seconds(), "records/s")
	var commits, records int64
	for _, s := range stores {
		c, r := s.BatchStats()
		commits, records = commits+c, records+r
	}
	if commits > 0 {
		b.ReportMetric(float64(records)/float64(commits), "records/commit")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOneCall is one instance's recording overhead per call (a start
// and a finish, each durable before it returns), one call at a time, on
// each store.
func BenchmarkOneCall(b *testing.B) {
	ctx := context.Background()
	open := map[string]func(b *testing.B) recorder.Store{
		"sqlite": func(b *testing.B) recorder.Store {
			s, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "w.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func(b *testing.B) recorder.Store {
			keys := b.TempDir()
			s, err := postgres.Open(ctx, pgtest.New(b, ""), recorder.Options{KeyDir: keys, Instance: "a"})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := open[name](b)
			defer s.Close()
			b.ResetTimer()
			for i := range b.N {
				c := call(fmt.Sprintf("c%d", i), t0)
				if err := s.StartCall(ctx, c); err != nil {
					b.Fatal(err)
				}
				if err := s.FinishCall(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLongSession checks that a session is open (UpdateSession, as
// EndSession does) once it has recorded no calls, and 5,000 (10,000
// records), and reports how long the session's one EndSession then took
// (end-µs): a long session should cost no more than a short one.
func BenchmarkLongSession(b *testing.B) {
	for _, calls := range []int64{0, 5000} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) { benchmarkSession(b, calls) })
	}
}

func benchmarkSession(b *testing.B, calls int64) {
	const writers = 32
	ctx := context.Background()
	url, keys := pgtest.New(b, ""), b.TempDir()
	s, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, Instance: "a"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sess := &warden.Session{ID: "s1", Transport: "http", Caller: &warden.Caller{Subject: "alice", Method: "local"}, StartedAt: t0}
	if err := s.StartSession(ctx, sess); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= calls; i = next.Add(1) {
				c := call(fmt.Sprintf("c%d", i), t0)
				c.SessionID = "s1"
				if err := recordCall(ctx, s, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	for b.Loop() {
		if err := s.UpdateSession(ctx, sess); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	if err := s.EndSession(ctx, "s1", t0.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds()), "end-µs")
}

// recordCall records c's start and then its finish.
func recordCall(ctx context.Context, s *postgres.Store, c *warden.Call) error {
	if err := s.StartCall(ctx, c); err != nil {
		return err
	}
	return s.FinishCall(ctx, c)
}
