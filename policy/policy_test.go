package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

var backends = map[string]string{"shop": "postgres", "hr": "postgres"}

func testPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.New(policy.Config{
		"analyst": {
			Members: policy.Members{Groups: []string{"analysts"}},
			Grants: []*policy.Grant{
				{Backend: "shop", Tables: []string{"public.orders", "public.customers"}, Actions: []string{"select"}},
				{Backend: "shop", Tables: []string{"reporting.*"}, Actions: []string{"select", "insert"}},
			},
		},
		"dba": {
			Members: policy.Members{Subjects: []string{"root@example.com"}},
			Grants: []*policy.Grant{
				{Backend: "shop", Tables: []string{"*.*"}, Actions: warden.TableVerbs, Functions: []string{"pg_catalog.pg_read_file"}},
			},
		},
		"hr": {
			Members: policy.Members{Emails: []string{"hr@example.com"}},
			Grants:  []*policy.Grant{{Backend: "hr", Tables: []string{"public.people"}, Actions: []string{"select"}}},
		},
	}, backends)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sel(objects ...string) []warden.Op {
	var ops []warden.Op
	for _, o := range objects {
		ops = append(ops, warden.Op{Verb: "select", Object: o})
	}
	return ops
}

var (
	analyst = &warden.Caller{Subject: "alice@example.com", Groups: []string{"analysts"}, Method: "local"}
	dba     = &warden.Caller{Subject: "root@example.com", Method: "local"}
	hrUser  = &warden.Caller{Subject: "u-17", Email: "hr@example.com", Method: "oidc"}
	nobody  = &warden.Caller{Subject: "mallory@example.com", Groups: []string{"interns"}, Method: "local"}
)

func TestAuthorize(t *testing.T) {
	p := testPolicy(t)
	tests := []struct {
		name       string
		caller     *warden.Caller
		backend    string
		ops        []warden.Op
		want       warden.Effect
		reason     string // substring of the first reason
		allowedHas string // substring of some Allowed entry
	}{
		{"AllowsGrantedSelect", analyst, "shop", sel("public.orders"), warden.Allow, "roles.analyst.grants[0]", ""},
		{"AllowsJoinOfGrantedTables", analyst, "shop", sel("public.orders", "public.customers"), warden.Allow, "", ""},
		{"AllowsSchemaWildcard", analyst, "shop", []warden.Op{{Verb: "insert", Object: "reporting.daily"}}, warden.Allow, "roles.analyst.grants[1]", ""},
		{"AllowsStatementWithoutOps", analyst, "shop", nil, warden.Allow, "", ""},
		{"DeniesUngrantedTable", analyst, "shop", sel("public.payroll"), warden.Deny, "select public.payroll", "select on public.orders, public.customers"},
		{"DeniesOneUngrantedTableAmongGranted", analyst, "shop", sel("public.orders", "public.payroll"), warden.Deny, "select public.payroll", ""},
		{"DeniesUngrantedAction", analyst, "shop", []warden.Op{{Verb: "delete", Object: "public.orders"}}, warden.Deny, "delete public.orders", ""},
		{"DeniesWildcardActionNotGranted", analyst, "shop", []warden.Op{{Verb: "delete", Object: "reporting.daily"}}, warden.Deny, "delete reporting.daily", ""},
		{"WildcardDoesNotCrossSchemas", analyst, "shop", sel("reportingx.daily"), warden.Deny, "", ""},
		{"DeniesFunctionNotNamed", analyst, "shop", []warden.Op{{Verb: "execute", Object: "pg_catalog.pg_read_file"}}, warden.Deny, "execute pg_catalog.pg_read_file", ""},
		{"AllowsFunctionNamedByGrant", dba, "shop", []warden.Op{{Verb: "execute", Object: "pg_catalog.pg_read_file"}}, warden.Allow, "roles.dba.grants[0]", ""},
		{"DeniesBackendWithoutGrant", analyst, "hr", sel("public.people"), warden.Deny, `covers backend "hr"`, "backends you may use: shop"},
		{"DeniesUnknownBackend", analyst, "nope", nil, warden.Deny, "not configured", "shop"},
		{"DeniesCallerWithoutRoles", nobody, "shop", sel("public.orders"), warden.Deny, "holds no role", ""},
		{"DeniesNilCaller", nil, "shop", sel("public.orders"), warden.Deny, "no authenticated caller", ""},
		{"MatchesMembersByEmail", hrUser, "hr", sel("public.people"), warden.Allow, "roles.hr.grants[0]", ""},
		{"IsCaseSensitiveOnIdentifiers", analyst, "shop", sel("public.Orders"), warden.Deny, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Authorize(tt.caller, &warden.Action{Tool: "sql_query", Backend: tt.backend, Ops: tt.ops})
			if d.Effect != tt.want {
				t.Fatalf("Authorize(%v, %v) = %s (%v); want %s", tt.caller, tt.ops, d.Effect, d.Reasons, tt.want)
			}
			if len(d.Reasons) == 0 || !strings.Contains(d.Reasons[0], tt.reason) && !strings.Contains(d.Rule, tt.reason) {
				t.Errorf("Authorize(%v) reasons = %q, rule %q; want mention of %q", tt.ops, d.Reasons, d.Rule, tt.reason)
			}
			if tt.allowedHas != "" && !slices.ContainsFunc(d.Allowed, func(s string) bool { return strings.Contains(s, tt.allowedHas) }) {
				t.Errorf("Authorize(%v) allowed = %q; want an entry containing %q", tt.ops, d.Allowed, tt.allowedHas)
			}
			if d.Effect == warden.Deny && d.Err() == nil {
				t.Errorf("a denial's Err() is nil")
			}
		})
	}
}

func TestBackendsListsOnlyGrantedBackendsOfKind(t *testing.T) {
	p := testPolicy(t)
	if got := p.Backends(analyst, "postgres"); !slices.Equal(got, []string{"shop"}) {
		t.Errorf("Backends(analyst) = %v; want [shop]", got)
	}
	if got := p.Backends(nobody, "postgres"); len(got) != 0 {
		t.Errorf("Backends(nobody) = %v; want none", got)
	}
	if got := p.Backends(analyst, "kubernetes"); len(got) != 0 {
		t.Errorf("Backends(analyst, kubernetes) = %v; want none", got)
	}
}

func TestValidateNamesKeyPaths(t *testing.T) {
	tests := []struct {
		name string
		cfg  policy.Config
		want string
	}{
		{"UnknownBackend", policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}},
			Grants: []*policy.Grant{{Backend: "shp", Tables: []string{"public.t"}, Actions: []string{"select"}}}}},
			`a.grants[0].backend: unknown backend "shp" (configured: hr, shop)`},
		{"UnqualifiedTable", policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}},
			Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"orders"}, Actions: []string{"select"}}}}},
			`a.grants[0].tables[0]: "orders" must be schema-qualified`},
		{"UnknownAction", policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}},
			Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"public.t"}, Actions: []string{"drop"}}}}},
			`a.grants[0].actions[0]: unknown action "drop"`},
		{"MissingActions", policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}},
			Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"public.t"}}}}},
			`a.grants[0].actions: missing actions`},
		{"NoMembers", policy.Config{"a": {Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"public.t"}, Actions: []string{"select"}}}}},
			`a.members: role has no members`},
		{"BadPattern", policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}},
			Grants: []*policy.Grant{{Backend: "shop", Tables: []string{"public.[x"}, Actions: []string{"select"}}}}},
			`a.grants[0].tables[0]: "public.[x" is not a valid pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate(backends)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}
