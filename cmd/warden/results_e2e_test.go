package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// With results.structured_content: false a successful result is its text
// block alone, holding the same JSON; a refusal still carries both.
func TestResultsTextOnlyEndToEnd(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "1s")
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("results: {structured_content: false}\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c := startStdio(t, config, mcp.ProtocolVersion20251125)

	ok := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id, status FROM orders ORDER BY id LIMIT 3"})
	if ok.IsError || ok.Body != nil {
		t.Fatalf("select: isError %v, structured content %v; want a result with no structured content", ok.IsError, ok.Body)
	}
	var body struct {
		Rows     [][]any `json:"rows"`
		RowCount int     `json:"row_count"`
		CallID   string  `json:"call_id"`
	}
	if err := json.Unmarshal([]byte(ok.Text), &body); err != nil || body.RowCount != 3 || len(body.Rows) != 3 || body.CallID == "" {
		t.Fatalf("text = %.200s (%v); want the result's JSON with 3 rows and a call id", ok.Text, err)
	}

	denied := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll"})
	if !denied.IsError || denied.Body == nil || denied.callID() == "" {
		t.Fatalf("denied: isError %v, structured content %v; want a refusal with its codes", denied.IsError, denied.Body)
	}
}
