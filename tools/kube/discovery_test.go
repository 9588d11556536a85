package kube

import (
	"context"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// TestBuiltinSchemeIsClientGos: the lazily built scheme knows exactly the
// types client-go's kubernetes/scheme registers (an upgrade of client-go
// that adds an API group fails here until scheme.go lists it).
func TestBuiltinSchemeIsClientGos(t *testing.T) {
	got, want := builtinScheme().AllKnownTypes(), clientgoscheme.Scheme.AllKnownTypes()
	if len(got) != len(want) {
		t.Errorf("builtin scheme knows %d kinds, client-go's %d", len(got), len(want))
	}
	for gvk, typ := range want {
		if got[gvk] != typ {
			t.Errorf("%v: builtin scheme has %v, client-go's %v", gvk, got[gvk], typ)
		}
	}
	for _, g := range []string{"", "apps", "batch", "networking.k8s.io", "resource.k8s.io", "storagemigration.k8s.io"} {
		if g != "" && !builtinScheme().IsGroupRegistered(g) {
			t.Errorf("group %q not registered", g)
		}
	}
}

// TestClientGoSchemeIsNotLinked: nothing warden links imports client-go's
// kubernetes/scheme (client-go's discovery does), whose init would
// register every built-in type in every warden process again, with a
// cluster configured or not.
func TestClientGoSchemeIsNotLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/warden-mcp/warden/cmd/warden").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "k8s.io/client-go/kubernetes/scheme", "k8s.io/client-go/discovery":
			t.Errorf("cmd/warden links %s", pkg)
		}
	}
}

// TestDiscoveryReadsWhatClientGoDoes: warden's own discovery returns, for
// the real API server, the groups and resources client-go's discovery
// client returns: through aggregated discovery, and through the legacy
// documents when the API server answers only those.
func TestDiscoveryReadsWhatClientGoDoes(t *testing.T) {
	c := world(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wantGroups, wantLists, err := c.Client(t, kubetest.Admin).Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	want := summarize(wantGroups, wantLists)
	if len(want) < 50 {
		t.Fatalf("client-go's discovery: %d lines", len(want))
	}
	for _, legacy := range []bool{false, true} {
		rc := c.AdminConfig()
		s := runtime.NewScheme()
		metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
		rc.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
		// The legacy documents are read in parallel: requests counts them
		// atomically.
		var requests atomic.Int64
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if legacy {
					r = r.Clone(r.Context())
					r.Header.Set("Accept", "application/json")
				}
				requests.Add(1)
				return rt.RoundTrip(r)
			})
		})
		client, err := rest.UnversionedRESTClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		d := &discovery{client: client}
		groups, lists, err := d.groupsAndResources(ctx)
		if err != nil {
			t.Fatalf("legacy %v: %v", legacy, err)
		}
		if got := summarize(groups, lists); !reflect.DeepEqual(got, want) {
			t.Errorf("legacy %v: discovery differs from client-go's:\n got %v\nwant %v", legacy, got, want)
		}
		if n := requests.Load(); legacy == (n == 2) {
			t.Errorf("legacy %v: %d requests", legacy, n)
		}
		// Cached: no request until invalidated.
		requests.Store(0)
		if _, _, err := d.groupsAndResources(ctx); err != nil || requests.Load() != 0 {
			t.Errorf("legacy %v: a second read made %d requests (err %v)", legacy, requests.Load(), err)
		}
		d.invalidate()
		if _, _, err := d.groupsAndResources(ctx); err != nil || requests.Load() == 0 {
			t.Errorf("legacy %v: a read after invalidate made no request (err %v)", legacy, err)
		}
	}

	// A group version that cannot be read: the others are returned with an
	// error, and nothing is kept.
	rc := c.AdminConfig()
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	rc.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	var requests atomic.Int64 // the legacy documents are read in parallel
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requests.Add(1)
			r = r.Clone(r.Context())
			r.Header.Set("Accept", "application/json")
			if r.URL.Path == "/apis/apps/v1" {
				r.URL.Path = "/apis/apps/v0" // 404
			}
			return rt.RoundTrip(r)
		})
	})
	client, err := rest.UnversionedRESTClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	d := &discovery{client: client}
	for range 2 {
		requests.Store(0)
		_, lists, err := d.groupsAndResources(ctx)
		if err == nil || !strings.Contains(err.Error(), "apps/v1") || len(lists) < 10 || requests.Load() < 3 {
			t.Fatalf("with apps/v1 failing: err %v, %d lists, %d requests", err, len(lists), requests.Load())
		}
		for _, l := range lists {
			if l.GroupVersion == "apps/v1" {
				t.Fatal("apps/v1 listed")
			}
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// summarize is what resolution reads of discovery: the groups with their
// versions in order, and each group version's resources (not
// subresources), as sorted lines.
func summarize(groups []*metav1.APIGroup, lists []*metav1.APIResourceList) []string {
	var out []string
	for _, g := range groups {
		var vs []string
		for _, v := range g.Versions {
			vs = append(vs, v.GroupVersion)
		}
		out = append(out, "group "+g.Name+" preferred "+g.PreferredVersion.GroupVersion+" versions "+strings.Join(vs, ","))
	}
	for _, l := range lists {
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			out = append(out, strings.Join([]string{"resource", l.GroupVersion, r.Name, r.SingularName, r.Kind,
				map[bool]string{true: "namespaced", false: "cluster"}[r.Namespaced],
				strings.Join(r.ShortNames, ","), strings.Join(r.Verbs, ",")}, " "))
		}
	}
	slices.Sort(out)
	return out
}
