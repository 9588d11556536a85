package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// maxBody bounds a request body warden reads to describe a refused request.
const maxBody = 4 << 20

// authenticate establishes the caller of every HTTP request before MCP
// sees it: a verified bearer token, or — only when no issuer is configured
// and the operator explicitly allowed it on a loopback listener — the local
// identity. A request without a valid token gets 401 with the MCP
// WWW-Authenticate challenge; a request on another subject's session gets
// 403. Every refusal is recorded.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Verifier == nil {
			// Only reachable with allow_unauthenticated_loopback on a
			// loopback listener; ServeHTTP refuses anything else.
			next.ServeHTTP(w, r.WithContext(warden.WithCaller(r.Context(), s.opts.Identity.Caller())))
			return
		}
		token, present := bearerToken(r)
		if !present {
			s.refuse(w, r, nil, &warden.Error{Code: warden.Unauthenticated, Rule: "identity",
				Message: "missing bearer token: this server requires an OAuth access token"}, false)
			return
		}
		caller, err := s.opts.Verifier.Verify(r.Context(), token)
		if err != nil {
			s.refuse(w, r, nil, warden.AsError(err), true)
			return
		}
		if owner := s.tracker.owner(requestSessionKey(r)); owner != nil && !sameSubject(owner, caller) {
			s.refuse(w, r, caller, &warden.Error{Code: warden.Denied, Rule: "session-binding",
				Message: "this MCP session belongs to another subject; open your own session"}, true)
			return
		}
		next.ServeHTTP(w, r.WithContext(warden.WithCaller(r.Context(), caller)))
	})
}

// requestSessionKey is the tracker key of the protocol session a request
// names: the Mcp-Session-Id header (streamable HTTP) or the sessionId query
// parameter (SSE messages).
func requestSessionKey(r *http.Request) string {
	if id := r.Header.Get(server.HeaderKeySessionID); id != "" {
		return "sid:" + id
	}
	if id := r.URL.Query().Get("sessionId"); id != "" {
		return "sid:" + id
	}
	return ""
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

// refuse answers a request that cannot be served and records the refusal.
// Unauthenticated requests get 401 with the RFC 9728 challenge (plus
// error="invalid_token" when a token was presented); missing scopes get
// 403 insufficient_scope; another subject's session gets 403.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, caller *warden.Caller, e *warden.Error, tokenPresent bool) {
	tool, args := describeRequest(r)
	ctx := r.Context()
	if caller != nil {
		ctx = warden.WithCaller(ctx, caller)
	}
	call := s.opts.Pipeline.Refuse(ctx, tool, args, e)

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
	if status == http.StatusUnauthorized || code == "insufficient_scope" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": e.Message, "call_id": call.ID})
}

// describeRequest names a refused request for the recording: the tool of
// a tools/call, the JSON-RPC method of anything else, or the HTTP request
// line. Arguments are kept only for tools/call.
func describeRequest(r *http.Request) (string, json.RawMessage) {
	if r.Method != http.MethodPost || r.Body == nil {
		return "http:" + r.Method + " " + r.URL.Path, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return "http:" + r.Method + " " + r.URL.Path, nil
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method == "" {
		return "http:" + r.Method + " " + r.URL.Path, nil
	}
	if msg.Method == "tools/call" && msg.Params.Name != "" {
		return msg.Params.Name, msg.Params.Arguments
	}
	return "rpc:" + msg.Method, nil
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
