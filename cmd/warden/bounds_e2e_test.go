package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// Statements that used to crash warden or run until the statement timeout,
// through the built binary and a real MCP client: the process keeps
// serving, every refusal says what to do instead, the first rows of a huge
// scan come back, and the recording holds each call with its outcome.
func TestStatementBoundsEndToEnd(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "3s") // max_rows: 5
	c := startStdio(t, config, mcp.ProtocolVersion20260728)
	query := func(sql string) result {
		return call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql})
	}

	// A chain of operators that overflowed the cgo parser's stack: the
	// process died with SIGSEGV, taking every session with it.
	deep := query("SELECT 1" + strings.Repeat("+1", 30000))
	if !deep.IsError || !strings.Contains(deep.Text, "nests too deeply") {
		t.Fatalf("the 30,000-operator chain = %+v; want a refusal saying it nests too deeply", deep)
	}
	alive := query("SELECT count(*) FROM orders")
	if alive.IsError || len(alive.rows()) != 1 {
		t.Fatalf("after the deep statement: %+v; want warden still answering", alive)
	}

	long := query("SELECT 1 FROM orders WHERE status = '" + strings.Repeat("x", 70000) + "'")
	if !long.IsError || !strings.Contains(long.Text, "max_statement_bytes") {
		t.Errorf("a 70 KB statement = %+v; want a refusal naming max_statement_bytes", long)
	}

	// 30^6 = 729 million rows: before, warden read them all (and threw
	// them away) until the 3 s statement timeout cancelled the call.
	huge := query("SELECT a.id, b.id, c.id FROM orders a, orders b, orders c, orders d, orders e, orders f")
	if huge.IsError || len(huge.rows()) != 5 || huge.Body["truncated"] != true {
		t.Fatalf("the 729-million-row join = %+v; want its first 5 rows, truncated", huge)
	}
	if note, _ := huge.Body["note"].(string); !strings.Contains(note, "max_rows") {
		t.Errorf("the truncated result's note = %q; want it to name max_rows", note)
	}

	// Each call is in the recording with the outcome the agent saw.
	recorded := recordedCalls(t, config)
	for _, r := range []struct{ prefix, outcome, code string }{
		{"SELECT 1+1+1", "error", "invalid"},
		{"SELECT count(*) FROM orders", "ok", ""},
		{"SELECT 1 FROM orders WHERE status = 'xxx", "error", "invalid"},
		{"SELECT a.id, b.id", "ok", ""},
	} {
		found := false
		for _, rec := range recorded {
			var args struct{ SQL string }
			_ = json.Unmarshal(rec.Args, &args)
			if strings.HasPrefix(args.SQL, r.prefix) {
				found = true
				if rec.Outcome != r.outcome || rec.ErrorCode != r.code {
					t.Errorf("recorded %.40q: outcome %q, code %q; want %q, %q", rec.Statement, rec.Outcome, rec.ErrorCode, r.outcome, r.code)
				}
			}
		}
		if !found {
			t.Errorf("no recorded call for %q", r.prefix)
		}
	}
}
