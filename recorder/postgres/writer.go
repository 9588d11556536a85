package postgres

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/warden-mcp/warden/recorder"
)

// pending is a record waiting for the writer.
type pending struct {
	kind, sessionID, callID, at, body string
	bodyHash                          recorder.Digest
	// check runs inside the write transaction before the insert; a
	// *refusal refuses this record only.
	check func(ctx context.Context, tx pgx.Tx) error
	// duplicate, for call records, is the refusal when the call id
	// already has a record of this kind.
	duplicate string
	// sign asks for a checkpoint right after this record.
	sign bool
}

func newPending(kind, sessionID, callID, at, body string) *pending {
	return &pending{kind: kind, sessionID: sessionID, callID: callID, at: at, body: body, bodyHash: sha256.Sum256([]byte(body))}
}

// refusal is an error about one record, which leaves the batch to commit.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }
func refuse(err error) error     { return &refusal{err} }

type request struct {
	rec  *pending
	done chan error
}

// Group commit bounds.
const (
	maxBatch = 512
	// linger is how long the writer waits for more records when the last
	// batch showed several callers writing at once.
	linger = 200 * time.Microsecond
)

// writer owns this instance's chain: one goroutine commits queued records
// in groups, one transaction per group, each record linked to the one
// before it.
type writer struct {
	s        *Store
	every    int64
	interval time.Duration
	onCommit func(records int, took time.Duration)

	requests chan request
	mu       sync.RWMutex
	closed   bool
	stopped  chan struct{}
	closeErr error

	seq, lastCheckpoint int64
	head                recorder.Digest
	wrote               bool
	lastBatch           int
	h                   recorder.Hasher
	// batches and batched count commits and the records they carried.
	batches, batched atomic.Int64
	m                *recorder.Macer
}

func newWriter(s *Store, opts recorder.Options) *writer {
	w := &writer{s: s, every: int64(opts.CheckpointEvery), interval: opts.CheckpointInterval, onCommit: opts.OnCommit,
		requests: make(chan request, 4096), stopped: make(chan struct{}), m: recorder.NewMacer(s.macKey)}
	if w.every <= 0 {
		w.every = recorder.DefaultCheckpointEvery
	}
	if w.interval <= 0 {
		w.interval = recorder.DefaultCheckpointInterval
	}
	return w
}

// load reads the end of this instance's chain and checks it against the
// instance's signed head: the chain must reach the head and hold its
// record, and every record after it must carry a valid MAC. warden never
// extends a chain it cannot vouch for.
func (w *writer) load(ctx context.Context) error {
	var hash []byte
	err := w.s.pool.QueryRow(ctx, `SELECT seq, hash FROM records WHERE instance = $1 ORDER BY seq DESC LIMIT 1`, w.s.instance).Scan(&w.seq, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		w.seq = 0
	case err != nil:
		return dbErr("reading the end of the chain", err)
	case len(hash) != recorder.HashSize:
		return fmt.Errorf("record %d has a malformed hash", w.seq)
	default:
		w.head = recorder.Digest(hash)
	}
	if err := w.s.pool.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM records WHERE instance = $1 AND kind = 'checkpoint'`, w.s.instance).Scan(&w.lastCheckpoint); err != nil {
		return dbErr("reading the end of the chain", err)
	}
	head, err := readHead(ctx, w.s.pool, w.s.instance, w.s.key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	if head == nil {
		if w.seq > 0 {
			return fmt.Errorf("instance %s's chain has %d records but no signed head: warden does not extend a chain it cannot vouch for", w.s.instance, w.seq)
		}
		return nil
	}
	if w.seq < head.Seq {
		return fmt.Errorf("instance %s's chain ends at record %d, but its signed head names record %d: the newest records were removed; warden does not extend it", w.s.instance, w.seq, head.Seq)
	}
	rows, err := w.s.pool.Query(ctx, selectRecords+` WHERE instance = $1 AND seq >= $2 ORDER BY seq`, w.s.instance, head.Seq)
	if err != nil {
		return dbErr("reading the end of the chain", err)
	}
	defer rows.Close()
	src := &rowSource{rows: rows}
	prev, first := head.Hash, true
	for {
		r, err := src.Next()
		if err != nil {
			return dbErr("reading the end of the chain", err)
		}
		if r == nil {
			break
		}
		computed := w.h.Hash(&r.Fields)
		if first {
			first = false
			if r.Seq != head.Seq || computed != head.Hash || !bytes.Equal(r.Hash, head.Hash[:]) {
				return fmt.Errorf("instance %s: record %d is not the record its signed head names: the chain was rewritten", w.s.instance, head.Seq)
			}
			continue
		}
		if r.PrevHash != prev || !bytes.Equal(computed[:], r.Hash) || !bytes.Equal(r.MAC, w.m.MAC(computed)) {
			return fmt.Errorf("instance %s: record %d, after its signed head, was not written by warden", w.s.instance, r.Seq)
		}
		prev = computed
	}
	return rows.Err()
}

func (w *writer) append(ctx context.Context, p *pending) error {
	req := request{rec: p, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	select {
	case w.requests <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
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

func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.requests)
	}
	w.mu.Unlock()
	<-w.stopped
	return w.closeErr
}

func (w *writer) loop() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	batch := make([]request, 0, maxBatch)
	for {
		select {
		case r, ok := <-w.requests:
			if !ok {
				w.closeErr = w.signRest()
				return
			}
			var closed bool
			batch, closed = w.gather(append(batch[:0], r))
			w.commit(batch)
			w.lastBatch = len(batch)
			w.batches.Add(1)
			w.batched.Add(int64(len(batch)))
			clear(batch)
			if closed {
				w.closeErr = w.signRest()
				return
			}
		case <-timer.C:
			armed = false
			if w.seq > w.lastCheckpoint {
				_ = w.run(nil, true)
			}
		}
		if unsigned := w.seq > w.lastCheckpoint && w.wrote; unsigned && !armed {
			timer.Reset(w.interval)
			armed = true
		} else if !unsigned && armed {
			timer.Stop()
			armed = false
		}
	}
}

// gather adds to batch the records already queued, and when the last batch
// held several, waits up to linger for as many as last time.
func (w *writer) gather(batch []request) (_ []request, closed bool) {
	var deadline <-chan time.Time
	for len(batch) < maxBatch {
		select {
		case r, ok := <-w.requests:
			if !ok {
				return batch, true
			}
			batch = append(batch, r)
			continue
		default:
		}
		if w.lastBatch <= 1 || len(batch) >= w.lastBatch {
			return batch, false
		}
		if deadline == nil {
			t := time.NewTimer(linger)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case r, ok := <-w.requests:
			if !ok {
				return batch, true
			}
			batch = append(batch, r)
		case <-deadline:
			return batch, false
		}
	}
	return batch, false
}

func (w *writer) signRest() error {
	if !w.wrote || w.seq == w.lastCheckpoint {
		return nil
	}
	if err := w.run(nil, true); err != nil {
		return dbErr("signing the last records", err)
	}
	return nil
}

// commit writes a batch in one transaction and answers each request. If
// the transaction fails on a uniqueness race with another instance, each
// record is committed alone, so only the duplicate is refused.
func (w *writer) commit(batch []request) {
	start := time.Now()
	// The commit is reported before the first caller is answered, so that
	// a caller told its record is durable finds the commit reported.
	reported := false
	answer := func(r request, err error) {
		if !reported {
			reported = true
			if w.onCommit != nil {
				w.onCommit(len(batch), time.Since(start))
			}
		}
		r.done <- err
	}
	errs := make([]error, len(batch))
	err := w.pipelined(batch, errs)
	if err != nil && !errors.Is(err, errNeedsTx) && !isUniqueViolation(err) {
		for _, r := range batch {
			answer(r, dbErr("writing to the PostgreSQL store", err))
		}
		return
	}
	if err != nil {
		err = w.run(func(ctx context.Context, tx pgx.Tx) error {
			clear(errs)
			return w.insertBatch(ctx, tx, batch, errs)
		}, false)
	}
	if isUniqueViolation(err) && len(batch) > 1 {
		for i := range batch {
			one := batch[i : i+1]
			e := []error{nil}
			err := w.run(func(ctx context.Context, tx pgx.Tx) error {
				e[0] = nil
				return w.insertBatch(ctx, tx, one, e)
			}, false)
			if e[0] == nil {
				e[0] = dbErr("writing to the PostgreSQL store", err)
			}
			answer(batch[i], e[0])
		}
		return
	}
	for i, r := range batch {
		if errs[i] == nil {
			errs[i] = dbErr("writing to the PostgreSQL store", err)
		}
		answer(r, errs[i])
	}
}

// errNeedsTx: the batch holds a record whose check must read inside the
// write transaction, so it cannot go as one pipeline.
var errNeedsTx = errors.New("the batch needs an interactive transaction")

// pipelined commits a batch of records that need no checks (the common
// case: session and call records) in ONE round trip: BEGIN, the inserts,
// a checkpoint when one is due, the head update and COMMIT are sent as one
// pgx batch. PostgreSQL stops at the first error and skips the rest up to
// the batch's end, COMMIT included, so the batch commits whole or not at
// all (and pgxpool drops a connection left in a failed transaction). The
// duplicate-call check is the unique index: a violation sends the batch
// through the interactive path, which names the duplicate. Returns
// errNeedsTx, without sending anything, when a record has a check.
func (w *writer) pipelined(batch []request, errs []error) error {
	for _, r := range batch {
		if r.rec.check != nil {
			return errNeedsTx
		}
	}
	seq, head, cp, wrote := w.seq, w.head, w.lastCheckpoint, w.wrote
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	seen := make(map[[2]string]bool, len(batch))
	sign := false
	for i, r := range batch {
		p := r.rec
		if p.duplicate != "" {
			k := [2]string{p.callID, p.kind}
			if seen[k] {
				errs[i] = errors.New(p.duplicate)
				continue
			}
			seen[k] = true
		}
		w.queue(b, p)
		if p.kind != recorder.KindCheckpoint {
			w.wrote = true
		}
		sign = sign || p.sign
	}
	if sign || w.seq-w.lastCheckpoint >= w.every {
		w.queueCheckpoint(b)
	}
	if w.seq != seq {
		w.queueHead(b)
	}
	b.Queue("COMMIT")
	if err := w.s.pool.SendBatch(context.Background(), b).Close(); err != nil {
		w.seq, w.head, w.lastCheckpoint, w.wrote = seq, head, cp, wrote
		clear(errs)
		return err
	}
	return nil
}

const headSQL = `INSERT INTO heads (instance, seq, hash, at, sig) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (instance) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, sig = excluded.sig`

// queueHead adds to b the update of this instance's signed head to the
// end of its chain as queued so far.
func (w *writer) queueHead(b *pgx.Batch) {
	at := recorder.FormatTime(w.s.clock())
	sig := ed25519.Sign(w.s.key, recorder.HeadMessage(w.seq, at, w.head))
	b.Queue(headSQL, w.s.instance, w.seq, w.head[:], at, sig)
}

// insertBatch takes the batch's session locks, runs each record's check,
// refuses duplicate call records, and inserts the rest in one round trip,
// or more when a session's record must be inserted before the check of
// its next one runs.
func (w *writer) insertBatch(ctx context.Context, tx pgx.Tx, batch []request, errs []error) error {
	if err := lockSessions(ctx, tx, batch); err != nil {
		return err
	}
	var ids []string
	for _, r := range batch {
		if r.rec.duplicate != "" {
			ids = append(ids, r.rec.callID)
		}
	}
	have := map[[2]string]bool{}
	if len(ids) > 0 {
		rows, err := tx.Query(ctx, `SELECT call_id, kind FROM records WHERE call_id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, kind string
			if err := rows.Scan(&id, &kind); err != nil {
				rows.Close()
				return err
			}
			have[[2]string{id, kind}] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	b := &pgx.Batch{}
	// queued holds the sessions with a record in b: a later check on one
	// of them must see that record, so b is sent first.
	queued := map[string]bool{}
	for i, r := range batch {
		p := r.rec
		if p.duplicate != "" {
			k := [2]string{p.callID, p.kind}
			if have[k] {
				errs[i] = errors.New(p.duplicate)
				continue
			}
			have[k] = true
		}
		if locksSession(p) && queued[p.sessionID] {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			b = &pgx.Batch{}
			clear(queued)
		}
		if p.check != nil {
			if err := p.check(ctx, tx); err != nil {
				var rf *refusal
				if errors.As(err, &rf) {
					errs[i] = rf.err
					continue
				}
				return err
			}
		}
		w.queue(b, p)
		if locksSession(p) {
			queued[p.sessionID] = true
		}
		if p.kind != recorder.KindCheckpoint {
			w.wrote = true
		}
	}
	sign := w.seq-w.lastCheckpoint >= w.every
	for i, r := range batch {
		sign = sign || r.rec.sign && errs[i] == nil
	}
	if sign {
		w.queueCheckpoint(b)
	}
	return tx.SendBatch(ctx, b).Close()
}

const insertSQL = `INSERT INTO records (instance, seq, kind, session_id, call_id, at, body, prev_hash, hash, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// queue adds p to b as the next record of the chain.
func (w *writer) queue(b *pgx.Batch, p *pending) {
	f := &recorder.Fields{Seq: w.seq + 1, Kind: p.kind,
		SessionID: p.sessionID, HasSession: p.sessionID != "",
		CallID: p.callID, HasCall: p.callID != "",
		At: p.at, HasAt: p.at != "",
		BodyHash: p.bodyHash, PrevHash: w.head}
	hash := w.h.Hash(f)
	b.Queue(insertSQL, w.s.instance, f.Seq, p.kind, nullable(p.sessionID), nullable(p.callID), nullable(p.at),
		p.body, f.PrevHash[:], hash[:], bytes.Clone(w.m.MAC(hash)))
	w.seq, w.head = f.Seq, hash
	if p.kind == recorder.KindCheckpoint {
		w.lastCheckpoint = f.Seq
	}
}

func (w *writer) queueCheckpoint(b *pgx.Batch) {
	at := recorder.FormatTime(w.s.clock())
	w.queue(b, newPending(recorder.KindCheckpoint, "", "", at, recorder.SignCheckpoint(w.s.key, w.seq+1, at, w.head)))
}

// run runs fn (and, with sign, a checkpoint) in one transaction that also
// moves this instance's signed head to the end of its chain. On failure
// the in-memory end of the chain is restored.
func (w *writer) run(fn func(ctx context.Context, tx pgx.Tx) error, sign bool) error {
	ctx := context.Background()
	seq, head, cp, wrote := w.seq, w.head, w.lastCheckpoint, w.wrote
	err := pgx.BeginFunc(ctx, w.s.pool, func(tx pgx.Tx) error {
		if fn != nil {
			if err := fn(ctx, tx); err != nil {
				return err
			}
		}
		if sign && w.seq > w.lastCheckpoint {
			b := &pgx.Batch{}
			w.queueCheckpoint(b)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		if w.seq == seq {
			return nil
		}
		at := recorder.FormatTime(w.s.clock())
		sig := ed25519.Sign(w.s.key, recorder.HeadMessage(w.seq, at, w.head))
		_, err := tx.Exec(ctx, headSQL, w.s.instance, w.seq, w.head[:], at, sig)
		return err
	})
	if err != nil {
		w.seq, w.head, w.lastCheckpoint, w.wrote = seq, head, cp, wrote
		return err
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// BatchStats returns how many group commits this store made and how many
// records they carried.
func (s *Store) BatchStats() (commits, records int64) {
	if s.w == nil {
		return 0, 0
	}
	return s.w.batches.Load(), s.w.batched.Load()
}
