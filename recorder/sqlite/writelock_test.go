package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// The write lock's hint (PATH.lock) only saves work: a wrong or missing
// one never forks the chain, leaves a gap or links a record to the wrong
// hash. These tests write through stores whose hint lies, and verify.
func TestWriteLockHintNeverBreaksTheChain(t *testing.T) {
	ctx := context.Background()
	// lie writes a hint naming seq, a made-up hash, checkpoint 0 and
	// commits 0, as the lock file's layout has it.
	lie := func(t *testing.T, path string, seq int64) {
		b := make([]byte, 8+32+8+8)
		binary.BigEndian.PutUint64(b, uint64(seq))
		copy(b[8:40], bytes.Repeat([]byte{0xAB}, 32))
		must(t, os.WriteFile(path+".lock", b, 0o600))
	}
	write := func(t *testing.T, s *sqlite.Store, prefix string, n int) {
		for i := range n {
			if err := s.StartCall(ctx, allowedCall(fmt.Sprintf("%s-%d", prefix, i), "", alice, t0)); err != nil {
				t.Fatalf("StartCall = %v", err)
			}
		}
	}
	check := func(t *testing.T, path string, s *sqlite.Store, calls int) {
		pub, err := s.PublicKey()
		must(t, err)
		must(t, s.Close())
		rep, err := verify(t, path, pub)
		if err != nil {
			t.Fatalf("Verify = %v; want the chain intact", err)
		}
		if got := rep.Records - rep.Checkpoints; got != int64(calls) {
			t.Errorf("Verify = %d call records; want %d", got, calls)
		}
	}
	for _, c := range []struct {
		name string
		seq  func(end int64) int64
	}{
		{"HintBehindTheStore", func(end int64) int64 { return end - 2 }},
		{"HintAheadOfTheStore", func(end int64) int64 { return end + 5 }},
		{"HintAtTheEndWithAnotherHash", func(end int64) int64 { return end }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, path := openStoreWith(t, recorder.Options{CheckpointEvery: 1000})
			write(t, s, "a", 5)
			// Another process's hint: this writer's own end differs, so
			// it reads the end before its next write.
			lie(t, path, c.seq(5))
			write(t, s, "b", 5)
			check(t, path, s, 10)
		})
	}
	t.Run("HintOfAnEarlierStoreAtThisPath", func(t *testing.T) {
		s, path := openStoreWith(t, recorder.Options{CheckpointEvery: 1000})
		write(t, s, "a", 5)
		must(t, s.Close())
		// A lock file whose hint names this store's end with another
		// hash: Open reads the end and rewrites the hint.
		lie(t, path, 5)
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		write(t, s, "b", 5)
		check(t, path, s, 10)
	})
	// Two writers that take turns, one record each: each finds the
	// other's end in the hint and writes after it, checked by the insert.
	t.Run("WritersTakingTurns", func(t *testing.T) {
		a, path := openStoreWith(t, recorder.Options{CheckpointEvery: 7})
		b, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{CheckpointEvery: 7})
		must(t, err)
		for i := range 30 {
			write(t, []*sqlite.Store{a, b}[i%2], fmt.Sprintf("t%d", i), 1)
		}
		// A call the other writer started is refused as a repeat, and
		// the writers go on after the refusal.
		if err := a.StartCall(ctx, allowedCall("t29-0", "", alice, t0)); err == nil || !strings.Contains(err.Error(), "already started") {
			t.Errorf("StartCall of a call the other writer started = %v; want it refused as already started", err)
		}
		write(t, b, "u", 1)
		write(t, a, "v", 1)
		must(t, b.Close())
		check(t, path, a, 32)
	})
	// Two writers that do not share the lock (its file was replaced
	// under the first) still keep one chain, by SQLite's lock and the
	// seq's primary key.
	t.Run("WritersWithoutACommonLock", func(t *testing.T) {
		a, path := openStoreWith(t, recorder.Options{CheckpointEvery: 20})
		must(t, os.Remove(path+".lock"))
		b, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{CheckpointEvery: 20})
		must(t, err)
		var wg sync.WaitGroup
		for i, s := range []*sqlite.Store{a, b, a, b} {
			wg.Go(func() { write(t, s, fmt.Sprintf("w%d", i), 25) })
		}
		wg.Wait()
		must(t, b.Close())
		check(t, path, a, 100)
	})
}

// Two wardens writing one store steadily keep its WAL bounded: the
// checkpoint that copies it into the database runs under the write lock,
// so it completes and the next writer starts the log again. (Copied
// while the other writer appended, it never caught up, and the log grew
// by every page written: here about 50 MB.)
func TestWALStaysBoundedWithTwoWriters(t *testing.T) {
	// Both ways two wardens share a store: one committing for the other
	// (the relay), and each writing its own under the write lock.
	for _, noRelay := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoRelay=%v", noRelay), func(t *testing.T) { walStaysBounded(t, noRelay) })
	}
}

func walStaysBounded(t *testing.T, noRelay bool) {
	ctx := context.Background()
	opts := recorder.Options{CheckpointEvery: 1000, NoRelay: noRelay}
	a, path := openStoreWith(t, opts)
	b, err := sqlite.OpenWith(ctx, "sqlite:"+path, opts)
	must(t, err)
	defer b.Close()
	const each = 6000
	var wg sync.WaitGroup
	for i, s := range []*sqlite.Store{a, b} {
		wg.Go(func() {
			for n := range each {
				if err := s.StartCall(ctx, allowedCall(fmt.Sprintf("w%d-%d", i, n), "", alice, t0)); err != nil {
					t.Errorf("StartCall through writer %d = %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	fi, err := os.Stat(path + "-wal")
	must(t, err)
	// A checkpoint is due every 1024 commits; each commit here writes a
	// few pages of 4 KiB (a log never started again grew to 150-186 MB).
	if max := int64(32 << 20); fi.Size() > max {
		t.Errorf("WAL after %d records from two writers = %d bytes; want at most %d (it is copied and started again)", 2*each, fi.Size(), max)
	}
}

// TestWALShrinksAfterAReaderHeldIt: a reader holding one snapshot for a
// long time (an export, a console page) keeps SQLite from starting the log
// again, and the log grows by everything written meanwhile. Once the
// reader is done and a checkpoint has copied the log, the log is cut back
// to its limit, instead of keeping that size for good.
func TestWALShrinksAfterAReaderHeldIt(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	res := benchResult()
	n := 0
	write := func(calls int) {
		for range calls {
			n++
			call := allowedCall(fmt.Sprintf("c%d", n), "", alice, t0)
			must(t, s.StartCall(ctx, call))
			must(t, s.FinishCall(ctx, finish(call, res, nil, time.Millisecond)))
		}
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		must(t, err)
		return fi.Size()
	}
	write(10)
	db := rawDB(t, path)
	defer db.Close()
	reader, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	must(t, err)
	var held int
	must(t, reader.QueryRowContext(ctx, "SELECT count(*) FROM records").Scan(&held))
	for walSize() <= sqlite.WALSizeLimit+(8<<20) {
		write(200)
	}
	grown := walSize()
	must(t, reader.Rollback())
	// A checkpoint is due every 1024 commits; it copies the log on a
	// goroutine of its own, and the log starts over, and is cut, at the
	// first commit after the copy is done. Up to six checkpoints' worth.
	calls := 0
	for calls < 3000 && walSize() > sqlite.WALSizeLimit {
		write(100)
		calls += 100
	}
	got := walSize()
	t.Logf("WAL: %d bytes while the reader held it, %d after %d more calls", grown, got, calls)
	if got > sqlite.WALSizeLimit {
		t.Errorf("the WAL grew to %d bytes while a reader held it, and is %d bytes after it was done and %d more records; want at most %d",
			grown, got, 2*calls, sqlite.WALSizeLimit)
	}
}
