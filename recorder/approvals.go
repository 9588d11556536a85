package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warden-mcp/warden"
)

// Record kinds of the approval workflow. A request is recorded when it is
// made; every change of it (a decision, its use, its expiry) is recorded
// when it happens, in the same transaction as the change to the approvals
// table, so the table never says what the chain does not.
const (
	kindApprovalRequest = "approval_request"
	kindApprovalChange  = "approval_change"
)

// approvalJSON is an approval request as stored: in approval_request
// records and in the approvals table's body column.
type approvalJSON struct {
	ID            string      `json:"id"`
	Rule          string      `json:"rule"`
	Via           string      `json:"via"`
	Approvers     approversJS `json:"approvers"`
	Requester     *callerJSON `json:"requester"`
	SessionID     string      `json:"session_id,omitempty"`
	CallID        string      `json:"call_id"`
	Tool          string      `json:"tool"`
	CallHash      string      `json:"call_hash"`
	Backend       string      `json:"backend"`
	Kind          string      `json:"kind"`
	Statement     string      `json:"statement"`
	Params        []string    `json:"params,omitempty"`
	Purpose       string      `json:"purpose,omitempty"`
	Ops           []opJSON    `json:"ops,omitempty"`
	EstimatedRows *int64      `json:"estimated_rows,omitempty"`
	Status        string      `json:"status"`
	CreatedAt     string      `json:"created_at"`
	ExpiresAt     string      `json:"expires_at"`
	TimeoutMS     int64       `json:"timeout_ms"`
	DecidedBy     *callerJSON `json:"decided_by,omitempty"`
	DecidedAt     string      `json:"decided_at,omitempty"`
	Reason        string      `json:"reason,omitempty"`
	UsedBy        string      `json:"used_by,omitempty"`
	UsedAt        string      `json:"used_at,omitempty"`
	// Preview is the write preview (issue 17); its digest binds the
	// approval to the rows previewed. Stored as warden defines it.
	Preview *warden.WritePreview `json:"preview,omitempty"`
}

type approversJS struct {
	User     bool     `json:"user,omitempty"`
	Subjects []string `json:"subjects,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// approvalChangeJSON is the body of an approval_change record: which
// request, from and to which status, who, why, when, and the call it
// released.
type approvalChangeJSON struct {
	ID        string      `json:"id"`
	Rule      string      `json:"rule"`
	CallHash  string      `json:"call_hash"`
	From      string      `json:"from"`
	To        string      `json:"to"`
	By        *callerJSON `json:"by,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	At        string      `json:"at"`
	ExpiresAt string      `json:"expires_at,omitempty"`
	CallID    string      `json:"call_id,omitempty"`
}

func approvalToJSON(a *warden.Approval) *approvalJSON {
	b := &approvalJSON{
		ID: a.ID, Rule: a.Rule, Via: a.Via,
		Approvers: approversJS{User: a.Approvers.User, Subjects: a.Approvers.Subjects, Groups: a.Approvers.Groups},
		Requester: callerToJSON(a.Requester), SessionID: a.SessionID, CallID: a.CallID,
		Tool: a.Tool, CallHash: a.CallHash, Backend: a.Backend, Kind: a.Kind, Statement: a.Statement, Params: a.Params,
		Purpose: a.Purpose, EstimatedRows: a.EstimatedRows, Status: string(a.Status),
		CreatedAt: formatTime(a.CreatedAt), ExpiresAt: formatTime(a.ExpiresAt), TimeoutMS: a.Timeout.Milliseconds(),
		DecidedBy: callerToJSON(a.DecidedBy), Reason: a.Reason, UsedBy: a.UsedBy,
		Preview: a.Preview,
	}
	for _, op := range a.Ops {
		b.Ops = append(b.Ops, opJSON{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
	}
	if !a.DecidedAt.IsZero() {
		b.DecidedAt = formatTime(a.DecidedAt)
	}
	if !a.UsedAt.IsZero() {
		b.UsedAt = formatTime(a.UsedAt)
	}
	return b
}

func approvalFromJSON(b *approvalJSON) *warden.Approval {
	a := &warden.Approval{
		ID: b.ID, Rule: b.Rule, Via: b.Via,
		Approvers: warden.Approvers{User: b.Approvers.User, Subjects: b.Approvers.Subjects, Groups: b.Approvers.Groups},
		SessionID: b.SessionID, CallID: b.CallID, Tool: b.Tool, CallHash: b.CallHash,
		Backend: b.Backend, Kind: b.Kind, Statement: b.Statement, Params: b.Params, Purpose: b.Purpose, EstimatedRows: b.EstimatedRows,
		Status: warden.ApprovalStatus(b.Status), CreatedAt: parseTime(b.CreatedAt), ExpiresAt: parseTime(b.ExpiresAt),
		Timeout: time.Duration(b.TimeoutMS) * time.Millisecond, DecidedAt: parseTime(b.DecidedAt),
		Reason: b.Reason, UsedBy: b.UsedBy, UsedAt: parseTime(b.UsedAt),
		Preview: b.Preview,
	}
	if b.Requester != nil {
		c := callerFromJSON(b.Requester)
		a.Requester = &c
	}
	if b.DecidedBy != nil {
		c := callerFromJSON(b.DecidedBy)
		a.DecidedBy = &c
	}
	for _, op := range b.Ops {
		a.Ops = append(a.Ops, warden.Op{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
	}
	return a
}

// CreateApproval implements warden.ApprovalStore: it inserts the request
// and appends its approval_request record in one transaction.
func (s *Store) CreateApproval(ctx context.Context, a *warden.Approval) error {
	if a == nil || a.ID == "" || a.Requester == nil || a.CallHash == "" {
		return errors.New("recording approval request: it has no id, requester or call hash")
	}
	body := approvalToJSON(a)
	text, err := encode(body)
	if err != nil {
		return fmt.Errorf("encoding approval request: %w", err)
	}
	err = s.append(ctx, kindApprovalRequest, a.SessionID, "", body.CreatedAt, body, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, status, subject, call_hash, created_at, expires_at, body, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, body.Status, a.Requester.Subject, a.CallHash, body.CreatedAt, body.ExpiresAt, text, approvalMAC(s.w.approvalKey, a.ID, text))
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
		return decodeApproval(body)
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
		a, err = decodeApproval(body)
		return err
	})
	return a, err
}

func decodeApproval(body string) (*warden.Approval, error) {
	var b approvalJSON
	if err := jsonUnmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("decoding approval: %w", err)
	}
	return approvalFromJSON(&b), nil
}

// PendingApproval implements warden.ApprovalStore.
func (s *Store) PendingApproval(ctx context.Context, subject, callHash string, now time.Time) (*warden.Approval, error) {
	var body string
	err := s.read.QueryRowContext(ctx, `
		SELECT body FROM approvals
		WHERE status = 'pending' AND subject = ? AND call_hash = ? AND expires_at > ?
		ORDER BY created_at DESC LIMIT 1`, subject, callHash, formatTime(now)).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading approvals: %w", err)
	}
	return decodeApproval(body)
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
		a, err := decodeApproval(body)
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
	at := formatTime(c.At)
	// Approving and using need a request that has not expired, checked
	// here and again inside the write.
	mustLive := c.To == warden.ApprovalApproved || c.To == warden.ApprovalUsed
	if mustLive && !c.At.Before(cur.ExpiresAt) {
		return nil, fmt.Errorf("approval %s expired at %s: %w", c.ID, formatTime(cur.ExpiresAt), warden.ErrApprovalConflict)
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
	stored := approvalToJSON(&next)
	text, err := encode(stored)
	if err != nil {
		return nil, fmt.Errorf("encoding approval: %w", err)
	}
	change := approvalChangeJSON{ID: c.ID, Rule: cur.Rule, CallHash: cur.CallHash, From: string(from), To: string(c.To),
		By: callerToJSON(c.By), Reason: c.Reason, At: at, CallID: c.CallID}
	if !c.ExpiresAt.IsZero() {
		change.ExpiresAt = formatTime(c.ExpiresAt)
	}
	err = s.append(ctx, kindApprovalChange, cur.SessionID, "", at, change, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE approvals SET status = ?, expires_at = ?, body = ?, mac = ?
			WHERE id = ? AND status = ? AND (NOT ? OR expires_at > ?)`,
			stored.Status, stored.ExpiresAt, text, approvalMAC(s.w.approvalKey, c.ID, text), c.ID, string(from), mustLive, at)
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

// ApprovalEvent is one record of an approval request's history.
type ApprovalEvent struct {
	Seq  int64
	Kind string // "request" or the status it moved to
	At   time.Time
	// From and To are the statuses a change moved between; By, Reason
	// and CallID what it recorded.
	From, To string
	By       *warden.Caller
	Reason   string
	CallID   string
}

// ApprovalHistory returns what the recording holds about request id, in
// order: its request, then each change.
func (s *Store) ApprovalHistory(ctx context.Context, id string) ([]ApprovalEvent, error) {
	var out []ApprovalEvent
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
			if kind == kindApprovalRequest {
				var b approvalJSON
				if err := json.Unmarshal([]byte(body), &b); err != nil {
					return fmt.Errorf("decoding record %d: %w", seq, err)
				}
				out = append(out, ApprovalEvent{Seq: seq, Kind: "request", At: parseTime(b.CreatedAt), To: b.Status,
					By: approvalFromJSON(&b).Requester, CallID: b.CallID})
				return nil
			}
			var b approvalChangeJSON
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				return fmt.Errorf("decoding record %d: %w", seq, err)
			}
			ev := ApprovalEvent{Seq: seq, Kind: b.To, At: parseTime(b.At), From: b.From, To: b.To, Reason: b.Reason, CallID: b.CallID}
			if b.By != nil {
				c := callerFromJSON(b.By)
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

// approvalMAC returns the MAC of an approvals row.
func approvalMAC(key []byte, id, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("warden/approval/v1\x00"))
	m.Write(appendString(nil, id))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// approvalKey is the key of the approvals rows' MACs.
func approvalKey(key ed25519.PrivateKey) []byte { return derive(key, "approval-mac/v1", sha256.Size) }

// errApprovalForged is a row that does not match what warden wrote.
var errApprovalForged = fmt.Errorf("does not match what warden recorded: %w", warden.ErrApprovalForged)

// checkApproval checks row id, with the given body and mac, against its
// MAC and the newest approval record in the chain.
func (s *Store) checkApproval(ctx context.Context, tx *sql.Tx, id, body string, mac []byte) error {
	if !hmac.Equal(mac, approvalMAC(s.w.approvalKey, id, body)) {
		return fmt.Errorf("approval request %s %w", id, errApprovalForged)
	}
	var b approvalJSON
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
	r, err := (&dbSource{rows: rows, withMAC: true}).next()
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
	var h hasher
	computed := h.hash(&r.fields)
	want := ""
	switch r.kind {
	case kindApprovalRequest:
		want = string(warden.ApprovalPending)
	case kindApprovalChange:
		var c approvalChangeJSON
		if json.Unmarshal(r.body, &c) == nil {
			want = c.To
		}
	}
	if !bytes.Equal(computed[:], r.hash) || !hmac.Equal(r.mac, newMacer(s.w.macKey).mac(computed)) || want != b.Status {
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
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET mac = ? WHERE id = ?`, approvalMAC(s.w.approvalKey, r.id, r.body), r.id); err != nil {
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
	m := newMacer(s.w.macKey)
	for _, r := range recs {
		if len(r.hash) != hashSize {
			return fmt.Errorf("record %d has a malformed hash", r.seq)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE records SET mac = ? WHERE seq = ?`, m.mac(digest(r.hash)), r.seq); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, recordsNoUpdate)
	return err
}
