package warden

import (
	"context"
	"log/slog"
)

// Stage names a step of the pipeline as observers see it.
type Stage string

// The stages an Observer is told about, in the order a call passes them.
// StageCall spans the whole call, from the first stage to the recorded
// outcome; the others nest inside it.
const (
	StageCall      Stage = "call"
	StagePlan      Stage = "plan"
	StageAuthorize Stage = "authorize"
	// StageApprove is the approval wait: the approval rules' check and,
	// when a rule holds the call, the time until a human decides.
	StageApprove Stage = "approve"
	// StageRecordIntent is the intent record, durable before the
	// backend sees the call.
	StageRecordIntent Stage = "record_intent"
	StageExecute      Stage = "execute"
	StageMask         Stage = "mask"
	// StageRecord is the outcome record, durable before the result
	// leaves.
	StageRecord Stage = "record"
)

// Stages lists every Stage, in order: the closed set of stage labels.
var Stages = []Stage{StageCall, StagePlan, StageAuthorize, StageApprove, StageRecordIntent, StageExecute, StageMask, StageRecord}

// Observer watches calls pass through the pipeline: metrics, traces and
// logs are observers. It reads the Call and never changes it, and it must
// not block: it runs inside every call.
//
// An observer sees arguments and results (they are on the Call), so the
// contract is what it may export: only values from closed sets (the tool
// and backend names warden was configured with, stage names, error codes,
// policy effects and rule names), never an argument, a result, an error
// message or anything else a caller or a backend chose.
type Observer interface {
	// Observe is called as stage s of c begins. The context it returns
	// is the stage's (it may carry a span); the function it returns is
	// called once when the stage ends, with the stage's error (nil when
	// it succeeded). When StageCall ends, c holds the call's outcome as
	// recorded.
	Observe(ctx context.Context, c *Call, s Stage) (context.Context, func(error))
}

// ObserverFunc is a function that is an Observer.
type ObserverFunc func(ctx context.Context, c *Call, s Stage) (context.Context, func(error))

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, c *Call, s Stage) (context.Context, func(error)) {
	return f(ctx, c, s)
}

// Observers is an Observer that tells each of its observers in turn; the
// stage ends in the reverse order.
type Observers []Observer

// Observe implements Observer.
func (os Observers) Observe(ctx context.Context, c *Call, s Stage) (context.Context, func(error)) {
	ends := make([]func(error), len(os))
	for i, o := range os {
		ctx, ends[i] = o.Observe(ctx, c, s)
	}
	return ctx, func(err error) {
		for i := len(ends) - 1; i >= 0; i-- {
			ends[i](err)
		}
	}
}

// observe tells the pipeline's observer that stage s of c begins.
func (p *Pipeline) observe(ctx context.Context, c *Call, s Stage) (context.Context, func(error)) {
	if p.Observer == nil {
		return ctx, func(error) {}
	}
	return p.Observer.Observe(ctx, c, s)
}

// Labels turns a call into values from closed sets, the only values an
// observer exports: a tool or backend name warden was not configured with
// is something a caller sent, and becomes "unknown".
type Labels struct {
	tools, backends map[string]bool
}

// NewLabels returns the labels of a warden with these tools and backends.
func NewLabels(tools, backends []string) *Labels {
	l := &Labels{tools: map[string]bool{}, backends: map[string]bool{}}
	for _, t := range tools {
		l.tools[t] = true
	}
	for _, b := range backends {
		l.backends[b] = true
	}
	return l
}

// Tool is the call's tool, or "unknown".
func (l *Labels) Tool(c *Call) string {
	if l.tools[c.Tool] {
		return c.Tool
	}
	return "unknown"
}

// Backend is the backend the call named, "none" before it was planned,
// or "unknown".
func (l *Labels) Backend(c *Call) string {
	switch {
	case c.Action == nil || c.Action.Backend == "":
		return "none"
	case l.backends[c.Action.Backend]:
		return c.Action.Backend
	}
	return "unknown"
}

// Decision is the policy's effect (allow, deny, needs_approval), or "none"
// when the call ended before a decision.
func (l *Labels) Decision(c *Call) string {
	if c.Decision == nil {
		return "none"
	}
	switch c.Decision.Effect {
	case Allow, Deny, RequireReview:
		return string(c.Decision.Effect)
	}
	return "unknown"
}

// Outcome is "ok" or the code of the call's error.
func (l *Labels) Outcome(c *Call) string {
	if c.Err == nil {
		return "ok"
	}
	switch c.Err.Code {
	case Denied, NeedsApproval, Invalid, Unauthenticated, Unavailable, Internal:
		return string(c.Err.Code)
	}
	return string(Internal)
}

// Outcomes lists every value Outcome returns.
var Outcomes = []string{"ok", string(Denied), string(NeedsApproval), string(Invalid), string(Unauthenticated), string(Unavailable), string(Internal)}

// LogCalls returns an Observer that logs each call's outcome as one
// structured line: at info level for refusals and failures, at debug for
// calls that succeeded. The line carries identifiers and closed-set values
// only (l): never arguments, results, statements or error messages, which
// can quote what a caller or a backend sent (the recording keeps those,
// masked).
func LogCalls(log *slog.Logger, l *Labels) Observer {
	return ObserverFunc(func(ctx context.Context, c *Call, s Stage) (context.Context, func(error)) {
		if s != StageCall {
			return ctx, func(error) {}
		}
		return ctx, func(error) {
			level := slog.LevelInfo
			if c.Err == nil {
				level = slog.LevelDebug
			}
			if !log.Enabled(ctx, level) {
				return
			}
			attrs := make([]slog.Attr, 0, 10)
			attrs = append(attrs, slog.String("call_id", c.ID), slog.String("tool", l.Tool(c)), slog.String("backend", l.Backend(c)))
			if c.SessionID != "" {
				attrs = append(attrs, slog.String("session_id", c.SessionID))
			}
			if c.Caller != nil {
				attrs = append(attrs, slog.String("subject", c.Caller.Subject))
			}
			attrs = append(attrs, slog.String("decision", l.Decision(c)))
			if c.Decision != nil && c.Decision.Rule != "" {
				attrs = append(attrs, slog.String("rule", c.Decision.Rule))
			}
			if c.Risk == RiskRead || c.Risk == RiskWrite {
				attrs = append(attrs, slog.String("risk", string(c.Risk)))
			}
			attrs = append(attrs, slog.String("outcome", l.Outcome(c)), slog.Float64("duration_ms", float64(c.Elapsed().Microseconds())/1000))
			log.LogAttrs(ctx, level, "call", attrs...)
		}
	})
}
