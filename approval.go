package warden

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Approver is the approval stage: rules that hold a granted call until a
// human approves exactly that call. It runs after policy allowed the call,
// so an approval can never widen a grant.
type Approver interface {
	// Approve decides whether the call c, which policy allowed, may run
	// now. It returns nil when no rule holds the call, or when a human
	// approved this exact call and the approval is now used up (c.Approval
	// then says which). It returns NeedsApproval, with Error.Pending set,
	// when the call is held (the user is being asked, or a reviewer has
	// not decided yet); Denied when a human declined it, the approval
	// expired or was used, or approval_id does not cover this call;
	// Unavailable when the approval store cannot be read or written. t is
	// the tool that planned c, for estimates.
	Approve(ctx context.Context, c *Call, t Tool) error
}

// Estimator is implemented by tools that can say, without performing a
// call, about how many rows or objects it would touch (for SQL: the
// planner's estimate, from EXPLAIN).
type Estimator interface {
	// Estimate returns the estimate for an action the tool planned, and
	// ok=false when the action has no meaningful estimate (DDL). An error
	// means it could not be made now.
	Estimate(ctx context.Context, a *Action) (n int64, ok bool, err error)
}

// Previewer is implemented by tools that can show what a write will do
// before it runs (for SQL: by running it in a transaction that is rolled
// back). The approval stage stores the preview on the request and, when
// the approval releases the call, sets Action.PreviewDigest so the tool
// refuses the call if the rows it affects are no longer those previewed.
type Previewer interface {
	// Preview returns nil when the action is not a write it previews, a
	// preview with NotPreviewed set when it cannot be previewed safely,
	// or an error when the backend could not be asked.
	Preview(ctx context.Context, a *Action) (*WritePreview, error)
}

// PreviewRowsShown is how many rows a preview shows before and after.
const PreviewRowsShown = 20

// WritePreview is what a write did in a transaction that was rolled back:
// the rows it affected, up to PreviewRowsShown of them before and after,
// masked like any result. Cells are display text; NULL is nil.
type WritePreview struct {
	// Rows is how many rows the statement affected.
	Rows    int64    `json:"rows"`
	Columns []string `json:"columns,omitempty"`
	// Before are the affected rows as they were (UPDATE, DELETE); After
	// as the statement left them (INSERT, UPDATE). Row i of Before and
	// After is the same row.
	Before [][]*string `json:"before,omitempty"`
	After  [][]*string `json:"after,omitempty"`
	// Masked names the columns whose values are masked.
	Masked []string `json:"masked,omitempty"`
	// NotPreviewed, when set, says why the statement was not run.
	NotPreviewed string `json:"not_previewed,omitempty"`
	// Digest identifies the affected row set (see tools/sql); empty when
	// nothing was previewed.
	Digest string `json:"digest,omitempty"`
}

// ApprovalStatus is where an approval request stands. It only moves
// forward: pending → approved → used, or pending → denied | expired | used
// (a user's confirmation is approved and used at once), or approved →
// expired.
type ApprovalStatus string

const (
	ApprovalPending  ApprovalStatus = "pending"
	ApprovalApproved ApprovalStatus = "approved"
	ApprovalDenied   ApprovalStatus = "denied"
	ApprovalExpired  ApprovalStatus = "expired"
	ApprovalUsed     ApprovalStatus = "used"
)

// How an approval request is decided.
const (
	// ViaUser: the calling user confirms the call through the MCP client
	// (elicitation).
	ViaUser = "user"
	// ViaReviewer: a reviewer who is not the requester decides out of band
	// (`warden approvals approve`).
	ViaReviewer = "reviewer"
	// ViaBrowser: the calling user confirms the call in the console,
	// signed in through the identity provider (MCP URL-mode elicitation);
	// the client alone cannot confirm it.
	ViaBrowser = "browser"
)

// Approvers says who may approve a call an approval rule holds: the
// calling user through the MCP client, reviewers named by subject or
// group, or both (then the user is asked when the client can be asked,
// and reviewers decide otherwise). In warden.yaml: `approvers: user` or
// `approvers: {groups: [dba], subjects: [...], user: true}`; `approvers:
// {user: browser}` has the calling user confirm in the console instead of
// in the client (Browser).
type Approvers struct {
	User bool `yaml:"user" json:"user,omitempty"`
	// Browser (with User): the calling user confirms in the browser, in
	// the console, not in the MCP client.
	Browser  bool     `yaml:"-" json:"browser,omitempty"`
	Subjects []string `yaml:"subjects" json:"subjects,omitempty"`
	Groups   []string `yaml:"groups" json:"groups,omitempty"`
}

// Reviewers reports whether anyone besides the calling user may approve.
func (a Approvers) Reviewers() bool { return len(a.Subjects)+len(a.Groups) > 0 }

// Includes reports whether c is one of the reviewers.
func (a Approvers) Includes(c *Caller) bool {
	if c == nil || c.Subject == "" {
		return false
	}
	if slices.Contains(a.Subjects, c.Subject) {
		return true
	}
	for _, g := range a.Groups {
		if c.InGroup(g) {
			return true
		}
	}
	return false
}

// Approval is a request that a human approve one exact call, and what
// became of it.
type Approval struct {
	ID string `json:"id"`
	// Rule names the approval rule that held the call.
	Rule string `json:"rule"`
	// Via is ViaUser or ViaReviewer.
	Via       string    `json:"via"`
	Approvers Approvers `json:"approvers"`
	Requester *Caller   `json:"requester"`
	// SessionID and CallID are the session and the call that asked.
	SessionID string `json:"session_id,omitempty"`
	CallID    string `json:"call_id"`
	// Tool and CallHash bind the request to one exact call (see CallHash).
	Tool     string `json:"tool"`
	CallHash string `json:"call_hash"`
	// What the call does, as shown to whoever decides.
	Backend   string   `json:"backend"`
	Kind      string   `json:"kind"`
	Statement string   `json:"statement"`
	Params    []string `json:"params,omitempty"`
	Purpose   string   `json:"purpose,omitempty"`
	Ops       []Op     `json:"ops,omitempty"`
	// Why says why a flow rule or a budget held the call (which rule,
	// the earlier call the data came from, the argument that carried it).
	Why string `json:"why,omitempty"`
	// EstimatedRows is the planner's estimate, when there is one.
	EstimatedRows *int64 `json:"estimated_rows,omitempty"`
	// Preview is what the write did when warden ran it in a transaction
	// it rolled back, for tools that can say (SQL writes); its Digest
	// binds the approval to the rows previewed.
	Preview *WritePreview `json:"preview,omitempty"`

	Status    ApprovalStatus `json:"status"`
	CreatedAt time.Time      `json:"created_at"`
	// ExpiresAt is when a pending request expires; once approved, when
	// the approval must have been used by.
	ExpiresAt time.Time `json:"expires_at"`
	// Timeout is the rule's timeout when the request was made: how long
	// an approval stays usable after a reviewer grants it.
	Timeout time.Duration `json:"timeout"`
	// DecidedBy, DecidedAt and Reason say who approved, denied or (for
	// expiry, nobody) ended the request, when and why.
	DecidedBy *Caller   `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// UsedBy is the call the approval released, and UsedAt when.
	UsedBy string    `json:"used_by,omitempty"`
	UsedAt time.Time `json:"used_at,omitzero"`
}

// Effective returns the status as of now: a pending or approved request
// past its expiry is expired even before anyone recorded it.
func (a *Approval) Effective(now time.Time) ApprovalStatus {
	if (a.Status == ApprovalPending || a.Status == ApprovalApproved) && !now.Before(a.ExpiresAt) {
		return ApprovalExpired
	}
	return a.Status
}

// ApprovalChange moves an approval request forward. The store applies it
// only if the request is in one of From and, for changes to approved or
// used, has not expired at At.
type ApprovalChange struct {
	ID   string
	From []ApprovalStatus
	To   ApprovalStatus
	// By is who decided (nil for expiry); Reason says why.
	By     *Caller
	Reason string
	At     time.Time
	// ExpiresAt, when not zero, replaces the expiry (an approval is usable
	// for the rule's timeout after it is granted).
	ExpiresAt time.Time
	// CallID is the call the approval released (To == ApprovalUsed) or
	// the call in which the user answered.
	CallID string
}

// ApprovalFilter selects approval requests. Zero fields do not filter.
type ApprovalFilter struct {
	Status ApprovalStatus
	Limit  int
}

// Errors an ApprovalStore returns, wrapped.
var (
	ErrApprovalNotFound = errors.New("no such approval request")
	// ErrApprovalConflict: the request was not in a state the change can
	// apply to (someone decided first, it expired, it was used).
	ErrApprovalConflict = errors.New("the approval request was not in a state this change applies to")
	// ErrApprovalForged: the stored request does not match what warden
	// recorded (it was changed outside warden); it releases nothing.
	ErrApprovalForged = errors.New("the approval request was changed outside warden")
)

// ApprovalStore keeps approval requests. Every creation and change is also
// recorded, in the same transaction, in the tamper-evident recording.
type ApprovalStore interface {
	// CreateApproval stores a new request and records it.
	CreateApproval(ctx context.Context, a *Approval) error
	// Approval returns the request with id, or an error wrapping
	// ErrApprovalNotFound.
	Approval(ctx context.Context, id string) (*Approval, error)
	// PendingApproval returns the newest request of subject for the call
	// hash that is still pending at now, or nil when there is none.
	PendingApproval(ctx context.Context, subject, callHash string, now time.Time) (*Approval, error)
	// ChangeApproval applies c atomically and records it; it returns the
	// request as changed, or an error wrapping ErrApprovalConflict (or
	// ErrApprovalNotFound).
	ChangeApproval(ctx context.Context, c ApprovalChange) (*Approval, error)
	// Approvals lists requests, newest first.
	Approvals(ctx context.Context, f ApprovalFilter) ([]*Approval, error)
}

// Pending describes a call held for approval; it is set on errors with
// code NeedsApproval.
type Pending struct {
	ApprovalID string
	Rule       string
	ExpiresAt  time.Time
	// Ask, when set, is the question for the calling user: the transport
	// puts Message to the user and sends the answer back with State.
	Ask *Ask
}

// Ask is a confirmation warden asks the calling user for.
type Ask struct {
	Message string
	// State is the opaque, integrity-protected token the client echoes
	// back with the answer; it binds the answer to this exact call.
	State string
	// URL, when set, makes this a URL-mode question: the user opens URL
	// (the console's confirmation page) and answers there, not in the
	// client; the client's own answer confirms nothing. ElicitationID
	// names it for the client.
	URL           string
	ElicitationID string
}

// CallApproval is what the recording says about the approval of one call.
type CallApproval struct {
	ID   string `json:"id"`
	Rule string `json:"rule"`
	Via  string `json:"via"`
	// Status is the request's status once this call ended: pending (the
	// call was held), used (this call ran on it), denied or expired.
	Status    ApprovalStatus `json:"status"`
	DecidedBy string         `json:"decided_by,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	// Note says why an answer or approval_id the client sent was not
	// taken (a forged or used requestState, an approval for another call).
	Note string `json:"note,omitempty"`
}

// ApprovalIDArg is the argument every tool takes for the id of an approval
// that covers a call. It is not part of the call's identity (CallHash).
const ApprovalIDArg = "approval_id"

// CallHash identifies one exact call: the tool and every argument except
// approval_id, in a canonical JSON form (object keys sorted, numbers as
// written, strings re-escaped), hashed with SHA-256 and hex-encoded. Two
// calls with the same hash do the same thing; changing any argument,
// including the purpose, changes it.
func CallHash(tool string, args json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if len(bytes.TrimSpace(args)) > 0 {
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
	}
	if m, ok := v.(map[string]any); ok {
		delete(m, ApprovalIDArg)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("warden/call/v1\x00"))
	h.Write([]byte(tool))
	h.Write([]byte{0})
	h.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return hex.EncodeToString(h.Sum(nil)), nil
}
