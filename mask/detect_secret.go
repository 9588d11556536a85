package mask

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// secretMarker is the secret_token marker; a password value that already
// is one is left alone, so scrubbing settles.
const secretMarker = "[masked:" + SecretToken + "]"

// secretTrigger marks the bytes at which some secret_token form can start
// or, for passwords, be introduced.
var secretTrigger = [256]bool{'A': true, 'B': true, 'g': true, 'x': true, 'e': true, '=': true, ':': true}

// nextSecret finds a credential:
//   - AWS access key ids: AKIA or ASIA and 16 upper-case letters or digits;
//   - GitHub tokens: ghp_, gho_, ghu_, ghs_ or ghr_ and 36 or more letters
//     or digits, or github_pat_ and 82 or more letters, digits or '_';
//   - Slack tokens: xoxb-, xoxa-, xoxp-, xoxr- or xoxs- and 10 or more
//     letters, digits or '-';
//   - JWTs (and JWEs): three or more dot-separated base64url segments
//     whose first decodes to a JSON object with an "alg" member;
//   - HTTP credentials after their scheme: "Bearer " and a token of 16 or
//     more token68 characters that are not all letters, "Basic " and
//     base64 of user:password;
//   - passwords and other values named secret (keyRuleOf: password,
//     passwd, pwd, aws_secret_access_key, client_secret, token,
//     client-key-data, api_key, a registry auth, Authorization, ...): only
//     the value, in key=value form, any case ("password=x",
//     "PGPASSWORD=x", "Pwd={x}", "?password=x&",
//     "aws_secret_access_key = x"), in key: value form when the key is
//     quoted or starts a YAML line ("\"password\": \"x\"", "  token: x"),
//     and in URLs ("postgres://app:x@db/shop", "redis://u:pa/ss@cache").
//
// Tokens must not continue a word. PEM private keys are found before all
// of these, by nextPEM.
func nextSecret(s string, lo int) (int, int) {
	for j := lo; j < len(s); j++ {
		c := s[j]
		if !secretTrigger[c] {
			continue
		}
		// The second byte rules out most triggers before a call.
		var next byte
		if j+1 < len(s) {
			next = s[j+1]
		}
		start, end := -1, -1
		switch c {
		case 'A':
			if next == 'K' || next == 'S' {
				start, end = awsKey(s, j)
			}
		case 'B':
			if next == 'e' || next == 'a' {
				start, end = authScheme(s, j)
			}
		case 'g':
			if next == 'h' || next == 'i' {
				start, end = githubToken(s, j)
			}
		case 'x':
			if next == 'o' {
				start, end = slackToken(s, j)
			}
		case 'e':
			if next == 'y' || next == 'w' {
				start, end = jwt(s, j)
			}
		case '=':
			start, end = assignedPassword(s, j)
		case ':':
			if next == '/' {
				start, end = urlPassword(s, j)
			} else {
				start, end = keyedPassword(s, j)
			}
		}
		if start >= 0 {
			return start, end
		}
	}
	return -1, -1
}

func alnumBefore(s string, i int) bool { return i > 0 && isAlnum(s[i-1]) }

func awsKey(s string, j int) (int, int) {
	end := j + 20
	if end > len(s) || alnumBefore(s, j) || (s[j:j+4] != "AKIA" && s[j:j+4] != "ASIA") {
		return -1, -1
	}
	for i := j + 4; i < end; i++ {
		if class[s[i]]&(cUpper|cDigit) == 0 {
			return -1, -1
		}
	}
	if end < len(s) && isAlnum(s[end]) {
		return -1, -1
	}
	return j, end
}

func githubToken(s string, j int) (int, int) {
	if alnumBefore(s, j) {
		return -1, -1
	}
	if j+4 <= len(s) && s[j+1] == 'h' && s[j+3] == '_' && strings.IndexByte("pousr", s[j+2]) >= 0 {
		if end := alnumRun(s, j+4); end-(j+4) >= 36 {
			return j, end
		}
		return -1, -1
	}
	const pat = "github_pat_"
	if strings.HasPrefix(s[j:], pat) {
		end := j + len(pat)
		for end < len(s) && isWord(s[end]) {
			end++
		}
		if end-(j+len(pat)) >= 82 {
			return j, end
		}
	}
	return -1, -1
}

func slackToken(s string, j int) (int, int) {
	if j+5 > len(s) || alnumBefore(s, j) || s[j:j+3] != "xox" || s[j+4] != '-' || strings.IndexByte("baprs", s[j+3]) < 0 {
		return -1, -1
	}
	end := j + 5
	for end < len(s) && (isAlnum(s[end]) || s[end] == '-') {
		end++
	}
	if end-(j+5) < 10 {
		return -1, -1
	}
	return j, end
}

// jwt matches at j when s[j:] starts a JWS or JWE in compact form. A JSON
// object encodes to "ey" or, with leading whitespace, "ew".
func jwt(s string, j int) (int, int) {
	if j+2 > len(s) || (s[j+1] != 'y' && s[j+1] != 'w') {
		return -1, -1
	}
	if j > 0 && (class[s[j-1]]&cB64 != 0 || s[j-1] == '.') {
		return -1, -1
	}
	end, dots, firstDot := j, 0, -1
	for end < len(s) && (class[s[end]]&cB64 != 0 || s[end] == '.') {
		if s[end] == '.' {
			if dots == 0 {
				firstDot = end
			}
			dots++
		}
		end++
	}
	if dots < 2 || firstDot-j < 8 || s[firstDot+1] == '.' {
		return -1, -1
	}
	if dots > 2 && s[end-1] == '.' {
		end-- // a sentence's full stop, not an empty signature
	}
	header, err := base64.RawURLEncoding.DecodeString(s[j:firstDot])
	if err != nil {
		return -1, -1
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(header, &fields) != nil {
		return -1, -1
	}
	if _, ok := fields["alg"]; !ok {
		return -1, -1
	}
	return j, end
}

// awsPairWindow is how far after an AWS access key id its secret access
// key is looked for when no name says what it is.
const awsPairWindow = 128

// nextAWSSecret finds an AWS secret access key that follows its access key
// id without a name (the console's credentials.csv, "AKIA... wJalr..."):
// 40 characters of letters, digits, '/' and '+', with upper and lower case,
// within awsPairWindow bytes after an AKIA or ASIA key id. Named keys
// (aws_secret_access_key = ...) are found by nextSecret anyway. It runs
// before nextSecret, which masks the key id it needs.
func nextAWSSecret(s string, lo int) (int, int) {
	from := max(0, lo-awsPairWindow-20)
	for {
		k := indexAWSKey(s, from)
		if k < 0 {
			return -1, -1
		}
		from = k + 20
		limit := min(len(s), from+awsPairWindow)
		for i := max(from, lo); i < limit; i++ {
			if !awsSecretByte(s[i]) || i > 0 && awsSecretByte(s[i-1]) {
				continue
			}
			end := i
			upper, lower := false, false
			for end < len(s) && awsSecretByte(s[end]) {
				upper = upper || class[s[end]]&cUpper != 0
				lower = lower || class[s[end]]&cLower != 0
				end++
			}
			if end-i == 40 && upper && lower && (end == len(s) || s[end] != '=') {
				return i, end
			}
			i = end
		}
	}
}

// indexAWSKey returns the index of the first AWS access key id in s at or
// after from, or -1.
func indexAWSKey(s string, from int) int {
	for from < len(s) {
		// One pass for both prefixes: searching each separately to the
		// end of s, once per call, would be quadratic.
		a := strings.IndexByte(s[from:], 'A')
		if a < 0 {
			return -1
		}
		a += from
		if a+4 <= len(s) && (s[a+1:a+4] == "KIA" || s[a+1:a+4] == "SIA") {
			if start, _ := awsKey(s, a); start >= 0 {
				return start
			}
		}
		from = a + 1
	}
	return -1
}

func awsSecretByte(c byte) bool { return isAlnum(c) || c == '/' || c == '+' }

// nextPEM finds a PEM private key: from "-----BEGIN <label>-----", where
// the label contains PRIVATE KEY, through the matching END line, or to the
// end of the string when that is missing (a truncated body). It runs
// before the other secret_token scans so that none of them can take the
// start of a key ("password=-----BEGIN...") and leave the rest.
func nextPEM(s string, lo int) (int, int) {
	const begin = "-----BEGIN "
	for {
		i := strings.Index(s[lo:], begin)
		if i < 0 {
			return -1, -1
		}
		if start, end := pemKey(s, lo+i); start >= 0 {
			return start, end
		}
		lo += i + len(begin)
	}
}

// pemKey matches the PEM private key that starts at "-----BEGIN " j.
func pemKey(s string, j int) (int, int) {
	const begin = "-----BEGIN "
	k := j + len(begin)
	for k < len(s) && (class[s[k]]&(cUpper|cDigit) != 0 || s[k] == ' ') {
		k++
	}
	label := s[j+len(begin) : k]
	if !strings.HasPrefix(s[k:], "-----") || !strings.Contains(label, "PRIVATE KEY") {
		return -1, -1
	}
	k += len("-----")
	endLine := "-----END " + label + "-----"
	if i := strings.Index(s[k:], endLine); i >= 0 {
		return j, k + i + len(endLine)
	}
	// No END line: the key was cut off, and the rest is key material.
	return j, len(s)
}

// isKeyByte reports whether c can be part of a configuration key.
func isKeyByte(c byte) bool { return isWord(c) || c == '.' || c == '-' }

// secretKeyAt returns where the key ending at k (exclusive) starts and
// what its name makes of its value.
func secretKeyAt(s string, k int) (int, keyRule) {
	// Most ':' and '=' follow no secret name: reject on the last byte.
	if k == 0 || !keyLast[s[k-1]|0x20] {
		return k, keyNone
	}
	ks := k
	for ks > 0 && isKeyByte(s[ks-1]) {
		ks--
	}
	return ks, keyRuleOf(s[ks:k])
}

// keyedSpan narrows a value span to what rule r masks of it.
func keyedSpan(s string, r keyRule, start, end int) (int, int) {
	if start < 0 {
		return -1, -1
	}
	a, b := keyedValue(r, s[start:end])
	if a < 0 {
		return -1, -1
	}
	return start + a, start + b
}

// assignedPassword matches the value of key=value at '=' j.
func assignedPassword(s string, j int) (int, int) {
	if j+1 < len(s) && s[j+1] == '=' || j > 0 && strings.IndexByte("=!<>", s[j-1]) >= 0 {
		return -1, -1 // a comparison, not an assignment
	}
	k := j
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	_, rule := secretKeyAt(s, k)
	if rule == keyNone || rule == keyNamed && (k < j || j+1 < len(s) && s[j+1] == ' ') {
		return -1, -1
	}
	start, end := passwordValue(s, j+1, false)
	return keyedSpan(s, rule, start, end)
}

// keyedPassword matches the value of a "key": value or YAML key: value
// pair at ':' j.
func keyedPassword(s string, j int) (int, int) {
	k, quoted := j, false
	if k > 0 && (s[k-1] == '"' || s[k-1] == '\'') {
		k--
		quoted = true
		if k > 0 && s[k-1] == '\\' { // JSON inside a string: \"password\":
			k--
		}
	}
	ks, rule := secretKeyAt(s, k)
	if rule == keyNone {
		return -1, -1
	}
	if !quoted {
		// Unquoted keys count only where YAML puts them: at the start of
		// a line (after indentation or "- "), or in a flow mapping. This
		// keeps prose like "wrong password: try again" readable.
		if j+1 < len(s) && s[j+1] != ' ' && s[j+1] != '\t' {
			return -1, -1
		}
		b := ks
		for b > 0 && (s[b-1] == ' ' || s[b-1] == '\t' || s[b-1] == '-') {
			b--
		}
		if b > 0 && strings.IndexByte("\n\r{,", s[b-1]) < 0 {
			return -1, -1
		}
	}
	start, end := passwordValue(s, j+1, true)
	if start >= 0 && isBlockIndicator(s[start:end]) {
		// "password: |" and the indented lines below: the value is
		// the block.
		end = blockEnd(s, end, indentBefore(s, ks))
	}
	return keyedSpan(s, rule, start, end)
}

// isBlockIndicator reports whether v introduces a YAML block scalar:
// '|' or '>' with optional chomping and indentation indicators.
func isBlockIndicator(v string) bool {
	if v == "" || v[0] != '|' && v[0] != '>' {
		return false
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; c != '-' && c != '+' && !isDigit(c) {
			return false
		}
	}
	return len(v) <= 3
}

// indentBefore returns the indentation of the line holding i.
func indentBefore(s string, i int) int {
	ls := strings.LastIndexAny(s[:i], "\n\r") + 1
	n := 0
	for ls+n < i && (s[ls+n] == ' ' || s[ls+n] == '-' || s[ls+n] == '\t') {
		n++
	}
	return n
}

// blockEnd returns the end of the block scalar whose indicator line ends
// at end: the following lines that are blank or indented more than
// indent.
func blockEnd(s string, end, indent int) int {
	last := end
	for i := end; i < len(s); {
		if s[i] == '\r' {
			i++
		}
		if i >= len(s) || s[i] != '\n' {
			break
		}
		ls := i + 1
		le := strings.IndexAny(s[ls:], "\r\n")
		if le < 0 {
			le = len(s)
		} else {
			le += ls
		}
		n := 0
		for ls+n < le && s[ls+n] == ' ' {
			n++
		}
		if ls+n < le {
			if n <= indent {
				break
			}
			last = le
		}
		i = le
	}
	return last
}

// passwordValue returns the password value that starts at or after v
// (after blanks): quoted, braced (ODBC) or bare. A bare value after '='
// ends at a blank, ';', '&' or a quote; after ':' it ends at the end of
// the line, ',', '}' or a quote. A value missing its closing quote
// runs to the end of s.
func passwordValue(s string, from int, colon bool) (int, int) {
	v := from
	for v < len(s) && (s[v] == ' ' || s[v] == '\t') {
		v++
	}
	if v >= len(s) {
		return -1, -1
	}
	start, end := v, len(s)
	switch c := s[v]; {
	case c == '"' || c == '\'':
		start = v + 1
		for k := start; k < len(s); k++ {
			if s[k] == '\\' {
				k++
			} else if s[k] == c {
				end = k
				break
			}
		}
	case c == '\\' && v+1 < len(s) && (s[v+1] == '"' || s[v+1] == '\''):
		start = v + 2
		if i := strings.Index(s[start:], s[v:v+2]); i >= 0 {
			end = start + i
		}
	case c == '{' && !colon:
		start = v + 1
		if i := strings.IndexByte(s[start:], '}'); i >= 0 {
			end = start + i
		}
	default:
		for k := v; k < len(s); k++ {
			if bareValueEnds(s, k, colon) {
				end = k
				break
			}
		}
		if !colon && v > from && strings.IndexByte(s[start:end], '=') >= 0 {
			// "password= user=x": the password is empty and the next
			// pair follows.
			return -1, -1
		}
		if colon {
			for end > start && (s[end-1] == ' ' || s[end-1] == '\t') {
				end--
			}
		}
	}
	if end <= start || s[start:end] == secretMarker {
		return -1, -1
	}
	return start, end
}

// bareValueEnds reports whether an unquoted value ends at k.
func bareValueEnds(s string, k int, colon bool) bool {
	switch c := s[k]; c {
	case '"', '\'', '\n', '\r':
		return true
	case '\\':
		// An escaped quote or line break: the value sits inside an
		// encoded string.
		return k+1 < len(s) && strings.IndexByte("\"'nrt", s[k+1]) >= 0
	case ' ', '\t', ';', '&':
		return !colon
	case ',', '}':
		// Not ']': a marker ends in one, and a value must never stop
		// inside a marker, or scrubbing would not settle.
		return colon
	}
	return false
}

// urlPassword matches the password of a URL's userinfo at "://" j. A
// password may contain '/', '?' or '#' unencoded ("redis://u:pa/ss@h"):
// when the authority up to the first of them has no '@', the userinfo runs
// on to the first '@' within maxUserinfo bytes that a host follows, unless
// what follows the colon is a port ("http://h:8080/a@b"). A password that
// starts with up to five digits and a '/' therefore passes as a port, and
// one that contains an '@' before a '/' is masked only up to that '@'.
func urlPassword(s string, j int) (int, int) {
	if j == 0 || j+3 > len(s) || s[j+1] != '/' || s[j+2] != '/' {
		return -1, -1
	}
	if c := s[j-1]; !isAlnum(c) && c != '+' && c != '.' && c != '-' {
		return -1, -1
	}
	a := j + 3
	p := a // the end of the authority as a parser reads it
	for p < len(s) && strings.IndexByte("/?# \t\r\n\"'<>\\`", s[p]) < 0 {
		p++
	}
	var start, end int
	if at := strings.LastIndexByte(s[a:p], '@'); at >= 0 {
		colon := userColon(s[a : a+at])
		if colon < 0 {
			return -1, -1
		}
		start, end = a+colon+1, a+at
	} else {
		colon := userColon(s[a:p])
		if colon < 0 || p == len(s) || strings.IndexByte("/?#", s[p]) < 0 {
			return -1, -1
		}
		if port := s[a+colon+1 : p]; port != "" && len(port) <= 5 && digitRun(port, 0) == len(port) {
			return -1, -1
		}
		// The '@' that ends the userinfo: before a blank, a quote, the
		// next URL ("://") or maxUserinfo bytes, so that text with many
		// URLs is scanned once.
		at := -1
		for e := p; e < len(s) && e-a < maxUserinfo; e++ {
			c := s[e]
			if c == '@' {
				at = e
				break
			}
			if strings.IndexByte(" \t\r\n\"'<>\\`", c) >= 0 || c == ':' && strings.HasPrefix(s[e:], "://") {
				break
			}
		}
		if at < 0 {
			return -1, -1
		}
		if at+1 >= len(s) || !isAlnum(s[at+1]) && s[at+1] != '[' {
			return -1, -1
		}
		start, end = a+colon+1, at
	}
	if end <= start || s[start:end] == secretMarker {
		return -1, -1
	}
	return start, end
}

// maxUserinfo bounds how far a URL's userinfo is looked for, so that
// scanning stays linear in text of many "://".
const maxUserinfo = 512

// authScheme matches the credentials of "Bearer <token>" or "Basic
// <base64 of user:password>" at 'B' j.
func authScheme(s string, j int) (int, int) {
	if alnumBefore(s, j) {
		return -1, -1
	}
	var basic bool
	switch {
	case strings.HasPrefix(s[j:], "Bearer "):
	case strings.HasPrefix(s[j:], "Basic "):
		basic = true
	default:
		return -1, -1
	}
	start := strings.IndexByte(s[j:], ' ') + j + 1
	end, letters := start, true
	for end < len(s) && (isAlnum(s[end]) || strings.IndexByte("-._~+/", s[end]) >= 0) {
		letters = letters && isLetter(s[end])
		end++
	}
	if end > start && s[end-1] == '.' {
		end-- // a sentence's full stop
	}
	for end < len(s) && s[end] == '=' {
		end++
	}
	if end < len(s) && isWord(s[end]) {
		return -1, -1
	}
	if basic {
		if !basicCredentials(s[start:end]) {
			return -1, -1
		}
	} else if end-start < 16 || letters {
		return -1, -1
	}
	return start, end
}

// userColon returns the index of the ':' that ends the user name in
// userinfo, or -1. A marker is opaque: after "u://[masked:x]@h" was
// scrubbed, its colon must not start a password.
func userColon(userinfo string) int {
	for i := 0; i < len(userinfo); i++ {
		switch userinfo[i] {
		case ':':
			return i
		case '[':
			if strings.HasPrefix(userinfo[i:], markerPrefix) {
				if k := markerLen(userinfo[i:]); k > 0 {
					i += k - 1
				}
			}
		}
	}
	return -1
}
