package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// The cluster's groups and resources are read by warden itself rather than
// by client-go's discovery client: that package imports client-go's
// kubernetes/scheme, whose init registers every built-in type at start in
// every warden process, also one with no cluster configured (scheme.go),
// and links the OpenAPI models (gnostic), ≈ 4 MB of binary warden never
// uses. What is read is what client-go's discovery returns: aggregated
// discovery (two requests, GET /api and GET /apis, the API server's
// default since Kubernetes 1.30), or, from an API server that does not
// serve it, the group list and one request per group version.

// aggregatedAccept asks for aggregated discovery, or else the legacy
// documents.
const aggregatedAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"

// discovery caches what the cluster serves, until invalidated. A read
// that missed a group version (an aggregated API that is down, a stale
// one) is returned with an error and not kept: the next lookup asks again.
type discovery struct {
	client *rest.RESTClient // warden's own, never impersonating

	mu     sync.Mutex
	groups []*metav1.APIGroup
	lists  []*metav1.APIResourceList
	cached bool
}

// invalidate drops what was read; the next lookup asks the API server.
func (d *discovery) invalidate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.groups, d.lists, d.cached = nil, nil, false
}

// groupsAndResources returns the cluster's groups (the core group first)
// and the resources of each group version. With an error, the lists hold
// the group versions that could be read, possibly none.
func (d *discovery) groupsAndResources(ctx context.Context) ([]*metav1.APIGroup, []*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cached {
		return d.groups, d.lists, nil
	}
	groups, lists, failed, err := d.read(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(failed) > 0 {
		return groups, lists, fmt.Errorf("discovery of %d group versions failed: %w", len(failed), errors.Join(failed...))
	}
	d.groups, d.lists, d.cached = groups, lists, true
	return groups, lists, nil
}

// read asks the API server; failed holds an error per group version that
// could not be read.
func (d *discovery) read(ctx context.Context) (groups []*metav1.APIGroup, lists []*metav1.APIResourceList, failed []error, err error) {
	var legacy []schema.GroupVersion
	for _, p := range []string{"/api", "/apis"} {
		raw, err := do(ctx, d.client.Get().AbsPath(p).SetHeader("Accept", aggregatedAccept))
		if err != nil {
			return nil, nil, nil, err
		}
		var doc struct {
			Kind     string   `json:"kind"`
			Versions []string `json:"versions"` // APIVersions, from /api
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, nil, nil, fmt.Errorf("GET %s: %w", p, err)
		}
		switch doc.Kind {
		case "APIGroupDiscoveryList":
			var agg apidiscoveryv2.APIGroupDiscoveryList
			if err := json.Unmarshal(raw, &agg); err != nil {
				return nil, nil, nil, fmt.Errorf("GET %s: %w", p, err)
			}
			for _, g := range agg.Items {
				group, ls, f := fromAggregated(g)
				groups, lists, failed = append(groups, group), append(lists, ls...), append(failed, f...)
			}
		case "APIVersions":
			group := &metav1.APIGroup{}
			for _, v := range doc.Versions {
				group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: v, Version: v})
				legacy = append(legacy, schema.GroupVersion{Version: v})
			}
			if len(group.Versions) > 0 {
				group.PreferredVersion = group.Versions[0]
			}
			groups = append(groups, group)
		case "APIGroupList":
			var gl metav1.APIGroupList
			if err := json.Unmarshal(raw, &gl); err != nil {
				return nil, nil, nil, fmt.Errorf("GET %s: %w", p, err)
			}
			for i := range gl.Groups {
				g := &gl.Groups[i]
				groups = append(groups, g)
				for _, v := range g.Versions {
					legacy = append(legacy, schema.GroupVersion{Group: g.Name, Version: v.Version})
				}
			}
		default:
			return nil, nil, nil, fmt.Errorf("GET %s: unexpected kind %q", p, doc.Kind)
		}
	}
	// The legacy documents: one request per group version, together.
	got := make([]*metav1.APIResourceList, len(legacy))
	errs := make([]error, len(legacy))
	var wg sync.WaitGroup
	for i, gv := range legacy {
		wg.Go(func() {
			p := "/apis/" + gv.String()
			if gv.Group == "" {
				p = "/api/" + gv.Version
			}
			raw, err := do(ctx, d.client.Get().AbsPath(p))
			if err == nil {
				var l metav1.APIResourceList
				if err = json.Unmarshal(raw, &l); err == nil {
					got[i] = &l
				}
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", gv, err)
			}
		})
	}
	wg.Wait()
	for i := range legacy {
		if errs[i] != nil {
			failed = append(failed, errs[i])
		} else {
			lists = append(lists, got[i])
		}
	}
	return groups, lists, failed, nil
}

// fromAggregated turns a group of aggregated discovery into the legacy
// documents: the group (its preferred version the first one that is not
// stale) and the resources of each version. A stale version is a failed
// one. Subresources are left out: resources are resolved by name only.
func fromAggregated(g apidiscoveryv2.APIGroupDiscovery) (*metav1.APIGroup, []*metav1.APIResourceList, []error) {
	group := &metav1.APIGroup{Name: g.Name}
	var lists []*metav1.APIResourceList
	var failed []error
	for _, v := range g.Versions {
		gv := schema.GroupVersion{Group: g.Name, Version: v.Version}
		if v.Freshness == apidiscoveryv2.DiscoveryFreshnessStale {
			failed = append(failed, fmt.Errorf("%s: stale", gv))
			continue
		}
		version := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v.Version}
		group.Versions = append(group.Versions, version)
		if group.PreferredVersion.GroupVersion == "" {
			group.PreferredVersion = version
		}
		list := &metav1.APIResourceList{GroupVersion: gv.String()}
		for _, r := range v.Resources {
			if r.ResponseKind == nil || *r.ResponseKind == (metav1.GroupVersionKind{}) {
				continue // as client-go: a resource without a kind is not listed
			}
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name:         r.Resource,
				SingularName: r.SingularResource,
				Namespaced:   r.Scope == apidiscoveryv2.ScopeNamespace,
				Group:        r.ResponseKind.Group,
				Version:      r.ResponseKind.Version,
				Kind:         r.ResponseKind.Kind,
				Verbs:        r.Verbs,
				ShortNames:   r.ShortNames,
				Categories:   r.Categories,
			})
		}
		lists = append(lists, list)
	}
	return group, lists, failed
}
