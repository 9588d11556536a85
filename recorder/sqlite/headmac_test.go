package sqlite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// lagStore writes a session of three calls with the head's signature held
// back, and stops as a killed warden would: the head's signature names the
// first record, its MAC part the last.
func lagStore(t *testing.T) (path string, signed, last int64) {
	t.Helper()
	sqlite.SetSignEvery(t, time.Hour)
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{CheckpointInterval: time.Hour})
	must(t, err)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	for i := range 3 {
		c := allowedCall(fmt.Sprintf("c%d", i+1), "s1", alice, t0.Add(time.Duration(i+1)*time.Second))
		must(t, s.StartCall(ctx, c))
		must(t, s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"rows": []any{i}}, Count: 1}, nil, time.Millisecond)))
	}
	pub, err := s.PublicKey()
	must(t, err)
	must(t, sqlite.Kill(s))
	h, err := recorder.ReadHead(sqlite.HeadPath(path), pub)
	must(t, err)
	if h.Seq != 1 || h.Claimed != 7 {
		t.Fatalf("head signed at %d, MAC part at %d; want 1 and 7 (the test proves nothing otherwise)", h.Seq, h.Claimed)
	}
	return path, h.Seq, h.Claimed
}

// audit verifies as `warden sessions verify` does: with the key beside the
// store, or (pubOnly) with the public key given as --pubkey.
func audit(t *testing.T, path string, pubOnly bool) (*recorder.VerifyReport, error) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	pub, err := s.PublicKey()
	must(t, err)
	return s.Audit(ctx, recorder.AuditOptions{Key: pub, KeyGiven: pubOnly})
}

// TestMACHeadVouchesForCommitsNotYetSigned: after a kill, the records the
// head's signature does not reach are vouched for by its MAC with the
// signing key, and reported as not signed with the public key only.
func TestMACHeadVouchesForCommitsNotYetSigned(t *testing.T) {
	path, signed, last := lagStore(t)
	rep, err := audit(t, path, false)
	if err != nil || rep.Head == nil || rep.Head.Seq != last || rep.Head.Signed != signed || rep.AfterHead != 0 {
		t.Fatalf("Audit with the signing key = %+v, %v; want the head at %d, signed at %d", rep, err, last, signed)
	}
	rep, err = audit(t, path, true)
	if err != nil || rep.Head == nil || rep.Head.Seq != signed || rep.AfterHead != last-signed {
		t.Fatalf("Audit with the public key = %+v, %v; want the signed head at %d and %d records reported after it", rep, err, signed, last-signed)
	}
	if err := reopen(path); err != nil {
		t.Fatalf("Open after a kill = %v; want nil (the MAC vouches for the records)", err)
	}
	rep, err = audit(t, path, true)
	if err != nil || rep.Head == nil || rep.Head.Seq != last || rep.AfterHead != 0 {
		t.Errorf("Audit with the public key after a restart = %+v, %v; want the head signed at %d", rep, err, last)
	}
}

// TestTruncatedAfterMACOnlyHeadIsRefused: the records only the head's MAC
// vouches for cannot be removed unnoticed, whether the head is left as it
// is, or its MAC part is stripped so that it looks like a head from before
// MAC parts naming the signed record.
func TestTruncatedAfterMACOnlyHeadIsRefused(t *testing.T) {
	strip := func(t *testing.T, path string, keepV bool) {
		data, err := os.ReadFile(sqlite.HeadPath(path))
		must(t, err)
		var h map[string]any
		must(t, json.Unmarshal(data, &h))
		if h["tail"] == nil {
			t.Fatal("the head has no MAC part")
		}
		delete(h, "tail")
		if !keepV {
			delete(h, "v")
		}
		out, err := json.Marshal(h)
		must(t, err)
		must(t, os.WriteFile(sqlite.HeadPath(path), out, 0o600))
	}
	for _, tc := range []struct {
		name         string
		edit         func(t *testing.T, path string)
		opens, audit string
		pubTamper    recorder.Tamper
	}{
		{name: "HeadAsLeft", opens: "names record 7", pubTamper: recorder.Truncated},
		{name: "MACPartStripped", edit: func(t *testing.T, path string) { strip(t, path, true) }, opens: "does not verify", audit: "does not verify"},
		{name: "MACPartAndVersionStripped", edit: func(t *testing.T, path string) { strip(t, path, false) }, opens: "does not verify", audit: "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, signed, last := lagStore(t)
			exec(t, path, dropTriggers, fmt.Sprintf(`DELETE FROM records WHERE seq > %d`, signed))
			if tc.edit != nil {
				tc.edit(t, path)
			}
			if err := reopen(path); err == nil || !strings.Contains(err.Error(), tc.opens) || !strings.Contains(err.Error(), "warden does not extend") {
				t.Errorf("Open(records after the signed head removed) = %v; want a refusal saying %q", err, tc.opens)
			}
			for _, pubOnly := range []bool{false, true} {
				_, err := audit(t, path, pubOnly)
				if tc.audit != "" {
					if err == nil || !strings.Contains(err.Error(), tc.audit) {
						t.Errorf("Audit(pubOnly %v) = %v; want a refusal saying %q", pubOnly, err, tc.audit)
					}
					continue
				}
				assertTamper(t, err, signed+1, recorder.Truncated)
				if err != nil && !strings.Contains(err.Error(), fmt.Sprint(last)) {
					t.Errorf("Audit(pubOnly %v) = %v; want it to name record %d", pubOnly, err, last)
				}
			}
		})
	}
}

// TestHeadMACFromAnotherKeyIsRefused: a MAC part whose MAC was made with
// another key (or made up), naming the store's real end or a record
// appended by hand, is refused at start and by verification with the
// signing key.
func TestHeadMACFromAnotherKeyIsRefused(t *testing.T) {
	_, other, err := ed25519.GenerateKey(nil)
	must(t, err)
	retail := func(t *testing.T, path string, seq int64, macKey []byte) {
		t.Helper()
		data, err := os.ReadFile(sqlite.HeadPath(path))
		must(t, err)
		var h map[string]any
		must(t, json.Unmarshal(data, &h))
		tail := h["tail"].(map[string]any)
		var hash []byte
		db := rawDB(t, path)
		must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = ?`, seq).Scan(&hash))
		db.Close()
		at := tail["at"].(string)
		tail["seq"], tail["hash"] = seq, hex.EncodeToString(hash)
		tail["mac"] = base64.StdEncoding.EncodeToString(recorder.HeadMAC(macKey, seq, at, recorder.Digest(hash)))
		out, err := json.Marshal(h)
		must(t, err)
		must(t, os.WriteFile(sqlite.HeadPath(path), out, 0o600))
	}
	t.Run("AnotherKey", func(t *testing.T) {
		path, _, last := lagStore(t)
		retail(t, path, last, recorder.HeadMACKey(other))
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "MAC does not verify") {
			t.Errorf("Open(head MAC from another key) = %v; want a refusal", err)
		}
		if _, err := audit(t, path, false); err == nil || !strings.Contains(err.Error(), "MAC does not verify") {
			t.Errorf("Audit(head MAC from another key) = %v; want a refusal", err)
		}
	})
	t.Run("RecordAppendedAndNamedWithAMadeUpMAC", func(t *testing.T) {
		path, signed, last := lagStore(t)
		db := rawDB(t, path)
		var prev []byte
		must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = ?`, last).Scan(&prev))
		sid, at, body := "s9", "2025-03-01T13:00:00.000000000Z", `{"id":"s9"}`
		h := sqlite.HashRecord(last+1, "session_start", &sid, nil, &at, body, prev)
		mustExec(t, db, `INSERT INTO records (seq, kind, session_id, at, body, prev_hash, hash) VALUES (?, 'session_start', ?, ?, ?, ?, ?)`, last+1, sid, at, body, prev, h)
		db.Close()
		retail(t, path, last+1, bytes.Repeat([]byte{7}, 32))
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "MAC does not verify") {
			t.Errorf("Open(appended record named by a made-up head MAC) = %v; want a refusal", err)
		}
		if _, err := audit(t, path, false); err == nil || !strings.Contains(err.Error(), "MAC does not verify") {
			t.Errorf("Audit = %v; want a refusal", err)
		}
		// With the public key, the MAC part cannot be checked: the
		// records after the signed head are reported as not signed.
		rep, err := audit(t, path, true)
		if err != nil || rep.Head.Seq != signed || rep.AfterHead != last+1-signed {
			t.Errorf("Audit with the public key = %+v, %v; want %d records after the signed head %d, reported as such", rep, err, last+1-signed, signed)
		}
	})
}

// TestHeadFromBeforeMACPartsIsRead: a head file written by a warden from
// before the MAC part (a v1 signature, no "tail") is still read, at start
// and by verification, and the records after it are vouched for by their
// MACs as before.
func TestHeadFromBeforeMACPartsIsRead(t *testing.T) {
	path, _ := fillStore(t)
	key, err := sqlite.LoadKey(path)
	must(t, err)
	var hash []byte
	db := rawDB(t, path)
	must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = 20`).Scan(&hash))
	db.Close()
	at := "2025-03-01T12:00:00.000000000Z"
	sig := ed25519.Sign(key, recorder.HeadMessage(20, at, recorder.Digest(hash)))
	old := fmt.Sprintf(`{"seq":20,"hash":"%x","at":%q,"key":%q,"sig":%q}`, hash, at,
		recorder.FormatPublicKey(key.Public().(ed25519.PublicKey)), base64.StdEncoding.EncodeToString(sig))
	must(t, os.WriteFile(sqlite.HeadPath(path), append([]byte(old), bytes.Repeat([]byte{' '}, 100)...), 0o600))
	for _, pubOnly := range []bool{false, true} {
		rep, err := audit(t, path, pubOnly)
		if pubOnly {
			// As before: nothing the public key checks vouches for 21..
			assertTamper(t, err, 21, recorder.Unvouched)
			continue
		}
		if err != nil || rep.Head == nil || rep.Head.Seq != 20 {
			t.Errorf("Audit(v1 head) = %+v, %v; want the head at 20", rep, err)
		}
	}
	if err := reopen(path); err != nil {
		t.Fatalf("Open(v1 head) = %v", err)
	}
	data, err := os.ReadFile(sqlite.HeadPath(path))
	must(t, err)
	if !regexp.MustCompile(`^\{"v":2,"seq":26,.*"tail":\{"seq":26,`).Match(data) {
		t.Errorf("head after reopening = %s; want a v2 head at 26", data)
	}
}
