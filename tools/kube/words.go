package kube

import (
	"regexp"
	"strings"
)

// Command lines and free text are judged a word at a time, with the word
// before it as context:
//
//   - the value of a flag that says secret, given as its next word
//     (--password X, -Djavax.net.ssl.keyStorePassword X) or after "="
//     (--password=X);
//   - NAME=VALUE when NAME says secret (env DB_PASSWORD=X cmd);
//   - the value attached to -p (mysql -pX; mongo, sshpass), and the next
//     word after -p unless it is a port (ssh -p 22, docker -p 8080:80);
//   - the password of -u/--user user:password (curl);
//   - the word after a header name that says secret
//     (Authorization: Bearer X, X-Api-Key: X), and after Bearer or Basic
//     when it is long enough to be a credential ("use Basic auth" stays).
//
// A value that opens a quote masks every word up to the one that closes
// it. An args array is one stream of words: a flag that ends one element
// masks the next element whole.

// secretMarker replaces a value judged secret by its context.
const secretMarker = "[masked:secret]"

// strictMarker replaces a free-form value in strict mode.
const strictMarker = "[masked:strict]"

// pending is what the previous word asks of the next one.
type pending int

const (
	pendNone pending = iota
	pendSecret
	pendPort // after -p: masked unless a port
	pendUser // after -u: the part after ':' masked
	pendAuth // after Bearer or Basic: masked when it looks like a credential
)

var headerSecret = set("authorization", "proxyauthorization", "cookie", "setcookie")

// words judges s; p is what the word before s asked of its first word.
// It returns s with secret words replaced, whether it changed, and what
// its last word asks of the next.
func (j *judge) words(s string, p pending) (string, bool, pending) {
	var b strings.Builder
	changed := false
	var quote byte // inside a masked quoted value
	i := 0
	for i < len(s) {
		// Copy whitespace.
		k := i
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		b.WriteString(s[i:k])
		if k == len(s) {
			break
		}
		e := k
		for e < len(s) && !isSpace(s[e]) {
			e++
		}
		w := s[k:e]
		i = e
		if quote != 0 {
			b.WriteString(secretMarker)
			changed = true
			if strings.IndexByte(w, quote) >= 0 {
				quote = 0
			}
			continue
		}
		out, q, next := j.word(w, p)
		if out != w {
			changed = true
		}
		b.WriteString(out)
		quote, p = q, next
	}
	if !changed {
		return s, false, p
	}
	return b.String(), true, p
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// maskValue masks v, a value that starts a word (after "=", ":" or a
// flag): it returns the masked value and, when v opens a quote it does
// not close, the quote character.
func maskValue(v string) (string, byte) {
	if v == "" {
		return v, 0
	}
	if q := v[0]; q == '"' || q == '\'' {
		if len(v) > 1 && strings.IndexByte(v[1:], q) >= 0 {
			return string(q) + secretMarker + string(q), 0
		}
		return string(q) + secretMarker, q
	}
	return secretMarker, 0
}

// word judges one word; p is what the word before asked.
func (j *judge) word(w string, p pending) (string, byte, pending) {
	flagLike := len(w) > 1 && w[0] == '-' && !isNumber(w)
	switch p {
	case pendSecret:
		if l := strings.ToLower(w); l == "bearer" || l == "basic" {
			return w, 0, pendSecret // Authorization: Bearer X
		}
		if !flagLike && !trivial(w) {
			out, q := maskValue(w)
			return out, q, pendNone
		}
	case pendPort:
		if !flagLike && !portLike(w) {
			out, q := maskValue(w)
			return out, q, pendNone
		}
	case pendAuth:
		if !flagLike && len(strings.Trim(w, `"',;`)) >= minCredential {
			out, q := maskValue(w)
			return out, q, pendNone
		}
	case pendUser:
		if user, pw, ok := strings.Cut(w, ":"); ok && pw != "" && !flagLike {
			out, q := maskValue(pw)
			return user + ":" + out, q, pendNone
		}
	}
	bare := strings.Trim(w, `"'`)
	if name, val, ok := strings.Cut(w, "="); ok && name != "" {
		n := strings.Trim(name, `"'`)
		secret := false
		if strings.HasPrefix(n, "-") {
			secret = j.secretFlag(n)
		} else {
			secret = j.secretName(n)
		}
		if secret && !trivial(strings.Trim(val, `"'`)) {
			out, q := maskValue(val)
			return name + "=" + out, q, pendNone
		}
		if n == "-u" || n == "--user" || n == "--proxy-user" {
			if user, pw, ok := strings.Cut(val, ":"); ok && pw != "" {
				out, q := maskValue(pw)
				return name + "=" + user + ":" + out, q, pendNone
			}
		}
		return w, 0, pendNone
	}
	if flagLike {
		switch {
		case j.secretFlag(w):
			return w, 0, pendSecret
		case w == "-p":
			return w, 0, pendPort
		case w == "-u" || w == "--user" || w == "--proxy-user":
			return w, 0, pendUser
		case strings.HasPrefix(w, "-p") && len(w) > 2 && w[2] != '-' && !portLike(w[2:]):
			out, q := maskValue(w[2:])
			return "-p" + out, q, pendNone
		}
		return w, 0, pendNone
	}
	if h, ok := strings.CutSuffix(bare, ":"); ok && h != "" {
		if headerSecret[strings.Join(components(h), "")] || j.secretName(h) {
			return w, 0, pendSecret
		}
		return w, 0, pendNone
	}
	if l := strings.ToLower(bare); l == "bearer" || l == "basic" {
		return w, 0, pendAuth // "Bearer abc.def.ghi", not "use Basic auth"
	}
	return w, 0, pendNone
}

func isNumber(s string) bool {
	for i, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || (i == 0 && c == '-')) {
			return false
		}
	}
	return true
}

// assignment is one line of a properties, .env or simple YAML file:
// NAME = VALUE, NAME: VALUE, export NAME=VALUE.
var assignment = regexp.MustCompile(`^(\s*(?:export\s+)?["']?([A-Za-z0-9_.\-/\[\]]+)["']?\s*[:=]\s*)(\S.*?)\s*$`)

// lines judges a file that is not structured data, line by line: an
// assignment whose name says secret has its value masked; other lines are
// judged as words.
func (j *judge) lines(s string) (string, bool) {
	ls := strings.Split(s, "\n")
	changed := false
	for i, l := range ls {
		if m := assignment.FindStringSubmatch(l); m != nil && j.secretName(m[2]) && !trivial(strings.Trim(m[3], `"'`)) {
			ls[i] = m[1] + secretMarker
			changed = true
			continue
		}
		if out, ch, _ := j.words(l, pendNone); ch {
			ls[i] = out
			changed = true
		}
	}
	if !changed {
		return s, false
	}
	return strings.Join(ls, "\n"), true
}
