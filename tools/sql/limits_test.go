package sql

import (
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
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
