package mask

import (
	"crypto/hmac"
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

// Rule masks one table column wherever its values end up in a result.
// In warden.yaml it is either a strategy name (`last4`) or a mapping
// (`{strategy: last4, on_expression: deny, allow_filter: true}`).
type Rule struct {
	// Strategy is how a value read straight from the column is masked:
	// redact, last4, email, hash, null, or partial(n,m).
	Strategy string `yaml:"strategy"`
	// OnExpression says what happens to a value computed from the column
	// (upper(card), card || '', string_agg(card), row_to_json(t)):
	// "redact" (default) masks the whole output, "deny" refuses the call.
	OnExpression string `yaml:"on_expression"`
	// AllowFilter lets the column be used in WHERE, JOIN, GROUP BY, ORDER
	// BY, HAVING and windows. Off by default: a filter reads the column one
	// bit at a time.
	AllowFilter bool `yaml:"allow_filter"`

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
	switch r.OnExpression {
	case "":
		r.OnExpression = "redact"
	case "redact", "deny":
	default:
		return warden.FieldErrorf("on_expression", "unknown value %q (redact or deny)", r.OnExpression)
	}
	return nil
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
	// macs holds keyed HMACs: hmac.New derives the pads from the key,
	// which costs more than hashing a short value, so they are reused.
	macs sync.Pool
}

// NewMasker returns a masker whose hash strategy is keyed with key.
func NewMasker(key []byte) *Masker {
	k := append([]byte(nil), key...)
	m := &Masker{}
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
