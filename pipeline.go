package warden

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"
)

// Pipeline runs every tool call through the same stages, in this order:
// authenticate, authorize, classify, flows, approve, execute, mask,
// remember (flows), record.
// Transports decode a request, call Run, and encode what it returns; they
// decide nothing.
type Pipeline struct {
	Tools    *Registry
	Policy   Authorizer
	Recorder Recorder
	// Approvals holds calls that approval rules cover until a human
	// approves them; nil when no rules are configured.
	Approvals Approver
	// Flows keeps data read from one backend from leaving through
	// another, and enforces read budgets; nil when no flow rules or
	// budgets are configured.
	Flows FlowGuard
	// Scrubber runs the value detectors; nil when none are configured.
	Scrubber Scrubber
	Clock    Clock
	NewID    func() string
	Log      *slog.Logger
	// Observer is told as each stage begins and ends (metrics, traces,
	// logs); nil observes nothing.
	Observer Observer
}

// Run performs one tool call. It always returns the Call as recorded; the
// error, when not nil, is an *Error that the transport shows the agent.
func (p *Pipeline) Run(ctx context.Context, tool string, args json.RawMessage) (c *Call, err error) {
	// The tool plans from the arguments as sent; the record keeps them
	// with detected values masked.
	c = &Call{ID: p.NewID(), Tool: tool, Args: p.scrubArgs(args), StartedAt: p.Clock()}
	if s := SessionFrom(ctx); s != nil {
		c.SessionID = s.ID
	}
	// Recording runs last and always: denied and failed calls are recorded
	// too, and a result that cannot be recorded is not returned. A panic
	// anywhere in the call is a failure like any other: recorded as one
	// (never as ok, which is what recording it with err still nil would
	// say), answered as one, and warden keeps serving.
	ctx, observed := p.observe(ctx, c, StageCall)
	defer func() {
		if r := recover(); r != nil {
			err = p.recovered(c, r)
		}
		err = p.record(ctx, c, err)
		observed(err)
	}()

	// Authenticate: the transport must have established a caller.
	c.Caller = CallerFrom(ctx)
	if c.Caller == nil {
		if e := AuthFailureFrom(ctx); e != nil {
			return c, p.deny(c, &Error{Code: Unauthenticated, Rule: "identity", Message: e.Message, Err: e})
		}
		return c, p.deny(c, &Error{Code: Unauthenticated, Rule: "identity",
			Message: "no authenticated caller: this connection has no identity, so every call is refused"})
	}
	t, ok := p.Tools.Lookup(tool)
	if !ok {
		return c, Errorf(Invalid, "unknown tool %q", tool)
	}

	// Plan: parse the request into the action policy judges.
	sctx, end := p.observe(ctx, c, StagePlan)
	action, err := t.Plan(sctx, args)
	end(err)
	if err != nil {
		if e := AsError(err); e.Code == Denied {
			return c, p.deny(c, e)
		}
		return c, err
	}
	action.CallID = c.ID
	c.Action = p.scrubAction(c, action)

	// Authorize: deny by default, every operation must be granted.
	_, end = p.observe(ctx, c, StageAuthorize)
	c.Decision = p.Policy.Authorize(c.Caller, action)
	err = c.Decision.Err()
	end(err)
	if err != nil {
		return c, err
	}

	// Classify.
	c.Risk = Classify(action)

	if p.Approvals != nil || p.Flows != nil {
		if c.Hash, err = CallHash(tool, args); err != nil {
			return c, Errorf(Invalid, "invalid arguments: not a JSON object")
		}
	}

	// Flows: data the caller read from a flow rule's source does not
	// leave through its sink, and reads stay within budgets.
	if p.Flows != nil {
		if err := p.Flows.Check(ctx, c, t, args); err != nil {
			return c, err
		}
	}

	// Approve: a rule may hold the call until a human approves exactly
	// this call. Only allowed calls get here, so approval never widens a
	// grant.
	if p.Approvals != nil {
		sctx, end := p.observe(ctx, c, StageApprove)
		err := p.Approvals.Approve(sctx, c, t)
		end(err)
		if err != nil {
			return c, err
		}
	}

	// No action reaches a backend unrecorded.
	sctx, end = p.observe(context.WithoutCancel(ctx), c, StageRecordIntent)
	err = p.Recorder.StartCall(sctx, c)
	end(err)
	if err != nil {
		return c, Wrap(Unavailable, err, "the call was refused because it could not be recorded")
	}

	// Execute with warden's credentials.
	sctx, end = p.observe(ctx, c, StageExecute)
	res, err := t.Execute(sctx, action)
	end(err)
	if err != nil {
		return c, err
	}
	switch {
	case res.JSON == nil:
		if res.JSON, err = encodeResult(res.Structured); err != nil {
			return c, Wrap(Internal, err, "the result could not be encoded")
		}
	case p.Scrubber == nil && !res.JSONValid && !json.Valid(res.JSON):
		// (ScrubJSON below checks it otherwise.) The recording splices
		// these bytes in as they are: they must be JSON.
		return c, Errorf(Internal, "the tool returned a result that is not JSON")
	}

	// Mask: value detectors over every string of the result, before it
	// is recorded or returned. (Column rules were applied by the tool,
	// from the provenance it planned before executing.)
	if p.Scrubber != nil {
		var fired []string
		_, end = p.observe(ctx, c, StageMask)
		res.JSON, fired, err = p.Scrubber.ScrubJSON(res.JSON)
		end(err)
		if err != nil {
			return c, Wrap(Internal, err, "the result could not be scanned for sensitive values")
		}
		c.Detected = appendNew(c.Detected, fired...)
	}
	c.Result = res

	// Remember what the caller received, as returned (after masking).
	if p.Flows != nil {
		if err := p.Flows.Remember(ctx, c); err != nil {
			c.Result = nil
			return c, err
		}
	}
	return c, nil
}

// Refuse records a request that a transport refused before it reached the
// pipeline (no valid token, another subject's session), and returns the
// recorded call. tool names what was asked for; ctx may carry a caller.
func (p *Pipeline) Refuse(ctx context.Context, tool string, args json.RawMessage, e *Error) *Call {
	c := &Call{ID: p.NewID(), Tool: tool, Args: p.scrubArgs(args), StartedAt: p.Clock(), Caller: CallerFrom(ctx)}
	if s := SessionFrom(ctx); s != nil {
		c.SessionID = s.ID
	}
	_ = p.record(ctx, c, p.deny(c, e))
	return c
}

// scrubArgs returns the arguments as they are recorded: every detected
// value masked. Arguments that are not JSON are recorded as a scrubbed
// JSON string.
func (p *Pipeline) scrubArgs(args json.RawMessage) json.RawMessage {
	if p.Scrubber == nil || len(args) == 0 {
		return args
	}
	if out, _, err := p.Scrubber.ScrubJSON(args); err == nil {
		return out
	}
	s, _ := p.Scrubber.Scrub(string(args))
	b, _ := json.Marshal(s)
	return b
}

// scrubAction returns the action as it is recorded: statements and purposes
// can carry sensitive literals. The tool executes from its own plan, so
// the original is untouched.
func (p *Pipeline) scrubAction(c *Call, a *Action) *Action {
	if p.Scrubber == nil {
		return a
	}
	r := *a
	var f1, f2 []string
	r.Statement, f1 = p.Scrubber.Scrub(a.Statement)
	r.Purpose, f2 = p.Scrubber.Scrub(a.Purpose)
	c.Detected = appendNew(c.Detected, append(f1, f2...)...)
	if len(a.Params) > 0 {
		r.Params = make([]string, len(a.Params))
		for i, v := range a.Params {
			var fired []string
			r.Params[i], fired = p.Scrubber.Scrub(v)
			c.Detected = appendNew(c.Detected, fired...)
		}
	}
	return &r
}

func appendNew(list []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

// encodeResult encodes a result once, without HTML escaping so statements
// and values read as written.
func encodeResult(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// recovered turns a panic into an Internal error. The agent gets the
// short message and the call id; the recording gets the panic's value
// (scrubbed by the detectors as every error is); the log gets the stack.
// A result the tool had produced is dropped: the call did not finish.
func (p *Pipeline) recovered(c *Call, r any) error {
	c.Result = nil
	p.log().Error("panic in a tool call", "call_id", c.ID, "tool", c.Tool, "stack", string(debug.Stack()))
	return &Error{Code: Internal, Message: "warden failed while handling this call; it has been recorded (call id " + c.ID + ")",
		Err: fmt.Errorf("panic: %v", r)}
}

// deny turns a refusal found before policy ran into a recorded decision.
func (p *Pipeline) deny(c *Call, e *Error) error {
	c.Decision = &Decision{Effect: Deny, Rule: e.Rule, Reasons: []string{e.Message}, Allowed: e.Allowed}
	return e
}

// record finishes the call's record. It returns the error the agent sees:
// err itself, or a refusal if the outcome could not be made durable.
func (p *Pipeline) record(ctx context.Context, c *Call, err error) error {
	c.Err = AsError(err)
	c.EndedAt = p.Clock()
	if p.Scrubber != nil {
		// Error messages can quote values (a failed cast of a card
		// number); statements and purposes can contain them as literals.
		if c.Err != nil {
			e := *c.Err
			var fired []string
			e.Message, fired = p.Scrubber.Scrub(e.Message)
			c.Detected = appendNew(c.Detected, fired...)
			if e.Err != nil {
				// The cause is recorded; it must not carry raw values either.
				detail, fired := p.Scrubber.Scrub(e.Err.Error())
				e.Err, c.Detected = errors.New(detail), appendNew(c.Detected, fired...)
			}
			c.Err = &e
		}
	}
	if c.Action != nil && c.Risk == "" {
		// Denied calls are classified too, so the recording shows what
		// they would have done.
		c.Risk = Classify(c.Action)
	}
	if c.Decision == nil && c.Err != nil && c.Err.Code == Invalid {
		c.Decision = &Decision{Effect: Deny, Rule: "arguments", Reasons: []string{c.Err.Message}}
	}
	rctx, end := p.observe(context.WithoutCancel(ctx), c, StageRecord)
	rerr := p.Recorder.FinishCall(rctx, c)
	end(rerr)
	if rerr != nil {
		p.log().Error("recording failed", "call", c.ID, "err", rerr)
		if c.Err == nil {
			c.Result = nil
			c.Err = Wrap(Unavailable, rerr, "the call ran but its result could not be recorded, so it is withheld")
		}
	}
	if c.Err == nil {
		return nil
	}
	if c.Err.Code == Internal {
		p.log().Error("call failed", "call", c.ID, "tool", c.Tool, "err", c.Err.Err)
	}
	return c.Err
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// Elapsed is how long the call took.
func (c *Call) Elapsed() time.Duration {
	if c.EndedAt.IsZero() {
		return 0
	}
	return c.EndedAt.Sub(c.StartedAt)
}
