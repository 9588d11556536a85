package mask

// Byte classes shared by the hand-written scanners. Bytes >= 0x80 belong to
// no class; scanners that care about non-ASCII text decode runes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cUnder // '_'
	cLocal // email local part: RFC 5322 atext and '.'
	cB64   // base64url: letters, digits, '-', '_'
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cLocal | cB64
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper | cLocal | cB64
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower | cLocal | cB64
	}
	t['_'] |= cUnder | cB64
	t['-'] |= cB64
	for _, c := range ".!#$%&'*+/=?^_`{|}~-" {
		t[c] |= cLocal
	}
	return t
}()

func isDigit(c byte) bool  { return c-'0' < 10 }
func isLetter(c byte) bool { return class[c]&(cUpper|cLower) != 0 }
func isAlnum(c byte) bool  { return class[c]&(cDigit|cUpper|cLower) != 0 }

// isWord is regexp's \w: a byte that would make a match "part of a word".
func isWord(c byte) bool { return class[c]&(cDigit|cUpper|cLower|cUnder) != 0 }

// wordBefore reports whether the byte before i is a word byte.
func wordBefore(s string, i int) bool { return i > 0 && isWord(s[i-1]) }

// wordAt reports whether the byte at i is a word byte.
func wordAt(s string, i int) bool { return i < len(s) && isWord(s[i]) }

// decimalBefore reports whether s[:i] ends in a digit and a '.', so a
// number starting at i is the fraction of a decimal ("0.4111...").
func decimalBefore(s string, i int) bool {
	return i >= 2 && s[i-1] == '.' && isDigit(s[i-2])
}

// decimalAt reports whether s[i:] starts with '.' and a digit.
func decimalAt(s string, i int) bool {
	return i+1 < len(s) && s[i] == '.' && isDigit(s[i+1])
}

// digitRun returns the end of the run of ASCII digits starting at i.
func digitRun(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// alnumRun returns the end of the run of ASCII letters and digits starting
// at i.
func alnumRun(s string, i int) int {
	for i < len(s) && isAlnum(s[i]) {
		i++
	}
	return i
}
