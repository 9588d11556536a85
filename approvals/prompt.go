package approvals

import (
	"fmt"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// maxShown caps how much of a statement a prompt quotes; the approval
// covers the whole call either way (its hash), and `warden approvals show`
// prints all of it.
const maxShown = 4000

// Prompt is the question put to whoever decides appr: who asks, for what
// stated purpose, on which backend, the exact statement or request, what it
// touches and how many rows the planner expects. The purpose comes from the
// agent and is labelled as such; everything the agent wrote is made
// printable (no control or bidi characters) so it cannot disguise itself.
func Prompt(a *warden.Approval) string {
	var b strings.Builder
	fmt.Fprintf(&b, "warden holds this call for approval (rule %q).\n\n", a.Rule)
	fmt.Fprintf(&b, "Requested by: %s\n", caller(a.Requester))
	if a.Why != "" {
		fmt.Fprintf(&b, "Held because: %s\n", warden.Printable(a.Why))
	}
	if a.Purpose != "" {
		fmt.Fprintf(&b, "Stated purpose (from the agent): %s\n", warden.Printable(shorten(a.Purpose, 500)))
	}
	fmt.Fprintf(&b, "Backend: %s (%s)\n", a.Backend, a.Tool)
	fmt.Fprintf(&b, "\n%s\n", printableLines(shorten(a.Statement, maxShown)))
	for i, p := range a.Params {
		fmt.Fprintf(&b, "  $%d = %s\n", i+1, warden.Printable(shorten(p, 500)))
	}
	b.WriteString("\n")
	if len(a.Ops) > 0 {
		ops := make([]string, len(a.Ops))
		for i, op := range a.Ops {
			ops[i] = op.Describe()
		}
		fmt.Fprintf(&b, "Touches: %s\n", strings.Join(ops, "; "))
	}
	if a.EstimatedRows != nil {
		fmt.Fprintf(&b, "Estimated rows: %d\n", *a.EstimatedRows)
	}
	if pv := a.Preview; pv != nil {
		// The count only: row images are for the console and the CLI.
		if pv.NotPreviewed != "" {
			fmt.Fprintf(&b, "Not previewed: %s\n", warden.Printable(pv.NotPreviewed))
		} else {
			fmt.Fprintf(&b, "Previewed (run and rolled back): affects %d row(s)\n", pv.Rows)
		}
	}
	if a.Via == warden.ViaUser {
		b.WriteString("\nAccept runs exactly this call, once. Decline refuses it.")
	} else {
		fmt.Fprintf(&b, "\nRequest %s expires %s. warden approvals approve %s | deny %s --reason ...",
			a.ID, a.ExpiresAt.UTC().Format(time.RFC3339), a.ID, a.ID)
	}
	return b.String()
}

func caller(c *warden.Caller) string {
	if c == nil {
		return "(unknown)"
	}
	s := c.Subject
	if c.Email != "" && c.Email != c.Subject {
		s += " <" + c.Email + ">"
	}
	if c.Issuer != "" {
		s += " via " + c.Issuer
	}
	return s
}

// printableLines is warden.Printable line by line, keeping the newlines.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = warden.Printable(strings.TrimSuffix(l, "\r"))
	}
	return strings.Join(lines, "\n")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
