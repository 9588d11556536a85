package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// The secret every name-resolution attack below tries to read: a table the
// caller has no grant for, reached through user code PostgreSQL would pick
// by its own name resolution.
const binderSecret = "SHADOWED-SECRET-81723"

const binderSchema = `
CREATE TABLE hidden (secret text);
INSERT INTO hidden VALUES ('` + binderSecret + `');
CREATE TABLE items (id int PRIMARY KEY, n int, label text);
INSERT INTO items VALUES (1, 1, 'one'), (2, 2, 'two');
-- A user function shadowing a built-in for another argument type.
CREATE FUNCTION public.lower(int) RETURNS text LANGUAGE sql AS $$ SELECT secret FROM public.hidden $$;
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT secret FROM public.hidden $$;
-- User operators, one new and one a built-in symbol for new types.
CREATE FUNCTION public.leak_eq(int, int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '%', (SELECT secret FROM public.hidden); END $$;
CREATE OPERATOR public.=== (leftarg = int, rightarg = int, function = public.leak_eq);
CREATE FUNCTION public.textplus(text, int) RETURNS text LANGUAGE sql AS $$ SELECT secret FROM public.hidden $$;
CREATE OPERATOR public.+ (leftarg = text, rightarg = int, function = public.textplus);
-- A cast whose function is user code.
CREATE TYPE public.wrapped AS (v int);
CREATE FUNCTION public.wrapped_text(public.wrapped) RETURNS text LANGUAGE sql AS $$ SELECT secret FROM public.hidden $$;
CREATE CAST (public.wrapped AS text) WITH FUNCTION public.wrapped_text(public.wrapped) AS IMPLICIT;
CREATE TABLE boxes (id int, w public.wrapped);
INSERT INTO boxes VALUES (1, row(1));
-- A domain whose CHECK runs user code.
CREATE FUNCTION public.leak_check(text) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '%', (SELECT secret FROM public.hidden); END $$;
CREATE DOMAIN public.checked AS text CHECK (public.leak_check(VALUE));
-- A function PostgreSQL 17's grammar turns into syntax an older server reads as a call.
CREATE FUNCTION public.json_scalar(int) RETURNS text LANGUAGE sql AS $$ SELECT secret FROM public.hidden $$;
-- An inheritance child without a grant.
CREATE TABLE parent_t (id int, v text);
CREATE TABLE child_t () INHERITS (parent_t);
INSERT INTO parent_t VALUES (1, 'parent row');
INSERT INTO child_t VALUES (2, '` + binderSecret + `');
-- Partitions of a granted partitioned table.
CREATE TABLE sales (id int, amount numeric) PARTITION BY RANGE (id);
CREATE TABLE sales_low PARTITION OF sales FOR VALUES FROM (0) TO (10);
CREATE TABLE sales_high PARTITION OF sales FOR VALUES FROM (10) TO (100);
INSERT INTO sales VALUES (1, 10), (2, 20), (11, 5);
-- The legitimate analytics data.
CREATE TABLE orders2 (id int PRIMARY KEY, customer text, amount numeric(10,2), placed date, tags jsonb);
INSERT INTO orders2 VALUES
  (1, 'a', 10, '2025-01-01', '{"k": 1}'), (2, 'a', 20, '2025-01-02', '{"k": 2}'),
  (3, 'b', 5, '2025-02-01', '{"k": 3}'), (4, 'c', 7.5, '2025-02-03', '{}');
CREATE TABLE tree (id int PRIMARY KEY, parent int);
INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2), (4, 1);
CREATE TABLE report (id serial PRIMARY KEY, customer text, total numeric(10,2));
`

func binderConfig(t *testing.T, dsn string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
backends:
  shop: {kind: postgres, dsn: %q, statement_timeout: 5s}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.items, public.boxes, public.parent_t, public.sales, public.orders2, public.tree], actions: [select]}
      - {backend: shop, tables: [public.report], actions: [select, insert]}
`, dsn)
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBinderRunsOnlyJudgedCode: through every name-resolution path, no
// ungranted code runs and the secret is never read.
func TestBinderRunsOnlyJudgedCode(t *testing.T) {
	config := binderConfig(t, pgtest.New(t, binderSchema))
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	cases := []struct {
		name, sql string
		refusal   string // when set, the call must be refused naming this
	}{
		{"ShadowedLowerForInt", "SELECT lower(n) FROM items", ""},
		{"ShadowedLowerLiteral", "SELECT lower(1)", ""},
		{"ShadowedUpperSameTypes", "SELECT upper(label) FROM items ORDER BY id", ""},
		{"QualifiedUserFunction", "SELECT public.lower(1)", "public.lower"},
		{"UnqualifiedUserOperator", "SELECT n === 1 FROM items", ""},
		{"QualifiedUserOperator", "SELECT 1 OPERATOR(public.===) 1", "public.==="},
		{"BuiltinSymbolUserOperator", "SELECT label + 1 FROM items", ""},
		{"CastWithUserFunction", "SELECT w::text FROM boxes", "public.wrapped_text"},
		{"ImplicitCastWithUserFunction", "SELECT 'x' || w FROM boxes", "public.wrapped_text"},
		{"CastLiteralToUserType", "SELECT row(1)::wrapped::text", "public.wrapped_text"},
		{"DomainCheckWithUserFunction", "SELECT 'x'::checked", "public.leak_check"},
		{"JSONScalarSyntax", "SELECT json_scalar(1)", "SQL/JSON"},
		{"JSONObjectSyntax", "SELECT JSON_OBJECT('a': 1)", "SQL/JSON"},
		{"StatActivity", "SELECT * FROM pg_stat_get_activity(NULL)", "pg_stat_get_activity"},
		{"StatActivityView", "SELECT query FROM pg_stat_activity", "pg_stat_activity"},
		{"HBAFileRules", "SELECT * FROM pg_hba_file_rules()", "pg_hba_file_rules"},
		{"HBAFileRulesView", "SELECT * FROM pg_hba_file_rules", "pg_hba_file_rules"},
		{"FileSettings", "SELECT * FROM pg_show_all_file_settings()", "pg_show_all_file_settings"},
		{"FunctionSource", "SELECT pg_get_functiondef('public.lower(int)'::regprocedure)", "pg_get_functiondef"},
		{"ViewSource", "SELECT pg_get_viewdef('public.items'::regclass)", "pg_get_viewdef"},
		{"ReadFile", "SELECT pg_read_file('/etc/passwd')", "pg_read_file"},
		{"LargeObjectImport", "SELECT lo_import('/etc/passwd')", "lo_import"},
		{"CurrentSetting", "SELECT current_setting('data_directory')", "current_setting"},
		{"SetConfig", "SELECT set_config('search_path', 'public', false)", "set_config"},
		{"Setseed", "SELECT setseed(0.5)", "setseed"},
		{"TxidCurrent", "SELECT txid_current()", "txid_current"},
		{"QueryToXML", "SELECT query_to_xml('SELECT * FROM public.hidden', true, false, '')", "query_to_xml"},
		{"HiddenTable", "SELECT * FROM hidden", "public.hidden"},
		{"HiddenTableInSubquery", "SELECT (SELECT secret FROM hidden) FROM items", "public.hidden"},
		{"InheritanceChildWithoutGrant", "SELECT * FROM parent_t", "public.child_t"},
		{"InheritanceChildInJoin", "SELECT count(*) FROM items i JOIN parent_t p ON p.id = i.id", "public.child_t"},
		{"ExtraParameterReadsNothing", "SELECT $1::text", ""},
		{"TextOfRegclassProbe", "SELECT 'public.hidden'::regclass::oid > 0", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": tc.sql})
			body, _ := json.Marshal(r.Body)
			if strings.Contains(r.Text+string(body), binderSecret) {
				t.Fatalf("%s read the secret: %s %s", tc.sql, r.Text, body)
			}
			if tc.refusal != "" && (!r.IsError || !strings.Contains(r.Text, tc.refusal)) {
				t.Errorf("%s = %v %q; want a refusal naming %s", tc.sql, r.IsError, r.Text, tc.refusal)
			}
		})
	}
	t.Run("ReadsOnlyTheParentWithONLY", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT v FROM ONLY parent_t"})
		if rows, _ := json.Marshal(r.rows()); r.IsError || string(rows) != `[["parent row"]]` {
			t.Errorf("SELECT v FROM ONLY parent_t = %v %s %s; want [[\"parent row\"]]", r.IsError, r.Text, rows)
		}
	})
	t.Run("PartitionsOfAGrantedTableCountAsGranted", func(t *testing.T) {
		for sql, want := range map[string]string{
			"SELECT sum(amount) FROM sales":      `[[35]]`,
			"SELECT sum(amount) FROM sales_high": `[[5]]`,
		} {
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql})
			if rows, _ := json.Marshal(r.rows()); r.IsError || string(rows) != want {
				t.Errorf("%s = %v %s %s; want %s", sql, r.IsError, r.Text, rows, want)
			}
		}
	})
	noRawValues(t, "the recording", recordingBytes(t, config), []string{binderSecret})
}

// TestLegitimateAnalyticsAreAnswered: ordinary analytics must be answered,
// with correct values; every refusal here is a false refusal.
func TestLegitimateAnalyticsAreAnswered(t *testing.T) {
	config := binderConfig(t, pgtest.New(t, binderSchema))
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	cases := []struct {
		sql    string
		params []any
		want   string
	}{
		{"SELECT customer, sum(amount) FROM orders2 GROUP BY customer ORDER BY customer", nil, `[["a",30],["b",5],["c",7.5]]`},
		{"SELECT o.id, i.label FROM orders2 o JOIN items i ON i.id = o.id ORDER BY 1", nil, `[[1,"one"],[2,"two"]]`},
		{"SELECT id, sum(amount) OVER (ORDER BY id) FROM orders2 ORDER BY id", nil, `[[1,10],[2,30],[3,35],[4,42.5]]`},
		{"SELECT id, rank() OVER (PARTITION BY customer ORDER BY amount DESC) FROM orders2 ORDER BY id", nil, `[[1,2],[2,1],[3,1],[4,1]]`},
		{"SELECT id, lag(amount) OVER (ORDER BY placed) FROM orders2 ORDER BY id", nil, `[[1,null],[2,10],[3,20],[4,5]]`},
		{"WITH t AS (SELECT customer, count(*) AS n FROM orders2 GROUP BY 1) SELECT max(n) FROM t", nil, `[[2]]`},
		{"WITH RECURSIVE d(id, depth) AS (SELECT id, 0 FROM tree WHERE parent IS NULL UNION ALL SELECT t.id, d.depth + 1 FROM tree t JOIN d ON t.parent = d.id) SELECT id, depth FROM d ORDER BY id", nil, `[[1,0],[2,1],[3,2],[4,1]]`},
		{"SELECT json_agg(json_build_object('id', id, 'c', customer) ORDER BY id) FROM orders2 WHERE id < 3", nil, `[[[{"c":"a","id":1},{"c":"a","id":2}]]]`},
		{"SELECT jsonb_object_agg(customer, n) FROM (SELECT customer, count(*) AS n FROM orders2 GROUP BY 1) s", nil, `[[{"a":2,"b":1,"c":1}]]`},
		{"SELECT sum((tags->>'k')::int) FROM orders2", nil, `[[6]]`},
		{"SELECT customer, date_trunc('month', placed)::date, sum(amount) FROM orders2 GROUP BY ROLLUP (customer, 2) ORDER BY 1, 2", nil, `[["a","2025-01-01",30],["a",null,30],["b","2025-02-01",5],["b",null,5],["c","2025-02-01",7.5],["c",null,7.5],[null,null,42.5]]`},
		{"SELECT customer, count(*) FROM orders2 GROUP BY GROUPING SETS ((customer), ()) ORDER BY 1", nil, `[["a",2],["b",1],["c",1],[null,4]]`},
		{"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders2", nil, `[[8.75]]`},
		{"SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY amount) FROM orders2", nil, `[[7.5]]`},
		{"SELECT i.id, x.total FROM items i CROSS JOIN LATERAL (SELECT sum(amount) AS total FROM orders2 o WHERE o.id <= i.id) x ORDER BY 1", nil, `[[1,10],[2,30]]`},
		{"SELECT count(*) FROM orders2 WHERE customer = $1 AND amount > $2", []any{"a", 15}, `[[1]]`},
		{"SELECT id FROM orders2 WHERE placed >= $1::date ORDER BY id", []any{"2025-02-01"}, `[[3],[4]]`},
		{"SELECT upper(customer), length(customer), coalesce(NULL, customer) FROM orders2 WHERE id = 1", nil, `[["A",1,"a"]]`},
		{"SELECT extract(year FROM placed), to_char(placed, 'YYYY-MM') FROM orders2 WHERE id = 3", nil, `[[2025,"2025-02"]]`},
		{"SELECT array_agg(id ORDER BY id) FILTER (WHERE amount > 6) FROM orders2", nil, `[[[1,2,4]]]`},
		{"SELECT string_agg(customer, ',' ORDER BY id) FROM orders2", nil, `[["a,a,b,c"]]`},
		{"SELECT DISTINCT customer FROM orders2 ORDER BY 1", nil, `[["a"],["b"],["c"]]`},
		{"SELECT customer FROM orders2 WHERE id = 1 UNION SELECT label FROM items ORDER BY 1", nil, `[["a"],["one"],["two"]]`},
		{"SELECT id FROM orders2 WHERE customer IN ('a', 'c') AND amount BETWEEN 5 AND 15 AND customer LIKE '_' ORDER BY 1", nil, `[[1],[4]]`},
		{"SELECT round(avg(amount), 2), greatest(1, 2), least(3, 4) FROM orders2", nil, `[[10.63,2,3]]`},
		{"SELECT count(*) FROM orders2 o WHERE EXISTS (SELECT 1 FROM items i WHERE i.id = o.id)", nil, `[[2]]`},
		{"SELECT id, CASE WHEN amount > 9 THEN 'big' ELSE 'small' END FROM orders2 ORDER BY id", nil, `[[1,"big"],[2,"big"],[3,"small"],[4,"small"]]`},
		{"SELECT x FROM generate_series(1, 3) AS x", nil, `[[1],[2],[3]]`},
		{"SELECT * FROM unnest(ARRAY[1, 2], ARRAY['a', 'b']) AS t(x, y) ORDER BY x", nil, `[[1,"a"],[2,"b"]]`},
		{"SELECT n, o FROM unnest(ARRAY[5, 6]) WITH ORDINALITY AS u(n, o)", nil, `[[5,1],[6,2]]`},
		{"SELECT jsonb_path_query_array(tags, '$.k') FROM orders2 WHERE id = 2", nil, `[[[2]]]`},
		{"SELECT tags ? 'k', tags @> '{\"k\": 1}' FROM orders2 WHERE id = 1", nil, `[[true,true]]`},
		{"SELECT 'happy'::text || ' ' || 1::text", nil, `[["happy 1"]]`},
		{"SELECT DISTINCT ON (customer) customer, id FROM orders2 ORDER BY customer, amount DESC", nil, `[["a",2],["b",3],["c",4]]`},
		{"SELECT id, sum(amount) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM orders2 ORDER BY id", nil, `[[1,10],[2,30],[3,25],[4,12.5]]`},
		{"SELECT id, ntile(2) OVER (ORDER BY id), cume_dist() OVER (ORDER BY id) FROM orders2 ORDER BY id", nil, `[[1,1,0.25],[2,1,0.5],[3,2,0.75],[4,2,1]]`},
		{"SELECT mode() WITHIN GROUP (ORDER BY customer) FROM orders2", nil, `[["a"]]`},
		{"SELECT string_agg(DISTINCT customer, '|' ORDER BY customer), bool_and(amount > 0) FROM orders2", nil, `[["a|b|c",true]]`},
		{"SELECT id FROM orders2 ORDER BY id DESC OFFSET 1 FETCH FIRST 2 ROWS ONLY", nil, `[[3],[2]]`},
		{"SELECT id FROM orders2 WHERE customer NOT IN ('a') AND id <> ALL (ARRAY[4]) ORDER BY id", nil, `[[3]]`},
		{"SELECT placed + interval '1 day', (placed - date '2025-01-01') FROM orders2 WHERE id = 2", nil, `[["2025-01-03T00:00:00",1]]`},
		{"SELECT d::date FROM generate_series(date '2025-01-01', date '2025-01-03', interval '1 day') AS d", nil, `[["2025-01-01"],["2025-01-02"],["2025-01-03"]]`},
		{"SELECT tags->>'k', tags #>> '{k}' FROM orders2 WHERE id = 3", nil, `[["3","3"]]`},
		{"SELECT o.id, e.key, e.value FROM orders2 o CROSS JOIN LATERAL jsonb_each(o.tags) e WHERE o.id = 1", nil, `[[1,"k",1]]`},
		{"SELECT x FROM jsonb_array_elements('[1, 2]'::jsonb) AS x", nil, `[[1],[2]]`},
		{"SELECT split_part('a-b-c', '-', 2), format('%s=%s', 'k', 1), regexp_replace('abc', 'b', 'X'), initcap('hello world')", nil, `[["b","k=1","aXc","Hello World"]]`},
		{"SELECT round(2.345, 2), trunc(2.9), ceil(2.1), width_bucket(5, 0, 10, 5), abs(-3)", nil, `[[2.35,2,3,3,3]]`},
		{"SELECT CAST(amount AS numeric(10,1)), amount::int FROM orders2 WHERE id = 4", nil, `[[7.5,8]]`},
		{"SELECT count(*) FROM orders2 WHERE EXISTS (SELECT 1 FROM tree WHERE tree.id = orders2.id) AND placed BETWEEN '2025-01-01' AND '2025-02-01'", nil, `[[3]]`},
		{"SELECT c, n FROM (VALUES ('x', 1), ('y', 2)) AS v(c, n) ORDER BY n DESC", nil, `[["y",2],["x",1]]`},
		{"SELECT id FROM orders2 o WHERE amount > (SELECT avg(amount) FROM orders2 i WHERE i.customer = o.customer) ORDER BY id", nil, `[[2]]`},
		{"SELECT regexp_split_to_table('a,b', ',')", nil, `[["a"],["b"]]`},
		{"INSERT INTO report (customer, total) SELECT customer, sum(amount) FROM orders2 GROUP BY customer ORDER BY customer RETURNING customer, total", nil, `[["a",30],["b",5],["c",7.5]]`},
		{"SELECT customer, total FROM report ORDER BY id", nil, `[["a",30],["b",5],["c",7.5]]`},
		{"EXPLAIN (COSTS OFF) SELECT count(*) FROM orders2", nil, `[["Aggregate"],["  -\u003e  Seq Scan on orders2"]]`},
	}
	refused := 0
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%02d", i), func(t *testing.T) {
			args := map[string]any{"database": "shop", "sql": tc.sql}
			if tc.params != nil {
				args["params"] = tc.params
			}
			r := call(t, c, "sql_query", args)
			if r.IsError {
				refused++
			}
			if rows, _ := json.Marshal(r.rows()); r.IsError || string(rows) != tc.want {
				t.Errorf("%s = %v %s\n got  %s\n want %s", tc.sql, r.IsError, r.Text, rows, tc.want)
			}
		})
	}
	if refused > 0 {
		t.Errorf("%d of %d legitimate statements were refused or failed", refused, len(cases))
	}
}
