package mask

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"
	"unsafe"

	yaml "go.yaml.in/yaml/v3"
)

// Detectors look through encodings. A value can hold a secret in base64
// or base64url (a ConfigMap's binaryData, a registry auth, a kubeconfig's
// client-key-data), gzip inside base64 (the Helm release driver), a JSON
// string quoted with escapes in text, or an embedded JSON or YAML document
// (an annotation that copies an object, a kubeconfig kept in a ConfigMap,
// an object quoted in an error message). Before the detectors give up on a
// value they decode those layers, and a finding inside masks the whole
// encoded value: a base64 run or an escaped literal is replaced by one
// marker, and so is an embedded YAML document whose finding the text scan
// could not remove in place, and a quoted object that is a Secret. Embedded
// JSON is scrubbed member by member, as ScrubJSON does. Decoded binary is
// read only for its text (runs of printable ASCII), so that bytes that
// happen to spell "x@y.io" amid others are no finding.
//
// Work is bounded: every layer but gzip is smaller than the one around it,
// a value is decoded at most maxLayers deep (at the limit, base64 content
// is read as text, and content that holds yet another layer is masked),
// and gzip may produce at most inflateBase + inflatePerByte bytes per input
// byte over one call, beyond which what cannot be inspected is masked.
// Layers are judged with fires (does anything inside fire?); only the
// outermost value is rewritten.

const (
	// maxLayers bounds the decoding depth: each base64 decoding, each
	// gunzip and each embedded document counts one. The Helm release
	// driver needs five to reach a Secret's data inside a manifest
	// (base64, gzip, JSON, YAML, base64).
	maxLayers = 6
	// minRun is the shortest run of base64 characters decoded: 8
	// characters are 6 bytes, room for "pwd=xy".
	minRun = 8
	// stackRun is the longest run decoded on the stack.
	stackRun = 128
	// wrapLine is the shortest line of a line-wrapped base64 block (64 in
	// PEM, 76 in MIME) continued onto the next line.
	wrapLine = 60

	inflateBase    = 16 << 20
	inflatePerByte = 16
)

// Layer hints from candidates: what a value could hold besides plain text.
type hint uint8

const (
	hRun  hint = 1 << iota // a run of minRun base64 characters
	hDoc                   // starts like a JSON document
	hYAML                  // has a line break and a ':' or '='
	hGzip                  // starts with the gzip magic
	hEsc                   // has a '"' and a '\\': maybe an escaped JSON string
)

// budget bounds the bytes gzip may produce during one call. scanned
// counts the bytes every layer looked at, so that fuzzing can check the
// work stays linear in the input and what gzip produced.
type budget struct {
	inflate, inflated int
	scanned           int
}

func newBudget(n int) budget { return budget{inflate: inflateBase + inflatePerByte*n} }

// b64val maps both base64 alphabets to their values; 0xff is not base64.
var b64val = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = uint8(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// decodeB64 appends to dst the bytes that the base64 characters of run
// encode, from its first; other bytes ('=', line breaks) are skipped and a
// last lone character is dropped. Standard and URL alphabets decode alike.
func decodeB64(dst []byte, run string) []byte {
	var acc uint32
	n := 0
	for i := 0; i < len(run); i++ {
		v := b64val[run[i]]
		if v == 0xff {
			continue
		}
		acc = acc<<6 | uint32(v)
		if n++; n == 4 {
			dst = append(dst, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	switch n {
	case 2:
		dst = append(dst, byte(acc>>4))
	case 3:
		dst = append(dst, byte(acc>>10), byte(acc>>2))
	}
	return dst
}

// nextRun returns the next run of base64 characters in s at or after i
// that is at least minRun long: [start, end) with any '=' padding in it,
// or start < 0. A run continues across a line break when the line before
// it is long and a whole number of quads, as wrapped base64 is. Markers are
// skipped whole.
func nextRun(s string, i int) (int, int) {
	for i < len(s) {
		c := s[i]
		if c == '[' && strings.HasPrefix(s[i:], markerPrefix) {
			if k := markerLen(s[i:]); k > 0 {
				i += k
				continue
			}
		}
		if b64val[c] == 0xff {
			i++
			continue
		}
		start, line := i, i
		for {
			for i < len(s) && b64val[s[i]] != 0xff {
				i++
			}
			// Wrapped: "....\n" or "....\r\n" and indentation, then more.
			if n := i - line; n >= wrapLine && n%4 == 0 {
				k := i
				if k < len(s) && s[k] == '\r' {
					k++
				}
				if k < len(s) && s[k] == '\n' {
					k++
					for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
						k++
					}
					if k < len(s) && b64val[s[k]] != 0xff {
						i, line = k, k
						continue
					}
				}
			}
			break
		}
		end := i
		for pad := 0; pad < 2 && end < len(s) && s[end] == '='; pad++ {
			end++
		}
		if i-start >= minRun {
			return start, end
		}
		i = end
		if i == start {
			i++
		}
	}
	return -1, -1
}

// markerLen returns the length of the marker s starts with ("[masked:"
// and a detector name or "unencodable", then ']'), or 0: text that only
// looks like the start of one is not skipped.
func markerLen(s string) int {
	for k := len(markerPrefix); k < len(s) && k < len(markerPrefix)+24; k++ {
		switch c := s[k]; {
		case c == ']':
			return k + 1
		case c != '_' && (c < 'a' || c > 'z'):
			return 0
		}
	}
	return 0
}

// replaceRuns replaces every base64 run of s whose decoded content has a
// finding by the marker of what was found.
func (d *Detectors) replaceRuns(s string, depth int, b *budget) (string, fired) {
	return spliceMarkers(s, func(lo int) (int, int, int, fired) {
		start, end := nextRun(s, lo)
		if start < 0 {
			return -1, -1, 0, 0
		}
		return start, end, end, d.runFinding(s[start:end], depth, b)
	})
}

// spliceMarkers rebuilds s with spans replaced by the marker of what was
// found in them. next returns the next candidate span [start, end) at or
// after lo, what was found in it (0: keep it) and where to look next; a
// negative start ends the scan.
func spliceMarkers(s string, next func(lo int) (start, end, resume int, f fired)) (string, fired) {
	var out strings.Builder
	var all fired
	copied := 0
	for lo := 0; lo < len(s); {
		start, end, resume, f := next(lo)
		if start < 0 {
			break
		}
		lo = resume
		if f == 0 {
			continue
		}
		all |= f
		out.WriteString(s[copied:start])
		out.WriteString(markerOf(f))
		copied = end
	}
	if all == 0 {
		return s, 0
	}
	out.WriteString(s[copied:])
	return out.String(), all
}

// runFinding reports what the content of one base64 run holds. The run is
// decoded from its first character and, when its padding shows the first
// characters belong to something else, aligned on its end; a run with a
// '/' is also decoded from after its last '/' (a path glued to a value).
func (d *Detectors) runFinding(run string, depth int, b *budget) fired {
	letter, word := false, isLetter(run[0])
	for i := 0; i < len(run); i++ {
		c := run[i]
		letter = letter || isLetter(c)
		word = word && (i == 0 || class[c]&cLower != 0)
	}
	if !letter || word {
		// Base64 of anything with three or more text bytes in a row, or
		// of gzip, has a letter: the first of each quad of text is one.
		// It is not a word ("Lovelace", "delivered"), either: a quad of
		// text in lower case needs its first byte in 'h'-'~', and text
		// whose every third byte is there is not what is stored.
		return 0
	}
	if f := d.decodedFires(run, depth, b); f != 0 {
		return f
	}
	if strings.HasSuffix(run, "=") {
		n := 0
		for i := 0; i < len(run); i++ {
			if b64val[run[i]] != 0xff {
				n++
			}
		}
		if r := n % 4; r != 0 && n > minRun {
			if f := d.decodedFires(run[r:], depth, b); f != 0 {
				return f
			}
		}
	}
	if k := strings.LastIndexByte(run, '/'); k >= 0 && len(run)-k-1 >= minRun {
		return d.decodedFires(run[k+1:], depth, b)
	}
	return 0
}

// decodedFires decodes run and reports what its content holds. Short runs
// decode on the stack and, when the content is plain text with nothing to
// find (an ordinary word that happens to be base64), cost no allocation.
func (d *Detectors) decodedFires(run string, depth int, b *budget) fired {
	var buf [stackRun * 3 / 4]byte
	var dec []byte
	if len(run) <= stackRun {
		dec = decodeB64(buf[:0], run)
	} else {
		dec = decodeB64(make([]byte, 0, len(run)*3/4+3), run)
	}
	if len(dec) == 0 {
		return 0
	}
	s := unsafe.String(unsafe.SliceData(dec), len(dec))
	b.scanned += len(run)
	if !isGzip(s) && !utf8.ValidString(s) {
		// Binary: only its text is read, so that bytes that happen to
		// spell "x@y.io" or "pwd=" amid others are not a finding.
		for i := 0; i < len(s); {
			j := i
			for j < len(s) && textByte(s[j]) {
				j++
			}
			if j-i >= minSecret {
				island := s[i:j]
				want, hints := candidates(island)
				if f := d.findAny(island, want); f != 0 {
					return f
				}
				if hints != 0 {
					if f := d.fires(strings.Clone(island), depth+1, b); f != 0 {
						return f
					}
				}
			}
			i = j + 1
		}
		return 0
	}
	want, hints := candidates(s)
	if f := d.findAny(s, want); f != 0 {
		return f
	}
	if hints == 0 {
		return 0
	}
	return d.fires(string(dec), depth+1, b)
}

// fires reports what s, a decoded layer at depth, holds: the detectors'
// findings in its text, then in the layers inside it.
func (d *Detectors) fires(s string, depth int, b *budget) fired {
	b.scanned += len(s)
	if !isGzip(s) && !utf8.ValidString(s) {
		var f fired
		for i := 0; i < len(s) && f == 0; {
			j := i
			for j < len(s) && textByte(s[j]) {
				j++
			}
			if j-i >= minSecret {
				f |= d.fires(s[i:j], depth, b)
			}
			i = j + 1
		}
		return f
	}
	want, hints := candidates(s)
	if f := d.findAny(s, want); f != 0 {
		return f
	}
	if hints == 0 {
		return 0
	}
	if depth >= maxLayers {
		// Too deep to look inside: what still holds a layer the text
		// scan cannot read (compressed, a document, escaped strings)
		// fails closed; base64 is read as text once more.
		switch {
		case hints&hGzip != 0,
			hints&hDoc != 0 && isJSONDoc(s),
			hints&hYAML != 0 && yamlish(s):
			return bitSecret
		case hints&hEsc != 0:
			if start, _ := nextEscaped(s, 0); start >= 0 {
				return bitSecret
			}
		}
		if hints&hRun != 0 {
			return d.lastRuns(s)
		}
		return 0
	}
	if hints&hGzip != 0 {
		inflated, ok := b.gunzip(s)
		if !ok {
			return bitSecret
		}
		return d.fires(inflated, depth+1, b)
	}
	var f fired
	if hints&hDoc != 0 && isJSONDoc(s) {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return bitSecret // valid but nested too deep for the decoder
		}
		return d.judgeValue(v, depth+1, b)
	}
	if hints&hYAML != 0 && yamlish(s) {
		if g, ok := d.judgeYAML(s, depth+1, b); ok {
			f |= g
		}
	}
	if f == 0 && d.enabled&bitSecret != 0 {
		if start, _ := copiedObject(s, 0); start >= 0 {
			return bitSecret
		}
	}
	if hints&hRun != 0 {
		for lo := 0; f == 0; {
			start, end := nextRun(s, lo)
			if start < 0 {
				break
			}
			lo = end
			f |= d.runFinding(s[start:end], depth, b)
		}
	}
	if hints&hEsc != 0 {
		for lo := 0; f == 0; {
			start, end := nextEscaped(s, lo)
			if start < 0 {
				break
			}
			v, err := jsonString(s[start-1:end+1], true)
			if err != nil {
				lo = start
				continue
			}
			lo = end + 1
			f |= d.fires(v, depth+1, b)
		}
	}
	return f
}

// maxObjectTries bounds how many '{' in one text are tried as the start
// of a JSON object, so that text of many braces is not decoded from each.
const maxObjectTries = 8

// copiedObject finds, at or after lo in text that is not itself a JSON
// document, an embedded JSON object that is a secret as a whole
// (objectFires: a Kubernetes Secret with data, quoted in an error
// message or a log line after a prefix) and returns its span.
func copiedObject(s string, lo int) (int, int) {
	if strings.IndexByte(s[lo:], '{') < 0 || !strings.Contains(s[lo:], `"kind"`) && !(strings.Contains(s[lo:], `"name"`) && strings.Contains(s[lo:], `"value"`)) {
		return -1, -1
	}
	for tries := 0; tries < maxObjectTries; tries++ {
		k := strings.IndexByte(s[lo:], '{')
		if k < 0 {
			return -1, -1
		}
		start := lo + k
		dec := json.NewDecoder(strings.NewReader(s[start:]))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			lo = start + 1
			continue
		}
		end := start + int(dec.InputOffset())
		if anyObjectFires(v) {
			return start, end
		}
		lo = end
	}
	return -1, -1
}

// replaceCopiedObjects replaces the embedded JSON objects of s that are
// secrets as a whole by the secret marker.
func (d *Detectors) replaceCopiedObjects(s string) (string, fired) {
	if d.enabled&bitSecret == 0 {
		return s, 0
	}
	return spliceMarkers(s, func(lo int) (int, int, int, fired) {
		start, end := copiedObject(s, lo)
		return start, end, end, bitSecret
	})
}

// nextEscaped returns the content [start, end) of the next JSON string
// literal in s at or after i that has an escape in it: text that quotes
// JSON ("payload: {\"token\": \"x\"}"), whose escapes hide what
// the detectors read ("\n    token: x", "ada\u0040example.com").
func nextEscaped(s string, i int) (int, int) {
	for {
		q := strings.IndexByte(s[i:], '"')
		if q < 0 {
			return -1, -1
		}
		start := i + q + 1
		escaped := false
		k := start
		for k < len(s) && s[k] != '"' && s[k] != '\n' {
			if s[k] == '\\' {
				escaped = true
				k++
			}
			k++
		}
		if k >= len(s) {
			return -1, -1
		}
		if s[k] == '\n' {
			i = k // a literal does not span lines
			continue
		}
		if escaped {
			return start, k
		}
		// Not a literal with escapes, or not a literal at all (a quote
		// in prose pairs every later one wrongly): the closing quote
		// may open the next.
		i = k
	}
}

// replaceEscaped replaces the content of every escaped JSON string literal
// in s whose decoded value has a finding by the marker of what was found.
func (d *Detectors) replaceEscaped(s string, depth int, b *budget) (string, fired) {
	return spliceMarkers(s, func(lo int) (int, int, int, fired) {
		start, end := nextEscaped(s, lo)
		if start < 0 {
			return -1, -1, 0, 0
		}
		v, err := jsonString(s[start-1:end+1], true)
		if err != nil {
			return start, end, start, 0
		}
		return start, end, end + 1, d.fires(v, depth+1, b)
	})
}

func isGzip(s string) bool { return len(s) >= 2 && s[0] == 0x1f && s[1] == 0x8b }

// textByte reports whether c is printable ASCII, a tab or a line break:
// what the text in binary data is made of.
func textByte(c byte) bool { return c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r' }

// lastRuns judges the base64 runs of s, a layer at maxLayers: their
// content is read as text but not decoded further; content that holds
// another layer (gzip, a document, base64) fails closed.
func (d *Detectors) lastRuns(s string) fired {
	for lo := 0; ; {
		start, end := nextRun(s, lo)
		if start < 0 {
			return 0
		}
		lo = end
		run := s[start:end]
		if !decodableRun(run) {
			continue
		}
		dec := string(decodeB64(nil, run))
		if isGzip(dec) {
			return bitSecret
		}
		if !utf8.ValidString(dec) {
			continue // binary, not text
		}
		want, hints := candidates(dec)
		if f := d.findAny(dec, want); f != 0 {
			return f
		}
		if hints&(hRun|hDoc) != 0 || hints&hYAML != 0 && yamlish(dec) {
			return bitSecret
		}
		if hints&hEsc != 0 {
			if start, _ := nextEscaped(dec, 0); start >= 0 {
				return bitSecret
			}
		}
	}
}

// findAny reports which enabled detectors find a span in s that is not
// allowlisted. It calls the scanners directly, so that s, which may point
// into a stack buffer, does not escape.
func (d *Detectors) findAny(s string, want fired) fired {
	var f fired
	for i := range d.run {
		det := &d.run[i]
		if want&det.bit == 0 {
			continue
		}
	scans:
		for si := range det.scans {
			for lo := 0; lo < len(s); {
				start, end := scanKind(det.bit, si, s, lo)
				if start < 0 {
					break
				}
				if _, ok := det.allow[s[start:end]]; !ok {
					f |= det.bit
					break scans
				}
				lo = end
			}
		}
	}
	return f
}

// scanKind runs the kind's si-th scanner, as kinds lists them.
func scanKind(bit fired, si int, s string, lo int) (int, int) {
	switch bit {
	case bitSecret:
		switch si {
		case 0:
			return nextPEM(s, lo)
		case 1:
			return nextAWSSecret(s, lo)
		}
		return nextSecret(s, lo)
	case bitIBAN:
		return nextIBAN(s, lo)
	case bitCard:
		return nextCard(s, lo)
	case bitSSN:
		return nextSSN(s, lo)
	case bitEmail:
		return nextEmail(s, lo)
	}
	return -1, -1
}

// markerOf is the marker for a value in which f was found: the first of
// them in the order detectors run.
func markerOf(f fired) string {
	for _, name := range order {
		if k := byName(name); f&k.bit != 0 {
			return k.marker
		}
	}
	return fallback
}

// gunzip inflates s within the budget; ok is false when it does not fit.
// A damaged or truncated stream gives what inflated before the damage.
func (b *budget) gunzip(s string) (string, bool) {
	r, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		return "", true
	}
	out, _ := io.ReadAll(io.LimitReader(r, int64(b.inflate)+1))
	b.inflated += len(out)
	if len(out) > b.inflate {
		b.inflate = 0
		return "", false
	}
	b.inflate -= len(out)
	return string(out), true
}

// isJSONDoc reports whether s is a JSON object or array.
func isJSONDoc(s string) bool {
	t := strings.Trim(s, " \t\r\n") // JSON's blanks, not Unicode's
	if len(t) < 2 || !(t[0] == '{' && t[len(t)-1] == '}' || t[0] == '[' && t[len(t)-1] == ']') {
		return false
	}
	return json.Valid(unsafe.Slice(unsafe.StringData(t), len(t)))
}

// yamlish reports whether s could be a YAML document with structure: it
// has a line break, and a line that starts (after indentation and "- ")
// with a key of word characters, '.', '-', '/' or quotes, a ':', and a
// blank or the end of the line. Prose ("Call before delivery: ...") is
// left to the text scan.
func yamlish(s string) bool {
	if strings.IndexByte(s, '\n') < 0 {
		return false
	}
	for ls := 0; ls < len(s); {
		i := ls
		for i < len(s) && (s[i] == ' ' || s[i] == '-' && i+1 < len(s) && s[i+1] == ' ') {
			i++
		}
		k := i
		for k < len(s) && (isKeyByte(s[k]) || s[k] == '/' || s[k] == '"' || s[k] == '\'') {
			k++
		}
		if k > i && k < len(s) && s[k] == ':' && (k+1 == len(s) || s[k+1] == ' ' || s[k+1] == '\n' || s[k+1] == '\r') {
			return true
		}
		nl := strings.IndexByte(s[k:], '\n')
		if nl < 0 {
			return false
		}
		ls = k + nl + 1
	}
	return false
}

// judgeValue reports what a decoded JSON value holds: in its strings and
// keys, in numbers, in values named secret, and in objects that are
// secrets by their kind (objectFires).
func (d *Detectors) judgeValue(v any, depth int, b *budget) fired {
	switch x := v.(type) {
	case string:
		return d.fires(x, depth, b)
	case json.Number:
		return d.numberFires(string(x))
	case map[string]any:
		var f fired
		for k, e := range x {
			f |= d.fires(k, depth, b)
			if s, ok := e.(string); ok && d.keyedFires(k, s) {
				f |= bitSecret
			}
			f |= d.judgeValue(e, depth, b)
		}
		if d.enabled&bitSecret != 0 && objectFires(func(k string) (string, bool) {
			s, ok := x[k].(string)
			return s, ok
		}, func(k string) []string {
			m, _ := x[k].(map[string]any)
			var vals []string
			for _, e := range m {
				if s, ok := e.(string); ok {
					vals = append(vals, s)
				}
			}
			return vals
		}) {
			f |= bitSecret
		}
		return f
	case []any:
		var f fired
		for _, e := range x {
			f |= d.judgeValue(e, depth, b)
		}
		return f
	}
	return 0
}

// objectFires reports whether an object is a secret by what it is: a
// Kubernetes Secret with a value in data or stringData (a copy kept in
// an annotation or a Helm release), or an environment entry whose name
// says secret ({"name": "DB_PASSWORD", "value": "..."}).
func objectFires(str func(string) (string, bool), vals func(string) []string) bool {
	if kind, _ := str("kind"); kind == "Secret" {
		for _, k := range [...]string{"data", "stringData"} {
			for _, v := range vals(k) {
				if v != "" && !isMarker(v) {
					return true
				}
			}
		}
	}
	name, ok := str("name")
	if !ok {
		return false
	}
	value, ok := str("value")
	if !ok {
		return false
	}
	start, _ := keyedValue(keyRuleOf(name), value)
	return start >= 0
}

// keyedFires reports whether value, stored under key, is a secret by its
// name and not allowlisted.
func (d *Detectors) keyedFires(key, value string) bool {
	if d.enabled&bitSecret == 0 {
		return false
	}
	start, end := keyedValue(keyRuleOf(key), value)
	if start < 0 {
		return false
	}
	return !d.allowed(bitSecret, value[start:end])
}

// allowed reports whether v is on the allowlist of the detector bit.
func (d *Detectors) allowed(bit fired, v string) bool {
	for i := range d.run {
		if d.run[i].bit == bit {
			_, ok := d.run[i].allow[v]
			return ok
		}
	}
	return false
}

// numberFires reports what a JSON number holds: a card number stored as a
// number ({"card": 4111111111111111}, or 4.111111111111111e15).
func (d *Detectors) numberFires(num string) fired {
	digits, ok := integerDigits(num)
	if !ok {
		return 0
	}
	want, _ := candidates(digits)
	return d.findAny(digits, want)
}

// integerDigits returns the decimal digits of a JSON number of 13 to 40
// digits that is an integer, and false for any other number: only a card
// number, 13-19 digits, can be found in a number.
func integerDigits(num string) (string, bool) {
	n := 0
	for i := 0; i < len(num); i++ {
		if isDigit(num[i]) {
			n++
		}
	}
	if n < 13 {
		return "", false
	}
	mant, exp := num, 0
	if k := strings.IndexAny(num, "eE"); k >= 0 {
		mant = num[:k]
		e := num[k+1:]
		neg := strings.HasPrefix(e, "-")
		e = strings.TrimLeft(e, "+-")
		if len(e) > 3 {
			return "", false
		}
		for i := 0; i < len(e); i++ {
			exp = exp*10 + int(e[i]-'0')
		}
		if neg {
			exp = -exp
		}
	}
	mant = strings.TrimPrefix(mant, "-")
	intPart, frac, _ := strings.Cut(mant, ".")
	all := intPart + frac
	point := len(intPart) + exp
	if point < 0 || point > 40 {
		return "", false
	}
	if point < len(all) {
		if strings.Trim(all[point:], "0") != "" {
			return "", false
		}
		all = all[:point]
	} else {
		all += strings.Repeat("0", point-len(all))
	}
	all = strings.TrimLeft(all, "0")
	if len(all) < 13 || len(all) > 40 {
		return "", false
	}
	return all, true
}

// judgeYAML reports what a YAML stream holds, judged by its structure,
// with its scalars at depth. ok is false when s is not YAML or holds only
// scalars (plain text is YAML too).
func (d *Detectors) judgeYAML(s string, depth int, b *budget) (f fired, ok bool) {
	defer func() {
		if recover() != nil {
			f, ok = 0, false
		}
	}()
	b.scanned += len(s)
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return f, ok
		}
		if err != nil {
			return 0, false
		}
		if len(n.Content) == 1 && (n.Content[0].Kind == yaml.MappingNode || n.Content[0].Kind == yaml.SequenceNode) {
			ok = true
		}
		f |= d.judgeNode(&n, depth, b)
	}
}

// judgeNode is judgeValue for a YAML node. Aliases are judged where their
// anchor is, except that a value named secret is judged through its
// alias ("password: *pw").
func (d *Detectors) judgeNode(n *yaml.Node, depth int, b *budget) fired {
	var f fired
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			f |= d.judgeNode(c, depth, b)
		}
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			f |= d.fires(n.Value, depth, b)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f |= d.judgeNode(k, depth, b)
			if s, ok := scalarOf(v); ok && k.Kind == yaml.ScalarNode && d.keyedFires(k.Value, s) {
				f |= bitSecret
			}
			f |= d.judgeNode(v, depth, b)
		}
		member := func(key string) *yaml.Node {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == key {
					return n.Content[i+1]
				}
			}
			return nil
		}
		if d.enabled&bitSecret != 0 && objectFires(func(k string) (string, bool) {
			if m := member(k); m != nil {
				return scalarOf(m)
			}
			return "", false
		}, func(k string) []string {
			m := member(k)
			if m == nil || m.Kind != yaml.MappingNode {
				return nil
			}
			var vals []string
			for i := 1; i < len(m.Content); i += 2 {
				if s, ok := scalarOf(m.Content[i]); ok {
					vals = append(vals, s)
				}
			}
			return vals
		}) {
			f |= bitSecret
		}
	}
	return f
}

// aliasedSecret reports whether the YAML in s (or in a YAML or JSON
// document held in one of its scalars) stores a value under a name that
// says secret through an alias.
func aliasedSecret(s string, depth int) (found bool) {
	if depth >= maxLayers {
		return false
	}
	defer func() {
		if recover() != nil {
			found = false
		}
	}()
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		switch n.Kind {
		case yaml.ScalarNode:
			return (yamlish(n.Value) || isJSONDoc(n.Value)) && strings.IndexByte(n.Value, '*') >= 0 && aliasedSecret(n.Value, depth+1)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Kind == yaml.AliasNode && k.Kind == yaml.ScalarNode {
					if s, ok := scalarOf(v); ok {
						if start, _ := keyedValue(keyRuleOf(k.Value), s); start >= 0 {
							return true
						}
					}
				}
			}
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var n yaml.Node
		if dec.Decode(&n) != nil {
			return false
		}
		if walk(&n) {
			return true
		}
	}
}

// scalarOf returns the value of a non-null scalar, through an alias.
func scalarOf(n *yaml.Node) (string, bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// scrubEmbeddedJSON scrubs a JSON document held in a string member by
// member (as ScrubJSON does, one layer deeper). A document that is a
// secret as a whole (objectFires: a copied Secret) is masked whole.
func (d *Detectors) scrubEmbeddedJSON(s string, depth int, b *budget) (string, fired) {
	out, f, err := d.scrubJSON([]byte(s), depth+1, b)
	if err != nil {
		// isJSONDoc said valid; should they ever disagree, read it
		// as text rather than pass it unread.
		want, hints := candidates(s)
		out, f, _ := d.scrubText(s, depth, b, want, hints)
		return out, f
	}
	if d.enabled&bitSecret != 0 {
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return secretMarker, f | bitSecret
		}
		if anyObjectFires(v) {
			return secretMarker, f | bitSecret
		}
	}
	if f == 0 {
		return s, 0
	}
	return string(out), f
}

// anyObjectFires reports whether any object in v is a secret as a whole.
func anyObjectFires(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if objectFires(func(k string) (string, bool) {
			s, ok := x[k].(string)
			return s, ok
		}, func(k string) []string {
			m, _ := x[k].(map[string]any)
			var vals []string
			for _, e := range m {
				if s, ok := e.(string); ok {
					vals = append(vals, s)
				}
			}
			return vals
		}) {
			return true
		}
		for _, e := range x {
			if anyObjectFires(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if anyObjectFires(e) {
				return true
			}
		}
	}
	return false
}

// scrubYAML scrubs a string that may hold a YAML document: as text, and
// then, judged by its structure, masked whole if anything found there
// survived (a block scalar, an escape, an alias, a value named secret
// on a line the text rules do not read as a key).
func (d *Detectors) scrubYAML(s string, depth int, b *budget) (string, fired, int) {
	want, hints := candidates(s)
	out, f, passes := d.scrubText(s, depth, b, want, hints)
	if passes > maxPasses {
		return out, f, passes
	}
	g, ok := d.judgeYAML(out, depth+1, b)
	if g != 0 {
		return markerOf(f | g), f | g, passes
	}
	if f != 0 && d.enabled&bitSecret != 0 && strings.IndexByte(s, '*') >= 0 && aliasedSecret(s, depth+1) {
		// "password: *pw": the text scan masked the alias, not the
		// value it stands for.
		return secretMarker, f | bitSecret, passes
	}
	if !ok && f != 0 {
		// The text scan broke the document: judge what it was.
		if g, ok := d.judgeYAML(s, depth+1, b); ok {
			return markerOf(f | g), f | g, passes
		}
	}
	return out, f, passes
}
