package postgres

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden/recorder"
)

const selectRecords = `SELECT seq, kind, session_id, call_id, at, body, prev_hash, hash, mac FROM records`

// rowSource yields records of one chain as recorder.Rows.
type rowSource struct{ rows pgx.Rows }

func (d *rowSource) Next() (*recorder.Row, error) {
	if !d.rows.Next() {
		return nil, d.rows.Err()
	}
	r := &recorder.Row{}
	var sid, cid, at *string
	var body string
	var prev []byte
	if err := d.rows.Scan(&r.Seq, &r.Kind, &sid, &cid, &at, &body, &prev, &r.Hash, &r.MAC); err != nil {
		return nil, err
	}
	if sid != nil {
		r.SessionID, r.HasSession = *sid, true
	}
	if cid != nil {
		r.CallID, r.HasCall = *cid, true
	}
	if at != nil {
		r.At, r.HasAt = *at, true
	}
	r.BodyHash = sha256.Sum256([]byte(body))
	if r.Kind == recorder.KindCheckpoint || r.Kind == recorder.KindPrune || r.Kind == recorder.KindApprovalChange {
		r.Body = []byte(body)
	}
	copy(r.PrevHash[:], prev)
	if len(prev) != recorder.HashSize {
		r.PrevHash[0] ^= 0xff
	}
	return r, nil
}

// readHead returns instance's signed head, checked with key, or nil if it
// has none.
func readHead(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, instance string, key ed25519.PublicKey) (*recorder.Head, error) {
	var seq int64
	var hash, sig []byte
	var at string
	err := q.QueryRow(ctx, `SELECT seq, hash, at, sig FROM heads WHERE instance = $1`, instance).Scan(&seq, &hash, &at, &sig)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr("reading the signed head", err)
	}
	if len(hash) != recorder.HashSize || key == nil || !ed25519.Verify(key, recorder.HeadMessage(seq, at, recorder.Digest(hash)), sig) {
		return nil, fmt.Errorf("instance %s's signed head does not verify with key %s: it was altered", instance, recorder.FormatPublicKey(key))
	}
	return &recorder.Head{Seq: seq, Hash: recorder.Digest(hash), At: at, Key: key}, nil
}

// Audit verifies every instance's chain in one snapshot: its links,
// checkpoints (signed by opts.Key, or the shared key file), its signed
// head and, unless the key came from outside, its record MACs.
func (s *Store) Audit(ctx context.Context, opts recorder.AuditOptions) (*recorder.VerifyReport, error) {
	key := opts.Key
	var macKey []byte
	if !opts.KeyGiven && s.macKey != nil {
		macKey = s.macKey
	}
	if key == nil && s.key != nil {
		key = s.key.Public().(ed25519.PublicKey)
	}
	total := &recorder.VerifyReport{Key: key}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var instances []string
		rows, err := tx.Query(ctx, `SELECT DISTINCT instance FROM records ORDER BY instance`)
		if err != nil {
			return err
		}
		if instances, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, inst := range instances {
			head, err := readHead(ctx, tx, inst, key)
			if err != nil {
				return err
			}
			if head == nil {
				return &recorder.ChainError{Instance: inst, Tamper: recorder.Truncated, Detail: "has no signed head, so nothing shows the chain's newest records are all there"}
			}
			rows, err := tx.Query(ctx, selectRecords+` WHERE instance = $1 ORDER BY seq`, inst)
			if err != nil {
				return err
			}
			rep, err := recorder.VerifyChain(&rowSource{rows: rows}, recorder.VerifyOptions{Key: key, Head: head, MACKey: macKey})
			rows.Close()
			if err != nil {
				var ce *recorder.ChainError
				if errors.As(err, &ce) {
					ce.Instance = inst
				}
				return err
			}
			total.Chains = append(total.Chains, recorder.ChainReport{Instance: inst, VerifyReport: rep})
			total.Records += rep.Records
			total.Checkpoints += rep.Checkpoints
			total.MACs += rep.MACs
			total.Unsigned += rep.Unsigned
			total.KeyFromChain = total.KeyFromChain || rep.KeyFromChain
			if total.Key == nil {
				total.Key = rep.Key
			}
		}
		return nil
	})
	var ce *recorder.ChainError
	if errors.As(err, &ce) {
		return total, ce
	}
	if err != nil {
		return total, dbErr("verifying the chains", err)
	}
	return total, nil
}

// Reseal is not offered for a PostgreSQL store: its heads are written in
// the transaction that extends each chain, so no crash leaves one behind.
func (s *Store) Reseal(ctx context.Context) (*recorder.VerifyReport, *recorder.Head, error) {
	return nil, nil, errors.New("a PostgreSQL store's heads are committed with its records; there is nothing to reseal")
}

// Export is not offered for a PostgreSQL store yet.
func (s *Store) Export(ctx context.Context, w io.Writer, since time.Time) (int64, error) {
	return 0, errors.New("export of a PostgreSQL store is not supported yet")
}

// Prune removes this instance's records before its newest checkpoint
// older than cutoff, which then anchors its chain, and appends a prune
// record that a checkpoint signs at once; decided approval requests made
// before cutoff go too. Each instance prunes its own chain (a chain is
// only ever written by its instance).
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (recorder.Pruned, error) {
	w, err := s.writable()
	if err != nil {
		return recorder.Pruned{}, err
	}
	stamp := recorder.FormatTime(cutoff)
	var target, n int64
	err = s.pool.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM records WHERE instance = $1 AND kind = 'checkpoint' AND at < $2`, s.instance, stamp).Scan(&target)
	if err == nil && target > 0 {
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM records WHERE instance = $1 AND seq < $2`, s.instance, target).Scan(&n)
	}
	if err != nil {
		return recorder.Pruned{}, dbErr("pruning the recording", err)
	}
	if n > 0 {
		body, err := recorder.Encode(recorder.PruneJSON{Before: target, Cutoff: stamp, Records: n})
		if err != nil {
			return recorder.Pruned{}, err
		}
		p := newPending(recorder.KindPrune, "", "", recorder.FormatTime(s.clock()), body)
		p.sign = true
		p.check = func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO horizon (instance, seq) VALUES ($1, $2)
				ON CONFLICT (instance) DO UPDATE SET seq = greatest(horizon.seq, excluded.seq)`, s.instance, target); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM records WHERE instance = $1 AND seq < $2`, s.instance, target)
			if err == nil && tag.RowsAffected() != n {
				err = refuse(errors.New("the records to prune changed meanwhile; try again"))
			}
			return err
		}
		if err := w.append(ctx, p); err != nil {
			return recorder.Pruned{}, fmt.Errorf("pruning the recording: %w", err)
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM approvals WHERE created_at < $1 AND status IN ('denied', 'expired', 'used')`, stamp); err != nil {
		return recorder.Pruned{Records: n, Anchor: target}, dbErr("pruning approval requests", err)
	}
	return recorder.Pruned{Records: n, Anchor: target}, nil
}

// Retain prunes records older than keep every RetainInterval until ctx
// ends or the store closes.
func (s *Store) Retain(ctx context.Context, keep time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(recorder.RetainInterval)
	defer t.Stop()
	for {
		cutoff := s.clock().Add(-keep)
		p, err := s.Prune(ctx, cutoff)
		switch {
		case errors.Is(err, errClosed), ctx.Err() != nil:
			return
		case err != nil:
			log.Error("retention: pruning failed; records are kept", "err", err)
		case p.Records > 0:
			log.Info("retention: pruned the recording", "instance", s.instance, "records", p.Records, "anchor", p.Anchor)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-t.C:
		}
	}
}

// Sessions returns the sessions matching f, newest first.
func (s *Store) Sessions(ctx context.Context, f recorder.SessionFilter) ([]recorder.SessionSummary, error) {
	since, until := "", ""
	if !f.Since.IsZero() {
		since = recorder.FormatTime(f.Since)
	}
	if !f.Until.IsZero() {
		until = recorder.FormatTime(f.Until)
	}
	var limit *int
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := s.pool.Query(ctx, `
		SELECT session_id FROM records r
		WHERE kind = 'session_start'
		  AND ($1 = '' OR body::jsonb->'caller'->>'subject' = $1)
		  AND ($2 = '' OR at >= $2) AND ($3 = '' OR at < $3)
		  AND ($4 = '' OR EXISTS (SELECT 1 FROM records c WHERE c.session_id = r.session_id
		        AND c.kind IN ('call_start', 'call_finish') AND c.body::jsonb->>'tool' = $4))
		  AND (NOT $5 OR EXISTS (SELECT 1 FROM records c WHERE c.session_id = r.session_id
		        AND c.kind = 'call_finish' AND c.body::jsonb->>'outcome' = 'denied'))
		ORDER BY at DESC, instance, seq DESC LIMIT $6`, f.Subject, since, until, f.Tool, f.Denied, limit)
	if err != nil {
		return nil, dbErr("listing sessions", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("listing sessions", err)
	}
	list := make([]recorder.SessionSummary, 0, len(ids))
	for _, id := range ids {
		sum, _, err := s.session(ctx, id, false)
		if err != nil {
			return nil, err
		}
		list = append(list, *sum)
	}
	return list, nil
}

// Session returns one session and its calls.
func (s *Store) Session(ctx context.Context, id string) (*recorder.SessionSummary, []recorder.CallRecord, error) {
	return s.session(ctx, id, true)
}

func (s *Store) session(ctx context.Context, id string, withCalls bool) (*recorder.SessionSummary, []recorder.CallRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, body FROM records WHERE session_id = $1
		AND kind IN ('session_start', 'session_update', 'session_end') ORDER BY kind = 'session_start' DESC, instance, seq`, id)
	if err != nil {
		return nil, nil, dbErr("reading session", err)
	}
	sum := &recorder.SessionSummary{ID: id}
	n := 0
	for rows.Next() {
		var kind, body string
		if err := rows.Scan(&kind, &body); err != nil {
			rows.Close()
			return nil, nil, dbErr("reading session", err)
		}
		if err := recorder.FoldSession(sum, kind, body); err != nil {
			rows.Close()
			return nil, nil, err
		}
		n++
	}
	rows.Close()
	calls, err := s.Calls(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && len(calls) == 0 {
		return nil, nil, fmt.Errorf("session %s: %w", id, recorder.ErrNotFound)
	}
	sum.Calls = len(calls)
	for _, c := range calls {
		switch {
		case c.Status != recorder.StatusFinished:
		case c.Outcome == "denied":
			sum.Denied++
		case c.Outcome == "error":
			sum.Failed++
		}
	}
	if !withCalls {
		calls = nil
	}
	return sum, calls, nil
}

// Calls folds the call records of one session (all when sessionID is "").
func (s *Store) Calls(ctx context.Context, sessionID string) ([]recorder.CallRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, body FROM records
		WHERE ($1 = '' OR session_id = $1) AND call_id IS NOT NULL AND kind IN ('call_start', 'call_finish')
		ORDER BY kind = 'call_start' DESC, at, instance, seq`, sessionID)
	if err != nil {
		return nil, dbErr("reading calls", err)
	}
	defer rows.Close()
	type entry struct {
		first int
		rec   recorder.CallRecord
	}
	var order []*entry
	byID := map[string]*entry{}
	for rows.Next() {
		var kind, body string
		if err := rows.Scan(&kind, &body); err != nil {
			return nil, dbErr("reading calls", err)
		}
		var b recorder.CallJSON
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			return nil, fmt.Errorf("decoding a %s record: %w", kind, err)
		}
		e := byID[b.ID]
		if e == nil {
			e = &entry{first: len(order)}
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
				rec.Args, rec.Backend, rec.Kind, rec.Statement, rec.Purpose, rec.Functions, rec.Ops =
					e.rec.Args, e.rec.Backend, e.rec.Kind, e.rec.Statement, e.rec.Purpose, e.rec.Functions, e.rec.Ops
			}
			e.rec = rec
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("reading calls", err)
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
