package console

import (
	"context"
	"errors"
	"net/http"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
)

// Confirmer records the calling user's own answer to a call held for
// their confirmation in the browser (approvals.Service).
type Confirmer interface {
	// ConfirmInBrowser confirms or declines request id as user; it returns
	// a coded *warden.Error when the answer was not taken (someone other
	// than the requester, not pending, not a browser confirmation).
	ConfirmInBrowser(ctx context.Context, user *warden.Caller, id string, confirm bool) (*warden.Approval, error)
}

// confirmPage shows the request behind a URL-mode elicitation to the
// user who made the call, signed in through the identity provider, with
// Confirm and Decline. Anyone else learns only that it is not theirs: the
// statement is not shown to them.
func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showConfirm(w, r, s, http.StatusOK, "")
}

func (c *Console) showConfirm(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	id := r.PathValue("id")
	a, err := c.opts.Approvals.Approval(r.Context(), id)
	switch {
	case errors.Is(err, warden.ErrApprovalNotFound):
		c.renderError(w, r, s, http.StatusNotFound, "There is no such request.")
		return
	case err != nil:
		c.renderError(w, r, s, http.StatusServiceUnavailable, "The approval store cannot be read now.")
		return
	}
	now := c.opts.Clock()
	if a.Via != warden.ViaBrowser || a.Requester == nil || s.caller == nil ||
		a.Requester.Subject != s.caller.Subject || a.Requester.Issuer != s.caller.Issuer {
		c.renderError(w, r, s, http.StatusForbidden, "This request is not yours to confirm: only the user who made the call may confirm it, signed in as themselves.")
		return
	}
	d := map[string]any{"Req": view(a, now, s.caller), "Error": msg}
	if err := approvals.MayConfirm(a, s.caller, now); err != nil {
		d["WhyNot"] = warden.AsError(err).Message
	} else {
		d["CanConfirm"] = true
	}
	c.render(w, status, "confirm", c.pageData(r, s, d))
}

// confirm takes the user's answer through approvals.Service, which
// refuses anyone but the requester whatever the page showed.
func (c *Console) confirm(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var yes bool
	switch r.PostFormValue("answer") {
	case "confirm":
		yes = true
	case "decline":
	default:
		c.refuse(w, http.StatusBadRequest, "answer must be confirm or decline")
		return
	}
	if c.opts.Confirmer == nil {
		c.refuse(w, http.StatusServiceUnavailable, "this console cannot take confirmations")
		return
	}
	a, err := c.opts.Confirmer.ConfirmInBrowser(r.Context(), s.caller, id, yes)
	if err != nil {
		e := warden.AsError(err)
		status, msg := http.StatusForbidden, "Not recorded: "+e.Message
		switch e.Code {
		case warden.Unavailable:
			status, msg = http.StatusServiceUnavailable, "Not recorded: the approval store cannot be written now."
		case warden.Invalid:
			status = http.StatusNotFound
		}
		c.showConfirm(w, r, s, status, msg)
		return
	}
	msg := "Declined. The call will not run."
	if yes {
		msg = "Confirmed. Your agent's client can now continue; the call runs once."
	}
	c.opts.Log.Info("console confirmation", "approval", warden.Printable(a.ID), "by", warden.Printable(s.caller.Subject), "confirm", yes)
	c.sessions.setFlash(s, msg)
	http.Redirect(w, r, "/console/confirm/"+id, http.StatusSeeOther)
}
