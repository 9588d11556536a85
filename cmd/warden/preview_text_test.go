package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
)

// TestApprovalsShowPrintsThePreview: `warden approvals show` prints the
// rows a write affects, before and after, with masked columns marked and
// every cell printable; or why it was not previewed. The round trip
// through the store keeps the preview (and the MAC over the body covers
// it).
func TestApprovalsShowPrintsThePreview(t *testing.T) {
	s, _ := openTestStore(t)
	str := func(v string) *string { return &v }
	a := &warden.Approval{ID: "a-pv", Rule: "writes", Via: warden.ViaReviewer, Approvers: warden.Approvers{Groups: []string{"dba"}},
		Requester: alice, CallID: "c-1", Tool: "sql_query", CallHash: "h", Backend: "shop", Kind: "update",
		Statement: "UPDATE people SET status = 'gone' WHERE id <= 25", Status: warden.ApprovalPending,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), Timeout: time.Hour,
		Preview: &warden.WritePreview{Rows: 25, Columns: []string{"id", "card", "status"}, Masked: []string{"card"},
			Before: [][]*string{{str("3"), str("************0003"), str("new\x1b[31m")}},
			After:  [][]*string{{str("3"), str("************0003"), nil}}, Digest: "d1"}}
	if err := s.CreateApproval(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Approval(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteApproval(&out, got, nil, t0); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"affects 25 row(s)", "the first 1 shown", "masked: card", "card (masked)", "before:", "after:", "************0003", "NULL", "digest     d1"} {
		if !strings.Contains(text, want) {
			t.Errorf("show does not print %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Errorf("show printed a control character:\n%q", text)
	}

	b := *a
	b.ID, b.Preview = "a-np", &warden.WritePreview{NotPreviewed: "a rollback may not undo all it does: public.logs has a nextval default"}
	if err := s.CreateApproval(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Approval(t.Context(), b.ID)
	out.Reset()
	_ = WriteApproval(&out, got, nil, t0)
	if !strings.Contains(out.String(), "not previewed: a rollback may not undo all it does: public.logs has a nextval default") {
		t.Errorf("show does not say why it was not previewed:\n%s", out.String())
	}
}
