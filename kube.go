package warden

import "strings"

// Verbs of Kubernetes operations: kube_get only reads.
const (
	VerbGet  = "get"
	VerbList = "list"
)

// AllNamespaces is the namespace of a list across every namespace a grant
// covers with the pattern "*".
const AllNamespaces = "*"

// KubeObject is what one Kubernetes operation touches, as policy judges
// it. Its string form, the Op's Object, follows the API's own paths:
// "namespaces/staging/pods", "namespaces/staging/deployments.apps/web",
// "nodes", "nodes/node-1". Resource is the plural, qualified by its group
// unless it is in the core group ("secrets", "ingresses.networking.k8s.io").
type KubeObject struct {
	// Namespace is empty for cluster-scoped resources, AllNamespaces for
	// a list across every granted namespace.
	Namespace string
	Resource  string
	// Name is empty for a list.
	Name string
}

// Namespaced reports whether the object is in a namespace.
func (o KubeObject) Namespaced() bool { return o.Namespace != "" }

func (o KubeObject) String() string {
	s := o.Resource
	if o.Namespace != "" {
		s = "namespaces/" + o.Namespace + "/" + s
	}
	if o.Name != "" {
		s += "/" + o.Name
	}
	return s
}

// ParseKubeObject reads an Op's Object back; ok is false for anything
// String does not produce.
func ParseKubeObject(s string) (o KubeObject, ok bool) {
	parts := strings.Split(s, "/")
	for _, p := range parts {
		if p == "" {
			return o, false
		}
	}
	// Namespaced objects have at least three segments; "namespaces/x" is
	// the cluster-scoped namespace x.
	if len(parts) >= 3 && parts[0] == "namespaces" {
		o.Namespace, parts = parts[1], parts[2:]
	}
	switch len(parts) {
	case 1:
		o.Resource = parts[0]
	case 2:
		o.Resource, o.Name = parts[0], parts[1]
	default:
		return KubeObject{}, false
	}
	return o, true
}
