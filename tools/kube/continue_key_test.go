package kube

import "testing"

// A continue token sealed by one instance opens on another that was given
// the same key, and on no instance with its own random key.
func TestContinueTokenOpensOnEveryInstanceSharingTheKey(t *testing.T) {
	shared := []byte("0123456789abcdef0123456789abcdef")
	a, b, other := &Backend{key: make([]byte, 32)}, &Backend{key: make([]byte, 32)}, &Backend{key: []byte("ffffffffffffffffffffffffffffffff")}
	a.SetContinueKey(shared)
	b.SetContinueKey(shared)
	tok := sealContinue(a.key, "fp", continueState{Page: 2, Token: "next"})
	if st, err := openContinue(b.key, tok, "fp"); err != nil || st.Page != 2 || st.Token != "next" {
		t.Errorf("openContinue on another instance with the shared key = %+v, %v; want page 2", st, err)
	}
	if _, err := openContinue(other.key, tok, "fp"); err == nil {
		t.Error("openContinue with another key = nil error; want a refusal")
	}
}
