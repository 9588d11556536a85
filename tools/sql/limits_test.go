package sql

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// Statements whose parse trees are deeper than warden lets the parser build.
// The operator chain crashed the process inside the cgo parser (SIGSEGV on
// its thread stack) before the depth bound existed; the others are the
// other shapes that stack levels (casts, operators of every kind, UNION,
// CASE, NOT, parentheses). Each fits under the default 64 KiB size limit,
// so the size check alone does not stop them.
func TestParseRefusesTreesTooDeepForTheParser(t *testing.T) {
	deep := map[string]string{
		"OperatorChain":     "SELECT 1" + strings.Repeat("+1", 30000),
		"CastChain":         "SELECT 1" + strings.Repeat("::int", 12000),
		"ConcatChain":       "SELECT 'a'" + strings.Repeat("||'a'", 12000),
		"NestedCase":        "SELECT " + strings.Repeat("CASE WHEN true THEN ", 2500) + "1" + strings.Repeat(" END", 2500),
		"NotChain":          "SELECT " + strings.Repeat("NOT ", 12000) + "true",
		"JSONArrowChain":    "SELECT '{}'::jsonb" + strings.Repeat("->'a'", 10000),
		"UnionChain":        "SELECT 1" + strings.Repeat(" UNION SELECT 1", 4000),
		"ParenthesesAndOps": strings.Repeat("SELECT (1+", 1) + strings.Repeat("(1+", 2000) + "1" + strings.Repeat(")", 2001),
		"AtTimeZoneChain":   "SELECT now()" + strings.Repeat(" AT TIME ZONE 'UTC'", 3000),
	}
	for name, sql := range deep {
		t.Run(name, func(t *testing.T) {
			if len(sql) > DefaultMaxStatementBytes {
				t.Fatalf("input is %d bytes, over the default size limit: it would not test the depth bound", len(sql))
			}
			_, err := parse(sql)
			if e := warden.AsError(err); err == nil || e.Rule != "sql.depth" {
				t.Fatalf("parse(%s) = %v; want a sql.depth refusal", name, err)
			}
		})
	}
}

// Large statements that people and agents do write are not refused:
// lists build breadth, not depth.
func TestParseAcceptsLargeButShallowStatements(t *testing.T) {
	list := func(n int, f func(i int) string, sep string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, sep)
	}
	itoa := func(i int) string { return strings.Repeat("9", 1+i%5) }
	wide := map[string]string{
		"LongInList":        "SELECT 1 FROM t WHERE id IN (" + list(8000, itoa, ",") + ")",
		"ManyColumns":       "SELECT " + list(3000, func(int) string { return "a + b * c" }, ", ") + " FROM t",
		"ManyOrConditions":  "SELECT 1 FROM t WHERE " + list(2500, func(i int) string { return "(a = " + itoa(i) + " AND b <> 'x')" }, " OR "),
		"LongCase":          "SELECT CASE " + list(2500, func(i int) string { return "WHEN a = " + itoa(i) + " THEN 'v'" }, " ") + " ELSE 'z' END FROM t",
		"ManyValuesRows":    "INSERT INTO t (a, b) VALUES " + list(3000, func(i int) string { return "(" + itoa(i) + ", 'x')" }, ", "),
		"DeepButReasonable": "SELECT " + strings.Repeat("(", 200) + "1" + strings.Repeat("+1)", 200),
	}
	for name, sql := range wide {
		t.Run(name, func(t *testing.T) {
			if len(sql) > DefaultMaxStatementBytes {
				t.Fatalf("input is %d bytes, over the default size limit", len(sql))
			}
			if _, err := parse(sql); err != nil {
				t.Fatalf("parse(%s) = %v; want it parsed", name, err)
			}
		})
	}
}

func TestCheckSizeRefusesBeforeAnyWork(t *testing.T) {
	err := checkSize(strings.Repeat("x", 2049), 2048)
	if e := warden.AsError(err); err == nil || e.Rule != "sql.size" || !strings.Contains(e.Message, "max_statement_bytes") {
		t.Fatalf("checkSize(2049 bytes, 2048) = %v; want a sql.size refusal naming max_statement_bytes", err)
	}
	if err := checkSize("SELECT 1", 2048); err != nil {
		t.Fatalf("checkSize(SELECT 1) = %v; want nil", err)
	}
}

func TestParseRefusesNUL(t *testing.T) {
	if _, err := parse("SELECT 1\x00; DROP TABLE t"); err == nil {
		t.Fatal("parse accepted a statement with a NUL byte")
	}
}

// TestLargeStatementsTakeTurns: while every slot for analysing large
// statements is taken (by other callers' large statements, as far as the
// call can tell), a large statement waits its turn and, after
// largeStatementWait, is refused as unavailable, unanalysed; an ordinary
// statement is answered meanwhile, from the same database; and once a slot
// is free the large statement is answered too, with its rows.
func TestLargeStatementsTakeTurns(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE nums AS SELECT generate_series(1, 20) AS n")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	ids := make([]string, 1500)
	for i := range ids {
		ids[i] = strconv.Itoa(i%40 + 1)
	}
	large := "SELECT n FROM nums WHERE n IN (" + strings.Join(ids, ", ") + ") ORDER BY n"
	if len(large) <= largeStatement {
		t.Fatalf("the large statement is %d bytes, not over %d", len(large), largeStatement)
	}
	ctx := callerContext(t)

	wait := largeStatementWait
	largeStatementWait = 50 * time.Millisecond
	t.Cleanup(func() { largeStatementWait = wait })
	var held []func()
	for range cap(largeAnalyses) {
		release, err := largeAnalysisSlot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	_, _, err := runQuery(ctx, t, q, large)
	wantError(t, "sql_query(large) with every slot taken", err, warden.Unavailable, "busy", "retry", "shorter")
	n, err := q.Backends["db"].catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.cached(analysisKey{large, 0}); ok {
		t.Error("the large statement was analysed while every slot was taken")
	}
	if got := rowsJSON(t, mustQuery(t, q, "SELECT n FROM nums WHERE n IN (2, 3) ORDER BY n")); got != `[[2],[3]]` {
		t.Errorf("an ordinary statement beside them returned %s; want [[2],[3]]", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = runQuery(cancelled, t, q, large)
	wantError(t, "sql_query(large) cancelled while it waited", err, warden.Unavailable, "cancelled", "analysed")

	for _, release := range held {
		release()
	}
	if got := rowsJSON(t, mustQuery(t, q, large)); got != `[[1],[2],[3],[4],[5],[6],[7],[8],[9],[10],[11],[12],[13],[14],[15],[16],[17],[18],[19],[20]]` {
		t.Errorf("the large statement with a slot free returned %s; want every n", got)
	}
	if len(largeAnalyses) != 0 {
		t.Errorf("%d slots are still taken after every analysis ended", len(largeAnalyses))
	}
}

// BenchmarkAnalyzeLarge analyses statements of about 48 KB, under the
// default max_statement_bytes, in three shapes: a long IN list, a long
// select list, and many short operator chains (the costliest found). It
// reports the CPU a token costs; docs/BENCHMARKS.md records the figures
// behind largeStatement.
func BenchmarkAnalyzeLarge(b *testing.B) {
	list := func(item, sep string, n int) string { return strings.TrimSuffix(strings.Repeat(item+sep, n), sep) }
	for _, c := range []struct{ name, sql string }{
		{"in-list", "SELECT a FROM t WHERE a IN (" + list("12345", ",", 8000) + ")"},
		{"select-list", "SELECT " + list("a", ",", 24000) + " FROM t"},
		{"chains", "SELECT " + list("1+1+1+1+1", ",", 4800)},
	} {
		b.Run(c.name, func(b *testing.B) {
			scan, err := pg_query.Scan(c.sql)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := Analyze(c.sql, testNames); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(len(scan.Tokens)), "µs/token")
			b.ReportMetric(float64(len(c.sql)), "bytes")
		})
	}
}
