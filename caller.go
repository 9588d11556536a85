package warden

import (
	"context"
	"slices"
)

// Caller is the authenticated principal on whose behalf a tool call runs.
// Transports establish it (local identity on stdio, a verified bearer token
// over HTTP) and put it in the context; nothing downstream invents one.
type Caller struct {
	// Subject identifies the principal (an email, a user id, a service name).
	Subject string `json:"subject"`
	// Issuer is the identity provider that vouched for Subject; empty for
	// the configured local identity.
	Issuer string `json:"issuer,omitempty"`
	// Email is the principal's email address, when the identity provider
	// asserts one.
	Email string `json:"email,omitempty"`
	// Groups are the groups the principal belongs to.
	Groups []string `json:"groups,omitempty"`
	// Method says how the caller was established: "local" or "oidc".
	Method string `json:"method"`
}

// InGroup reports whether the caller belongs to group.
func (c *Caller) InGroup(group string) bool {
	return c != nil && slices.Contains(c.Groups, group)
}

type callerKey struct{}

// WithCaller returns a context that carries c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller carried by ctx, or nil when there is none.
// A nil caller must be treated as unauthenticated, never as a default.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

type authFailureKey struct{}

// WithAuthFailure returns a context that carries why the caller could not
// be authenticated, so the refusal can say so.
func WithAuthFailure(ctx context.Context, e *Error) context.Context {
	return context.WithValue(ctx, authFailureKey{}, e)
}

// AuthFailureFrom returns the authentication failure carried by ctx, or nil.
func AuthFailureFrom(ctx context.Context) *Error {
	e, _ := ctx.Value(authFailureKey{}).(*Error)
	return e
}
