package warden

import (
	"context"
	"time"
)

// Authorizer is the policy stage.
type Authorizer interface {
	// Authorize decides whether caller may perform action. It never
	// returns an error: when it cannot decide, the decision is a denial.
	Authorize(caller *Caller, action *Action) *Decision
	// Backends returns, sorted, the backends of the given kind on which
	// caller holds at least one grant.
	Backends(caller *Caller, kind string) []string
}

// Recorder is the recording stage. Both methods must make the record
// durable before returning; an error means the record was not written.
type Recorder interface {
	// StartCall records that an allowed call is about to run. When it
	// fails the call must not run.
	StartCall(ctx context.Context, c *Call) error
	// FinishCall records a call's outcome: denied, failed or succeeded.
	FinishCall(ctx context.Context, c *Call) error
}

// Clock tells the time; tests inject a fixed one.
type Clock func() time.Time
