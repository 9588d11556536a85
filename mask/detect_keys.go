package mask

import "strings"

// Context-bound secrets: values that look like anything at all (an AWS
// secret access key is 40 base64 characters, a kubeconfig token can be any
// string) and are secret because of the name they are stored under. The
// same names count in every form a name and its value take: key=value,
// "key": "value", a YAML `key: value` line, a JSON or YAML object member,
// and an env-style {"name": KEY, "value": ...} pair.

// keyRule says what a key's name makes of its value.
type keyRule uint8

const (
	keyNone keyRule = iota
	// keySecret: every non-empty value is a secret.
	keySecret
	// keyNamed: as keySecret, for a short name ("token", "secret") that
	// in prose and code is also a word: "Token = x" with blanks around
	// '=' is not an assignment of a secret.
	keyNamed
	// keyAuthz: an Authorization header; the scheme ("Bearer ") stays,
	// the credentials after it are the secret.
	keyAuthz
	// keyAuth: a docker registry "auth", base64 of user:password. Other
	// "auth" members (a mode name, a boolean) are left alone.
	keyAuth
)

// secretKeySuffixes are the names whose normalized form (lower case, without
// '_', '-', '.' and blanks) ends a key that names a secret: db_password,
// PGPASSWORD, aws_secret_access_key, clientSecret, client-key-data,
// x-api-key, refresh-token, x-amz-security-token, Azure's AccountKey and
// SharedAccessKey, a presigned URL's X-Amz-Signature, Set-Cookie.
// client-certificate-data is not among them: a certificate is public.
var secretKeySuffixes = [...]string{
	"password", "passwd", "pwd", "passphrase",
	"clientsecret", "secretkey", "secretaccesskey", "privatekey", "clientkeydata",
	"apikey", "apitoken", "accesstoken", "refreshtoken", "idtoken", "authtoken",
	"bearertoken", "sessiontoken", "identitytoken", "registrytoken", "basicauth",
	"securitytoken", "accountkey", "sharedaccesskey", "amzsignature", "setcookie",
}

// secretKeyExact are names that count only as the whole key: "token" and
// "secret" as the end of a longer name too often name something else
// (page_token, existingSecret holds the name of a Secret); "sig" is an
// Azure SAS token's signature, "cookie" a session.
var secretKeyExact = [...]string{"token", "secret", "credential", "credentials", "sig", "cookie"}

// keyLast marks the last bytes of every name above, so most keys are
// rejected at their last byte.
var keyLast = func() (t [256]bool) {
	for _, s := range secretKeySuffixes {
		t[s[len(s)-1]] = true
	}
	for _, s := range secretKeyExact {
		t[s[len(s)-1]] = true
	}
	for _, s := range [...]string{"auth", "authorization"} {
		t[s[len(s)-1]] = true
	}
	return t
}()

func keySep(c byte) bool { return c == '_' || c == '-' || c == '.' || c == ' ' }

// foldSuffix reports whether key, normalized, ends with name (lower case),
// and returns how much of key is left before it.
func foldSuffix(key, name string) (rest int, ok bool) {
	i := len(key)
	for n := len(name) - 1; n >= 0; n-- {
		for i > 0 && keySep(key[i-1]) {
			i--
		}
		if i == 0 || key[i-1]|0x20 != name[n] {
			return 0, false
		}
		i--
	}
	return i, true
}

// foldEqual reports whether key, normalized, is name.
func foldEqual(key, name string) bool {
	rest, ok := foldSuffix(key, name)
	if !ok {
		return false
	}
	for i := 0; i < rest; i++ {
		if !keySep(key[i]) {
			return false
		}
	}
	return true
}

// keyRuleOf returns what the name key makes of its value.
func keyRuleOf(key string) keyRule {
	k := len(key)
	for k > 0 && keySep(key[k-1]) {
		k--
	}
	if k == 0 || !keyLast[key[k-1]|0x20] {
		return keyNone
	}
	for _, s := range secretKeySuffixes {
		if _, ok := foldSuffix(key, s); ok {
			return keySecret
		}
	}
	for _, s := range secretKeyExact {
		if foldEqual(key, s) {
			return keyNamed
		}
	}
	if _, ok := foldSuffix(key, "authorization"); ok {
		return keyAuthz
	}
	if foldEqual(key, "auth") {
		return keyAuth
	}
	return keyNone
}

// isMarker reports whether v is already a mask marker (ours or a tool's,
// such as kube_get's "[masked:secret]"), which a key's rule leaves alone.
func isMarker(v string) bool {
	return len(v) < 48 && strings.HasPrefix(v, "[masked") && strings.HasSuffix(v, "]") && !strings.ContainsAny(v, " \t\n")
}

// keyedValue returns the part of value, stored under a name with rule r,
// that is secret: [start, end), or start < 0 for none.
func keyedValue(r keyRule, value string) (int, int) {
	if r == keyNone || value == "" || isMarker(value) {
		return -1, -1
	}
	switch r {
	case keyAuthz:
		// "Bearer x", "Basic x", "token x": keep the scheme.
		i := 0
		for i < len(value) && isLetter(value[i]) {
			i++
		}
		if i > 0 && i+1 < len(value) && value[i] == ' ' {
			if isMarker(value[i+1:]) {
				return -1, -1
			}
			return i + 1, len(value)
		}
	case keyAuth:
		if !basicCredentials(value) {
			return -1, -1
		}
	}
	return 0, len(value)
}

// basicCredentials reports whether v is base64 (standard or URL alphabet,
// padded or not) of printable "user:password", as HTTP Basic credentials
// and docker registry auth entries are.
func basicCredentials(v string) bool {
	if len(v) < 4 || len(v) > 1024 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if b64val[v[i]] == 0xff && !(v[i] == '=' && i >= len(v)-2) {
			return false
		}
	}
	var buf [768]byte
	dec := decodeB64(buf[:0], v)
	colon := false
	for _, c := range dec {
		if c < 0x20 || c > 0x7e {
			return false
		}
		colon = colon || c == ':'
	}
	return colon && len(dec) >= 3
}
