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

// Scrubber is the value-detector stage: the backstop that masks sensitive
// values (card numbers, emails, secrets) wherever they appear in a result,
// an error message or the arguments as recorded.
type Scrubber interface {
	// Scrub returns s with every detected value replaced, and the names
	// of the detectors that fired.
	Scrub(s string) (string, []string)
	// ScrubJSON does the same for every string in a JSON document. It
	// returns an error when raw is not JSON.
	ScrubJSON(raw []byte) ([]byte, []string, error)
}

// Clock tells the time; tests inject a fixed one.
type Clock func() time.Time
