package mask

// Payment card numbers and US social security numbers.

// group is one run of digits in a chain like "4111 1111 1111 1111".
type group struct{ start, end int }

// maxCardGroups is the most groups a card window can span (4-4-4-4-3).
const maxCardGroups = 5

// nextCard finds a payment card number: 13–19 digits starting with 2–6
// and passing the Luhn check, written either as one run or in the groups cards are printed in —
// 4-4-4-4 with an optional last group of 1–4 (13–19 digits), or 4-6-4 /
// 4-6-5 (Diners, Amex) — separated throughout by single spaces or by
// single dashes. The number must not continue a word, a longer digit run or
// a decimal ("id4111...", "0.4111..."). In a longer chain of groups, the
// leftmost, longest valid window is the card.
//
// The first digit is the card's major industry identifier: every card
// brand in use (Mastercard and Mir 2, Amex, Diners and JCB 3, Visa 4,
// Mastercard and Maestro 5, Discover, UnionPay and Maestro 6) starts with
// 2–6, while millisecond timestamps, snowflake ids and most sequence
// numbers start with 1 and would otherwise pass Luhn one time in ten. A
// 15-digit number starting with 3 must be an Amex (34, 37), not an IMEI.
func nextCard(s string, lo int) (int, int) {
	i := lo
	for {
		for i < len(s) && !isDigit(s[i]) {
			i++
		}
		if i >= len(s) {
			return -1, -1
		}
		// Walk the chain of groups that starts here, trying windows that
		// start at each group in turn. A window that starts after a
		// separator is bounded by it; only the chain's first group needs
		// its left edge checked.
		p, first := i, true
		for {
			var g [maxCardGroups]group
			n := cardGroups(s, p, &g)
			if !first || (!wordBefore(s, p) && !decimalBefore(s, p)) {
				for q := n; q >= 1; q-- {
					if cardWindow(s, g[:q]) {
						return g[0].start, g[q-1].end
					}
				}
			}
			if n < 2 {
				i = g[0].end
				break
			}
			p, first = g[1].start, false
		}
	}
}

// cardGroups fills g with the digit groups starting at p, joined by one
// space or dash each, and returns how many it found.
func cardGroups(s string, p int, g *[maxCardGroups]group) int {
	g[0] = group{p, digitRun(s, p)}
	n := 1
	for n < maxCardGroups {
		e := g[n-1].end
		if e+1 >= len(s) || (s[e] != ' ' && s[e] != '-') || !isDigit(s[e+1]) {
			break
		}
		g[n] = group{e + 1, digitRun(s, e+1)}
		n++
	}
	return n
}

// cardWindow reports whether the groups g form a card number.
func cardWindow(s string, g []group) bool {
	end := g[len(g)-1].end
	if wordAt(s, end) || decimalAt(s, end) {
		return false
	}
	first := s[g[0].start]
	if first < '2' || first > '6' {
		return false
	}
	total := 0
	for _, x := range g {
		total += x.end - x.start
	}
	if total < 13 || total > 19 {
		return false
	}
	if total == 15 && first == '3' {
		// The only 15-digit cards starting with 3 are Amex (34, 37);
		// phone IMEIs, 15 digits and Luhn-valid by design, mostly start
		// with 35.
		if second := s[g[0].start+1]; second != '4' && second != '7' {
			return false
		}
	}
	if len(g) > 1 {
		sep := s[g[1].start-1]
		for _, x := range g[2:] {
			if s[x.start-1] != sep {
				return false
			}
		}
		if !cardLayout(g) {
			return false
		}
	}
	return luhn(s, g)
}

// cardLayout reports whether multi-group g is laid out like a printed card.
func cardLayout(g []group) bool {
	size := func(i int) int { return g[i].end - g[i].start }
	last := len(g) - 1
	if size(0) != 4 {
		return false
	}
	if len(g) == 3 && size(1) == 6 && (size(2) == 4 || size(2) == 5) {
		return true
	}
	for i := 1; i < last; i++ {
		if size(i) != 4 {
			return false
		}
	}
	return size(last) >= 1 && size(last) <= 4
}

// luhn reports whether the digits of g pass the Luhn check. All zeros
// pass the arithmetic but are a placeholder, not a card.
func luhn(s string, g []group) bool {
	sum, double, nonzero := 0, false, false
	for k := len(g) - 1; k >= 0; k-- {
		for j := g[k].end - 1; j >= g[k].start; j-- {
			d := int(s[j] - '0')
			if d != 0 {
				nonzero = true
			}
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return nonzero && sum%10 == 0
}

// nextSSN finds a US social security number written AAA-GG-SSSS, with
// dashes or with single spaces (the same separator twice), outside the
// ranges never issued: area 000, 666 or 900–999, group 00, serial 0000.
// Nine digits without separators are too often something else. The number
// must not continue a word, a decimal, or a longer run joined by the same
// separator ("1-123-45-6789").
func nextSSN(s string, lo int) (int, int) {
	i := lo
	for {
		for i < len(s) && !isDigit(s[i]) {
			i++
		}
		if i >= len(s) {
			return -1, -1
		}
		e := digitRun(s, i)
		if end := e + 8; e-i == 3 && end <= len(s) {
			sep := s[e]
			if (sep == '-' || sep == ' ') &&
				isDigit(s[e+1]) && isDigit(s[e+2]) && s[e+3] == sep &&
				digitRun(s, e+4) == end &&
				!wordBefore(s, i) && !decimalBefore(s, i) && !(i >= 2 && s[i-1] == sep && isDigit(s[i-2])) &&
				!wordAt(s, end) && !decimalAt(s, end) && !(end+1 < len(s) && s[end] == sep && isDigit(s[end+1])) &&
				ssnIssued(s[i:e], s[e+1:e+3], s[e+4:end]) {
				return i, end
			}
		}
		i = e
	}
}

// ssnIssued reports whether area, group and serial can belong to an
// issued number.
func ssnIssued(area, group, serial string) bool {
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}
