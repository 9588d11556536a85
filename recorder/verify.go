package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/warden-mcp/warden"
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
	// Instance names the chain, in a store several instances write.
	Instance string
	Seq      int64
	Tamper   Tamper
	// Detail says what is wrong, completing "record Seq ...".
	Detail string
	// Record describes the record found at Seq, if there is one.
	Record string
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("record %d %s", e.Seq, e.Detail)
	if e.Instance != "" {
		s = fmt.Sprintf("instance %s: %s", warden.Printable(e.Instance), s)
	}
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
	// AfterHead counts the records after Head.Seq that the head's MAC part
	// names but nothing given vouches for: verified with the public key
	// only, which cannot check that MAC (or the records' own). They are
	// chained, not signed: warden signs the head within a moment of
	// writing, and when it stops.
	AfterHead int64
	// MACs counts the record MACs checked (only with a MAC key).
	MACs int64
	// HeadEra is true when a checkpoint shows that the warden that wrote
	// it kept a signed head: then a missing head means it was removed.
	HeadEra bool
	// Chains, for a store several instances write, is the report of each
	// instance's chain, by instance; the fields above then sum them.
	Chains []ChainReport
}

// ChainReport is what verification established about one instance's chain.
type ChainReport struct {
	Instance string
	*VerifyReport
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

// VerifyChain verifies the records src yields, in stored order, against
// opts: every record's hash must match its contents and link to the record
// before it, seqs must be contiguous, and every checkpoint must be signed by
// opts.Key (nil trusts the key the first checkpoint names; the report says
// so). It returns a *ChainError for the first problem found, naming the
// record; other errors are failures to read.
func VerifyChain(src Source, opts VerifyOptions) (*VerifyReport, error) {
	v := &chainVerifier{key: opts.Key, head: opts.Head, macKey: opts.MACKey}
	return v.run(src)
}

// VerifyExport verifies records exported by Export (JSON lines), as Verify
// does for a store. An export that starts mid-chain (--since) is checked
// from its first record on.
//
// An export of a store several instances write (PostgreSQL) carries each
// record's instance, one chain after another: each chain is verified on
// its own, the report has one ChainReport per instance (the totals sum
// them) and a ChainError names the instance. A chain whose records are
// not together in the file is refused.
func VerifyExport(r io.Reader, key ed25519.PublicKey) (*VerifyReport, error) {
	src := &exportSource{dec: json.NewDecoder(r)}
	first, err := src.peek()
	if err != nil {
		return &VerifyReport{}, err
	}
	if first == nil || first.instance == "" {
		v := &chainVerifier{key: key, partial: true}
		rep, err := v.run(src)
		if err == nil && src.instances {
			err = fmt.Errorf("export record %d names an instance, and the records before it do not", src.line)
		}
		return rep, err
	}
	total := &VerifyReport{Key: key, Partial: true}
	done := map[string]bool{}
	for {
		next, err := src.peek()
		if err != nil {
			return total, err
		}
		if next == nil {
			return total, nil
		}
		inst := next.instance
		if inst == "" {
			return total, fmt.Errorf("export record %d names no instance, and the records before it do", src.line)
		}
		if done[inst] {
			return total, &ChainError{Instance: inst, Seq: next.Seq, Tamper: Reordered, Record: next.describe(),
				Detail: "is apart from the rest of its instance's chain: an export holds each chain in one stretch"}
		}
		done[inst] = true
		v := &chainVerifier{key: key, partial: true}
		rep, err := v.run(&chainOf{src: src, instance: inst})
		if err != nil {
			var ce *ChainError
			if errors.As(err, &ce) {
				ce.Instance = inst
			}
			return rep, err
		}
		total.Chains = append(total.Chains, ChainReport{Instance: inst, VerifyReport: rep})
		total.Records += rep.Records
		total.Checkpoints += rep.Checkpoints
		total.Unsigned += rep.Unsigned
		total.KeyFromChain = total.KeyFromChain || rep.KeyFromChain
		if total.Key == nil {
			total.Key = rep.Key
		}
	}
}

// chainOf yields the records of one instance from an export, stopping at
// the first record of another.
type chainOf struct {
	src      *exportSource
	instance string
}

func (c *chainOf) Next() (*Row, error) {
	r, err := c.src.peek()
	if err != nil || r == nil || r.instance != c.instance {
		return nil, err
	}
	return c.src.Next()
}

// Row is one record as read back.
type Row struct {
	Fields
	Body     []byte
	Hash     []byte
	MAC      []byte // nil where the store has none
	computed Digest // the hash of fields at fields.seq
	instance string // the chain, for a record read from an export
}

func (r *Row) describe() string {
	var parts []string
	parts = append(parts, r.Kind)
	id := func(s string) string {
		if s == "" {
			return `""`
		}
		return warden.Printable(s)
	}
	if r.HasCall {
		parts = append(parts, "call "+id(r.CallID))
	}
	if r.HasSession {
		parts = append(parts, "session "+id(r.SessionID))
	}
	if r.HasAt {
		parts = append(parts, "at "+warden.Printable(r.At))
	}
	return strings.Join(parts, ", ")
}

// Source yields rows in stored order; nil, nil at the end.
type Source interface {
	Next() (*Row, error)
}

// KindName returns the stored kind, without allocating for known kinds.
func KindName(b []byte) string {
	switch string(b) {
	case KindSessionStart:
		return KindSessionStart
	case KindSessionUpdate:
		return KindSessionUpdate
	case KindSessionEnd:
		return KindSessionEnd
	case KindCallStart:
		return KindCallStart
	case KindCallFinish:
		return KindCallFinish
	case KindCheckpoint:
		return KindCheckpoint
	case KindPrune:
		return KindPrune
	}
	return string(b)
}

// exportLine is one line of an export.
type exportLine struct {
	Instance  *string         `json:"instance"`
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
	// next is a record read ahead by peek.
	next *Row
	// instances is set once a record named an instance.
	instances bool
}

// peek returns the next record without taking it.
func (e *exportSource) peek() (*Row, error) {
	if e.next == nil {
		r, err := e.read()
		if err != nil || r == nil {
			return nil, err
		}
		e.next = r
	}
	return e.next, nil
}

func (e *exportSource) Next() (*Row, error) {
	if r := e.next; r != nil {
		e.next = nil
		return r, nil
	}
	return e.read()
}

func (e *exportSource) read() (*Row, error) {
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
	r := &Row{Body: body}
	r.Seq, r.Kind = l.Seq, l.Kind
	if l.Instance != nil {
		r.instance, e.instances = *l.Instance, true
	}
	if l.SessionID != nil {
		r.SessionID, r.HasSession = *l.SessionID, true
	}
	if l.CallID != nil {
		r.CallID, r.HasCall = *l.CallID, true
	}
	if l.At != nil {
		r.At, r.HasAt = *l.At, true
	}
	r.BodyHash = sha256.Sum256(body)
	prev, err := decodeHex(l.PrevHash)
	if err != nil {
		return nil, fmt.Errorf("export record %d (seq %d): prev_hash: %w", e.line, l.Seq, err)
	}
	r.PrevHash = Digest(prev)
	if r.Hash, err = decodeHex(l.Hash); err != nil {
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
	m       *Macer

	rep      VerifyReport
	h        Hasher
	started  bool
	prevSeq  int64
	prevHash Digest
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

func (v *chainVerifier) run(src Source) (*VerifyReport, error) {
	for {
		r, err := src.Next()
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
			var ahead []*Row
			for len(ahead) < lookahead {
				n, err := src.Next()
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
					"the newest records were removed, or an older copy of the store was put in place", h.Seq, v.rep.Last, warden.Printable(h.At), h.Seq)}
		}
		if v.rep.Last < h.Claimed {
			return &v.rep, &ChainError{Seq: v.rep.Last + 1, Tamper: Truncated,
				Detail: fmt.Sprintf("was deleted, and records up to %d with it: the chain ends at record %d, but the head's MAC part names record %d (its signature record %d): "+
					"the newest records were removed, or an older copy of the store was put in place", h.Claimed, v.rep.Last, h.Claimed, h.Seq)}
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
func (v *chainVerifier) vouched(r *Row) error {
	if v.macKey != nil && r.MAC != nil {
		if v.m == nil {
			v.m = NewMacer(v.macKey)
		}
		if !hmac.Equal(r.MAC, v.m.MAC(r.computed)) {
			return &ChainError{Seq: r.Seq, Tamper: Unvouched, Record: r.describe(),
				Detail: "has a MAC that does not verify: warden did not write it as it is (it was changed or inserted, and its hashes recomputed)"}
		}
		v.rep.MACs++
	}
	h := v.head
	switch {
	case h == nil:
	case r.Seq < h.Seq:
		if r.Seq == h.Signed && r.computed != h.SignedHash {
			return &ChainError{Seq: r.Seq, Tamper: Changed, Record: r.describe(),
				Detail: fmt.Sprintf("is not the record the signed head (written %s) names: it, or records before it, were rewritten with recomputed hashes", warden.Printable(h.SignedAt))}
		}
	case r.Seq == h.Seq:
		if r.computed != h.Hash {
			return &ChainError{Seq: r.Seq, Tamper: Changed, Record: r.describe(),
				Detail: fmt.Sprintf("is not the record the signed head (written %s) names: it, or records before it, were rewritten with recomputed hashes", warden.Printable(h.At))}
		}
	case v.macKey == nil && r.Seq <= h.Claimed:
		// Named by the head's MAC part, which the public key cannot
		// check: reported as such, never as signed.
		if r.Seq == h.Claimed && r.computed != h.ClaimedHash {
			return &ChainError{Seq: r.Seq, Tamper: Changed, Record: r.describe(),
				Detail: fmt.Sprintf("is not the record the head's MAC part names (after the signed head, record %d): it, or records before it, were rewritten", h.Seq)}
		}
		v.rep.AfterHead++
	case v.macKey == nil:
		return &ChainError{Seq: r.Seq, Tamper: Unvouched, Record: r.describe(),
			Detail: fmt.Sprintf("comes after the signed head (record %d), and without the signing key its MAC cannot be checked: nothing vouches that warden wrote it", h.Seq)}
	case r.MAC == nil:
		return &ChainError{Seq: r.Seq, Tamper: Unvouched, Record: r.describe(),
			Detail: fmt.Sprintf("comes after the signed head (record %d) and has no MAC: warden did not write it", h.Seq)}
	}
	return nil
}

// check checks one record against the chain so far. It reports whether the
// record's hash or link is broken (classify then says how); a checkpoint
// that fails, or a gap, is returned as a *ChainError at once.
func (v *chainVerifier) check(r *Row) (broken bool, err error) {
	r.computed = v.h.Hash(&r.Fields)
	linkOK := true
	switch {
	case !v.started:
		v.rep.First = r.Seq
		switch {
		case r.Seq == 1:
			linkOK = r.PrevHash == Digest{}
		case v.partial:
			v.rep.Partial = true
		case r.Kind != KindCheckpoint:
			return false, &ChainError{Seq: 1, Tamper: Deleted, Record: "",
				Detail: fmt.Sprintf("was deleted: the chain starts at record %d, which is not a checkpoint that anchors a pruned chain", r.Seq)}
		default:
			v.rep.PrunedBefore = r.Seq
		}
	case r.Seq > v.prevSeq+1:
		return false, v.gap(r)
	case r.Seq <= v.prevSeq:
		return false, &ChainError{Seq: r.Seq, Tamper: Reordered, Record: r.describe(),
			Detail: fmt.Sprintf("is out of order: it comes after record %d", v.prevSeq)}
	default:
		linkOK = r.PrevHash == v.prevHash
	}
	if !linkOK || !bytes.Equal(r.computed[:], r.Hash) {
		return true, nil
	}
	if err := v.vouched(r); err != nil {
		return false, err
	}
	switch r.Kind {
	case KindCheckpoint:
		if err := v.checkpoint(r); err != nil {
			return false, err
		}
	case KindPrune:
		var p PruneJSON
		if json.Unmarshal(r.Body, &p) == nil {
			v.pruneBefore = max(v.pruneBefore, p.Before)
		}
	}
	v.started = true
	v.prevSeq, v.prevHash = r.Seq, r.computed
	v.rep.Records++
	v.rep.Last = r.Seq
	return false, nil
}

func (v *chainVerifier) gap(r *Row) *ChainError {
	from, to := v.prevSeq+1, r.Seq-1
	detail := fmt.Sprintf("was deleted: the chain goes from record %d to record %d", v.prevSeq, r.Seq)
	if to > from {
		detail = fmt.Sprintf("was deleted, and records up to %d with it: the chain goes from record %d to record %d", to, v.prevSeq, r.Seq)
	}
	return &ChainError{Seq: from, Tamper: Deleted, Detail: detail}
}

// checkpoint checks a checkpoint's key and signature.
func (v *chainVerifier) checkpoint(r *Row) error {
	var cp CheckpointJSON
	if err := json.Unmarshal(r.Body, &cp); err != nil {
		return &ChainError{Seq: r.Seq, Tamper: Changed, Record: r.describe(), Detail: "is a checkpoint that cannot be read"}
	}
	named, err := ParsePublicKey(cp.Key)
	if err != nil {
		return &ChainError{Seq: r.Seq, Tamper: Changed, Record: r.describe(), Detail: "is a checkpoint whose key cannot be read"}
	}
	if v.key == nil {
		v.key, v.rep.KeyFromChain = named, true
	}
	v.rep.Key = v.key
	covered := fmt.Sprintf("records %d..%d", v.rep.First, r.Seq-1)
	if v.rep.LastCheckpoint > 0 {
		covered = fmt.Sprintf("records %d..%d", v.rep.LastCheckpoint+1, r.Seq-1)
	}
	if !named.Equal(v.key) {
		return &ChainError{Seq: r.Seq, Tamper: WrongKey, Record: r.describe(),
			Detail: fmt.Sprintf("is a checkpoint signed by key %s, not the trusted key %s: the chain up to it was rewritten and re-signed, or the key was replaced",
				cp.Key, FormatPublicKey(v.key))}
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Sig)
	if err != nil || (cp.V != 0 && cp.V != 2) || !ed25519.Verify(v.key, CheckpointMessage(cp.V, r.Seq, r.At, r.PrevHash), sig) {
		return &ChainError{Seq: r.Seq, Tamper: BadSignature, Record: r.describe(),
			Detail: fmt.Sprintf("is a checkpoint whose signature does not verify: %s were rewritten with recomputed hashes, or the checkpoint was altered", covered)}
	}
	v.rep.Checkpoints++
	v.rep.LastCheckpoint = r.Seq
	if cp.V == 2 {
		v.rep.HeadEra = true
	}
	v.signedPruneBefore = v.pruneBefore
	return nil
}

// writtenAs returns the seq at which r's contents hash to its stored hash,
// searching near its present seq, or 0 if none does.
func (v *chainVerifier) writtenAs(r *Row) int64 {
	if bytes.Equal(r.computed[:], r.Hash) {
		return r.Seq
	}
	f := r.Fields
	for k := int64(1); k <= lookahead; k++ {
		for _, seq := range []int64{r.Seq + k, r.Seq - k} {
			if seq < 1 {
				continue
			}
			f.Seq = seq
			if h := v.h.Hash(&f); bytes.Equal(h[:], r.Hash) {
				return seq
			}
		}
	}
	return 0
}

// classify says how record r, whose hash or link is broken, came to be
// where it is, using the records after it. Without the original there is
// no certainty; these are the explanations the chain supports.
func (v *chainVerifier) classify(r *Row, ahead []*Row) *ChainError {
	s := r.Seq
	hashOK := bytes.Equal(r.computed[:], r.Hash)
	linkOK := !v.started || r.PrevHash == v.prevHash
	if !v.started && r.Seq == 1 {
		linkOK = r.PrevHash == Digest{}
	}
	for _, n := range ahead {
		n.computed = v.h.Hash(&n.Fields)
	}
	var next *Row
	if len(ahead) > 0 && ahead[0].Seq == s+1 {
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
		case next != nil && next.PrevHash == r.computed:
			return at(s, Changed, "was changed: its stored hash was altered (its contents still match what record %d links to)", s+1)
		case next != nil && v.writtenAs(next) == s:
			return at(s, Inserted, "was inserted: the record now numbered %d was written as %d", s+1, s)
		}
		return at(s, Changed, "was changed: its contents do not match its hash")
	case !linkOK && hashOK:
		if s > 1 && (next == nil || next.PrevHash == r.computed) {
			return at(s-1, Changed, "was changed: its hash was recomputed, but record %d still links to the original", s)
		}
		return at(s, Changed, "was changed: its link to the record before it was altered and its hash recomputed")
	}
	// Neither the hash nor the link holds.
	switch {
	case w > s:
		for _, n := range ahead {
			if nw := v.writtenAs(n); nw != 0 && nw < n.Seq {
				return at(s, Reordered, "is out of order: it was written as record %d (record %d was written as %d)", w, n.Seq, nw)
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

// exportedBody returns the stored body bytes from an export's body value.
func exportedBody(raw json.RawMessage) ([]byte, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("body is neither an object nor a string")
	}
	return raw, nil
}

func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != HashSize {
		return nil, fmt.Errorf("%d bytes; want %d", len(b), HashSize)
	}
	return b, nil
}
