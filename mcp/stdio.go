package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// warden serves stdio with its own loop instead of mcp-go's StdioServer,
// for two reasons only: mcp-go's loop decodes every line five times before
// MCPServer.HandleMessage decodes it again (as raw JSON, then probing it as
// a sampling, an elicitation and a roots response, then for its method),
// and its writer marshals every response with encoding/json, which for a
// tools/call result means escaping the result's text once and scanning it
// twice more. Here each line is decoded once, and a tools/call response
// is built by appendToolResponse (escaped once, raw structured content
// checked once). Every message but an ordinary tools/call is still served
// by MCPServer.HandleMessage, and such a call is served by direct.go
// exactly as HandleMessage would (anything else it hands to
// HandleMessage), so what is answered is mcp-go's; the framing,
// concurrency and session behaviour below are mcp-go v1.2.1's
// (server/stdio.go): one JSON message per line, tools/call served by a
// pool of five workers behind a queue of 100, other requests each on
// their own goroutine, notifications inline, server-initiated
// elicitation/create requests routed back by id, requests cancelled when
// the input ends.

const (
	stdioWorkers = 5
	stdioQueue   = 100
)

// stdioConn is one stdio client: its session and its output.
type stdioConn struct {
	srv *server.MCPServer
	out io.Writer
	wmu sync.Mutex // one message per write, whole

	session *stdioSession

	// direct, when set, serves a tools/call without HandleMessage, or
	// reports that it did not (direct.go); inflight holds the cancels of
	// the calls it is serving, for notifications/cancelled.
	direct   directFunc
	inflight inflightCalls
}

// directFunc serves a tools/call without HandleMessage and reports whether
// it did; when it did not, it did nothing.
type directFunc func(ctx context.Context, msg json.RawMessage, inflight *inflightCalls) (mcp.JSONRPCMessage, bool)

// stdioSession is the one session of a stdio connection. It implements
// what mcp-go's own stdio session does that warden uses: logging level,
// client info and capabilities, the negotiated protocol version, and
// elicitation (the session-era form of asking the user). warden asks for
// neither sampling nor roots, so the session does not offer them.
type stdioSession struct {
	conn          *stdioConn
	notifications chan mcp.JSONRPCNotification
	initialized   atomic.Bool
	level         atomic.Value // mcp.LoggingLevel
	info          atomic.Value // mcp.Implementation
	caps          atomic.Value // mcp.ClientCapabilities
	version       atomic.Value // string

	nextID  atomic.Int64
	pmu     sync.Mutex
	pending map[int64]chan elicitationAnswer
}

type elicitationAnswer struct {
	result *mcp.ElicitationResult
	err    error
}

var (
	_ server.ClientSession              = (*stdioSession)(nil)
	_ server.SessionWithLogging         = (*stdioSession)(nil)
	_ server.SessionWithClientInfo      = (*stdioSession)(nil)
	_ server.SessionWithElicitation     = (*stdioSession)(nil)
	_ server.SessionWithProtocolVersion = (*stdioSession)(nil)
)

func (s *stdioSession) SessionID() string { return "stdio" }

func (s *stdioSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	return s.notifications
}

func (s *stdioSession) Initialize() {
	s.level.Store(mcp.LoggingLevelError)
	s.initialized.Store(true)
}

func (s *stdioSession) Initialized() bool { return s.initialized.Load() }

func (s *stdioSession) SetLogLevel(level mcp.LoggingLevel) { s.level.Store(level) }

func (s *stdioSession) GetLogLevel() mcp.LoggingLevel {
	if l, ok := s.level.Load().(mcp.LoggingLevel); ok {
		return l
	}
	return mcp.LoggingLevelError
}

func (s *stdioSession) GetClientInfo() mcp.Implementation {
	i, _ := s.info.Load().(mcp.Implementation)
	return i
}

func (s *stdioSession) SetClientInfo(i mcp.Implementation) { s.info.Store(i) }

func (s *stdioSession) GetClientCapabilities() mcp.ClientCapabilities {
	c, _ := s.caps.Load().(mcp.ClientCapabilities)
	return c
}

func (s *stdioSession) SetClientCapabilities(c mcp.ClientCapabilities) { s.caps.Store(c) }

func (s *stdioSession) ProtocolVersion() string {
	v, _ := s.version.Load().(string)
	return v
}

// SetProtocolVersion records the version initialize negotiated (mcp-go
// calls it).
func (s *stdioSession) SetProtocolVersion(v string) { s.version.Store(v) }

// RequestElicitation sends elicitation/create to the client and waits for
// its answer, which the read loop routes here by id.
func (s *stdioSession) RequestElicitation(ctx context.Context, request mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	id := s.nextID.Add(1)
	answer := make(chan elicitationAnswer, 1)
	s.pmu.Lock()
	s.pending[id] = answer
	s.pmu.Unlock()
	defer func() {
		s.pmu.Lock()
		delete(s.pending, id)
		s.pmu.Unlock()
	}()
	msg, err := json.Marshal(struct {
		JSONRPC string                `json:"jsonrpc"`
		ID      int64                 `json:"id"`
		Method  string                `json:"method"`
		Params  mcp.ElicitationParams `json:"params"`
	}{mcp.JSONRPC_VERSION, id, string(mcp.MethodElicitationCreate), request.Params})
	if err != nil {
		return nil, fmt.Errorf("failed to marshal elicitation request: %w", err)
	}
	if err := s.conn.write(append(msg, '\n')); err != nil {
		return nil, fmt.Errorf("failed to write elicitation request: %w", err)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case a := <-answer:
		return a.result, a.err
	}
}

// answer routes a client's response to a pending elicitation/create and
// reports whether it was one.
func (s *stdioSession) answer(rawID, result, rpcErr json.RawMessage) bool {
	var n json.Number
	if json.Unmarshal(rawID, &n) != nil {
		return false
	}
	id, err := n.Int64()
	if err != nil {
		return false
	}
	s.pmu.Lock()
	ch, ok := s.pending[id]
	s.pmu.Unlock()
	if !ok {
		return false
	}
	var a elicitationAnswer
	if rpcErr != nil {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(rpcErr, &e) != nil {
			return false // not a JSON-RPC error object: not a response mcp-go would route
		}
		a.err = fmt.Errorf("elicitation request failed: %s", e.Message)
	} else {
		var res mcp.ElicitationResult
		if err := json.Unmarshal(result, &res); err != nil {
			a.err = fmt.Errorf("failed to unmarshal elicitation response: %w", err)
		} else {
			a.result = &res
		}
	}
	select {
	case ch <- a:
	default:
	}
	return true
}

// stdioLimits bound what a stdio client may send before anything parses
// it.
type stdioLimits struct {
	// MaxLine is the longest message (one line) read; a longer one is
	// read to its end without being kept, and refused. Zero is
	// DefaultMaxRequestBytes.
	MaxLine int
	// Refused, when set, is told of each message refused for its size
	// (it records the refusal).
	Refused func(ctx context.Context, e *warden.Error)
}

// serveStdio serves one client on in/out until in ends or ctx is done;
// base adds the caller to every request's context. direct, when not nil,
// serves the tools/call requests it can without HandleMessage.
func serveStdio(ctx context.Context, srv *server.MCPServer, in io.Reader, out io.Writer, base func(context.Context) context.Context, limits stdioLimits, direct directFunc) error {
	if limits.MaxLine <= 0 {
		limits.MaxLine = DefaultMaxRequestBytes
	}
	c := &stdioConn{srv: srv, out: out, direct: direct}
	c.session = &stdioSession{conn: c, notifications: make(chan mcp.JSONRPCNotification, 100), pending: map[int64]chan elicitationAnswer{}}
	if err := srv.RegisterSession(ctx, c.session); err != nil {
		return fmt.Errorf("register session: %w", err)
	}
	defer srv.UnregisterSession(ctx, c.session.SessionID())
	ctx = srv.WithContext(ctx, c.session)
	ctx = base(ctx)
	ctx, cancelRequests := context.WithCancel(ctx)
	defer cancelRequests()

	queue := make(chan toolCall, stdioQueue)
	var workers, requests sync.WaitGroup
	for range stdioWorkers {
		workers.Go(func() {
			for {
				select {
				case w, ok := <-queue:
					if !ok {
						return
					}
					c.serve(ctx, w.id, w.msg, true)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go c.forwardNotifications(ctx)

	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(in, 64<<10)
		for {
			line, err := readLine(r, limits.MaxLine)
			if err != nil {
				// A last line without its newline is dropped, as mcp-go does.
				readErr <- err
				return
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()

	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case err = <-readErr:
			if errors.Is(err, io.EOF) {
				err = nil
			}
			break loop
		case line := <-lines:
			if line == nil {
				err = c.refuseTooLong(ctx, limits)
			} else {
				err = c.dispatch(ctx, line, queue, &requests)
			}
			if err != nil {
				break loop
			}
		}
	}
	cancelRequests()
	close(queue)
	workers.Wait()
	requests.Wait()
	return err
}

// readLine reads the next line, newline included. A line longer than max
// bytes is read to its end without being kept, and returned as nil: the
// client is answered that it was too large, and nothing of it is parsed.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		switch {
		case tooLong:
		case len(line)+len(chunk) > max:
			tooLong, line = true, nil
		default:
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if tooLong {
			return nil, nil
		}
		return line, nil
	}
}

// refuseTooLong answers a message longer than the limit (its id, like the
// rest of it, was never read) and has the refusal recorded.
func (c *stdioConn) refuseTooLong(ctx context.Context, limits stdioLimits) error {
	e := &warden.Error{Code: warden.Invalid, Rule: "http.max_request_bytes",
		Message: fmt.Sprintf("message too large: a message may be at most %d bytes (http.max_request_bytes); it was not read", limits.MaxLine)}
	if limits.Refused != nil {
		limits.Refused(ctx, e)
	}
	return c.respond(mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(nil),
		Error: mcp.NewJSONRPCErrorDetails(mcp.INVALID_REQUEST, e.Message, nil)})
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(raw, []byte("null")) }

type toolCall struct {
	id  json.RawMessage
	msg json.RawMessage
}

// dispatch decodes a line once and hands it on: a response to one of
// warden's elicitation requests to its waiter, a tools/call to the
// workers, another request to its own goroutine, a notification (or a
// message that is not a request) inline to HandleMessage.
func (c *stdioConn) dispatch(ctx context.Context, line []byte, queue chan<- toolCall, requests *sync.WaitGroup) error {
	msg := json.RawMessage(bytes.TrimSpace(line))
	var m struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	err := json.Unmarshal(msg, &m)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) || (err != nil && !json.Valid(msg)) {
		return c.respond(mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(nil),
			Error: mcp.NewJSONRPCErrorDetails(mcp.PARSE_ERROR, "Parse error", nil)})
	}
	parsed := err == nil
	hasID := len(m.ID) > 0 && !isNull(m.ID)
	if isNull(m.Error) {
		m.Error = nil // mcp-go decodes error into a pointer: null is no error
	}
	if parsed && m.Method == "" && hasID && (m.Result != nil || m.Error != nil) && c.session.answer(m.ID, m.Result, m.Error) {
		return nil
	}
	switch {
	case parsed && m.Method == string(mcp.MethodToolsCall):
		select {
		case queue <- toolCall{id: m.ID, msg: msg}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		default:
			// The queue is full: served here, holding up the reading.
			c.serve(ctx, m.ID, msg, true)
			return nil
		}
	case parsed && hasID:
		requests.Go(func() { c.serve(ctx, m.ID, msg, false) })
		return nil
	}
	resp := c.handle(ctx, m.ID, msg, false)
	if parsed && m.Method == string(mcp.MethodNotificationCancelled) {
		// A call served directly is not among HandleMessage's in-flight
		// requests: cancel it here, as HandleMessage would have.
		if id, ok := cancelledRequest(msg); ok {
			c.inflight.cancel(callKey(nil, id))
		}
	}
	if resp == nil {
		return nil
	}
	if err := c.respond(resp); err != nil {
		return fmt.Errorf("failed to write response: %w", err)
	}
	return nil
}

// serve handles a request and writes its response.
func (c *stdioConn) serve(ctx context.Context, id, msg json.RawMessage, call bool) {
	if resp := c.handle(ctx, id, msg, call); resp != nil {
		_ = c.respond(resp)
	}
}

// handle serves a message: a tools/call (call) directly when it can, else
// through HandleMessage. A panic becomes an internal error carrying the
// request's id (a notification, with no id, gets no answer).
func (c *stdioConn) handle(ctx context.Context, id json.RawMessage, msg json.RawMessage, call bool) (resp mcp.JSONRPCMessage) {
	defer func() {
		if r := recover(); r != nil {
			resp = nil
			if len(id) > 0 && !isNull(id) {
				var v any
				_ = json.Unmarshal(id, &v)
				resp = mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(v),
					Error: mcp.NewJSONRPCErrorDetails(mcp.INTERNAL_ERROR, fmt.Sprintf("internal panic: %v", r), nil)}
			}
		}
	}()
	if call && c.direct != nil {
		if resp, ok := c.direct(ctx, msg, &c.inflight); ok {
			return resp
		}
	}
	return c.srv.HandleMessage(ctx, msg)
}

// respond writes a response: a tools/call result built by
// appendToolResponse, anything else marshalled by encoding/json.
func (c *stdioConn) respond(resp mcp.JSONRPCMessage) error {
	buf := getBuffer()
	defer putBuffer(buf)
	b, ok := appendToolResponse((*buf)[:0], resp)
	if !ok {
		m, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		b = append(append(b[:0], m...), '\n')
	}
	*buf = b
	return c.write(b)
}

func (c *stdioConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.out.Write(b)
	return err
}

// forwardNotifications writes the session's notifications as they come.
func (c *stdioConn) forwardNotifications(ctx context.Context) {
	for {
		select {
		case n := <-c.session.notifications:
			_ = c.respond(n)
		case <-ctx.Done():
			return
		}
	}
}
