package sqlite_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

func TestProbeAndCommitHooks(t *testing.T) {
	var (
		mu      sync.Mutex
		commits int
		records int
	)
	s, path := openStoreWith(t, recorder.Options{OnCommit: func(n int, took time.Duration) {
		mu.Lock()
		commits++
		records += n
		mu.Unlock()
	}})
	ctx := context.Background()
	t.Run("WritableStoreIsReady", func(t *testing.T) {
		if err := s.Probe(ctx); err != nil {
			t.Fatalf("Probe() = %v; want nil", err)
		}
		if d := s.QueueDepth(); d != 0 {
			t.Errorf("QueueDepth() of an idle store = %d; want 0", d)
		}
	})
	t.Run("CommitsAreReported", func(t *testing.T) {
		must(t, s.StartSession(ctx, session("s-1", alice, time.Now())))
		must(t, s.FinishCall(ctx, allowedCall("c-1", "s-1", alice, time.Now())))
		mu.Lock()
		defer mu.Unlock()
		if commits == 0 || records != 2 {
			t.Errorf("OnCommit saw %d commits of %d records; want the 2 records", commits, records)
		}
	})
	t.Run("ProbeWritesNothing", func(t *testing.T) {
		before := countKind(t, path, "call")
		must(t, s.Probe(ctx))
		if after := countKind(t, path, "call"); after != before {
			t.Errorf("calls recorded %d -> %d across a probe", before, after)
		}
	})
	t.Run("LockedStoreIsNotReady", func(t *testing.T) {
		// Another process holds the write lock: no record could be
		// written now, so the probe must fail by its deadline.
		db := rawDB(t, path)
		defer db.Close()
		conn, err := db.Conn(ctx)
		must(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		must(t, err)
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := s.Probe(pctx); err == nil {
			t.Error("Probe() of a store another process holds locked = nil; want an error")
		}
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
	})
	t.Run("ReadOnlyAndClosedStoresAreNotReady", func(t *testing.T) {
		ro, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
		must(t, err)
		defer ro.Close()
		if err := ro.Probe(ctx); err == nil {
			t.Error("Probe() of a read-only store = nil; want an error")
		}
		must(t, s.Close())
		if err := s.Probe(ctx); err == nil {
			t.Error("Probe() of a closed store = nil; want an error")
		}
	})
}
