package warden

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Opaque tokens warden hands clients to echo back (an approval's
// requestState, a list's continue token) are sealed: "w1." +
// base64url(payload) + "." + base64url(HMAC-SHA256(key, domain ||
// payload)). The domain keeps one kind of token from passing for another,
// and can bind what a token belongs to (the list a continue token pages).

const sealPrefix = "w1."

var sealEncoding = base64.RawURLEncoding

// Seal returns payload sealed under key for domain.
func Seal(key []byte, domain string, payload []byte) string {
	return sealPrefix + sealEncoding.EncodeToString(payload) + "." + sealEncoding.EncodeToString(sealMAC(key, domain, payload))
}

// Unseal returns the payload of a token Seal made with the same key and
// domain; ok is false for anything else.
func Unseal(key []byte, domain, token string) (payload []byte, ok bool) {
	rest, ok := strings.CutPrefix(token, sealPrefix)
	if !ok {
		return nil, false
	}
	p, m, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, false
	}
	payload, err1 := sealEncoding.DecodeString(p)
	sum, err2 := sealEncoding.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, sealMAC(key, domain, payload)) {
		return nil, false
	}
	return payload, true
}

func sealMAC(key []byte, domain string, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(domain))
	m.Write(payload)
	return m.Sum(nil)
}
