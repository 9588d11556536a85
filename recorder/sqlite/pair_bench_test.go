package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
)

// benchResult is the result of a 100-row, 5-column SELECT, as
// BenchmarkProcesses records it.
func benchResult() *warden.Result {
	res := &warden.Result{Count: 100}
	var rows []string
	for i := range 100 {
		rows = append(rows, fmt.Sprintf(`[%d,"item %d",%d.25,"2025-01-01T%02d:00:00Z",%v]`, i, i, i, i%24, i%2 == 0))
	}
	res.JSON = json.RawMessage(`{"columns":[{"name":"id","type":"integer","masked":false},{"name":"name","type":"text","masked":false},` +
		`{"name":"price","type":"numeric","masked":false},{"name":"added","type":"timestamp with time zone","masked":false},` +
		`{"name":"active","type":"boolean","masked":false}],"rows":[` + strings.Join(rows, ",") + `],"row_count":100,"truncated":false,"command":"SELECT 100","call_id":"c"}`)
	return res
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPairs records calls (a start and a finish each, with a 100-row
// result) from c goroutines, each one call at a time, as c busy sessions
// would. It reports the wall time of a start+finish pair at the 50th
// percentile, records/s and the process's CPU time per record (the writer
// goroutine included).
func BenchmarkPairs(b *testing.B) {
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			ctx := context.Background()
			s, _ := openStore(b)
			res := benchResult()
			var next atomic.Int64
			waits := make([][]time.Duration, c)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
			var wg sync.WaitGroup
			for w := range c {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						call := allowedCall(fmt.Sprintf("c%d", i), "", alice, t0)
						t := time.Now()
						if err := s.StartCall(ctx, call); err != nil {
							b.Error(err)
							return
						}
						if err := s.FinishCall(ctx, finish(call, res, nil, time.Millisecond)); err != nil {
							b.Error(err)
							return
						}
						waits[w] = append(waits[w], time.Since(t))
					}
				})
			}
			wg.Wait()
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			all := slices.Concat(waits...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(2*len(all))/elapsed.Seconds(), "records/s")
				b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "pair-p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "pair-p99-µs")
				b.ReportMetric(float64(all[len(all)*999/1000].Nanoseconds())/1e3, "pair-p99.9-µs")
				slow := len(all) - slices.IndexFunc(all, func(d time.Duration) bool { return d > 2*time.Millisecond })
				if slow > len(all) {
					slow = 0
				}
				b.ReportMetric(float64(slow)/float64(len(all))*100, "%pairs>2ms")
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(2*len(all)), "cpu-µs/record")
			}
		})
	}
}
