package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"

	"github.com/warden-mcp/warden"
	"k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// A list is read as protobuf when the resource is a built-in one (its list
// type is in client-go's scheme), except Secrets, whose values are masked
// in their JSON form: the API server encodes protobuf several times faster
// than JSON, and warden encodes the objects to JSON itself, the way the
// API server would, in parallel. Everything else (custom resources,
// aggregated APIs) is read as JSON.

// protobufList is the content type lists are asked for on the fast path.
const protobufList = "application/vnd.kubernetes.protobuf"

// typed reports whether r's lists can be read as protobuf.
func (r *resource) typed() bool {
	return !r.secret() && builtinScheme().Recognizes(r.gvr.GroupVersion().WithKind(r.kind+"List"))
}

// typedClient is b's client for typed protobuf lists, built on first use.
func (b *Backend) typedClient() (*rest.RESTClient, error) {
	b.typedOnce.Do(func() {
		c := rest.CopyConfig(b.listConfig)
		_, codecs := builtin()
		c.NegotiatedSerializer = codecs.WithoutConversion()
		c.ContentType = protobufList
		c.AcceptContentTypes = protobufList + ",application/json"
		b.typedRC, b.typedErr = rest.UnversionedRESTClientForConfigAndClient(c, b.objectsHTTP)
	})
	return b.typedRC, b.typedErr
}

// page reads one page of a list: the cleaned objects and the API server's
// continue token.
func (b *Backend) page(ctx context.Context, r *resource, sc warden.Scrubber, build func(*rest.RESTClient) *rest.Request) ([]json.RawMessage, string, error) {
	if r.typed() {
		rc, err := b.typedClient()
		if err != nil {
			return nil, "", warden.Wrap(warden.Internal, err, "the client cannot be built")
		}
		res := build(rc).Do(ctx)
		obj, err := res.Get()
		if err != nil {
			if serr := res.Error(); serr != nil {
				err = serr
			}
			return nil, "", err
		}
		return b.encodeTyped(obj, r, sc)
	}
	raw, err := do(ctx, build(b.objects))
	if err != nil {
		return nil, "", err
	}
	var list struct {
		Metadata struct {
			Continue string `json:"continue"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, "", warden.Wrap(warden.Unavailable, err, fmt.Sprintf("cluster %q answered with something that is not a list", b.Name))
	}
	out := make([]json.RawMessage, len(list.Items))
	for i, item := range list.Items {
		if out[i], err = b.clean(item, r, sc); err != nil {
			return nil, "", err
		}
	}
	return out, list.Metadata.Continue, nil
}

// encodeTyped encodes a typed list's objects to JSON and cleans them, on
// every core.
func (b *Backend) encodeTyped(obj k8sruntime.Object, r *resource, sc warden.Scrubber) ([]json.RawMessage, string, error) {
	la, err := meta.ListAccessor(obj)
	if err != nil {
		return nil, "", warden.Wrap(warden.Internal, err, "the list could not be read")
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return nil, "", warden.Wrap(warden.Internal, err, "the list could not be read")
	}
	out := make([]json.RawMessage, len(items))
	errs := make([]error, len(items))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(items)/32))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The pipeline recovers a panic only on its own goroutine; one
			// here would take the process down. It fails the call instead.
			i := w
			defer func() {
				if p := recover(); p != nil {
					errs[i] = warden.Wrap(warden.Internal, fmt.Errorf("panic: %v", p), "an object of the list could not be cleaned")
				}
			}()
			for ; i < len(items); i += workers {
				out[i], errs[i] = b.cleanTyped(items[i], r, sc)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, "", err
		}
	}
	return out, la.GetContinue(), nil
}

// scrubCredentials replaces warden's own credential wherever it appears.
func (b *Backend) scrubCredentials(out []byte) []byte { return b.creds.scrub(out) }
