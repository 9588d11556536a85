package sqlite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// fillStore writes one session with ten allowed calls and closes the
// store. With a checkpoint every 8 records the chain is: records 1..8,
// checkpoint 9, records 10..17, checkpoint 18, records 19..25, and the
// checkpoint Close writes, 26.
func fillStore(t testing.TB) (path string, pub ed25519.PublicKey) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{CheckpointEvery: 8})
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	must(t, s.UpdateSession(ctx, &warden.Session{ID: "s1", ClientName: "claude-code", ClientVersion: "2.1.0"}))
	for i := range 10 {
		c := allowedCall(fmt.Sprintf("c%d", i+1), "s1", alice, t0.Add(time.Duration(i+1)*time.Second))
		must(t, s.StartCall(ctx, c))
		must(t, s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"rows": []any{i}}, Count: 1}, nil, time.Millisecond)))
	}
	must(t, s.EndSession(ctx, "s1", t0.Add(time.Minute)))
	if pub, err = s.PublicKey(); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	return path, pub
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// verify opens the store read-only and verifies it against key.
func verify(t testing.TB, path string, key ed25519.PublicKey) (*recorder.VerifyReport, error) {
	t.Helper()
	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Verify(context.Background(), key)
}

// exec runs statements directly on the file, as an attacker would.
func exec(t testing.TB, path string, queries ...string) {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

const dropTriggers = `DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete`

func TestChainVerifies(t *testing.T) {
	path, pub := fillStore(t)
	rep, err := verify(t, path, pub)
	if err != nil {
		t.Fatalf("Verify(untouched store) = %v; want nil", err)
	}
	want := recorder.VerifyReport{Records: 26, First: 1, Last: 26, Checkpoints: 3, LastCheckpoint: 26, Key: pub, HeadEra: true}
	if fmt.Sprint(*rep) != fmt.Sprint(want) {
		t.Errorf("Verify report = %+v; want %+v", *rep, want)
	}
	kinds := column(t, path, "kind")
	for _, seq := range []int{9, 18, 26} {
		if kinds[seq-1] != "checkpoint" {
			t.Errorf("record %d is %s; want a checkpoint (every 8 records, and at close)", seq, kinds[seq-1])
		}
	}

	t.Run("WithoutTrustedKeyUsesTheChainsOwn", func(t *testing.T) {
		rep, err := verify(t, path, nil)
		if err != nil || !rep.KeyFromChain || !rep.Key.Equal(pub) {
			t.Errorf("Verify(nil key) = %+v, %v; want ok with KeyFromChain and the store's key", rep, err)
		}
	})
	t.Run("AnotherKeyFails", func(t *testing.T) {
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		_, err := verify(t, path, other)
		assertTamper(t, err, 9, recorder.WrongKey)
	})
}

// TestTamperingIsNamed edits the SQLite file directly, as someone with
// write access to it would, and checks that verify names the first record
// touched and what was done to it.
func TestTamperingIsNamed(t *testing.T) {
	forge := func(t *testing.T, path string, hashed bool) {
		// Makes room at seq 5 and inserts a forged call there.
		db := rawDB(t, path)
		defer db.Close()
		mustExec(t, db, dropTriggers)
		for seq := 26; seq >= 5; seq-- {
			mustExec(t, db, `UPDATE records SET seq = seq + 1 WHERE seq = ?`, seq)
		}
		var prev []byte
		must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = 4`).Scan(&prev))
		sid, cid, at := "s1", "c-forged", "2025-03-01T12:00:01.500000000Z"
		body := `{"id":"c-forged","session_id":"s1","tool":"sql_query","started_at":"` + at + `"}`
		hash := sqlite.HashRecord(5, "call_start", &sid, &cid, &at, body, prev)
		if !hashed {
			hash = bytes.Repeat([]byte{7}, 32)
		}
		mustExec(t, db, `INSERT INTO records (seq, kind, session_id, call_id, at, body, prev_hash, hash) VALUES (5, 'call_start', ?, ?, ?, ?, ?, ?)`, sid, cid, at, body, prev, hash)
	}
	move := func(t *testing.T, path string, from, to int) {
		// Moves record from to position to (from < to); the ones between
		// move down.
		db := rawDB(t, path)
		defer db.Close()
		mustExec(t, db, dropTriggers)
		mustExec(t, db, `UPDATE records SET seq = -1 WHERE seq = ?`, from)
		for seq := from + 1; seq <= to; seq++ {
			mustExec(t, db, `UPDATE records SET seq = ? WHERE seq = ?`, seq-1, seq)
		}
		mustExec(t, db, `UPDATE records SET seq = ? WHERE seq = -1`, to)
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, path string)
		seq    int64
		want   recorder.Tamper
	}{
		{"EditedBody", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, 'public.orders', 'public.payroll') WHERE seq = 5`)
		}, 5, recorder.Changed},
		{"EditedTime", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET at = '2024-01-01T00:00:00.000000000Z' WHERE seq = 5`)
		}, 5, recorder.Changed},
		{"NullMadeEmpty", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET call_id = '' WHERE seq = 2`)
		}, 2, recorder.Changed},
		{"EditedBodyWithItsHashRecomputed", func(t *testing.T, path string) {
			db := rawDB(t, path)
			defer db.Close()
			mustExec(t, db, dropTriggers)
			mustExec(t, db, `UPDATE records SET body = replace(body, 'public.orders', 'public.payroll') WHERE seq = 5`)
			var kind, sid, cid, at, body string
			var prev []byte
			must(t, db.QueryRow(`SELECT kind, session_id, call_id, at, body, prev_hash FROM records WHERE seq = 5`).Scan(&kind, &sid, &cid, &at, &body, &prev))
			mustExec(t, db, `UPDATE records SET hash = ? WHERE seq = 5`, sqlite.HashRecord(5, kind, &sid, &cid, &at, body, prev))
		}, 5, recorder.Changed},
		{"EditedStoredHash", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET hash = randomblob(32) WHERE seq = 5`)
		}, 5, recorder.Changed},
		{"Deleted", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `DELETE FROM records WHERE seq = 5`)
		}, 5, recorder.Deleted},
		{"DeletedSeveral", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `DELETE FROM records WHERE seq BETWEEN 5 AND 7`)
		}, 5, recorder.Deleted},
		{"DeletedAndRenumbered", func(t *testing.T, path string) {
			db := rawDB(t, path)
			defer db.Close()
			mustExec(t, db, dropTriggers)
			mustExec(t, db, `DELETE FROM records WHERE seq = 5`)
			for seq := 6; seq <= 26; seq++ {
				mustExec(t, db, `UPDATE records SET seq = ? WHERE seq = ?`, seq-1, seq)
			}
		}, 5, recorder.Deleted},
		{"DeletedPrefix", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `DELETE FROM records WHERE seq < 4`)
		}, 1, recorder.Deleted},
		{"DeletedPrefixUpToACheckpoint", func(t *testing.T, path string) {
			// Looks like retention, but no prune record says so.
			exec(t, path, dropTriggers, `DELETE FROM records WHERE seq < 9`)
		}, 1, recorder.Deleted},
		{"DeletedPrefixWithAForgedPruneRecord", func(t *testing.T, path string) {
			// The prune record is appended to the unsigned end of the
			// chain, with a valid hash: no checkpoint signed it.
			db := rawDB(t, path)
			defer db.Close()
			mustExec(t, db, dropTriggers)
			mustExec(t, db, `DELETE FROM records WHERE seq < 9`)
			var prev []byte
			must(t, db.QueryRow(`SELECT hash FROM records WHERE seq = 26`).Scan(&prev))
			at, body := "2025-03-01T13:00:00.000000000Z", `{"before":9,"cutoff":"2025-03-01T13:00:00.000000000Z","records":8}`
			mustExec(t, db, `INSERT INTO records (seq, kind, session_id, call_id, at, body, prev_hash, hash) VALUES (27, 'prune', NULL, NULL, ?, ?, ?, ?)`, at, body, prev,
				sqlite.HashRecord(27, "prune", nil, nil, &at, body, prev))
		}, 1, recorder.Deleted},
		{"SwappedAdjacent", func(t *testing.T, path string) { move(t, path, 5, 6) }, 5, recorder.Reordered},
		{"MovedLater", func(t *testing.T, path string) { move(t, path, 5, 8) }, 5, recorder.Reordered},
		{"InsertedWithAValidHash", func(t *testing.T, path string) { forge(t, path, true) }, 5, recorder.Inserted},
		{"InsertedWithABogusHash", func(t *testing.T, path string) { forge(t, path, false) }, 5, recorder.Inserted},
		{"RewrittenWithRecomputedHashes", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, 'public.orders', 'public.payroll') WHERE seq = 5`)
			db := rawDB(t, path)
			defer db.Close()
			must(t, sqlite.Rechain(db, 5, nil))
		}, 9, recorder.BadSignature},
		{"CheckpointSignatureEdited", func(t *testing.T, path string) {
			exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, '"sig":"', '"sig":"AAAA') WHERE seq = 18`)
			db := rawDB(t, path)
			defer db.Close()
			must(t, sqlite.Rechain(db, 18, nil))
		}, 18, recorder.BadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, pub := fillStore(t)
			tt.tamper(t, path)
			_, err := verify(t, path, pub)
			assertTamper(t, err, tt.seq, tt.want)
			if err != nil {
				t.Logf("verify: %v", err)
			}
		})
	}
}

// TestResignedChainIsCaughtWithPubkey rewrites the whole chain and signs it
// with a new key, replacing the key file: only a key held elsewhere tells.
func TestResignedChainIsCaughtWithPubkey(t *testing.T) {
	path, original := fillStore(t)
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	exec(t, path, dropTriggers, `UPDATE records SET body = replace(body, 'public.orders', 'public.payroll') WHERE seq = 5`)
	db := rawDB(t, path)
	must(t, sqlite.Rechain(db, 1, newKey))
	db.Close()
	must(t, sqlite.WriteKey(path, newKey))

	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	beside, err := s.PublicKey()
	must(t, err)
	if _, err := s.Verify(context.Background(), beside); err != nil {
		t.Errorf("Verify(key file beside the store) = %v; want nil: the forger replaced it too", err)
	}
	_, err = s.Verify(context.Background(), original)
	assertTamper(t, err, 9, recorder.WrongKey)
	if err != nil && !strings.Contains(err.Error(), recorder.FormatPublicKey(original)) {
		t.Errorf("Verify(original key) = %q; want it to name the trusted key", err)
	}
}

func assertTamper(t *testing.T, err error, seq int64, want recorder.Tamper) {
	t.Helper()
	var ce *recorder.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("Verify = %v; want a ChainError naming record %d as %s", err, seq, want)
	}
	if ce.Seq != seq || ce.Tamper != want {
		t.Errorf("Verify = record %d %s (%v); want record %d %s", ce.Seq, ce.Tamper, err, seq, want)
	}
	if !strings.HasPrefix(err.Error(), fmt.Sprintf("record %d ", seq)) {
		t.Errorf("Verify error = %q; want it to start with the record", err)
	}
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// column returns one column of every record, in seq order, as text.
func column(t testing.TB, path, name string) []string {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT coalesce(` + name + `, '') FROM records ORDER BY seq`)
	must(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		must(t, rows.Scan(&v))
		out = append(out, v)
	}
	return out
}

func TestCheckpoints(t *testing.T) {
	ctx := context.Background()

	t.Run("WithinTheIntervalWithoutFurtherWrites", func(t *testing.T) {
		s, path := openStoreWith(t, recorder.Options{CheckpointInterval: 20 * time.Millisecond})
		must(t, s.StartSession(ctx, session("s1", alice, t0)))
		deadline := time.Now().Add(10 * time.Second)
		for countKind(t, path, "checkpoint") == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no checkpoint within 10s of a write, with a 20ms interval")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := column(t, path, "kind"); strings.Join(got, ",") != "session_start,checkpoint" {
			t.Errorf("records = %v; want session_start, checkpoint", got)
		}
	})

	t.Run("NotWrittenByAReaderOrAnIdleStore", func(t *testing.T) {
		s, path := openStoreWith(t, recorder.Options{})
		must(t, s.Close())
		r, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
		must(t, err)
		must(t, r.Close())
		if n := countRows(t, path, ""); n != 0 {
			t.Errorf("records after opening and closing = %d; want 0", n)
		}
	})

	t.Run("ConcurrentWritersKeepOneChain", func(t *testing.T) {
		s, path := openStoreWith(t, recorder.Options{CheckpointEvery: 50})
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := range 40 {
					c := allowedCall(fmt.Sprintf("c%d-%d", w, i), "", alice, t0)
					if err := s.StartCall(ctx, c); err != nil {
						t.Error(err)
						return
					}
					if err := s.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		pub, err := s.PublicKey()
		must(t, err)
		must(t, s.Close())
		rep, err := verify(t, path, pub)
		if err != nil {
			t.Fatalf("Verify after concurrent writes = %v", err)
		}
		// A checkpoint ends the batch in which the 50th record since the
		// last one was written; a batch holds at most one record per
		// writer.
		if calls := rep.Records - rep.Checkpoints; calls != 16*40*2 || rep.Checkpoints < 1280/(50+16) || rep.Checkpoints > 1280/50+1 || rep.Unsigned != 0 {
			t.Errorf("Verify = %d records, %d checkpoints, %d unsigned; want 1280 call records, %d..%d checkpoints, none unsigned",
				rep.Records, rep.Checkpoints, rep.Unsigned, 1280/(50+16), 1280/50+1)
		}
	})
}

// TestTwoWritersOnOneFileKeepOneChain opens the same file twice, as two
// warden processes would, and writes through both at once: each writer
// notices the other's records by the clash on seq and continues after
// them, so the chain never forks.
func TestTwoWritersOnOneFileKeepOneChain(t *testing.T) {
	// With the relay (one writer commits the other's call records) and
	// without (each writes its own, under the write lock).
	for _, noRelay := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoRelay=%v", noRelay), func(t *testing.T) { twoWritersKeepOneChain(t, noRelay) })
	}
}

func twoWritersKeepOneChain(t *testing.T, noRelay bool) {
	ctx := context.Background()
	opts := recorder.Options{CheckpointEvery: 20, NoRelay: noRelay}
	a, path := openStoreWith(t, opts)
	b, err := sqlite.OpenWith(ctx, "sqlite:"+path, opts)
	must(t, err)
	var wg sync.WaitGroup
	for i, s := range []*sqlite.Store{a, b, a, b} {
		wg.Go(func() {
			for n := range 50 {
				c := allowedCall(fmt.Sprintf("c%d-%d", i, n), "", alice, t0)
				if err := s.StartCall(ctx, c); err != nil {
					t.Errorf("StartCall through writer %d = %v", i%2, err)
					return
				}
			}
		})
	}
	wg.Wait()
	pub, err := a.PublicKey()
	must(t, err)
	must(t, a.Close())
	must(t, b.Close())
	rep, err := verify(t, path, pub)
	if err != nil {
		t.Fatalf("Verify after two writers = %v", err)
	}
	if calls := rep.Records - rep.Checkpoints; calls != 200 {
		t.Errorf("Verify = %d records, %d checkpoints; want 200 call records", rep.Records, rep.Checkpoints)
	}
}

func TestSigningKey(t *testing.T) {
	ctx := context.Background()

	t.Run("CreatedPrivateBesideTheStore", func(t *testing.T) {
		_, path := openStore(t)
		fi, err := os.Stat(path + ".key")
		if err != nil {
			t.Fatalf("key file: %v", err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s.key = %v; want 0600", path, got)
		}
	})

	t.Run("MissingKeyOfASignedStoreIsRefused", func(t *testing.T) {
		path, pub := fillStore(t)
		must(t, os.Remove(path+".key"))
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err == nil {
			s.Close()
			t.Fatal("Open(signed store without its key) = nil; want an error")
		}
		if !strings.Contains(err.Error(), "signing key") || !strings.Contains(err.Error(), recorder.FormatPublicKey(pub)) {
			t.Errorf("Open = %q; want it to name the missing key and the key the checkpoints name", err)
		}
		if _, err := os.Stat(path + ".key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open created a new key file (%v); it must not", err)
		}
		// Read-only, the store still opens and verifies against a key
		// held elsewhere.
		if _, err := verify(t, path, pub); err != nil {
			t.Errorf("Verify(read-only, no key file) = %v", err)
		}
	})

	t.Run("AnotherKeyIsRefused", func(t *testing.T) {
		path, pub := fillStore(t)
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		must(t, sqlite.WriteKey(path, other))
		s, err := sqlite.Open(ctx, "sqlite:"+path)
		if err == nil {
			s.Close()
			t.Fatal("Open(signed store, another key file) = nil; want an error")
		}
		if !strings.Contains(err.Error(), "not the key that signed") || !strings.Contains(err.Error(), recorder.FormatPublicKey(pub)) {
			t.Errorf("Open = %q; want it to say the key file does not match the checkpoints' key", err)
		}
	})

	t.Run("KeyReadableByOthersIsRefused", func(t *testing.T) {
		s, path := openStore(t)
		must(t, s.Close())
		chmod(t, path+".key", 0o644)
		if s, err := sqlite.Open(ctx, "sqlite:"+path); err == nil || !strings.Contains(err.Error(), "readable by others") {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open(key mode 0644) = %v; want a refusal", err)
		}
	})
}

func TestReadOnlyStore(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope.db")
	if s, err := sqlite.OpenWith(ctx, "sqlite:"+missing, recorder.Options{ReadOnly: true}); err == nil {
		s.Close()
		t.Errorf("OpenWith(ReadOnly, missing file) = nil; want an error")
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a read-only open created %s", missing)
	}
	path, _ := fillStore(t)
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	if err := s.StartSession(ctx, session("s2", alice, t0)); err == nil {
		t.Error("StartSession on a read-only store = nil; want an error")
	}
	if _, _, err := s.Session(ctx, "s1"); err != nil {
		t.Errorf("Session(s1) on a read-only store = %v", err)
	}
}

// schemaV1 is the schema of version 1, before the hash chain.
const schemaV1 = `
CREATE TABLE records (
	seq        INTEGER PRIMARY KEY,
	kind       TEXT NOT NULL CHECK (kind IN ('session_start', 'session_update', 'session_end', 'call_start', 'call_finish')),
	session_id TEXT,
	call_id    TEXT,
	at         TEXT,
	body       TEXT NOT NULL
);
CREATE INDEX records_session ON records (session_id, seq);
CREATE UNIQUE INDEX records_call ON records (call_id, kind) WHERE call_id IS NOT NULL;
CREATE INDEX records_session_start ON records (at) WHERE kind = 'session_start';
CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
PRAGMA user_version = 1;
`

func TestMigratesVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	exec(t, path, schemaV1,
		`INSERT INTO records (kind, session_id, at, body) VALUES ('session_start', 's1', '2025-03-01T12:00:00.000000000Z',
			'{"id":"s1","transport":"stdio","caller":{"subject":"alice@example.com","method":"local"},"started_at":"2025-03-01T12:00:00.000000000Z"}')`,
		`INSERT INTO records (kind, session_id, call_id, at, body) VALUES ('call_finish', 's1', 'c1', '2025-03-01T12:00:01.000000000Z',
			'{"id":"c1","session_id":"s1","tool":"sql_query","started_at":"2025-03-01T12:00:01.000000000Z","outcome":"denied","ended_at":"2025-03-01T12:00:01.000000000Z"}')`,
		`INSERT INTO secrets VALUES ('masking.hash_key', x'0102')`)
	before := column(t, path, "body")

	// Read-only, version 1 is still readable (and not migrated).
	r, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	if _, calls, err := r.Session(ctx, "s1"); err != nil || len(calls) != 1 {
		t.Errorf("Session(s1) on a read-only version 1 store = %d calls, %v; want 1, nil", len(calls), err)
	}
	if _, err := r.Verify(ctx, nil); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("Verify(version 1) = %v; want an error naming the version", err)
	}
	r.Close()

	s, err := sqlite.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open(version 1 store) = %v", err)
	}
	pub, err := s.PublicKey()
	must(t, err)
	secret, err := s.Secret(ctx, "masking.hash_key", 32)
	if err != nil || !bytes.Equal(secret, []byte{1, 2}) {
		t.Errorf("Secret after migration = %x, %v; want 0102 kept", secret, err)
	}
	must(t, s.StartSession(ctx, session("s2", bob, t0.Add(time.Hour))))
	must(t, s.Close())

	if got := userVersion(t, path); got != 4 {
		t.Errorf("user_version = %d; want 4", got)
	}
	after := column(t, path, "body")
	if len(after) != 5 || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("records after migration = %d (%v); want the two old ones unchanged, a checkpoint, the new start and a checkpoint", len(after), after)
	}
	if kinds := strings.Join(column(t, path, "kind"), ","); kinds != "session_start,call_finish,checkpoint,session_start,checkpoint" {
		t.Errorf("kinds = %s", kinds)
	}
	rep, err := verify(t, path, pub)
	if err != nil || rep.Checkpoints != 2 {
		t.Errorf("Verify(migrated) = %+v, %v; want ok with 2 checkpoints", rep, err)
	}
	if err := recorderExec(t, path, `DELETE FROM records`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("DELETE after migration = %v; want the append-only trigger", err)
	}
}

// recorderExec runs a statement through a store's writer.
func recorderExec(t testing.TB, path, q string) error {
	t.Helper()
	s, err := sqlite.Open(context.Background(), "sqlite:"+path)
	must(t, err)
	defer s.Close()
	return sqlite.ExecWriter(context.Background(), s, q)
}

func openStoreWith(t testing.TB, opts recorder.Options) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func countKind(t testing.TB, path, kind string) int {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	var n int
	must(t, db.QueryRow(`SELECT count(*) FROM records WHERE kind = ?`, kind).Scan(&n))
	return n
}
