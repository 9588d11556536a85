package postgres

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/warden-mcp/warden/recorder"
)

// The store holds one hash chain per instance: records are keyed by
// (instance, seq), each instance's seq runs 1, 2, 3... and its first record
// links to 32 zero bytes, exactly as a SQLite store's single chain. Each
// instance signs its own checkpoints, with the signing key every instance
// shares (read from the key directory, never generated per instance once
// the store holds a chain), and keeps its signed head in the heads table,
// updated in the transaction that extends its chain.
//
// The triggers guard against mistakes, not against someone who can write
// the database: the chains, checkpoints and MACs make such changes evident.
const schemaV1 = `
CREATE TABLE records (
	instance   text   NOT NULL CHECK (instance <> ''),
	seq        bigint NOT NULL CHECK (seq > 0),
	kind       text   NOT NULL CHECK (kind <> ''),
	session_id text,
	call_id    text,
	at         text,
	body       text   NOT NULL,
	prev_hash  bytea  NOT NULL CHECK (length(prev_hash) = 32),
	hash       bytea  NOT NULL CHECK (length(hash) = 32),
	mac        bytea,
	PRIMARY KEY (instance, seq)
);
CREATE INDEX records_session ON records (session_id) WHERE session_id IS NOT NULL;
CREATE UNIQUE INDEX records_call ON records (call_id, kind) WHERE call_id IS NOT NULL;
CREATE INDEX records_session_start ON records (at) WHERE kind = 'session_start';
CREATE INDEX records_approval ON records ((body::jsonb->>'id'), at) WHERE kind IN ('approval_request', 'approval_change');
CREATE TABLE horizon (
	instance text PRIMARY KEY,
	seq      bigint NOT NULL
);
CREATE TABLE heads (
	instance text PRIMARY KEY,
	seq      bigint NOT NULL,
	hash     bytea  NOT NULL,
	at       text   NOT NULL,
	sig      bytea  NOT NULL
);
CREATE FUNCTION warden_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION 'records are append-only';
	END IF;
	IF OLD.seq >= COALESCE((SELECT seq FROM horizon WHERE instance = OLD.instance), 0) THEN
		RAISE EXCEPTION 'records are append-only: only retention prunes, and only records before a checkpoint';
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records
FOR EACH ROW EXECUTE FUNCTION warden_records_guard();
CREATE TABLE approvals (
	id         text PRIMARY KEY,
	status     text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
	subject    text NOT NULL,
	call_hash  text NOT NULL,
	created_at text NOT NULL,
	expires_at text NOT NULL,
	body       text NOT NULL,
	mac        bytea
);
CREATE INDEX approvals_pending ON approvals (subject, call_hash, created_at) WHERE status = 'pending';
CREATE INDEX approvals_status ON approvals (status, created_at);
CREATE FUNCTION warden_approvals_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id <> OLD.id OR NEW.subject <> OLD.subject OR NEW.call_hash <> OLD.call_hash OR NEW.created_at <> OLD.created_at
	   OR NOT (OLD.status = 'pending' AND NEW.status IN ('approved', 'denied', 'expired', 'used')
	        OR OLD.status = 'approved' AND NEW.status IN ('used', 'expired')) THEN
		RAISE EXCEPTION 'approval requests only move forward';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER approvals_forward BEFORE UPDATE ON approvals
FOR EACH ROW EXECUTE FUNCTION warden_approvals_forward();
`

// migrations are applied in order, each once, under an advisory lock, so
// instances that start together migrate the schema once. Each applied
// migration leaves a row in warden_migrations. An index added later
// without a version (records_session_life) is created after them, under
// the same lock, where it is missing: see addIndex.
var migrations = []string{schemaV1, schemaV2}

// migrateLock is the advisory lock key that serialises migrations.
const migrateLock = 0x77617264656e // "warden"

// Store is the PostgreSQL-backed recording. It is safe for concurrent use:
// writes go through one writer goroutine that commits queued records in
// groups, in one transaction per group.
type Store struct {
	pool     *pgxpool.Pool
	instance string
	keyFile  string
	key      ed25519.PrivateKey // nil when read-only without a key
	macKey   []byte
	apprKey  []byte
	clock    func() time.Time
	w        *writer // nil when read-only
	lock     *pgxpool.Conn
	started  sync.Map
	listen   listener

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	errClosed   = errors.New("the recording store is closed")
	errReadOnly = errors.New("the recording store was opened read-only")
)

// KeyName is the signing key's file name in the key directory.
const KeyName = "warden.key"

// Open opens the store at url (postgres://... or postgresql://...). For
// writing it connects, migrates the schema once (whoever starts first), reads
// the signing key from opts.KeyDir (required: every instance must read the
// same key), takes this instance's chain, checks its end against its signed
// head and checks it can write. No error names the URL.
func Open(ctx context.Context, url string, opts recorder.Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("opening the PostgreSQL store: the URL cannot be parsed")
	}
	if opts.KeyDir == "" {
		return nil, errors.New("opening the PostgreSQL store: store.keys must name the directory of the signing key every instance shares")
	}
	s := &Store{clock: opts.Clock, closed: make(chan struct{}), instance: opts.Instance}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.instance == "" {
		if s.instance, err = os.Hostname(); err != nil || s.instance == "" {
			return nil, errors.New("opening the PostgreSQL store: no instance name (set store.instance)")
		}
	}
	dir, err := filepath.Abs(opts.KeyDir)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	s.keyFile = filepath.Join(dir, KeyName)
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, errors.New("opening the PostgreSQL store: " + describe(err))
	}
	fail := func(err error) (*Store, error) {
		if s.lock != nil {
			s.lock.Release()
		}
		s.pool.Close()
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fail(errors.New(describe(err)))
	}
	if opts.ReadOnly {
		if s.key, err = recorder.ReadKeyFile(s.keyFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		if s.key != nil {
			s.macKey, s.apprKey = recorder.RecordMACKey(s.key), recorder.ApprovalMACKey(s.key)
		}
		return s, nil
	}
	if err := migrate(ctx, s.pool); err != nil {
		return fail(err)
	}
	if err := s.signingKey(ctx); err != nil {
		return fail(err)
	}
	// The chain lock: held on one connection for the store's life, so a
	// second process started with the same instance name cannot fork the
	// chain.
	if s.lock, err = s.pool.Acquire(ctx); err != nil {
		return fail(errors.New(describe(err)))
	}
	var got bool
	if err := s.lock.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('warden/chain/' || $1, 0))`, s.instance).Scan(&got); err != nil {
		return fail(errors.New(describe(err)))
	}
	if !got {
		return fail(fmt.Errorf("another process is writing as instance %q: give each instance its own name (store.instance)", s.instance))
	}
	s.w = newWriter(s, opts)
	if err := s.w.load(ctx); err != nil {
		return fail(err)
	}
	go s.w.loop()
	return s, nil
}

// describe returns what may be said about a database error: its SQLSTATE
// and message for a server error, a fixed phrase otherwise (a connection
// error's text can name the host, user and database).
func describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err.Error()
	}
	return "the PostgreSQL server cannot be reached or refused the connection"
}

// dbErr wraps a database error for returning: see describe.
func dbErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var r *refusal
	if errors.As(err, &r) {
		return err
	}
	return fmt.Errorf("%s: %s", what, describe(err))
}

// migrate applies the migrations not yet applied, and adds the indexes
// added without a version, under an advisory lock that the first instance
// takes and the others wait for.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return errors.New(describe(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return dbErr("taking the migration lock", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS warden_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return dbErr("store is not writable", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM warden_migrations`).Scan(&have); err != nil {
		return dbErr("reading the schema version", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store schema version %d is not supported by this warden (want %d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO warden_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return dbErr(fmt.Sprintf("applying schema version %d", v), err)
		}
	}
	if err := addIndex(ctx, conn, "records_session_life", sessionLifeIndex); err != nil {
		return dbErr("adding the session index", err)
	}
	return nil
}

// addIndex creates an index added to the schema without a new version
// (so older wardens, which refuse a newer version, still open the store
// and maintain the index without knowing it), where it is missing. It
// runs under the migration lock, so instances that start together create
// it once: two CREATE INDEX IF NOT EXISTS at once both build it, and one
// fails on pg_class's unique name. It looks for the index first: CREATE
// INDEX IF NOT EXISTS takes its SHARE lock on the table before it sees
// that the index exists, and would hold every writer of the store behind
// each instance's start. Where the index is missing, building it holds
// the other instances' writes for as long as it takes, once.
func addIndex(ctx context.Context, conn *pgxpool.Conn, name, create string) error {
	var have bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&have); err != nil || have {
		return err
	}
	_, err := conn.Exec(ctx, create)
	return err
}

// signingKey reads the shared signing key. It is created only for a store
// that holds no chain yet; once one exists, a missing key, or a key other
// than the one that signed the store's checkpoints, is refused: instances
// must share one key (their approval state, continue tokens and masking
// hashes derive from it).
func (s *Store) signingKey(ctx context.Context) error {
	var body string
	err := s.pool.QueryRow(ctx, `SELECT body FROM records WHERE kind = 'checkpoint' ORDER BY at DESC LIMIT 1`).Scan(&body)
	signedBy := ""
	switch {
	case err == nil:
		var cp recorder.CheckpointJSON
		if json.Unmarshal([]byte(body), &cp) != nil || cp.Key == "" {
			signedBy = "(unreadable)"
		} else {
			signedBy = cp.Key
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return dbErr("reading checkpoints", err)
	}
	key, err := recorder.ReadKeyFile(s.keyFile)
	switch {
	case err == nil && signedBy != "" && recorder.FormatPublicKey(key.Public().(ed25519.PublicKey)) != signedBy:
		return fmt.Errorf("signing key %s is not the key that signed this store's checkpoints (%s): every instance must read the same key file", s.keyFile, signedBy)
	case err == nil:
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case signedBy != "":
		return fmt.Errorf("signing key %s is missing, but this store's checkpoints are signed (last by key %s): give every instance the same key file", s.keyFile, signedBy)
	default:
		if err := os.MkdirAll(filepath.Dir(s.keyFile), 0o700); err != nil {
			return fmt.Errorf("key directory: %w", err)
		}
		if key, err = recorder.CreateKeyFile(s.keyFile); err != nil {
			return err
		}
	}
	s.key, s.macKey, s.apprKey = key, recorder.RecordMACKey(key), recorder.ApprovalMACKey(key)
	return nil
}

// Close signs what this instance wrote since its last checkpoint, releases
// its chain and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		var errs []error
		if s.w != nil {
			errs = append(errs, s.w.close())
		}
		if s.lock != nil {
			s.lock.Release()
		}
		s.pool.Close()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Store) writable() (*writer, error) {
	if s.w == nil {
		return nil, errReadOnly
	}
	return s.w, nil
}

// Instance is the name of the chain this store writes.
func (s *Store) Instance() string { return s.instance }

// PublicKey returns the public half of the shared signing key.
func (s *Store) PublicKey() (ed25519.PublicKey, error) {
	key, err := recorder.ReadKeyFile(s.keyFile)
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

// KeySource says where the signing key is kept.
func (s *Store) KeySource() string { return "the key file " + s.keyFile }

// Secret derives key material for a purpose from the shared signing key,
// as the SQLite store does: every instance derives the same.
func (s *Store) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	key := s.key
	if key == nil {
		var err error
		if key, err = recorder.ReadKeyFile(s.keyFile); err != nil {
			return nil, fmt.Errorf("secret %s is derived from the signing key: %w", name, err)
		}
	}
	if n <= 0 || n > 32 {
		return nil, fmt.Errorf("secret %s: %d bytes asked for; at most 32", name, n)
	}
	return recorder.Derive(key, "secret/v1/"+name, n), nil
}

// IsURL reports whether url names a PostgreSQL store.
func IsURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// SchemaVersion is the schema version this warden migrates a store to:
// the number of rows warden_migrations holds once it has.
func SchemaVersion() int { return len(migrations) }
