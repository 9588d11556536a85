package recorder

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/warden-mcp/warden"
)

// ErrNotFound is returned (wrapped) when a session or call is not in the store.
var ErrNotFound = errors.New("not found")

// Options tune a store. The zero value is what warden serves with.
type Options struct {
	// ReadOnly opens an existing store for reading only: nothing is
	// created, migrated, signed or written, and no signing key is needed,
	// so a copy handed to an auditor can be read and verified.
	ReadOnly bool
	// CheckpointEvery is the number of records after which a signed
	// checkpoint is written (default 1000).
	CheckpointEvery int
	// CheckpointInterval is the longest a record this process wrote stays
	// unsigned (default 10s). Close signs what is left.
	CheckpointInterval time.Duration
	// Clock stamps checkpoints and prune records (default time.Now).
	Clock func() time.Time
	// KeyDir is the directory of the signing key, the signed head and the
	// secrets file (NAME.key, NAME.head, NAME.secrets, NAME the database
	// file's name); default: beside the database. A directory that those
	// who can write the store cannot write is what keeps them from
	// replacing the head along with the store.
	KeyDir string
	// Instance names this process's hash chain in a store several
	// instances share (PostgreSQL); default: the host name. Two processes
	// cannot write as one instance at once.
	Instance string
	// OnCommit, when set, is told after each write transaction of
	// records: how many it wrote and how long the commit took. It runs on
	// the goroutine that committed (the store's writer, or a caller
	// committing its own record) and must not block (metrics).
	OnCommit func(records int, took time.Duration)
	// NoRelay (SQLite) keeps this store from committing the call records
	// of other wardens sharing the file, and from sending its own to the
	// one that does: every record is then written under the write lock by
	// its own process (for tests of that protocol).
	NoRelay bool
}

// Default checkpoint cadence.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// Pruned is what Prune removed.
type Pruned struct {
	// Records is the number of records deleted.
	Records int64
	// Anchor is the checkpoint the chain now starts at (0 if nothing was
	// pruned).
	Anchor int64
}

// RetainInterval is how often Retain prunes.
const RetainInterval = time.Hour

// Store is a recording store as the CLI uses it: warden.Store for
// serving, and the reads, retention, export and verification that `warden
// sessions` and `warden approvals` run. Adding a store means one package
// that implements this interface and is opened by its URL scheme.
type Store interface {
	warden.Store
	// Sessions returns the sessions matching f, newest first.
	Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error)
	// Session returns one session and its calls, or an error wrapping
	// ErrNotFound.
	Session(ctx context.Context, id string) (*SessionSummary, []CallRecord, error)
	// Calls returns the calls of one session, or of all sessions when
	// sessionID is "", in the order they started.
	Calls(ctx context.Context, sessionID string) ([]CallRecord, error)
	// ApprovalHistory returns the recorded request and changes of
	// approval request id, in order.
	ApprovalHistory(ctx context.Context, id string) ([]ApprovalEvent, error)
	// Prune removes the records before the newest checkpoint older than
	// cutoff, leaving a prune record; it returns what it removed.
	Prune(ctx context.Context, cutoff time.Time) (Pruned, error)
	// Retain prunes records older than keep every RetainInterval until
	// ctx ends or the store closes, logging what it did.
	Retain(ctx context.Context, keep time.Duration, log *slog.Logger)
	// Export writes the records at or after since (all when zero) as JSON
	// lines, which VerifyExport checks, and returns how many it wrote.
	Export(ctx context.Context, w io.Writer, since time.Time) (int64, error)
	// Audit verifies the whole recording against what it trusts: opts.Key
	// when given (else the store's own key), its signed heads and record
	// MACs. It returns a *ChainError for the first problem found.
	Audit(ctx context.Context, opts AuditOptions) (*VerifyReport, error)
	// Reseal accepts the end of the recording as it is, once it verifies
	// with the signing key, and returns the report and the head it
	// replaced.
	Reseal(ctx context.Context) (*VerifyReport, *Head, error)
	// PublicKey returns the public half of the signing key, or an error
	// wrapping fs.ErrNotExist when there is none to read; KeySource says
	// where it is kept, for messages.
	PublicKey() (ed25519.PublicKey, error)
	KeySource() string
}

// AuditOptions say what Audit trusts.
type AuditOptions struct {
	// Key is the trusted public key; nil trusts the store's key file.
	Key ed25519.PublicKey
	// KeyGiven is true when Key came from outside the store's key files
	// (--pubkey): then MACs keyed from those files are not trusted either.
	KeyGiven bool
	// HeadFile overrides where the signed head is read from.
	HeadFile string
}
