package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

// Head is the newest record warden vouches for.
type Head struct {
	Seq  int64
	Hash [HashSize]byte
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

func HeadMessage(seq int64, at string, hash Digest) []byte {
	b := make([]byte, 0, len(headDomain)+8+4+len(at)+HashSize)
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
	if herr != nil || serr != nil || len(hash) != HashSize || h.Seq < 0 || !named.Equal(key) ||
		!ed25519.Verify(key, HeadMessage(h.Seq, h.At, Digest(hash)), sig) {
		return nil, fmt.Errorf("signed head %s does not verify with key %s: it was altered, or it is not this store's", path, FormatPublicKey(key))
	}
	return &Head{Seq: h.Seq, Hash: Digest(hash), At: h.At, Key: key}, nil
}

// headSize is the fixed size of a head file: the JSON, padded with spaces.
// Every head is written whole over the last one at offset 0, one write(2)
// of the same length, so a reader (or a process killed mid-way) sees the
// old head or the new one, and no rename or new file is needed per commit
// (which cost about a millisecond here).
const headSize = 512

// headBytes returns the head file's contents naming seq and hash.
func headBytes(key ed25519.PrivateKey, seq int64, hash Digest, at string) []byte {
	body, _ := json.Marshal(headJSON{ // cannot fail for these types
		Seq: seq, Hash: hex.EncodeToString(hash[:]), At: at,
		Key: FormatPublicKey(key.Public().(ed25519.PublicKey)),
		Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, HeadMessage(seq, at, hash))),
	})
	b := bytes.Repeat([]byte{' '}, headSize)
	copy(b, body) // about 300 bytes: at (30) is fixed, seq at most 19 digits
	b[headSize-1] = '\n'
	return b
}

// HeadWriter keeps the head file open and rewrites it in place.
type HeadWriter struct {
	f *os.File
}

func OpenHead(path string) (*HeadWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the signed head: %w", err)
	}
	return &HeadWriter{f: f}, nil
}

func (h *HeadWriter) Write(key ed25519.PrivateKey, seq int64, hash Digest, at string) error {
	if _, err := h.f.WriteAt(headBytes(key, seq, hash, at), 0); err != nil {
		return fmt.Errorf("writing the signed head: %w", err)
	}
	return nil
}

func (h *HeadWriter) Close() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}

// WriteHeadFile replaces the head file with one naming seq and hash, written
// beside it and renamed over it (for Reseal, which runs beside no writer).
func WriteHeadFile(path string, key ed25519.PrivateKey, seq int64, hash Digest, at string) error {
	if err := WritePrivateFile(path, headBytes(key, seq, hash, at)); err != nil {
		return fmt.Errorf("writing the signed head: %w", err)
	}
	return nil
}

// Derive returns key material for purpose, derived from the signing key's
// seed: nothing derived is stored anywhere, so a copy of the store reveals
// none of it, and it is as safe as the key file itself.
func Derive(key ed25519.PrivateKey, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, "warden/"+purpose, n)
	if err != nil {
		panic(err) // only for n beyond 255 hash lengths, a programming error
	}
	return k
}

// RecordMACKey is the key of the record MACs.
func RecordMACKey(key ed25519.PrivateKey) []byte { return Derive(key, "record-mac/v1", sha256.Size) }

// Macer computes record MACs, reusing one keyed HMAC: Reset keeps the
// keyed state, so a MAC costs two SHA-256 blocks, not a new key schedule.
type Macer struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

func NewMacer(key []byte) *Macer {
	if key == nil {
		return nil
	}
	return &Macer{h: hmac.New(sha256.New, key)}
}

// MAC returns the MAC of a record with the given hash, valid until the
// next call.
func (m *Macer) MAC(hash Digest) []byte {
	m.h.Reset()
	m.h.Write(hash[:])
	return m.h.Sum(m.buf[:0])
}
