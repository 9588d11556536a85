package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/kubetest"
	"github.com/warden-mcp/warden/policy"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// These tests run kube_get in process against a real kube-apiserver and
// etcd (internal/kubetest), with the real policy deciding, as the
// pipeline does between Plan and Execute.

func TestMain(m *testing.M) { kubetest.Main(m) }

// The secrets the world holds; none may ever come back.
const (
	secretPassword = "s3cr3t-db-password-9931"
	secretTokenB64 = "c3VwZXItc2VjcmV0LXRva2Vu" // "super-secret-token"
	awsKey         = "AKIAIOSFODNN7EXAMPLE"
)

var (
	worldOnce sync.Once
	worldErr  error
)

// world seeds the shared cluster once: namespaces staging, team-a, team-b
// and prod, each with pods (one with secrets in its environment), a
// deployment, a config map and a secret; a node; a custom resource; and
// RBAC that lets warden read everything and impersonate, and alice list
// pods in staging only.
func world(t *testing.T) *kubetest.Cluster {
	t.Helper()
	c := kubetest.Shared(t)
	worldOnce.Do(func() { worldErr = seed(c) })
	if worldErr != nil {
		t.Fatalf("seeding the cluster: %v", worldErr)
	}
	return c
}

func seed(c *kubetest.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return err
	}
	for _, ns := range []string{"staging", "team-a", "team-b", "prod"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		for i := range 3 {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web", "idx": fmt.Sprint(i)}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx", Env: []corev1.EnvVar{
					{Name: "AWS_ACCESS_KEY_ID", Value: awsKey},
					{Name: "DATABASE_URL", Value: "postgres://app:" + secretPassword + "@db:5432/app"},
					{Name: "MODE", Value: "production"},
				}}}},
			}
			if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		one := int32(1)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}},
		}
		if _, err := admin.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
			Data: map[string]string{"log_level": "info", "aws_key": awsKey}}
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return err
		}
		applied := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"stringData":{"password":%q}}`, secretPassword)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": applied, "owner": "platform"}},
			Data: map[string][]byte{"password": []byte(secretPassword), "token": []byte("super-secret-token")}}
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"zone": "a"}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	crd := []byte(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},
		"spec":{"group":"example.com","names":{"plural":"widgets","singular":"widget","kind":"Widget","shortNames":["wg"]},"scope":"Namespaced",
		"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}`)
	if err := admin.RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").Body(crd).Do(ctx).Error(); err != nil {
		return err
	}
	widget := []byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"gizmo"},"spec":{"size":3}}`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := admin.RESTClient().Post().AbsPath("/apis/example.com/v1/namespaces/staging/widgets").Body(widget).Do(ctx).Error()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("creating a widget: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // the CRD's API is served once it is established
	}
	rbac := admin.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "warden"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
	}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "warden"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "warden"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.Warden}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.Roles("staging").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.RoleBindings("staging").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.Alice}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// RBAC takes effect once the authorizer has seen the bindings.
	warden, err := kubernetes.NewForConfig(c.Config(kubetest.Warden))
	if err != nil {
		return err
	}
	alice, err := kubernetes.NewForConfig(c.Config(kubetest.Alice))
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, e1 := warden.CoreV1().Secrets("prod").List(ctx, metav1.ListOptions{})
		_, e2 := alice.CoreV1().Pods("staging").List(ctx, metav1.ListOptions{})
		if e1 == nil && e2 == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("RBAC did not take effect: %v; %v", e1, e2)
		}
	}
}

// fixture is kube_get on the shared cluster, as warden, with the policy
// that decides.
type fixture struct {
	t    *testing.T
	tool *Get
	pol  *policy.Policy
}

var dev = &warden.Caller{Subject: kubetest.Alice, Groups: []string{"dev"}, Method: "local"}

func newFixture(t *testing.T, cfg Config, grants ...*policy.Grant) *fixture {
	t.Helper()
	c := world(t)
	if cfg.Server == "" && cfg.Kubeconfig == "" {
		cfg.Server, cfg.TokenFile, cfg.CAFile = c.Server, c.TokenFile(kubetest.Warden), c.CAFile
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Config.Validate() = %v", err)
	}
	b, err := NewBackend("cluster", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if len(grants) == 0 {
		grants = []*policy.Grant{
			{Backend: "cluster", Namespaces: []string{"staging", "team-*"}, Resources: []string{"pods", "deployments.apps", "configmaps", "secrets", "widgets.example.com"}},
			{Backend: "cluster", ClusterScoped: true, Resources: []string{"nodes"}},
		}
	}
	pol, err := policy.New(policy.Config{"dev": {Members: policy.Members{Groups: []string{"dev"}}, Grants: grants}}, map[string]string{"cluster": "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, tool: &Get{Backends: Backends{"cluster": b}, Grants: pol}, pol: pol}
}

// run plans, authorizes and executes one call as caller.
func (f *fixture) run(caller *warden.Caller, args map[string]any) (map[string]any, *warden.Action, *warden.Error) {
	f.t.Helper()
	if _, ok := args["cluster"]; !ok {
		args["cluster"] = "cluster"
	}
	raw, _ := json.Marshal(args)
	ctx := warden.WithCaller(context.Background(), caller)
	a, err := f.tool.Plan(ctx, raw)
	if err != nil {
		return nil, nil, warden.AsError(err)
	}
	if d := f.pol.Authorize(caller, a); d.Effect != warden.Allow {
		return nil, a, warden.AsError(d.Err())
	}
	res, err := f.tool.Execute(ctx, a)
	if err != nil {
		return nil, a, warden.AsError(err)
	}
	b, err := json.Marshal(res.Structured)
	if err != nil {
		f.t.Fatal(err)
	}
	if res.JSON != nil {
		// The JSON the tool wrote itself says what Structured says.
		var fromStructured, written any
		if err := json.Unmarshal(res.JSON, &written); err != nil {
			f.t.Fatalf("the result's JSON is not JSON: %v", err)
		}
		_ = json.Unmarshal(b, &fromStructured)
		if !reflect.DeepEqual(fromStructured, written) {
			f.t.Fatalf("the result's JSON differs from its structured form:\n%s\n%s", res.JSON, b)
		}
		b = res.JSON
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		f.t.Fatal(err)
	}
	out["raw"] = string(b)
	return out, a, nil
}

func (f *fixture) ok(caller *warden.Caller, args map[string]any) (map[string]any, *warden.Action) {
	f.t.Helper()
	out, a, e := f.run(caller, args)
	if e != nil {
		f.t.Fatalf("kube_get(%v) = %v", args, e)
	}
	return out, a
}

func names(out map[string]any) []string {
	var ns []string
	items, _ := out["items"].([]any)
	for _, it := range items {
		md := it.(map[string]any)["metadata"].(map[string]any)
		n := md["name"].(string)
		if s, ok := md["namespace"].(string); ok {
			n = s + "/" + n
		}
		ns = append(ns, n)
	}
	return ns
}

func TestResolvesResourcesAsKubectlDoes(t *testing.T) {
	f := newFixture(t, Config{})
	for arg, want := range map[string]string{
		"pods": "pods", "po": "pods", "Pod": "pods", "pod": "pods",
		"deploy": "deployments.apps", "deployments": "deployments.apps", "deployments.apps": "deployments.apps", "deployments.v1.apps": "deployments.apps",
		"cm": "configmaps", "widgets.example.com": "widgets.example.com", "wg": "widgets.example.com",
	} {
		_, a := f.ok(dev, map[string]any{"resource": arg, "namespace": "staging", "limit": 1})
		if len(a.Ops) != 1 || a.Ops[0].Object != "namespaces/staging/"+want {
			t.Errorf("resource %q planned %v; want list namespaces/staging/%s", arg, a.Ops, want)
		}
	}
	for arg, want := range map[string]string{
		"pods/log":    "subresource",
		"gadgets":     `has no resource "gadgets"`,
		"":            `missing argument "resource"`,
		"secrets.foo": `has no resource "secrets.foo"`,
	} {
		if _, _, e := f.run(dev, map[string]any{"resource": arg, "namespace": "staging"}); e == nil || e.Code != warden.Invalid || !strings.Contains(e.Message, want) {
			t.Errorf("resource %q = %v; want Invalid containing %q", arg, e, want)
		}
	}
}

func TestGetsAndListsWhatIsGranted(t *testing.T) {
	f := newFixture(t, Config{})
	t.Run("Get", func(t *testing.T) {
		out, a := f.ok(dev, map[string]any{"resource": "deploy", "namespace": "team-a", "name": "web", "purpose": "debug"})
		obj := out["object"].(map[string]any)
		if out["kind"] != "Deployment" || out["api_version"] != "apps/v1" || obj["metadata"].(map[string]any)["name"] != "web" {
			t.Errorf("get = %v", out["raw"])
		}
		if a.Statement != "get deployments.apps team-a/web" || a.Ops[0] != (warden.Op{Verb: "get", Object: "namespaces/team-a/deployments.apps/web"}) {
			t.Errorf("planned %q %v", a.Statement, a.Ops)
		}
		if strings.Contains(out["raw"].(string), "managedFields") {
			t.Errorf("managedFields are in the result: %s", out["raw"])
		}
	})
	t.Run("ListWithSelectors", func(t *testing.T) {
		out, _ := f.ok(dev, map[string]any{"resource": "pods", "namespace": "staging", "label_selector": "app=web,idx!=1", "field_selector": "metadata.name!=web-2"})
		if got := names(out); !slices.Equal(got, []string{"staging/web-0"}) {
			t.Errorf("selected pods = %v; want [staging/web-0]", got)
		}
	})
	t.Run("PagesWithContinue", func(t *testing.T) {
		var got []string
		args := map[string]any{"resource": "pods", "namespace": "staging", "limit": 2}
		for page := 0; ; page++ {
			out, _ := f.ok(dev, args)
			got = append(got, names(out)...)
			next, _ := out["continue"].(string)
			if next == "" {
				break
			}
			if page > 3 {
				t.Fatal("paging does not end")
			}
			args = map[string]any{"resource": "pods", "namespace": "staging", "limit": 2, "continue": next}
		}
		if !slices.Equal(got, []string{"staging/web-0", "staging/web-1", "staging/web-2"}) {
			t.Errorf("pages = %v", got)
		}
	})
	t.Run("ListsAcrossGrantedNamespacesOnly", func(t *testing.T) {
		out, a := f.ok(dev, map[string]any{"resource": "pods"})
		want := []string{}
		for _, ns := range []string{"staging", "team-a", "team-b"} {
			for i := range 3 {
				want = append(want, fmt.Sprintf("%s/web-%d", ns, i))
			}
		}
		if got := names(out); !slices.Equal(got, want) {
			t.Errorf("pods across granted namespaces = %v; want %v (never prod)", got, want)
		}
		if len(a.Ops) != 3 || a.Ops[2].Object != "namespaces/team-b/pods" || !strings.Contains(a.Statement, "in namespaces staging, team-a, team-b (the ones granted)") {
			t.Errorf("planned %q %v; want one op per granted namespace", a.Statement, a.Ops)
		}
	})
	t.Run("PagesAcrossNamespaces", func(t *testing.T) {
		var got []string
		args := map[string]any{"resource": "pods", "limit": 4}
		for page := 0; page < 5; page++ {
			out, _ := f.ok(dev, args)
			got = append(got, names(out)...)
			next, _ := out["continue"].(string)
			if next == "" {
				break
			}
			args = map[string]any{"resource": "pods", "limit": 4, "continue": next}
		}
		if len(got) != 9 || got[0] != "staging/web-0" || got[8] != "team-b/web-2" || len(slices.Compact(slices.Clone(got))) != 9 {
			t.Errorf("pages across namespaces = %v; want all 9 once", got)
		}
	})
	t.Run("ContinueTokensCannotBeEditedOrMoved", func(t *testing.T) {
		out, _ := f.ok(dev, map[string]any{"resource": "pods", "namespace": "staging", "limit": 1})
		next := out["continue"].(string)
		for _, args := range []map[string]any{
			{"resource": "pods", "namespace": "team-a", "limit": 1, "continue": next},
			{"resource": "configmaps", "namespace": "staging", "limit": 1, "continue": next},
			{"resource": "pods", "namespace": "staging", "limit": 1, "label_selector": "app=web", "continue": next},
			{"resource": "pods", "namespace": "staging", "limit": 1, "continue": next[:len(next)-2] + "xx"},
			{"resource": "pods", "namespace": "staging", "limit": 1, "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},
		} {
			if _, _, e := f.run(dev, args); e == nil || e.Code != warden.Invalid || !strings.Contains(e.Message, "continue token") {
				t.Errorf("kube_get(%v) = %v; want the token refused", args, e)
			}
		}
	})
	t.Run("CustomResource", func(t *testing.T) {
		out, _ := f.ok(dev, map[string]any{"resource": "widgets", "namespace": "staging", "name": "gizmo"})
		if out["object"].(map[string]any)["spec"].(map[string]any)["size"] != float64(3) {
			t.Errorf("widget = %s", out["raw"])
		}
	})
	t.Run("ClusterScopedWithAGrant", func(t *testing.T) {
		out, a := f.ok(dev, map[string]any{"resource": "nodes", "label_selector": "zone=a"})
		if got := names(out); !slices.Equal(got, []string{"node-1"}) || a.Ops[0].Object != "nodes" {
			t.Errorf("nodes = %v, planned %v", got, a.Ops)
		}
		if _, _, e := f.run(dev, map[string]any{"resource": "nodes", "namespace": "staging"}); e == nil || !strings.Contains(e.Message, "cluster-scoped: omit namespace") {
			t.Errorf("nodes in a namespace = %v", e)
		}
	})
}

func TestRefusesWhatIsNotGranted(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"OtherNamespace", map[string]any{"resource": "pods", "namespace": "prod"}, "no grant allows list namespaces/prod/pods"},
		{"OtherResource", map[string]any{"resource": "services", "namespace": "staging"}, "no grant allows list namespaces/staging/services"},
		{"ClusterScopedWithoutGrant", map[string]any{"resource": "namespaces"}, "no grant allows list namespaces"},
		{"CRDs", map[string]any{"resource": "customresourcedefinitions"}, "no grant allows list customresourcedefinitions.apiextensions.k8s.io"},
		{"ResourceGrantedNowhereAcrossNamespaces", map[string]any{"resource": "services"}, "no grant allows list namespaces/*/services"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, e := f.run(dev, tc.args)
			if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, tc.want) || len(e.Allowed) == 0 {
				t.Fatalf("kube_get(%v) = %v; want Denied %q with what is allowed", tc.args, e, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"GetNeedsNamespace", map[string]any{"resource": "pods", "name": "web-0"}, "needs namespace"},
		{"BadName", map[string]any{"resource": "pods", "namespace": "staging", "name": "../secrets/db"}, "not an object name"},
		{"BadNamespace", map[string]any{"resource": "pods", "namespace": "Staging_1"}, "not a namespace name"},
		{"BadLabelSelector", map[string]any{"resource": "pods", "namespace": "staging", "label_selector": "app in (x"}, "label_selector"},
		{"BadFieldSelector", map[string]any{"resource": "pods", "namespace": "staging", "field_selector": "a=b=c"}, "field_selector"},
		{"LimitTooLarge", map[string]any{"resource": "pods", "namespace": "staging", "limit": 100000}, "limit must be between 1 and 500"},
		{"UnknownArgument", map[string]any{"resource": "pods", "namespace": "staging", "verb": "delete"}, `unknown argument "verb"`},
		{"UnknownCluster", map[string]any{"cluster": "prod-eu", "resource": "pods"}, `unknown cluster "prod-eu"`},
		{"NotFound", map[string]any{"resource": "pods", "namespace": "staging", "name": "nope"}, `pods "nope" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, e := f.run(dev, tc.args)
			if e == nil || e.Code != warden.Invalid || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("kube_get(%v) = %v; want Invalid %q", tc.args, e, tc.want)
			}
		})
	}
}

func TestNeverShowsSecretValues(t *testing.T) {
	f := newFixture(t, Config{})
	check := func(t *testing.T, raw string) {
		t.Helper()
		for _, leak := range []string{secretPassword, "super-secret-token", secretTokenB64, "czNjcjN0", "last-applied-configuration"} {
			if strings.Contains(raw, leak) {
				t.Errorf("the result contains %q: %s", leak, raw)
			}
		}
	}
	out, _ := f.ok(dev, map[string]any{"resource": "secrets", "namespace": "staging", "name": "db"})
	check(t, out["raw"].(string))
	obj := out["object"].(map[string]any)
	data := obj["data"].(map[string]any)
	if len(data) != 2 || data["password"] != "[masked:secret]" || data["token"] != "[masked:secret]" {
		t.Errorf("secret data = %v; want both keys, values masked", data)
	}
	if ann := obj["metadata"].(map[string]any)["annotations"].(map[string]any); ann["owner"] != "platform" || len(ann) != 1 {
		t.Errorf("annotations = %v; want owner kept, last-applied removed", ann)
	}
	out, _ = f.ok(dev, map[string]any{"resource": "secrets"})
	check(t, out["raw"].(string))
	if out["count"] != float64(3) {
		t.Errorf("secrets across granted namespaces = %v; want 3", out["count"])
	}
}

func TestCredentialsNeverShow(t *testing.T) {
	c := world(t)
	t.Run("UnreachableClusterSaysNothingOfIt", func(t *testing.T) {
		dir := t.TempDir()
		tok := filepath.Join(dir, "token")
		if err := os.WriteFile(tok, []byte(c.Token(kubetest.Warden)), 0o600); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, Config{Server: "https://127.0.0.1:1", TokenFile: tok, CAFile: c.CAFile, Timeout: warden.Duration(2 * time.Second)})
		_, _, e := f.run(dev, map[string]any{"resource": "pods", "namespace": "staging"})
		if e == nil || e.Code != warden.Unavailable || !strings.Contains(e.Message, `cluster "cluster" cannot be reached`) {
			t.Fatalf("unreachable = %v", e)
		}
		if strings.Contains(e.Message, "127.0.0.1") || strings.Contains(e.Message, c.Token(kubetest.Warden)) {
			t.Errorf("the refusal names the address or the token: %s", e.Message)
		}
	})
	t.Run("WardenWithoutRightsIsDeniedByTheCluster", func(t *testing.T) {
		f := newFixture(t, Config{Server: c.Server, TokenFile: c.TokenFile(kubetest.Bob), CAFile: c.CAFile})
		_, _, e := f.run(dev, map[string]any{"resource": "pods", "namespace": "staging"})
		if e == nil || e.Code != warden.Denied || e.Rule != "kube.rbac" || !strings.Contains(e.Message, "warden's own credentials are not allowed") {
			t.Fatalf("warden without RBAC = %v", e)
		}
	})
	t.Run("KubeconfigWithContext", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := c.WriteKubeconfig(path, kubetest.Warden, "staging-ctx"); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, Config{Kubeconfig: path, Context: "staging-ctx"})
		out, _ := f.ok(dev, map[string]any{"resource": "pods", "namespace": "staging", "limit": 1})
		if strings.Contains(out["raw"].(string), c.Token(kubetest.Warden)) {
			t.Error("the result carries warden's token")
		}
		bad := Config{Kubeconfig: path, Context: "prod-ctx"}
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `context: no context "prod-ctx" in the kubeconfig (it has: staging-ctx)`) {
			t.Errorf("unknown context = %v", err)
		}
	})
}

func TestImpersonationLetsTheClusterDecideToo(t *testing.T) {
	f := newFixture(t, Config{Impersonate: true})
	// warden's grants allow staging and team-*; the cluster lets alice
	// list pods in staging only.
	if out, _ := f.ok(dev, map[string]any{"resource": "pods", "namespace": "staging"}); out["count"] != float64(3) {
		t.Errorf("alice's pods in staging = %v; want 3", out["count"])
	}
	_, _, e := f.run(dev, map[string]any{"resource": "pods", "namespace": "team-a"})
	if e == nil || e.Code != warden.Denied || e.Rule != "kube.rbac" || !strings.Contains(e.Message, `User "alice" cannot list resource "pods"`) {
		t.Fatalf("alice's pods in team-a = %v; want the cluster's refusal", e)
	}
	// warden's grants still apply first: prod is refused before the cluster is asked.
	if _, _, e := f.run(dev, map[string]any{"resource": "pods", "namespace": "prod"}); e == nil || e.Rule != "default-deny" {
		t.Errorf("prod = %v; want warden's own refusal", e)
	}
	t.Run("NoCallerNoRequest", func(t *testing.T) {
		a, err := f.tool.Plan(context.Background(), json.RawMessage(`{"cluster":"cluster","resource":"pods","namespace":"staging"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.tool.Execute(context.Background(), a); warden.ErrorCode(err) != warden.Unavailable {
			t.Errorf("an impersonated request without a caller = %v; want refused", err)
		}
	})
}

func TestTruncatesAtTheByteCap(t *testing.T) {
	f := newFixture(t, Config{MaxResponseBytes: 3000})
	out, _ := f.ok(dev, map[string]any{"resource": "pods", "namespace": "staging"})
	if out["truncated"] != true || out["count"].(float64) >= 3 || out["continue"] != nil {
		t.Errorf("capped list = count %v, truncated %v, continue %v; want fewer than 3, truncated, no continue", out["count"], out["truncated"], out["continue"])
	}
}

func typedMatchesJSON(t *testing.T, b *Backend, ns string, resources []string) {
	t.Helper()
	for _, res := range resources {
		r, err := b.resolve(context.Background(), res)
		if err != nil {
			t.Fatal(err)
		}
		if !r.typed() {
			t.Fatalf("%s is not read as protobuf", res)
		}
		typed, _, err := b.page(context.Background(), r, nil, func(rc *rest.RESTClient) *rest.Request {
			return rc.Get().AbsPath(r.basePath()).Namespace(ns).Resource(r.gvr.Resource)
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := do(context.Background(), b.objects.Get().AbsPath(r.basePath()).Namespace(ns).Resource(r.gvr.Resource))
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) != len(typed) || len(typed) == 0 {
			t.Fatalf("%s: %d objects as JSON, %d as protobuf (%v)", res, len(list.Items), len(typed), err)
		}
		for i := range typed {
			cleaned, err := b.clean(list.Items[i], r, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			_ = json.Unmarshal(cleaned, &want)
			_ = json.Unmarshal(typed[i], &got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s[%d] as protobuf then JSON:\n%s\nas the server's JSON:\n%s", res, i, typed[i], cleaned)
			}
		}
	}
}

// TestTypedListsReadAsTheServersJSON: built-in resources are listed as
// protobuf and encoded to JSON by warden; what the agent gets must be what
// the API server's own JSON says, cleaned the same way.
func TestTypedListsReadAsTheServersJSON(t *testing.T) {
	corpusNS := corpus(t)
	strict := Config{Masking: Masking{Strict: true, Reveal: []string{"env:LOG_LEVEL", "flag:--port", "annotation:example.com/owner"}}}
	for _, tc := range []struct {
		name string
		cfg  Config
		ns   string
		res  []string
	}{
		{"Seed", Config{}, "staging", []string{"pods", "deployments.apps", "configmaps"}},
		// Every typed resource of the corpus, masked: an object the walk
		// changed is encoded from its maps, one it left as it was from its
		// typed form, and both must say what the server's JSON, walked,
		// says.
		{"Corpus", Config{}, corpusNS, []string{"pods", "deployments.apps", "statefulsets.apps", "daemonsets.apps", "replicasets.apps",
			"jobs.batch", "cronjobs.batch", "replicationcontrollers", "podtemplates", "configmaps", "events", "events.events.k8s.io"}},
		{"CorpusStrict", strict, corpusNS, []string{"pods", "deployments.apps", "jobs.batch", "configmaps", "events"}},
	} {
		t.Run(tc.name, func(t *testing.T) { typedMatchesJSON(t, newFixture(t, tc.cfg).tool.Backends["cluster"], tc.ns, tc.res) })
	}
	b := newFixture(t, Config{}).tool.Backends["cluster"]
	for _, res := range []string{"secrets", "widgets.example.com"} {
		if r, _ := b.resolve(context.Background(), res); r.typed() {
			t.Errorf("%s is read as protobuf; want JSON (Secrets are masked in JSON, custom resources have no protobuf)", res)
		}
	}
}
