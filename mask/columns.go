package mask

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// Rule masks one table column. In warden.yaml it is either a strategy
// name (`last4`) or a mapping (`{strategy: last4}`).
//
// For PostgreSQL backends the strategy is applied at the source: the
// statement that runs reads the column only through a subquery that
// masks it, so everything computed from it (expressions, filters, joins,
// counts) is computed over masked values.
type Rule struct {
	// Strategy is how the column's values are masked: redact, last4,
	// email, hash, null, or partial(n,m).
	Strategy string `yaml:"strategy"`
	// OnExpression and AllowFilter are no longer supported: with masking
	// at the source a value computed from the column, or a filter on it,
	// only ever sees masked values. They are kept so that a configuration
	// naming them fails with an explanation instead of "unknown field".
	OnExpression string `yaml:"on_expression"`
	AllowFilter  bool   `yaml:"allow_filter"`

	partialN, partialM int
}

// Redacted is what a redacted value becomes.
const Redacted = "[masked]"

var partialRE = regexp.MustCompile(`^partial\((\d+),\s*(\d+)\)$`)

// Validate checks the rule and fills defaults; paths are relative to it.
func (r *Rule) Validate() error {
	switch s := r.Strategy; {
	case s == "redact", s == "last4", s == "email", s == "hash", s == "null":
	case partialRE.MatchString(s):
		m := partialRE.FindStringSubmatch(s)
		r.partialN, _ = strconv.Atoi(m[1])
		r.partialM, _ = strconv.Atoi(m[2])
	case s == "":
		return warden.FieldErrorf("strategy", "missing strategy (redact, last4, email, hash, null, partial(n,m))")
	default:
		return warden.FieldErrorf("strategy", "unknown strategy %q (redact, last4, email, hash, null, partial(n,m))", s)
	}
	if r.partialN > 255 || r.partialM > 255 {
		return warden.FieldErrorf("strategy", "partial(n,m) keeps at most 255 characters at each end")
	}
	if r.OnExpression != "" {
		return warden.FieldErrorf("on_expression", "is no longer supported: masking is applied before the statement runs, so expressions over the column compute over masked values; remove it")
	}
	if r.AllowFilter {
		return warden.FieldErrorf("allow_filter", "is no longer supported: masking is applied before the statement runs, so filters compare masked values (a filter on a hash-masked column can match a hash the agent has seen); remove it")
	}
	return nil
}

// Ends reports how many letters and digits the strategy keeps at the
// start and at the end (last4: 0 and 4; partial(n,m): n and m); ok is
// false for the other strategies.
func (r *Rule) Ends() (n, m int, ok bool) {
	switch {
	case r.Strategy == "last4":
		return 0, 4, true
	case partialRE.MatchString(r.Strategy):
		mm := partialRE.FindStringSubmatch(r.Strategy)
		n, _ = strconv.Atoi(mm[1])
		m, _ = strconv.Atoi(mm[2])
		return n, m, true
	}
	return 0, 0, false
}

// Columns is the column rules of one backend, by "schema.table.column".
type Columns map[string]*Rule

// Validate checks every key is schema.table.column and every rule
// is valid; paths are relative to the backend's entry.
func (c Columns) Validate() error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if parts := strings.Split(k, "."); len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			errs = append(errs, warden.FieldErrorf(k, "must be schema.table.column, like public.customers.card_number"))
			continue
		}
		if c[k] == nil {
			errs = append(errs, warden.FieldErrorf(k, "missing rule"))
			continue
		}
		if err := c[k].Validate(); err != nil {
			errs = append(errs, warden.Under(k, err))
		}
	}
	return errors.Join(errs...)
}

// Masker applies column strategies; the hash strategy needs a key.
type Masker struct {
	key []byte
	// macs holds keyed HMACs: hmac.New derives the pads from the key,
	// which costs more than hashing a short value, so they are reused.
	macs sync.Pool
}

// NewMasker returns a masker whose hash strategy is keyed with key.
func NewMasker(key []byte) *Masker {
	k := append([]byte(nil), key...)
	m := &Masker{key: k}
	m.macs.New = func() any { return hmac.New(sha256.New, k) }
	return m
}

// Apply masks one JSON value read straight from a column with rule's
// strategy. NULL stays NULL; every other value becomes a string.
func (m *Masker) Apply(r *Rule, v any) any {
	if v == nil {
		return nil
	}
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case json.Number:
		s = string(t)
	default:
		s = fmt.Sprint(v)
	}
	switch r.Strategy {
	case "null":
		return nil
	case "last4":
		return keepEnds(s, 0, 4)
	case "email":
		if at := strings.LastIndexByte(s, '@'); at > 0 {
			return "***" + s[at:]
		}
		return Redacted
	case "hash":
		mac := m.macs.Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(s))
		var sum [sha256.Size]byte
		out := "hash:" + base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0])[:12])
		m.macs.Put(mac)
		return out
	case "redact":
		return Redacted
	}
	if r.partialN+r.partialM > 0 || partialRE.MatchString(r.Strategy) {
		return keepEnds(s, r.partialN, r.partialM)
	}
	return Redacted
}

// HMACPads returns the inner and outer padded keys of HMAC-SHA256 with the
// masker's key (RFC 2104): HMAC(k, v) = sha256(outer || sha256(inner ||
// v)). They let a database compute the hash strategy itself, with the pads
// bound as parameters and never written into statement text; the result
// equals Apply's.
func (m *Masker) HMACPads() (inner, outer []byte) {
	return hmacPads(m.key)
}

// RandomPads returns HMAC pads of a fresh random key, for statements whose
// output could show the pads (a plan prints bound values).
func RandomPads() (inner, outer []byte) {
	key := make([]byte, sha256.BlockSize)
	if _, err := rand.Read(key); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hmacPads(key)
}

func hmacPads(key []byte) (inner, outer []byte) {
	k := make([]byte, sha256.BlockSize)
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		copy(k, sum[:])
	} else {
		copy(k, key)
	}
	inner, outer = make([]byte, len(k)), make([]byte, len(k))
	for i, c := range k {
		inner[i], outer[i] = c^0x36, c^0x5c
	}
	return inner, outer
}

// keepEnds keeps the first n and last m letters and digits of s and
// replaces every other letter and digit with '*', keeping separators so
// the shape stays readable ("**** **** **** 1111"). A value too short to
// hide anything is redacted whole.
func keepEnds(s string, n, m int) string {
	total := 0
	for _, r := range s {
		if isAlnumRune(r) {
			total++
		}
	}
	if total <= n+m {
		return Redacted
	}
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for _, r := range s {
		if !isAlnumRune(r) {
			b.WriteRune(r)
			continue
		}
		if i < n || i >= total-m {
			b.WriteRune(r)
		} else {
			b.WriteByte('*')
		}
		i++
	}
	return b.String()
}

func isAlnumRune(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf
}

// ValidateColumns checks the column rules and the hash key; paths are
// relative to `masking`. Backends are checked by the caller, which knows
// them.
func (c *Config) ValidateColumns() error {
	var errs []error
	for backend, cols := range c.Columns {
		errs = append(errs, warden.Under("columns."+backend, cols.Validate()))
	}
	if c.HashKey != "" && len(c.HashKey) < 32 {
		errs = append(errs, warden.FieldErrorf("hash_key", "must be at least 32 characters"))
	}
	return errors.Join(errs...)
}
