package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"

	"github.com/warden-mcp/warden/recorder"
)

// HeadPath is where the signed head of the store at dbPath is kept by
// default (Options.KeyDir moves it).
func HeadPath(dbPath string) string { return dbPath + ".head" }

// vouch checks, before this writer extends the chain, that its end is
// what warden left: the store reaches the head (its MAC part, which names
// the last commit warden reported durable) and holds the head's records
// there and at its signed seq, and every record after the head carries a
// valid MAC and links to the one before. migrated is true when this open
// migrated a store from before heads existed, which has none yet. It then
// signs the head at the end of the chain.
func (w *writer) vouch(ctx context.Context, path string, migrated bool) error {
	head, err := recorder.ReadHeadMAC(path, w.key.Public().(ed25519.PublicKey), recorder.HeadMACKey(w.key))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if w.seq > 0 && !migrated {
			return fmt.Errorf("the signed head %s is missing, so warden cannot vouch that the store's newest records are all there "+
				"(restore the file; if it is lost, `warden sessions verify --reseal` accepts the store's end once it verifies); "+
				"warden does not extend a chain it cannot vouch for", path)
		}
	case err != nil:
		return fmt.Errorf("%w; warden does not extend a chain it cannot vouch for", err)
	case w.seq < head.Seq:
		return fmt.Errorf("the store ends at record %d, but the signed head %s names record %d (written %s): "+
			"the newest records were removed, or an older copy of the store was put in its place; warden does not extend it "+
			"(if a power loss lost them, `warden sessions verify --reseal` accepts the store's end once it verifies)",
			w.seq, path, head.Seq, head.At)
	default:
		err := w.checkSigned(ctx, head)
		if err == nil {
			err = w.checkTail(ctx, head)
		}
		if err != nil {
			return fmt.Errorf("%w; warden does not extend a chain it cannot vouch for (see `warden sessions verify`)", err)
		}
	}
	if w.headFile, err = recorder.OpenHead(path, w.key); err != nil {
		return err
	}
	if w.seq == 0 {
		return nil
	}
	return w.headFile.Sign(w.seq, w.head, recorder.FormatTime(w.clock()))
}

// checkSigned checks that the store holds, at the seq the head's signature
// names, the record it names, when the head's MAC names a later one (else
// checkTail checks it).
func (w *writer) checkSigned(ctx context.Context, head *recorder.Head) error {
	if !head.MACVouched() || head.Signed == 0 {
		return nil
	}
	var hash []byte
	err := w.db.QueryRowContext(ctx, `SELECT hash FROM records WHERE seq = ?`, head.Signed).Scan(&hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("record %d, which the signed head names, is missing", head.Signed)
	case err != nil:
		return err
	case !bytes.Equal(hash, head.SignedHash[:]):
		return fmt.Errorf("record %d is not the record the signed head names: the chain was rewritten", head.Signed)
	}
	return nil
}

// checkTail checks the record at head.Seq and every record after it.
func (w *writer) checkTail(ctx context.Context, head *recorder.Head) error {
	rows, err := w.db.QueryContext(ctx, `SELECT seq, kind,
			(session_id IS NOT NULL) | ((call_id IS NOT NULL) << 1) | ((at IS NOT NULL) << 2),
			session_id, call_id, at, body, prev_hash, hash, mac FROM records WHERE seq >= ? ORDER BY seq`, head.Seq)
	if err != nil {
		return err
	}
	defer rows.Close()
	src := &dbSource{rows: rows, withMAC: true}
	var h recorder.Hasher
	m := recorder.NewMacer(w.macKey)
	prevSeq, prev := head.Seq, head.Hash
	first := true
	for {
		r, err := src.Next()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
		computed := h.Hash(&r.Fields)
		switch {
		case first && head.Seq > 0:
			first = false
			if r.Seq != head.Seq || !bytes.Equal(r.Hash, head.Hash[:]) || computed != head.Hash {
				return fmt.Errorf("record %d is not the record the signed head names: the chain was rewritten", head.Seq)
			}
			continue
		case r.Seq != prevSeq+1:
			return fmt.Errorf("record %d is missing after the signed head's record %d", prevSeq+1, head.Seq)
		case r.PrevHash != prev || !bytes.Equal(computed[:], r.Hash):
			return fmt.Errorf("record %d, after the signed head's record %d, does not match its hash or link: it was changed", r.Seq, head.Seq)
		case !hmac.Equal(r.MAC, m.MAC(computed)):
			return fmt.Errorf("record %d, after the signed head's record %d, has no valid MAC: warden did not write it", r.Seq, head.Seq)
		}
		first = false
		prevSeq, prev = r.Seq, computed
	}
	if first && head.Seq > 0 {
		return fmt.Errorf("record %d, which the signed head names, is missing", head.Seq)
	}
	return rows.Err()
}

// Reseal is the operator's way past a head warden refuses: after a power
// loss left the head ahead of the database, or after the head file was
// lost. It verifies the whole chain, its checkpoints with the signing key
// beside the store and every record MAC, and only if all of that holds
// writes a head naming the store's last record. It returns the report and
// the head it replaced (nil if there was none or it did not verify). What
// the old head named and the store no longer holds is not recoverable:
// Reseal is a decision to accept the store's end as it is, which is why
// warden never takes it on its own.
func (s *Store) Reseal(ctx context.Context) (*recorder.VerifyReport, *recorder.Head, error) {
	key, err := recorder.ReadKeyFile(s.KeyFile())
	if err != nil {
		return nil, nil, fmt.Errorf("resealing needs the signing key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	old, err := recorder.ReadHeadMAC(s.HeadFile(), pub, recorder.HeadMACKey(key))
	if err != nil {
		old, _ = recorder.ReadHead(s.HeadFile(), pub)
	}
	if s.version < 4 {
		return nil, old, fmt.Errorf("store schema version %d has no record MACs: open it with warden serve once to migrate it", s.version)
	}
	rep, err := s.VerifyWith(ctx, recorder.VerifyOptions{Key: pub, MACKey: recorder.RecordMACKey(key)})
	if err != nil {
		return rep, old, err
	}
	if rep.Records == 0 {
		return rep, old, errors.New("the store holds no records; there is nothing to seal")
	}
	var hash []byte
	if err := s.read.QueryRowContext(ctx, `SELECT hash FROM records WHERE seq = ?`, rep.Last).Scan(&hash); err != nil {
		return rep, old, err
	}
	if len(hash) != recorder.HashSize {
		return rep, old, fmt.Errorf("record %d has a malformed hash", rep.Last)
	}
	if err := recorder.WriteHeadFile(s.HeadFile(), key, rep.Last, recorder.Digest(hash), recorder.FormatTime(s.clock())); err != nil {
		return rep, old, err
	}
	return rep, old, nil
}

// checkNoHeadEra refuses a store, about to be migrated to version 4 and
// so taken to have no head, whose checkpoints show a warden that kept one:
// any checkpoint marked "v": 2, or a newest checkpoint whose signature
// does not verify as one from before (a "v": 2 removed).
func (w *writer) checkNoHeadEra(ctx context.Context, tx *sql.Tx) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE kind = 'checkpoint' AND json_valid(body) AND json_extract(body, '$.v') IS NOT NULL`).Scan(&n); err != nil {
		return err
	}
	refuse := errors.New("this store says it is from before warden kept a signed head, but its checkpoints show a warden that kept one: " +
		"its version was lowered, and its head removed; warden does not extend a chain it cannot vouch for")
	if n > 0 {
		return refuse
	}
	var seq int64
	var at sql.NullString
	var body string
	var prev []byte
	err := tx.QueryRowContext(ctx, `SELECT seq, at, body, prev_hash FROM records WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1`).Scan(&seq, &at, &body, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var cp recorder.CheckpointJSON
	sig, serr := []byte(nil), jsonUnmarshal(body, &cp)
	if serr == nil {
		sig, serr = base64.StdEncoding.DecodeString(cp.Sig)
	}
	if serr != nil || len(prev) != recorder.HashSize || !ed25519.Verify(w.key.Public().(ed25519.PublicKey), recorder.CheckpointMessage(1, seq, at.String, recorder.Digest(prev)), sig) {
		return refuse
	}
	return nil
}
