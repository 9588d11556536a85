package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// A reviewer's decision taken through one instance releases the call
// waiting on another through NOTIFY: the waiting instance's poll is an
// hour here, so nothing else could release it.
func TestDecisionOnAnotherInstanceWakesTheWaitingCall(t *testing.T) {
	url, keys := pgtest.New(t, ""), keyDir(t)
	a, b := open(t, url, keys, "a"), open(t, url, keys, "b")
	approvers := warden.Approvers{Groups: []string{"dba"}}
	wait := warden.Duration(10 * time.Minute)
	rules := approvals.Config{{Name: "destructive-sql", Backend: "shop", When: []string{"delete"},
		Approvers: &approvers, Timeout: warden.Duration(20 * time.Minute), Wait: &wait}}
	kinds := map[string]string{"shop": "postgres"}
	if err := rules.Validate(kinds); err != nil {
		t.Fatal(err)
	}
	svc := &approvals.Service{Rules: rules, Kinds: kinds, Store: a, Key: []byte("0123456789abcdef0123456789abcdef"),
		Clock: time.Now, NewID: func() string { return "ap-1" }, Poll: time.Hour}

	args, _ := json.Marshal(map[string]any{"database": "shop", "sql": "DELETE FROM orders WHERE id = 3", "purpose": "cleanup"})
	hash, err := warden.CallHash("sql_query", args)
	if err != nil {
		t.Fatal(err)
	}
	c := &warden.Call{ID: "c-1", SessionID: "s-1", Caller: &warden.Caller{Subject: "carol", Method: "local"}, Tool: "sql_query", Hash: hash,
		Action: &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "delete", Statement: "DELETE FROM orders WHERE id = 3", Purpose: "cleanup",
			Ops: []warden.Op{{Verb: "delete", Object: "public.orders"}}}}
	// Each look at the pending request reports progress: the first when
	// it is created, the second once the listener is listening (it wakes
	// every waiting call when it starts, in case it missed a change).
	looks := make(chan struct{}, 16)
	in := &warden.Interaction{Progress: func(string) { looks <- struct{}{} }}
	// A guard against hanging forever, not a timing assertion.
	ctx, cancel := context.WithTimeout(warden.WithInteraction(context.Background(), in), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Approve(ctx, c, nil) }()
	<-looks
	<-looks
	if _, err := b.ChangeApproval(context.Background(), warden.ApprovalChange{ID: "ap-1", From: []warden.ApprovalStatus{warden.ApprovalPending},
		To: warden.ApprovalApproved, By: &warden.Caller{Subject: "bob", Groups: []string{"dba"}}, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Approve on a after b approved = %v; want the waiting call released", err)
	}
	if c.Approval == nil || c.Approval.Status != warden.ApprovalUsed || c.Approval.DecidedBy != "bob" {
		t.Errorf("call approval = %+v; want used, decided by bob", c.Approval)
	}
}
