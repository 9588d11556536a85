package warden

import (
	"context"
	"time"
)

// Store is where warden keeps what it must not lose: the recording of
// sessions and calls, and the approval requests. Implementations live in
// packages named after the database they wrap (recorder/sqlite); the
// record format, the hash chain and verification are package recorder's.
//
// Every write returns nil only once what it wrote is durable; any error
// means it was not written, and the call it concerns must not run (or its
// result must not leave). A store that cannot write refuses every write.
type Store interface {
	Recorder
	ApprovalStore
	// StartSession records that a client session opened. It returns an
	// error if a session with that id was already started.
	StartSession(ctx context.Context, s *Session) error
	// UpdateSession records the client's name and version and the
	// protocol revision learned after the start. It returns an error for
	// a session never started (wrapping recorder.ErrNotFound) or ended.
	UpdateSession(ctx context.Context, s *Session) error
	// EndSession records that session id closed at the given time, with
	// the same errors as UpdateSession.
	EndSession(ctx context.Context, id string, at time.Time) error
	// Secret returns n bytes (at most 32) of key material for the named
	// purpose (the approval state key, the masking hash key), the same
	// for every process that opens the same store with the same keys. It
	// returns an error when the keys cannot be read.
	Secret(ctx context.Context, name string, n int) ([]byte, error)
	// Close signs what this process wrote and releases the store; writes
	// after Close return an error.
	Close() error
}
