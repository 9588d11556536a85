package sqlite_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// BenchmarkProcesses measures what eight stdio wardens, each a process of
// its own serving one call at a time, can record: each process writes
// start+finish pairs (with a result the size of a 100-row, 5-column
// SELECT), one call at a time, with the call's backend time between the
// two (WARDEN_BENCH_BACKEND, default 300µs: the database answering) and,
// with WARDEN_BENCH_WORK=N, N units of the rest of a call's CPU work
// (the MCP exchange, planning, encoding; a unit is SHA-256 over 64 KiB,
// about 40µs here), all at once, first with a store each, then all
// sharing one store. It reports the records/s of both and
// shared/separate (the goal: at least 0.9). Run it with -benchtime=1x; the
// processes are this test binary, re-run as TestProcessWriter.
func BenchmarkProcesses(b *testing.B) {
	const procs = 8
	pairs, backend := 1000, "300us"
	if v := os.Getenv("WARDEN_BENCH_PAIRS"); v != "" {
		pairs, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("WARDEN_BENCH_BACKEND"); v != "" {
		backend = v
	}
	work := os.Getenv("WARDEN_BENCH_WORK")
	// Three ways: a store each; one store, with the relay (relay.go); one
	// store, every process writing under the write lock itself.
	modes := []string{"separate", "shared", "shared-lock"}
	rates := map[string]float64{}
	for b.Loop() {
		for _, mode := range modes {
			dir := b.TempDir()
			paths := make([]string, procs)
			for i := range paths {
				paths[i] = filepath.Join(dir, fmt.Sprintf("warden-%d.db", i))
				if mode != "separate" {
					paths[i] = filepath.Join(dir, "warden.db")
				}
				// Created here, so the processes start on a store with
				// its key and head, as a warden restarted would.
				s, err := sqlite.Open(context.Background(), "sqlite:"+paths[i])
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			rates[mode] = runWriters(b, paths, pairs, backend, work, mode == "shared-lock")
		}
	}
	for _, mode := range modes {
		b.ReportMetric(rates[mode], mode+"-records/s")
	}
	b.ReportMetric(rates["shared"]/rates["separate"], "shared/separate")
	b.ReportMetric(rates["shared-lock"]/rates["separate"], "shared-lock/separate")
	b.ReportMetric(0, "ns/op")
}

// runWriters starts one writer process per path, lets them all go at
// once and returns the records/s they reached together.
func runWriters(b *testing.B, paths []string, pairs int, backend, work string, noRelay bool) float64 {
	type proc struct {
		cmd   *osexec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var ps []proc
	for i, path := range paths {
		cmd := osexec.Command(os.Args[0], "-test.run=^TestProcessWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "WARDEN_PROCESS_WRITER="+path, "WARDEN_PROCESS_PAIRS="+strconv.Itoa(pairs),
			"WARDEN_PROCESS_ID="+strconv.Itoa(i), "WARDEN_PROCESS_BACKEND="+backend, "WARDEN_PROCESS_WORK="+work,
			"WARDEN_PROCESS_NORELAY="+strconv.FormatBool(noRelay))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		ps = append(ps, proc{cmd, stdin, bufio.NewScanner(stdout)})
	}
	for _, p := range ps {
		if !p.out.Scan() || p.out.Text() != "ready" {
			b.Fatalf("a writer process did not start: %q", p.out.Text())
		}
	}
	start := time.Now()
	for _, p := range ps {
		io.WriteString(p.stdin, "go\n")
	}
	total := 0
	for _, p := range ps {
		if !p.out.Scan() {
			b.Fatalf("a writer process failed")
		}
		n, err := strconv.Atoi(strings.TrimPrefix(p.out.Text(), "done "))
		if err != nil {
			b.Fatalf("a writer process said %q", p.out.Text())
		}
		total += n
	}
	elapsed := time.Since(start)
	for _, p := range ps {
		p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			b.Fatalf("a writer process: %v", err)
		}
	}
	return float64(total) / elapsed.Seconds()
}

// TestProcessWriter is BenchmarkProcesses' writer process; it does
// nothing unless started by it.
func TestProcessWriter(t *testing.T) {
	path := os.Getenv("WARDEN_PROCESS_WRITER")
	if path == "" {
		t.Skip("run by BenchmarkProcesses")
	}
	pairs, _ := strconv.Atoi(os.Getenv("WARDEN_PROCESS_PAIRS"))
	id := os.Getenv("WARDEN_PROCESS_ID")
	backend, err := time.ParseDuration(os.Getenv("WARDEN_PROCESS_BACKEND"))
	if err != nil {
		t.Fatal(err)
	}
	work, _ := strconv.Atoi(os.Getenv("WARDEN_PROCESS_WORK"))
	chunk := make([]byte, 64<<10)
	ctx := context.Background()
	noRelay, _ := strconv.ParseBool(os.Getenv("WARDEN_PROCESS_NORELAY"))
	var commits, committed atomic.Int64
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{NoRelay: noRelay, OnCommit: func(records int, _ time.Duration) {
		commits.Add(1)
		committed.Add(int64(records))
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := &warden.Result{Count: 100}
	var rows []string
	for i := range 100 {
		rows = append(rows, fmt.Sprintf(`[%d,"item %d",%d.25,"2025-01-01T%02d:00:00Z",%v]`, i, i, i, i%24, i%2 == 0))
	}
	res.JSON = json.RawMessage(`{"columns":[{"name":"id","type":"integer","masked":false},{"name":"name","type":"text","masked":false},` +
		`{"name":"price","type":"numeric","masked":false},{"name":"added","type":"timestamp with time zone","masked":false},` +
		`{"name":"active","type":"boolean","masked":false}],"rows":[` + strings.Join(rows, ",") + `],"row_count":100,"truncated":false,"command":"SELECT 100","call_id":"c"}`)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		t.Fatal("no start signal")
	}
	var lat []time.Duration
	for i := range pairs {
		c := allowedCall(fmt.Sprintf("p%s-c%d", id, i), "", alice, t0)
		t1 := time.Now()
		if err := s.StartCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(t1))
		time.Sleep(backend)
		for range work {
			chunk[0] = sha256.Sum256(chunk)[0]
		}
		if err := s.FinishCall(ctx, finish(c, res, nil, time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("done %d\n", 2*pairs)
	if os.Getenv("WARDEN_PROCESS_DEBUG") != "" {
		slices.Sort(lat)
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprintf(os.Stderr, "start p50 %v p90 %v p99 %v max %v; cpu %v; committed %d records in %d commits\n",
			lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1],
			time.Duration(ru.Utime.Nano()+ru.Stime.Nano()), committed.Load(), commits.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
