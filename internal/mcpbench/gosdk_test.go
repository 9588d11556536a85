package mcpbench_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// TestGoSDKClientOverStdio drives the real binary over stdio with the
// official Go SDK client, in both protocol eras: warden serves tools/call
// without mcp-go's HandleMessage there (mcp/direct.go), so this is what an
// agent built on the other SDK gets from it. Judged by what the client
// received and what happened to the database.
func TestGoSDKClientOverStdio(t *testing.T) { testGoSDKClient(t, false) }

// TestGoSDKClientOverHTTP is the same over streamable HTTP: warden serves
// a 2026-07-28 tools/call there in front of mcp-go (mcp/direct.go), and
// leaves the session era to mcp-go.
func TestGoSDKClientOverHTTP(t *testing.T) { testGoSDKClient(t, true) }

func testGoSDKClient(t *testing.T, overHTTP bool) {
	if testing.Short() {
		t.Skip("builds and runs the warden binary")
	}
	bin := buildBinaries(t).warden
	dsn := pgtest.New(t, benchSetup+`
CREATE TABLE notes (body text);
INSERT INTO notes VALUES ('2025-11-25'), ('2026-07-28');`)
	dir := t.TempDir()
	config := filepath.Join(dir, "warden.yaml")
	loopback := ""
	if overHTTP {
		loopback = "\n  allow_unauthenticated_loopback: true"
	}
	cfg := `
store: sqlite:` + filepath.Join(dir, "recording.db") + `
identity:
  local: {subject: alice@example.com, groups: [analysts]}` + loopback + `
backends:
  shop: {kind: postgres, dsn: "${BENCH_DSN}"}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.items], actions: [select]}
      - {backend: shop, tables: [public.notes], actions: [select, delete]}
approvals:
  - {name: confirm-note-deletes, backend: shop, when: [delete], tables: [public.notes], approvers: user}
`
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "BENCH_DSN="+dsn)
	// transport gives each session its own: a warden process of its own
	// over stdio, or a connection to the one warden serving HTTP.
	transport := func() mcp.Transport {
		cmd := exec.Command(bin, "serve", "--config", config)
		cmd.Env = env
		return &mcp.CommandTransport{Command: cmd}
	}
	if overHTTP {
		endpoint := serveHTTP(t, env, bin, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
		transport = func() mcp.Transport { return &mcp.StreamableClientTransport{Endpoint: endpoint} }
	}
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			var asked atomic.Int32
			client := mcp.NewClient(&mcp.Implementation{Name: "gosdk-e2e", Version: "1"}, &mcp.ClientOptions{
				ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					asked.Add(1)
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": true}}, nil
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := client.Connect(ctx, transport(), &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			callTool := func(name string, args map[string]any) (*mcp.CallToolResult, string, error) {
				res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
				if err != nil {
					return nil, "", err
				}
				var text strings.Builder
				for _, c := range res.Content {
					if tc, ok := c.(*mcp.TextContent); ok {
						text.WriteString(tc.Text)
					}
				}
				return res, text.String(), nil
			}

			for range 3 {
				res, text, err := callTool("sql_query", map[string]any{"database": "shop", "sql": benchQuery})
				if err != nil || res.IsError || !strings.Contains(text, `"row_count":100`) || !strings.Contains(text, `[100,"item 100",125.00,`) {
					t.Fatalf("select = %v, %.300s", err, text)
				}
			}
			res, text, err := callTool("sql_query", map[string]any{"database": "shop", "sql": "DELETE FROM items"})
			if err != nil || !res.IsError || !strings.Contains(text, "Denied") {
				t.Errorf("ungranted delete = %v, %v %.300s; want a denial", err, res != nil && res.IsError, text)
			}
			res, text, err = callTool("sql_query", map[string]any{"database": "shop"})
			if err != nil || !res.IsError || !strings.Contains(text, "Invalid request") {
				t.Errorf("no sql = %v, %.300s; want an invalid request", err, text)
			}
			if _, _, err := callTool("no_such_tool", nil); err == nil || !strings.Contains(err.Error(), "not found") {
				t.Errorf("unknown tool = %v; want a protocol error", err)
			}

			// A delete the user must confirm: asked once (elicitation/create
			// before 2026-07-28 — over HTTP on the call's event stream —,
			// input_required and a retry from it on), then run once.
			res, text, err = callTool("sql_query", map[string]any{"database": "shop", "sql": "DELETE FROM notes WHERE body = $1", "params": []any{version}})
			if err != nil || res.IsError || !strings.Contains(text, `"row_count":1`) {
				t.Fatalf("confirmed delete = %v, %.300s", err, text)
			}
			if n := asked.Load(); n != 1 {
				t.Errorf("the user was asked %d times; want once", n)
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var left int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM notes WHERE body = $1", version).Scan(&left); err != nil || left != 0 {
				t.Errorf("notes left = %d, %v; want the confirmed delete to have run", left, err)
			}
		})
	}
}

// serveHTTP starts bin with args, which make it serve HTTP, and returns
// its MCP endpoint once it listens; it is stopped when the test ends.
func serveHTTP(t *testing.T, env []string, bin string, args ...string) string {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	exited := make(chan struct{})
	t.Cleanup(func() {
		if cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return startHTTP(t, "warden", cmd, exited) + "/mcp"
}
