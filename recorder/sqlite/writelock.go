package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/warden-mcp/warden/recorder"
)

// Several wardens may share one store (one stdio warden per agent, say).
// SQLite serialises their write transactions with its own lock, but a
// writer that finds it taken sleeps in SQLite's busy handler (1 ms, then
// 2, 5, 10 ...) instead of waking when it is released: eight processes
// sharing a store spent most of their time asleep and reached a fifth of
// what they reached with a store each. So each write transaction is also
// taken under an exclusive flock(2) of a lock file beside the store
// (PATH.lock): a waiting writer blocks in the kernel and wakes the moment
// the holder releases it, in turn, without polling.
//
// The lock file also carries a hint, written under the lock after each
// commit: the seq and hash of the record that ends the chain, the seq of
// the newest checkpoint, and a count of commits. A writer that finds
// another end there than its own knows another process appended since
// its last write, and reads the end of the chain (a statement prepared
// for it) under the lock first, instead of trying its insert and failing
// on the seq. When the store ends where the hint says, it takes the newest
// checkpoint from the hint: finding it in the store means reading back
// through every record since, each a page or more, from a page cache
// SQLite dropped because another process wrote. The chain never depends
// on the hint: the end is always read from the store, the seq primary key
// still refuses a fork (a wrong hint costs one retry), the checkpoint seq
// only sets when the next checkpoint is written, and SQLite's own lock
// still guards every transaction, flock or not.
//
// The count of commits spaces the WAL checkpoints that copy the log into
// the database (walCheckpointEvery): SQLite's automatic one runs inside
// the committing transaction, with two fsyncs, while every other writer
// waits for the lock; warden runs it after the callers are answered, one
// for every walCheckpointEvery commits whichever process made them, and
// finishes it under the lock taken again, so that the log can start again
// from its beginning (checkpointWAL).
//
// A process that holds the lock and stops (SIGSTOP) must not hang the
// others for ever: a writer waits for the flock at most lockWait, as long
// as SQLite's busy timeout, and then goes on without it, to SQLite's lock.

// lockWait is how long a writer waits for the flock (see busy_timeout in
// dsn).
var lockWait = 5 * time.Second

// hint is the lock file's content: seq (8 bytes, big-endian), hash (32),
// checkpoint (8), commits (8).
type hint struct {
	seq        int64
	hash       recorder.Digest
	checkpoint int64
	commits    uint64
}

const hintSize = 8 + recorder.HashSize + 8 + 8

type writeLock struct {
	path string
	f    *os.File // nil after a wait was abandoned; reopened by the next lock
	// m is the first page of f mapped shared, or nil where it cannot be
	// (then the hint is read and written with pread and pwrite). A
	// process killed while writing it may leave a torn hint; like any
	// wrong hint, that costs the next writer a read of the end, never
	// the chain (see above).
	m    []byte
	held bool
}

// openWriteLock opens (creating) the lock file of the store at dbPath.
func openWriteLock(dbPath string) (*writeLock, error) {
	l := &writeLock{path: dbPath + ".lock"}
	if err := l.open(); err != nil {
		return nil, fmt.Errorf("opening the write lock: %w", err)
	}
	return l, nil
}

func (l *writeLock) open() error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	l.f = f
	if m, err := mapHint(f); err == nil {
		l.m = m
	}
	return nil
}

// readHint reads the hint's bytes into b.
func (l *writeLock) readHint(b []byte) bool {
	if l.m != nil {
		return copyHint(b, l.m[:hintSize])
	}
	n, _ := l.f.ReadAt(b, 0)
	return n == len(b)
}

// writeHint writes the hint's bytes from b.
func (l *writeLock) writeHint(b []byte) error {
	if l.m != nil {
		if !copyHint(l.m[:hintSize], b) {
			return errors.New("the lock file's mapping faulted")
		}
		return nil
	}
	_, err := l.f.WriteAt(b, 0)
	return err
}

// lock takes the lock and returns the hint; ok is false when the lock was
// not taken (the caller goes on under SQLite's lock alone) or there is no
// hint yet.
func (l *writeLock) lock() (h hint, ok bool) {
	if l == nil || !flockSupported {
		return h, false
	}
	if l.f == nil && l.open() != nil {
		return h, false
	}
	if err := flock(l.f, true, false); err != nil {
		if !errors.Is(err, errWouldBlock) || !l.wait() {
			return h, false
		}
	}
	l.held = true
	var b [hintSize]byte
	if !l.readHint(b[:]) {
		return h, false
	}
	h.seq = int64(binary.BigEndian.Uint64(b[:]))
	h.hash = recorder.Digest(b[8 : 8+recorder.HashSize])
	h.checkpoint = int64(binary.BigEndian.Uint64(b[8+recorder.HashSize:]))
	h.commits = binary.BigEndian.Uint64(b[16+recorder.HashSize:])
	return h, true
}

// wait blocks for the lock, at most lockWait. A wait it gives up goes on
// in the background and lets go of the lock as soon as it gets it; that
// file is closed, and the next lock opens the file anew, so two waits
// never share one open file (flock locks belong to it).
func (l *writeLock) wait() bool {
	f := l.f
	got := make(chan error, 1)
	go func() { got <- flock(f, true, true) }()
	t := time.NewTimer(lockWait)
	defer t.Stop()
	select {
	case err := <-got:
		return err == nil
	case <-t.C:
		l.f = nil
		if l.m != nil {
			unmapHint(l.m)
			l.m = nil
		}
		go func() {
			if <-got == nil {
				_ = flock(f, false, true)
			}
			f.Close()
		}()
		return false
	}
}

// unlock writes the hint, when the caller committed (h is not nil), and
// releases the lock.
func (l *writeLock) unlock(h *hint) {
	if l == nil || !l.held {
		return
	}
	l.held = false
	if h != nil {
		var b [hintSize]byte
		binary.BigEndian.PutUint64(b[:], uint64(h.seq))
		copy(b[8:], h.hash[:])
		binary.BigEndian.PutUint64(b[8+recorder.HashSize:], uint64(h.checkpoint))
		binary.BigEndian.PutUint64(b[16+recorder.HashSize:], h.commits)
		if err := l.writeHint(b[:]); err != nil {
			// A stale hint costs the next writer one retry; clear it
			// rather than leave one that looks current.
			_, _ = l.f.WriteAt(bytes.Repeat([]byte{0}, hintSize), 0)
		}
	}
	_ = flock(l.f, false, true)
}

func (l *writeLock) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.m != nil {
		unmapHint(l.m)
		l.m = nil
	}
	return l.f.Close()
}
