package http

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// maxPathLength bounds the path an agent may send.
const maxPathLength = 2048

// pathRule names the rule that refuses paths escaping the base URL.
const pathRule = "http.path"

// canonicalPath checks a path given by the agent (relative to the
// backend's base URL) and returns it in the one form warden sends and
// policy judges: percent-escapes of unreserved characters decoded, other
// escapes in upper case, spaces and non-ASCII characters escaped.
//
// Refused, with a reason the agent can act on: absolute URLs and anything
// naming a host (a scheme, a leading //), backslashes (raw or %5C), `@`,
// `;` path parameters, NUL and other control characters (raw or escaped),
// encoded slashes (%2F), double encoding (%25XX), dot segments in any
// spelling (., .., %2e%2e, .%2E, runs of dots, trailing spaces that some
// servers strip, and invalid UTF-8 such as the overlong %C0%AE), Unicode
// look-alikes of . / and \ (fullwidth full stop and solidus, one- and
// two-dot leaders, ...), empty segments (//) except a trailing slash, `?`
// and `#` (the query has its own argument).
// Every refusal that protects the base URL is Denied (rule http.path);
// merely malformed input is Invalid.
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
				return "", warden.Errorf(warden.Invalid, "the path %q has a malformed percent-escape (%% must start %%XX; write a literal %% as %%25)", p)
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case d == '/':
				return "", denyPath(p, "encoded slashes (%2F) are refused: servers differ on whether they separate segments")
			case d == '\\':
				return "", denyPath(p, `encoded backslashes (%5C) are refused: some servers read \ as /`)
			case d < 0x20 || d == 0x7f:
				return "", denyPath(p, "encoded control characters (%00, %0A, ...) are refused")
			case d == '%' && i+4 < len(p) && isHex(p[i+3]) && isHex(p[i+4]):
				return "", denyPath(p, "double percent-encoding (%25XX) is refused: a server that decodes twice would see another path")
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex[d>>4])
				b.WriteByte(upperHex[d&15])
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
		case isUnreserved(c) || c == '/' || c == ':' || strings.IndexByte("!$&'()*+,=", c) >= 0:
			b.WriteByte(c)
		case c == ' ' || c >= utf8.RuneSelf:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
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
		if d, err := url.PathUnescape(s); err != nil || !utf8.ValidString(d) {
			return "", denyPath(p, "percent-escapes must spell valid UTF-8 (overlong forms like %C0%AE, which old servers read as a dot, are refused)")
		}
		if d, _ := url.PathUnescape(s); strings.ContainsAny(d, lookalikes) {
			return "", denyPath(p, "Unicode look-alikes of /, \\ and . are refused: a server that normalises Unicode would read them as path syntax")
		}
		if isDotSegment(s) {
			return "", denyPath(p, "dot segments (. and .., encoded or not) are refused: they would leave the path")
		}
	}
	return out, nil
}

// lookalikes are characters that Unicode normalisation (NFKC, or looser
// "best fit" mappings) turns into '.', '/' or '\': fullwidth and small
// forms, leaders, the ellipsis, division and fraction slashes.
const lookalikes = "\uff0e\u2024\u2025\u2026\ufe52\uff0f\u2215\u2044\ufe68\uff3c\u29f5\u29f8\u29f9"

// isDotSegment reports whether a canonical segment could be read as "."
// or ".." by some server: only dots, possibly with trailing spaces, which
// Windows servers strip ("..%20", "...").
func isDotSegment(s string) bool {
	d, err := url.PathUnescape(s)
	if err != nil {
		return true // cannot happen for a canonical segment; refuse
	}
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
