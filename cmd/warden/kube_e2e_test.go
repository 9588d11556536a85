package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	kubePassword = "kube-e2e-pa55word-7781"
	kubeAWSKey   = "AKIAIOSFODNN7EXAMPLE"
)

// seedCluster creates namespaces staging, team-a and prod with two pods
// each (secrets in their environment), a config map and a Secret; lets
// warden read everything and impersonate; lets alice list pods in staging.
func seedCluster(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(t, kubetest.Admin)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"staging", "team-a", "prod"} {
		must(admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
		for i := range 2 {
			must(admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx", Env: []corev1.EnvVar{
					{Name: "AWS_ACCESS_KEY_ID", Value: kubeAWSKey},
					{Name: "DATABASE_URL", Value: "postgres://app:" + kubePassword + "@db:5432/app"},
				}}}},
			}, metav1.CreateOptions{}))
		}
		must(admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
			Data: map[string]string{"aws": kubeAWSKey, "level": "info"}}, metav1.CreateOptions{}))
		must(admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + kubePassword + `"}}`}},
			StringData: map[string]string{"password": kubePassword}}, metav1.CreateOptions{}))
	}
	must(admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "warden"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
	}}, metav1.CreateOptions{}))
	must(admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "warden"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "warden"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.Warden}}}, metav1.CreateOptions{}))
	must(admin.RbacV1().Roles("staging").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{}))
	must(admin.RbacV1().RoleBindings("staging").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.Alice}}}, metav1.CreateOptions{}))
	warden, alice := c.Client(t, kubetest.Warden), c.Client(t, kubetest.Alice)
	waitFor(t, 30*time.Second, func() bool { // RBAC applies once the authorizer has seen it
		_, e1 := warden.CoreV1().Secrets("prod").List(ctx, metav1.ListOptions{})
		_, e2 := alice.CoreV1().Pods("staging").List(ctx, metav1.ListOptions{})
		return e1 == nil && e2 == nil
	})
}

// TestKubeGetEndToEnd drives kube_get through the built binary over stdio
// with a real MCP client, against a real kube-apiserver: warden reaches it
// with a kubeconfig the agent never sees; alice reads what she is granted,
// Secret values never reach her or the recording.
func TestKubeGetEndToEnd(t *testing.T) {
	c := kubetest.Start(t)
	seedCluster(t, c)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, kubetest.Warden, "e2e"); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "warden.yaml")
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice, groups: [dev]}
backends:
  cluster: {kind: kubernetes, kubeconfig: %[1]q, context: e2e}
  cluster-as-you: {kind: kubernetes, kubeconfig: %[1]q, context: e2e, impersonate: true}
roles:
  dev:
    members: {groups: [dev]}
    grants:
      - {backend: cluster, namespaces: [staging, team-*], resources: [pods, deployments.apps, configmaps, secrets]}
      - {backend: cluster-as-you, namespaces: [staging, team-*], resources: [pods]}
masking:
  detectors: [secret_token, credit_card, email]
approvals:
  - {name: secret-reads, backend: cluster, when: [get], resources: [secrets], approvers: user}
`, kubeconfig)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	token := c.Token(kubetest.Warden)
	leaks := []string{kubePassword, base64.StdEncoding.EncodeToString([]byte(kubePassword)), kubeAWSKey, token}
	t.Cleanup(func() {
		rec := recordingBytes(t, config)
		for _, leak := range leaks {
			if strings.Contains(rec, leak) {
				t.Errorf("the recording contains %q", leak)
			}
		}
	})
	u := answering(accept, accept) // a rule on get holds the list of the same Secrets too
	cl := dial(t, "stdio", config, mcp.ProtocolVersion20251125, u, nil)
	get := func(args map[string]any) result {
		t.Helper()
		r := call(t, cl, "kube_get", args)
		for _, leak := range leaks {
			if strings.Contains(r.Text, leak) {
				t.Errorf("kube_get(%v) answered with %q", args, leak)
			}
		}
		return r
	}
	itemNames := func(r result) []string {
		var out []string
		items, _ := r.Body["items"].([]any)
		for _, it := range items {
			md := it.(map[string]any)["metadata"].(map[string]any)
			out = append(out, md["namespace"].(string)+"/"+md["name"].(string))
		}
		return out
	}

	t.Run("ListsOnlyKubeGetWithTheClustersAsEnum", func(t *testing.T) {
		res, err := cl.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil || len(res.Tools) != 1 || res.Tools[0].Name != "kube_get" {
			t.Fatalf("tools = %+v, %v; want only kube_get", res, err)
		}
		var schema struct {
			Properties map[string]struct{ Enum []string } `json:"properties"`
		}
		raw := res.Tools[0].RawInputSchema
		if len(raw) == 0 {
			raw, _ = json.Marshal(res.Tools[0].InputSchema)
		}
		_ = json.Unmarshal(raw, &schema)
		if got := schema.Properties["cluster"].Enum; !slices.Equal(got, []string{"cluster", "cluster-as-you"}) {
			t.Errorf("cluster enum = %v", got)
		}
	})
	t.Run("GetsAPodWithItsEnvironmentScanned", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "po", "namespace": "staging", "name": "web-0", "purpose": "why is it failing"})
		if r.IsError || !strings.Contains(r.Text, `"name":"web-0"`) || strings.Contains(r.Text, "managedFields") {
			t.Fatalf("get pod = %v %s", r.IsError, r.Text)
		}
		if !strings.Contains(r.Text, "[masked:secret_token]") {
			t.Errorf("the environment's secrets are not masked by the detectors: %s", r.Text)
		}
	})
	t.Run("ListsInANamespace", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "pods", "namespace": "team-a", "label_selector": "app=web"})
		if r.IsError || !slices.Equal(itemNames(r), []string{"team-a/web-0", "team-a/web-1"}) || r.Body["count"] != float64(2) {
			t.Errorf("list = %v %v", r.IsError, itemNames(r))
		}
	})
	t.Run("ListsAcrossGrantedNamespacesOnly", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "pods"})
		if r.IsError || !slices.Equal(itemNames(r), []string{"staging/web-0", "staging/web-1", "team-a/web-0", "team-a/web-1"}) {
			t.Errorf("list across namespaces = %v %v; want staging and team-a, never prod", r.IsError, itemNames(r))
		}
	})
	t.Run("DeniesUngrantedNamespace", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "pods", "namespace": "prod"})
		if !r.IsError || !strings.Contains(r.Text, "no grant allows list namespaces/prod/pods") || !strings.Contains(r.Text, "get, list pods, deployments.apps, configmaps, secrets in namespaces staging, team-*") {
			t.Errorf("prod = %v %q", r.IsError, r.Text)
		}
	})
	t.Run("DeniesUngrantedResource", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "serviceaccounts", "namespace": "staging"})
		if !r.IsError || !strings.Contains(r.Text, "no grant allows list namespaces/staging/serviceaccounts") {
			t.Errorf("serviceaccounts = %v %q", r.IsError, r.Text)
		}
	})
	t.Run("RefusesClusterScopedWithoutAGrant", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "namespaces"})
		if !r.IsError || !strings.Contains(r.Text, "no grant allows list namespaces on backend") {
			t.Errorf("namespaces = %v %q", r.IsError, r.Text)
		}
	})
	t.Run("MasksSecretValuesAndAsksBeforeReadingOne", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster", "resource": "secrets"})
		if r.IsError || r.Body["count"] != float64(2) || !strings.Contains(r.Text, `"password":"[masked:`) {
			t.Errorf("secrets = %v %s", r.IsError, r.Text)
		}
		r = get(map[string]any{"cluster": "cluster", "resource": "secrets", "namespace": "staging", "name": "db", "purpose": "check the key names"})
		if r.IsError || !strings.Contains(r.Text, `"password":"[masked:`) {
			t.Errorf("secret = %v %s", r.IsError, r.Text)
		}
		if q := u.questions(); len(q) != 2 || !strings.Contains(q[0], "list secrets in namespaces staging, team-a") ||
			!strings.Contains(q[1], "get secrets staging/db") || !strings.Contains(q[1], "check the key names") {
			t.Errorf("questions = %q; want two: the list, then the get naming the secret", q)
		}
	})
	t.Run("ImpersonationLetsTheClusterRBACApply", func(t *testing.T) {
		r := get(map[string]any{"cluster": "cluster-as-you", "resource": "pods", "namespace": "staging"})
		if r.IsError || r.Body["count"] != float64(2) {
			t.Errorf("alice's pods in staging = %v %s", r.IsError, r.Text)
		}
		r = get(map[string]any{"cluster": "cluster-as-you", "resource": "pods", "namespace": "team-a"})
		if !r.IsError || !strings.Contains(r.Text, "Rule: kube.rbac") || !strings.Contains(r.Text, `User "alice" cannot list resource "pods"`) {
			t.Errorf("alice's pods in team-a = %v %q; want the cluster's refusal", r.IsError, r.Text)
		}
	})
	cl.Close()

	calls := recordedCalls(t, config)
	var statements []string
	for _, rc := range calls {
		if rc.Tool == "kube_get" && rc.Outcome == "ok" {
			statements = append(statements, fmt.Sprintf("%s (%d)", rc.Statement, rc.Count))
		}
	}
	for _, want := range []string{
		"list pods in namespaces staging, team-a (the ones granted), limit 500 (4)",
		"get pods staging/web-0 (1)",
		"list pods in namespace team-a, labels app=web, limit 500 (2)",
		"get secrets staging/db (1)",
	} {
		if !slices.Contains(statements, want) {
			t.Errorf("recorded calls %q lack %q", statements, want)
		}
	}
}
