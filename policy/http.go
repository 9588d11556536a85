package policy

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/warden-mcp/warden"
)

// HTTPMethods are the methods an http grant can name, in a fixed order.
// tools/http plans exactly these.
var HTTPMethods = []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}

// validateHTTPGrant checks a grant on an http backend: methods × paths and
// nothing that belongs to postgres grants.
func validateHTTPGrant(gp string, g *Grant) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	if len(g.Tables) > 0 {
		add(gp+".tables", "tables apply to postgres backends; %q is http (use paths)", g.Backend)
	}
	if len(g.Actions) > 0 {
		add(gp+".actions", "actions apply to postgres backends; %q is http (use methods)", g.Backend)
	}
	if len(g.Functions) > 0 {
		add(gp+".functions", "functions apply to postgres backends; %q is http", g.Backend)
	}
	errs = append(errs, notKube(gp, g, "http")...)
	if len(g.Methods) == 0 {
		add(gp+".methods", "missing methods (any of %s)", strings.Join(HTTPMethods, ", "))
	}
	if len(g.Paths) == 0 {
		add(gp+".paths", `missing paths (like "/v1/invoices/**")`)
	}
	for j, m := range g.Methods {
		if !slices.Contains(HTTPMethods, m) {
			add(fmt.Sprintf("%s.methods[%d]", gp, j), "unknown method %q (one of %s, in upper case)", m, strings.Join(HTTPMethods, ", "))
		}
	}
	for j, p := range g.Paths {
		if msg := CheckPathPattern(p); msg != "" {
			add(fmt.Sprintf("%s.paths[%d]", gp, j), "%s", msg)
		}
	}
	return errs
}

// CheckPathPattern validates a grant's path pattern. A pattern that could
// never match a request warden sends (it names a dot segment, a query, a
// character warden refuses in paths) is an error, so a typo does not
// silently grant nothing.
func CheckPathPattern(p string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("%q must start with /, like /v1/invoices/**", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f || c == ' ':
			return fmt.Sprintf("%q contains a space or control character", p)
		case c == '?' || c == '#':
			return fmt.Sprintf("%q contains %q: grants match paths only, not queries or fragments", p, c)
		case c >= 0x80:
			return fmt.Sprintf("%q contains non-ASCII text, which requests carry percent-encoded: write %s", p, encodeNonASCII(p))
		case c == '\\' || c == '@' || c == ';':
			return fmt.Sprintf("%q contains %q, which warden refuses in request paths, so it could never match", p, c)
		case c == '%':
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return fmt.Sprintf("%q has a percent-escape that is not %%XX with upper-case hex digits", p)
			}
			switch b := unhex(p[i+1])<<4 | unhex(p[i+2]); {
			case isRawPathByte(b):
				return fmt.Sprintf("%q escapes %q, which requests carry unescaped: write it as is", p, b)
			case b == '/' || b == '\\' || b == ';' || b == '?' || b == '#' || b == '%' || b < 0x20 || b == 0x7f:
				return fmt.Sprintf("%q escapes %q, which warden refuses in request paths, so it could never match", p, b)
			}
		}
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch {
		case s == "" && i != len(segs)-1:
			return fmt.Sprintf("%q has an empty segment (//)", p)
		case s == "." || s == "..":
			return fmt.Sprintf("%q has a dot segment, which warden refuses in requests", p)
		case s == "**":
		case strings.Contains(s, "**"):
			return fmt.Sprintf("%q: ** must be a whole segment (/**/), it matches any number of segments", p)
		default:
			if _, err := path.Match(s, ""); err != nil {
				return fmt.Sprintf("%q is not a valid pattern", p)
			}
		}
	}
	return ""
}

// MatchPath reports whether the request path p (as warden plans it:
// relative to the backend's base URL, canonically escaped) matches the
// grant pattern. Segments match one by one with path.Match syntax, so `*`
// is one non-empty segment (or part of one: `*.pdf`); a `**` segment
// matches any number of segments, none included, so /v1/invoices/**
// matches /v1/invoices itself. Matching is exact and case-sensitive:
// grants allow, so they match no more than they name (approval rules,
// which hold, match loosely: MatchPathHold).
func MatchPath(pattern, p string) bool {
	if !strings.HasPrefix(pattern, "/") || !strings.HasPrefix(p, "/") {
		return false
	}
	return matchSegments(strings.Split(pattern[1:], "/"), strings.Split(p[1:], "/"))
}

func matchSegments(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for len(rest) > 0 && rest[0] == "**" {
				rest = rest[1:]
			}
			for i := 0; i <= len(segs); i++ {
				if matchSegments(rest, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 || !matchSegment(pat[0], segs[0]) {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

func matchSegment(pat, seg string) bool {
	if seg == "" || pat == "" {
		// A trailing slash matches only a pattern's trailing slash (or
		// **), never `*`.
		return seg == pat
	}
	ok, _ := path.Match(pat, seg)
	return ok
}

// MatchPathHold reports whether the request path p could be what pattern
// names to some server, read as loosely as servers and frameworks read
// paths: segments compared percent-decoded and case-folded (fold), a
// trailing slash ignored, and the last segment also matched without an
// extension (/admin.json as /admin, as Rails and older Spring route it)
// or a :suffix (/admin::$DATA as /admin, as Windows servers read it).
// Approval rules, which hold calls, match this way, so no spelling slips
// past them; grants, which allow calls, match exactly (MatchPath). A path
// that cannot be read matches (fail closed).
func MatchPathHold(pattern, p string) bool {
	if !strings.HasPrefix(pattern, "/") {
		return false
	}
	if !strings.HasPrefix(p, "/") {
		return true
	}
	pat := trimTrailingEmpty(strings.Split(pattern[1:], "/"))
	for i, s := range pat {
		if s != "**" {
			pat[i] = foldPattern(s)
		}
	}
	segs := trimTrailingEmpty(strings.Split(p[1:], "/"))
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil || !utf8.ValidString(d) {
			return true
		}
		segs[i] = fold(d)
	}
	if matchSegments(pat, segs) {
		return true
	}
	last := segs[len(segs)-1]
	for i := len(last) - 1; i > 0; i-- {
		if last[i] == '.' || last[i] == ':' {
			segs[len(segs)-1] = last[:i]
			if matchSegments(pat, segs) {
				return true
			}
		}
	}
	return false
}

// MatchAnyPathHold reports whether p matches any of patterns as
// MatchPathHold reads them.
func MatchAnyPathHold(patterns []string, p string) bool {
	for _, pat := range patterns {
		if MatchPathHold(pat, p) {
			return true
		}
	}
	return false
}

// trimTrailingEmpty drops the empty segment a trailing slash leaves,
// except for the root itself.
func trimTrailingEmpty(segs []string) []string {
	if len(segs) > 1 && segs[len(segs)-1] == "" {
		return segs[:len(segs)-1]
	}
	return segs
}

// foldPattern decodes a pattern segment's escapes, quoting any decoded
// glob character so it matches itself, and lower-cases it.
func foldPattern(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]) {
			d := unhex(s[i+1])<<4 | unhex(s[i+2])
			if strings.IndexByte(`*?[]\`, d) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(d)
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return fold(b.String())
}

// fold case-folds the way case-insensitive servers compare: upper case
// first (.NET's invariant culture reads ı as I, ſ as S), then lower.
func fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// MatchAnyPath reports whether p matches any of patterns (see MatchPath).
func MatchAnyPath(patterns []string, p string) bool {
	for _, pat := range patterns {
		if MatchPath(pat, p) {
			return true
		}
	}
	return false
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// encodeNonASCII percent-encodes the bytes of p beyond ASCII.
func encodeNonASCII(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c >= 0x80 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isRawPathByte reports whether canonical request paths carry c
// unescaped (see tools/http canonicalPath).
func isRawPathByte(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":!$&'()*+,=", c) >= 0
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
