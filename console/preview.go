package console

import (
	"fmt"

	"github.com/warden-mcp/warden"
)

// previewView is a write preview as the page shows it (issue 17, item 3):
// the rows the statement affected in a transaction warden rolled back,
// masked like any result; every cell through warden.Printable.
type previewView struct {
	NotPreviewed string
	Rows         string
	Shown        int
	More         bool // more rows were affected than are shown
	CountOnly    bool // the viewer sees how many rows, not which
	Columns      []previewColumn
	// Pairs are the shown rows, before and after side by side (one of
	// them empty for INSERT and DELETE).
	Pairs             []previewPair
	HasBefore, HasAft bool
}

type previewColumn struct {
	Name   string
	Masked bool
}

type previewPair struct {
	Before, After []previewCell
}

type previewCell struct {
	Text    string
	Null    bool
	Changed bool
}

// previewOf renders pv; rows is false for a viewer who is not among the
// rule's approvers (the requester): they see the count, not the rows,
// which may hold columns their grants do not let them read.
func previewOf(pv *warden.WritePreview, rows bool) *previewView {
	if pv == nil {
		return nil
	}
	p := warden.Printable
	if pv.NotPreviewed != "" {
		return &previewView{NotPreviewed: p(pv.NotPreviewed)}
	}
	if !rows {
		return &previewView{Rows: fmt.Sprint(pv.Rows), CountOnly: true}
	}
	v := &previewView{Rows: fmt.Sprint(pv.Rows), HasBefore: len(pv.Before) > 0, HasAft: len(pv.After) > 0}
	masked := map[string]bool{}
	for _, m := range pv.Masked {
		masked[m] = true
	}
	for _, c := range pv.Columns {
		v.Columns = append(v.Columns, previewColumn{Name: p(c), Masked: masked[c]})
	}
	n := max(len(pv.Before), len(pv.After))
	v.Shown, v.More = n, int64(n) < pv.Rows
	for i := range n {
		var pair previewPair
		var before, after []*string
		if i < len(pv.Before) {
			before = pv.Before[i]
		}
		if i < len(pv.After) {
			after = pv.After[i]
		}
		pair.Before = previewCells(before, nil)
		pair.After = previewCells(after, before)
		v.Pairs = append(v.Pairs, pair)
	}
	return v
}

// previewCells renders a row image; cells that differ from was are marked
// changed.
func previewCells(row, was []*string) []previewCell {
	out := make([]previewCell, len(row))
	for i, c := range row {
		if c == nil {
			out[i] = previewCell{Text: "NULL", Null: true}
		} else {
			out[i] = previewCell{Text: warden.Printable(*c)}
		}
		if was != nil && i < len(was) && !sameCell(c, was[i]) {
			out[i].Changed = true
		}
	}
	return out
}

func sameCell(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
