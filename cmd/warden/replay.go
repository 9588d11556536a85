package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// Transcript is a session as `warden sessions replay --json` prints it:
// who, which client, and each call in order with what was asked, what
// policy decided and why, and how it ended. Arguments are as recorded
// (with detected values masked); results are summarised, not repeated.
type Transcript struct {
	Session TranscriptSession `json:"session"`
	Calls   []TranscriptCall  `json:"calls"`
}

// TranscriptSession is the session part of a Transcript.
type TranscriptSession struct {
	ID              string               `json:"id"`
	Transport       string               `json:"transport,omitempty"`
	Client          *clientJSON          `json:"client,omitempty"`
	ProtocolVersion string               `json:"protocol_version,omitempty"`
	Caller          *recorder.CallerJSON `json:"caller,omitempty"`
	StartedAt       string               `json:"started_at,omitempty"`
	// EndedAt is empty while the session is open, or if warden stopped
	// before recording its end.
	EndedAt string `json:"ended_at,omitempty"`
	Calls   int    `json:"calls"`
	Denied  int    `json:"denied"`
	Failed  int    `json:"failed"`
}

type clientJSON struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// TranscriptCall is one call of a Transcript.
type TranscriptCall struct {
	N    int    `json:"n"`
	ID   string `json:"id"`
	Tool string `json:"tool"`
	At   string `json:"at"`
	// OffsetMS is the time since the session started.
	OffsetMS float64 `json:"offset_ms"`
	// Caller is set when it differs from the session's.
	Caller     *recorder.CallerJSON   `json:"caller,omitempty"`
	Arguments  json.RawMessage        `json:"arguments,omitempty"`
	Purpose    string                 `json:"purpose,omitempty"`
	Backend    string                 `json:"backend,omitempty"`
	Kind       string                 `json:"kind,omitempty"`
	Risk       string                 `json:"risk,omitempty"`
	Operations []string               `json:"operations,omitempty"`
	Functions  []string               `json:"functions,omitempty"`
	Decision   *recorder.DecisionJSON `json:"decision,omitempty"`
	// Approval is what became of the approval the call needed, if any.
	Approval *recorder.CallApprovalJSON `json:"approval,omitempty"`
	// Status is "finished", or "running" if only the start was recorded.
	Status     string              `json:"status"`
	Outcome    string              `json:"outcome,omitempty"`
	Error      *recorder.ErrorJSON `json:"error,omitempty"`
	Result     *resultSummary      `json:"result,omitempty"`
	Masked     []string            `json:"masked,omitempty"`
	DurationMS float64             `json:"duration_ms,omitempty"`
	EndedAt    string              `json:"ended_at,omitempty"`
}

// resultSummary describes a recorded result without repeating it.
type resultSummary struct {
	Rows      int64  `json:"rows"`
	Truncated bool   `json:"truncated,omitempty"`
	Bytes     int    `json:"bytes"`
	Command   string `json:"command,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// NewTranscript builds the transcript of a session from what Session
// returns.
func NewTranscript(s *recorder.SessionSummary, calls []recorder.CallRecord) *Transcript {
	t := &Transcript{Session: TranscriptSession{
		ID: s.ID, Transport: s.Transport, ProtocolVersion: s.ProtocolVersion,
		Caller: callerRef(&s.Caller), StartedAt: timeString(s.StartedAt),
		Calls: s.Calls, Denied: s.Denied, Failed: s.Failed,
	}, Calls: []TranscriptCall{}}
	if s.ClientName != "" || s.ClientVersion != "" {
		t.Session.Client = &clientJSON{Name: s.ClientName, Version: s.ClientVersion}
	}
	if s.EndedAt != nil {
		t.Session.EndedAt = timeString(*s.EndedAt)
	}
	for i, c := range calls {
		tc := TranscriptCall{
			N: i + 1, ID: c.ID, Tool: c.Tool, At: timeString(c.StartedAt),
			Arguments: c.Args, Purpose: c.Purpose, Backend: c.Backend, Kind: c.Kind, Risk: c.Risk,
			Functions: c.Functions, Status: c.Status, Outcome: c.Outcome, Masked: c.Detected,
		}
		if !s.StartedAt.IsZero() && !c.StartedAt.IsZero() {
			tc.OffsetMS = float64(c.StartedAt.Sub(s.StartedAt)) / float64(time.Millisecond)
		}
		if c.Caller.Subject != s.Caller.Subject || c.Caller.Method != s.Caller.Method {
			tc.Caller = callerRef(&c.Caller)
		}
		for _, op := range c.Ops {
			tc.Operations = append(tc.Operations, op.String())
		}
		if d := c.Decision; d != nil {
			tc.Decision = &recorder.DecisionJSON{Effect: string(d.Effect), Rule: d.Rule, Reasons: d.Reasons, Allowed: d.Allowed}
		}
		if a := c.Approval; a != nil {
			tc.Approval = &recorder.CallApprovalJSON{ID: a.ID, Rule: a.Rule, Via: a.Via, Status: string(a.Status),
				DecidedBy: a.DecidedBy, Reason: a.Reason, Note: a.Note}
		}
		if c.ErrorCode != "" {
			tc.Error = &recorder.ErrorJSON{Code: c.ErrorCode, Message: c.ErrorMessage, Detail: c.ErrorDetail}
		}
		if c.Status == recorder.StatusFinished {
			tc.DurationMS = c.DurationMS
			tc.EndedAt = timeString(c.EndedAt)
			if c.Result != nil {
				tc.Result = summarise(&c)
			}
		}
		t.Calls = append(t.Calls, tc)
	}
	return t
}

func callerRef(c *warden.Caller) *recorder.CallerJSON {
	if c.Subject == "" && c.Method == "" {
		return nil
	}
	return recorder.CallerToJSON(c)
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return recorder.FormatTime(t)
}

// summarise reads the few fields of a result that say how it went.
func summarise(c *recorder.CallRecord) *resultSummary {
	r := &resultSummary{Rows: c.Count, Truncated: c.Truncated, Bytes: len(c.Result)}
	var peek struct {
		Command string `json:"command"`
		Status  int    `json:"status"`
	}
	if json.Unmarshal(c.Result, &peek) == nil {
		r.Command, r.Status = peek.Command, peek.Status
	}
	return r
}

// WriteReplayJSON writes the transcript of a session as indented JSON.
func WriteReplayJSON(w io.Writer, s *recorder.SessionSummary, calls []recorder.CallRecord) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(NewTranscript(s, calls))
}

// WriteReplay writes the transcript of a session for a reader in a
// terminal, in the order things happened.
func WriteReplay(w io.Writer, s *recorder.SessionSummary, calls []recorder.CallRecord) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "replay of session %s\n", clean(s.ID))
	field(ew, "", "who", caller(&s.Caller))
	if c := sessionClient(s); c != "" || s.Transport != "" {
		c = cmp.Or(c, "unknown client")
		if s.ProtocolVersion != "" {
			c += ", protocol " + s.ProtocolVersion
		}
		if s.Transport != "" {
			c += ", over " + s.Transport
		}
		field(ew, "", "client", c)
	}
	field(ew, "", "started", longTime(s.StartedAt))
	if s.EndedAt != nil {
		field(ew, "", "ended", fmt.Sprintf("%s, after %s", longTime(*s.EndedAt), s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond)))
	} else {
		field(ew, "", "ended", "no end recorded (open, or warden stopped first)")
	}
	field(ew, "", "calls", fmt.Sprintf("%d: %d denied, %d failed", s.Calls, s.Denied, s.Failed))

	offset := func(t time.Time) string {
		if s.StartedAt.IsZero() || t.IsZero() {
			return ""
		}
		return fmt.Sprintf(" (+%s)", t.Sub(s.StartedAt).Round(time.Millisecond))
	}
	const ind = "    "
	for i, c := range calls {
		fmt.Fprintf(ew, "\n[%d] %s%s  %s  %s\n", i+1, longTime(c.StartedAt), offset(c.StartedAt), cell(c.Tool), cell(c.ID))
		if c.Caller.Subject != s.Caller.Subject || c.Caller.Method != s.Caller.Method {
			field(ew, ind, "who", caller(&c.Caller))
		}
		field(ew, ind, "arguments", indentJSON(c.Args))
		field(ew, ind, "purpose", c.Purpose)
		if c.Backend != "" {
			action := fmt.Sprintf("%s on %s", cmp.Or(c.Kind, "unclassified"), c.Backend)
			if len(c.Ops) > 0 {
				ops := make([]string, len(c.Ops))
				for i, op := range c.Ops {
					ops[i] = op.String()
				}
				action += ": " + strings.Join(ops, ", ")
			}
			if len(c.Functions) > 0 {
				action += "; functions " + strings.Join(c.Functions, ", ")
			}
			field(ew, ind, "action", action+"; risk "+cmp.Or(c.Risk, "unclassified"))
		}
		if d := c.Decision; d != nil {
			verdict := map[string]string{"allow": "allowed", "deny": "denied"}[string(d.Effect)]
			field(ew, ind, "decision", fmt.Sprintf("%s by %s", cmp.Or(verdict, string(d.Effect)), cmp.Or(d.Rule, "(no rule named)")))
			for _, r := range d.Reasons {
				field(ew, ind, "reason", r)
			}
			if len(d.Allowed) > 0 {
				field(ew, ind, "allowed", strings.Join(d.Allowed, "; "))
			}
		} else {
			field(ew, ind, "decision", "none recorded")
		}
		if a := c.Approval; a != nil {
			field(ew, ind, "approval", describeCallApproval(a))
			field(ew, ind, "note", a.Note)
		}
		field(ew, ind, "outcome", outcome(&c))
		if c.ErrorCode != "" {
			field(ew, ind, "detail", c.ErrorDetail)
		}
		if len(c.Detected) > 0 {
			field(ew, ind, "masked", strings.Join(c.Detected, ", ")+" (value detectors)")
		}
		if c.Status == recorder.StatusFinished {
			field(ew, ind, "took", time.Duration(c.DurationMS*float64(time.Millisecond)).Round(time.Microsecond).String())
		}
	}
	if s.EndedAt != nil {
		fmt.Fprintf(ew, "\n%s%s  session ended\n", longTime(*s.EndedAt), offset(*s.EndedAt))
	}
	return ew.err
}

// outcome says in a line how a call ended.
func outcome(c *recorder.CallRecord) string {
	if c.Status == recorder.StatusRunning {
		return "none recorded: still running, or warden stopped before it finished"
	}
	var b strings.Builder
	b.WriteString(cmp.Or(c.Outcome, "unknown"))
	if c.ErrorCode != "" {
		if c.ErrorCode != c.Outcome {
			fmt.Fprintf(&b, " (%s)", c.ErrorCode)
		}
		fmt.Fprintf(&b, ": %s", c.ErrorMessage)
	}
	if c.Result != nil {
		r := summarise(c)
		fmt.Fprintf(&b, ": %d rows/objects", r.Rows)
		if r.Truncated {
			b.WriteString(", truncated at the configured cap")
		}
		if r.Command != "" {
			fmt.Fprintf(&b, ", %s", r.Command)
		}
		if r.Status != 0 {
			fmt.Fprintf(&b, ", status %d", r.Status)
		}
		fmt.Fprintf(&b, " (%d bytes recorded)", r.Bytes)
	}
	return b.String()
}

// indentJSON returns recorded JSON indented for reading, or as it is if
// it is not JSON.
func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
