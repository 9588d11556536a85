package sql

import (
	"strings"
	"testing"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/warden-mcp/warden"
)

// FuzzStatement feeds random and mutated SQL to everything warden does with
// an agent's statement before the backend sees it: the size and depth
// checks, PostgreSQL's parser and warden's analysis. None of it may crash
// the process (a crash inside the cgo parser cannot be recovered), and the
// analysis either answers or refuses with a coded error: never an error of
// another type, never a panic. The seeds include the shapes that used to
// crash the parser, so mutation starts next to the boundary.
func FuzzStatement(f *testing.F) {
	for _, s := range []string{
		"SELECT id, email FROM public.customers WHERE id = $1",
		"SELECT c.name, sum(o.total) OVER (PARTITION BY c.id) FROM customers c JOIN orders o USING (id)",
		"INSERT INTO orders (id) SELECT id FROM customers RETURNING *",
		"UPDATE orders SET total = total + 1 WHERE id IN (SELECT id FROM customers)",
		"WITH x AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM x",
		"EXPLAIN ANALYZE SELECT * FROM orders", "SELECT * FROM customers c, LATERAL (SELECT 1) l",
		"SELECT 1" + strings.Repeat("+1", 3000),
		"SELECT 1" + strings.Repeat("::int", 1500),
		"SELECT " + strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000),
		"SELECT " + strings.Repeat("CASE WHEN true THEN ", 500) + "1" + strings.Repeat(" END", 500),
		"SELECT " + strings.Repeat("ARRAY[", 500) + "1" + strings.Repeat("]", 500),
		"SELECT '" + strings.Repeat("''", 100) + "'",
		"SELECT $$" + strings.Repeat("x", 100) + "$$",
		"SELECT 1 /* unterminated", "SELECT E'\\'", "SELECT U&'\\0041'",
		"WITH RECURSIVE r AS (SELECT 1 UNION SELECT 1 FROM r) SELECT * FROM r",
		"SELECT json_scalar(1)", "SELECT 1 OPERATOR(pg_catalog.+) 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if checkSize(sql, DefaultMaxStatementBytes) != nil {
			return
		}
		an, err := Analyze(sql, testNames)
		if err != nil {
			var e *warden.Error
			if e = warden.AsError(err); e == nil || e.Code == warden.Internal && utf8.ValidString(sql) {
				t.Fatalf("Analyze(%q) = %v (%T); want an answer or a coded refusal", sql, err, err)
			}
			return
		}
		if an.Kind == "" {
			t.Fatalf("Analyze(%q) answered with no kind", sql)
		}
		// What runs is what was judged: the text sent to the server
		// parses (the binder also requires it to parse to the same tree).
		if _, err := pg_query.Parse(an.Text); err != nil {
			t.Fatalf("Analyze(%q).Text = %q does not parse: %v", sql, an.Text, err)
		}
	})
}
