package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/mask"
)

// Masking is judged by outcome, not by whether warden printed "refused".
// Two databases hold the same rows except for the raw values of masked
// columns, chosen so that their masked forms are identical (same last four
// digits, same e-mail domain, same ends for partial). Every statement of
// the adversarial corpus runs through the built binary against both; if
// any response differs, the statement told the agent something about a
// raw value. The responses and the recording files must also not contain
// any raw value.

// maskRaw are the raw values of each database; maskSchemaFor fills them in.
type maskRaw struct {
	card1, card2, email1, email2, ssn1, ssn2, phone1, salary1, salary2, vipCard, childPayload, payCard string
}

var (
	rawA = maskRaw{
		card1: "4111 1111 1111 1111", card2: "5500 0000 0000 0004", email1: "ada.lovelace@example.com", email2: "grace.hopper@example.com",
		ssn1: "078-05-1120", ssn2: "219-09-9999", phone1: "+44 20 7946 0958", salary1: "5000", salary2: "120000",
		vipCard: "3782 822463 10005", childPayload: "launch-code-alpha", payCard: "6011 0009 9013 9424",
	}
	rawB = maskRaw{
		card1: "4929 3344 5566 1111", card2: "4530 1113 3330 0004", email1: "zed.zimmerman@example.com", email2: "q@example.com",
		ssn1: "123-45-6789", ssn2: "987-65-4321", phone1: "+44 31 2222 3358", salary1: "91234", salary2: "7",
		vipCard: "9999 111111 00005", childPayload: "harmless-words-x", payCard: "4000 1234 5678 9424",
	}
	// secretRaw is hash-masked: it is the same in both databases (a hash
	// differs for different inputs by design), so it is judged by never
	// appearing and by guesses never matching.
	secretRaw = []string{"zebra-7731-quartz", "otter-4410-maple"}
)

func (r maskRaw) values() []string {
	return []string{r.card1, r.card2, r.email1, r.email2, r.ssn1, r.ssn2, r.phone1, r.vipCard, r.childPayload, r.payCard,
		strings.ReplaceAll(r.card1, " ", ""), strings.ReplaceAll(r.card2, " ", "")}
}

func maskSchemaFor(r maskRaw) string {
	return fmt.Sprintf(`
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, card_number text, ssn text, salary integer, phone text, secret_code text, country text,
  card_md5 text GENERATED ALWAYS AS (md5(card_number)) STORED);
INSERT INTO customers VALUES
  (1, 'Ada', '%s', '%s', '%s', %s, '%s', 'zebra-7731-quartz', 'GB'),
  (2, 'Grace', '%s', '%s', '%s', %s, NULL, 'otter-4410-maple', 'US'),
  (3, 'Linus', NULL, NULL, NULL, NULL, NULL, NULL, 'FI');
CREATE UNIQUE INDEX customers_email ON customers (email);
CREATE UNIQUE INDEX customers_ssn ON customers (lower(ssn));
CREATE TABLE refs (email text REFERENCES customers (email));
CREATE TABLE vip_customers (tier text) INHERITS (customers);
INSERT INTO vip_customers (id, name, email, card_number, ssn, salary, phone, secret_code, country, tier) VALUES (4, 'Vera', 'vera@example.org', '%s', NULL, 1, NULL, NULL, 'DE', 'gold');
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total numeric(10,2), note text);
INSERT INTO orders VALUES (10, 1, 25.00, 'first'), (11, 2, 13.50, 'second'), (12, 1, 7.25, '4111');
CREATE TABLE sink (id serial PRIMARY KEY, v text);
CREATE TABLE events (id int, payload text);
CREATE TABLE events_private () INHERITS (events);
INSERT INTO events VALUES (1, 'public-event');
INSERT INTO events_private VALUES (2, '%s');
CREATE TABLE payments (id int, card text) PARTITION BY RANGE (id);
CREATE TABLE payments_1 PARTITION OF payments FOR VALUES FROM (0) TO (100);
INSERT INTO payments VALUES (1, '%s');
CREATE TABLE cards_by_prefix (card text) PARTITION BY RANGE (card);
CREATE TABLE cards_4 PARTITION OF cards_by_prefix FOR VALUES FROM ('4') TO ('5');
CREATE TABLE cards_other PARTITION OF cards_by_prefix DEFAULT;
INSERT INTO cards_by_prefix SELECT card_number FROM customers WHERE card_number IS NOT NULL;
CREATE VIEW customer_cards AS SELECT id, card_number AS card FROM customers;
CREATE VIEW cards_of_cards AS SELECT id, card FROM customer_cards;
CREATE VIEW customer_shouting AS SELECT id, upper(secret_code) AS code, lower(email) AS mail FROM customers;
CREATE MATERIALIZED VIEW customer_mv AS SELECT id, email, card_number FROM customers;
ANALYZE customers;
`, r.email1, r.card1, r.ssn1, r.salary1, r.phone1, r.email2, r.card2, r.ssn2, r.salary2, r.vipCard, r.childPayload, r.payCard)
}

const maskTables = "pg_catalog.pg_stats, public.cards_by_prefix, public.customers, public.orders, public.vip_customers, public.events, public.events_private, public.payments, public.customer_cards, public.cards_of_cards, public.customer_shouting, public.customer_mv"

func maskConfigFor(t *testing.T, dsn string, extra string) string {
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
      - {backend: shop, tables: [%s], actions: [select]}
      - {backend: shop, tables: [public.sink], actions: [select, insert, delete]}
      - {backend: shop, tables: [public.customers], actions: [update, insert]}
      - {backend: shop, tables: [public.refs], actions: [insert, select]}
masking:
  hash_key: "0123456789abcdef0123456789abcdef-e2e"
  columns:
    shop:
      public.customers.card_number: last4
      public.customers.email: email
      public.customers.ssn: redact
      public.customers.salary: redact
      public.customers.phone: partial(2,2)
      public.customers.secret_code: hash
      public.events_private.payload: redact
      public.payments.card: last4
      public.cards_by_prefix.card: last4
      public.customer_shouting.id: redact
%s`, dsn, maskTables, extra)
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noRawValues fails when any raw value appears in s.
func noRawValues(t *testing.T, where, s string, raws ...[]string) {
	t.Helper()
	for _, list := range raws {
		for _, raw := range list {
			if strings.Contains(s, raw) {
				t.Errorf("%s contains the raw value %q:\n%s", where, raw, s)
			}
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

var (
	callIDs     = regexp.MustCompile(`c-[0-9A-Za-z_-]{6,}`)
	planTimings = regexp.MustCompile(`(time=|Time: )[0-9.]+(\.\.[0-9.]+)?( ms)?`)
	// A plan prints the hash pads it was given: for EXPLAIN they are a
	// fresh random key's, so they differ run to run by design.
	planPads = regexp.MustCompile(`x[0-9a-f]{128}`)
)

// observed is what an agent can observe of one call: the structured result
// or the error text, with call ids and timings (which differ run to run)
// normalised away.
func observed(r result) string {
	body := map[string]any{}
	for k, v := range r.Body {
		if k != "call_id" {
			body[k] = v
		}
	}
	b, _ := json.Marshal(body)
	s := fmt.Sprintf("error=%v text=%s body=%s", r.IsError, r.Text, b)
	if r.IsError {
		s = fmt.Sprintf("error=%v text=%s", r.IsError, r.Text)
	}
	return planPads.ReplaceAllString(planTimings.ReplaceAllString(callIDs.ReplaceAllString(s, "c-ID"), "${1}T"), "xPAD")
}

// adversarialCorpus are statements an agent who knows PostgreSQL would
// send to recover masked values. Each is judged by outcome.
var adversarialCorpus = []string{
	// Plain reads, for the baseline.
	"SELECT * FROM customers ORDER BY id",
	"SELECT card_number, email, ssn, salary, phone, secret_code FROM customers ORDER BY id",
	"SELECT id, card_md5 FROM customers ORDER BY id",
	"SELECT count(*) FROM customers WHERE card_md5 = md5('4111 1111 1111 111' || '1')",
	"SELECT c.* FROM customers c ORDER BY 1",
	"TABLE customers",
	// Counts and existence driven by masked values.
	"SELECT count(*) FROM customers WHERE card_number LIKE '4111%'",
	"SELECT count(*) FROM customers WHERE card_number LIKE '4%'",
	"SELECT count(*) FROM customers WHERE substr(card_number, 1, 1) = '4'",
	"SELECT count(*) FROM customers WHERE email LIKE 'ada%'",
	"SELECT count(*) FROM customers WHERE email LIKE 'a%'",
	"SELECT count(*) FROM customers WHERE ssn = '078-05-112' || '0'",
	"SELECT count(*) FROM customers WHERE ssn LIKE '0%'",
	"SELECT count(*) FROM customers WHERE salary::text = '5000'",
	"SELECT count(*) FROM customers WHERE salary::text LIKE '5%'",
	"SELECT count(*) FROM customers WHERE phone LIKE '+44 20%'",
	"SELECT count(*) FROM customers WHERE secret_code = 'zebra-7731-' || 'quartz'",
	"SELECT count(*) FROM customers WHERE secret_code LIKE 'zebra%'",
	"SELECT EXISTS (SELECT 1 FROM customers WHERE card_number LIKE '4111%')",
	"SELECT EXISTS (SELECT 1 FROM customers WHERE card_number ~ '^4')",
	"SELECT EXISTS (SELECT 1 FROM customers WHERE email ~ '^ada')",
	"SELECT id FROM customers WHERE card_number LIKE '4%' ORDER BY id",
	"SELECT id FROM customers WHERE length(card_number) = 19 ORDER BY id",
	"SELECT id FROM customers WHERE length(email) > 20 ORDER BY id",
	"SELECT id FROM customers WHERE position('lovelace' in email) > 0",
	"SELECT id FROM customers WHERE ascii(card_number) = 52",
	"SELECT id FROM customers WHERE card_number >= '4' ORDER BY id",
	"SELECT id FROM customers WHERE card_number BETWEEN '4' AND '5' ORDER BY id",
	"SELECT id FROM customers WHERE card_number IN ('4111 1111 1111 111' || '1', 'x')",
	"SELECT id FROM customers WHERE card_number = ANY (ARRAY['4111 1111 1111 111' || '1'])",
	"SELECT id FROM customers WHERE card_number SIMILAR TO '4%'",
	"SELECT id FROM customers WHERE card_number ILIKE '4111%'",
	"SELECT id FROM customers WHERE lower(email) = 'ada.lovelace@' || 'example.com'",
	"SELECT id FROM customers WHERE md5(card_number) = md5('4111 1111 1111 111' || '1')",
	"SELECT id FROM customers WHERE sha256(convert_to(ssn, 'UTF8')) = sha256(convert_to('078-05-112' || '0', 'UTF8'))",
	"SELECT id FROM customers WHERE salary::text::int > 1000",
	"SELECT id FROM customers WHERE salary IS NOT NULL ORDER BY id",
	"SELECT count(*) FILTER (WHERE card_number LIKE '4%') FROM customers",
	"SELECT sum(CASE WHEN card_number LIKE '4%' THEN 1 ELSE 0 END) FROM customers",
	"SELECT sum(ascii(substr(card_number, 1, 1))) FROM customers",
	"SELECT sum(length(email)) FROM customers",
	"SELECT max(card_number), min(card_number) FROM customers",
	"SELECT max(email), min(ssn) FROM customers",
	"SELECT bool_or(card_number LIKE '4%') FROM customers",
	"SELECT avg(length(card_number)) FROM customers",
	// Bits, one comparison at a time.
	"SELECT id, get_bit(convert_to(card_number, 'UTF8'), 0) FROM customers ORDER BY id",
	"SELECT id, get_byte(convert_to(email, 'UTF8'), 0) FROM customers ORDER BY id",
	"SELECT id, ascii(substr(card_number, 2, 1)) FROM customers ORDER BY id",
	"SELECT id, (ascii(card_number) >> 1) & 1 FROM customers ORDER BY id",
	"SELECT id, to_hex(ascii(email)) FROM customers ORDER BY id",
	"SELECT id, encode(convert_to(card_number, 'UTF8'), 'hex') FROM customers ORDER BY id",
	"SELECT id, encode(convert_to(ssn, 'UTF8'), 'base64') FROM customers ORDER BY id",
	"SELECT id, md5(card_number) FROM customers ORDER BY id",
	"SELECT id, hashtext(email) FROM customers ORDER BY id",
	"SELECT id, length(card_number), octet_length(email), bit_length(ssn) FROM customers ORDER BY id",
	"SELECT id, reverse(card_number) FROM customers ORDER BY id",
	"SELECT id, translate(card_number, '0123456789', 'abcdefghij') FROM customers ORDER BY id",
	"SELECT id, regexp_replace(card_number, '[^0-9]', '', 'g') FROM customers ORDER BY id",
	"SELECT id, split_part(email, '@', 1) FROM customers ORDER BY id",
	"SELECT id, upper(email), initcap(card_number) FROM customers ORDER BY id",
	"SELECT id, card_number || '' FROM customers ORDER BY id",
	"SELECT id, format('%s', ssn) FROM customers ORDER BY id",
	"SELECT id, concat(salary, '') FROM customers ORDER BY id",
	"SELECT id, card_number::varchar(40), card_number::bytea FROM customers ORDER BY id",
	"SELECT id, to_json(card_number), to_jsonb(email) FROM customers ORDER BY id",
	"SELECT id, quote_literal(ssn) FROM customers ORDER BY id",
	"SELECT id, left(card_number, 4), right(email, 3) FROM customers ORDER BY id",
	"SELECT id, substring(card_number from 1 for 4) FROM customers ORDER BY id",
	"SELECT id, overlay(card_number placing 'x' from 1 for 1) FROM customers ORDER BY id",
	"SELECT id, string_to_array(card_number, ' ') FROM customers ORDER BY id",
	"SELECT id, regexp_matches(card_number, '(\\d+)') FROM customers ORDER BY id",
	"SELECT id, starts_with(card_number, '4') FROM customers ORDER BY id",
	// NULL-ness of computed values.
	"SELECT id, nullif(card_number, '4111 1111 1111 111' || '1') IS NULL FROM customers ORDER BY id",
	"SELECT id, nullif(substr(card_number, 1, 1), '4') FROM customers ORDER BY id",
	"SELECT id, CASE WHEN card_number LIKE '4%' THEN NULL ELSE 1 END FROM customers ORDER BY id",
	"SELECT id, (regexp_match(card_number, '^4'))[1] IS NULL FROM customers ORDER BY id",
	"SELECT id, coalesce(substring(email from '^a'), 'no') FROM customers ORDER BY id",
	"SELECT id, greatest(card_number, '4') FROM customers ORDER BY id",
	"SELECT id, card_number IS DISTINCT FROM '4111 1111 1111 111' || '1' FROM customers ORDER BY id",
	// Errors and SQLSTATEs chosen by a raw character.
	"SELECT 1 / (ascii(substr(card_number, 1, 1)) - 52) FROM customers WHERE id = 1",
	"SELECT 1 / (length(email) - 24) FROM customers WHERE id = 1",
	"SELECT CASE WHEN card_number LIKE '4%' THEN 1/0 ELSE 1 END FROM customers WHERE id = 1",
	"SELECT CASE WHEN ssn LIKE '0%' THEN 'x'::int ELSE 1 END FROM customers WHERE id = 1",
	"SELECT substr(card_number, 1, 1)::int FROM customers WHERE id = 1",
	"SELECT card_number::int FROM customers WHERE id = 1",
	"SELECT salary::text::int FROM customers WHERE id = 1",
	"SELECT email::json FROM customers WHERE id = 1",
	"SELECT phone::numeric FROM customers WHERE id = 1",
	"SELECT to_date(ssn, 'YYY-MM-DD') FROM customers WHERE id = 1",
	"SELECT (ARRAY[1,2,3])[ascii(card_number) - 50] FROM customers WHERE id = 1",
	"SELECT repeat('x', ascii(card_number) * 1000000) FROM customers WHERE id = 1",
	"SELECT generate_series(1, ascii(card_number)) FROM customers WHERE id = 1 LIMIT 100",
	"SELECT 1 FROM customers WHERE id = 1 AND (CASE WHEN card_number LIKE '4%' THEN (SELECT 1 UNION SELECT 2) ELSE 1 END) = 1",
	"SELECT jsonb_path_query('{}'::jsonb, ('$.' || substr(card_number, 1, 1))::jsonpath) FROM customers WHERE id = 1",
	"SELECT regexp_match('x', card_number) FROM customers WHERE id = 1",
	"SELECT regexp_match('x', '(' || substr(card_number, 1, 1)) FROM customers WHERE id = 1",
	// DISTINCT and set operations comparing masked values.
	"SELECT count(DISTINCT card_number) FROM customers",
	"SELECT count(DISTINCT substr(card_number, 1, 4)) FROM customers",
	"SELECT count(DISTINCT email) FROM customers",
	"SELECT DISTINCT salary FROM customers ORDER BY 1",
	"SELECT card_number FROM customers INTERSECT SELECT '4111 1111 1111 111' || '1'",
	"SELECT count(*) FROM (SELECT card_number FROM customers EXCEPT SELECT '4111 1111 1111 111' || '1') s",
	"SELECT count(*) FROM (SELECT email FROM customers UNION SELECT 'ada.lovelace@' || 'example.com') s",
	"SELECT count(*) FROM (SELECT substr(card_number, 1, 1) FROM customers UNION SELECT '4') s",
	"SELECT card_number, count(*) FROM customers GROUP BY card_number ORDER BY 1",
	"SELECT substr(card_number, 1, 1), count(*) FROM customers GROUP BY 1 ORDER BY 1",
	"SELECT count(*) FROM customers GROUP BY salary HAVING salary::text LIKE '5%'",
	"SELECT a.id FROM customers a JOIN customers b ON a.card_number < b.card_number ORDER BY 1",
	"SELECT o.id FROM orders o JOIN customers c ON o.note = substr(c.card_number, 1, 4) ORDER BY 1",
	"SELECT o.id FROM orders o JOIN customers c ON position(o.note in c.card_number) > 0 ORDER BY 1",
	// Ordering and windows.
	"SELECT id FROM customers ORDER BY card_number, id",
	"SELECT id FROM customers ORDER BY email DESC NULLS LAST, id",
	"SELECT id FROM customers ORDER BY salary, id",
	"SELECT id FROM customers ORDER BY ssn, id",
	"SELECT id FROM customers ORDER BY phone, id",
	"SELECT id, row_number() OVER (ORDER BY card_number, id) FROM customers ORDER BY id",
	"SELECT id, rank() OVER (ORDER BY email) FROM customers ORDER BY id",
	"SELECT id, dense_rank() OVER (ORDER BY salary) FROM customers ORDER BY id",
	"SELECT id, lag(card_number) OVER (ORDER BY id) FROM customers ORDER BY id",
	"SELECT id, first_value(email) OVER (ORDER BY email) FROM customers ORDER BY id",
	"SELECT id, count(*) OVER (PARTITION BY substr(card_number, 1, 1)) FROM customers ORDER BY id",
	"SELECT id, percent_rank() OVER (ORDER BY ssn) FROM customers ORDER BY id",
	"SELECT id, ntile(2) OVER (ORDER BY card_number) FROM customers ORDER BY id",
	// Lateral, CTEs, recursive CTEs.
	"SELECT c.id, x.ch FROM customers c, LATERAL (SELECT substr(c.card_number, 1, 1) AS ch) x ORDER BY 1",
	"SELECT c.id, x.n FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n FROM generate_series(1, ascii(c.card_number))) x ORDER BY 1",
	"SELECT c.id, x.* FROM customers c LEFT JOIN LATERAL (SELECT 1 AS hit WHERE c.email LIKE 'ada%') x ON true ORDER BY 1",
	"WITH t AS (SELECT card_number AS k FROM customers) SELECT count(*) FROM t WHERE k LIKE '4%'",
	"WITH t AS MATERIALIZED (SELECT * FROM customers) SELECT id, email FROM t ORDER BY id",
	"WITH RECURSIVE r(i, s) AS (SELECT 1, (SELECT card_number FROM customers WHERE id = 1) UNION ALL SELECT i + 1, substr(s, 2) FROM r WHERE i < 19) SELECT i, ascii(s) FROM r ORDER BY i",
	"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20) SELECT i, substr((SELECT card_number FROM customers WHERE id = 1), i, 1) FROM r ORDER BY i",
	"WITH RECURSIVE r(n) AS (SELECT ascii(card_number) FROM customers WHERE id = 1 UNION ALL SELECT n - 1 FROM r WHERE n > 0) SELECT count(*) FROM r",
	// Whole rows, JSON and arrays.
	"SELECT c FROM customers c ORDER BY id",
	"SELECT row_to_json(c) FROM customers c ORDER BY id",
	"SELECT to_jsonb(c.*) FROM customers c ORDER BY id",
	"SELECT json_agg(c ORDER BY id) FROM customers c",
	"SELECT jsonb_object_agg(id, card_number) FROM customers",
	"SELECT array_agg(card_number ORDER BY id) FROM customers",
	"SELECT string_agg(email, ',' ORDER BY id) FROM customers",
	"SELECT (c).card_number FROM customers c ORDER BY id",
	"SELECT hstore_like FROM (SELECT row(c.*)::text AS hstore_like FROM customers c) s ORDER BY 1",
	// Scalar subqueries and correlated probes.
	"SELECT (SELECT card_number FROM customers WHERE id = 1)",
	"SELECT (SELECT count(*) FROM customers WHERE card_number LIKE '4111%')",
	"SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id AND c.card_number LIKE '4%') ORDER BY id",
	"SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn LIKE '0%') ORDER BY id",
	"SELECT id FROM orders WHERE note = ANY (SELECT substr(card_number, 1, 4) FROM customers) ORDER BY id",
	// Parameters.
	"SELECT count(*) FROM customers WHERE card_number LIKE $1 || '%'",
	// Plans.
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM customers WHERE card_number LIKE '4111%'",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM customers WHERE email LIKE 'ada%'",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT 1/(ascii(card_number) - 52) FROM customers",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT DISTINCT substr(card_number, 1, 1) FROM customers",
	"EXPLAIN ANALYZE SELECT * FROM customers WHERE salary::text LIKE '5%'",
	"EXPLAIN SELECT * FROM customers WHERE card_number LIKE '4111 1111%'",
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT secret_code FROM customers WHERE secret_code = 'x'",
	"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT secret_code FROM customers",
	// Inheritance children, partitions, views and materialized views.
	"SELECT card_number FROM vip_customers",
	"SELECT count(*) FROM vip_customers WHERE card_number LIKE '3782%'",
	"SELECT count(*) FROM customers WHERE card_number LIKE '3782%'",
	"SELECT count(*) FROM ONLY customers WHERE card_number LIKE '4111%'",
	"SELECT id, tier, email FROM vip_customers",
	"SELECT payload FROM events ORDER BY id",
	"SELECT count(*) FROM events WHERE payload LIKE 'launch%'",
	"SELECT payload FROM events_private",
	"SELECT count(*) FROM ONLY events_private WHERE payload LIKE 'launch%'",
	"SELECT card FROM payments",
	"SELECT card FROM payments_1",
	"SELECT count(*) FROM payments_1 WHERE card LIKE '6011%'",
	"SELECT count(*) FROM cards_4",
	"SELECT card FROM cards_other",
	"SELECT count(*) FROM cards_by_prefix",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM cards_by_prefix",
	"SELECT card FROM customer_cards ORDER BY id",
	"SELECT count(*) FROM customer_cards WHERE card LIKE '4111%'",
	"SELECT * FROM cards_of_cards ORDER BY id",
	"SELECT count(*) FROM cards_of_cards WHERE card LIKE '4%'",
	"SELECT code, mail FROM customer_shouting ORDER BY id",
	"SELECT id, mail FROM customer_shouting cs ORDER BY cs.mail",
	"SELECT count(*) FROM customer_shouting WHERE mail LIKE 'ada%'",
	"SELECT * FROM customer_mv ORDER BY id",
	"SELECT count(*) FROM customer_mv WHERE card_number LIKE '4111%'",
	// Writes: copying into a granted table, read back by the next entry.
	"INSERT INTO sink (v) SELECT card_number FROM customers",
	"INSERT INTO sink (v) SELECT substr(card_number, 1, 4) FROM customers RETURNING v",
	"INSERT INTO sink (v) SELECT email FROM customers WHERE email LIKE 'ada%' RETURNING v",
	"INSERT INTO sink (v) SELECT count(*)::text FROM customers WHERE ssn LIKE '0%'",
	"INSERT INTO sink (v) SELECT payload FROM events",
	"WITH x AS (INSERT INTO sink (v) SELECT card FROM payments_1 RETURNING v) SELECT * FROM x",
	"SELECT v FROM sink ORDER BY id",
	// Writes to the masked table itself may not read its masked values.
	"UPDATE customers SET name = name WHERE card_number LIKE '4111%'",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) UPDATE customers SET name = name WHERE card_number LIKE '4%'",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM customers WHERE id = 99 AND email LIKE 'ada%'",
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM customers WHERE secret_code LIKE 'hash:%'",
	"UPDATE customers SET name = card_number WHERE id = 1",
	"UPDATE customers SET name = 'Ada' WHERE id = 1 RETURNING *",
	"UPDATE customers SET name = 'Ada' WHERE id = 1 RETURNING email",
	"UPDATE customers c SET name = 'Ada' WHERE c.id = 1 RETURNING c",
	"UPDATE customers SET name = 'Ada' WHERE id = 1 AND length(ssn) = 11",
	"UPDATE customers SET name = 'Ada' FROM orders o WHERE o.customer_id = customers.id AND customers.salary > 1000",
	"UPDATE customers SET name = 'Ada' WHERE id = 1 RETURNING name",
	"SELECT name FROM customers ORDER BY id",
	// Constraint verdicts: a unique index or a foreign key on a masked
	// column tells whether a guessed value exists.
	"INSERT INTO customers (id, email) VALUES (98, 'ada.lovelace@' || 'example.com')",
	"INSERT INTO customers (id, email) VALUES (98, 'ada.lovelace@' || 'example.com') ON CONFLICT DO NOTHING RETURNING id",
	"INSERT INTO customers (id, name, email) VALUES (98, 'X', 'ada.lovelace@' || 'example.com')",
	"INSERT INTO customers VALUES (98, 'X', 'ada.lovelace@' || 'example.com')",
	"UPDATE customers SET email = 'ada.lovelace@' || 'example.com' WHERE id = 3",
	"UPDATE customers SET ssn = '078-05-112' || '0' WHERE id = 3",
	"INSERT INTO refs (email) VALUES ('ada.lovelace@' || 'example.com')",
	"INSERT INTO customers (id, name) VALUES (97, 'Zoe') RETURNING id, name",
	"SELECT count(*) FROM refs",
	// Planner statistics sample raw values.
	"SELECT attname, most_common_vals FROM pg_stats WHERE tablename = 'customers' ORDER BY attname",
	"SELECT histogram_bounds FROM pg_stats WHERE tablename = 'customers' AND attname = 'salary'",
	// Through functions that read a table by name or run SQL text.
	"SELECT query_to_xml('SELECT card_number FROM public.customers', true, false, '')",
	"SELECT table_to_xml('public.customers', true, false, '')",
	"SELECT xmlagg(xmlelement(name c, card_number)) FROM customers",
}

// TestMaskingAtTheSourceByOutcome runs the adversarial corpus against two
// databases that differ only in raw masked values.
func TestMaskingAtTheSourceByOutcome(t *testing.T) {
	if len(adversarialCorpus) < 150 {
		t.Fatalf("the adversarial corpus has %d cases; want at least 150", len(adversarialCorpus))
	}
	dsnA, dsnB := pgtest.New(t, maskSchemaFor(rawA)), pgtest.New(t, maskSchemaFor(rawB))
	configA, configB := maskConfigFor(t, dsnA, ""), maskConfigFor(t, dsnB, "")
	raws := [][]string{rawA.values(), rawB.values(), secretRaw}
	t.Cleanup(func() {
		noRawValues(t, "recording A", recordingBytes(t, configA), raws...)
		noRawValues(t, "recording B", recordingBytes(t, configB), raws...)
	})
	a := startStdio(t, configA, mcp.ProtocolVersion20251125)
	b := startStdio(t, configB, mcp.ProtocolVersion20251125)
	// The control: run directly against the raw data, most of the corpus
	// does tell the databases apart; otherwise the judge proves nothing.
	if n := discriminating(t, dsnA, dsnB); n < len(adversarialCorpus)*2/3 {
		t.Fatalf("only %d of %d corpus statements tell the raw databases apart when run directly; the corpus is too weak to judge by", n, len(adversarialCorpus))
	}
	answered := 0
	for i, sql := range adversarialCorpus {
		t.Run(fmt.Sprintf("%03d", i), func(t *testing.T) {
			args := map[string]any{"database": "shop", "sql": sql}
			if strings.Contains(sql, "$1") {
				args["params"] = []any{"4111"}
			}
			ra, rb := call(t, a, "sql_query", args), call(t, b, "sql_query", args)
			if !ra.IsError {
				answered++
			}
			oa, ob := observed(ra), observed(rb)
			if oa != ob {
				t.Errorf("%s tells the databases apart:\n A: %s\n B: %s", sql, oa, ob)
			}
			noRawValues(t, "the response to "+sql, oa+ob, raws...)
		})
	}
	t.Logf("%d of %d corpus statements were answered (the rest refused or failed alike on both databases)", answered, len(adversarialCorpus))
	if answered < len(adversarialCorpus)/2 {
		t.Errorf("only %d of %d corpus statements were answered; masking must answer over masked values, not refuse", answered, len(adversarialCorpus))
	}
}

// discriminating runs the corpus directly (no warden) against both raw
// databases, each statement in a transaction rolled back, and counts the
// statements whose results differ.
func discriminating(t *testing.T, dsnA, dsnB string) int {
	t.Helper()
	run := func(conn *pgx.Conn, sql string) string {
		tx, err := conn.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(t.Context()) //nolint:errcheck // always rolled back
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{"4111"}
		}
		rows, err := tx.Query(t.Context(), sql, args...)
		if err != nil {
			return "error " + err.Error()
		}
		var out []string
		for rows.Next() {
			vals, _ := rows.Values()
			out = append(out, fmt.Sprint(vals...))
		}
		if err := rows.Err(); err != nil {
			out = append(out, "error "+err.Error())
		}
		return planTimings.ReplaceAllString(strings.Join(out, "\n"), "${1}T")
	}
	ca, err := pgx.Connect(t.Context(), dsnA)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(t.Context())
	cb, err := pgx.Connect(t.Context(), dsnB)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(t.Context())
	n := 0
	for _, sql := range adversarialCorpus {
		if run(ca, sql) != run(cb, sql) {
			n++
		}
	}
	return n
}

// TestMaskingAnswersWithMaskedValues: the masked forms an agent sees, and
// the `masked` annotations.
func TestMaskingAnswersWithMaskedValues(t *testing.T) {
	config := maskConfigFor(t, pgtest.New(t, maskSchemaFor(rawA)), "")
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	cases := []struct{ name, sql, want string }{
		{"Last4", "SELECT card_number FROM customers WHERE id = 1", `[["**** **** **** 1111"]]`},
		{"Email", "SELECT email FROM customers WHERE id = 1", `[["***@example.com"]]`},
		{"Redact", "SELECT ssn FROM customers WHERE id = 1", `[["[masked]"]]`},
		{"RedactInteger", "SELECT salary FROM customers WHERE id = 1", `[["[masked]"]]`},
		{"Partial", "SELECT phone FROM customers WHERE id = 1", `[["+44 ** **** **58"]]`},
		{"NullStaysNull", "SELECT card_number, email FROM customers WHERE id = 3", `[[null,null]]`},
		{"HashIsStable", "SELECT secret_code = (SELECT secret_code FROM customers WHERE id = 1) FROM customers WHERE id = 1", `[[true]]`},
		{"JoinOnHashWorks", "SELECT count(*) FROM customers a JOIN customers b ON a.secret_code = b.secret_code", `[[2]]`},
		{"ComputedOverMasked", "SELECT upper(email) FROM customers WHERE id = 1", `[["***@EXAMPLE.COM"]]`},
		{"ChildInheritsRules", "SELECT card_number FROM vip_customers", `[["**** ****** *0005"]]`},
		{"PartitionInheritsRules", "SELECT card FROM payments_1", `[["**** **** **** 9424"]]`},
		{"ParentMasksChildRule", "SELECT payload FROM events ORDER BY id", `[["[masked]"],["[masked]"]]`},
		{"ViewInlined", "SELECT card FROM cards_of_cards WHERE id = 2", `[["**** **** **** 0004"]]`},
		{"ViewWithItsOwnRule", "SELECT id, mail FROM customer_shouting s ORDER BY s.mail LIMIT 1", `[["[masked]","***@example.com"]]`},
		{"MaterializedViewInlined", "SELECT email FROM customer_mv WHERE id = 2", `[["***@example.com"]]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": tc.sql})
			rows, _ := json.Marshal(r.rows())
			if r.IsError || string(rows) != tc.want {
				t.Errorf("%s = %v %s %s; want %s", tc.sql, r.IsError, r.Text, rows, tc.want)
			}
		})
	}
	r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id, card_number FROM customers WHERE id = 1"})
	body, _ := json.Marshal(r.Body["columns"])
	if !strings.Contains(string(body), `"mask":"last4 (public.customers.card_number)","masked":true,"name":"card_number"`) {
		t.Errorf("columns = %s; want card_number annotated as masked with last4", body)
	}
	// The hash key's pads are bound parameters; a plan, which prints bound
	// values, must not show them.
	inner, outer := mask.NewMasker([]byte("0123456789abcdef0123456789abcdef-e2e")).HMACPads()
	for _, sql := range []string{
		"EXPLAIN (VERBOSE, COSTS OFF) SELECT secret_code FROM customers WHERE secret_code = 'x'",
		"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) SELECT secret_code FROM customers WHERE secret_code = 'x'",
		"EXPLAIN (GENERIC_PLAN) SELECT secret_code FROM customers",
	} {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql})
		body, _ := json.Marshal(r.Body)
		for _, pad := range [][]byte{inner, outer} {
			if strings.Contains(r.Text+string(body), hex.EncodeToString(pad[:16])) {
				t.Errorf("%s shows the hash key's pad: %s", sql, body)
			}
		}
	}
	r = call(t, c, "sql_schema", map[string]any{"database": "shop", "table": "customers"})
	body, _ = json.Marshal(r.Body)
	if r.IsError || !strings.Contains(string(body), `{"mask":"last4","masked":true,"name":"card_number"`) {
		t.Errorf("sql_schema customers = %s; want card_number flagged masked with last4", body)
	}
	noRawValues(t, "the recording", recordingBytes(t, config), rawA.values(), secretRaw)
}

// TestMaskingGuessesNeverMatch: the agent cannot confirm a guess of a
// hash-masked value, however it phrases the comparison.
func TestMaskingGuessesNeverMatch(t *testing.T) {
	config := maskConfigFor(t, pgtest.New(t, maskSchemaFor(rawA)), "")
	c := startStdio(t, config, mcp.ProtocolVersion20251125)
	for _, sql := range []string{
		"SELECT count(*) FROM customers WHERE secret_code = 'zebra-7731-quartz'",
		"SELECT count(*) FROM customers WHERE secret_code LIKE '%7731%'",
		"SELECT count(*) FROM customers WHERE md5(secret_code) = md5('zebra-7731-quartz')",
		"SELECT count(*) FROM customers WHERE card_number = '4111 1111 1111 1111'",
		"SELECT count(*) FROM customers WHERE email = 'ada.lovelace@example.com'",
		"SELECT count(*) FROM customers WHERE ssn = '078-05-1120'",
		"SELECT count(*) FROM customers WHERE salary = '5000'",
	} {
		r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql})
		if rows, _ := json.Marshal(r.rows()); r.IsError || string(rows) != "[[0]]" {
			t.Errorf("%s = %v %s %s; want [[0]]: the guess must compare against masked values", sql, r.IsError, r.Text, rows)
		}
	}
}

func TestDetectorsMaskValuesAnywhere(t *testing.T) {
	dsn := pgtest.New(t, maskSchemaFor(rawA)+`
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'call ada.lovelace@example.com about card 4111 1111 1111 1111, ssn 078-05-1120'), (2, 'order 1234567890123 shipped');
`)
	config := maskConfigFor(t, dsn, "  detectors: [credit_card, email, us_ssn, iban, secret_token]\n")
	data, _ := os.ReadFile(config)
	_ = os.WriteFile(config, bytes.Replace(data, []byte(maskTables+"]"), []byte(maskTables+", public.notes]"), 1), 0o600)
	t.Cleanup(func() { noRawValues(t, "the recording", recordingBytes(t, config), rawA.values()[:7]) })
	c := startStdio(t, config, mcp.ProtocolVersion20251125)

	r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT body FROM notes ORDER BY id"})
	body, _ := json.Marshal(r.Body)
	if r.IsError || !strings.Contains(string(body), "[masked:credit_card]") || !strings.Contains(string(body), "order 1234567890123 shipped") {
		t.Errorf("notes = %s; want detected spans masked and the order id left alone", body)
	}
	noRawValues(t, "the detector response", r.Text+string(body), rawA.values()[:7])

	// Arguments are recorded with detected values masked, and a literal
	// in the statement is masked in the record too.
	r = call(t, c, "sql_query", map[string]any{"database": "shop", "purpose": "check ada.lovelace@example.com",
		"sql": "SELECT count(*) FROM orders WHERE note <> '4111 1111 1111 1111' AND note <> $1", "params": []any{"078-05-1120"}})
	if r.IsError {
		t.Fatalf("count = %s", r.Text)
	}
}
