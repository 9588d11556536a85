package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/warden-mcp/warden/recorder"
)

// The writer is the only code that writes the records table. It owns the
// write connection and the end of the chain (the last seq and hash), so
// hashing needs no read of the previous row; whoever holds its busy lock
// uses them. Callers encode and hash their record's body on their own
// goroutine. A caller that finds no one else writing (nothing queued, the
// lock free) commits its record itself, on its own goroutine; otherwise it
// queues it and waits, and the writer's goroutine takes everything queued
// so far (and, when several callers are writing, waits up to linger for
// more), writes it in one transaction and commits once (group commit),
// then answers every caller: nil only once the commit returned. A lone
// record is one autocommit INSERT. A batch whose transaction fails
// answers every caller in it with the error, and the end of the chain
// goes back to what was committed. Another process appending to the same
// file (a second warden) shows up as a clash on the seq primary key: the
// writer reloads the end of the chain and writes the batch again, so the
// chain never forks.

// Batch limits: enough to amortise a commit over many records, small
// enough that one batch never holds the others up for long.
const (
	maxBatch      = 512
	maxBatchBytes = 16 << 20
)

// pending is one record waiting to be appended.
type pending struct {
	kind, sessionID, callID, at string
	body                        string
	bodyHash                    recorder.Digest
	hashed                      bool // bodyHash is set
	// check runs inside the batch's transaction before the insert; a
	// *refusal means this record is refused, any other error fails the
	// batch.
	check func(ctx context.Context, tx *sql.Tx) error
	// duplicate is the refusal for a unique-index violation (a second
	// start or finish of the same call).
	duplicate string
}

// newPending builds a record, hashing its body on the caller's goroutine.
func newPending(kind, sessionID, callID, at, body string) *pending {
	p := newUnhashed(kind, sessionID, callID, at, body)
	p.hash()
	return p
}

// newUnhashed builds a record whose body is hashed only if this process
// writes it (append does), not when the relay does (relay.go).
func newUnhashed(kind, sessionID, callID, at, body string) *pending {
	return &pending{kind: kind, sessionID: sessionID, callID: callID, at: at, body: body}
}

// hash hashes the body. Its bytes are only read: hashing them in place
// spares a copy of every record (a result is several KB).
func (p *pending) hash() {
	if !p.hashed {
		p.bodyHash, p.hashed = sha256.Sum256(unsafe.Slice(unsafe.StringData(p.body), len(p.body))), true
	}
}

// duplicateRecord is the refusal of a call's second start or finish (the
// unique index on call_id and kind); its text is the pending record's
// duplicate.
type duplicateRecord struct{ msg string }

func (d *duplicateRecord) Error() string { return d.msg }

// refusal is a record refused on its own merits (a session started twice),
// as opposed to a failure of the store.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(err error) error { return &refusal{err} }

// request is a record to append, or a job that needs the write connection.
type request struct {
	rec     *pending
	relayed bool // another warden's record (appendFor)
	job     func(ctx context.Context) error
	done    chan error // buffered: the writer never blocks answering
}

type writer struct {
	db  *sql.DB // exactly one connection
	key ed25519.PrivateKey
	// macKey keys the record MACs; headPath is the signed head, its MAC
	// part rewritten after every commit, its signature within signEvery
	// (see recorder/head.go).
	macKey    []byte
	headPath  string
	headFile  *recorder.HeadWriter // nil until vouch opened it
	headSeq   int64                // the seq the head file's MAC part names, as this writer last wrote it
	signedSeq int64                // the seq its signature names, as this writer last wrote it; 0 for none
	macer     *recorder.Macer
	// approvalKey keys the approvals rows' MACs (approvals.go).
	approvalKey []byte
	// Statements prepared once on the writer's connection.
	insert, insertAfter, countBySession, lastSeq *sql.Stmt
	// lock serialises write transactions with other processes sharing
	// the store (writelock.go); nil for none.
	lock *writeLock
	// stale is set when another process appended since this writer last
	// read or wrote the end of the chain: the next write reads it first.
	stale bool
	// hint is what the write lock said when this writer last took it.
	hint   hint
	hinted bool
	// commits counts commits to the store (by every process, as far as
	// the hint tells); walDue is set when a WAL checkpoint is due.
	commits uint64
	walDue  bool
	// copier is a connection of its own for the WAL checkpoint's copy
	// without the lock, which runs on a goroutine of its own while
	// records go on being committed; copyDone, non-nil while it runs,
	// receives its outcome, and the part under the lock is next.
	copier   *sql.DB
	copyDone chan error

	every    int64
	interval time.Duration
	clock    func() time.Time
	onCommit func(records int, took time.Duration)

	requests chan request
	mu       sync.RWMutex // held for reading while sending on requests or committing directly; Close takes it to close the channel
	// busy is held by whoever uses the write connection and the fields
	// below it: the writer's goroutine while it handles a request or a
	// timer, or a caller committing its own record (append). It is only
	// ever tried, never waited for, while mu is held.
	busy sync.Mutex
	// queued counts the requests sent and not yet taken up by the
	// writer's goroutine under busy: a caller commits directly only when
	// there are none, so queued records keep their turn and their group
	// commit.
	queued atomic.Int64
	// kick asks the writer's goroutine to arm its timers, or checkpoint
	// the WAL, after a caller committed directly.
	kick     chan struct{}
	closed   bool
	stopped  chan struct{}
	closeErr error // the final checkpoint's error, set before stopped is closed

	// The end of the chain; only the holder of busy touches these once
	// the writer's goroutine runs.
	seq            int64           // last record's seq; 0 for an empty store
	head           recorder.Digest // last record's hash
	lastCheckpoint int64           // seq of the newest checkpoint; 0 if none
	wrote          bool            // this writer appended a record, so it signs what it leaves
	lastBatch      int             // records in the last batch
	h              recorder.Hasher
	// The writer goroutine's timers are running: cpArmed for the
	// checkpoint interval, signArmed for the head's signature.
	cpArmed, signArmed bool
	one                [1]request // the batch of a direct commit
}

func newWriter(db *sql.DB, opts recorder.Options, clock func() time.Time) *writer {
	w := &writer{db: db, clock: clock, every: int64(opts.CheckpointEvery), interval: opts.CheckpointInterval,
		onCommit: opts.OnCommit, requests: make(chan request, 1024), kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	if w.every <= 0 {
		w.every = recorder.DefaultCheckpointEvery
	}
	if w.interval <= 0 {
		w.interval = recorder.DefaultCheckpointInterval
	}
	return w
}

const insertSQL = `INSERT INTO records (seq, kind, session_id, call_id, at, body, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertAfterSQL inserts a record only if the store holds its previous
// record (seq-1, with the hash the record names as prev_hash); with the
// seq primary key, which refuses a record at seq, that makes the insert
// itself the check that the chain ends where the writer believes (see
// appendAlone). Records are numbered without gaps after the prune
// horizon, so a store that holds seq-1 and not seq ends at seq-1.
const insertAfterSQL = `INSERT INTO records (seq, kind, session_id, call_id, at, body, prev_hash, hash, mac)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM records WHERE seq = ?1 - 1 AND hash = ?7)`

// prepare prepares the statements every write uses.
func (w *writer) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&w.insert, insertSQL},
		{&w.insertAfter, insertAfterSQL},
		{&w.countBySession, sessionLifeSQL},
		{&w.lastSeq, lastRecordSQL},
	} {
		stmt, err := w.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("preparing statements: %w", err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (w *writer) closeStatements() {
	for _, stmt := range []*sql.Stmt{w.insert, w.insertAfter, w.countBySession, w.lastSeq} {
		if stmt != nil {
			stmt.Close()
		}
	}
}

// load reads the end of the chain from the store.
func (w *writer) load(ctx context.Context) error {
	return w.loadFrom(ctx, w.db)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const lastRecordSQL = `SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1`

func (w *writer) loadFrom(ctx context.Context, q querier) error {
	if err := w.scanEnd(q.QueryRowContext(ctx, lastRecordSQL)); err != nil {
		return err
	}
	return w.loadCheckpoint(ctx, q)
}

// reload reads the end of the chain under the write lock, with the
// statement prepared for it. When the store ends where the lock's hint
// says, the newest checkpoint is taken from the hint; otherwise it is read
// from the store too (see writelock.go). tx is the transaction to read
// in, or nil for none.
func (w *writer) reload(ctx context.Context, tx *sql.Tx) error {
	var q querier = w.db
	stmt := w.lastSeq
	if tx != nil {
		q, stmt = tx, tx.StmtContext(ctx, w.lastSeq)
	}
	if err := w.scanEnd(stmt.QueryRowContext(ctx)); err != nil {
		return err
	}
	if h := w.hint; w.hinted && h.seq == w.seq && h.hash == w.head && h.checkpoint >= 0 && h.checkpoint <= h.seq {
		w.lastCheckpoint = h.checkpoint
		return nil
	}
	return w.loadCheckpoint(ctx, q)
}

// scanEnd reads the seq and hash of the record that ends the chain from
// the row of lastRecordSQL.
func (w *writer) scanEnd(row *sql.Row) error {
	var hash []byte
	err := row.Scan(&w.seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		w.seq, w.head = 0, recorder.Digest{}
	case err != nil:
		return err
	case len(hash) != recorder.HashSize:
		return fmt.Errorf("record %d has a malformed hash", w.seq)
	default:
		w.head = recorder.Digest(hash)
	}
	return nil
}

// loadCheckpoint reads the seq of the newest checkpoint.
func (w *writer) loadCheckpoint(ctx context.Context, q querier) error {
	var cp sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(seq) FROM records WHERE kind = 'checkpoint'`).Scan(&cp); err != nil {
		return err
	}
	w.lastCheckpoint = cp.Int64
	return nil
}

// send queues req and waits for its answer. It returns an error if the
// store is closed or ctx ends first; an error never means the record is
// durable, and nil always does.
func (w *writer) send(ctx context.Context, req request) error {
	req.done = make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	w.queued.Add(1)
	select {
	case w.requests <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.queued.Add(-1)
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// append writes one record and returns once it is durable. When no one
// else is writing (nothing queued, the connection free) the caller
// commits it itself: the commit the writer's goroutine would make, without
// handing the record to it and being woken with the answer (two goroutine
// wake-ups, ≈ 10 µs each on a busy 2-core machine, on every record of a
// sequential caller). Otherwise it is queued for the next group commit.
func (w *writer) append(ctx context.Context, p *pending) error {
	return w.appendFor(ctx, p, false)
}

// appendFor is append; relayed says the record is another warden's, sent
// to this one as the relay (relay.go). Its sender waits for it alone, with
// no other record of its own to come until it is answered, so it is
// committed at once when the connection is free, whatever the last batch
// was, and never waits for a batch to fill.
func (w *writer) appendFor(ctx context.Context, p *pending, relayed bool) error {
	p.hash() // on the caller's goroutine, before any lock
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		w.mu.RUnlock()
		return err
	}
	if w.queued.Load() == 0 && w.busy.TryLock() {
		// A last batch of several records says callers are writing
		// at once: their records are better committed together. A WAL
		// checkpoint due goes first, on the writer's goroutine (a caller
		// committing directly would keep taking the lock from it).
		if (w.lastBatch <= 1 || relayed) && !w.walDue {
			err := w.commitDirect(p)
			w.busy.Unlock()
			w.mu.RUnlock()
			return err
		}
		w.busy.Unlock()
	}
	w.mu.RUnlock()
	return w.send(ctx, request{rec: p, relayed: relayed})
}

// commitDirect commits p on the caller's goroutine, under busy, and tells
// the writer's goroutine when its timers or the WAL need it.
func (w *writer) commitDirect(p *pending) error {
	done := make(chan error, 1)
	w.one[0] = request{rec: p, done: done}
	w.commit(w.one[:])
	w.one[0] = request{}
	w.lastBatch = 1
	unsigned := w.seq > w.lastCheckpoint && w.wrote
	if w.walDue || w.signedSeq < w.headSeq && !w.signArmed || unsigned != w.cpArmed {
		select {
		case w.kick <- struct{}{}:
		default: // already asked
		}
	}
	return <-done
}

// do runs job on the writer's goroutine, between batches.
func (w *writer) do(ctx context.Context, job func(ctx context.Context) error) error {
	return w.send(ctx, request{job: job})
}

// close stops accepting requests, lets the goroutine finish what was
// queued and sign what it wrote, and closes the connections.
func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.requests)
	}
	w.mu.Unlock()
	<-w.stopped
	if w.copyDone != nil {
		<-w.copyDone // the writer's goroutine has stopped: the field is this one's now
	}
	w.closeStatements()
	return errors.Join(w.closeErr, w.db.Close(), w.copier.Close(), w.headFile.Close(), w.lock.close())
}

// loop is the writer goroutine. It handles queued requests and the
// timers under busy, and waits for them without it.
func (w *writer) loop() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// signTimer signs the head within signEvery of a commit.
	signTimer := time.NewTimer(time.Hour)
	signTimer.Stop()
	batch := make([]request, 0, maxBatch)
	var held *request // a request taken while gathering that belongs to the next round
	for {
		var req request
		var closed, signFired, fired, taken bool
		if held != nil {
			req, held = *held, nil
		} else {
			select {
			case r, ok := <-w.requests:
				closed, taken = !ok, ok
				req = r
			case <-signTimer.C:
				signFired = true
			case <-timer.C:
				fired = true
			case <-w.kick:
				// A direct commit wants the timers or the WAL seen to.
			}
		}
		w.busy.Lock()
		if taken {
			w.queued.Add(-1)
		}
		switch {
		case closed:
			w.closeErr = w.signRest()
			w.busy.Unlock()
			return
		case signFired:
			w.signArmed = false
			// A failure leaves the head vouched for by its MAC; the
			// timer re-arms below and tries again.
			_ = w.signHead()
		case fired:
			w.cpArmed = false
			if w.seq > w.lastCheckpoint {
				// A failure leaves the records unsigned; the timer
				// re-arms below and tries again.
				_ = w.run(w.reloaded(func(ctx context.Context, tx *sql.Tx) error { return w.checkpoint(ctx, tx) }))
			}
		case req.done == nil:
			// Kicked: nothing was asked.
		case req.job != nil:
			req.done <- req.job(context.Background())
		default:
			var closed bool
			batch, held, closed = w.gather(append(batch[:0], req))
			w.commit(batch)
			w.lastBatch = len(batch)
			clear(batch)
			if closed {
				w.closeErr = w.signRest()
				w.busy.Unlock()
				return
			}
		}
		w.checkpointWAL()
		if w.signedSeq < w.headSeq && !w.signArmed {
			signTimer.Reset(signEvery)
			w.signArmed = true
		}
		// A record this process wrote is signed within the interval.
		if unsigned := w.seq > w.lastCheckpoint && w.wrote; unsigned && !w.cpArmed {
			timer.Reset(w.interval)
			w.cpArmed = true
		} else if !unsigned && w.cpArmed {
			timer.Stop()
			w.cpArmed = false
		}
		w.busy.Unlock()
	}
}

// linger is the longest the writer waits for more records before it
// commits a batch, and only when the last batch showed several callers
// writing at once.
const linger = 100 * time.Microsecond

// gather adds to batch the records already queued. When the last batch
// held several records, the callers it answered are about to queue their
// next ones, so it waits up to linger for as many as last time: one commit
// then serves them all, instead of a few commits serving a few each; but
// not for a batch holding another warden's record (appendFor), whose
// sender has nothing more to queue until it is answered. It stops at a
// job (returned as held, for the next round) or when the queue is closed.
func (w *writer) gather(batch []request) (_ []request, held *request, closed bool) {
	size := len(batch[0].rec.body)
	relayed := batch[0].relayed
	var deadline <-chan time.Time
	for len(batch) < maxBatch && size < maxBatchBytes {
		var r request
		var ok bool
		select {
		case r, ok = <-w.requests:
		default:
			if w.lastBatch <= 1 || len(batch) >= w.lastBatch || relayed {
				return batch, nil, false
			}
			if deadline == nil {
				t := time.NewTimer(linger)
				defer t.Stop()
				deadline = t.C
			}
			select {
			case r, ok = <-w.requests:
			case <-deadline:
				return batch, nil, false
			}
		}
		if ok {
			w.queued.Add(-1)
		}
		switch {
		case !ok:
			return batch, nil, true
		case r.job != nil:
			return batch, &r, false
		}
		batch = append(batch, r)
		size += len(r.rec.body)
		relayed = relayed || r.relayed
	}
	return batch, nil, false
}

// signRest writes a final checkpoint if this writer left records unsigned,
// and signs the head.
func (w *writer) signRest() error {
	if !w.wrote || w.seq == w.lastCheckpoint {
		return w.signHead()
	}
	sign := func(ctx context.Context, tx *sql.Tx) error { return w.checkpoint(ctx, tx) }
	err := w.run(sign)
	if errors.Is(err, errMoved) {
		err = w.run(sign) // which reads the end of the chain first
	}
	if err != nil {
		return errors.Join(fmt.Errorf("signing the last records: %w", err), w.signHead())
	}
	return w.signHead()
}

// commit writes a batch of records in one transaction and answers each.
func (w *writer) commit(batch []request) {
	start := time.Now()
	// reported runs before the callers are answered, so that a caller
	// told its record is durable finds the commit reported.
	reported := func() {
		if w.onCommit != nil {
			w.onCommit(len(batch), time.Since(start))
		}
	}
	// One record with nothing to check and no checkpoint due: a single
	// autocommit INSERT is one statement instead of three.
	if len(batch) == 1 && batch[0].rec.check == nil && w.seq+1-w.lastCheckpoint < w.every {
		if err := w.appendAlone(batch[0].rec); !errors.Is(err, errMoved) {
			reported()
			batch[0].done <- err
			return
		}
	}
	errs := make([]error, len(batch))
	write := func(ctx context.Context, tx *sql.Tx) error {
		clear(errs)
		ins := tx.StmtContext(ctx, w.insert)
		for i, r := range batch {
			err := w.appendTx(ctx, tx, ins, r.rec)
			var rf *refusal
			switch {
			case errors.As(err, &rf):
				errs[i] = rf.err
			case err != nil:
				return err
			}
		}
		if w.seq-w.lastCheckpoint >= w.every {
			return w.checkpoint(ctx, tx)
		}
		return nil
	}
	err := w.run(write)
	if errors.Is(err, errMoved) {
		err = w.run(write) // which reads the end of the chain first
	}
	reported()
	for i, r := range batch {
		if errs[i] == nil {
			errs[i] = err
		}
		r.done <- errs[i]
	}
}

// errMoved means another process appended to the store, so the chain did
// not end where this writer believed.
var errMoved = errors.New("another process wrote to the recording store at the same time")

// reloaded returns fn preceded by reading the end of the chain inside the
// transaction, under the write lock, where another process cannot move it.
func (w *writer) reloaded(fn func(ctx context.Context, tx *sql.Tx) error) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if err := w.loadFrom(ctx, tx); err != nil {
			return err
		}
		return fn(ctx, tx)
	}
}

// appendAlone writes one record as its own autocommit INSERT. It returns
// errMoved if another process appended first (and then the next
// transaction reads the end of the chain before it writes).
//
// When the lock's hint says another process appended since this writer
// last wrote, the record is written after the end the hint names, with
// insertAfterSQL: the insert only happens if the store ends there, so
// the hint is checked against the store in the same statement, instead
// of a read transaction of its own before it (one of every process's
// commits when several share a store). If it does not end there, the
// next transaction reads the end first.
func (w *writer) appendAlone(p *pending) error {
	ins, known := w.insert, !w.stale
	seq, head, cp := w.seq, w.head, w.lastCheckpoint
	if w.lockWrites() {
		// Under the write lock: no other warden moves the end now.
		if h := w.hint; known && h.seq > 0 && h.checkpoint >= 0 && h.checkpoint <= h.seq {
			w.seq, w.head, w.lastCheckpoint = h.seq, h.hash, h.checkpoint
			ins = w.insertAfter
		} else {
			if err := w.reload(context.Background(), nil); err != nil {
				w.lock.unlock(nil)
				return err
			}
			w.stale = false
		}
	}
	f := w.fieldsFor(p)
	hash := w.h.Hash(f)
	res, err := ins.ExecContext(context.Background(), f.Seq, p.kind, nullable(p.sessionID), nullable(p.callID), nullable(p.at),
		p.body, f.PrevHash[:], hash[:], w.mac(hash))
	if err == nil && ins == w.insertAfter {
		if n, nerr := res.RowsAffected(); nerr != nil || n != 1 {
			// The store does not end where the hint says.
			err = errMoved
		}
	}
	switch {
	case err == nil:
		w.seq, w.head, w.wrote, w.stale = f.Seq, hash, true, false
		w.unlock()
		return w.sealHead()
	case p.duplicate != "" && isUniqueViolation(err):
		err = &duplicateRecord{p.duplicate}
	case isSeqConflict(err):
		err = errMoved
	}
	if ins == w.insertAfter || errors.Is(err, errMoved) {
		// The end was not read from the store: read it before the
		// next write.
		w.seq, w.head, w.lastCheckpoint, w.stale = seq, head, cp, true
	}
	w.lock.unlock(nil)
	return err
}

// lockWrites takes the write lock and reports whether the end of the
// chain must be read first: another process moved it (the lock's hint
// names another end), or an earlier attempt found so.
func (w *writer) lockWrites() (stale bool) {
	w.hint, w.hinted = w.lock.lock()
	if w.hinted {
		w.commits = max(w.commits, w.hint.commits)
		if w.hint.seq != w.seq || w.hint.hash != w.head {
			w.stale = true
		}
	}
	return w.stale
}

// syncHint reads the end of the chain under the write lock and leaves it
// as the hint, when the store is opened: the hint is then as current as
// this writer's memory of the end (a migration or another program may
// have changed the store since the hint was written).
func (w *writer) syncHint(ctx context.Context) error {
	w.lockWrites()
	if err := w.load(ctx); err != nil {
		w.lock.unlock(nil)
		return err
	}
	w.stale = false
	w.lock.unlock(&hint{seq: w.seq, hash: w.head, checkpoint: w.lastCheckpoint, commits: w.commits})
	return nil
}

// unlock releases the write lock after a commit, leaving the end of the
// chain as the hint.
func (w *writer) unlock() {
	w.commits++
	if w.commits%walCheckpointEvery == 0 {
		w.walDue = true
	}
	w.lock.unlock(&hint{seq: w.seq, hash: w.head, checkpoint: w.lastCheckpoint, commits: w.commits})
}

// walCheckpointEvery is how many commits (by any process) pass between
// WAL checkpoints: a log of up to ≈ 30 MB for records of a few pages each
// (28 MB measured with eight wardens recording 100-row results; SQLite's
// default is 1000 pages, 4 MB).
//
// It was 256. Each checkpoint ends under the write lock (finishCheckpoint)
// with two fsyncs, and the next commit syncs the log's new header: 4-6 ms
// on this VM in which no record is committed. With a store each that
// stalls one warden; on a shared store it stalls every warden whose
// records the relay commits, and at 256 the cores sat idle 13-15 % of the
// time against 8 % with a store each (docs/BENCHMARKS.md, "Issue 14,
// sixth round"). Four times fewer checkpoints cut that idle by 2-4
// points; the copy itself runs beside the commits.
const walCheckpointEvery = 1024

// checkpointWAL copies the WAL into the database, if a checkpoint is due,
// without waiting for readers or writers (PASSIVE); it runs between
// batches, after the callers were answered. A failed one is retried at
// the next due.
//
// The copy runs on a connection and a goroutine of its own, while this
// writer goes on committing: it writes a few MB to the database file and
// syncs it (≈ 3 ms here), and callers that waited for it (every warden
// whose records this one commits as the relay, relay.go) left the cores
// idle meanwhile.
//
// SQLite starts the log again from its beginning only when a writer
// begins its transaction after a checkpoint copied all of it. Copied
// while other wardens write, the log never gets there: one of them is
// always inside a transaction that began before the copy ended, and
// appends. It grew without bound (to 320 MB while eight processes wrote
// 16,000 records, against 5 MB with a store each; every write extending
// the file, every page lookup searching a longer index of it). So the
// copy is finished under the write lock, where no transaction is open:
// first the bulk without the lock, while the others (and this writer) go
// on, then under it what was appended meanwhile.
func (w *writer) checkpointWAL() {
	if w.walDue && w.copyDone == nil {
		w.walDue = false
		done := make(chan error, 1)
		w.copyDone = done
		go func() {
			_, err := w.walCheckpoint(context.Background(), w.copier)
			done <- err
			select {
			case w.kick <- struct{}{}:
			default: // already asked
			}
		}()
		return
	}
	if w.copyDone == nil {
		return
	}
	select {
	case err := <-w.copyDone:
		w.copyDone = nil
		if err == nil { // a failed copy is retried at the next due
			w.finishCheckpoint()
		}
	default: // still copying
	}
}

// finishCheckpoint is the checkpoint's part under the write lock.
func (w *writer) finishCheckpoint() {
	ctx := context.Background()
	w.lock.lock()
	defer w.lock.unlock(nil)
	// A passive checkpoint does not wait for another one (SQLite's
	// checkpoint lock): finding another warden's copy still running
	// (its part without the lock, slow when its fsyncs are), this one
	// would do nothing, and the log would grow by every commit until
	// the copy ended and then until the next checkpoint was due (two
	// wardens in one process, whose commits are fast beside a copy and
	// its fsyncs, took it to 20–30 MB that way, with or without this
	// process's own copy first). So the other copy is waited for here,
	// under the lock, where no one appends; it only happens when two
	// copies overlap, that is when the log is growing faster than it is
	// copied.
	for deadline := time.Now().Add(lockWait); ; {
		busy, err := w.walCheckpoint(ctx, w.db)
		if err != nil || !busy || time.Now().After(deadline) {
			return
		}
		time.Sleep(walBusyPoll)
	}
}

// walBusyPoll is how often checkpointWAL asks again while another
// warden's copy runs.
const walBusyPoll = 200 * time.Microsecond

// walCheckpoint runs a passive WAL checkpoint and reports whether another
// checkpoint kept it from running.
func (w *writer) walCheckpoint(ctx context.Context, db *sql.DB) (busy bool, err error) {
	var b, log, copied int
	err = db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&b, &log, &copied)
	return b != 0, err
}

// run runs fn in one write transaction. If anything fails, the
// transaction is rolled back and the in-memory end of the chain restored;
// if it failed because another process appended to the store, run returns
// errMoved.
func (w *writer) run(fn func(ctx context.Context, tx *sql.Tx) error) error {
	ctx := context.Background()
	seq, head, cp, wrote := w.seq, w.head, w.lastCheckpoint, w.wrote
	stale := w.lockWrites()
	err := func() error {
		tx, err := w.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if stale {
			// Under the write lock, where no other process moves it.
			if err := w.reload(ctx, tx); err != nil {
				return err
			}
		}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		w.lock.unlock(nil)
		w.seq, w.head, w.lastCheckpoint, w.wrote = seq, head, cp, wrote
		if isSeqConflict(err) {
			w.stale = true
			return errMoved
		}
		return err
	}
	w.stale = false
	w.unlock()
	return w.sealHead()
}

// mac returns the MAC of a record with the given hash, a fresh slice (the
// driver may keep it until the statement ran).
func (w *writer) mac(hash recorder.Digest) []byte {
	if w.macer == nil {
		w.macer = recorder.NewMacer(w.macKey)
	}
	return bytes.Clone(w.macer.MAC(hash))
}

// signEvery is the longest the head's signature lags its MAC part while
// warden writes: a signature costs about 60µs, and is made off the
// callers' path, at most once per signEvery.
var signEvery = 100 * time.Millisecond

// sealHead rewrites the head's MAC part to name the end of the chain,
// after a commit and before anyone is told it is durable. The first
// commit to a store with no signed head is signed at once, so a head
// file always carries a signature. If it fails, the records are committed
// but reported as failed (so no call runs on them); the next start
// vouches for them by their MACs.
func (w *writer) sealHead() error {
	if w.seq == w.headSeq || w.headFile == nil {
		return nil
	}
	if w.signedSeq == 0 {
		return w.signHead()
	}
	if err := w.headFile.Write(w.seq, w.head, recorder.FormatTime(w.clock())); err != nil {
		return err
	}
	w.headSeq = w.seq
	return nil
}

// signHead signs the head at the end of the chain this writer knows to be
// committed, if its signature lags.
func (w *writer) signHead() error {
	if w.headFile == nil || w.seq == 0 || w.seq == w.signedSeq && w.seq == w.headSeq {
		return nil
	}
	if err := w.headFile.Sign(w.seq, w.head, recorder.FormatTime(w.clock())); err != nil {
		return err
	}
	w.headSeq, w.signedSeq = w.seq, w.seq
	return nil
}

// fieldsFor returns the hashed fields of p as the next record.
func (w *writer) fieldsFor(p *pending) *recorder.Fields {
	p.hash() // a no-op: newPending and append hashed it; here so that no path writes an unhashed record
	return &recorder.Fields{
		Seq: w.seq + 1, Kind: p.kind,
		SessionID: p.sessionID, HasSession: p.sessionID != "",
		CallID: p.callID, HasCall: p.callID != "",
		At: p.at, HasAt: p.at != "",
		BodyHash: p.bodyHash, PrevHash: w.head,
	}
}

// appendTx checks and inserts one record inside tx, extending the chain.
// The seq primary key is what keeps the chain from forking: if another
// process appended first, the insert fails (isSeqConflict) instead of
// writing a second record with the same seq.
func (w *writer) appendTx(ctx context.Context, tx *sql.Tx, ins *sql.Stmt, p *pending) error {
	if p.check != nil {
		if err := p.check(ctx, tx); err != nil {
			return err
		}
	}
	f := w.fieldsFor(p)
	hash := w.h.Hash(f)
	_, err := ins.ExecContext(ctx, f.Seq, p.kind, nullable(p.sessionID), nullable(p.callID), nullable(p.at),
		p.body, f.PrevHash[:], hash[:], w.mac(hash))
	if err != nil {
		if p.duplicate != "" && isUniqueViolation(err) {
			return refuse(&duplicateRecord{p.duplicate})
		}
		return err
	}
	w.seq, w.head = f.Seq, hash
	if p.kind == recorder.KindCheckpoint {
		w.lastCheckpoint = f.Seq
	} else {
		w.wrote = true
	}
	return nil
}

// checkpoint appends a signed checkpoint inside tx.
func (w *writer) checkpoint(ctx context.Context, tx *sql.Tx) error {
	at := recorder.FormatTime(w.clock())
	body := recorder.SignCheckpoint(w.key, w.seq+1, at, w.head)
	return w.appendTx(ctx, tx, tx.StmtContext(ctx, w.insert), newPending(recorder.KindCheckpoint, "", "", at, body))
}

// migrateV1 rebuilds a version 1 records table (no hashes) as version 2,
// hashing the existing records in order, and signs the result: from here
// on, any change to the history the migration found is evident.
func (w *writer) migrateV1(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{
		`DROP TRIGGER IF EXISTS records_no_update`,
		`DROP TRIGGER IF EXISTS records_no_delete`,
		`DROP INDEX IF EXISTS records_session`,
		`DROP INDEX IF EXISTS records_call`,
		`DROP INDEX IF EXISTS records_session_start`,
		`ALTER TABLE records RENAME TO records_v1`,
		schema,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	ins, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return err
	}
	defer ins.Close()
	// In chunks, so the copy never holds a cursor open while it inserts.
	// Records are renumbered 1..n in their order; version 1 never deleted,
	// so that keeps every seq.
	const chunk = 10000
	after := int64(-1 << 63)
	for {
		var recs []*pending
		var lastSeq int64
		err := func() error {
			rows, err := tx.QueryContext(ctx, `SELECT seq, kind, session_id, call_id, at, body FROM records_v1 WHERE seq > ? ORDER BY seq LIMIT ?`, after, chunk)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var kind, body string
				var sid, cid, at sql.NullString
				if err := rows.Scan(&lastSeq, &kind, &sid, &cid, &at, &body); err != nil {
					return err
				}
				p := newPending(kind, sid.String, cid.String, at.String, body)
				recs = append(recs, p)
			}
			return rows.Err()
		}()
		if err != nil {
			return err
		}
		for _, p := range recs {
			if err := w.appendTx(ctx, tx, ins, p); err != nil {
				return err
			}
		}
		if len(recs) < chunk {
			break
		}
		after = lastSeq
	}
	w.wrote = false
	if _, err := tx.ExecContext(ctx, `DROP TABLE records_v1`); err != nil {
		return err
	}
	if w.seq == 0 {
		return nil
	}
	at := recorder.FormatTime(w.clock())
	return w.appendTx(ctx, tx, ins, newPending(recorder.KindCheckpoint, "", "", at, recorder.SignCheckpoint(w.key, w.seq+1, at, w.head)))
}
