package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// watchedServer is a `warden serve` process whose whole standard error the test
// keeps (the log under test), with the addresses it listens on.
type watchedServer struct {
	*server
	observeBase string // the observe.listen address, when configured

	mu  sync.Mutex
	log strings.Builder
}

func (o *watchedServer) stderr() string { o.mu.Lock(); defer o.mu.Unlock(); return o.log.String() }

var observeListening = regexp.MustCompile(`observability endpoints listening.*addr[=":]+([0-9.:\[\]]+)`)
var listeningAny = regexp.MustCompile(`warden listening.*addr[=":]+([0-9.:\[\]]+)`)

// launchObserved starts `warden serve --transport http` with env added and
// waits until it listens.
func launchObserved(t *testing.T, config string, env ...string) *watchedServer {
	t.Helper()
	cmd := exec.Command(wardenBin, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
	cmd.Env = append(append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN")), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := &watchedServer{server: &server{cmd: cmd, exited: make(chan error, 1)}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			o.mu.Lock()
			o.log.WriteString(line + "\n")
			if m := observeListening.FindStringSubmatch(line); m != nil {
				o.observeBase = "http://" + m[1]
			}
			o.mu.Unlock()
			if m := listeningAny.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		o.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		o.base = "http://" + a
	case err := <-o.exited:
		t.Fatalf("warden exited before listening: %v\n%s", err, o.stderr())
	case <-time.After(30 * time.Second):
		t.Fatal("warden did not start listening within 30s")
	}
	return o
}

// scrape reads url's metrics in the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("%s is not in the Prometheus text format: %v", url, err)
	}
	return families
}

// sample finds the metric of family name whose labels include want; ok
// is false when there is none.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f, ok := families[name]
	if !ok {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

func TestMetricsEndToEnd(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	other := oidctest.New(t) // an issuer warden does not trust
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  oidc:
    - {issuer: %q, audience: warden, groups_claim: realm_access.roles}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s, max_rows: 5}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders, public.customers], actions: [select]}
      - {backend: shop, tables: [public.notes], actions: [select, update]}
approvals:
  - {name: note-updates, backend: shop, when: [update], tables: [public.notes], approvers: {groups: [dba]}, wait: 0s}
log: {format: json}
`, idp.Issuer())
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	w := launchObserved(t, config)
	t.Cleanup(func() { w.stop(t) })

	src := &tokenSource{}
	src.set(idp.Token(t, analystClaims("alice@example.com")))
	c := connect(t, w.base, "http", src, mcp.ProtocolVersion20251125)
	query := func(sql string) result {
		return call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql})
	}
	for i := range 3 {
		if r := query(fmt.Sprintf("SELECT id FROM orders WHERE id = %d", i+1)); r.IsError {
			t.Fatalf("allowed query failed: %s", r.Text)
		}
	}
	for range 2 {
		if r := query("SELECT * FROM payroll"); !r.IsError {
			t.Fatalf("payroll was readable: %s", r.Text)
		}
	}
	if r := query("SELECT id / 0 FROM orders"); !r.IsError || !strings.Contains(r.Text, "division by zero") {
		t.Fatalf("division by zero = %s; want a failed call", r.Text)
	}
	if r := query("UPDATE notes SET body = 'x' WHERE id = 1"); !r.IsError || !strings.Contains(r.Text, "approval") {
		t.Fatalf("held update = %s; want a call waiting for approval", r.Text)
	}
	// Refused at the transport, before any call: one request without a
	// token, one with garbage, one signed by an issuer warden does not trust.
	for _, auth := range []string{"", "Bearer not-a-jwt", "Bearer " + other.Token(t, analystClaims("mallory@example.com"))} {
		if status, _, _ := rawCall(t, w.base, auth); status != http.StatusUnauthorized {
			t.Fatalf("request with Authorization %.20q = %d; want 401", auth, status)
		}
	}

	m := scrape(t, w.base+"/metrics")
	counter := func(name string, labels map[string]string) float64 {
		s, ok := sample(m, name, labels)
		if !ok {
			t.Errorf("%s%v: missing", name, labels)
			return -1
		}
		if s.GetCounter() != nil {
			return s.GetCounter().GetValue()
		}
		return s.GetGauge().GetValue()
	}
	calls := func(decision, outcome string) map[string]string {
		return map[string]string{"tool": "sql_query", "backend": "shop", "decision": decision, "outcome": outcome}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warden_calls_total", calls("allow", "ok"), 3},
		{"warden_calls_total", calls("deny", "denied"), 2},
		{"warden_calls_total", calls("allow", "invalid"), 1},
		{"warden_calls_total", calls("allow", "needs_approval"), 1},
		{"warden_auth_failures_total", map[string]string{"reason": "missing_token"}, 1},
		{"warden_auth_failures_total", map[string]string{"reason": "invalid_token"}, 2},
		{"warden_auth_failures_total", map[string]string{"reason": "insufficient_scope"}, 0},
		{"warden_approvals_pending", nil, 1},
		{"warden_calls_in_flight", nil, 0},
	} {
		if got := counter(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v; want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	var total float64
	for _, s := range m["warden_calls_total"].GetMetric() {
		total += s.GetCounter().GetValue()
	}
	if total != 7 {
		t.Errorf("warden_calls_total sums to %v; want the 7 calls made", total)
	}
	// Every call passes call, plan, authorize and record; the 5 allowed
	// ones the approval rules; the 4 that were not held run.
	for stage, want := range map[string]uint64{"call": 7, "plan": 7, "authorize": 7, "approve": 5, "record_intent": 4, "execute": 4, "record": 7} {
		s, ok := sample(m, "warden_stage_duration_seconds", map[string]string{"stage": stage, "tool": "sql_query"})
		if !ok {
			t.Errorf("no latency histogram for stage %s", stage)
			continue
		}
		if got := s.GetHistogram().GetSampleCount(); got != want {
			t.Errorf("stage %s histogram count = %d; want %d", stage, got, want)
		}
	}
	if _, ok := sample(m, "warden_stage_duration_seconds", map[string]string{"stage": "mask"}); ok {
		t.Errorf("a mask stage was watchedServer without value detectors")
	}
	// Each call's outcome and each allowed call's intent is a record
	// (sessions and refusals add more).
	if s, ok := sample(m, "warden_recorder_commit_duration_seconds", nil); !ok || s.GetHistogram().GetSampleCount() == 0 {
		t.Errorf("no recorder commits watchedServer")
	}
	if got := counter("warden_recorder_records_total", nil); got < 11 {
		t.Errorf("warden_recorder_records_total = %v; want at least 11", got)
	}
	if _, ok := sample(m, "warden_recorder_queue_depth", nil); !ok {
		t.Errorf("no recorder queue depth")
	}
	if _, ok := sample(m, "warden_build_info", map[string]string{"version": Version}); !ok {
		t.Errorf("no build info for version %s", Version)
	}
	// No label value comes from a caller: every series' labels are from
	// the closed sets.
	closed := map[string]map[string]bool{
		"tool":     {"sql_query": true, "sql_schema": true, "http_call": true, "kube_get": true, "unknown": true},
		"backend":  {"shop": true, "none": true, "unknown": true},
		"decision": {"allow": true, "deny": true, "needs_approval": true, "none": true, "unknown": true},
		"outcome":  {"ok": true, "denied": true, "needs_approval": true, "invalid": true, "unauthenticated": true, "unavailable": true, "internal": true},
	}
	for _, name := range []string{"warden_calls_total", "warden_stage_duration_seconds"} {
		for _, s := range m[name].GetMetric() {
			for _, l := range s.GetLabel() {
				if set, ok := closed[l.GetName()]; ok && !set[l.GetValue()] {
					t.Errorf("%s has label %s=%q outside its closed set", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The log is JSON, one object a line, with a line per refused or
	// failed call naming its outcome.
	outcomes := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(w.stderr()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		if entry["msg"] == "call" {
			outcomes[fmt.Sprint(entry["outcome"])]++
		}
	}
	if outcomes["denied"] != 2 || outcomes["invalid"] != 1 || outcomes["needs_approval"] != 1 || outcomes["ok"] != 0 {
		t.Errorf("call lines in the log at info by outcome = %v; want 2 denied, 1 invalid, 1 needs_approval and no ok", outcomes)
	}
}

// TestProbesEndToEnd checks /healthz and /readyz on a separate observe
// listener: ready while the store and the database answer, not ready
// (503, naming the check and nothing more) once the database is gone,
// alive throughout.
func TestProbesEndToEnd(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	data, _ := os.ReadFile(config)
	if err := os.WriteFile(config, append(data, []byte("observe: {listen: \"127.0.0.1:0\"}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	w := launchObserved(t, config)
	t.Cleanup(func() { w.stop(t) })
	w.mu.Lock()
	obs := w.observeBase
	w.mu.Unlock()
	if obs == "" {
		t.Fatalf("no observe listener in the log:\n%s", w.stderr())
	}
	get := func(url string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(obs + "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q; want 200 ok", code, body)
	}
	if code, body := get(obs + "/readyz"); code != 200 || body != "store ok\nbackend shop (postgres) ok\n" {
		t.Errorf("/readyz = %d %q; want 200 with both checks ok", code, body)
	}
	if code, _ := get(obs + "/metrics"); code != 200 {
		t.Errorf("/metrics on the observe listener = %d; want 200", code)
	}
	if code, _ := get(w.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the MCP listener with observe.listen set = %d; want 404", code)
	}
	if code, _ := get(w.base + "/readyz"); code != 200 {
		t.Errorf("/readyz on the MCP listener = %d; want 200", code)
	}
	if code, _ := get(obs+"/metrics", "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("/metrics from a browser page = %d; want 403", code)
	}

	// The database goes away: not ready, still alive.
	dropDatabase(t, dsn)
	code, body := get(obs + "/readyz")
	if code != http.StatusServiceUnavailable || body != "store ok\nbackend shop (postgres) failed\n" {
		t.Errorf("/readyz without the database = %d %q; want 503 naming the failed backend", code, body)
	}
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "postgres://") {
		t.Errorf("/readyz shows a cause: %q", body)
	}
	if code, _ := get(obs + "/healthz"); code != 200 {
		t.Errorf("/healthz without the database = %d; want 200 (the process is alive)", code)
	}
}

// dropDatabase drops the database of dsn now, closing its connections.
func dropDatabase(t *testing.T, dsn string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}

// TestLogCarriesNoSecrets runs calls whose arguments, results and errors
// carry credentials and values the detectors and column rules mask, with
// the log at debug level in JSON and traces sent to an OTLP/HTTP
// receiver, and checks that none of those values, masked or not, nor the
// database password, is in the log or in a span.
func TestLogCarriesNoSecrets(t *testing.T) {
	var (
		spansMu sync.Mutex
		spans   []*tracepb.Span
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		spansMu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
		spansMu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	const (
		ghToken    = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
		slackToken = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
		card       = "4111111111111111"
		email      = "ada.lovelace@example.org"
		password   = "dsn-password-Zq8vK2"
	)
	dsn := pgtest.New(t, e2eSchema+`
CREATE TABLE vault (id int PRIMARY KEY, token text, card text, email text);
INSERT INTO vault VALUES (1, '`+ghToken+`', '`+card+`', '`+email+`');
`)
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword("postgres", password) // trust auth ignores it; the log must too
	cfg := `
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts]}
  allow_unauthenticated_loopback: true
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.vault, public.orders], actions: [select]}
masking:
  detectors: [secret_token, credit_card, email]
  columns:
    shop:
      public.vault.card: last4
log: {level: debug, format: json}
observe: {traces: {endpoint: "` + collector.URL + `"}}
`
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", u.String())
	w := launchObserved(t, config)
	c := connect(t, w.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	query := func(sql string) result {
		return call(t, c, "sql_query", map[string]any{"database": "shop", "sql": sql, "purpose": "audit " + slackToken})
	}
	if r := query("SELECT token, card, email FROM vault"); r.IsError || !strings.Contains(r.Text, "[masked") {
		t.Fatalf("vault read = %s; want a masked result", r.Text)
	}
	if r := query("SELECT id FROM vault WHERE token = '" + ghToken + "'"); r.IsError {
		t.Fatalf("lookup by token failed: %s", r.Text)
	}
	if r := query("SELECT '" + ghToken + "'::int FROM orders"); !r.IsError {
		t.Fatalf("a cast that fails succeeded: %s", r.Text)
	}
	if r := query("SELECT * FROM payroll WHERE employee = '" + email + "'"); !r.IsError {
		t.Fatalf("payroll was readable: %s", r.Text)
	}
	dropDatabase(t, dsn)
	if r := query("SELECT id FROM vault WHERE email = '" + email + "'"); !r.IsError {
		t.Fatalf("a call to a dropped database succeeded: %s", r.Text)
	}
	c.Close()
	w.stop(t)

	log := w.stderr()
	if !strings.Contains(log, `"msg":"call"`) {
		t.Fatalf("the log has no call lines at debug level:\n%s", log)
	}
	spansMu.Lock()
	defer spansMu.Unlock()
	var calls int
	for _, s := range spans {
		if s.GetName() == "warden.call" {
			calls++
		}
	}
	if calls != 5 {
		t.Errorf("the collector received %d call spans (of %d spans); want 5, sent as warden stopped", calls, len(spans))
	}
	for _, secret := range []string{ghToken, slackToken, card, email, password, "1111", "[masked", "ghp_", "xoxb-"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log carries %q:\n%s", secret, log)
		}
		for _, s := range spans {
			if text := spanText(s); strings.Contains(text, secret) {
				t.Errorf("span %s carries %q: %s", s.GetName(), secret, text)
			}
		}
	}
}

// spanText is everything in a span that could carry a value: its name,
// status message, and its and its events' attributes (ids and timestamps
// are binary or numbers warden made).
func spanText(s *tracepb.Span) string {
	var b strings.Builder
	b.WriteString(s.GetName() + " " + s.GetStatus().GetMessage())
	attrs := s.GetAttributes()
	for _, e := range s.GetEvents() {
		b.WriteString(" " + e.GetName())
		attrs = append(attrs, e.GetAttributes()...)
	}
	for _, kv := range attrs {
		b.WriteString(" " + kv.GetKey() + "=" + kv.GetValue().String())
	}
	return b.String()
}
