package sql

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// A query over a billion rows answers with its first max_rows rows instead
// of running into the statement timeout: the server stops producing rows
// once warden has read what it will return. Before, the whole scan ran (and
// was read and thrown away) and the call failed with a timeout.
func TestQueryStopsAHugeScanAtMaxRows(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE k AS SELECT generate_series(1, 1000) AS n")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{
		DSN: dsn, MaxRows: 5, StatementTimeout: warden.Duration(3 * time.Second),
	})}}
	for _, sql := range []string{
		"SELECT a.n, b.n, c.n FROM k a, k b, k c",                                         // 10^9 rows through a nested loop
		"SELECT generate_series(1, 2000000000) AS g",                                      // a streaming set-returning function
		"SELECT a.n FROM k a, k b, k c WHERE a.n > $1",                                    // with a parameter
		"VALUES (1), (2), (3), (4), (5), (6), (7)",                                        // VALUES is a query too
		"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT i FROM r", // unbounded
	} {
		t.Run(sql, func(t *testing.T) {
			var params []string
			if strings.Contains(sql, "$1") {
				params = []string{`0`}
			}
			res := mustQuery(t, q, sql, params...)
			if len(res.Rows()) != 5 || !res.Truncated || res.RowCount != 5 {
				t.Fatalf("sql_query(%q) = %d rows, truncated %v, row_count %d; want 5, true, 5", sql, len(res.Rows()), res.Truncated, res.RowCount)
			}
			if res.Command != "SELECT 5" {
				t.Errorf("sql_query(%q) command = %q; want %q (the agent sent a query, not a FETCH)", sql, res.Command, "SELECT 5")
			}
			if !strings.Contains(res.Note, "max_rows") {
				t.Errorf("sql_query(%q) note = %q; want it to say max_rows cut the result", sql, res.Note)
			}
		})
	}
}

// The LIMIT that stops the server keeps what the query means: its columns
// and their names, its order, and trailing semicolons and comments.
func TestQueryRowLimitKeepsTheQuery(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE k AS SELECT generate_series(1, 10) AS n")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, MaxRows: 3})}}
	cases := []struct{ sql, rows, cols string }{
		{"SELECT n FROM k ORDER BY n DESC", "[[10],[9],[8]]", "n"},
		{"SELECT n FROM k ORDER BY n DESC;", "[[10],[9],[8]]", "n"},
		{"SELECT n FROM k ORDER BY n DESC; -- the end", "[[10],[9],[8]]", "n"},
		{"SELECT n FROM k ORDER BY n DESC -- the end", "[[10],[9],[8]]", "n"},
		{"SELECT n, n AS n FROM k ORDER BY n LIMIT 2", "[[1,1],[2,2]]", "n,n"},
		{"SELECT count(*) FROM k", "[[10]]", "count"},
		{"TABLE k ORDER BY n", "[[1],[2],[3]]", "n"},
		{"(SELECT 1 AS a) UNION ALL (SELECT 2) ORDER BY a", "[[1],[2]]", "a"},
		{"WITH w AS (SELECT n FROM k WHERE n > 8) SELECT * FROM w ORDER BY n", "[[9],[10]]", "n"},
		{"VALUES (1, 'a'), (2, 'b')", `[[1,"a"],[2,"b"]]`, "column1,column2"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			res := mustQuery(t, q, c.sql)
			if got := rowsJSON(t, res); got != c.rows {
				t.Errorf("sql_query(%q) rows = %s; want %s", c.sql, got, c.rows)
			}
			var names []string
			for _, col := range res.Columns {
				names = append(names, col.Name)
			}
			if got := strings.Join(names, ","); got != c.cols {
				t.Errorf("sql_query(%q) columns = %s; want %s", c.sql, got, c.cols)
			}
		})
	}
}

// The encoded result never exceeds max_result_bytes, whatever its cells
// hold: control characters (six bytes each once escaped), wide rows, one
// huge cell. The rows that fit are returned; a single row too large for
// the cap is refused as it arrives, without being read into memory, and
// the pool keeps serving.
func TestQueryCapsResultBytes(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE k AS SELECT generate_series(1, 100) AS n")
	const limit = 4096
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, MaxResultBytes: limit})}}
	for _, sql := range []string{
		"SELECT n, repeat('x', 200) FROM k ORDER BY n",
		"SELECT repeat(chr(1), 300) FROM k",
		`SELECT repeat('"\', 300) FROM k`,
		"SELECT array_agg(repeat('y', 100)) FROM k GROUP BY n % 50",
		"SELECT json_build_object('k', repeat('z', 300)) FROM k",
		"SELECT 10::numeric ^ 1000 FROM k",
	} {
		t.Run(sql, func(t *testing.T) {
			res := mustQuery(t, q, sql)
			enc, err := json.Marshal(res.Rows())
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) > limit {
				t.Errorf("sql_query(%q) rows encode to %d bytes; want at most %d", sql, len(enc), limit)
			}
			if !res.Truncated || len(res.Rows()) == 0 || !strings.Contains(res.Note, "max_result_bytes") {
				t.Errorf("sql_query(%q) = %d rows, truncated %v, note %q; want some rows, truncated, a note naming max_result_bytes", sql, len(res.Rows()), res.Truncated, res.Note)
			}
		})
	}
	t.Run("OneRowOverTheCap", func(t *testing.T) {
		_, _, err := runQuery(callerContext(t), t, q, "SELECT repeat('x', 50000000)")
		wantError(t, "one 50 MB cell", err, warden.Invalid, "max_result_bytes")
		for i := 0; i < 2*DefaultMaxConns; i++ {
			if got := rowsJSON(t, mustQuery(t, q, "SELECT count(*) FROM k")); got != "[[100]]" {
				t.Fatalf("after the refused row: count = %s; want [[100]]", got)
			}
		}
	})
	t.Run("SmallResultsUntouched", func(t *testing.T) {
		res := mustQuery(t, q, "SELECT n FROM k WHERE n <= 3 ORDER BY n")
		if res.Truncated || rowsJSON(t, res) != "[[1],[2],[3]]" || res.Note != "" {
			t.Errorf("small result = %s, truncated %v, note %q; want [[1],[2],[3]], not truncated, no note", rowsJSON(t, res), res.Truncated, res.Note)
		}
	})
}

// Nothing one call does on a pooled connection is visible to the next:
// the sequence state a write leaves behind (lastval, currval) is discarded
// with it. (Settings, locks, seeds and prepared statements cannot be
// created at all: the functions and statements that would are refused.)
func TestQueryLeavesNoSessionStateBehind(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE t (id serial PRIMARY KEY, v text)")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, MaxConns: 1})}}
	mustQuery(t, q, "INSERT INTO t (v) VALUES ('secret-row')")
	for _, sql := range []string{"SELECT lastval()", "SELECT currval('t_id_seq')"} {
		t.Run(sql, func(t *testing.T) {
			res, _, err := runQuery(callerContext(t), t, q, sql)
			if err == nil {
				t.Fatalf("sql_query(%q) after another call's INSERT = %s; want an error (no sequence state survives)", sql, rowsJSON(t, res))
			}
		})
	}
	for _, sql := range []string{
		"SELECT pg_advisory_lock(1)", "SELECT setseed(0.5)",
		"SELECT set_config('statement_timeout', '0', false)", "PREPARE p AS SELECT 1",
		"DECLARE c CURSOR WITH HOLD FOR SELECT 1", "LISTEN x",
	} {
		t.Run(sql, func(t *testing.T) {
			// Refused by the analyser, or planned as an op that only an
			// explicit grant allows (policy refuses it by default).
			a, err := q.Plan(callerContext(t), queryArgsJSON(t, sql))
			if err != nil {
				return
			}
			for _, op := range a.Ops {
				if op.Verb == warden.VerbExecute {
					return
				}
			}
			t.Fatalf("sql_query(%q) planned as %v; want it refused or needing a grant", sql, a.Ops)
		})
	}
}
