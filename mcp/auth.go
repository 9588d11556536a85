package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// authenticate establishes the caller of every MCP request before MCP sees
// it: a verified bearer token, or — only when no issuer is configured and
// the operator explicitly allowed it on a loopback listener — the local
// identity. A request without a valid token gets 401 with the MCP
// WWW-Authenticate challenge, and its body is never read. Then the body is
// read, bounded (http.max_request_bytes, http.read_timeout), and the
// session the request names is checked: it must be one warden issued to
// this caller (403 for another subject's, 404 for one warden does not
// know). Every refusal is recorded.
func (s *Server) authenticate(transport string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Without a verifier, only reachable with
		// allow_unauthenticated_loopback on a loopback listener;
		// ServeHTTP refuses anything else.
		caller := s.opts.Identity.Caller()
		if s.opts.Verifier != nil {
			token, present := bearerToken(r)
			if !present {
				s.refuse(w, r, &warden.Error{Code: warden.Unauthenticated, Rule: "identity",
					Message: "missing bearer token: this server requires an OAuth access token"}, false)
				return
			}
			var err error
			if caller, err = s.opts.Verifier.Verify(r.Context(), token); err != nil {
				s.refuse(w, r, warden.AsError(err), true)
				return
			}
		}
		ctx := warden.WithCaller(r.Context(), caller)
		body, status, e := s.readBody(w, r)
		if e != nil {
			writeRefusal(w, status, "invalid_request", e.Message, s.refusals.record(ctx, r, caller, e))
			return
		}
		key := requestSessionKey(transport, r)
		if key != "" {
			switch owner := s.tracker.owner(key); {
			case owner == nil:
				e := &warden.Error{Code: warden.Invalid, Rule: "session",
					Message: "this MCP session does not exist or has ended; start a new one (initialize)"}
				writeRefusal(w, http.StatusNotFound, "session_not_found", e.Message, s.refusals.record(ctx, r, caller, e))
				return
			case !sameSubject(owner, caller):
				e := &warden.Error{Code: warden.Denied, Rule: "session-binding",
					Message: "this MCP session belongs to another subject; open your own session"}
				tool, args := describeRequest(r, body)
				call := s.opts.Pipeline.Refuse(ctx, tool, args, e)
				writeRefusal(w, http.StatusForbidden, "access_denied", e.Message, call.ID)
				return
			}
		}
		if transport == "http" {
			// A streamable HTTP session is bound to its subject as its id
			// leaves warden (in an initialize response), before the
			// client can name it.
			w = &headerHook{ResponseWriter: w, before: func(h http.Header) {
				if id := h.Get(server.HeaderKeySessionID); id != "" {
					s.tracker.bind("sid:"+id, caller)
				}
			}}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestSessionKey is the tracker key of the session the transport will
// route r to, read exactly as mcp-go reads it: the Mcp-Session-Id header
// (its first value, Header.Get) for streamable HTTP, the sessionId query
// parameter (its first value, URL.Query().Get) for SSE. A session id
// anywhere else is not what routes the request, so it is not what is
// checked either.
func requestSessionKey(transport string, r *http.Request) string {
	var id string
	switch transport {
	case "http":
		id = r.Header.Get(server.HeaderKeySessionID)
	case "sse":
		id = r.URL.Query().Get("sessionId")
	}
	if id == "" {
		return ""
	}
	return "sid:" + id
}

func sameSubject(a, b *warden.Caller) bool {
	return a.Subject == b.Subject && a.Issuer == b.Issuer
}

// bearerToken returns the token of an `Authorization: Bearer` header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// refuse answers a request without a verified caller and records the
// refusal compactly. Unauthenticated requests get 401 with the RFC 9728
// challenge (plus error="invalid_token" when a token was presented);
// missing scopes get 403 insufficient_scope. The body is not read.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *warden.Error, tokenPresent bool) {
	stopReading(w) // the body is not read, nor drained
	id := s.refusals.record(r.Context(), r, nil, e)

	status := http.StatusUnauthorized
	challenge := fmt.Sprintf(`Bearer resource_metadata=%q`, s.metadataURL(r))
	code := "invalid_token"
	switch {
	case e.Code == warden.Denied && e.Rule == "insufficient_scope":
		status, code = http.StatusForbidden, "insufficient_scope"
		challenge += fmt.Sprintf(`, error="insufficient_scope", scope=%q`, strings.Join(s.opts.Verifier.Scopes(), " "))
	case e.Code == warden.Denied:
		status, code = http.StatusForbidden, "access_denied"
	case tokenPresent:
		challenge += fmt.Sprintf(`, error="invalid_token", error_description=%q`, e.Message)
	default:
		code = "invalid_request"
	}
	if s.opts.AuthFailed != nil {
		reason := code
		if code == "invalid_request" {
			reason = "missing_token"
		}
		s.opts.AuthFailed(reason)
	}
	if status == http.StatusUnauthorized || code == "insufficient_scope" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeRefusal(w, status, code, e.Message, id)
}

// describeRequest names a refused request of a verified caller for the
// recording, from its already bounded body: the tool of a tools/call, the
// JSON-RPC method of anything else, or the HTTP request line. Arguments
// are kept only for tools/call.
func describeRequest(r *http.Request, body []byte) (string, json.RawMessage) {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if len(body) == 0 || json.Unmarshal(body, &msg) != nil || msg.Method == "" {
		return "http:" + r.Method + " " + clip(r.URL.Path, clipLen), nil
	}
	if msg.Method == "tools/call" && msg.Params.Name != "" {
		return clip(msg.Params.Name, clipLen), msg.Params.Arguments
	}
	return "rpc:" + clip(msg.Method, clipLen), nil
}

// metadataPath is where RFC 9728 metadata for the MCP endpoint is served.
const metadataPath = "/.well-known/oauth-protected-resource"

// metadataURL is the protected-resource metadata URL for the endpoint r
// addressed.
func (s *Server) metadataURL(r *http.Request) string {
	return s.origin(r) + metadataPath + endpointOf(r)
}

func endpointOf(r *http.Request) string {
	if r.URL.Path == "/sse" || r.URL.Path == "/message" {
		return "/sse"
	}
	return "/mcp"
}

// origin is warden's public origin: from identity.resource when set, else
// from the request.
func (s *Server) origin(r *http.Request) string {
	if res := s.opts.Identity.Resource; res != "" {
		if i := strings.Index(res, "://"); i >= 0 {
			if j := strings.Index(res[i+3:], "/"); j >= 0 {
				return res[:i+3+j]
			}
		}
		return strings.TrimSuffix(res, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveMetadata serves RFC 9728 protected-resource metadata naming the
// trusted authorization servers and scopes.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	suffix := strings.TrimPrefix(r.URL.Path, metadataPath)
	resource := s.opts.Identity.Resource
	if resource == "" {
		if suffix == "" {
			suffix = "/mcp"
		}
		resource = s.origin(r) + suffix
	}
	meta := server.ProtectedResourceMetadataConfig{
		Resource:               resource,
		AuthorizationServers:   s.opts.Verifier.Issuers(),
		ScopesSupported:        s.opts.Verifier.Scopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "warden",
	}
	sort.Strings(meta.AuthorizationServers)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(meta)
}

type tokenKey struct{}

// stdioCaller re-verifies the WARDEN_TOKEN of a stdio connection on every
// request, so an expired token stops working mid-session.
func (s *Server) stdioCaller(ctx context.Context) context.Context {
	token, ok := ctx.Value(tokenKey{}).(string)
	if !ok {
		return ctx
	}
	caller, err := s.opts.Verifier.Verify(ctx, token)
	if err != nil {
		return warden.WithAuthFailure(warden.WithCaller(ctx, nil), warden.AsError(err))
	}
	return warden.WithCaller(ctx, caller)
}
