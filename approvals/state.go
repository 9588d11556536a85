package approvals

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/warden-mcp/warden"
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

const stateDomain = "warden/approval-state/v1\x00"

// seal returns the state as an opaque token (see warden.Seal).
func seal(key []byte, st requestState) string {
	st.V = 1
	payload, _ := json.Marshal(st) // a struct of strings and numbers
	return warden.Seal(key, stateDomain, payload)
}

var errBadState = errors.New("the requestState was not issued by warden")

// open verifies a token's MAC and returns its state; it does not check
// what the state binds.
func open(key []byte, token string, now time.Time) (requestState, error) {
	var st requestState
	payload, ok := warden.Unseal(key, stateDomain, token)
	if !ok {
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
