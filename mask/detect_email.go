package mask

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// nextEmail finds an email address: a local part of RFC 5322 atext and
// dots (letters, digits, .!#$%&'*+/=?^_`{|}~- and, for internationalised
// addresses, non-ASCII letters and digits), '@', and a domain of two or
// more labels (letters, digits, inner hyphens) whose last label, the TLD,
// is two or more letters. The local part starts after the last of
// =/?&|{}` and after leading dots and quotes, so "email=ada@example.com"
// and "'ada@example.com'" keep their key and quotes; a local part of only
// '*' is already masked. Where the domain runs on past a valid TLD
// ("ada@example.com-x"), the address ends at the TLD: leaving a few bytes
// of junk is better than leaking the address.
func nextEmail(s string, lo int) (int, int) {
	from := lo
	for {
		k := strings.IndexByte(s[from:], '@')
		if k < 0 {
			return -1, -1
		}
		at := from + k
		from = at + 1
		start := localStart(s, lo, at)
		if start == at || strings.Trim(s[start:at], "*") == "" {
			// No local part, or one already masked ("***@example.com",
			// the email column strategy): the domain alone stays.
			continue
		}
		if end := domainEnd(s, at+1); end > 0 {
			return start, end
		}
	}
}

// localStart returns where the local part ending at at begins; at when
// there is none. It never goes below lo.
func localStart(s string, lo, at int) int {
	k := at
	for k > lo {
		c := s[k-1]
		if c < utf8.RuneSelf {
			if class[c]&cLocal == 0 {
				break
			}
			k--
			continue
		}
		r, size := utf8.DecodeLastRuneInString(s[lo:k])
		if !wordRune(r, size) {
			break
		}
		k -= size
	}
	// RFC 5322 allows these in a local part, but real addresses do not
	// use them, while keys, URLs and markup put them right before one
	// ("email=ada@…", "/users/ada@…", "|ada@…|"). Starting after the last
	// keeps "email=" readable and leaves at most such a prefix of an
	// exotic address unmasked.
	if i := strings.LastIndexAny(s[k:at], "=/?&|{}`"); i >= 0 {
		k += i + 1
	}
	for k < at && (s[k] == '.' || s[k] == '\'') {
		k++
	}
	return k
}

// domainEnd returns the end of the domain starting at i, or -1.
func domainEnd(s string, i int) int {
	end, labels := -1, 0
	for {
		// One label: letters, digits and hyphens, not starting with '-'.
		j, letters, allLetters := i, 0, true
		for j < len(s) {
			c := s[j]
			if c < utf8.RuneSelf {
				if !isAlnum(c) && c != '-' {
					break
				}
				if allLetters && isLetter(c) {
					letters++
				} else {
					allLetters = false
				}
				j++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[j:])
			if !wordRune(r, size) {
				break
			}
			if allLetters && !unicode.IsDigit(r) {
				letters++
			} else {
				allLetters = false
			}
			j += size
		}
		if j == i || s[i] == '-' {
			return end
		}
		labels++
		if labels >= 2 {
			switch {
			case allLetters && letters >= 2:
				end = j
			case letters >= 2:
				// "com-x", "com2": the TLD may be the letters before the
				// rest; a later label can still make a longer domain.
				end = tldPrefixEnd(s, i)
			}
		}
		if j+1 >= len(s) || s[j] != '.' {
			return end
		}
		i = j + 1
	}
}

// tldPrefixEnd returns the end of the letters that start the label at i.
func tldPrefixEnd(s string, i int) int {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isLetter(c) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !wordRune(r, size) || unicode.IsDigit(r) {
			return i
		}
		i += size
	}
	return i
}

// wordRune reports whether a non-ASCII rune can be part of an
// internationalised address: a letter, digit or combining mark. A byte
// that is not UTF-8 counts as a letter: it is most likely one in another
// encoding ("jos\xe9@example.com" in Latin-1), and stopping at it would
// leak the address.
func wordRune(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return true
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}
