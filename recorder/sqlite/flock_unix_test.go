//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// TestWriterNeverWaitsForeverForTheLock: a process that holds the lock
// and stops (here, this test holding it) delays writers by the wait at
// most; they then write under SQLite's lock alone, and the chain holds.
func TestWriterNeverWaitsForeverForTheLock(t *testing.T) {
	sqlite.SetLockWait(t, 50*time.Millisecond)
	ctx := context.Background()
	s, path := openStoreWith(t, recorder.Options{CheckpointEvery: 1000})
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	for i := range 3 {
		if err := s.StartCall(ctx, allowedCall(fmt.Sprintf("held-%d", i), "", alice, t0)); err != nil {
			t.Fatalf("StartCall while another holds the write lock = %v; want it recorded after the wait", err)
		}
	}
	must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_UN))
	for i := range 3 {
		if err := s.StartCall(ctx, allowedCall(fmt.Sprintf("free-%d", i), "", alice, t0)); err != nil {
			t.Fatalf("StartCall after the lock was released = %v", err)
		}
	}
	pub, err := s.PublicKey()
	must(t, err)
	must(t, s.Close())
	rep, err := verify(t, path, pub)
	if err != nil || rep.Records-rep.Checkpoints != 6 {
		t.Fatalf("Verify = %v, %+v; want 6 call records, intact", err, rep)
	}
}
