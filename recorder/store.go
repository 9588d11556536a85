package recorder

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver; pure Go, no cgo
)

// ErrNotFound is returned (wrapped) when a session or call is not in the store.
var ErrNotFound = errors.New("not found")

// schemaVersion is the PRAGMA user_version this package writes and reads.
const schemaVersion = 1

// schema is version 1. The records table is append-only: every event is one
// self-contained row, never updated or deleted, so that a hash chain over
// (kind, session_id, call_id, at, body) can be added without rewriting
// history. The triggers turn an accidental UPDATE or DELETE into an error.
const schema = `
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
CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
`

// Store is the SQLite-backed recording. It is safe for concurrent use: all
// writes go through one connection, one transaction each, and reads use a
// separate pool that never takes the write lock.
type Store struct {
	path  string
	write *sql.DB // exactly one connection: writes are serialised here, not by SQLite's lock
	read  *sql.DB // query_only connections

	// Statements prepared once on the writer's connection: preparing them
	// for every record doubled the cost of a write.
	insert, countByCall, countBySession *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store at url, which is "sqlite:PATH"
// (PATH relative to the working directory, or absolute); "sqlite:///ABS/PATH"
// is accepted too. Other schemes are an error naming the problem. It creates
// the parent directory if missing (mode 0700) and a new database file with
// mode 0600, applies the schema (versioned with PRAGMA user_version), and
// checks it can write, so a read-only or unusable store fails here rather
// than at the first call.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL. Every
// StartCall and FinishCall commits before returning, and a committed
// transaction survives a crash of the warden process (kill -9). It may be
// lost on an operating-system crash or power failure, where SQLite would
// need synchronous=FULL (about seven times slower here).
func Open(ctx context.Context, url string) (*Store, error) {
	path, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if err := createFile(path); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	s := &Store{path: path}
	if s.write, err = sql.Open("sqlite", dsn(path, false)); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	if s.read, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		s.write.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	s.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening store %s for reading: %w", path, err)
	}
	return s, nil
}

// Close closes the store. Writes after Close return an error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, stmt := range []*sql.Stmt{s.insert, s.countByCall, s.countBySession} {
			if stmt != nil {
				errs = append(errs, stmt.Close())
			}
		}
		s.closeErr = errors.Join(append(errs, s.write.Close(), s.read.Close())...)
	})
	return s.closeErr
}

// prepare prepares the statements every write uses.
func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.insert, `INSERT INTO records (kind, session_id, call_id, at, body) VALUES (?, ?, ?, ?, ?)`},
		// kind "" counts records of any kind.
		{&s.countByCall, `SELECT count(*) FROM records WHERE call_id = ?1 AND (?2 = '' OR kind = ?2)`},
		{&s.countBySession, `SELECT count(*) FROM records WHERE session_id = ?1 AND (?2 = '' OR kind = ?2)`},
	} {
		stmt, err := s.write.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("preparing statements: %w", err)
		}
		*p.stmt = stmt
	}
	return nil
}

// migrate applies the schema. It runs in a write transaction (BEGIN
// IMMEDIATE) even when the schema is current, which doubles as the check
// that the store is writable.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store is not writable: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	switch {
	case version == schemaVersion:
	case version == 0:
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("applying schema: %w", err)
		}
	default:
		return fmt.Errorf("store schema version %d is not supported by this warden (want %d)", version, schemaVersion)
	}
	// Writing the version even when unchanged makes the writability check
	// real: SQLite only fails a write on a read-only file when it writes.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("store is not writable: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store is not writable: %w", err)
	}
	return nil
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
func dsn(path string, readOnly bool) string {
	// In a file: URI, '%', '?' and '#' in the path must be escaped.
	p := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(path))
	if readOnly {
		return "file:" + p + "?_pragma=busy_timeout(5000)&_pragma=query_only(1)"
	}
	return "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
}
