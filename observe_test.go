package warden_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/warden-mcp/warden"
)

// stageLog is an Observer that writes down each stage as it begins and
// ends, with the stage's error code.
type stageLog struct {
	mu     sync.Mutex
	events []string
}

func (l *stageLog) Observe(ctx context.Context, c *warden.Call, s warden.Stage) (context.Context, func(error)) {
	l.add("begin " + string(s))
	return ctx, func(err error) {
		ev := "end " + string(s)
		if err != nil {
			ev += " " + string(warden.ErrorCode(err))
		}
		l.add(ev)
	}
}

func (l *stageLog) add(ev string) { l.mu.Lock(); l.events = append(l.events, ev); l.mu.Unlock() }

func TestObserverSeesEveryStageInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caller *warden.Caller
		args   string
		setup  func(*echoTool, *memRecorder)
		want   []string
	}{
		{"AllowedCallPassesEveryStage", alice, `{"table":"public.orders"}`, nil, []string{
			"begin call", "begin plan", "end plan", "begin authorize", "end authorize",
			"begin record_intent", "end record_intent", "begin execute", "end execute",
			"begin record", "end record", "end call"}},
		{"DeniedCallStopsAtAuthorize", alice, `{"table":"public.payroll"}`, nil, []string{
			"begin call", "begin plan", "end plan", "begin authorize", "end authorize denied",
			"begin record", "end record", "end call denied"}},
		{"UnauthenticatedCallIsRecordedOnly", nil, `{"table":"public.orders"}`, nil, []string{
			"begin call", "begin record", "end record", "end call unauthenticated"}},
		{"PlanErrorEndsThePlanStage", alice, `{"table":"public.orders"}`, func(e *echoTool, _ *memRecorder) {
			e.planErr = warden.Errorf(warden.Invalid, "bad")
		}, []string{"begin call", "begin plan", "end plan invalid", "begin record", "end record", "end call invalid"}},
		{"IntentRecordFailureStopsBeforeExecute", alice, `{"table":"public.orders"}`, func(_ *echoTool, r *memRecorder) {
			r.failStart = true
		}, []string{"begin call", "begin plan", "end plan", "begin authorize", "end authorize",
			"begin record_intent", "end record_intent internal", "begin record", "end record", "end call unavailable"}},
		{"PanicInExecuteStillEndsTheCall", alice, `{"table":"boom"}`, func(e *echoTool, _ *memRecorder) {
			e.panicIn = "execute"
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tool, rec := &echoTool{}, &memRecorder{}
			if tc.setup != nil {
				tc.setup(tool, rec)
			}
			p := newPipeline(t, tool, rec)
			if tc.name == "PanicInExecuteStillEndsTheCall" {
				p.Policy = allowTables{"boom"}
			}
			obs := &stageLog{}
			p.Observer = obs
			ctx := context.Background()
			if tc.caller != nil {
				ctx = warden.WithCaller(ctx, tc.caller)
			}
			_, _ = p.Run(ctx, "echo", json.RawMessage(tc.args))
			if tc.want == nil {
				if last := obs.events[len(obs.events)-1]; last != "end call internal" {
					t.Errorf("last event = %q; want the call to end as internal", last)
				}
				return
			}
			if !slices.Equal(obs.events, tc.want) {
				t.Errorf("stages = %v;\nwant %v", obs.events, tc.want)
			}
		})
	}
}

func TestObserversEndInReverseOrder(t *testing.T) {
	var events []string
	named := func(name string) warden.Observer {
		return warden.ObserverFunc(func(ctx context.Context, _ *warden.Call, s warden.Stage) (context.Context, func(error)) {
			events = append(events, name+" begin "+string(s))
			return ctx, func(error) { events = append(events, name+" end "+string(s)) }
		})
	}
	_, end := warden.Observers{named("a"), named("b")}.Observe(context.Background(), &warden.Call{}, warden.StagePlan)
	end(nil)
	want := []string{"a begin plan", "b begin plan", "b end plan", "a end plan"}
	if !slices.Equal(events, want) {
		t.Errorf("events = %v; want %v", events, want)
	}
}

func TestLabelsComeFromClosedSets(t *testing.T) {
	l := warden.NewLabels([]string{"sql_query"}, []string{"shop"})
	for _, tc := range []struct {
		call                             *warden.Call
		tool, backend, decision, outcome string
	}{
		{&warden.Call{Tool: "sql_query", Action: &warden.Action{Backend: "shop"}, Decision: &warden.Decision{Effect: warden.Allow}},
			"sql_query", "shop", "allow", "ok"},
		{&warden.Call{Tool: "sql_query ghp_secret", Action: &warden.Action{Backend: "postgres://u:pw@h/db"},
			Decision: &warden.Decision{Effect: "whatever"}, Err: &warden.Error{Code: "made-up"}},
			"unknown", "unknown", "unknown", "internal"},
		{&warden.Call{Tool: "sql_query", Err: warden.Errorf(warden.Unauthenticated, "no")},
			"sql_query", "none", "none", "unauthenticated"},
	} {
		got := fmt.Sprint(l.Tool(tc.call), l.Backend(tc.call), l.Decision(tc.call), l.Outcome(tc.call))
		want := fmt.Sprint(tc.tool, tc.backend, tc.decision, tc.outcome)
		if got != want {
			t.Errorf("labels(%+v) = %s; want %s", tc.call, got, want)
		}
		if !slices.Contains(warden.Outcomes, l.Outcome(tc.call)) {
			t.Errorf("outcome %q is not in Outcomes", l.Outcome(tc.call))
		}
	}
}

func TestLogCallsCarriesNoValues(t *testing.T) {
	var b strings.Builder
	log := slogJSON(&b)
	tool, rec := &echoTool{}, &memRecorder{}
	p := newPipeline(t, tool, rec)
	p.Observer = warden.LogCalls(log, warden.NewLabels([]string{"echo"}, []string{"db"}))
	ctx := warden.WithCaller(context.Background(), alice)
	_, _ = p.Run(ctx, "echo", json.RawMessage(`{"table":"public.payroll 4111111111111111"}`))
	_, _ = p.Run(ctx, "echo", json.RawMessage(`{"table":"public.orders"}`))
	out := b.String()
	if strings.Count(out, `"msg":"call"`) != 2 || !strings.Contains(out, `"outcome":"denied"`) || !strings.Contains(out, `"outcome":"ok"`) {
		t.Fatalf("log = %s; want a line for the denied and for the allowed call", out)
	}
	for _, v := range []string{"4111111111111111", "payroll", "no grant allows"} {
		if strings.Contains(out, v) {
			t.Errorf("the log carries %q: %s", v, out)
		}
	}
	if strings.Contains(out, "public.orders") {
		t.Errorf("the log carries a table name from the arguments: %s", out)
	}
}

func slogJSON(w *strings.Builder) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
