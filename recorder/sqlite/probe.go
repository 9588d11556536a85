package sqlite

import (
	"context"
	"database/sql"
)

// QueueDepth is the number of records and jobs waiting for the writer: a
// store that cannot keep up shows here first.
func (s *Store) QueueDepth() int {
	if s.w == nil {
		return 0
	}
	return len(s.w.requests)
}

// Probe reports whether the store can take a record now: the writer is
// running and its connection can open a write transaction (SQLite takes
// the write lock, so a read-only file, a full lock or a broken connection
// all fail). Nothing is written; the transaction is rolled back. It is
// what /readyz asks, so it is cheap: one round through the writer queue.
func (s *Store) Probe(ctx context.Context) error {
	w, err := s.writable()
	if err != nil {
		return err
	}
	// The job runs under the probe's context, so a probe that gives up
	// does not hold the writer.
	return w.do(ctx, func(context.Context) error {
		tx, err := w.db.BeginTx(ctx, &sql.TxOptions{})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// A DELETE matching nothing still needs the write lock.
		_, err = tx.ExecContext(ctx, `DELETE FROM records WHERE seq < 0`)
		return err
	})
}
