package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-mcp/warden/recorder"
	_ "modernc.org/sqlite" // registers the "sqlite" driver; pure Go, no cgo
)

// errClosed is returned by writes to a closed store.
var errClosed = errors.New("the recording store is closed")

// errReadOnly is returned by writes to a store opened read-only.
var errReadOnly = errors.New("the recording store was opened read-only")

// schemaVersion is the PRAGMA user_version this package writes. Version 1
// (no hash chain), version 2 (no approvals table) and version 3 (no record
// MACs, and key material in a secrets table) are migrated when a store is
// opened for writing, and still read when it is opened read-only.
const schemaVersion = 4

// schema is version 2, the records; schemaApprovals (below) completes
// version 3. Every record carries prev_hash and hash (see
// chain.go). The records table is append-only: the triggers turn an UPDATE,
// or a DELETE of anything but a pruned prefix, into an error. Pruning is a
// dedicated path: it first moves the horizon forward to a checkpoint (which
// will anchor the chain) and then deletes the records before it, in one
// transaction. The horizon only moves forward, and only to a checkpoint.
//
// These triggers guard against mistakes, not against someone who can write
// the file: they can drop triggers. The hash chain and the signed
// checkpoints are what make such changes evident.
//
// kind has no CHECK: the package decides which kinds exist, and a new kind
// (an approval decision, say) must not need a table rebuild.
const schema = `
CREATE TABLE records (
	seq        INTEGER PRIMARY KEY,
	kind       TEXT NOT NULL CHECK (kind <> ''),
	session_id TEXT,
	call_id    TEXT,
	at         TEXT,
	body       TEXT NOT NULL,
	prev_hash  BLOB NOT NULL CHECK (length(prev_hash) = 32),
	hash       BLOB NOT NULL CHECK (length(hash) = 32),
	mac        BLOB
);
CREATE INDEX records_session ON records (session_id, seq);
CREATE UNIQUE INDEX records_call ON records (call_id, kind) WHERE call_id IS NOT NULL;
CREATE INDEX records_session_start ON records (at) WHERE kind = 'session_start';
CREATE INDEX records_checkpoint ON records (at) WHERE kind = 'checkpoint';
CREATE TABLE horizon (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO horizon (id, seq) VALUES (1, 0);
` + recordsNoUpdate + `
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
WHEN OLD.seq >= (SELECT seq FROM horizon)
BEGIN SELECT RAISE(ABORT, 'records are append-only: only retention prunes, and only records before a checkpoint'); END;
CREATE TRIGGER horizon_forward BEFORE UPDATE ON horizon
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
  OR NOT EXISTS (SELECT 1 FROM records WHERE seq = NEW.seq AND kind = 'checkpoint')
BEGIN SELECT RAISE(ABORT, 'the prune horizon only moves forward, to a checkpoint'); END;
CREATE TRIGGER horizon_no_delete BEFORE DELETE ON horizon
BEGIN SELECT RAISE(ABORT, 'the prune horizon cannot be deleted'); END;
`

// recordsNoUpdate is the trigger that keeps records from being updated
// (only migrations lift it, and put it back).
const recordsNoUpdate = `CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;`

// schemaApprovals is what version 3 adds: the approval requests' current
// state. The state is operational (a waiting call polls it, a reviewer
// changes it); the evidence is in the records: every creation and change of
// a row appends a record in the same transaction. The trigger lets a
// request only move forward (see warden.ApprovalStatus) and never change
// what it covers.
const schemaApprovals = `
CREATE TABLE IF NOT EXISTS approvals (
	id         TEXT PRIMARY KEY,
	status     TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
	subject    TEXT NOT NULL,
	call_hash  TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	body       TEXT NOT NULL,
	mac        BLOB
);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (subject, call_hash, created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created_at);
CREATE TRIGGER IF NOT EXISTS approvals_forward BEFORE UPDATE ON approvals
WHEN NEW.id <> OLD.id OR NEW.subject <> OLD.subject OR NEW.call_hash <> OLD.call_hash OR NEW.created_at <> OLD.created_at
  OR NOT (OLD.status = 'pending' AND NEW.status IN ('approved', 'denied', 'expired', 'used')
       OR OLD.status = 'approved' AND NEW.status IN ('used', 'expired'))
BEGIN SELECT RAISE(ABORT, 'approval requests only move forward: pending to approved, denied, expired or used; approved to used or expired'); END;
`

// schemaV4 is what version 4 adds besides the record MACs: the index that
// finds an approval request's newest record, which a decision is checked
// against (approvalState).
const schemaV4 = `
CREATE INDEX IF NOT EXISTS records_approval ON records (json_extract(body, '$.id'), seq)
WHERE kind IN ('approval_request', 'approval_change') AND json_valid(body);
`

// Store is the SQLite-backed recording. It is safe for concurrent use: all
// writes go through one writer that owns the only write connection: a
// caller alone commits its record itself, callers writing at once have
// theirs committed in groups by the writer's goroutine (writer.go); reads
// use a separate pool that never takes the write lock.
type Store struct {
	path    string
	keyBase string // the key, head and secrets files are keyBase + ".key", ".head", ".secrets"
	version int
	clock   func() time.Time
	w       *writer // nil when read-only
	relay   *relay  // nil when read-only or where there is none (relay.go)
	read    *sql.DB // query_only connections
	// started holds the ids of calls this store recorded the start of and
	// not yet the finish: their finish need not repeat the arguments.
	started sync.Map
	// flowsReady is set once the flow table exists (see flows.go).
	flowsReady atomic.Bool

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store at url for writing, with the
// default options. See OpenWith.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenWith(ctx, url, recorder.Options{})
}

// OpenWith opens the store at url, which is "sqlite:PATH" (PATH relative
// to the working directory, or absolute); "sqlite:///ABS/PATH" is accepted
// too. Other schemes are an error naming the problem.
//
// For writing, it creates the parent directory if missing (mode 0700) and a
// new database file with mode 0600, loads the signing key kept beside it
// (PATH.key), creating it on first start, applies or migrates the schema
// (versioned with PRAGMA user_version), and checks it can write, so a
// read-only or unusable store fails here rather than at the first call. A
// store that has signed checkpoints but whose key file is missing is
// refused: warden never silently signs with a new key.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL. Every
// write returns nil only after its transaction committed, and a committed
// transaction survives a crash of the warden process (kill -9). It may be
// lost on an operating-system crash or power failure, where SQLite would
// need synchronous=FULL (about seven times slower here).
func OpenWith(ctx context.Context, url string, opts recorder.Options) (*Store, error) {
	path, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, keyBase: path, clock: opts.Clock, closed: make(chan struct{})}
	if opts.KeyDir != "" {
		dir, err := filepath.Abs(opts.KeyDir)
		if err != nil {
			return nil, fmt.Errorf("key directory: %w", err)
		}
		s.keyBase = filepath.Join(dir, filepath.Base(path))
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if opts.ReadOnly {
		if err := s.openReader(ctx); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", path, err)
		}
		return s, nil
	}
	if err := createFile(path); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.keyBase), 0o700); err != nil {
		return nil, fmt.Errorf("opening store %s: key directory: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if s.read, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	s.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	s.w = newWriter(db, opts, s.clock)
	if s.w.copier, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		db.Close()
		s.read.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	s.w.copier.SetMaxOpenConns(1)
	fail := func(err error) (*Store, error) {
		s.w.db.Close()
		s.w.copier.Close()
		s.read.Close()
		s.w.lock.close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if s.w.lock, err = openWriteLock(path); err != nil {
		return fail(err)
	}
	if s.w.key, err = s.signingKey(ctx); err != nil {
		return fail(err)
	}
	s.w.macKey, s.w.approvalKey, s.w.headPath = recorder.RecordMACKey(s.w.key), recorder.ApprovalMACKey(s.w.key), s.HeadFile()
	from, err := s.migrate(ctx)
	if err != nil {
		return fail(err)
	}
	s.version = schemaVersion
	if err := s.w.prepare(ctx); err != nil {
		return fail(err)
	}
	if err := s.w.load(ctx); err != nil {
		return fail(fmt.Errorf("reading the end of the chain: %w", err))
	}
	if err := s.w.vouch(ctx, s.w.headPath, from < 4); err != nil {
		s.w.closeStatements()
		s.w.headFile.Close()
		return fail(err)
	}
	s.w.headSeq, s.w.signedSeq = s.w.seq, s.w.seq
	if err := s.w.syncHint(ctx); err != nil {
		s.w.closeStatements()
		s.w.headFile.Close()
		return fail(fmt.Errorf("reading the end of the chain: %w", err))
	}
	if err := s.read.PingContext(ctx); err != nil {
		s.w.closeStatements()
		s.w.headFile.Close()
		return fail(fmt.Errorf("for reading: %w", err))
	}
	go s.w.loop()
	if !opts.NoRelay {
		s.relay = newRelay(s.w, path)
	}
	return s, nil
}

// openReader opens an existing store's read pool only.
func (s *Store) openReader(ctx context.Context) error {
	if _, err := os.Stat(s.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("there is no recording here (warden serve creates it)")
		}
		return err
	}
	var err error
	if s.read, err = sql.Open("sqlite", dsn(s.path, true)); err != nil {
		return err
	}
	s.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	if err := s.read.QueryRowContext(ctx, "PRAGMA user_version").Scan(&s.version); err != nil {
		s.read.Close()
		return fmt.Errorf("reading schema version: %w", err)
	}
	if s.version < 1 || s.version > schemaVersion {
		s.read.Close()
		if s.version == 0 {
			return errors.New("not a warden recording (no schema)")
		}
		return fmt.Errorf("store schema version %d is not supported by this warden (want %d)", s.version, schemaVersion)
	}
	return nil
}

// Close signs what this process wrote since the last checkpoint and closes
// the store. Writes after Close return an error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		var errs []error
		if s.relay != nil {
			// Before the writer: records read from other wardens are
			// committed and answered first.
			s.relay.close()
		}
		if s.w != nil {
			errs = append(errs, s.w.close())
		}
		s.closeErr = errors.Join(append(errs, s.read.Close())...)
	})
	return s.closeErr
}

// writable returns the writer, or why there is none.
func (s *Store) writable() (*writer, error) {
	if s.w == nil {
		return nil, errReadOnly
	}
	return s.w, nil
}

// signingKey loads the key kept beside the store, creating it unless the
// store already has checkpoints signed by a key that is now missing.
func (s *Store) signingKey(ctx context.Context) (ed25519.PrivateKey, error) {
	var version int
	if err := s.w.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return nil, fmt.Errorf("reading schema version: %w", err)
	}
	if version > schemaVersion {
		return nil, fmt.Errorf("store schema version %d is not supported by this warden (want %d)", version, schemaVersion)
	}
	// The key that signed the newest checkpoint, if any.
	signedBy := ""
	if version >= 2 {
		var body string
		err := s.w.db.QueryRowContext(ctx, `SELECT body FROM records WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1`).Scan(&body)
		switch {
		case err == nil:
			signedBy = checkpointKey(body)
		case !errors.Is(err, sql.ErrNoRows):
			return nil, err
		}
	}
	path := s.KeyFile()
	key, err := recorder.ReadKeyFile(path)
	switch {
	case err == nil && signedBy != "" && recorder.FormatPublicKey(key.Public().(ed25519.PublicKey)) != signedBy:
		return nil, fmt.Errorf("signing key %s is not the key that signed this store's checkpoints (%s): "+
			"restore the right key file; warden does not continue a chain with another key", path, signedBy)
	case !errors.Is(err, fs.ErrNotExist):
		return key, err
	case signedBy != "":
		return nil, fmt.Errorf("signing key %s is missing, but this store's checkpoints are signed (last by key %s): "+
			"restore the key file; warden does not continue a chain with a new key on its own", path, signedBy)
	}
	return recorder.CreateKeyFile(path)
}

// checkpointKey returns the key a checkpoint body names, for messages.
func checkpointKey(body string) string {
	var cp recorder.CheckpointJSON
	if err := jsonUnmarshal(body, &cp); err != nil || cp.Key == "" {
		return "(unreadable)"
	}
	return cp.Key
}

// migrate applies the schema, and returns the version the store had. It
// runs in a write transaction (BEGIN IMMEDIATE) even when the schema is
// current, which doubles as the check that the store is writable.
func (s *Store) migrate(ctx context.Context) (from int, _ error) {
	tx, err := s.w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store is not writable: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	switch version {
	case schemaVersion:
	case 2, 3:
		// A store that says it is from before heads must not hold a
		// checkpoint that says otherwise: someone lowered its version
		// to pass off a removed head as a migration.
		if err := s.w.checkNoHeadEra(ctx, tx); err != nil {
			return 0, err
		}
		var has int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('records') WHERE name = 'mac'`).Scan(&has); err != nil {
			return 0, fmt.Errorf("adding record MACs: %w", err)
		}
		if has == 0 {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE records ADD COLUMN mac BLOB`); err != nil {
				return 0, fmt.Errorf("adding record MACs: %w", err)
			}
		}
	case 0:
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return 0, fmt.Errorf("applying schema: %w", err)
		}
	case 1:
		if err := s.w.migrateV1(ctx, tx); err != nil {
			return 0, fmt.Errorf("migrating schema version 1 to %d: %w", schemaVersion, err)
		}
	default:
		return 0, fmt.Errorf("store schema version %d is not supported by this warden (want %d)", version, schemaVersion)
	}
	if version < 3 {
		if _, err := tx.ExecContext(ctx, schemaApprovals); err != nil {
			return 0, fmt.Errorf("adding the approvals table: %w", err)
		}
	}
	if version < 4 {
		if err := s.migrateApprovals(ctx, tx); err != nil {
			return 0, fmt.Errorf("authenticating approval requests: %w", err)
		}
	}
	// Added to version 4 without a new version: an index older wardens
	// maintain without knowing it, and this one creates where it is
	// missing.
	if _, err := tx.ExecContext(ctx, sessionLifeIndex); err != nil {
		return 0, fmt.Errorf("adding the session index: %w", err)
	}
	moved := false
	if version > 0 && version < 4 {
		if moved, err = s.moveSecrets(ctx, tx); err != nil {
			return 0, fmt.Errorf("moving key material out of the store: %w", err)
		}
	}
	// Writing the version even when unchanged makes the writability check
	// real: SQLite only fails a write on a read-only file when it writes.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return 0, fmt.Errorf("store is not writable: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store is not writable: %w", err)
	}
	if moved {
		// The secrets' pages were zeroed (secure_delete) in the WAL;
		// VACUUM rewrites the file without them, and the checkpoint
		// empties the WAL, so no copy of the file holds them.
		for _, q := range []string{`VACUUM`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
			if _, err := s.w.db.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("scrubbing moved key material from the store: %w", err)
			}
		}
	}
	return version, nil
}

// parseURL returns the absolute database path named by a store URL.
func parseURL(url string) (string, error) {
	scheme, rest, ok := strings.Cut(url, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, `/\.`) {
		return "", errors.New(`store URL must have the form sqlite:PATH`)
	}
	if scheme != "sqlite" {
		// Only the scheme is named: the rest of a URL may hold a password.
		return "", fmt.Errorf("store URL scheme %q is not supported: use sqlite:PATH", scheme)
	}
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		if !strings.HasPrefix(after, "/") {
			return "", errors.New(`store URL sqlite://HOST is not supported: use sqlite:PATH or sqlite:///ABSOLUTE/PATH`)
		}
		rest = after
	}
	switch {
	case rest == "":
		return "", errors.New("store URL sqlite: has no path: use sqlite:PATH")
	case rest == ":memory:" || strings.HasPrefix(rest, "file:"):
		return "", errors.New("store URL sqlite: must name a database file: an in-memory store would lose the recording")
	}
	path, err := filepath.Abs(rest)
	if err != nil {
		return "", fmt.Errorf("store path: %w", err)
	}
	return path, nil
}

// createFile creates the database's directory and, if missing, the database
// file itself with owner-only permissions; SQLite gives its -wal and -shm
// files the same mode.
func createFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn returns the driver's data source name for path. The writer takes the
// write lock at BEGIN (_txlock=immediate), so a transaction never has to
// upgrade a read lock and fail with SQLITE_BUSY; readers are query_only.
// The writer checkpoints the WAL itself, outside its transactions
// (checkpointWAL), not automatically inside them. The writer's page cache
// is 512 KiB (SQLite's default is 2 MiB): it appends, and what it touches
// is the right edge of each B-tree and the chain's end, a few dozen pages;
// the default grew to ≈ 4 MB of the process's memory (pages, headers and
// the allocator's rounding) without making a write cheaper (measured with
// internal/mcpbench at c=8 and BenchmarkPairs).
func dsn(path string, readOnly bool) string {
	// In a file: URI, '%', '?' and '#' in the path must be escaped.
	p := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(path))
	if readOnly {
		return "file:" + p + "?_pragma=busy_timeout(5000)&_pragma=query_only(1)"
	}
	return "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=cache_size(-512)&_pragma=journal_size_limit(" + strconv.Itoa(WALSizeLimit) + ")&_txlock=immediate"
}

// WALSizeLimit is the size the WAL file is cut back to when SQLite starts
// the log again after a checkpoint (journal_size_limit). A reader holding
// one snapshot for long (an export, a console page) keeps the log from
// starting again, and it grows by everything written meanwhile; without a
// limit the file kept that size for good (80-100 MB after 80 MB of
// records written while a reader waited, TestWALShrinksAfterAReaderHeldIt).
// The limit is above what the log reaches between checkpoints under load
// (about 30 MB, walCheckpointEvery), so a store that is only busy never
// has its log cut and grown again.
const WALSizeLimit = 64 << 20

// Version is the store's schema version (PRAGMA user_version).
func (s *Store) Version() int { return s.version }

// KeyFile is the store's signing key file.
func (s *Store) KeyFile() string { return s.keyBase + ".key" }

// HeadFile is the store's signed head file.
func (s *Store) HeadFile() string { return s.keyBase + ".head" }

// SecretsFile is where the key material of a store from before version 4
// was moved.
func (s *Store) SecretsFile() string { return s.keyBase + ".secrets" }
