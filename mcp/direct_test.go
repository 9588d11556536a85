package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

// The tools a direct call can meet, for TestStdioAnswersAsMCPGo: beside
// sql_query, a tool whose call asks the user (in the client's form, or in
// the browser), one that fails, one that panics inside the pipeline, one
// that waits until its call is cancelled, one no caller may see, and a
// handler that panics outside the pipeline.

type stubTool struct {
	name, kind string
	plan       func() error
	execute    func(ctx context.Context) (*warden.Result, error)
}

func (t stubTool) Spec() warden.ToolSpec {
	return warden.ToolSpec{Name: t.name, BackendKind: t.kind, BackendArg: "database",
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{"database": map[string]any{"type": "string"}}}}
}

func (t stubTool) Plan(context.Context, json.RawMessage) (*warden.Action, error) {
	if t.plan != nil {
		if err := t.plan(); err != nil {
			return nil, err
		}
	}
	return &warden.Action{Tool: t.name, Backend: "shop", Kind: "select"}, nil
}

func (t stubTool) Execute(ctx context.Context, _ *warden.Action) (*warden.Result, error) {
	if t.execute != nil {
		return t.execute(ctx)
	}
	return &warden.Result{JSON: []byte(`{"ok":true}`)}, nil
}

// hidePolicy allows everything but grants no backend of kind "hidden".
type hidePolicy struct{ allowAll }

func (hidePolicy) Backends(_ *warden.Caller, kind string) []string {
	if kind == "hidden" {
		return nil
	}
	return []string{"shop"}
}

// askApprover holds the ask_* tools' calls for the user's confirmation
// ("st" is the state a confirmation must carry back) and lets the others
// run.
type askApprover struct{}

func (askApprover) Approve(ctx context.Context, c *warden.Call, _ warden.Tool) error {
	ask := &warden.Ask{Message: "Run " + c.Tool + "?", State: "st"}
	switch c.Tool {
	case "ask_form":
	case "ask_url":
		ask.URL, ask.ElicitationID = "https://warden.example/console/confirm/1", "el-1"
	default:
		return nil
	}
	in := warden.InteractionFrom(ctx)
	if a := in.Answer; a != nil {
		if a.State == "st" && a.Action == "accept" && a.Content[warden.ConfirmField] == true {
			return nil
		}
		return &warden.Error{Code: warden.Denied, Rule: "approval", Message: "the user declined"}
	}
	p := &warden.Pending{ApprovalID: "ap-1", Rule: "approval", ExpiresAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if in.CanAsk || ask.URL != "" {
		p.Ask = ask
	}
	return &warden.Error{Code: warden.NeedsApproval, Rule: "approval", Message: "held for approval", Pending: p}
}

func directTestServer(t testing.TB) *Server {
	reg, err := warden.NewRegistry(fixedTool{body: benchResult()},
		stubTool{name: "ask_form", kind: "postgres"},
		stubTool{name: "ask_url", kind: "postgres"},
		stubTool{name: "fails", kind: "postgres", plan: func() error {
			return &warden.Error{Code: warden.Invalid, Rule: "sql.parse", Message: "no <such> & statement"}
		}},
		stubTool{name: "boom", kind: "postgres", execute: func(context.Context) (*warden.Result, error) { panic("boom") }},
		stubTool{name: "blocks", kind: "postgres", execute: func(ctx context.Context) (*warden.Result, error) {
			warden.InteractionFrom(ctx).Report("running")
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		stubTool{name: "hidden", kind: "hidden"},
	)
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	p := &warden.Pipeline{Tools: reg, Policy: hidePolicy{}, Recorder: nopRecorder{}, Approvals: askApprover{}, Clock: time.Now,
		NewID: func() string { seq++; return "c-test-" + strconv.Itoa(seq) }}
	s := New(Options{Pipeline: p, Policy: hidePolicy{}, Sessions: nopRecorder{}, Version: "1.2.3",
		Identity: &IdentityConfig{Local: &LocalIdentity{Subject: "bench@example.com"}}})
	// A handler that panics outside the pipeline, which recovers its own.
	panics := func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		panic(errors.New("handler <panic>"))
	}
	s.specs["panics"] = stubTool{name: "panics", kind: "postgres"}.Spec()
	s.handlers["panics"] = panics
	s.mcp.AddTool(mcp.Tool{Name: "panics", RawInputSchema: s.schema(s.specs["panics"], nil)}, panics)
	return s
}
