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
	"strconv"
)

// The chain and its checkpoints show that records were not changed, but on
// their own not that the newest ones were not removed, nor that the
// records after the last checkpoint were not rewritten with recomputed
// hashes: whoever can write the store can do both. Two things kept outside
// the store close that gap.
//
// The head (PATH.head, beside the signing key) names the newest record
// warden committed: its seq and hash. It has two parts. The signed part is
// an Ed25519 signature with the signing key over
//
//	"warden/head/v2" 0x00, seq uint64, at (uint32 length, bytes), hash
//
// which anyone with the public key can check ("v": 2; a head from before
// the MAC part has no "v" and signs "warden/head/v1", and a v2 signature
// is valid only with its MAC part, so the part cannot be stripped to pass
// the file off as an old one naming an earlier record). The MAC part ("tail") is
// HMAC-SHA256, keyed with a key derived from the signing key's seed (as
// the record MACs are), over
//
//	"warden/head-mac/v1" 0x00, seq uint64, at (uint32 length, bytes), hash
//
// which only a holder of the signing key can check or forge. warden
// rewrites the MAC part after every commit, before it reports the record
// durable; it signs the head off the callers' path: between batches, at
// most 100 ms after a commit the signature does not cover (so at most ten
// signatures a second, whatever the load), and when it closes (the first
// commit to a store with no signed head yet is signed at once). A
// signature costs about 60µs, and there were two per call; a MAC about 1µs. A file from
// before the MAC part (no "tail") is read as a head whose MAC part names
// what its signature does.
//
// A store that ends before the head (the MAC part, checked at warden's
// start and by `warden sessions verify` with the signing key), or holds
// another record at the seq either part names, was shortened, rewritten
// or swapped for an older copy. Verification with only the public key
// (--pubkey) vouches up to the signed seq; the records after it that the
// MAC part names are reported as vouched for by the head's MAC only,
// which the public key cannot check, and never as signed.
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

const (
	headDomain    = "warden/head/v1\x00"
	headV2Domain  = "warden/head/v2\x00"
	headMACDomain = "warden/head-mac/v1\x00"
)

// Head is the newest record warden vouches for.
type Head struct {
	// Seq, Hash and At name the record the store must reach and hold:
	// the signed part's, or the MAC part's once checked (ReadHeadMAC).
	Seq  int64
	Hash [HashSize]byte
	At   string
	// Key is the key that signed the head.
	Key ed25519.PublicKey
	// Signed, SignedHash and SignedAt are what the signature covers, for a
	// head read from a file. When MACed, Signed is below Seq and the head's
	// MAC vouches for records Signed+1..Seq.
	Signed     int64
	SignedHash Digest
	SignedAt   string
	MACed      bool
	// Claimed is, for a head read with the public key only (ReadHead),
	// the seq its MAC part names, unchecked: nothing the public key
	// checks vouches for records Seq+1..Claimed. ClaimedHash is the hash
	// it names.
	Claimed     int64
	ClaimedHash Digest
}

// MACVouched reports whether the head's MAC, checked with the signing
// key, vouches for records after the signed one.
func (h *Head) MACVouched() bool { return h.MACed }

type headJSON struct {
	V    int       `json:"v,omitempty"`
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	At   string    `json:"at"`
	Key  string    `json:"key"`
	Sig  string    `json:"sig"`
	Tail *tailJSON `json:"tail,omitempty"`
}

// tailJSON is the head's MAC part.
type tailJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	At   string `json:"at"`
	MAC  string `json:"mac"`
}

// HeadMessage is what a head from before the MAC part signs (and what the
// PostgreSQL store's heads sign).
func HeadMessage(seq int64, at string, hash Digest) []byte {
	return appendHeadMessage(nil, headDomain, seq, at, hash)
}

func appendHeadMessage(b []byte, domain string, seq int64, at string, hash Digest) []byte {
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendString(b, at)
	return append(b, hash[:]...)
}

// HeadMACKey is the key of the head's MAC part.
func HeadMACKey(key ed25519.PrivateKey) []byte { return Derive(key, "head-mac/v1", sha256.Size) }

// HeadMAC returns the MAC part's MAC of a head naming seq and hash.
func HeadMAC(macKey []byte, seq int64, at string, hash Digest) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(appendHeadMessage(nil, headMACDomain, seq, at, hash))
	return m.Sum(nil)
}

// ReadHead reads and checks a head file's signed part. With a nil key, the
// head's own key is used, which shows the file is intact, not who signed
// it. Its MAC part, which the public key cannot check, is returned as
// Claimed.
func ReadHead(path string, key ed25519.PublicKey) (*Head, error) {
	h, tail, err := readHead(path, key)
	if err != nil {
		return nil, err
	}
	if tail != nil {
		h.Claimed, h.ClaimedHash = tail.Seq, tail.Hash
	}
	return h, nil
}

// ReadHeadMAC reads a head file and checks both parts: the signature
// with key, the MAC part with macKey (HeadMACKey). The head it returns
// names the record the MAC part names.
func ReadHeadMAC(path string, key ed25519.PublicKey, macKey []byte) (*Head, error) {
	h, tail, err := readHead(path, key)
	if err != nil || tail == nil {
		return h, err
	}
	if !hmac.Equal(HeadMAC(macKey, tail.Seq, tail.At, tail.Hash), tail.MAC) {
		return nil, fmt.Errorf("signed head %s: its MAC does not verify with the key derived from signing key %s: it was altered, or it is not this store's", path, FormatPublicKey(h.Key))
	}
	h.Seq, h.Hash, h.At, h.MACed = tail.Seq, tail.Hash, tail.At, tail.Seq > h.Signed
	return h, nil
}

type tail struct {
	Seq  int64
	Hash Digest
	At   string
	MAC  []byte
}

func readHead(path string, key ed25519.PublicKey) (*Head, *tail, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Created by a writer that has not committed yet: no head, which
		// only an empty store may lack.
		return nil, nil, fmt.Errorf("signed head %s is empty: %w", path, fs.ErrNotExist)
	}
	var h headJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, nil, fmt.Errorf("signed head %s cannot be read", path)
	}
	named, err := ParsePublicKey(h.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("signed head %s: its key cannot be read", path)
	}
	if key == nil {
		key = named
	}
	hash, herr := hex.DecodeString(h.Hash)
	sig, serr := base64.StdEncoding.DecodeString(h.Sig)
	domain := headDomain
	if h.V == 2 {
		domain = headV2Domain
	}
	if herr != nil || serr != nil || len(hash) != HashSize || h.Seq < 0 || !named.Equal(key) ||
		h.V != 0 && h.V != 2 || (h.V == 2) != (h.Tail != nil) ||
		!ed25519.Verify(key, appendHeadMessage(nil, domain, h.Seq, h.At, Digest(hash)), sig) {
		return nil, nil, fmt.Errorf("signed head %s does not verify with key %s: it was altered, or it is not this store's", path, FormatPublicKey(key))
	}
	head := &Head{Seq: h.Seq, Hash: Digest(hash), At: h.At, Key: key, Signed: h.Seq, SignedHash: Digest(hash), SignedAt: h.At}
	if h.Tail == nil {
		return head, nil, nil
	}
	thash, herr := hex.DecodeString(h.Tail.Hash)
	mac, merr := base64.StdEncoding.DecodeString(h.Tail.MAC)
	if herr != nil || merr != nil || len(thash) != HashSize || len(mac) != sha256.Size {
		return nil, nil, fmt.Errorf("signed head %s: its MAC part cannot be read", path)
	}
	if h.Tail.Seq < h.Seq || h.Tail.Seq == h.Seq && !bytes.Equal(thash, hash) {
		// warden writes the MAC part with every commit, the signature
		// after: it never names an earlier record than the signature.
		return nil, nil, fmt.Errorf("signed head %s does not verify: its MAC part names record %d, before or beside the signed record %d: it was altered", path, h.Tail.Seq, h.Seq)
	}
	return head, &tail{Seq: h.Tail.Seq, Hash: Digest(thash), At: h.Tail.At, MAC: mac}, nil
}

// headSize is the fixed size of a head file: the JSON, padded with spaces.
// Every head is written whole over the last one at offset 0, one write(2)
// of the same length, so a reader (or a process killed mid-way) sees the
// old head or the new one, and no rename or new file is needed per commit
// (which cost about a millisecond here). The JSON is at most about 490
// bytes: at is 30 bytes, a seq at most 19 digits.
const headSize = 512

// HeadWriter keeps the head file open and rewrites it in place: the MAC
// part after every commit (Write), the signature when asked (Sign).
type HeadWriter struct {
	f      *os.File
	key    ed25519.PrivateKey
	pub    string
	mac    *Macer
	signed []byte // the signed part: the JSON up to the tail
	buf    []byte
	msg    []byte
}

// OpenHead opens (creating) the head file at path, to be written with key.
func OpenHead(path string, key ed25519.PrivateKey) (*HeadWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the signed head: %w", err)
	}
	return &HeadWriter{f: f, key: key, pub: FormatPublicKey(key.Public().(ed25519.PublicKey)),
		mac: NewMacer(HeadMACKey(key)), buf: make([]byte, 0, headSize)}, nil
}

// Sign signs seq and hash and rewrites the head naming them in both parts.
func (h *HeadWriter) Sign(seq int64, hash Digest, at string) error {
	h.signed = appendSigned(h.signed[:0], h.key, h.pub, seq, hash, at)
	return h.Write(seq, hash, at)
}

// Write rewrites the head with the last signed part and a MAC part naming
// seq and hash. The first write must be a Sign.
func (h *HeadWriter) Write(seq int64, hash Digest, at string) error {
	if h.signed == nil {
		return h.Sign(seq, hash, at)
	}
	h.msg = appendHeadMessage(h.msg[:0], headMACDomain, seq, at, hash)
	b := appendTail(append(h.buf[:0], h.signed...), seq, hash, at, h.mac.Sum(h.msg))
	if len(b) >= headSize {
		return fmt.Errorf("writing the signed head: %d bytes do not fit in %d", len(b), headSize)
	}
	for len(b) < headSize-1 {
		b = append(b, ' ')
	}
	b = append(b, '\n')
	h.buf = b
	if _, err := h.f.WriteAt(b, 0); err != nil {
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

// appendSigned appends the head's signed part: its JSON object, open.
func appendSigned(b []byte, key ed25519.PrivateKey, pub string, seq int64, hash Digest, at string) []byte {
	sig := ed25519.Sign(key, appendHeadMessage(nil, headV2Domain, seq, at, hash))
	b = append(b, `{"v":2,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"hash":"`...)
	b = hex.AppendEncode(b, hash[:])
	b = append(b, `","at":`...)
	b = strconv.AppendQuote(b, at)
	b = append(b, `,"key":"`...)
	b = append(b, pub...)
	b = append(b, `","sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, '"')
}

// appendTail appends the head's MAC part and closes the object.
func appendTail(b []byte, seq int64, hash Digest, at string, mac []byte) []byte {
	b = append(b, `,"tail":{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"hash":"`...)
	b = hex.AppendEncode(b, hash[:])
	b = append(b, `","at":`...)
	b = strconv.AppendQuote(b, at)
	b = append(b, `,"mac":"`...)
	b = base64.StdEncoding.AppendEncode(b, mac)
	return append(b, `"}}`...)
}

// WriteHeadFile replaces the head file with one naming seq and hash, signed
// (for Reseal, which runs beside no writer): written beside it and renamed
// over it.
func WriteHeadFile(path string, key ed25519.PrivateKey, seq int64, hash Digest, at string) error {
	b := appendSigned(nil, key, FormatPublicKey(key.Public().(ed25519.PublicKey)), seq, hash, at)
	b = appendTail(b, seq, hash, at, HeadMAC(HeadMACKey(key), seq, at, hash))
	b = append(b, bytes.Repeat([]byte{' '}, max(0, headSize-1-len(b)))...)
	if err := WritePrivateFile(path, append(b, '\n')); err != nil {
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

// Macer computes MACs (of records, and of the head's MAC part), reusing
// one keyed HMAC: Reset keeps the keyed state, so a MAC costs two SHA-256
// blocks, not a new key schedule.
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
func (m *Macer) MAC(hash Digest) []byte { return m.Sum(hash[:]) }

// Sum returns the MAC of msg, valid until the next call.
func (m *Macer) Sum(msg []byte) []byte {
	m.h.Reset()
	m.h.Write(msg)
	return m.h.Sum(m.buf[:0])
}
