package warden

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// ToolSpec is what a tool shows to clients.
type ToolSpec struct {
	Name        string
	Title       string
	Description string
	// BackendKind is the kind of backend that serves this tool
	// ("postgres"); a caller sees the tool only if it holds a grant on at
	// least one backend of this kind.
	BackendKind string
	// BackendArg is the argument that names the backend; its schema enum
	// is filled per caller with the backends that caller may use.
	BackendArg string
	// InputSchema is the JSON Schema of the arguments, without the enum.
	InputSchema map[string]any
	// ReadOnly is a hint for clients; policy never reads it.
	ReadOnly bool
}

// Tool is one typed MCP tool. Plan turns raw arguments into an Action that
// policy can judge, without touching any backend's data; Execute runs an
// Action that policy has allowed.
type Tool interface {
	Spec() ToolSpec
	// Plan strictly decodes args and analyses what the call would do.
	// It returns Invalid for malformed arguments or an unknown backend,
	// Denied for requests that are refused whatever the grants (a second
	// SQL statement, transaction control), Unavailable when it needs a
	// backend that cannot be reached.
	Plan(ctx context.Context, args json.RawMessage) (*Action, error)
	// Execute performs a planned, allowed action with warden's own
	// credentials. It returns Unavailable when the backend cannot be
	// reached, Invalid when the backend rejects the request (syntax, type
	// or constraint errors, with the backend's message), Denied when the
	// backend refuses it, and Internal otherwise.
	Execute(ctx context.Context, a *Action) (*Result, error)
}

// Result is what a tool returns for an executed action.
type Result struct {
	// Structured is the structured content returned to the client and
	// recorded; it must encode to a JSON object.
	Structured any
	// Count is the number of rows or objects returned, for the recording.
	Count int64
	// Truncated reports that the result was cut at a configured cap.
	Truncated bool
	// JSON is Structured encoded once, by the pipeline or, for large
	// results, by the tool itself (then Structured may be nil); the
	// pipeline checks it is valid JSON. The recording and the response use
	// these exact bytes, so what is recorded is what the agent received.
	JSON json.RawMessage
	// JSONValid is set by a tool whose encoder writes valid JSON by
	// construction, a property its tests check over every encoder and
	// malformed input: the pipeline then skips its own check (json.Valid
	// over the whole result). The value detectors parse the result
	// anyway when they run.
	JSONValid bool
}

// Registry is the fixed, sorted set of tools a server offers.
type Registry struct {
	tools map[string]Tool
	names []string
}

// NewRegistry builds a registry; a duplicate name is an error.
func NewRegistry(tools ...Tool) (*Registry, error) {
	r := &Registry{tools: make(map[string]Tool, len(tools))}
	for _, t := range tools {
		name := t.Spec().Name
		if _, dup := r.tools[name]; dup {
			return nil, fmt.Errorf("tool %q registered twice", name)
		}
		r.tools[name] = t
		r.names = append(r.names, name)
	}
	sort.Strings(r.names)
	return r, nil
}

// Lookup returns the tool called name.
func (r *Registry) Lookup(name string) (Tool, bool) {
	t, ok := r.tools[name]
	return t, ok
}

// Tools returns every tool, sorted by name.
func (r *Registry) Tools() []Tool {
	out := make([]Tool, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.tools[n])
	}
	return out
}
