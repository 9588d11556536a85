package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

var httpBackends = map[string]string{"shop": "postgres", "billing": "http", "tickets": "http"}

func httpPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.New(policy.Config{
		"analyst": {
			Members: policy.Members{Groups: []string{"analysts"}},
			Grants: []*policy.Grant{
				{Backend: "shop", Tables: []string{"public.orders"}, Actions: []string{"select"}},
				{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/invoices/**"}},
				{Backend: "billing", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/customers/*/notes", "/v1/files/*.pdf"}},
			},
		},
	}, httpBackends)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorizeHTTP(t *testing.T) {
	p := httpPolicy(t)
	tests := []struct {
		name       string
		method     string
		path       string
		want       warden.Effect
		reason     string
		allowedHas string
	}{
		{"AllowsGrantedGet", "GET", "/v1/invoices/42", warden.Allow, "roles.analyst.grants[1]", ""},
		{"DoubleStarMatchesDeepPaths", "GET", "/v1/invoices/42/lines/7", warden.Allow, "", ""},
		{"DoubleStarMatchesItsBase", "GET", "/v1/invoices", warden.Allow, "", ""},
		{"DoubleStarMatchesTrailingSlash", "GET", "/v1/invoices/", warden.Allow, "", ""},
		{"StarMatchesOneSegment", "POST", "/v1/customers/c-17/notes", warden.Allow, "roles.analyst.grants[2]", ""},
		{"StarInsideSegment", "GET", "/v1/files/report.pdf", warden.Allow, "", ""},
		{"DeniesUngrantedMethod", "DELETE", "/v1/invoices/42", warden.Deny, "DELETE /v1/invoices/42", "billing: GET on /v1/invoices/** (roles.analyst.grants[1])"},
		{"DeniesPostWhereOnlyGetIsGranted", "POST", "/v1/invoices", warden.Deny, "POST /v1/invoices", ""},
		{"DeniesUngrantedPath", "GET", "/v1/admin/users", warden.Deny, `no grant allows GET /v1/admin/users on backend "billing"`, "GET, POST on /v1/customers/*/notes"},
		{"StarDoesNotMatchTwoSegments", "POST", "/v1/customers/c-17/x/notes", warden.Deny, "", ""},
		{"StarDoesNotMatchEmptySegment", "POST", "/v1/customers//notes", warden.Deny, "", ""},
		{"PrefixIsNotASegment", "GET", "/v1/invoicesx/1", warden.Deny, "", ""},
		{"IsCaseSensitive", "GET", "/V1/invoices/1", warden.Deny, "", ""},
		{"DeniesLowerCaseMethod", "get", "/v1/invoices/1", warden.Deny, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &warden.Action{Tool: "http_call", Backend: "billing", Kind: tt.method,
				Ops: []warden.Op{{Verb: tt.method, Object: tt.path}}}
			d := p.Authorize(analyst, a)
			if d.Effect != tt.want {
				t.Fatalf("Authorize(%s %s) = %s (%v); want %s", tt.method, tt.path, d.Effect, d.Reasons, tt.want)
			}
			if !strings.Contains(d.Reasons[0], tt.reason) && !strings.Contains(d.Rule, tt.reason) {
				t.Errorf("Authorize(%s %s) reasons = %q, rule %q; want mention of %q", tt.method, tt.path, d.Reasons, d.Rule, tt.reason)
			}
			if tt.allowedHas != "" && !slices.ContainsFunc(d.Allowed, func(s string) bool { return strings.Contains(s, tt.allowedHas) }) {
				t.Errorf("Authorize(%s %s) allowed = %q; want an entry containing %q", tt.method, tt.path, d.Allowed, tt.allowedHas)
			}
		})
	}
}

func TestHTTPGrantsDoNotCoverOtherKinds(t *testing.T) {
	p := httpPolicy(t)
	// A GET op on a postgres backend is not a table action.
	d := p.Authorize(analyst, &warden.Action{Backend: "shop", Ops: []warden.Op{{Verb: "GET", Object: "/v1/invoices/1"}}})
	if d.Effect != warden.Deny {
		t.Errorf("GET on a postgres backend = %s; want deny", d.Effect)
	}
	d = p.Authorize(analyst, &warden.Action{Backend: "tickets", Ops: []warden.Op{{Verb: "GET", Object: "/v1/invoices/1"}}})
	if d.Effect != warden.Deny || !strings.Contains(d.Reasons[0], `covers backend "tickets"`) {
		t.Errorf("GET on an ungranted http backend = %s %q; want deny naming the backend", d.Effect, d.Reasons)
	}
	if got := p.Backends(analyst, "http"); !slices.Equal(got, []string{"billing"}) {
		t.Errorf("Backends(analyst, http) = %v; want [billing]", got)
	}
}

func TestMatchPath(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/invoices/**", "/v1/invoices/42", true},
		{"/v1/invoices/**", "/v1/invoices", true},
		{"/v1/invoices/**", "/v1/invoice", false},
		{"/v1/*/items", "/v1/a/items", true},
		{"/v1/*/items", "/v1/items", false},
		{"/v1/**/items", "/v1/items", true},
		{"/v1/**/items", "/v1/a/b/c/items", true},
		{"/v1/**/items", "/v1/a/b/c/item", false},
		{"/**", "/", true},
		{"/**", "/anything/at/all", true},
		{"/", "/", true},
		{"/", "/x", false},
		{"/v1/*", "/v1/", false},
		{"/v1/", "/v1/", true},
		{"/v1/x", "/v1/x/", false},
		{"/v1/*.pdf", "/v1/a.pdf", true},
		{"/v1/*.pdf", "/v1/a.pdf/b", false},
		{"/v1/%C3%A9t%C3%A9", "/v1/%C3%A9t%C3%A9", true},
		{"v1/x", "/v1/x", false},
	}
	for _, tt := range tests {
		if got := policy.MatchPath(tt.pattern, tt.path); got != tt.want {
			t.Errorf("MatchPath(%q, %q) = %v; want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

// TestMatchPathHold: approval rules hold every spelling a server could
// read as the path they name; grants (MatchPath) stay exact.
func TestMatchPathHold(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/admin/**", "/v1/admin/users", true},
		{"/v1/admin/**", "/V1/ADMIN/users", true},
		{"/v1/admin/**", "/v1/Admin", true},
		{"/v1/admin/**", "/v1/admin/", true},
		{"/v1/admin", "/v1/admin/", true},
		{"/v1/admin/", "/v1/admin", true},
		{"/v1/admin/**", "/v1/admin.json", true},
		{"/v1/admin/*", "/v1/admin/u.tar.gz", true},
		{"/v1/admin", "/v1/admin.json", true},
		{"/v1/admin", "/v1/admin::$DATA", true},
		{"/v1/projects/*", "/v1/projects/p1:undelete", true},
		{"/v1/admin/**", "/v1/adm%C4%B1n", true},      // dotless ı folds to I, then i
		{"/v1/%C3%9Cber/**", "/v1/%C3%BCBER/x", true}, // Ü and ü, escaped
		{"/v1/Stra%C3%9Fe", "/v1/STRA%C3%9FE", true},
		{"/v1/a%2Ab", "/v1/a*b", true}, // an escaped * matches only itself
		{"/v1/a%2Ab", "/v1/axb", false},
		{"/v1/admin/**", "/v1/administrators", false},
		{"/v1/admin/**", "/v1/admins.json", false},
		{"/v1/admin/**", "/v2/admin", false},
		{"/", "/", true},
		{"/", "/x", false},
		{"/v1/admin/**", "not-a-path", true}, // unreadable: held
	}
	for _, tt := range tests {
		if got := policy.MatchPathHold(tt.pattern, tt.path); got != tt.want {
			t.Errorf("MatchPathHold(%q, %q) = %v; want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
	for _, tt := range []struct{ pattern, path string }{{"/v1/admin/**", "/V1/admin"}, {"/v1/admin", "/v1/admin/"}, {"/v1/admin", "/v1/admin.json"}} {
		if policy.MatchPath(tt.pattern, tt.path) {
			t.Errorf("MatchPath(%q, %q) = true; grants match exactly", tt.pattern, tt.path)
		}
	}
}

func TestValidateHTTPGrants(t *testing.T) {
	grant := func(g *policy.Grant) policy.Config {
		return policy.Config{"a": {Members: policy.Members{Groups: []string{"g"}}, Grants: []*policy.Grant{g}}}
	}
	tests := []struct {
		name  string
		grant *policy.Grant
		want  string // "" for valid
	}{
		{"Valid", &policy.Grant{Backend: "billing", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/invoices/**", "/v1/a/*/b", "/"}}, ""},
		{"UnknownMethod", &policy.Grant{Backend: "billing", Methods: []string{"FETCH"}, Paths: []string{"/x"}}, `a.grants[0].methods[0]: unknown method "FETCH"`},
		{"LowerCaseMethod", &policy.Grant{Backend: "billing", Methods: []string{"get"}, Paths: []string{"/x"}}, `a.grants[0].methods[0]: unknown method "get"`},
		{"TraceIsNotAMethod", &policy.Grant{Backend: "billing", Methods: []string{"TRACE"}, Paths: []string{"/x"}}, `unknown method "TRACE"`},
		{"MissingMethods", &policy.Grant{Backend: "billing", Paths: []string{"/x"}}, `a.grants[0].methods: missing methods`},
		{"MissingPaths", &policy.Grant{Backend: "billing", Methods: []string{"GET"}}, `a.grants[0].paths: missing paths`},
		{"RelativePath", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"v1/x"}}, `a.grants[0].paths[0]: "v1/x" must start with /`},
		{"DotSegment", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/../admin"}}, `dot segment`},
		{"Query", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/x?y=1"}}, `not queries`},
		{"PartialDoubleStar", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/a**"}}, `** must be a whole segment`},
		{"BadPattern", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/[x"}}, `not a valid pattern`},
		{"EmptySegment", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1//x"}}, `empty segment`},
		{"LowerHexEscape", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/%c3%a9"}}, `upper-case hex`},
		{"EscapedUnreserved", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/%41"}}, `write it as is`},
		{"EscapedSubDelimiter", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/a%3Ab"}}, `write it as is`},
		{"EscapedSemicolon", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/a%3Bb"}}, `could never match`},
		{"EscapedPercent", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/100%25"}}, `could never match`},
		{"RawNonASCII", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/café"}}, `write /v1/caf%C3%A9`},
		{"TablesOnHTTP", &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/x"}, Tables: []string{"public.t"}}, `a.grants[0].tables: tables apply to postgres backends`},
		{"MethodsOnPostgres", &policy.Grant{Backend: "shop", Tables: []string{"public.t"}, Actions: []string{"select"}, Methods: []string{"GET"}}, `a.grants[0].methods: methods apply to http backends`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := grant(tt.grant).Validate(httpBackends)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v; want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestDescribeHTTPGrant(t *testing.T) {
	g := &policy.Grant{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/invoices/**"}}
	if got, want := g.Describe(), "billing: GET on /v1/invoices/**"; got != want {
		t.Errorf("Describe() = %q; want %q", got, want)
	}
}
