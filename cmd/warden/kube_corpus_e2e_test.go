package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/kubecorpus"
	"github.com/warden-mcp/warden/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKubeCorpusEndToEnd drives kube_get through the built binary against
// a real kube-apiserver holding the planted-secrets corpus (and warden's
// own token copied into a ConfigMap), with approval rules on Secrets and
// events. Judged by outcome: no planted value, raw or encoded, reaches
// the agent or the recording's files (db, -wal, -shm); harmless values
// still do; every request that returns a held object is held, whatever
// its verb, selector or API group.
func TestKubeCorpusEndToEnd(t *testing.T) {
	c := kubetest.Start(t)
	seedCluster(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(t, kubetest.Admin)
	const ns = "corpus"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kubecorpus.Plant(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	token := c.Token(kubetest.Warden)
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "copied-token"},
		Data: map[string]string{"raw": token, "b64": base64.StdEncoding.EncodeToString([]byte("prefix:" + token))}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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
  cluster: {kind: kubernetes, kubeconfig: %q, context: e2e, masking: {secret_names: [pin], secret_flags: [-W]}}
roles:
  dev:
    members: {groups: [dev]}
    grants:
      - {backend: cluster, namespaces: [corpus], resources: ["*"]}
masking:
  detectors: [secret_token, credit_card, email]
approvals:
  - {name: secret-gets, backend: cluster, when: [get], resources: [secrets], approvers: user}
  - {name: event-gets, backend: cluster, when: [get], resources: [events], approvers: user}
`, kubeconfig)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runWarden(t, "check", "--config", config); code != 0 || !strings.Contains(out, "masking: strict false, secret names pin, secret flags -W") {
		t.Errorf("check = %d\n%s%s", code, out, errOut)
	}
	secrets := []string{token}
	for place := range kubecorpus.Places {
		secrets = append(secrets, kubecorpus.Secret(place))
	}
	u := answering(slices.Repeat([]mcp.ElicitationResponseAction{mcp.ElicitationResponseActionAccept}, 100)...)
	cl := dial(t, "stdio", config, mcp.ProtocolVersion20251125, u, nil)
	var answers strings.Builder
	get := func(args map[string]any) result {
		t.Helper()
		args["cluster"] = "cluster"
		r := call(t, cl, "kube_get", args)
		if r.IsError {
			t.Errorf("kube_get(%v) = %s", args, r.Text)
		}
		answers.WriteString(r.Text)
		for _, s := range secrets {
			if kubecorpus.Reveals(r.Text, s) {
				t.Errorf("kube_get(%v) reveals %q:\n%s", args, s, r.Text)
			}
		}
		return r
	}
	for _, args := range kubecorpus.Reads(ns) {
		get(args)
	}
	get(map[string]any{"resource": "configmaps", "namespace": ns, "name": "copied-token"})
	var hidden []string
	for _, h := range kubecorpus.Harmless {
		if !strings.Contains(answers.String(), h) {
			hidden = append(hidden, h)
		}
	}
	if len(hidden) > 0 {
		t.Errorf("harmless values masked (false positives): %v", hidden)
	}

	t.Run("RulesHoldEveryRequestThatReturnsAHeldObject", func(t *testing.T) {
		for _, tc := range []struct {
			args map[string]any
			want string // in the question asked
		}{
			{map[string]any{"resource": "secrets", "namespace": ns, "name": "app"}, "get secrets corpus/app"},
			{map[string]any{"resource": "secrets", "namespace": ns, "field_selector": "metadata.name=app"}, "list secrets in namespace corpus, fields metadata.name=app"},
			{map[string]any{"resource": "secret", "namespace": ns, "label_selector": "x!=y"}, "list secrets in namespace corpus, labels x!=y"},
			{map[string]any{"resource": "ev", "namespace": ns}, "list events in namespace corpus"},
			{map[string]any{"resource": "events.events.k8s.io", "namespace": ns, "field_selector": "metadata.name=app.1"}, "list events.events.k8s.io in namespace corpus, fields metadata.name=app.1"},
			{map[string]any{"resource": "events.v1.events.k8s.io", "namespace": ns, "name": "app.1"}, "get events.events.k8s.io corpus/app.1"},
		} {
			before := len(u.questions())
			get(tc.args)
			q := u.questions()
			if len(q) != before+1 || !strings.Contains(q[len(q)-1], tc.want) {
				t.Errorf("kube_get(%v) asked %q; want one question about %q", tc.args, q[before:], tc.want)
			}
		}
		before := len(u.questions())
		get(map[string]any{"resource": "configmaps", "namespace": ns, "name": "app"})
		if q := u.questions(); len(q) != before {
			t.Errorf("reading a ConfigMap asked %q; want no question", q[before:])
		}
	})
	cl.Close()

	rec := recordingBytes(t, config)
	for _, s := range secrets {
		if kubecorpus.Reveals(rec, s) {
			t.Errorf("the recording reveals %q", s)
		}
	}
	calls := recordedCalls(t, config)
	ok := 0
	for _, rc := range calls {
		if rc.Tool == "kube_get" && rc.Outcome == "ok" {
			ok++
		}
	}
	if want := len(kubecorpus.Reads(ns)) + 1 + 7; ok != want {
		t.Errorf("recorded %d answered kube_get calls; want %d", ok, want)
	}
}
