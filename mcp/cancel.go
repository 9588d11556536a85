package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// Cancellation: a notifications/cancelled reaches only the calls of the
// caller that sent it.
//
// mcp-go keys the cancel of a request in flight by its session's id and
// the request's JSON-RPC id. A 2026-07-28 request over streamable HTTP runs
// on an ephemeral session without an id, so there the key is the JSON-RPC
// id alone, shared by every caller: ids are chosen by clients and are
// mostly small integers, and any authenticated caller could cancel every
// other caller's calls by sending cancellations for 1, 2, 3… So for that
// era warden keeps the cancels itself, in an inflightCalls keyed by the
// caller's subject (as sameSubject compares callers) and the id, and
// mcp-go's own lookup is made to find nothing:
//
//   - a call warden serves directly (serveHTTPCall) registers its cancel
//     under its caller and id (serveCall);
//   - a tools/call left to mcp-go is registered by directHTTP before it is
//     handed on, and cancelScope, a tool middleware, ends the handler's
//     context when that registration is cancelled: the handler stops and
//     mcp-go answers with what it returned, exactly as when mcp-go's own
//     cancel fires (cancelling the request's context instead would stop
//     mcp-go from answering at all);
//   - every 2026-07-28 notification goes to mcp-go as before, so its
//     answer (202, or a refusal) is mcp-go's byte for byte, but on a
//     session of its own (notificationSession) whose id no call's key
//     holds, so mcp-go cancels nothing; when mcp-go accepted a
//     cancellation, directHTTP cancels the sender's own calls with that id.
//
// The session era is not affected: there every request names a session
// (mcp-go refuses one that names none) that authenticate has checked
// belongs to the caller, so mcp-go's key is already the caller's. SSE is
// the same (a session in every message URL). A stdio connection has one
// caller; its calls' cancels are kept per connection.

// inflightCalls holds the cancels of calls in flight, by whose call it is
// and its JSON-RPC id. Two calls may share a key (one caller reusing an id,
// or a key stored before the last call under it was removed); each entry
// is removed by its own call, so neither removes the other's.
type inflightCalls struct {
	mu sync.Mutex
	m  map[inflightID]*inflightCall
}

// inflightID is a call's key: its caller's issuer and subject (empty on
// stdio, where there is one caller) and its id as mcp-go formats it.
type inflightID struct {
	issuer, subject, id string
}

type inflightCall struct {
	key    inflightID
	cancel context.CancelFunc
	next   *inflightCall
}

func callKey(caller *warden.Caller, id any) inflightID {
	k := inflightID{id: inflightKey(id)}
	if caller != nil {
		k.issuer, k.subject = caller.Issuer, caller.Subject
	}
	return k
}

// add registers cancel under key; the caller removes it when its call
// ends.
func (c *inflightCalls) add(key inflightID, cancel context.CancelFunc) *inflightCall {
	e := &inflightCall{key: key, cancel: cancel}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[inflightID]*inflightCall{}
	}
	e.next = c.m[key]
	c.m[key] = e
	c.mu.Unlock()
	return e
}

// remove unregisters e, unless a cancellation already has.
func (c *inflightCalls) remove(e *inflightCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch head := c.m[e.key]; {
	case head == e && e.next == nil:
		delete(c.m, e.key)
	case head == e:
		c.m[e.key] = e.next
	default:
		for p := head; p != nil; p = p.next {
			if p.next == e {
				p.next = e.next
				return
			}
		}
	}
}

// cancel cancels and unregisters every call under key. (A call's entry
// that a cancellation took is no longer in the list remove walks.)
func (c *inflightCalls) cancel(key inflightID) {
	c.mu.Lock()
	e := c.m[key]
	delete(c.m, key)
	c.mu.Unlock()
	for ; e != nil; e = e.next {
		e.cancel()
	}
}

// len is how many keys hold calls (for tests).
func (c *inflightCalls) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// cancelScopeKey holds, in a request's context, the context directHTTP
// cancels when the caller cancels the tools/call it hands to mcp-go.
type cancelScopeKey struct{}

// cancelScope is a tool middleware: a handler whose request directHTTP
// registered (a 2026-07-28 tools/call left to mcp-go) runs with a context
// that ends when that registration is cancelled. Calls served directly
// register their own cancel (serveCall) and carry no such context.
func cancelScope(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		scope, ok := ctx.Value(cancelScopeKey{}).(context.Context)
		if !ok {
			return next(ctx, req)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(scope, cancel)
		defer stop()
		return next(ctx, req)
	}
}

// ownSessionKey marks, in a request's context, a 2026-07-28 notification:
// mcp-go handles it on a notificationSession (withOwnSession).
type ownSessionKey struct{}

// notificationSession is the session mcp-go handles a 2026-07-28
// notification on: no call runs on it, and its id (which holds a NUL, as no
// session id mcp-go mints does) keys nothing in mcp-go's in-flight
// cancels, so a notifications/cancelled finds nothing there. mcp-go does
// nothing else with a notification's session (warden registers no
// notification handlers).
type notificationSession struct{}

func (notificationSession) SessionID() string                                   { return "\x00warden-notification" }
func (notificationSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return nil }
func (notificationSession) Initialize()                                         {}
func (notificationSession) Initialized() bool                                   { return true }

// withOwnSession wraps the context function given to mcp-go's streamable
// HTTP server: a request directHTTP marked as a 2026-07-28 notification is
// handled on a notificationSession. mcp-go calls the function after it has
// put the request's own session in the context, so this one replaces it.
func (s *Server) withOwnSession(ctxFunc server.HTTPContextFunc) server.HTTPContextFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		ctx = ctxFunc(ctx, r)
		if r.Context().Value(ownSessionKey{}) != nil {
			ctx = s.mcp.WithContext(ctx, notificationSession{})
		}
		return ctx
	}
}

// serveModern hands r, a POST of a 2026-07-28 client (body msg) that is
// not served directly, to next (mcp-go's transport), keeping its
// cancellation to its caller: a notification is handled on a session of
// its own and a cancellation mcp-go accepted cancels the caller's calls
// with that id; a tools/call is registered under its caller and id.
func (s *Server) serveModern(w http.ResponseWriter, r *http.Request, msg []byte, next http.Handler) {
	// The id is decoded as HandleMessage decodes it (the same field, the
	// same type), so that every message it takes for a notification is
	// taken for one here (and so is anything it cannot parse, which it
	// refuses).
	var m struct {
		ID     any `json:"id,omitempty"`
		Method any `json:"method"`
	}
	_ = json.Unmarshal(msg, &m)
	caller := warden.CallerFrom(r.Context())
	if m.ID == nil {
		r = r.WithContext(context.WithValue(r.Context(), ownSessionKey{}, true))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusAccepted {
			if id, ok := cancelledRequest(msg); ok {
				s.httpInflight.cancel(callKey(caller, id))
			}
		}
		return
	}
	if m.Method != string(mcp.MethodToolsCall) {
		next.ServeHTTP(w, r)
		return
	}
	scope, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := s.httpInflight.add(callKey(caller, m.ID), cancel)
	defer s.httpInflight.remove(e)
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), cancelScopeKey{}, scope)))
}

// inflightKey formats a request's id, decoded into an interface value, as
// mcp-go does in its keys.
func inflightKey(id any) string { return fmt.Sprintf("%v", id) }

// cancelledRequest returns the id of the request a notifications/cancelled
// message cancels, judged as HandleMessage judges it.
func cancelledRequest(msg json.RawMessage) (any, bool) {
	// The method is "notifications/cancelled" as written, or escaped.
	if !bytes.Contains(msg, []byte(mcp.MethodNotificationCancelled)) && bytes.IndexByte(msg, '\\') < 0 {
		return nil, false
	}
	var base struct {
		JSONRPC string        `json:"jsonrpc"`
		Method  mcp.MCPMethod `json:"method"`
		ID      any           `json:"id,omitempty"`
		Result  any           `json:"result,omitempty"`
	}
	if json.Unmarshal(msg, &base) != nil || base.JSONRPC != mcp.JSONRPC_VERSION || base.ID != nil {
		return nil, false
	}
	var n mcp.JSONRPCNotification
	if json.Unmarshal(msg, &n) != nil || n.Method != string(mcp.MethodNotificationCancelled) {
		return nil, false
	}
	id, ok := n.Params.AdditionalFields["requestId"]
	return id, ok
}
