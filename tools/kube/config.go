package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is one `kind: kubernetes` entry of `backends` in warden.yaml.
// warden reaches the cluster with exactly one of: a kubeconfig file (and
// optionally one of its contexts), the in-cluster service account, or a
// server with a token file (and a CA file).
type Config struct {
	Kind       string `yaml:"kind"`
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
	InCluster  bool   `yaml:"in_cluster"`
	Server     string `yaml:"server"`
	TokenFile  string `yaml:"token_file"`
	CAFile     string `yaml:"ca_file"`
	// Impersonate makes warden call the API as the caller
	// (Impersonate-User, Impersonate-Group), so the cluster's own RBAC
	// applies too; warden's credential then needs the impersonate verb.
	// warden's grants still apply first.
	Impersonate bool `yaml:"impersonate"`
	// Timeout bounds one call to the API server (default 10s).
	Timeout warden.Duration `yaml:"timeout"`
	// MaxObjects is the most objects one call returns, and the limit of
	// a list that names none (default 500).
	MaxObjects int `yaml:"max_objects"`
	// MaxResponseBytes caps the objects one call returns, encoded
	// (default 4 MiB); the rest is cut, with truncated set.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// Masking tunes how the free-form values of objects (environment
	// values, command lines, annotations, ConfigMap data, custom
	// resources) are judged; see structure.go.
	Masking Masking `yaml:"masking"`
}

// Masking is a kubernetes backend's `masking` section.
type Masking struct {
	// SecretNames are more name components that say secret (pin,
	// vault): environment variables, flags, annotation keys and keys in
	// ConfigMap files and custom resources named with one are masked.
	SecretNames []string `yaml:"secret_names"`
	// SecretFlags are more command-line flags whose value is secret
	// (-W, --vault-ticket).
	SecretFlags []string `yaml:"secret_flags"`
	// Strict masks every free-form value unless Reveal lists it.
	Strict bool `yaml:"strict"`
	// Reveal lists the free-form values strict mode shows, by path:
	// env:NAME (an environment variable), flag:--NAME (a flag's value),
	// args:CONTAINER (a container's whole command and args), header:NAME
	// (an HTTP probe header), annotation:KEY, data:KEY (a ConfigMap key),
	// field:RESOURCE:PATH (a custom resource's field, like
	// widgets.example.com:spec.size). A * matches any run of characters.
	// Values judged secret by their name stay masked.
	Reveal []string `yaml:"reveal"`
}

// revealKinds are the paths Reveal entries may name.
var revealKinds = []string{"env", "flag", "args", "header", "annotation", "data", "field"}

var (
	nameComponent = regexp.MustCompile(`^[a-z0-9]+$`)
	flagName      = regexp.MustCompile(`^--?[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

func (m *Masking) validate(add func(path, format string, args ...any)) {
	for i, n := range m.SecretNames {
		if !nameComponent.MatchString(n) {
			add(fmt.Sprintf("masking.secret_names[%d]", i), "%q is not a name component: use lower-case letters and digits, like pin (names are split at _, -, . and camelCase)", n)
		}
	}
	for i, f := range m.SecretFlags {
		if !flagName.MatchString(f) {
			add(fmt.Sprintf("masking.secret_flags[%d]", i), "%q is not a flag: write it with its dashes and without a value, like --vault-ticket or -W", f)
		}
	}
	for i, r := range m.Reveal {
		kind, name, ok := strings.Cut(r, ":")
		if !ok || !slices.Contains(revealKinds, kind) || name == "" {
			add(fmt.Sprintf("masking.reveal[%d]", i), "%q is not a path: use one of %s followed by ':' and a name", r, strings.Join(revealKinds, ", "))
			continue
		}
		if kind == "field" {
			if res, fp, ok := strings.Cut(name, ":"); !ok || res == "" || fp == "" {
				add(fmt.Sprintf("masking.reveal[%d]", i), "%q: a field path is field:RESOURCE:PATH, like field:widgets.example.com:spec.size", r)
			}
		}
	}
	if len(m.Reveal) > 0 && !m.Strict {
		add("masking.reveal", "reveal applies in strict mode; set strict: true or drop reveal")
	}
}

// Defaults, applied by Validate.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxObjects       = 500
	DefaultMaxResponseBytes = 4 << 20
)

// Validate fills defaults and checks the config, loading the kubeconfig to
// find the context. Errors carry key paths relative to the backend entry
// and never quote a credential or the server's address.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, warden.FieldErrorf(path, format, args...))
	}
	sources := 0
	for _, set := range []bool{c.Kubeconfig != "", c.InCluster, c.Server != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources == 0:
		add("kubeconfig", "say how warden reaches the cluster: kubeconfig (and context), in_cluster: true, or server with token_file")
	case sources > 1:
		add("kubeconfig", "use exactly one of kubeconfig, in_cluster and server")
	}
	if c.Context != "" && c.Kubeconfig == "" {
		add("context", "a context names an entry of a kubeconfig; set kubeconfig")
	}
	if c.Server != "" {
		if !strings.HasPrefix(c.Server, "https://") {
			add("server", "must be an https:// URL (warden sends its token only over TLS)")
		}
		if c.TokenFile == "" {
			add("token_file", "missing token_file: the file with warden's bearer token for server")
		}
	} else {
		if c.TokenFile != "" {
			add("token_file", "token_file goes with server")
		}
		if c.CAFile != "" {
			add("ca_file", "ca_file goes with server")
		}
	}
	for _, f := range []struct{ key, path string }{{"token_file", c.TokenFile}, {"ca_file", c.CAFile}} {
		if f.path != "" {
			if _, err := os.ReadFile(f.path); err != nil {
				add(f.key, "cannot be read: %s", describeFileError(err))
			}
		}
	}
	if sources == 1 && (c.Kubeconfig != "" || c.InCluster) {
		// The kubeconfig and its context, or the service account's token
		// and CA: read now, so a mistake stops warden at start.
		if _, err := c.restConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	c.Masking.validate(add)
	switch {
	case c.Timeout == 0:
		c.Timeout = warden.Duration(DefaultTimeout)
	case c.Timeout < warden.Duration(time.Millisecond):
		add("timeout", "must be at least 1ms")
	}
	switch {
	case c.MaxObjects == 0:
		c.MaxObjects = DefaultMaxObjects
	case c.MaxObjects < 0:
		add("max_objects", "must be positive, got %d", c.MaxObjects)
	}
	switch {
	case c.MaxResponseBytes == 0:
		c.MaxResponseBytes = DefaultMaxResponseBytes
	case c.MaxResponseBytes < 0:
		add("max_response_bytes", "must be positive, got %d", c.MaxResponseBytes)
	}
	return errors.Join(errs...)
}

func describeFileError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return "unreadable"
}

// expandHome resolves a leading ~/ as the shell would.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// restConfig builds the client config warden connects with.
func (c *Config) restConfig() (*rest.Config, error) {
	var rc *rest.Config
	switch {
	case c.Kubeconfig != "":
		path := expandHome(c.Kubeconfig)
		if _, err := os.Stat(path); err != nil {
			return nil, warden.FieldErrorf("kubeconfig", "cannot be read: %s", describeFileError(err))
		}
		raw, err := clientcmd.LoadFromFile(path)
		if err != nil {
			return nil, warden.FieldErrorf("kubeconfig", "is not a valid kubeconfig")
		}
		if c.Context != "" {
			if _, ok := raw.Contexts[c.Context]; !ok {
				names := make([]string, 0, len(raw.Contexts))
				for n := range raw.Contexts {
					names = append(names, n)
				}
				slices.Sort(names)
				return nil, warden.FieldErrorf("context", "no context %q in the kubeconfig (it has: %s)", c.Context, strings.Join(names, ", "))
			}
		} else if raw.CurrentContext == "" {
			return nil, warden.FieldErrorf("context", "the kubeconfig has no current-context; name one")
		}
		rc, err = clientcmd.NewNonInteractiveClientConfig(*raw, c.Context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
		if err != nil {
			// Not quoted: the message can carry the server or a credential.
			return nil, warden.FieldErrorf("kubeconfig", "the context cannot be used: check that it names a cluster with a server and a user with credentials")
		}
	case c.InCluster:
		var err error
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, warden.FieldErrorf("in_cluster", "warden is not running in a cluster with a service account (%s)", describeInCluster(err))
		}
	default:
		rc = &rest.Config{Host: c.Server, BearerTokenFile: c.TokenFile}
		rc.TLSClientConfig.CAFile = c.CAFile
	}
	rc.Timeout = time.Duration(c.Timeout)
	// warden throttles nothing itself; the API server has its own flow
	// control.
	rc.QPS, rc.Burst = -1, 0
	rc.UserAgent = "warden"
	rc.DisableCompression = true
	return rc, nil
}

func describeInCluster(err error) string {
	if errors.Is(err, rest.ErrNotInCluster) {
		return "KUBERNETES_SERVICE_HOST is not set"
	}
	return "the service account token or CA cannot be read"
}
