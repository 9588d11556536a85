package mcpbench_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// processes is the number of warden processes of BenchmarkMCPProcesses,
// as eight agents each with their own stdio warden would run.
const processes = 8

// BenchmarkMCPProcesses measures what sharing one recording store costs a
// fleet of stdio processes: eight warden processes (text-only results),
// each serving its own Go SDK client over stdio, each client calling the
// 100-row SELECT in a loop, first with a SQLite store each
// ("separate"), then all eight writing one store ("shared"). It reports
// calls/s of the eight together and, for shared, x-separate: its calls/s
// over the separate run of the same round (issue 14 wants ≥ 0.9).
// MCPBENCH_ROUNDS (default 3) sets the rounds; b.N is the calls of the
// eight together. Timings are never asserted.
func BenchmarkMCPProcesses(b *testing.B) {
	bins := buildBinaries(b)
	dsn := pgtest.New(b, benchSetup)
	env := append(os.Environ(), "BENCH_DSN="+dsn)
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("MCPBENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	for round := range rounds {
		var separate float64
		for _, shared := range []bool{false, true} {
			name := "separate"
			if shared {
				name = "shared"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				servers := make([]*server, processes)
				for i := range servers {
					store := filepath.Join(dir, fmt.Sprintf("warden-%d.db", i))
					if shared {
						store = filepath.Join(dir, "shared.db")
					}
					config := writeConfig(b, filepath.Join(dir, fmt.Sprintf("warden-%d.yaml", i)), store, "results: {structured_content: false}\n")
					servers[i] = startServer(b, fmt.Sprintf("warden %d (round %d)", i, round), env, "", bins.warden, "serve", "--config", config)
				}
				defer func() {
					for _, s := range servers {
						s.close()
					}
				}()
				sessions := make([]*mcp.ClientSession, len(servers))
				for i, s := range servers {
					sessions[i] = s.session
				}
				warm(b, sessions)
				v := loop(b, sessions)
				if shared && separate > 0 {
					b.ReportMetric(v/separate, "x-separate")
				} else {
					separate = v
				}
			})
		}
	}
}

// warm makes a few calls on each session (connections, caches, the
// first statement's preparation) before anything is measured.
func warm(b *testing.B, sessions []*mcp.ClientSession) {
	for _, s := range sessions {
		for range 5 {
			callOnce(b, s)
		}
	}
}

// loop makes b.N calls spread over sessions, each session calling in a
// loop, and returns the calls per second of all of them together.
func loop(b *testing.B, sessions []*mcp.ClientSession) float64 {
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, len(sessions))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, s := range sessions {
		wg.Go(func() {
			for range work {
				if _, err := call(s); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	perSec := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(perSec, "calls/s")
	return perSec
}
