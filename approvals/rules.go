package approvals

import (
	"slices"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

// estimate is the planner's row estimate for a call, made at most once
// and only when a rule or a prompt needs it.
type estimate struct {
	fn func() (int64, bool, error)
	// preview, when set, previews the write (see preview.go).
	preview func() (*warden.WritePreview, error)
	done    bool
	n       int64
	ok      bool
	err     error
}

func (e *estimate) get() (int64, bool, error) {
	if !e.done {
		e.done = true
		if e.fn != nil {
			e.n, e.ok, e.err = e.fn()
		}
	}
	return e.n, e.ok, e.err
}

// made returns the estimate if one was already made, or nil.
func (e *estimate) made() *int64 {
	if !e.done || !e.ok || e.err != nil {
		return nil
	}
	return &e.n
}

// rows returns the estimate for display, making it if needed, or nil.
func (e *estimate) rows() *int64 {
	n, ok, err := e.get()
	if !ok || err != nil {
		return nil
	}
	return &n
}

// match returns the first rule that holds a, or nil.
func (c Config) match(a *warden.Action, kind string, est *estimate) *Rule {
	for _, r := range c {
		if r.matches(a, kind, est) {
			return r
		}
	}
	return nil
}

func (r *Rule) matches(a *warden.Action, kind string, est *estimate) bool {
	if r.Backend != a.Backend {
		return false
	}
	if len(r.When)+len(r.Tables)+len(r.Paths)+len(r.Resources)+len(r.Namespaces) > 0 && !slices.ContainsFunc(a.Ops, func(op warden.Op) bool { return r.matchOp(kind, op) }) {
		return false
	}
	if r.RowsAbove != nil {
		// Fail closed: a call whose size cannot be estimated is held.
		n, ok, err := est.get()
		if ok && err == nil && n <= *r.RowsAbove {
			return false
		}
	}
	return true
}

func (r *Rule) matchOp(kind string, op warden.Op) bool {
	if len(r.When) > 0 && !slices.ContainsFunc(r.When, func(w string) bool { return whenMatches(w, op) || kind == "kubernetes" && kubeReads(w, op) }) {
		return false
	}
	switch kind {
	case "postgres":
		if len(r.Tables) > 0 && !policy.MatchObject(r.Tables, op.Object) {
			return false
		}
	case "http":
		if len(r.Paths) > 0 && !policy.MatchAnyPathHold(r.Paths, op.Object) {
			return false
		}
	case "kubernetes":
		o, ok := warden.ParseKubeObject(op.Object)
		if !ok {
			return true // fail closed: an object the rule cannot read is held
		}
		// The same objects under another group's name are held too.
		if len(r.Resources) > 0 && !slices.ContainsFunc(policy.SameObjects(o.Resource), func(res string) bool { return policy.MatchResources(r.Resources, res) }) {
			return false
		}
		// A list across all namespaces may read any namespace a
		// namespace condition names.
		if len(r.Namespaces) > 0 && o.Namespace != warden.AllNamespaces && !policy.MatchGlobs(r.Namespaces, o.Namespace) {
			return false
		}
	}
	return true
}

// kubeReads: on Kubernetes, get and list return the same objects (a list
// with the field selector metadata.name=X is a get of X), so a rule on
// either holds both.
func kubeReads(w string, op warden.Op) bool {
	reads := []string{warden.VerbGet, warden.VerbList}
	return slices.Contains(reads, w) && slices.Contains(reads, op.Verb)
}

func whenMatches(w string, op warden.Op) bool {
	switch w {
	case UpdateWithoutWhere:
		return op.Verb == warden.VerbUpdate && op.Unfiltered
	case DeleteWithoutWhere:
		return op.Verb == warden.VerbDelete && op.Unfiltered
	}
	// Servers answer HEAD with their GET handler: a rule that holds GET
	// holds HEAD too.
	return w == op.Verb || w == "GET" && op.Verb == "HEAD"
}
