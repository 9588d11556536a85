package mask

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// unencodable replaces a value ScrubValue cannot walk or encode.
const unencodable = "[masked:unencodable]"

// ScrubValue scrubs every string and object key in a decoded JSON value
// (map[string]any, []any, string, json.Number, float64, bool, nil,
// json.RawMessage) and returns the new value and the detectors that
// fired, sorted and unique. A number that holds a finding (a card number
// stored as a number) becomes the scrubbed string ("[masked:credit_card]");
// other numbers and booleans are kept. A key with a finding is scrubbed
// too; when two keys of one object scrub to the same text, that member's
// value is "[masked]" (which of them it held would depend on map order).
// With secret_token, a string under a key that names a secret
// ({"password": "x"}, {"PGPASSWORD": "x"}, {"aws_secret_access_key": "x"},
// {"token": "x"}; keyRuleOf) is masked whole, as "password=x" is in text.
// Maps and slices are copied only where something changed; the input is
// never modified. Values of other types are encoded to JSON and, when
// something is detected, returned scrubbed as a json.RawMessage; a value
// that cannot be encoded becomes "[masked:unencodable]", so nothing passes
// unscanned.
func (d *Detectors) ScrubValue(v any) (any, []string) {
	b := newBudget(0)
	out, f, _ := d.scrubValue(v, &b)
	return out, f.names()
}

// scrubValue is ScrubValue; changed reports whether out is not v.
func (d *Detectors) scrubValue(v any, b *budget) (out any, f fired, changed bool) {
	switch x := v.(type) {
	case nil, bool:
		return v, 0, false
	case json.Number:
		return d.scrubNumber(string(x), v)
	case float64:
		return d.scrubNumber(strconv.FormatFloat(x, 'f', -1, 64), v)
	case float32:
		return d.scrubNumber(strconv.FormatFloat(float64(x), 'f', -1, 32), v)
	case int:
		return d.scrubNumber(strconv.FormatInt(int64(x), 10), v)
	case int64:
		return d.scrubNumber(strconv.FormatInt(x, 10), v)
	case int32:
		return d.scrubNumber(strconv.FormatInt(int64(x), 10), v)
	case uint:
		return d.scrubNumber(strconv.FormatUint(uint64(x), 10), v)
	case uint64:
		return d.scrubNumber(strconv.FormatUint(x, 10), v)
	case uint32:
		return d.scrubNumber(strconv.FormatUint(uint64(x), 10), v)
	case string:
		s, f, _ := d.scrubAt(x, 0, b)
		if f == 0 {
			return v, 0, false
		}
		return s, f, true
	case map[string]any:
		type member struct {
			key string
			val any
		}
		var changes map[string]member // by original key
		var all fired
		keysChanged := false
		for k, e := range x {
			ne, f, changed := d.scrubValue(e, b)
			if str, ok := e.(string); ok && d.keyedFires(k, str) {
				ne, f, changed = d.keyedMask(k, str), f|bitSecret, true
			}
			nk, kf, _ := d.scrubAt(k, 0, b)
			if kf != 0 {
				f |= kf
				changed, keysChanged = true, true
			}
			if !changed {
				continue
			}
			all |= f
			if changes == nil {
				changes = make(map[string]member)
			}
			changes[k] = member{nk, ne}
		}
		if changes == nil {
			return v, 0, false
		}
		out := make(map[string]any, len(x))
		if !keysChanged {
			for k, e := range x {
				out[k] = e
			}
			for k, m := range changes {
				out[k] = m.val
			}
			return out, all, true
		}
		for k, e := range x {
			m, ok := changes[k]
			if !ok {
				m = member{k, e}
			}
			if _, dup := out[m.key]; dup {
				out[m.key] = fallback
				continue
			}
			out[m.key] = m.val
		}
		return out, all, true
	case []any:
		var out []any
		var all fired
		for i, e := range x {
			ne, f, changed := d.scrubValue(e, b)
			if !changed {
				continue
			}
			all |= f
			if out == nil {
				out = append([]any(nil), x...)
			}
			out[i] = ne
		}
		if out == nil {
			return v, 0, false
		}
		return out, all, true
	case json.RawMessage:
		out, f, err := d.scrubJSON(x, 0, b)
		if err != nil {
			// Not JSON, so encoding it later fails anyway; make sure
			// what fails carries no detected value.
			s, f, _ := d.scrubAt(string(x), 0, b)
			if f == 0 {
				return v, 0, false
			}
			return json.RawMessage(s), f, true
		}
		if f == 0 {
			return v, 0, false
		}
		return json.RawMessage(out), f, true
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return unencodable, 0, true
		}
		out, f, err := d.scrubJSON(raw, 0, b)
		if err != nil {
			return unencodable, 0, true
		}
		if f == 0 {
			return v, 0, false
		}
		return json.RawMessage(out), f, true
	}
}

// scrubNumber scrubs a number written as num: v itself, or the scrubbed
// text when it holds a finding.
func (d *Detectors) scrubNumber(num string, v any) (any, fired, bool) {
	digits, ok := integerDigits(num)
	if !ok {
		return v, 0, false
	}
	out, f := d.pass(digits, d.enabled)
	if f == 0 {
		return v, 0, false
	}
	return out, f, true
}

// keyedMask is what a string named secret by key becomes: the marker, in
// place of the part keyedValue says is secret ("Bearer [masked:...]").
func (d *Detectors) keyedMask(key, value string) string {
	start, end := keyedValue(keyRuleOf(key), value)
	return value[:start] + secretMarker + value[end:]
}

// ScrubJSON scrubs every string, object key and number in a JSON
// document, such as a call's recorded arguments or a tool's result, and
// returns valid JSON with the same structure, key order and formatting
// wherever nothing was found; members are scrubbed as ScrubValue does
// them (a number with a finding becomes a string). When nothing is
// detected it returns raw itself. Invalid JSON is an Invalid
// *warden.Error, with no output.
func (d *Detectors) ScrubJSON(raw []byte) ([]byte, []string, error) {
	b := newBudget(len(raw))
	out, f, err := d.scrubJSON(raw, 0, &b)
	if err != nil {
		return nil, nil, err
	}
	return out, f.names(), nil
}

func (d *Detectors) scrubJSON(raw []byte, depth int, b *budget) ([]byte, fired, error) {
	if !json.Valid(raw) {
		return nil, 0, warden.Errorf(warden.Invalid, "the document is not valid JSON")
	}
	// One copy of the document, sliced per string: converting each string
	// separately would allocate once per cell.
	doc := string(raw)
	var out []byte // nil until something changes
	var all fired
	copied := 0
	replace := func(start, end int, s string) {
		if out == nil {
			out = make([]byte, 0, len(raw)+64)
		}
		out = append(out, raw[copied:start]...)
		out = appendJSONString(out, s)
		copied = end
	}
	// numbers scrubs the numbers in raw[lo:hi], which holds no string.
	numbers := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if c := raw[i]; c != '-' && !isDigit(c) {
				continue
			}
			end := i
			for end < hi && strings.IndexByte("+-.eE0123456789", raw[end]) >= 0 {
				end++
			}
			if v, f, changed := d.scrubNumber(doc[i:end], nil); changed {
				all |= f
				replace(i, end, v.(string))
			}
			i = end
		}
	}
	key, keyEnd := "", -1 // the last key, and where it ended
	i := 0
	for i < len(raw) {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		numbers(i, start)
		// The document is valid, so the string ends at the first quote
		// not escaped by a backslash.
		end, escaped := start+1, false
		for raw[end] != '"' {
			if raw[end] == '\\' {
				escaped = true
				end++
			}
			end++
		}
		end++ // past the closing quote
		i = end
		s, err := jsonString(doc[start:end], escaped)
		if err != nil {
			return nil, 0, err
		}
		if isKey(raw, end) {
			key, keyEnd = s, end
			if scrubbed, f, _ := d.scrubAt(s, depth, b); f != 0 {
				all |= f
				replace(start, end, scrubbed)
			}
			continue
		}
		scrubbed, f, _ := d.scrubAt(s, depth, b)
		if keyEnd >= 0 && onlyColon(raw[keyEnd:start]) && d.keyedFires(key, s) {
			scrubbed, f = d.keyedMask(key, s), f|bitSecret
		}
		keyEnd = -1
		if f == 0 {
			continue
		}
		all |= f
		replace(start, end, scrubbed)
	}
	numbers(i, len(raw))
	if out == nil {
		return raw, 0, nil
	}
	return append(out, raw[copied:]...), all, nil
}

// jsonString returns the value of the JSON string literal q.
func jsonString(q string, escaped bool) (string, error) {
	if !escaped {
		return q[1 : len(q)-1], nil
	}
	var s string
	if err := json.Unmarshal([]byte(q), &s); err != nil {
		return "", warden.Wrap(warden.Invalid, err, "the document is not valid JSON")
	}
	return s, nil
}

// onlyColon reports whether b, between a key and a value, is just the
// colon and blanks: the value belongs to that key.
func onlyColon(b []byte) bool {
	for _, c := range b {
		if c != ':' && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// isKey reports whether the string that ended before i is an object key.
func isKey(raw []byte, i int) bool {
	for ; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

// appendJSONString appends s as a JSON string. Bytes that are not valid
// UTF-8 are kept as they are, as in the input document.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			// U+2028 and U+2029 are valid JSON but break JavaScript;
			// encoding/json escapes them, so do the same.
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, `\u202`...)
				b = append(b, hex[r&0xf])
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size - 1
		}
	}
	return append(b, '"')
}
