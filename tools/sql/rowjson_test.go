package sql

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/warden-mcp/warden/internal/pgtest"
)

// The row writer must write, for every value, exactly the bytes the
// conversion it replaced wrote (rows.Values(), then toJSON, then
// encoding/json without HTML escaping), and count the same size for
// max_result_bytes. These tests run both over the same rows of a real
// PostgreSQL and compare.

const rowJSONSetup = `
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TYPE pair AS (a integer, b text);`

// rowJSONCases are SQL expressions of one type each, with edge values;
// every case runs as one query returning one row per value.
var rowJSONCases = []struct {
	typ    string
	values []string
}{
	{"int2", []string{"0", "-32768", "32767", "NULL"}},
	{"int4", []string{"0", "-2147483648", "2147483647", "NULL"}},
	{"int8", []string{"0", "9007199254740991", "-9007199254740991", "9007199254740992", "-9007199254740992", "9223372036854775807", "-9223372036854775808", "NULL"}},
	{"float4", []string{"0", "'-0'", "1.1", "123456.7", "3.4028235e38", "1e-45", "1e-7", "1e-6", "1e21", "1e20", "'NaN'", "'Infinity'", "'-Infinity'", "NULL"}},
	{"float8", []string{"0", "'-0'", "1.25", "0.1::float8 + 0.2", "1e-7", "1e-6", "1e21", "1e20", "5e-324", "1.7976931348623157e308", "-2.5e-300", "'NaN'", "'Infinity'", "'-Infinity'", "NULL"}},
	{"numeric", []string{"0", "0.00", "-0.0001", "1.50", "19.990", "10000", "10000.00", "12345.6789", "0.000000001", "1e-20",
		"123456789012345", "1234567890123456", "-123456789012345.6", "100000000000000000000", "9223372036854775807", "-9223372036854775807", "-9223372036854775808", "-9223372036854775809",
		"0.123456789012345678901234567890", "1e100", "-1.5e300", "1e-300", "3.14159::numeric(10,5)", "2.5::numeric(10,0)", "'NaN'", "'Infinity'", "'-Infinity'", "NULL"}},
	{"numeric(10,2)", []string{"0", "1.25", "-99999999.99", "100"}},
	{"text", []string{"''", "'héllo, 世界 🐘'", `'quote " and backslash \'`, `E'ctl \x01\x1f\n\t\r\b\f end'`, "chr(127)", "'<b>&amp;</b>'",
		"U&'line\\2028sep\\2029par'", "repeat('x', 5000)", "'NULL'", "NULL"}},
	{"varchar(10)", []string{"'abc'", "''", "NULL"}},
	{"bpchar(5)", []string{"'ab'", "'abcde'"}},
	{"name", []string{"'pg_class'", "'ünï'"}},
	{"bool", []string{"true", "false", "NULL"}},
	{"timestamp", []string{"'2025-01-02 03:04:05.123456'", "'2025-01-02 03:04:05'", "'2025-01-02 03:04:05.5'", "'0001-01-01'", "'9999-12-31 23:59:59.999999'",
		"'1999-12-31 23:59:59.999999'", "'1970-01-01'", "'1969-12-31 23:59:59.000001'", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'0001-01-01 BC'", "'10000-01-01'", "'294276-12-31'", "NULL"}},
	{"timestamptz", []string{"'2025-01-02 03:04:05.123456+02'", "'2025-01-02 03:04:05Z'", "'0001-01-01 00:00:00Z'", "'9999-12-31 23:59:59.999999Z'",
		"'1999-12-31 23:59:59.999999-01'", "'1969-12-31 23:59:59.000001Z'", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'10000-01-01Z'", "NULL"}},
	{"date", []string{"'2025-01-02'", "'2000-01-01'", "'1999-12-31'", "'0001-01-01'", "'9999-12-31'", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'0001-01-01 BC'", "'10000-01-01'", "'5874897-12-31'", "NULL"}},
	{"uuid", []string{"'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "NULL"}},
	{"bytea", []string{`''`, `'\xdeadbeef'`, `'abc'`, `'\x00ff'`, "NULL"}},
	{"json", []string{`'{"b": 1, "a": [true, null]}'`, `'  [1,  2 ]  '`, `'"line\u2028sep"'`, "'\"\u2028\"'", `'{"h": "<&>"}'`, `'12345678901234567890'`,
		`'1e300'`, `'-0.5E-400'`, `'"\u0000"'`, `'{"a": {"a": {"a": []}}}'`, `'null'`, "NULL"}},
	{"jsonb", []string{`'{"b": 1, "a": "x"}'`, `'[1, "x", null]'`, `'"hi"'`, `'3.50'`, `'null'`, `'{"n": 12345678901234567890}'`, "'\"\u2028 <&>\"'", `'1e300'`, "NULL"}},
	// Arrays, one- and multi-dimensional, with NULLs.
	{"int4[]", []string{"ARRAY[1, NULL, 3]", "'{}'", "ARRAY[[1, 2, 3], [4, 5, 6]]", "'{{{1},{2}},{{3},{4}}}'", "'[2:3]={7,8}'", "ARRAY[NULL]::int4[]", "NULL"}},
	{"int2[]", []string{"ARRAY[1, -32768]"}},
	{"int8[]", []string{"ARRAY[1, 9007199254740993, NULL]", "ARRAY[[9223372036854775807], [-1]]"}},
	{"text[]", []string{"ARRAY['a', NULL, 'c']", "ARRAY['', 'NULL', 'héllo 🐘', E'q\"b\\\\n\\n']", "ARRAY[['a', 'b'], ['c', NULL]]", "'{}'", "ARRAY[U&'\\2028']"}},
	{"varchar[]", []string{"ARRAY['x', NULL]"}},
	{"bpchar(3)[]", []string{"ARRAY['a', 'bc']"}},
	{"name[]", []string{"ARRAY['a'::name]"}},
	{"bool[]", []string{"ARRAY[true, NULL, false]"}},
	{"float4[]", []string{"ARRAY[1.1, 'NaN', '-Infinity', NULL]"}},
	{"float8[]", []string{"ARRAY[1.25, 'NaN', 'Infinity', 1e21, NULL]"}},
	{"numeric[]", []string{"ARRAY[1.50, 123456789012345678901234567890, NULL, 'NaN', 0.00]"}},
	{"date[]", []string{"ARRAY['2025-01-02'::date, NULL]", "ARRAY['2025-01-02'::date, 'infinity']"}},
	{"timestamp[]", []string{"ARRAY['2025-01-02 03:04:05'::timestamp]", "ARRAY['-infinity'::timestamp]"}},
	{"timestamptz[]", []string{"ARRAY['2025-01-02 03:04:05+02'::timestamptz, NULL]"}},
	{"uuid[]", []string{"ARRAY['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, NULL]"}},
	{"bytea[]", []string{`ARRAY['\xdeadbeef'::bytea, NULL, '']`}},
	{"jsonb[]", []string{`ARRAY['{"a": 1, "b": [2]}'::jsonb, NULL, '"s"']`}},
	{"json[]", []string{`ARRAY['{"b": 1, "a": 2}'::json]`}},
	// Types the encoders leave to pgx and toJSON.
	{"interval", []string{"'1 year 2 mons 3 days 04:05:06.5'", "'-1 day'"}},
	{"time", []string{"'04:05:06.5'"}},
	{"inet", []string{"'10.0.0.1'", "'10.0.0.1/24'", "'::1'"}},
	{"cidr", []string{"'10.0.0.0/8'"}},
	{"macaddr", []string{"'08:00:2b:01:02:03'"}},
	{"money", []string{"'12.34'"}},
	{"point", []string{"'(1,2)'"}},
	{"public.mood", []string{"'happy'", "NULL"}},
	{"public.mood[]", []string{"ARRAY['happy', 'sad']::public.mood[]"}},
	{"int4range", []string{"'[1,5)'"}},
	{"xml", []string{"'<a>x</a>'"}},
	{`"char"`, []string{"'x'"}},
	{"oid", []string{"4294967295"}},
	{"interval[]", []string{"ARRAY['1 day'::interval]"}},
	{"public.pair", []string{"ROW(1, 'a')"}},
	{"tsvector", []string{"'a fat cat'"}},
	{"bit(3)", []string{"B'101'"}},
}

func TestRowJSONMatchesValuesConversion(t *testing.T) {
	dsn := pgtest.New(t, rowJSONSetup)
	b := newTestBackend(t, Config{DSN: dsn})
	for _, c := range rowJSONCases {
		rowsSQL := make([]string, len(c.values))
		for i, v := range c.values {
			rowsSQL[i] = fmt.Sprintf("SELECT %d AS i, (%s)::%s AS v", i, v, c.typ)
		}
		query := strings.Join(rowsSQL, " UNION ALL ") + " ORDER BY i"
		t.Run(c.typ, func(t *testing.T) {
			compareConversions(t, b, query, c.values)
		})
	}
	// A row of many types, and a whole result, as the bench reads it:
	// every value written by an encoder, none left to the fallback.
	t.Run("WholeRows", func(t *testing.T) {
		if n := compareConversions(t, b, `SELECT i, 'item ' || i AS name, i * 1.25 AS price, timestamptz '2025-01-01' + i * interval '1 hour' AS added,
			i % 2 = 0 AS active, ARRAY['t' || i, NULL] AS tags, jsonb_build_object('i', i) AS doc, NULL::text AS nothing
			FROM generate_series(1, 50) i`, nil); n != 0 {
			t.Errorf("%d values went to the fallback; want none", n)
		}
	})
	// pgx asks for these types in the text format (their codecs prefer
	// it); they are written from that text, not by the fallback.
	t.Run("TextFormat", func(t *testing.T) {
		const q = `SELECT v::text AS t, v::varchar AS vc, v::bpchar(12) AS bp, v::name AS n, v::json AS j, v::jsonb AS jb
			FROM (VALUES ('"x"'), ('{"a": [1, 2.50, null], "b": "<&>\u2028"}'), ('  [ 1,2 ]  '), ('"quo\"te é"')) AS t(v)`
		conn, err := b.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for i, fd := range rows.FieldDescriptions() {
			if fd.Format != pgtype.TextFormatCode {
				t.Errorf("column %d (%s) came in format %d; this test means the text format", i, fd.Name, fd.Format)
			}
		}
		rows.Close()
		conn.Release()
		if n := compareConversions(t, b, q, nil); n != 0 {
			t.Errorf("%d values went to the fallback; want none", n)
		}
	})
	t.Run("NoColumns", func(t *testing.T) {
		compareConversions(t, b, "SELECT FROM generate_series(1, 3)", nil)
	})
}

// TestRowJSONFailsWhereValuesFailed: rows.Values() refuses a json value
// with a number beyond a float64's range (it unmarshals json); the row
// writer leaves such a value to it and fails the row the same way.
func TestRowJSONFailsWhereValuesFailed(t *testing.T) {
	dsn := pgtest.New(t, "")
	b := newTestBackend(t, Config{DSN: dsn})
	for _, sql := range []string{`SELECT '1e400'::json`, `SELECT '[1e309]'::jsonb`, `SELECT ('{"a": ' || repeat('9', 400) || '}')::json`} {
		t.Run(sql, func(t *testing.T) {
			conn, err := b.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			rows, err := conn.Query(t.Context(), sql)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			if !rows.Next() {
				t.Fatalf("%s: no row (%v)", sql, rows.Err())
			}
			w := newRowWriter(rows.FieldDescriptions(), conn.Conn().TypeMap())
			defer w.release()
			_, _, newErr := w.write(rows.RawValues())
			_, oldErr := rows.Values()
			if newErr == nil || oldErr == nil {
				t.Errorf("%s: row writer error %v, rows.Values() error %v; want both to fail", sql, newErr, oldErr)
			}
		})
	}
}

// compareConversions runs query once and, for each row, writes it with
// the row writer and converts it as before, and compares bytes and sizes;
// then the whole result's encoding. values name the rows in failures. It
// returns how many values the row writer left to the fallback.
func compareConversions(t *testing.T, b *Backend, query string, values []string) (fallbacks int) {
	t.Helper()
	ctx := t.Context()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	w := newRowWriter(fds, conn.Conn().TypeMap())
	old := [][]any{}
	for rows.Next() {
		m, size, err := w.write(rows.RawValues())
		if err != nil {
			t.Fatalf("%s: row writer: %v", query, err)
		}
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("%s: rows.Values(): %v", query, err)
		}
		raw := rows.RawValues()
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = toJSON(v, fds[i].DataTypeOID, raw[i])
		}
		want, err := encodeOld(row)
		if err != nil {
			t.Fatalf("%s: encoding the old conversion: %v", query, err)
		}
		got := w.buf[m.buf:]
		if m.buf > 0 {
			got = got[1:] // the comma before the row
		}
		what := fmt.Sprintf("row %d", len(old))
		if len(old) < len(values) {
			what = values[len(old)]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: row writer wrote %s; the old conversion %s", what, got, want)
		}
		if ws := rowSize(row); size != ws {
			t.Errorf("%s: row writer counted %d bytes; rowSize %d", what, size, ws)
		}
		old = append(old, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	fallbacks = w.fallbacks
	res := &QueryResult{Columns: []Column{{Name: "c", Type: "t <&>", Masked: true, Mask: "last4 of x"}}, RowCount: int64(len(old)),
		Truncated: true, Note: "note\u2028", Command: "SELECT 3", CallID: "c-1", rows: w}
	oldRes := struct {
		Columns   []Column `json:"columns"`
		Rows      [][]any  `json:"rows"`
		RowCount  int64    `json:"row_count"`
		Truncated bool     `json:"truncated"`
		Note      string   `json:"note,omitempty"`
		Command   string   `json:"command"`
		CallID    string   `json:"call_id"`
	}{res.Columns, old, res.RowCount, res.Truncated, res.Note, res.Command, res.CallID}
	want, err := encodeOld(oldRes)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.encode(); !bytes.Equal(got, want) {
		t.Errorf("encode() = %s; the old encoding %s", got, want)
	}
	if len(res.Rows()) != len(old) {
		t.Fatalf("encode() left %d rows; want %d", len(res.Rows()), len(old))
	}
	for i, r := range res.Rows() {
		for j, cell := range r {
			if want, _ := encodeOld(old[i][j]); !bytes.Equal(cell, want) {
				t.Errorf("Rows[%d][%d] = %s; want %s", i, j, cell, want)
			}
		}
	}
	return fallbacks
}

// encodeOld encodes v as the pipeline encoded results: encoding/json
// without HTML escaping.
func encodeOld(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// TestAppendTextMatchesEncodingJSON covers what PostgreSQL cannot send in
// a UTF-8 database: invalid UTF-8 (a SQL_ASCII database can), every byte.
func TestAppendTextMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "\x00\x01\x1f\x7f", "\xff", "a\xc3", "\xed\xa0\x80", "\xe2\x80\xa8\xe2\x80\xa9", "<>&", `"\`, "é世🐘", "\xf4\x90\x80\x80"}
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s := make([]byte, rng.IntN(12))
		for i := range s {
			s[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(s))
	}
	for _, s := range cases {
		want, _ := encodeOld(s)
		got, size := appendText(nil, []byte(s))
		if !bytes.Equal(got, want) {
			t.Errorf("appendText(%q) = %s; want %s", s, got, want)
		}
		if ws := stringSize(s); size != ws {
			t.Errorf("appendText(%q) size = %d; want stringSize %d", s, size, ws)
		}
		if !utf8.Valid(got) {
			t.Errorf("appendText(%q) = %q is not UTF-8", s, got)
		}
	}
}

// TestAppendFloatMatchesEncodingJSON compares the float encoding with
// encoding/json's over random bit patterns and the cutoffs.
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f64 := []float64{0, math.Copysign(0, -1), 1e-6, 9.99999e-7, 1e21, 9.99999e20, math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-7, 123456789}
	for range 5000 {
		f64 = append(f64, math.Float64frombits(rng.Uint64()))
	}
	for _, f := range f64 {
		got, _, _ := appendFloat(nil, f, 64)
		want, _ := encodeOld(floatJSON(f))
		if !bytes.Equal(got, want) {
			t.Errorf("appendFloat(%v, 64) = %s; want %s", f, got, want)
		}
	}
	f32 := []float32{0, 1e-6, 9.99999e-7, 1e21, 9.99999e20, math.MaxFloat32, math.SmallestNonzeroFloat32, 1.1}
	for range 5000 {
		f32 = append(f32, math.Float32frombits(rng.Uint32()))
	}
	for _, f := range f32 {
		got, _, _ := appendFloat(nil, float64(f), 32)
		var want []byte
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			want, _ = encodeOld(floatJSON(float64(f)))
		} else {
			want, _ = encodeOld(f)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("appendFloat(%v, 32) = %s; want %s", f, got, want)
		}
	}
}

// BenchmarkRowsToJSON reads the 100-row, 5-column result of
// BenchmarkSelect100Rows and turns it into the result's JSON: as before
// (rows.Values(), toJSON, encoding/json) and with the row writer. Both
// include the query; pgx is the query with rows.Values() alone.
func BenchmarkRowsToJSON(b *testing.B) {
	dsn := pgtest.New(b, `CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2), added timestamptz, active boolean);
INSERT INTO items SELECT i, 'item ' || i, i * 1.25, timestamptz '2025-01-01' + i * interval '1 hour', i % 2 = 0 FROM generate_series(1, 100) i;`)
	cfg := Config{DSN: dsn}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	be, err := NewBackend("db", cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	const query = "SELECT id, name, price, added, active FROM public.items ORDER BY id"
	conn, err := be.pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	run := func(b *testing.B, each func(rows pgx.Rows) []byte) {
		b.ReportAllocs()
		// CPU time of the process per call: on a shared machine, less
		// noisy than the wall time.
		cpu0 := processCPU()
		defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op") }()
		for b.Loop() {
			rows, err := conn.Query(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			if out := each(rows); len(out) == 0 && out != nil {
				b.Fatal("no output")
			}
			rows.Close()
			if rows.Err() != nil {
				b.Fatal(rows.Err())
			}
		}
	}
	b.Run("pgx-values", func(b *testing.B) {
		run(b, func(rows pgx.Rows) []byte {
			for rows.Next() {
				if _, err := rows.Values(); err != nil {
					b.Fatal(err)
				}
			}
			return nil
		})
	})
	b.Run("before", func(b *testing.B) {
		run(b, func(rows pgx.Rows) []byte {
			fds := rows.FieldDescriptions()
			res := struct {
				Rows [][]any `json:"rows"`
			}{Rows: [][]any{}}
			size := 0
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					b.Fatal(err)
				}
				raw := rows.RawValues()
				row := make([]any, len(vals))
				for i, v := range vals {
					row[i] = toJSON(v, fds[i].DataTypeOID, raw[i])
				}
				size += rowSize(row)
				res.Rows = append(res.Rows, row)
			}
			out, err := encodeOld(res)
			if err != nil {
				b.Fatal(err)
			}
			return out
		})
	})
	b.Run("row-writer", func(b *testing.B) {
		run(b, func(rows pgx.Rows) []byte {
			w := newRowWriter(rows.FieldDescriptions(), rows.Conn().TypeMap())
			size := 0
			for rows.Next() {
				_, n, err := w.write(rows.RawValues())
				if err != nil {
					b.Fatal(err)
				}
				size += n
			}
			res := &QueryResult{Columns: make([]Column, len(rows.FieldDescriptions())), rows: w}
			return res.encode()
		})
	})
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEncodersWriteJSON: the row writer's encoding is valid JSON by
// construction, so the pipeline does not check it again (Result.JSONValid).
// Every encoder, fed arbitrary bytes as a server could send them
// (including what PostgreSQL never sends), either leaves the value to the
// fallback (whose output encoding/json writes) or appends exactly one
// valid JSON value, leaving what was before it untouched.
func TestEncodersWriteJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	types := pgtype.NewMap()
	type enc struct {
		name string
		enc  cellEncoder
	}
	var encs []enc
	for _, oid := range []uint32{pgtype.BoolOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
		pgtype.NumericOID, pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.TimestampOID, pgtype.TimestamptzOID,
		pgtype.DateOID, pgtype.UUIDOID, pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID} {
		encs = append(encs, enc{fmt.Sprintf("binary %d", oid), encoderFor(oid, pgtype.BinaryFormatCode, types)},
			enc{fmt.Sprintf("text %d", oid), encoderFor(oid, pgtype.TextFormatCode, types)})
	}
	for arr, elem := range arrayElements {
		encs = append(encs, enc{fmt.Sprintf("array %d of %d", arr, elem), encoderFor(arr, pgtype.BinaryFormatCode, types)})
	}
	encs = append(encs, enc{"unknown type, text", encoderFor(999999, pgtype.TextFormatCode, types)})

	var inputs [][]byte
	for _, s := range []string{"", "\x00", "\x01", "\xff", `{"a":1}`, "\x01{\"a\":1}", "[1e400]", "\"", "\\", "\x01\x02\x03\x04", "00012"} {
		inputs = append(inputs, []byte(s))
	}
	for range 3000 {
		raw := make([]byte, rng.IntN(24))
		for i := range raw {
			raw[i] = byte(rng.IntN(256))
		}
		inputs = append(inputs, raw)
	}
	// Numerics with headers in range and digits that may not be.
	be := func(b []byte, v ...uint16) []byte {
		for _, x := range v {
			b = append(b, byte(x>>8), byte(x))
		}
		return b
	}
	for range 5000 {
		nd := rng.IntN(5)
		raw := be(nil, uint16(nd), uint16(int16(rng.IntN(9)-4)), []uint16{0, 0x4000, 0xC000, 0xD000, 0xF000, 0x1234}[rng.IntN(6)], uint16(int16(rng.IntN(20)-2)))
		for range nd {
			d := uint16(rng.IntN(10000))
			switch rng.IntN(4) {
			case 0:
				d = 0
			case 1:
				d = uint16(rng.IntN(65536))
			}
			raw = be(raw, d)
		}
		inputs = append(inputs, raw)
	}
	// Arrays: a valid header of each element type, then random elements.
	for _, elem := range arrayElements {
		for range 300 {
			n := rng.IntN(4)
			raw := binary.BigEndian.AppendUint32(nil, 1)
			raw = binary.BigEndian.AppendUint32(raw, 0)
			raw = binary.BigEndian.AppendUint32(raw, elem)
			raw = binary.BigEndian.AppendUint32(raw, uint32(n))
			raw = binary.BigEndian.AppendUint32(raw, 1)
			for range n {
				if rng.IntN(5) == 0 {
					raw = binary.BigEndian.AppendUint32(raw, math.MaxUint32) // NULL
					continue
				}
				v := inputs[rng.IntN(len(inputs))]
				raw = binary.BigEndian.AppendUint32(raw, uint32(len(v)))
				raw = append(raw, v...)
			}
			inputs = append(inputs, raw)
		}
	}
	written := 0
	for _, e := range encs {
		for _, raw := range inputs {
			prefix := []byte(`[1,`)
			out, _, ok := e.enc(append([]byte(nil), prefix...), raw)
			if !ok {
				continue
			}
			written++
			if !bytes.Equal(out[:len(prefix)], prefix) {
				t.Fatalf("%s(%x) changed what was before it: %q", e.name, raw, out[:len(prefix)])
			}
			if v := out[len(prefix):]; !json.Valid(v) {
				t.Errorf("%s(%x) wrote %q: not JSON", e.name, raw, v)
			}
		}
	}
	if written < len(inputs) {
		t.Fatalf("only %d values written by the encoders: the inputs do not exercise them", written)
	}
}

// TestTimeEncodersMatchTimeFormat compares the timestamp and date encoders
// with the generic path — pgx's decoding into a time.Time, toJSON's
// formatting, encoding/json — over every date in years 1 to 9999 and its
// neighbours, the edges of that range to the microsecond, and random
// timestamps; outside the range the encoders must leave the value to the
// fallback.
func TestTimeEncodersMatchTimeFormat(t *testing.T) {
	m := pgtype.NewMap()
	old := func(oid uint32, raw []byte) []byte {
		typ, _ := m.TypeForOID(oid)
		v, err := typ.Codec.DecodeValue(m, oid, pgtype.BinaryFormatCode, raw)
		if err != nil {
			t.Fatalf("pgx decode of %x: %v", raw, err)
		}
		b, err := encodeOld(toJSON(v, oid, raw))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	check := func(oid uint32, enc cellEncoder, raw []byte, inRange bool) {
		t.Helper()
		got, size, ok := enc([]byte("x"), raw)
		if ok != inRange {
			t.Fatalf("oid %d, %x: ok = %v, want %v", oid, raw, ok, inRange)
		}
		if !ok {
			return
		}
		if want := old(oid, raw); !bytes.Equal(got[1:], want) || size != len(want) {
			t.Fatalf("oid %d, %x: wrote %s (size %d); want %s (size %d)", oid, raw, got[1:], size, want, len(want))
		}
	}
	const usPerSec, usPerDay = 1_000_000, 86_400_000_000
	first := (time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 946684800) * usPerSec
	last := (time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()-946684800)*usPerSec + 999_999
	stamps := []int64{0, -1, 1, first, last, first - 1, last + 1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
		-usPerDay, usPerDay - 1, 120_000_000, 500_000, 10, 100_000, 123_456, 999_999_999}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20_000 {
		us := first + rng.Int64N(last-first+1)
		stamps = append(stamps, us, us/1_000*1_000, us/usPerSec*usPerSec, us/100_000*100_000)
	}
	for range 2_000 {
		stamps = append(stamps, int64(rng.Uint64()))
	}
	for _, us := range stamps {
		raw := binary.BigEndian.AppendUint64(nil, uint64(us))
		inRange := us >= first && us <= last
		check(pgtype.TimestamptzOID, encodeTimestamptz, raw, inRange)
		check(pgtype.TimestampOID, encodeTimestamp, raw, inRange)
	}
	firstDay, lastDay := int32(first/usPerDay), int32(last/usPerDay)
	var days []int32
	// Every day of the first and last years, and of the centuries
	// around 2000 (leap years and their exceptions); random ones between.
	for d := firstDay - 400; d <= firstDay+400; d++ {
		days = append(days, d, lastDay-400+(d-firstDay+400))
	}
	for d := int32(-40_000); d <= 40_000; d++ {
		days = append(days, d)
	}
	for range 20_000 {
		days = append(days, firstDay+rng.Int32N(lastDay-firstDay+1))
	}
	for _, d := range days {
		check(pgtype.DateOID, encodeDate, binary.BigEndian.AppendUint32(nil, uint32(d)), d >= firstDay && d <= lastDay)
	}
	for _, d := range []int32{math.MaxInt32, math.MinInt32, math.MaxInt32 - 1, math.MinInt32 + 1} {
		check(pgtype.DateOID, encodeDate, binary.BigEndian.AppendUint32(nil, uint32(d)), false)
	}
}
