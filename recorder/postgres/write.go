package postgres

import (
	"context"
	"errors"
	"fmt"
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
		n, err := countSession(ctx, tx, sess.ID, recorder.KindSessionStart)
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

func countSession(ctx context.Context, tx pgx.Tx, id, kind string) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM records WHERE session_id = $1 AND kind = $2`, id, kind).Scan(&n)
	return n, err
}

func checkSessionOpen(ctx context.Context, tx pgx.Tx, id string) error {
	started, err := countSession(ctx, tx, id, recorder.KindSessionStart)
	if err != nil {
		return err
	}
	if started == 0 {
		return refuse(fmt.Errorf("session %w", recorder.ErrNotFound))
	}
	ended, err := countSession(ctx, tx, id, recorder.KindSessionEnd)
	if err != nil {
		return err
	}
	if ended > 0 {
		return refuse(errors.New("session has already ended"))
	}
	return nil
}

var _ warden.Recorder = (*Store)(nil)
