package main

import (
	"context"
	"crypto/sha256"
	dbsql "database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// serveRefuses starts `warden serve` on config and reports its stderr if
// it exits with status 1 at start; a warden that starts serving is killed
// and fails the test.
func serveRefuses(t *testing.T, config string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wardenBin, "serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "E2E_DSN="+os.Getenv("E2E_DSN"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("warden serve on an edited store = %v; want it to refuse to start\n%s", err, stderr.String())
	}
	return stderr.String()
}

// copyFiles copies the store's database files (and its WAL, if any) from
// one path to another, as someone swapping files would.
func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		src, err := os.Open(from + suffix)
		if errors.Is(err, os.ErrNotExist) {
			os.Remove(to + suffix)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.OpenFile(to+suffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// recomputeHashes recomputes prev_hash and hash of every record from seq
// on, by the formula chain.go documents, as someone who edited them and
// wants the chain to look whole again would.
func recomputeHashes(t *testing.T, db *dbsql.DB, from int64) {
	t.Helper()
	type rec struct {
		seq          int64
		kind, body   string
		sid, cid, at dbsql.NullString
	}
	rows, err := db.Query(`SELECT seq, kind, session_id, call_id, at, body FROM records WHERE seq >= ? ORDER BY seq`, from)
	if err != nil {
		t.Fatal(err)
	}
	var recs []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.seq, &r.kind, &r.sid, &r.cid, &r.at, &r.body); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	var prev []byte
	if err := db.QueryRow(`SELECT hash FROM records WHERE seq = ?`, from-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	null := func(b []byte, n dbsql.NullString) []byte {
		if !n.Valid {
			return append(b, 0)
		}
		return str(append(b, 1), n.String)
	}
	for _, r := range recs {
		b := []byte("warden/record/v1\x00")
		b = binary.BigEndian.AppendUint64(b, uint64(r.seq))
		b = str(b, r.kind)
		b = null(b, r.sid)
		b = null(b, r.cid)
		b = null(b, r.at)
		body := sha256.Sum256([]byte(r.body))
		b = append(append(b, body[:]...), prev...)
		h := sha256.Sum256(b)
		if _, err := db.Exec(`UPDATE records SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h[:], r.seq); err != nil {
			t.Fatal(err)
		}
		prev = h[:]
	}
}

// TestHandEditedRecordingIsCaught edits the recording's SQLite file by
// hand after warden stopped: deleting the newest records, rewriting the
// records after the last checkpoint with recomputed hashes, and swapping
// in an older copy of the store. `warden sessions verify` fails on each,
// with the key beside the store and with a public key given, and `warden
// serve` refuses to record on.
func TestHandEditedRecordingIsCaught(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	path := storePath(config)
	session := func(n int) {
		srv := launchServer(t, config, "http")
		c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
		for i := range n {
			call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = $1", "params": []any{i + 1}})
			call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT * FROM payroll"})
		}
		c.Close()
		srv.stop(t)
	}
	session(3)
	old := filepath.Join(t.TempDir(), "old.db")
	copyFiles(t, path, old)
	oldHead, err := os.ReadFile(path + ".head")
	if err != nil {
		t.Fatal(err)
	}
	session(3)
	full := filepath.Join(t.TempDir(), "full.db")
	copyFiles(t, path, full)
	head, err := os.ReadFile(path + ".head")
	if err != nil {
		t.Fatal(err)
	}
	savedHead := filepath.Join(t.TempDir(), "head")
	if err := os.WriteFile(savedHead, head, 0o600); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := runWarden(t, "sessions", "verify", "--print-key", "--config", config)
	if code != 0 {
		t.Fatalf("verify --print-key = %d %s", code, stderr)
	}
	key := strings.TrimSpace(out)
	if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 || !strings.Contains(out, "reaches its signed head") {
		t.Fatalf("verify before any edit = %d\n%s%s", code, out, stderr)
	}

	exec := func(t *testing.T, queries ...string) {
		t.Helper()
		db, err := sqlOpen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range queries {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	var last, lastCheckpoint, previousCheckpoint int64
	func() {
		db, err := sqlOpen(full)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var cps []int64
		rows, err := db.Query(`SELECT seq FROM records WHERE kind = 'checkpoint' ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s int64
			rows.Scan(&s)
			cps = append(cps, s)
		}
		rows.Close()
		if err := db.QueryRow(`SELECT max(seq) FROM records`).Scan(&last); err != nil {
			t.Fatal(err)
		}
		if len(cps) < 2 || cps[len(cps)-1] != last {
			t.Fatalf("checkpoints %v, last record %d; want at least two, the last at the end", cps, last)
		}
		lastCheckpoint, previousCheckpoint = last, cps[len(cps)-2]
	}()

	for _, tc := range []struct {
		name   string
		attack func(t *testing.T)
		// verify's message, with the key file and with --pubkey
		says, pubSays string
		serve         string
	}{
		{
			name: "NewestRecordsDeleted",
			attack: func(t *testing.T) {
				exec(t, `DROP TRIGGER records_no_delete`, fmt.Sprintf(`DELETE FROM records WHERE seq > %d`, last-4))
			},
			says: "the newest records were removed", pubSays: "the newest records were removed",
			serve: fmt.Sprintf("names record %d", last),
		},
		{
			name: "RecordsAfterTheLastCheckpointRewrittenWithRecomputedHashes",
			attack: func(t *testing.T) {
				// The final checkpoint goes, so the rewritten records come
				// after the last one left, and no signature covers them.
				exec(t, `DROP TRIGGER records_no_delete`, `DROP TRIGGER records_no_update`,
					fmt.Sprintf(`DELETE FROM records WHERE seq = %d`, lastCheckpoint),
					fmt.Sprintf(`UPDATE records SET body = replace(body, '"outcome":"denied"', '"outcome":"ok"') WHERE seq > %d`, previousCheckpoint))
				db, err := sqlOpen(path)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				recomputeHashes(t, db, previousCheckpoint+1)
			},
			says: "MAC that does not verify", pubSays: "the newest records were removed",
			serve: fmt.Sprintf("names record %d", last),
		},
		{
			// The head goes too, and the store's version is lowered to
			// pass it off as one from before heads.
			name: "VersionLoweredAndHeadRemoved",
			attack: func(t *testing.T) {
				exec(t, `DROP TRIGGER records_no_delete`, fmt.Sprintf(`DELETE FROM records WHERE seq > %d`, last-4),
					`ALTER TABLE records DROP COLUMN mac`, `PRAGMA user_version = 3`)
				if err := os.Remove(path + ".head"); err != nil {
					t.Fatal(err)
				}
			},
			says: "the head was removed", pubSays: "the head was removed",
			serve: "its version was lowered",
		},
		{
			name:   "OlderCopySwappedIn",
			attack: func(t *testing.T) { copyFiles(t, old, path) },
			says:   "an older copy of the store", pubSays: "an older copy of the store",
			serve: "an older copy of the store was put in its place",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copyFiles(t, full, path)
			if err := os.WriteFile(path+".head", head, 0o600); err != nil {
				t.Fatal(err)
			}
			tc.attack(t)
			out, stderr, code := runWarden(t, "sessions", "verify", "--config", config)
			if code != 1 || !strings.Contains(stderr, tc.says) {
				t.Errorf("verify = %d; want 1 saying %q\n%s%s", code, tc.says, out, stderr)
			}
			out, stderr, code = runWarden(t, "sessions", "verify", "--config", config, "--pubkey", key)
			if code != 1 || !strings.Contains(stderr, tc.pubSays) {
				t.Errorf("verify --pubkey = %d; want 1 saying %q\n%s%s", code, tc.pubSays, out, stderr)
			}
			if got := serveRefuses(t, config); !strings.Contains(got, tc.serve) || !strings.Contains(got, "warden does not extend") {
				t.Errorf("serve = %q; want a refusal saying %q", got, tc.serve)
			}
		})
	}

	// Store and head rolled back together are consistent with each other:
	// only a head kept apart catches that.
	t.Run("StoreAndHeadRolledBackTogether", func(t *testing.T) {
		copyFiles(t, old, path)
		if err := os.WriteFile(path+".head", oldHead, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 {
			t.Errorf("verify against the rolled-back head = %d; want 0 (they agree)\n%s%s", code, out, stderr)
		}
		out, stderr, code := runWarden(t, "sessions", "verify", "--config", config, "--pubkey", key, "--head", savedHead)
		if code != 1 || !strings.Contains(stderr, "an older copy of the store") {
			t.Errorf("verify --head SAVED = %d; want 1 naming an older copy\n%s%s", code, out, stderr)
		}
	})

	// After a loss of the newest records (as a power loss can cause),
	// the operator accepts the store's end with --reseal, which says
	// what is gone; a rewritten store cannot be resealed.
	t.Run("ResealAcceptsOnlyAVerifiedEnd", func(t *testing.T) {
		copyFiles(t, full, path)
		if err := os.WriteFile(path+".head", head, 0o600); err != nil {
			t.Fatal(err)
		}
		exec(t, `DROP TRIGGER records_no_update`,
			fmt.Sprintf(`UPDATE records SET body = replace(body, '"outcome":"denied"', '"outcome":"ok"') WHERE seq > %d`, previousCheckpoint))
		func() {
			db, err := sqlOpen(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			recomputeHashes(t, db, previousCheckpoint+1)
		}()
		if out, stderr, code := runWarden(t, "sessions", "verify", "--reseal", "--config", config); code != 1 || !strings.Contains(stderr, "was not resealed") {
			t.Errorf("reseal of a rewritten store = %d; want refused\n%s%s", code, out, stderr)
		}
		copyFiles(t, full, path)
		exec(t, `DROP TRIGGER records_no_delete`, fmt.Sprintf(`DELETE FROM records WHERE seq > %d`, last-4))
		out, stderr, code := runWarden(t, "sessions", "verify", "--reseal", "--config", config)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("records %d..%d are gone", last-3, last)) {
			t.Fatalf("reseal = %d; want it to accept the end and name what is gone\n%s%s", code, out, stderr)
		}
		if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config, "--pubkey", key); code != 0 {
			t.Errorf("verify after reseal = %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("UneditedStoreStillVerifies", func(t *testing.T) {
		copyFiles(t, full, path)
		if err := os.WriteFile(path+".head", head, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config, "--pubkey", key); code != 0 {
			t.Errorf("verify of the restored store = %d\n%s%s", code, out, stderr)
		}
	})
}

// TestRecordingCommandsNeedNoBackendSecrets: the sessions and approvals
// commands read a store and its config with the backends' ${VAR}s unset,
// as an auditor given both would.
func TestRecordingCommandsNeedNoBackendSecrets(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	srv := launchServer(t, config, "http")
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	r := call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = 1"})
	c.Close()
	srv.stop(t)

	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "E2E_DSN=") })
	run := func(args ...string) (string, string, int) { return runWardenEnv(t, env, args...) }
	// The config does need the variable to serve: the test means it.
	if _, stderr, code := run("check", "--config", config); code == 0 || !strings.Contains(stderr, "E2E_DSN") {
		t.Fatalf("check without E2E_DSN = %d %q; want it to need the variable", code, stderr)
	}
	out, stderr, code := run("sessions", "list", "--config", config)
	if code != 0 || !strings.Contains(out, "alice@example.com") {
		t.Fatalf("sessions list = %d\n%s%s", code, out, stderr)
	}
	sid := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])[0]
	for _, args := range [][]string{
		{"sessions", "show", sid},
		{"sessions", "replay", sid},
		{"sessions", "verify"},
		{"sessions", "export"},
		{"approvals", "list", "--all"},
	} {
		out, stderr, code := run(append(args, "--config", config)...)
		if code != 0 {
			t.Errorf("%s = %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		if args[1] == "show" && !strings.Contains(out, r.callID()) {
			t.Errorf("sessions show does not list call %s:\n%s", r.callID(), out)
		}
	}
	if _, stderr, code := run("approvals", "show", "a-none", "--config", config); code != 1 || !strings.Contains(stderr, "no approval request") {
		t.Errorf("approvals show a-none = %d %q; want not found", code, stderr)
	}
}

// TestKeysDirectoryFromConfig: store.keys puts the signing key and the
// signed head in a directory of their own; sessions verify finds them
// there, and a store deleted and replaced by a fresh one is refused.
func TestKeysDirectoryFromConfig(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(strings.Replace(string(data), "store: sqlite:recording.db", "store: {url: sqlite:recording.db, keys: keys}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := launchServer(t, config, "http")
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = 1"})
	c.Close()
	srv.stop(t)

	dir := filepath.Dir(config)
	for _, f := range []string{"recording.db.key", "recording.db.head"} {
		if _, err := os.Stat(filepath.Join(dir, "keys", f)); err != nil {
			t.Errorf("%s is not in the keys directory: %v", f, err)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s is beside the store", f)
		}
	}
	if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 || !strings.Contains(out, "reaches its signed head") || !strings.Contains(out, "keys/recording.db.key") {
		t.Errorf("verify = %d\n%s%s", code, out, stderr)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(storePath(config) + suffix)
	}
	if got := serveRefuses(t, config); !strings.Contains(got, "the store ends at record 0") {
		t.Errorf("serve on a replaced store = %q; want a refusal", got)
	}
}

// TestEmptyStoreVerifies: a warden that served nobody leaves a store with
// no records and a head file with nothing in it yet; that verifies, and a
// later start extends it.
func TestEmptyStoreVerifies(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := e2eConfig(t, dsn, "5s")
	launchServer(t, config, "http").stop(t)
	if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 || !strings.Contains(out, "holds no records") {
		t.Errorf("verify of an empty store = %d\n%s%s", code, out, stderr)
	}
	srv := launchServer(t, config, "http")
	c := connect(t, srv.base, "http", &tokenSource{}, mcp.ProtocolVersion20251125)
	call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "SELECT id FROM orders WHERE id = 1"})
	c.Close()
	srv.stop(t)
	if out, stderr, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 || !strings.Contains(out, "reaches its signed head") {
		t.Errorf("verify after the first session = %d\n%s%s", code, out, stderr)
	}
}
