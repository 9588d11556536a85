package main

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

// Recorded text comes from agents and clients (statements, purposes, client
// names), so everything written to a terminal goes through clean first: an
// escape sequence or a bidi override in a statement must not be able to
// rewrite what a security engineer sees.

// WriteSessionList writes sessions as an aligned table, one per line.
func WriteSessionList(w io.Writer, list []recorder.SessionSummary) error {
	if len(list) == 0 {
		_, err := io.WriteString(w, "no sessions recorded\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTARTED\tENDED\tSUBJECT\tCLIENT\tTRANSPORT\tCALLS\tDENIED\tFAILED")
	for _, s := range list {
		ended := "open"
		if s.EndedAt != nil {
			ended = shortTime(*s.EndedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n",
			cell(s.ID), shortTime(s.StartedAt), ended, cell(s.Caller.Subject),
			cell(sessionClient(&s)), cell(s.Transport), s.Calls, s.Denied, s.Failed)
	}
	return tw.Flush()
}

// WriteSession writes one session and its calls for a reader in a terminal:
// who called, what each call did, what policy decided and why, and how it
// ended.
func WriteSession(w io.Writer, s *recorder.SessionSummary, calls []recorder.CallRecord) error {
	ew := &errWriter{w: w}
	field(ew, "", "session", s.ID)
	field(ew, "", "transport", s.Transport)
	if c := sessionClient(s); c != "" {
		if s.ProtocolVersion != "" {
			c += ", protocol " + s.ProtocolVersion
		}
		field(ew, "", "client", c)
	}
	field(ew, "", "caller", caller(&s.Caller))
	field(ew, "", "started", longTime(s.StartedAt))
	if s.EndedAt != nil {
		field(ew, "", "ended", fmt.Sprintf("%s (after %s)", longTime(*s.EndedAt), s.EndedAt.Sub(s.StartedAt).Round(time.Second)))
	} else {
		field(ew, "", "ended", "no (open, or warden stopped without recording the end)")
	}
	field(ew, "", "calls", fmt.Sprintf("%d: %d denied, %d failed", s.Calls, s.Denied, s.Failed))

	for i, c := range calls {
		state := strings.ToUpper(c.Outcome)
		if c.Status == recorder.StatusRunning {
			state = "RUNNING"
		}
		fmt.Fprintf(ew, "\n#%d  %s  %s  %s\n", i+1, cell(c.Tool), state, cell(c.ID))
		const ind = "    "
		when := longTime(c.StartedAt)
		if c.Status == recorder.StatusFinished {
			when += fmt.Sprintf(" (%s)", time.Duration(c.DurationMS*float64(time.Millisecond)).Round(time.Microsecond))
		}
		field(ew, ind, "at", when)
		if c.Caller.Subject != s.Caller.Subject || c.Caller.Method != s.Caller.Method {
			field(ew, ind, "caller", caller(&c.Caller))
		}
		if c.Backend != "" {
			field(ew, ind, "backend", fmt.Sprintf("%s (%s), risk %s", c.Backend, c.Kind, cmp.Or(c.Risk, "unclassified")))
		}
		field(ew, ind, "purpose", c.Purpose)
		field(ew, ind, "statement", c.Statement)
		if len(c.Ops) > 0 {
			ops := make([]string, len(c.Ops))
			for i, op := range c.Ops {
				ops[i] = op.String()
			}
			field(ew, ind, "ops", strings.Join(ops, ", "))
		}
		if len(c.Functions) > 0 {
			field(ew, ind, "functions", strings.Join(c.Functions, ", "))
		}
		if d := c.Decision; d != nil {
			field(ew, ind, "decision", fmt.Sprintf("%s by %s", d.Effect, cmp.Or(d.Rule, "(no rule named)")))
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
		if f := c.Flow; f != nil {
			flow := f.Rule
			if f.SourceCall != "" {
				flow += ": data from call " + f.SourceCall + " in argument " + f.Argument
			}
			field(ew, ind, "flow", flow)
		}
		if c.ErrorCode != "" {
			field(ew, ind, "error", c.ErrorCode+": "+c.ErrorMessage)
			field(ew, ind, "detail", c.ErrorDetail)
		}
		if c.Status == recorder.StatusFinished && c.Result != nil {
			res := fmt.Sprintf("%d rows/objects, %d bytes", c.Count, len(c.Result))
			if c.Truncated {
				res += ", truncated at the configured cap"
			}
			field(ew, ind, "result", res)
		}
		field(ew, ind, "args", string(c.Args))
	}
	return ew.err
}

// field writes "label  value" with the label padded to a fixed width; a
// multi-line value continues under the first line. Empty values are
// skipped.
func field(w io.Writer, indent, label, value string) {
	if value == "" {
		return
	}
	const width = 10
	lines := strings.Split(strings.TrimRight(value, "\n"), "\n")
	fmt.Fprintf(w, "%s%-*s %s\n", indent, width, label, clean(strings.TrimSuffix(lines[0], "\r")))
	for _, l := range lines[1:] {
		fmt.Fprintf(w, "%s%*s %s\n", indent, width, "", clean(strings.TrimSuffix(l, "\r")))
	}
}

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func sessionClient(s *recorder.SessionSummary) string {
	return strings.TrimSpace(s.ClientName + " " + s.ClientVersion)
}

func caller(c *warden.Caller) string {
	if c.Subject == "" {
		return "none (unauthenticated)"
	}
	s := c.Subject + " via " + cmp.Or(c.Method, "unknown method")
	if c.Issuer != "" {
		s += " (" + c.Issuer + ")"
	}
	if c.Email != "" && c.Email != c.Subject {
		s += ", email " + c.Email
	}
	if len(c.Groups) > 0 {
		s += ", groups " + strings.Join(c.Groups, ", ")
	}
	return s
}

func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func longTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// clean is warden.Printable: recorded text made safe for a terminal.
func clean(s string) string { return warden.Printable(s) }

// errWriter remembers the first write error, so the rendering code can
// write freely and report once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// describeCallApproval says in one line what became of a call's approval.
func describeCallApproval(a *warden.CallApproval) string {
	s := fmt.Sprintf("%s under rule %s (%s): %s", cmp.Or(a.ID, "none"), a.Rule, a.Via, a.Status)
	if a.DecidedBy != "" {
		s += ", decided by " + a.DecidedBy
	}
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return s
}

// WriteApprovalList writes approval requests as an aligned table, with
// each status as of now (a pending request past its expiry shows expired).
func WriteApprovalList(w io.Writer, list []*warden.Approval, now time.Time) error {
	if len(list) == 0 {
		_, err := io.WriteString(w, "no approval requests\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPROVAL\tSTATUS\tRULE\tREQUESTER\tBACKEND\tCREATED\tEXPIRES\tSTATEMENT")
	for _, a := range list {
		requester := ""
		if a.Requester != nil {
			requester = a.Requester.Subject
		}
		stmt, _, _ := strings.Cut(a.Statement, "\n")
		if len(stmt) > 60 {
			stmt = stmt[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(a.ID), a.Effective(now), cell(a.Rule), cell(requester),
			cell(a.Backend), shortTime(a.CreatedAt), shortTime(a.ExpiresAt), cell(strings.ToValidUTF8(stmt, "")))
	}
	return tw.Flush()
}

// WriteApproval writes one approval request in full — what it covers, who
// asked and why, who may decide — and its recorded history.
func WriteApproval(w io.Writer, a *warden.Approval, history []recorder.ApprovalEvent, now time.Time) error {
	ew := &errWriter{w: w}
	field(ew, "", "approval", a.ID)
	status := string(a.Effective(now))
	if status != string(a.Status) {
		status += " (recorded as " + string(a.Status) + ")"
	}
	field(ew, "", "status", status)
	field(ew, "", "rule", a.Rule)
	if a.Requester != nil {
		field(ew, "", "requester", caller(a.Requester))
	}
	var who []string
	switch a.Via {
	case warden.ViaUser:
		who = append(who, "the calling user, in the client")
	case warden.ViaBrowser:
		who = append(who, "the calling user, in the browser (the console)")
	}
	if len(a.Approvers.Groups) > 0 {
		who = append(who, "groups "+strings.Join(a.Approvers.Groups, ", "))
	}
	if len(a.Approvers.Subjects) > 0 {
		who = append(who, "subjects "+strings.Join(a.Approvers.Subjects, ", "))
	}
	field(ew, "", "decided by", strings.Join(who, "; or "))
	field(ew, "", "call", fmt.Sprintf("%s on %s (%s), requested in call %s", a.Tool, a.Backend, a.Kind, a.CallID))
	field(ew, "", "held for", a.Why)
	field(ew, "", "purpose", a.Purpose)
	field(ew, "", "statement", a.Statement)
	for i, p := range a.Params {
		field(ew, "", fmt.Sprintf("$%d", i+1), p)
	}
	if len(a.Ops) > 0 {
		ops := make([]string, len(a.Ops))
		for i, op := range a.Ops {
			ops[i] = op.Describe()
		}
		field(ew, "", "touches", strings.Join(ops, ", "))
	}
	if a.EstimatedRows != nil {
		field(ew, "", "est. rows", strconv.FormatInt(*a.EstimatedRows, 10))
	}
	writePreview(ew, a.Preview)
	field(ew, "", "call hash", a.CallHash)
	field(ew, "", "created", longTime(a.CreatedAt))
	field(ew, "", "expires", longTime(a.ExpiresAt))
	if a.DecidedBy != nil {
		field(ew, "", "decision", fmt.Sprintf("%s by %s at %s", a.Status, caller(a.DecidedBy), longTime(a.DecidedAt)))
	}
	field(ew, "", "reason", a.Reason)
	if a.UsedBy != "" {
		field(ew, "", "released", fmt.Sprintf("call %s at %s", a.UsedBy, longTime(a.UsedAt)))
	}
	if len(history) > 0 {
		fmt.Fprintln(ew, "\nrecorded history:")
		for _, ev := range history {
			line := fmt.Sprintf("#%d %s ", ev.Seq, longTime(ev.At))
			if ev.Kind == "request" {
				line += "requested"
			} else {
				line += ev.From + " → " + ev.To
			}
			if ev.By != nil {
				line += " by " + ev.By.Subject
			}
			if ev.CallID != "" {
				line += " (call " + ev.CallID + ")"
			}
			if ev.Reason != "" {
				line += ": " + ev.Reason
			}
			field(ew, "  ", "", line)
		}
	}
	return ew.err
}
