package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/metrics"
)

type benchTool struct{}

func (benchTool) Spec() warden.ToolSpec {
	return warden.ToolSpec{Name: "sql_query", BackendKind: "postgres"}
}
func (benchTool) Plan(context.Context, json.RawMessage) (*warden.Action, error) {
	return &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select", Ops: []warden.Op{{Verb: "select", Object: "orders"}}}, nil
}
func (benchTool) Execute(context.Context, *warden.Action) (*warden.Result, error) {
	return &warden.Result{JSON: json.RawMessage(`{"rows":[]}`)}, nil
}

type allowAll struct{}

func (allowAll) Authorize(*warden.Caller, *warden.Action) *warden.Decision {
	return &warden.Decision{Effect: warden.Allow, Rule: "all"}
}
func (allowAll) Backends(*warden.Caller, string) []string { return []string{"shop"} }

type discard struct{}

func (discard) StartCall(context.Context, *warden.Call) error  { return nil }
func (discard) FinishCall(context.Context, *warden.Call) error { return nil }

// BenchmarkPipelineOverhead is what observing costs a call: the pipeline
// with in-memory stages, without and with the metrics and log observers
// warden serve installs (log at info, so an allowed call is not logged).
func BenchmarkPipelineOverhead(b *testing.B) {
	reg, _ := warden.NewRegistry(benchTool{})
	labels := warden.NewLabels([]string{"sql_query"}, []string{"shop"})
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, bc := range []struct {
		name string
		obs  warden.Observer
	}{
		{"Unobserved", nil},
		{"MetricsAndLog", warden.Observers{metrics.New("bench").Calls(labels), warden.LogCalls(log, labels)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := &warden.Pipeline{Tools: reg, Policy: allowAll{}, Recorder: discard{}, Clock: time.Now,
				NewID: func() string { return "c-1" }, Observer: bc.obs}
			ctx := warden.WithCaller(context.Background(), &warden.Caller{Subject: "alice"})
			args := json.RawMessage(`{}`)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Run(ctx, "sql_query", args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
