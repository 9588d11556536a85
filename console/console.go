// Package console serves the reviewer's console: approvals and the audit
// trail in a browser, behind the identity provider.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// Paths under which the console serves.
const (
	Prefix       = "/console/"
	CallbackPath = "/console/callback"
)

// Decider decides approval requests: approvals.Service, the same code path
// as `warden approvals approve|deny`.
type Decider interface {
	// Decide records reviewer's decision on request id; it returns a coded
	// *warden.Error (Invalid, Denied, Unavailable) when it was not taken.
	Decide(ctx context.Context, reviewer *warden.Caller, id string, approve bool, reason string) (*warden.Approval, error)
}

// Audit is the read side of the recording that the audit pages show.
type Audit interface {
	// Sessions lists sessions, newest first.
	Sessions(ctx context.Context, f SessionFilter) ([]SessionRow, error)
	// Transcript returns one session as `warden sessions replay --json`
	// prints it, or an error wrapping ErrNotFound.
	Transcript(ctx context.Context, id string) ([]byte, error)
	// Verify verifies the chain as `warden sessions verify` does and
	// returns what it established, or why it does not verify.
	Verify(ctx context.Context) (ok bool, report string)
}

// ErrNotFound: no such session.
var ErrNotFound = errors.New("not found")

// SessionFilter selects sessions; zero fields do not filter.
type SessionFilter struct {
	Subject string
	Tool    string
	Denied  bool
	Since   time.Time
	Until   time.Time
	Limit   int
}

// SessionRow is one session in the list.
type SessionRow struct {
	ID                    string
	Subject               string
	Client                string
	Transport             string
	StartedAt             time.Time
	EndedAt               *time.Time
	Calls, Denied, Failed int
}

// Options configure a Console.
type Options struct {
	Config Config
	// Claims maps the issuer's ID token claims to a reviewer; its Issuer
	// must be Config.Issuer.
	Claims ClaimMapper
	// Local is identity.local when it may review (identity.local.reviewer),
	// else nil: then it may use the console without signing in, on a
	// loopback listener only.
	Local     *warden.Caller
	Approvals warden.ApprovalStore
	Decider   Decider
	// Confirmer takes the calling user's confirmations in the browser
	// (rules with approvers: {user: browser}).
	Confirmer Confirmer
	// Audit is nil when the recording cannot be read here.
	Audit Audit
	Clock warden.Clock
	Log   *slog.Logger
	// HTTPClient reaches the issuer (default http.DefaultClient).
	HTTPClient *http.Client
}

// ClaimMapper turns verified ID token claims into a caller
// (mcp.OIDCConfig).
type ClaimMapper interface {
	CallerFromClaims(claims map[string]any) (*warden.Caller, error)
}

// Console is the console's HTTP handler.
type Console struct {
	opts     Options
	oidc     *provider // nil in local mode
	sessions *sessionTable
	pages    *template.Template
	mux      *http.ServeMux
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New builds the console. With an issuer configured it discovers it now:
// a console that cannot reach its issuer stops warden at start.
func New(ctx context.Context, opts Options) (*Console, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	c := &Console{opts: opts, sessions: newSessionTable(opts.Clock, time.Duration(opts.Config.SessionTTL))}
	switch {
	case opts.Config.Issuer != "":
		p, err := newProvider(ctx, opts.Config, opts.Claims, opts.Clock, opts.HTTPClient)
		if err != nil {
			return nil, warden.FieldErrorf("issuer", "%v", err)
		}
		c.oidc = p
	case opts.Local == nil:
		return nil, warden.FieldErrorf("issuer", "missing issuer: reviewers sign in to the console through an OpenID Connect issuer (identity.local may use it only with identity.local.reviewer: true, on a loopback listener)")
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	c.pages = pages
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/approvals", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/login", c.login)
	mux.HandleFunc("GET /console/callback", c.callback)
	mux.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	mux.HandleFunc("GET /console/approvals", c.signedIn(c.approvalsPage))
	mux.HandleFunc("GET /console/approvals/{id}", c.signedIn(c.approvalsPage))
	mux.HandleFunc("GET /console/approvals.live", c.signedIn(c.approvalsLive))
	mux.HandleFunc("POST /console/approvals/{id}/decide", c.signedIn(c.decide))
	mux.HandleFunc("GET /console/confirm/{id}", c.signedIn(c.confirmPage))
	mux.HandleFunc("POST /console/confirm/{id}", c.signedIn(c.confirm))
	mux.HandleFunc("GET /console/sessions", c.signedIn(c.auditor(c.sessionsPage)))
	mux.HandleFunc("GET /console/sessions/{id}", c.signedIn(c.auditor(c.replayPage)))
	mux.HandleFunc("GET /console/verify", c.signedIn(c.auditor(c.verifyPage)))
	c.mux = mux
	return c, nil
}

// ServeHTTP guards every request and routes it.
//
// Every response forbids inline script, framing and caching. A request is
// refused before it is routed when it arrived on a loopback listener with
// a Host that is neither a loopback name nor base_url's (DNS rebinding),
// and a state-changing request (anything but GET and HEAD) when its Origin
// is not the console's own or it lacks the session's CSRF token (checked
// by signedIn).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if c.onLoopback(r) && !loopbackName(hostOnly(r.Host)) && !c.baseHost(r.Host) {
		c.refuse(w, http.StatusForbidden, "the Host header does not name this loopback server: use localhost or a loopback address")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		origin, ok := c.origin(r)
		if got := r.Header.Values("Origin"); !ok || len(got) != 1 || got[0] != origin {
			c.refuse(w, http.StatusForbidden, "cross-site request refused: the console accepts changes only from its own pages")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	c.mux.ServeHTTP(w, r)
}

// origin is the console's own origin: from base_url, or on a loopback
// listener without one, the loopback Host the browser used.
func (c *Console) origin(r *http.Request) (string, bool) {
	if b := c.opts.Config.BaseURL; b != "" {
		u, err := url.Parse(b)
		if err != nil {
			return "", false
		}
		return u.Scheme + "://" + u.Host, true
	}
	if c.onLoopback(r) && loopbackName(hostOnly(r.Host)) {
		return "http://" + r.Host, true
	}
	return "", false
}

// baseHost reports whether host (a Host header) is base_url's: a console
// on loopback behind a reverse proxy is addressed by its public name.
func (c *Console) baseHost(host string) bool {
	u, err := url.Parse(c.opts.Config.BaseURL)
	return c.opts.Config.BaseURL != "" && err == nil && strings.EqualFold(u.Host, host)
}

// secure reports whether cookies must be Secure: always, except for a
// console reached over http on a loopback host.
func (c *Console) secure(r *http.Request) bool {
	origin, ok := c.origin(r)
	return !ok || !strings.HasPrefix(origin, "http://")
}

func (c *Console) onLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// signedIn runs next for a request of a live console session; others are
// sent to sign in (GET) or refused (anything else, and any request whose
// CSRF token does not match its session's).
func (c *Console) signedIn(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, ".live") {
				c.render(w, http.StatusUnauthorized, "signin", c.pageData(r, nil, map[string]any{"Next": r.URL.Path}))
				return
			}
			c.refuse(w, http.StatusUnauthorized, "your console session has ended: sign in again")
			return
		}
		if s.caller.Method == "local" && !c.onLoopback(r) {
			c.refuse(w, http.StatusForbidden, "the local identity may use the console only on a loopback listener")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				c.refuse(w, http.StatusForbidden, "the form's CSRF token is missing or does not match your session: reload the page and try again")
				return
			}
		}
		next(w, r, s)
	}
}

// auditor restricts next to console.auditors.
func (c *Console) auditor(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if !c.opts.Config.Auditors.Includes(s.caller) {
			c.renderError(w, r, s, http.StatusForbidden, "The audit pages are for console.auditors; you are not one of them.")
			return
		}
		if c.opts.Audit == nil {
			c.renderError(w, r, s, http.StatusServiceUnavailable, "The recording cannot be read by this console.")
			return
		}
		next(w, r, s)
	}
}

func (c *Console) refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
