package sqlite

import (
	"bytes"
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// CreateApproval implements warden.ApprovalStore: it inserts the request
// and appends its approval_request record in one transaction.
func (s *Store) CreateApproval(ctx context.Context, a *warden.Approval) error {
	if a == nil || a.ID == "" || a.Requester == nil || a.CallHash == "" {
		return errors.New("recording approval request: it has no id, requester or call hash")
	}
	body := recorder.ApprovalToJSON(a)
	text, err := recorder.Encode(body)
	if err != nil {
		return fmt.Errorf("encoding approval request: %w", err)
	}
	err = s.append(ctx, recorder.KindApprovalRequest, a.SessionID, "", body.CreatedAt, body, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, status, subject, call_hash, created_at, expires_at, body, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, body.Status, a.Requester.Subject, a.CallHash, body.CreatedAt, body.ExpiresAt, text, recorder.ApprovalMAC(s.w.approvalKey, a.ID, text))
		if isUniqueViolation(err) || isPrimaryKeyViolation(err) {
			return refuse(errors.New("an approval request with this id exists"))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording approval request %s: %w", a.ID, err)
	}
	return nil
}

// Approval implements warden.ApprovalStore.
func (s *Store) Approval(ctx context.Context, id string) (*warden.Approval, error) {
	if s.version < 3 { // a store from before approvals, read without migrating it
		return nil, fmt.Errorf("approval %s: %w", id, warden.ErrApprovalNotFound)
	}
	if s.w == nil || s.version < 4 {
		// Read-only (list, show: no key to check with), or a store from
		// before the rows were authenticated, read without migrating it.
		var body string
		err := s.read.QueryRowContext(ctx, `SELECT body FROM approvals WHERE id = ?`, id).Scan(&body)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("approval %s: %w", id, warden.ErrApprovalNotFound)
		case err != nil:
			return nil, fmt.Errorf("reading approval %s: %w", id, err)
		}
		return recorder.DecodeApproval(body)
	}
	// The row and its newest record in one snapshot, so a change
	// committed in between cannot look like a mismatch.
	var a *warden.Approval
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var body string
		var mac []byte
		err := tx.QueryRowContext(ctx, `SELECT body, mac FROM approvals WHERE id = ?`, id).Scan(&body, &mac)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("approval %s: %w", id, warden.ErrApprovalNotFound)
		case err != nil:
			return fmt.Errorf("reading approval %s: %w", id, err)
		}
		if err := s.checkApproval(ctx, tx, id, body, mac); err != nil {
			return err
		}
		a, err = recorder.DecodeApproval(body)
		return err
	})
	return a, err
}

// PendingApproval implements warden.ApprovalStore.
func (s *Store) PendingApproval(ctx context.Context, subject, callHash string, now time.Time) (*warden.Approval, error) {
	var body string
	err := s.read.QueryRowContext(ctx, `
		SELECT body FROM approvals
		WHERE status = 'pending' AND subject = ? AND call_hash = ? AND expires_at > ?
		ORDER BY created_at DESC LIMIT 1`, subject, callHash, recorder.FormatTime(now)).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading approvals: %w", err)
	}
	return recorder.DecodeApproval(body)
}

// Approvals implements warden.ApprovalStore. A store from before approvals
// existed (opened read-only, not migrated) has none.
func (s *Store) Approvals(ctx context.Context, f warden.ApprovalFilter) ([]*warden.Approval, error) {
	if s.version < 3 {
		return nil, nil
	}
	limit := -1
	if f.Limit > 0 {
		limit = f.Limit
	}
	rows, err := s.read.QueryContext(ctx, `
		SELECT body FROM approvals WHERE (?1 = '' OR status = ?1)
		ORDER BY created_at DESC, id DESC LIMIT ?2`, string(f.Status), limit)
	if err != nil {
		return nil, fmt.Errorf("listing approvals: %w", err)
	}
	defer rows.Close()
	var out []*warden.Approval
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		a, err := recorder.DecodeApproval(body)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ChangeApproval implements warden.ApprovalStore. It reads the request,
// checks the change applies, and then, in one transaction, updates the row
// only if it is still in the status it was read in (and, for approved or
// used, not expired) and appends the approval_change record. A request
// changed by someone else in between is a conflict, never a lost update.
func (s *Store) ChangeApproval(ctx context.Context, c warden.ApprovalChange) (*warden.Approval, error) {
	cur, err := s.Approval(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.From, cur.Status) {
		return nil, fmt.Errorf("approval %s is %s: %w", c.ID, cur.Status, warden.ErrApprovalConflict)
	}
	at := recorder.FormatTime(c.At)
	// Approving and using need a request that has not expired, checked
	// here and again inside the write.
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
		if from == warden.ApprovalPending { // the user's confirmation: decided and used at once
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
	err = s.append(ctx, recorder.KindApprovalChange, cur.SessionID, "", at, change, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE approvals SET status = ?, expires_at = ?, body = ?, mac = ?
			WHERE id = ? AND status = ? AND (NOT ? OR expires_at > ?)`,
			stored.Status, stored.ExpiresAt, text, recorder.ApprovalMAC(s.w.approvalKey, c.ID, text), c.ID, string(from), mustLive, at)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return refuse(fmt.Errorf("approval %s changed meanwhile: %w", c.ID, warden.ErrApprovalConflict))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording change of approval %s: %w", c.ID, err)
	}
	return &next, nil
}

// ApprovalHistory returns what the recording holds about request id, in
// order: its request, then each change.
func (s *Store) ApprovalHistory(ctx context.Context, id string) ([]recorder.ApprovalEvent, error) {
	var out []recorder.ApprovalEvent
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		return eachRow(ctx, tx, `
			SELECT seq, kind, body FROM records
			WHERE kind IN ('approval_request', 'approval_change') AND json_extract(body, '$.id') = ?
			ORDER BY seq`, []any{id}, func(sc scanner) error {
			var seq int64
			var kind, body string
			if err := sc.Scan(&seq, &kind, &body); err != nil {
				return err
			}
			if kind == recorder.KindApprovalRequest {
				var b recorder.ApprovalJSON
				if err := json.Unmarshal([]byte(body), &b); err != nil {
					return fmt.Errorf("decoding record %d: %w", seq, err)
				}
				out = append(out, recorder.ApprovalEvent{Seq: seq, Kind: "request", At: recorder.ParseTime(b.CreatedAt), To: b.Status,
					By: recorder.ApprovalFromJSON(&b).Requester, CallID: b.CallID})
				return nil
			}
			var b recorder.ApprovalChangeJSON
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				return fmt.Errorf("decoding record %d: %w", seq, err)
			}
			ev := recorder.ApprovalEvent{Seq: seq, Kind: b.To, At: recorder.ParseTime(b.At), From: b.From, To: b.To, Reason: b.Reason, CallID: b.CallID}
			if b.By != nil {
				c := recorder.CallerFromJSON(b.By)
				ev.By = &c
			}
			out = append(out, ev)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading approval history: %w", err)
	}
	return out, nil
}

var _ warden.ApprovalStore = (*Store)(nil)

// The approvals table is the state a waiting call polls, and whoever can
// write the store can write it: set a request to approved, or put back the
// approved row of a request already used. So from version 4 on, a row
// counts only if its mac (HMAC over its id and body, with a key derived
// from the signing key) verifies and the newest approval record for it in
// the chain, whose record MAC verifies too, names the same status. Both
// are written in one transaction with the row, by warden only.

// errApprovalForged is a row that does not match what warden wrote.
var errApprovalForged = fmt.Errorf("does not match what warden recorded: %w", warden.ErrApprovalForged)

// checkApproval checks row id, with the given body and mac, against its
// MAC and the newest approval record in the chain.
func (s *Store) checkApproval(ctx context.Context, tx *sql.Tx, id, body string, mac []byte) error {
	if !hmac.Equal(mac, recorder.ApprovalMAC(s.w.approvalKey, id, body)) {
		return fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	var b recorder.ApprovalJSON
	if err := jsonUnmarshal(body, &b); err != nil {
		return fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, kind,
			(session_id IS NOT NULL) | ((call_id IS NOT NULL) << 1) | ((at IS NOT NULL) << 2),
			session_id, call_id, at, body, prev_hash, hash, mac FROM records
		WHERE kind IN ('approval_request', 'approval_change') AND json_valid(body) AND json_extract(body, '$.id') = ?
		ORDER BY seq DESC LIMIT 1`, id)
	if err != nil {
		return fmt.Errorf("reading the record of approval request %s: %w", id, err)
	}
	defer rows.Close()
	r, err := (&dbSource{rows: rows, withMAC: true}).Next()
	if err != nil {
		return fmt.Errorf("reading the record of approval request %s: %w", id, err)
	}
	if r == nil {
		// Retention pruned the request's record; it was never decided
		// since (a decision is a newer record). Pending, it releases
		// nothing; anything else must have its record.
		if b.Status == string(warden.ApprovalPending) {
			return nil
		}
		return fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	var h recorder.Hasher
	computed := h.Hash(&r.Fields)
	want := ""
	switch r.Kind {
	case recorder.KindApprovalRequest:
		want = string(warden.ApprovalPending)
	case recorder.KindApprovalChange:
		var c recorder.ApprovalChangeJSON
		if json.Unmarshal(r.Body, &c) == nil {
			want = c.To
		}
	}
	if !bytes.Equal(computed[:], r.Hash) || !hmac.Equal(r.MAC, recorder.NewMacer(s.w.macKey).MAC(computed)) || want != b.Status {
		return fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	return rows.Err()
}

// migrateApprovals gives a store from before version 4 the approval
// index and a MAC for every approvals row, trusting the rows as they are
// (as the migration trusts the records it finds).
func (s *Store) migrateApprovals(ctx context.Context, tx *sql.Tx) error {
	var has int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('approvals') WHERE name = 'mac'`).Scan(&has); err != nil {
		return err
	}
	if has == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE approvals ADD COLUMN mac BLOB`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, schemaV4); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, body FROM approvals WHERE mac IS NULL`)
	if err != nil {
		return err
	}
	type row struct{ id, body string }
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.body); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	// The trigger refuses any update that does not move a request
	// forward; this one only adds its MAC. schemaApprovals puts it back.
	if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS approvals_forward`); err != nil {
		return err
	}
	for _, r := range todo {
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET mac = ? WHERE id = ?`, recorder.ApprovalMAC(s.w.approvalKey, r.id, r.body), r.id); err != nil {
			return err
		}
	}
	if _, err = tx.ExecContext(ctx, schemaApprovals); err != nil {
		return err
	}
	// A decision is checked against its newest record, whose MAC must
	// verify: the approval records found give theirs now.
	type rec struct {
		seq  int64
		hash []byte
	}
	var recs []rec
	rows, err = tx.QueryContext(ctx, `SELECT seq, hash FROM records WHERE mac IS NULL AND kind IN ('approval_request', 'approval_change')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.seq, &r.hash); err != nil {
			rows.Close()
			return err
		}
		recs = append(recs, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil || len(recs) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS records_no_update`); err != nil {
		return err
	}
	m := recorder.NewMacer(s.w.macKey)
	for _, r := range recs {
		if len(r.hash) != recorder.HashSize {
			return fmt.Errorf("record %d has a malformed hash", r.seq)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE records SET mac = ? WHERE seq = ?`, m.MAC(recorder.Digest(r.hash)), r.seq); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, recordsNoUpdate)
	return err
}
