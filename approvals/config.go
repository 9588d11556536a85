package approvals

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

// Config is the `approvals` section of warden.yaml: rules checked in
// order; the first rule that matches a call decides whether and how it is
// held. Put narrow rules before broad ones.
type Config []*Rule

// Rule holds the calls on one backend that match its conditions until a
// human approves them.
//
// Conditions: When lists what the call does (SQL actions such as delete
// or ddl, update_without_where and delete_without_where; HTTP methods;
// get and list on Kubernetes); Tables (postgres), Paths (http), Resources
// and Namespaces (kubernetes) narrow it to objects; RowsAbove (postgres)
// requires the planner's estimate to exceed a number. A call
// matches when one of its operations meets When and the object filters,
// and the estimate, if asked for, is above the threshold or cannot be
// made. A rule with no conditions holds every call on its backend.
type Rule struct {
	Name       string   `yaml:"name"`
	Backend    string   `yaml:"backend"`
	When       []string `yaml:"when"`
	Tables     []string `yaml:"tables"`
	Paths      []string `yaml:"paths"`
	Resources  []string `yaml:"resources"`
	Namespaces []string `yaml:"namespaces"`
	RowsAbove  *int64   `yaml:"rows_above"`
	// Approvers is `user` or {groups, subjects, user}; user is true
	// (confirm in the MCP client) or browser (confirm in the console).
	Approvers *warden.Approvers `yaml:"approvers"`
	// Timeout is how long a request stays pending, and how long an
	// approval stays usable once granted. Default 10m.
	Timeout warden.Duration `yaml:"timeout"`
	// Wait is how long a call held for reviewers waits for a decision
	// before it returns as pending with its approval_id. Default 60s.
	Wait   *warden.Duration `yaml:"wait"`
	Notify *Notify          `yaml:"notify"`
	// Ref names the rule in refusals (default approvals.NAME); flow
	// rules and budgets that hold calls through Service.Hold set it.
	Ref string `yaml:"-"`
}

// Notify tells reviewers about new requests.
type Notify struct {
	// Webhook receives a JSON POST for each new request: a
	// Slack-compatible `text` and the request under `approval`.
	Webhook string `yaml:"webhook"`
}

// Defaults.
const (
	DefaultTimeout = 10 * time.Minute
	DefaultWait    = 60 * time.Second
)

// SQL conditions beyond the table actions.
const (
	UpdateWithoutWhere = "update_without_where"
	DeleteWithoutWhere = "delete_without_where"
)

// sqlWhen is what `when` may name on a postgres backend.
var sqlWhen = append(slices.Clone(warden.TableVerbs), warden.VerbExecute, UpdateWithoutWhere, DeleteWithoutWhere)

var ruleName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Validate checks the rules against the configured backends (name → kind)
// and fills in defaults. Errors carry key paths relative to `approvals`.
func (c Config) Validate(backends map[string]string) error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	seen := map[string]bool{}
	for i, r := range c {
		p := fmt.Sprintf("[%d]", i)
		if r == nil {
			add(p, "rule is empty")
			continue
		}
		switch {
		case r.Name == "":
			add(p+".name", "missing name (it names the rule in refusals and in the recording)")
		case !ruleName.MatchString(r.Name):
			add(p+".name", "%q is not a rule name: use lower-case letters, digits, '-', '_' and '.'", r.Name)
		case seen[r.Name]:
			add(p+".name", "rule %q is defined twice", r.Name)
		}
		seen[r.Name] = true
		kind, ok := backends[r.Backend]
		switch {
		case r.Backend == "":
			add(p+".backend", "missing backend")
		case !ok:
			add(p+".backend", "unknown backend %q (configured: %s)", r.Backend, strings.Join(slices.Sorted(maps.Keys(backends)), ", "))
		}
		if ok {
			errs = append(errs, r.validateConditions(p, kind)...)
		}
		switch a := r.Approvers; {
		case a == nil:
			add(p+".approvers", "missing approvers: `user` (the caller confirms in the client) or {groups: [...], subjects: [...]}")
		case !a.User && !a.Reviewers():
			add(p+".approvers", "no approvers: name groups or subjects, or set user: true")
		case a.Browser && a.Reviewers():
			add(p+".approvers.user", "user: browser cannot be combined with groups or subjects in this version: the calling user confirms in the console, alone")
		}
		if r.Timeout == 0 {
			r.Timeout = warden.Duration(DefaultTimeout)
		}
		if time.Duration(r.Timeout) < 10*time.Second {
			add(p+".timeout", "%s is too short for a human to decide: use at least 10s", r.Timeout)
		}
		if r.Wait == nil {
			w := warden.Duration(DefaultWait)
			r.Wait = &w
		}
		if *r.Wait > r.Timeout {
			add(p+".wait", "wait (%s) is longer than timeout (%s): the request would expire while the call waits", *r.Wait, r.Timeout)
		}
		if n := r.Notify; n != nil {
			// The URL is not echoed: webhook URLs carry their secret.
			u, err := url.Parse(n.Webhook)
			if n.Webhook == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add(p+".notify.webhook", "not an http(s) URL")
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) validateConditions(p, kind string) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	var when []string
	only := func(key string, set bool, kinds string) {
		if set {
			add(p+"."+key, "%s is a condition for %s backends; %q is %s", key, kinds, r.Backend, kind)
		}
	}
	switch kind {
	case "postgres":
		when = sqlWhen
		only("paths", len(r.Paths) > 0, "http")
		only("resources", len(r.Resources) > 0, "kubernetes")
		only("namespaces", len(r.Namespaces) > 0, "kubernetes")
	case "http":
		when = policy.HTTPMethods
		only("tables", len(r.Tables) > 0, "postgres")
		only("rows_above", r.RowsAbove != nil, "postgres")
		only("resources", len(r.Resources) > 0, "kubernetes")
		only("namespaces", len(r.Namespaces) > 0, "kubernetes")
	case "kubernetes":
		when = []string{warden.VerbGet, warden.VerbList}
		only("tables", len(r.Tables) > 0, "postgres")
		only("paths", len(r.Paths) > 0, "http")
		only("rows_above", r.RowsAbove != nil, "postgres")
		for j, res := range r.Resources {
			if msg := policy.CheckResourcePattern(res); msg != "" {
				add(fmt.Sprintf("%s.resources[%d]", p, j), "%s", msg)
			}
		}
		for j, ns := range r.Namespaces {
			if msg := policy.CheckNamespacePattern(ns); msg != "" {
				add(fmt.Sprintf("%s.namespaces[%d]", p, j), "%s", msg)
			}
		}
	default:
		add(p+".backend", "backend %q is of kind %q, which approval rules do not cover in this version", r.Backend, kind)
		return errs
	}
	for j, w := range r.When {
		if !slices.Contains(when, w) {
			add(fmt.Sprintf("%s.when[%d]", p, j), "unknown condition %q for a %s backend (one of %s)", w, kind, strings.Join(when, ", "))
		}
	}
	for j, t := range r.Tables {
		if msg := policy.CheckObjectPattern(t); msg != "" {
			add(fmt.Sprintf("%s.tables[%d]", p, j), "%s", msg)
		}
	}
	for j, path := range r.Paths {
		if msg := policy.CheckPathPattern(path); msg != "" {
			add(fmt.Sprintf("%s.paths[%d]", p, j), "%s", msg)
		}
	}
	if r.RowsAbove != nil && *r.RowsAbove < 0 {
		add(p+".rows_above", "must be zero or more")
	}
	return errs
}

// Describe says in one line who decides under the rule, for refusals and
// `warden check`.
func (r *Rule) Describe() string {
	var who []string
	a := r.Approvers
	switch {
	case a.User && a.Browser:
		who = append(who, "the calling user, in the browser (the console's confirmation page, signed in through the identity provider)")
	case a.User:
		who = append(who, "the calling user")
	}
	if len(a.Groups) > 0 {
		who = append(who, "groups "+strings.Join(a.Groups, ", "))
	}
	if len(a.Subjects) > 0 {
		who = append(who, "subjects "+strings.Join(a.Subjects, ", "))
	}
	s := fmt.Sprintf("%s on %s: approved by %s, within %s", r.Name, r.Backend, strings.Join(who, " or "), r.Timeout)
	if r.RowsAbove != nil {
		s += fmt.Sprintf(" (held when the estimate is above %d rows, or cannot be made)", *r.RowsAbove)
	}
	return s
}
