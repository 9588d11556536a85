package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

var kinds = map[string]string{"shop": "postgres", "billing": "http"}

func testRules(t *testing.T) Rules {
	t.Helper()
	rs := Rules{{Name: "customer-data-stays-in",
		From: Endpoint{Backend: "shop", Tables: []string{"public.customers"}},
		To:   Endpoint{Backend: "billing", Methods: []string{"POST"}}}}
	if err := rs.Validate(kinds); err != nil {
		t.Fatal(err)
	}
	return rs
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newGuard(t *testing.T, store warden.FlowStore, clk *clock, max int) *Guard {
	t.Helper()
	g, err := New(Options{Rules: testRules(t), Kinds: kinds, Store: store, Key: []byte("0123456789abcdef0123456789abcdef"), Clock: clk.Now, MaxPrints: max})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var alice = &warden.Caller{Subject: "alice@example.com", Method: "local"}

func readCustomers(t *testing.T, g *Guard, caller *warden.Caller, id string, rows string) error {
	t.Helper()
	c := &warden.Call{ID: id, Tool: "sql_query", Caller: caller,
		Action: &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select", Ops: []warden.Op{{Verb: "select", Object: "public.customers"}}},
		Result: &warden.Result{JSON: json.RawMessage(`{"columns":[{"name":"name"}],"rows":` + rows + `,"call_id":"` + id + `"}`), Count: 1}}
	return g.Remember(context.Background(), c)
}

func sendBilling(g *Guard, caller *warden.Caller, body string) (*warden.Call, error) {
	c := &warden.Call{ID: "c-send", Tool: "http_call", Caller: caller,
		Action: &warden.Action{Tool: "http_call", Backend: "billing", Kind: "POST", Ops: []warden.Op{{Verb: "POST", Object: "/v1/charges"}}}}
	args := `{"api":"billing","method":"POST","path":"/v1/charges","body":` + body + `}`
	return c, g.Check(context.Background(), c, nil, json.RawMessage(args))
}

func TestGuard(t *testing.T) {
	t.Run("AnotherInstanceOnTheSameStoreRemembers", func(t *testing.T) {
		store := openStore(t)
		clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		a, b := newGuard(t, store, clk, 0), newGuard(t, store, clk, 0)
		if _, err := sendBilling(b, alice, `{"to":"alice.johnson@example.com"}`); err != nil {
			t.Fatalf("Check before anything was read = %v", err)
		}
		if err := readCustomers(t, a, alice, "c-read", `[["Alice Johnson","alice.johnson@example.com"]]`); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(DefaultSyncEvery)
		c, err := sendBilling(b, alice, `{"to":"alice.johnson@example.com"}`)
		if warden.ErrorCode(err) != warden.Denied || c.Flow == nil || c.Flow.SourceCall != "c-read" || c.Flow.Argument != "body.to" {
			t.Fatalf("Check on the other instance = %v, flow %+v; want Denied from c-read in body.to", err, c.Flow)
		}
	})
	t.Run("ForgetsAfterTheWindow", func(t *testing.T) {
		clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		g := newGuard(t, openStore(t), clk, 0)
		if err := readCustomers(t, g, alice, "c-read", `[["Alice Johnson"]]`); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(23 * time.Hour)
		if _, err := sendBilling(g, alice, `{"name":"alice johnson"}`); warden.ErrorCode(err) != warden.Denied {
			t.Fatalf("Check after 23h = %v; want Denied", err)
		}
		clk.now = clk.now.Add(2 * time.Hour)
		if _, err := sendBilling(g, alice, `{"name":"alice johnson"}`); err != nil {
			t.Fatalf("Check after 25h = %v; want nil (the 24h window passed)", err)
		}
	})
	t.Run("OtherCallersAreNotHeld", func(t *testing.T) {
		clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		g := newGuard(t, openStore(t), clk, 0)
		if err := readCustomers(t, g, alice, "c-read", `[["Alice Johnson"]]`); err != nil {
			t.Fatal(err)
		}
		bob := &warden.Caller{Subject: "bob@example.com", Method: "local"}
		if _, err := sendBilling(g, bob, `{"name":"Alice Johnson"}`); err != nil {
			t.Fatalf("Check for another caller = %v; want nil", err)
		}
	})
	t.Run("MemoryIsBoundedPerCaller", func(t *testing.T) {
		clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		g := newGuard(t, openStore(t), clk, 10)
		var rows []string
		for i := range 20 {
			rows = append(rows, fmt.Sprintf(`["user%d@example.com"]`, i))
		}
		err := readCustomers(t, g, alice, "c-big", "["+strings.Join(rows, ",")+"]")
		var e *warden.Error
		if !errors.As(err, &e) || e.Code != warden.Denied || e.Rule != "flows.memory" {
			t.Fatalf("Remember past the bound = %v; want Denied by flows.memory", err)
		}
	})
	t.Run("StoreFailureFailsClosed", func(t *testing.T) {
		clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		store := openStore(t)
		g := newGuard(t, store, clk, 0)
		store.Close()
		if _, err := sendBilling(g, alice, `{"x":"y"}`); warden.ErrorCode(err) != warden.Unavailable {
			t.Errorf("Check with the store closed = %v; want Unavailable", err)
		}
		if err := readCustomers(t, g, alice, "c-read", `[["Alice Johnson"]]`); warden.ErrorCode(err) != warden.Unavailable {
			t.Errorf("Remember with the store closed = %v; want Unavailable", err)
		}
	})
}

func TestConfigErrorsNameTheKeyPath(t *testing.T) {
	cases := []struct {
		name  string
		rules Rules
		want  string
	}{
		{"UnknownBackend", Rules{{Name: "r", From: Endpoint{Backend: "shp"}, To: Endpoint{Backend: "billing"}}}, `[0].from.backend: unknown backend "shp"`},
		{"PathsOnPostgres", Rules{{Name: "r", From: Endpoint{Backend: "shop", Paths: []string{"/x"}}, To: Endpoint{Backend: "billing"}}}, `[0].from.paths: paths selects calls on http backends`},
		{"ActionsOnASource", Rules{{Name: "r", From: Endpoint{Backend: "shop", Actions: []string{"insert"}}, To: Endpoint{Backend: "billing"}}}, `[0].from.actions: a source is what was read`},
		{"UnknownMethod", Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing", Methods: []string{"FETCH"}}}}, `[0].to.methods[0]: unknown method "FETCH"`},
		{"UnknownSQLAction", Rules{{Name: "r", From: Endpoint{Backend: "billing"}, To: Endpoint{Backend: "shop", Actions: []string{"upsert"}}}}, `[0].to.actions[0]: unknown action "upsert"`},
		{"ApproveWithoutApprovers", Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}, Action: "approve"}}, `[0].approvers: missing approvers`},
		{"UnknownAction", Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}, Action: "log"}}, `[0].action: unknown action "log"`},
		{"ShortWindow", Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}, Window: warden.Duration(time.Second)}}, `[0].window:`},
		{"DuplicateName", Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}}, {Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}}}, `[1].name: rule "r" is defined twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := warden.Under("flows", c.rules.Validate(kinds))
			if err == nil || !strings.Contains(err.Error(), "flows"+c.want) {
				t.Errorf("Validate = %v; want %q", err, "flows"+c.want)
			}
		})
	}
	err := warden.Under("budgets", Budgets{{Role: "intern", Backend: "shop", Rows: 10}, {Role: "analyst", Backend: "shop"}}.Validate(kinds, []string{"analyst"}))
	for _, want := range []string{`budgets[0].role: unknown role "intern"`, `budgets[1]: set rows, bytes or both`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Budgets.Validate = %v; want %q", err, want)
		}
	}
}

// BenchmarkGuardCheck is the whole stage on a call to a sink: the memory
// brought up to date with the store (one indexed query) and the scan,
// with 100,000 fingerprints remembered for the caller.
func BenchmarkGuardCheck(b *testing.B) {
	store, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "w.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rs := Rules{{Name: "r", From: Endpoint{Backend: "shop"}, To: Endpoint{Backend: "billing"}}}
	if err := rs.Validate(kinds); err != nil {
		b.Fatal(err)
	}
	clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	g, err := New(Options{Rules: rs, Kinds: kinds, Store: store, Key: []byte("0123456789abcdef"), Clock: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		prints := make([]uint64, 100)
		for j := range prints {
			prints[j] = uint64(i*100+j)*0x9e3779b97f4a7c15 + 1
		}
		if err := store.AddFlowRead(context.Background(), &warden.FlowRead{Caller: "alice@example.com", CallID: fmt.Sprint("c-", i), Backend: "shop",
			At: clk.now, Rows: 1, Bytes: 1, Rules: []string{"r"}, Prints: prints}); err != nil {
			b.Fatal(err)
		}
	}
	c := &warden.Call{ID: "c-send", Tool: "http_call", Caller: alice,
		Action: &warden.Action{Tool: "http_call", Backend: "billing", Kind: "POST", Ops: []warden.Op{{Verb: "POST", Object: "/v1/invoices"}}}}
	args := json.RawMessage(benchArgs)
	if err := g.Check(context.Background(), c, nil, args); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		if err := g.Check(context.Background(), c, nil, args); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// TestMemoryPerFingerprint measures what a caller's memory costs: the
// bound per caller (MaxPrints) times this is the most one caller holds.
func TestMemoryPerFingerprint(t *testing.T) {
	g := &Guard{rules: Rules{{Name: "r"}}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := &memory{prints: []map[uint64]int32{{}}}
	for i := 0; i < 1000; i++ {
		prints := make([]uint64, 100)
		for j := range prints {
			prints[j] = uint64(i*100+j)*0x9e3779b97f4a7c15 + 1
		}
		m.add(g, &warden.FlowRead{CallID: fmt.Sprint("c-", i), Rules: []string{"r"}, Prints: prints})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(m.count)
	t.Logf("%d fingerprints: %.1f bytes each in memory (8 in the store)", m.count, per)
	if m.count != 100_000 || per > 100 {
		t.Errorf("%d fingerprints at %.1f bytes each; want 100000 at under 100", m.count, per)
	}
	runtime.KeepAlive(m)
}

// TestGuardConcurrentCallers: reads and checks of several callers at once
// (run with -race).
func TestGuardConcurrentCallers(t *testing.T) {
	clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	g := newGuard(t, openStore(t), clk, 0)
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			caller := &warden.Caller{Subject: fmt.Sprintf("user%d@example.com", i%3), Method: "local"}
			if err := readCustomers(t, g, caller, fmt.Sprint("c-", i), fmt.Sprintf(`[["Person%d Surname%d"]]`, i, i)); err != nil {
				done <- err
				return
			}
			_, err := sendBilling(g, caller, fmt.Sprintf(`{"to":"Person%d Surname%d"}`, i, i))
			if warden.ErrorCode(err) != warden.Denied {
				err = fmt.Errorf("caller %d sending what it read = %v; want Denied", i, err)
			} else {
				err = nil
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
