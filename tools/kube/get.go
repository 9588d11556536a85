package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/warden-mcp/warden"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// Grants says in which namespaces a caller may list a resource; the
// policy package implements it.
type Grants interface {
	// Namespaces returns namespace patterns ("*" for all), sorted.
	Namespaces(c *warden.Caller, backend, resource string) []string
}

// Get is the kube_get tool.
type Get struct {
	Backends Backends
	Grants   Grants
	// Scrubber, when set, is the pipeline's value detectors: run over
	// each object to measure it, so max_response_bytes counts what is
	// returned once they have masked it (the pipeline's pass then masks
	// and records), and to back up the judgement of decoded layers.
	Scrubber warden.Scrubber
}

type getArgs struct {
	Cluster       string `json:"cluster"`
	Resource      string `json:"resource"`
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	LabelSelector string `json:"label_selector"`
	FieldSelector string `json:"field_selector"`
	Limit         *int   `json:"limit"`
	Continue      string `json:"continue"`
	Purpose       string `json:"purpose"`
	ApprovalID    string `json:"approval_id"`
}

type getPlan struct {
	backend  *Backend
	resource *resource
	name     string
	// namespace is the one namespace asked ("" for cluster-scoped, "*"
	// for a list across all namespaces); namespaces, when set, are the
	// namespaces a list across the granted ones reads, in order.
	namespace  string
	namespaces []string
	expanded   bool
	query      url.Values // labelSelector, fieldSelector
	limit      int
	cont       *continueState
}

// Spec implements warden.Tool.
func (g *Get) Spec() warden.ToolSpec {
	return warden.ToolSpec{
		Name:  "kube_get",
		Title: "Read Kubernetes objects",
		Description: "Get one Kubernetes object or list a collection, read only, through warden (it holds the cluster " +
			"credentials; you never see them). Name the resource as kubectl does (pods, deploy, deployments.apps, " +
			"ingresses.networking.k8s.io, custom resources). Without namespace, a list covers the namespaces you are " +
			"granted. Objects come back as JSON without managedFields; Secret values are always masked (keys kept). " +
			"Lists return at most limit objects and a continue token for the next page.",
		BackendKind: "kubernetes",
		BackendArg:  "cluster",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"cluster":        map[string]any{"type": "string", "description": "The configured cluster to read."},
				"resource":       map[string]any{"type": "string", "description": "The resource, as kubectl writes it: pods, deploy, deployments.apps, configmaps, nodes."},
				"namespace":      map[string]any{"type": "string", "description": "The namespace; omit it to list across the namespaces you are granted (and for cluster-scoped resources)."},
				"name":           map[string]any{"type": "string", "description": "Get this one object instead of listing."},
				"label_selector": map[string]any{"type": "string", "description": "A label selector, like app=web,tier!=cache."},
				"field_selector": map[string]any{"type": "string", "description": "A field selector, like status.phase=Running."},
				"limit":          map[string]any{"type": "integer", "minimum": 1, "description": "At most this many objects; the result's continue token fetches the next page."},
				"continue":       map[string]any{"type": "string", "description": "The continue token of the previous page of the same list."},
				"purpose":        map[string]any{"type": "string", "description": "Why you are reading this; recorded and shown to approvers."},
				"approval_id":    map[string]any{"type": "string", "description": "The approval id of a call that was held for approval."},
			},
			"required":             []string{"cluster", "resource"},
			"additionalProperties": false,
		},
		ReadOnly: true,
	}
}

// Plan implements warden.Tool: it resolves the resource through discovery,
// checks the arguments, and, for a list across namespaces, expands the
// caller's granted namespaces, so policy judges every namespace read.
func (g *Get) Plan(ctx context.Context, raw json.RawMessage) (*warden.Action, error) {
	var args getArgs
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	b, err := g.Backends.lookup(args.Cluster)
	if err != nil {
		return nil, err
	}
	if args.Namespace != "" {
		if errs := validation.IsDNS1123Label(args.Namespace); len(errs) > 0 {
			return nil, warden.Errorf(warden.Invalid, "namespace %q is not a namespace name: %s", args.Namespace, errs[0])
		}
	}
	if args.Name != "" {
		if errs := path.IsValidPathSegmentName(args.Name); len(errs) > 0 || len(args.Name) > 253 {
			return nil, warden.Errorf(warden.Invalid, "name %q is not an object name", args.Name)
		}
	}
	p := &getPlan{backend: b, name: args.Name, query: url.Values{}}
	if args.LabelSelector != "" {
		if _, err := labels.Parse(args.LabelSelector); err != nil {
			return nil, warden.Errorf(warden.Invalid, "label_selector: %s", err)
		}
		p.query.Set("labelSelector", args.LabelSelector)
	}
	if args.FieldSelector != "" {
		if _, err := fields.ParseSelector(args.FieldSelector); err != nil {
			return nil, warden.Errorf(warden.Invalid, "field_selector: %s", err)
		}
		p.query.Set("fieldSelector", args.FieldSelector)
	}
	if args.Name != "" && (args.LabelSelector != "" || args.FieldSelector != "" || args.Limit != nil || args.Continue != "") {
		return nil, warden.Errorf(warden.Invalid, "selectors, limit and continue apply to lists; a get by name takes none")
	}
	p.limit = b.cfg.MaxObjects
	if args.Limit != nil {
		if *args.Limit < 1 || *args.Limit > b.cfg.MaxObjects {
			return nil, warden.Errorf(warden.Invalid, "limit must be between 1 and %d on cluster %q", b.cfg.MaxObjects, b.Name)
		}
		p.limit = *args.Limit
	}
	if p.resource, err = b.resolve(ctx, args.Resource); err != nil {
		return nil, err
	}
	res := p.resource.name()
	verb := warden.VerbList
	if args.Name != "" {
		verb = warden.VerbGet
	}
	a := &warden.Action{Tool: "kube_get", Backend: b.Name, Kind: verb, Purpose: args.Purpose, ApprovalID: args.ApprovalID, Plan: p}
	switch {
	case !p.resource.namespaced:
		if args.Namespace != "" {
			return nil, warden.Errorf(warden.Invalid, "%s are cluster-scoped: omit namespace", res)
		}
		a.Ops = []warden.Op{{Verb: verb, Object: warden.KubeObject{Resource: res, Name: args.Name}.String()}}
	case args.Namespace != "":
		p.namespace = args.Namespace
		a.Ops = []warden.Op{{Verb: verb, Object: warden.KubeObject{Namespace: args.Namespace, Resource: res, Name: args.Name}.String()}}
	case args.Name != "":
		return nil, warden.Errorf(warden.Invalid, "%s are namespaced: a get by name needs namespace", res)
	default:
		// A list across namespaces: every namespace the caller is granted,
		// or, with a grant on "*", the whole cluster in one request.
		granted := g.Grants.Namespaces(warden.CallerFrom(ctx), b.Name, res)
		if len(granted) == 0 || granted[0] == warden.AllNamespaces {
			p.namespace = warden.AllNamespaces
			a.Ops = []warden.Op{{Verb: verb, Object: warden.KubeObject{Namespace: warden.AllNamespaces, Resource: res}.String()}}
			break
		}
		if p.namespaces, err = b.namespaces(ctx, granted); err != nil {
			return nil, err
		}
		p.expanded = true
		for _, ns := range p.namespaces {
			a.Ops = append(a.Ops, warden.Op{Verb: verb, Object: warden.KubeObject{Namespace: ns, Resource: res}.String()})
		}
	}
	if args.Continue != "" {
		if p.cont, err = openContinue(b.key, args.Continue, p.fingerprint()); err != nil {
			return nil, err
		}
	}
	a.Statement = p.statement()
	return a, nil
}

// fingerprint identifies a list for its continue tokens: a token from one
// list never continues another.
func (p *getPlan) fingerprint() string {
	return strings.Join([]string{p.backend.Name, p.resource.name(), p.namespace, strings.Join(p.namespaces, ","), p.query.Encode()}, "\x00")
}

// statement is the request as recorded and shown to approvers.
func (p *getPlan) statement() string {
	var b strings.Builder
	if p.name != "" {
		fmt.Fprintf(&b, "get %s", p.resource.name())
		if p.namespace != "" {
			fmt.Fprintf(&b, " %s/%s", p.namespace, p.name)
		} else {
			fmt.Fprintf(&b, " %s", p.name)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "list %s", p.resource.name())
	switch {
	case p.expanded:
		fmt.Fprintf(&b, " in namespaces %s (the ones granted)", strings.Join(p.namespaces, ", "))
	case p.namespace == warden.AllNamespaces:
		b.WriteString(" in all namespaces")
	case p.namespace != "":
		fmt.Fprintf(&b, " in namespace %s", p.namespace)
	}
	if s := p.query.Get("labelSelector"); s != "" {
		fmt.Fprintf(&b, ", labels %s", s)
	}
	if s := p.query.Get("fieldSelector"); s != "" {
		fmt.Fprintf(&b, ", fields %s", s)
	}
	fmt.Fprintf(&b, ", limit %d", p.limit)
	if p.cont != nil {
		b.WriteString(", continued")
	}
	return b.String()
}

// GetResult is what kube_get returns for a get.
type GetResult struct {
	Resource   string          `json:"resource"`
	APIVersion string          `json:"api_version"`
	Kind       string          `json:"kind"`
	Namespace  string          `json:"namespace,omitempty"`
	Object     json.RawMessage `json:"object"`
	CallID     string          `json:"call_id"`
}

// ListResult is what kube_get returns for a list.
type ListResult struct {
	Resource   string `json:"resource"`
	APIVersion string `json:"api_version"`
	Kind       string `json:"kind"`
	// Namespace is the namespace asked, "*" for all; Namespaces are the
	// ones read when a list across namespaces covered only those granted.
	Namespace  string            `json:"namespace,omitempty"`
	Namespaces []string          `json:"namespaces,omitempty"`
	Items      []json.RawMessage `json:"items"`
	Count      int               `json:"count"`
	// Continue fetches the next page: pass it back with the same
	// arguments.
	Continue string `json:"continue,omitempty"`
	// Truncated reports that objects were left out to keep the result
	// under the cluster's max_response_bytes; ask for a smaller limit.
	Truncated bool   `json:"truncated"`
	CallID    string `json:"call_id"`
}

// Execute implements warden.Tool: it sends only GET requests.
func (g *Get) Execute(ctx context.Context, a *warden.Action) (*warden.Result, error) {
	p, ok := a.Plan.(*getPlan)
	if !ok {
		return nil, warden.Errorf(warden.Internal, "kube_get: action carries no plan")
	}
	b, r := p.backend, p.resource
	if p.name != "" {
		raw, err := do(ctx, b.objects.Get().AbsPath(r.basePath()).NamespaceIfScoped(p.namespace, r.namespaced).Resource(r.gvr.Resource).Name(p.name))
		if err != nil {
			return nil, b.apiError(ctx, err, "get "+r.name()+" "+p.name)
		}
		obj, err := b.clean(raw, r, g.Scrubber)
		if err != nil {
			return nil, err
		}
		n, err := returnedSize(obj, g.Scrubber)
		if err != nil {
			return nil, err
		}
		if n > b.cfg.MaxResponseBytes {
			return nil, warden.Errorf(warden.Invalid, "%s %s is %d bytes once masked, more than cluster %q returns in one call (max_response_bytes %d); it cannot be read through kube_get",
				r.name(), p.name, n, b.Name, b.cfg.MaxResponseBytes)
		}
		res := &GetResult{Resource: r.name(), APIVersion: r.gvr.GroupVersion().String(), Kind: r.kind, Namespace: p.namespace, Object: obj, CallID: a.CallID}
		return &warden.Result{Structured: res, Count: 1}, nil
	}
	res := &ListResult{Resource: r.name(), APIVersion: r.gvr.GroupVersion().String(), Kind: r.kind, Namespace: p.namespace,
		Namespaces: p.namespaces, Items: []json.RawMessage{}, CallID: a.CallID}
	pages := []string{p.namespace}
	if p.expanded {
		pages = p.namespaces
	}
	start, token := 0, ""
	if c := p.cont; c != nil {
		start, token = c.Page, c.Token
		if start >= len(pages) {
			return nil, warden.Errorf(warden.Invalid, "the continue token is not one for this list; start again without it")
		}
	}
	size := 0
	for i := start; i < len(pages) && len(res.Items) < p.limit; i++ {
		ns, limit, cont := pages[i], strconv.Itoa(p.limit-len(res.Items)), token
		items, next, err := b.page(ctx, r, g.Scrubber, func(rc *rest.RESTClient) *rest.Request {
			req := rc.Get().AbsPath(r.basePath())
			if ns != "" && ns != warden.AllNamespaces {
				req = req.Namespace(ns)
			}
			for k, v := range p.query {
				req = req.Param(k, v[0])
			}
			if cont != "" {
				req = req.Param("continue", cont)
			}
			return req.Param("limit", limit).Resource(r.gvr.Resource)
		})
		if err != nil {
			what := "list " + r.name()
			if ns != "" && ns != warden.AllNamespaces {
				what += " in namespace " + ns
			}
			return nil, b.apiError(ctx, err, what)
		}
		for _, obj := range items {
			n, err := returnedSize(obj, g.Scrubber)
			if err != nil {
				return nil, err
			}
			if size+n > b.cfg.MaxResponseBytes {
				res.Truncated = true
				break
			}
			size += n + 1
			res.Items = append(res.Items, obj)
		}
		if res.Truncated {
			break
		}
		token = ""
		switch {
		case next != "":
			res.Continue = sealContinue(b.key, p.fingerprint(), continueState{Page: i, Token: next})
		case len(res.Items) >= p.limit && i+1 < len(pages):
			res.Continue = sealContinue(b.key, p.fingerprint(), continueState{Page: i + 1})
		}
		if res.Continue != "" {
			break
		}
	}
	if res.Truncated {
		res.Continue = "" // a cut page cannot be continued; a smaller limit can
	}
	res.Count = len(res.Items)
	return &warden.Result{Structured: res, JSON: res.encode(), Count: int64(res.Count), Truncated: res.Truncated}, nil
}

// encode is the result's JSON, written once: the objects are already JSON
// (encoded or cleaned above), so they are joined rather than encoded
// again, which for a few megabytes of objects is most of the cost.
func (r *ListResult) encode() json.RawMessage {
	type head ListResult // the same fields, without Items (see below)
	h := head(*r)
	h.Items = nil
	b, _ := json.Marshal(struct {
		head
		Items *struct{} `json:"items,omitempty"`
	}{head: h})
	n := len(b)
	for _, it := range r.Items {
		n += len(it) + 1
	}
	out := make([]byte, 0, n+16)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"items":[`...)
	for i, it := range r.Items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, "]}"...)
}

var _ warden.Tool = (*Get)(nil)
