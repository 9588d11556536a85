package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The records form one hash chain per store. Each record's hash is
//
//	SHA-256( "warden/record/v1" 0x00
//	         seq            uint64, big-endian
//	         kind           uint32 length, bytes
//	         session_id     0x00 if NULL, else 0x01, uint32 length, bytes
//	         call_id        likewise
//	         at             likewise
//	         SHA-256(body)  32 bytes
//	         prev_hash      32 bytes )
//
// and prev_hash is the hash of the record before it (32 zero bytes for the
// first record of a store). Every field is length-prefixed, so no two
// different records encode alike, and NULL differs from "". The body enters
// through its own digest, which callers compute before they queue a record,
// so the single writer hashes a fixed 150 bytes or so per record whatever
// the size of the result it carries.
//
// A checkpoint is a record of kind "checkpoint" whose body is
// {"key": base64 Ed25519 public key, "sig": base64 signature} and whose
// signature is over
//
//	"warden/checkpoint/v1" 0x00, seq uint64, at (uint32 length, bytes), prev_hash
//
// so it vouches for prev_hash, and through it for every record before it.
// Verification needs the public key only.
//
// From schema version 4 on, a checkpoint's body also says "v": 2, and its
// signature is over the same fields under "warden/checkpoint/v2": it
// vouches that the warden that wrote it kept a signed head (head.go). A
// store holding such a checkpoint is never taken for one from before
// heads, whatever its user_version says, and the "v" cannot be removed
// without breaking the signature.

const (
	recordDomain       = "warden/record/v1\x00"
	checkpointDomain   = "warden/checkpoint/v1\x00"
	checkpointDomainV2 = "warden/checkpoint/v2\x00"
)

// HashSize is the length of a record hash.
const HashSize = sha256.Size

type Digest = [HashSize]byte

// Fields are the hashed columns of one record. A nullable column is NULL
// when its valid flag is false.
type Fields struct {
	Seq                        int64
	Kind                       string
	SessionID, CallID, At      string
	HasSession, HasCall, HasAt bool
	BodyHash                   Digest
	PrevHash                   Digest
}

// Hasher computes record hashes, reusing one buffer.
type Hasher struct{ buf []byte }

func (h *Hasher) Hash(f *Fields) Digest {
	b := append(h.buf[:0], recordDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Seq))
	b = appendString(b, f.Kind)
	b = appendNullable(b, f.SessionID, f.HasSession)
	b = appendNullable(b, f.CallID, f.HasCall)
	b = appendNullable(b, f.At, f.HasAt)
	b = append(b, f.BodyHash[:]...)
	b = append(b, f.PrevHash[:]...)
	h.buf = b
	return sha256.Sum256(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendNullable(b []byte, s string, valid bool) []byte {
	if !valid {
		return append(b, 0)
	}
	return appendString(append(b, 1), s)
}

// CheckpointMessage is what a checkpoint of the given version signs.
func CheckpointMessage(version int, seq int64, at string, prev Digest) []byte {
	domain := checkpointDomain
	if version == 2 {
		domain = checkpointDomainV2
	}
	b := make([]byte, 0, len(domain)+8+4+len(at)+HashSize)
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendString(b, at)
	return append(b, prev[:]...)
}

// CheckpointJSON is the body of a checkpoint record.
type CheckpointJSON struct {
	Key string `json:"key"`
	Sig string `json:"sig"`
	// V is 2 for a checkpoint written with a signed head; absent before.
	V int `json:"v,omitempty"`
}

func SignCheckpoint(key ed25519.PrivateKey, seq int64, at string, prev Digest) string {
	sig := ed25519.Sign(key, CheckpointMessage(2, seq, at, prev))
	body, _ := json.Marshal(CheckpointJSON{ // cannot fail for strings
		Key: FormatPublicKey(key.Public().(ed25519.PublicKey)),
		Sig: base64.StdEncoding.EncodeToString(sig),
		V:   2,
	})
	return string(body)
}

// PruneJSON is the body of a prune record: retention removed every record
// before seq Before, which is a checkpoint that now anchors the chain.
type PruneJSON struct {
	Before    int64  `json:"before"`
	Cutoff    string `json:"cutoff"`
	Records   int64  `json:"records"`
	Retention string `json:"retention,omitempty"`
}

// FormatPublicKey returns key as warden prints and accepts it: the 32 raw
// bytes in standard base64.
func FormatPublicKey(key ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(key)
}

// ParsePublicKey reads an Ed25519 public key given as base64 (what
// `warden sessions verify --print-key` prints) or as a PEM "PUBLIC KEY"
// block.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block is %q; want PUBLIC KEY", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T; want Ed25519", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("public key is neither base64 nor PEM")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key has %d bytes; an Ed25519 key has %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// ReadKeyFile reads a PKCS #8 PEM Ed25519 private key that only its owner may
// read. It returns an error wrapping fs.ErrNotExist if there is no file.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is readable by others (mode %04o): chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is %T; want Ed25519", path, k)
	}
	return key, nil
}

// CreateKeyFile generates a signing key and writes it to path (mode 0600),
// synced with its directory, so a key that signed a checkpoint survives a
// crash too. If another process created the file first, its key is used.
func CreateKeyFile(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key is written whole to a file of its own beside path and then
	// linked to path, which fails if path exists: several wardens starting
	// on one new store all get the first creator's key, and none reads the
	// file while another is still writing it.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("creating signing key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return ReadKeyFile(path)
		}
	}
	if err == nil {
		err = SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("creating signing key: %w", err)
	}
	return key, nil
}

func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
