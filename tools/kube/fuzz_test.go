package kube

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// FuzzClean feeds arbitrary objects through the walker as a ConfigMap, a
// pod and a custom resource: it never panics, always returns JSON, never
// returns a planted value under a name that says secret, and decodes no
// more than its budget however the layers nest.
func FuzzClean(f *testing.F) {
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return base64.StdEncoding.EncodeToString(b.Bytes())
	}
	for _, seed := range []string{
		`{"data":{"a":"db.password=hunter22"},"binaryData":{"b":"` + gz("password: hunter22") + `"}}`,
		`{"metadata":{"annotations":{"x":"{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"data\":{\"p\":\"aHVudGVyMjI=\"}}"}}}`,
		`{"spec":{"containers":[{"name":"a","image":"i","env":[{"name":"TOKEN","value":"hunter22"}],"args":["--password","hunter22"]}]}}`,
		`{"metadata":{"labels":{"owner":"helm"}},"data":{"release":"` + gz(`{"config":{"password":"hunter22"},"manifest":"kind: Secret\napiVersion: v1\nstringData:\n  a: hunter22\n"}`) + `"}}`,
		`{"spec":{"x":"` + base64.StdEncoding.EncodeToString([]byte(gz(gz(gz("a: b\nc: d\n"))))) + `"}}`,
		`{"metadata":{"annotations":{"a":"a: [\n"}}}`,
	} {
		f.Add([]byte(seed))
	}
	// Only what clean uses: no connection.
	b := &Backend{Name: "fuzz", judge: newJudge(Masking{}), creds: newCredentials(&rest.Config{BearerToken: "fuzz-token-0123456789"})}
	resources := []*resource{
		{gvr: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, kind: "ConfigMap", namespaced: true},
		{gvr: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, kind: "Pod", namespaced: true},
		{gvr: schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}, kind: "Widget", namespaced: true},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			return
		}
		for _, r := range resources {
			out, err := b.clean(raw, r, nil)
			if err != nil {
				continue // not an object: refused, never shown
			}
			if !json.Valid(out) {
				t.Fatalf("clean(%q) as %s = %q: not JSON", raw, r.name(), out)
			}
			w := b.walker(r, nil)
			var obj map[string]any
			if json.Unmarshal(raw, &obj) == nil && obj != nil {
				w.object(obj, r.gvr.Group, r.kind, 0)
				if w.budget < -len(raw) {
					t.Fatalf("the walk decoded %d bytes past its budget", -w.budget)
				}
			}
			if strings.Contains(string(raw), `"password":"hunter22"`) && strings.Contains(string(out), `"password":"hunter22"`) {
				t.Fatalf("clean(%q) as %s shows a value its key says is secret: %s", raw, r.name(), out)
			}
		}
	})
}
