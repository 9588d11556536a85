package warden

import (
	"encoding/json"
	"time"
)

// Call is one tool call as it moves through the pipeline, and as it is
// recorded.
type Call struct {
	ID        string          `json:"id"`
	SessionID string          `json:"session_id,omitempty"`
	Caller    *Caller         `json:"caller,omitempty"`
	Tool      string          `json:"tool"`
	Args      json.RawMessage `json:"args,omitempty"`
	Action    *Action         `json:"action,omitempty"`
	Risk      Risk            `json:"risk,omitempty"`
	Decision  *Decision       `json:"decision,omitempty"`
	// Hash identifies the exact call (see CallHash); set when approval
	// rules are configured.
	Hash string `json:"hash,omitempty"`
	// Approval is what became of the approval this call needed, if any.
	Approval *CallApproval `json:"approval,omitempty"`
	// Flow says which flow rule or budget refused or held the call.
	Flow   *CallFlow `json:"flow,omitempty"`
	Result *Result   `json:"-"`
	// Detected names the value detectors that masked something in the
	// result, the error or the recorded arguments.
	Detected []string `json:"detected,omitempty"`
	// Err is the error returned to the agent, if any.
	Err       *Error    `json:"-"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
}

// Outcome summarises how a call ended, for the recording.
func (c *Call) Outcome() string {
	switch {
	case c.Err == nil:
		return "ok"
	case c.Err.Code == Denied, c.Err.Code == Unauthenticated:
		return "denied"
	case c.Err.Code == NeedsApproval:
		return "pending"
	default:
		return "error"
	}
}
