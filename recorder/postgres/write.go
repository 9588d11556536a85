package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// StartSession records that a client session opened.
func (s *Store) StartSession(ctx context.Context, sess *warden.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("recording session start: session has no id")
	}
	body := recorder.SessionJSON{ID: sess.ID, Transport: sess.Transport, ClientName: sess.ClientName, ClientVersion: sess.ClientVersion,
		ProtocolVersion: sess.ProtocolVersion, Caller: recorder.CallerToJSON(sess.Caller), StartedAt: recorder.FormatTime(sess.StartedAt)}
	err := s.append(ctx, recorder.KindSessionStart, sess.ID, "", body.StartedAt, body, func(ctx context.Context, tx pgx.Tx) error {
		n, _, err := countSession(ctx, tx, sess.ID)
		if err == nil && n > 0 {
			err = refuse(errors.New("session was already started"))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording start of session %s: %w", sess.ID, err)
	}
	return nil
}

// UpdateSession records what was learned about a session after it started.
func (s *Store) UpdateSession(ctx context.Context, sess *warden.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("recording session update: session has no id")
	}
	body := recorder.SessionJSON{ID: sess.ID, ClientName: sess.ClientName, ClientVersion: sess.ClientVersion, ProtocolVersion: sess.ProtocolVersion}
	err := s.append(ctx, recorder.KindSessionUpdate, sess.ID, "", "", body, func(ctx context.Context, tx pgx.Tx) error {
		return checkSessionOpen(ctx, tx, sess.ID)
	})
	if err != nil {
		return fmt.Errorf("recording update of session %s: %w", sess.ID, err)
	}
	return nil
}

// EndSession records that a session closed at the given time.
func (s *Store) EndSession(ctx context.Context, id string, at time.Time) error {
	if id == "" {
		return errors.New("recording session end: session has no id")
	}
	body := recorder.SessionJSON{ID: id, EndedAt: recorder.FormatTime(at)}
	err := s.append(ctx, recorder.KindSessionEnd, id, "", body.EndedAt, body, func(ctx context.Context, tx pgx.Tx) error {
		return checkSessionOpen(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("recording end of session %s: %w", id, err)
	}
	return nil
}

// StartCall records that an allowed call is about to run; nil means the
// record committed.
func (s *Store) StartCall(ctx context.Context, c *warden.Call) error {
	if c == nil || c.ID == "" {
		return errors.New("recording call start: call has no id")
	}
	body := recorder.CallToJSON(c)
	w, err := s.writable()
	if err == nil {
		var text string
		if text, err = recorder.Encode(body); err == nil {
			p := newPending(recorder.KindCallStart, c.SessionID, c.ID, body.StartedAt, text)
			p.duplicate = "call was already started"
			err = w.append(ctx, p)
		}
	}
	if err != nil {
		return fmt.Errorf("recording start of call %s: %w", c.ID, err)
	}
	s.started.Store(c.ID, struct{}{})
	return nil
}

// FinishCall records the outcome of a call, as the SQLite store does:
// arguments recorded once, the result's bytes spliced in as the agent
// receives them, and a result that cannot be encoded withheld.
func (s *Store) FinishCall(ctx context.Context, c *warden.Call) error {
	if c == nil || c.ID == "" {
		return errors.New("recording call finish: call has no id")
	}
	_, started := s.started.LoadAndDelete(c.ID)
	w, err := s.writable()
	if err != nil {
		return fmt.Errorf("recording finish of call %s: %w", c.ID, err)
	}
	text, endedAt, resultErr, err := recorder.FinishRecord(c, started)
	if err != nil {
		return fmt.Errorf("recording finish of call %s: encoding record: %w", c.ID, err)
	}
	p := newPending(recorder.KindCallFinish, c.SessionID, c.ID, endedAt, text)
	p.duplicate = "call was already finished"
	err = w.append(ctx, p)
	if err = errors.Join(resultErr, err); err != nil {
		return fmt.Errorf("recording finish of call %s: %w", c.ID, err)
	}
	return nil
}

// append writes one record after check passes inside the transaction.
func (s *Store) append(ctx context.Context, kind, sessionID, callID, at string, body any, check func(context.Context, pgx.Tx) error) error {
	w, err := s.writable()
	if err != nil {
		return err
	}
	text, err := recorder.Encode(body)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	p := newPending(kind, sessionID, callID, at, text)
	p.check = check
	return w.append(ctx, p)
}

// locksSession reports whether p is a session's start, update or end,
// whose check reads the session's start and end records under the
// session's lock (see lockSessions).
func locksSession(p *pending) bool {
	switch p.kind {
	case recorder.KindSessionStart, recorder.KindSessionUpdate, recorder.KindSessionEnd:
		return true
	}
	return false
}

// sessionLifeIndex finds a session's start and end records without
// visiting its calls: counting them through records_session read every
// record the session wrote (639 buffers, 6.5 ms, for a session of 5,000
// calls), inside the write transaction of the instance's writer, which
// every record of that instance waits behind. Older wardens maintain it
// without knowing it; Open creates it where missing.
const sessionLifeIndex = `CREATE INDEX IF NOT EXISTS records_session_life ON records (session_id)
WHERE kind IN ('session_start', 'session_end')`

// sessionLifeSQL counts a session's start and end records. Its condition
// on kind is the index's, in constants, so PostgreSQL can use the partial
// index in a generic plan too (pgx prepares the statement, and after five
// executions the server may plan it once for every session id).
const sessionLifeSQL = `SELECT count(*) FILTER (WHERE kind = 'session_start'), count(*) FILTER (WHERE kind = 'session_end')
FROM records WHERE session_id = $1 AND kind IN ('session_start', 'session_end')`

// sessionLockClass is the first key of the session locks, which are taken
// in the two-key form (class, sessionLockKey(id)). warden's other advisory
// locks (migrateLock, the chain and flow locks) take one bigint key, and
// PostgreSQL keeps the two forms' keys apart, so no session lock can be
// one of them.
const sessionLockClass int32 = 0x77736573 // "wses"

// sessionLockKey is the second key of session id's lock. Two sessions
// whose ids hash alike share a lock, which only makes them wait for each
// other. It is computed here, not by the server (hashtext), so that
// lockSessions can order a batch's locks before sending them.
func sessionLockKey(id string) int32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int32(h.Sum32())
}

// lockSessions takes, inside tx, the transaction lock of every session
// whose start, update or end is in batch, before any of their checks
// runs, so that a session's check and the record it admits are one step
// for every instance: without it two instances ending one session at the
// same moment both found it open and both recorded its end (and two
// starting it, both a start). The locks are released at commit or
// rollback; the check, a later statement under READ COMMITTED, sees what
// the lock's last holder committed. They are taken first in the
// transaction, in ascending key order, in one round trip, so two
// instances' transactions cannot each hold a lock the other waits for.
// A lock does not exclude its own transaction: within a batch, insertBatch
// sends a session's record before the check of its next one.
func lockSessions(ctx context.Context, tx pgx.Tx, batch []request) error {
	var keys []int32
	for _, r := range batch {
		if locksSession(r.rec) {
			keys = append(keys, sessionLockKey(r.rec.sessionID))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	b := &pgx.Batch{}
	for _, k := range slices.Compact(keys) {
		b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, sessionLockClass, k)
	}
	return tx.SendBatch(ctx, b).Close()
}

// countSession counts, inside tx, the start and end records of session id.
func countSession(ctx context.Context, tx pgx.Tx, id string) (started, ended int, err error) {
	err = tx.QueryRow(ctx, sessionLifeSQL, id).Scan(&started, &ended)
	return started, ended, err
}

// checkSessionOpen refuses unless session id was started and has not
// ended. Like StartSession's check, it runs under the session's lock.
func checkSessionOpen(ctx context.Context, tx pgx.Tx, id string) error {
	started, ended, err := countSession(ctx, tx, id)
	if err != nil {
		return err
	}
	if started == 0 {
		return refuse(fmt.Errorf("session %w", recorder.ErrNotFound))
	}
	if ended > 0 {
		return refuse(errors.New("session has already ended"))
	}
	return nil
}

var _ warden.Recorder = (*Store)(nil)
