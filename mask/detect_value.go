package mask

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// unencodable replaces a value ScrubValue cannot walk or encode.
const unencodable = "[masked:unencodable]"

// ScrubValue scrubs every string in a decoded JSON value (map[string]any,
// []any, string, json.Number, float64, bool, nil, json.RawMessage) and
// returns the new value and the detectors that fired, sorted and unique.
// Object keys are kept as they are; numbers and booleans are not
// scrubbed. With secret_token, a string under a key that names a password
// ({"password": "x"}, {"PGPASSWORD": "x"}) is masked whole, as
// "password=x" is in text. Maps and slices are copied only where
// something changed; the input is never modified. Values of other types
// are encoded to JSON and, when something is detected, returned scrubbed
// as a json.RawMessage; a value that cannot be encoded becomes
// "[masked:unencodable]", so nothing passes unscanned.
func (d *Detectors) ScrubValue(v any) (any, []string) {
	out, f, _ := d.scrubValue(v)
	return out, f.names()
}

// scrubValue is ScrubValue; changed reports whether out is not v.
func (d *Detectors) scrubValue(v any) (out any, f fired, changed bool) {
	switch x := v.(type) {
	case nil, bool, float64, float32, int, int64, int32, uint, uint64, uint32, json.Number:
		return v, 0, false
	case string:
		s, f := d.scrub(x)
		if f == 0 {
			return v, 0, false
		}
		return s, f, true
	case map[string]any:
		var out map[string]any
		var all fired
		for k, e := range x {
			ne, f, changed := d.scrubValue(e)
			if str, ok := e.(string); ok && isPasswordKey(k) && d.maskPassword(str) {
				ne, f, changed = secretMarker, f|bitSecret, true
			}
			if !changed {
				continue
			}
			all |= f
			if out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			out[k] = ne
		}
		if out == nil {
			return v, 0, false
		}
		return out, all, true
	case []any:
		var out []any
		var all fired
		for i, e := range x {
			ne, f, changed := d.scrubValue(e)
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
		out, f, err := d.scrubJSON(x)
		if err != nil {
			// Not JSON, so encoding it later fails anyway; make sure
			// what fails carries no detected value.
			s, f := d.scrub(string(x))
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
		out, f, err := d.scrubJSON(raw)
		if err != nil {
			return unencodable, 0, true
		}
		if f == 0 {
			return v, 0, false
		}
		return json.RawMessage(out), f, true
	}
}

// ScrubJSON scrubs every string value in a JSON document, such as a call's
// recorded arguments, and returns valid JSON with the same structure, key
// order and formatting; object keys, numbers and literals are copied as
// they are, and string values are scrubbed as ScrubValue does. When nothing is detected it returns raw itself. Invalid JSON
// is an Invalid *warden.Error, with no output.
func (d *Detectors) ScrubJSON(raw []byte) ([]byte, []string, error) {
	out, f, err := d.scrubJSON(raw)
	if err != nil {
		return nil, nil, err
	}
	return out, f.names(), nil
}

func (d *Detectors) scrubJSON(raw []byte) ([]byte, fired, error) {
	if !json.Valid(raw) {
		return nil, 0, warden.Errorf(warden.Invalid, "the document is not valid JSON")
	}
	// One copy of the document, sliced per string: converting each string
	// separately would allocate once per cell.
	doc := string(raw)
	var out []byte // nil until something changes
	var all fired
	copied := 0
	passwordEnd := -1 // end of the last key if it names a password
	for i := 0; i < len(raw); {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
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
			passwordEnd = -1
			if isPasswordKey(s) {
				passwordEnd = end
			}
			continue
		}
		scrubbed, f := d.scrub(s)
		if passwordEnd >= 0 && onlyColon(raw[passwordEnd:start]) && d.maskPassword(s) {
			scrubbed, f = secretMarker, f|bitSecret
		}
		passwordEnd = -1
		if f == 0 {
			continue
		}
		all |= f
		if out == nil {
			out = make([]byte, 0, len(raw)+64)
		}
		out = append(out, raw[copied:start]...)
		out = appendJSONString(out, scrubbed)
		copied = end
	}
	if out == nil {
		return raw, 0, nil
	}
	return append(out, raw[copied:]...), all, nil
}

// maskPassword reports whether value, found under an object key that
// names a password, is to be masked: {"password": "x"} is the JSON form of
// password=x.
func (d *Detectors) maskPassword(value string) bool {
	if d.enabled&bitSecret == 0 || value == "" || value == secretMarker {
		return false
	}
	for i := range d.run {
		if d.run[i].bit == bitSecret {
			_, allowed := d.run[i].allow[value]
			return !allowed
		}
	}
	return false
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
