package kubetest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubetest"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func TestCluster(t *testing.T) {
	start := time.Now()
	c := kubetest.Shared(t)
	t.Logf("cluster ready at %s in %v", c.Server, time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := c.Client(t, kubetest.Admin)

	t.Run("version", func(t *testing.T) {
		info, err := admin.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		v, err := version.ParseSemantic(info.GitVersion)
		if err != nil {
			t.Fatalf("server version %q: %v", info.GitVersion, err)
		}
		if v.String() != strings.TrimPrefix(kubetest.Version, "v") || info.Major != "1" || info.Minor != "37" {
			t.Fatalf("server version %+v, want %s", info, kubetest.Version)
		}
	})

	t.Run("pods", func(t *testing.T) {
		ns := c.NewNamespace(t)
		// No serviceAccountName needed: the ServiceAccount admission plugin
		// is off (no controller manager makes "default" accounts).
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		}
		if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 1 || pods.Items[0].Name != "web" {
			t.Fatalf("pods: %+v", pods.Items)
		}
		if p := pods.Items[0]; p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
			t.Errorf("pod phase %q node %q: want Pending and unscheduled", p.Status.Phase, p.Spec.NodeName)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		ns := c.NewNamespace(t)
		warden := c.Client(t, kubetest.Warden)
		if _, err := warden.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("warden lists pods before the grant: err = %v, want Forbidden", err)
		}
		_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "warden-reads-pods"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kubetest.Warden}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The authorizer sees the binding through an informer: poll.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := warden.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				break
			}
			if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
				t.Fatalf("warden lists pods after the grant: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Only what was granted, only where.
		if err := warden.CoreV1().Pods(ns).Delete(ctx, "x", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("warden deletes a pod: err = %v, want Forbidden", err)
		}
		if _, err := warden.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("warden lists pods in default: err = %v, want Forbidden", err)
		}
		if _, err := c.Client(t, kubetest.Alice).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("alice lists pods: err = %v, want Forbidden", err)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := c.WriteKubeconfig(path, kubetest.Bob, "test-ctx"); err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Insecure || len(cfg.CAData) == 0 {
			t.Fatalf("kubeconfig TLS: insecure %v, CA %d bytes", cfg.Insecure, len(cfg.CAData))
		}
		whoami(t, cfg, kubetest.Bob)
	})

	t.Run("token-file", func(t *testing.T) {
		b, err := os.ReadFile(c.TokenFile(kubetest.Alice))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.Token(kubetest.Alice) {
			t.Fatalf("token file holds %q", b)
		}
		whoami(t, &rest.Config{
			Host:            c.Server,
			BearerTokenFile: c.TokenFile(kubetest.Alice),
			TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		}, kubetest.Alice)
	})

	t.Run("tls-verified", func(t *testing.T) {
		cfg := c.AdminConfig()
		cfg.TLSClientConfig = rest.TLSClientConfig{} // system roots only
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Discovery().ServerVersion(); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("without the CA: err = %v, want a certificate error", err)
		}
	})
}

// whoami checks, with a SelfSubjectReview, that cfg authenticates as user.
func whoami(t *testing.T, cfg *rest.Config, user string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Status.UserInfo.Username; got != user {
		t.Fatalf("authenticated as %q, want %q", got, user)
	}
}

// TestStart checks that a cluster of a test's own is up during the test and
// gone after it.
func TestStart(t *testing.T) {
	kubetest.SkipIfAsked(t)
	var cfg *rest.Config
	t.Run("own", func(t *testing.T) {
		c := kubetest.Start(t)
		cfg = c.AdminConfig()
		whoami(t, cfg, kubetest.Admin)
	})
	if cfg == nil {
		t.FailNow()
	}
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Fatal("the apiserver still answers after its test ended")
	}
}
