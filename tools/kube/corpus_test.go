package kube

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubecorpus"
	"github.com/warden-mcp/warden/internal/kubetest"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

var (
	corpusOnce sync.Once
	corpusNS   string
	corpusErr  error
)

// corpus plants the secrets corpus once, in a namespace of its own.
func corpus(t *testing.T) string {
	t.Helper()
	c := world(t)
	corpusOnce.Do(func() {
		corpusNS = "corpus"
		admin := c.Client(t, kubetest.Admin)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.CoreV1().Namespaces().Get(ctx, corpusNS, metaGet); err != nil {
			if corpusErr = createNamespace(ctx, admin, corpusNS); corpusErr != nil {
				return
			}
		}
		corpusErr = kubecorpus.Plant(ctx, admin, corpusNS)
	})
	if corpusErr != nil {
		t.Fatalf("planting the corpus: %v", corpusErr)
	}
	return corpusNS
}

// TestPlantedSecretsNeverShow reads every object of the corpus, by name
// and as lists, and judges each answer by outcome: no planted value, in
// any encoding or inside any encoded layer, comes back; every harmless
// value still does. The value detectors are off for the first run: the
// structure alone must do it.
func TestPlantedSecretsNeverShow(t *testing.T) {
	ns := corpus(t)
	det, err := mask.NewDetectors(mask.Config{Detectors: mask.Names()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		detectors bool
	}{{"StructureAlone", false}, {"WithDetectors", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{}, &policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"*"}})
			if tc.detectors {
				f.tool.Scrubber = det
			}
			var all strings.Builder
			for _, args := range kubecorpus.Reads(ns) {
				out, _ := f.ok(dev, args)
				raw := out["raw"].(string)
				all.WriteString(raw)
				for _, place := range slices.Sorted(maps.Keys(kubecorpus.Places)) {
					if kubecorpus.Reveals(raw, kubecorpus.Secret(place)) {
						t.Errorf("kube_get(%v) reveals the secret planted at %s:\n%s", args, place, raw)
					}
				}
			}
			var hidden []string
			for _, h := range kubecorpus.Harmless {
				if !strings.Contains(all.String(), h) {
					hidden = append(hidden, h)
				}
			}
			t.Logf("%d planted secrets, %d harmless values, %d of them masked (false positives): %v", len(kubecorpus.Places), len(kubecorpus.Harmless), len(hidden), hidden)
			if len(hidden) > 0 {
				t.Errorf("harmless values masked: %v", hidden)
			}
		})
	}
}

// TestStrictMasksEveryFreeFormValueButTheRevealed: in strict mode only
// the revealed paths show, and a revealed path still never shows a value
// its name says is secret.
func TestStrictMasksEveryFreeFormValueButTheRevealed(t *testing.T) {
	ns := corpus(t)
	f := newFixture(t, Config{Masking: Masking{Strict: true, Reveal: []string{
		"env:LOG_LEVEL", "env:DB_PASSWORD", "flag:--port", "annotation:example.com/owner", "data:log_level", "field:vaults.corpus.example.com:spec.color",
	}}}, &policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"*"}})
	read := func(res, name string) string {
		out, _ := f.ok(dev, map[string]any{"resource": res, "namespace": ns, "name": name})
		raw := out["raw"].(string)
		for place := range kubecorpus.Places {
			if kubecorpus.Reveals(raw, kubecorpus.Secret(place)) {
				t.Errorf("strict %s/%s reveals %s", res, name, place)
			}
		}
		return raw
	}
	for _, tc := range []struct {
		res, name     string
		shown, hidden []string
	}{
		{"pods", "app", []string{`"value":"debug"`, "--port=8080", "platform-team", "nginx:1.27"}, []string{"db.internal", `"blue"`, "--verbose=", `"sh"`}},
		{"configmaps", "app", []string{`"log_level":"debug"`, "platform-team"}, []string{"db.internal", "widget-operator"}},
		{"vaults.corpus.example.com", "app", []string{`"color":"blue"`}, []string{"widget-operator", "8443", "db.internal"}},
	} {
		raw := read(tc.res, tc.name)
		for _, s := range tc.shown {
			if !strings.Contains(raw, s) {
				t.Errorf("strict %s/%s hides the revealed %s:\n%s", tc.res, tc.name, s, raw)
			}
		}
		for _, s := range tc.hidden {
			if strings.Contains(raw, s) {
				t.Errorf("strict %s/%s shows %s, not revealed:\n%s", tc.res, tc.name, s, raw)
			}
		}
	}
}

var metaGet = metav1.GetOptions{}

func createNamespace(ctx context.Context, admin *kubernetes.Clientset, name string) error {
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}
