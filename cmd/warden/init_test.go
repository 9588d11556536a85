package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// initSchema is a database with known sensitive and harmless columns.
// sensitiveColumns is the ground truth the suggestions are scored
// against; it includes columns the heuristics are known to miss
// (postcode, security_answer), so recall is measured, not assumed.
const initSchema = `
CREATE TABLE customers (
	id bigint PRIMARY KEY, full_name text, email text, phone text, street text, postcode text,
	card_number text, ssn text, status text, created_at timestamptz, notes text);
CREATE TABLE payments (
	id bigint PRIMARY KEY, customer_id bigint, beneficiary text, amount numeric(12,2),
	reference text, order_number bigint, paid_at timestamptz);
CREATE TABLE api_clients (
	id bigint PRIMARY KEY, name text, api_token text, client_secret text, webhook_url text,
	config text, key_id text, token_expires_at timestamptz, password_reset_required boolean);
CREATE TABLE users (
	id bigint PRIMARY KEY, username text, password_hash text, date_of_birth date, contact text,
	security_answer text, role text, email_verified boolean, last_login timestamptz);
CREATE TABLE products (
	id bigint PRIMARY KEY, name text, description text, sku text, price numeric(10,2),
	status text, token_count integer, tracking_number text, email_template text);
CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload jsonb, created_at timestamptz);
CREATE VIEW customer_summary AS SELECT id, email, status FROM customers;
CREATE SCHEMA hr;
CREATE TABLE hr.employees (id bigint PRIMARY KEY, name text, national_id text, department text);
`

var sensitiveColumns = []string{
	"public.customers.full_name", "public.customers.email", "public.customers.phone",
	"public.customers.street", "public.customers.postcode", "public.customers.card_number",
	"public.customers.ssn",
	"public.payments.beneficiary",
	"public.api_clients.api_token", "public.api_clients.client_secret", "public.api_clients.config",
	"public.users.password_hash", "public.users.date_of_birth", "public.users.contact",
	"public.users.security_answer",
	"hr.employees.name", "hr.employees.national_id",
}

// fixture generates the rows and remembers every sensitive value it
// wrote, so the test can prove none of them left the survey.
type fixture struct {
	rng     *rand.Rand
	secrets []string
}

func (f *fixture) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + f.rng.IntN(10))
	}
	return string(b)
}

func (f *fixture) alnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[f.rng.IntN(len(chars))]
	}
	return string(b)
}

func (f *fixture) keep(s string) string { f.secrets = append(f.secrets, s); return s }

// card is a Luhn-valid 16-digit Visa number, grouped by four.
func (f *fixture) card() string {
	d := "4" + f.digits(14)
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if (len(d)-i)%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d += string(byte('0' + (10-sum%10)%10))
	return f.keep(d[0:4] + " " + d[4:8] + " " + d[8:12] + " " + d[12:16])
}

// iban is a mod-97-valid British IBAN.
func (f *fixture) iban() string {
	bban := "WEST" + f.digits(14)
	num := ""
	for _, c := range bban + "GB00" {
		if c >= 'A' && c <= 'Z' {
			num += fmt.Sprint(int(c-'A') + 10)
		} else {
			num += string(c)
		}
	}
	mod := 0
	for _, c := range num {
		mod = (mod*10 + int(c-'0')) % 97
	}
	return f.keep(fmt.Sprintf("GB%02d%s", 98-mod, bban))
}

func (f *fixture) ssn() string {
	return f.keep(fmt.Sprintf("%03d-%02d-%04d", 100+f.rng.IntN(500), 1+f.rng.IntN(98), 1+f.rng.IntN(9998)))
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Donald"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Perlman", "Knuth"}
	statuses   = []string{"active", "closed", "pending", "suspended"}
	words      = []string{"prefers", "morning", "delivery", "fragile", "gift", "wrap", "call", "before", "leave", "at", "door"}
)

func (f *fixture) pick(s []string) string { return s[f.rng.IntN(len(s))] }

func (f *fixture) sentence() string {
	n := 3 + f.rng.IntN(6)
	w := make([]string, n)
	for i := range w {
		w[i] = f.pick(words)
	}
	return strings.Join(w, " ")
}

func (f *fixture) email(i int) string {
	return f.keep(fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(f.pick(firstNames)), strings.ToLower(f.pick(lastNames)), i))
}

// load fills the tables: 400 rows each (above the default sample of 200),
// through COPY.
func (f *fixture) load(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const n = 400
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	copyRows := func(table []string, cols []string, row func(i int) []any) {
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = row(i)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier(table), cols, pgx.CopyFromRows(rows)); err != nil {
			t.Fatalf("copy %v: %v", table, err)
		}
	}
	copyRows([]string{"customers"}, []string{"id", "full_name", "email", "phone", "street", "postcode", "card_number", "ssn", "status", "created_at", "notes"}, func(i int) []any {
		card := f.card()
		if i%29 == 0 {
			card = "unknown" // some values are not cards: the reason says how many are
		}
		notes := f.sentence()
		if i%20 == 0 {
			notes += " or write to " + f.email(i+10000)
		}
		return []any{int64(i + 1), f.keep(f.pick(firstNames) + " " + f.pick(lastNames)), f.email(i),
			f.keep("+44 20 " + f.digits(4) + " " + f.digits(4)), f.keep(fmt.Sprintf("%d High Street", 1+f.rng.IntN(200))),
			f.keep("SW1A " + f.digits(1) + "AA"), card, f.ssn(), f.pick(statuses), ts.Add(time.Duration(i) * time.Hour), notes}
	})
	copyRows([]string{"payments"}, []string{"id", "customer_id", "beneficiary", "amount", "reference", "order_number", "paid_at"}, func(i int) []any {
		return []any{int64(i + 1), int64(1 + f.rng.IntN(n)), f.iban(), fmt.Sprintf("%d.%02d", f.rng.IntN(5000), f.rng.IntN(100)),
			fmt.Sprintf("INV-2026-%06d", i), int64(1_000_000_000_000_000 + f.rng.Int64N(8_000_000_000_000_000)), ts.Add(time.Duration(i) * time.Minute)}
	})
	copyRows([]string{"api_clients"}, []string{"id", "name", "api_token", "client_secret", "webhook_url", "config", "key_id", "token_expires_at", "password_reset_required"}, func(i int) []any {
		return []any{int64(i + 1), fmt.Sprintf("billing-sync-%d", i), f.keep("ghp_" + f.alnum(36)), f.keep(f.alnum(40)),
			fmt.Sprintf("https://hooks.example.com/h/%d", i), "host=db.internal port=5432 user=app password=" + f.keep(f.alnum(20)),
			fmt.Sprintf("k-%d", i), ts.Add(time.Duration(i) * 24 * time.Hour), i%2 == 0}
	})
	copyRows([]string{"users"}, []string{"id", "username", "password_hash", "date_of_birth", "contact", "security_answer", "role", "email_verified", "last_login"}, func(i int) []any {
		return []any{int64(i + 1), fmt.Sprintf("user%d", i), f.keep("$2b$12$" + f.alnum(53)), ts.AddDate(-20-f.rng.IntN(50), 0, -f.rng.IntN(365)),
			f.email(i + 20000), f.keep(f.pick(lastNames) + " street"), f.pick([]string{"admin", "member", "viewer"}), i%3 == 0, ts}
	})
	copyRows([]string{"products"}, []string{"id", "name", "description", "sku", "price", "status", "token_count", "tracking_number", "email_template"}, func(i int) []any {
		return []any{int64(i + 1), fmt.Sprintf("Widget %d", i), f.sentence(), fmt.Sprintf("SKU-%05d", i), fmt.Sprintf("%d.99", f.rng.IntN(100)),
			f.pick(statuses), int32(f.rng.IntN(4000)), "1Z999AA1" + f.digits(10), "Hello {{name}}, your order shipped."}
	})
	copyRows([]string{"events"}, []string{"id", "kind", "payload", "created_at"}, func(i int) []any {
		return []any{int64(i + 1), f.pick([]string{"view", "click", "buy"}), fmt.Sprintf(`{"page": "/p/%d", "ms": %d}`, i, f.rng.IntN(900)), ts}
	})
	copyRows([]string{"hr", "employees"}, []string{"id", "name", "national_id", "department"}, func(i int) []any {
		return []any{int64(i + 1), f.keep(f.pick(firstNames) + " " + f.pick(lastNames)), f.ssn(), f.pick([]string{"sales", "ops", "eng"})}
	})
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
}

// initDB creates and fills the fixture database once per test.
func initDB(t *testing.T) (url string, f *fixture) {
	t.Helper()
	url = pgtest.New(t, initSchema)
	f = &fixture{rng: rand.New(rand.NewPCG(15, 1))}
	f.load(t, url)
	return url, f
}

// runMain runs the CLI in-process and returns exit code, stdout, stderr.
func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Clock: time.Now,
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code := m.Run(context.Background(), args)
	return code, out.String(), errb.String()
}

// ruleLines returns the masking rules of a config warden init wrote, by
// column, with the strategy and the comment.
func ruleLines(t *testing.T, cfg string) map[string]string {
	t.Helper()
	rules := map[string]string{}
	in := false
	for _, line := range strings.Split(cfg, "\n") {
		switch {
		case strings.HasPrefix(line, "    ") && strings.HasSuffix(strings.TrimSpace(line), ":") && in:
		case strings.HasPrefix(line, "  columns:"):
			in = true
		case in && strings.HasPrefix(line, "      "):
			col, rest, _ := strings.Cut(strings.TrimSpace(line), ": ")
			rules[col] = rest
		case in && !strings.HasPrefix(line, "    "):
			in = false
		}
	}
	return rules
}

func TestInitProposesAConfigThatPassesCheck(t *testing.T) {
	url, fx := initDB(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "warden.yaml")
	env := map[string]string{"SURVEY_URL": url}
	code, stdout, stderr := runMain(t, env, "init", "--dsn", url, "--out", out)
	if code != 0 {
		t.Fatalf("init = %d; stderr: %s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	t.Logf("warden.yaml:\n%s", cfg)

	t.Run("NeverWritesASampledValue", func(t *testing.T) {
		for _, v := range fx.secrets {
			for where, s := range map[string]string{"config": cfg, "stdout": stdout, "stderr": stderr} {
				if strings.Contains(s, v) {
					t.Fatalf("%s holds a sampled value %q", where, v)
				}
			}
		}
	})
	t.Run("NeverWritesTheDSN", func(t *testing.T) {
		if strings.Contains(cfg, url) || strings.Contains(stdout, url) || strings.Contains(stderr, url) {
			t.Fatal("the DSN was written")
		}
	})
	backend := strings.TrimPrefix(url[strings.LastIndex(url, "/")+1:], "")
	envVar := "WARDEN_" + strings.ToUpper(backend) + "_DSN"
	t.Run("ReadsTheDSNFromAVariable", func(t *testing.T) {
		if !strings.Contains(cfg, `dsn: "${`+envVar+`}"`) || !strings.Contains(stdout, "export "+envVar+"=") {
			t.Fatalf("config or stdout does not name %s:\n%s", envVar, stdout)
		}
	})
	t.Run("PassesCheck", func(t *testing.T) {
		code, so, se := runMain(t, map[string]string{envVar: url}, "check", "--config", out)
		if code != 0 {
			t.Fatalf("check = %d\n%s%s", code, so, se)
		}
		// Every table granted and every column masked exists.
		code, so, se = runMain(t, map[string]string{envVar: url}, "check", "--config", out, "--connect")
		if code != 0 {
			t.Fatalf("check --connect = %d\n%s%s", code, so, se)
		}
	})
	t.Run("GrantsEveryTableAndViewReadOnly", func(t *testing.T) {
		for _, tbl := range []string{"public.customers", "public.payments", "public.api_clients", "public.users",
			"public.products", "public.events", "public.customer_summary", "hr.employees"} {
			if !strings.Contains(cfg, "          - "+tbl+"\n") {
				t.Errorf("grant lacks %s", tbl)
			}
		}
		if !strings.Contains(cfg, "actions: [select]") || strings.Contains(cfg, "actions: [insert") {
			t.Error("grant is not read-only")
		}
	})
	t.Run("StrategiesAndReasons", func(t *testing.T) {
		rules := ruleLines(t, cfg)
		for col, want := range map[string]string{
			"public.customers.card_number":     "last4 # 193/200 sampled values are card numbers",
			"public.customers.email":           "email",
			"public.customers.ssn":             "redact",
			"public.payments.beneficiary":      "last4",
			"public.api_clients.config":        "redact",
			"public.users.password_hash":       "redact",
			"public.users.contact":             "email",
			"hr.employees.national_id":         "redact",
			"public.customers.phone":           "partial(2,2)",
			"public.api_clients.api_token":     "redact",
			"public.users.date_of_birth":       "redact",
			"public.api_clients.client_secret": "redact",
		} {
			got, ok := rules[col]
			if !ok || !strings.HasPrefix(strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(want), " ")) {
				t.Errorf("rule for %s = %q; want %q", col, got, want)
			}
		}
		if got := rules["public.users.password_hash"]; !strings.Contains(got, "# column name suggests a password") {
			t.Errorf("password_hash reason = %q; want the column name named", got)
		}
		if !strings.Contains(cfg, "public.customers.notes: 10/200 sampled values contain an email address") {
			t.Error("the emails inside notes are not reported as a note")
		}
	})
	t.Run("PrecisionAndRecall", func(t *testing.T) {
		rules := ruleLines(t, cfg)
		var tp, fp []string
		for col := range rules {
			if slices.Contains(sensitiveColumns, col) {
				tp = append(tp, col)
			} else {
				fp = append(fp, col)
			}
		}
		var missed []string
		for _, col := range sensitiveColumns {
			if _, ok := rules[col]; !ok {
				missed = append(missed, col)
			}
		}
		slices.Sort(fp)
		slices.Sort(missed)
		precision := float64(len(tp)) / float64(len(rules))
		recall := float64(len(tp)) / float64(len(sensitiveColumns))
		t.Logf("%d rules, %d sensitive columns: precision %.2f (false positives %v), recall %.2f (missed %v)",
			len(rules), len(sensitiveColumns), precision, fp, recall, missed)
		// The bar: no false positive on this fixture, and every column
		// the fixture holds but the two that neither names nor values
		// can reveal (a postcode, a security answer): 15 of 17.
		if precision < 1 || recall < 15.0/17 {
			t.Errorf("precision %.2f, recall %.2f; want 1.00 and >= 0.87", precision, recall)
		}
	})
	t.Run("SamplesLargeTablesAcrossPages", func(t *testing.T) {
		// 400 rows are more than 20 samples of 10: TABLESAMPLE reads them.
		code, small, stderr := runMain(t, env, "init", "--dsn", url, "--sample", "10", "--out", "-")
		if code != 0 {
			t.Fatalf("init --sample 10 = %d: %s", code, stderr)
		}
		if got := ruleLines(t, small)["public.customers.card_number"]; !strings.HasPrefix(got, "last4") {
			t.Errorf("with 10 samples card_number = %q; want last4", got)
		}
	})
	t.Run("NamesOnlyWithSampleZero", func(t *testing.T) {
		code, names, stderr := runMain(t, env, "init", "--dsn", url, "--sample", "0", "--out", "-")
		if code != 0 {
			t.Fatalf("init --sample 0 = %d: %s", code, stderr)
		}
		rules := ruleLines(t, names)
		if _, ok := rules["public.payments.beneficiary"]; ok {
			t.Error("without samples a column named beneficiary was masked")
		}
		if got := rules["public.customers.card_number"]; !strings.Contains(got, "column name suggests a card number") {
			t.Errorf("card_number without samples = %q; want the name's reason", got)
		}
	})
	t.Run("IsDeterministic", func(t *testing.T) {
		code, again, stderr := runMain(t, env, "init", "--dsn", "${SURVEY_URL}", "--out", "-")
		if code != 0 {
			t.Fatalf("init = %d: %s", code, stderr)
		}
		again = strings.ReplaceAll(again, "SURVEY_URL", envVar)
		if again != cfg {
			t.Errorf("a second run wrote something else")
		}
	})
	t.Run("RefusesToOverwrite", func(t *testing.T) {
		if err := os.WriteFile(out, []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runMain(t, env, "init", "--dsn", url, "--out", out)
		if code != 1 || !strings.Contains(stderr, "--force") {
			t.Fatalf("init over an existing file = %d, %q; want 1 naming --force", code, stderr)
		}
		if b, _ := os.ReadFile(out); string(b) != "mine\n" {
			t.Fatal("the existing file was changed")
		}
		if code, _, stderr := runMain(t, env, "init", "--dsn", url, "--out", out, "--force"); code != 0 {
			t.Fatalf("init --force = %d: %s", code, stderr)
		}
		if b, _ := os.ReadFile(out); string(b) != cfg {
			t.Fatal("--force did not write the proposal")
		}
	})
}

func TestInitRefusals(t *testing.T) {
	dsns := brokenBackends(t)
	for _, name := range []string{"badpass", "nodb", "down"} {
		t.Run("CannotConnect_"+name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "warden.yaml")
			code, stdout, stderr := runMain(t, nil, "init", "--dsn", dsns[name], "--out", out)
			if code != 1 || !strings.Contains(stderr, "init: cannot connect: ") {
				t.Fatalf("init = %d, %q; want 1 and the cause", code, stderr)
			}
			assertNoSecrets(t, dsns, stdout, stderr)
			if _, err := os.Stat(out); err == nil {
				t.Error("a config was written")
			}
		})
	}
	url := pgtest.New(t, "CREATE SCHEMA hr; CREATE TABLE hr.staff (id int, ssn text); CREATE TABLE public.other (id int)")
	t.Run("OnlyTheNamedSchemas", func(t *testing.T) {
		code, cfg, stderr := runMain(t, nil, "init", "--dsn", url, "--schema", "hr", "--out", "-")
		if code != 0 {
			t.Fatalf("init = %d: %s", code, stderr)
		}
		if !strings.Contains(cfg, "- hr.staff\n") || strings.Contains(cfg, "public.other") || !strings.Contains(cfg, "search_path: [hr]") {
			t.Errorf("config does not keep to schema hr:\n%s", cfg)
		}
		if !strings.Contains(cfg, "hr.staff.ssn: redact") {
			t.Errorf("the ssn column of an empty table is not masked by its name:\n%s", cfg)
		}
	})
	t.Run("UnknownSchema", func(t *testing.T) {
		code, _, stderr := runMain(t, nil, "init", "--dsn", url, "--schema", "hr,nosuch", "--out", "-")
		if code != 1 || !strings.Contains(stderr, "schema nosuch does not exist") {
			t.Errorf("init = %d, %q; want 1 naming the schema", code, stderr)
		}
	})
	t.Run("UsageErrors", func(t *testing.T) {
		for _, args := range [][]string{{"init"}, {"init", "--dsn", url, "--sample", "-1"}, {"init", "--dsn", url, "extra"}} {
			if code, _, _ := runMain(t, nil, args...); code != 2 {
				t.Errorf("%v = %d; want 2", args, code)
			}
		}
	})
}
