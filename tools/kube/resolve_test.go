package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/kubetest"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestResolvesNamesDeterministically: CRDs that take names already in use
// (a short name two of them share, core names in their own group) never
// make a name resolve one way now and another later: the core group wins,
// then the built-in ones, and what is still ambiguous is refused with the
// candidates.
func TestResolvesNamesDeterministically(t *testing.T) {
	c := world(t)
	admin := c.Client(t, kubetest.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crd := func(group, plural, kind string, short ...string) string {
		shorts := `[]`
		if len(short) > 0 {
			shorts = `["` + strings.Join(short, `","`) + `"]`
		}
		return fmt.Sprintf(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"%[2]s.%[1]s"},
		"spec":{"group":%[1]q,"names":{"plural":%[2]q,"kind":%[3]q,"shortNames":%[4]s},"scope":"Namespaced",
		"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}`, group, plural, kind, shorts)
	}
	for _, body := range []string{
		crd("a.example.com", "gizmos", "Gizmo", "gz"),
		crd("b.example.com", "gizmos", "Gizmo", "gz"),
		crd("evil.example.com", "pods", "Pod", "cm", "deploy"),
		crd("evil.example.com", "configmaps", "ConfigMap", "po"),
	} {
		if err := admin.RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").Body([]byte(body)).Do(ctx).Error(); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// Discovery serves the CRDs once they are established.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, gv := range []string{"a.example.com/v1", "b.example.com/v1", "evil.example.com/v1"} {
			l, err := admin.Discovery().ServerResourcesForGroupVersion(gv)
			if err != nil || len(l.APIResources) == 0 || (gv == "evil.example.com/v1" && len(l.APIResources) < 2) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, Config{})
	b := f.tool.Backends["cluster"]
	for arg, want := range map[string]string{
		"pods": "pods", "po": "pods", "pod": "pods", "cm": "configmaps", "configmaps": "configmaps", "deploy": "deployments.apps",
		"pods.evil.example.com": "pods.evil.example.com", "gizmos.a.example.com": "gizmos.a.example.com", "gz.b.example.com": "gizmos.b.example.com",
		"gizmos.v1.b.example.com": "gizmos.b.example.com",
	} {
		for range 3 {
			r, err := b.resolve(context.Background(), arg)
			if err != nil || r.name() != want {
				t.Fatalf("resolve(%q) = %v, %v; want %s, every time", arg, r, err, want)
			}
		}
	}
	for _, arg := range []string{"gz", "gizmos", "gizmo"} {
		_, err := b.resolve(context.Background(), arg)
		if e := warden.AsError(err); e == nil || e.Code != warden.Invalid || !strings.Contains(e.Message, "ambiguous") ||
			!strings.Contains(e.Message, "gizmos.a.example.com, gizmos.b.example.com") {
			t.Errorf("resolve(%q) = %v; want refused as ambiguous, naming both", arg, err)
		}
	}
}

// TestCapsCountWhatIsReturned: max_response_bytes bounds a get as well
// as a list, and counts objects as returned, after masking made them
// longer.
func TestCapsCountWhatIsReturned(t *testing.T) {
	c := world(t)
	ns := c.NewNamespace(t)
	data := map[string]string{}
	for i := range 200 {
		data[fmt.Sprintf("password%03d", i)] = "abc"
	}
	admin := c.Client(t, kubetest.Admin)
	for name, d := range map[string]map[string]string{"expands": data, "small": {"level": "debug"}} {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: d}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(context.Background(), "expands", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.ManagedFields = nil
	served := mustJSON(t, cm) // as served, without what warden drops anyway
	grant := &policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"configmaps"}}
	out, _ := newFixture(t, Config{}, grant).ok(dev, map[string]any{"resource": "configmaps", "namespace": ns, "name": "expands"})
	obj := out["object"].(map[string]any)
	masked := len(mustJSON(t, obj))
	if masked <= len(served)+1000 {
		t.Fatalf("the masked object (%d bytes) is not longer than the served one (%d)", masked, len(served))
	}
	// A cap between the served size and the masked one.
	limit := masked - 500
	f := newFixture(t, Config{MaxResponseBytes: limit}, grant)
	t.Run("GetOverTheCapIsRefused", func(t *testing.T) {
		_, _, e := f.run(dev, map[string]any{"resource": "configmaps", "namespace": ns, "name": "expands"})
		if e == nil || e.Code != warden.Invalid || !strings.Contains(e.Message, "max_response_bytes") {
			t.Errorf("get of a %d-byte object under a %d-byte cap = %v; want refused", masked, limit, e)
		}
	})
	t.Run("ListCountsMaskedObjects", func(t *testing.T) {
		out, _ := f.ok(dev, map[string]any{"resource": "configmaps", "namespace": ns})
		if out["truncated"] != true || slices.Contains(names(out), ns+"/expands") {
			t.Errorf("list under a %d-byte cap = %v, truncated %v; want the %d-byte object left out", limit, names(out), out["truncated"], masked)
		}
		if len(out["raw"].(string)) > limit+1000 {
			t.Errorf("the list is %d bytes; the cap is %d", len(out["raw"].(string)), limit)
		}
	})
	t.Run("CountsWhatTheDetectorsMask", func(t *testing.T) {
		// The detectors run in the pipeline, after the tool: the cap
		// still counts their output.
		emails := map[string]string{}
		for i := range 200 {
			emails[fmt.Sprintf("contact%03d", i)] = fmt.Sprintf("a%d@b.io", i%10)
		}
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "emails"}, Data: emails}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		det, err := mask.NewDetectors(mask.Config{Detectors: []string{mask.Email}})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := newFixture(t, Config{}, grant).ok(dev, map[string]any{"resource": "configmaps", "namespace": ns, "name": "emails"})
		plain := len(mustJSON(t, out["object"]))
		scrubbed, _, _ := det.ScrubJSON(mustJSON(t, out["object"]))
		if len(scrubbed) <= plain+1000 {
			t.Fatalf("masking the emails does not make the object longer: %d, %d", plain, len(scrubbed))
		}
		g := newFixture(t, Config{MaxResponseBytes: len(scrubbed) - 500}, grant)
		g.tool.Scrubber = det
		if _, _, e := g.run(dev, map[string]any{"resource": "configmaps", "namespace": ns, "name": "emails"}); e == nil || !strings.Contains(e.Message, "max_response_bytes") {
			t.Errorf("get of an object %d bytes once masked under a %d-byte cap = %v; want refused", len(scrubbed), len(scrubbed)-500, e)
		}
	})
	t.Run("SmallObjectsStillCome", func(t *testing.T) {
		out, _ := f.ok(dev, map[string]any{"resource": "configmaps", "namespace": ns, "name": "small"})
		if out["object"] == nil {
			t.Errorf("a small object under the cap = %v", out["raw"])
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMaskingConfigIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Masking
		want string
	}{
		{"BadName", Masking{SecretNames: []string{"Db_Pin"}}, `masking.secret_names[0]: "Db_Pin" is not a name component`},
		{"BadFlag", Masking{SecretFlags: []string{"--pw=x"}}, `masking.secret_flags[0]: "--pw=x" is not a flag`},
		{"BadReveal", Masking{Strict: true, Reveal: []string{"labels:app"}}, `masking.reveal[0]: "labels:app" is not a path`},
		{"BadField", Masking{Strict: true, Reveal: []string{"field:spec.size"}}, `masking.reveal[0]: "field:spec.size": a field path is field:RESOURCE:PATH`},
		{"RevealWithoutStrict", Masking{Reveal: []string{"env:LOG_LEVEL"}}, "masking.reveal: reveal applies in strict mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Server: "https://127.0.0.1:6443", TokenFile: "/dev/null", Masking: tc.m}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
	ok := Config{Server: "https://127.0.0.1:6443", TokenFile: "/dev/null", Masking: Masking{SecretNames: []string{"pin"}, SecretFlags: []string{"-W"}, Strict: true,
		Reveal: []string{"env:LOG_*", "annotation:app.kubernetes.io/*", "field:widgets.example.com:spec.size"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate() = %v; want ok", err)
	}
}

// TestGrantsCannotBeSidestepped tries to read what a grant does not
// cover by another verb, group or name for the same objects: each is
// refused by warden before the cluster is asked.
func TestGrantsCannotBeSidestepped(t *testing.T) {
	ns := corpus(t)
	f := newFixture(t, Config{},
		&policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"secrets"}, Names: []string{"app"}},
		&policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"events", "*.example.com"}},
	)
	if _, a := f.ok(dev, map[string]any{"resource": "secrets", "namespace": ns, "name": "app"}); a.Ops[0].Verb != "get" {
		t.Fatalf("the granted get planned %v", a.Ops)
	}
	if _, a := f.ok(dev, map[string]any{"resource": "ev", "namespace": ns}); a.Ops[0].Object != "namespaces/"+ns+"/events" {
		t.Errorf("ev planned %v; want the core events", a.Ops)
	}
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"ListByFieldSelectorUnderANamesGrant", map[string]any{"resource": "secrets", "namespace": ns, "field_selector": "metadata.name=app"}, "no grant allows list namespaces/" + ns + "/secrets"},
		{"AnotherNameOfTheSameKind", map[string]any{"resource": "secret", "namespace": ns, "name": "other"}, "no grant allows get namespaces/" + ns + "/secrets/other"},
		{"TheSameObjectsUnderAnotherGroup", map[string]any{"resource": "events.events.k8s.io", "namespace": ns}, "no grant allows list namespaces/" + ns + "/events.events.k8s.io"},
		{"ASubGroupOfAGlobbedGroup", map[string]any{"resource": "vaults", "namespace": ns}, "no grant allows list namespaces/" + ns + "/vaults.corpus.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, e := f.run(dev, tc.args)
			if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, tc.want) {
				t.Errorf("kube_get(%v) = %v; want Denied %q", tc.args, e, tc.want)
			}
		})
	}
}
