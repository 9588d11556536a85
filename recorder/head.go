package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
)

// The chain and its checkpoints show that records were not changed, but on
// their own not that the newest ones were not removed, nor that the
// records after the last checkpoint were not rewritten with recomputed
// hashes: whoever can write the store can do both. Two things kept outside
// the store close that gap.
//
// The head (PATH.head, beside the signing key) names the newest record
// warden committed: its seq and hash, signed with the signing key over
//
//	"warden/head/v1" 0x00, seq uint64, at (uint32 length, bytes), hash
//
// warden rewrites it (a new file renamed over the old) after every commit,
// before it reports the record durable. A store that ends before the
// head, or holds another record at the head's seq, was shortened, rewritten
// or swapped for an older copy.
//
// The record MAC (the mac column, from schema version 4) is
// HMAC-SHA256(mac key, hash), the mac key derived from the signing key's
// seed. It vouches for records committed after the head was last written
// (a crash between the commit and the head), which nobody without the
// signing key can forge. Public verification (--pubkey) does not need it:
// the checkpoints and the head vouch for everything up to the head.
//
// warden never extends a chain whose end it cannot vouch for this way:
// OpenWith refuses a store that fails these checks.

const headDomain = "warden/head/v1\x00"

// HeadPath is where the signed head of the store at dbPath is kept by
// default (Options.KeyDir moves it).
func HeadPath(dbPath string) string { return dbPath + ".head" }

// Head is the newest record warden vouches for.
type Head struct {
	Seq  int64
	Hash [hashSize]byte
	At   string
	// Key is the key that signed the head.
	Key ed25519.PublicKey
}

type headJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	At   string `json:"at"`
	Key  string `json:"key"`
	Sig  string `json:"sig"`
}

func headMessage(seq int64, at string, hash digest) []byte {
	b := make([]byte, 0, len(headDomain)+8+4+len(at)+hashSize)
	b = append(b, headDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendString(b, at)
	return append(b, hash[:]...)
}

// ReadHead reads and checks a head file. With a nil key, the head's own
// key is used, which shows the file is intact, not who signed it.
func ReadHead(path string, key ed25519.PublicKey) (*Head, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Created by a writer that has not committed yet: no head, which
		// only an empty store may lack.
		return nil, fmt.Errorf("signed head %s is empty: %w", path, fs.ErrNotExist)
	}
	var h headJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("signed head %s cannot be read", path)
	}
	named, err := ParsePublicKey(h.Key)
	if err != nil {
		return nil, fmt.Errorf("signed head %s: its key cannot be read", path)
	}
	if key == nil {
		key = named
	}
	hash, herr := hex.DecodeString(h.Hash)
	sig, serr := base64.StdEncoding.DecodeString(h.Sig)
	if herr != nil || serr != nil || len(hash) != hashSize || h.Seq < 0 || !named.Equal(key) ||
		!ed25519.Verify(key, headMessage(h.Seq, h.At, digest(hash)), sig) {
		return nil, fmt.Errorf("signed head %s does not verify with key %s: it was altered, or it is not this store's", path, FormatPublicKey(key))
	}
	return &Head{Seq: h.Seq, Hash: digest(hash), At: h.At, Key: key}, nil
}

// headSize is the fixed size of a head file: the JSON, padded with spaces.
// Every head is written whole over the last one at offset 0, one write(2)
// of the same length, so a reader (or a process killed mid-way) sees the
// old head or the new one, and no rename or new file is needed per commit
// (which cost about a millisecond here).
const headSize = 512

// headBytes returns the head file's contents naming seq and hash.
func headBytes(key ed25519.PrivateKey, seq int64, hash digest, at string) []byte {
	body, _ := json.Marshal(headJSON{ // cannot fail for these types
		Seq: seq, Hash: hex.EncodeToString(hash[:]), At: at,
		Key: FormatPublicKey(key.Public().(ed25519.PublicKey)),
		Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, headMessage(seq, at, hash))),
	})
	b := bytes.Repeat([]byte{' '}, headSize)
	copy(b, body) // about 300 bytes: at (30) is fixed, seq at most 19 digits
	b[headSize-1] = '\n'
	return b
}

// headWriter keeps the head file open and rewrites it in place.
type headWriter struct {
	f *os.File
}

func openHead(path string) (*headWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the signed head: %w", err)
	}
	return &headWriter{f: f}, nil
}

func (h *headWriter) write(key ed25519.PrivateKey, seq int64, hash digest, at string) error {
	if _, err := h.f.WriteAt(headBytes(key, seq, hash, at), 0); err != nil {
		return fmt.Errorf("writing the signed head: %w", err)
	}
	return nil
}

func (h *headWriter) close() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}

// writeHead replaces the head file with one naming seq and hash, written
// beside it and renamed over it (for Reseal, which runs beside no writer).
func writeHead(path string, key ed25519.PrivateKey, seq int64, hash digest, at string) error {
	if err := writePrivate(path, headBytes(key, seq, hash, at)); err != nil {
		return fmt.Errorf("writing the signed head: %w", err)
	}
	return nil
}

// derive returns key material for purpose, derived from the signing key's
// seed: nothing derived is stored anywhere, so a copy of the store reveals
// none of it, and it is as safe as the key file itself.
func derive(key ed25519.PrivateKey, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, "warden/"+purpose, n)
	if err != nil {
		panic(err) // only for n beyond 255 hash lengths, a programming error
	}
	return k
}

// macKey is the key of the record MACs.
func macKey(key ed25519.PrivateKey) []byte { return derive(key, "record-mac/v1", sha256.Size) }

// macer computes record MACs, reusing one keyed HMAC: Reset keeps the
// keyed state, so a MAC costs two SHA-256 blocks, not a new key schedule.
type macer struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

func newMacer(key []byte) *macer {
	if key == nil {
		return nil
	}
	return &macer{h: hmac.New(sha256.New, key)}
}

// mac returns the MAC of a record with the given hash, valid until the
// next call.
func (m *macer) mac(hash digest) []byte {
	m.h.Reset()
	m.h.Write(hash[:])
	return m.h.Sum(m.buf[:0])
}

// vouch checks, before this writer extends the chain, that its end is
// what warden left: the store reaches the signed head and holds the
// head's record there, and every record after the head carries a valid
// MAC and links to the one before. migrated is true when this open
// migrated a store from before heads existed, which has none yet. It then
// signs the head at the end of the chain.
func (w *writer) vouch(ctx context.Context, path string, migrated bool) error {
	head, err := ReadHead(path, w.key.Public().(ed25519.PublicKey))
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
		if err := w.checkTail(ctx, head); err != nil {
			return fmt.Errorf("%w; warden does not extend a chain it cannot vouch for (see `warden sessions verify`)", err)
		}
	}
	if w.headFile, err = openHead(path); err != nil {
		return err
	}
	if w.seq == 0 {
		return nil
	}
	return w.headFile.write(w.key, w.seq, w.head, formatTime(w.clock()))
}

// checkTail checks the record at head.Seq and every record after it.
func (w *writer) checkTail(ctx context.Context, head *Head) error {
	rows, err := w.db.QueryContext(ctx, `SELECT seq, kind,
			(session_id IS NOT NULL) | ((call_id IS NOT NULL) << 1) | ((at IS NOT NULL) << 2),
			session_id, call_id, at, body, prev_hash, hash, mac FROM records WHERE seq >= ? ORDER BY seq`, head.Seq)
	if err != nil {
		return err
	}
	defer rows.Close()
	src := &dbSource{rows: rows, withMAC: true}
	var h hasher
	m := newMacer(w.macKey)
	prevSeq, prev := head.Seq, head.Hash
	first := true
	for {
		r, err := src.next()
		if err != nil {
			return err
		}
		if r == nil {
			break
		}
		computed := h.hash(&r.fields)
		switch {
		case first && head.Seq > 0:
			first = false
			if r.seq != head.Seq || !bytes.Equal(r.hash, head.Hash[:]) || computed != head.Hash {
				return fmt.Errorf("record %d is not the record the signed head names: the chain was rewritten", head.Seq)
			}
			continue
		case r.seq != prevSeq+1:
			return fmt.Errorf("record %d is missing after the signed head's record %d", prevSeq+1, head.Seq)
		case r.prevHash != prev || !bytes.Equal(computed[:], r.hash):
			return fmt.Errorf("record %d, after the signed head's record %d, does not match its hash or link: it was changed", r.seq, head.Seq)
		case !hmac.Equal(r.mac, m.mac(computed)):
			return fmt.Errorf("record %d, after the signed head's record %d, has no valid MAC: warden did not write it", r.seq, head.Seq)
		}
		first = false
		prevSeq, prev = r.seq, computed
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
func (s *Store) Reseal(ctx context.Context) (*VerifyReport, *Head, error) {
	key, err := loadKey(s.KeyFile())
	if err != nil {
		return nil, nil, fmt.Errorf("resealing needs the signing key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	old, _ := ReadHead(s.HeadFile(), pub)
	if s.version < 4 {
		return nil, old, fmt.Errorf("store schema version %d has no record MACs: open it with warden serve once to migrate it", s.version)
	}
	rep, err := s.VerifyWith(ctx, VerifyOptions{Key: pub, MACKey: macKey(key)})
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
	if len(hash) != hashSize {
		return rep, old, fmt.Errorf("record %d has a malformed hash", rep.Last)
	}
	if err := writeHead(s.HeadFile(), key, rep.Last, digest(hash), formatTime(s.clock())); err != nil {
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
	var cp checkpointJSON
	sig, serr := []byte(nil), jsonUnmarshal(body, &cp)
	if serr == nil {
		sig, serr = base64.StdEncoding.DecodeString(cp.Sig)
	}
	if serr != nil || len(prev) != hashSize || !ed25519.Verify(w.key.Public().(ed25519.PublicKey), checkpointMessage(1, seq, at.String, digest(prev)), sig) {
		return refuse
	}
	return nil
}
