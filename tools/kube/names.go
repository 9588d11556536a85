package kube

import (
	"strings"
	"unicode"
)

// A name says secret when one of its components does. A name (an
// environment variable, a flag, an annotation key, a key in a ConfigMap
// file or a custom resource) is split into components at every character
// that is not a letter or digit and at camelCase boundaries, then lower
// cased: AWS_SECRET_ACCESS_KEY, awsSecretAccessKey and
// --aws-secret-access-key all give aws, secret, access, key. Whole
// components are compared, so KEY says secret and MONKEY or KEYCLOAK do
// not; a few long words (password, secret, credential, ...) are found
// inside a component too (PGPASSWORD, dbpassword), and a few compounds
// that end in key or token (apikey, accesstoken).
//
// A name whose last component describes a secret rather than holding one
// (SECRET_NAME, TOKEN_TTL, PASSWORD_FILE, KEY_PATH) does not say secret,
// nor does one with a component public (PUBLIC_KEY).

// judge holds a backend's masking config, compiled.
type judge struct {
	names  map[string]bool
	flags  map[string]bool
	strict bool
	reveal map[string][]string // by path kind: globs
}

func newJudge(m Masking) *judge {
	j := &judge{names: set(m.SecretNames...), flags: set(m.SecretFlags...), strict: m.Strict, reveal: map[string][]string{}}
	for _, r := range m.Reveal {
		kind, name, _ := strings.Cut(r, ":")
		j.reveal[kind] = append(j.reveal[kind], name)
	}
	return j
}

// revealed reports whether strict mode shows the value at kind:name.
func (j *judge) revealed(kind, name string) bool {
	for _, g := range j.reveal[kind] {
		if glob(g, name) {
			return true
		}
	}
	return false
}

// glob matches s against a pattern in which * matches any run of
// characters (annotation keys and paths hold '/' and '.').
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// secretWords are components that say secret on their own.
var secretWords = set("password", "passwd", "pwd", "pass", "passphrase", "passcode", "secret", "secrets",
	"token", "tokens", "key", "keys", "apikey", "credential", "credentials", "creds", "cred", "dsn",
	"auth", "authorization", "private", "privatekey", "cookie", "jwt", "otp", "pin", "salt", "signature",
	"keystore", "pfx", "p12", "jks", "kubeconfig", "htpasswd", "netrc", "pgpass")

// secretInside are found anywhere within a component.
var secretInside = []string{"password", "passwd", "secret", "credential", "passphrase"}

// keyCompounds are the prefixes that make a component ending in "key" a
// key (apikey, accesskey), unlike monkey or turkey.
var keyCompounds = []string{"api", "access", "secret", "private", "master", "signing", "encryption", "enc", "client",
	"ssh", "auth", "license", "session", "hmac", "crypt", "shared", "root", "account", "storage", "service", "sas"}

// descriptors, as the last component, make a name describe a secret
// rather than hold it.
var descriptors = set("name", "names", "ref", "refs", "reference", "file", "files", "path", "paths", "dir", "directory",
	"type", "kind", "length", "len", "size", "ttl", "expiry", "expiration", "expires", "timeout", "duration", "seconds",
	"minutes", "enabled", "enable", "disabled", "mode", "version", "field", "url", "uri", "endpoint", "namespace",
	"format", "policy", "count", "prefix", "location", "alias", "algorithm", "method", "provider", "issuer", "audience",
	"required", "interval", "rotation", "mount", "volume", "selector", "env", "var", "header", "id", "ids", "hint")

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// components splits a name as the comment above says.
func components(name string) []string {
	var out []string
	rs := []rune(name)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			out = append(out, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
			continue
		}
		prev := rs[i-1]
		switch {
		case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			flush(i)
			start = i
		case unicode.IsUpper(r) && unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
			flush(i)
			start = i
		}
	}
	flush(len(rs))
	return out
}

// secretName reports whether name says its value is secret.
func (j *judge) secretName(name string) bool {
	cs := components(name)
	if len(cs) == 0 {
		return false
	}
	if j != nil && j.names[strings.ToLower(name)] {
		return true
	}
	if descriptors[cs[len(cs)-1]] && len(cs) > 1 {
		return false
	}
	for _, c := range cs {
		if c == "public" {
			return false
		}
	}
	for _, c := range cs {
		if secretWords[c] || (j != nil && j.names[c]) {
			return true
		}
		for _, w := range secretInside {
			if strings.Contains(c, w) {
				return true
			}
		}
		if strings.HasSuffix(c, "token") || strings.HasSuffix(c, "pwd") {
			return true
		}
		if p, ok := strings.CutSuffix(c, "key"); ok {
			for _, k := range keyCompounds {
				if p == k {
					return true
				}
			}
		}
	}
	return false
}

// trivial values carry no secret whatever their name says: nothing, a
// boolean, or a reference Kubernetes expands from another variable.
func trivial(v string) bool {
	switch strings.ToLower(v) {
	case "", "true", "false":
		return true
	}
	if (strings.HasPrefix(v, "$(") && strings.HasSuffix(v, ")")) || (strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}")) {
		inner := v[2 : len(v)-1]
		return inner != "" && strings.IndexFunc(inner, func(r rune) bool { return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) }) < 0
	}
	return false
}

// secretFlag reports whether a command-line flag (with its dashes, no
// value) takes a secret: a configured one, or one whose name says secret
// (--password, --db-password, --client-secret, -Djavax.net.ssl.keyStorePassword).
func (j *judge) secretFlag(flag string) bool {
	if j != nil && j.flags[flag] {
		return true
	}
	name := strings.TrimLeft(flag, "-")
	if len(name) < 2 {
		return false // single letters: see shortValue
	}
	if !strings.HasPrefix(flag, "--") && name[0] == 'D' {
		name = name[1:] // a Java system property
	}
	return j.secretName(name)
}

// portLike is a value of -p that is a port or a port mapping
// (ssh -p 22, docker -p 8080:80/tcp), not a password.
func portLike(v string) bool {
	return v != "" && strings.IndexFunc(v, func(r rune) bool { return !(unicode.IsDigit(r) || strings.ContainsRune(":./-tcpud", r)) }) < 0 && unicode.IsDigit(rune(v[0]))
}
