package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// commands lists every command and subcommand in the usage text, so a new
// command (warden init) is covered as soon as it has a usage line.
func commands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, l := range strings.Split(usage, "\n") {
		f := strings.Fields(l)
		if !strings.HasPrefix(l, "  warden ") || len(f) < 2 {
			continue
		}
		cmd := f[1]
		if groups[cmd] {
			if !slices.Contains(cmds, cmd) {
				cmds = append(cmds, cmd)
			}
			cmd += " " + f[2]
		}
		cmds = append(cmds, cmd)
	}
	for _, want := range []string{"serve", "check", "explain", "demo", "version", "sessions", "sessions list", "sessions show",
		"sessions replay", "sessions verify", "sessions export", "approvals", "approvals list", "approvals show",
		"approvals approve", "approvals deny"} {
		if !slices.Contains(cmds, want) {
			t.Fatalf("usage has no line for warden %s:\n%s", want, usage)
		}
	}
	return cmds
}

// A flag's line in help: --name, then a placeholder if it takes a value.
var flagLine = regexp.MustCompile(`^  --[a-z][a-z0-9-]*( [A-Za-z][A-Za-z0-9_|.,:\[\]]*)?$`)

func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range commands(t) {
		words := strings.Fields(cmd)
		for _, args := range [][]string{
			append(slices.Clone(words), "-h"),
			append(slices.Clone(words), "--help"),
			append([]string{"help"}, words...),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				stdout, stderr, code := runWarden(t, args...)
				if code != 0 || stderr != "" {
					t.Fatalf("warden %s = exit %d, stderr %q; want 0 and help on stdout", strings.Join(args, " "), code, stderr)
				}
				if !strings.HasPrefix(stdout, "Usage:\n  warden "+cmd) {
					t.Fatalf("warden %s printed:\n%s\nwant it to start with the usage of warden %s", strings.Join(args, " "), stdout, cmd)
				}
				inFlags := false
				for _, l := range strings.Split(stdout, "\n") {
					switch {
					case l == "Flags:":
						inFlags = true
					case inFlags && strings.HasPrefix(l, "  --") && !flagLine.MatchString(l):
						t.Errorf("flag line %q does not read as --name [VALUE]", l)
					case inFlags && strings.HasPrefix(l, "        ") && strings.TrimSpace(l) == "":
						t.Errorf("a flag of warden %s has no description", cmd)
					}
				}
			})
		}
	}
	t.Run("top level", func(t *testing.T) {
		for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
			stdout, _, code := runWarden(t, args...)
			if code != 0 || stdout != usage {
				t.Errorf("warden %s = exit %d\n%s\nwant 0 and the usage", args[0], code, stdout)
			}
		}
	})
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr, after the message
	}{
		{[]string{}, "Usage:\n  warden serve"},
		{[]string{"nonsense"}, "Usage:\n  warden serve"},
		{[]string{"sessions"}, "warden sessions list"},
		{[]string{"sessions", "nonsense"}, "warden sessions verify"},
		{[]string{"sessions", "list", "--nonsense"}, "Usage:\n  warden sessions list"},
		{[]string{"sessions", "show"}, "Run 'warden sessions show --help' for details."},
		{[]string{"approvals", "approve", "--token"}, "Usage:\n  warden approvals approve"},
		{[]string{"serve", "--transport", "carrier-pigeon"}, "Usage:\n  warden serve"},
		{[]string{"explain", "sql_query"}, "Usage:\n  warden explain"},
		{[]string{"version", "now"}, "Usage:\n  warden version"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := runWarden(t, tc.args...)
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "warden: ") || !strings.Contains(stderr, tc.want) {
				t.Fatalf("warden %s = exit %d\nstdout: %s\nstderr: %s\nwant exit 2, an error and %q on stderr", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
			}
		})
	}
}

func TestExplainExitStatus(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	// An approval rule on inserts into notes: the call would be held.
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("approvals:\n  - {name: notes, backend: shop, when: [insert], approvers: {groups: [dba]}, wait: 0s}\n")...)
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	as := []string{"explain", "--config", config, "--as", "alice@example.com:analysts"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout (exit 0, 1) or stderr (exit 2)
	}{
		{"AllowedRead", []string{"sql_query", "database=shop", "sql=SELECT id FROM orders WHERE id = $1", "params=[1]"}, 0, "decision  allow by roles.analyst.grants[0]"},
		{"JSONValues", []string{"sql_query", "database=shop", "sql=SELECT id FROM orders WHERE id = $1", "params:=[1]"}, 0, "decision  allow"},
		{"DeniedTable", []string{"sql_query", "database=shop", "sql=SELECT * FROM payroll"}, 1, "decision  deny by default-deny"},
		{"HeldForApproval", []string{"sql_query", "database=shop", "sql=INSERT INTO notes (body) VALUES ('x')"}, 1, "approval  needed: rule notes"},
		{"InvalidArguments", []string{"sql_query", "database=shop"}, 1, "decision  invalid"},
		{"MultiLineStatement", []string{"sql_query", "database=shop", "sql=SELECT *\nFROM payroll"}, 1, "decision  deny"},
		{"UnknownToolListsTheTools", []string{"sql_quarry", "database=shop"}, 2, `unknown tool "sql_quarry"; warden's tools are http_call, kube_get, sql_query, sql_schema`},
		{"NotKeyValue", []string{"sql_query", "database"}, 2, `argument "database" is neither key=value nor key:=json`},
		{"BadJSON", []string{"sql_query", "params:=[1"}, 2, "the value is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runWarden(t, append(slices.Clone(as), tc.args...)...)
			got := stdout
			if tc.code == 2 {
				got = stderr
			}
			if code != tc.code || !strings.Contains(got, tc.out) {
				t.Fatalf("warden explain %s = exit %d\nstdout: %s\nstderr: %s\nwant exit %d and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.out)
			}
			if strings.Contains(stdout, `\n`) {
				t.Errorf("explain printed a \\n escape instead of lines:\n%s", stdout)
			}
		})
	}
	if _, stderr, code := runWarden(t, "explain", "--config", config, "sql_query"); code != 2 || !strings.Contains(stderr, "--as") {
		t.Errorf("explain without --as = exit %d, %s; want 2", code, stderr)
	}
}

// TestListeningMessageNamesTheEndpoints connects to the URLs warden prints
// at start, as a user copying them would.
func TestListeningMessageNamesTheEndpoints(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	for _, tc := range []struct {
		transport string
		attrs     []string
	}{
		{"http", []string{"mcp"}},
		{"sse", []string{"sse", "message"}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cmd := exec.Command(wardenBin, "serve", "--config", config, "--transport", tc.transport, "--listen", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "E2E_DSN="+dsn)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sc := bufio.NewScanner(stderr)
			line := ""
			for line == "" && sc.Scan() {
				if strings.Contains(sc.Text(), "warden listening") {
					line = sc.Text()
				}
			}
			go func() {
				for sc.Scan() {
				}
			}()
			addr := regexp.MustCompile(` addr=(\S+)`).FindStringSubmatch(line)
			if addr == nil {
				t.Fatalf("no listening message with addr=; got %q", line)
			}
			urls := map[string]string{}
			for _, a := range append(tc.attrs, "health") {
				m := regexp.MustCompile(` ` + a + `=(\S+)`).FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("the listening message has no %s= URL: %s", a, line)
				}
				urls[a] = m[1]
			}
			base := "http://" + addr[1]
			want := map[string]string{"mcp": base + "/mcp", "sse": base + "/sse", "message": base + "/message", "health": base + "/healthz"}
			for a, u := range urls {
				if u != want[a] {
					t.Errorf("%s=%s; want %s", a, u, want[a])
				}
			}
			var tr transport.Interface
			if tc.transport == "sse" {
				tr, err = transport.NewSSE(urls["sse"])
			} else {
				tr, err = transport.NewStreamableHTTP(urls["mcp"])
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := tr.Start(ctx); err != nil {
				t.Fatal(err)
			}
			c := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
			defer c.Close()
			initialize(t, c, mcp.ProtocolVersion20251125)
			tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil || len(tools.Tools) == 0 {
				t.Fatalf("tools/list at the printed URL = %v, %v", tools, err)
			}
		})
	}
}

// TestDemoFromAnotherDirectory runs the demo as a newcomer would, from a
// directory that is not the repository and holds a recording of its own:
// the demo runs end to end and that recording is untouched.
func TestDemoFromAnotherDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts several wardens")
	}
	cwd := t.TempDir()
	precious := map[string][]byte{}
	for _, name := range []string{"warden.db", "demo.db", "demo.db.head", "demo.db.key"} {
		precious[name] = []byte("a recording that is in use: " + name)
		if err := os.WriteFile(filepath.Join(cwd, name), precious[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db := demoDatabase(t)
	cmd := exec.Command(wardenBin, "demo", "--database", db)
	cmd.Dir = cwd
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("warden demo from %s: %v\n%s\n%s", cwd, err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"(MCP 2025-11-25",
		"wire: warden → client: elicitation/create",
		"(a new client, MCP 2026-07-28)",
		"wire: warden → client: the tools/call result is input_required",
		"alice → decline",
		"alice → accept",
		"approved a-",
		"msg=\"warden listening\" transport=http",
		"mcp=http://127.0.0.1:",
		"transport  http",
		"$ warden sessions verify --config demo.yaml\n   ok: ",
		"does not verify: record ",
		"was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	for name, data := range precious {
		got, err := os.ReadFile(filepath.Join(cwd, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s in the working directory was changed or removed by the demo (%v)", name, err)
		}
	}
	entries, _ := os.ReadDir(cwd)
	if len(entries) != len(precious) {
		t.Errorf("the demo wrote into the working directory: %d entries, want %d", len(entries), len(precious))
	}
	dir := regexp.MustCompile(`are in (\S+)\.\n`).FindStringSubmatch(out)
	if dir == nil {
		t.Fatal("the demo does not say where its files are")
	}
	t.Cleanup(func() { os.RemoveAll(dir[1]) })

	t.Run("RefusesANonEmptyDir", func(t *testing.T) {
		_, stderr, code := runWarden(t, "demo", "--database", db, "--dir", cwd)
		if code != 2 || !strings.Contains(stderr, "is not empty") {
			t.Fatalf("demo --dir with a recording in it = exit %d, %s; want 2", code, stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(cwd, "warden.db")); !bytes.Equal(got, precious["warden.db"]) {
			t.Fatal("warden.db was changed")
		}
	})

	t.Run("RefusesWhileTheDatabaseIsInUse", func(t *testing.T) {
		// Another process (this test) holds a session on the demo database.
		u, err := url.Parse(pgtest.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + db
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, stderr, code := runWarden(t, "demo", "--database", db)
		if code != 1 || !strings.Contains(stderr, "is in use") {
			t.Fatalf("demo while %s is in use = exit %d, %s; want 1 and a refusal", db, code, stderr)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n == 0 {
			t.Fatalf("the session holding the demo database was cut off or the data dropped: %d, %v", n, err)
		}
	})
}

// demoDatabase names a demo database of the test's own (the shared
// server may be running someone's warden_demo) and drops it at the end.
func demoDatabase(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "warden_demo_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, pgtest.AdminURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	return name
}
