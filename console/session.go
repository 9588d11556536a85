package console

import (
	"net/http"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
)

// Cookie names. The session cookie is HttpOnly, SameSite=Strict, scoped
// to /console/ and Secure unless the console is served over http on
// loopback; the login cookie binds the issuer's answer to the browser that
// asked (SameSite=Lax: the answer arrives as a navigation from the
// issuer's site).
const (
	sessionCookie = "warden_console"
	loginCookie   = "warden_console_login"
)

// Bounds on what the tables hold, so that unauthenticated requests
// (starting a sign-in) cannot grow them without limit.
const (
	maxSessions   = 10000
	maxLogins     = 10000
	loginLifetime = 10 * time.Minute
)

// session is a signed-in reviewer. It lives in memory only: a restart
// signs everyone out, and nothing in the cookie is worth stealing from a
// disk.
type session struct {
	id      string
	caller  *warden.Caller
	csrf    string
	expires time.Time
	// flash is shown once on the next page.
	flash string
}

// login is a sign-in in progress: what the callback must see again.
type login struct {
	verifier, nonce string
	next            string
	expires         time.Time
}

type sessionTable struct {
	clock warden.Clock
	ttl   time.Duration

	mu       sync.Mutex
	sessions map[string]*session
	logins   map[string]*login
}

func newSessionTable(clock warden.Clock, ttl time.Duration) *sessionTable {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &sessionTable{clock: clock, ttl: ttl, sessions: map[string]*session{}, logins: map[string]*login{}}
}

// sweep drops what has expired; the caller holds mu.
func (t *sessionTable) sweep(now time.Time) {
	for k, s := range t.sessions {
		if !now.Before(s.expires) {
			delete(t.sessions, k)
		}
	}
	for k, l := range t.logins {
		if !now.Before(l.expires) {
			delete(t.logins, k)
		}
	}
}

func (t *sessionTable) create(caller *warden.Caller) (*session, bool) {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	if len(t.sessions) >= maxSessions {
		return nil, false
	}
	s := &session{id: randomToken(), caller: caller, csrf: randomToken(), expires: now.Add(t.ttl)}
	t.sessions[s.id] = s
	return s, true
}

func (t *sessionTable) get(id string) *session {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(t.sessions, id)
		return nil
	}
	return s
}

func (t *sessionTable) end(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, id)
}

// takeFlash returns and clears s's flash.
func (t *sessionTable) takeFlash(s *session) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (t *sessionTable) setFlash(s *session, f string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.flash = f
}

func (t *sessionTable) startLogin(state string, l *login) bool {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	if len(t.logins) >= maxLogins {
		return false
	}
	l.expires = now.Add(loginLifetime)
	t.logins[state] = l
	return true
}

// takeLogin returns the sign-in started with state, once.
func (t *sessionTable) takeLogin(state string) *login {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.logins[state]
	delete(t.logins, state)
	if l == nil || !now.Before(l.expires) {
		return nil
	}
	return l
}

// session returns the live session r's cookie names, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.sessions.get(ck.Value)
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int, same http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: same})
}
