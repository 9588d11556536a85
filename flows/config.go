package flows

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

// Rules is the `flows` section of warden.yaml.
type Rules []*Rule

// Rule keeps values read from its source (From) out of the arguments of
// calls to its sink (To), for Window after they were read.
//
//   - {name: customer-data-stays-in, from: {backend: shop, tables: [public.customers]},
//     to: {backend: billing, methods: [POST, PUT, PATCH]}, action: deny}
type Rule struct {
	Name string   `yaml:"name"`
	From Endpoint `yaml:"from"`
	To   Endpoint `yaml:"to"`
	// Action is deny (the default) or approve.
	Action string `yaml:"action"`
	// Approvers, Timeout and Wait are as in approval rules; only with
	// action: approve.
	Approvers *warden.Approvers `yaml:"approvers"`
	Timeout   warden.Duration   `yaml:"timeout"`
	Wait      *warden.Duration  `yaml:"wait"`
	// Window is how long a value read from From is remembered. Default 24h.
	Window warden.Duration `yaml:"window"`
	// MinLength is the shortest word remembered (default 5); MinDigits
	// the fewest digits a number needs (default 6). Shorter values are
	// too common to tell where they came from.
	MinLength int `yaml:"min_length"`
	MinDigits int `yaml:"min_digits"`
}

// Endpoint selects calls on one backend: tables (and, for a sink,
// actions) on postgres; paths and methods on http; resources and
// namespaces on kubernetes. An endpoint with only a backend selects every
// call on it.
type Endpoint struct {
	Backend    string   `yaml:"backend"`
	Tables     []string `yaml:"tables"`
	Actions    []string `yaml:"actions"`
	Paths      []string `yaml:"paths"`
	Methods    []string `yaml:"methods"`
	Resources  []string `yaml:"resources"`
	Namespaces []string `yaml:"namespaces"`
}

// Budgets is the `budgets` section of warden.yaml.
type Budgets []*Budget

// Budget caps the rows and bytes a holder of Role may receive from
// Backend per window; past it, calls to Backend are refused or held.
type Budget struct {
	Role    string          `yaml:"role"`
	Backend string          `yaml:"backend"`
	Rows    int64           `yaml:"rows"`
	Bytes   int64           `yaml:"bytes"`
	Per     warden.Duration `yaml:"per"`
	// Action is deny (the default) or approve, with Approvers, Timeout
	// and Wait as in approval rules.
	Action    string            `yaml:"action"`
	Approvers *warden.Approvers `yaml:"approvers"`
	Timeout   warden.Duration   `yaml:"timeout"`
	Wait      *warden.Duration  `yaml:"wait"`
}

// Defaults.
const (
	DefaultWindow    = 24 * time.Hour
	DefaultMinLength = 5
	DefaultMinDigits = 6
	// DefaultPer is a budget's window when `per` is not set.
	DefaultPer     = time.Hour
	defaultTimeout = 10 * time.Minute
	defaultWait    = 60 * time.Second
)

const (
	ActionDeny    = "deny"
	ActionApprove = "approve"
)

var ruleName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// sqlActions are what a postgres sink may name.
var sqlActions = append(slices.Clone(warden.TableVerbs), warden.VerbExecute)

// Validate checks the rules against the configured backends (name →
// kind) and fills in defaults; errors carry key paths relative to `flows`.
func (rs Rules) Validate(kinds map[string]string) error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range rs {
		p := fmt.Sprintf("[%d]", i)
		if r == nil {
			errs = append(errs, warden.FieldErrorf(p, "rule is empty"))
			continue
		}
		switch {
		case r.Name == "":
			errs = append(errs, warden.FieldErrorf(p+".name", "missing name (it names the rule in refusals and in the recording)"))
		case !ruleName.MatchString(r.Name):
			errs = append(errs, warden.FieldErrorf(p+".name", "%q is not a rule name: use lower-case letters, digits, '-', '_' and '.'", r.Name))
		case seen[r.Name]:
			errs = append(errs, warden.FieldErrorf(p+".name", "rule %q is defined twice", r.Name))
		}
		seen[r.Name] = true
		errs = append(errs, r.From.validate(p+".from", kinds, false)...)
		errs = append(errs, r.To.validate(p+".to", kinds, true)...)
		errs = append(errs, validateAction(p, &r.Action, r.Approvers, &r.Timeout, &r.Wait)...)
		if r.Window == 0 {
			r.Window = warden.Duration(DefaultWindow)
		}
		if time.Duration(r.Window) < time.Minute {
			errs = append(errs, warden.FieldErrorf(p+".window", "%s is too short to remember anything: use at least 1m", r.Window))
		}
		if r.MinLength == 0 {
			r.MinLength = DefaultMinLength
		}
		if r.MinLength < 3 || r.MinLength > 64 {
			errs = append(errs, warden.FieldErrorf(p+".min_length", "must be between 3 and 64"))
		}
		if r.MinDigits == 0 {
			r.MinDigits = DefaultMinDigits
		}
		if r.MinDigits < 4 || r.MinDigits > 19 {
			errs = append(errs, warden.FieldErrorf(p+".min_digits", "must be between 4 and 19"))
		}
	}
	return errors.Join(errs...)
}

// Validate checks the budgets against the backends and roles.
func (bs Budgets) Validate(kinds map[string]string, roles []string) error {
	var errs []error
	for i, b := range bs {
		p := fmt.Sprintf("[%d]", i)
		if b == nil {
			errs = append(errs, warden.FieldErrorf(p, "budget is empty"))
			continue
		}
		switch {
		case b.Role == "":
			errs = append(errs, warden.FieldErrorf(p+".role", "missing role"))
		case !slices.Contains(roles, b.Role):
			errs = append(errs, warden.FieldErrorf(p+".role", "unknown role %q (configured: %s)", b.Role, strings.Join(roles, ", ")))
		}
		errs = append(errs, checkBackend(p+".backend", b.Backend, kinds)...)
		if b.Rows <= 0 && b.Bytes <= 0 {
			errs = append(errs, warden.FieldErrorf(p, "set rows, bytes or both (a positive number)"))
		}
		if b.Rows < 0 {
			errs = append(errs, warden.FieldErrorf(p+".rows", "must be positive"))
		}
		if b.Bytes < 0 {
			errs = append(errs, warden.FieldErrorf(p+".bytes", "must be positive"))
		}
		if b.Per == 0 {
			b.Per = warden.Duration(DefaultPer)
		}
		if time.Duration(b.Per) < time.Minute {
			errs = append(errs, warden.FieldErrorf(p+".per", "%s is too short for a budget: use at least 1m", b.Per))
		}
		errs = append(errs, validateAction(p, &b.Action, b.Approvers, &b.Timeout, &b.Wait)...)
	}
	return errors.Join(errs...)
}

func validateAction(p string, action *string, approvers *warden.Approvers, timeout *warden.Duration, wait **warden.Duration) []error {
	var errs []error
	switch *action {
	case "":
		*action = ActionDeny
		fallthrough
	case ActionDeny:
		if approvers != nil {
			errs = append(errs, warden.FieldErrorf(p+".approvers", "approvers apply to action: approve; this rule denies"))
		}
		return errs
	case ActionApprove:
	default:
		return append(errs, warden.FieldErrorf(p+".action", "unknown action %q (deny or approve)", *action))
	}
	switch a := approvers; {
	case a == nil:
		errs = append(errs, warden.FieldErrorf(p+".approvers", "missing approvers: `user` (the caller confirms in the client) or {groups: [...], subjects: [...]}"))
	case !a.User && !a.Reviewers():
		errs = append(errs, warden.FieldErrorf(p+".approvers", "no approvers: name groups or subjects, or set user: true"))
	}
	if *timeout == 0 {
		*timeout = warden.Duration(defaultTimeout)
	}
	if time.Duration(*timeout) < 10*time.Second {
		errs = append(errs, warden.FieldErrorf(p+".timeout", "%s is too short for a human to decide: use at least 10s", *timeout))
	}
	if *wait == nil {
		w := warden.Duration(defaultWait)
		*wait = &w
	}
	if **wait > *timeout {
		errs = append(errs, warden.FieldErrorf(p+".wait", "wait (%s) is longer than timeout (%s)", **wait, *timeout))
	}
	return errs
}

func checkBackend(p, backend string, kinds map[string]string) []error {
	switch _, ok := kinds[backend]; {
	case backend == "":
		return []error{warden.FieldErrorf(p, "missing backend")}
	case !ok:
		return []error{warden.FieldErrorf(p, "unknown backend %q (configured: %s)", backend, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))}
	}
	return nil
}

// validate checks an endpoint against its backend's kind. A source reads
// (tables, paths, resources); a sink is written to (tables with actions,
// methods with paths).
func (e *Endpoint) validate(p string, kinds map[string]string, sink bool) []error {
	errs := checkBackend(p+".backend", e.Backend, kinds)
	if len(errs) > 0 {
		return errs
	}
	kind := kinds[e.Backend]
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	only := func(key string, n int, kinds string) {
		if n > 0 {
			add(p+"."+key, "%s selects calls on %s backends; %q is %s", key, kinds, e.Backend, kind)
		}
	}
	switch kind {
	case "postgres":
		only("paths", len(e.Paths), "http")
		only("methods", len(e.Methods), "http")
		only("resources", len(e.Resources), "kubernetes")
		only("namespaces", len(e.Namespaces), "kubernetes")
		if !sink && len(e.Actions) > 0 {
			add(p+".actions", "a source is what was read: name tables only (every read of them counts)")
		}
		for j, a := range e.Actions {
			if !slices.Contains(sqlActions, a) {
				add(fmt.Sprintf("%s.actions[%d]", p, j), "unknown action %q (one of %s)", a, strings.Join(sqlActions, ", "))
			}
		}
		for j, t := range e.Tables {
			if msg := policy.CheckObjectPattern(t); msg != "" {
				add(fmt.Sprintf("%s.tables[%d]", p, j), "%s", msg)
			}
		}
	case "http":
		only("tables", len(e.Tables), "postgres")
		only("actions", len(e.Actions), "postgres")
		only("resources", len(e.Resources), "kubernetes")
		only("namespaces", len(e.Namespaces), "kubernetes")
		for j, m := range e.Methods {
			if !slices.Contains(policy.HTTPMethods, m) {
				add(fmt.Sprintf("%s.methods[%d]", p, j), "unknown method %q (one of %s)", m, strings.Join(policy.HTTPMethods, ", "))
			}
		}
		for j, path := range e.Paths {
			if msg := policy.CheckPathPattern(path); msg != "" {
				add(fmt.Sprintf("%s.paths[%d]", p, j), "%s", msg)
			}
		}
	case "kubernetes":
		only("tables", len(e.Tables), "postgres")
		only("actions", len(e.Actions), "postgres")
		only("paths", len(e.Paths), "http")
		only("methods", len(e.Methods), "http")
		for j, r := range e.Resources {
			if msg := policy.CheckResourcePattern(r); msg != "" {
				add(fmt.Sprintf("%s.resources[%d]", p, j), "%s", msg)
			}
		}
		for j, ns := range e.Namespaces {
			if msg := policy.CheckNamespacePattern(ns); msg != "" {
				add(fmt.Sprintf("%s.namespaces[%d]", p, j), "%s", msg)
			}
		}
	default:
		add(p+".backend", "backend %q is of kind %q, which flow rules do not cover in this version", e.Backend, kind)
	}
	return errs
}

// Describe says in one line what the rule does, for `warden check`.
func (r *Rule) Describe() string {
	s := fmt.Sprintf("%s: values read from %s may not be sent to %s for %s; %s", r.Name, r.From.Describe(), r.To.Describe(), r.Window, r.Action)
	if r.Action == ActionApprove {
		s += " (held for " + who(*r.Approvers) + ")"
	}
	return s
}

// Describe says in one line what the budget allows.
func (b *Budget) Describe() string {
	var caps []string
	if b.Rows > 0 {
		caps = append(caps, fmt.Sprintf("%d rows", b.Rows))
	}
	if b.Bytes > 0 {
		caps = append(caps, fmt.Sprintf("%d bytes", b.Bytes))
	}
	s := fmt.Sprintf("role %s may receive %s from %s per %s; past it, %s", b.Role, strings.Join(caps, " and "), b.Backend, b.Per, b.Action)
	if b.Action == ActionApprove {
		s += " (held for " + who(*b.Approvers) + ")"
	}
	return s
}

// Describe names the backend and what on it the endpoint selects.
func (e *Endpoint) Describe() string {
	var parts []string
	if len(e.Actions) > 0 {
		parts = append(parts, strings.Join(e.Actions, ", "))
	}
	if len(e.Methods) > 0 {
		parts = append(parts, strings.Join(e.Methods, ", "))
	}
	for _, l := range [][]string{e.Tables, e.Paths, e.Resources} {
		if len(l) > 0 {
			parts = append(parts, strings.Join(l, ", "))
		}
	}
	if len(e.Namespaces) > 0 {
		parts = append(parts, "in "+strings.Join(e.Namespaces, ", "))
	}
	if len(parts) == 0 {
		return e.Backend
	}
	return e.Backend + " (" + strings.Join(parts, " ") + ")"
}

func who(a warden.Approvers) string {
	var w []string
	if a.User {
		w = append(w, "the calling user")
	}
	if len(a.Groups) > 0 {
		w = append(w, "groups "+strings.Join(a.Groups, ", "))
	}
	if len(a.Subjects) > 0 {
		w = append(w, "subjects "+strings.Join(a.Subjects, ", "))
	}
	return strings.Join(w, " or ")
}
