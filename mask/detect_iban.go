package mask

// ibanLength is the IBAN length of each country in the ISO 13616 registry
// (SWIFT, 2024), plus countries whose banks publish IBANs in the same
// scheme ahead of registration. An IBAN from a listed country must have
// exactly this length.
var ibanLength = map[[2]byte]int{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28,
	{'B', 'A'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27,
	{'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28,
	{'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28,
	{'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18,
	{'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21,
	{'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26,
	{'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28,
	{'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19,
	{'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28,
	{'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22,
	{'R', 'U'}: 33, {'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24,
	{'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'S', 'O'}: 23, {'S', 'T'}: 25,
	{'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
	// Published ahead of registration (African and French-zone banks).
	{'A', 'O'}: 25, {'B', 'F'}: 28, {'B', 'J'}: 28, {'C', 'F'}: 27, {'C', 'G'}: 27,
	{'C', 'I'}: 28, {'C', 'M'}: 27, {'C', 'V'}: 25, {'D', 'Z'}: 26, {'G', 'A'}: 27,
	{'G', 'Q'}: 27, {'I', 'R'}: 26, {'K', 'M'}: 27, {'M', 'A'}: 28, {'M', 'G'}: 27,
	{'M', 'L'}: 28, {'M', 'Z'}: 25, {'N', 'E'}: 28, {'S', 'N'}: 28, {'T', 'D'}: 27,
	{'T', 'G'}: 28,
}

// maxIBANGroups bounds the groups of a spaced IBAN: 34 characters in
// groups of four.
const maxIBANGroups = 9

// nextIBAN finds an International Bank Account Number (ISO 13616): two
// letters, two check digits and 11–30 letters or digits, either as one
// token or in groups of four separated by single spaces (the last group
// may be shorter). The mod-97 check must hold; a country in ibanLength
// must have its length, and a country not in it is accepted only in upper
// case. The IBAN must not continue a word.
func nextIBAN(s string, lo int) (int, int) {
	for j := lo; j+4 <= len(s); j++ {
		if !isLetter(s[j]) || !isLetter(s[j+1]) || !isDigit(s[j+2]) || !isDigit(s[j+3]) || wordBefore(s, j) {
			continue
		}
		t := alnumRun(s, j)
		switch n := t - j; {
		case n >= 15 && n <= 34:
			if !wordAt(s, t) && ibanValid(s, j, t) {
				return j, t
			}
		case n == 4:
			if end := spacedIBAN(s, j, t); end > 0 {
				return j, end
			}
		}
		j = t - 1
	}
	return -1, -1
}

// spacedIBAN returns the end of the longest valid spaced IBAN whose first
// group is s[j:t], or -1.
func spacedIBAN(s string, j, t int) int {
	var ends [maxIBANGroups]int
	ends[0] = t
	n := 1
	for n < maxIBANGroups && t+1 < len(s) && s[t] == ' ' && isAlnum(s[t+1]) {
		e := alnumRun(s, t+1)
		g := e - t - 1
		if g > 4 {
			break
		}
		ends[n], t = e, e
		n++
		if g < 4 {
			break
		}
	}
	for k := n - 1; k >= 1; k-- {
		if end := ends[k]; !wordAt(s, end) && ibanValid(s, j, end) {
			return end
		}
	}
	return -1
}

// ibanValid checks the IBAN written in s[start:end], ignoring spaces.
func ibanValid(s string, start, end int) bool {
	var chars [34]byte
	n, upper := 0, true
	for i := start; i < end; i++ {
		c := s[i]
		if c == ' ' {
			continue
		}
		if n == len(chars) {
			return false
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
			upper = false
		}
		chars[n] = c
		n++
	}
	if n < 15 {
		return false
	}
	if want, ok := ibanLength[[2]byte{chars[0], chars[1]}]; ok {
		if n != want {
			return false
		}
	} else if !upper {
		return false
	}
	// Check digits run from 02 to 98.
	if cd := (chars[2]-'0')*10 + chars[3] - '0'; cd < 2 || cd > 98 {
		return false
	}
	// Move the first four characters to the end, read letters as 10–35,
	// and take the number mod 97.
	rem := 0
	for k := range n {
		c := chars[(k+4)%n]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	return rem == 1
}
