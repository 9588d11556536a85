package mask

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/warden-mcp/warden"
)

// JSONPaths is the `masking.json_paths` rules of one http backend: a rule
// for every value a JSONPath selects in a JSON response body, for example
// {"$.data[*].card.number": last4}.
//
// The supported JSONPath subset: `$` (the whole body), `.name` and
// `['name']` (a member), `[n]` (an array element), `[*]` and `.*` (every
// element or member), and `..name` (the member name at any depth). Filters,
// slices and unions are not supported and are a validation error.
type JSONPaths map[string]*Rule

// Validate checks every path parses and every rule is valid; paths are
// relative to the backend's entry, with the JSONPath in brackets
// (`["$.data[*].card"]: ...`). Column-only rule options are refused.
func (p JSONPaths) Validate() error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(p)) {
		at := "[" + strconv.Quote(k) + "]"
		if _, why := parseJSONPath(k); why != "" {
			errs = append(errs, warden.FieldErrorf(at, "%s", why))
			continue
		}
		r := p[k]
		if r == nil {
			errs = append(errs, warden.FieldErrorf(at, "missing rule"))
			continue
		}
		if r.OnExpression == "deny" {
			errs = append(errs, warden.FieldErrorf(at+".on_expression", "applies to column rules only"))
			continue
		}
		if r.AllowFilter {
			errs = append(errs, warden.FieldErrorf(at+".allow_filter", "applies to column rules only"))
			continue
		}
		if err := r.Validate(); err != nil {
			errs = append(errs, warden.Under(at, err))
		}
	}
	return errors.Join(errs...)
}

// ValidateJSONPaths checks `masking.json_paths` (backend → rules); paths are
// relative to `masking`. Backends are checked by the caller, which knows
// their kinds.
func ValidateJSONPaths(byBackend map[string]JSONPaths) error {
	backends := make([]string, 0, len(byBackend))
	for b := range byBackend {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	var errs []error
	for _, b := range backends {
		errs = append(errs, warden.Under("json_paths."+b, byBackend[b].Validate()))
	}
	return errors.Join(errs...)
}

// JSONMasks applies one backend's JSONPaths rules to decoded JSON bodies.
// It is built once and is safe for concurrent use.
type JSONMasks struct {
	rules  []jsonPathRule
	masker *Masker
}

type jsonPathRule struct {
	path *JSONPath
	rule *Rule
	desc string
}

// NewJSONMasks validates paths and compiles them; m applies the strategies
// (its key matters only for the hash strategy).
func NewJSONMasks(paths JSONPaths, m *Masker) (*JSONMasks, error) {
	if err := paths.Validate(); err != nil {
		return nil, err
	}
	j := &JSONMasks{masker: m}
	for _, k := range slices.Sorted(maps.Keys(paths)) {
		p, _ := parseJSONPath(k)
		j.rules = append(j.rules, jsonPathRule{path: p, rule: paths[k], desc: paths[k].Strategy + " (" + k + ")"})
	}
	return j, nil
}

// Len returns the number of rules; a nil JSONMasks has none.
func (j *JSONMasks) Len() int {
	if j == nil {
		return 0
	}
	return len(j.rules)
}

// Apply masks every value a rule selects in v, a value decoded by
// encoding/json (map[string]any, []any, string, json.Number, float64,
// bool, nil), and returns the masked value and a description of each rule
// that masked something ("last4 ($.data[*].card.number)"), in path order.
// v is modified in place. A selected scalar becomes the rule's strategy
// applied to it; a selected object or array is replaced whole by
// "[masked]" (or null for the null strategy), since no strategy can keep
// part of a structure meaningfully.
func (j *JSONMasks) Apply(v any) (any, []string) {
	if j == nil {
		return v, nil
	}
	var fired []string
	for _, r := range j.rules {
		hit := false
		v = r.path.replace(v, func(old any) any {
			hit = true
			return j.mask(r.rule, old)
		})
		if hit {
			fired = append(fired, r.desc)
		}
	}
	return v, fired
}

func (j *JSONMasks) mask(r *Rule, v any) any {
	switch v.(type) {
	case map[string]any, []any:
		if r.Strategy == "null" {
			return nil
		}
		return Redacted
	}
	return j.masker.Apply(r, v)
}

// JSONPath is a parsed path of the supported subset (see JSONPaths).
type JSONPath struct {
	raw   string
	steps []pathStep
}

type stepKind uint8

const (
	stepMember    stepKind = iota // .name, ['name']
	stepIndex                     // [n]
	stepWildcard                  // [*], .*
	stepRecursive                 // ..name
)

type pathStep struct {
	kind  stepKind
	name  string
	index int
}

// String returns the path as written.
func (p *JSONPath) String() string { return p.raw }

// ParseJSONPath parses one path of the supported subset; the error says
// what is wrong and what is supported.
func ParseJSONPath(s string) (*JSONPath, error) {
	p, why := parseJSONPath(s)
	if why != "" {
		return nil, fmt.Errorf("JSONPath %q: %s", s, why)
	}
	return p, nil
}

func parseJSONPath(s string) (*JSONPath, string) {
	if !strings.HasPrefix(s, "$") {
		return nil, "must start with $ (like $.data[*].card.number)"
	}
	p := &JSONPath{raw: s}
	i := 1
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], ".."):
			name, n := dotName(s[i+2:])
			if name == "" {
				return nil, ".. must be followed by a member name (like $..email)"
			}
			p.steps = append(p.steps, pathStep{kind: stepRecursive, name: name})
			i += 2 + n
		case s[i] == '.':
			if strings.HasPrefix(s[i+1:], "*") {
				p.steps = append(p.steps, pathStep{kind: stepWildcard})
				i += 2
				continue
			}
			name, n := dotName(s[i+1:])
			if name == "" {
				return nil, fmt.Sprintf("expected a member name after . at offset %d", i)
			}
			p.steps = append(p.steps, pathStep{kind: stepMember, name: name})
			i += 1 + n
		case s[i] == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Sprintf("unclosed [ at offset %d", i)
			}
			step, why := bracketStep(s[i+1 : i+end])
			if why != "" {
				return nil, why
			}
			p.steps = append(p.steps, step)
			i += end + 1
		default:
			return nil, fmt.Sprintf("unexpected %q at offset %d", s[i], i)
		}
	}
	return p, ""
}

// dotName reads a member name after `.`: anything up to the next `.` or
// `[`, without quotes, spaces or `*`.
func dotName(s string) (string, int) {
	n := 0
	for n < len(s) {
		c := s[n]
		if c == '.' || c == '[' || c == ']' || c == '*' || c == '\'' || c == '"' || c == ' ' || c < 0x20 {
			break
		}
		n++
	}
	return s[:n], n
}

func bracketStep(inner string) (pathStep, string) {
	switch {
	case inner == "*":
		return pathStep{kind: stepWildcard}, ""
	case len(inner) >= 2 && (inner[0] == '\'' && inner[len(inner)-1] == '\'' || inner[0] == '"' && inner[len(inner)-1] == '"'):
		name := inner[1 : len(inner)-1]
		if strings.ContainsAny(name, `'"\`) {
			return pathStep{}, fmt.Sprintf("member name [%s] must not contain quotes or backslashes", inner)
		}
		return pathStep{kind: stepMember, name: name}, ""
	}
	n, err := strconv.Atoi(inner)
	if err != nil || n < 0 || strings.HasPrefix(inner, "+") {
		return pathStep{}, fmt.Sprintf("[%s] is not supported (use [*], [n] with n >= 0, or ['name']; filters, slices and unions are not supported)", inner)
	}
	return pathStep{kind: stepIndex, index: n}, ""
}

// replace calls f on every value the path selects in v and puts its result
// in place; it returns v, or f's result when the path is `$`.
func (p *JSONPath) replace(v any, f func(any) any) any {
	return replaceSteps(v, p.steps, f)
}

func replaceSteps(v any, steps []pathStep, f func(any) any) any {
	if len(steps) == 0 {
		return f(v)
	}
	st, rest := steps[0], steps[1:]
	switch st.kind {
	case stepMember:
		if m, ok := v.(map[string]any); ok {
			if e, ok := m[st.name]; ok {
				m[st.name] = replaceSteps(e, rest, f)
			}
		}
	case stepIndex:
		if a, ok := v.([]any); ok && st.index < len(a) {
			a[st.index] = replaceSteps(a[st.index], rest, f)
		}
	case stepWildcard:
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				t[k] = replaceSteps(e, rest, f)
			}
		case []any:
			for i, e := range t {
				t[i] = replaceSteps(e, rest, f)
			}
		}
	case stepRecursive:
		// The member at this level first, then every descendant; a
		// value that was just masked is no longer a container, so it
		// is not descended into.
		if m, ok := v.(map[string]any); ok {
			if e, ok := m[st.name]; ok {
				m[st.name] = replaceSteps(e, rest, f)
			}
		}
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				t[k] = replaceSteps(e, steps, f)
			}
		case []any:
			for i, e := range t {
				t[i] = replaceSteps(e, steps, f)
			}
		}
	}
	return v
}
