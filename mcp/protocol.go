package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"unicode"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Where mcp-go v1.2.1 departs from the MCP specification in a way a strict
// client or an attacker notices, warden corrects it here, around the
// library rather than inside it:
//
//   - A malformed request is answered with the Go decoder's message, which
//     names Go types and struct fields ("cannot unmarshal number into Go
//     struct field CallToolRequest.params.name of type string"). warden
//     decodes each request into the type mcp-go will use first, and refuses
//     a malformed one with a message in JSON terms.
//   - On stdio and SSE, requests other than ping are served before
//     initialize. warden refuses them until the session is initialized
//     (2026-07-28 requests stand alone and need no initialize).
//   - A streamable HTTP request that names no session is answered 404
//     (which tells a client its session expired) where the specification
//     asks for 400; a DELETE that names none is answered 200, and a GET
//     that names none opens a stream under a fresh id. warden answers all
//     three 400.

// requestTypes are the types mcp-go decodes each request warden serves
// into (server/request_handler.go). Methods of capabilities warden does
// not declare are refused by mcp-go before it decodes them.
var requestTypes = map[mcp.MCPMethod]func() any{
	mcp.MethodInitialize:          func() any { return new(mcp.InitializeRequest) },
	mcp.MethodPing:                func() any { return new(mcp.PingRequest) },
	mcp.MethodToolsList:           func() any { return new(mcp.ListToolsRequest) },
	mcp.MethodToolsCall:           func() any { return new(mcp.CallToolRequest) },
	mcp.MethodServerDiscover:      func() any { return new(mcp.DiscoverRequest) },
	mcp.MethodSubscriptionsListen: func() any { return new(mcp.SubscriptionsListenRequest) },
}

// checkRequest runs before mcp-go handles a request (its
// OnRequestInitialization hook); an error refuses the request with
// "invalid request" and the error's text.
func (s *Server) checkRequest(ctx context.Context, _ any, message any) error {
	raw, ok := message.(json.RawMessage)
	if !ok {
		return errors.New("invalid request: not a JSON-RPC message")
	}
	// A tools/call (the one request served per call) is decoded once, into
	// the type mcp-go will decode it into: that decode judges its shape and
	// gives its arguments and protocol era. A message naming tools/call is
	// refused on that decode's error exactly as below, since that is the
	// decode the rules below make too; anything else takes the path below.
	if bytes.Contains(raw, []byte(mcp.MethodToolsCall)) {
		var call mcp.CallToolRequest
		err := json.Unmarshal(raw, &call)
		if call.Method == string(mcp.MethodToolsCall) {
			if err != nil {
				return errors.New(decodeError(mcp.MethodToolsCall, err))
			}
			return checkCall(ctx, call.Params.RawArguments, call.Params.Meta)
		}
	}
	// One decode serves the method, the arguments' shape and the protocol
	// era; a message that does not fit it whole is judged as before, with
	// the era decoded on its own (isModern).
	var base struct {
		Method mcp.MCPMethod `json:"method"`
		Params struct {
			Arguments json.RawMessage `json:"arguments"`
			Meta      *mcp.Meta       `json:"_meta"`
		} `json:"params"`
	}
	baseErr := json.Unmarshal(raw, &base)
	if newReq, ok := requestTypes[base.Method]; ok {
		if err := json.Unmarshal(raw, newReq()); err != nil {
			return errors.New(decodeError(base.Method, err))
		}
	}
	if a := bytes.TrimSpace(base.Params.Arguments); base.Method == mcp.MethodToolsCall && len(a) > 0 && a[0] != '{' && !bytes.Equal(a, []byte("null")) {
		return fmt.Errorf("invalid %s request: params.arguments must be an object", base.Method)
	}
	modern := baseErr == nil && mcp.IsModernProtocol(base.Params.Meta.ProtocolVersion())
	if baseErr != nil {
		modern = isModern(raw)
	}
	return checkInitialized(ctx, base.Method, modern)
}

// checkCall judges a tools/call that decoded: its arguments must be an
// object (or absent, or null), and a session-era call needs an initialized
// session. A direct call (direct.go) is judged here too.
func checkCall(ctx context.Context, args json.RawMessage, meta *mcp.Meta) error {
	if a := bytes.TrimSpace(args); len(a) > 0 && a[0] != '{' && !bytes.Equal(a, []byte("null")) {
		return fmt.Errorf("invalid %s request: params.arguments must be an object", mcp.MethodToolsCall)
	}
	return checkInitialized(ctx, mcp.MethodToolsCall, mcp.IsModernProtocol(meta.ProtocolVersion()))
}

// checkInitialized refuses a session-era request other than initialize
// and ping on a stdio or SSE session that has not been initialized.
func checkInitialized(ctx context.Context, method mcp.MCPMethod, modern bool) error {
	if method == mcp.MethodInitialize || method == mcp.MethodPing || modern {
		return nil
	}
	switch transportFrom(ctx) {
	case "stdio", "sse":
		// Streamable HTTP sessions exist only once initialize made them.
		if cs := server.ClientSessionFromContext(ctx); cs != nil && !cs.Initialized() {
			return fmt.Errorf("%s before initialize: this session has not been initialized; send initialize first", clip(string(method), clipLen))
		}
	}
	return nil
}

// isModern is mcp-go's own test of a 2026-07-28 request (the protocol
// version in params._meta), so warden and the library agree on it.
func isModern(raw json.RawMessage) bool {
	var w struct {
		Params struct {
			Meta *mcp.Meta `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(raw, &w) != nil {
		return false
	}
	return mcp.IsModernProtocol(w.Params.Meta.ProtocolVersion())
}

// decodeError says what is wrong with a request in JSON terms: the field's
// JSON path and the kind of value it needs, never a Go type.
func decodeError(method mcp.MCPMethod, err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if path := jsonPath(te.Field); path != "" {
			return fmt.Sprintf("invalid %s request: %s must be %s, not %s", method, path, jsonKind(te.Type), jsonValue(te.Value))
		}
		return fmt.Sprintf("invalid %s request: expected %s, not %s", method, jsonKind(te.Type), jsonValue(te.Value))
	case errors.As(err, &se):
		return fmt.Sprintf("invalid %s request: not valid JSON", method)
	}
	return fmt.Sprintf("invalid %s request: its params do not have the shape the method requires", method)
}

// jsonPath drops the Go names of embedded structs from a decoder's field
// path ("PaginatedRequest.params.cursor" is "params.cursor"): JSON keys of
// MCP messages never start with an upper-case letter.
func jsonPath(field string) string {
	var keep []string
	for _, p := range strings.Split(field, ".") {
		if p == "" || unicode.IsUpper(rune(p[0])) {
			continue
		}
		keep = append(keep, p)
	}
	return strings.Join(keep, ".")
}

// jsonValue is the decoder's description of the value found ("number",
// "number -1", "array"), reduced to its JSON kind.
func jsonValue(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "bool":
		return "a boolean"
	case "number", "string", "array", "object":
		if kind == "array" || kind == "object" {
			return "an " + kind
		}
		return "a " + kind
	}
	return "this value"
}

func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another kind of value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}

// requireSession answers 400, as the specification asks, a streamable
// HTTP request that needs a session and names none.
func requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get(server.HeaderKeySessionID) != "":
			next.ServeHTTP(w, r)
		case (r.Method == http.MethodGet || r.Method == http.MethodDelete) && !mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)):
			// (mcp-go refuses both from 2026-07-28 clients itself.) A GET
			// without a session would open a stream under a fresh id
			// nobody can address.
			writeMissingSession(w)
		case r.Method == http.MethodPost:
			// Only mcp-go knows whether the message needed one (an
			// initialize or a 2026-07-28 request does not); it answers 404
			// when it did.
			next.ServeHTTP(&missingSession{ResponseWriter: w}, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func writeMissingSession(w http.ResponseWriter) {
	h := w.Header()
	h.Del("X-Content-Type-Options")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(mcp.JSONRPCError{
		JSONRPC: mcp.JSONRPC_VERSION,
		Error: mcp.NewJSONRPCErrorDetails(mcp.INVALID_REQUEST,
			"missing Mcp-Session-Id header: send initialize first, then name the session it returned in every request", nil),
	})
}

// missingSession turns mcp-go's 404 for a request without a session into
// 400.
type missingSession struct {
	http.ResponseWriter
	replaced bool
}

func (w *missingSession) WriteHeader(status int) {
	if status == http.StatusNotFound && !w.replaced {
		w.replaced = true
		writeMissingSession(w.ResponseWriter)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *missingSession) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil // mcp-go's text for the 404
	}
	return w.ResponseWriter.Write(p)
}

func (w *missingSession) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *missingSession) Unwrap() http.ResponseWriter { return w.ResponseWriter }
