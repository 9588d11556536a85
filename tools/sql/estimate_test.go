package sql

import (
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// TestEstimateAsksThePlannerWithoutExecuting: approval rules with
// rows_above rely on the planner's estimate; making it must not run the
// statement, and writes are estimated by the rows they would touch.
func TestEstimateAsksThePlannerWithoutExecuting(t *testing.T) {
	dsn := pgtest.New(t, `
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items SELECT i, 'x' FROM generate_series(1, 1000) i;
ANALYZE items;`)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, MaxRows: 20})}}
	ctx := callerContext(t)
	cases := []struct {
		name     string
		sql      string
		params   []string
		min, max int64
		none     bool
	}{
		{name: "DeleteWithFilter", sql: "DELETE FROM items WHERE id > 100", min: 850, max: 950},
		{name: "UpdateEveryRow", sql: "UPDATE items SET v = 'y'", min: 1000, max: 1000},
		{name: "BoundParameter", sql: "DELETE FROM items WHERE id > $1", params: []string{"900"}, min: 80, max: 120},
		{name: "SelectWithLimit", sql: "SELECT * FROM items LIMIT 5", min: 5, max: 5},
		// Beyond max_rows (20 here): the estimate is the query's own, not
		// the row cap warden runs it under.
		{name: "SelectBeyondMaxRows", sql: "SELECT * FROM items", min: 1000, max: 1000},
		{name: "DataModifyingCTE", sql: "WITH d AS (DELETE FROM items RETURNING id) SELECT count(*) FROM d", min: 1000, max: 1000},
		{name: "InsertSelect", sql: "INSERT INTO items SELECT id + 1000, v FROM items WHERE id <= 10", min: 8, max: 12},
		{name: "DDLHasNone", sql: "CREATE INDEX items_v ON items (v)", none: true},
		{name: "TruncateHasNone", sql: "TRUNCATE items", none: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := q.Plan(ctx, queryArgsJSON(t, tc.sql, tc.params...))
			if err != nil {
				t.Fatalf("Plan(%q) = %v", tc.sql, err)
			}
			n, ok, err := q.Estimate(ctx, a)
			switch {
			case err != nil:
				t.Fatalf("Estimate(%q) = %v", tc.sql, err)
			case tc.none && ok:
				t.Errorf("Estimate(%q) = %d; want none", tc.sql, n)
			case !tc.none && (!ok || n < tc.min || n > tc.max):
				t.Errorf("Estimate(%q) = %d, %v; want %d..%d", tc.sql, n, ok, tc.min, tc.max)
			}
		})
	}
	var n int
	if err := connect(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM items WHERE v = 'x'").Scan(&n); err != nil || n != 1000 {
		t.Errorf("rows after estimating = %d, %v; want 1000 untouched", n, err)
	}
	t.Run("UnreachableDatabaseIsUnavailable", func(t *testing.T) {
		a, err := q.Plan(ctx, queryArgsJSON(t, "DELETE FROM items"))
		if err != nil {
			t.Fatal(err)
		}
		q.Backends["db"].Close()
		if _, _, err := q.Estimate(ctx, a); warden.ErrorCode(err) != warden.Unavailable {
			t.Errorf("Estimate on a closed pool = %v; want Unavailable", err)
		}
	})
}
