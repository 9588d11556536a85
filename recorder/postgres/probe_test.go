package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
)

func TestProbeAndCommitHooks(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	var (
		mu               sync.Mutex
		commits, records int
	)
	s, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, Instance: "w1", OnCommit: func(n int, took time.Duration) {
		mu.Lock()
		commits++
		records += n
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(q string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("WritableStoreIsReady", func(t *testing.T) {
		if err := s.Probe(ctx); err != nil {
			t.Fatalf("Probe() = %v; want nil", err)
		}
		if d := s.QueueDepth(); d != 0 {
			t.Errorf("QueueDepth() of an idle store = %d; want 0", d)
		}
	})
	t.Run("CommitsAreReported", func(t *testing.T) {
		if err := s.StartCall(ctx, call("c-1", t0)); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishCall(ctx, call("c-1", t0)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if commits == 0 || records != 2 {
			t.Errorf("OnCommit saw %d commits of %d records; want the 2 records", commits, records)
		}
	})
	t.Run("ProbeWritesNothing", func(t *testing.T) {
		const q = `SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM heads) + (SELECT count(*) FROM approvals)`
		before := count(q)
		var head string
		row := func() string {
			return fmt.Sprint(count(`SELECT seq FROM heads WHERE instance = 'w1'`))
		}
		head = row()
		if err := s.Probe(ctx); err != nil {
			t.Fatal(err)
		}
		if after := count(q); after != before || row() != head {
			t.Errorf("rows %d -> %d, head %s -> %s across a probe", before, after, head, row())
		}
	})
	t.Run("ReadOnlyServerIsNotReady", func(t *testing.T) {
		// A standby after a failover takes no writes: from now on every
		// new session on this database is read-only. A second instance
		// (its own application_name) sees it once its pooled sessions
		// are replaced.
		w2, err := postgres.Open(ctx, url+"?application_name=warden_probe_w2", recorder.Options{KeyDir: keys, Instance: "w2"})
		if err != nil {
			t.Fatal(err)
		}
		defer w2.Close()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var db string
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			t.Fatal(err)
		}
		alter := `ALTER DATABASE ` + pgx.Identifier{db}.Sanitize()
		if _, err := conn.Exec(ctx, alter+` SET default_transaction_read_only = on`); err != nil {
			t.Fatal(err)
		}
		defer conn.Exec(ctx, alter+` RESET default_transaction_read_only`)
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = 'warden_probe_w2' AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')`); err != nil {
			t.Fatal(err)
		}
		// The first probes may meet a terminated pooled session (an
		// error too); one on a new session must meet the read-only
		// server itself.
		var errs []error
		for i := 0; i < 10; i++ {
			err := w2.Probe(ctx)
			if err == nil {
				t.Fatalf("Probe() of an instance whose server takes no writes = nil (after %v)", errs)
			}
			if strings.Contains(err.Error(), "SQLSTATE 25006") {
				return
			}
			errs = append(errs, err)
		}
		t.Errorf("Probe() never met the read-only server: %v", errs)
	})
	t.Run("ReadOnlyAndClosedStoresAreNotReady", func(t *testing.T) {
		ro, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		if err := ro.Probe(ctx); err == nil {
			t.Error("Probe() of a read-only store = nil; want an error")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Probe(ctx); err == nil {
			t.Error("Probe() of a closed store = nil; want an error")
		}
	})
}
