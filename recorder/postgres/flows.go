package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
)

// schemaV2 keeps what flow control remembers of each caller's reads, as
// the SQLite store's flow_reads table does: keyed fingerprints (8 bytes
// each, little-endian, never the values) and row and byte counts. It is
// operational state shared by every instance, not evidence: the calls
// themselves are in the chains. Reads older than the longest flow window
// are pruned by the flow guard.
const schemaV2 = `
CREATE TABLE flow_reads (
	seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	caller  text   NOT NULL,
	call_id text   NOT NULL,
	backend text   NOT NULL,
	at      bigint NOT NULL,
	rows    bigint NOT NULL,
	bytes   bigint NOT NULL,
	rules   text   NOT NULL,
	prints  bytea  NOT NULL CHECK (length(prints) % 8 = 0)
);
CREATE INDEX flow_reads_caller ON flow_reads (caller, seq);
CREATE INDEX flow_reads_at ON flow_reads (at);
`

func (s *Store) flowsOpen(write bool) error {
	select {
	case <-s.closed:
		return errClosed
	default:
	}
	if write && s.w == nil {
		return errReadOnly
	}
	return nil
}

// AddFlowRead implements warden.FlowStore. Every instance reads another's
// reads with a cursor on seq (FlowReads' after), so a caller's reads must
// commit in seq order: the insert takes a per-caller transaction lock
// before the identity is drawn, and holds it until commit. Without it, a
// read drawn earlier on one instance but committed after a later one was
// seen would be skipped by every other instance for good.
func (s *Store) AddFlowRead(ctx context.Context, r *warden.FlowRead) error {
	if r == nil || r.Caller == "" || r.CallID == "" {
		return errors.New("recording a flow read: it has no caller or call id")
	}
	if err := s.flowsOpen(true); err != nil {
		return err
	}
	rules, err := json.Marshal(r.Rules)
	if err != nil {
		return err
	}
	prints := make([]byte, 8*len(r.Prints))
	for i, p := range r.Prints {
		binary.LittleEndian.PutUint64(prints[8*i:], p)
	}
	var seq int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('warden/flows/' || $1, 0))`, r.Caller); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO flow_reads (caller, call_id, backend, at, rows, bytes, rules, prints)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`,
			r.Caller, r.CallID, r.Backend, r.At.UnixNano(), r.Rows, r.Bytes, string(rules), prints).Scan(&seq)
	})
	if err != nil {
		return dbErr("recording a flow read", err)
	}
	r.Seq = seq
	return nil
}

// FlowReads implements warden.FlowStore.
func (s *Store) FlowReads(ctx context.Context, caller string, since time.Time, after int64) ([]*warden.FlowRead, error) {
	if err := s.flowsOpen(false); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, call_id, backend, at, rows, bytes, rules, prints FROM flow_reads
		WHERE caller = $1 AND seq > $2 AND at >= $3 ORDER BY seq`, caller, after, since.UnixNano())
	if err != nil {
		return nil, dbErr("reading flow reads", err)
	}
	defer rows.Close()
	var out []*warden.FlowRead
	for rows.Next() {
		r := &warden.FlowRead{Caller: caller}
		var at int64
		var rules string
		var prints []byte
		if err := rows.Scan(&r.Seq, &r.CallID, &r.Backend, &at, &r.Rows, &r.Bytes, &rules, &prints); err != nil {
			return nil, dbErr("reading flow reads", err)
		}
		r.At = time.Unix(0, at)
		if err := json.Unmarshal([]byte(rules), &r.Rules); err != nil || len(prints)%8 != 0 {
			return nil, fmt.Errorf("flow read %d is malformed", r.Seq)
		}
		r.Prints = make([]uint64, len(prints)/8)
		for i := range r.Prints {
			r.Prints[i] = binary.LittleEndian.Uint64(prints[8*i:])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("reading flow reads", err)
	}
	return out, nil
}

// PruneFlowReads implements warden.FlowStore: it deletes every instance's
// reads made before t (the window is the same on every instance that
// shares a configuration).
func (s *Store) PruneFlowReads(ctx context.Context, before time.Time) error {
	if err := s.flowsOpen(true); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM flow_reads WHERE at < $1`, before.UnixNano())
	return dbErr("pruning flow reads", err)
}

var _ warden.FlowStore = (*Store)(nil)
