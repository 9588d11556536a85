package approvals_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
)

// The callers as signed in to the console through the identity provider.
var (
	aliceOIDC = &warden.Caller{Subject: alice.Subject, Email: alice.Email, Groups: alice.Groups, Method: "oidc"}
	bobOIDC   = &warden.Caller{Subject: bob.Subject, Groups: bob.Groups, Method: "oidc"}
)

func newBrowserFixture(t *testing.T) *fixture {
	f := newFixture(t, destructiveSQL(warden.Approvers{User: true, Browser: true}))
	f.svc.ConsoleURL = "https://warden.example.com"
	return f
}

// askBrowser runs c and returns the URL-mode question.
func (f *fixture) askBrowser(c *warden.Call, in *warden.Interaction) *warden.Pending {
	f.t.Helper()
	e := f.approve(c, in)
	if e == nil || e.Code != warden.NeedsApproval || e.Pending == nil || e.Pending.Ask == nil || e.Pending.Ask.URL == "" {
		f.t.Fatalf("Approve = %v; want NeedsApproval with a URL-mode question", e)
	}
	return e.Pending
}

func (f *fixture) confirm(who *warden.Caller, id string, yes bool) *warden.Error {
	f.t.Helper()
	_, err := f.svc.ConfirmInBrowser(context.Background(), who, id, yes)
	return warden.AsError(err)
}

func TestBrowserConfirmation(t *testing.T) {
	t.Run("AsksWithTheConsoleURL", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		if want := "https://warden.example.com" + approvals.ConfirmPath + p.ApprovalID; p.Ask.URL != want || p.Ask.ElicitationID != p.ApprovalID {
			t.Errorf("ask = %+v; want URL %s", p.Ask, want)
		}
		if a := f.stored(p.ApprovalID); a.Via != warden.ViaBrowser || a.Status != warden.ApprovalPending {
			t.Errorf("request via %s, %s; want browser, pending", a.Via, a.Status)
		}
	})

	t.Run("TheClientAloneConfirmsNothing", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		// Accepting with warden's own state, a form-mode yes, approval_id:
		// each finds the request and asks again.
		for _, in := range []*warden.Interaction{answer(p.Ask.State, warden.AnswerAccept), answer("forged."+p.Ask.State, warden.AnswerAccept), {CanAsk: true}} {
			if again := f.askBrowser(f.call(alice, deleteArgs), in); again.ApprovalID != p.ApprovalID {
				t.Errorf("retry asked about %s; want the same request %s", again.ApprovalID, p.ApprovalID)
			}
		}
		f.askBrowser(f.call(alice, with(deleteArgs, "approval_id", p.ApprovalID)), &warden.Interaction{})
		if st := f.stored(p.ApprovalID).Status; st != warden.ApprovalPending {
			t.Errorf("request is %s; want still pending", st)
		}
		// Reviewers cannot decide it either, not even a dba.
		if e := f.decide(bob, p.ApprovalID, true, ""); e == nil || e.Code != warden.Denied {
			t.Errorf("reviewer decision = %v; want Denied", e)
		}
	})

	t.Run("OnlyTheRequesterConfirms", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		// alice as the local identity (no sign-in) is refused too.
		for _, who := range []*warden.Caller{bobOIDC, mallory, nil, alice} {
			if e := f.confirm(who, p.ApprovalID, true); e == nil || e.Code != warden.Denied {
				t.Errorf("confirmation by %v = %v; want Denied", who, e)
			}
		}
		if st := f.stored(p.ApprovalID).Status; st != warden.ApprovalPending {
			t.Errorf("request is %s; want pending", st)
		}
	})

	t.Run("ReleaseIsBoundToWhatWasPreviewed", func(t *testing.T) {
		// As for a reviewer's approval: the confirmed call runs only on
		// the rows the user was shown (tools/sql compares the digest).
		f := newBrowserFixture(t)
		f.tool.preview = &warden.WritePreview{Rows: 2, Digest: "rows-as-previewed"}
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		if e := f.confirm(aliceOIDC, p.ApprovalID, true); e != nil {
			t.Fatalf("confirm = %v", e)
		}
		c := f.call(alice, deleteArgs)
		if e := f.approve(c, &warden.Interaction{}); e != nil {
			t.Fatalf("retry after confirmation = %v; want it to run", e)
		}
		if c.Action.PreviewDigest != "rows-as-previewed" {
			t.Errorf("released call's PreviewDigest = %q; want the previewed %q", c.Action.PreviewDigest, "rows-as-previewed")
		}
	})

	t.Run("ConfirmedCallRunsOnce", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		if e := f.confirm(aliceOIDC, p.ApprovalID, true); e != nil {
			t.Fatalf("confirm = %v", e)
		}
		if e := f.confirm(aliceOIDC, p.ApprovalID, true); e == nil || e.Code != warden.Denied {
			t.Errorf("second confirmation = %v; want Denied", e)
		}
		// Another call (other arguments) is not covered.
		other := f.askBrowser(f.call(alice, with(deleteArgs, "purpose", "other")), &warden.Interaction{})
		if other.ApprovalID == p.ApprovalID {
			t.Fatal("a call with other arguments used the confirmation")
		}
		c := f.call(alice, deleteArgs)
		if e := f.approve(c, &warden.Interaction{}); e != nil {
			t.Fatalf("retry after confirmation = %v; want it to run", e)
		}
		if c.Approval == nil || c.Approval.Status != warden.ApprovalUsed || c.Approval.Via != warden.ViaBrowser || c.Approval.DecidedBy != alice.Subject {
			t.Errorf("call approval = %+v", c.Approval)
		}
		if again := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{}); again.ApprovalID == p.ApprovalID {
			t.Error("the used confirmation released a second call")
		}
		if h := f.history(p.ApprovalID); !strings.Contains(h, "pending→approved") || !strings.Contains(h, "approved→used") {
			t.Errorf("history = %s", h)
		}
	})

	t.Run("Declined", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		if e := f.confirm(aliceOIDC, p.ApprovalID, false); e != nil {
			t.Fatal(e)
		}
		if e := f.approve(f.call(alice, with(deleteArgs, "approval_id", p.ApprovalID)), &warden.Interaction{}); e == nil || e.Code != warden.Denied {
			t.Errorf("call after decline = %v; want Denied", e)
		}
	})

	t.Run("ExpiresUnconfirmed", func(t *testing.T) {
		f := newBrowserFixture(t)
		p := f.askBrowser(f.call(alice, deleteArgs), &warden.Interaction{})
		f.clock.advance(10*time.Minute + time.Second)
		if e := f.confirm(aliceOIDC, p.ApprovalID, true); e == nil || e.Code != warden.Denied {
			t.Errorf("late confirmation = %v; want Denied", e)
		}
		if e := f.approve(f.call(alice, with(deleteArgs, "approval_id", p.ApprovalID)), &warden.Interaction{}); e == nil || e.Code != warden.Denied {
			t.Errorf("call after expiry = %v; want Denied", e)
		}
	})

	t.Run("FailsClosedWithoutAConsole", func(t *testing.T) {
		f := newBrowserFixture(t)
		f.svc.ConsoleURL = ""
		if e := f.approve(f.call(alice, deleteArgs), &warden.Interaction{CanAsk: true}); e == nil || e.Code != warden.Denied {
			t.Errorf("Approve without a console = %v; want Denied", e)
		}
	})
}
