package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// deployDir is the example deployment, relative to this package.
const deployDir = "../../deploy/kubernetes"

// manifests decodes every object of the files kustomization.yaml lists.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var out []*unstructured.Unstructured
	for _, file := range k.Resources {
		data, err := os.ReadFile(filepath.Join(deployDir, file))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(obj.Object) > 0 {
				out = append(out, obj)
			}
		}
	}
	return out
}

// TestDeployManifests creates every object of the example deployment on a
// real kube-apiserver with a server-side dry run and strict field
// validation (an unknown or misspelt field fails), then checks what the
// deployment promises: three non-root replicas on a read-only root file
// system with readiness on /readyz and liveness on /healthz, a budget that
// keeps two of them through a drain, and a warden.yaml warden accepts.
func TestDeployManifests(t *testing.T) {
	objs := manifests(t)
	c := kubetest.Start(t)
	ns := c.NewNamespace(t)
	cfg := c.AdminConfig()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var kinds []string
	typed := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk, obj.GetName(), err)
			continue
		}
		created, err := dyn.Resource(m.Resource).Namespace(ns).Create(ctx, obj,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("dry-run create %s %s: %v", gvk.Kind, obj.GetName(), err)
			continue
		}
		kinds = append(kinds, gvk.Kind)
		typed[gvk.Kind+"/"+obj.GetName()] = created
	}
	slices.Sort(kinds)
	want := []string{"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Secret", "Service"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("created %v; want %v", kinds, want)
	}
	// A dry run persists nothing.
	if _, err := c.Client(t, kubetest.Admin).AppsV1().Deployments(ns).Get(ctx, "warden", metav1.GetOptions{}); err == nil {
		t.Error("the dry run created the deployment")
	}

	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(typed["Deployment/warden"].Object, &d); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	ctr := pod.Containers[0]
	checks := []struct {
		what string
		ok   bool
	}{
		{"3 replicas", *d.Spec.Replicas == 3},
		{"pods run as non-root", pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot},
		{"read-only root file system", ctr.SecurityContext.ReadOnlyRootFilesystem != nil && *ctr.SecurityContext.ReadOnlyRootFilesystem},
		{"no privilege escalation", ctr.SecurityContext.AllowPrivilegeEscalation != nil && !*ctr.SecurityContext.AllowPrivilegeEscalation},
		{"all capabilities dropped", ctr.SecurityContext.Capabilities != nil && slices.Contains(ctr.SecurityContext.Capabilities.Drop, corev1.Capability("ALL"))},
		{"readiness on /readyz", ctr.ReadinessProbe != nil && ctr.ReadinessProbe.HTTPGet.Path == "/readyz"},
		{"liveness on /healthz", ctr.LivenessProbe != nil && ctr.LivenessProbe.HTTPGet.Path == "/healthz"},
		{"secrets from the Secret", len(ctr.EnvFrom) == 1 && ctr.EnvFrom[0].SecretRef.Name == "warden-secrets"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("the deployment does not have %s", ch.what)
		}
	}
	pdb := typed["PodDisruptionBudget/warden"]
	if min, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); min != int64(2) {
		t.Errorf("PodDisruptionBudget minAvailable = %v; want 2 of the 3 replicas", min)
	}

	// The ConfigMap's warden.yaml is a config warden accepts, with the
	// Secret's variables set: a PostgreSQL store, as the fleet uses.
	data, _, _ := unstructured.NestedStringMap(typed["ConfigMap/warden-config"].Object, "data")
	env := map[string]string{
		"WARDEN_STORE_URL": "postgres://warden:x@postgres.database.svc:5432/warden",
		"ANALYTICS_DSN":    "postgres://warden_ro:x@analytics.database.svc:5432/analytics",
	}
	parsed, err := ParseConfig([]byte(data["warden.yaml"]), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the example warden.yaml does not validate: %v", err)
	}
	if parsed.Observe.Listen != "0.0.0.0:9090" || ctr.Ports[1].ContainerPort != 9090 {
		t.Errorf("observe.listen = %q, container port %d; the probes need them to agree", parsed.Observe.Listen, ctr.Ports[1].ContainerPort)
	}
	if !strings.HasPrefix(parsed.Store.URL, "postgres://") {
		t.Errorf("store.url = %q; want the shared PostgreSQL store", parsed.Store.URL)
	}
	if !strings.HasSuffix(parsed.Store.Keys, "/etc/warden/keys") {
		t.Errorf("store.keys = %q; want the mounted warden-keys Secret", parsed.Store.Keys)
	}
}
