package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// StartSession records that a client session has opened. It returns an
// error if a session with the same id was already started.
func (s *Store) StartSession(ctx context.Context, sess *warden.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("recording session start: session has no id")
	}
	body := recorder.SessionJSON{
		ID:              sess.ID,
		Transport:       sess.Transport,
		ClientName:      sess.ClientName,
		ClientVersion:   sess.ClientVersion,
		ProtocolVersion: sess.ProtocolVersion,
		Caller:          recorder.CallerToJSON(sess.Caller),
		StartedAt:       recorder.FormatTime(sess.StartedAt),
	}
	err := s.append(ctx, recorder.KindSessionStart, sess.ID, "", body.StartedAt, body, func(ctx context.Context, tx *sql.Tx) error {
		n, _, err := s.w.countSession(ctx, tx, sess.ID)
		if err == nil && n > 0 {
			err = refuse(errors.New("session was already started"))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording start of session %s: %w", sess.ID, err)
	}
	return nil
}

// UpdateSession records what was learned about a session after it started:
// the client's name and version and the protocol revision (at initialize).
// Only those fields are recorded; the transport and caller are fixed at
// StartSession. It returns an error wrapping ErrNotFound for a session that
// was never started, and an error for one that has ended.
//
// warden.Session carries no time for the update, so the record's at column
// is NULL; its position in the log (seq) orders it.
func (s *Store) UpdateSession(ctx context.Context, sess *warden.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("recording session update: session has no id")
	}
	body := recorder.SessionJSON{
		ID:              sess.ID,
		ClientName:      sess.ClientName,
		ClientVersion:   sess.ClientVersion,
		ProtocolVersion: sess.ProtocolVersion,
	}
	err := s.append(ctx, recorder.KindSessionUpdate, sess.ID, "", "", body, func(ctx context.Context, tx *sql.Tx) error {
		return s.w.checkSessionOpen(ctx, tx, sess.ID)
	})
	if err != nil {
		return fmt.Errorf("recording update of session %s: %w", sess.ID, err)
	}
	return nil
}

// EndSession records that a session closed at the given time. It returns an
// error wrapping ErrNotFound for a session that was never started, and an
// error for one that has already ended.
func (s *Store) EndSession(ctx context.Context, id string, at time.Time) error {
	if id == "" {
		return errors.New("recording session end: session has no id")
	}
	body := recorder.SessionJSON{ID: id, EndedAt: recorder.FormatTime(at)}
	err := s.append(ctx, recorder.KindSessionEnd, id, "", body.EndedAt, body, func(ctx context.Context, tx *sql.Tx) error {
		return s.w.checkSessionOpen(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("recording end of session %s: %w", id, err)
	}
	return nil
}

// StartCall records that an allowed call is about to run. The record is
// committed before StartCall returns nil; any error means it was not, and
// the call must not run. A call id can be started once, and not after it
// was finished.
func (s *Store) StartCall(ctx context.Context, c *warden.Call) error {
	if c == nil || c.ID == "" {
		return errors.New("recording call start: call has no id")
	}
	body := recorder.CallToJSON(c)
	err := s.appendOnce(ctx, recorder.KindCallStart, c.SessionID, c.ID, body.StartedAt, body)
	if err != nil {
		return fmt.Errorf("recording start of call %s: %w", c.ID, err)
	}
	s.started.Store(c.ID, struct{}{})
	return nil
}

// FinishCall records the outcome of a call, whether it was denied, failed
// or succeeded; a call refused before it ran has only this record. The
// arguments and the action are recorded once per call: a call this store
// started has them in its call_start record, and its call_finish says so
// ("args_in": "call_start") instead of repeating them, so an agent cannot
// double what its arguments cost the recording. The record is committed
// before FinishCall returns nil. A call id can be finished once.
//
// If the result cannot be encoded as JSON, the call is recorded as an
// internal error without its result, and FinishCall returns an error so the
// result is withheld from the agent.
func (s *Store) FinishCall(ctx context.Context, c *warden.Call) error {
	if c == nil || c.ID == "" {
		return errors.New("recording call finish: call has no id")
	}
	_, started := s.started.LoadAndDelete(c.ID)
	w, err := s.writable()
	if err != nil {
		return fmt.Errorf("recording finish of call %s: %w", c.ID, err)
	}
	text, endedAt, resultErr, err := recorder.FinishRecord(c, started)
	if err != nil {
		return fmt.Errorf("recording finish of call %s: encoding record: %w", c.ID, err)
	}
	p := newUnhashed(recorder.KindCallFinish, c.SessionID, c.ID, endedAt, text)
	p.duplicate = callDuplicate(recorder.KindCallFinish)
	err = s.appendCall(ctx, w, p)
	if err = errors.Join(resultErr, err); err != nil {
		return fmt.Errorf("recording finish of call %s: %w", c.ID, err)
	}
	return nil
}

// append writes one record, after check (which runs inside the write
// transaction) passes. It returns nil only once the record has committed.
func (s *Store) append(ctx context.Context, kind, sessionID, callID, at string, body any, check func(context.Context, *sql.Tx) error) error {
	w, err := s.writable()
	if err != nil {
		return err
	}
	text, err := recorder.Encode(body)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	p := newPending(kind, sessionID, callID, at, text)
	p.check = check
	return w.append(ctx, p)
}

// appendOnce writes one call record: the unique index on (call_id, kind)
// refuses a second start or finish of the same call, so no read is needed
// first. It returns nil only once the record has committed.
func (s *Store) appendOnce(ctx context.Context, kind, sessionID, callID, at string, body any) error {
	w, err := s.writable()
	if err != nil {
		return err
	}
	text, err := recorder.Encode(body)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	p := newUnhashed(kind, sessionID, callID, at, text)
	p.duplicate = callDuplicate(kind)
	return s.appendCall(ctx, w, p)
}

// appendCall writes a call record: through the warden that commits for
// the others sharing the store, when there is one (relay.go), or itself.
//
// A record sent to the relay and left unanswered (the relay was killed,
// say) is written here; if the store refuses it as a duplicate, the relay
// may have committed it before it died. The record is then durable if
// the store holds this very record: the same call, kind and body, byte
// for byte; anything else is the duplicate refusal it is.
func (s *Store) appendCall(ctx context.Context, w *writer, p *pending) error {
	var unanswered bool
	if s.relay != nil && relayed(p) {
		var handled bool
		var err error
		if handled, unanswered, err = s.relay.send(ctx, p); handled {
			return err
		}
	}
	err := w.append(ctx, p)
	var dup *duplicateRecord
	if unanswered && errors.As(err, &dup) {
		var body string
		switch rerr := s.read.QueryRowContext(ctx, `SELECT body FROM records WHERE call_id = ? AND kind = ?`, p.callID, p.kind).Scan(&body); {
		case rerr == nil && body == p.body:
			return nil
		case rerr != nil:
			return errors.Join(err, fmt.Errorf("reading the record back: %w", rerr))
		}
	}
	return err
}

// sessionLifeIndex finds a session's start and end records without
// visiting its calls: checking that a session is open, under the write
// lock every other warden on the store waits behind, would otherwise read
// every record the session wrote (2,728 pages for one session's end in an
// eight-process benchmark). The query names the index's condition word for
// word, which is how SQLite knows it may use a partial index.
const sessionLifeIndex = `CREATE INDEX IF NOT EXISTS records_session_life ON records (session_id)
WHERE kind IN ('session_start', 'session_end')`

// sessionLifeSQL counts a session's start and end records.
const sessionLifeSQL = `SELECT count(*) FILTER (WHERE kind = 'session_start'), count(*) FILTER (WHERE kind = 'session_end')
FROM records INDEXED BY records_session_life WHERE session_id = ?1 AND kind IN ('session_start', 'session_end')`

// countSession counts, inside tx, the start and end records of session id.
func (w *writer) countSession(ctx context.Context, tx *sql.Tx, id string) (started, ended int, err error) {
	err = tx.StmtContext(ctx, w.countBySession).QueryRowContext(ctx, id).Scan(&started, &ended)
	return started, ended, err
}

// checkSessionOpen refuses unless session id was started and has not
// ended.
func (w *writer) checkSessionOpen(ctx context.Context, tx *sql.Tx, id string) error {
	started, ended, err := w.countSession(ctx, tx, id)
	if err != nil {
		return err
	}
	if started == 0 {
		return refuse(fmt.Errorf("session %w", recorder.ErrNotFound))
	}
	if ended > 0 {
		return refuse(errors.New("session has already ended"))
	}
	return nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// The record bodies below are this package's own types, not the domain
// types' JSON: the recording is a long-lived format that replay and verify
// read, and it must not change when a domain type gains a field or a tag.

var _ warden.Recorder = (*Store)(nil)

// Secret returns the named key material (for example the key of the hash
// masking strategy): n bytes derived from the signing key, or, for a store
// migrated from before version 4, the value it kept in its secrets table,
// which the migration moved to the secrets file beside the signing key
// (PATH.secrets, mode 0600). Neither is in the store, so a copy of it
// reveals no key. n is at most 32.
func (s *Store) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	legacy, err := readSecrets(s.SecretsFile())
	if err != nil {
		return nil, err
	}
	if v, ok := legacy[name]; ok {
		return v, nil
	}
	var key ed25519.PrivateKey
	if s.w != nil {
		key = s.w.key
	} else if key, err = recorder.ReadKeyFile(s.KeyFile()); err != nil {
		return nil, fmt.Errorf("secret %s is derived from the signing key: %w", name, err)
	}
	if n <= 0 || n > 32 {
		return nil, fmt.Errorf("secret %s: %d bytes asked for; at most 32", name, n)
	}
	return recorder.Derive(key, "secret/v1/"+name, n), nil
}

// SecretsPath is where the key material a store at dbPath kept before
// version 4 is kept after its migration, by default.
func SecretsPath(dbPath string) string { return dbPath + ".secrets" }

// readSecrets reads a secrets file: a JSON object of names and base64
// values, readable by its owner only. A missing file holds nothing.
func readSecrets(path string) (map[string][]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets file %s is readable by others (mode %04o): chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string][]byte // encoding/json reads []byte as base64
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("secrets file %s cannot be read", path)
	}
	return m, nil
}

// moveSecrets moves the secrets table of a store from before version 4 to
// the secrets file, inside the migration's transaction: the file is
// written (and synced) first, then the rows are deleted with
// secure_delete on, so their bytes are overwritten, and the table dropped.
// It reports whether there was anything to move.
func (s *Store) moveSecrets(ctx context.Context, tx *sql.Tx) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'secrets'`).Scan(&n); err != nil || n == 0 {
		return false, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT name, value FROM secrets`)
	if err != nil {
		return false, err
	}
	found := map[string][]byte{}
	for rows.Next() {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return false, err
		}
		found[name] = v
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return false, err
	}
	if len(found) > 0 {
		path := s.SecretsFile()
		have, err := readSecrets(path)
		if err != nil {
			return false, err
		}
		for name, v := range have {
			found[name] = v // a value already moved wins
		}
		data, _ := json.Marshal(found) // cannot fail for these types
		if err := recorder.WritePrivateFile(path, data); err != nil {
			return false, err
		}
	}
	for _, q := range []string{`PRAGMA secure_delete = ON`, `DELETE FROM secrets`, `DROP TABLE secrets`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, err
		}
	}
	return len(found) > 0, nil
}

// jsonUnmarshal decodes a stored body.
func jsonUnmarshal(body string, v any) error { return json.Unmarshal([]byte(body), v) }

// isSeqConflict reports whether err is a second record with the same seq:
// another process appended to the store.
func isSeqConflict(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isPrimaryKeyViolation reports whether err is SQLite's PRIMARY KEY
// constraint failure.
func isPrimaryKeyViolation(err error) bool { return isSeqConflict(err) }

// isUniqueViolation reports whether err is SQLite's UNIQUE constraint
// failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
