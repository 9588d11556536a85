package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/metrics"
)

// value is the value of the series of family name whose labels are
// exactly want.
func value(t *testing.T, m *metrics.Metrics, name string, want map[string]string) (float64, bool) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) != len(want) {
				continue
			}
			for _, l := range s.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return number(s), true
		}
	}
	return 0, false
}

func number(s *dto.Metric) float64 {
	switch {
	case s.GetCounter() != nil:
		return s.GetCounter().GetValue()
	case s.GetGauge() != nil:
		return s.GetGauge().GetValue()
	case s.GetHistogram() != nil:
		return float64(s.GetHistogram().GetSampleCount())
	}
	return 0
}

func TestAuthFailureReasonsAreAClosedSet(t *testing.T) {
	m := metrics.New("test")
	m.AuthFailed(metrics.ReasonInvalidToken)
	m.AuthFailed("Bearer eyJhbGciOi...") // never a label value
	for reason, want := range map[string]float64{"invalid_token": 1, "other": 1, "missing_token": 0} {
		if got, ok := value(t, m, "warden_auth_failures_total", map[string]string{"reason": reason}); !ok || got != want {
			t.Errorf("auth failures{reason=%s} = %v (present %v); want %v", reason, got, ok, want)
		}
	}
	if _, ok := value(t, m, "warden_auth_failures_total", map[string]string{"reason": "Bearer eyJhbGciOi..."}); ok {
		t.Error("a caller's string became a label value")
	}
}

func TestCallsAndStages(t *testing.T) {
	m := metrics.New("test")
	o := m.Calls(warden.NewLabels([]string{"sql_query"}, []string{"shop"}))
	run := func(c *warden.Call, stages ...warden.Stage) {
		_, endCall := o.Observe(context.Background(), c, warden.StageCall)
		for _, s := range stages {
			_, end := o.Observe(context.Background(), c, s)
			end(nil)
		}
		endCall(c.Err)
	}
	allowed := &warden.Call{Tool: "sql_query", Action: &warden.Action{Backend: "shop"}, Decision: &warden.Decision{Effect: warden.Allow}}
	run(allowed, warden.StagePlan, warden.StageExecute)
	run(allowed, warden.StagePlan, warden.StageExecute)
	run(&warden.Call{Tool: "drop_tables", Err: warden.Errorf(warden.Invalid, "unknown tool")})
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warden_calls_total", map[string]string{"tool": "sql_query", "backend": "shop", "decision": "allow", "outcome": "ok"}, 2},
		{"warden_calls_total", map[string]string{"tool": "unknown", "backend": "none", "decision": "none", "outcome": "invalid"}, 1},
		{"warden_stage_duration_seconds", map[string]string{"stage": "execute", "tool": "sql_query"}, 2},
		{"warden_stage_duration_seconds", map[string]string{"stage": "call", "tool": "unknown"}, 1},
		{"warden_calls_in_flight", map[string]string{}, 0},
	} {
		if got, ok := value(t, m, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v); want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
}

func TestRecorderAndApprovalGauges(t *testing.T) {
	m := metrics.New("test")
	m.Commit(3, 2*time.Millisecond)
	m.Commit(1, time.Millisecond)
	m.WatchQueue(func() int { return 7 })
	pending, fail := 2, false
	m.WatchApprovals(func(context.Context) (int, error) {
		if fail {
			return 0, errors.New("store gone")
		}
		return pending, nil
	})
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"warden_recorder_records_total", 4},
		{"warden_recorder_commit_duration_seconds", 2},
		{"warden_recorder_queue_depth", 7},
		{"warden_approvals_pending", 2},
	} {
		if got, ok := value(t, m, tc.name, map[string]string{}); !ok || got != tc.want {
			t.Errorf("%s = %v (present %v); want %v", tc.name, got, ok, tc.want)
		}
	}
	fail = true
	if got, _ := value(t, m, "warden_approvals_pending", map[string]string{}); got != -1 {
		t.Errorf("pending approvals with an unreadable store = %v; want -1", got)
	}
}
