package warden

import (
	"errors"
	"fmt"
)

// Code classifies an Error for the outside world. Transports translate codes
// into MCP results in exactly one place (package mcp).
type Code string

const (
	// Denied: policy or a safety rule refused the call. The agent can act on
	// the message (use another table, drop the write, ask for a grant).
	Denied Code = "denied"
	// NeedsApproval: the call is allowed only after a human approves it.
	NeedsApproval Code = "needs_approval"
	// Invalid: the arguments are malformed or name something that does not
	// exist; the agent should fix the request.
	Invalid Code = "invalid"
	// Unauthenticated: there is no verified caller.
	Unauthenticated Code = "unauthenticated"
	// Unavailable: a dependency (backend, recorder) cannot serve the call
	// now; retrying later may work.
	Unavailable Code = "unavailable"
	// Internal: a bug or an unexpected failure. Details never reach the
	// agent, only the call id.
	Internal Code = "internal"
)

// Error is warden's one coded error type. Message is written for the agent
// and must never contain a credential, DSN or stack trace; Err carries the
// underlying cause for the recording and the operator's log only.
type Error struct {
	Code    Code
	Message string
	// Rule names the rule that decided a denial (for example
	// "roles.analyst.grants" or "sql.statement").
	Rule string
	// Allowed lists what the caller may do instead, for denials.
	Allowed []string
	// Pending describes the approval a NeedsApproval error waits for.
	Pending *Pending
	// Err is the internal cause; never shown to the agent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Code == Internal {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error with code and message whose cause is err.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// AsError returns err as an *Error. Errors that are not already coded are
// wrapped as Internal, so an unexpected failure can never be shown raw.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}

// ErrorCode returns the code of err, or "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}
