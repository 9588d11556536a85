package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warden-mcp/warden/recorder"
)

// pruneChunk bounds the records one prune transaction deletes, so calls
// waiting to be recorded are never held up for long.
var pruneChunk int64 = 50000

// Prune deletes the records written before cutoff, keeping the chain
// verifiable: it only ever deletes a prefix of the chain that ends just
// before a checkpoint, the newest one stamped before cutoff. That
// checkpoint, which stays, signs the hash of the last deleted record and
// so anchors the first kept one. Each step also appends a prune record
// (which the next checkpoint, written at once, signs), so verify can tell
// retention from a deletion.
//
// A session that began before cutoff and went on after it keeps its later
// records; Session then shows it without its start (as for any session
// whose start is not recorded).
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (recorder.Pruned, error) {
	w, err := s.writable()
	if err != nil {
		return recorder.Pruned{}, err
	}
	// The target is fixed first: the checkpoints pruning itself writes
	// must not become targets, even with a cutoff in the future.
	stamp := recorder.FormatTime(cutoff)
	var target sql.NullInt64
	err = w.do(ctx, func(ctx context.Context) error {
		return w.db.QueryRowContext(ctx, `SELECT max(seq) FROM records WHERE kind = 'checkpoint' AND at < ?`, stamp).Scan(&target)
	})
	if err != nil || !target.Valid {
		return recorder.Pruned{}, err
	}
	var total recorder.Pruned
	for {
		var step recorder.Pruned
		err := w.do(ctx, func(ctx context.Context) error {
			return w.run(w.reloaded(func(ctx context.Context, tx *sql.Tx) error {
				var err error
				step, err = w.pruneStep(ctx, tx, target.Int64, stamp)
				return err
			}))
		})
		if err != nil {
			return total, fmt.Errorf("pruning the recording: %w", err)
		}
		if step.Records == 0 {
			// Approval requests decided before the cutoff go with their
			// records; pending and approved ones stay until they end.
			err := w.do(ctx, func(ctx context.Context) error {
				_, err := w.db.ExecContext(ctx, `DELETE FROM approvals WHERE created_at < ? AND status IN ('denied', 'expired', 'used')`, stamp)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("pruning approval requests: %w", err)
			}
			return total, nil
		}
		total.Records += step.Records
		total.Anchor = step.Anchor
	}
}

// pruneStep deletes, inside tx, at most about pruneChunk records before
// the checkpoint target.
func (w *writer) pruneStep(ctx context.Context, tx *sql.Tx, target int64, cutoff string) (recorder.Pruned, error) {
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM records`).Scan(&first); err != nil || !first.Valid {
		return recorder.Pruned{}, err
	}
	if target <= first.Int64 {
		return recorder.Pruned{}, nil
	}
	// The anchor of this step: the newest checkpoint within a chunk of
	// the start, or, if there is none, the first one after it.
	var anchor sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM records WHERE kind = 'checkpoint' AND seq > ?1 AND seq <= min(?2, ?1 + ?3)`,
		first.Int64, target, pruneChunk).Scan(&anchor); err != nil {
		return recorder.Pruned{}, err
	}
	if !anchor.Valid {
		if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM records WHERE kind = 'checkpoint' AND seq > ? AND seq <= ?`,
			first.Int64, target).Scan(&anchor); err != nil {
			return recorder.Pruned{}, err
		}
	}
	if !anchor.Valid {
		return recorder.Pruned{}, errors.New("no checkpoint to anchor the pruned chain") // cannot happen: target is one
	}
	n := anchor.Int64 - first.Int64
	body, err := recorder.Encode(recorder.PruneJSON{Before: anchor.Int64, Cutoff: cutoff, Records: n})
	if err != nil {
		return recorder.Pruned{}, err
	}
	ins := tx.StmtContext(ctx, w.insert)
	if err := w.appendTx(ctx, tx, ins, newPending(recorder.KindPrune, "", "", recorder.FormatTime(w.clock()), body)); err != nil {
		return recorder.Pruned{}, err
	}
	if err := w.checkpoint(ctx, tx); err != nil {
		return recorder.Pruned{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE horizon SET seq = ?`, anchor.Int64); err != nil {
		return recorder.Pruned{}, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE seq < ?`, anchor.Int64)
	if err != nil {
		return recorder.Pruned{}, err
	}
	if deleted, err := res.RowsAffected(); err == nil && deleted != n {
		return recorder.Pruned{}, fmt.Errorf("deleted %d records before %d; want %d (the chain has a gap)", deleted, anchor.Int64, n)
	}
	return recorder.Pruned{Records: n, Anchor: anchor.Int64}, nil
}

// Retain prunes records older than keep now, and then every RetainInterval,
// until ctx ends or the store closes. A failure to prune is logged and
// retried at the next interval: it never stops recording.
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
			log.Info("retention: pruned the recording", "records", p.Records, "before", cutoff.UTC().Format(time.RFC3339), "anchor", p.Anchor)
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
