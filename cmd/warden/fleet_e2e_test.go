package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
)

// fleetConfig is approvalsConfig on a PostgreSQL store that every instance
// shares, with one key directory and the instance name from the
// environment.
func fleetConfig(t *testing.T, dsn, storeURL string) string {
	t.Helper()
	config := approvalsConfig(t, dsn, "60s", "")
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "store: sqlite:recording.db",
		`store: {url: "${STORE_URL}", keys: keys, instance: "${WARDEN_INSTANCE}"}`, 1)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// One key for the fleet, as a Secret would hand it to every replica.
	if err := os.MkdirAll(filepath.Join(filepath.Dir(config), "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := recorder.CreateKeyFile(filepath.Join(filepath.Dir(config), "keys", postgres.KeyName)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORE_URL", storeURL)
	return config
}

// launchInstance starts `warden serve` over HTTP as the named instance.
func launchInstance(t *testing.T, config, instance string) (*server, error) {
	cmd := exec.Command(wardenBin, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN"), "WARDEN_INSTANCE="+instance)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	var tail strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			tail.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		s.base = "http://" + a
		return s, nil
	case err := <-s.exited:
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("instance %s exited before listening: %v\n%s", instance, err, tail.String())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("instance %s did not listen within 60s", instance)
	}
}

// balancer is a reverse proxy over the instances: round robin, or, with
// affinity, sticky by Mcp-Session-Id: it learns which instance issued a
// session id from the response header, and sends every request carrying
// that id there (HAProxy's stick-table on the header works the same way).
func balancer(t *testing.T, backends []*server, affinity bool) string {
	var next atomic.Uint64
	var targets []*url.URL
	for _, b := range backends {
		u, _ := url.Parse(b.base)
		targets = append(targets, u)
	}
	var sessions sync.Map // Mcp-Session-Id -> target index
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := int(next.Add(1) % uint64(len(targets)))
			if id := r.In.Header.Get("Mcp-Session-Id"); affinity && id != "" {
				if v, ok := sessions.Load(id); ok {
					i = v.(int)
				}
			}
			r.SetURL(targets[i])
		},
		ModifyResponse: func(res *http.Response) error {
			if id := res.Header.Get("Mcp-Session-Id"); affinity && id != "" {
				for i, u := range targets {
					if u.Host == res.Request.URL.Host {
						sessions.Store(id, i)
					}
				}
			}
			return nil
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "instance unavailable", http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFleetOnOnePostgresStore runs three `warden serve` processes on one
// PostgreSQL store behind a round-robin proxy.
func TestFleetOnOnePostgresStore(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	storeURL := pgtest.New(t, "")
	config := fleetConfig(t, dsn, storeURL)

	// Started at once: the schema is migrated once.
	instances := make([]*server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() { instances[i], errs[i] = launchInstance(t, config, fmt.Sprintf("w%d", i+1)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if n := count(t, storeURL, `SELECT count(*) FROM warden_migrations`); n != 1 {
		t.Errorf("migrations applied by three instances started at once = %d; want 1", n)
	}

	front := balancer(t, instances, false)

	t.Run("SessionlessClientsUseAnyInstance", func(t *testing.T) {
		var wg sync.WaitGroup
		for c := range 4 {
			cl := connect(t, front, "http", &tokenSource{}, mcp.ProtocolVersion20260728)
			wg.Go(func() {
				for i := range 6 {
					r := call(t, cl, "sql_query", map[string]any{"database": "shop", "sql": fmt.Sprintf("SELECT id FROM orders WHERE id = %d", c*6+i+1)})
					if r.IsError || len(r.rows()) != 1 {
						t.Errorf("client %d call %d = %+v; want one row", c, i, r)
					}
				}
			})
		}
		wg.Wait()
		var chains int
		if err := conn.QueryRow(context.Background(), `SELECT count(DISTINCT instance) FROM records WHERE kind = 'call_finish'`).Scan(&chains); err != nil || chains != 3 {
			t.Errorf("instances that recorded calls = %d, %v; want all 3", chains, err)
		}
	})

	t.Run("SessionClientsNeedAffinity", func(t *testing.T) {
		// Round robin: the session lives on the instance that created it,
		// and the next request reaches another.
		tr, err := transport.NewStreamableHTTP(front + "/mcp")
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		cl := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		defer cl.Close()
		failed := 0
		init := mcp.InitializeRequest{}
		init.Params.ClientInfo = mcp.Implementation{Name: "e2e-agent", Version: "1.0"}
		init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := cl.Initialize(ctx, init); err != nil {
			failed++
		} else {
			for range 3 {
				req := mcp.CallToolRequest{}
				req.Params.Name = "sql_query"
				req.Params.Arguments = map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = 1"}
				if _, err := cl.CallTool(ctx, req); err != nil {
					failed++
				}
			}
		}
		if failed == 0 {
			t.Error("a 2025-11-25 session routed round robin never failed; want requests on other instances refused")
		}
		// By Mcp-Session-Id: every request reaches the session's instance.
		sticky := connect(t, balancer(t, instances, true), "http", &tokenSource{}, mcp.ProtocolVersion20251125)
		for i := range 5 {
			if r := call(t, sticky, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = 2"}); r.IsError {
				t.Errorf("call %d with affinity = %+v; want rows", i, r)
			}
		}
	})

	t.Run("ApprovalDecidedElsewhereReleasesTheWaitingCall", func(t *testing.T) {
		cl := connect(t, front, "http", &tokenSource{}, mcp.ProtocolVersion20260728)
		done := make(chan result, 1)
		go func() {
			done <- call(t, cl, "sql_query", map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'fleet' WHERE id = 7"})
		}()
		var id string
		waitFor(t, 30*time.Second, func() bool {
			return conn.QueryRow(context.Background(), `SELECT id FROM approvals WHERE status = 'pending'`).Scan(&id) == nil
		})
		env := append(os.Environ(), "E2E_DSN="+dsn, "WARDEN_INSTANCE=reviewer-cli")
		if out, errOut, code := runWardenEnv(t, env, "approvals", "approve", id, "--config", as(t, config, "bob@example.com", "dba")); code != 0 {
			t.Fatalf("approve = %d %s%s", code, out, errOut)
		}
		if r := <-done; r.IsError || count(t, dsn, "SELECT count(*) FROM orders WHERE id = 7 AND status = 'fleet'") != 1 {
			t.Fatalf("waiting call = %+v; want it to run once approved on another instance", r)
		}
	})

	t.Run("KillOneInstanceUnderLoad", func(t *testing.T) {
		var answered sync.Map
		var wg sync.WaitGroup
		var n atomic.Int64
		for c := range 4 {
			cl := connect(t, front, "http", &tokenSource{}, mcp.ProtocolVersion20260728)
			wg.Go(func() {
				for i := range 15 {
					req := mcp.CallToolRequest{}
					req.Params.Name = "sql_query"
					req.Params.Arguments = map[string]any{"database": "shop", "sql": fmt.Sprintf("SELECT id FROM orders WHERE id = %d", 1+(c*15+i)%30)}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					res, err := cl.CallTool(ctx, req)
					cancel()
					if err == nil && !res.IsError {
						if m, ok := res.StructuredContent.(map[string]any); ok {
							if id, _ := m["call_id"].(string); id != "" {
								answered.Store(id, true)
							}
						}
					}
					if n.Add(1) == 20 {
						_ = instances[1].cmd.Process.Signal(syscall.SIGKILL)
					}
				}
			})
		}
		wg.Wait()
		<-instances[1].exited
		recorded := map[string]string{}
		rows, err := conn.Query(context.Background(), `SELECT call_id, body::jsonb->>'outcome' FROM records WHERE kind = 'call_finish'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, outcome string
			if err := rows.Scan(&id, &outcome); err != nil {
				t.Fatal(err)
			}
			recorded[id] = outcome
		}
		lost := 0
		total := 0
		answered.Range(func(k, _ any) bool {
			total++
			if recorded[k.(string)] != "ok" {
				lost++
			}
			return true
		})
		if total == 0 || lost > 0 {
			t.Errorf("answered calls = %d, of which %d not recorded as ok; want none lost", total, lost)
		}
	})

	for i, s := range instances {
		if i != 1 {
			s.stop(t)
		}
	}
	out, errOut, code := runWardenEnv(t, append(os.Environ(), "E2E_DSN="+dsn, "WARDEN_INSTANCE=auditor"), "sessions", "verify", "--config", config)
	if code != 0 || !strings.Contains(out, "instance w1 wrote") || !strings.Contains(out, "instance w2 wrote") || !strings.Contains(out, "instance w3 wrote") {
		t.Errorf("sessions verify = %d\n%s%s\nwant every instance's chain verified and named", code, out, errOut)
	}
	if strings.Contains(out+errOut, storeURL) {
		t.Error("sessions verify printed the store's URL")
	}

	// A URL with a password: neither check nor a failing open prints it.
	t.Setenv("STORE_URL", "postgres://warden:pw-not-to-print@127.0.0.1:1/warden?connect_timeout=2")
	for _, args := range [][]string{{"check", "--config", config}, {"sessions", "list", "--config", config}} {
		out, errOut, _ := runWardenEnv(t, append(os.Environ(), "E2E_DSN="+dsn, "WARDEN_INSTANCE=auditor"), args...)
		if strings.Contains(out+errOut, "pw-not-to-print") {
			t.Errorf("warden %s printed the store's password:\n%s%s", args[0], out, errOut)
		}
	}
}
