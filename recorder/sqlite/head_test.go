package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// crashedStore writes a session of n calls with no checkpoint after the
// first 8 records and leaves the store as a killed warden would: the
// records after checkpoint 9 are unsigned, and the head names the last.
func crashedStore(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{CheckpointEvery: 8, CheckpointInterval: time.Hour})
	must(t, err)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	for i := range 3 {
		c := allowedCall(fmt.Sprintf("c%d", i+1), "s1", alice, t0.Add(time.Duration(i+1)*time.Second))
		must(t, s.StartCall(ctx, c))
		must(t, s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"rows": []any{i}}, Count: 1}, nil, time.Millisecond)))
	}
	// Records 1..7, then 8 starts the next batch: from 10 on, only the
	// chain and the head cover them.
	must(t, s.EndSession(ctx, "s1", t0.Add(time.Minute)))
	for i := range n {
		must(t, s.StartSession(ctx, session(fmt.Sprintf("t%d", i), alice, t0.Add(time.Hour))))
	}
	must(t, sqlite.Crash(s))
	return path
}

// strictVerify verifies as `warden sessions verify` does by default: the
// key, head and MAC key all from beside the store.
func strictVerify(t *testing.T, path string, pubOnly bool) (*recorder.VerifyReport, error) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	pub, err := s.PublicKey()
	must(t, err)
	head, err := recorder.ReadHead(sqlite.HeadPath(path), pub)
	must(t, err)
	opts := recorder.VerifyOptions{Key: pub, Head: head}
	if !pubOnly {
		if opts.MACKey, err = sqlite.MACKey(path); err != nil {
			t.Fatal(err)
		}
	}
	return s.VerifyWith(ctx, opts)
}

// reopen opens the store for writing, as warden serve does at start.
func reopen(path string) error {
	s, err := sqlite.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		return err
	}
	return s.Close()
}

func copyStore(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		src, err := os.Open(from + suffix)
		if os.IsNotExist(err) {
			os.Remove(to + suffix)
			continue
		}
		must(t, err)
		dst, err := os.OpenFile(to+suffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		must(t, err)
		_, err = io.Copy(dst, src)
		must(t, err)
		src.Close()
		must(t, dst.Close())
	}
}

// TestShortenedOrRewrittenRecordingIsCaught edits the SQLite file by hand,
// as someone who can write it but cannot read the signing key would, and
// checks that verification catches each edit, with and without the MAC
// key, and that warden refuses to extend the chain.
func TestShortenedOrRewrittenRecordingIsCaught(t *testing.T) {
	for _, tc := range []struct {
		name string
		// attack edits the closed store at path.
		attack  func(t *testing.T, path string)
		crashed bool
		// What verify says with the MAC key, and with the public key only.
		seq, pubSeq   int64
		tamper, pubTa recorder.Tamper
		opens         string
	}{
		{
			name: "NewestRecordsDeleted",
			attack: func(t *testing.T, path string) {
				exec(t, path, dropTriggers, `DELETE FROM records WHERE seq >= 20`)
			},
			seq: 20, pubSeq: 20, tamper: recorder.Truncated, pubTa: recorder.Truncated, opens: "names record 26",
		},
		{
			name: "LastCheckpointDeletedAndRecordsBeforeItRewrittenWithRecomputedHashes",
			attack: func(t *testing.T, path string) {
				exec(t, path, dropTriggers, `DELETE FROM records WHERE seq = 26`,
					`UPDATE records SET body = replace(body, 'public.orders', 'public.payroll') WHERE seq >= 19`)
				db := rawDB(t, path)
				defer db.Close()
				must(t, sqlite.Rechain(db, 19, nil))
			},
			seq: 19, pubSeq: 26, tamper: recorder.Unvouched, pubTa: recorder.Truncated, opens: "names record 26",
		},
		{
			name:    "UnsignedTailRewrittenWithRecomputedHashes",
			crashed: true,
			attack: func(t *testing.T, path string) {
				exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, 'alice@example.com', 'mallory@example.com') WHERE seq = 12`)
				db := rawDB(t, path)
				defer db.Close()
				must(t, sqlite.Rechain(db, 12, nil))
			},
			seq: 12, pubSeq: 14, tamper: recorder.Unvouched, pubTa: recorder.Changed, opens: "is not the record the signed head names",
		},
		{
			name:    "UnsignedTailDeleted",
			crashed: true,
			attack: func(t *testing.T, path string) {
				exec(t, path, dropTriggers, `DELETE FROM records WHERE seq >= 12`)
			},
			seq: 12, pubSeq: 12, tamper: recorder.Truncated, pubTa: recorder.Truncated, opens: "names record 14",
		},
		{
			name: "RecordAppendedWithAValidHash",
			attack: func(t *testing.T, path string) {
				db := rawDB(t, path)
				defer db.Close()
				var prev []byte
				must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = 26`).Scan(&prev))
				sid, at, body := "s9", "2025-03-01T13:00:00.000000000Z", `{"id":"s9"}`
				h := sqlite.HashRecord(27, "session_start", &sid, nil, &at, body, prev)
				mustExec(t, db, `INSERT INTO records (seq, kind, session_id, at, body, prev_hash, hash) VALUES (27, 'session_start', ?, ?, ?, ?, ?)`, sid, at, body, prev, h)
			},
			seq: 27, pubSeq: 27, tamper: recorder.Unvouched, pubTa: recorder.Unvouched, opens: "has no valid MAC",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var path string
			if tc.crashed {
				path = crashedStore(t, 5)
			} else {
				path, _ = fillStore(t)
			}
			if _, err := strictVerify(t, path, false); err != nil {
				t.Fatalf("Verify before the attack = %v", err)
			}
			tc.attack(t, path)
			_, err := strictVerify(t, path, false)
			assertTamper(t, err, tc.seq, tc.tamper)
			_, err = strictVerify(t, path, true)
			assertTamper(t, err, tc.pubSeq, tc.pubTa)
			err = reopen(path)
			if err == nil || !strings.Contains(err.Error(), tc.opens) || !strings.Contains(err.Error(), "warden does not extend") {
				t.Errorf("Open(attacked store) = %v; want a refusal saying %q", err, tc.opens)
			}
		})
	}

	t.Run("OlderCopySwappedIn", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		must(t, s.StartSession(ctx, session("s1", alice, t0)))
		must(t, s.Close())
		old := filepath.Join(t.TempDir(), "old.db")
		copyStore(t, path, old)
		s, err = sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		must(t, s.StartSession(ctx, session("s2", alice, t0.Add(time.Hour))))
		must(t, s.Close())
		copyStore(t, old, path)
		_, err = strictVerify(t, path, true)
		assertTamper(t, err, 3, recorder.Truncated)
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "older copy") {
			t.Errorf("Open(older copy) = %v; want a refusal", err)
		}
	})

	t.Run("HeadMissingOrForged", func(t *testing.T) {
		path, _ := fillStore(t)
		head := sqlite.HeadPath(path)
		data, err := os.ReadFile(head)
		must(t, err)
		must(t, os.Remove(head))
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "is missing") {
			t.Errorf("Open(no head) = %v; want a refusal", err)
		}
		must(t, os.WriteFile(head, bytes.Replace(data, []byte(`"seq":26`), []byte(`"seq":20`), 1), 0o600))
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "does not verify") {
			t.Errorf("Open(head with another seq) = %v; want a refusal", err)
		}
	})

	t.Run("CrashBetweenCommitAndHeadIsVouchedForByMACs", func(t *testing.T) {
		// The head names an earlier record than the store's last, as
		// after a crash between a commit and the head's rewrite: the
		// records after it carry warden's MACs, so warden continues.
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		must(t, s.StartSession(ctx, session("s1", alice, t0)))
		early, err := os.ReadFile(sqlite.HeadPath(path))
		must(t, err)
		must(t, s.StartSession(ctx, session("s2", alice, t0)))
		must(t, sqlite.Crash(s))
		must(t, os.WriteFile(sqlite.HeadPath(path), early, 0o600))
		if _, err := strictVerify(t, path, false); err != nil {
			t.Errorf("Verify(records after the head, with MACs) = %v; want nil", err)
		}
		_, err = strictVerify(t, path, true)
		assertTamper(t, err, 2, recorder.Unvouched)
		if err := reopen(path); err != nil {
			t.Fatalf("Open(records after the head, with MACs) = %v; want nil", err)
		}
		if rep, err := strictVerify(t, path, true); err != nil || rep.Head == nil || rep.Head.Seq != rep.Last {
			t.Errorf("Verify after reopening = %+v, %v; want the head at the end", rep, err)
		}
	})
}

// TestNoKeyMaterialInTheStore: the masking hash key, the approval state
// key, the record MAC key and the signing key are in none of the store's
// files, so a copy handed to an auditor reveals none of them.
func TestNoKeyMaterialInTheStore(t *testing.T) {
	ctx := context.Background()
	storeBytes := func(t *testing.T, path string) []byte {
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(path + suffix)
			if err == nil {
				all = append(all, b...)
			}
		}
		return all
	}
	absent := func(t *testing.T, path string, keys map[string][]byte) {
		t.Helper()
		data := storeBytes(t, path)
		if len(data) < 4096 {
			t.Fatalf("store files hold %d bytes; want a real store", len(data))
		}
		for name, k := range keys {
			if len(k) < 16 {
				t.Fatalf("key %s has %d bytes", name, len(k))
			}
			if bytes.Contains(data, k) {
				t.Errorf("the store's files contain the %s", name)
			}
		}
	}

	t.Run("NewStore", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		hashKey, err := s.Secret(ctx, "masking.hash_key", 32)
		must(t, err)
		stateKey, err := s.Secret(ctx, "approvals.state_key", 32)
		must(t, err)
		if bytes.Equal(hashKey, stateKey) {
			t.Fatal("two secrets are the same key")
		}
		must(t, s.StartSession(ctx, session("s1", alice, t0)))
		must(t, s.Close())
		s, err = sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		again, err := s.Secret(ctx, "masking.hash_key", 32)
		must(t, err)
		must(t, s.Close())
		if !bytes.Equal(again, hashKey) {
			t.Error("the masking key changed across a restart")
		}
		macKey, err := sqlite.MACKey(path)
		must(t, err)
		seed, err := sqlite.Seed(path)
		must(t, err)
		absent(t, path, map[string][]byte{"masking hash key": hashKey, "approval state key": stateKey, "record MAC key": macKey, "signing key": seed})
	})

	t.Run("MigratedStoreMovesItsSecretsOut", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "warden.db")
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		must(t, s.StartSession(ctx, session("s1", alice, t0)))
		must(t, s.Close())
		// A version 3 store, as warden kept it: key material in a
		// secrets table, no MACs, no head.
		legacy := bytes.Repeat([]byte("K3y!"), 8)
		exec(t, path, `ALTER TABLE records DROP COLUMN mac`,
			`CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
			fmt.Sprintf(`INSERT INTO secrets VALUES ('masking.hash_key', x'%x')`, legacy),
			`PRAGMA user_version = 3`)
		legacyChain(t, path)
		must(t, os.Remove(sqlite.HeadPath(path)))
		if !bytes.Contains(storeBytes(t, path), legacy) {
			t.Fatal("the legacy key is not in the version 3 store; the test proves nothing")
		}
		s, err = sqlite.Open(ctx, "sqlite:"+path)
		must(t, err)
		got, err := s.Secret(ctx, "masking.hash_key", 32)
		must(t, err)
		if !bytes.Equal(got, legacy) {
			t.Errorf("Secret after migration = %x; want the store's old key %x, so masked values keep their pseudonyms", got, legacy)
		}
		must(t, s.StartSession(ctx, session("s2", alice, t0)))
		must(t, s.Close())
		absent(t, path, map[string][]byte{"masking hash key": legacy})
		fi, err := os.Stat(sqlite.SecretsPath(path))
		must(t, err)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("secrets file mode = %v; want 0600", fi.Mode().Perm())
		}
		if _, err := strictVerify(t, path, false); err != nil {
			t.Errorf("Verify(migrated store) = %v", err)
		}
	})
}

// TestArgumentsAreRecordedOnce: a call that ran has its arguments in its
// call_start only, and reads back whole; a call refused before it ran has
// them in its only record.
func TestArgumentsAreRecordedOnce(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	big := strings.Repeat("ARGUMENT-MARKER ", 4096)
	ran := allowedCall("c1", "s1", alice, t0.Add(time.Second))
	ran.Args = []byte(fmt.Sprintf(`{"database":"shop","sql":"SELECT 1","purpose":%q}`, big))
	must(t, s.StartCall(ctx, ran))
	must(t, s.FinishCall(ctx, finish(ran, &warden.Result{Structured: map[string]any{"rows": []any{1}}, Count: 1}, nil, time.Millisecond)))
	refused := deniedCall("c2", "s1", alice, t0.Add(2*time.Second))
	refused.Args = []byte(fmt.Sprintf(`{"database":"shop","sql":"SELECT * FROM payroll","purpose":%q}`, big))
	must(t, s.FinishCall(ctx, finish(refused, nil, refused.Err, time.Millisecond)))

	bodies := strings.Join(column(t, path, "body"), "\n")
	if n := strings.Count(bodies, big); n != 2 {
		t.Errorf("the arguments appear %d times in the records; want once per call (2)", n)
	}
	_, calls, err := s.Session(ctx, "s1")
	must(t, err)
	if len(calls) != 2 {
		t.Fatalf("Session = %d calls; want 2", len(calls))
	}
	for i, c := range []*warden.Call{ran, refused} {
		if string(calls[i].Args) != string(c.Args) || calls[i].Status != recorder.StatusFinished {
			t.Errorf("call %s read back with %d bytes of arguments, status %s; want %d bytes, finished", c.ID, len(calls[i].Args), calls[i].Status, len(c.Args))
		}
	}
	if calls[0].Statement == "" || calls[0].Backend != ran.Action.Backend {
		t.Errorf("call c1 read back with action %q on %q; want the one its start recorded", calls[0].Statement, calls[0].Backend)
	}
}

// TestResealAcceptsAVerifiedEndOnly: the operator's way past a refused
// head accepts a store that verifies with the signing key and its MACs
// (the newest records lost, as after a power loss), never one whose
// records were rewritten.
func TestResealAcceptsAVerifiedEndOnly(t *testing.T) {
	ctx := context.Background()
	reseal := func(path string) (*recorder.VerifyReport, *recorder.Head, error) {
		s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
		must(t, err)
		defer s.Close()
		return s.Reseal(ctx)
	}
	t.Run("LostNewestRecords", func(t *testing.T) {
		path, _ := fillStore(t)
		exec(t, path, dropTriggers, `DELETE FROM records WHERE seq >= 20`)
		if reopen(path) == nil {
			t.Fatal("Open(shortened store) = nil; want a refusal")
		}
		rep, old, err := reseal(path)
		if err != nil || old == nil || old.Seq != 26 || rep.Last != 19 {
			t.Fatalf("Reseal = %+v, old %+v, %v; want records up to 19 accepted, the old head at 26", rep, old, err)
		}
		if err := reopen(path); err != nil {
			t.Errorf("Open after Reseal = %v; want nil", err)
		}
	})
	t.Run("RewrittenRecords", func(t *testing.T) {
		path := crashedStore(t, 3)
		exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, 'alice@example.com', 'mallory@example.com') WHERE seq = 11`)
		db := rawDB(t, path)
		must(t, sqlite.Rechain(db, 11, nil))
		db.Close()
		before, err := os.ReadFile(sqlite.HeadPath(path))
		must(t, err)
		_, _, err = reseal(path)
		assertTamper(t, err, 11, recorder.Unvouched)
		after, _ := os.ReadFile(sqlite.HeadPath(path))
		if !bytes.Equal(before, after) {
			t.Error("a failed Reseal rewrote the head")
		}
	})
}

// TestKeyDirKeepsKeyAndHeadApart: with a key directory, nothing that
// vouches for the store is beside it, so someone who can replace every
// file in the store's directory (here: deleting the store for a fresh
// one) is still caught.
func TestKeyDirKeepsKeyAndHeadApart(t *testing.T) {
	ctx := context.Background()
	dir, keys := t.TempDir(), filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "warden.db")
	opts := recorder.Options{KeyDir: keys}
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, opts)
	must(t, err)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	must(t, s.Close())
	entries, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".key") || strings.HasSuffix(e.Name(), ".head") {
			t.Errorf("%s is beside the store; want it in the key directory", e.Name())
		}
	}
	for _, f := range []string{"warden.db.key", "warden.db.head"} {
		if fi, err := os.Stat(filepath.Join(keys, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s in the key directory: %v; want mode 0600", f, err)
		}
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	if s, err := sqlite.OpenWith(ctx, "sqlite:"+path, opts); err == nil {
		s.Close()
		t.Fatal("Open(store replaced by an empty one) = nil; want a refusal")
	} else if !strings.Contains(err.Error(), "the store ends at record 0") {
		t.Errorf("Open(store replaced by an empty one) = %v", err)
	}
}

// legacyChain re-signs the store's checkpoints as a warden from before
// signed heads did, with its own key: a genuine version 3 store.
func legacyChain(t *testing.T, path string) {
	t.Helper()
	key, err := sqlite.LoadKey(path)
	must(t, err)
	db := rawDB(t, path)
	defer db.Close()
	must(t, sqlite.RechainAsLegacy(db, key))
}

// TestLoweredVersionDoesNotPassOffARemovedHead: someone who deletes the
// newest records and the head, then lowers the store's version so that it
// looks like one from before heads, is refused; a genuine store from
// before heads is migrated.
func TestLoweredVersionDoesNotPassOffARemovedHead(t *testing.T) {
	downgrade := func(t *testing.T, path string) {
		exec(t, path, dropTriggers, `DELETE FROM records WHERE seq >= 19`, `ALTER TABLE records DROP COLUMN mac`, `PRAGMA user_version = 3`)
		must(t, os.Remove(sqlite.HeadPath(path)))
	}
	t.Run("Refused", func(t *testing.T) {
		path, pub := fillStore(t)
		downgrade(t, path)
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "its version was lowered") {
			t.Errorf("Open(lowered version, no head) = %v; want a refusal", err)
		}
		rep, err := verify(t, path, pub)
		if err != nil || !rep.HeadEra {
			t.Errorf("Verify = %+v, %v; want the checkpoints to show a warden that kept a head", rep, err)
		}
	})
	t.Run("VersionMarkStripped", func(t *testing.T) {
		path, _ := fillStore(t)
		downgrade(t, path)
		exec(t, path, `UPDATE records SET body = json_remove(body, '$.v') WHERE kind = 'checkpoint'`)
		db := rawDB(t, path)
		must(t, sqlite.Rechain(db, 1, nil))
		db.Close()
		if err := reopen(path); err == nil || !strings.Contains(err.Error(), "its version was lowered") {
			t.Errorf("Open(lowered version, marks stripped) = %v; want a refusal", err)
		}
	})
	t.Run("GenuineLegacyStoreMigrates", func(t *testing.T) {
		path, pub := fillStore(t)
		exec(t, path, `ALTER TABLE records DROP COLUMN mac`, `PRAGMA user_version = 3`)
		legacyChain(t, path)
		must(t, os.Remove(sqlite.HeadPath(path)))
		if err := reopen(path); err != nil {
			t.Fatalf("Open(version 3 store) = %v", err)
		}
		if rep, err := strictVerify(t, path, true); err != nil || rep.Head == nil {
			t.Errorf("Verify after migration = %+v, %v; want it to reach a new head", rep, err)
		}
		_ = pub
	})
}

// TestMigrationAuthenticatesApprovalRows: a version 3 store's approval
// requests are taken as they are at migration and given their MACs, so a
// request approved before the upgrade is still usable after it.
func TestMigrationAuthenticatesApprovalRows(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	must(t, s.CreateApproval(ctx, approvalRequest("a1", t0)))
	_, err := s.ChangeApproval(ctx, warden.ApprovalChange{ID: "a1", From: []warden.ApprovalStatus{warden.ApprovalPending},
		To: warden.ApprovalApproved, By: bob, At: t0.Add(time.Minute)})
	must(t, err)
	must(t, s.Close())
	exec(t, path, `ALTER TABLE records DROP COLUMN mac`, `ALTER TABLE approvals DROP COLUMN mac`, `DROP INDEX records_approval`, `PRAGMA user_version = 3`)
	legacyChain(t, path)
	must(t, os.Remove(sqlite.HeadPath(path)))
	s, err = sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	defer s.Close()
	if a, err := s.Approval(ctx, "a1"); err != nil || a.Status != warden.ApprovalApproved {
		t.Errorf("Approval after migration = %+v, %v; want approved", a, err)
	}
	exec(t, path, `DROP TRIGGER approvals_forward`, `UPDATE approvals SET body = json_set(body, '$.call_hash', 'other') WHERE id = 'a1'`)
	if _, err := s.Approval(ctx, "a1"); !errors.Is(err, warden.ErrApprovalForged) {
		t.Errorf("Approval after editing the row = %v; want ErrApprovalForged", err)
	}
}
