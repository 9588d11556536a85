package console

import (
	"testing"

	"github.com/warden-mcp/warden"
)

// TestPreviewRowsOnlyForApprovers: the requester sees how many rows a held
// write affects, not the rows; an approver sees them, NULLs and changes
// marked, every cell printable.
func TestPreviewRowsOnlyForApprovers(t *testing.T) {
	s := func(v string) *string { return &v }
	pv := &warden.WritePreview{Rows: 30, Columns: []string{"id", "name"}, Masked: []string{"name"},
		Before: [][]*string{{s("1"), s("a\u202eb")}}, After: [][]*string{{s("1"), nil}}}
	if v := previewOf(pv, false); !v.CountOnly || v.Rows != "30" || len(v.Pairs) != 0 {
		t.Errorf("requester's view = %+v; want the count only", v)
	}
	v := previewOf(pv, true)
	if v.CountOnly || !v.More || len(v.Pairs) != 1 || !v.Columns[1].Masked {
		t.Fatalf("approver's view = %+v", v)
	}
	after := v.Pairs[0].After
	if !after[1].Null || !after[1].Changed || after[0].Changed {
		t.Errorf("after = %+v; want the NULL name marked changed, the id not", after)
	}
	if got := v.Pairs[0].Before[1].Text; got == "a\u202eb" {
		t.Errorf("a bidi control was shown raw")
	}
	if v := previewOf(&warden.WritePreview{NotPreviewed: "why\x1b"}, true); v.NotPreviewed == "" || v.NotPreviewed == "why\x1b" {
		t.Errorf("not previewed = %q", v.NotPreviewed)
	}
}
