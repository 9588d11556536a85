package flows

import (
	"slices"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

// matches reports whether the endpoint selects action a, on a backend of
// the given kind. As approval rules do, it matches paths the way a server
// could read them (policy.MatchPathHold) and an object it cannot read
// matches: a sink it cannot rule out is scanned, a source it cannot rule
// out is remembered.
func (e *Endpoint) matches(a *warden.Action, kind string) bool {
	if e.Backend != a.Backend {
		return false
	}
	if len(e.Tables)+len(e.Actions)+len(e.Paths)+len(e.Methods)+len(e.Resources)+len(e.Namespaces) == 0 {
		return true
	}
	return slices.ContainsFunc(a.Ops, func(op warden.Op) bool { return e.matchOp(kind, op) })
}

func (e *Endpoint) matchOp(kind string, op warden.Op) bool {
	switch kind {
	case "postgres":
		if len(e.Actions) > 0 && !slices.Contains(e.Actions, op.Verb) {
			return false
		}
		return len(e.Tables) == 0 || policy.MatchObject(e.Tables, op.Object)
	case "http":
		if len(e.Methods) > 0 && !slices.Contains(e.Methods, op.Verb) && !(op.Verb == "HEAD" && slices.Contains(e.Methods, "GET")) {
			return false
		}
		return len(e.Paths) == 0 || policy.MatchAnyPathHold(e.Paths, op.Object)
	case "kubernetes":
		o, ok := warden.ParseKubeObject(op.Object)
		if !ok {
			return true
		}
		if len(e.Resources) > 0 && !slices.ContainsFunc(policy.SameObjects(o.Resource), func(res string) bool { return policy.MatchResources(e.Resources, res) }) {
			return false
		}
		return len(e.Namespaces) == 0 || o.Namespace == warden.AllNamespaces || policy.MatchGlobs(e.Namespaces, o.Namespace)
	}
	return true
}
