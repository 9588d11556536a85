package postgres

import (
	"context"
	"errors"
)

// QueueDepth is the number of records waiting for this instance's writer:
// a store that cannot keep up shows here first.
func (s *Store) QueueDepth() int {
	if s.w == nil {
		return 0
	}
	return len(s.w.requests)
}

// Probe reports whether this instance can take a record now: the store is
// open for writing, it still holds its chain (the connection that keeps
// the instance's advisory lock is open), and the server accepts a write
// from it: a transaction that deletes nothing from heads is refused by a
// read-only server (a standby after a failover, default_transaction_read_only)
// or a role that lost its privileges, and it is rolled back, so nothing
// durable is written. It begins its transaction as the writer does, with
// the server's defaults. It is what /readyz asks, so it costs one round trip
// per statement on a pooled connection and never waits for the writer.
func (s *Store) Probe(ctx context.Context) error {
	select {
	case <-s.closed:
		return errClosed
	default:
	}
	if s.w == nil {
		return errReadOnly
	}
	if s.lock == nil || s.lock.Conn().PgConn().IsClosed() {
		return errors.New("this instance lost the connection that holds its chain")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbErr("probing the PostgreSQL store", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `DELETE FROM heads WHERE instance = $1 AND false`, s.instance); err != nil {
		return dbErr("probing the PostgreSQL store", err)
	}
	return nil
}
