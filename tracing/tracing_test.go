package tracing_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/tracing"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

const secret = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"

// lookup plans a select of the table its arguments name and returns a
// result carrying a secret.
type lookup struct{}

func (lookup) Spec() warden.ToolSpec { return warden.ToolSpec{Name: "lookup", BackendKind: "postgres"} }

func (lookup) Plan(_ context.Context, raw json.RawMessage) (*warden.Action, error) {
	var args struct {
		Table, Backend string
	}
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	return &warden.Action{Tool: "lookup", Backend: args.Backend, Kind: "select", Ops: []warden.Op{{Verb: "select", Object: args.Table}}}, nil
}

func (lookup) Execute(context.Context, *warden.Action) (*warden.Result, error) {
	return &warden.Result{Structured: map[string]any{"token": secret}}, nil
}

type allowOrders struct{}

func (allowOrders) Authorize(_ *warden.Caller, a *warden.Action) *warden.Decision {
	if a.Ops[0].Object == "orders" {
		return &warden.Decision{Effect: warden.Allow, Rule: "analysts"}
	}
	return &warden.Decision{Effect: warden.Deny, Rule: "default-deny", Reasons: []string{"no grant allows select " + a.Ops[0].Object}}
}

func (allowOrders) Backends(*warden.Caller, string) []string { return []string{"shop"} }

type nopRecorder struct{}

func (nopRecorder) StartCall(context.Context, *warden.Call) error  { return nil }
func (nopRecorder) FinishCall(context.Context, *warden.Call) error { return nil }

// receiver is an OTLP/HTTP collector: it decodes every export request.
type receiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	paths []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var msg collector.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not OTLP protobuf", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	for _, rs := range msg.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	b, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

func TestSpansPerStageCarryNoValues(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	tr, err := tracing.New(context.Background(), tracing.Config{Endpoint: srv.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := warden.NewRegistry(lookup{})
	if err != nil {
		t.Fatal(err)
	}
	p := &warden.Pipeline{Tools: reg, Policy: allowOrders{}, Recorder: nopRecorder{}, Clock: time.Now,
		NewID:    func() string { return "c-1" },
		Observer: tr.Calls(warden.NewLabels([]string{"lookup"}, []string{"shop"}))}
	ctx := warden.WithCaller(context.Background(), &warden.Caller{Subject: "alice"})
	if _, err := p.Run(ctx, "lookup", json.RawMessage(`{"table":"orders","backend":"shop"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(ctx, "lookup", json.RawMessage(`{"table":"`+secret+`","backend":"`+secret+`"}`)); err == nil {
		t.Fatal("the denied call was allowed")
	}
	if err := tr.Shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatal(err)
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.paths) == 0 || rcv.paths[0] != "/v1/traces" {
		t.Fatalf("export requests went to %v; want /v1/traces", rcv.paths)
	}
	var names []string
	byID := map[string]*tracepb.Span{}
	for _, s := range rcv.spans {
		names = append(names, s.GetName())
		byID[string(s.GetSpanId())] = s
	}
	slices.Sort(names)
	want := []string{"warden.authorize", "warden.authorize", "warden.call", "warden.call", "warden.execute",
		"warden.plan", "warden.plan", "warden.record", "warden.record", "warden.record_intent"}
	if !slices.Equal(names, want) {
		t.Errorf("spans = %v;\nwant %v", names, want)
	}
	allowedKeys := []string{"warden.tool", "warden.call_id", "warden.backend", "warden.decision", "warden.outcome", "warden.session_id", "warden.error_code"}
	outcomes := map[string]string{}
	for _, s := range rcv.spans {
		attrs := map[string]string{}
		for _, kv := range s.GetAttributes() {
			attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			if !slices.Contains(allowedKeys, kv.GetKey()) {
				t.Errorf("span %s has attribute %s", s.GetName(), kv.GetKey())
			}
		}
		dump := s.String()
		if strings.Contains(dump, secret) || strings.Contains(dump, "orders") || strings.Contains(dump, "no grant") {
			t.Errorf("span %s carries a value: %s", s.GetName(), dump)
		}
		if s.GetName() == "warden.call" {
			if len(s.GetParentSpanId()) != 0 || s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("call span is not a root server span: %s", dump)
			}
			outcomes[attrs["warden.outcome"]] = attrs["warden.backend"]
			continue
		}
		parent, ok := byID[string(s.GetParentSpanId())]
		if !ok || parent.GetName() != "warden.call" || string(parent.GetTraceId()) != string(s.GetTraceId()) {
			t.Errorf("stage span %s is not a child of its call's span", s.GetName())
		}
		if s.GetName() == "warden.authorize" && attrs["warden.error_code"] == "denied" && s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("the denied authorize span's status = %v; want error", s.GetStatus())
		}
	}
	if outcomes["ok"] != "shop" || outcomes["denied"] != "unknown" {
		t.Errorf("call spans' outcome -> backend = %v; want ok -> shop and denied -> unknown", outcomes)
	}
}

func TestConfigRefusesCredentialsInTheEndpoint(t *testing.T) {
	ratio := 1.5
	for _, c := range []tracing.Config{
		{Endpoint: "http://user:token@collector:4318"},
		{Endpoint: "collector:4318"},
		{Endpoint: "http://collector:4318", SampleRatio: &ratio},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil; want an error", c)
		} else if strings.Contains(err.Error(), "token") && strings.Contains(err.Error(), "user:") {
			t.Errorf("the error quotes the endpoint's credentials: %v", err)
		}
	}
	if err := (&tracing.Config{Endpoint: "https://collector.example:4318/otlp"}).Validate(); err != nil {
		t.Errorf("a valid endpoint: %v", err)
	}
}
