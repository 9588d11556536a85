package warden_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
)

// echoTool plans a select of the table named in its arguments and counts
// executions, so tests can prove what reached the "backend".
type echoTool struct {
	mu       sync.Mutex
	executed int
	planErr  error
	// panicIn makes Plan or Execute panic ("plan", "execute") for the
	// table named "boom".
	panicIn string
}

func (e *echoTool) Spec() warden.ToolSpec {
	return warden.ToolSpec{Name: "echo", BackendKind: "postgres"}
}

func (e *echoTool) Plan(_ context.Context, raw json.RawMessage) (*warden.Action, error) {
	if e.planErr != nil {
		return nil, e.planErr
	}
	var args struct {
		Table string `json:"table"`
	}
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if e.panicIn == "plan" && args.Table == "boom" {
		var m map[string]int
		m["nil map"]++
	}
	return &warden.Action{Tool: "echo", Backend: "db", Kind: "select", Ops: []warden.Op{{Verb: "select", Object: args.Table}}}, nil
}

func (e *echoTool) Execute(_ context.Context, a *warden.Action) (*warden.Result, error) {
	e.mu.Lock()
	e.executed++
	e.mu.Unlock()
	if e.panicIn == "execute" && a.Ops[0].Object == "boom" {
		panic("tool bug with a value 4111 1111 1111 1111")
	}
	return &warden.Result{Structured: map[string]any{"table": a.Ops[0].Object, "call_id": a.CallID}, Count: 1}, nil
}

// allowTables allows selects of the listed tables.
type allowTables []string

func (a allowTables) Authorize(c *warden.Caller, act *warden.Action) *warden.Decision {
	for _, op := range act.Ops {
		ok := false
		for _, t := range a {
			ok = ok || op.Object == t
		}
		if !ok {
			return &warden.Decision{Effect: warden.Deny, Rule: "default-deny", Reasons: []string{"no grant allows " + op.String()}, Allowed: []string(a)}
		}
	}
	return &warden.Decision{Effect: warden.Allow, Rule: "test"}
}

func (a allowTables) Backends(*warden.Caller, string) []string { return []string{"db"} }

// memRecorder keeps records in memory and fails on demand.
type memRecorder struct {
	mu                  sync.Mutex
	started, finished   []*warden.Call
	failStart, failDone bool
}

func (m *memRecorder) StartCall(_ context.Context, c *warden.Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failStart {
		return errors.New("disk full")
	}
	m.started = append(m.started, c)
	return nil
}

func (m *memRecorder) FinishCall(_ context.Context, c *warden.Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failDone {
		return errors.New("disk full")
	}
	m.finished = append(m.finished, c)
	return nil
}

func newPipeline(t *testing.T, tool *echoTool, rec *memRecorder) *warden.Pipeline {
	t.Helper()
	reg, err := warden.NewRegistry(tool)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return &warden.Pipeline{
		Tools: reg, Policy: allowTables{"public.orders"}, Recorder: rec,
		Clock: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
		NewID: func() string { n++; return "c-" + string(rune('0'+n)) },
	}
}

var alice = &warden.Caller{Subject: "alice@example.com", Method: "local"}

func TestPipeline(t *testing.T) {
	tests := []struct {
		name         string
		caller       *warden.Caller
		args         string
		failStart    bool
		failDone     bool
		planErr      error
		wantCode     warden.Code
		wantExecuted int
		wantStarted  int
		wantFinished int
		wantEffect   warden.Effect
	}{
		{name: "RunsAndRecordsAllowedCall", caller: alice, args: `{"table":"public.orders"}`,
			wantExecuted: 1, wantStarted: 1, wantFinished: 1, wantEffect: warden.Allow},
		{name: "DeniesAndRecordsCallWithoutCaller", args: `{"table":"public.orders"}`,
			wantCode: warden.Unauthenticated, wantFinished: 1, wantEffect: warden.Deny},
		{name: "DeniesAndRecordsUngrantedTable", caller: alice, args: `{"table":"public.payroll"}`,
			wantCode: warden.Denied, wantFinished: 1, wantEffect: warden.Deny},
		{name: "RecordsPlanRefusalAsDenial", caller: alice, args: `{}`,
			planErr:  &warden.Error{Code: warden.Denied, Rule: "sql.statement", Message: "SET is refused"},
			wantCode: warden.Denied, wantFinished: 1, wantEffect: warden.Deny},
		{name: "RecordsInvalidArguments", caller: alice, args: `{"tabel":"x"}`,
			wantCode: warden.Invalid, wantFinished: 1, wantEffect: warden.Deny},
		{name: "RefusesWhenIntentCannotBeRecorded", caller: alice, args: `{"table":"public.orders"}`, failStart: true,
			wantCode: warden.Unavailable, wantExecuted: 0, wantFinished: 1},
		{name: "WithholdsResultThatCannotBeRecorded", caller: alice, args: `{"table":"public.orders"}`, failDone: true,
			wantCode: warden.Unavailable, wantExecuted: 1, wantStarted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := &echoTool{planErr: tt.planErr}
			rec := &memRecorder{failStart: tt.failStart, failDone: tt.failDone}
			p := newPipeline(t, tool, rec)
			ctx := context.Background()
			if tt.caller != nil {
				ctx = warden.WithCaller(ctx, tt.caller)
			}
			call, err := p.Run(ctx, "echo", json.RawMessage(tt.args))
			if got := warden.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("Run(%s) error = %v (code %q); want code %q", tt.args, err, got, tt.wantCode)
			}
			if tool.executed != tt.wantExecuted {
				t.Errorf("Run(%s) executed %d times; want %d", tt.args, tool.executed, tt.wantExecuted)
			}
			if len(rec.started) != tt.wantStarted || len(rec.finished) != tt.wantFinished {
				t.Errorf("Run(%s) recorded %d starts, %d finishes; want %d, %d", tt.args, len(rec.started), len(rec.finished), tt.wantStarted, tt.wantFinished)
			}
			if tt.wantEffect != "" && (call.Decision == nil || call.Decision.Effect != tt.wantEffect) {
				t.Errorf("Run(%s) decision = %+v; want effect %s", tt.args, call.Decision, tt.wantEffect)
			}
			if err == nil && (call.Result == nil || call.Result.Structured.(map[string]any)["call_id"] != call.ID) {
				t.Errorf("Run(%s) result does not carry the call id %s: %+v", tt.args, call.ID, call.Result)
			}
			if err != nil && call.Result != nil {
				t.Errorf("Run(%s) failed but left a result on the call", tt.args)
			}
		})
	}
}

func TestAsErrorHidesUncodedErrors(t *testing.T) {
	e := warden.AsError(errors.New("dial tcp 10.0.0.5:5432: password=hunter2"))
	if e.Code != warden.Internal || e.Message != "internal error" {
		t.Errorf("AsError(raw) = %q/%q; want internal/\"internal error\"", e.Code, e.Message)
	}
}

func TestDecodeArgsIsStrict(t *testing.T) {
	var v struct {
		SQL string `json:"sql"`
	}
	for in, want := range map[string]string{
		`{"sql":"x","extra":1}`: `unknown argument "extra"`,
		`{"sql":1}`:             `argument "sql" must be a string`,
		`{"sql":"x"} {}`:        "trailing data",
		`[1]`:                   "expected a JSON object",
	} {
		err := warden.DecodeArgs(json.RawMessage(in), &v)
		if warden.ErrorCode(err) != warden.Invalid || !contains(err.Error(), want) {
			t.Errorf("DecodeArgs(%s) = %v; want Invalid containing %q", in, err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// holdApprover answers the approval stage with err and remembers what it
// was asked.
type holdApprover struct {
	err    error
	asked  int
	hashes []string
}

func (h *holdApprover) Approve(_ context.Context, c *warden.Call, _ warden.Tool) error {
	h.asked++
	h.hashes = append(h.hashes, c.Hash)
	if h.err == nil {
		c.Approval = &warden.CallApproval{ID: "a-1", Status: warden.ApprovalUsed}
	}
	return h.err
}

func TestPipelineApprovalStage(t *testing.T) {
	held := &warden.Error{Code: warden.NeedsApproval, Rule: "approvals.r", Message: "held", Pending: &warden.Pending{ApprovalID: "a-1"}}
	tests := []struct {
		name         string
		args         string
		approver     error
		wantCode     warden.Code
		wantAsked    int
		wantExecuted int
		wantOutcome  string
	}{
		{name: "HeldCallDoesNotRun", args: `{"table":"public.orders"}`, approver: held,
			wantCode: warden.NeedsApproval, wantAsked: 1, wantOutcome: "pending"},
		{name: "ApprovedCallRuns", args: `{"table":"public.orders"}`,
			wantAsked: 1, wantExecuted: 1, wantOutcome: "ok"},
		{name: "DeclinedCallDoesNotRun", args: `{"table":"public.orders"}`, approver: &warden.Error{Code: warden.Denied, Message: "declined"},
			wantCode: warden.Denied, wantAsked: 1, wantOutcome: "denied"},
		{name: "ApprovalNeverWidensAGrant", args: `{"table":"public.payroll"}`,
			wantCode: warden.Denied, wantAsked: 0, wantOutcome: "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := &echoTool{}
			rec := &memRecorder{}
			p := newPipeline(t, tool, rec)
			ap := &holdApprover{err: tt.approver}
			p.Approvals = ap
			call, err := p.Run(warden.WithCaller(context.Background(), alice), "echo", json.RawMessage(tt.args))
			if got := warden.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("Run = %v; want code %q", err, tt.wantCode)
			}
			if ap.asked != tt.wantAsked || tool.executed != tt.wantExecuted {
				t.Errorf("approver asked %d times, tool executed %d; want %d, %d", ap.asked, tool.executed, tt.wantAsked, tt.wantExecuted)
			}
			if len(rec.finished) != 1 || rec.finished[0].Outcome() != tt.wantOutcome {
				t.Fatalf("recorded %d finishes; want 1 with outcome %s", len(rec.finished), tt.wantOutcome)
			}
			if tt.wantExecuted == 0 && len(rec.started) != 0 {
				t.Errorf("a call that did not run was recorded as started")
			}
			if want, _ := warden.CallHash("echo", json.RawMessage(tt.args)); tt.wantAsked > 0 && call.Hash != want {
				t.Errorf("the call reached the approval stage with hash %q; want %q", call.Hash, want)
			}
		})
	}
}

func TestCallHash(t *testing.T) {
	h := func(tool, args string) string {
		t.Helper()
		s, err := warden.CallHash(tool, json.RawMessage(args))
		if err != nil {
			t.Fatalf("CallHash(%s) = %v", args, err)
		}
		return s
	}
	base := h("sql_query", `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup"}`)
	same := map[string]string{
		"KeyOrder":        `{"sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup","database":"shop"}`,
		"Whitespace":      `{ "database" : "shop", "sql": "DELETE FROM orders WHERE id = 3", "purpose": "cleanup" }`,
		"EscapedLetters":  `{"database":"sh\u006fp","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup"}`,
		"WithApprovalID":  `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup","approval_id":"a-1"}`,
		"OtherApprovalID": `{"approval_id":"a-2","database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup"}`,
	}
	for name, args := range same {
		if got := h("sql_query", args); got != base {
			t.Errorf("CallHash(%s) differs from the same call written differently", name)
		}
	}
	different := map[string]string{
		"Statement":  `{"database":"shop","sql":"DELETE FROM orders WHERE id = 4","purpose":"cleanup"}`,
		"Purpose":    `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"other"}`,
		"NoPurpose":  `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3"}`,
		"Database":   `{"database":"shop2","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup"}`,
		"ExtraParam": `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup","params":[1]}`,
	}
	for name, args := range different {
		if got := h("sql_query", args); got == base {
			t.Errorf("CallHash with a different %s = the original's; want a different hash", name)
		}
	}
	if h("http_call", `{"database":"shop","sql":"DELETE FROM orders WHERE id = 3","purpose":"cleanup"}`) == base {
		t.Error("CallHash ignores the tool")
	}
	if h("q", `{"params":[1.0]}`) == h("q", `{"params":[1]}`) {
		t.Error("CallHash(1.0) = CallHash(1); numbers keep the digits the agent sent")
	}
}

// BenchmarkCallHash is what every call pays for approval rules to bind an
// approval to it (docs/BENCHMARKS.md).
func BenchmarkCallHash(b *testing.B) {
	args := json.RawMessage(`{"database":"shop","sql":"SELECT id, name, price, added, active FROM items WHERE id = $1 ORDER BY id","params":[42],"purpose":"weekly report"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := warden.CallHash("sql_query", args); err != nil {
			b.Fatal(err)
		}
	}
}

// A panic anywhere in a call is a failure: answered and recorded as an
// internal error (never as ok), and the pipeline goes on serving.
func TestPipelineRecordsAPanicAsAFailure(t *testing.T) {
	for _, where := range []string{"plan", "execute"} {
		t.Run(where, func(t *testing.T) {
			tool := &echoTool{panicIn: where}
			rec := &memRecorder{}
			p := newPipeline(t, tool, rec)
			p.Policy = allowTables{"public.orders", "boom"}
			ctx := warden.WithCaller(t.Context(), alice)

			c, err := p.Run(ctx, "echo", json.RawMessage(`{"table":"boom"}`))
			e := warden.AsError(err)
			if err == nil || e.Code != warden.Internal {
				t.Fatalf("Run(panicking %s) = %v; want an Internal error", where, err)
			}
			if strings.Contains(e.Message, "4111") || strings.Contains(e.Message, "goroutine") || strings.Contains(e.Message, "nil map") {
				t.Errorf("Run(panicking %s) message = %q; want no panic value or stack", where, e.Message)
			}
			if !strings.Contains(e.Message, c.ID) {
				t.Errorf("Run(panicking %s) message = %q; want the call id %s", where, e.Message, c.ID)
			}
			if len(rec.finished) != 1 || rec.finished[0].Outcome() != "error" || rec.finished[0].Result != nil {
				t.Fatalf("recorded %d calls, outcome %q; want 1 with outcome error and no result", len(rec.finished), rec.finished[0].Outcome())
			}
			if _, err := p.Run(ctx, "echo", json.RawMessage(`{"table":"public.orders"}`)); err != nil {
				t.Fatalf("Run after the panic = %v; want the pipeline still serving", err)
			}
			if len(rec.finished) != 2 || rec.finished[1].Outcome() != "ok" {
				t.Fatalf("after the panic: recorded %d calls; want the second ok", len(rec.finished))
			}
		})
	}
}

// rawTool returns the JSON it is given as its result.
type rawTool struct {
	echoTool
	json  json.RawMessage
	valid bool
}

func (r *rawTool) Execute(context.Context, *warden.Action) (*warden.Result, error) {
	return &warden.Result{JSON: r.json, JSONValid: r.valid, Count: 1}, nil
}

// TestPipelineRefusesAResultThatIsNotJSON: a tool's own encoding is
// checked unless the tool says it writes JSON by construction; the
// recording splices it in as it is.
func TestPipelineRefusesAResultThatIsNotJSON(t *testing.T) {
	for _, raw := range []string{`{"rows": [1, 2}`, `{"a": 1} trailing`, ``} {
		tool := &rawTool{json: json.RawMessage(raw)}
		rec := &memRecorder{}
		reg, err := warden.NewRegistry(tool)
		if err != nil {
			t.Fatal(err)
		}
		p := &warden.Pipeline{Tools: reg, Policy: allowTables{"public.orders"}, Recorder: rec,
			Clock: time.Now, NewID: func() string { return "c-1" }}
		call, err := p.Run(warden.WithCaller(context.Background(), alice), "echo", json.RawMessage(`{"table":"public.orders"}`))
		if warden.ErrorCode(err) != warden.Internal || call.Result != nil {
			t.Errorf("a result of %q: error %v, result %+v; want Internal and no result", raw, err, call.Result)
		}
		if len(rec.finished) != 1 || rec.finished[0].Result != nil {
			t.Errorf("a result of %q: recorded %d finishes with result %+v; want the failure recorded without it", raw, len(rec.finished), rec.finished)
		}
	}
}
