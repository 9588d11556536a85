package flows

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// What is remembered and what is looked up are both tokens of text,
// normalised the same way (case-folded, trimmed), so a value is found by
// construction rather than by enumerating encodings of stored values: the
// arguments of an outgoing call are decoded (percent, JSON escapes,
// base64 at any alignment, nested JSON), cut into tokens, and each token's
// fingerprint is looked up.
//
// A remembered value yields:
//   - the whole value, when it has at least MinLength characters;
//   - its words (cut at whitespace and URL/JSON punctuation, so an email
//     address stays one word) of at least MinLength characters: in short
//     values (a name, an address: four words or fewer) those that start
//     with a capital letter, in any value identifier-like words (with an '@', letters
//     and digits mixed, or 16 characters or more) so prose does not make
//     ordinary words unsendable;
//   - its digits joined, when the value is a number written with
//     separators (a card or phone number) of at least MinDigits digits,
//     and each run of at least MinDigits digits; a code written in groups
//     (an IBAN, "DE89 3704 ...") also without its separators;
//   - in a value masked by warden (it contains "**"), each shorter run of
//     at least 4 digits, the card suffix the mask left, in a class of its
//     own (see suffixPrefix).
// Booleans, nulls, numbers with fewer than MinDigits digits and a short
// list of common words are never remembered.

// suffixPrefix marks the digits a mask left visible (a card's last four):
// too few to remember as a number, they are remembered in a class of
// their own that only a value consisting of those digits alone can match
// ("4242", 4242, "**** 4242"), never digits inside a date, an amount with
// decimals or an id. No word or value contains the control character.
const suffixPrefix = "\x01suffix:"

// suffixOf returns the digits of a value that is a short number alone
// (masking characters and spaces before it allowed), or "".
func suffixOf(v string) string {
	if len(v) < 4 {
		return ""
	}
	v = strings.TrimSpace(v)
	for len(v) > 0 && (v[0] == '*' || v[0] == 'x' || v[0] == 'X' || v[0] == '#' || v[0] == '-' || v[0] == ' ') {
		v = v[1:]
	}
	if len(v) >= 4 && len(v) < 6 && allDigits(v) {
		return v
	}
	return ""
}

// tokenizer turns text into fingerprinted tokens.
type tokenizer struct {
	k0, k1    uint64
	minLen    int
	minDigits int
	buf       []byte
}

// maxDepth bounds how many encodings deep a value is decoded.
const maxDepth = 3

// maxWhole is the longest whole value remembered or looked up; longer
// text is remembered by its words.
const maxWhole = 512

func (t *tokenizer) fp(tok string) uint64 {
	t.buf = appendFold(t.buf[:0], tok)
	return sipHash(t.k0, t.k1, t.buf)
}

// appendFold appends s case-folded (lower case; ASCII fast path).
func appendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(dst[:0], strings.ToLower(s)...)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// isSep reports whether r separates words: whitespace and the
// punctuation of URLs, JSON, CSV and SQL. '@', '.', '-', '_', '+' and '*'
// do not, so addresses, domains and masked values stay whole.
func isSep(r rune) bool {
	switch r {
	case '?', '&', '=', '/', ',', ';', ':', '"', '\'', '`', '(', ')', '[', ']', '{', '}', '<', '>', '|', '\\', '#', '!', '$', '^', '~':
		return true
	}
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// asciiSep is isSep for ASCII, as a table.
var asciiSep = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = isSep(rune(c))
	}
	return t
}()

// hasSep reports whether s has a word separator.
func hasSep(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			return strings.IndexFunc(s[i:], isSep) >= 0
		} else if asciiSep[c] {
			return true
		}
	}
	return false
}

// trimWord trims punctuation that ends sentences or joins words.
func trimWord(w string) string {
	for len(w) > 0 && trimmable(w[0]) {
		w = w[1:]
	}
	for len(w) > 0 && trimmable(w[len(w)-1]) {
		w = w[:len(w)-1]
	}
	return w
}

func trimmable(c byte) bool {
	return c == '.' || c == '-' || c == '_' || c == '+' || c == '*' || c == '%'
}

// words calls fn on each word of s.
func words(s string, fn func(w string)) {
	start := -1
	for i, r := range s {
		if r < utf8.RuneSelf && !asciiSep[r] || r >= utf8.RuneSelf && !isSep(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			if w := trimWord(s[start:i]); w != "" {
				fn(w)
			}
			start = -1
		}
	}
	if start >= 0 {
		if w := trimWord(s[start:]); w != "" {
			fn(w)
		}
	}
}

// digitRuns calls fn on each maximal run of ASCII digits in s.
func digitRuns(s string, fn func(run string)) {
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			fn(s[start:i])
			start = -1
		}
	}
}

// numberGroups calls fn on each run of digits that stands alone, between
// non-alphanumeric characters or the ends of s: the groups a number is
// written or split in ("4111 1111", "555-0107"). Digits inside words and
// hex ids ("7f1c2a9e") are not number groups.
func numberGroups(s string, fn func(run string)) {
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && !(i < len(s) && isAlpha(s[i])) && !(start > 0 && isAlpha(s[start-1])) {
			fn(s[start:i])
		}
		start = -1
	}
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80 }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// numberLike reports whether s is a number written with separators
// ("4111 1111 1111 1111", "+1 (555) 010-9999").
func numberLike(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '+' || c == '(' || c == ')' || c == '/':
		default:
			return false
		}
	}
	return digits > 0
}

// compactCode returns s without spaces, dashes and dots, lower-cased,
// when s is a code written in groups: ASCII letters and digits with such
// separators, at most 64 bytes.
func compactCode(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b strings.Builder
	sep := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9' || 'a' <= c && c <= 'z':
			b.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c == ' ' || c == '-' || c == '.':
			sep = true
		default:
			return "", false
		}
	}
	return b.String(), sep
}

func joinDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// properNoun reports whether w starts with an upper-case letter: in a
// short value (a name, an address) those are the words that identify;
// lower-case words there are ordinary text ("interested in support").
func properNoun(w string) bool {
	r, _ := utf8.DecodeRuneInString(w)
	return unicode.IsUpper(r)
}

func hasLetterAndDigit(s string) bool {
	var l, d bool
	for _, r := range s {
		switch {
		case unicode.IsDigit(r):
			d = true
		case unicode.IsLetter(r):
			l = true
		}
	}
	return l && d
}

// common words are never remembered: statuses, booleans spelled out and
// frequent English words a result and a request can share by chance.
var common = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
active inactive enabled disabled pending approved rejected cancelled canceled closed opened
shipped delivered processing completed complete failed success error warning unknown
default standard premium basic customer customers order orders invoice invoices payment
payments amount total currency status created updated deleted true false null none
yes no about after again against among before being below between could every first
other their there these thing think those three through under until where which while
would https http mailto email phone address street avenue please thanks thank hello
monday tuesday wednesday thursday friday saturday sunday january february march april
june july august september october november december today tomorrow yesterday`) {
		m[w] = true
	}
	return m
}()

// maxRepeats: a token found in this many values of one result is a
// category (a status, a city many customers share, a common first name),
// not something that identifies where data came from; it is not
// remembered. Values that identify (an email, a card, a full name) are
// unique or nearly so.
const maxRepeats = 3

// remember returns the fingerprints of the values in a JSON document.
func (t *tokenizer) remember(doc []byte) []uint64 {
	counts := map[uint64]int{}
	var value []uint64
	add := func(tok string) { value = append(value, t.fp(tok)) }
	t.rememberJSON(doc, func(v string, depth int) {
		value = value[:0]
		t.rememberString(v, add, depth)
		slices.Sort(value)
		for i, fp := range value {
			if i == 0 || value[i-1] != fp {
				counts[fp]++
			}
		}
	}, 0)
	out := make([]uint64, 0, len(counts))
	for fp, n := range counts {
		if n < maxRepeats {
			out = append(out, fp)
		}
	}
	return out
}

// rememberJSON calls value for each string and integer value of a JSON
// document (numbers as their digits).
//
// A result is valid JSON (the pipeline checked it, and the tool encoded
// it), so at depth 0 it is not validated again; nested documents are.
func (t *tokenizer) rememberJSON(doc []byte, value func(v string, depth int), depth int) {
	walk := walkJSON
	if depth == 0 {
		walk = walkValidJSON
	}
	// Keys are structure (column and field names); values are data.
	walk(doc, "", func(_, v string, isKey, isNumber bool) {
		switch {
		case isKey:
		case isNumber:
			d := strings.TrimLeft(v, "-")
			if allDigits(d) && len(d) >= t.minDigits {
				value(d, depth)
			}
		default:
			value(v, depth)
		}
	})
}

func (t *tokenizer) rememberString(v string, add func(string), depth int) {
	s := strings.TrimSpace(v)
	if s == "" {
		return
	}
	if depth < maxDepth && (s[0] == '{' || s[0] == '[') && json.Valid([]byte(s)) {
		t.rememberJSON([]byte(s), func(v string, depth int) { t.rememberString(v, add, depth) }, depth+1)
		return
	}
	lower := strings.ToLower(s)
	if n := utf8.RuneCountInString(lower); n >= t.minLen && len(lower) <= maxWhole && !numberLike(lower) && !common[lower] {
		add(lower)
	}
	var ws []string
	words(s, func(w string) { ws = append(ws, w) })
	short := len(ws) <= 4
	for _, w := range ws {
		lw := strings.ToLower(w)
		if allDigits(w) || utf8.RuneCountInString(w) < t.minLen || common[lw] {
			continue
		}
		if len(ws) == 1 || short && properNoun(w) || strings.ContainsRune(w, '@') || hasLetterAndDigit(w) || len(w) >= 16 {
			add(lw)
		}
	}
	if numberLike(s) {
		if d := joinDigits(s); len(d) >= t.minDigits {
			add(d)
		}
	} else if c, ok := compactCode(s); ok && len(joinDigits(s)) >= t.minDigits {
		// An account number, IBAN or reference written in groups
		// ("DE89 3704 0044 0532 0130 00"): also without its separators,
		// and its digits alone.
		add(c)
		add(joinDigits(s))
	}
	masked := strings.Contains(s, "**")
	digitRuns(s, func(run string) {
		switch {
		case len(run) >= t.minDigits:
			add(run)
		case masked && len(run) >= 4:
			add(suffixPrefix + run)
		}
	})
}

// hit is a remembered value found in an argument.
type hit struct {
	fp       uint64
	argument string
}

// scanner looks up every candidate token of a call's arguments.
type scanner struct {
	t      *tokenizer
	lookup func(fp uint64) bool
	hit    *hit
	// groups are the digit runs in argument order, for numbers split
	// across separators or fields.
	groups []group
	work   int
}

type group struct {
	digits, argument string
}

// maxWork bounds the tokens one call's arguments are cut into; past it
// the scan stops and the call is treated as carrying a remembered value
// (fail closed), which only a pathological request reaches.
const maxWork = 200_000

func (s *scanner) try(tok, argument string) bool {
	if s.hit != nil {
		return true
	}
	s.work++
	if len(tok) < 4 || len(tok) > maxWhole {
		return false
	}
	fp := s.t.fp(tok)
	if s.lookup(fp) {
		s.hit = &hit{fp: fp, argument: argument}
		return true
	}
	return false
}

// scanArgs scans a tool call's arguments (a JSON object). It returns the
// first remembered value found, or nil.
func (s *scanner) scanArgs(args []byte) *hit {
	s.scanJSON(args, "", -1)
	if s.hit == nil {
		s.scanGroups()
	}
	if s.hit == nil && s.work > maxWork {
		s.hit = &hit{argument: "(arguments too large to scan)"}
	}
	return s.hit
}

// notSent are the arguments every tool takes that never reach the
// backend: the agent's stated purpose (recorded, shown to approvers) and
// the approval it names. A purpose that names a customer is not a flow.
var notSent = map[string]bool{"purpose": true, warden.ApprovalIDArg: true}

// scanJSON scans every key and value of a JSON document, in order.
// depth -1 is a tool call's arguments, which the tool decoded strictly.
func (s *scanner) scanJSON(doc []byte, prefix string, depth int) {
	walk := walkJSON
	top := depth < 0
	if top {
		walk, depth = walkValidJSON, 0
	}
	walk(doc, prefix, func(path, v string, isKey, isNumber bool) {
		if s.hit != nil || s.work > maxWork {
			return
		}
		if top && notSent[path] {
			return
		}
		if isNumber {
			numberGroups(strings.TrimLeft(v, "-"), func(run string) { s.groups = append(s.groups, group{run, path}) })
			if !s.try(v, path) {
				if d := suffixOf(v); d != "" {
					s.try(suffixPrefix+d, path)
				}
			}
			return
		}
		// Data can travel as a key too.
		s.scanString(v, path, depth)
	})
}

func pathJoin(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

// scanString looks up a string's tokens and, up to maxDepth, those of
// every decoding of it an agent could use.
func (s *scanner) scanString(v, argument string, depth int) {
	s.scanText(v, argument, depth, true)
}

// scanText is scanString; groups says whether v's digit runs are new
// (percent and escape decoding leave digits as they were: counting them
// again would join a number with itself).
func (s *scanner) scanText(v, argument string, depth int, groups bool) {
	if s.hit != nil || s.work > maxWork {
		return
	}
	trimmed := strings.TrimSpace(v)
	if trimmed == "" {
		return
	}
	if s.try(trimmed, argument) {
		return
	}
	if d := suffixOf(trimmed); d != "" && s.try(suffixPrefix+d, argument) {
		return
	}
	if trimWord(trimmed) != trimmed || hasSep(trimmed) {
		words(v, func(w string) { s.try(w, argument) })
	}
	if s.hit != nil {
		return
	}
	// Quoted SQL (or shell) literals, whole.
	if strings.IndexByte(v, '\'') >= 0 {
		for _, lit := range quoted(v) {
			if s.try(strings.TrimSpace(lit), argument) {
				return
			}
		}
	}
	if groups {
		numberGroups(v, func(run string) { s.groups = append(s.groups, group{run, argument}) })
	}
	if depth >= maxDepth {
		return
	}
	if (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid([]byte(trimmed)) {
		s.scanJSON([]byte(trimmed), argument, depth+1)
	}
	if strings.IndexByte(v, '%') >= 0 || strings.IndexByte(v, '+') >= 0 {
		if d := percentDecode(v); d != v {
			s.scanText(d, argument+" (percent-encoded)", depth+1, false)
		}
	}
	if strings.IndexByte(v, '\\') >= 0 {
		var d string
		if json.Unmarshal([]byte(`"`+strings.ReplaceAll(v, `"`, `\"`)+`"`), &d) == nil && d != v {
			s.scanText(d, argument+" (escaped)", depth+1, false)
		}
	}
	if len(v) < 8 {
		return
	}
	base64Runs(v, func(run string) {
		if s.hit != nil {
			return
		}
		for _, d := range decodeBase64(run) {
			s.scanString(d, argument+" (base64)", depth+1)
		}
	})
}

// scanGroups looks up numbers split into groups: each run of digits
// joined with the runs after it, within a string and across fields, up
// to the 19 digits of the longest card number.
func (s *scanner) scanGroups() {
	var acc []byte
	for i := range s.groups {
		acc = append(acc[:0], s.groups[i].digits...)
		for j := i + 1; j < len(s.groups); j++ {
			acc = append(acc, s.groups[j].digits...)
			if len(acc) > 19 {
				break
			}
			if len(acc) < 4 {
				continue
			}
			s.work++
			fp := sipHash(s.t.k0, s.t.k1, acc)
			if s.lookup(fp) {
				arg := s.groups[i].argument
				if s.groups[j].argument != arg {
					arg += " to " + s.groups[j].argument
				}
				s.hit = &hit{fp: fp, argument: arg + " (digits joined)"}
				return
			}
		}
	}
}

// quoted returns the single-quoted literals in s (” is a quote).
func quoted(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return out
		}
		s = s[i+1:]
		var b strings.Builder
		closed := false
		for j := 0; j < len(s); j++ {
			if s[j] == '\'' {
				if j+1 < len(s) && s[j+1] == '\'' {
					b.WriteByte('\'')
					j++
					continue
				}
				s = s[j+1:]
				closed = true
				break
			}
			b.WriteByte(s[j])
		}
		out = append(out, b.String())
		if !closed {
			return out
		}
	}
}

// percentDecode decodes %XX escapes and '+' as a space, leniently: a
// malformed escape stays as written.
func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isB64(c byte) bool { return b64Chars[c] }

var b64Chars = func() (t [256]bool) {
	for c := range t {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	return t
}()

// base64Runs calls fn on each run of base64 characters (either alphabet)
// of 8 or more, padding dropped.
func base64Runs(s string, fn func(run string)) {
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isB64(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start >= 8 && mixedCase(s[start:i]) {
			fn(s[start:i])
		}
		start = -1
	}
}

// mixedCase reports whether run has upper- and lower-case letters: the
// base64 of text almost always has both, and words, dates, hex ids and
// numbers, which are most runs, do not. Skipping those keeps the scan
// cheap.
func mixedCase(run string) bool {
	var upper, lower bool
	for i := 0; i < len(run); i++ {
		c := run[i]
		upper = upper || 'A' <= c && c <= 'Z'
		lower = lower || 'a' <= c && c <= 'z'
	}
	return upper && lower
}

// decodeBase64 returns the printable texts run decodes to, at each of
// the four alignments (an encoded value can start mid-run, after other
// characters of the same alphabet).
func decodeBase64(run string) []string {
	var out []string
	enc := base64.RawStdEncoding
	if strings.ContainsAny(run, "-_") {
		enc = base64.RawURLEncoding
	}
	for off := 0; off < 4 && len(run)-off >= 6; off++ {
		r := run[off:]
		r = r[:len(r)-len(r)%4+min(len(r)%4, 3)]
		if len(r)%4 == 1 {
			r = r[:len(r)-1]
		}
		b, err := enc.DecodeString(r)
		if err != nil {
			continue
		}
		if printable(b) {
			// One alignment decodes to text; the others are noise. Taking
			// the first keeps nested decoding linear in the input.
			return append(out, string(b))
		}
	}
	return out
}

// printable reports whether b is text: valid UTF-8, mostly printable.
func printable(b []byte) bool {
	if len(b) < 4 || !utf8.Valid(b) {
		return false
	}
	bad := 0
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			bad++
		}
	}
	return bad*10 <= len(b)
}
