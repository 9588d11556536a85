package sqlite

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/warden-mcp/warden"
)

// schemaFlows keeps what flow control remembers of each caller's reads:
// keyed fingerprints (8 bytes each, never the values) and row and byte
// counts. It is operational state, not evidence: the calls themselves are
// in the records. Rows older than the longest flow window are pruned.
// The table is created on first use, so stores without flow rules are
// left as they are.
const schemaFlows = `
CREATE TABLE IF NOT EXISTS flow_reads (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	caller  TEXT NOT NULL,
	call_id TEXT NOT NULL,
	backend TEXT NOT NULL,
	at      INTEGER NOT NULL,
	rows    INTEGER NOT NULL,
	bytes   INTEGER NOT NULL,
	rules   TEXT NOT NULL,
	prints  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_reads_caller ON flow_reads (caller, seq);
CREATE INDEX IF NOT EXISTS flow_reads_at ON flow_reads (at);
`

// flowTables creates the flow table once per process.
func (s *Store) flowTables(ctx context.Context) error {
	if s.flowsReady.Load() {
		return nil
	}
	w, err := s.writable()
	if err != nil {
		return err
	}
	err = w.do(ctx, func(ctx context.Context) error {
		_, err := w.db.ExecContext(ctx, schemaFlows)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating the flow table: %w", err)
	}
	s.flowsReady.Store(true)
	return nil
}

// AddFlowRead implements warden.FlowStore.
func (s *Store) AddFlowRead(ctx context.Context, r *warden.FlowRead) error {
	if r == nil || r.Caller == "" || r.CallID == "" {
		return errors.New("recording a flow read: it has no caller or call id")
	}
	if err := s.flowTables(ctx); err != nil {
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
	w := s.w
	return w.do(ctx, func(ctx context.Context) error {
		return w.db.QueryRowContext(ctx, `INSERT INTO flow_reads (caller, call_id, backend, at, rows, bytes, rules, prints)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			r.Caller, r.CallID, r.Backend, r.At.UnixNano(), r.Rows, r.Bytes, string(rules), prints).Scan(&r.Seq)
	})
}

// FlowReads implements warden.FlowStore.
func (s *Store) FlowReads(ctx context.Context, caller string, since time.Time, after int64) ([]*warden.FlowRead, error) {
	if err := s.flowTables(ctx); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, call_id, backend, at, rows, bytes, rules, prints FROM flow_reads
		WHERE caller = ? AND seq > ? AND at >= ? ORDER BY seq`, caller, after, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("reading flow reads: %w", err)
	}
	defer rows.Close()
	var out []*warden.FlowRead
	for rows.Next() {
		r := &warden.FlowRead{Caller: caller}
		var at int64
		var rules string
		var prints []byte
		if err := rows.Scan(&r.Seq, &r.CallID, &r.Backend, &at, &r.Rows, &r.Bytes, &rules, &prints); err != nil {
			return nil, fmt.Errorf("reading flow reads: %w", err)
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
	return out, rows.Err()
}

// PruneFlowReads implements warden.FlowStore.
func (s *Store) PruneFlowReads(ctx context.Context, before time.Time) error {
	if err := s.flowTables(ctx); err != nil {
		return err
	}
	w := s.w
	return w.do(ctx, func(ctx context.Context) error {
		_, err := w.db.ExecContext(ctx, `DELETE FROM flow_reads WHERE at < ?`, before.UnixNano())
		return err
	})
}

var _ warden.FlowStore = (*Store)(nil)
