package warden

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Verbs an Op can carry. Policy matches them against grants; risk is
// derived from them, never from a tool's self-declared hints.
const (
	VerbSelect   = "select"
	VerbInsert   = "insert"
	VerbUpdate   = "update"
	VerbDelete   = "delete"
	VerbMerge    = "merge"
	VerbTruncate = "truncate"
	VerbDDL      = "ddl"
	// VerbExecute is calling a function that is not a harmless built-in.
	VerbExecute = "execute"
)

// TableVerbs are the verbs a grant on tables can name, in a fixed order.
var TableVerbs = []string{VerbSelect, VerbInsert, VerbUpdate, VerbDelete, VerbMerge, VerbTruncate, VerbDDL}

// Op is one thing a call does to one object: read a table, write a table,
// call a function. A call is allowed only if every one of its Ops is.
type Op struct {
	Verb   string `json:"verb"`
	Object string `json:"object,omitempty"`
	// Unfiltered marks an update or delete with no WHERE clause: it
	// touches every row of Object. Grants ignore it; approval rules can
	// match it (update_without_where, delete_without_where).
	Unfiltered bool `json:"unfiltered,omitempty"`
}

func (o Op) String() string {
	if o.Object == "" {
		return o.Verb
	}
	return o.Verb + " " + o.Object
}

// Describe is String with the Unfiltered mark spelled out, for people
// deciding on the call.
func (o Op) Describe() string {
	if o.Unfiltered {
		return o.String() + " (every row: no WHERE)"
	}
	return o.String()
}

// Action is a tool call parsed into the terms policy judges: which backend,
// which operations on which objects. Tools build it in Plan from the actual
// arguments; nothing in it comes from what the agent says about itself.
type Action struct {
	// Tool is the tool's name, Backend the configured backend it targets.
	Tool    string `json:"tool"`
	Backend string `json:"backend"`
	// Kind is the statement or request kind in one word ("select",
	// "insert", "ddl", "schema").
	Kind string `json:"kind"`
	// Ops are every operation the call performs; see Op.
	Ops []Op `json:"ops,omitempty"`
	// Functions lists every function the statement calls, harmless
	// built-ins included, for the recording.
	Functions []string `json:"functions,omitempty"`
	// Statement is the exact statement or request, as shown to approvers.
	Statement string `json:"statement,omitempty"`
	// Params are the values bound to the statement's placeholders ($1,
	// $2, ...), as JSON text; approvers see them with the statement.
	Params []string `json:"params,omitempty"`
	// Purpose is the agent's stated intent, recorded and shown to approvers.
	Purpose string `json:"purpose,omitempty"`
	// ApprovalID is the approval the agent says covers this call (the
	// approval_id argument). It is a claim: the approval stage checks it
	// against the store, the caller and the exact arguments.
	ApprovalID string `json:"approval_id,omitempty"`
	// CallID is set by the pipeline before Execute, so results can name it.
	CallID string `json:"-"`
	// PreviewDigest is set by the approval stage when an approval that
	// was bound to a preview releases the call: the tool must refuse the
	// call unless the rows it affects still have this digest.
	PreviewDigest string `json:"-"`
	// Plan is the tool's private, already-validated execution plan.
	Plan any `json:"-"`
}

// Risk is the coarse classification of what an action does.
type Risk string

const (
	RiskRead  Risk = "read"
	RiskWrite Risk = "write"
	RiskAdmin Risk = "admin"
)

// Classify derives an action's risk from its operations.
func Classify(a *Action) Risk {
	risk := RiskRead
	for _, op := range a.Ops {
		switch op.Verb {
		case VerbSelect, VerbGet, VerbList, "GET", "HEAD", "OPTIONS":
		case VerbDDL, VerbTruncate:
			return RiskAdmin
		default:
			risk = RiskWrite
		}
	}
	return risk
}

// Effect is the outcome of a policy decision.
type Effect string

const (
	Allow         Effect = "allow"
	Deny          Effect = "deny"
	RequireReview Effect = "needs_approval"
)

// Decision is policy's verdict on one action, with reasons a human and an
// agent can read.
type Decision struct {
	Effect Effect `json:"effect"`
	// Rule names the rule that decided: the grants that allowed the call,
	// or the rule that denied it ("default-deny", "sql.statement").
	Rule string `json:"rule"`
	// Reasons explain the decision in plain sentences.
	Reasons []string `json:"reasons,omitempty"`
	// Allowed lists what the caller may do instead, on a denial.
	Allowed []string `json:"allowed,omitempty"`
}

// Err returns the decision as a coded error, or nil if it allows the call.
func (d *Decision) Err() error {
	switch d.Effect {
	case Allow:
		return nil
	case RequireReview:
		return &Error{Code: NeedsApproval, Message: join(d.Reasons), Rule: d.Rule}
	default:
		return &Error{Code: Denied, Message: join(d.Reasons), Rule: d.Rule, Allowed: d.Allowed}
	}
}

func join(reasons []string) string {
	switch len(reasons) {
	case 0:
		return "refused by policy"
	case 1:
		return reasons[0]
	}
	s := reasons[0]
	for _, r := range reasons[1:] {
		s += "; " + r
	}
	return s
}

// DecodeArgs strictly decodes a tool's JSON arguments into v: unknown
// fields and trailing data are Invalid errors naming the problem.
func DecodeArgs(args json.RawMessage, v any) error {
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &Error{Code: Invalid, Message: fmt.Sprintf("invalid arguments: %s", describeJSONError(err)), Err: err}
	}
	if dec.More() {
		return Errorf(Invalid, "invalid arguments: trailing data after the arguments object")
	}
	return nil
}
