package approvals

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// ConfirmPath is where the console shows a request the calling user
// confirms in the browser: ConfirmPath + id.
const ConfirmPath = "/console/confirm/"

// ConfirmURL is the console page on which the calling user confirms
// request id, or "" without a console base URL.
func (s *Service) ConfirmURL(id string) string {
	if s.ConsoleURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.ConsoleURL, "/") + ConfirmPath + id
}

// browser handles a call held by a rule the calling user confirms in the
// browser (approvers: {user: browser}). The first call creates the request
// and answers with a URL-mode question pointing at the console; a later
// call with the same arguments (a retry, the client's answer, or
// approval_id) finds that request and runs once the user confirmed it in
// the console, signed in as the same principal. Nothing the client sends
// confirms it: the client's answer, its requestState and approval_id only
// say which request to look at.
func (s *Service) browser(ctx context.Context, c *warden.Call, r *Rule, est *estimate, why string) error {
	if s.ConsoleURL == "" {
		// Configuration refuses this; fail closed all the same.
		return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
			Message: fmt.Sprintf("approval rule %q needs the calling user to confirm in the console, but no console base URL is configured; the call did not run", r.Name)}
	}
	appr, note, err := s.findBrowser(ctx, c, r)
	if err != nil {
		return err
	}
	if appr == nil {
		appr = s.newApproval(c, r, warden.ViaBrowser, est, why)
		if err := s.Store.CreateApproval(ctx, appr); err != nil {
			return warden.Wrap(warden.Unavailable, err, "the call needs approval, but the approval request could not be recorded, so it was refused")
		}
		c.Approval = &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaBrowser, Status: warden.ApprovalPending, Note: note}
		return s.askBrowser(c, r, appr)
	}
	return s.waitBrowser(ctx, c, r, appr, note)
}

// askBrowser is the URL-mode question for appr.
func (s *Service) askBrowser(c *warden.Call, r *Rule, appr *warden.Approval) error {
	st := seal(s.Key, requestState{ID: appr.ID, Sub: c.Caller.Subject, Iss: c.Caller.Issuer, Tool: c.Tool,
		Hash: c.Hash, Rule: r.Name, Exp: appr.ExpiresAt.Unix()})
	u := s.ConfirmURL(appr.ID)
	return &warden.Error{Code: warden.NeedsApproval, Rule: ruleRef(r),
		Message: fmt.Sprintf("approval rule %q needs the calling user to confirm this exact call in the browser: open %s, sign in, and confirm; "+
			"then call again with exactly the same arguments (it runs once). The request expires at %s.",
			r.Name, u, appr.ExpiresAt.UTC().Format(time.RFC3339)),
		Pending: &warden.Pending{ApprovalID: appr.ID, Rule: r.Name, ExpiresAt: appr.ExpiresAt,
			Ask: &warden.Ask{Message: fmt.Sprintf("Confirm this %s call in your browser (warden approval %s, rule %q).", c.Tool, appr.ID, r.Name),
				State: st, URL: u, ElicitationID: appr.ID}}}
}

// findBrowser returns the request a call continues, or nil when it starts
// a new one; note says what the client sent that was not taken.
func (s *Service) findBrowser(ctx context.Context, c *warden.Call, r *Rule) (*warden.Approval, string, error) {
	var note string
	id := c.Action.ApprovalID
	if ans := warden.InteractionFrom(ctx).Answer; ans != nil && id == "" {
		st, err := open(s.Key, ans.State, s.now())
		switch {
		case err != nil:
			note = "the client sent a requestState warden did not issue, or an expired one; it was ignored"
		case st.Sub != c.Caller.Subject || st.Iss != c.Caller.Issuer || st.Tool != c.Tool || st.Hash != c.Hash || st.Rule != r.Name:
			note = "the client's requestState was issued for another principal, call or rule; it was ignored"
		default:
			id = st.ID
		}
	}
	if id != "" {
		appr, err := s.Store.Approval(ctx, id)
		switch {
		case errors.Is(err, warden.ErrApprovalNotFound):
			note = join(note, fmt.Sprintf("approval %q is not a request warden issued; it was ignored", id))
		case err != nil:
			return nil, "", storeErr(err, id)
		case !samePrincipal(appr.Requester, c.Caller) || appr.Tool != c.Tool || appr.CallHash != c.Hash || appr.Via != warden.ViaBrowser || appr.Rule != r.Name:
			note = join(note, fmt.Sprintf("approval %s does not cover this call (another principal, call or rule); it was ignored", id))
		default:
			return appr, note, nil
		}
	}
	// A retry with the same arguments: the newest request of this
	// principal for this call under this rule that is pending or
	// confirmed and not yet used.
	now := s.now()
	for _, status := range []warden.ApprovalStatus{warden.ApprovalApproved, warden.ApprovalPending} {
		list, err := s.Store.Approvals(ctx, warden.ApprovalFilter{Status: status})
		if err != nil {
			return nil, "", warden.Wrap(warden.Unavailable, err, "the approval store cannot be read, so the call was refused")
		}
		for _, a := range list {
			if a.Via == warden.ViaBrowser && a.Rule == r.Name && a.Tool == c.Tool && a.CallHash == c.Hash &&
				samePrincipal(a.Requester, c.Caller) && a.Effective(now) == status {
				return a, note, nil
			}
		}
	}
	return nil, note, nil
}

// waitBrowser follows appr until the user confirmed it in the console
// (the call runs, once), refused it, it expired or was used, or the rule's
// wait ends: then the question is put again.
func (s *Service) waitBrowser(ctx context.Context, c *warden.Call, r *Rule, appr *warden.Approval, note string) error {
	ref := func(status warden.ApprovalStatus, extra string) *warden.CallApproval {
		ca := &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaBrowser, Status: status, Reason: appr.Reason, Note: join(note, extra)}
		if appr.DecidedBy != nil {
			ca.DecidedBy = appr.DecidedBy.Subject
		}
		return ca
	}
	deadline, tick, changed, stop := s.follow(ctx, r, appr.ID)
	defer stop()
	in := warden.InteractionFrom(ctx)
	for {
		now := s.now()
		switch appr.Effective(now) {
		case warden.ApprovalApproved:
			// Confirmed in the console by the requester (ConfirmInBrowser
			// refuses anyone else); check again that it is theirs.
			if !samePrincipal(appr.DecidedBy, appr.Requester) {
				c.Approval = ref(warden.ApprovalDenied, "confirmed by someone other than the requester")
				return &warden.Error{Code: warden.Denied, Rule: ruleRef(r), Message: fmt.Sprintf("approval %s was not confirmed by the calling user; the call did not run", appr.ID)}
			}
			_, err := s.Store.ChangeApproval(ctx, warden.ApprovalChange{ID: appr.ID, From: []warden.ApprovalStatus{warden.ApprovalApproved},
				To: warden.ApprovalUsed, At: now, CallID: c.ID, Reason: "released call " + c.ID})
			if err == nil {
				c.Approval = ref(warden.ApprovalUsed, "")
				bindPreview(c, appr)
				return nil
			}
			if !errors.Is(err, warden.ErrApprovalConflict) {
				return warden.Wrap(warden.Unavailable, err, "the approval could not be recorded as used, so the call was refused")
			}
			if appr, err = s.Store.Approval(ctx, appr.ID); err != nil {
				return storeErr(err, appr.ID)
			}
			continue
		case warden.ApprovalDenied:
			c.Approval = ref(warden.ApprovalDenied, "")
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
				Message: fmt.Sprintf("the user declined this call in the browser (approval %s, rule %q); it did not run. Do not retry it unless the user asks you to.", appr.ID, r.Name)}
		case warden.ApprovalExpired:
			if appr.Status != warden.ApprovalExpired {
				if _, err := s.recordExpiry(ctx, appr, now); err != nil {
					return warden.Wrap(warden.Unavailable, err, "the approval store cannot be written, so the call was refused")
				}
			}
			c.Approval = ref(warden.ApprovalExpired, "")
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
				Message: fmt.Sprintf("approval %s expired at %s before it was confirmed and used; the call did not run. Call again to ask the user anew.",
					appr.ID, appr.ExpiresAt.UTC().Format(time.RFC3339))}
		case warden.ApprovalUsed:
			c.Approval = ref(warden.ApprovalDenied, "approval already used by call "+appr.UsedBy)
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
				Message: fmt.Sprintf("approval %s was already used by call %s: a confirmation releases one call, once. Call again to ask the user anew.", appr.ID, appr.UsedBy)}
		default: // pending
			in.Report(fmt.Sprintf("waiting for you to confirm %s in the browser: %s", c.Tool, s.ConfirmURL(appr.ID)))
		}
		select {
		case <-ctx.Done():
			c.Approval = ref(warden.ApprovalPending, "")
			return warden.Wrap(warden.Unavailable, ctx.Err(), fmt.Sprintf("the call was cancelled while it waited for confirmation %s, which is still pending", appr.ID))
		case <-deadline:
			c.Approval = ref(warden.ApprovalPending, "not confirmed in the browser yet")
			return s.askBrowser(c, r, appr)
		case <-changed:
		case <-tick:
		}
		fresh, err := s.Store.Approval(ctx, appr.ID)
		if err != nil {
			return storeErr(err, appr.ID)
		}
		appr = fresh
	}
}

// ConfirmInBrowser records the calling user's answer, given in the
// console, to request id: confirm approves it (usable once, for the rule's
// timeout), otherwise it is declined. Only the principal who made the call
// may answer, only a request to be confirmed in the browser, only while it
// is pending; anything else is Denied (Invalid for an unknown id).
func (s *Service) ConfirmInBrowser(ctx context.Context, user *warden.Caller, id string, confirm bool) (*warden.Approval, error) {
	appr, err := s.Store.Approval(ctx, id)
	switch {
	case errors.Is(err, warden.ErrApprovalNotFound):
		return nil, warden.Errorf(warden.Invalid, "there is no approval request %q", id)
	case errors.Is(err, warden.ErrApprovalForged):
		return nil, warden.Wrap(warden.Denied, err, fmt.Sprintf("request %s does not match what warden recorded (it was changed outside warden); it cannot be confirmed", id))
	case err != nil:
		return nil, warden.Wrap(warden.Unavailable, err, "the approval store cannot be read")
	}
	now := s.now()
	if err := MayConfirm(appr, user, now); err != nil {
		return appr, err
	}
	ch := warden.ApprovalChange{ID: id, From: []warden.ApprovalStatus{warden.ApprovalPending}, By: user, At: now}
	if confirm {
		ch.To, ch.Reason, ch.ExpiresAt = warden.ApprovalApproved, "confirmed in the browser by the calling user", now.Add(appr.Timeout)
		if appr.ExpiresAt.Before(ch.ExpiresAt) {
			ch.ExpiresAt = appr.ExpiresAt // a confirmation does not outlive its request
		}
	} else {
		ch.To, ch.Reason = warden.ApprovalDenied, "declined in the browser by the calling user"
	}
	decided, err := s.Store.ChangeApproval(ctx, ch)
	if errors.Is(err, warden.ErrApprovalConflict) {
		return appr, warden.Errorf(warden.Denied, "request %s was answered, or expired, a moment ago", id)
	}
	if err != nil {
		return nil, warden.Wrap(warden.Unavailable, err, "the answer could not be recorded")
	}
	return decided, nil
}

// MayConfirm returns nil when user may confirm appr in the browser now, or
// a Denied error saying why not.
func MayConfirm(appr *warden.Approval, user *warden.Caller, now time.Time) error {
	id := appr.ID
	switch st := appr.Effective(now); {
	case appr.Via != warden.ViaBrowser:
		return warden.Errorf(warden.Denied, "request %s is not confirmed in the browser by the calling user", id)
	case user == nil || !samePrincipal(appr.Requester, user):
		return warden.Errorf(warden.Denied, "only the user who made this call may confirm it; you are signed in as someone else")
	case user.Method != "oidc":
		// The local identity reaches the console without signing in, as
		// the agent's own process could: that is no confirmation by a
		// person.
		return warden.Errorf(warden.Denied, "a call is confirmed in the browser only by a user signed in through the identity provider")
	case st == warden.ApprovalExpired:
		return warden.Errorf(warden.Denied, "request %s expired at %s; it can no longer be confirmed", id, appr.ExpiresAt.UTC().Format(time.RFC3339))
	case st != warden.ApprovalPending:
		return warden.Errorf(warden.Denied, "request %s was already %s; it cannot be answered again", id, st)
	}
	return nil
}
