package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/warden-mcp/warden/recorder"
)

// MACKey returns the key that checks record MACs: derived from the
// store's signing key, which only its owner can read. It returns an error
// wrapping fs.ErrNotExist without a key file.
func (s *Store) MACKey() ([]byte, error) {
	key, err := recorder.ReadKeyFile(s.KeyFile())
	if err != nil {
		return nil, err
	}
	return recorder.RecordMACKey(key), nil
}

// Verify walks the whole chain in one read snapshot: every record's hash
// must match its contents and link to the record before it, seqs must be
// contiguous, and every checkpoint must be signed by key. A nil key trusts
// the key the first checkpoint names (the report says so). It returns a
// *ChainError for the first problem found, naming the record; other errors
// are failures to read.
//
// Verify checks the chain and its checkpoints only; VerifyWith also checks
// the signed head and the record MACs, which is what shows that no record
// was removed from the end or rewritten after the last checkpoint.
func (s *Store) Verify(ctx context.Context, key ed25519.PublicKey) (*recorder.VerifyReport, error) {
	return s.VerifyWith(ctx, recorder.VerifyOptions{Key: key})
}

// VerifyWith verifies the chain as Verify does, and against opts.Head and
// opts.MACKey.
func (s *Store) VerifyWith(ctx context.Context, opts recorder.VerifyOptions) (*recorder.VerifyReport, error) {
	if s.version < 2 {
		return nil, fmt.Errorf("store schema version %d has no hash chain: open it with warden serve once to migrate it", s.version)
	}

	withMAC := s.version >= 4
	if !withMAC {
		opts.MACKey = nil
	}
	var rep *recorder.VerifyReport
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		mac := "NULL"
		if withMAC {
			mac = "mac"
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, kind,
			(session_id IS NOT NULL) | ((call_id IS NOT NULL) << 1) | ((at IS NOT NULL) << 2),
			session_id, call_id, at, body, prev_hash, hash, `+mac+` FROM records ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var verr error
		rep, verr = recorder.VerifyChain(&dbSource{rows: rows, withMAC: true}, opts)
		if verr != nil {
			return verr
		}
		return rows.Err()
	})
	var ce *recorder.ChainError
	if errors.As(err, &ce) {
		return rep, ce
	}
	if err != nil {
		return rep, fmt.Errorf("verifying the chain: %w", err)
	}
	return rep, nil
}

type dbSource struct {
	rows                                 *sql.Rows
	sid, cid, at, body, prev, hash, kind sql.RawBytes
	// withMAC: the query's last column is the record MAC.
	withMAC bool
	mac     sql.RawBytes
	dest    []any
}

func (d *dbSource) Next() (*recorder.Row, error) {
	if !d.rows.Next() {
		return nil, d.rows.Err()
	}
	r := &recorder.Row{}
	var present int
	if d.dest == nil {
		d.dest = []any{nil, &d.kind, nil, &d.sid, &d.cid, &d.at, &d.body, &d.prev, &d.hash}
		if d.withMAC {
			d.dest = append(d.dest, &d.mac)
		}
	}
	d.dest[0], d.dest[2] = &r.Seq, &present
	if err := d.rows.Scan(d.dest...); err != nil {
		return nil, err
	}
	if d.mac != nil {
		r.MAC = bytes.Clone(d.mac)
	}
	r.Kind = recorder.KindName(d.kind)
	r.HasSession, r.HasCall, r.HasAt = present&1 != 0, present&2 != 0, present&4 != 0
	r.SessionID, r.CallID, r.At = string(d.sid), string(d.cid), string(d.at)
	r.BodyHash = sha256.Sum256(d.body)
	if r.Kind == recorder.KindCheckpoint || r.Kind == recorder.KindPrune || r.Kind == recorder.KindApprovalChange {
		r.Body = bytes.Clone(d.body)
	}
	copy(r.PrevHash[:], d.prev) // a short prev_hash cannot match, as it must not
	if len(d.prev) != recorder.HashSize {
		r.PrevHash[0] ^= 0xff
	}
	r.Hash = bytes.Clone(d.hash)
	return r, nil
}
