package http

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/warden-mcp/warden"
)

// maxPathLength bounds the path an agent may send.
const maxPathLength = 2048

// pathRule names the rule that refuses paths escaping the base URL.
const pathRule = "http.path"

// canonicalPath checks a path given by the agent (relative to the
// backend's base URL) and returns it in the one form warden sends and
// policy judges. The form is decode-then-encode: every percent-escape is
// decoded, then each character is written raw if it is unreserved or one
// of : ! $ & ' ( ) * + , = (so %3A and : are the same path), and
// percent-encoded otherwise, with upper-case hex. Two spellings a server
// decodes to the same path therefore judge the same.
//
// What a segment may contain is an allow-list; the rest is refused, with
// a reason the agent can act on:
//   - anything that names a host or leaves the base URL: absolute URLs, a
//     leading //, backslashes (raw or %5C), `@`, dot segments in any
//     spelling (., .., %2e%2e, runs of dots), empty segments (//) except a
//     trailing slash;
//   - anything servers, proxies and frameworks decode differently: `;`
//     path parameters (raw or %3B), encoded slashes (%2F), encoded ? and #
//     (%3F, %23), a literal % (%25, so double encoding in any depth),
//     control characters (raw or escaped), invalid UTF-8 (overlong forms
//     like %C0%AE), a segment ending in a dot or a space (Windows servers
//     strip them);
//   - non-ASCII characters other than letters, digits and combining marks
//     on them (so no
//     look-alike of / \ . ; or any other ASCII punctuation, by NFKC or by
//     a legacy "best fit" mapping: fullwidth solidus, division and
//     fraction slashes, one-dot leader, modifier-letter apostrophes, ...),
//     and text that NFKC normalisation would change (fullwidth letters,
//     ligatures, the Kelvin sign), since a server that normalises would
//     read another path;
//   - `?` and `#` raw: the query has its own argument.
//
// Every refusal that protects the base URL or the meaning of the path is
// Denied (rule http.path); merely malformed input is Invalid.
func canonicalPath(p string) (string, error) {
	switch {
	case p == "":
		return "", warden.Errorf(warden.Invalid, "missing argument \"path\" (like /v1/invoices/42)")
	case len(p) > maxPathLength:
		return "", warden.Errorf(warden.Invalid, "the path is longer than %d bytes", maxPathLength)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", denyPath(p, "it contains a control character (NUL, a line break, ...)")
		}
	}
	switch {
	case strings.ContainsRune(p, '\\'):
		return "", denyPath(p, `backslashes are refused: some servers read \ as /, which could leave the API's base path`)
	case hasScheme(p):
		return "", denyPath(p, "absolute URLs are refused: give a path under the API's base URL, like /v1/invoices/42")
	case strings.HasPrefix(p, "//"):
		return "", denyPath(p, "a path starting with // names a host; give a path under the API's base URL, like /v1/invoices/42")
	case p[0] != '/':
		return "", warden.Errorf(warden.Invalid, "the path must start with /, like /v1/invoices/42")
	}
	if !utf8.ValidString(p) {
		return "", warden.Errorf(warden.Invalid, "the path is not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", warden.Errorf(warden.Invalid, "the path %q has a malformed percent-escape (%% must start %%XX)", p)
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case d == '/':
				return "", denyPath(p, "encoded slashes (%2F) are refused: servers differ on whether they separate segments")
			case d == '\\':
				return "", denyPath(p, `encoded backslashes (%5C) are refused: some servers read \ as /`)
			case d < 0x20 || d == 0x7f:
				return "", denyPath(p, "encoded control characters (%00, %0A, ...) are refused")
			case d == '%':
				return "", denyPath(p, "a literal % (%25) is refused: it is how double percent-encoding starts (%252F), which a server or proxy that decodes twice reads as another path; pass such values in the query")
			case d == ';':
				return "", denyPath(p, "; is refused in paths, encoded (%3B) or not: some servers strip ;parameters, which can hide a ..")
			case d == '?' || d == '#':
				return "", denyPath(p, "encoded ? and # (%3F, %23) are refused: a server or proxy that decodes the path would cut it there; pass such values in the query")
			case isRawPathByte(d):
				b.WriteByte(d)
			default:
				writeEscape(&b, d)
			}
			i += 2
		case c == '@':
			return "", denyPath(p, "@ is refused in paths (it can turn a path into credentials and a host); if it is part of a value, write it as %40")
		case c == ';':
			return "", denyPath(p, "; is refused in paths: some servers strip ;parameters, which can hide a ..")
		case c == '?':
			return "", warden.Errorf(warden.Invalid, "the path %q contains ?: pass the query in the query argument", p)
		case c == '#':
			return "", warden.Errorf(warden.Invalid, "the path %q contains #: fragments are not sent to servers", p)
		case c == '/' || isRawPathByte(c):
			b.WriteByte(c)
		case c == ' ' || c >= utf8.RuneSelf:
			writeEscape(&b, c)
		default:
			return "", warden.Errorf(warden.Invalid, "the path %q contains %q, which must be percent-encoded", p, c)
		}
	}
	out := b.String()
	segs := strings.Split(out[1:], "/")
	for i, s := range segs {
		if s == "" {
			if i != len(segs)-1 {
				return "", denyPath(p, "empty segments (//) are refused: servers that merge them would see another path")
			}
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil || !utf8.ValidString(d) {
			return "", denyPath(p, "percent-escapes must spell valid UTF-8 (overlong forms like %C0%AE, which old servers read as a dot, are refused)")
		}
		if isDotSegment(d) {
			return "", denyPath(p, "dot segments (. and .., encoded or not) are refused: they would leave the path")
		}
		if why := checkSegmentText(d); why != "" {
			return "", denyPath(p, why)
		}
	}
	return out, nil
}

// checkSegmentText says why a decoded segment is refused, or "".
func checkSegmentText(d string) string {
	base := false // the previous rune can carry a combining mark
	for _, r := range d {
		if unicode.IsMark(r) {
			if !base {
				// Best-fit conversions drop marks: ".\u0338." reads "..".
				return fmt.Sprintf("the combining mark U+%04X follows a character that is not a letter or digit: servers that convert to a legacy code page drop it; pass such values in the query", r)
			}
			continue
		}
		base = unicode.IsLetter(r) || unicode.IsDigit(r)
		if r < utf8.RuneSelf || allowedRune(r) {
			continue
		}
		return fmt.Sprintf("the character %q (U+%04X) is refused: beyond ASCII, paths may hold only letters, marks and digits, "+
			"because other characters include Unicode look-alikes of path syntax (/ . \\ ; ...) that servers which normalise Unicode "+
			"or map it to a legacy code page read as that syntax; pass such values in the query", r, r)
	}
	if n := norm.NFKC.String(d); n != d {
		return fmt.Sprintf("the segment %q changes under Unicode normalisation (NFKC) to %q, which a server that normalises would read instead; write it that way", d, n)
	}
	if last := d[len(d)-1]; last == '.' || last == ' ' {
		return "a segment ending in a dot or a space is refused: some servers strip them, so it would name another path"
	}
	return ""
}

// allowedRune reports whether a non-ASCII rune may appear in a path:
// letters, combining marks (after a letter or digit) and digits, except the letters that legacy
// best-fit code-page mappings turn into ASCII punctuation (the spacing
// modifier letters ʹ ʼ ˂ ˄ ˆ ˈ ˋ ˍ ˜ ..., and the click letters ǀ ǁ ǂ ǃ).
func allowedRune(r rune) bool {
	switch {
	case r >= 0x2b0 && r <= 0x2ff, r >= 0x1c0 && r <= 0x1c3:
		return false
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
}

// isRawPathByte reports whether a canonical path carries c unescaped:
// unreserved characters and the sub-delimiters servers agree on.
func isRawPathByte(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":!$&'()*+,=", c) >= 0
}

func writeEscape(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}

// isDotSegment reports whether a decoded segment could be read as "." or
// ".." by some server: only dots, possibly with trailing spaces, which
// Windows servers strip ("..%20", "...").
func isDotSegment(d string) bool {
	d = strings.TrimRight(d, " ")
	return strings.Trim(d, ".") == ""
}

func denyPath(p, why string) error {
	return &warden.Error{Code: warden.Denied, Rule: pathRule, Message: fmt.Sprintf("the path %q is refused: %s", p, why)}
}

// hasScheme reports whether p starts like an absolute URL ("http:",
// "javascript:").
func hasScheme(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') && i > 0:
		case c == ':' && i > 0:
			return true
		default:
			return false
		}
	}
	return false
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
