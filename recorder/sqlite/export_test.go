package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/warden-mcp/warden/recorder"
)

// Test hooks that put a live store into states a test cannot reach through
// the file system when it runs as root (which ignores file permissions).
// Each runs on the writer goroutine, between batches.

// MakeReadOnly replaces s's writer connection with one that opened the
// database read-only, as SQLite does for a file it may not write.
func MakeReadOnly(s *Store) error {
	w := s.w
	return w.do(context.Background(), func(ctx context.Context) error {
		w.closeStatements()
		if err := w.db.Close(); err != nil {
			return err
		}
		db, err := sql.Open("sqlite", "file:"+s.path+"?mode=ro&_pragma=busy_timeout(5000)&_txlock=immediate")
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		w.db = db
		return w.prepare(ctx)
	})
}

// FillDisk caps s's database at its current size, as a full disk would.
func FillDisk(ctx context.Context, s *Store) error {
	return s.w.do(ctx, func(ctx context.Context) error {
		var pages int64
		if err := s.w.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return err
		}
		_, err := s.w.db.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
		return err
	})
}

// ExecWriter runs a statement on s's writer, to check that the schema
// refuses what the package never does.
func ExecWriter(ctx context.Context, s *Store, query string, args ...any) error {
	return s.w.do(ctx, func(ctx context.Context) error {
		_, err := s.w.db.ExecContext(ctx, query, args...)
		return err
	})
}

// What someone who can write the database file can do: recompute hashes,
// and sign with a key of their own.

// HashRecord returns the hash chain.go defines for a record; nil strings
// are NULL columns.
func HashRecord(seq int64, kind string, sessionID, callID, at *string, body string, prev []byte) []byte {
	f := recorder.Fields{Seq: seq, Kind: kind, BodyHash: sha256.Sum256([]byte(body)), PrevHash: recorder.Digest(prev)}
	if sessionID != nil {
		f.SessionID, f.HasSession = *sessionID, true
	}
	if callID != nil {
		f.CallID, f.HasCall = *callID, true
	}
	if at != nil {
		f.At, f.HasAt = *at, true
	}
	var h recorder.Hasher
	d := h.Hash(&f)
	return d[:]
}

// Rechain drops the triggers and recomputes prev_hash and hash of every
// record from seq from on, so the chain is consistent again after an
// edit. With a key, it also re-signs every checkpoint from seq from on;
// without one, checkpoints keep their old signatures.
func Rechain(db *sql.DB, from int64, key ed25519.PrivateKey) error {
	return rechain(db, from, key, recorder.SignCheckpoint)
}

// RechainAsLegacy is Rechain signing checkpoints as a warden from before
// signed heads did: a store as schema version 3 left it.
func RechainAsLegacy(db *sql.DB, key ed25519.PrivateKey) error {
	return rechain(db, 1, key, func(key ed25519.PrivateKey, seq int64, at string, prev recorder.Digest) string {
		sig := ed25519.Sign(key, recorder.CheckpointMessage(1, seq, at, prev))
		body, _ := json.Marshal(recorder.CheckpointJSON{Key: recorder.FormatPublicKey(key.Public().(ed25519.PublicKey)), Sig: base64.StdEncoding.EncodeToString(sig)})
		return string(body)
	})
}

func rechain(db *sql.DB, from int64, key ed25519.PrivateKey, sign func(ed25519.PrivateKey, int64, string, recorder.Digest) string) error {
	for _, q := range []string{`DROP TRIGGER IF EXISTS records_no_update`, `DROP TRIGGER IF EXISTS records_no_delete`} {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	type rec struct {
		seq          int64
		kind, body   string
		sid, cid, at sql.NullString
	}
	rows, err := db.Query(`SELECT seq, kind, session_id, call_id, at, body FROM records WHERE seq >= ? ORDER BY seq`, from)
	if err != nil {
		return err
	}
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.seq, &r.kind, &r.sid, &r.cid, &r.at, &r.body); err != nil {
			rows.Close()
			return err
		}
		recs = append(recs, r)
	}
	rows.Close()
	prev := make([]byte, recorder.HashSize)
	if err := db.QueryRow(`SELECT hash FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1`, from).Scan(&prev); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	str := func(n sql.NullString) *string {
		if !n.Valid {
			return nil
		}
		return &n.String
	}
	for _, r := range recs {
		if r.kind == recorder.KindCheckpoint && key != nil {
			r.body = sign(key, r.seq, r.at.String, recorder.Digest(prev))
		}
		h := HashRecord(r.seq, r.kind, str(r.sid), str(r.cid), str(r.at), r.body, prev)
		if _, err := db.Exec(`UPDATE records SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?`, r.body, prev, h, r.seq); err != nil {
			return err
		}
		prev = h
	}
	return nil
}

// WriteKey replaces the signing key file of the store at dbPath.
func WriteKey(dbPath string, key ed25519.PrivateKey) error {
	if err := os.Remove(KeyPath(dbPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(KeyPath(dbPath), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// LoadKey reads the signing key of the store at dbPath.
func LoadKey(dbPath string) (ed25519.PrivateKey, error) { return recorder.ReadKeyFile(KeyPath(dbPath)) }

// SetPruneChunk makes Prune delete at most about n records a step, and
// returns a function that restores the default.
func SetPruneChunk(n int64) (restore func()) {
	old := pruneChunk
	pruneChunk = n
	return func() { pruneChunk = old }
}

// BulkAppend appends n records, rec(i) giving each one's kind, session,
// call, time and body, through the writer in transactions of 10,000, with
// checkpoints as serving writes them: a fast way to build a large chain.
func BulkAppend(s *Store, n int, rec func(i int) (kind, sessionID, callID, at, body string)) error {
	w := s.w
	const chunk = 10000
	for start := 0; start < n; start += chunk {
		err := w.do(context.Background(), func(ctx context.Context) error {
			return w.run(func(ctx context.Context, tx *sql.Tx) error {
				ins := tx.StmtContext(ctx, w.insert)
				for i := start; i < min(n, start+chunk); i++ {
					if err := w.appendTx(ctx, tx, ins, newPending(rec(i))); err != nil {
						return err
					}
					if w.seq-w.lastCheckpoint >= w.every {
						if err := w.checkpoint(ctx, tx); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Crash closes s as a killed process would leave it: the records written
// since the last checkpoint stay unsigned.
func Crash(s *Store) error {
	if err := s.w.do(context.Background(), func(context.Context) error { s.w.wrote = false; return nil }); err != nil {
		return err
	}
	return s.Close()
}

// MACKey returns the record MAC key of the store at dbPath.
func MACKey(dbPath string) ([]byte, error) {
	s := &Store{path: dbPath, keyBase: dbPath}
	return s.MACKey()
}

// Seed returns the signing key's seed of the store at dbPath.
func Seed(dbPath string) ([]byte, error) {
	k, err := recorder.ReadKeyFile(KeyPath(dbPath))
	if err != nil {
		return nil, err
	}
	return k.Seed(), nil
}

// SetLockWait sets how long a writer waits for the write lock, until the
// test ends.
func SetLockWait(t interface{ Cleanup(func()) }, d time.Duration) {
	old := lockWait
	lockWait = d
	t.Cleanup(func() { lockWait = old })
}
