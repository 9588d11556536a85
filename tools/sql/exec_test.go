package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// These tests drive sql_query and sql_schema in-process against a real
// PostgreSQL: Plan, then Execute, as the pipeline does once policy allows.

var testCaller = &warden.Caller{Subject: "exec-test", Method: "local"}

func callerContext(t *testing.T) context.Context {
	return warden.WithCaller(t.Context(), testCaller)
}

// newTestBackend validates cfg, creates backend "db" and closes it when the
// test ends (before pgtest drops the database).
func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Config.Validate() = %v", err)
	}
	b, err := NewBackend("db", cfg)
	if err != nil {
		t.Fatalf("NewBackend() = %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// queryArgsJSON builds sql_query arguments; params are raw JSON values.
func queryArgsJSON(t *testing.T, sql string, params ...string) json.RawMessage {
	t.Helper()
	args := map[string]any{"database": "db", "sql": sql}
	if len(params) > 0 {
		raw := make([]json.RawMessage, len(params))
		for i, p := range params {
			raw[i] = json.RawMessage(p)
		}
		args["params"] = raw
	}
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runQuery plans and executes one statement.
func runQuery(ctx context.Context, t *testing.T, q *Query, sql string, params ...string) (*QueryResult, *warden.Action, error) {
	t.Helper()
	a, err := q.Plan(ctx, queryArgsJSON(t, sql, params...))
	if err != nil {
		return nil, nil, err
	}
	res, err := q.Execute(ctx, a)
	if err != nil {
		return nil, a, err
	}
	qr, ok := res.Structured.(*QueryResult)
	if !ok {
		t.Fatalf("Execute(%q).Structured is %T; want *QueryResult", sql, res.Structured)
	}
	return qr, a, nil
}

// mustQuery is runQuery for statements that must succeed.
func mustQuery(t *testing.T, q *Query, sql string, params ...string) *QueryResult {
	t.Helper()
	res, _, err := runQuery(callerContext(t), t, q, sql, params...)
	if err != nil {
		t.Fatalf("sql_query(%q, %v) = %v; want success", sql, params, err)
	}
	return res
}

// rowsJSON is the JSON encoding of a result's rows, as a client sees it.
func rowsJSON(t *testing.T, res *QueryResult) string {
	t.Helper()
	b, err := json.Marshal(res.Rows())
	if err != nil {
		t.Fatalf("json.Marshal(rows) = %v", err)
	}
	return string(b)
}

// wantError checks that err is a *warden.Error with code and a message
// containing every one of contains.
func wantError(t *testing.T, what string, err error, code warden.Code, contains ...string) *warden.Error {
	t.Helper()
	var we *warden.Error
	if !errors.As(err, &we) {
		t.Fatalf("%s = %v (%T); want a *warden.Error with code %s", what, err, err, code)
	}
	if we.Code != code {
		t.Errorf("%s = %s: %q; want code %s", what, we.Code, we.Message, code)
	}
	for _, s := range contains {
		if !strings.Contains(we.Message, s) {
			t.Errorf("%s message = %q; want it to contain %q", what, we.Message, s)
		}
	}
	return we
}

// connect opens a separate connection to the test database, outside
// warden, for checking what the server really holds.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgx.Connect() = %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// eventually polls cond until it holds or the deadline passes; it observes
// server state, it does not wait for time to pass.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: still not true after %s", what, within)
		case <-tick.C:
		}
	}
}

const typesSetup = `
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE typed (
	id      bigint PRIMARY KEY,
	price   numeric(10,3),
	placed  timestamptz,
	feeling mood,
	tags    text[],
	doc     jsonb
);
INSERT INTO typed VALUES (9007199254740993, 19.990, '2025-01-02 03:04:05+00', 'sad', ARRAY['a', NULL], '{"n": 12345678901234567890}');
`

func TestQueryReturnsFaithfulJSON(t *testing.T) {
	dsn := pgtest.New(t, typesSetup)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	cases := []struct {
		name     string
		sql      string
		want     string // JSON encoding of the one cell
		wantType string
	}{
		{"NullIsNull", "SELECT NULL::integer", `null`, "integer"},
		{"SmallintIsNumber", "SELECT 7::int2", `7`, "smallint"},
		{"IntegerIsNumber", "SELECT (-42)::int4", `-42`, "integer"},
		{"BigintWithinSafeRangeIsNumber", "SELECT 9007199254740991::int8", `9007199254740991`, "bigint"},
		{"BigintBeyond2To53IsString", "SELECT 9007199254740993::int8", `"9007199254740993"`, "bigint"},
		{"NegativeBigintBeyond2To53IsString", "SELECT (-9007199254740993)::int8", `"-9007199254740993"`, "bigint"},
		{"BigintColumnBeyond2To53IsString", "SELECT id FROM typed", `"9007199254740993"`, "bigint"},
		{"NumericKeepsItsScale", "SELECT 19.990::numeric", `19.990`, "numeric"},
		{"NumericColumnKeepsItsScale", "SELECT price FROM typed", `19.990`, "numeric"},
		{"NegativeNumericIsNumber", "SELECT (-0.0001)::numeric", `-0.0001`, "numeric"},
		{"NumericWith30DigitsIsString", "SELECT 123456789012345678901234567890::numeric", `"123456789012345678901234567890"`, "numeric"},
		{"NumericWith30FractionDigitsIsString", "SELECT 0.123456789012345678901234567890::numeric", `"0.123456789012345678901234567890"`, "numeric"},
		{"NumericNaNIsString", "SELECT 'NaN'::numeric", `"NaN"`, "numeric"},
		{"NumericInfinityIsString", "SELECT '-Infinity'::numeric", `"-Infinity"`, "numeric"},
		{"DoubleIsNumber", "SELECT 1.25::float8", `1.25`, "double precision"},
		{"DoubleNaNIsString", "SELECT 'NaN'::float8", `"NaN"`, "double precision"},
		{"DoubleInfinityIsString", "SELECT 'Infinity'::float8", `"Infinity"`, "double precision"},
		{"DoubleNegativeInfinityIsString", "SELECT '-Infinity'::float8", `"-Infinity"`, "double precision"},
		{"RealKeepsItsShortestText", "SELECT 1.1::float4", `1.1`, "real"},
		{"BooleanIsBoolean", "SELECT true", `true`, "boolean"},
		{"TextKeepsUnicode", "SELECT 'héllo, 世界 🐘'::text", `"héllo, 世界 🐘"`, "text"},
		{"VarcharIsString", "SELECT 'x'::varchar(3)", `"x"`, "character varying"},
		{"TimestamptzIsRFC3339InUTC", "SELECT '2025-01-02 03:04:05.123456+02'::timestamptz", `"2025-01-02T01:04:05.123456Z"`, "timestamp with time zone"},
		{"TimestamptzColumnIsRFC3339InUTC", "SELECT placed FROM typed", `"2025-01-02T03:04:05Z"`, "timestamp with time zone"},
		{"TimestampHasNoZone", "SELECT '2025-01-02 03:04:05.123456'::timestamp", `"2025-01-02T03:04:05.123456"`, "timestamp without time zone"},
		{"DateIsDay", "SELECT '2025-01-02'::date", `"2025-01-02"`, "date"},
		{"TimeWithFraction", "SELECT '04:05:06.5'::time", `"04:05:06.5"`, "time without time zone"},
		{"TimeWithoutFraction", "SELECT '04:05:06'::time", `"04:05:06"`, "time without time zone"},
		{"IntervalAsPostgreSQLPrintsIt", "SELECT '1 year 2 mons 3 days 04:05:06.5'::interval", `"1 year 2 mons 3 days 04:05:06.5"`, "interval"},
		{"NegativeIntervalAsPostgreSQLPrintsIt", "SELECT '-1 year -2 mons -1 day'::interval", `"-1 years -2 mons -1 days"`, "interval"},
		{"ByteaIsBase64", `SELECT '\xdeadbeef'::bytea`, `"3q2+7w=="`, "bytea"},
		{"JSONObjectIsEmbedded", `SELECT '{"b": 1, "a": [true, null]}'::json`, `{"b":1,"a":[true,null]}`, "json"},
		{"JSONBObjectIsEmbedded", `SELECT '{"b": 1, "a": "x"}'::jsonb`, `{"a":"x","b":1}`, "jsonb"},
		{"JSONBArrayIsEmbedded", `SELECT '[1, "x", null]'::jsonb`, `[1,"x",null]`, "jsonb"},
		{"JSONBStringScalarIsEmbedded", `SELECT '"hi"'::jsonb`, `"hi"`, "jsonb"},
		{"JSONBNumberScalarKeepsItsText", `SELECT '3.50'::jsonb`, `3.50`, "jsonb"},
		{"JSONBNullScalarIsNull", `SELECT 'null'::jsonb`, `null`, "jsonb"},
		{"SQLNullJSONBIsNull", `SELECT NULL::jsonb`, `null`, "jsonb"},
		{"JSONBKeepsBigintDigits", `SELECT '{"n": 12345678901234567890}'::jsonb`, `{"n":12345678901234567890}`, "jsonb"},
		{"JSONBColumnKeepsBigintDigits", `SELECT doc FROM typed`, `{"n":12345678901234567890}`, "jsonb"},
		{"JSONKeepsBigintDigits", `SELECT '[12345678901234567890]'::json`, `[12345678901234567890]`, "json"},
		{"IntegerArrayWithNull", "SELECT ARRAY[1, NULL, 3]::int[]", `[1,null,3]`, "integer[]"},
		{"TextArrayWithNull", "SELECT ARRAY['a', NULL, 'c']::text[]", `["a",null,"c"]`, "text[]"},
		{"TextArrayColumn", "SELECT tags FROM typed", `["a",null]`, "text[]"},
		{"EmptyArray", "SELECT '{}'::int[]", `[]`, "integer[]"},
		{"NestedArrayKeepsItsShape", "SELECT ARRAY[[1, 2], [3, 4], [5, 6]]", `[[1,2],[3,4],[5,6]]`, "integer[]"},
		{"ThreeDimensionalArrayKeepsItsShape", "SELECT '{{{1},{2}},{{3},{4}}}'::int[]", `[[[1],[2]],[[3],[4]]]`, "integer[]"},
		{"NumericArrayKeepsEachElementExact", "SELECT ARRAY[1.50, 123456789012345678901234567890, NULL]::numeric[]", `[1.50,"123456789012345678901234567890",null]`, "numeric[]"},
		{"BigintArrayBeyond2To53IsStrings", "SELECT ARRAY[1, 9007199254740993]::int8[]", `[1,"9007199254740993"]`, "bigint[]"},
		{"DateArrayIsDays", "SELECT ARRAY['2025-01-02'::date]", `["2025-01-02"]`, "date[]"},
		{"TimestampArrayHasNoZone", "SELECT ARRAY['2025-01-02 03:04:05'::timestamp]", `["2025-01-02T03:04:05"]`, "timestamp without time zone[]"},
		{"TimestamptzArrayIsUTC", "SELECT ARRAY['2025-01-02 03:04:05+02'::timestamptz]", `["2025-01-02T01:04:05Z"]`, "timestamp with time zone[]"},
		{"JSONBArrayElementsAreEmbedded", `SELECT ARRAY['{"a": 1}'::jsonb, NULL, '"s"']`, `[{"a":1},null,"s"]`, "jsonb[]"},
		{"InetArrayIsAddresses", "SELECT ARRAY['10.0.0.1'::inet, '10.0.0.0/8'::inet]", `["10.0.0.1","10.0.0.0/8"]`, "inet[]"},
		{"UUIDIsCanonicalText", "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "uuid"},
		{"InetHostIsAddress", "SELECT '10.0.0.1'::inet", `"10.0.0.1"`, "inet"},
		{"InetWithPrefixKeepsIt", "SELECT '10.0.0.1/24'::inet", `"10.0.0.1/24"`, "inet"},
		{"InetIPv6", "SELECT '::1'::inet", `"::1"`, "inet"},
		{"CidrKeepsPrefix", "SELECT '10.0.0.0/8'::cidr", `"10.0.0.0/8"`, "cidr"},
		{"EnumIsLabel", "SELECT 'happy'::mood", `"happy"`, "public.mood"},
		{"EnumColumnIsLabel", "SELECT feeling FROM typed", `"sad"`, "public.mood"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := mustQuery(t, q, c.sql)
			if len(res.Rows()) != 1 || len(res.Rows()[0]) != 1 {
				t.Fatalf("sql_query(%q) rows = %s; want one row of one cell", c.sql, rowsJSON(t, res))
			}
			got, err := json.Marshal(res.Rows()[0][0])
			if err != nil {
				t.Fatalf("json.Marshal(%q cell %#v) = %v", c.sql, res.Rows()[0][0], err)
			}
			if string(got) != c.want {
				t.Errorf("sql_query(%q) cell = %s (Go %T); want %s", c.sql, got, res.Rows()[0][0], c.want)
			}
			if res.Columns[0].Type != c.wantType {
				t.Errorf("sql_query(%q) column type = %q; want %q", c.sql, res.Columns[0].Type, c.wantType)
			}
		})
	}
}

func TestQueryNamesTypeCreatedAfterCatalogSnapshot(t *testing.T) {
	dsn := pgtest.New(t, "")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	mustQuery(t, q, "SELECT 1") // takes the catalog snapshot
	if _, err := connect(t, dsn).Exec(t.Context(), "CREATE TYPE colour AS ENUM ('red')"); err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, q, "SELECT 'red'::colour")
	if got := res.Columns[0].Type; got != "public.colour" {
		t.Errorf("sql_query(SELECT 'red'::colour) column type = %q; want %q", got, "public.colour")
	}
	if got := rowsJSON(t, res); got != `[["red"]]` {
		t.Errorf("sql_query(SELECT 'red'::colour) rows = %s; want %s", got, `[["red"]]`)
	}
}

func TestQueryBindsJSONParams(t *testing.T) {
	dsn := pgtest.New(t, `
		CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2), added timestamptz);
		INSERT INTO items VALUES (1, 'apple', 1.25, '2025-01-01T00:00:00Z'), (2, 'pear', 19.99, '2025-02-01T00:00:00Z');`)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	cases := []struct {
		name   string
		sql    string
		params []string
		want   string // JSON rows
	}{
		{"IntegerIntoInteger", "SELECT $1::int + 1", []string{`41`}, `[[42]]`},
		{"IntegerIntoIntegerColumn", "SELECT name FROM items WHERE id = $1", []string{`2`}, `[["pear"]]`},
		{"IntegerIntoText", "SELECT $1::text", []string{`42`}, `[["42"]]`},
		{"IntegerIntoUntypedParameter", "SELECT $1", []string{`42`}, `[["42"]]`},
		{"IntegerIntoLimit", "SELECT id FROM items ORDER BY id LIMIT $1", []string{`1`}, `[[1]]`},
		{"BigintBeyond2To53KeepsItsDigits", "SELECT $1::int8", []string{`9007199254740993`}, `[["9007199254740993"]]`},
		{"FloatIntoDouble", "SELECT $1::float8 * 2", []string{`1.25`}, `[[2.5]]`},
		{"FloatIntoNumericKeepsItsText", "SELECT $1::numeric", []string{`19.990`}, `[[19.990]]`},
		{"FloatIntoNumericColumn", "SELECT name FROM items WHERE price = $1", []string{`19.99`}, `[["pear"]]`},
		{"ExponentIntoNumeric", "SELECT $1::numeric", []string{`1.5e3`}, `[[1500]]`},
		{"HugeNumberIntoNumeric", "SELECT $1::numeric", []string{`123456789012345678901234567890`}, `[["123456789012345678901234567890"]]`},
		{"StringIntoText", "SELECT $1::text || '!'", []string{`"hi"`}, `[["hi!"]]`},
		{"StringIntoTextColumn", "SELECT id FROM items WHERE name = $1", []string{`"apple"`}, `[[1]]`},
		{"StringWithQuoteIsData", "SELECT $1::text", []string{`"'; DROP TABLE items; --"`}, `[["'; DROP TABLE items; --"]]`},
		{"StringIntoTimestamptz", "SELECT $1::timestamptz", []string{`"2025-01-02T03:04:05+02:00"`}, `[["2025-01-02T01:04:05Z"]]`},
		{"StringIntoTimestamptzColumn", "SELECT name FROM items WHERE added > $1", []string{`"2025-01-15T00:00:00Z"`}, `[["pear"]]`},
		{"StringIntoNumeric", "SELECT $1::numeric + 0.01", []string{`"19.99"`}, `[[20.00]]`},
		{"ObjectIntoJSONB", "SELECT $1::jsonb -> 'a'", []string{`{"a": [1, 2]}`}, `[[[1,2]]]`},
		{"ObjectIntoJSONBKeepsBigintDigits", "SELECT $1::jsonb", []string{`{"n": 12345678901234567890}`}, `[[{"n":12345678901234567890}]]`},
		{"ArrayIntoJSONB", "SELECT jsonb_array_length($1::jsonb)", []string{`[1, 2, 3]`}, `[[3]]`},
		{"NullIntoInteger", "SELECT $1::int IS NULL", []string{`null`}, `[[true]]`},
		{"NullIntoText", "SELECT coalesce($1::text, 'none')", []string{`null`}, `[["none"]]`},
		{"BoolIntoBoolean", "SELECT NOT $1::bool", []string{`true`}, `[[false]]`},
		{"BoolIntoText", "SELECT $1::text", []string{`false`}, `[["false"]]`},
		{"SeveralParams", "SELECT $1::int + $2::int, $3::text", []string{`1`, `2`, `"three"`}, `[[3,"three"]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := mustQuery(t, q, c.sql, c.params...)
			if got := rowsJSON(t, res); got != c.want {
				t.Errorf("sql_query(%q, %v) rows = %s; want %s", c.sql, c.params, got, c.want)
			}
		})
	}

	t.Run("ValueOfWrongTypeIsInvalid", func(t *testing.T) {
		_, _, err := runQuery(callerContext(t), t, q, "SELECT $1::int", `"x"`)
		wantError(t, `sql_query("SELECT $1::int", ["x"])`, err, warden.Invalid, `invalid input syntax for type integer`)
	})
}

func TestQueryCapsRows(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE nums AS SELECT generate_series(1, 20) AS n")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, MaxRows: 5})}}
	cases := []struct {
		name          string
		sql           string
		wantRows      string
		wantTruncated bool
	}{
		{"TruncatesBeyondMaxRows", "SELECT n FROM nums ORDER BY n", `[[1],[2],[3],[4],[5]]`, true},
		{"ExactlyMaxRowsIsNotTruncated", "SELECT n FROM nums ORDER BY n LIMIT 5", `[[1],[2],[3],[4],[5]]`, false},
		{"FewerRowsIsNotTruncated", "SELECT n FROM nums ORDER BY n LIMIT 2", `[[1],[2]]`, false},
		{"NoRowsIsNotTruncated", "SELECT n FROM nums WHERE n > 100", `[]`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := callerContext(t)
			a, err := q.Plan(ctx, queryArgsJSON(t, c.sql))
			if err != nil {
				t.Fatalf("Plan(%q) = %v", c.sql, err)
			}
			res, err := q.Execute(ctx, a)
			if err != nil {
				t.Fatalf("Execute(%q) = %v", c.sql, err)
			}
			qr := res.Structured.(*QueryResult)
			if got := rowsJSON(t, qr); got != c.wantRows {
				t.Errorf("sql_query(%q) rows = %s; want %s", c.sql, got, c.wantRows)
			}
			if qr.Truncated != c.wantTruncated || res.Truncated != c.wantTruncated {
				t.Errorf("sql_query(%q) truncated = %v (result %v); want %v", c.sql, qr.Truncated, res.Truncated, c.wantTruncated)
			}
			if res.Count != int64(len(qr.Rows())) || qr.RowCount != int64(len(qr.Rows())) {
				t.Errorf("sql_query(%q) count = %d, row_count = %d; want %d", c.sql, res.Count, qr.RowCount, len(qr.Rows()))
			}
		})
	}
	// The connection a truncated read ran on must be usable afterwards.
	t.Run("PoolServesCallsAfterTruncation", func(t *testing.T) {
		for i := 0; i < 2*DefaultMaxConns; i++ {
			mustQuery(t, q, "SELECT n FROM nums")
		}
		if got := rowsJSON(t, mustQuery(t, q, "SELECT count(*) FROM nums")); got != `[[20]]` {
			t.Errorf("sql_query(SELECT count(*) FROM nums) rows = %s; want [[20]]", got)
		}
	})
}

const writesSetup = `
CREATE TABLE audit (id serial PRIMARY KEY, note text);
CREATE FUNCTION public.sneaky() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.audit (note) VALUES ('written by a read');
	RETURN 1;
END $$;
CREATE TABLE accounts (id integer PRIMARY KEY, email text NOT NULL UNIQUE);
INSERT INTO accounts VALUES (1, 'first@example.com');
`

func TestQueryReadRunsReadOnly(t *testing.T) {
	dsn := pgtest.New(t, writesSetup)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	ctx := callerContext(t)

	cases := []struct{ name, sql string }{
		{"DeniesWriteThroughFunction", "SELECT public.sneaky()"},
		{"DeniesWriteThroughFunctionInWhere", "SELECT 1 FROM accounts WHERE public.sneaky() = 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := q.Plan(ctx, queryArgsJSON(t, c.sql))
			if err != nil {
				t.Fatalf("Plan(%q) = %v", c.sql, err)
			}
			if p := a.Plan.(*queryPlan); !p.readOnly {
				t.Fatalf("Plan(%q).readOnly = false; want true (the analyser cannot see inside the function)", c.sql)
			}
			if !slices.Contains(opStrings(a.Ops), "execute public.sneaky") {
				t.Errorf("Plan(%q).Ops = %v; want them to include execute public.sneaky", c.sql, opStrings(a.Ops))
			}
			_, err = q.Execute(ctx, a)
			wantError(t, fmt.Sprintf("Execute(%q)", c.sql), err, warden.Denied, "read-only transaction")
			if got := rowsJSON(t, mustQuery(t, q, "SELECT count(*) FROM audit")); got != `[[0]]` {
				t.Errorf("after Execute(%q), SELECT count(*) FROM audit = %s; want [[0]]", c.sql, got)
			}
		})
	}
}

func TestQueryWrites(t *testing.T) {
	dsn := pgtest.New(t, writesSetup)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn})}}
	server := connect(t, dsn)
	emails := func(t *testing.T) string {
		t.Helper()
		var got string
		if err := server.QueryRow(t.Context(), "SELECT string_agg(id || '=' || email, ',' ORDER BY id) FROM accounts").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("InsertCommits", func(t *testing.T) {
		res := mustQuery(t, q, "INSERT INTO accounts VALUES (2, 'second@example.com')")
		if res.Command != "INSERT 0 1" || res.RowCount != 1 {
			t.Errorf("INSERT command = %q, row_count = %d; want %q, 1", res.Command, res.RowCount, "INSERT 0 1")
		}
		if got, want := emails(t), "1=first@example.com,2=second@example.com"; got != want {
			t.Errorf("accounts after INSERT = %s; want %s", got, want)
		}
	})
	t.Run("InsertReturningReturnsRows", func(t *testing.T) {
		res := mustQuery(t, q, "INSERT INTO accounts VALUES (3, $1) RETURNING id, email", `"third@example.com"`)
		if got, want := rowsJSON(t, res), `[[3,"third@example.com"]]`; got != want {
			t.Errorf("INSERT ... RETURNING rows = %s; want %s", got, want)
		}
	})
	t.Run("WriteRunsReadWrite", func(t *testing.T) {
		res := mustQuery(t, q, "UPDATE accounts SET email = email WHERE id = 1 RETURNING current_setting('transaction_read_only')")
		if got, want := rowsJSON(t, res), `[["off"]]`; got != want {
			t.Errorf("transaction_read_only inside UPDATE = %s; want %s", got, want)
		}
	})
	t.Run("UpdateCountsAffectedRows", func(t *testing.T) {
		res := mustQuery(t, q, "UPDATE accounts SET email = upper(email) WHERE id IN (2, 3)")
		if res.Command != "UPDATE 2" || res.RowCount != 2 {
			t.Errorf("UPDATE command = %q, row_count = %d; want %q, 2", res.Command, res.RowCount, "UPDATE 2")
		}
	})

	before := emails(t)
	failures := []struct {
		name     string
		sql      string
		contains []string
	}{
		{"DuplicateKeyRollsBackWholeStatement", "INSERT INTO accounts VALUES (4, 'fourth@example.com'), (1, 'dup@example.com')",
			[]string{`duplicate key value violates unique constraint "accounts_pkey"`, "[SQLSTATE 23505]"}},
		{"NotNullViolationRollsBack", "INSERT INTO accounts VALUES (5, NULL)",
			[]string{`null value in column "email"`, "[SQLSTATE 23502]"}},
		{"FailingUpdateRollsBack", "UPDATE accounts SET email = 'same@example.com'",
			[]string{`duplicate key value violates unique constraint "accounts_email_key"`}},
	}
	for _, c := range failures {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runQuery(callerContext(t), t, q, c.sql)
			we := wantError(t, fmt.Sprintf("sql_query(%q)", c.sql), err, warden.Invalid, c.contains...)
			if strings.Contains(we.Message, "first@example.com") {
				t.Errorf("sql_query(%q) message = %q; want no row values from the DETAIL", c.sql, we.Message)
			}
			if got := emails(t); got != before {
				t.Errorf("accounts after failed %q = %s; want unchanged %s", c.sql, got, before)
			}
		})
	}
	t.Run("PoolServesCallsAfterFailures", func(t *testing.T) {
		for i := 0; i < 2*DefaultMaxConns; i++ {
			mustQuery(t, q, "INSERT INTO audit (note) VALUES ('ok')")
		}
		if got := rowsJSON(t, mustQuery(t, q, "SELECT count(*) FROM audit")); got != fmt.Sprintf("[[%d]]", 2*DefaultMaxConns) {
			t.Errorf("audit rows = %s; want [[%d]]", got, 2*DefaultMaxConns)
		}
	})
}

func TestQueryStatementTimeout(t *testing.T) {
	dsn := pgtest.New(t, "")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, StatementTimeout: warden.Duration(200 * time.Millisecond)})}}
	start := time.Now()
	_, _, err := runQuery(callerContext(t), t, q, "SELECT pg_sleep(5)")
	elapsed := time.Since(start)
	wantError(t, "sql_query(SELECT pg_sleep(5))", err, warden.Invalid, "statement timeout of 200ms")
	if elapsed > 2*time.Second {
		t.Errorf("sql_query(SELECT pg_sleep(5)) returned after %s; want about 200ms", elapsed)
	}
	// The connection is reusable after a timeout.
	if got := rowsJSON(t, mustQuery(t, q, "SELECT 1")); got != `[[1]]` {
		t.Errorf("SELECT 1 after a timeout = %s; want [[1]]", got)
	}
}

func TestQueryCancellationStopsServerStatement(t *testing.T) {
	dsn := pgtest.New(t, "CREATE TABLE slept (n integer)")
	// A long statement timeout, so that only the cancellation can end it.
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, StatementTimeout: warden.Duration(time.Minute)})}}
	server := connect(t, dsn)
	running := func() bool {
		var n int
		err := server.QueryRow(t.Context(), `SELECT count(*) FROM pg_catalog.pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
			  AND state = 'active' AND query LIKE '%warden_cancel_probe%'`).Scan(&n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		return n > 0
	}
	cases := []struct{ name, sql string }{
		{"Read", "SELECT pg_sleep(30) AS warden_cancel_probe"},
		{"WriteRollsBack", "INSERT INTO slept SELECT 1 FROM pg_sleep(30) AS warden_cancel_probe"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(callerContext(t))
			defer cancel()
			a, err := q.Plan(ctx, queryArgsJSON(t, c.sql))
			if err != nil {
				t.Fatalf("Plan(%q) = %v", c.sql, err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := q.Execute(ctx, a)
				done <- err
			}()
			eventually(t, 10*time.Second, c.sql+" active in pg_stat_activity", running)
			cancel()
			cancelled := time.Now()
			select {
			case err := <-done:
				if elapsed := time.Since(cancelled); elapsed > 2*time.Second {
					t.Errorf("Execute(%q) returned %s after cancel; want promptly", c.sql, elapsed)
				}
				we := wantError(t, fmt.Sprintf("Execute(%q) after cancel", c.sql), err, warden.Unavailable, "cancelled")
				if !errors.Is(we, context.Canceled) {
					t.Errorf("Execute(%q) after cancel = %v; want it to wrap context.Canceled", c.sql, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Execute(%q) still running 5s after cancel", c.sql)
			}
			eventually(t, 5*time.Second, c.sql+" gone from pg_stat_activity", func() bool { return !running() })
			var n int
			if err := server.QueryRow(t.Context(), "SELECT count(*) FROM slept").Scan(&n); err != nil || n != 0 {
				t.Errorf("SELECT count(*) FROM slept after cancel = %d, %v; want 0", n, err)
			}
			if got := rowsJSON(t, mustQuery(t, q, "SELECT 1")); got != `[[1]]` {
				t.Errorf("SELECT 1 after cancelling %q = %s; want [[1]]", c.sql, got)
			}
		})
	}
}

const resolutionSetup = `
CREATE SCHEMA sales;
CREATE TABLE public.pg_class (decoy integer);
CREATE TABLE public.orders (who text);
INSERT INTO public.orders VALUES ('public');
CREATE TABLE sales.orders (who text);
INSERT INTO sales.orders VALUES ('sales');
CREATE TABLE public.customers (who text);
INSERT INTO public.customers VALUES ('public customers');
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT 'decoy' $$;
`

func TestQueryResolvesNamesLikeTheServer(t *testing.T) {
	dsn := pgtest.New(t, resolutionSetup)
	backends := map[string]*Query{
		"public":       {Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, SearchPath: []string{"public"}})}},
		"sales,public": {Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, SearchPath: []string{"sales", "public"}})}},
	}
	cases := []struct {
		name       string
		searchPath string
		sql        string
		wantOps    []string
		wantFuncs  []string
		wantRows   string
	}{
		// The decoy has no relname column: only pg_catalog.pg_class answers,
		// and it lists both tables called pg_class.
		{"CatalogBeforeSearchPath", "public", "SELECT count(*) FROM pg_class WHERE relname = 'pg_class'",
			[]string{"select pg_catalog.pg_class"}, []string{"pg_catalog.count"}, `[[2]]`},
		{"CatalogBeforeSearchPathWithStar", "public", "SELECT * FROM pg_class WHERE relname = 'pg_class' AND false",
			[]string{"select pg_catalog.pg_class"}, nil, `[]`},
		{"UnqualifiedTableInPublic", "public", "SELECT who FROM orders",
			[]string{"select public.orders"}, nil, `[["public"]]`},
		{"FirstSchemaOnPathWins", "sales,public", "SELECT who FROM orders",
			[]string{"select sales.orders"}, nil, `[["sales"]]`},
		{"LaterSchemaOnPathWhenFirstLacksIt", "sales,public", "SELECT who FROM customers",
			[]string{"select public.customers"}, nil, `[["public customers"]]`},
		{"QualifiedNameIsKept", "sales,public", "SELECT who FROM public.orders",
			[]string{"select public.orders"}, nil, `[["public"]]`},
		{"CatalogFunctionBeforeDecoy", "public", "SELECT upper('x')",
			nil, []string{"pg_catalog.upper"}, `[["X"]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, a, err := runQuery(callerContext(t), t, backends[c.searchPath], c.sql)
			if err != nil {
				t.Fatalf("sql_query(%q) with search_path %s = %v", c.sql, c.searchPath, err)
			}
			if got := opStrings(a.Ops); !slices.Equal(got, c.wantOps) {
				t.Errorf("Plan(%q).Ops with search_path %s = %v; want %v", c.sql, c.searchPath, got, c.wantOps)
			}
			if !slices.Equal(a.Functions, c.wantFuncs) {
				t.Errorf("Plan(%q).Functions with search_path %s = %v; want %v", c.sql, c.searchPath, a.Functions, c.wantFuncs)
			}
			if got := rowsJSON(t, res); got != c.wantRows {
				t.Errorf("sql_query(%q) with search_path %s rows = %s; want %s", c.sql, c.searchPath, got, c.wantRows)
			}
		})
	}
}

// DDL run through warden changes what a name resolves to at once; the
// next call must not be judged on the catalog as it was before.
func TestQueryResolvesNamesAfterItsOwnDDL(t *testing.T) {
	dsn := pgtest.New(t, resolutionSetup)
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{DSN: dsn, SearchPath: []string{"sales", "public"}})}}
	steps := []struct {
		name     string
		ddl      string
		sql      string
		wantOps  []string
		wantRows string
	}{
		{"CreatedTableShadowsLaterSchema", "CREATE TABLE sales.customers AS SELECT 'sales customers' AS who",
			"SELECT who FROM customers", []string{"select sales.customers"}, `[["sales customers"]]`},
		{"DroppedTableUncoversLaterSchema", "DROP TABLE sales.orders",
			"SELECT who FROM orders", []string{"select public.orders"}, `[["public"]]`},
	}
	for _, c := range steps {
		t.Run(c.name, func(t *testing.T) {
			mustQuery(t, q, "SELECT 1") // takes the snapshot, if none is fresh
			mustQuery(t, q, c.ddl)
			res, a, err := runQuery(callerContext(t), t, q, c.sql)
			if err != nil {
				t.Fatalf("sql_query(%q) after %q = %v", c.sql, c.ddl, err)
			}
			if got := opStrings(a.Ops); !slices.Equal(got, c.wantOps) {
				t.Errorf("Plan(%q).Ops after %q = %v; want %v", c.sql, c.ddl, got, c.wantOps)
			}
			if got := rowsJSON(t, res); got != c.wantRows {
				t.Errorf("sql_query(%q) after %q rows = %s; want %s", c.sql, c.ddl, got, c.wantRows)
			}
		})
	}
}

func TestQuerySessionSettingsAreWardens(t *testing.T) {
	dsn := pgtest.New(t, "CREATE SCHEMA sales")
	q := &Query{Backends: Backends{"db": newTestBackend(t, Config{
		DSN:              dsn,
		SearchPath:       []string{"sales", "public"},
		StatementTimeout: warden.Duration(1500 * time.Millisecond),
	})}}
	cases := []struct{ setting, want string }{
		// Names are resolved by warden against the configured path
		// and sent qualified; the server sees only pg_catalog.
		{"search_path", "pg_catalog"},
		{"statement_timeout", "1500ms"},
		{"idle_in_transaction_session_timeout", "4s"},
		{"default_transaction_read_only", "on"},
		{"transaction_read_only", "on"},
		{"standard_conforming_strings", "on"},
		{"application_name", "warden"},
	}
	for _, c := range cases {
		t.Run(c.setting, func(t *testing.T) {
			sql := fmt.Sprintf("SELECT current_setting('%s')", c.setting)
			// Several calls, so more than one pooled connection answers.
			for i := 0; i < DefaultMaxConns; i++ {
				res := mustQuery(t, q, sql)
				if got, want := rowsJSON(t, res), fmt.Sprintf("[[%q]]", c.want); got != want {
					t.Fatalf("sql_query(%q) = %s; want %s", sql, got, want)
				}
			}
		})
	}
}

// testGrants permits a fixed set of operations to any caller.
type testGrants map[warden.Op]bool

func (g testGrants) Permits(c *warden.Caller, backend string, op warden.Op) bool {
	return c != nil && backend == "db" && g[op]
}

func TestSchemaListsPermittedTables(t *testing.T) {
	dsn := pgtest.New(t, `
		CREATE SCHEMA sales;
		CREATE TABLE public.orders (id integer NOT NULL, total numeric(10,2), placed timestamptz, tags text[]);
		COMMENT ON TABLE public.orders IS 'One row per order';
		COMMENT ON COLUMN public.orders.total IS 'Gross, in EUR';
		CREATE VIEW public.big_orders AS SELECT id FROM public.orders WHERE total > 100;
		CREATE TABLE public.payroll (salary numeric);
		CREATE TABLE sales.leads (email varchar(200) NOT NULL);`)
	b := newTestBackend(t, Config{DSN: dsn})
	grants := testGrants{
		{Verb: warden.VerbSelect, Object: "public.orders"}:     true,
		{Verb: warden.VerbInsert, Object: "public.orders"}:     true,
		{Verb: warden.VerbSelect, Object: "public.big_orders"}: true,
		{Verb: warden.VerbInsert, Object: "sales.leads"}:       true, // no select: not listed
		{Verb: warden.VerbSelect, Object: "public.ghost"}:      true,
	}
	s := &Schema{Backends: Backends{"db": b}, Grants: grants}
	run := func(t *testing.T, args string) (*SchemaResult, *warden.Action, error) {
		t.Helper()
		ctx := callerContext(t)
		a, err := s.Plan(ctx, json.RawMessage(args))
		if err != nil {
			return nil, nil, err
		}
		res, err := s.Execute(ctx, a)
		if err != nil {
			return nil, a, err
		}
		return res.Structured.(*SchemaResult), a, nil
	}
	orders := TableInfo{Schema: "public", Name: "orders", Kind: "table", Description: "One row per order",
		Actions: []string{"select", "insert"},
		Columns: []ColumnInfo{
			{Name: "id", Type: "integer"},
			{Name: "total", Type: "numeric(10,2)", Nullable: true, Description: "Gross, in EUR"},
			{Name: "placed", Type: "timestamp with time zone", Nullable: true},
			{Name: "tags", Type: "text[]", Nullable: true},
		}}
	bigOrders := TableInfo{Schema: "public", Name: "big_orders", Kind: "view", Actions: []string{"select"},
		Columns: []ColumnInfo{{Name: "id", Type: "integer", Nullable: true}}}

	t.Run("ListsOnlyTablesPermittedForSelect", func(t *testing.T) {
		res, a, err := run(t, `{"database": "db"}`)
		if err != nil {
			t.Fatalf("sql_schema({database: db}) = %v", err)
		}
		if len(a.Ops) != 0 {
			t.Errorf("Plan({database: db}).Ops = %v; want none", a.Ops)
		}
		if want := []TableInfo{bigOrders, orders}; !reflect.DeepEqual(res.Tables, want) {
			t.Errorf("sql_schema({database: db}).Tables = %+v; want %+v", res.Tables, want)
		}
		if !slices.Equal(res.SearchPath, []string{"public"}) || res.Database != "db" {
			t.Errorf("sql_schema({database: db}) database, search_path = %q, %v; want db, [public]", res.Database, res.SearchPath)
		}
	})
	t.Run("DescribesOnePermittedTable", func(t *testing.T) {
		for _, table := range []string{"orders", "public.orders"} {
			args := fmt.Sprintf(`{"database": "db", "table": %q}`, table)
			res, a, err := run(t, args)
			if err != nil {
				t.Fatalf("sql_schema(%s) = %v", args, err)
			}
			if got, want := opStrings(a.Ops), []string{"select public.orders"}; !slices.Equal(got, want) {
				t.Errorf("Plan(%s).Ops = %v; want %v", args, got, want)
			}
			if want := []TableInfo{orders}; !reflect.DeepEqual(res.Tables, want) {
				t.Errorf("sql_schema(%s).Tables = %+v; want %+v", args, res.Tables, want)
			}
		}
	})
	t.Run("PlansUnpermittedTableAsReadOfIt", func(t *testing.T) {
		a, err := s.Plan(callerContext(t), json.RawMessage(`{"database": "db", "table": "payroll"}`))
		if err != nil {
			t.Fatalf("Plan(table payroll) = %v", err)
		}
		if got, want := opStrings(a.Ops), []string{"select public.payroll"}; !slices.Equal(got, want) {
			t.Errorf("Plan(table payroll).Ops = %v; want %v", got, want)
		}
		if a.Kind != "schema" || a.Statement != "describe public.payroll" {
			t.Errorf("Plan(table payroll) kind, statement = %q, %q; want schema, describe public.payroll", a.Kind, a.Statement)
		}
	})
	t.Run("PermittedUnknownTableIsInvalid", func(t *testing.T) {
		_, _, err := run(t, `{"database": "db", "table": "ghost"}`)
		wantError(t, "sql_schema(table ghost)", err, warden.Invalid, "public.ghost does not exist")
	})
	t.Run("MalformedTableNameIsInvalid", func(t *testing.T) {
		_, _, err := run(t, `{"database": "db", "table": "a.b.c"}`)
		wantError(t, "sql_schema(table a.b.c)", err, warden.Invalid, "must be a name or schema.name")
	})
	t.Run("UnknownDatabaseIsInvalid", func(t *testing.T) {
		_, _, err := run(t, `{"database": "nope"}`)
		wantError(t, "sql_schema(database nope)", err, warden.Invalid, `unknown database "nope"`)
	})
}

func TestErrorsNeverLeakTheDSN(t *testing.T) {
	const password = "s3cret-Pa55word"
	cases := []struct {
		name  string
		dsn   string
		leaks []string
	}{
		{"URL", "postgres://warden:" + password + "@127.0.0.1:1/shop?connect_timeout=5",
			[]string{password, "127.0.0.1:1", "postgres://", "warden:"}},
		{"KeywordValue", "host=127.0.0.1 port=1 user=warden password=" + password + " dbname=shop connect_timeout=5",
			[]string{password, "127.0.0.1", "port=1", "postgres://", "password="}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBackend(t, Config{DSN: c.dsn})
			q := &Query{Backends: Backends{"db": b}}
			s := &Schema{Backends: Backends{"db": b}, Grants: testGrants{}}
			ctx := callerContext(t)
			check := func(what string, err error) {
				t.Helper()
				we := wantError(t, what, err, warden.Unavailable, `database "db" is unavailable`)
				for _, leak := range c.leaks {
					if strings.Contains(we.Message, leak) || strings.Contains(we.Error(), leak) {
						t.Errorf("%s = %q; want no %q in it", what, we.Error(), leak)
					}
				}
			}

			_, err := q.Plan(ctx, queryArgsJSON(t, "SELECT 1"))
			check("sql_query Plan", err)

			// Execute on a plan made while the database was up.
			_, err = q.Execute(ctx, &warden.Action{Tool: "sql_query", Plan: &queryPlan{
				backend: b, names: &names{searchPath: []string{"public"}}, sql: "SELECT 1", readOnly: true,
			}})
			check("sql_query Execute (read)", err)
			_, err = q.Execute(ctx, &warden.Action{Tool: "sql_query", Plan: &queryPlan{
				backend: b, names: &names{searchPath: []string{"public"}}, sql: "DELETE FROM t",
			}})
			check("sql_query Execute (write)", err)

			_, err = s.Plan(ctx, json.RawMessage(`{"database": "db", "table": "orders"}`))
			check("sql_schema Plan", err)
			a, err := s.Plan(ctx, json.RawMessage(`{"database": "db"}`))
			if err != nil {
				t.Fatalf("sql_schema Plan without table = %v; want success (it needs no database)", err)
			}
			_, err = s.Execute(ctx, a)
			check("sql_schema Execute", err)
		})
	}
}

func TestQueryWrongParameterCountIsInvalid(t *testing.T) {
	dsn := pgtest.New(t, "")
	cfg := Config{DSN: dsn}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend("shop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := &Query{Backends: Backends{"shop": b}}
	ctx := warden.WithCaller(context.Background(), &warden.Caller{Subject: "t", Method: "local"})
	_, err = q.Plan(ctx, json.RawMessage(`{"database":"shop","sql":"SELECT $1::int + $2::int","params":[1]}`))
	if got := warden.ErrorCode(err); got != warden.Invalid {
		t.Errorf("Execute(two placeholders, one param) = %v (code %q); want invalid, not unavailable", err, got)
	}
}
