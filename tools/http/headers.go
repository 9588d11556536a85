package http

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
)

// headerRule names the rule that refuses request headers.
const headerRule = "http.headers"

// AgentHeaders are the request headers an agent may set: content
// negotiation, conditional requests and idempotency, nothing that carries
// identity or changes routing.
var AgentHeaders = []string{
	"Accept", "Accept-Language", "Cache-Control", "Content-Language", "Content-Type",
	"Idempotency-Key", "If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since", "Prefer",
}

// ResponseHeaders are the response headers returned to the agent; every
// other header (Set-Cookie, WWW-Authenticate, anything an upstream echoes)
// is dropped. Location is rewritten or withheld (see Backend.location).
var ResponseHeaders = []string{
	"Allow", "Cache-Control", "Content-Language", "Content-Length", "Content-Type", "Deprecation", "ETag",
	"Last-Modified", "Location", "RateLimit", "RateLimit-Limit", "RateLimit-Policy", "RateLimit-Remaining", "RateLimit-Reset",
	"Retry-After", "Sunset", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "X-Request-Id",
}

func isAgentHeader(canon string) bool { return slices.Contains(AgentHeaders, canon) }

var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func isHopByHop(canon string) bool { return slices.Contains(hopByHop, canon) }

// agentHeaders checks the agent's headers and returns them canonicalised.
// creds are the backend's credential headers (canonical names).
func agentHeaders(in map[string]string, creds http.Header) (http.Header, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(http.Header, len(in))
	for _, name := range slices.Sorted(maps.Keys(in)) {
		if !validHeaderName(name) {
			return nil, warden.Errorf(warden.Invalid, "%q is not a valid header name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if why := refuseHeader(canon, creds); why != "" {
			e := &warden.Error{Code: warden.Denied, Rule: headerRule, Message: fmt.Sprintf("the header %s is refused: %s", canon, why)}
			if !isAgentHeader(canon) {
				e.Allowed = []string{"headers you may set: " + strings.Join(AgentHeaders, ", ")}
			}
			return nil, e
		}
		if _, dup := out[canon]; dup {
			return nil, warden.Errorf(warden.Invalid, "the header %s is given twice (header names are case-insensitive)", canon)
		}
		if !validHeaderValue(in[name]) {
			return nil, &warden.Error{Code: warden.Denied, Rule: headerRule,
				Message: fmt.Sprintf("the value of header %s is refused: it contains a line break or control character", canon)}
		}
		out[canon] = []string{in[name]}
	}
	return out, nil
}

// refuseHeader says why the agent may not set canon, or "".
func refuseHeader(canon string, creds http.Header) string {
	switch {
	case creds.Get(canon) != "":
		return "it is a credential header that warden sets from its config"
	case canon == "Authorization" || canon == "Proxy-Authorization" || canon == "Cookie":
		return "credentials come from warden's config, never from the agent"
	case canon == "Host":
		return "the host is fixed by the API's base_url"
	case canon == "Forwarded" || strings.HasPrefix(canon, "X-Forwarded-") || canon == "X-Real-Ip" ||
		canon == "X-Client-Ip" || canon == "True-Client-Ip" || canon == "Via":
		return "forwarding headers are refused: they can make the API trust a spoofed client or host"
	case canon == "X-Original-Url" || canon == "X-Rewrite-Url" ||
		canon == "X-Http-Method-Override" || canon == "X-Http-Method" || canon == "X-Method-Override":
		return "headers that override the path or method are refused: the grant judged the path and method sent"
	case isHopByHop(canon) || canon == "Content-Length":
		return "hop-by-hop and framing headers are set by warden"
	case canon == "Accept-Encoding":
		return "warden negotiates compression itself"
	case !isAgentHeader(canon):
		return "only content-negotiation and conditional headers may be set"
	}
	return ""
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses line breaks, NUL and other control characters
// (horizontal tab is allowed).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
