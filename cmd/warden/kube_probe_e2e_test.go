package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKubeCheckConnect: check --connect reads the cluster's version and
// namespaces with warden's credentials and names the namespaces the
// config grants or holds that the cluster does not have; a rejected
// credential is named without being printed.
func TestKubeCheckConnect(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Client(t, kubetest.Admin).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "staging"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "bad-kubeconfig")
	if err := c.WriteKubeconfig(good, kubetest.Admin, "e2e"); err != nil {
		t.Fatal(err)
	}
	token := c.Token(kubetest.Admin)
	raw, err := os.ReadFile(good)
	if err != nil || !strings.Contains(string(raw), token) {
		t.Fatalf("the kubeconfig does not hold the token: %v", err)
	}
	if err := os.WriteFile(bad, []byte(strings.ReplaceAll(string(raw), token, "wrong-"+token)), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "warden.yaml")
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice, groups: [dev]}
backends:
  cluster: {kind: kubernetes, kubeconfig: %q, context: e2e}
  rejected: {kind: kubernetes, kubeconfig: %q, context: e2e}
roles:
  dev:
    members: {groups: [dev]}
    grants:
      - {backend: cluster, namespaces: [staging, "team-*", nosuch], resources: [pods]}
      - {backend: rejected, namespaces: [staging], resources: [pods]}
masking:
  detectors: [secret_token]
approvals:
  - {name: reads, backend: cluster, when: [get], namespaces: [gone], approvers: user}
`, good, bad)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(t, nil, "check", "--config", config, "--connect")
	if code != 1 {
		t.Fatalf("check --connect = %d; want 1\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"cluster (kubernetes): ok",
		`rejected (kubernetes): FAILED: cluster "rejected" rejected warden's credentials`,
		`roles.dev.grants[0].namespaces: team-* matches no namespace in cluster "cluster"`,
		`roles.dev.grants[0].namespaces: nosuch matches no namespace in cluster "cluster"`,
		`approvals[0].namespaces: gone matches no namespace in cluster "cluster"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "grants[0].namespaces: staging") {
		t.Errorf("an existing namespace was reported:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, token) || strings.Contains(stdout+stderr, c.AdminConfig().Host) {
		t.Errorf("output holds the token or the server's address:\n%s%s", stdout, stderr)
	}
}
