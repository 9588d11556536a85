package postgres

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// The approvals table is shared by every instance: a reviewer's decision
// taken through one instance is what a call waiting on another reads (the
// approval service polls it). A row counts only if its MAC, keyed from the
// shared signing key, verifies: whoever can write the database cannot
// approve a request.

var errApprovalForged = fmt.Errorf("does not match what warden recorded: %w", warden.ErrApprovalForged)

// CreateApproval stores a new request and records it in one transaction.
func (s *Store) CreateApproval(ctx context.Context, a *warden.Approval) error {
	if a == nil || a.ID == "" || a.Requester == nil || a.CallHash == "" {
		return errors.New("recording approval request: it has no id, requester or call hash")
	}
	body := recorder.ApprovalToJSON(a)
	text, err := recorder.Encode(body)
	if err != nil {
		return fmt.Errorf("encoding approval request: %w", err)
	}
	err = s.append(ctx, recorder.KindApprovalRequest, a.SessionID, "", body.CreatedAt, body, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO approvals (id, status, subject, call_hash, created_at, expires_at, body, mac)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			a.ID, body.Status, a.Requester.Subject, a.CallHash, body.CreatedAt, body.ExpiresAt, text, recorder.ApprovalMAC(s.apprKey, a.ID, text))
		if err == nil && tag.RowsAffected() != 1 {
			return refuse(errors.New("an approval request with this id exists"))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording approval request %s: %w", a.ID, err)
	}
	return nil
}

// Approval returns request id, checked against its MAC when the key can
// be read.
func (s *Store) Approval(ctx context.Context, id string) (*warden.Approval, error) {
	var body string
	var mac []byte
	err := s.pool.QueryRow(ctx, `SELECT body, mac FROM approvals WHERE id = $1`, id).Scan(&body, &mac)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("approval %s: %w", id, warden.ErrApprovalNotFound)
	case err != nil:
		return nil, dbErr("reading approval "+id, err)
	}
	if s.apprKey != nil && !hmac.Equal(mac, recorder.ApprovalMAC(s.apprKey, id, body)) {
		return nil, fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	return recorder.DecodeApproval(body)
}

// PendingApproval returns the newest pending request of subject for the
// call hash at now, or nil.
func (s *Store) PendingApproval(ctx context.Context, subject, callHash string, now time.Time) (*warden.Approval, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM approvals
		WHERE status = 'pending' AND subject = $1 AND call_hash = $2 AND expires_at > $3
		ORDER BY created_at DESC LIMIT 1`, subject, callHash, recorder.FormatTime(now)).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, dbErr("reading approvals", err)
	}
	return s.Approval(ctx, id)
}

// Approvals lists requests, newest first.
func (s *Store) Approvals(ctx context.Context, f warden.ApprovalFilter) ([]*warden.Approval, error) {
	var limit *int
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := s.pool.Query(ctx, `SELECT body FROM approvals WHERE ($1 = '' OR status = $1)
		ORDER BY created_at DESC, id DESC LIMIT $2`, string(f.Status), limit)
	if err != nil {
		return nil, dbErr("listing approvals", err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("listing approvals", err)
	}
	out := make([]*warden.Approval, 0, len(bodies))
	for _, b := range bodies {
		a, err := recorder.DecodeApproval(b)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ChangeApproval applies c atomically: the row changes only if it is still
// in the status it was read in, in the transaction that records the change.
func (s *Store) ChangeApproval(ctx context.Context, c warden.ApprovalChange) (*warden.Approval, error) {
	cur, err := s.Approval(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.From, cur.Status) {
		return nil, fmt.Errorf("approval %s is %s: %w", c.ID, cur.Status, warden.ErrApprovalConflict)
	}
	at := recorder.FormatTime(c.At)
	mustLive := c.To == warden.ApprovalApproved || c.To == warden.ApprovalUsed
	if mustLive && !c.At.Before(cur.ExpiresAt) {
		return nil, fmt.Errorf("approval %s expired at %s: %w", c.ID, recorder.FormatTime(cur.ExpiresAt), warden.ErrApprovalConflict)
	}
	from := cur.Status
	next := *cur
	next.Status = c.To
	switch c.To {
	case warden.ApprovalUsed:
		next.UsedBy, next.UsedAt = c.CallID, c.At
		if from == warden.ApprovalPending {
			next.DecidedBy, next.DecidedAt, next.Reason = c.By, c.At, c.Reason
		}
	case warden.ApprovalExpired:
		next.DecidedAt, next.Reason = c.At, c.Reason
	default:
		next.DecidedBy, next.DecidedAt, next.Reason = c.By, c.At, c.Reason
	}
	if !c.ExpiresAt.IsZero() {
		next.ExpiresAt = c.ExpiresAt
	}
	stored := recorder.ApprovalToJSON(&next)
	text, err := recorder.Encode(stored)
	if err != nil {
		return nil, fmt.Errorf("encoding approval: %w", err)
	}
	change := recorder.ApprovalChangeJSON{ID: c.ID, Rule: cur.Rule, CallHash: cur.CallHash, From: string(from), To: string(c.To),
		By: recorder.CallerToJSON(c.By), Reason: c.Reason, At: at, CallID: c.CallID}
	if !c.ExpiresAt.IsZero() {
		change.ExpiresAt = recorder.FormatTime(c.ExpiresAt)
	}
	err = s.append(ctx, recorder.KindApprovalChange, cur.SessionID, "", at, change, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE approvals SET status = $1, expires_at = $2, body = $3, mac = $4
			WHERE id = $5 AND status = $6 AND (NOT $7 OR expires_at > $8)`,
			stored.Status, stored.ExpiresAt, text, recorder.ApprovalMAC(s.apprKey, c.ID, text), c.ID, string(from), mustLive, at)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return refuse(fmt.Errorf("approval %s changed meanwhile: %w", c.ID, warden.ErrApprovalConflict))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording change of approval %s: %w", c.ID, err)
	}
	return &next, nil
}

// ApprovalHistory returns the recorded request and changes of id, in time
// order, from every instance's chain.
func (s *Store) ApprovalHistory(ctx context.Context, id string) ([]recorder.ApprovalEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, kind, body FROM records
		WHERE kind IN ('approval_request', 'approval_change') AND body::jsonb->>'id' = $1
		ORDER BY at, kind = 'approval_change', instance, seq`, id)
	if err != nil {
		return nil, dbErr("reading approval history", err)
	}
	defer rows.Close()
	var out []recorder.ApprovalEvent
	for rows.Next() {
		var seq int64
		var kind, body string
		if err := rows.Scan(&seq, &kind, &body); err != nil {
			return nil, dbErr("reading approval history", err)
		}
		if kind == recorder.KindApprovalRequest {
			var b recorder.ApprovalJSON
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				return nil, fmt.Errorf("decoding record %d: %w", seq, err)
			}
			out = append(out, recorder.ApprovalEvent{Seq: seq, Kind: "request", At: recorder.ParseTime(b.CreatedAt), To: b.Status,
				By: recorder.ApprovalFromJSON(&b).Requester, CallID: b.CallID})
			continue
		}
		var b recorder.ApprovalChangeJSON
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			return nil, fmt.Errorf("decoding record %d: %w", seq, err)
		}
		ev := recorder.ApprovalEvent{Seq: seq, Kind: b.To, At: recorder.ParseTime(b.At), From: b.From, To: b.To, Reason: b.Reason, CallID: b.CallID}
		if b.By != nil {
			c := recorder.CallerFromJSON(b.By)
			ev.By = &c
		}
		out = append(out, ev)
	}
	return out, dbErr("reading approval history", rows.Err())
}

var _ recorder.Store = (*Store)(nil)
