package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/flows"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
)

func TestFlowReadsAreShared(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	a, b := open(t, url, keys, "a"), open(t, url, keys, "b")
	r1 := &warden.FlowRead{Caller: "alice", CallID: "c-1", Backend: "shop", At: t0, Rows: 2, Bytes: 40,
		Rules: []string{"customer-data-stays-in"}, Prints: []uint64{1, 1<<64 - 1, 0xdeadbeefcafef00d}}
	if err := a.AddFlowRead(ctx, r1); err != nil || r1.Seq == 0 {
		t.Fatalf("AddFlowRead on a = %v, seq %d", err, r1.Seq)
	}
	got, err := b.FlowReads(ctx, "alice", t0.Add(-time.Hour), 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("FlowReads on b = %d reads, %v; want the 1 read a stored", len(got), err)
	}
	g := got[0]
	if g.Seq != r1.Seq || g.CallID != "c-1" || g.Backend != "shop" || !g.At.Equal(t0) || g.Rows != 2 || g.Bytes != 40 ||
		fmt.Sprint(g.Rules) != fmt.Sprint(r1.Rules) || fmt.Sprint(g.Prints) != fmt.Sprint(r1.Prints) {
		t.Errorf("b read back %+v; want %+v", g, r1)
	}
	if got, err := b.FlowReads(ctx, "bob", t0.Add(-time.Hour), 0); err != nil || len(got) != 0 {
		t.Errorf("another caller's reads = %d, %v; want none", len(got), err)
	}
	if got, err := b.FlowReads(ctx, "alice", t0.Add(-time.Hour), r1.Seq); err != nil || len(got) != 0 {
		t.Errorf("reads after the cursor = %d, %v; want none", len(got), err)
	}
	if got, err := b.FlowReads(ctx, "alice", t0.Add(time.Second), 0); err != nil || len(got) != 0 {
		t.Errorf("reads since after it = %d, %v; want none", len(got), err)
	}
	r2 := &warden.FlowRead{Caller: "alice", CallID: "c-2", Backend: "shop", At: t0.Add(time.Hour), Rules: []string{}}
	if err := b.AddFlowRead(ctx, r2); err != nil || r2.Seq <= r1.Seq {
		t.Fatalf("AddFlowRead on b = %v, seq %d after %d", err, r2.Seq, r1.Seq)
	}
	if err := b.PruneFlowReads(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err = a.FlowReads(ctx, "alice", t0.Add(-time.Hour), 0)
	if err != nil || len(got) != 1 || got[0].CallID != "c-2" {
		t.Fatalf("after pruning reads before t0+1m, a sees %d reads, %v; want only c-2", len(got), err)
	}
	if err := a.AddFlowRead(ctx, &warden.FlowRead{Caller: "alice"}); err == nil {
		t.Error("a read without a call id was stored")
	}

	ro, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.FlowReads(ctx, "alice", t0.Add(-time.Hour), 0); err != nil || len(got) != 1 {
		t.Errorf("a read-only store (explain) reads %d, %v; want 1", len(got), err)
	}
	if err := ro.AddFlowRead(ctx, &warden.FlowRead{Caller: "alice", CallID: "c-3", At: t0}); err == nil {
		t.Error("a read-only store stored a flow read")
	}
	a.Close()
	if err := a.AddFlowRead(ctx, &warden.FlowRead{Caller: "alice", CallID: "c-4", At: t0}); err == nil {
		t.Error("a closed store stored a flow read")
	}
	if _, err := a.FlowReads(ctx, "alice", t0, 0); err == nil {
		t.Error("a closed store answered FlowReads: flow control must fail closed")
	}
}

// A caller's reads commit in seq order across instances, so a reader
// following the seq cursor while two instances write never skips one.
func TestFlowReadsCursorSkipsNothingUnderConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	stores := []*postgres.Store{open(t, url, keys, "a"), open(t, url, keys, "b")}
	const each = 40
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for j := range each {
				if err := s.AddFlowRead(ctx, &warden.FlowRead{Caller: "alice", CallID: fmt.Sprintf("c-%d-%d", i, j), At: t0, Rules: []string{}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[string]bool{}
	var cursor int64
	follow := func() {
		got, err := stores[0].FlowReads(ctx, "alice", t0, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if seen[r.CallID] {
				t.Fatalf("read %s seen twice", r.CallID)
			}
			seen[r.CallID] = true
			cursor = r.Seq
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	if len(seen) != 2*each {
		t.Fatalf("a reader following the cursor saw %d of %d reads", len(seen), 2*each)
	}
}

// The flow guard on one instance refuses to send what a caller read
// through another instance sharing the PostgreSQL store.
func TestFlowGuardAcrossInstances(t *testing.T) {
	url, keys := pgtest.New(t, ""), keyDir(t)
	kinds := map[string]string{"shop": "postgres", "billing": "http"}
	rules := flows.Rules{{Name: "customer-data-stays-in",
		From: flows.Endpoint{Backend: "shop", Tables: []string{"public.customers"}},
		To:   flows.Endpoint{Backend: "billing", Methods: []string{"POST"}}}}
	if err := rules.Validate(kinds); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	guard := func(s *postgres.Store) *flows.Guard {
		key, err := s.Secret(context.Background(), "flows.fingerprint_key", 32)
		if err != nil {
			t.Fatal(err)
		}
		g, err := flows.New(flows.Options{Rules: rules, Kinds: kinds, Store: s, Key: key, Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	a, b := guard(open(t, url, keys, "a")), guard(open(t, url, keys, "b"))
	alice := &warden.Caller{Subject: "alice@example.com", Method: "local"}
	send := func(g *flows.Guard) (*warden.Call, error) {
		c := &warden.Call{ID: "c-send", Tool: "http_call", Caller: alice,
			Action: &warden.Action{Tool: "http_call", Backend: "billing", Kind: "POST", Ops: []warden.Op{{Verb: "POST", Object: "/v1/charges"}}}}
		return c, g.Check(context.Background(), c, nil, json.RawMessage(`{"api":"billing","method":"POST","path":"/v1/charges","body":{"to":"alice.johnson@example.com"}}`))
	}
	if _, err := send(b); err != nil {
		t.Fatalf("Check on b before anything was read = %v", err)
	}
	read := &warden.Call{ID: "c-read", Tool: "sql_query", Caller: alice,
		Action: &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select", Ops: []warden.Op{{Verb: "select", Object: "public.customers"}}},
		Result: &warden.Result{JSON: json.RawMessage(`{"columns":[{"name":"name"},{"name":"email"}],"rows":[["Alice Johnson","alice.johnson@example.com"]],"call_id":"c-read"}`), Count: 1}}
	if err := a.Remember(context.Background(), read); err != nil {
		t.Fatal(err)
	}
	now = now.Add(flows.DefaultSyncEvery)
	c, err := send(b)
	if warden.ErrorCode(err) != warden.Denied || c.Flow == nil || c.Flow.SourceCall != "c-read" || c.Flow.Argument != "body.to" {
		t.Fatalf("Check on b after a read through a = %v, flow %+v; want Denied from c-read in body.to", err, c.Flow)
	}
}

// A store made by a warden before flow memory (schema version 1, with
// records) gains the flow table when a newer warden opens it.
func TestSchemaV1StoreGainsFlowReads(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	s := open(t, url, keys, "a")
	if err := s.StartCall(ctx, call("c-1", t0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP TABLE flow_reads; DELETE FROM warden_migrations WHERE version >= 2`); err != nil {
		t.Fatal(err)
	}
	s = open(t, url, keys, "a")
	if err := s.AddFlowRead(ctx, &warden.FlowRead{Caller: "alice", CallID: "c-1", At: t0, Rules: []string{}}); err != nil {
		t.Fatalf("AddFlowRead after the upgrade = %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM warden_migrations`).Scan(&n); err != nil || n != postgres.SchemaVersion() {
		t.Errorf("migrations after the upgrade = %d, %v; want %d", n, err, postgres.SchemaVersion())
	}
}
