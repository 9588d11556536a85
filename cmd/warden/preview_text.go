package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/warden-mcp/warden"
)

// writePreview writes a request's write preview (issue 17, item 3) for
// `warden approvals show`: the affected row count and the shown rows
// before and after, or why the statement was not previewed. Every cell
// goes through the same printable-text rules as the rest of the output.
func writePreview(w io.Writer, pv *warden.WritePreview) {
	if pv == nil {
		return
	}
	if pv.NotPreviewed != "" {
		field(w, "", "preview", "not previewed: "+pv.NotPreviewed)
		return
	}
	shown := max(len(pv.Before), len(pv.After))
	line := fmt.Sprintf("affects %d row(s), run in a transaction that was rolled back", pv.Rows)
	if int64(shown) < pv.Rows {
		line += fmt.Sprintf("; the first %d shown", shown)
	}
	if len(pv.Masked) > 0 {
		line += "; masked: " + strings.Join(pv.Masked, ", ")
	}
	field(w, "", "preview", line)
	field(w, "", "digest", pv.Digest)
	for _, side := range []struct {
		name string
		rows [][]*string
	}{{"before", pv.Before}, {"after", pv.After}} {
		if len(side.rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", side.name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := make([]string, len(pv.Columns))
		for i, c := range pv.Columns {
			head[i] = cell(c)
			if slices.Contains(pv.Masked, c) {
				head[i] += " (masked)"
			}
		}
		fmt.Fprintln(tw, "  "+strings.Join(head, "\t"))
		for _, row := range side.rows {
			cs := make([]string, len(row))
			for i, c := range row {
				if c == nil {
					cs[i] = "NULL"
				} else {
					// Quoted when it could be read as NULL or is empty.
					s := *c
					if s == "" || s == "NULL" {
						s = strconv.Quote(s)
					}
					cs[i] = cell(strings.ReplaceAll(s, "\t", " "))
				}
			}
			fmt.Fprintln(tw, "  "+strings.Join(cs, "\t"))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
}
