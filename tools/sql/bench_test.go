package sql_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
	"github.com/warden-mcp/warden/tools/sql"
)

const benchSetup = `
CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2), added timestamptz, active boolean);
INSERT INTO items SELECT i, 'item ' || i, i * 1.25, timestamptz '2025-01-01' + i * interval '1 hour', i % 2 = 0
FROM generate_series(1, 100) i;`

const benchQuery = "SELECT id, name, price, added, active FROM items ORDER BY id"

// BenchmarkSelect100Rows compares a 100-row, 5-column SELECT through the
// whole pipeline (analyse, authorize, execute, record in SQLite) with the
// same query run directly with pgx, in the same process against the same
// database. docs/BENCHMARKS.md records the results.
func BenchmarkSelect100Rows(b *testing.B) {
	dsn := pgtest.New(b, benchSetup)
	ctx := context.Background()

	b.Run("pgx", func(b *testing.B) {
		timeRuns(b, pgxQuery(b, ctx, dsn))
	})

	for _, v := range []struct {
		name             string
		masked, approval bool
		rec              recording
	}{
		{"pipeline", false, false, recordSQLite},
		{"pipeline-masked", true, false, recordSQLite},
		{"pipeline-approval-rules", false, true, recordSQLite},
		// Without the store's commits, so the recording's share of the
		// pipeline's cost is separable: the records encoded and dropped,
		// then not even encoded.
		{"pipeline-record-encode-only", false, false, recordEncodeOnly},
		{"pipeline-record-none", false, false, recordNone},
	} {
		b.Run(v.name, func(b *testing.B) {
			timeRuns(b, pipelineCall(b, ctx, dsn, v.masked, v.approval, v.rec))
		})
	}

	// On a shared machine the p50 of two sub-benchmarks run a few
	// seconds apart can each move by a third; here every iteration runs
	// the pgx query and then the pipeline call, so both p50s, and their
	// ratio, come from the same moments. Each p50 is higher than its
	// side's run alone (the other side's garbage and cold caches land in
	// its calls); the ratio is what is steadier. "interleaved" records
	// as warden does; the other two separate the recording's share as
	// above.
	for _, v := range []struct {
		name string
		rec  recording
	}{
		{"interleaved", recordSQLite},
		{"interleaved-record-encode-only", recordEncodeOnly},
		{"interleaved-record-none", recordNone},
	} {
		b.Run(v.name, func(b *testing.B) { benchInterleaved(b, ctx, dsn, v.rec) })
	}
}

// benchInterleaved runs the pgx query and then the pipeline call (with
// rec's recording) in every iteration and reports both p50s and their
// ratio.
func benchInterleaved(b *testing.B, ctx context.Context, dsn string, rec recording) {
	query := pgxQuery(b, ctx, dsn)
	run := pipelineCall(b, ctx, dsn, false, false, rec)
	pgxD, pipeD := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		query()
		mid := time.Now()
		run()
		pgxD, pipeD = append(pgxD, mid.Sub(start)), append(pipeD, time.Since(mid))
	}
	pgx, pipe := p50(pgxD), p50(pipeD)
	b.ReportMetric(float64(pgx.Microseconds()), "pgx-p50-µs")
	b.ReportMetric(float64(pipe.Microseconds()), "pipeline-p50-µs")
	b.ReportMetric(float64(pipe)/float64(pgx), "p50-ratio")
}

// pgxQuery returns the baseline: the query through a pgx pool, every row
// read with rows.Values(). The pool is closed when b's run ends.
func pgxQuery(b *testing.B, ctx context.Context, dsn string) func() {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	query := func() {
		rows, err := pool.Query(ctx, benchQuery)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if rows.Err() != nil || n != 100 {
			b.Fatalf("rows = %d, err %v", n, rows.Err())
		}
	}
	query() // warm the statement cache
	return query
}

// recording is what benchPipeline's recorder does with each call.
type recording int

const (
	recordSQLite     recording = iota // commit each record to a SQLite store, as warden does
	recordEncodeOnly                  // encode each record as the store would, and drop it
	recordNone                        // nothing
)

// discardRecorder records nothing; with encode, it builds each record's
// text as the SQLite store does before writing it.
type discardRecorder struct{ encode bool }

func (d discardRecorder) StartCall(_ context.Context, c *warden.Call) error {
	if d.encode {
		_, err := recorder.Encode(recorder.CallToJSON(c))
		return err
	}
	return nil
}

func (d discardRecorder) FinishCall(_ context.Context, c *warden.Call) error {
	if d.encode {
		_, _, resultErr, err := recorder.FinishRecord(c, true)
		return errors.Join(resultErr, err)
	}
	return nil
}

// pipelineCall returns a function that runs the query through the
// pipeline; with masked, two of the five columns are masked at the source
// (last4 and hash, computed by PostgreSQL in the masking subquery); with
// approval, approval rules are configured that do not hold a select (the
// cost every call pays for them: its hash and the rule match). What it
// opened is closed when b's run ends.
func pipelineCall(b *testing.B, ctx context.Context, dsn string, masked, approval bool, rec recording) func() {
	cfg := sql.Config{DSN: dsn}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	backend, err := sql.NewBackend("shop", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(backend.Close)
	if masked {
		cols := mask.Columns{"public.items.name": {Strategy: "last4"}, "public.items.price": {Strategy: "hash"}}
		if err := cols.Validate(); err != nil {
			b.Fatal(err)
		}
		backend.SetMasking(cols, mask.NewMasker([]byte("0123456789abcdef0123456789abcdef")))
	}
	backends := sql.Backends{"shop": backend}
	pol, err := policy.New(policy.Config{"analyst": {
		Members: policy.Members{Groups: []string{"analysts"}},
		Grants:  []*policy.Grant{{Backend: "shop", Tables: []string{"public.items"}, Actions: []string{"select"}}},
	}}, map[string]string{"shop": "postgres"})
	if err != nil {
		b.Fatal(err)
	}
	store, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	reg, err := warden.NewRegistry(&sql.Query{Backends: backends}, &sql.Schema{Backends: backends, Grants: pol})
	if err != nil {
		b.Fatal(err)
	}
	var r warden.Recorder = store
	if rec != recordSQLite {
		r = discardRecorder{encode: rec == recordEncodeOnly}
	}
	seq := 0
	p := &warden.Pipeline{Tools: reg, Policy: pol, Recorder: r, Clock: time.Now,
		NewID: func() string { seq++; return "c-bench-" + time.Now().Format("150405.000000") + "-" + itoa(seq) }}
	if approval {
		rules := approvals.Config{
			{Name: "wipes", Backend: "shop", When: []string{"update_without_where", "delete_without_where"}, Approvers: &warden.Approvers{Groups: []string{"dba"}}},
			{Name: "writes", Backend: "shop", When: []string{"insert", "update", "delete", "ddl"}, Approvers: &warden.Approvers{User: true}},
		}
		if err := rules.Validate(map[string]string{"shop": "postgres"}); err != nil {
			b.Fatal(err)
		}
		p.Approvals = &approvals.Service{Rules: rules, Kinds: map[string]string{"shop": "postgres"}, Store: store,
			Key: []byte("0123456789abcdef0123456789abcdef"), Clock: time.Now, NewID: func() string { return "a-bench" }}
	}
	callCtx := warden.WithCaller(ctx, &warden.Caller{Subject: "bench@example.com", Groups: []string{"analysts"}, Method: "local"})
	args := json.RawMessage(`{"database":"shop","sql":"` + benchQuery + `"}`)
	run := func() {
		c, err := p.Run(callCtx, "sql_query", args)
		if err != nil {
			b.Fatal(err)
		}
		if c.Result.Count != 100 {
			b.Fatalf("rows = %d", c.Result.Count)
		}
	}
	run() // warm the catalog cache and the statement cache
	return run
}

// timeRuns runs run b.N times and reports the p50 and the process's CPU
// per run.
func timeRuns(b *testing.B, run func()) {
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for i := 0; i < b.N; i++ {
		start := time.Now()
		run()
		durations = append(durations, time.Since(start))
	}
	reportP50(b, durations)
}

func reportP50(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(p50(d).Microseconds()), "p50-µs")
}

func p50(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// processCPU is the CPU time the process used so far; per call, it is
// less noisy than the wall time on a shared machine, and it counts the
// recorder's writer goroutine too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(processCPU()-since)/float64(b.N)/1e3, "cpu-µs/op")
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
