package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// On stdio, and for a 2026-07-28 client over streamable HTTP, warden
// serves an ordinary tools/call itself instead of through
// MCPServer.HandleMessage, which decodes the request four more times (for
// its method and id, in warden's checkRequest hook, for the protocol era,
// for trace context, then as a CallToolRequest, its _meta into a map every
// time) before the tool's handler runs; over HTTP mcp-go's transport reads
// it twice more before that (handlePost: for its id and method, for the
// era) and once after (the Mcp-Method and Mcp-Name headers against the
// body). Here it is decoded once (decodeCall), and the handler is called
// with what HandleMessage would have given it (serveCall, which both
// transports share).
//
// Only a request whose whole path through mcp-go v1.2.1 is reproduced here
// is served directly; callTool and serveHTTPCall report false for anything
// else, before anything has happened, and the request goes to
// HandleMessage (over HTTP, to mcp-go's transport) as before. What a
// direct call does, in HandleMessage's order, given what New configures
// (one OnRequestInitialization hook, no other request hooks, a tool
// filter, the recovery middleware and nothing else, no tracer, meta
// propagator, request logger, schema validation or task tools) and what
// the transport provides (serveStdio: its own session, no HTTP headers;
// serveHTTPCall: what mcp-go's transport would have checked and provided,
// see there):
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
//     cancel that notifications/cancelled reaches (stdioConn.dispatch,
//     directHTTP) — over HTTP only the caller's own (cancel.go) — under the
//     same panic recovery mcp-go applies;
//   - an input_required result is resolved for a client before 2026-07-28
//     with server-initiated requests, the handler called again with the
//     answers, as mcp-go does; a 2026-07-28 client gets it as it is;
//   - an error from the handler is answered as mcp-go answers it (-32042
//     for a URL elicitation before 2026-07-28, else an internal error with
//     its text); a 2026-07-28 result is stamped with resultType and the
//     server's identity.
//
// TestStdioAnswersAsMCPGo and TestHTTPDirectAnswersAsMCPGo compare the
// bytes of both paths over the cases.

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

// decodeCall decodes msg once, as a tools/call request that may be served
// directly: a JSON-RPC 2.0 request (an id, no result) for tools/call, not
// task-augmented, that decodes whole into the types mcp-go decodes it into.
func decodeCall(msg []byte) (*directCall, bool) {
	m := new(directCall)
	if json.Unmarshal(msg, m) != nil || m.JSONRPC != mcp.JSONRPC_VERSION || m.ID == nil || len(m.Result) > 0 ||
		m.Method != string(mcp.MethodToolsCall) || m.Params.Task != nil {
		return nil, false
	}
	return m, true
}

// callTool serves msg, a tools/call on a stdio session, without
// HandleMessage, and reports whether it did; when it did not, nothing has
// happened yet. inflight holds the cancels of the connection's calls being
// served, by id (the connection has one caller).
func (s *Server) callTool(ctx context.Context, msg json.RawMessage, inflight *inflightCalls) (mcp.JSONRPCMessage, bool) {
	m, ok := decodeCall(msg)
	if !ok {
		return nil, false
	}
	return s.serveCall(ctx, m, inflight, nil)
}

// serveCall serves m, a decoded tools/call, on the session in ctx as
// HandleMessage would, and reports whether it did; when it did not,
// nothing has happened yet. Both transports' direct calls come here
// (callTool, serveHTTPCall): everything from warden's checkRequest hook to
// the decorated response is in this one function. The call's cancel is held
// in inflight under owner (nil on stdio) and its id.
func (s *Server) serveCall(ctx context.Context, m *directCall, inflight *inflightCalls, owner *warden.Caller) (mcp.JSONRPCMessage, bool) {
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
	defer inflight.remove(inflight.add(callKey(owner, m.ID), cancel))

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

// directHTTP stands in front of mcp-go's streamable HTTP server (next): a
// POST carrying an ordinary 2026-07-28 tools/call is served by
// serveHTTPCall, anything else by next, untouched. ctxFunc is the context
// function next was configured with. Any other POST of a 2026-07-28
// client goes to next through serveModern, which keeps its cancellation to
// its caller (cancel.go): a notifications/cancelled next accepted reaches
// the caller's calls with that id, served here or by next, and no one
// else's. (mcp-go only tells a message's era apart by the
// Mcp-Protocol-Version header or its _meta, and refuses a 2026-07-28 one
// whose header does not say so.)
func (s *Server) directHTTP(next http.Handler, ctxFunc server.HTTPContextFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hb, ok := r.Body.(*heldBody)
		if r.Method != http.MethodPost || !ok || hb.Len() != len(hb.b) {
			next.ServeHTTP(w, r)
			return
		}
		if s.httpDirect && s.serveHTTPCall(w, r, hb.b, ctxFunc) {
			return
		}
		if !mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
			next.ServeHTTP(w, r)
			return
		}
		s.serveModern(w, r, hb.b, next)
	})
}

// serveHTTPCall answers r, a POST to the streamable HTTP endpoint whose
// body (read and bounded by authenticate) is body, when it is an ordinary
// 2026-07-28 tools/call, and reports whether it did; when it did not,
// nothing has been written and next serves r as before.
//
// What mcp-go v1.2.1 does with such a request, given what HTTPHandler
// configures (stateful, no event store, no CORS, no protocol-version
// restriction, localhost protection on, the context function) and what
// New configures (see callTool): StreamableHTTPServer.ServeHTTP refuses a
// loopback connection whose Host is not a loopback name; handlePost wants
// Content-Type application/json, decodes the body for its id and method,
// finds the era (modern: the _meta or the Mcp-Protocol-Version header
// names 2026-07-28 or later), requires Mcp-Protocol-Version equal to the
// _meta's version (one it supports) and no Last-Event-ID, and serves the
// request on an ephemeral session without an id — no session lookup, no
// idle tracking, no server-initiated requests. HandleMessage then checks
// Mcp-Method and Mcp-Name against the body and any Mcp-Param-* header the
// tool's schema binds (x-mcp-header). The response is application/json,
// encoded by json.Encoder, with the status 2026-07-28 gives a JSON-RPC
// error, unless a notification sent during the call upgraded it to an
// event stream: warden's handlers send one only for a progressToken
// (interaction.go), so a call carrying one is left to mcp-go. Once the
// request's context is done, nothing is written.
//
// Everything those steps would refuse is left to mcp-go, which answers
// it; a request served here is one whose every step passes, and is served
// as serveCall serves it. The era before 2026-07-28 is always left to
// mcp-go: its calls run on the registered session mcp-go keeps (idle
// tracking, request-scoped event streams for elicitation), which only
// mcp-go can reach.
func (s *Server) serveHTTPCall(w http.ResponseWriter, r *http.Request, body []byte, ctxFunc server.HTTPContextFunc) bool {
	h := r.Header
	version := h.Get(mcp.HeaderProtocolVersion)
	if !mcp.IsModernProtocol(version) || h.Get("Content-Type") != "application/json" ||
		h.Get(mcp.HeaderLastEventID) != "" || h.Get(mcp.HeaderMethod) != string(mcp.MethodToolsCall) ||
		h.Get(mcp.HeaderName) == "" || mcpGoRejectsHost(r) {
		return false
	}
	name, ok := mcp.DecodeHeaderValue(h.Get(mcp.HeaderName))
	if !ok {
		return false
	}
	m, ok := decodeCall(body)
	if !ok || m.Params.Name != name || m.Params.Meta == nil || m.Params.Meta.ProgressToken != nil ||
		m.Params.Meta.ProtocolVersion() != version || s.headerBound(name) {
		return false
	}
	// The response is built here whole (appendToolResponse), so the
	// handler need not leave placeholders for edgeWriter (splice.go).
	ctx := ctxFunc(s.mcp.WithContext(withSplicer(r.Context(), nil), &httpCallSession{}), r)
	resp, ok := s.serveCall(ctx, m, &s.httpInflight, warden.CallerFrom(ctx))
	if !ok {
		return false
	}
	s.httpDirectCalls.Add(1)
	if r.Context().Err() != nil {
		return true // the client is gone: mcp-go writes nothing either
	}
	status := http.StatusOK
	if e, ok := resp.(mcp.JSONRPCError); ok {
		status = modernHTTPStatus(e.Error.Code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	buf := getBuffer()
	defer putBuffer(buf)
	var err error
	if b, ok := appendToolResponse((*buf)[:0], resp); ok {
		*buf = b
		_, err = w.Write(b)
	} else {
		err = json.NewEncoder(w).Encode(resp)
	}
	if err != nil {
		s.opts.Log.Error("Failed to write response", "err", err)
	}
	return true
}

// httpCallSession is the session a direct HTTP call runs on, as mcp-go's
// ephemeral session for a 2026-07-28 request: no id, the client's info and
// capabilities from the request's _meta. It sends nothing to the client
// (no call served directly sends a notification), and offers no session
// tools, which warden never sets.
type httpCallSession struct {
	initialized bool
	info        mcp.Implementation
	caps        mcp.ClientCapabilities
}

var _ server.SessionWithClientInfo = (*httpCallSession)(nil)

func (*httpCallSession) SessionID() string                                   { return "" }
func (*httpCallSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return nil }
func (c *httpCallSession) Initialize()                                       { c.initialized = true }
func (c *httpCallSession) Initialized() bool                                 { return c.initialized }
func (c *httpCallSession) GetClientInfo() mcp.Implementation                 { return c.info }
func (c *httpCallSession) SetClientInfo(i mcp.Implementation)                { c.info = i }
func (c *httpCallSession) GetClientCapabilities() mcp.ClientCapabilities     { return c.caps }
func (c *httpCallSession) SetClientCapabilities(caps mcp.ClientCapabilities) { c.caps = caps }

// headerBound reports whether the tool's input schema binds an argument to
// an Mcp-Param-* header, which HandleMessage checks; such a call is left
// to mcp-go. Tools are registered once, in New, so the answer is kept.
func (s *Server) headerBound(name string) bool {
	if v, ok := s.paramHeaders.Load(name); ok {
		return v.(bool)
	}
	t := s.mcp.GetTool(name)
	if t == nil {
		return true
	}
	bound := len(mcp.ExtractParamHeaderBindings(&t.Tool)) > 0
	s.paramHeaders.Store(name, bound)
	return bound
}

// mcpGoRejectsHost reports whether mcp-go's DNS rebinding protection
// refuses r: a loopback connection whose Host is not localhost or a
// loopback address. (warden's edge also admits identity.resource's host,
// which mcp-go refuses.)
func mcpGoRejectsHost(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && local != nil && mcpGoLoopback(local.String()) && !mcpGoLoopback(r.Host)
}

func mcpGoLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// modernHTTPStatus is the HTTP status 2026-07-28 gives a JSON-RPC error,
// as mcp-go maps it.
func modernHTTPStatus(code int) int {
	switch code {
	case mcp.METHOD_NOT_FOUND:
		return http.StatusNotFound
	case mcp.HEADER_MISMATCH, mcp.MISSING_REQUIRED_CLIENT_CAPABILITY, mcp.UNSUPPORTED_PROTOCOL_VERSION,
		mcp.INVALID_REQUEST, mcp.INVALID_PARAMS, mcp.PARSE_ERROR:
		return http.StatusBadRequest
	default:
		return http.StatusOK
	}
}

// statusWriter notes the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
