package main

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

const probePassword = "Pr0be-Secret-Passw0rd"

// brokenBackends returns DSNs that fail in the ways an operator meets
// first: a wrong password (pgtest.RefusingServer: the local server trusts
// every local connection), a database that does not exist, nothing
// listening, a server without TLS when TLS is required. Each carries a
// password that must never be printed.
func brokenBackends(t *testing.T) map[string]string {
	t.Helper()
	refuser := pgtest.RefusingServer(t, "28P01")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	u, _ := url.Parse(pgtest.AdminURL())
	u.User = url.UserPassword("postgres", probePassword)
	u.Path = "/warden_no_such_database"
	return map[string]string{
		"badpass": "postgres://app:" + probePassword + "@" + refuser + "/shop?sslmode=disable",
		"nodb":    u.String(),
		"down":    "postgres://app:" + probePassword + "@" + closed + "/shop?sslmode=disable",
		"notls":   "postgres://app:" + probePassword + "@" + refuser + "/shop?sslmode=require",
	}
}

// probeConfig writes a config with the DSNs written into it (so the
// test can look for them in the output) and extra YAML appended.
func probeConfig(t *testing.T, dsns map[string]string, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("store: sqlite:recording.db\nidentity:\n  local: {subject: alice@example.com, groups: [analysts]}\nbackends:\n")
	var grants strings.Builder
	for _, name := range []string{"badpass", "down", "good", "nodb", "notls"} {
		dsn, ok := dsns[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "  %s: {kind: postgres, dsn: %q}\n", name, dsn)
		fmt.Fprintf(&grants, "      - {backend: %s, tables: [public.orders], actions: [select]}\n", name)
	}
	b.WriteString("roles:\n  analyst:\n    members: {groups: [analysts]}\n    grants:\n" + grants.String() + extra)
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertNoSecrets(t *testing.T, dsns map[string]string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		if strings.Contains(out, probePassword) {
			t.Errorf("output holds the password:\n%s", out)
		}
		for name, dsn := range dsns {
			u, _ := url.Parse(dsn)
			if strings.Contains(out, dsn) || strings.Contains(out, u.Host) {
				t.Errorf("output holds the DSN or address of %s:\n%s", name, out)
			}
		}
	}
}

// TestServeReportsEachBackendAtStart: one line per backend on stderr,
// the cause classified, no DSN or password; warden still starts, and a
// call to a broken backend is refused naming the cause.
func TestServeReportsEachBackendAtStart(t *testing.T) {
	dsns := brokenBackends(t)
	dsns["good"] = pgtest.New(t, "CREATE TABLE orders (id int)")
	config := probeConfig(t, dsns, "")

	cmd := exec.Command(wardenBin, "serve", "--config", config)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("serve with broken backends did not start and stop cleanly: %v\n%s", err, stderr.String())
	}
	lines := map[string]string{}
	for _, l := range strings.Split(stderr.String(), "\n") {
		for name := range dsns {
			if strings.Contains(l, " backend="+name+" ") {
				if _, dup := lines[name]; dup {
					t.Errorf("two lines for %s", name)
				}
				lines[name] = l
			}
		}
	}
	for name, want := range map[string]string{
		"good":    `msg="backend ready"`,
		"badpass": `cause="authentication failed: wrong password`,
		"nodb":    `cause="database does not exist`,
		"down":    `cause="connection refused`,
		"notls":   `cause="TLS: the server does not accept TLS`,
	} {
		if !strings.Contains(lines[name], want) {
			t.Errorf("start-up line for %s = %q; want %s", name, lines[name], want)
		}
	}
	assertNoSecrets(t, dsns, stderr.String(), stdout.String())

	t.Run("RefusalNamesTheCause", func(t *testing.T) {
		c := startStdio(t, config, mcp.ProtocolVersion20251125)
		for name, want := range map[string]string{"badpass": "authentication failed", "nodb": "database does not exist"} {
			r := call(t, c, "sql_query", map[string]any{"database": name, "sql": "SELECT 1"})
			if !r.IsError || !strings.Contains(r.Text, `database "`+name+`" is unavailable: `+want) {
				t.Errorf("call to %s = %v %q; want a refusal naming %q", name, r.IsError, r.Text, want)
			}
			assertNoSecrets(t, dsns, r.Text)
		}
	})
}

// TestCheckConnect: check --connect probes every backend and names what
// the config refers to that does not exist.
func TestCheckConnect(t *testing.T) {
	good := pgtest.New(t, `CREATE TABLE orders (id int, email text); CREATE SCHEMA reporting; CREATE TABLE reporting.daily (d date);
		CREATE FUNCTION refresh_totals() RETURNS int LANGUAGE sql AS 'SELECT 1'`)
	t.Run("PassesWhenEverythingExists", func(t *testing.T) {
		config := probeConfig(t, map[string]string{"good": good}, `      - {backend: good, tables: ["reporting.*"], actions: [select]}
      - {backend: good, functions: [public.refresh_totals]}
masking:
  columns:
    good: {public.orders.email: email}
approvals:
  - {name: writes, backend: good, when: [insert], tables: [public.orders], approvers: user}
`)
		code, stdout, stderr := runMain(t, nil, "check", "--config", config, "--connect")
		if code != 0 {
			t.Fatalf("check --connect = %d\n%s%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "good (postgres): ok: connected") {
			t.Errorf("stdout lacks the probe line:\n%s", stdout)
		}
	})
	t.Run("NamesWhatDoesNotExist", func(t *testing.T) {
		config := probeConfig(t, map[string]string{"good": good}, `      - {backend: good, tables: [public.ordrs, "nosuch.*"], actions: [select]}
      - {backend: good, functions: [public.refresh_total]}
masking:
  columns:
    good: {public.orders.emial: email}
approvals:
  - {name: writes, backend: good, when: [insert], tables: [public.orderz], approvers: user}
`)
		code, stdout, stderr := runMain(t, nil, "check", "--config", config, "--connect")
		if code != 1 {
			t.Fatalf("check --connect = %d; want 1\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{
			`roles.analyst.grants[1].tables: public.ordrs matches no table or view in database "good"`,
			`roles.analyst.grants[1].tables: nosuch.* matches no table or view in database "good"`,
			`roles.analyst.grants[2].functions: public.refresh_total is not a function in database "good"`,
			`masking.columns.good.public.orders.emial: no such column in database "good"`,
			`approvals[0].tables: public.orderz matches no table or view in database "good"`,
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if !strings.Contains(stderr, "5 problems found by --connect") {
			t.Errorf("stderr = %q", stderr)
		}
	})
	t.Run("ProbesHTTPWithoutARequest", func(t *testing.T) {
		var requests atomic.Int32
		api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
		defer api.Close()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		const token = "Bearer probe-token-never-sent-123"
		config := probeConfig(t, map[string]string{"good": good}, fmt.Sprintf(`      - {backend: trusted, methods: [GET], paths: ["/**"]}
      - {backend: untrusted, methods: [GET], paths: ["/**"]}
`)+"")
		data, _ := os.ReadFile(config)
		cfg := strings.Replace(string(data), "backends:\n", fmt.Sprintf("backends:\n  trusted: {kind: http, base_url: %q, ca_file: %q, headers: {Authorization: %q}}\n  untrusted: {kind: http, base_url: %q, headers: {Authorization: %q}}\n",
			api.URL+"/v1", ca, token, api.URL+"/v1", token), 1)
		if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runMain(t, nil, "check", "--config", config, "--connect")
		if code != 1 {
			t.Fatalf("check --connect = %d; want 1 (one API is not trusted)\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{"trusted (http): ok: reachable", `untrusted (http): FAILED: TLS with api "untrusted" failed: its certificate is signed by an authority warden does not trust`} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if n := requests.Load(); n != 0 {
			t.Errorf("the API received %d requests; want none", n)
		}
		if strings.Contains(stdout+stderr, "probe-token") || strings.Contains(stdout+stderr, api.URL) {
			t.Errorf("output holds the token or the URL:\n%s%s", stdout, stderr)
		}
	})
	t.Run("ReportsUnusableBackendsWithoutSecrets", func(t *testing.T) {
		dsns := brokenBackends(t)
		code, stdout, stderr := runMain(t, nil, "check", "--config", probeConfig(t, dsns, ""), "--connect")
		if code != 1 {
			t.Fatalf("check --connect = %d; want 1\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{"badpass (postgres): FAILED: authentication failed", "nodb (postgres): FAILED: database does not exist",
			"down (postgres): FAILED: connection refused", "notls (postgres): FAILED: TLS"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		assertNoSecrets(t, dsns, stdout, stderr)
	})
}
