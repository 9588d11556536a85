package http

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

// CredentialMarker replaces a credential value wherever an upstream
// echoes it, in a header or the body.
const CredentialMarker = "[masked:credential]"

var credentialMarker = []byte(CredentialMarker)

// minSecretPart is the shortest credential part scrubbed on its own (a
// Basic user name, a token after its scheme); shorter ones would mask
// ordinary words and carry little of the secret.
const minSecretPart = 4

// secrets are a backend's credential values and the parts of them an
// upstream might echo on their own, with the encodings an echo may take.
//
// Scrubbing is two steps. First every spelling in forms is replaced by
// the marker: raw, JSON-escaped (with and without HTML escapes and \/),
// percent-encoded (upper and lower case hex, query and path style),
// base64 and base64url (padded or not), and the base64 "cores": the part
// of the encoding that depends on the value alone, for each of the three
// alignments the value can have inside a longer base64 string. Then the
// result is read through decoding views (JSON escapes, percent-escapes,
// HTML entities, each other, white space removed): if any view still
// spells a value or a core (mixed escapes such as \u0073%33cret), the
// text cannot be cleaned by replacement and the caller withholds it.
type secrets struct {
	values [][]byte // the plain values
	cores  [][]byte // base64 cores of the values
	forms  [][]byte // every spelling replaced, longest first
	// longest is the longest value; reads past a cap go this far times
	// the widest encoding, so an echo that straddles the cap is seen
	// whole.
	longest int
}

// add records a value and its spellings.
func (s *secrets) add(v string) {
	if len(v) < minSecretPart {
		return
	}
	for _, have := range s.values {
		if string(have) == v {
			return
		}
	}
	s.values = append(s.values, []byte(v))
	s.longest = max(s.longest, len(v))
	add := func(f string) {
		if len(f) < minSecretPart {
			return
		}
		for _, have := range s.forms {
			if string(have) == f {
				return
			}
		}
		s.forms = append(s.forms, []byte(f))
	}
	add(v)
	for _, j := range jsonSpellings(v) {
		add(j)
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	add(percentAll(v, upperHex))
	add(percentAll(v, "0123456789abcdef"))
	add(lowerHexEscapes(url.QueryEscape(v)))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		add(enc.EncodeToString([]byte(v)))
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for j := range 3 {
			// A value starting j bytes into a base64 group of three:
			// the groups after the first boundary are its own.
			skip := (3 - j) % 3
			if n := (len(v) - skip) / 3 * 3; n >= 3 {
				c := enc.EncodeToString([]byte(v[skip : skip+n]))
				add(c)
				s.cores = append(s.cores, []byte(c))
			}
		}
	}
	sort.SliceStable(s.forms, func(i, j int) bool { return len(s.forms[i]) > len(s.forms[j]) })
}

// jsonSpellings are the ways a JSON encoder writes v inside a string.
func jsonSpellings(v string) []string {
	var out []string
	for _, escHTML := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escHTML)
		_ = enc.Encode(v)
		j := strings.TrimSuffix(b.String(), "\n")
		j = j[1 : len(j)-1]
		out = append(out, j, strings.ReplaceAll(j, "/", `\/`))
	}
	return out
}

// percentAll escapes every byte but unreserved ones.
func percentAll(v, hex string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func lowerHexEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = bytes.ToLower(b[i+1 : i+2])[0], bytes.ToLower(b[i+2 : i+3])[0]
		}
	}
	return string(b)
}

// replace replaces every known spelling in buf; it returns buf itself
// when there is none.
func (s *secrets) replace(buf []byte) []byte {
	for _, f := range s.forms {
		if bytes.Contains(buf, f) {
			buf = bytes.ReplaceAll(buf, f, credentialMarker)
		}
	}
	return buf
}

// maxDecodeRounds bounds how many decodings are stacked (a credential
// percent-encoded twice inside a JSON string is three).
const maxDecodeRounds = 4

// leaks reports whether buf still spells a value or a base64 core under
// the decodings an agent could apply: each of JSON escapes, percent-escapes
// and HTML entities alone, and all three at once, stacked up to
// maxDecodeRounds deep (so \u0025 then %41, or %255C then \u0041). The
// single decodings catch a value that itself looks like an escape of
// another kind.
func (s *secrets) leaks(buf []byte) bool {
	if len(s.values) == 0 || len(buf) == 0 {
		return false
	}
	if s.spells(buf) {
		return true
	}
	for _, dec := range []func([]byte) []byte{jsonUnescape, percentDecode, htmlUnescape} {
		if d := dec(buf); !bytes.Equal(d, buf) && s.spells(d) {
			return true
		}
	}
	v := buf
	for range maxDecodeRounds {
		d := htmlUnescape(percentDecode(jsonUnescape(v)))
		if bytes.Equal(d, v) {
			break
		}
		if s.spells(d) {
			return true
		}
		v = d
	}
	return false
}

// spells reports whether v contains a value, or a base64 core once line
// breaks (MIME wrapping, raw or JSON-escaped) are removed.
func (s *secrets) spells(v []byte) bool {
	for _, val := range s.values {
		if bytes.Contains(v, val) {
			return true
		}
	}
	if bytes.IndexAny(v, "\r\n\\") >= 0 {
		c := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			switch {
			case v[i] == '\r' || v[i] == '\n':
			case v[i] == '\\' && i+1 < len(v) && (v[i+1] == 'r' || v[i+1] == 'n'):
				i++
			default:
				c = append(c, v[i])
			}
		}
		v = c
	}
	for _, c := range s.cores {
		if bytes.Contains(v, c) {
			return true
		}
	}
	return false
}

func htmlUnescape(b []byte) []byte {
	if bytes.IndexByte(b, '&') < 0 {
		return b
	}
	return []byte(html.UnescapeString(string(b)))
}

// scrub replaces every spelling; ok is false when a value remains under
// a decoding view, and the text must be withheld.
func (s *secrets) scrub(buf []byte) (out []byte, ok bool) {
	out = s.replace(buf)
	return out, !s.leaks(out)
}

// scrubString scrubs one string: a header value, a JSON string, a note.
// A string that still spells a credential is replaced whole.
func (s *secrets) scrubString(v string) string {
	if len(s.values) == 0 {
		return v
	}
	out, ok := s.scrub([]byte(v))
	if !ok {
		return CredentialMarker
	}
	return string(out)
}

// jsonUnescape decodes JSON string escapes wherever they appear, leniently.
func jsonUnescape(buf []byte) []byte {
	if bytes.IndexByte(buf, '\\') < 0 {
		return buf
	}
	out := make([]byte, 0, len(buf))
	for i := 0; i < len(buf); i++ {
		c := buf[i]
		if c != '\\' || i+1 >= len(buf) {
			out = append(out, c)
			continue
		}
		switch e := buf[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
			i++
		case 'n':
			out = append(out, '\n')
			i++
		case 't':
			out = append(out, '\t')
			i++
		case 'r':
			out = append(out, '\r')
			i++
		case 'b', 'f':
			i++
		case 'u':
			r, n := unicodeEscape(buf[i:])
			if n == 0 {
				out = append(out, c)
				continue
			}
			out = utf8.AppendRune(out, r)
			i += n - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

// unicodeEscape reads \uXXXX (and a following low surrogate) at b.
func unicodeEscape(b []byte) (rune, int) {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range b[2:6] {
			if !isHex(c) {
				return 0, false
			}
			r = r<<4 | rune(unhex(c))
		}
		return r, true
	}
	r, ok := hex4(b)
	if !ok {
		return 0, 0
	}
	if r >= 0xd800 && r < 0xdc00 {
		if lo, ok := hex4(b[6:]); ok && lo >= 0xdc00 && lo < 0xe000 {
			return (r-0xd800)<<10 | (lo - 0xdc00) + 0x10000, 12
		}
	}
	return r, 6
}

// percentDecode decodes %XX wherever it appears, leniently.
func percentDecode(buf []byte) []byte {
	if bytes.IndexByte(buf, '%') < 0 {
		return buf
	}
	out := make([]byte, 0, len(buf))
	for i := 0; i < len(buf); i++ {
		if buf[i] == '%' && i+2 < len(buf) && isHex(buf[i+1]) && isHex(buf[i+2]) {
			out = append(out, unhex(buf[i+1])<<4|unhex(buf[i+2]))
			i += 2
			continue
		}
		out = append(out, buf[i])
	}
	return out
}
