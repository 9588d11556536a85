package recorder

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/warden-mcp/warden"
)

// SessionFilter selects sessions for Sessions. Zero fields do not filter.
type SessionFilter struct {
	// Subject keeps sessions whose caller, at start, had this subject.
	Subject string
	// Since keeps sessions started at or after this time.
	Since time.Time
	// Until keeps sessions started before this time.
	Until time.Time
	// Tool keeps sessions with at least one call of this tool.
	Tool string
	// Denied keeps sessions with at least one denied call.
	Denied bool
	// Limit caps the number of sessions returned; 0 means no cap.
	Limit int
}

// SessionSummary is a session folded from its records.
type SessionSummary struct {
	ID              string
	Transport       string
	ClientName      string
	ClientVersion   string
	ProtocolVersion string
	Caller          warden.Caller
	StartedAt       time.Time
	// EndedAt is nil while the session is open (or if warden stopped
	// before recording its end).
	EndedAt *time.Time
	// Calls counts every call recorded in the session, running ones too;
	// Denied and Failed count finished calls whose outcome was "denied"
	// and "error".
	Calls, Denied, Failed int
}

// CallRecord is one call folded from its records.
type CallRecord struct {
	ID        string
	SessionID string
	Tool      string
	Caller    warden.Caller
	// Args are the arguments as given, compacted; a JSON string if they
	// were not valid JSON.
	Args      json.RawMessage
	Backend   string
	Kind      string
	Statement string
	Purpose   string
	Risk      string
	Ops       []warden.Op
	Functions []string
	Decision  *warden.Decision
	// Hash and Approval: for calls an approval rule held, the call's
	// identity and what became of its approval.
	Hash     string
	Approval *warden.CallApproval
	// Flow names the flow rule or budget that refused or held the call.
	Flow *warden.CallFlow
	// Outcome is "ok", "denied", "pending" or "error"; empty while running.
	Outcome      string
	ErrorCode    string
	ErrorMessage string // as shown to the agent
	ErrorDetail  string // internal cause, recorded only
	Result       json.RawMessage
	// Detected names the value detectors that masked something.
	Detected   []string
	Count      int64
	Truncated  bool
	StartedAt  time.Time
	EndedAt    time.Time
	DurationMS float64
	// Status is "running" if only the start was recorded, else "finished".
	Status string
}

// Call statuses.
const (
	StatusRunning  = "running"
	StatusFinished = "finished"
)

// FoldSession applies one session record to sum.
func FoldSession(sum *SessionSummary, kind, body string) error {
	var b SessionJSON
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return fmt.Errorf("decoding %s record of session %s: %w", kind, sum.ID, err)
	}
	switch kind {
	case KindSessionStart:
		sum.ID = b.ID
		sum.Transport = b.Transport
		sum.ClientName = b.ClientName
		sum.ClientVersion = b.ClientVersion
		sum.ProtocolVersion = b.ProtocolVersion
		sum.Caller = CallerFromJSON(b.Caller)
		sum.StartedAt = ParseTime(b.StartedAt)
	case KindSessionUpdate:
		sum.ClientName = cmp.Or(b.ClientName, sum.ClientName)
		sum.ClientVersion = cmp.Or(b.ClientVersion, sum.ClientVersion)
		sum.ProtocolVersion = cmp.Or(b.ProtocolVersion, sum.ProtocolVersion)
	case KindSessionEnd:
		t := ParseTime(b.EndedAt)
		sum.EndedAt = &t
	}
	return nil
}

func CallFromJSON(b *CallJSON, status string) CallRecord {
	r := CallRecord{
		ID:         b.ID,
		SessionID:  b.SessionID,
		Tool:       b.Tool,
		Caller:     CallerFromJSON(b.Caller),
		Args:       b.Args,
		Risk:       b.Risk,
		Outcome:    b.Outcome,
		Result:     b.Result,
		Detected:   b.Detected,
		Count:      b.Count,
		Truncated:  b.Truncated,
		StartedAt:  ParseTime(b.StartedAt),
		EndedAt:    ParseTime(b.EndedAt),
		DurationMS: b.DurationMS,
		Status:     status,
	}
	if a := b.Action; a != nil {
		r.Backend, r.Kind, r.Statement, r.Purpose, r.Functions = a.Backend, a.Kind, a.Statement, a.Purpose, a.Functions
		for _, op := range a.Ops {
			r.Ops = append(r.Ops, warden.Op{Verb: op.Verb, Object: op.Object, Unfiltered: op.Unfiltered})
		}
	}
	if a := b.Approval; a != nil {
		r.Hash = b.Hash
		r.Approval = &warden.CallApproval{ID: a.ID, Rule: a.Rule, Via: a.Via, Status: warden.ApprovalStatus(a.Status),
			DecidedBy: a.DecidedBy, Reason: a.Reason, Note: a.Note}
	}
	if f := b.Flow; f != nil {
		r.Flow = &warden.CallFlow{Rule: f.Rule, SourceCall: f.SourceCall, Argument: f.Argument}
	}
	if d := b.Decision; d != nil {
		r.Decision = &warden.Decision{Effect: warden.Effect(d.Effect), Rule: d.Rule, Reasons: d.Reasons, Allowed: d.Allowed}
	}
	if e := b.Error; e != nil {
		r.ErrorCode, r.ErrorMessage, r.ErrorDetail = e.Code, e.Message, e.Detail
	}
	return r
}

func CallerFromJSON(c *CallerJSON) warden.Caller {
	if c == nil {
		return warden.Caller{}
	}
	return warden.Caller{Subject: c.Subject, Issuer: c.Issuer, Email: c.Email, Groups: c.Groups, Method: c.Method}
}

// ParseTime reads a recorded time; "" (and anything unparsable, which this
// package never writes) is the zero time.
func ParseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
