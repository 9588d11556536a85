package kube

import (
	"context"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resources are resolved from discovery by warden itself, the same way
// every time, rather than by whichever resource a REST mapper meets
// first: a name kubectl users write (plural, singular, kind or short
// name, optionally qualified by group or version.group) can match several
// resources once CRDs add their own names. Then
//
//  1. the core group wins, then the built-in groups (a CRD cannot take
//     "cm" or "pods" from the core group);
//  2. within that class, a plural beats a singular or kind, which beats a
//     short name;
//  3. two resources still left are refused, with the candidates listed,
//     so the agent names one.
//
// Within a group, the version is the server's preferred one that serves
// the resource.

// matchTier ranks how a name matches a resource; lower is better.
type matchTier int

const (
	tierPlural matchTier = iota
	tierSingular
	tierShort
	tierNone
)

func tierOf(name string, r *metav1.APIResource) matchTier {
	switch {
	case r.Name == name:
		return tierPlural
	case r.SingularName == name || strings.ToLower(r.Kind) == name:
		return tierSingular
	case slices.Contains(r.ShortNames, name):
		return tierShort
	}
	return tierNone
}

// groupClass ranks groups: core, built in, the rest (custom resources,
// aggregated APIs).
func groupClass(group string) int {
	switch {
	case group == "":
		return 0
	case builtinScheme().IsGroupRegistered(group), group == "apiextensions.k8s.io", group == "apiregistration.k8s.io":
		return 1
	}
	return 2
}

type candidate struct {
	res   *resource
	tier  matchTier
	class int
	// rank orders a group's versions: the preferred first.
	rank int
}

// lookup resolves arg (lower case) against discovery; it returns nil
// without an error when nothing matches.
func (b *Backend) lookup(ctx context.Context, arg string) (*resource, error) {
	groups, lists, err := b.discovery.groupsAndResources(ctx)
	if len(lists) == 0 && err != nil {
		return nil, err
	}
	name, qual, _ := strings.Cut(arg, ".")
	versionRank := map[string]int{}
	for _, g := range groups {
		versionRank[g.PreferredVersion.GroupVersion] = -1
		for i, v := range g.Versions {
			if _, ok := versionRank[v.GroupVersion]; !ok {
				versionRank[v.GroupVersion] = i
			}
		}
	}
	best := map[schema.GroupResource]*candidate{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		if qual != "" && qual != gv.Group && qual != gv.Version+"."+gv.Group {
			continue
		}
		for i := range l.APIResources {
			r := &l.APIResources[i]
			if strings.Contains(r.Name, "/") {
				continue
			}
			t := tierOf(name, r)
			if t == tierNone {
				continue
			}
			c := &candidate{tier: t, class: groupClass(gv.Group), rank: versionRank[l.GroupVersion],
				res: &resource{gvr: gv.WithResource(r.Name), kind: r.Kind, namespaced: r.Namespaced}}
			gr := c.res.gvr.GroupResource()
			if old, ok := best[gr]; !ok || c.rank < old.rank {
				best[gr] = c
			}
		}
	}
	if len(best) == 0 {
		return nil, nil
	}
	var cs []*candidate
	for _, c := range best {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(x, y *candidate) int {
		if x.class != y.class {
			return x.class - y.class
		}
		if x.tier != y.tier {
			return int(x.tier - y.tier)
		}
		return strings.Compare(x.res.name(), y.res.name())
	})
	if len(cs) > 1 && cs[1].class == cs[0].class && cs[1].tier == cs[0].tier {
		var names []string
		for _, c := range cs {
			if c.class == cs[0].class && c.tier == cs[0].tier {
				names = append(names, c.res.name())
			}
		}
		return nil, warden.Errorf(warden.Invalid, "resource %q is ambiguous on cluster %q: it names %s; write the one you mean in full", arg, b.Name, strings.Join(names, ", "))
	}
	return cs[0].res, nil
}
