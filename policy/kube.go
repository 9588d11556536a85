package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
)

// Kubernetes grants are read only: kube_get issues get and list, nothing
// else. A grant covers
//
//   - namespaced resources: `namespaces` (names or globs; "*" is every
//     namespace, and the only pattern that covers a list across all of
//     them in one request) × `resources`;
//   - cluster-scoped resources (nodes, namespaces, CRDs, cluster roles):
//     only with `cluster_scoped: true`, × `resources`.
//
// `resources` are plurals qualified by their group unless they are in the
// core group (pods, secrets, deployments.apps,
// ingresses.networking.k8s.io); globs per path.Match, one DNS label at a
// time: "*" alone is every resource, "*.apps" every resource of group
// apps, and "*.networking.k8s.io" every resource of that one group, never
// of a group below it (widgets.evil.networking.k8s.io). `names` narrows a
// grant to those objects (globs allowed), for get only: as with RBAC's
// resourceNames, it never covers a list.

var (
	resourcePattern  = regexp.MustCompile(`^[a-z0-9*?\[\]-]+(\.[a-z0-9*?\[\]-]+)*$`)
	namespacePattern = regexp.MustCompile(`^[a-z0-9*?\[\]-]+$`)
)

// validateKubeGrant checks a grant on a kubernetes backend.
func validateKubeGrant(gp string, g *Grant) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	for _, k := range []struct {
		key string
		set bool
	}{{"tables", len(g.Tables) > 0}, {"actions", len(g.Actions) > 0}, {"functions", len(g.Functions) > 0},
		{"methods", len(g.Methods) > 0}, {"paths", len(g.Paths) > 0}} {
		if k.set {
			add(gp+"."+k.key, "%s do not apply to kubernetes backends (use namespaces, resources, names, cluster_scoped)", k.key)
		}
	}
	switch {
	case g.ClusterScoped && len(g.Namespaces) > 0:
		add(gp+".namespaces", "a cluster_scoped grant covers resources outside namespaces; list namespaced resources in a separate grant")
	case !g.ClusterScoped && len(g.Namespaces) == 0:
		add(gp+".namespaces", `missing namespaces (names or globs; "*" for all), or set cluster_scoped: true for cluster-scoped resources`)
	}
	if len(g.Resources) == 0 {
		add(gp+".resources", "missing resources (like pods, deployments.apps, or \"*\")")
	}
	for j, r := range g.Resources {
		if msg := CheckResourcePattern(r); msg != "" {
			add(fmt.Sprintf("%s.resources[%d]", gp, j), "%s", msg)
		}
	}
	for j, ns := range g.Namespaces {
		if msg := CheckNamespacePattern(ns); msg != "" {
			add(fmt.Sprintf("%s.namespaces[%d]", gp, j), "%s", msg)
		}
	}
	for j, n := range g.Names {
		if _, err := path.Match(n, ""); err != nil || n == "" || strings.Contains(n, "/") {
			add(fmt.Sprintf("%s.names[%d]", gp, j), "%q is not an object name or pattern", n)
		}
	}
	return errs
}

// CheckResourcePattern validates a Kubernetes resource pattern (plural
// and group, globs); it returns why it is not valid, or "".
func CheckResourcePattern(r string) string {
	if strings.Contains(r, "/") {
		return fmt.Sprintf("%q is not a resource: it names a subresource, and kube_get reads resources only", r)
	}
	if _, err := path.Match(r, ""); err != nil || !resourcePattern.MatchString(r) {
		return fmt.Sprintf("%q is not a resource: use the lower-case plural and its group, like deployments.apps", r)
	}
	return ""
}

// CheckNamespacePattern validates a namespace name or glob; it returns
// why it is not valid, or "".
func CheckNamespacePattern(ns string) string {
	if _, err := path.Match(ns, ""); err != nil || !namespacePattern.MatchString(ns) {
		return fmt.Sprintf("%q is not a namespace name or pattern", ns)
	}
	return ""
}

// notKube refuses kubernetes keys on other backends.
func notKube(gp string, g *Grant, kind string) []error {
	var errs []error
	for _, k := range []struct {
		key string
		set bool
	}{{"namespaces", len(g.Namespaces) > 0}, {"resources", len(g.Resources) > 0}, {"names", len(g.Names) > 0}, {"cluster_scoped", g.ClusterScoped}} {
		if k.set {
			errs = append(errs, warden.FieldErrorf(gp+"."+k.key, "%s applies to kubernetes backends; %q is %s", k.key, g.Backend, kind))
		}
	}
	return errs
}

// coversKube reports whether g covers op on a kubernetes backend.
func coversKube(g *Grant, op warden.Op) bool {
	if op.Verb != warden.VerbGet && op.Verb != warden.VerbList {
		return false
	}
	o, ok := warden.ParseKubeObject(op.Object)
	if !ok || o.Namespaced() == g.ClusterScoped {
		return false
	}
	if o.Namespaced() && !matchNamespace(g.Namespaces, o.Namespace) {
		return false
	}
	if !MatchResources(g.Resources, o.Resource) {
		return false
	}
	if len(g.Names) > 0 {
		return op.Verb == warden.VerbGet && MatchGlobs(g.Names, o.Name)
	}
	return true
}

// matchNamespace: a pattern matches a namespace by path.Match, except
// that the list across all namespaces ("*") is covered only by "*".
func matchNamespace(patterns []string, ns string) bool {
	if ns == warden.AllNamespaces {
		return slices.Contains(patterns, warden.AllNamespaces)
	}
	return MatchGlobs(patterns, ns)
}

// MatchGlobs reports whether s matches any of patterns (path.Match
// syntax): how Kubernetes namespaces, resources and names are matched.
func MatchGlobs(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// MatchResources reports whether a resource (plural.group) matches any of
// patterns. A pattern is matched label by label, so a "*" stands for
// exactly one DNS label and never for a dot; the pattern "*" alone
// matches every resource.
func MatchResources(patterns []string, resource string) bool {
	labels := strings.Split(resource, ".")
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		pl := strings.Split(p, ".")
		if len(pl) != len(labels) {
			continue
		}
		ok := true
		for i := range pl {
			if m, _ := path.Match(pl[i], labels[i]); !m {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// sameObjects are the built-in resources that more than one API group
// serves from one store: the same objects under two names. An approval
// rule on one name holds the other too.
var sameObjects = [][]string{
	{"events", "events.events.k8s.io"},
	{"ingresses.networking.k8s.io", "ingresses.extensions"},
	{"networkpolicies.networking.k8s.io", "networkpolicies.extensions"},
	{"deployments.apps", "deployments.extensions"},
	{"daemonsets.apps", "daemonsets.extensions"},
	{"replicasets.apps", "replicasets.extensions"},
	{"podsecuritypolicies.policy", "podsecuritypolicies.extensions"},
}

// SameObjects returns resource and every other name the API server
// serves the same objects under (events and events.events.k8s.io).
func SameObjects(resource string) []string {
	for _, s := range sameObjects {
		if slices.Contains(s, resource) {
			return s
		}
	}
	return []string{resource}
}

// Namespaces returns the namespace patterns in which caller may list
// resource on a kubernetes backend, sorted: what kube_get expands a list
// across all namespaces to. A "*" among them means every namespace.
func (p *Policy) Namespaces(c *warden.Caller, backend, resource string) []string {
	var out []string
	for _, g := range p.grants(c, backend) {
		if g.kind != "kubernetes" || g.ClusterScoped || len(g.Names) > 0 || !MatchResources(g.Resources, resource) {
			continue
		}
		for _, ns := range g.Namespaces {
			if !slices.Contains(out, ns) {
				out = append(out, ns)
			}
		}
	}
	slices.Sort(out)
	return out
}

func describeKube(g *Grant) string {
	verbs := "get, list"
	if len(g.Names) > 0 {
		verbs = "get"
	}
	s := fmt.Sprintf("%s %s", verbs, strings.Join(g.Resources, ", "))
	if len(g.Names) > 0 {
		s += " named " + strings.Join(g.Names, ", ")
	}
	if g.ClusterScoped {
		return s + " (cluster-scoped)"
	}
	return s + " in namespaces " + strings.Join(g.Namespaces, ", ")
}
