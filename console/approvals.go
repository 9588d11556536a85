package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
)

// approvalView is one request as the page shows it. Every string the agent
// or a person wrote has gone through warden.Printable, as in the CLI; the
// template escapes it for HTML besides.
type approvalView struct {
	ID, Rule, Via, Tool, Backend, Kind string
	Requester                          string
	Purpose                            string
	Statement                          string
	Params                             []string
	Ops                                []string
	Rows                               string
	Status                             string
	Created, Expires                   string
	ExpiresUnix                        int64
	TimeLeft                           string
	DecidedBy, DecidedAt, Reason       string
	UsedBy                             string
	// CanDecide shows Approve and Deny; WhyNot says why they are not
	// shown to a reviewer who sees a pending request.
	CanDecide bool
	WhyNot    string
	// Preview is the write preview, when the tool made one (preview.go).
	Preview *previewView
}

// historyLimit bounds the decided and expired requests listed.
const historyLimit = 50

// approvalsData lists what s may see: pending reviewers' requests and the
// recent history, each either decidable by s or requested by s. A request
// neither is hidden: its statement and parameters are for its reviewers.
func (c *Console) approvalsData(r *http.Request, s *session, only string) (pending, done []approvalView, err error) {
	now := c.opts.Clock()
	// Every pending request, however many newer ones there are, then the
	// recent history.
	open, err := c.opts.Approvals.Approvals(r.Context(), warden.ApprovalFilter{Status: warden.ApprovalPending})
	if err != nil {
		return nil, nil, err
	}
	recent, err := c.opts.Approvals.Approvals(r.Context(), warden.ApprovalFilter{Limit: 500})
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, a := range append(open, recent...) {
		if seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		if only != "" && a.ID != only {
			continue
		}
		if !c.maySee(a, s.caller) {
			continue
		}
		v := view(a, now, s.caller)
		if a.Effective(now) == warden.ApprovalPending {
			pending = append(pending, v)
		} else if len(done) < historyLimit {
			done = append(done, v)
		}
	}
	return pending, done, nil
}

func (c *Console) maySee(a *warden.Approval, who *warden.Caller) bool {
	if a.Approvers.Includes(who) {
		return true
	}
	return a.Requester != nil && who != nil && a.Requester.Subject == who.Subject && a.Requester.Issuer == who.Issuer
}

func view(a *warden.Approval, now time.Time, who *warden.Caller) approvalView {
	p := warden.Printable
	v := approvalView{
		ID: p(a.ID), Rule: p(a.Rule), Via: a.Via, Tool: p(a.Tool), Backend: p(a.Backend), Kind: p(a.Kind),
		Requester: callerText(a.Requester), Purpose: p(a.Purpose), Statement: printableLines(a.Statement),
		Status: string(a.Effective(now)), Created: stamp(a.CreatedAt), Expires: stamp(a.ExpiresAt), ExpiresUnix: a.ExpiresAt.Unix(),
		Reason: p(a.Reason), UsedBy: p(a.UsedBy),
	}
	for _, prm := range a.Params {
		v.Params = append(v.Params, p(prm))
	}
	for _, op := range a.Ops {
		v.Ops = append(v.Ops, p(op.Describe()))
	}
	if a.EstimatedRows != nil {
		v.Rows = fmt.Sprint(*a.EstimatedRows)
	}
	v.Preview = previewOf(a.Preview, a.Approvers.Includes(who))
	if a.DecidedBy != nil {
		v.DecidedBy = callerText(a.DecidedBy)
	}
	if !a.DecidedAt.IsZero() {
		v.DecidedAt = stamp(a.DecidedAt)
	}
	if left := a.ExpiresAt.Sub(now); left > 0 {
		v.TimeLeft = left.Truncate(time.Second).String()
	}
	if err := approvals.MayDecide(a, who, now); err != nil {
		v.WhyNot = warden.AsError(err).Message
	} else {
		v.CanDecide = true
	}
	return v
}

func (c *Console) approvalsPage(w http.ResponseWriter, r *http.Request, s *session) {
	only := r.PathValue("id")
	pending, done, err := c.approvalsData(r, s, only)
	if err != nil {
		c.renderError(w, r, s, http.StatusServiceUnavailable, "The approval store cannot be read now.")
		return
	}
	c.render(w, http.StatusOK, "approvals", c.pageData(r, s, map[string]any{"Pending": pending, "Done": done, "Only": only}))
}

// approvalsLive is the list alone, which the page's script fetches to
// update itself without a reload.
func (c *Console) approvalsLive(w http.ResponseWriter, r *http.Request, s *session) {
	pending, done, err := c.approvalsData(r, s, r.URL.Query().Get("id"))
	if err != nil {
		c.refuse(w, http.StatusServiceUnavailable, "the approval store cannot be read now")
		return
	}
	c.render(w, http.StatusOK, "approval-list", c.pageData(r, s, map[string]any{"Pending": pending, "Done": done}))
}

// decide takes a reviewer's decision through the approvals service, the
// same path as `warden approvals approve|deny`, which refuses the
// requester and anyone not among the rule's approvers whatever the page
// showed.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var approve bool
	switch r.PostFormValue("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		c.refuse(w, http.StatusBadRequest, "decision must be approve or deny")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	a, err := c.opts.Decider.Decide(r.Context(), s.caller, id, approve, reason)
	var msg string
	status := http.StatusSeeOther
	if err != nil {
		e := warden.AsError(err)
		msg = "Not recorded: " + e.Message
		if e.Code == warden.Unavailable {
			msg = "Not recorded: the approval store cannot be written now."
		}
		var we *warden.Error
		if errors.As(err, &we) && we.Code == warden.Denied {
			status = http.StatusForbidden
		}
	} else {
		verb := "Denied"
		if approve {
			verb = "Approved"
		}
		msg = fmt.Sprintf("%s request %s.", verb, warden.Printable(a.ID))
		c.opts.Log.Info("console decision", "approval", warden.Printable(a.ID), "by", warden.Printable(s.caller.Subject), "approve", approve)
	}
	if status != http.StatusSeeOther {
		pending, done, lerr := c.approvalsData(r, s, "")
		if lerr != nil {
			c.refuse(w, status, msg)
			return
		}
		c.render(w, status, "approvals", c.pageData(r, s, map[string]any{"Pending": pending, "Done": done, "Error": msg}))
		return
	}
	c.sessions.setFlash(s, msg)
	http.Redirect(w, r, "/console/approvals", http.StatusSeeOther)
}

func callerText(c *warden.Caller) string {
	if c == nil {
		return "(unknown)"
	}
	s := c.Subject
	if c.Email != "" && c.Email != c.Subject {
		s += " <" + c.Email + ">"
	}
	if c.Method == "local" {
		s += " (local identity)"
	}
	return warden.Printable(s)
}

// printableLines keeps a statement's line breaks and makes each line
// printable.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = warden.Printable(strings.TrimSuffix(l, "\r"))
	}
	return strings.Join(lines, "\n")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
