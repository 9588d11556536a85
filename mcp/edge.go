package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// edge guards every HTTP endpoint before anything else runs.
//
// A web page must never drive warden, least of all a loopback warden with
// the local identity, so a request is refused (403) before it is
// authenticated or parsed when:
//   - it carries an Origin that is not in http.allowed_origins (default
//     none), or more than one Origin;
//   - it carries no Origin but a browser marked it cross-site or same-site
//     (Sec-Fetch-Site), as for an <img> or a form a page submits;
//   - it arrived on a loopback address with a Host that is not a loopback
//     name or the host of identity.resource (DNS rebinding: a page whose
//     name now resolves to 127.0.0.1).
//
// No response carries Access-Control-Allow-Origin other than an allowed
// origin: whatever the MCP library sets is replaced. Each write of the
// response must finish within the write timeout, so a client that stops
// reading is cut while a stream whose writes complete lives on.
func (s *Server) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rule, reason := s.crossSite(r); reason != "" {
			code := "origin_not_allowed"
			if rule == "http.host" {
				code = "host_not_allowed"
			}
			s.refuseEdge(w, r, http.StatusForbidden, code, &warden.Error{Code: warden.Denied, Rule: rule, Message: reason})
			return
		}
		origin := r.Header.Get("Origin") // allowed, when present
		ew := &edgeWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: time.Duration(s.http.WriteTimeout), origin: origin}
		if origin != "" && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			ew.WriteHeader(http.StatusNoContent)
			return
		}
		defer ew.finish()
		next.ServeHTTP(ew, r.WithContext(withSplicer(r.Context(), &ew.splice)))
	})
}

// crossSite returns the rule and the reason a request looks like a
// browser's from a page that may not call warden, or "", "".
func (s *Server) crossSite(r *http.Request) (rule, reason string) {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isLoopback(local) && !s.loopbackHost(r.Host) {
		return "http.host", fmt.Sprintf("the Host header %q does not name this loopback server: requests must address it as localhost or a loopback address", clip(r.Host, clipLen))
	}
	switch origins := r.Header.Values("Origin"); {
	case len(origins) > 1:
		return "http.allowed_origins", "the request carries more than one Origin header"
	case len(origins) == 1 && !slices.Contains(s.http.AllowedOrigins, origins[0]):
		return "http.allowed_origins", fmt.Sprintf("origin %q may not call warden: browser pages are refused unless their origin is listed in http.allowed_origins", clip(origins[0], clipLen))
	case len(origins) == 0:
		switch site := r.Header.Get("Sec-Fetch-Site"); site {
		case "", "none", "same-origin":
		default:
			return "http.allowed_origins", "a browser sent this request from another site without naming its origin"
		}
	}
	return "", ""
}

// loopbackHost reports whether host (a Host header) names a loopback
// address, localhost, or the host of identity.resource.
func (s *Server) loopbackHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().IsLoopback()
	}
	if res := s.opts.Identity.Resource; res != "" {
		if u, err := url.Parse(res); err == nil && strings.EqualFold(u.Hostname(), h) {
			return true
		}
	}
	return false
}

// refuseEdge answers and records a request refused before authentication.
func (s *Server) refuseEdge(w http.ResponseWriter, r *http.Request, status int, code string, e *warden.Error) {
	stopReading(w)
	id := s.refusals.record(r.Context(), r, nil, e)
	writeRefusal(w, status, code, e.Message, id)
}

// stopReading makes sure nothing more is read from a refused request's
// connection: net/http would otherwise drain up to 256 KiB of an unread
// body after the handler returns, with no deadline, for as long as a slow
// client cares to trickle it. The connection closes after the answer.
func stopReading(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
}

func writeRefusal(w http.ResponseWriter, status int, code, message, callID string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": message, "call_id": callID})
}

// edgeWriter is the response writer every handler behind edge sees.
type edgeWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	origin  string // the request's allowed Origin, or ""
	wrote   bool
	// splice holds the tools/call result values this request's handler
	// built (splice.go); Write puts them in place of their placeholders.
	splice splicer
	// held is the end of the last write when it could begin a placeholder:
	// it is sent with the next write (or when the handler is done), so a
	// placeholder split across writes is still found.
	held []byte
}

func (w *edgeWriter) commit() {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.Header()
	// mcp-go's SSE transport answers "*" unless it handles CORS itself;
	// warden decides.
	h.Del("Access-Control-Allow-Origin")
	h.Del("Access-Control-Allow-Credentials")
	if w.origin != "" {
		h.Set("Access-Control-Allow-Origin", w.origin)
		h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate")
		h.Add("Vary", "Origin")
	}
}

func (w *edgeWriter) deadline() {
	if w.timeout > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *edgeWriter) WriteHeader(status int) {
	w.commit()
	w.deadline()
	w.ResponseWriter.WriteHeader(status)
}

func (w *edgeWriter) Write(p []byte) (int, error) {
	w.commit()
	w.deadline()
	n := len(p)
	if len(w.held) > 0 {
		p = append(w.held, p...)
		w.held = nil
	}
	if bytes.Contains(p, spliceNonce) {
		if _, err := w.writeSpliced(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	if k := nonceTail(p); k > 0 {
		w.held = bytes.Clone(p[len(p)-k:])
		p = p[:len(p)-k]
	}
	if _, err := w.ResponseWriter.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// writeSpliced writes p with its placeholders replaced, or nothing of it
// when one is not this request's (splice.go).
func (w *edgeWriter) writeSpliced(p []byte) (int, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	out, err := w.splice.rewrite((*buf)[:0], p)
	*buf = out
	if err != nil {
		return 0, err
	}
	if _, err := w.ResponseWriter.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *edgeWriter) Flush() {
	w.commit()
	w.deadline()
	_ = w.rc.Flush()
}

// finish gives the server's final flush of the response a fresh write
// deadline.
func (w *edgeWriter) finish() {
	w.deadline()
	if len(w.held) > 0 {
		// Less than the nonce: no placeholder.
		_, _ = w.ResponseWriter.Write(w.held)
		w.held = nil
	}
	w.splice.release()
}

func (w *edgeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readBody reads a request body into memory, bounded in size and time,
// before anything parses it, and puts it back on r. It returns the HTTP
// status and error to refuse with when the body is too large (413), too
// slow (408) or broken (400).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, status int, e *warden.Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, nil
	}
	max := s.http.MaxRequestBytes
	tooLarge := &warden.Error{Code: warden.Invalid, Rule: "http.max_request_bytes",
		Message: fmt.Sprintf("the request body is larger than %d bytes (http.max_request_bytes)", max)}
	if r.ContentLength > max {
		stopReading(w) // not read, not drained
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(time.Duration(s.http.ReadTimeout)))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		stopReading(w)
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	case errors.As(err, &ne) && ne.Timeout():
		stopReading(w)
		return nil, http.StatusRequestTimeout, &warden.Error{Code: warden.Invalid, Rule: "http.read_timeout",
			Message: fmt.Sprintf("the request body did not arrive within %s (http.read_timeout)", time.Duration(s.http.ReadTimeout))}
	case err != nil:
		stopReading(w)
		return nil, http.StatusBadRequest, &warden.Error{Code: warden.Invalid, Rule: "http.body", Message: "the request body could not be read"}
	}
	// The body is in memory: no deadline on the connection while the call
	// runs, or the server's wait for the client to hang up would cut it.
	_ = rc.SetReadDeadline(time.Time{})
	r.Body = &heldBody{Reader: bytes.NewReader(body), b: body}
	r.ContentLength = int64(len(body))
	return body, 0, nil
}

// heldBody is a request body read whole by readBody, readable again as a
// body, and as the bytes themselves by a handler further in (directHTTP)
// that knows its type.
type heldBody struct {
	*bytes.Reader
	b []byte
}

func (*heldBody) Close() error { return nil }

// headerHook calls before once, just before the response's header is
// written.
type headerHook struct {
	http.ResponseWriter
	before func(http.Header)
	done   bool
}

func (w *headerHook) commit() {
	if !w.done {
		w.done = true
		w.before(w.Header())
	}
}

func (w *headerHook) WriteHeader(status int) { w.commit(); w.ResponseWriter.WriteHeader(status) }

func (w *headerHook) Write(p []byte) (int, error) { w.commit(); return w.ResponseWriter.Write(p) }

func (w *headerHook) Flush() { w.commit(); _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *headerHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ http.Flusher = (*edgeWriter)(nil)
	_ http.Flusher = (*headerHook)(nil)
)
