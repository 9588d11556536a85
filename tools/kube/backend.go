package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Backends is the set of configured clusters, by name.
type Backends map[string]*Backend

func (bs Backends) lookup(name string) (*Backend, error) {
	if name == "" {
		return nil, warden.Errorf(warden.Invalid, "missing argument \"cluster\"")
	}
	b, ok := bs[name]
	if !ok {
		return nil, warden.Errorf(warden.Invalid, "unknown cluster %q: use one of the values listed in the tool's input schema", name)
	}
	return b, nil
}

// Close releases every backend's connections.
func (bs Backends) Close() {
	for _, b := range bs {
		b.Close()
	}
}

// Backend is one configured cluster: warden's own client (discovery,
// namespace names) and the client objects are read with (the same one, or
// one that impersonates the caller).
type Backend struct {
	Name string
	cfg  Config
	// self calls as warden; objects calls as the caller when impersonating.
	self, objects *rest.RESTClient
	httpClients   []*http.Client
	// listConfig and objectsHTTP build the protobuf client for typed
	// lists (page.go), as the caller when impersonating.
	listConfig  *rest.Config
	objectsHTTP *http.Client
	typedOnce   sync.Once
	typedRC     *rest.RESTClient
	typedErr    error
	discovery   discovery
	// creds are warden's own credentials, replaced wherever they would
	// appear in a result (credential.go).
	creds *credentials
	// judge is the masking config, compiled (structure.go).
	judge *judge
	// key seals the continue tokens warden hands out.
	key []byte

	mu            sync.Mutex
	lastRefreshed time.Time
}

// rediscoverEvery bounds how often an unknown resource makes warden ask
// the API server for its resources again (a CRD installed since).
const rediscoverEvery = 10 * time.Second

// NewBackend builds a backend from a validated config, without connecting:
// a cluster that is down at start does not stop warden, its calls are
// refused as unavailable.
func NewBackend(name string, cfg Config) (*Backend, error) {
	rc, err := cfg.restConfig()
	if err != nil {
		return nil, err
	}
	// Objects are passed on as the API server's JSON; only a failure's
	// Status is ever decoded.
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	rc.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	rc.ContentType = runtime.ContentTypeJSON
	rc.AcceptContentTypes = runtime.ContentTypeJSON
	b := &Backend{Name: name, cfg: cfg, key: make([]byte, 32), creds: newCredentials(rc), judge: newJudge(cfg.Masking)}
	// Below client-go's authentication layers: sees the credential
	// actually sent, whatever produced it.
	rc.Wrap(b.creds.wrap)
	if _, err := rand.Read(b.key); err != nil {
		return nil, err
	}
	selfHTTP, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, warden.FieldErrorf("kubeconfig", "the client cannot be built: check the CA and client certificate files")
	}
	if b.self, err = rest.UnversionedRESTClientForConfigAndClient(rc, selfHTTP); err != nil {
		return nil, fmt.Errorf("building the client: %w", err)
	}
	b.objects, b.listConfig, b.objectsHTTP = b.self, rc, selfHTTP
	b.httpClients = append(b.httpClients, selfHTTP)
	if cfg.Impersonate {
		ic := rest.CopyConfig(rc)
		ic.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &impersonating{next: rt} })
		objHTTP, err := rest.HTTPClientFor(ic)
		if err != nil {
			return nil, fmt.Errorf("building the impersonating client: %w", err)
		}
		if b.objects, err = rest.UnversionedRESTClientForConfigAndClient(ic, objHTTP); err != nil {
			return nil, fmt.Errorf("building the impersonating client: %w", err)
		}
		b.httpClients = append(b.httpClients, objHTTP)
		b.listConfig, b.objectsHTTP = ic, objHTTP
	}
	b.discovery.client = b.self
	builtin() // the typed lists and masking need it: built now, not on a caller's first call
	return b, nil
}

// SetContinueKey replaces the random key continue tokens are sealed with.
// warden derives it from the store's shared signing key, so that every
// instance of a fleet opens the tokens any of them sealed. Call it before
// the backend serves.
func (b *Backend) SetContinueKey(key []byte) { b.key = bytes.Clone(key) }

// Close releases the backend's idle connections.
func (b *Backend) Close() {
	for _, c := range b.httpClients {
		c.CloseIdleConnections()
	}
}

// resource is a resource as the cluster's discovery names it.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

// name is the resource as grants name it: the plural, qualified by its
// group unless it is in the core group.
func (r *resource) name() string {
	if r.gvr.Group == "" {
		return r.gvr.Resource
	}
	return r.gvr.Resource + "." + r.gvr.Group
}

// secret reports whether objects of r are core Secrets.
func (r *resource) secret() bool { return r.gvr.Group == "" && r.gvr.Resource == "secrets" }

// basePath is the API path of r's group version.
func (r *resource) basePath() string {
	if r.gvr.Group == "" {
		return "/api/" + r.gvr.Version
	}
	return "/apis/" + r.gvr.Group + "/" + r.gvr.Version
}

// resolve turns a resource as kubectl users write it (pods, po, deploy,
// deployments.apps, deployments.v1.apps, ingresses.networking.k8s.io, a
// custom resource) into the cluster's resource, through discovery
// (cached; asked again, at most every rediscoverEvery, for a name it does
// not know), as resolve.go says.
func (b *Backend) resolve(ctx context.Context, arg string) (*resource, error) {
	if arg == "" {
		return nil, warden.Errorf(warden.Invalid, "missing argument \"resource\" (like pods, deployments.apps)")
	}
	if strings.Contains(arg, "/") {
		return nil, warden.Errorf(warden.Invalid, "resource %q names a subresource; kube_get reads resources only (pods, not pods/log)", arg)
	}
	arg = strings.ToLower(arg)
	for attempt := 0; ; attempt++ {
		r, err := b.lookup(ctx, arg)
		if err != nil {
			return nil, b.unavailable(ctx, err)
		}
		if r != nil {
			return r, nil
		}
		if attempt > 0 || !b.rediscover(ctx) {
			return nil, warden.Errorf(warden.Invalid, "cluster %q has no resource %q (write it as kubectl does: pods, deploy, deployments.apps, ingresses.networking.k8s.io)", b.Name, arg)
		}
	}
}

// rediscover drops the cached discovery, unless that was done a moment
// ago; it reports whether it did.
func (b *Backend) rediscover(ctx context.Context) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.lastRefreshed) < rediscoverEvery {
		return false
	}
	b.lastRefreshed = time.Now()
	b.discovery.invalidate()
	return true
}

// namespaces returns the cluster's namespaces that match any of patterns,
// sorted, asking as warden (the names of namespaces, not their contents).
func (b *Backend) namespaces(ctx context.Context, patterns []string) ([]string, error) {
	var exact []string
	globs := false
	for _, p := range patterns {
		if strings.ContainsAny(p, `*?[\`) {
			globs = true
		} else {
			exact = append(exact, p)
		}
	}
	out := exact
	if globs {
		raw, err := do(ctx, b.self.Get().AbsPath("/api/v1/namespaces"))
		if err != nil {
			return nil, b.apiError(ctx, err, "listing namespace names to match the granted patterns")
		}
		var list struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q answered with something that is not a namespace list", b.Name))
		}
		for _, item := range list.Items {
			for _, p := range patterns {
				if ok, _ := path.Match(p, item.Metadata.Name); ok {
					out = append(out, item.Metadata.Name)
					break
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// do sends req and returns the body; a failure carries the API server's
// Status when it sent one.
func do(ctx context.Context, req *rest.Request) ([]byte, error) {
	res := req.Do(ctx)
	raw, err := res.Raw()
	if err != nil {
		if serr := res.Error(); serr != nil {
			err = serr
		}
		return nil, err
	}
	return raw, nil
}

// apiError translates a failed request into an error the agent can act
// on. It names the cluster, never its address or warden's credentials;
// the API server's own message (which names the resource and the user
// refused) is kept.
func (b *Backend) apiError(ctx context.Context, err error, doing string) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return b.unavailable(ctx, err)
	}
	msg := b.creds.scrubString(status.Status().Message)
	switch {
	case apierrors.IsNotFound(err):
		return warden.Wrap(warden.Invalid, err, fmt.Sprintf("cluster %q: %s", b.Name, msg))
	case apierrors.IsForbidden(err):
		who := "warden's own credentials are"
		if b.cfg.Impersonate {
			who = "you are"
		}
		return &warden.Error{Code: warden.Denied, Rule: "kube.rbac", Err: err,
			Message: fmt.Sprintf("cluster %q refused %s: %s not allowed by the cluster's RBAC (%s)", b.Name, doing, who, msg)}
	case apierrors.IsUnauthorized(err):
		return warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q rejected warden's credentials; an operator must fix them", b.Name))
	case apierrors.IsBadRequest(err), apierrors.IsInvalid(err), apierrors.IsGone(err):
		return warden.Wrap(warden.Invalid, err, fmt.Sprintf("cluster %q: %s", b.Name, msg))
	}
	return b.unavailable(ctx, err)
}

// unavailable is a failure to reach the cluster, said without its address.
func (b *Backend) unavailable(ctx context.Context, err error) error {
	var e *warden.Error
	if errors.As(err, &e) {
		return e
	}
	if ctx.Err() != nil {
		return warden.Wrap(warden.Unavailable, err, fmt.Sprintf("the call to cluster %q was cancelled", b.Name))
	}
	return warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q cannot be reached now; try again later", b.Name))
}

// errNoCaller refuses an impersonated request that carries no caller: it
// would otherwise go out as warden itself.
var errNoCaller = errors.New("no caller to impersonate")

// impersonating sets Impersonate-User and Impersonate-Group to the caller
// carried by the request's context, replacing any such header.
type impersonating struct{ next http.RoundTripper }

func (t *impersonating) RoundTrip(r *http.Request) (*http.Response, error) {
	c := warden.CallerFrom(r.Context())
	if c == nil || c.Subject == "" {
		return nil, errNoCaller
	}
	r = r.Clone(r.Context())
	for k := range r.Header {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "Impersonate-") {
			r.Header.Del(k)
		}
	}
	r.Header.Set("Impersonate-User", c.Subject)
	for _, g := range c.Groups {
		r.Header.Add("Impersonate-Group", g)
	}
	return t.next.RoundTrip(r)
}

// Probe checks that the cluster answers warden's credentials (GET
// /version, as warden). A failure is a *warden.Error naming the cause,
// never the cluster's address or the credential.
func (b *Backend) Probe(ctx context.Context) error {
	if _, err := do(ctx, b.self.Get().AbsPath("/version")); err != nil {
		return b.apiError(ctx, err, "reading its version")
	}
	return nil
}

// Namespaces lists the cluster's namespaces, as warden.
func (b *Backend) Namespaces(ctx context.Context) ([]string, error) {
	return b.namespaces(ctx, []string{"*"})
}
