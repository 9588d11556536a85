package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// BenchmarkConcurrentWriters has 32 goroutines record calls (a start and a
// finish each) as fast as they can, as 32 busy sessions would. It reports
// records/s and the time a writer waits for its record to be durable
// (committed) at the 50th and 99th percentile.
func BenchmarkConcurrentWriters(b *testing.B) {
	const writers = 32
	ctx := context.Background()
	s, _ := openStore(b)
	res := &warden.Result{Structured: map[string]any{"columns": []string{"id"}, "rows": [][]int{{1}, {2}, {3}}, "row_count": 3}, Count: 3}
	res.JSON, _ = json.Marshal(res.Structured)
	var next atomic.Int64
	waits := make([][]time.Duration, writers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for {
				i := next.Add(2)
				if i > int64(b.N)+1 {
					return
				}
				c := allowedCall(fmt.Sprintf("c%d", i), "", alice, t0)
				t := time.Now()
				if err := s.StartCall(ctx, c); err != nil {
					b.Error(err)
					return
				}
				t1 := time.Now()
				if err := s.FinishCall(ctx, finish(c, res, nil, time.Millisecond)); err != nil {
					b.Error(err)
					return
				}
				waits[w] = append(waits[w], t1.Sub(t), time.Since(t1))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(waits...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkVerify1M verifies a chain of a million records: half call
// starts, half call finishes with a small result, a checkpoint every 1000,
// with the signed head and every record MAC.
func BenchmarkVerify1M(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "warden.db")
	s, err := sqlite.Open(ctx, "sqlite:"+path)
	if err != nil {
		b.Fatal(err)
	}
	start := allowedCall("c", "s1", alice, t0)
	startBody, _ := json.Marshal(start)
	finishBody := string(startBody[:len(startBody)-1]) + `,"outcome":"ok","result":{"columns":[{"name":"id","type":"int8","masked":false}],"rows":[[1],[2],[3]],"row_count":3,"truncated":false,"command":"SELECT 3"},"count":3,"ended_at":"2025-03-01T12:00:00.001000000Z","duration_ms":1}`
	at := "2025-03-01T12:00:00.000000000Z"
	built := time.Now()
	err = sqlite.BulkAppend(s, n, func(i int) (string, string, string, string, string) {
		if i%2 == 0 {
			return "call_start", "s1", fmt.Sprintf("c%d", i/2), at, string(startBody)
		}
		return "call_finish", "s1", fmt.Sprintf("c%d", i/2), at, finishBody
	})
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := s.PublicKey()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d records in %s", n, time.Since(built).Round(time.Millisecond))
	r, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	// What `warden sessions verify` checks: chain, checkpoints, the
	// signed head and every record MAC.
	head, err := recorder.ReadHead(sqlite.HeadPath(path), pub)
	if err != nil {
		b.Fatal(err)
	}
	mac, err := sqlite.MACKey(path)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rep, err := r.VerifyWith(ctx, recorder.VerifyOptions{Key: pub, Head: head, MACKey: mac})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Records < n {
			b.Fatalf("verified %d records; want %d and the checkpoints", rep.Records, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
