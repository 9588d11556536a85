package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

func kubePolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.New(policy.Config{
		"dev": {
			Members: policy.Members{Groups: []string{"dev"}},
			Grants: []*policy.Grant{
				{Backend: "cluster", Namespaces: []string{"staging", "team-*"}, Resources: []string{"pods", "deployments.apps", "configmaps"}},
				{Backend: "cluster", Namespaces: []string{"staging"}, Resources: []string{"secrets"}, Names: []string{"app-*"}},
			},
		},
		"ops": {
			Members: policy.Members{Groups: []string{"ops"}},
			Grants: []*policy.Grant{
				{Backend: "cluster", Namespaces: []string{"*"}, Resources: []string{"*"}},
				{Backend: "cluster", ClusterScoped: true, Resources: []string{"nodes", "namespaces"}},
			},
		},
	}, map[string]string{"cluster": "kubernetes", "shop": "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorizeKube(t *testing.T) {
	p := kubePolicy(t)
	dev := &warden.Caller{Subject: "dana@example.com", Groups: []string{"dev"}, Method: "local"}
	ops := &warden.Caller{Subject: "otto@example.com", Groups: []string{"ops"}, Method: "local"}
	tests := []struct {
		name   string
		caller *warden.Caller
		verb   string
		object warden.KubeObject
		want   warden.Effect
	}{
		{"ListsPodsInGrantedNamespace", dev, "list", warden.KubeObject{Namespace: "staging", Resource: "pods"}, warden.Allow},
		{"GetsDeploymentInGlobNamespace", dev, "get", warden.KubeObject{Namespace: "team-a", Resource: "deployments.apps", Name: "web"}, warden.Allow},
		{"DeniesOtherNamespace", dev, "list", warden.KubeObject{Namespace: "prod", Resource: "pods"}, warden.Deny},
		{"DeniesOtherResource", dev, "list", warden.KubeObject{Namespace: "staging", Resource: "services"}, warden.Deny},
		{"DeniesSameNameInAnotherGroup", dev, "list", warden.KubeObject{Namespace: "staging", Resource: "deployments.extensions"}, warden.Deny},
		{"DeniesAllNamespacesWithoutStar", dev, "list", warden.KubeObject{Namespace: "*", Resource: "pods"}, warden.Deny},
		{"GetsNamedSecret", dev, "get", warden.KubeObject{Namespace: "staging", Resource: "secrets", Name: "app-db"}, warden.Allow},
		{"DeniesOtherSecret", dev, "get", warden.KubeObject{Namespace: "staging", Resource: "secrets", Name: "root-ca"}, warden.Deny},
		{"NamesNeverCoverAList", dev, "list", warden.KubeObject{Namespace: "staging", Resource: "secrets"}, warden.Deny},
		{"DeniesClusterScopedWithoutGrant", dev, "list", warden.KubeObject{Resource: "nodes"}, warden.Deny},
		{"StarNamespaceCoversAllNamespaces", ops, "list", warden.KubeObject{Namespace: "*", Resource: "pods"}, warden.Allow},
		{"StarResourceCoversGroups", ops, "get", warden.KubeObject{Namespace: "kube-system", Resource: "ingresses.networking.k8s.io", Name: "x"}, warden.Allow},
		{"ClusterScopedGrant", ops, "get", warden.KubeObject{Resource: "nodes", Name: "node-1"}, warden.Allow},
		{"ClusterScopedGrantIsNarrow", ops, "list", warden.KubeObject{Resource: "customresourcedefinitions.apiextensions.k8s.io"}, warden.Deny},
		{"NamespacedStarDoesNotCoverClusterScoped", ops, "list", warden.KubeObject{Resource: "clusterroles.rbac.authorization.k8s.io"}, warden.Deny},
		{"OnlyReads", ops, "delete", warden.KubeObject{Namespace: "staging", Resource: "pods", Name: "x"}, warden.Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Authorize(tt.caller, &warden.Action{Backend: "cluster", Ops: []warden.Op{{Verb: tt.verb, Object: tt.object.String()}}})
			if d.Effect != tt.want {
				t.Errorf("Authorize(%s %s) = %s (%v); want %s", tt.verb, tt.object, d.Effect, d.Reasons, tt.want)
			}
			if d.Effect == warden.Deny && len(d.Allowed) == 0 {
				t.Errorf("denial of %s %s lists nothing the caller may do", tt.verb, tt.object)
			}
		})
	}
	if got := p.Namespaces(dev, "cluster", "pods"); !slices.Equal(got, []string{"staging", "team-*"}) {
		t.Errorf("Namespaces(dev, pods) = %v; want [staging team-*]", got)
	}
	if got := p.Namespaces(dev, "cluster", "secrets"); len(got) != 0 {
		t.Errorf("Namespaces(dev, secrets) = %v; want none (a names grant never covers a list)", got)
	}
	d := p.Authorize(dev, &warden.Action{Backend: "cluster", Ops: []warden.Op{{Verb: "list", Object: "namespaces/prod/pods"}}})
	if !slices.ContainsFunc(d.Allowed, func(s string) bool {
		return strings.Contains(s, "get, list pods, deployments.apps, configmaps in namespaces staging, team-*")
	}) {
		t.Errorf("denial hints = %v; want the granted resources and namespaces", d.Allowed)
	}
}

func TestResourceGlobMatchesOneLabel(t *testing.T) {
	for _, tc := range []struct {
		pattern, resource string
		want              bool
	}{
		{"*", "widgets.evil.networking.k8s.io", true},
		{"*", "pods", true},
		{"*.networking.k8s.io", "ingresses.networking.k8s.io", true},
		{"*.networking.k8s.io", "widgets.evil.networking.k8s.io", false},
		{"*.networking.k8s.io", "networking.k8s.io", false},
		{"*.apps", "deployments.apps", true},
		{"*.apps", "deployments.evil.apps", false},
		{"*.apps", "deployments", false},
		{"ingresses.*.k8s.io", "ingresses.networking.k8s.io", true},
		{"ingresses.*.k8s.io", "ingresses.a.b.k8s.io", false},
		{"pods", "pods.example.com", false},
		{"*", "", true},
		{"secret?", "secrets", true},
		{"secret*", "secrets.example.com", false},
	} {
		if got := policy.MatchResources([]string{tc.pattern}, tc.resource); got != tc.want {
			t.Errorf("MatchResources(%q, %q) = %v; want %v", tc.pattern, tc.resource, got, tc.want)
		}
	}
	// Through Authorize: a grant on one group's resources does not reach
	// a group below it that anyone can create with a CRD.
	p, err := policy.New(policy.Config{"dev": {Members: policy.Members{Groups: []string{"dev"}}, Grants: []*policy.Grant{
		{Backend: "cluster", Namespaces: []string{"staging"}, Resources: []string{"*.networking.k8s.io"}},
	}}}, map[string]string{"cluster": "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	dev := &warden.Caller{Subject: "alice", Groups: []string{"dev"}}
	for res, want := range map[string]warden.Effect{
		"ingresses.networking.k8s.io":       warden.Allow,
		"secrets.evil.networking.k8s.io":    warden.Deny,
		"networkpolicies.networking.k8s.io": warden.Allow,
	} {
		d := p.Authorize(dev, &warden.Action{Backend: "cluster", Ops: []warden.Op{{Verb: "list", Object: "namespaces/staging/" + res}}})
		if d.Effect != want {
			t.Errorf("list %s under *.networking.k8s.io = %s; want %s", res, d.Effect, want)
		}
	}
	if got := p.Namespaces(dev, "cluster", "secrets.evil.networking.k8s.io"); len(got) != 0 {
		t.Errorf("Namespaces for a sub-group = %v; want none", got)
	}
}

func TestKubeObjectRoundTrips(t *testing.T) {
	for _, o := range []warden.KubeObject{
		{Namespace: "staging", Resource: "pods"},
		{Namespace: "staging", Resource: "deployments.apps", Name: "web"},
		{Namespace: "*", Resource: "pods"},
		{Resource: "nodes"},
		{Resource: "nodes", Name: "n1"},
		{Resource: "namespaces", Name: "staging"},
		{Resource: "namespaces"},
	} {
		got, ok := warden.ParseKubeObject(o.String())
		if !ok || got != o {
			t.Errorf("ParseKubeObject(%q) = %+v, %v; want %+v", o.String(), got, ok, o)
		}
	}
	for _, bad := range []string{"", "/pods", "namespaces//pods", "a/b/c", "namespaces/x/pods/y/z"} {
		if _, ok := warden.ParseKubeObject(bad); ok {
			t.Errorf("ParseKubeObject(%q) ok; want refused", bad)
		}
	}
}

func TestValidateKubeGrants(t *testing.T) {
	kinds := map[string]string{"cluster": "kubernetes", "shop": "postgres"}
	tests := []struct {
		name  string
		grant *policy.Grant
		want  string
	}{
		{"NeedsNamespaces", &policy.Grant{Backend: "cluster", Resources: []string{"pods"}}, "grants[0].namespaces: missing namespaces"},
		{"NeedsResources", &policy.Grant{Backend: "cluster", Namespaces: []string{"x"}}, "grants[0].resources: missing resources"},
		{"ClusterScopedWithNamespaces", &policy.Grant{Backend: "cluster", ClusterScoped: true, Namespaces: []string{"x"}, Resources: []string{"nodes"}}, "grants[0].namespaces: a cluster_scoped grant"},
		{"Subresource", &policy.Grant{Backend: "cluster", Namespaces: []string{"x"}, Resources: []string{"pods/log"}}, `grants[0].resources[0]: "pods/log"`},
		{"UpperCase", &policy.Grant{Backend: "cluster", Namespaces: []string{"x"}, Resources: []string{"Pods"}}, `grants[0].resources[0]: "Pods" is not a resource`},
		{"BadNamespace", &policy.Grant{Backend: "cluster", Namespaces: []string{"Prod_1"}, Resources: []string{"pods"}}, `grants[0].namespaces[0]: "Prod_1"`},
		{"TablesOnKube", &policy.Grant{Backend: "cluster", Namespaces: []string{"x"}, Resources: []string{"pods"}, Tables: []string{"public.x"}}, "grants[0].tables: tables do not apply to kubernetes"},
		{"ResourcesOnPostgres", &policy.Grant{Backend: "shop", Tables: []string{"public.x"}, Actions: []string{"select"}, Resources: []string{"pods"}}, "grants[0].resources: resources applies to kubernetes backends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := policy.Config{"r": {Members: policy.Members{Groups: []string{"g"}}, Grants: []*policy.Grant{tt.grant}}}.Validate(kinds)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v; want %q", err, tt.want)
			}
		})
	}
}
