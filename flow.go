package warden

import (
	"context"
	"encoding/json"
	"time"
)

// FlowGuard is the flow-control stage: it remembers what each caller was
// answered from a flow rule's source, and refuses (or holds) a later call
// to a rule's sink whose arguments carry any of it, and a call past a
// caller's read budget. It runs after policy allowed a call, so it never
// widens a grant.
type FlowGuard interface {
	// Check runs before the call c (which t planned from args) executes.
	// It returns nil when no rule holds the call; Denied when a rule
	// refuses it (the call's Flow says which rule, the earlier call the
	// value came from and which argument carried it); NeedsApproval or
	// Denied from the approval stage under an `approve` rule; Unavailable
	// when what the caller read cannot be looked up.
	Check(ctx context.Context, c *Call, t Tool, args json.RawMessage) error
	// Remember runs after c was answered and masked, before its result is
	// returned: it keeps fingerprints of the values the caller received
	// from a rule's source and counts rows and bytes against budgets. It
	// returns Unavailable when that cannot be made durable, and Denied
	// when the result would take the caller past a budget or past the
	// memory bound; either way the result is withheld.
	Remember(ctx context.Context, c *Call) error
}

// CallFlow is what the recording says about a call a flow rule or a
// budget refused or held.
type CallFlow struct {
	// Rule is "flows.NAME" or "budgets[i]".
	Rule string `json:"rule"`
	// SourceCall is the earlier call whose answer held the value this
	// call tried to send, and Argument the argument that carried it
	// (body.email, query.q, params[1]). Never the value.
	SourceCall string `json:"source_call,omitempty"`
	Argument   string `json:"argument,omitempty"`
}

// FlowRead is what flow control keeps of one answered call: keyed
// fingerprints of the values the caller received (never the values) and
// how much it received, for budgets.
type FlowRead struct {
	// Seq orders reads in the store; 0 until stored.
	Seq int64
	// Caller is the caller's key (issuer and subject).
	Caller  string
	CallID  string
	Backend string
	At      time.Time
	Rows    int64
	Bytes   int64
	// Rules names the flow rules whose source the call matched: its
	// Prints count for them only.
	Rules []string
	// Prints are 64-bit keyed fingerprints.
	Prints []uint64
}

// FlowStore keeps flow reads durably, so a restart or another instance
// sharing the store does not forget what a caller read.
type FlowStore interface {
	// AddFlowRead stores r and sets r.Seq. An error means it was not
	// stored.
	AddFlowRead(ctx context.Context, r *FlowRead) error
	// FlowReads returns the reads of caller at or after since whose Seq
	// is greater than after, in Seq order.
	FlowReads(ctx context.Context, caller string, since time.Time, after int64) ([]*FlowRead, error)
	// PruneFlowReads deletes reads made before t.
	PruneFlowReads(ctx context.Context, before time.Time) error
}
