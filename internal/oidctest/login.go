package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Login is who the authorization endpoint signs in, without asking: the
// test plays the person at the identity provider's login page.
type Login struct {
	// ClientID is the only client the endpoints serve; ClientSecret, when
	// set, must be presented at the token endpoint.
	ClientID, ClientSecret string
	// Claims go into the ID token over iss, aud (ClientID), iat, exp and
	// nonce; "sub" should be among them.
	Claims map[string]any
}

// grant is an authorization code waiting to be redeemed.
type grant struct {
	login       Login
	redirectURI string
	challenge   string
	nonce       string
	expires     time.Time
}

// SignIn makes the authorization endpoint sign in l on every request until
// it is called again; with a zero Login (ClientID "") it refuses, as a
// user who does not sign in.
func (p *Provider) SignIn(l Login) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := l
	c.Claims = maps.Clone(l.Claims)
	p.login = &c
}

// serveAuthorize is the authorization code endpoint with PKCE (S256
// only): it checks the client and the challenge and redirects back with a
// code for the signed-in user, or with error=access_denied when nobody
// signs in.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	login := p.login
	p.mu.Unlock()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || login == nil || q.Get("client_id") != login.ClientID {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE with S256 is required")
	default:
		code := randomString()
		p.mu.Lock()
		p.codes[code] = &grant{login: *login, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			nonce: q.Get("nonce"), expires: p.Now().Add(time.Minute)}
		p.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// serveToken redeems a code once, checking the client, its secret, the
// redirect_uri and the PKCE verifier, and returns an ID token signed with
// RS256.
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, "invalid_request")
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g := p.codes[code]
	delete(p.codes, code) // a code is redeemed once, even by a failed attempt
	p.mu.Unlock()
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if g == nil || r.PostForm.Get("grant_type") != "authorization_code" || !p.Now().Before(g.expires) {
		tokenError(w, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if clientID != g.login.ClientID || secret != g.login.ClientSecret || r.PostForm.Get("redirect_uri") != g.redirectURI ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		tokenError(w, "invalid_grant")
		return
	}
	claims := maps.Clone(g.login.Claims)
	claims["aud"] = g.login.ClientID
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	idToken := p.Token(noT{}, claims)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]any{"access_token": randomString(), "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// noT lets the token endpoint use Token, which reports failures through a
// testing.TB, from a server goroutine: a failure there panics (and the
// server answers 500) rather than calling Fatal off the test goroutine.
type noT struct{ testing.TB }

func (noT) Helper() {}

func (noT) Fatalf(format string, args ...any) { panic("oidctest: token endpoint: " + format) }
