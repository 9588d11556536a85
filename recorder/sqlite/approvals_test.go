package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

func approvalRequest(id string, at time.Time) *warden.Approval {
	return &warden.Approval{
		ID: id, Rule: "destructive-sql", Via: warden.ViaReviewer, Approvers: warden.Approvers{Groups: []string{"dba"}},
		Requester: alice, SessionID: "s1", CallID: "c1", Tool: "sql_query", CallHash: "h-" + id,
		Backend: "shop", Kind: "delete", Statement: "DELETE FROM orders WHERE id = 3",
		Ops:    []warden.Op{{Verb: "delete", Object: "public.orders"}},
		Status: warden.ApprovalPending, CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute), Timeout: 10 * time.Minute,
	}
}

func TestApprovalStore(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	must(t, s.CreateApproval(ctx, approvalRequest("a1", t0)))

	t.Run("ReadsBackWhatWasStored", func(t *testing.T) {
		a, err := s.Approval(ctx, "a1")
		must(t, err)
		if a.Requester.Subject != alice.Subject || a.Requester.Issuer != alice.Issuer || a.Statement != "DELETE FROM orders WHERE id = 3" ||
			!a.CreatedAt.Equal(t0) || a.Timeout != 10*time.Minute || len(a.Approvers.Groups) != 1 || a.Status != warden.ApprovalPending {
			t.Errorf("Approval(a1) = %+v", a)
		}
		if _, err := s.Approval(ctx, "a404"); !errors.Is(err, warden.ErrApprovalNotFound) {
			t.Errorf("Approval(a404) = %v; want ErrApprovalNotFound", err)
		}
	})
	t.Run("FindsThePendingRequestOfACall", func(t *testing.T) {
		if a, err := s.PendingApproval(ctx, alice.Subject, "h-a1", t0.Add(time.Minute)); err != nil || a == nil || a.ID != "a1" {
			t.Errorf("PendingApproval = %v, %v; want a1", a, err)
		}
		if a, _ := s.PendingApproval(ctx, bob.Subject, "h-a1", t0); a != nil {
			t.Errorf("PendingApproval(bob) = %s; want none: requests belong to their requester", a.ID)
		}
		if a, _ := s.PendingApproval(ctx, alice.Subject, "h-a1", t0.Add(10*time.Minute)); a != nil {
			t.Errorf("PendingApproval(after expiry) = %s; want none", a.ID)
		}
	})
	t.Run("RefusesASecondRequestWithTheSameID", func(t *testing.T) {
		if err := s.CreateApproval(ctx, approvalRequest("a1", t0)); err == nil {
			t.Error("CreateApproval(a1 again) = nil; want an error")
		}
	})
	t.Run("ChangesAreCompareAndSwap", func(t *testing.T) {
		approve := warden.ApprovalChange{ID: "a1", From: []warden.ApprovalStatus{warden.ApprovalPending}, To: warden.ApprovalApproved,
			By: bob, Reason: "ok", At: t0.Add(time.Minute), ExpiresAt: t0.Add(11 * time.Minute)}
		a, err := s.ChangeApproval(ctx, approve)
		must(t, err)
		if a.Status != warden.ApprovalApproved || a.DecidedBy.Subject != bob.Subject || !a.ExpiresAt.Equal(t0.Add(11*time.Minute)) {
			t.Errorf("approved = %+v", a)
		}
		if _, err := s.ChangeApproval(ctx, approve); !errors.Is(err, warden.ErrApprovalConflict) {
			t.Errorf("approving twice = %v; want ErrApprovalConflict", err)
		}
		use := warden.ApprovalChange{ID: "a1", From: []warden.ApprovalStatus{warden.ApprovalApproved}, To: warden.ApprovalUsed, At: t0.Add(2 * time.Minute), CallID: "c2"}
		a, err = s.ChangeApproval(ctx, use)
		must(t, err)
		if a.UsedBy != "c2" || a.DecidedBy.Subject != bob.Subject {
			t.Errorf("used = %+v; want used by c2, still decided by bob", a)
		}
		if _, err := s.ChangeApproval(ctx, use); !errors.Is(err, warden.ErrApprovalConflict) {
			t.Errorf("using twice = %v; want ErrApprovalConflict", err)
		}
	})
	t.Run("RefusesToApproveOrUseAnExpiredRequest", func(t *testing.T) {
		must(t, s.CreateApproval(ctx, approvalRequest("a2", t0)))
		_, err := s.ChangeApproval(ctx, warden.ApprovalChange{ID: "a2", From: []warden.ApprovalStatus{warden.ApprovalPending},
			To: warden.ApprovalApproved, By: bob, At: t0.Add(10 * time.Minute)})
		if !errors.Is(err, warden.ErrApprovalConflict) {
			t.Errorf("approving at expiry = %v; want ErrApprovalConflict", err)
		}
		_, err = s.ChangeApproval(ctx, warden.ApprovalChange{ID: "a2", From: []warden.ApprovalStatus{warden.ApprovalPending},
			To: warden.ApprovalExpired, At: t0.Add(10 * time.Minute), Reason: "nobody decided"})
		must(t, err)
	})
	t.Run("TheTableOnlyMovesForward", func(t *testing.T) {
		db := rawDB(t, path)
		defer db.Close()
		for _, q := range []string{
			`UPDATE approvals SET status = 'pending' WHERE id = 'a1'`,
			`UPDATE approvals SET status = 'approved' WHERE id = 'a2'`,
			`UPDATE approvals SET call_hash = 'other' WHERE id = 'a1'`,
		} {
			if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "only move forward") {
				t.Errorf("%s = %v; want the trigger to refuse it", q, err)
			}
		}
	})
	t.Run("EveryStepIsInTheChain", func(t *testing.T) {
		h, err := s.ApprovalHistory(ctx, "a1")
		must(t, err)
		var steps []string
		for _, ev := range h {
			steps = append(steps, ev.Kind)
		}
		if strings.Join(steps, ",") != "request,approved,used" || h[1].By.Subject != bob.Subject || h[1].Reason != "ok" || h[2].CallID != "c2" {
			t.Errorf("history(a1) = %+v", h)
		}
		// Approval records are not calls, in the session they belong to.
		_, calls, err := s.Session(ctx, "s1")
		must(t, err)
		if len(calls) != 0 {
			t.Errorf("session s1 calls = %+v; want none (approval records are not calls)", calls)
		}
	})
	t.Run("ListsNewestFirstByStatus", func(t *testing.T) {
		must(t, s.CreateApproval(ctx, approvalRequest("a3", t0.Add(time.Second))))
		list, err := s.Approvals(ctx, warden.ApprovalFilter{})
		must(t, err)
		if len(list) != 3 || list[0].ID != "a3" {
			t.Errorf("Approvals() = %d, first %s; want 3, a3 first", len(list), list[0].ID)
		}
		list, err = s.Approvals(ctx, warden.ApprovalFilter{Status: warden.ApprovalPending})
		must(t, err)
		if len(list) != 1 || list[0].ID != "a3" {
			t.Errorf("Approvals(pending) = %v; want [a3]", list)
		}
	})
	must(t, s.Close())

	t.Run("TamperingWithADecisionIsEvident", func(t *testing.T) {
		pub := keyOf(t, path)
		if _, err := verify(t, path, pub); err != nil {
			t.Fatalf("Verify(untouched) = %v", err)
		}
		db := rawDB(t, path)
		mustExec(t, db, dropTriggers)
		mustExec(t, db, `UPDATE records SET body = replace(body, 'bob@example.com', 'alice@example.com') WHERE kind = 'approval_change'`)
		db.Close()
		if _, err := verify(t, path, pub); err == nil {
			t.Error("Verify(after rewriting who approved) = nil; want the change named")
		}
	})
}

func TestMigratesVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	must(t, s.Close())
	exec(t, path, `DROP TRIGGER approvals_forward`, `DROP TABLE approvals`, `PRAGMA user_version = 2`)
	legacyChain(t, path) // as a warden from before signed heads signed it
	must(t, os.Remove(sqlite.HeadPath(path)))

	r, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	if list, err := r.Approvals(ctx, warden.ApprovalFilter{}); err != nil || len(list) != 0 {
		t.Errorf("Approvals on a read-only version 2 store = %v, %v; want none, nil", list, err)
	}
	if _, err := r.Approval(ctx, "a1"); !errors.Is(err, warden.ErrApprovalNotFound) {
		t.Errorf("Approval on a read-only version 2 store = %v; want not found", err)
	}
	must(t, r.Close())

	s, err = sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	defer s.Close()
	if v := userVersion(t, path); v != 4 {
		t.Errorf("user_version after Open = %d; want 4", v)
	}
	must(t, s.CreateApproval(ctx, approvalRequest("a1", t0)))
	if _, _, err := s.Session(ctx, "s1"); err != nil {
		t.Errorf("Session(s1) after migration = %v", err)
	}
}

func keyOf(t *testing.T, path string) []byte {
	t.Helper()
	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	rep, err := s.Verify(context.Background(), nil)
	must(t, err)
	return rep.Key
}

func TestPruneTakesDecidedApprovalRequests(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	must(t, s.CreateApproval(ctx, approvalRequest("decided", t0)))
	_, err := s.ChangeApproval(ctx, warden.ApprovalChange{ID: "decided", From: []warden.ApprovalStatus{warden.ApprovalPending},
		To: warden.ApprovalDenied, By: bob, At: t0.Add(time.Minute)})
	must(t, err)
	must(t, s.CreateApproval(ctx, approvalRequest("open", t0)))
	must(t, s.Close())
	s, err = sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	defer s.Close()
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approval(ctx, "decided"); !errors.Is(err, warden.ErrApprovalNotFound) {
		t.Errorf("a decided request from before the cutoff = %v; want pruned", err)
	}
	if a, err := s.Approval(ctx, "open"); err != nil || a.Status != warden.ApprovalPending {
		t.Errorf("a pending request = %v, %v; want kept until it ends", a, err)
	}
}
