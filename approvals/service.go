package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// Service is the approval stage. It is safe for concurrent use.
type Service struct {
	Rules Config
	// Kinds maps backend names to kinds.
	Kinds map[string]string
	Store warden.ApprovalStore
	// Key authenticates the requestState tokens warden issues; it must be
	// secret and stable across restarts (the store keeps one).
	Key   []byte
	Clock warden.Clock
	NewID func() string
	// Poll is how often a call waiting for a reviewer reads the store
	// (default 200ms); reviewers decide from another process. A store
	// that implements warden.ApprovalWatcher also wakes the call when the
	// request changes, and the poll is then only the fallback (default
	// 1s).
	Poll time.Duration
	// HTTP posts webhook notifications (default: a client with a 5s
	// timeout).
	HTTP *http.Client
	Log  *slog.Logger
	// ConsoleURL is the console's base URL (console.base_url), such as
	// https://warden.example.com; when set, notifications link to the
	// request in the console.
	ConsoleURL string
	// Scrubber, when set, scrubs write previews with the detectors that
	// scrub results and recordings.
	Scrubber warden.Scrubber
}

const (
	defaultPoll = 200 * time.Millisecond
	// watchedPoll is the fallback poll when the store signals changes.
	watchedPoll = time.Second
)

// Rule returns the rule that would hold a, which t planned, and the
// planner's estimate when one was made: what `warden explain` shows.
// Nothing is executed.
func (s *Service) Rule(ctx context.Context, a *warden.Action, t warden.Tool) (*Rule, *int64) {
	est := newEstimate(ctx, a, t)
	return s.Rules.match(a, s.Kinds[a.Backend], est), est.made()
}

func newEstimate(ctx context.Context, a *warden.Action, t warden.Tool) *estimate {
	est := &estimate{}
	if e, ok := t.(warden.Estimator); ok {
		est.fn = func() (int64, bool, error) { return e.Estimate(ctx, a) }
	}
	if pv, ok := t.(warden.Previewer); ok {
		est.preview = func() (*warden.WritePreview, error) { return pv.Preview(ctx, a) }
	}
	return est
}

// Approve implements warden.Approver.
func (s *Service) Approve(ctx context.Context, c *warden.Call, t warden.Tool) error {
	a := c.Action
	est := newEstimate(ctx, a, t)
	r := s.Rules.match(a, s.Kinds[a.Backend], est)
	if r == nil {
		return nil
	}
	return s.decide(ctx, c, r, est, "")
}

// Hold holds c, which t planned, under r, a rule that is not one of the
// approval rules (a flow rule or a budget builds its own), exactly as
// Approve holds a call a rule matches: it returns nil once a human
// approved this exact call. why is shown to whoever decides.
func (s *Service) Hold(ctx context.Context, c *warden.Call, t warden.Tool, r *Rule, why string) error {
	return s.decide(ctx, c, r, newEstimate(ctx, c.Action, t), why)
}

// decide asks for, waits for or applies a human's decision on c under r.
func (s *Service) decide(ctx context.Context, c *warden.Call, r *Rule, est *estimate, why string) error {
	a := c.Action
	if r.Approvers.Browser {
		return s.browser(ctx, c, r, est, why)
	}
	in := warden.InteractionFrom(ctx)
	var note string
	if ans := in.Answer; ans != nil {
		if !r.Approvers.User {
			note = "the client sent an answer, but this rule is not decided by the calling user; it was ignored"
		} else {
			appr, why, err := s.checkAnswer(ctx, c, r, ans)
			if err != nil {
				return err
			}
			if appr != nil {
				done, err := s.answered(ctx, c, r, appr, ans)
				if done {
					return err
				}
				why = "the requestState was already used; the answer was ignored"
			}
			note = why
		}
	}
	if id := a.ApprovalID; id != "" {
		if r.Approvers.Reviewers() {
			return s.resume(ctx, c, r, id, note)
		}
		note = join(note, "approval_id is ignored: this rule is decided by the calling user, not by a reviewer")
	}
	if r.Approvers.User && in.CanAsk {
		return s.ask(ctx, c, r, est, note, why)
	}
	if r.Approvers.Reviewers() {
		return s.review(ctx, c, r, est, note, why)
	}
	c.Approval = &warden.CallApproval{Rule: r.Name, Via: warden.ViaUser, Status: warden.ApprovalDenied, Note: note}
	return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
		Message: fmt.Sprintf("approval rule %q needs you, the calling user, to confirm this call, but this client cannot be asked: "+
			"it does not support MCP elicitation, or its transport cannot carry it (the SSE transport, for clients before 2026-07-28). "+
			"The call did not run. Use a client that supports elicitation over stdio or streamable HTTP.", r.Name)}
}

func ruleRef(r *Rule) string {
	if r.Ref != "" {
		return r.Ref
	}
	return "approvals." + r.Name
}

func (s *Service) now() time.Time { return s.Clock() }

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// newApproval builds a pending request for c under r.
func (s *Service) newApproval(c *warden.Call, r *Rule, via string, est *estimate, why string) *warden.Approval {
	now := s.now()
	a := c.Action
	return &warden.Approval{
		ID: s.NewID(), Rule: r.Name, Via: via, Approvers: *r.Approvers,
		Requester: c.Caller, SessionID: c.SessionID, CallID: c.ID,
		Tool: c.Tool, CallHash: c.Hash,
		Backend: a.Backend, Kind: a.Kind, Statement: a.Statement, Params: a.Params, Purpose: a.Purpose, Ops: a.Ops, Why: why,
		EstimatedRows: est.rows(), Preview: s.preview(est),
		Status: warden.ApprovalPending, CreatedAt: now,
		ExpiresAt: now.Add(time.Duration(r.Timeout)), Timeout: time.Duration(r.Timeout),
	}
}

// ask creates a request the calling user decides, and returns the
// question for the transport to put to them.
func (s *Service) ask(ctx context.Context, c *warden.Call, r *Rule, est *estimate, note, why string) error {
	appr := s.newApproval(c, r, warden.ViaUser, est, why)
	if err := s.Store.CreateApproval(ctx, appr); err != nil {
		return warden.Wrap(warden.Unavailable, err, "the call needs approval, but the approval request could not be recorded, so it was refused")
	}
	st := seal(s.Key, requestState{ID: appr.ID, Sub: c.Caller.Subject, Iss: c.Caller.Issuer, Tool: c.Tool,
		Hash: c.Hash, Rule: r.Name, Exp: appr.ExpiresAt.Unix()})
	c.Approval = &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaUser, Status: warden.ApprovalPending, Note: note}
	return &warden.Error{Code: warden.NeedsApproval, Rule: ruleRef(r),
		Message: fmt.Sprintf("approval rule %q needs the calling user to confirm this exact call; warden is asking them", r.Name),
		Pending: &warden.Pending{ApprovalID: appr.ID, Rule: r.Name, ExpiresAt: appr.ExpiresAt,
			Ask: &warden.Ask{Message: Prompt(appr), State: st}}}
}

// checkAnswer returns the pending request an answer is for, or why the
// answer does not count.
func (s *Service) checkAnswer(ctx context.Context, c *warden.Call, r *Rule, ans *warden.Answer) (*warden.Approval, string, error) {
	st, err := open(s.Key, ans.State, s.now())
	switch {
	case errors.Is(err, errBadState):
		return nil, "the client sent an answer without a requestState warden issued; it was ignored", nil
	case err != nil:
		return nil, "the client's requestState has expired; the answer was ignored", nil
	case st.Sub != c.Caller.Subject || st.Iss != c.Caller.Issuer:
		return nil, "the client's requestState was issued to another principal; the answer was ignored", nil
	case st.Tool != c.Tool || st.Hash != c.Hash:
		return nil, "the client's requestState was issued for a different call (the arguments changed); the answer was ignored", nil
	case st.Rule != r.Name:
		return nil, "the client's requestState was issued under another approval rule; the answer was ignored", nil
	}
	appr, err := s.Store.Approval(ctx, st.ID)
	if errors.Is(err, warden.ErrApprovalNotFound) {
		return nil, "the client's requestState names no approval request; the answer was ignored", nil
	}
	if err != nil {
		return nil, "", storeErr(err, st.ID)
	}
	if appr.Effective(s.now()) != warden.ApprovalPending || appr.Via != warden.ViaUser {
		return nil, "the client's requestState was already used; the answer was ignored", nil
	}
	if !samePrincipal(appr.Requester, c.Caller) || appr.CallHash != c.Hash || appr.Tool != c.Tool {
		return nil, "the client's requestState does not match its approval request; the answer was ignored", nil
	}
	return appr, "", nil
}

// answered applies the user's answer to appr. done is false when the
// request was decided by someone else first (the same state used twice at
// once): then the answer counts for nothing.
func (s *Service) answered(ctx context.Context, c *warden.Call, r *Rule, appr *warden.Approval, ans *warden.Answer) (done bool, err error) {
	action := ans.Action
	if action == warden.AnswerAccept && !confirms(ans.Content) {
		// Accepted a form that does not say yes: the box unticked, left
		// out, answered with a string or a number, or sent with fields
		// warden did not ask for. Only an explicit yes approves.
		action = warden.AnswerDecline
	}
	ch := warden.ApprovalChange{ID: appr.ID, From: []warden.ApprovalStatus{warden.ApprovalPending}, By: c.Caller, At: s.now(), CallID: c.ID}
	switch action {
	case warden.AnswerAccept:
		ch.To, ch.Reason = warden.ApprovalUsed, "confirmed by the calling user"
	case warden.AnswerDecline:
		ch.To, ch.Reason = warden.ApprovalDenied, "declined by the calling user"
	default:
		ch.To, ch.Reason = warden.ApprovalDenied, "the calling user cancelled the confirmation"
	}
	if _, err := s.Store.ChangeApproval(ctx, ch); err != nil {
		if errors.Is(err, warden.ErrApprovalConflict) {
			return false, nil
		}
		return true, warden.Wrap(warden.Unavailable, err, "the answer could not be recorded, so the call was refused")
	}
	c.Approval = &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaUser, Status: ch.To, DecidedBy: c.Caller.Subject, Reason: ch.Reason}
	if ch.To == warden.ApprovalUsed {
		bindPreview(c, appr)
		return true, nil
	}
	verb := "declined"
	if action != warden.AnswerDecline {
		verb = "cancelled"
	}
	return true, &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
		Message: fmt.Sprintf("the user %s this call when warden asked them to confirm it (approval rule %q); it did not run. "+
			"Do not retry it unless the user asks you to.", verb, r.Name)}
}

// storeErr is a failure to read approval request id: one changed outside
// warden is a denial the agent can act on (ask again), anything else the
// store being unavailable.
func storeErr(err error, id string) error {
	if errors.Is(err, warden.ErrApprovalForged) {
		return warden.Wrap(warden.Denied, err, fmt.Sprintf("approval request %s does not match what warden recorded (it was changed outside warden), so it releases nothing; "+
			"call again without approval_id to request approval anew", id))
	}
	return warden.Wrap(warden.Unavailable, err, "the approval store cannot be read, so the call was refused")
}

// confirms reports whether a form's content is exactly the yes warden
// asked for: one field, ConfirmField, holding the JSON boolean true.
// Everything else, including "true", 1 and extra fields, is a no: a client
// that fills in something other than the form warden sent did not show the
// user that form.
func confirms(content map[string]any) bool {
	v, ok := content[warden.ConfirmField].(bool)
	return ok && v && len(content) == 1
}

// review finds or creates the reviewers' request for c, and waits for a
// decision.
func (s *Service) review(ctx context.Context, c *warden.Call, r *Rule, est *estimate, note, why string) error {
	appr, err := s.Store.PendingApproval(ctx, c.Caller.Subject, c.Hash, s.now())
	if err != nil {
		return warden.Wrap(warden.Unavailable, err, "the approval store cannot be read, so the call was refused")
	}
	if appr == nil || appr.Via != warden.ViaReviewer || appr.Rule != r.Name || !samePrincipal(appr.Requester, c.Caller) {
		appr = s.newApproval(c, r, warden.ViaReviewer, est, why)
		if err := s.Store.CreateApproval(ctx, appr); err != nil {
			return warden.Wrap(warden.Unavailable, err, "the call needs approval, but the approval request could not be recorded, so it was refused")
		}
		s.notify(r, appr)
	}
	return s.wait(ctx, c, r, appr, note)
}

// resume continues a call that names an approval with approval_id.
func (s *Service) resume(ctx context.Context, c *warden.Call, r *Rule, id, note string) error {
	deny := func(format string, args ...any) error {
		c.Approval = &warden.CallApproval{ID: id, Rule: r.Name, Via: warden.ViaReviewer, Status: warden.ApprovalDenied,
			Note: join(note, fmt.Sprintf(format, args...))}
		return &warden.Error{Code: warden.Denied, Rule: ruleRef(r), Message: fmt.Sprintf(format, args...) +
			". Call again without approval_id to request approval for this call."}
	}
	appr, err := s.Store.Approval(ctx, id)
	switch {
	case errors.Is(err, warden.ErrApprovalNotFound):
		return deny("approval_id %q is not an approval request warden issued", id)
	case errors.Is(err, warden.ErrApprovalForged):
		return deny("approval request %q does not match what warden recorded (it was changed outside warden), so it releases nothing", id)
	case err != nil:
		return warden.Wrap(warden.Unavailable, err, "the approval store cannot be read, so the call was refused")
	case !samePrincipal(appr.Requester, c.Caller):
		return deny("approval %s was requested by another principal; it cannot cover your calls", id)
	case appr.Tool != c.Tool || appr.CallHash != c.Hash:
		return deny("approval %s was requested for a different call: these arguments are not the ones it covers (any change, the purpose included, needs a new approval)", id)
	case appr.Via != warden.ViaReviewer || appr.Rule != r.Name:
		return deny("approval %s was requested under another approval rule than the one that now holds this call (%q)", id, r.Name)
	}
	return s.wait(ctx, c, r, appr, note)
}

// wait follows appr until a reviewer decides, it expires, the rule's wait
// ends (the call returns as pending) or ctx ends.
func (s *Service) wait(ctx context.Context, c *warden.Call, r *Rule, appr *warden.Approval, note string) error {
	ref := func(status warden.ApprovalStatus) *warden.CallApproval {
		ca := &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaReviewer, Status: status, Reason: appr.Reason, Note: note}
		if appr.DecidedBy != nil {
			ca.DecidedBy = appr.DecidedBy.Subject
		}
		return ca
	}
	deadline, tick, changed, stop := s.follow(ctx, r, appr.ID)
	defer stop()
	reread := func() error {
		fresh, err := s.Store.Approval(ctx, appr.ID)
		if err != nil {
			return storeErr(err, appr.ID)
		}
		appr = fresh
		return nil
	}
	in := warden.InteractionFrom(ctx)
	for {
		now := s.now()
		switch appr.Effective(now) {
		case warden.ApprovalApproved:
			used, err := s.Store.ChangeApproval(ctx, warden.ApprovalChange{ID: appr.ID, From: []warden.ApprovalStatus{warden.ApprovalApproved},
				To: warden.ApprovalUsed, At: now, CallID: c.ID, Reason: "released call " + c.ID})
			if err == nil {
				appr.UsedBy = used.UsedBy
				c.Approval = ref(warden.ApprovalUsed)
				bindPreview(c, appr)
				return nil
			}
			if !errors.Is(err, warden.ErrApprovalConflict) {
				return warden.Wrap(warden.Unavailable, err, "the approval could not be recorded as used, so the call was refused")
			}
			// Used or expired meanwhile: look again.
		case warden.ApprovalDenied:
			c.Approval = ref(warden.ApprovalDenied)
			msg := fmt.Sprintf("reviewer %s denied this call (approval %s, rule %q)", subject(appr.DecidedBy), appr.ID, r.Name)
			if appr.Reason != "" {
				msg += ": " + appr.Reason
			}
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r), Message: msg + ". It did not run."}
		case warden.ApprovalExpired:
			if appr.Status != warden.ApprovalExpired {
				recorded, err := s.recordExpiry(ctx, appr, now)
				if err != nil {
					return warden.Wrap(warden.Unavailable, err, "the approval store cannot be written, so the call was refused")
				}
				if !recorded {
					// Decided meanwhile (an approval extends the expiry):
					// look again rather than call it expired.
					if appr, err = s.Store.Approval(ctx, appr.ID); err != nil {
						return storeErr(err, appr.ID)
					}
					continue
				}
			}
			c.Approval = ref(warden.ApprovalExpired)
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
				Message: fmt.Sprintf("approval %s expired at %s before it was used; the call did not run. Call again without approval_id to request a new approval.",
					appr.ID, appr.ExpiresAt.UTC().Format(time.RFC3339))}
		case warden.ApprovalUsed:
			// Refused because the approval is spent, not by a reviewer.
			c.Approval = &warden.CallApproval{ID: appr.ID, Rule: r.Name, Via: warden.ViaReviewer, Status: warden.ApprovalDenied,
				Note: join(note, "approval already used by call "+appr.UsedBy)}
			return &warden.Error{Code: warden.Denied, Rule: ruleRef(r),
				Message: fmt.Sprintf("approval %s was already used by call %s: an approval releases one call, once. Call again without approval_id to request a new approval.", appr.ID, appr.UsedBy)}
		default: // pending
			in.Report(fmt.Sprintf("waiting for %s to approve %s (approval %s, expires %s)",
				reviewers(*r.Approvers), c.Tool, appr.ID, appr.ExpiresAt.UTC().Format(time.RFC3339)))
		}
		select {
		case <-ctx.Done():
			c.Approval = ref(warden.ApprovalPending)
			return warden.Wrap(warden.Unavailable, ctx.Err(), fmt.Sprintf("the call was cancelled while it waited for approval %s, which is still pending", appr.ID))
		case <-deadline:
			c.Approval = ref(warden.ApprovalPending)
			return &warden.Error{Code: warden.NeedsApproval, Rule: ruleRef(r),
				Message: fmt.Sprintf("this call needs approval by %s (rule %q) and none has been given yet. Approval request %s is pending until %s. "+
					"Once it is approved, call again with exactly the same arguments and approval_id %q; it runs once. "+
					"A reviewer approves with: warden approvals approve %s",
					reviewers(*r.Approvers), r.Name, appr.ID, appr.ExpiresAt.UTC().Format(time.RFC3339), appr.ID, appr.ID),
				Pending: &warden.Pending{ApprovalID: appr.ID, Rule: r.Name, ExpiresAt: appr.ExpiresAt}}
		case <-changed:
			if err := reread(); err != nil {
				return err
			}
		case <-tick:
			if err := reread(); err != nil {
				return err
			}
		}
	}
}

// follow returns what a wait on approval request id selects on: the end
// of the rule's wait (already passed when the rule does not wait), a tick
// to read the request again, and, when the store signals changes
// (warden.ApprovalWatcher), that signal; stop releases them. The tick is
// the fallback that still sees a decision when the signal is lost.
func (s *Service) follow(ctx context.Context, r *Rule, id string) (deadline, tick <-chan time.Time, changed <-chan struct{}, stop func()) {
	var stops []func()
	if w := time.Duration(*r.Wait); w > 0 {
		t := time.NewTimer(w)
		stops = append(stops, func() { t.Stop() })
		deadline = t.C
	} else {
		passed := make(chan time.Time)
		close(passed)
		deadline = passed
	}
	poll := s.Poll
	if w, ok := s.Store.(warden.ApprovalWatcher); ok {
		ch, stopWatch := w.WatchApproval(ctx, id)
		stops = append(stops, stopWatch)
		changed = ch
		if poll <= 0 {
			poll = watchedPoll
		}
	}
	if poll <= 0 {
		poll = defaultPoll
	}
	ticker := time.NewTicker(poll)
	stops = append(stops, ticker.Stop)
	return deadline, ticker.C, changed, func() {
		for _, f := range stops {
			f()
		}
	}
}

// Decide is a reviewer's decision on request id, from `warden approvals
// approve|deny`. It returns the request as decided, or a coded error: Invalid
// for an unknown id, Denied when reviewer may not decide it (the requester,
// not an approver, a user confirmation) or it is no longer pending.
func (s *Service) Decide(ctx context.Context, reviewer *warden.Caller, id string, approve bool, reason string) (*warden.Approval, error) {
	appr, err := s.Store.Approval(ctx, id)
	switch {
	case errors.Is(err, warden.ErrApprovalNotFound):
		return nil, warden.Errorf(warden.Invalid, "there is no approval request %q", id)
	case errors.Is(err, warden.ErrApprovalForged):
		return nil, warden.Wrap(warden.Denied, err, fmt.Sprintf("request %s does not match what warden recorded (it was changed outside warden); it cannot be decided", id))
	case err != nil:
		return nil, warden.Wrap(warden.Unavailable, err, "the approval store cannot be read")
	}
	now := s.now()
	if err := MayDecide(appr, reviewer, now); err != nil {
		if appr.Effective(now) == warden.ApprovalExpired && appr.Status != warden.ApprovalExpired {
			_, _ = s.recordExpiry(ctx, appr, now) // the refusal stands either way; the sweep records it otherwise
		}
		return appr, err
	}
	ch := warden.ApprovalChange{ID: id, From: []warden.ApprovalStatus{warden.ApprovalPending}, By: reviewer, Reason: reason, At: now}
	if approve {
		ch.To = warden.ApprovalApproved
		ch.ExpiresAt = now.Add(appr.Timeout)
	} else {
		ch.To = warden.ApprovalDenied
	}
	decided, err := s.Store.ChangeApproval(ctx, ch)
	if errors.Is(err, warden.ErrApprovalConflict) {
		return appr, warden.Errorf(warden.Denied, "request %s was decided by someone else, or expired, a moment ago", id)
	}
	if err != nil {
		return nil, warden.Wrap(warden.Unavailable, err, "the decision could not be recorded")
	}
	return decided, nil
}

// MayDecide returns nil when reviewer may decide appr now, or a Denied
// error saying why not: it is confirmed by the calling user, it expired or
// was decided already, reviewer requested it, or reviewer is not one of
// its rule's approvers. Decide enforces it; the console uses it to show
// Approve only to those who may.
func MayDecide(appr *warden.Approval, reviewer *warden.Caller, now time.Time) error {
	id := appr.ID
	switch st := appr.Effective(now); {
	case appr.Via == warden.ViaUser:
		return warden.Errorf(warden.Denied, "request %s is confirmed by the calling user in their client, not by a reviewer", id)
	case appr.Via == warden.ViaBrowser:
		return warden.Errorf(warden.Denied, "request %s is confirmed by the calling user in the browser, not by a reviewer", id)
	case st == warden.ApprovalExpired:
		return warden.Errorf(warden.Denied, "request %s expired at %s; it can no longer be decided (the agent must request approval again)",
			id, appr.ExpiresAt.UTC().Format(time.RFC3339))
	case st != warden.ApprovalPending:
		return warden.Errorf(warden.Denied, "request %s was already %s by %s at %s; a decision cannot be changed",
			id, st, subject(appr.DecidedBy), appr.DecidedAt.UTC().Format(time.RFC3339))
	case reviewer == nil:
		return warden.Errorf(warden.Denied, "request %s needs a reviewer identity to decide it", id)
	case isRequester(appr.Requester, reviewer):
		return warden.Errorf(warden.Denied, "you (%s) requested this call; a reviewer other than the requester must decide it", reviewer.Subject)
	case !appr.Approvers.Includes(reviewer):
		return warden.Errorf(warden.Denied, "%s may not decide request %s: rule %q is decided by %s", reviewer.Subject, id, appr.Rule, reviewers(appr.Approvers))
	}
	return nil
}

// Expire records the expiry of every request that passed its expiry
// without a decision (or, approved, without being used), and returns how
// many it expired. warden serve runs it every minute.
func (s *Service) Expire(ctx context.Context) (int, error) {
	n := 0
	for _, st := range []warden.ApprovalStatus{warden.ApprovalPending, warden.ApprovalApproved} {
		list, err := s.Store.Approvals(ctx, warden.ApprovalFilter{Status: st})
		if err != nil {
			return n, err
		}
		now := s.now()
		for _, a := range list {
			if a.Effective(now) != warden.ApprovalExpired {
				continue
			}
			recorded, err := s.recordExpiry(ctx, a, now)
			if err != nil {
				return n, err
			}
			if recorded {
				n++
			}
		}
	}
	return n, nil
}

// recordExpiry records that a, pending or approved as last read, has
// expired. It reports false, with no error, when a was changed meanwhile:
// the change applies only to the status it was read in.
func (s *Service) recordExpiry(ctx context.Context, a *warden.Approval, now time.Time) (bool, error) {
	reason := "nobody decided before it expired"
	if a.Status == warden.ApprovalApproved {
		reason = "approved, but not used before it expired"
	}
	_, err := s.Store.ChangeApproval(ctx, warden.ApprovalChange{ID: a.ID, From: []warden.ApprovalStatus{a.Status},
		To: warden.ApprovalExpired, At: now, Reason: reason})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, warden.ErrApprovalConflict):
		return false, nil
	}
	return false, err
}

// RunExpiry calls Expire every interval until ctx ends.
func (s *Service) RunExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Expire(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("expiring approval requests failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func samePrincipal(a, b *warden.Caller) bool {
	return a != nil && b != nil && a.Subject == b.Subject && a.Issuer == b.Issuer
}

// isRequester reports whether reviewer is the requester: the same subject
// (from any issuer), or another identity asserting the same email.
func isRequester(requester, reviewer *warden.Caller) bool {
	if requester == nil || reviewer == nil {
		return true // fail closed: an unknown requester cannot be told apart
	}
	return requester.Subject == reviewer.Subject ||
		requester.Email != "" && strings.EqualFold(requester.Email, reviewer.Email)
}

func subject(c *warden.Caller) string {
	if c == nil {
		return "nobody"
	}
	return c.Subject
}

func reviewers(a warden.Approvers) string {
	var parts []string
	if len(a.Groups) > 0 {
		parts = append(parts, "a member of "+strings.Join(a.Groups, " or "))
	}
	if len(a.Subjects) > 0 {
		parts = append(parts, strings.Join(a.Subjects, " or "))
	}
	if len(parts) == 0 {
		return "the calling user"
	}
	return "a reviewer (" + strings.Join(parts, ", or ") + ")"
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

var _ warden.Approver = (*Service)(nil)
