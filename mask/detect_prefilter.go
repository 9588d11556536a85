package mask

// Most strings in a result hold nothing to mask, and most are short, so
// Scrub first decides in one cheap loop which detectors could possibly
// match and runs only those. Each test below is necessary for its
// detector's rule, never sufficient.

const (
	fDigit = 1 << iota
	fLetter
	fAt
	fAssign      // '=' or ':', which introduce passwords
	fSecretStart // the first byte of a token, a JWT or a PEM block
	fSep         // ' ' or '-', which join digit groups
	fB64         // a base64 or base64url character
	fNL          // a line break
	fQuote       // '"'
	fBackslash   // '\\'
)

var fclass = func() (t [256]uint16) {
	for c := '0'; c <= '9'; c++ {
		t[c] = fDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = fLetter
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = fLetter
	}
	t['@'] = fAt
	t[' '] = fSep
	t['='] = fAssign
	t[':'] = fAssign
	for _, c := range "ABgxe-" {
		t[c] |= fSecretStart
	}
	t['-'] |= fSep
	for c := range t {
		if b64val[c] != 0xff {
			t[c] |= fB64
		}
	}
	t['\n'] |= fNL
	t['"'] |= fQuote
	t['\\'] |= fBackslash
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
	var acc uint16
	digits, run, longest := 0, 0, 0
	for i := 0; i < n; i++ {
		c := fclass[s[i]]
		acc |= c
		digits += int(c & fDigit)
		if c&fB64 != 0 {
			run++
			continue
		}
		longest, run = max(longest, run), 0
	}
	var hints hint
	if max(longest, run) >= minRun {
		hints |= hRun
	}
	if acc&(fNL|fAssign) == fNL|fAssign {
		hints |= hYAML
	}
	if acc&(fQuote|fBackslash) == fQuote|fBackslash {
		hints |= hEsc
	}
	if s[0] == 0x1f && s[1] == 0x8b {
		hints |= hGzip
	}
	for i := 0; i < n; i++ {
		if c := s[i]; c == '{' || c == '[' {
			hints |= hDoc
		} else if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		break
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
