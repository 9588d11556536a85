package mask

import "strings"

// Most strings in a result hold nothing to mask, and most are short, so
// Scrub first decides in one cheap loop which detectors could possibly
// match and runs only those. Each test below is necessary for its
// detector's rule, never sufficient.

const (
	fDigit = 1 << iota
	fLower
	fAt
	fAssign      // '=' or ':', which introduce passwords
	fSecretStart // the first byte of a token, a JWT or a PEM block
	fSep         // ' ' or '-', which join digit groups
	fUpper
	fRare // '\n' or '\\': a YAML document or an escaped string, maybe

	fLetter = fLower | fUpper
)

var fclass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = fDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = fUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = fLower
	}
	t['@'] = fAt
	t[' '] = fSep
	t['='] = fAssign
	t[':'] = fAssign
	for _, c := range "ABgxe-" {
		t[c] |= fSecretStart
	}
	t['-'] |= fSep
	t['\n'] = fRare
	t['\\'] = fRare
	return t
}()

// Classes of decodableRun.
const (
	rB64    = 1 << iota // a base64 or base64url character
	rLetter             // a letter
	rUpper              // a capital
	rOdd                // a digit, '+', '/', '-' or '_': not in a word
)

var rclass = func() (t [256]uint8) {
	for c := range t {
		if b64val[c] != 0xff {
			t[c] = rB64
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= rLetter | rUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= rLetter
	}
	for _, c := range "0123456789+/-_" {
		t[c] |= rOdd
	}
	return t
}()

// Shortest matches: "pwd=x"; an IBAN (Norway); a Slack token.
const (
	minSecret = 5
	minIBAN   = 15
	minToken  = 15
)

// candidates returns the detectors that could find something in s, and
// the layers s could hold.
func candidates(s string) (fired, hint) {
	n := len(s)
	if n < minSecret {
		return 0, 0
	}
	var acc uint8
	digits := 0
	for i := 0; i < n; i++ {
		c := fclass[s[i]]
		acc |= c
		digits += int(c & fDigit)
	}
	var hints hint
	if n >= minRun && acc&fLetter != 0 && acc&(fDigit|fUpper) != 0 && decodableRun(s) {
		hints |= hRun
	}
	if acc&fRare != 0 {
		if acc&fAssign != 0 && strings.IndexByte(s, '\n') >= 0 {
			hints |= hYAML
		}
		if strings.IndexByte(s, '\\') >= 0 && strings.IndexByte(s, '"') >= 0 {
			hints |= hEsc
		}
	}
	if s[0] == 0x1f && s[1] == 0x8b {
		hints |= hGzip
	}
	if c := s[0]; c == '{' || c == '[' || c <= ' ' && strings.TrimLeft(s, " \t\r\n") != "" && strings.IndexByte("{[", strings.TrimLeft(s, " \t\r\n")[0]) >= 0 {
		hints |= hDoc
	}
	var want fired
	if acc&fAt != 0 {
		want |= bitEmail
	}
	if acc&fAssign != 0 || n >= minToken && acc&fSecretStart != 0 {
		want |= bitSecret
	}
	if n >= minIBAN && digits >= 2 && acc&fLetter != 0 {
		want |= bitIBAN
	}
	if digits >= 13 || digits >= 9 && acc&fSep != 0 {
		want |= digitChains(s)
	}
	return want, hints
}

// decodableRun reports whether s has a run of minRun base64 characters
// with a letter in it that is not a word (it has a digit or symbol, or a
// capital after its first byte): what runFinding decodes.
func decodableRun(s string) bool {
	run, letter, odd := 0, false, false
	for i := 0; i < len(s); i++ {
		c := rclass[s[i]]
		if c&rB64 == 0 {
			run, letter, odd = 0, false, false
			continue
		}
		letter = letter || c&rLetter != 0
		odd = odd || c&rOdd != 0 || c&rUpper != 0 && run > 0
		if run++; run >= minRun && letter && odd {
			return true
		}
	}
	return false
}

// digitChains returns bitCard when s has 13 digits joined by nothing or
// by single spaces or dashes, and bitSSN when it has runs of 3, 2 and 4
// digits joined that way: a card or SSN always lies inside such a chain.
func digitChains(s string) fired {
	var want fired
	digits := 0                 // in the current chain
	run, prev, prev2 := 0, 0, 0 // lengths of the current run and the two before it in the chain
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c-'0' < 10 {
			digits++
			run++
			continue
		}
		if run == 4 && prev == 2 && prev2 == 3 {
			want |= bitSSN
		}
		if (c == ' ' || c == '-') && run > 0 && i+1 < len(s) && s[i+1]-'0' < 10 {
			run, prev, prev2 = 0, run, prev
			continue
		}
		if digits >= 13 {
			want |= bitCard
		}
		digits, run, prev, prev2 = 0, 0, 0, 0
	}
	if run == 4 && prev == 2 && prev2 == 3 {
		want |= bitSSN
	}
	if digits >= 13 {
		want |= bitCard
	}
	return want
}
