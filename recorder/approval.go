package recorder

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/warden-mcp/warden"
)

// Record kinds of the approval workflow. A request is recorded when it is
// made; every change of it (a decision, its use, its expiry) is recorded
// when it happens, in the same transaction as the change to the approvals
// table, so the table never says what the chain does not.
const (
	KindApprovalRequest = "approval_request"
	KindApprovalChange  = "approval_change"
)

// ApprovalJSON is an approval request as stored: in approval_request
// records and in the approvals table's body column.
type ApprovalJSON struct {
	ID            string      `json:"id"`
	Rule          string      `json:"rule"`
	Via           string      `json:"via"`
	Approvers     approversJS `json:"approvers"`
	Requester     *CallerJSON `json:"requester"`
	SessionID     string      `json:"session_id,omitempty"`
	CallID        string      `json:"call_id"`
	Tool          string      `json:"tool"`
	CallHash      string      `json:"call_hash"`
	Backend       string      `json:"backend"`
	Kind          string      `json:"kind"`
	Statement     string      `json:"statement"`
	Params        []string    `json:"params,omitempty"`
	Purpose       string      `json:"purpose,omitempty"`
	Why           string      `json:"why,omitempty"`
	Ops           []OpJSON    `json:"ops,omitempty"`
	EstimatedRows *int64      `json:"estimated_rows,omitempty"`
	Status        string      `json:"status"`
	CreatedAt     string      `json:"created_at"`
	ExpiresAt     string      `json:"expires_at"`
	TimeoutMS     int64       `json:"timeout_ms"`
	DecidedBy     *CallerJSON `json:"decided_by,omitempty"`
	DecidedAt     string      `json:"decided_at,omitempty"`
	Reason        string      `json:"reason,omitempty"`
	UsedBy        string      `json:"used_by,omitempty"`
	UsedAt        string      `json:"used_at,omitempty"`
	// Preview is the write preview (issue 17); its digest binds the
	// approval to the rows previewed. Stored as warden defines it.
	Preview *warden.WritePreview `json:"preview,omitempty"`
}

type approversJS struct {
	User     bool     `json:"user,omitempty"`
	Subjects []string `json:"subjects,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// ApprovalChangeJSON is the body of an approval_change record: which
// request, from and to which status, who, why, when, and the call it
// released.
type ApprovalChangeJSON struct {
	ID        string      `json:"id"`
	Rule      string      `json:"rule"`
	CallHash  string      `json:"call_hash"`
	From      string      `json:"from"`
	To        string      `json:"to"`
	By        *CallerJSON `json:"by,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	At        string      `json:"at"`
	ExpiresAt string      `json:"expires_at,omitempty"`
	CallID    string      `json:"call_id,omitempty"`
}

func ApprovalToJSON(a *warden.Approval) *ApprovalJSON {
	b := &ApprovalJSON{
		ID: a.ID, Rule: a.Rule, Via: a.Via,
		Approvers: approversJS{User: a.Approvers.User, Subjects: a.Approvers.Subjects, Groups: a.Approvers.Groups},
		Requester: CallerToJSON(a.Requester), SessionID: a.SessionID, CallID: a.CallID,
		Tool: a.Tool, CallHash: a.CallHash, Backend: a.Backend, Kind: a.Kind, Statement: a.Statement, Params: a.Params,
		Purpose: a.Purpose, Why: a.Why, EstimatedRows: a.EstimatedRows, Status: string(a.Status),
		CreatedAt: FormatTime(a.CreatedAt), ExpiresAt: FormatTime(a.ExpiresAt), TimeoutMS: a.Timeout.Milliseconds(),
		DecidedBy: CallerToJSON(a.DecidedBy), Reason: a.Reason, UsedBy: a.UsedBy,
		Preview: a.Preview,
	}
	for _, op := range a.Ops {
		b.Ops = append(b.Ops, OpJSON{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
	}
	if !a.DecidedAt.IsZero() {
		b.DecidedAt = FormatTime(a.DecidedAt)
	}
	if !a.UsedAt.IsZero() {
		b.UsedAt = FormatTime(a.UsedAt)
	}
	return b
}

func ApprovalFromJSON(b *ApprovalJSON) *warden.Approval {
	a := &warden.Approval{
		ID: b.ID, Rule: b.Rule, Via: b.Via,
		Approvers: warden.Approvers{User: b.Approvers.User, Subjects: b.Approvers.Subjects, Groups: b.Approvers.Groups},
		SessionID: b.SessionID, CallID: b.CallID, Tool: b.Tool, CallHash: b.CallHash,
		Backend: b.Backend, Kind: b.Kind, Statement: b.Statement, Params: b.Params, Purpose: b.Purpose, Why: b.Why, EstimatedRows: b.EstimatedRows,
		Status: warden.ApprovalStatus(b.Status), CreatedAt: ParseTime(b.CreatedAt), ExpiresAt: ParseTime(b.ExpiresAt),
		Timeout: time.Duration(b.TimeoutMS) * time.Millisecond, DecidedAt: ParseTime(b.DecidedAt),
		Reason: b.Reason, UsedBy: b.UsedBy, UsedAt: ParseTime(b.UsedAt),
		Preview: b.Preview,
	}
	if b.Requester != nil {
		c := CallerFromJSON(b.Requester)
		a.Requester = &c
	}
	if b.DecidedBy != nil {
		c := CallerFromJSON(b.DecidedBy)
		a.DecidedBy = &c
	}
	for _, op := range b.Ops {
		a.Ops = append(a.Ops, warden.Op{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
	}
	return a
}

func DecodeApproval(body string) (*warden.Approval, error) {
	var b ApprovalJSON
	if err := jsonUnmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("decoding approval: %w", err)
	}
	return ApprovalFromJSON(&b), nil
}

// ApprovalEvent is one record of an approval request's history.
type ApprovalEvent struct {
	Seq  int64
	Kind string // "request" or the status it moved to
	At   time.Time
	// From and To are the statuses a change moved between; By, Reason
	// and CallID what it recorded.
	From, To string
	By       *warden.Caller
	Reason   string
	CallID   string
}

// ApprovalMAC returns the MAC of an approvals row.
func ApprovalMAC(key []byte, id, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("warden/approval/v1\x00"))
	m.Write(appendString(nil, id))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// ApprovalMACKey is the key of the approvals rows' MACs.
func ApprovalMACKey(key ed25519.PrivateKey) []byte {
	return Derive(key, "approval-mac/v1", sha256.Size)
}
