package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/warden-mcp/warden/recorder"
)

// Sessions returns the sessions matching f, newest first.
func (s *Store) Sessions(ctx context.Context, f recorder.SessionFilter) ([]recorder.SessionSummary, error) {
	var list []recorder.SessionSummary
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		since, until, limit := "", "", -1
		if !f.Since.IsZero() {
			since = recorder.FormatTime(f.Since)
		}
		if !f.Until.IsZero() {
			until = recorder.FormatTime(f.Until)
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
		byID := map[string]*recorder.SessionSummary{}
		var ids []string
		for rows.Next() {
			var body string
			if err := rows.Scan(&body); err != nil {
				rows.Close()
				return err
			}
			var sum recorder.SessionSummary
			if err := recorder.FoldSession(&sum, recorder.KindSessionStart, body); err != nil {
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
			return recorder.FoldSession(byID[id], kind, body)
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
func (s *Store) Session(ctx context.Context, id string) (*recorder.SessionSummary, []recorder.CallRecord, error) {
	sum := &recorder.SessionSummary{ID: id}
	var calls []recorder.CallRecord
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
			return recorder.FoldSession(sum, kind, body)
		}); err != nil {
			return err
		}
		var err error
		if calls, err = readCalls(ctx, tx, id); err != nil {
			return err
		}
		if !found && len(calls) == 0 {
			return fmt.Errorf("session %s: %w", id, recorder.ErrNotFound)
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
func (s *Store) Calls(ctx context.Context, sessionID string) ([]recorder.CallRecord, error) {
	var calls []recorder.CallRecord
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

// readCalls folds the call records of one session (all when sessionID is
// "") into calls: a call_finish record wins, taking the arguments and the
// action from the call_start when it says they are there; a call with only
// a call_start is running.
func readCalls(ctx context.Context, tx *sql.Tx, sessionID string) ([]recorder.CallRecord, error) {
	query := `SELECT seq, kind, body FROM records WHERE session_id = ? AND call_id IS NOT NULL AND kind IN ('call_start', 'call_finish') ORDER BY seq`
	args := []any{sessionID}
	if sessionID == "" {
		query = `SELECT seq, kind, body FROM records WHERE call_id IS NOT NULL AND kind IN ('call_start', 'call_finish') ORDER BY seq`
		args = nil
	}
	type entry struct {
		first int64
		rec   recorder.CallRecord
	}
	var order []*entry
	byID := map[string]*entry{}
	err := eachRow(ctx, tx, query, args, func(sc scanner) error {
		var seq int64
		var kind, body string
		if err := sc.Scan(&seq, &kind, &body); err != nil {
			return err
		}
		var b recorder.CallJSON
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
		case recorder.KindCallStart:
			if e.rec.Status == "" {
				e.rec = recorder.CallFromJSON(&b, recorder.StatusRunning)
			}
		case recorder.KindCallFinish:
			rec := recorder.CallFromJSON(&b, recorder.StatusFinished)
			if b.ArgsIn == recorder.KindCallStart {
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
	calls := make([]recorder.CallRecord, len(order))
	for i, e := range order {
		calls[i] = e.rec
	}
	return calls, nil
}
