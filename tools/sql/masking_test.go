package sql

import (
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/mask"
)

// TestMaskStrategiesInSQLMatchGo: each strategy computed by PostgreSQL in
// the masking subquery gives exactly what mask.Masker gives for the same
// text, so masking at the source changes where values are masked, not how
// they look.
func TestMaskStrategiesInSQLMatchGo(t *testing.T) {
	conn := connect(t, pgtest.New(t, ""))
	masker := mask.NewMasker([]byte("0123456789abcdef0123456789abcdef-key"))
	inner, outer := masker.HMACPads()
	values := []string{
		"4111 1111 1111 1111", "4111111111111111", "ada.lovelace@example.com", "a@b", "@example.com", "no-at-sign",
		"x@y@z.example", "078-05-1120", "+44 20 7946 0958", "abc", "abcd", "abcde", "", "ünïcödé-1234", "日本語テキスト",
		"a-b-c-d-e-f-g", "line\nbreak 12345", "tab\there 9876", "  spaced  ", "1234", "12345", "O'Brien 77",
	}
	strategies := []string{"redact", "null", "last4", "email", "hash", "partial(2,3)", "partial(0,0)", "partial(1,0)", "partial(6,4)"}
	for _, s := range strategies {
		r := &mask.Rule{Strategy: s}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		a := newAnalyzer(nil)
		a.nparams = 1
		sql := "SELECT " + a.maskExpr(r, "v") + " FROM (VALUES ($1::text)) t(v)"
		for _, v := range values {
			t.Run(fmt.Sprintf("%s/%q", s, v), func(t *testing.T) {
				args := []any{v}
				if s == "hash" {
					args = append(args, inner, outer)
				}
				var got *string
				if err := conn.QueryRow(t.Context(), sql, args...).Scan(&got); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
				want := masker.Apply(r, v)
				switch {
				case want == nil && got == nil:
				case want == nil || got == nil:
					t.Errorf("SQL %s(%q) = %v; Go = %v", s, v, deref(got), want)
				case *got != want.(string):
					t.Errorf("SQL %s(%q) = %q; Go = %q", s, v, *got, want)
				}
			})
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// TestBindRewritesIntoTheStatementThatRuns: the text that runs names
// everything with its schema.
func TestBindRewritesIntoTheStatementThatRuns(t *testing.T) {
	cases := []struct{ sql, want string }{
		{"SELECT lower(name) FROM orders WHERE id = 1", "SELECT pg_catalog.lower(name) FROM public.orders WHERE id OPERATOR(pg_catalog.=) 1"},
		{"SELECT x::text FROM sales.items", "SELECT x::pg_catalog.text FROM sales.items"},
		{"SELECT a FROM orders WHERE a = ANY (SELECT b FROM c)", "SELECT a FROM public.orders WHERE a OPERATOR(pg_catalog.=) ANY (SELECT b FROM public.c)"},
		{"WITH o AS (SELECT 1) SELECT * FROM o", "WITH o AS (SELECT 1) SELECT * FROM o"},
		{"INSERT INTO orders (id) VALUES (1) RETURNING id", "INSERT INTO public.orders (id) VALUES (1) RETURNING id"},
	}
	for _, tc := range cases {
		an, err := Analyze(tc.sql, testNames)
		if err != nil {
			t.Fatalf("Analyze(%q) = %v", tc.sql, err)
		}
		if an.Text != tc.want {
			t.Errorf("Analyze(%q).Text = %q; want %q", tc.sql, an.Text, tc.want)
		}
	}
	for _, sql := range []string{"SELECT json_scalar(1)", "CREATE VIEW v AS SELECT json_scalar(1)", "SELECT JSON_OBJECT('a': 1)", "SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a int PATH '$'))"} {
		if _, err := Analyze(sql, testNames); err == nil || !strings.Contains(err.Error(), "SQL/JSON") {
			t.Errorf("Analyze(%q) = %v; want a refusal of SQL/JSON syntax", sql, err)
		}
	}
}

// TestPlanSendsTheBackendNothing: once the catalog snapshot is loaded,
// planning needs no backend at all (it used to prepare the statement on
// it, before policy ran, which told an ungranted caller about columns and
// masks). Masking refusals wait until execution, after policy.
func TestPlanSendsTheBackendNothing(t *testing.T) {
	dsn := pgtest.New(t, `CREATE TABLE customers (id int PRIMARY KEY, name text, card text);
INSERT INTO customers VALUES (1, 'Ada', '4111 1111 1111 1111');`)
	b := newTestBackend(t, Config{DSN: dsn})
	cols := mask.Columns{"public.customers.card": {Strategy: "last4"}}
	if err := cols.Validate(); err != nil {
		t.Fatal(err)
	}
	b.SetMasking(cols, mask.NewMasker([]byte("0123456789abcdef0123456789abcdef")))
	q := &Query{Backends: Backends{"db": b}}
	ctx := callerContext(t)
	if _, err := b.catalog(ctx); err != nil {
		t.Fatal(err)
	}
	b.pool.Close() // from here on, any use of the backend fails
	for _, sql := range []string{
		"SELECT no_such_column FROM customers",
		"SELECT card FROM customers WHERE card LIKE '4%'",
		"UPDATE customers SET name = 'x' WHERE card LIKE '4111%'",
	} {
		a, err := q.Plan(ctx, queryArgsJSON(t, sql))
		if err != nil {
			t.Errorf("Plan(%q) with the backend closed = %v; want a plan", sql, err)
			continue
		}
		if strings.HasPrefix(sql, "UPDATE") {
			_, err := q.Execute(ctx, a)
			wantError(t, "Execute(masked target read)", err, "denied", "masked")
		}
	}
}

// TestSameTreeIgnoresOnlyPositions: the check that the text that runs
// parses to the judged tree tells real differences from moved positions.
func TestSameTreeIgnoresOnlyPositions(t *testing.T) {
	parse := func(sql string) *pg_query.ParseResult {
		tree, err := pg_query.Parse(sql)
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	cases := []struct {
		a, b string
		same bool
	}{
		{"SELECT a FROM t WHERE b = 1", "SELECT   a  FROM t  WHERE b = 1", true},
		{"SELECT 'x'::pg_catalog.void", "SELECT 'x'::void", true},
		{"SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 2", false},
		{"SELECT lower(a) FROM t", "SELECT public.lower(a) FROM t", false},
		{"SELECT a FROM public.t", "SELECT a FROM t", false},
		{"SELECT a OPERATOR(pg_catalog.=) b", "SELECT a = b", false},
	}
	for _, tc := range cases {
		if got := sameTree(parse(tc.a), parse(tc.b)); got != tc.same {
			t.Errorf("sameTree(%q, %q) = %v; want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// Binding work is bounded: views over masked data are inlined, and views
// that each read the one below twice expand 2^depth times. The statement
// is refused with a reason instead of keeping warden busy; a shallow chain
// over the same data is answered.
func TestBindWorkIsBounded(t *testing.T) {
	setup := `CREATE TABLE customers (id int PRIMARY KEY, card text);
INSERT INTO customers VALUES (1, '4111 1111 1111 1111');
CREATE VIEW v0 AS SELECT id, card FROM customers;`
	for i := 1; i <= 15; i++ {
		setup += fmt.Sprintf("\nCREATE VIEW v%d AS SELECT a.id, a.card FROM v%d a JOIN v%d b USING (id);", i, i-1, i-1)
	}
	dsn := pgtest.New(t, setup)
	b := newTestBackend(t, Config{DSN: dsn})
	cols := mask.Columns{"public.customers.card": {Strategy: "last4"}}
	if err := cols.Validate(); err != nil {
		t.Fatal(err)
	}
	b.SetMasking(cols, mask.NewMasker([]byte("0123456789abcdef0123456789abcdef")))
	q := &Query{Backends: Backends{"db": b}}

	_, err := q.Plan(callerContext(t), queryArgsJSON(t, "SELECT card FROM v15"))
	wantError(t, "Plan(2^15 inlined views)", err, warden.Invalid, "too large for warden to analyse")

	res := mustQuery(t, q, "SELECT card FROM v3")
	if got := rowsJSON(t, res); got != `["************1111"]` && !strings.Contains(got, "1111") || strings.Contains(got, "4111") {
		t.Errorf("SELECT card FROM v3 = %s; want the masked card", got)
	}
}
