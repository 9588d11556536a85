package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// On stdio, warden serves an ordinary tools/call itself instead of through
// MCPServer.HandleMessage, which decodes the request four more times (for
// its method and id, in warden's checkRequest hook, for the protocol era,
// for trace context, then as a CallToolRequest, its _meta into a map every
// time) before the tool's handler runs. Here it is decoded once, and the
// handler is called with what HandleMessage would have given it.
//
// Only a request whose whole path through mcp-go v1.2.1 is reproduced here
// is served directly; callTool reports false for anything else, before
// anything has happened, and the request goes to HandleMessage as before.
// What a direct call does, in HandleMessage's order, given what New
// configures (one OnRequestInitialization hook, no other request hooks, a
// tool filter, the recovery middleware and nothing else, no tracer, meta
// propagator, request logger, schema validation or task tools) and what
// serveStdio provides (its own session, no HTTP headers):
//
//   - the message must be a JSON-RPC 2.0 request (an id, no result) for
//     tools/call that decodes whole into the types mcp-go decodes it into;
//   - checkRequest's verdict on it must be yes (a refusal falls back: mcp-go
//     answers it);
//   - a 2026-07-28 request's _meta must carry client capabilities and a
//     version mcp-go supports; its client info and capabilities are copied
//     onto the session, which counts as initialized;
//   - the tool must be one of warden's and visible to the caller (the tool
//     filter); the request may not be task-augmented; the session offers
//     no session tools;
//   - the handler runs with the session, the request's protocol info and a
//     cancel that notifications/cancelled reaches (stdioConn.cancel), under
//     the same panic recovery mcp-go applies;
//   - an input_required result is resolved for a client before 2026-07-28
//     with server-initiated requests, the handler called again with the
//     answers, as mcp-go does; a 2026-07-28 client gets it as it is;
//   - an error from the handler is answered as mcp-go answers it (-32042
//     for a URL elicitation before 2026-07-28, else an internal error with
//     its text); a 2026-07-28 result is stamped with resultType and the
//     server's identity.
//
// TestStdioAnswersAsMCPGo compares the bytes of both paths over the cases.

// directCall is a tools/call decoded once: the fields mcp-go's
// HandleMessage reads (jsonrpc, id, result) and those its CallToolParams
// decoder reads, with the same Go types, so that this decode fails
// whenever one of mcp-go's would.
type directCall struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      any             `json:"id"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result"`
	Params  struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Meta      *mcp.Meta       `json:"_meta"`
		Task      *mcp.TaskParams `json:"task"`
		mcp.MultiRoundTripParams
	} `json:"params"`
}

// callTool serves msg, a tools/call on a stdio session, without
// HandleMessage, and reports whether it did; when it did not, nothing has
// happened yet. inflight holds the cancels of the calls being served, keyed
// as mcp-go keys them.
func (s *Server) callTool(ctx context.Context, msg json.RawMessage, inflight *sync.Map) (mcp.JSONRPCMessage, bool) {
	var m directCall
	if json.Unmarshal(msg, &m) != nil || m.JSONRPC != mcp.JSONRPC_VERSION || m.ID == nil || len(m.Result) > 0 ||
		m.Method != string(mcp.MethodToolsCall) || m.Params.Task != nil {
		return nil, false
	}
	handler, ok := s.handlers[m.Params.Name]
	if !ok {
		return nil, false
	}
	meta := m.Params.Meta
	if checkCall(ctx, m.Params.Arguments, meta) != nil {
		return nil, false
	}
	version := meta.ProtocolVersion()
	info := &server.RequestProtocolInfo{ProtocolVersion: version}
	if mcp.IsModernProtocol(version) {
		info = &server.RequestProtocolInfo{Modern: true, ProtocolVersion: version,
			ClientInfo: meta.ClientInfo(), LogLevel: meta.LogLevel(), ClientCapabilities: meta.ClientCapabilities()}
		if info.ClientCapabilities == nil || !mcp.IsValidProtocolVersion(version) {
			return nil, false
		}
	}
	cs := server.ClientSessionFromContext(ctx)
	if _, ok := cs.(server.SessionWithTools); ok || cs == nil {
		return nil, false
	}
	if len(s.filterTools(ctx, []mcp.Tool{{Name: m.Params.Name}})) != 1 {
		return nil, false // mcp-go answers that the tool was not found
	}

	// From here on the request is served, as HandleMessage would.
	if info.Modern {
		if ci, ok := cs.(server.SessionWithClientInfo); ok {
			if info.ClientInfo != nil {
				ci.SetClientInfo(*info.ClientInfo)
			}
			ci.SetClientCapabilities(*info.ClientCapabilities)
		}
		if !cs.Initialized() {
			cs.Initialize()
		}
	}
	ctx = server.WithRequestProtocolInfo(ctx, info)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := inflightKey(m.ID)
	inflight.Store(key, cancel)
	defer inflight.Delete(key)

	req := mcp.CallToolRequest{Request: mcp.Request{Method: m.Method}}
	req.Params.Name = m.Params.Name
	req.Params.Meta = meta
	req.Params.MultiRoundTripParams = m.Params.MultiRoundTripParams
	if len(m.Params.Arguments) > 0 {
		// The handler reads the raw arguments only; mcp-go also decodes
		// them into Arguments, which cannot fail for a message that parsed.
		req.Params.RawArguments = m.Params.Arguments
	}
	call := recoverTool(handler)
	res, err := call(ctx, req)
	if err == nil && !mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
		res, err = s.askOlderClient(ctx, req, res, call)
	}
	if err != nil {
		return handlerError(ctx, m.ID, err), true
	}
	if res == nil {
		return mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(m.ID),
			Error: mcp.NewJSONRPCErrorDetails(mcp.INTERNAL_ERROR, fmt.Sprintf("tool '%s' handler returned no result", m.Params.Name), nil)}, true
	}
	if info.Modern {
		if res.GetResultType() == "" {
			res.SetResultType(mcp.ResultTypeComplete)
		}
		if rm := res.EnsureResultMeta(); rm.ServerInfo() == nil {
			rm.SetServerInfo(s.implementation)
		}
	}
	return mcp.NewJSONRPCResultResponse(mcp.NewRequestId(m.ID), res), true
}

// maxInputRoundTrips is how often mcp-go lets a handler ask a client before
// 2026-07-28 for input during one call.
const maxInputRoundTrips = 10

// askOlderClient resolves an input_required result for a client before
// 2026-07-28, which cannot take one: the questions are put to it as
// server-initiated requests and the handler is called again with the
// answers, until it returns a final result (mcp-go's multi round-trip
// bridge, with its errors).
func (s *Server) askOlderClient(ctx context.Context, req mcp.CallToolRequest, res *mcp.CallToolResult, call server.ToolHandlerFunc) (*mcp.CallToolResult, error) {
	for attempt := 0; res.NeedsInput(); attempt++ {
		if len(res.InputRequests) == 0 {
			return nil, fmt.Errorf("multi round-trip: %w", server.ErrLoadShedding)
		}
		if attempt >= maxInputRoundTrips {
			return nil, fmt.Errorf("multi round-trip: handler asked for input more than %d times", maxInputRoundTrips)
		}
		answers := make(mcp.InputResponses, len(res.InputRequests))
		for id, q := range res.InputRequests {
			a, err := s.ask(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("multi round-trip: %w", fmt.Errorf("fulfilling input request %q: %w", id, err))
			}
			answers[id] = a
		}
		retry := req
		retry.Params.MultiRoundTripParams = mcp.MultiRoundTripParams{InputResponses: answers, RequestState: res.RequestState}
		var err error
		if res, err = call(ctx, retry); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ask puts one input request to the client as an elicitation/create
// request. warden's handlers ask for nothing else (interaction.go,
// errors.go: a confirmation); a request of another kind fails the call
// rather than being put to the client in some other form.
func (s *Server) ask(ctx context.Context, q mcp.InputRequest) (mcp.InputResponse, error) {
	if q.Method != mcp.MethodElicitationCreate {
		return mcp.InputResponse{}, fmt.Errorf("unsupported input request method %q", q.Method)
	}
	if q.Elicitation == nil {
		return mcp.InputResponse{}, errors.New("elicitation input request has no params")
	}
	r, err := s.mcp.RequestElicitation(ctx, mcp.ElicitationRequest{
		Request: mcp.Request{Method: string(mcp.MethodElicitationCreate)}, Params: *q.Elicitation})
	if err != nil {
		return mcp.InputResponse{}, err
	}
	if r == nil {
		return mcp.InputResponse{}, errors.New("session returned no elicitation result")
	}
	return mcp.NewElicitationInputResponse(*r), nil
}

// handlerError answers a handler's error as mcp-go does: a URL elicitation
// the user must complete is -32042 with the elicitations for a client
// before 2026-07-28; anything else is an internal error with its text.
func handlerError(ctx context.Context, id any, err error) mcp.JSONRPCMessage {
	code, data := mcp.INTERNAL_ERROR, any(nil)
	if v, ok := urlElicitation(err); ok && !mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
		d := v.JSONRPCError().Error
		code, data = d.Code, d.Data
	}
	return mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Error: mcp.NewJSONRPCErrorDetails(code, err.Error(), data)}
}

// urlElicitation finds a URLElicitationRequiredError in err, as a value or
// a pointer.
func urlElicitation(err error) (mcp.URLElicitationRequiredError, bool) {
	var v mcp.URLElicitationRequiredError
	if errors.As(err, &v) {
		return v, true
	}
	var p *mcp.URLElicitationRequiredError
	if errors.As(err, &p) && p != nil {
		return *p, true
	}
	return v, false
}

// recoverTool turns a panic in a tool handler into an error. It is the
// one tool middleware New installs, so a direct call runs it too.
func recoverTool(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		defer func() {
			if r := recover(); r != nil {
				res, err = nil, fmt.Errorf("panic recovered in %s tool handler: %v", req.Params.Name, r)
			}
		}()
		return next(ctx, req)
	}
}

// inflightKey keys a request's cancel by its id as decoded into an
// interface value, as mcp-go keys its own within a session.
func inflightKey(id any) string { return fmt.Sprintf("%v", id) }

// cancelledRequest returns the key of the request a notifications/cancelled
// message cancels, judged as HandleMessage judges it, or "".
func cancelledRequest(msg json.RawMessage) string {
	if !bytes.Contains(msg, []byte(mcp.MethodNotificationCancelled)) {
		return ""
	}
	var base struct {
		JSONRPC string        `json:"jsonrpc"`
		Method  mcp.MCPMethod `json:"method"`
		ID      any           `json:"id,omitempty"`
		Result  any           `json:"result,omitempty"`
	}
	if json.Unmarshal(msg, &base) != nil || base.JSONRPC != mcp.JSONRPC_VERSION || base.ID != nil {
		return ""
	}
	var n mcp.JSONRPCNotification
	if json.Unmarshal(msg, &n) != nil || n.Method != string(mcp.MethodNotificationCancelled) {
		return ""
	}
	id, ok := n.Params.AdditionalFields["requestId"]
	if !ok {
		return ""
	}
	return inflightKey(id)
}
