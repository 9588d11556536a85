package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// SessionRecorder records the lifecycle of client sessions.
type SessionRecorder interface {
	StartSession(ctx context.Context, s *warden.Session) error
	UpdateSession(ctx context.Context, s *warden.Session) error
	EndSession(ctx context.Context, id string, at time.Time) error
}

// Options configure a Server.
type Options struct {
	Pipeline *warden.Pipeline
	Policy   warden.Authorizer
	Sessions SessionRecorder
	Identity *IdentityConfig
	// Verifier verifies bearer tokens; nil when no issuer is configured.
	Verifier *Verifier
	// Version is warden's version, reported to clients.
	Version string
	Log     *slog.Logger
	// NewID generates session ids (default: the pipeline's generator).
	NewID func() string
	// ShutdownGrace is how long in-flight HTTP calls may run after a
	// shutdown signal before they are cancelled (default 10s).
	ShutdownGrace time.Duration
	// HTTP bounds the HTTP transports' edges (defaults when nil).
	HTTP *HTTPConfig
	// Handlers are served beside the MCP endpoints, behind the same edge
	// checks but without authentication: the readiness probe and the
	// metrics (keys are http.ServeMux patterns such as "GET /metrics").
	Handlers map[string]http.Handler
	// AuthFailed, when set, is told the reason of each HTTP request
	// refused for want of a valid identity: missing_token,
	// invalid_token, insufficient_scope or access_denied.
	AuthFailed func(reason string)
	// Results shapes successful tool results (defaults when nil).
	Results *ResultsConfig
	// Console, when set, serves /console/ beside the HTTP transport. It
	// is mounted outside the MCP edge checks (which refuse every browser
	// origin not in http.allowed_origins) and does its own: its pages are
	// meant for browsers, on the console's own origin only.
	Console http.Handler
}

// Server is warden's MCP server: one set of tools, one pipeline, any
// transport.
type Server struct {
	opts  Options
	mcp   *server.MCPServer
	specs map[string]warden.ToolSpec
	// handlers are the tools' handlers as registered with mcp-go, and
	// implementation is how mcp-go names the server: what a tools/call
	// served without HandleMessage uses (direct.go).
	handlers       map[string]server.ToolHandlerFunc
	implementation mcp.Implementation
	// httpDirect serves ordinary 2026-07-28 tools/call requests over
	// streamable HTTP without mcp-go's transport and HandleMessage
	// (direct.go; tests turn it off to compare). httpDirectCalls counts
	// them; httpInflight holds the cancels of every 2026-07-28 tools/call
	// over HTTP, by caller and id (cancel.go); paramHeaders says which
	// tools bind arguments to headers.
	httpDirect      bool
	httpDirectCalls atomic.Int64
	httpInflight    inflightCalls
	paramHeaders    sync.Map
	tracker         *tracker
	// http is Options.HTTP with defaults filled in.
	http     HTTPConfig
	refusals *refusals

	schemaMu sync.Mutex
	schemas  map[string]json.RawMessage
}

// New builds the server and registers every tool of the pipeline.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.NewID == nil {
		opts.NewID = opts.Pipeline.NewID
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	s := &Server{
		opts:           opts,
		specs:          map[string]warden.ToolSpec{},
		handlers:       map[string]server.ToolHandlerFunc{},
		implementation: mcp.Implementation{Name: "warden", Version: opts.Version},
		schemas:        map[string]json.RawMessage{},
		tracker:        newTracker(opts.Sessions, opts.Pipeline.Clock, opts.NewID, opts.Log),
		http:           opts.HTTP.withDefaults(),
		refusals:       &refusals{pipeline: opts.Pipeline, rules: map[string]int{}},
		httpDirect:     true,
	}
	hooks := &server.Hooks{}
	hooks.AddOnRequestInitialization(s.checkRequest)
	hooks.AddAfterInitialize(func(ctx context.Context, _ any, req *mcp.InitializeRequest, res *mcp.InitializeResult) {
		s.tracker.initialized(ctx, req.Params.ClientInfo, res.ProtocolVersion)
	})
	hooks.AddOnRegisterSession(func(ctx context.Context, cs server.ClientSession) {
		// A session belongs to the subject that opened it.
		s.tracker.bind(sessionKey(cs), warden.CallerFrom(ctx))
	})
	hooks.AddOnUnregisterSession(func(ctx context.Context, cs server.ClientSession) {
		s.tracker.end(sessionKey(cs))
	})
	// A tools/call on stdio, and a 2026-07-28 one over streamable HTTP, is
	// served without HandleMessage (direct.go),
	// reproducing what these options make it do: an option added here
	// (hooks, middleware, validation, tracing, task tools) must be
	// reproduced there too, or direct calls turned off. (cancelScope needs
	// no reproducing: a direct call registers its own cancel.)
	s.mcp = server.NewMCPServer(s.implementation.Name, s.implementation.Version,
		server.WithToolCapabilities(false),
		server.WithToolFilter(s.filterTools),
		server.WithHooks(hooks),
		server.WithToolHandlerMiddleware(recoverTool),
		server.WithToolHandlerMiddleware(cancelScope),
		server.WithInstructions("warden is the only way to reach these databases and APIs; it holds the credentials. "+
			"For SQL, call sql_schema to see the tables and columns you may use, then sql_query with one statement per call. "+
			"For HTTP APIs, call http_call with a method and a path under the API. "+
			"For Kubernetes, call kube_get with a resource as kubectl names it (get by name, or list). A refused call says which rule refused it "+
			"and what you may do instead; masked values are marked as masked and cannot be recovered. "+
			"Some calls need a human's approval: warden asks the user to confirm, or returns the call as pending with an approval_id; "+
			"once a reviewer approves, call again with exactly the same arguments plus that approval_id."),
	)
	for _, t := range opts.Pipeline.Tools.Tools() {
		spec := t.Spec()
		s.specs[spec.Name] = spec
		tool := mcp.Tool{
			Name:           spec.Name,
			Description:    spec.Description,
			RawInputSchema: s.schema(spec, nil),
			Annotations:    mcp.ToolAnnotation{Title: spec.Title, ReadOnlyHint: mcp.ToBoolPtr(spec.ReadOnly), OpenWorldHint: mcp.ToBoolPtr(false)},
		}
		s.handlers[spec.Name] = s.handler(spec.Name)
		s.mcp.AddTool(tool, s.handlers[spec.Name])
	}
	return s
}

// handler decodes a tools/call request, runs it through the pipeline and
// encodes the outcome. It decides nothing itself.
func (s *Server) handler(name string) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := req.Params.RawArguments
		if len(args) == 0 && req.Params.Arguments != nil {
			var err error
			if args, err = json.Marshal(req.Params.Arguments); err != nil {
				return nil, fmt.Errorf("invalid params: arguments are not JSON")
			}
		}
		if t := bytes.TrimSpace(args); len(t) > 0 && t[0] != '{' && !bytes.Equal(t, []byte("null")) {
			// A malformed request is a protocol error, not a tool result.
			return nil, fmt.Errorf("invalid params: arguments must be a JSON object")
		}
		ctx = s.stdioCaller(ctx)
		ctx = warden.WithSession(ctx, s.tracker.forRequest(ctx))
		ctx = warden.WithInteraction(ctx, s.interaction(ctx, req))
		call, err := s.opts.Pipeline.Run(ctx, name, args)
		if e := browserAsk(err); e != nil {
			return askInBrowser(ctx, call, e)
		}
		res := toolResult(call, err)
		if err == nil && !res.IsError && !s.opts.Results.structured() {
			// The text block holds the same JSON: sending it once halves
			// what mcp-go encodes (and compacts twice) and the client
			// decodes.
			res.StructuredContent = nil
		}
		return spliceResult(ctx, res), nil
	}
}

// filterTools shows a caller only the tools it holds a grant for, with the
// backend argument's enum narrowed to the backends it may use.
func (s *Server) filterTools(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
	caller := warden.CallerFrom(s.stdioCaller(ctx))
	if caller == nil {
		return nil
	}
	out := make([]mcp.Tool, 0, len(tools))
	for _, t := range tools {
		spec, ok := s.specs[t.Name]
		if !ok {
			continue
		}
		backends := s.opts.Policy.Backends(caller, spec.BackendKind)
		if len(backends) == 0 {
			continue
		}
		t.RawInputSchema = s.schema(spec, backends)
		out = append(out, t)
	}
	return out
}

// schema renders a tool's input schema with the backend enum; results are
// cached per tool and backend set.
func (s *Server) schema(spec warden.ToolSpec, backends []string) json.RawMessage {
	key := spec.Name + "\x00" + strings.Join(backends, "\x00")
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if b, ok := s.schemas[key]; ok {
		return b
	}
	props := map[string]any{}
	if p, ok := spec.InputSchema["properties"].(map[string]any); ok {
		for k, v := range p {
			props[k] = v
		}
	}
	if arg, ok := props[spec.BackendArg].(map[string]any); ok && backends != nil {
		narrowed := map[string]any{}
		for k, v := range arg {
			narrowed[k] = v
		}
		narrowed["enum"] = slices.Clone(backends)
		props[spec.BackendArg] = narrowed
	}
	full := map[string]any{}
	for k, v := range spec.InputSchema {
		full[k] = v
	}
	full["properties"] = props
	b, err := json.Marshal(full)
	if err != nil {
		panic(fmt.Sprintf("tool %s: input schema does not encode: %v", spec.Name, err))
	}
	s.schemas[key] = b
	return b
}

type transportKey struct{}

func withTransport(ctx context.Context, t string) context.Context {
	return context.WithValue(ctx, transportKey{}, t)
}

func transportFrom(ctx context.Context) string {
	t, _ := ctx.Value(transportKey{}).(string)
	return t
}

// ServeStdio serves one client on in/out until in ends or ctx is done.
// The caller is the subject of token when one is given (verified now and on
// every request, so an expired token stops working mid-session), else the
// configured local identity. With neither it refuses to start.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer, token string) error {
	base := func(ctx context.Context) context.Context { return withTransport(ctx, "stdio") }
	switch {
	case token != "":
		if s.opts.Verifier == nil {
			return errors.New("WARDEN_TOKEN is set, but no identity.oidc issuer is configured to verify it")
		}
		if _, err := s.opts.Verifier.Verify(ctx, token); err != nil {
			return fmt.Errorf("WARDEN_TOKEN is not valid: %s", warden.AsError(err).Message)
		}
		base = func(ctx context.Context) context.Context {
			return context.WithValue(withTransport(ctx, "stdio"), tokenKey{}, token)
		}
	case s.opts.Identity.Caller() != nil:
		caller := s.opts.Identity.Caller()
		base = func(ctx context.Context) context.Context {
			return warden.WithCaller(withTransport(ctx, "stdio"), caller)
		}
	default:
		return errors.New("stdio needs a caller: set WARDEN_TOKEN to a token from a configured issuer, or configure identity.local")
	}
	err := serveStdio(ctx, s.mcp, in, out, base, stdioLimits{
		MaxLine: int(s.http.MaxRequestBytes),
		Refused: func(ctx context.Context, e *warden.Error) {
			// Like an HTTP refusal before parsing: what was refused and
			// the limit, never the message (which was not kept).
			s.opts.Pipeline.Refuse(ctx, "stdio:message", json.RawMessage(fmt.Sprintf(`{"max_bytes":%d}`, s.http.MaxRequestBytes)), e)
		},
	}, s.callTool)
	s.tracker.endAll()
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// HTTPHandler returns the handler for an HTTP transport: "http" serves
// streamable HTTP at /mcp, "sse" serves SSE at /sse with messages posted to
// /message; both serve /healthz and, with issuers configured, RFC 9728
// protected-resource metadata. Every request passes the edge checks first
// (origin, host, write deadlines); every MCP request is then
// authenticated, its body bounded and its session checked.
func (s *Server) HTTPHandler(transport string) (http.Handler, func(context.Context) error, error) {
	switch {
	case s.opts.Verifier != nil:
	case !s.opts.Identity.AllowUnauthenticatedLoopback:
		return nil, nil, errors.New("the HTTP transports need an authenticated caller: configure identity.oidc, or set identity.allow_unauthenticated_loopback: true to serve identity.local on a loopback address")
	case s.opts.Identity.Caller() == nil:
		return nil, nil, errors.New("identity.allow_unauthenticated_loopback needs identity.local: the caller it serves")
	}
	// The caller was put in the request context by authenticate; MCP
	// handlers see the context of the request that carried the message.
	ctxFunc := func(ctx context.Context, r *http.Request) context.Context {
		return warden.WithCaller(withTransport(ctx, transport), warden.CallerFrom(r.Context()))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	for pattern, h := range s.opts.Handlers {
		mux.Handle(pattern, h)
	}
	if s.opts.Verifier != nil {
		mux.HandleFunc("GET "+metadataPath, s.serveMetadata)
		mux.HandleFunc("GET "+metadataPath+"/{endpoint...}", s.serveMetadata)
	}
	var shutdown func(context.Context) error
	switch transport {
	case "http":
		sh := server.NewStreamableHTTPServer(s.mcp,
			server.WithEndpointPath("/mcp"),
			server.WithStateful(true),
			// A 2026-07-28 notification is handled on a session of its
			// own, so mcp-go cancels nothing by id alone (cancel.go).
			server.WithHTTPContextFunc(s.withOwnSession(ctxFunc)),
			server.WithSessionIdleTTL(30*time.Minute),
			server.WithStreamableHTTPLogger(s.opts.Log),
		)
		// An ordinary 2026-07-28 tools/call is served in front of mcp-go
		// (direct.go), exactly as sh would serve it.
		mux.Handle("/mcp", s.authenticate("http", requireSession(s.directHTTP(sh, ctxFunc))))
		shutdown = sh.Shutdown
	case "sse":
		sse := server.NewSSEServer(s.mcp,
			server.WithSSEEndpoint("/sse"),
			server.WithMessageEndpoint("/message"),
			server.WithSSEContextFunc(ctxFunc),
			server.WithKeepAlive(true),
		)
		mux.Handle("/sse", s.authenticate("sse", sse))
		mux.Handle("/message", s.authenticate("sse", sse))
		shutdown = sse.Shutdown
	default:
		return nil, nil, fmt.Errorf("unknown transport %q (use stdio, http or sse)", transport)
	}
	h := s.edge(mux)
	if s.opts.Console != nil {
		top := http.NewServeMux()
		top.Handle("/console/", s.opts.Console)
		top.Handle("/", h)
		return top, shutdown, nil
	}
	return h, shutdown, nil
}

// ServeHTTP serves an HTTP transport on ln until ctx is done, then stops
// accepting, lets in-flight calls finish for the shutdown grace period and
// cancels the rest.
func (s *Server) ServeHTTP(ctx context.Context, ln net.Listener, transport string) error {
	if s.opts.Verifier == nil && !isLoopback(ln.Addr()) {
		return fmt.Errorf("refusing to serve the local identity without authentication on %s: listen on a loopback address, or configure identity.oidc", ln.Addr())
	}
	h, shutdownTransport, err := s.HTTPHandler(transport)
	if err != nil {
		return err
	}
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	// No server-wide ReadTimeout or WriteTimeout: they would cut event
	// streams and long calls. Headers must arrive within the read timeout;
	// bodies are bounded by readBody and each write by edge.
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(s.http.ReadTimeout),
		IdleTimeout:       time.Duration(s.http.IdleTimeout),
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go s.refusals.run(base)
	defer s.refusals.flush(context.WithoutCancel(ctx))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.tracker.endAll()
		return err
	case <-ctx.Done():
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	go func() {
		<-graceCtx.Done()
		cancelBase() // cancel calls still running after the grace period
	}()
	_ = shutdownTransport(graceCtx)
	err = hs.Shutdown(graceCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	s.tracker.endAll()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// maxHeaderBytes bounds a request's header block; bearer tokens are the
// largest thing in it.
const maxHeaderBytes = 64 << 10

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
