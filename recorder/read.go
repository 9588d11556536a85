package recorder

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/warden-mcp/warden"
)

// SessionFilter selects sessions for Sessions. Zero fields do not filter.
type SessionFilter struct {
	// Subject keeps sessions whose caller, at start, had this subject.
	Subject string
	// Since keeps sessions started at or after this time.
	Since time.Time
	// Until keeps sessions started before this time.
	Until time.Time
	// Tool keeps sessions with at least one call of this tool.
	Tool string
	// Denied keeps sessions with at least one denied call.
	Denied bool
	// Limit caps the number of sessions returned; 0 means no cap.
	Limit int
}

// SessionSummary is a session folded from its records.
type SessionSummary struct {
	ID              string
	Transport       string
	ClientName      string
	ClientVersion   string
	ProtocolVersion string
	Caller          warden.Caller
	StartedAt       time.Time
	// EndedAt is nil while the session is open (or if warden stopped
	// before recording its end).
	EndedAt *time.Time
	// Calls counts every call recorded in the session, running ones too;
	// Denied and Failed count finished calls whose outcome was "denied"
	// and "error".
	Calls, Denied, Failed int
}

// CallRecord is one call folded from its records.
type CallRecord struct {
	ID        string
	SessionID string
	Tool      string
	Caller    warden.Caller
	// Args are the arguments as given, compacted; a JSON string if they
	// were not valid JSON.
	Args      json.RawMessage
	Backend   string
	Kind      string
	Statement string
	Purpose   string
	Risk      string
	Ops       []warden.Op
	Functions []string
	Decision  *warden.Decision
	// Hash and Approval: for calls an approval rule held, the call's
	// identity and what became of its approval.
	Hash     string
	Approval *warden.CallApproval
	// Flow names the flow rule or budget that refused or held the call.
	Flow *warden.CallFlow
	// Outcome is "ok", "denied", "pending" or "error"; empty while running.
	Outcome      string
	ErrorCode    string
	ErrorMessage string // as shown to the agent
	ErrorDetail  string // internal cause, recorded only
	Result       json.RawMessage
	// Detected names the value detectors that masked something.
	Detected   []string
	Count      int64
	Truncated  bool
	StartedAt  time.Time
	EndedAt    time.Time
	DurationMS float64
	// Status is "running" if only the start was recorded, else "finished".
	Status string
}

// Call statuses.
const (
	StatusRunning  = "running"
	StatusFinished = "finished"
)

// Sessions returns the sessions matching f, newest first.
func (s *Store) Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error) {
	var list []SessionSummary
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		since, until, limit := "", "", -1
		if !f.Since.IsZero() {
			since = formatTime(f.Since)
		}
		if !f.Until.IsZero() {
			until = formatTime(f.Until)
		}
		if f.Limit > 0 {
			limit = f.Limit
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT body FROM records s
			WHERE kind = 'session_start'
			  AND (?1 = '' OR json_extract(body, '$.caller.subject') = ?1)
			  AND (?2 = '' OR at >= ?2)
			  AND (?3 = '' OR at < ?3)
			  AND (?4 = '' OR EXISTS (SELECT 1 FROM records c
			        WHERE c.session_id = s.session_id AND c.kind IN ('call_start', 'call_finish')
			          AND json_extract(c.body, '$.tool') = ?4))
			  AND (NOT ?5 OR EXISTS (SELECT 1 FROM records c
			        WHERE c.session_id = s.session_id AND c.kind = 'call_finish'
			          AND json_extract(c.body, '$.outcome') = 'denied'))
			ORDER BY at DESC, seq DESC
			LIMIT ?6`, f.Subject, since, until, f.Tool, f.Denied, limit)
		if err != nil {
			return err
		}
		byID := map[string]*SessionSummary{}
		var ids []string
		for rows.Next() {
			var body string
			if err := rows.Scan(&body); err != nil {
				rows.Close()
				return err
			}
			var sum SessionSummary
			if err := foldSession(&sum, kindSessionStart, body); err != nil {
				rows.Close()
				return err
			}
			list = append(list, sum)
			ids = append(ids, sum.ID)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(list) == 0 {
			return nil
		}
		for i := range list {
			byID[list[i].ID] = &list[i]
		}
		idsJSON, _ := json.Marshal(ids) // cannot fail for strings
		if err := eachRow(ctx, tx, `
			SELECT session_id, kind, body FROM records
			WHERE session_id IN (SELECT value FROM json_each(?))
			  AND kind IN ('session_update', 'session_end')
			ORDER BY seq`, []any{string(idsJSON)}, func(sc scanner) error {
			var id, kind, body string
			if err := sc.Scan(&id, &kind, &body); err != nil {
				return err
			}
			return foldSession(byID[id], kind, body)
		}); err != nil {
			return err
		}
		return eachRow(ctx, tx, `
			SELECT session_id, count(DISTINCT call_id),
			       total(kind = 'call_finish' AND json_extract(body, '$.outcome') = 'denied'),
			       total(kind = 'call_finish' AND json_extract(body, '$.outcome') = 'error')
			FROM records
			WHERE session_id IN (SELECT value FROM json_each(?))
			  AND kind IN ('call_start', 'call_finish')
			GROUP BY session_id`, []any{string(idsJSON)}, func(sc scanner) error {
			var id string
			var calls int
			var denied, failed float64
			if err := sc.Scan(&id, &calls, &denied, &failed); err != nil {
				return err
			}
			sum := byID[id]
			sum.Calls, sum.Denied, sum.Failed = calls, int(denied), int(failed)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return list, nil
}

// Session returns one session and its calls, in the order they started. It
// returns an error wrapping ErrNotFound if nothing was recorded under id. A
// session whose calls were recorded but whose start was not is returned
// with only its id and counts.
func (s *Store) Session(ctx context.Context, id string) (*SessionSummary, []CallRecord, error) {
	sum := &SessionSummary{ID: id}
	var calls []CallRecord
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		found := false
		if err := eachRow(ctx, tx, `
			SELECT kind, body FROM records
			WHERE session_id = ? AND kind IN ('session_start', 'session_update', 'session_end')
			ORDER BY seq`, []any{id}, func(sc scanner) error {
			var kind, body string
			if err := sc.Scan(&kind, &body); err != nil {
				return err
			}
			found = true
			return foldSession(sum, kind, body)
		}); err != nil {
			return err
		}
		var err error
		if calls, err = readCalls(ctx, tx, id); err != nil {
			return err
		}
		if !found && len(calls) == 0 {
			return fmt.Errorf("session %s: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading session: %w", err)
	}
	for _, c := range calls {
		sum.Calls++
		switch c.Outcome {
		case "denied":
			sum.Denied++
		case "error":
			sum.Failed++
		}
	}
	return sum, calls, nil
}

// Calls returns the calls of one session, or of all sessions (and calls
// made outside any session) when sessionID is "", in the order they
// started.
func (s *Store) Calls(ctx context.Context, sessionID string) ([]CallRecord, error) {
	var calls []CallRecord
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		calls, err = readCalls(ctx, tx, sessionID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading calls: %w", err)
	}
	return calls, nil
}

// readTx runs fn in a read transaction, so that everything fn reads comes
// from one snapshot of the log.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

type scanner interface{ Scan(dest ...any) error }

func eachRow(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(scanner) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// foldSession applies one session record to sum.
func foldSession(sum *SessionSummary, kind, body string) error {
	var b sessionJSON
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return fmt.Errorf("decoding %s record of session %s: %w", kind, sum.ID, err)
	}
	switch kind {
	case kindSessionStart:
		sum.ID = b.ID
		sum.Transport = b.Transport
		sum.ClientName = b.ClientName
		sum.ClientVersion = b.ClientVersion
		sum.ProtocolVersion = b.ProtocolVersion
		sum.Caller = callerFromJSON(b.Caller)
		sum.StartedAt = parseTime(b.StartedAt)
	case kindSessionUpdate:
		sum.ClientName = cmp.Or(b.ClientName, sum.ClientName)
		sum.ClientVersion = cmp.Or(b.ClientVersion, sum.ClientVersion)
		sum.ProtocolVersion = cmp.Or(b.ProtocolVersion, sum.ProtocolVersion)
	case kindSessionEnd:
		t := parseTime(b.EndedAt)
		sum.EndedAt = &t
	}
	return nil
}

// readCalls folds the call records of one session (all when sessionID is
// "") into calls: a call_finish record wins, taking the arguments and the
// action from the call_start when it says they are there; a call with only
// a call_start is running.
func readCalls(ctx context.Context, tx *sql.Tx, sessionID string) ([]CallRecord, error) {
	query := `SELECT seq, kind, body FROM records WHERE session_id = ? AND call_id IS NOT NULL AND kind IN ('call_start', 'call_finish') ORDER BY seq`
	args := []any{sessionID}
	if sessionID == "" {
		query = `SELECT seq, kind, body FROM records WHERE call_id IS NOT NULL AND kind IN ('call_start', 'call_finish') ORDER BY seq`
		args = nil
	}
	type entry struct {
		first int64
		rec   CallRecord
	}
	var order []*entry
	byID := map[string]*entry{}
	err := eachRow(ctx, tx, query, args, func(sc scanner) error {
		var seq int64
		var kind, body string
		if err := sc.Scan(&seq, &kind, &body); err != nil {
			return err
		}
		var b callJSON
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			return fmt.Errorf("decoding record %d: %w", seq, err)
		}
		e := byID[b.ID]
		if e == nil {
			e = &entry{first: seq}
			byID[b.ID] = e
			order = append(order, e)
		}
		switch kind {
		case kindCallStart:
			if e.rec.Status == "" {
				e.rec = callFromJSON(&b, StatusRunning)
			}
		case kindCallFinish:
			rec := callFromJSON(&b, StatusFinished)
			if b.ArgsIn == kindCallStart {
				// The arguments and action are in the call's start.
				rec.Args, rec.Backend, rec.Kind, rec.Statement, rec.Purpose, rec.Functions, rec.Ops =
					e.rec.Args, e.rec.Backend, e.rec.Kind, e.rec.Statement, e.rec.Purpose, e.rec.Functions, e.rec.Ops
			}
			e.rec = rec
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(order, func(a, b *entry) int {
		return cmp.Or(a.rec.StartedAt.Compare(b.rec.StartedAt), cmp.Compare(a.first, b.first))
	})
	calls := make([]CallRecord, len(order))
	for i, e := range order {
		calls[i] = e.rec
	}
	return calls, nil
}

func callFromJSON(b *callJSON, status string) CallRecord {
	r := CallRecord{
		ID:         b.ID,
		SessionID:  b.SessionID,
		Tool:       b.Tool,
		Caller:     callerFromJSON(b.Caller),
		Args:       b.Args,
		Risk:       b.Risk,
		Outcome:    b.Outcome,
		Result:     b.Result,
		Detected:   b.Detected,
		Count:      b.Count,
		Truncated:  b.Truncated,
		StartedAt:  parseTime(b.StartedAt),
		EndedAt:    parseTime(b.EndedAt),
		DurationMS: b.DurationMS,
		Status:     status,
	}
	if a := b.Action; a != nil {
		r.Backend, r.Kind, r.Statement, r.Purpose, r.Functions = a.Backend, a.Kind, a.Statement, a.Purpose, a.Functions
		for _, op := range a.Ops {
			r.Ops = append(r.Ops, warden.Op{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
		}
	}
	if a := b.Approval; a != nil {
		r.Hash = b.Hash
		r.Approval = &warden.CallApproval{ID: a.ID, Rule: a.Rule, Via: a.Via, Status: warden.ApprovalStatus(a.Status),
			DecidedBy: a.DecidedBy, Reason: a.Reason, Note: a.Note}
	}
	if f := b.Flow; f != nil {
		r.Flow = &warden.CallFlow{Rule: f.Rule, SourceCall: f.SourceCall, Argument: f.Argument}
	}
	if d := b.Decision; d != nil {
		r.Decision = &warden.Decision{Effect: warden.Effect(d.Effect), Rule: d.Rule, Reasons: d.Reasons, Allowed: d.Allowed}
	}
	if e := b.Error; e != nil {
		r.ErrorCode, r.ErrorMessage, r.ErrorDetail = e.Code, e.Message, e.Detail
	}
	return r
}

func callerFromJSON(c *callerJSON) warden.Caller {
	if c == nil {
		return warden.Caller{}
	}
	return warden.Caller{Subject: c.Subject, Issuer: c.Issuer, Email: c.Email, Groups: c.Groups, Method: c.Method}
}

// parseTime reads a recorded time; "" (and anything unparsable, which this
// package never writes) is the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
