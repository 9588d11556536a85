// Package policy decides whether a caller may perform an action: roles,
// their members and least-privilege grants, deny by default.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/warden-mcp/warden"
)

// Config is the `roles` section of warden.yaml.
type Config map[string]*Role

// Role gives its members a set of grants.
type Role struct {
	Members Members  `yaml:"members"`
	Grants  []*Grant `yaml:"grants"`
}

// Members says who holds a role: any listed subject, email or group.
type Members struct {
	Subjects []string `yaml:"subjects"`
	Emails   []string `yaml:"emails"`
	Groups   []string `yaml:"groups"`
}

// Grant allows operations on one backend. For postgres backends: `tables`
// (schema-qualified names or `schema.*`) × `actions`, and `functions` that
// may be called beyond the harmless built-ins. For http backends:
// `methods` × `paths` (see MatchPath). For kubernetes backends (read
// only: get and list): `namespaces` × `resources`, optionally narrowed to
// `names` (get only), or `cluster_scoped: true` × `resources` for
// cluster-scoped resources (see kube.go).
type Grant struct {
	Backend       string   `yaml:"backend"`
	Tables        []string `yaml:"tables"`
	Actions       []string `yaml:"actions"`
	Functions     []string `yaml:"functions"`
	Methods       []string `yaml:"methods"`
	Paths         []string `yaml:"paths"`
	Namespaces    []string `yaml:"namespaces"`
	Resources     []string `yaml:"resources"`
	Names         []string `yaml:"names"`
	ClusterScoped bool     `yaml:"cluster_scoped"`
}

// Validate checks the roles against the configured backends (name → kind).
// Errors carry key paths relative to `roles`.
func (c Config) Validate(backends map[string]string) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	for _, name := range slices.Sorted(maps.Keys(c)) {
		r := c[name]
		p := name
		if r == nil {
			add(p, "role is empty")
			continue
		}
		if len(r.Members.Subjects)+len(r.Members.Emails)+len(r.Members.Groups) == 0 {
			add(p+".members", "role has no members (list subjects, emails or groups)")
		}
		if len(r.Grants) == 0 {
			add(p+".grants", "role has no grants")
		}
		for i, g := range r.Grants {
			gp := fmt.Sprintf("%s.grants[%d]", p, i)
			if g == nil {
				add(gp, "grant is empty")
				continue
			}
			kind, ok := backends[g.Backend]
			switch {
			case g.Backend == "":
				add(gp+".backend", "missing backend")
				continue
			case !ok:
				add(gp+".backend", "unknown backend %q (configured: %s)", g.Backend, strings.Join(slices.Sorted(maps.Keys(backends)), ", "))
				continue
			}
			switch kind {
			case "postgres":
				errs = append(errs, notKube(gp, g, kind)...)
				if len(g.Methods) > 0 {
					add(gp+".methods", "methods apply to http backends; %q is %s (use actions)", g.Backend, kind)
				}
				if len(g.Paths) > 0 {
					add(gp+".paths", "paths apply to http backends; %q is %s (use tables)", g.Backend, kind)
				}
			case "http":
				errs = append(errs, validateHTTPGrant(gp, g)...)
				continue
			case "kubernetes":
				errs = append(errs, validateKubeGrant(gp, g)...)
				continue
			default:
				add(gp+".backend", "backend %q is of kind %q, which has no grants in this version", g.Backend, kind)
				continue
			}
			if len(g.Tables) == 0 && len(g.Functions) == 0 {
				add(gp, "a postgres grant needs tables (with actions) or functions")
			}
			if len(g.Tables) > 0 && len(g.Actions) == 0 {
				add(gp+".actions", "missing actions (any of %s)", strings.Join(warden.TableVerbs, ", "))
			}
			if len(g.Actions) > 0 && len(g.Tables) == 0 {
				add(gp+".tables", "actions need tables to apply to")
			}
			for j, a := range g.Actions {
				if !slices.Contains(warden.TableVerbs, a) {
					add(fmt.Sprintf("%s.actions[%d]", gp, j), "unknown action %q (one of %s)", a, strings.Join(warden.TableVerbs, ", "))
				}
			}
			for j, t := range g.Tables {
				if err := CheckObjectPattern(t); err != "" {
					add(fmt.Sprintf("%s.tables[%d]", gp, j), "%s", err)
				}
			}
			for j, f := range g.Functions {
				if err := CheckObjectPattern(f); err != "" {
					add(fmt.Sprintf("%s.functions[%d]", gp, j), "%s", err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// CheckObjectPattern validates a `schema.name` pattern; it returns why it
// is not valid, or "".
func CheckObjectPattern(p string) string {
	schema, name, ok := strings.Cut(p, ".")
	if !ok || schema == "" || name == "" {
		return fmt.Sprintf("%q must be schema-qualified, like public.orders or public.*", p)
	}
	if _, err := path.Match(schema, ""); err != nil {
		return fmt.Sprintf("%q is not a valid pattern", p)
	}
	if _, err := path.Match(name, ""); err != nil {
		return fmt.Sprintf("%q is not a valid pattern", p)
	}
	return ""
}

// Policy is a validated, compiled Config.
type Policy struct {
	roles    []role
	backends map[string]string
}

type role struct {
	name string
	*Role
}

// New compiles a validated config. backends maps backend names to kinds.
func New(c Config, backends map[string]string) (*Policy, error) {
	if err := c.Validate(backends); err != nil {
		return nil, warden.Under("roles", err)
	}
	p := &Policy{backends: backends}
	for _, name := range slices.Sorted(maps.Keys(c)) {
		p.roles = append(p.roles, role{name: name, Role: c[name]})
	}
	return p, nil
}

// RolesFor returns the names of the roles caller holds, sorted.
func (p *Policy) RolesFor(c *warden.Caller) []string {
	var out []string
	for _, r := range p.roles {
		if r.holds(c) {
			out = append(out, r.name)
		}
	}
	return out
}

func (r role) holds(c *warden.Caller) bool {
	if c == nil || c.Subject == "" {
		return false
	}
	if slices.Contains(r.Members.Subjects, c.Subject) {
		return true
	}
	if c.Email != "" && slices.Contains(r.Members.Emails, c.Email) {
		return true
	}
	for _, g := range r.Members.Groups {
		if c.InGroup(g) {
			return true
		}
	}
	return false
}

// boundGrant is a grant with where it came from and its backend's kind.
type boundGrant struct {
	path string
	kind string
	*Grant
}

func (p *Policy) grants(c *warden.Caller, backend string) []boundGrant {
	var out []boundGrant
	for _, r := range p.roles {
		if !r.holds(c) {
			continue
		}
		for i, g := range r.Grants {
			if backend == "" || g.Backend == backend {
				out = append(out, boundGrant{path: fmt.Sprintf("roles.%s.grants[%d]", r.name, i), kind: p.backends[g.Backend], Grant: g})
			}
		}
	}
	return out
}

// Authorize implements warden.Authorizer. Every op of the action must be
// covered by a grant of a role the caller holds; anything else is denied
// with the reason and what the caller may do instead.
func (p *Policy) Authorize(c *warden.Caller, a *warden.Action) *warden.Decision {
	if c == nil {
		return &warden.Decision{Effect: warden.Deny, Rule: "identity", Reasons: []string{"no authenticated caller"}}
	}
	if _, ok := p.backends[a.Backend]; !ok {
		return &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
			Reasons: []string{fmt.Sprintf("backend %q is not configured", a.Backend)},
			Allowed: p.backendHints(c)}
	}
	roles := p.RolesFor(c)
	if len(roles) == 0 {
		return &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
			Reasons: []string{fmt.Sprintf("%s holds no role, so every call is refused; ask an administrator for a grant", c.Subject)}}
	}
	gs := p.grants(c, a.Backend)
	if len(gs) == 0 {
		return &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
			Reasons: []string{fmt.Sprintf("no grant of role %s covers backend %q", strings.Join(roles, ", "), a.Backend)},
			Allowed: p.backendHints(c)}
	}
	var used []string
	var missing []string
	for _, op := range a.Ops {
		g, ok := covering(gs, op)
		if !ok {
			missing = append(missing, op.String())
			continue
		}
		if !slices.Contains(used, g.path) {
			used = append(used, g.path)
		}
	}
	if len(missing) > 0 {
		return &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
			Reasons: []string{fmt.Sprintf("no grant allows %s on backend %q", strings.Join(missing, ", "), a.Backend)},
			Allowed: describe(gs)}
	}
	if len(used) == 0 {
		// An action with no operations (SELECT 1, listing the schema)
		// needs only some grant on the backend.
		used = append(used, gs[0].path)
	}
	sort.Strings(used)
	return &warden.Decision{Effect: warden.Allow, Rule: strings.Join(used, ", "),
		Reasons: []string{fmt.Sprintf("allowed by %s", strings.Join(used, ", "))}}
}

// Permits reports whether caller holds a grant covering op on backend.
func (p *Policy) Permits(c *warden.Caller, backend string, op warden.Op) bool {
	_, ok := covering(p.grants(c, backend), op)
	return ok
}

// Backends implements warden.Authorizer.
func (p *Policy) Backends(c *warden.Caller, kind string) []string {
	var out []string
	for _, g := range p.grants(c, "") {
		if p.backends[g.Backend] == kind && !slices.Contains(out, g.Backend) {
			out = append(out, g.Backend)
		}
	}
	sort.Strings(out)
	return out
}

// Effective describes, for each grant the caller holds, what it allows;
// `warden check` prints it.
func (p *Policy) Effective(c *warden.Caller) []string {
	return describe(p.grants(c, ""))
}

func covering(gs []boundGrant, op warden.Op) (boundGrant, bool) {
	for _, g := range gs {
		if g.kind == "kubernetes" {
			if coversKube(g.Grant, op) {
				return g, true
			}
			continue
		}
		if g.kind == "http" {
			if slices.Contains(g.Methods, op.Verb) && MatchAnyPath(g.Paths, op.Object) {
				return g, true
			}
			continue
		}
		if op.Verb == warden.VerbExecute {
			if MatchObject(g.Functions, op.Object) {
				return g, true
			}
			continue
		}
		if slices.Contains(g.Actions, op.Verb) && MatchObject(g.Tables, op.Object) {
			return g, true
		}
	}
	return boundGrant{}, false
}

// MatchObject reports whether a schema-qualified object ("public.orders")
// matches any of patterns, each `schema.name` with path.Match globs per
// part ("public.*").
func MatchObject(patterns []string, object string) bool {
	oschema, oname, ok := strings.Cut(object, ".")
	if !ok {
		return false
	}
	for _, p := range patterns {
		schema, name, _ := strings.Cut(p, ".")
		ms, _ := path.Match(schema, oschema)
		mn, _ := path.Match(name, oname)
		if ms && mn {
			return true
		}
	}
	return false
}

func describe(gs []boundGrant) []string {
	var out []string
	for _, g := range gs {
		out = append(out, fmt.Sprintf("%s (%s)", g.Describe(), g.path))
	}
	return out
}

// Describe says in one line what the grant allows, such as
// "shop: select on public.orders" or "billing: GET on /v1/invoices/**".
func (g *Grant) Describe() string {
	var parts []string
	if len(g.Tables) > 0 {
		parts = append(parts, fmt.Sprintf("%s on %s", strings.Join(g.Actions, ", "), strings.Join(g.Tables, ", ")))
	}
	if len(g.Functions) > 0 {
		parts = append(parts, "execute "+strings.Join(g.Functions, ", "))
	}
	if len(g.Methods) > 0 || len(g.Paths) > 0 {
		parts = append(parts, fmt.Sprintf("%s on %s", strings.Join(g.Methods, ", "), strings.Join(g.Paths, ", ")))
	}
	if len(g.Resources) > 0 {
		parts = append(parts, describeKube(g))
	}
	return g.Backend + ": " + strings.Join(parts, "; ")
}

func (p *Policy) backendHints(c *warden.Caller) []string {
	var names []string
	for _, g := range p.grants(c, "") {
		if !slices.Contains(names, g.Backend) {
			names = append(names, g.Backend)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil
	}
	return []string{"backends you may use: " + strings.Join(names, ", ")}
}

var _ warden.Authorizer = (*Policy)(nil)
