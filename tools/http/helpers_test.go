package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder/sqlite"
	whttp "github.com/warden-mcp/warden/tools/http"
)

// The credentials warden holds for the test API. Tests assert neither
// ever reaches a result, an error or the recording.
const (
	bearerToken = "s3cr3t-t0ken-value-0123456789"
	apiKey      = "k3y-abcdefghijklmnop"
)

// upstream is an httptest server whose handler a test sets, counting
// requests so tests can prove what reached it.
type upstream struct {
	*httptest.Server
	hits    atomic.Int64
	handler atomic.Value // http.HandlerFunc
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.handler.Store(h)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.handler.Load().(http.HandlerFunc)(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func jsonHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

// newBackend builds a backend for base (the server URL plus a base path)
// with the test credentials; edit changes the config before validation.
func newBackend(t testing.TB, base string, edit func(*whttp.Config)) *whttp.Backend {
	t.Helper()
	cfg := whttp.Config{BaseURL: base, Headers: map[string]string{
		"Authorization": "Bearer " + bearerToken,
		"X-Api-Key":     apiKey,
	}}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	b, err := whttp.NewBackend(context.Background(), "billing", cfg)
	if err != nil {
		t.Fatalf("NewBackend() = %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func newTool(b *whttp.Backend, pol warden.Authorizer) *whttp.Call {
	return &whttp.Call{Backends: whttp.Backends{b.Name: b}, Policy: pol}
}

var analyst = &warden.Caller{Subject: "alice@example.com", Groups: []string{"analysts"}, Method: "local"}

// billingPolicy grants analysts GET on invoices and POST on notes.
func billingPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.New(policy.Config{"analyst": {
		Members: policy.Members{Groups: []string{"analysts"}},
		Grants: []*policy.Grant{
			{Backend: "billing", Methods: []string{"GET", "HEAD"}, Paths: []string{"/v1/invoices/**"}},
			{Backend: "billing", Methods: []string{"POST"}, Paths: []string{"/v1/notes"}},
		},
	}}, map[string]string{"billing": "http"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newPipeline is the real pipeline: the policy above, a SQLite recording
// in a temp dir, and the value detectors when detectors are named.
func newPipeline(t testing.TB, tool *whttp.Call, pol *policy.Policy, detectors ...string) (*warden.Pipeline, *sqlite.Store) {
	t.Helper()
	reg, err := warden.NewRegistry(tool)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var seq atomic.Int64
	p := &warden.Pipeline{Tools: reg, Policy: pol, Recorder: store, Clock: time.Now,
		NewID: func() string { return "c-" + time.Now().Format("150405.000000000") + "-" + itoa(seq.Add(1)) }}
	if len(detectors) > 0 {
		d, err := mask.NewDetectors(mask.Config{Detectors: detectors})
		if err != nil {
			t.Fatal(err)
		}
		p.Scrubber = d
	}
	return p, store
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// call plans and executes args directly, without policy.
func call(t testing.TB, ctx context.Context, tool *whttp.Call, args string) (*whttp.CallResult, error) {
	t.Helper()
	a, err := tool.Plan(ctx, json.RawMessage(args))
	if err != nil {
		return nil, err
	}
	a.CallID = "c-test"
	res, err := tool.Execute(ctx, a)
	if err != nil {
		return nil, err
	}
	return res.Structured.(*whttp.CallResult), nil
}

func mustCall(t testing.TB, tool *whttp.Call, args string) *whttp.CallResult {
	t.Helper()
	res, err := call(t, context.Background(), tool, args)
	if err != nil {
		t.Fatalf("call(%s) = %v", args, err)
	}
	return res
}

func encodeJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// leaks reports which credential (or a telling part of one) s contains.
func leaks(s string) string {
	for _, secret := range []string{bearerToken, apiKey, bearerToken[:12], apiKey[:12]} {
		if strings.Contains(s, secret) {
			return secret
		}
	}
	return ""
}

// errorText is everything an error carries: the agent's message and the
// cause kept for the recording.
func errorText(err error) string {
	e := warden.AsError(err)
	s := e.Message
	if e.Err != nil {
		s += " | " + e.Err.Error()
	}
	return s
}
