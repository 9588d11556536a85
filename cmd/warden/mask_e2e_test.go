package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// The raw values the masking tests must never find, in any response or in
// the recording's files. secret codes look like nothing a detector knows,
// so only column rules can hide them.
var rawValues = []string{
	"4111 1111 1111 1111", "4111111111111111", "5500 0000 0000 0004", "5500000000000004",
	"ada.lovelace@example.com", "grace.hopper@example.com",
	"078-05-1120", "219-09-9999",
	"zebra-7731-quartz", "otter-4410-maple",
}

const maskSchema = `
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, card_number text, ssn text, secret_code text, country text);
INSERT INTO customers VALUES
  (1, 'Ada', 'ada.lovelace@example.com', '4111 1111 1111 1111', '078-05-1120', 'zebra-7731-quartz', 'GB'),
  (2, 'Grace', 'grace.hopper@example.com', '5500 0000 0000 0004', '219-09-9999', 'otter-4410-maple', 'US');
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, total numeric(10,2), note text);
INSERT INTO orders VALUES (10, 1, 25.00, 'first'), (11, 2, 13.50, 'second');
CREATE VIEW customer_cards AS SELECT id, card_number AS card FROM customers;
CREATE VIEW customer_shouting AS SELECT id, upper(secret_code) AS code FROM customers;
CREATE VIEW cards_of_cards AS SELECT id, card FROM customer_cards;
`

func maskConfig(t *testing.T, dsn string, detectors bool) string {
	t.Helper()
	det := ""
	if detectors {
		det = "  detectors: [credit_card, email, us_ssn, iban, secret_token]\n"
	}
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.customers, public.orders, public.customer_cards, public.customer_shouting, public.cards_of_cards], actions: [select]}
masking:
  columns:
    shop:
      public.customers.card_number: last4
      public.customers.email: email
      public.customers.ssn: {strategy: redact, on_expression: deny}
      public.customers.secret_code: hash
%s`, det)
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	return path
}

// noRawValues fails when any raw value appears in s.
func noRawValues(t *testing.T, where, s string) {
	t.Helper()
	for _, raw := range rawValues {
		if strings.Contains(s, raw) {
			t.Errorf("%s contains the raw value %q:\n%s", where, raw, s)
		}
	}
}

// recordingBytes returns the bytes of every file of the SQLite store.
func recordingBytes(t *testing.T, config string) string {
	t.Helper()
	var all bytes.Buffer
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(config), "recording.db") + suffix)
		if err == nil {
			all.Write(b)
		}
	}
	if all.Len() == 0 {
		t.Fatal("no recording files found")
	}
	return all.String()
}

func TestMaskingFollowsProvenance(t *testing.T) {
	dsn := pgtest.New(t, maskSchema)
	config := maskConfig(t, dsn, false)
	t.Cleanup(func() { noRawValues(t, "the recording", recordingBytes(t, config)) })
	c := startStdio(t, config, mcp.ProtocolVersion20251125)

	masked := []struct {
		name, sql string
		want      string // a cell that must appear, in the JSON text of the result
	}{
		{"PlainColumnLast4", "SELECT card_number FROM customers ORDER BY id", `"**** **** **** 1111"`},
		{"Alias", "SELECT card_number AS x FROM customers ORDER BY id", `"**** **** **** 1111"`},
		{"Star", "SELECT * FROM customers ORDER BY id", `"***@example.com"`},
		{"Join", "SELECT o.id, c.card_number FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id", `"**** **** **** 0004"`},
		{"CTE", "WITH x AS (SELECT id, card_number AS k FROM customers) SELECT k FROM x ORDER BY id", `"**** **** **** 1111"`},
		{"Subquery", "SELECT k FROM (SELECT id, card_number AS k FROM customers) s ORDER BY id", `"**** **** **** 1111"`},
		{"HashIsDeterministic", "SELECT secret_code, secret_code AS again FROM customers ORDER BY id", `"hash:`},
		{"Upper", "SELECT upper(card_number) FROM customers", `"[masked]"`},
		{"Concat", "SELECT card_number || '' FROM customers", `"[masked]"`},
		{"Substring", "SELECT substring(card_number from 1 for 19) FROM customers", `"[masked]"`},
		{"Cast", "SELECT card_number::varchar(40) FROM customers", `"[masked]"`},
		{"Coalesce", "SELECT COALESCE(secret_code, name) FROM customers", `"[masked]"`},
		{"Case", "SELECT CASE WHEN id > 0 THEN secret_code ELSE name END FROM customers", `"[masked]"`},
		{"UnionBranch", "SELECT name FROM customers UNION ALL SELECT card_number FROM customers", `"[masked]"`},
		{"StringAgg", "SELECT string_agg(card_number, ',') FROM customers", `"[masked]"`},
		{"ArrayAgg", "SELECT array_agg(secret_code) FROM customers", `"[masked]"`},
		{"RowToJSONOfSubset", "SELECT row_to_json(x) FROM (SELECT id, card_number FROM customers) x", `"[masked]"`},
		{"JSONAggOfSubset", "SELECT json_agg(x) FROM (SELECT id, secret_code FROM customers) x", `"[masked]"`},
		{"ScalarSubquery", "SELECT (SELECT card_number FROM customers WHERE id = 1) AS c", `"**** **** **** 1111"`},
		{"ViewColumn", "SELECT card FROM customer_cards ORDER BY id", `"**** **** **** 1111"`},
		{"ViewOfView", "SELECT * FROM cards_of_cards ORDER BY id", `"**** **** **** 1111"`},
		{"ComputedViewColumn", "SELECT code FROM customer_shouting", `"[masked]"`},
	}
	for _, tt := range masked {
		t.Run("Masks"+tt.name, func(t *testing.T) {
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": tt.sql})
			body, _ := json.Marshal(r.Body)
			if r.IsError || !strings.Contains(string(body), tt.want) {
				t.Errorf("%s = %v %s; want a result containing %s", tt.sql, r.IsError, body, tt.want)
			}
			noRawValues(t, "the response to "+tt.sql, r.Text+string(body))
			if !strings.Contains(string(body), `"masked":true`) {
				t.Errorf("%s: no column is flagged masked: %s", tt.sql, body)
			}
		})
	}

	refused := []struct{ name, sql, rule string }{
		{"FilterWhere", "SELECT id FROM customers WHERE card_number LIKE '4111%'", "masking.filter"},
		{"FilterOrderBy", "SELECT id FROM customers ORDER BY secret_code", "masking.filter"},
		{"FilterGroupBy", "SELECT count(*) FROM customers GROUP BY email", "masking.filter"},
		{"FilterJoin", "SELECT o.id FROM orders o JOIN customers c ON c.secret_code = o.note", "masking.filter"},
		{"FilterThroughView", "SELECT id FROM customer_cards WHERE card = 'x'", "masking.filter"},
		{"ExpressionDenied", "SELECT lower(ssn) FROM customers", "masking.expression"},
		// ssn is masked with on_expression: deny, so any whole-row value
		// that carries it is refused too.
		{"WholeRowWithDeniedColumn", "SELECT c FROM customers c", "masking.expression"},
		{"RowToJSONWithDeniedColumn", "SELECT row_to_json(c) FROM customers c", "masking.expression"},
		{"ToJSONBStarWithDeniedColumn", "SELECT to_jsonb(c.*) FROM customers c", "masking.expression"},
		{"JSONAggWithDeniedColumn", "SELECT json_agg(c) FROM customers c", "masking.expression"},
	}
	for _, tt := range refused {
		t.Run("Refuses"+tt.name, func(t *testing.T) {
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": tt.sql})
			if !r.IsError || !strings.Contains(r.Text, "Rule: "+tt.rule) {
				t.Errorf("%s = %v %q; want a refusal by %s", tt.sql, r.IsError, r.Text, tt.rule)
			}
			body, _ := json.Marshal(r.Body)
			noRawValues(t, "the refusal of "+tt.sql, string(body))
		})
	}

	t.Run("WithholdsErrorsThatQuoteMaskedValues", func(t *testing.T) {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT secret_code::int FROM customers"})
		if !r.IsError || !strings.Contains(r.Text, "withheld") {
			t.Errorf("failing cast = %v %q; want the server message withheld", r.IsError, r.Text)
		}
		noRawValues(t, "the error", r.Text)
	})

	t.Run("SchemaFlagsMaskedColumns", func(t *testing.T) {
		r := call(t, c, "sql_schema", map[string]any{"database": "shop", "table": "customers"})
		body, _ := json.Marshal(r.Body)
		if r.IsError || !strings.Contains(string(body), `{"mask":"last4","masked":true,"name":"card_number"`) {
			t.Errorf("sql_schema customers = %s; want card_number flagged masked with last4", body)
		}
	})
}

func TestDetectorsMaskValuesAnywhere(t *testing.T) {
	dsn := pgtest.New(t, maskSchema+`
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'call ada.lovelace@example.com about card 4111 1111 1111 1111, ssn 078-05-1120'), (2, 'order 1234567890123 shipped');
`)
	config := maskConfig(t, dsn, true)
	data, _ := os.ReadFile(config)
	_ = os.WriteFile(config, bytes.Replace(data, []byte("public.cards_of_cards]"), []byte("public.cards_of_cards, public.notes]"), 1), 0o600)
	t.Cleanup(func() { noRawValues(t, "the recording", recordingBytes(t, config)) })
	c := startStdio(t, config, mcp.ProtocolVersion20251125)

	r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT body FROM notes ORDER BY id"})
	body, _ := json.Marshal(r.Body)
	if r.IsError || !strings.Contains(string(body), "[masked:credit_card]") || !strings.Contains(string(body), "order 1234567890123 shipped") {
		t.Errorf("notes = %s; want detected spans masked and the order id left alone", body)
	}
	noRawValues(t, "the detector response", r.Text+string(body))

	// Arguments are recorded with detected values masked, and a literal
	// in the statement is masked in the record too.
	r = call(t, c, "sql_query", map[string]any{"database": "shop", "purpose": "check ada.lovelace@example.com",
		"sql": "SELECT count(*) FROM orders WHERE note <> '4111 1111 1111 1111' AND note <> $1", "params": []any{"078-05-1120"}})
	if r.IsError {
		t.Fatalf("count = %s", r.Text)
	}
}
