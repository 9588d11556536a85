package warden

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with control characters (newlines included),
// Unicode format characters (bidi overrides, zero-width joiners) and
// invalid UTF-8 replaced by Go escapes. Text that agents wrote (statements,
// purposes) goes through it before a person reads it, in a terminal or in
// an approval prompt: an escape sequence or a bidi override must not be
// able to change what they see.
func Printable(s string) string {
	safe := func(r rune) bool {
		return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case safe(r) || r == utf8.RuneError:
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
	return b.String()
}
