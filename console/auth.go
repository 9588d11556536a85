package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/warden-mcp/warden"
	"golang.org/x/oauth2"
)

// provider is the console's OpenID Connect client.
type provider struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	claims   ClaimMapper
	client   *http.Client
}

func newProvider(ctx context.Context, cfg Config, claims ClaimMapper, clock warden.Clock, client *http.Client) (*provider, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if claims == nil {
		return nil, fmt.Errorf("no claim mapping for %s", cfg.Issuer)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("cannot discover %s", cfg.Issuer)
	}
	ep := p.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, fmt.Errorf("the discovery document of %s names no authorization or token endpoint", cfg.Issuer)
	}
	return &provider{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: ep,
			RedirectURL: cfg.RedirectURL, Scopes: []string{oidc.ScopeOpenID, "profile", "email"}},
		// go-oidc checks signature (asymmetric algorithms only: it
		// defaults to RS256 and refuses none and HMAC), issuer, audience
		// (our client id) and expiry with the console's clock.
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: clock,
			SupportedSigningAlgs: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}}),
		claims: claims,
		client: client,
	}, nil
}

// redirectURL is the configured redirect URI, or the callback under the
// console's origin.
func (c *Console) redirectURL(r *http.Request) (string, bool) {
	if u := c.opts.Config.RedirectURL; u != "" {
		return u, true
	}
	origin, ok := c.origin(r)
	return origin + CallbackPath, ok
}

// login starts a sign-in: with an issuer, the authorization code flow with
// PKCE (S256), a fresh state bound to this browser by a cookie, and a
// nonce; without one, the local reviewer on a loopback listener.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		// A sign-in another site starts could log the browser in as
		// someone the attacker chose (login CSRF); the console's own
		// link and a typed URL are same-origin or none.
		c.refuse(w, http.StatusForbidden, "cross-site request refused: open the console directly to sign in")
		return
	}
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/console/approvals"
	}
	if c.oidc == nil {
		if !c.onLoopback(r) {
			c.refuse(w, http.StatusForbidden, "the local identity may use the console only on a loopback listener; configure console.issuer to sign in through your identity provider")
			return
		}
		c.startSession(w, r, c.opts.Local, next)
		return
	}
	redirect, ok := c.redirectURL(r)
	if !ok {
		c.refuse(w, http.StatusForbidden, "set console.base_url: the console cannot tell its own address")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	if !c.sessions.startLogin(state, &login{verifier: verifier, nonce: nonce, next: next}) {
		c.refuse(w, http.StatusServiceUnavailable, "too many sign-ins in progress; try again in a few minutes")
		return
	}
	c.setCookie(w, r, loginCookie, state, int(loginLifetime/time.Second), http.SameSiteLaxMode)
	cfg := c.oidc.oauth
	cfg.RedirectURL = redirect
	http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
}

// callback takes the issuer's answer: the state must be the one this
// browser started (its login cookie) and still open, the code is redeemed
// with the PKCE verifier, and the ID token must verify and carry the
// nonce.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	ck, err := r.Cookie(loginCookie)
	c.setCookie(w, r, loginCookie, "", -1, http.SameSiteLaxMode)
	if err != nil || state == "" || ck.Value != state {
		c.signinFailed(w, r, "the answer from the identity provider does not belong to a sign-in this browser started")
		return
	}
	l := c.sessions.takeLogin(state)
	if l == nil {
		c.signinFailed(w, r, "the sign-in took too long or was already completed")
		return
	}
	if e := q.Get("error"); e != "" {
		c.signinFailed(w, r, "the identity provider refused the sign-in ("+warden.Printable(clip(e, 80))+")")
		return
	}
	redirect, ok := c.redirectURL(r)
	if !ok {
		c.signinFailed(w, r, "set console.base_url: the console cannot tell its own address")
		return
	}
	cfg := c.oidc.oauth
	cfg.RedirectURL = redirect
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), c.oidc.client), 15*time.Second)
	defer cancel()
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		c.opts.Log.Warn("console sign-in: the code exchange failed")
		c.signinFailed(w, r, "the identity provider did not redeem the sign-in code")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		c.signinFailed(w, r, "the identity provider returned no ID token")
		return
	}
	idt, err := c.oidc.verifier.Verify(ctx, raw)
	if err != nil {
		c.signinFailed(w, r, "the ID token does not verify")
		return
	}
	if badNonce(idt.Nonce, l.nonce) {
		c.signinFailed(w, r, "the ID token was not issued for this sign-in (nonce)")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		c.signinFailed(w, r, "the ID token's claims cannot be read")
		return
	}
	caller, err := c.oidc.claims.CallerFromClaims(claims)
	if err != nil {
		c.signinFailed(w, r, warden.AsError(err).Message)
		return
	}
	c.startSession(w, r, caller, l.next)
}

func badNonce(got, want string) bool { return got == "" || got != want }

// startSession signs caller in and sends the browser on to next. The
// session cookie is SameSite=Strict, and a browser arriving from the
// issuer's site would not send it on a redirect that is part of that
// cross-site navigation; so the answer is a page of our own that moves on.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, caller *warden.Caller, next string) {
	s, ok := c.sessions.create(caller)
	if !ok {
		c.refuse(w, http.StatusServiceUnavailable, "too many console sessions; try again later")
		return
	}
	c.setCookie(w, r, sessionCookie, s.id, int(c.sessions.ttl/time.Second), http.SameSiteStrictMode)
	c.opts.Log.Info("console sign-in", "subject", warden.Printable(caller.Subject), "method", caller.Method)
	c.render(w, http.StatusOK, "continue", c.pageData(r, nil, map[string]any{"Next": next, "Who": caller.Subject}))
}

func (c *Console) signinFailed(w http.ResponseWriter, r *http.Request, why string) {
	c.render(w, http.StatusUnauthorized, "signin", c.pageData(r, nil, map[string]any{"Next": "/console/approvals", "Error": why}))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.id)
	c.setCookie(w, r, sessionCookie, "", -1, http.SameSiteStrictMode)
	c.render(w, http.StatusOK, "signin", c.pageData(r, nil, map[string]any{"Next": "/console/approvals", "Notice": "You are signed out."}))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
