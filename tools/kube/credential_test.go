package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubecorpus"
	"github.com/warden-mcp/warden/internal/kubetest"
	"github.com/warden-mcp/warden/policy"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// plantCredential puts value in a ConfigMap of ns in every form it could
// be copied in: raw, base64 and base64url (alone and inside a longer
// encoded value, at each alignment), percent-encoded, JSON-escaped inside
// JSON, as a Bearer header, and in an annotation.
func plantCredential(t *testing.T, c *kubetest.Cluster, ns, name, value string) {
	t.Helper()
	q, _ := json.Marshal(map[string]string{"v": value})
	data := map[string]string{
		"raw":     value,
		"b64":     base64.StdEncoding.EncodeToString([]byte(value)),
		"b64url":  base64.RawURLEncoding.EncodeToString([]byte(value)),
		"pct":     url.QueryEscape(value),
		"json":    string(q),
		"header":  "Authorization: Bearer " + value,
		"comment": "the token is " + value + " (do not share)",
	}
	for k := 1; k <= 3; k++ {
		data[fmt.Sprintf("b64at%d", k)] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", k) + value + "tail"))
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"example.com/note": "copied " + value}}, Data: data}
	if _, err := c.Client(t, kubetest.Admin).CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// selfSignedKey returns a client certificate and key, PEM-encoded.
func selfSignedKey(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// TestOwnCredentialNeverShows: whatever authenticates warden, its
// credential planted in a ConfigMap in every form never comes back.
func TestOwnCredentialNeverShows(t *testing.T) {
	c := world(t)
	ns := c.NewNamespace(t)
	grant := &policy.Grant{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"configmaps"}}
	token := c.Token(kubetest.Warden)
	plantCredential(t, c, ns, "token", token)
	dir := t.TempDir()

	read := func(t *testing.T, f *fixture, name string, secrets ...string) {
		t.Helper()
		for _, args := range []map[string]any{{"resource": "configmaps", "namespace": ns, "name": name}, {"resource": "configmaps", "namespace": ns}} {
			out, _ := f.ok(dev, args)
			raw := out["raw"].(string)
			for _, s := range secrets {
				if kubecorpus.Reveals(raw, s) {
					t.Errorf("kube_get(%v) reveals warden's credential:\n%s", args, raw)
				}
			}
			if !strings.Contains(raw, credentialMarker) {
				t.Errorf("kube_get(%v) shows no masked credential:\n%s", args, raw)
			}
		}
	}

	t.Run("TokenFile", func(t *testing.T) {
		read(t, newFixture(t, Config{}, grant), "token", token)
	})
	t.Run("ExecPlugin", func(t *testing.T) {
		// As EKS, GKE and AKS kubeconfigs do: the token comes from a
		// command, never from the config.
		plugin := filepath.Join(dir, "get-token")
		cred := fmt.Sprintf(`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":%q}}`, token)
		if err := os.WriteFile(plugin, []byte("#!/bin/sh\ncat <<'EOF'\n"+cred+"\nEOF\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		kc := clientcmdapi.NewConfig()
		kc.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
		kc.AuthInfos["w"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: plugin, InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
		kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "w"}
		kc.CurrentContext = "ctx"
		path := filepath.Join(dir, "exec-kubeconfig")
		if err := clientcmd.WriteToFile(*kc, path); err != nil {
			t.Fatal(err)
		}
		read(t, newFixture(t, Config{Kubeconfig: path}, grant), "token", token)
	})
	t.Run("ClientKey", func(t *testing.T) {
		cert, key := selfSignedKey(t)
		blk, _ := pem.Decode(key)
		body := base64.StdEncoding.EncodeToString(blk.Bytes)
		plantCredential(t, c, ns, "key", string(key))
		kc := clientcmdapi.NewConfig()
		kc.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
		kc.AuthInfos["w"] = &clientcmdapi.AuthInfo{Token: token, ClientCertificateData: cert, ClientKeyData: key}
		kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "w"}
		kc.CurrentContext = "ctx"
		path := filepath.Join(dir, "cert-kubeconfig")
		if err := clientcmd.WriteToFile(*kc, path); err != nil {
			t.Fatal(err)
		}
		read(t, newFixture(t, Config{Kubeconfig: path}, grant), "key", string(key), body)
	})
	t.Run("TokenFileAfterRotation", func(t *testing.T) {
		// The file now holds another valid token: masked from the next
		// call on, before client-go even sends it.
		file := filepath.Join(dir, "rotating-token")
		if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, Config{Server: c.Server, TokenFile: file, CAFile: c.CAFile}, grant)
		read(t, f, "token", token)
		rotated := c.Token(kubetest.Admin)
		plantCredential(t, c, ns, "rotated", rotated)
		if err := os.WriteFile(file, []byte(rotated+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(file, later, later); err != nil {
			t.Fatal(err)
		}
		read(t, f, "rotated", rotated, token)
	})
}

// TestBasicAuthCredentialsAreMasked: basic auth as configured and as seen
// on the wire (the header's base64), raw and encoded.
func TestBasicAuthCredentialsAreMasked(t *testing.T) {
	creds := newCredentials(&rest.Config{Username: "warden", Password: "hunter2-basic-pw"})
	header := base64.StdEncoding.EncodeToString([]byte("warden:hunter2-basic-pw"))
	creds.observe("Basic " + header)
	in, _ := json.Marshal(map[string]string{
		"raw": "hunter2-basic-pw", "pct": url.QueryEscape("warden:hunter2-basic-pw"), "header": "Basic " + header,
		"b64": base64.RawURLEncoding.EncodeToString([]byte("hunter2-basic-pw")),
	})
	out := string(creds.scrub(in))
	for _, s := range []string{"hunter2-basic-pw", "warden:hunter2-basic-pw"} {
		if kubecorpus.Reveals(out, s) {
			t.Errorf("scrub(%s) = %s; reveals %q", in, out, s)
		}
	}
}

// TestPluginSecretsFromTheKubeconfigAreMasked: what a kubeconfig hands an
// auth provider or an exec plugin is warden's credential too.
func TestPluginSecretsFromTheKubeconfigAreMasked(t *testing.T) {
	creds := newCredentials(&rest.Config{
		AuthProvider: &clientcmdapi.AuthProviderConfig{Name: "oidc", Config: map[string]string{"client-secret": "oidc-client-secret-1", "refresh-token": "oidc-refresh-token-2", "idp-issuer-url": "https://issuer.example.com"}},
		ExecProvider: &clientcmdapi.ExecConfig{Env: []clientcmdapi.ExecEnvVar{{Name: "AWS_SECRET_ACCESS_KEY", Value: "aws-secret-access-3"}, {Name: "AWS_REGION", Value: "eu-west-1"}}},
	})
	in := []byte(`{"a":"oidc-client-secret-1","b":"oidc-refresh-token-2","c":"aws-secret-access-3","d":"https://issuer.example.com","e":"eu-west-1"}`)
	out := string(creds.scrub(in))
	for _, s := range []string{"oidc-client-secret-1", "oidc-refresh-token-2", "aws-secret-access-3"} {
		if strings.Contains(out, s) {
			t.Errorf("scrub = %s; shows %q", out, s)
		}
	}
	for _, s := range []string{"https://issuer.example.com", "eu-west-1"} {
		if !strings.Contains(out, s) {
			t.Errorf("scrub = %s; hides the harmless %q", out, s)
		}
	}
}

// TestExecPluginClientKeyIsMasked: an exec plugin that returns a client
// certificate and key (no token) authenticates in the TLS handshake; the
// key it returned is masked in what the server sends back. (The test
// apiserver asks no client certificate, so a TLS server that does stands
// in for it.)
func TestExecPluginClientKeyIsMasked(t *testing.T) {
	cert, key := selfSignedKey(t)
	blk, _ := pem.Decode(key)
	body := base64.StdEncoding.EncodeToString(blk.Bytes)
	echo, _ := json.Marshal(map[string]any{"kind": "ConfigMap", "data": map[string]string{"key": string(key), "b64": base64.StdEncoding.EncodeToString(key)}})
	var sawCert atomic.Bool
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawCert.Store(r.TLS != nil && len(r.TLS.PeerCertificates) > 0)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(echo)
	}))
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ts.StartTLS()
	defer ts.Close()
	dir := t.TempDir()
	plugin := filepath.Join(dir, "get-cert")
	cred, _ := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
		"status": map[string]string{"clientCertificateData": string(cert), "clientKeyData": string(key)}})
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\ncat <<'EOF'\n"+string(cred)+"\nEOF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: ts.URL, CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})}
	kc.AuthInfos["w"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: plugin, InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "w"}
	kc.CurrentContext = "ctx"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Kubeconfig: path}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend("cluster", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	raw, err := do(context.Background(), b.self.Get().AbsPath("/api/v1/namespaces/x/configmaps/y"))
	if err != nil {
		t.Fatal(err)
	}
	if !sawCert.Load() {
		t.Fatal("the plugin's certificate was not presented")
	}
	out, err := b.clean(raw, &resource{gvr: corev1.SchemeGroupVersion.WithResource("configmaps"), kind: "ConfigMap"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(key), body} {
		if kubecorpus.Reveals(string(out), s) {
			t.Errorf("the answer reveals the plugin's client key: %s", out)
		}
	}
}
