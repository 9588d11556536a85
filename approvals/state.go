package approvals

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// requestState is what the requestState warden hands a client with a
// question binds: the approval request, the principal it was issued to,
// the exact call, the rule and an expiry. The client echoes it back with
// the user's answer; warden believes the answer only if the state is one
// it issued (HMAC), for this principal and this exact call, and the
// request is still pending in the store (single use).
type requestState struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Sub  string `json:"sub"`
	Iss  string `json:"iss,omitempty"`
	Tool string `json:"tool"`
	Hash string `json:"hash"`
	Rule string `json:"rule"`
	Exp  int64  `json:"exp"`
}

const (
	statePrefix = "w1."
	stateDomain = "warden/approval-state/v1\x00"
)

var b64 = base64.RawURLEncoding

// seal returns the state as an opaque token: payload and MAC.
func seal(key []byte, st requestState) string {
	st.V = 1
	payload, _ := json.Marshal(st) // a struct of strings and numbers
	return statePrefix + b64.EncodeToString(payload) + "." + b64.EncodeToString(mac(key, payload))
}

func mac(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateDomain))
	m.Write(payload)
	return m.Sum(nil)
}

var errBadState = errors.New("the requestState was not issued by warden")

// open verifies a token's MAC and returns its state; it does not check
// what the state binds.
func open(key []byte, token string, now time.Time) (requestState, error) {
	var st requestState
	rest, ok := strings.CutPrefix(token, statePrefix)
	if !ok {
		return st, errBadState
	}
	p, m, ok := strings.Cut(rest, ".")
	if !ok {
		return st, errBadState
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, mac(key, payload)) {
		return st, errBadState
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || st.V != 1 || st.ID == "" {
		return st, errBadState
	}
	if !now.Before(time.Unix(st.Exp, 0)) {
		return st, errors.New("the requestState has expired")
	}
	return st, nil
}
