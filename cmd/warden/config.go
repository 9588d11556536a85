package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/console"
	"github.com/warden-mcp/warden/flows"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/mcp"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
	httptool "github.com/warden-mcp/warden/tools/http"
	"github.com/warden-mcp/warden/tools/kube"
	"github.com/warden-mcp/warden/tools/sql"
	"go.yaml.in/yaml/v3"
)

// Config is warden.yaml: each section belongs to the package that consumes
// it; this file only composes them.
type Config struct {
	Store    StoreConfig        `yaml:"store"`
	Identity mcp.IdentityConfig `yaml:"identity"`
	// HTTP bounds the edges of the HTTP transports.
	HTTP mcp.HTTPConfig `yaml:"http"`
	// Results shapes successful tool results.
	Results  mcp.ResultsConfig  `yaml:"results"`
	Backends map[string]Backend `yaml:"backends"`
	Roles    policy.Config      `yaml:"roles"`
	Masking  *mask.Config       `yaml:"masking"`
	// Approvals are checked in order; the first rule that matches a call
	// decides whether it waits for a human.
	Approvals approvals.Config `yaml:"approvals"`
	// Flows keep data read from one backend from leaving through
	// another; Budgets cap what a role may read per window.
	Flows   flows.Rules   `yaml:"flows"`
	Budgets flows.Budgets `yaml:"budgets"`
	// Log is warden's own log; Observe where metrics and probes are
	// served (observe.go).
	Log     LogConfig     `yaml:"log"`
	Observe ObserveConfig `yaml:"observe"`
	// Console is the reviewer's console (approvals and audit in a
	// browser); nil leaves it off.
	Console *console.Config `yaml:"console"`
}

// StoreConfig is `store`: either "sqlite:PATH" or "postgres://...", or
// {url: ..., retention: 90d, keys: DIR, instance: NAME, relay: false}.
type StoreConfig struct {
	URL string `yaml:"url"`
	// Retention is how long records are kept: a duration of at least an
	// hour (90d, 2160h), or "forever". Default 90d.
	Retention string `yaml:"retention"`
	// Keep is Retention parsed; 0 keeps records forever.
	Keep time.Duration `yaml:"-"`
	// Keys is the directory of the signing key, the signed head and the
	// secrets file (default: beside the database). Relative to the config
	// file.
	Keys string `yaml:"keys"`
	// Instance names this process's hash chain in a PostgreSQL store
	// several instances share (default: the host name); each instance
	// needs its own. ${VAR} expands, so one config can serve them all.
	Instance string `yaml:"instance"`
	// Relay (SQLite; default true) lets wardens sharing the file commit
	// their call records through one of them, over a Unix socket in the
	// user's runtime directory (mode 0600, same user only); false makes each
	// warden write its own, taking turns at the file's write lock.
	Relay *bool `yaml:"relay"`
}

// Options are the recorder options the store config sets.
func (c StoreConfig) Options() recorder.Options {
	return recorder.Options{KeyDir: c.Keys, Instance: c.Instance, NoRelay: c.Relay != nil && !*c.Relay}
}

// DefaultRetention is how long records are kept when store.retention is
// not set.
const DefaultRetention = 90 * 24 * time.Hour

// Backend is one entry of `backends`; Kind selects the consumer.
type Backend struct {
	Kind     string
	Postgres *sql.Config
	HTTP     *httptool.Config
	Kube     *kube.Config
}

// DefaultStore is where the recording goes when `store` is not set.
const DefaultStore = "sqlite:warden.db"

// LoadConfig reads, expands, strictly decodes and validates a config file.
// Every error names the key path it is about.
func LoadConfig(path string, getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(data, getenv)
}

// ParseConfig is LoadConfig on bytes.
func ParseConfig(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	return decodeConfig(root, getenv, (*Config).validate)
}

// LoadRecordingConfig reads only the sections the commands that work on
// the recording need, store and identity, so `warden sessions ...` and
// `warden approvals ...` run on a store and its config without the
// backends' secrets: ${VAR}s in other sections are neither expanded nor
// required, and those sections are not validated.
func LoadRecordingConfig(path string, getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("config is not a mapping")
	}
	kept := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i].Value; k == "store" || k == "identity" {
			kept.Content = append(kept.Content, root.Content[i], root.Content[i+1])
		}
	}
	return decodeConfig(kept, getenv, func(c *Config) error {
		return errors.Join(c.validateStore(), warden.Under("identity", c.Identity.Validate()))
	})
}

// parseYAML returns the document's root node.
func parseYAML(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config is not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("config is empty")
	}
	return doc.Content[0], nil
}

// decodeConfig expands ${VAR}s in root, decodes it strictly and validates
// the result.
func decodeConfig(root *yaml.Node, getenv func(string) (string, bool), validate func(*Config) error) (*Config, error) {
	var errs []error
	expand(root, "", getenv, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := &Config{}
	decodeStrict(root, reflect.ValueOf(cfg).Elem(), "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) validate() error {
	errs := []error{c.validateStore()}
	errs = append(errs, warden.Under("identity", c.Identity.Validate()), warden.Under("http", c.HTTP.Validate()),
		warden.Under("log", c.Log.Validate()), warden.Under("observe", c.Observe.Validate()))
	if m := c.Masking; m != nil {
		errs = append(errs, warden.Under("masking", m.Validate()), warden.Under("masking", m.ValidateColumns()),
			warden.Under("masking", mask.ValidateJSONPaths(m.JSONPaths)))
		for _, backend := range slices.Sorted(maps.Keys(m.JSONPaths)) {
			switch b, ok := c.Backends[backend]; {
			case !ok:
				errs = append(errs, warden.FieldErrorf("masking.json_paths."+backend, "unknown backend %q (configured: %s)", backend, strings.Join(slices.Sorted(maps.Keys(c.Backends)), ", ")))
			case b.Kind != "http":
				errs = append(errs, warden.FieldErrorf("masking.json_paths."+backend, "JSON path rules apply to http backends; %q is %s", backend, b.Kind))
			}
		}
		for _, backend := range slices.Sorted(maps.Keys(m.Columns)) {
			switch b, ok := c.Backends[backend]; {
			case !ok:
				errs = append(errs, warden.FieldErrorf("masking.columns."+backend, "unknown backend %q (configured: %s)", backend, strings.Join(slices.Sorted(maps.Keys(c.Backends)), ", ")))
			case b.Kind != "postgres":
				errs = append(errs, warden.FieldErrorf("masking.columns."+backend, "column rules apply to postgres backends; %q is %s", backend, b.Kind))
			}
		}
	}
	errs = append(errs, warden.Under("approvals", c.Approvals.Validate(c.BackendKinds())))
	errs = append(errs, warden.Under("flows", c.Flows.Validate(c.BackendKinds())))
	errs = append(errs, warden.Under("budgets", c.Budgets.Validate(c.BackendKinds(), slices.Sorted(maps.Keys(c.Roles)))))
	for i, r := range c.Approvals {
		if r != nil && r.Approvers != nil && r.Approvers.Browser && (c.Console == nil || c.Console.Issuer == "") {
			errs = append(errs, warden.FieldErrorf(fmt.Sprintf("approvals[%d].approvers.user", i),
				"user: browser needs the console with an issuer (console.issuer): the calling user confirms on its confirmation page, signed in through the identity provider"))
		}
	}
	if c.Console != nil {
		errs = append(errs, warden.Under("console", c.Console.Validate()))
		if c.Console.Issuer == "" && (c.Identity.Local == nil || !c.Identity.Local.Reviewer) {
			errs = append(errs, warden.FieldErrorf("console.issuer", "missing issuer: reviewers sign in to the console through an OpenID Connect issuer; "+
				"without one, only identity.local with reviewer: true may use it (on a loopback listener)"))
		}
	}
	if len(c.Backends) == 0 {
		errs = append(errs, warden.FieldErrorf("backends", "no backends configured"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Backends)) {
		b := c.Backends[name]
		if b.Postgres != nil {
			errs = append(errs, warden.Under("backends."+name, b.Postgres.Validate()))
		}
		if b.HTTP != nil {
			errs = append(errs, warden.Under("backends."+name, b.HTTP.Validate()))
		}
		if b.Kube != nil {
			errs = append(errs, warden.Under("backends."+name, b.Kube.Validate()))
			// Objects carry environment values and ConfigMap data: the
			// value detectors must see them.
			if c.Masking == nil || len(c.Masking.Detectors) == 0 {
				errs = append(errs, warden.FieldErrorf("backends."+name, "kubernetes objects carry environment values and ConfigMap data, "+
					"which warden scans with the value detectors: configure masking.detectors (for example [secret_token, credit_card, email, us_ssn, iban])"))
			}
		}
	}
	if len(c.Roles) == 0 {
		errs = append(errs, warden.FieldErrorf("roles", "no roles configured: every call would be denied"))
	}
	errs = append(errs, warden.Under("roles", c.Roles.Validate(c.BackendKinds())))
	return errors.Join(errs...)
}

// validateStore checks and completes `store`.
func (c *Config) validateStore() error {
	var errs []error
	if c.Store.URL == "" {
		c.Store.URL = DefaultStore
	}
	switch {
	case postgres.IsURL(c.Store.URL):
		// Never echo this URL: it may hold a password.
		if c.Store.Keys == "" {
			errs = append(errs, warden.FieldErrorf("store.keys", "a PostgreSQL store needs the directory of the signing key every instance shares"))
		}
		if c.Store.Relay != nil {
			errs = append(errs, warden.FieldErrorf("store.relay", "applies to a SQLite store only: PostgreSQL instances each write their own chain"))
		}
	case !strings.HasPrefix(c.Store.URL, "sqlite:") || c.Store.URL == "sqlite:":
		scheme, _, _ := strings.Cut(c.Store.URL, ":")
		if strings.ContainsAny(scheme, "/@") {
			scheme = "(unreadable)"
		}
		errs = append(errs, warden.FieldErrorf("store", "scheme %q is not supported: use sqlite:PATH or postgres://...", scheme))
	}
	switch c.Store.Retention {
	case "":
		c.Store.Keep = DefaultRetention
	case "forever":
		c.Store.Keep = 0
	default:
		// Under an hour is almost certainly a slip (90s for 90d), and
		// retention deletes the recording.
		d, err := warden.ParseDuration(c.Store.Retention)
		if err != nil || d < time.Hour {
			errs = append(errs, warden.FieldErrorf("store.retention", "%q is not a retention: use a duration of at least 1h (90d, 2160h) or forever", c.Store.Retention))
		}
		c.Store.Keep = d
	}
	return errors.Join(errs...)
}

// BackendKinds maps backend names to kinds.
func (c *Config) BackendKinds() map[string]string {
	out := map[string]string{}
	for name, b := range c.Backends {
		out[name] = b.Kind
	}
	return out
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} in scalar values (never keys) with the
// environment's value; `$$` is a literal `$`. An unset variable is an
// error, not an empty string: an empty DSN or token must not slip through.
func expand(n *yaml.Node, path string, getenv func(string) (string, bool), errs *[]error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			name := m[2 : len(m)-1]
			v, ok := getenv(name)
			if !ok {
				*errs = append(*errs, warden.FieldErrorf(path, "environment variable %s is not set", name))
			}
			return v
		})
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expand(n.Content[i+1], join(path, n.Content[i].Value), getenv, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expand(c, fmt.Sprintf("%s[%d]", path, i), getenv, errs)
		}
	case yaml.AliasNode:
		*errs = append(*errs, warden.FieldErrorf(path, "YAML aliases are not supported"))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var nodeType = reflect.TypeOf(yaml.Node{})

// decodeStrict decodes n into v, reporting unknown keys and type errors at
// their key path.
func decodeStrict(n *yaml.Node, v reflect.Value, path string, errs *[]error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch {
	case v.Type() == nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case v.Kind() == reflect.Pointer:
		if v.Type().Elem() == nodeType {
			c := *n
			v.Set(reflect.ValueOf(&c))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		decodeStrict(n, v.Elem(), path, errs)
		return
	}
	switch t := v.Addr().Interface().(type) {
	case *mask.Rule:
		if n.Kind == yaml.ScalarNode {
			t.Strategy = n.Value // `last4` is short for {strategy: last4}
			return
		}
	case *StoreConfig:
		if n.Kind == yaml.ScalarNode {
			t.URL = n.Value
			return
		}
	case *warden.Approvers:
		if n.Kind == yaml.ScalarNode {
			if n.Value != "user" {
				*errs = append(*errs, warden.FieldErrorf(path, "%q is not an approver: use `user` (the calling user confirms in the client) or {groups: [...], subjects: [...]}", n.Value))
			}
			t.User = true // `user` is short for {user: true}
			return
		}
		if n.Kind == yaml.MappingNode {
			// user: true | false | browser. The rest decodes as usual.
			rest := *n
			rest.Content = nil
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "user" && v.Kind == yaml.ScalarNode {
					switch v.Value {
					case "browser":
						t.User, t.Browser = true, true
						continue
					case "true", "false":
					default:
						*errs = append(*errs, warden.FieldErrorf(join(path, "user"), "%q is not a way to confirm: use true (the calling user confirms in the MCP client) or browser (the calling user confirms in the console, signed in through the identity provider)", v.Value))
						continue
					}
				}
				rest.Content = append(rest.Content, k, v)
			}
			if len(rest.Content) != len(n.Content) {
				type plain warden.Approvers // no case for it above
				p := plain(*t)
				decodeStrict(&rest, reflect.ValueOf(&p).Elem(), path, errs)
				user, browser := t.User, t.Browser
				*t = warden.Approvers(p)
				t.User, t.Browser = t.User || user, browser
				return
			}
		}
	case *Backend:
		decodeBackend(n, t, path, errs)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, warden.FieldErrorf(path, "expected a mapping"))
			return
		}
		fields := map[string]int{}
		var known []string
		for i := 0; i < v.NumField(); i++ {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = i
				known = append(known, tag)
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			fi, ok := fields[key]
			if !ok {
				*errs = append(*errs, warden.FieldErrorf(join(path, key), "unknown key (known keys: %s)", strings.Join(known, ", ")))
				continue
			}
			if seen[key] {
				*errs = append(*errs, warden.FieldErrorf(join(path, key), "key appears twice"))
			}
			seen[key] = true
			decodeStrict(n.Content[i+1], v.Field(fi), join(path, key), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, warden.FieldErrorf(path, "expected a mapping"))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if v.MapIndex(reflect.ValueOf(key)).IsValid() {
				*errs = append(*errs, warden.FieldErrorf(join(path, key), "key appears twice"))
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			decodeStrict(n.Content[i+1], elem, join(path, key), errs)
			v.SetMapIndex(reflect.ValueOf(key), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, warden.FieldErrorf(path, "expected a list"))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			decodeStrict(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			*errs = append(*errs, warden.FieldErrorf(path, "expected a single value"))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			*errs = append(*errs, warden.FieldErrorf(path, "%s", scalarError(v, n.Value)))
		}
	}
}

func scalarError(v reflect.Value, got string) string {
	switch v.Interface().(type) {
	case warden.Duration:
		return fmt.Sprintf("invalid duration %q (use forms like 5s, 10m, 90d)", got)
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("expected a whole number, got %q", got)
	case reflect.Bool:
		return fmt.Sprintf("expected true or false, got %q", got)
	}
	return fmt.Sprintf("invalid value %q", got)
}

// decodeBackend reads `kind` and decodes the rest into that kind's config.
func decodeBackend(n *yaml.Node, b *Backend, path string, errs *[]error) {
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, warden.FieldErrorf(path, "expected a mapping with a kind"))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			b.Kind = n.Content[i+1].Value
		}
	}
	switch b.Kind {
	case "postgres":
		b.Postgres = &sql.Config{}
		decodeStrict(n, reflect.ValueOf(b.Postgres).Elem(), path, errs)
	case "http":
		b.HTTP = &httptool.Config{}
		decodeStrict(n, reflect.ValueOf(b.HTTP).Elem(), path, errs)
	case "kubernetes":
		b.Kube = &kube.Config{}
		decodeStrict(n, reflect.ValueOf(b.Kube).Elem(), path, errs)
	case "":
		*errs = append(*errs, warden.FieldErrorf(join(path, "kind"), "missing kind (postgres, http, kubernetes)"))
	default:
		*errs = append(*errs, warden.FieldErrorf(join(path, "kind"), "unknown kind %q (postgres, http, kubernetes)", b.Kind))
	}
}
