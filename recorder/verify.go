package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Tamper names what verification found wrong with a record.
type Tamper string

const (
	// Changed: the record's contents (or its stored hash) are not what
	// was written.
	Changed Tamper = "changed"
	// Deleted: a record is missing from the chain.
	Deleted Tamper = "deleted"
	// Inserted: a record was not written by warden at this position.
	Inserted Tamper = "inserted"
	// Reordered: a record was written at another position.
	Reordered Tamper = "reordered"
	// WrongKey: a checkpoint is signed by a key other than the trusted one.
	WrongKey Tamper = "wrong key"
	// BadSignature: a checkpoint's signature does not verify, so the
	// records it covers were rewritten with recomputed hashes (or the
	// checkpoint itself was altered).
	BadSignature Tamper = "bad signature"
	// Truncated: the store ends before the record the signed head names:
	// the newest records were removed, or an older copy put in place.
	Truncated Tamper = "truncated"
	// Unvouched: a record after the signed head has no valid MAC, or no
	// MAC key was given to check it: nothing vouches that warden wrote it.
	Unvouched Tamper = "unvouched"
)

// ChainError is the first problem verification found. Seq names the
// record: the first one changed, deleted, inserted or moved, as far as the
// chain around it tells, or the checkpoint that failed.
type ChainError struct {
	Seq    int64
	Tamper Tamper
	// Detail says what is wrong, completing "record Seq ...".
	Detail string
	// Record describes the record found at Seq, if there is one.
	Record string
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("record %d %s", e.Seq, e.Detail)
	if e.Record != "" {
		s += " [" + e.Record + "]"
	}
	return s
}

// VerifyReport is what a verification established.
type VerifyReport struct {
	// Records is the number of records checked; First and Last their
	// seqs (0 for an empty store).
	Records     int64
	First, Last int64
	// Checkpoints is the number of signed checkpoints checked;
	// LastCheckpoint the seq of the newest (0 if none).
	Checkpoints    int64
	LastCheckpoint int64
	// Unsigned counts the records after the last checkpoint: chained, but
	// not yet covered by a signature (warden signs within the checkpoint
	// interval, and at shutdown).
	Unsigned int64
	// Key is the key the checkpoints were checked against. KeyFromChain
	// is true when no trusted key was given and the first checkpoint's
	// own key was used: that shows the chain is consistent, not who
	// signed it.
	Key          ed25519.PublicKey
	KeyFromChain bool
	// PrunedBefore is set when retention removed the records before it;
	// the checkpoint at PrunedBefore anchors the chain.
	PrunedBefore int64
	// Partial is true for an export that starts mid-chain: its first
	// record's link is taken as given, and vouched for by the first
	// checkpoint after it.
	Partial bool
	// Head is the signed head checked, if one was given: the store reaches
	// it and holds its record.
	Head *Head
	// MACs counts the record MACs checked (only with a MAC key).
	MACs int64
	// HeadEra is true when a checkpoint shows that the warden that wrote
	// it kept a signed head: then a missing head means it was removed.
	HeadEra bool
}

// VerifyOptions say what verification trusts. Nothing in them comes from
// the store: whoever can write it can change anything in it.
type VerifyOptions struct {
	// Key is the trusted public key; nil trusts the key the first
	// checkpoint names (the report says so).
	Key ed25519.PublicKey
	// Head, when set, is the signed head the store must reach: a store
	// that ends before it, or holds another record at its seq, fails.
	// Records after it need a valid MAC (MACKey), or they fail as
	// Unvouched.
	Head *Head
	// MACKey checks the record MACs; see Store.MACKey.
	MACKey []byte
}

// MACKey returns the key that checks record MACs: derived from the
// store's signing key, which only its owner can read. It returns an error
// wrapping fs.ErrNotExist without a key file.
func (s *Store) MACKey() ([]byte, error) {
	key, err := loadKey(s.KeyFile())
	if err != nil {
		return nil, err
	}
	return macKey(key), nil
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
func (s *Store) Verify(ctx context.Context, key ed25519.PublicKey) (*VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{Key: key})
}

// VerifyWith verifies the chain as Verify does, and against opts.Head and
// opts.MACKey.
func (s *Store) VerifyWith(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if s.version < 2 {
		return nil, fmt.Errorf("store schema version %d has no hash chain: open it with warden serve once to migrate it", s.version)
	}
	v := &chainVerifier{key: opts.Key, head: opts.Head, macKey: opts.MACKey}
	withMAC := s.version >= 4
	if !withMAC {
		v.macKey = nil
	}
	var rep *VerifyReport
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
		rep, verr = v.run(&dbSource{rows: rows, withMAC: true})
		if verr != nil {
			return verr
		}
		return rows.Err()
	})
	var ce *ChainError
	if errors.As(err, &ce) {
		return rep, ce
	}
	if err != nil {
		return rep, fmt.Errorf("verifying the chain: %w", err)
	}
	return rep, nil
}

// VerifyExport verifies records exported by Export (JSON lines), as Verify
// does for a store. An export that starts mid-chain (--since) is checked
// from its first record on.
func VerifyExport(r io.Reader, key ed25519.PublicKey) (*VerifyReport, error) {
	v := &chainVerifier{key: key, partial: true}
	return v.run(&exportSource{dec: json.NewDecoder(r)})
}

// row is one record as read back.
type row struct {
	fields
	body     []byte
	hash     []byte
	mac      []byte // nil where the store has none
	computed digest // the hash of fields at fields.seq
}

func (r *row) describe() string {
	var parts []string
	parts = append(parts, r.kind)
	id := func(s string) string {
		if s == "" {
			return `""`
		}
		return clean(s)
	}
	if r.hasCall {
		parts = append(parts, "call "+id(r.callID))
	}
	if r.hasSession {
		parts = append(parts, "session "+id(r.sessionID))
	}
	if r.hasAt {
		parts = append(parts, "at "+clean(r.at))
	}
	return strings.Join(parts, ", ")
}

// source yields rows in stored order; nil, nil at the end.
type source interface {
	next() (*row, error)
}

type dbSource struct {
	rows                                 *sql.Rows
	sid, cid, at, body, prev, hash, kind sql.RawBytes
	// withMAC: the query's last column is the record MAC.
	withMAC bool
	mac     sql.RawBytes
	dest    []any
}

func (d *dbSource) next() (*row, error) {
	if !d.rows.Next() {
		return nil, d.rows.Err()
	}
	r := &row{}
	var present int
	if d.dest == nil {
		d.dest = []any{nil, &d.kind, nil, &d.sid, &d.cid, &d.at, &d.body, &d.prev, &d.hash}
		if d.withMAC {
			d.dest = append(d.dest, &d.mac)
		}
	}
	d.dest[0], d.dest[2] = &r.seq, &present
	if err := d.rows.Scan(d.dest...); err != nil {
		return nil, err
	}
	if d.mac != nil {
		r.mac = bytes.Clone(d.mac)
	}
	r.kind = kindName(d.kind)
	r.hasSession, r.hasCall, r.hasAt = present&1 != 0, present&2 != 0, present&4 != 0
	r.sessionID, r.callID, r.at = string(d.sid), string(d.cid), string(d.at)
	r.bodyHash = sha256.Sum256(d.body)
	if r.kind == kindCheckpoint || r.kind == kindPrune || r.kind == kindApprovalChange {
		r.body = bytes.Clone(d.body)
	}
	copy(r.prevHash[:], d.prev) // a short prev_hash cannot match, as it must not
	if len(d.prev) != hashSize {
		r.prevHash[0] ^= 0xff
	}
	r.hash = bytes.Clone(d.hash)
	return r, nil
}

// kindName returns the stored kind, without allocating for known kinds.
func kindName(b []byte) string {
	switch string(b) {
	case kindSessionStart:
		return kindSessionStart
	case kindSessionUpdate:
		return kindSessionUpdate
	case kindSessionEnd:
		return kindSessionEnd
	case kindCallStart:
		return kindCallStart
	case kindCallFinish:
		return kindCallFinish
	case kindCheckpoint:
		return kindCheckpoint
	case kindPrune:
		return kindPrune
	}
	return string(b)
}

// exportLine is one line of an export.
type exportLine struct {
	Seq       int64           `json:"seq"`
	Kind      string          `json:"kind"`
	SessionID *string         `json:"session_id"`
	CallID    *string         `json:"call_id"`
	At        *string         `json:"at"`
	Body      json.RawMessage `json:"body"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

type exportSource struct {
	dec  *json.Decoder
	line int
}

func (e *exportSource) next() (*row, error) {
	var l exportLine
	e.line++
	if err := e.dec.Decode(&l); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("export record %d: %w", e.line, err)
	}
	body, err := exportedBody(l.Body)
	if err != nil {
		return nil, fmt.Errorf("export record %d (seq %d): %w", e.line, l.Seq, err)
	}
	r := &row{body: body}
	r.seq, r.kind = l.Seq, l.Kind
	if l.SessionID != nil {
		r.sessionID, r.hasSession = *l.SessionID, true
	}
	if l.CallID != nil {
		r.callID, r.hasCall = *l.CallID, true
	}
	if l.At != nil {
		r.at, r.hasAt = *l.At, true
	}
	r.bodyHash = sha256.Sum256(body)
	prev, err := decodeHex(l.PrevHash)
	if err != nil {
		return nil, fmt.Errorf("export record %d (seq %d): prev_hash: %w", e.line, l.Seq, err)
	}
	r.prevHash = digest(prev)
	if r.hash, err = decodeHex(l.Hash); err != nil {
		return nil, fmt.Errorf("export record %d (seq %d): hash: %w", e.line, l.Seq, err)
	}
	return r, nil
}

// chainVerifier walks a chain once, keeping only the end of what it has
// checked.
type chainVerifier struct {
	key     ed25519.PublicKey
	partial bool
	head    *Head
	macKey  []byte
	m       *macer

	rep      VerifyReport
	h        hasher
	started  bool
	prevSeq  int64
	prevHash digest
	// The largest "before" of the prune records seen, and of those a
	// checkpoint has signed since: only a signed prune record accounts
	// for a missing prefix, or anyone could delete one and append a
	// prune record to the unsigned end of the chain.
	pruneBefore, signedPruneBefore int64
}

// lookahead is how many records after a broken one are read to tell a
// change from an insertion, deletion or move, and how far a moved record
// is searched for.
const lookahead = 64

func (v *chainVerifier) run(src source) (*VerifyReport, error) {
	for {
		r, err := src.next()
		if err != nil {
			return &v.rep, err
		}
		if r == nil {
			break
		}
		broken, err := v.check(r)
		if err != nil {
			return &v.rep, err
		}
		if broken {
			var ahead []*row
			for len(ahead) < lookahead {
				n, err := src.next()
				if err != nil || n == nil {
					break
				}
				ahead = append(ahead, n)
			}
			return &v.rep, v.classify(r, ahead)
		}
	}
	if v.rep.PrunedBefore > 0 && v.signedPruneBefore < v.rep.PrunedBefore {
		from := max(v.signedPruneBefore, 1)
		return &v.rep, &ChainError{Seq: from, Tamper: Deleted,
			Detail: fmt.Sprintf("was deleted: records %d..%d are missing, and no signed prune record (which retention writes, and a checkpoint signs at once) removed them",
				from, v.rep.PrunedBefore-1)}
	}
	if h := v.head; h != nil {
		if v.rep.Last < h.Seq {
			return &v.rep, &ChainError{Seq: v.rep.Last + 1, Tamper: Truncated,
				Detail: fmt.Sprintf("was deleted, and records up to %d with it: the chain ends at record %d, but the signed head (written %s) names record %d: "+
					"the newest records were removed, or an older copy of the store was put in place", h.Seq, v.rep.Last, clean(h.At), h.Seq)}
		}
		v.rep.Head = h
	}
	if v.rep.Last > v.rep.LastCheckpoint {
		v.rep.Unsigned = v.rep.Last - max(v.rep.LastCheckpoint, v.rep.First-1)
	}
	return &v.rep, nil
}

// vouched checks what the signed head and the record MACs say about r,
// whose hash and link already hold.
func (v *chainVerifier) vouched(r *row) error {
	if v.macKey != nil && r.mac != nil {
		if v.m == nil {
			v.m = newMacer(v.macKey)
		}
		if !hmac.Equal(r.mac, v.m.mac(r.computed)) {
			return &ChainError{Seq: r.seq, Tamper: Unvouched, Record: r.describe(),
				Detail: "has a MAC that does not verify: warden did not write it as it is (it was changed or inserted, and its hashes recomputed)"}
		}
		v.rep.MACs++
	}
	h := v.head
	switch {
	case h == nil || r.seq < h.Seq:
	case r.seq == h.Seq:
		if r.computed != h.Hash {
			return &ChainError{Seq: r.seq, Tamper: Changed, Record: r.describe(),
				Detail: fmt.Sprintf("is not the record the signed head (written %s) names: it, or records before it, were rewritten with recomputed hashes", clean(h.At))}
		}
	case v.macKey == nil:
		return &ChainError{Seq: r.seq, Tamper: Unvouched, Record: r.describe(),
			Detail: fmt.Sprintf("comes after the signed head (record %d), and without the signing key its MAC cannot be checked: nothing vouches that warden wrote it", h.Seq)}
	case r.mac == nil:
		return &ChainError{Seq: r.seq, Tamper: Unvouched, Record: r.describe(),
			Detail: fmt.Sprintf("comes after the signed head (record %d) and has no MAC: warden did not write it", h.Seq)}
	}
	return nil
}

// check checks one record against the chain so far. It reports whether the
// record's hash or link is broken (classify then says how); a checkpoint
// that fails, or a gap, is returned as a *ChainError at once.
func (v *chainVerifier) check(r *row) (broken bool, err error) {
	r.computed = v.h.hash(&r.fields)
	linkOK := true
	switch {
	case !v.started:
		v.rep.First = r.seq
		switch {
		case r.seq == 1:
			linkOK = r.prevHash == digest{}
		case v.partial:
			v.rep.Partial = true
		case r.kind != kindCheckpoint:
			return false, &ChainError{Seq: 1, Tamper: Deleted, Record: "",
				Detail: fmt.Sprintf("was deleted: the chain starts at record %d, which is not a checkpoint that anchors a pruned chain", r.seq)}
		default:
			v.rep.PrunedBefore = r.seq
		}
	case r.seq > v.prevSeq+1:
		return false, v.gap(r)
	case r.seq <= v.prevSeq:
		return false, &ChainError{Seq: r.seq, Tamper: Reordered, Record: r.describe(),
			Detail: fmt.Sprintf("is out of order: it comes after record %d", v.prevSeq)}
	default:
		linkOK = r.prevHash == v.prevHash
	}
	if !linkOK || !bytes.Equal(r.computed[:], r.hash) {
		return true, nil
	}
	if err := v.vouched(r); err != nil {
		return false, err
	}
	switch r.kind {
	case kindCheckpoint:
		if err := v.checkpoint(r); err != nil {
			return false, err
		}
	case kindPrune:
		var p pruneJSON
		if json.Unmarshal(r.body, &p) == nil {
			v.pruneBefore = max(v.pruneBefore, p.Before)
		}
	}
	v.started = true
	v.prevSeq, v.prevHash = r.seq, r.computed
	v.rep.Records++
	v.rep.Last = r.seq
	return false, nil
}

func (v *chainVerifier) gap(r *row) *ChainError {
	from, to := v.prevSeq+1, r.seq-1
	detail := fmt.Sprintf("was deleted: the chain goes from record %d to record %d", v.prevSeq, r.seq)
	if to > from {
		detail = fmt.Sprintf("was deleted, and records up to %d with it: the chain goes from record %d to record %d", to, v.prevSeq, r.seq)
	}
	return &ChainError{Seq: from, Tamper: Deleted, Detail: detail}
}

// checkpoint checks a checkpoint's key and signature.
func (v *chainVerifier) checkpoint(r *row) error {
	var cp checkpointJSON
	if err := json.Unmarshal(r.body, &cp); err != nil {
		return &ChainError{Seq: r.seq, Tamper: Changed, Record: r.describe(), Detail: "is a checkpoint that cannot be read"}
	}
	named, err := ParsePublicKey(cp.Key)
	if err != nil {
		return &ChainError{Seq: r.seq, Tamper: Changed, Record: r.describe(), Detail: "is a checkpoint whose key cannot be read"}
	}
	if v.key == nil {
		v.key, v.rep.KeyFromChain = named, true
	}
	v.rep.Key = v.key
	covered := fmt.Sprintf("records %d..%d", v.rep.First, r.seq-1)
	if v.rep.LastCheckpoint > 0 {
		covered = fmt.Sprintf("records %d..%d", v.rep.LastCheckpoint+1, r.seq-1)
	}
	if !named.Equal(v.key) {
		return &ChainError{Seq: r.seq, Tamper: WrongKey, Record: r.describe(),
			Detail: fmt.Sprintf("is a checkpoint signed by key %s, not the trusted key %s: the chain up to it was rewritten and re-signed, or the key was replaced",
				cp.Key, FormatPublicKey(v.key))}
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Sig)
	if err != nil || (cp.V != 0 && cp.V != 2) || !ed25519.Verify(v.key, checkpointMessage(cp.V, r.seq, r.at, r.prevHash), sig) {
		return &ChainError{Seq: r.seq, Tamper: BadSignature, Record: r.describe(),
			Detail: fmt.Sprintf("is a checkpoint whose signature does not verify: %s were rewritten with recomputed hashes, or the checkpoint was altered", covered)}
	}
	v.rep.Checkpoints++
	v.rep.LastCheckpoint = r.seq
	if cp.V == 2 {
		v.rep.HeadEra = true
	}
	v.signedPruneBefore = v.pruneBefore
	return nil
}

// writtenAs returns the seq at which r's contents hash to its stored hash,
// searching near its present seq, or 0 if none does.
func (v *chainVerifier) writtenAs(r *row) int64 {
	if bytes.Equal(r.computed[:], r.hash) {
		return r.seq
	}
	f := r.fields
	for k := int64(1); k <= lookahead; k++ {
		for _, seq := range []int64{r.seq + k, r.seq - k} {
			if seq < 1 {
				continue
			}
			f.seq = seq
			if h := v.h.hash(&f); bytes.Equal(h[:], r.hash) {
				return seq
			}
		}
	}
	return 0
}

// classify says how record r, whose hash or link is broken, came to be
// where it is, using the records after it. Without the original there is
// no certainty; these are the explanations the chain supports.
func (v *chainVerifier) classify(r *row, ahead []*row) *ChainError {
	s := r.seq
	hashOK := bytes.Equal(r.computed[:], r.hash)
	linkOK := !v.started || r.prevHash == v.prevHash
	if !v.started && r.seq == 1 {
		linkOK = r.prevHash == digest{}
	}
	for _, n := range ahead {
		n.computed = v.h.hash(&n.fields)
	}
	var next *row
	if len(ahead) > 0 && ahead[0].seq == s+1 {
		next = ahead[0]
	}
	at := func(seq int64, t Tamper, detail string, args ...any) *ChainError {
		e := &ChainError{Seq: seq, Tamper: t, Detail: fmt.Sprintf(detail, args...)}
		if seq == s {
			e.Record = r.describe()
		}
		return e
	}
	w := v.writtenAs(r)
	switch {
	case linkOK && !hashOK:
		switch {
		case w != 0:
			return at(s, Reordered, "is out of order: it was written as record %d", w)
		case next != nil && next.prevHash == r.computed:
			return at(s, Changed, "was changed: its stored hash was altered (its contents still match what record %d links to)", s+1)
		case next != nil && v.writtenAs(next) == s:
			return at(s, Inserted, "was inserted: the record now numbered %d was written as %d", s+1, s)
		}
		return at(s, Changed, "was changed: its contents do not match its hash")
	case !linkOK && hashOK:
		if s > 1 && (next == nil || next.prevHash == r.computed) {
			return at(s-1, Changed, "was changed: its hash was recomputed, but record %d still links to the original", s)
		}
		return at(s, Changed, "was changed: its link to the record before it was altered and its hash recomputed")
	}
	// Neither the hash nor the link holds.
	switch {
	case w > s:
		for _, n := range ahead {
			if nw := v.writtenAs(n); nw != 0 && nw < n.seq {
				return at(s, Reordered, "is out of order: it was written as record %d (record %d was written as %d)", w, n.seq, nw)
			}
		}
		if w == s+1 {
			return at(s, Deleted, "was deleted: the records after it were renumbered to close the gap (the record now numbered %d was written as %d)", s, w)
		}
		return at(s, Deleted, "was deleted, and records up to %d (as first numbered) with it: the records after them were renumbered (the record now numbered %d was written as %d)", w-1, s, w)
	case w != 0 && w == s-1:
		return at(w, Inserted, "was inserted: the record now numbered %d was written as %d", s, w)
	case w != 0 && w < s:
		return at(w, Inserted, "was inserted, and records up to %d with it: the record now numbered %d was written as %d", s-1, s, w)
	case next != nil && v.writtenAs(next) == s:
		return at(s, Inserted, "was inserted: the record now numbered %d was written as %d", s+1, s)
	}
	return at(s, Changed, "was changed: neither its contents nor its link match the chain")
}
