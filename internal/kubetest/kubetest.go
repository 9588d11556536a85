// Package kubetest runs a real kube-apiserver backed by etcd, built from source by hack/kubetools/build.sh, for tests.
//
// A Cluster has only the API server and etcd: no scheduler, kubelet or
// controller manager. Objects can be created, read, watched and authorized,
// but pods stay Pending, namespaces that are deleted stay Terminating, no
// "default" ServiceAccount appears in new namespaces (the ServiceAccount
// admission plugin is disabled so pods can be created without one) and
// nothing garbage-collects owned objects. Authorization is RBAC; the users
// named by the User constants have static bearer tokens.
//
// Starting takes a few seconds, so a package normally shares one cluster:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := kubetest.Shared(t)
//		ns := c.NewNamespace(t)
//		...
//	}
//
// Tests that need a cluster of their own call Start, which stops it when the
// test ends. RBAC grants take effect once the apiserver's informers see them,
// usually within a second: poll rather than expect the next request to pass.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Version is the Kubernetes version that hack/kubetools/build.sh builds.
const Version = "v1.37.2"

// The users that every cluster has a static token for.
const (
	// Admin is in group system:masters: it may do anything.
	Admin = "admin"
	// Warden is the identity warden itself runs as. It has no groups (beyond
	// system:authenticated) and so no rights until a test grants them.
	Warden = "warden"
	// Alice and Bob are ordinary users with no groups and no rights.
	Alice = "alice"
	Bob   = "bob"
)

var userGroups = map[string][]string{
	Admin:  {"system:masters"},
	Warden: nil,
	Alice:  nil,
	Bob:    nil,
}

// Cluster is a running kube-apiserver and its etcd.
type Cluster struct {
	// Server is the apiserver's URL, https://127.0.0.1:PORT.
	Server string
	// CAFile is a PEM file holding the CA that signed the serving certificate.
	CAFile string
	// CAData is the content of CAFile.
	CAData []byte
	// Dir holds the cluster's files: certificates, tokens, etcd's data and
	// the two processes' logs (etcd.log, kube-apiserver.log).
	Dir string

	tokens map[string]string
	procs  []*proc // etcd first
}

// BinDir is where the binaries are looked for: $WARDEN_KUBE_BIN, or else
// $HOME/.cache/warden-kube/v1.37.2, as hack/kubetools/build.sh uses.
func BinDir() string {
	if d := os.Getenv("WARDEN_KUBE_BIN"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "warden-kube", Version)
}

// SkipEnv names the environment variable that, set to 1, makes Start and
// Shared skip the test instead of starting a cluster: `make test-quick`
// sets it. `make test` and CI do not, and there a missing binary fails the
// test.
const SkipEnv = "WARDEN_SKIP_KUBE"

// SkipIfAsked skips the test when SkipEnv is 1. Start and Shared call it;
// a test that needs a cluster beyond them calls it first.
func SkipIfAsked(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: the Kubernetes API server tests are left to `make test`", SkipEnv)
	}
}

// Start starts a cluster of the test's own, files in t.TempDir(), and stops
// it when the test ends; the processes' logs are printed if the test failed.
// A missing binary fails the test with the command that builds it.
func Start(t testing.TB) *Cluster {
	t.Helper()
	SkipIfAsked(t)
	dir := t.TempDir()
	c, err := start(dir)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				c.logTo(t.Logf)
			}
		})
		t.Cleanup(c.stop)
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return c
}

var shared struct {
	sync.Mutex
	inMain bool
	once   sync.Once
	c      *Cluster
	err    error
}

// Main runs the package's tests with m.Run, then stops the cluster Shared
// started, if any, and exits. Call it from TestMain. When a test failed the
// processes' logs go to standard error.
func Main(m *testing.M) {
	shared.Lock()
	shared.inMain = true
	shared.Unlock()
	code := m.Run()
	if c := shared.c; c != nil {
		if code != 0 {
			c.logTo(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
		}
		c.stop()
		_ = os.RemoveAll(c.Dir)
	}
	os.Exit(code)
}

// Shared returns the package's one cluster, starting it on first use. The
// package's TestMain must call Main, which stops it after the last test; its
// tests should keep to namespaces of their own (see NewNamespace).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	SkipIfAsked(t)
	shared.Lock()
	inMain := shared.inMain
	shared.Unlock()
	if !inMain {
		t.Fatal("kubetest: Shared needs `func TestMain(m *testing.M) { kubetest.Main(m) }` in the package")
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubetest-")
		if err != nil {
			shared.err = err
			return
		}
		shared.c, shared.err = start(dir)
		if shared.err != nil {
			if shared.c != nil {
				shared.c.logTo(t.Logf)
				shared.c.stop()
				shared.c = nil
			}
			_ = os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		t.Fatalf("kubetest: %v", shared.err)
	}
	return shared.c
}

// Users lists the users that have tokens.
func (c *Cluster) Users() []string {
	var us []string
	for u := range c.tokens {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// Token is the bearer token of user, one of the User constants. It panics on
// any other name: the token file is written before the apiserver starts.
func (c *Cluster) Token(user string) string {
	tok, ok := c.tokens[user]
	if !ok {
		panic(fmt.Sprintf("kubetest: no user %q (have %v)", user, c.Users()))
	}
	return tok
}

// TokenFile is the path of a file that holds only user's token, no newline.
func (c *Cluster) TokenFile(user string) string {
	c.Token(user) // panics on an unknown user
	return filepath.Join(c.Dir, "tokens", user)
}

// Config is a client configuration for user that verifies the serving
// certificate against the cluster's CA.
func (c *Cluster) Config(user string) *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.CAData...)},
		QPS:             -1, // no client-side rate limit
		Timeout:         30 * time.Second,
	}
}

// AdminConfig is Config(Admin): a member of system:masters.
func (c *Cluster) AdminConfig() *rest.Config { return c.Config(Admin) }

// Client is a clientset for user; it fails the test if one cannot be made.
func (c *Cluster) Client(t testing.TB, user string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config(user))
	if err != nil {
		t.Fatalf("kubetest: client for %s: %v", user, err)
	}
	return cs
}

// NewNamespace creates a namespace named after the test, with a random
// suffix, and deletes it when the test ends (with no controller manager it
// then stays Terminating, which is harmless).
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	name := dnsLabel(t.Name()) + "-" + randHex(3)
	cs := c.Client(t, Admin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// WriteKubeconfig writes a kubeconfig file for user to path, with the CA
// embedded, a cluster and user entry named after the user, and a context
// named context (user's name when empty) that is the current one.
func (c *Cluster) WriteKubeconfig(path, user, context string) error {
	if context == "" {
		context = user
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: c.Token(user)}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: user}
	cfg.CurrentContext = context
	return clientcmd.WriteToFile(*cfg, path)
}

// ---- starting and stopping ----

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // after done
}

func (c *Cluster) stop() {
	// The apiserver first: it would log etcd being gone otherwise.
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	c.procs = nil
}

// logTo prints the processes' logs, the last 64 KiB of each.
func (c *Cluster) logTo(logf func(string, ...any)) {
	for _, name := range []string{"etcd", "kube-apiserver"} {
		path := filepath.Join(c.Dir, name+".log")
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		const max = 64 << 10
		if len(b) > max {
			b = append([]byte("...\n"), b[len(b)-max:]...)
		}
		logf("kubetest: %s:\n%s", path, b)
	}
}

func start(dir string) (*Cluster, error) {
	bin := BinDir()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("no %s in %s: run `bash hack/kubetools/build.sh` (about 5 minutes the first time), or set WARDEN_KUBE_BIN to where it is", name, bin)
		}
	}
	c := &Cluster{Dir: dir, tokens: map[string]string{}}
	if err := c.writeFiles(); err != nil {
		return nil, err
	}
	// Free ports are picked then released, so another process may take one
	// before etcd or the apiserver binds it: try again with new ones.
	var err error
	for try := 0; try < 3; try++ {
		if err = c.run(bin); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		c.stop()
		_ = os.RemoveAll(filepath.Join(dir, "etcd"))
	}
	return c, err
}

var errPortTaken = errors.New("port taken")

func (c *Cluster) run(bin string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcd, err := c.spawn(bin, "etcd",
		"--name=kubetest",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync", // throwaway data: no need to wait for the disk
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(etcd, http.DefaultClient, etcdURL+"/health", "", 30*time.Second); err != nil {
		return err
	}

	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	api, err := c.spawn(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+filepath.Join(c.Dir, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(c.Dir, "apiserver.key"),
		"--cert-dir="+filepath.Join(c.Dir, "certs"),
		"--token-auth-file="+filepath.Join(c.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(c.Dir, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(c.Dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return waitHTTP(api, hc, c.Server+"/readyz", c.tokens[Admin], 90*time.Second)
}

func (c *Cluster) spawn(bin, name string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(c.Dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== %s %s\n", name, strings.Join(args, " "))
	p.cmd = exec.Command(filepath.Join(bin, name), args...)
	p.cmd.Dir = c.Dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, p)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

var portTakenRE = regexp.MustCompile(`address already in use`)

// waitHTTP polls url until it answers 200, p exits, or the time is up.
func waitHTTP(p *proc, hc *http.Client, url, token string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	delay := 20 * time.Millisecond
	var last string
	for {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			if portTakenRE.Match(b) {
				return fmt.Errorf("%s: %w", p.name, errPortTaken)
			}
			return fmt.Errorf("%s exited before it was ready (%v); its log is %s", p.name, p.err, p.log)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %s; its log is %s", p.name, limit, last, p.log)
		}
		time.Sleep(delay)
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeFiles writes the serving CA and certificate, the service-account key
// and the static tokens.
func (c *Cluster) writeFiles() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}

	c.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.CAFile = filepath.Join(c.Dir, "ca.crt")
	var tokens strings.Builder
	for user, groups := range userGroups {
		tok := randHex(24)
		c.tokens[user] = tok
		// token,user,uid[,"group1,group2"]: an empty fourth column would
		// make a group named "".
		fmt.Fprintf(&tokens, "%s,%s,uid-%s", tok, user, user)
		if len(groups) > 0 {
			fmt.Fprintf(&tokens, ",%q", strings.Join(groups, ","))
		}
		tokens.WriteString("\n")
	}
	files := map[string][]byte{
		"ca.crt":        c.CAData,
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		"tokens.csv":    []byte(tokens.String()),
	}
	for user, tok := range c.tokens {
		files[filepath.Join("tokens", user)] = []byte(tok)
	}
	for name, b := range files {
		path := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonLabel = regexp.MustCompile(`[^a-z0-9]+`)

// dnsLabel turns a test name into the start of a namespace name.
func dnsLabel(s string) string {
	s = strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	if s == "" {
		s = "test"
	}
	return s
}
