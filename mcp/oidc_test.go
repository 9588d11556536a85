package mcp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/oidctest"
)

// oidcClock is a settable clock shared by a verifier and the providers
// that mint its tokens.
type oidcClock struct {
	mu  sync.Mutex
	now time.Time
}

func newOIDCClock() *oidcClock {
	return &oidcClock{now: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *oidcClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *oidcClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newOIDCProvider starts a test identity provider on clock.
func newOIDCProvider(t testing.TB, clock *oidcClock) *oidctest.Provider {
	t.Helper()
	p := oidctest.New(t)
	p.Now = clock.Now
	return p
}

// newTestVerifier builds a verifier trusting p with audience "warden" and
// groups_claim "groups", after edit changes the config.
func newTestVerifier(t testing.TB, p *oidctest.Provider, clock *oidcClock, edit func(*OIDCConfig)) *Verifier {
	t.Helper()
	cfg := OIDCConfig{Issuer: p.Issuer(), Audience: "warden", GroupsClaim: "groups"}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewVerifier(context.Background(), []OIDCConfig{cfg}, clock.Now, nil)
	if err != nil {
		t.Fatalf("NewVerifier(%s) = %v; want a verifier", cfg.Issuer, err)
	}
	return v
}

// checkRefusal fails t unless err is a *warden.Error with code whose
// message contains want and which nowhere contains the token.
func checkRefusal(t *testing.T, token string, caller *warden.Caller, err error, code warden.Code, want string) {
	t.Helper()
	var e *warden.Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify(...) = %+v, %v; want a *warden.Error %s %q", caller, err, code, want)
	}
	if caller != nil || e.Code != code || !strings.Contains(e.Message, want) {
		t.Errorf("Verify(...) = %+v, %s %q; want %s %q", caller, e.Code, e.Message, code, want)
	}
	texts := []string{e.Error(), e.Message}
	if e.Err != nil {
		texts = append(texts, e.Err.Error())
	}
	for _, s := range texts {
		for _, part := range strings.Split(token, ".") {
			if len(part) >= 8 && strings.Contains(s, part) {
				t.Errorf("error %q contains part of the token", s)
			}
		}
	}
}

func TestVerifierVerify(t *testing.T) {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	other := newOIDCProvider(t, clock) // a real issuer warden does not trust
	v := newTestVerifier(t, p, clock, nil)
	now := clock.Now()
	alice := func(groups ...string) *warden.Caller {
		return &warden.Caller{Subject: "alice@example.com", Issuer: p.Issuer(), Email: "alice@example.com", Groups: groups, Method: "oidc"}
	}
	profile := map[string]any{"email": "alice@example.com", "groups": []string{"analysts", "dba"}}

	tests := []struct {
		name   string
		token  func(t *testing.T) string
		want   *warden.Caller
		code   warden.Code
		reason string
	}{
		{name: "AcceptsRS256", token: func(t *testing.T) string { return p.Token(t, profile) }, want: alice("analysts", "dba")},
		{name: "AcceptsPS256", token: func(t *testing.T) string { return p.Token(t, profile, oidctest.WithAlg(jose.PS256)) }, want: alice("analysts", "dba")},
		{name: "AcceptsES256", token: func(t *testing.T) string { return p.Token(t, profile, oidctest.WithAlg(jose.ES256)) }, want: alice("analysts", "dba")},
		{name: "AcceptsEdDSA", token: func(t *testing.T) string { return p.Token(t, profile, oidctest.WithAlg(jose.EdDSA)) }, want: alice("analysts", "dba")},
		{name: "AcceptsAudienceList", token: func(t *testing.T) string {
			return p.Token(t, map[string]any{"aud": []string{"billing", "warden"}, "email": "alice@example.com"})
		}, want: alice()},
		{name: "AcceptsExpiredWithinSkew", token: func(t *testing.T) string {
			return p.Token(t, map[string]any{"exp": now.Add(-20 * time.Second), "email": "alice@example.com"})
		}, want: alice()},
		{name: "AcceptsNotBeforeWithinSkew", token: func(t *testing.T) string {
			return p.Token(t, map[string]any{"nbf": now.Add(20 * time.Second), "email": "alice@example.com"})
		}, want: alice()},

		{name: "RefusesEmptyToken", token: func(*testing.T) string { return "" }, code: warden.Unauthenticated, reason: "missing bearer token"},
		{name: "RefusesGarbage", token: func(*testing.T) string { return "not-a-jwt-at-all" }, code: warden.Unauthenticated, reason: "token is malformed"},
		{name: "RefusesWrongAudience", token: func(t *testing.T) string { return p.Token(t, map[string]any{"aud": "billing"}) },
			code: warden.Unauthenticated, reason: `token audience does not include "warden"`},
		{name: "RefusesUntrustedIssuer", token: func(t *testing.T) string { return other.Token(t, nil) },
			code: warden.Unauthenticated, reason: "token issuer is not trusted"},
		{name: "RefusesTrustedIssuerClaimSignedByAnotherIssuer", token: func(t *testing.T) string {
			return other.Token(t, map[string]any{"iss": p.Issuer()}) // same kid "rsa-1", other key
		}, code: warden.Unauthenticated, reason: "token signature is invalid"},
		{name: "RefusesExpired", token: func(t *testing.T) string { return p.Token(t, map[string]any{"exp": now.Add(-time.Minute)}) },
			code: warden.Unauthenticated, reason: "token expired"},
		{name: "RefusesNotYetValid", token: func(t *testing.T) string { return p.Token(t, map[string]any{"nbf": now.Add(time.Minute)}) },
			code: warden.Unauthenticated, reason: "token not valid yet"},
		{name: "RefusesIssuedInTheFuture", token: func(t *testing.T) string {
			return p.Token(t, map[string]any{"iat": now.Add(time.Hour), "exp": now.Add(2 * time.Hour)})
		}, code: warden.Unauthenticated, reason: "token not valid yet (issued in the future)"},
		{name: "RefusesMissingExp", token: func(t *testing.T) string { return p.Token(t, map[string]any{"exp": nil}) },
			code: warden.Unauthenticated, reason: "token has no expiry"},
		{name: "RefusesNonNumericExp", token: func(t *testing.T) string { return p.Token(t, map[string]any{"exp": "tomorrow"}) },
			code: warden.Unauthenticated, reason: "token claims are malformed"},
		{name: "RefusesMissingSubject", token: func(t *testing.T) string { return p.Token(t, map[string]any{"sub": nil}) },
			code: warden.Unauthenticated, reason: "token has no subject"},
		{name: "RefusesAlgNone", token: func(t *testing.T) string { return p.Token(t, nil, oidctest.Unsigned()) },
			code: warden.Unauthenticated, reason: "token signing algorithm none is not allowed"},
		{name: "RefusesHS256SignedWithThePublicKey", token: func(t *testing.T) string { return p.Token(t, nil, oidctest.HS256WithPublicKey()) },
			code: warden.Unauthenticated, reason: "token signing algorithm HS256 is not allowed"},
		{name: "RefusesUnknownKID", token: func(t *testing.T) string { return p.Token(t, nil, oidctest.WithKID("rsa-404")) },
			code: warden.Unauthenticated, reason: "token signing key is not among the issuer's published keys"},
		{name: "RefusesKeyOfAnotherType", token: func(t *testing.T) string {
			return p.Token(t, nil, oidctest.WithAlg(jose.ES256), oidctest.WithKID("rsa-1"))
		}, code: warden.Unauthenticated, reason: "token signature is invalid"},
		{name: "RefusesTamperedPayload", token: func(t *testing.T) string { return p.Token(t, nil, oidctest.Tamper()) },
			code: warden.Unauthenticated, reason: "token signature is invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token(t)
			got, err := v.Verify(context.Background(), token)
			if tc.want != nil {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Verify(...) = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			checkRefusal(t, token, got, err, tc.code, tc.reason)
		})
	}
}

func TestVerifierClaims(t *testing.T) {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	tests := []struct {
		name   string
		edit   func(*OIDCConfig)
		claims map[string]any
		want   *warden.Caller // Issuer and Method are filled in
		reason string         // when the token is refused instead
	}{
		{name: "GroupsFromString", claims: map[string]any{"groups": "analysts"},
			want: &warden.Caller{Subject: "alice@example.com", Groups: []string{"analysts"}}},
		{name: "GroupsFromListIgnoringNonStrings", claims: map[string]any{"groups": []any{"analysts", 7, "dba", nil, ""}},
			want: &warden.Caller{Subject: "alice@example.com", Groups: []string{"analysts", "dba"}}},
		{name: "GroupsFromNestedPath", edit: func(c *OIDCConfig) { c.GroupsClaim = "realm_access.roles" },
			claims: map[string]any{"realm_access": map[string]any{"roles": []string{"dba"}}},
			want:   &warden.Caller{Subject: "alice@example.com", Groups: []string{"dba"}}},
		{name: "GroupsFromClaimNamedWithDots", edit: func(c *OIDCConfig) { c.GroupsClaim = "https://warden.example.com/groups" },
			claims: map[string]any{"https://warden.example.com/groups": []string{"sre"}},
			want:   &warden.Caller{Subject: "alice@example.com", Groups: []string{"sre"}}},
		{name: "NoGroupsWhenClaimAbsent", edit: func(c *OIDCConfig) { c.GroupsClaim = "realm_access.roles" },
			claims: map[string]any{"realm_access": map[string]any{"other": "x"}},
			want:   &warden.Caller{Subject: "alice@example.com"}},
		{name: "NoGroupsWhenNotConfigured", edit: func(c *OIDCConfig) { c.GroupsClaim = "" },
			claims: map[string]any{"groups": []string{"analysts"}},
			want:   &warden.Caller{Subject: "alice@example.com"}},
		{name: "CustomSubjectAndEmailClaims", edit: func(c *OIDCConfig) { c.SubjectClaim, c.EmailClaim = "oid", "upn" },
			claims: map[string]any{"oid": "0b9a-4c", "upn": "alice@corp.example"},
			want:   &warden.Caller{Subject: "0b9a-4c", Email: "alice@corp.example"}},
		{name: "DropsUnverifiedEmail", claims: map[string]any{"email": "bob@example.com", "email_verified": false},
			want: &warden.Caller{Subject: "alice@example.com"}},
		{name: "KeepsVerifiedEmail", claims: map[string]any{"email": "alice@example.com", "email_verified": true},
			want: &warden.Caller{Subject: "alice@example.com", Email: "alice@example.com"}},
		{name: "RefusesMissingCustomSubject", edit: func(c *OIDCConfig) { c.SubjectClaim = "oid" },
			reason: `token has no subject (claim "oid")`},
		{name: "RefusesNonStringSubject", edit: func(c *OIDCConfig) { c.SubjectClaim = "oid" },
			claims: map[string]any{"oid": 42}, reason: `token has no subject (claim "oid")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, p, clock, tc.edit)
			token := p.Token(t, tc.claims)
			got, err := v.Verify(context.Background(), token)
			if tc.want == nil {
				checkRefusal(t, token, got, err, warden.Unauthenticated, tc.reason)
				return
			}
			tc.want.Issuer, tc.want.Method = p.Issuer(), "oidc"
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Verify(%v) = %+v, %v; want %+v", tc.claims, got, err, tc.want)
			}
		})
	}
}

func TestVerifierRequiredScopes(t *testing.T) {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	v := newTestVerifier(t, p, clock, func(c *OIDCConfig) { c.RequiredScopes = []string{"warden:tools", "mcp"} })
	if got, want := v.Scopes(), []string{"mcp", "warden:tools"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Scopes() = %v; want %v", got, want)
	}
	tests := []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"AcceptsScopeString", map[string]any{"scope": "openid mcp warden:tools"}, true},
		{"AcceptsScpList", map[string]any{"scp": []string{"warden:tools", "mcp"}}, true},
		{"AcceptsScpString", map[string]any{"scp": "mcp warden:tools"}, true},
		{"AcceptsScopesSplitAcrossClaims", map[string]any{"scope": "mcp", "scp": []string{"warden:tools"}}, true},
		{"DeniesMissingScope", map[string]any{"scope": "openid mcp"}, false},
		{"DeniesNoScopeClaim", nil, false},
		{"DeniesScopePrefix", map[string]any{"scope": "mcp warden:tool"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := p.Token(t, tc.claims)
			got, err := v.Verify(context.Background(), token)
			if tc.ok {
				if err != nil || got == nil || got.Subject != "alice@example.com" {
					t.Errorf("Verify(%v) = %+v, %v; want alice", tc.claims, got, err)
				}
				return
			}
			checkRefusal(t, token, got, err, warden.Denied, "token lacks the required scope warden:tools")
			if e := warden.AsError(err); e.Rule != "insufficient_scope" {
				t.Errorf("Verify(%v) rule = %q; want insufficient_scope", tc.claims, e.Rule)
			}
		})
	}
}

func TestVerifierKeySet(t *testing.T) {
	t.Run("UnknownKIDsRefetchAtMostOncePerMinRefresh", func(t *testing.T) {
		clock := newOIDCClock()
		p := newOIDCProvider(t, clock)
		v := newTestVerifier(t, p, clock, nil)
		before := p.JWKSFetches()
		for i := range 50 {
			token := p.Token(t, nil, oidctest.WithKID(fmt.Sprintf("random-%d", i)))
			got, err := v.Verify(context.Background(), token)
			checkRefusal(t, token, got, err, warden.Unauthenticated, "signing key is not among")
		}
		if got := p.JWKSFetches() - before; got > 1 {
			t.Errorf("50 unknown kids within minRefresh fetched the JWKS %d times; want at most 1", got)
		}

		clock.Advance(defaultMinRefresh)
		before = p.JWKSFetches()
		var wg sync.WaitGroup
		for i := range 20 {
			token := p.Token(t, nil, oidctest.WithKID(fmt.Sprintf("later-%d", i)))
			wg.Go(func() { _, _ = v.Verify(context.Background(), token) })
		}
		wg.Wait()
		if got := p.JWKSFetches() - before; got != 1 {
			t.Errorf("20 concurrent unknown kids after minRefresh fetched the JWKS %d times; want 1", got)
		}
	})

	t.Run("KeyRotationMidRun", func(t *testing.T) {
		clock := newOIDCClock()
		p := newOIDCProvider(t, clock)
		v := newTestVerifier(t, p, clock, nil)
		v.noCache = true
		old := p.Token(t, nil)
		if _, err := v.Verify(context.Background(), old); err != nil {
			t.Fatalf("Verify(old) = %v; want ok", err)
		}

		clock.Advance(time.Minute)
		kid := p.Rotate(t)
		before := p.JWKSFetches()
		token := p.Token(t, nil)
		for range 3 {
			if got, err := v.Verify(context.Background(), token); err != nil || got.Subject != "alice@example.com" {
				t.Fatalf("Verify(token with new kid %s) = %+v, %v; want alice", kid, got, err)
			}
		}
		if got := p.JWKSFetches() - before; got != 1 {
			t.Errorf("rotation cost %d JWKS fetches; want 1", got)
		}
		// The withdrawn key no longer verifies.
		got, err := v.Verify(context.Background(), old)
		checkRefusal(t, old, got, err, warden.Unauthenticated, "signing key is not among")
	})

	t.Run("KeysOlderThanMaxAgeAreRefetched", func(t *testing.T) {
		clock := newOIDCClock()
		p := newOIDCProvider(t, clock)
		v := newTestVerifier(t, p, clock, nil)
		clock.Advance(defaultKeyMaxAge + time.Second)
		before := p.JWKSFetches()
		if _, err := v.Verify(context.Background(), p.Token(t, nil)); err != nil {
			t.Fatalf("Verify(...) = %v; want ok", err)
		}
		if got := p.JWKSFetches() - before; got != 1 {
			t.Errorf("a verification with keys older than maxAge fetched the JWKS %d times; want 1", got)
		}
	})

	t.Run("KeepsOnlyPublicSignatureKeys", func(t *testing.T) {
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, edKey, _ := ed25519.GenerateKey(rand.Reader)
		keys, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: rsaKey.Public(), KeyID: "enc-1", Use: "enc"},
			{Key: ecKey.Public(), KeyID: "ecdh-1", Algorithm: "ECDH-ES"},
			{Key: []byte("a shared secret of thirty-two by"), KeyID: "hmac-1", Algorithm: "HS256"},
			{Key: edKey, KeyID: "ed-private-1"}, // published by mistake: only its public half is used
			{Key: rsaKey.Public(), KeyID: "rsa-1", Use: "sig"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Replace(string(keys), `"keys":[`, `"keys":[{"kty":"OKP","crv":"Ed448","kid":"ed448-1","x":"AAAA"},`, 1)
		set, err := parseJWKS([]byte(body))
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.KeyID)
			if !k.IsPublic() {
				t.Errorf("parseJWKS kept a non-public key %s", k.KeyID)
			}
		}
		if err != nil || !reflect.DeepEqual(kids, []string{"ed-private-1", "rsa-1"}) {
			t.Errorf("parseJWKS(...) = %v, %v; want [ed-private-1 rsa-1]", kids, err)
		}
		if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
			t.Error("parseJWKS(only a symmetric key) = nil error; want no usable key")
		}
	})
}

func TestVerifierCache(t *testing.T) {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	v := newTestVerifier(t, p, clock, nil)
	ctx := context.Background()

	t.Run("CachedTokenStillExpires", func(t *testing.T) {
		token := p.Token(t, map[string]any{"exp": clock.Now().Add(time.Minute), "groups": []string{"analysts"}})
		first, err := v.Verify(ctx, token)
		if err != nil {
			t.Fatalf("Verify(...) = %v; want ok", err)
		}
		first.Groups[0] = "admins" // callers get their own copy
		second, err := v.Verify(ctx, token)
		if err != nil || !reflect.DeepEqual(second.Groups, []string{"analysts"}) {
			t.Fatalf("Verify(cached) = %+v, %v; want groups [analysts]", second, err)
		}
		v.cache.mu.RLock()
		entry, ok := v.cache.entries[sha256.Sum256([]byte(token))]
		v.cache.mu.RUnlock()
		if want := clock.Now().Add(time.Minute + defaultClockSkew); !ok || !entry.until.Equal(want) {
			t.Fatalf("cache entry = %+v, %v; want one valid until exp+skew %v", entry, ok, want)
		}
		clock.Advance(time.Minute + 29*time.Second)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("Verify(cached, within skew) = %v; want ok", err)
		}
		clock.Advance(time.Second)
		got, err := v.Verify(ctx, token)
		checkRefusal(t, token, got, err, warden.Unauthenticated, "token expired")
	})

	t.Run("RefusalsAreNotCached", func(t *testing.T) {
		n := v.cache.len()
		for _, token := range []string{p.Token(t, map[string]any{"aud": "billing"}), p.Token(t, nil, oidctest.Tamper())} {
			if _, err := v.Verify(ctx, token); err == nil {
				t.Fatal("Verify(bad token) = nil error")
			}
		}
		if got := v.cache.len(); got != n {
			t.Errorf("cache holds %d entries after refusals; want %d", got, n)
		}
	})

	t.Run("CacheIsBounded", func(t *testing.T) {
		c := newTokenCache(100)
		now := clock.Now()
		caller := &warden.Caller{Subject: "s"}
		for i := range 100 {
			c.put(sha256.Sum256([]byte{byte(i)}), caller, now.Add(time.Second), now)
		}
		c.put(sha256.Sum256([]byte("late")), caller, now.Add(time.Hour), now.Add(2*time.Second))
		if got := c.len(); got != 1 {
			t.Errorf("after overflow with 100 expired entries the cache holds %d; want 1", got)
		}
		for i := range 250 {
			c.put(sha256.Sum256([]byte(fmt.Sprint("live", i))), caller, now.Add(time.Hour), now)
		}
		if got := c.len(); got > 100 {
			t.Errorf("cache holds %d entries; want at most 100", got)
		}
	})
}

func TestNewVerifierFails(t *testing.T) {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	closed := newOIDCProvider(t, clock)
	closed.Close()

	tests := []struct {
		name string
		cfgs []OIDCConfig
		path string // of the FieldError
		msg  string
	}{
		{"UnreachableIssuer", []OIDCConfig{{Issuer: closed.Issuer(), Audience: "warden"}}, "[0].issuer", "cannot discover"},
		{"EmptyAudience", []OIDCConfig{{Issuer: p.Issuer()}}, "[0].audience", "missing audience"},
		{"IssuerNotMatchingDiscovery", []OIDCConfig{{Issuer: p.Issuer() + "/", Audience: "warden"}}, "[0].issuer", "did not match"},
		{"DuplicateIssuer", []OIDCConfig{{Issuer: p.Issuer(), Audience: "warden"}, {Issuer: p.Issuer(), Audience: "other"}}, "[1].issuer", "configured twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(context.Background(), tc.cfgs, clock.Now, nil)
			var fe *warden.FieldError
			if v != nil || !errors.As(err, &fe) || fe.Path != tc.path || !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("NewVerifier(%+v) = %v, %v; want a FieldError at %s: ...%s...", tc.cfgs, v, err, tc.path, tc.msg)
			}
		})
	}
	t.Run("NoIssuers", func(t *testing.T) {
		if v, err := NewVerifier(context.Background(), nil, clock.Now, nil); v != nil || err == nil {
			t.Errorf("NewVerifier(nil) = %v, %v; want an error", v, err)
		}
	})
}

func TestOIDCConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  OIDCConfig
		want string // the error, or "" for none
	}{
		{"AcceptsHTTPS", OIDCConfig{Issuer: "https://idp.example.com/", Audience: "warden"}, ""},
		{"AcceptsLoopbackHTTP", OIDCConfig{Issuer: "http://127.0.0.1:8080", Audience: "warden"}, ""},
		{"AcceptsLocalhostHTTP", OIDCConfig{Issuer: "http://localhost:8080/realms/dev", Audience: "warden"}, ""},
		{"RefusesMissingIssuer", OIDCConfig{Audience: "warden"}, "issuer: missing issuer"},
		{"RefusesRemoteHTTP", OIDCConfig{Issuer: "http://idp.example.com", Audience: "warden"}, `issuer: "http://idp.example.com" must use https`},
		{"RefusesRelativeIssuer", OIDCConfig{Issuer: "idp.example.com", Audience: "warden"}, "issuer: \"idp.example.com\" is not an absolute URL"},
		{"RefusesMissingAudience", OIDCConfig{Issuer: "https://idp.example.com"}, "audience: missing audience"},
		{"RefusesBadGroupsPath", OIDCConfig{Issuer: "https://idp.example.com", Audience: "w", GroupsClaim: "realm_access..roles"}, "groups_claim:"},
		{"RefusesScopeWithSpace", OIDCConfig{Issuer: "https://idp.example.com", Audience: "w", RequiredScopes: []string{"a b"}}, "required_scopes[0]:"},
		{"RefusesHugeSkew", OIDCConfig{Issuer: "https://idp.example.com", Audience: "w", ClockSkew: warden.Duration(time.Hour)}, "clock_skew: must be between"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate(%+v) = %v; want nil", tc.cfg, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate(%+v) = %v; want %q", tc.cfg, err, tc.want)
			}
		})
	}
	t.Run("FillsDefaults", func(t *testing.T) {
		c := OIDCConfig{Issuer: "https://idp.example.com", Audience: "warden"}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.SubjectClaim != "sub" || c.EmailClaim != "email" || time.Duration(c.ClockSkew) != 30*time.Second {
			t.Errorf("Validate() left %+v; want sub, email, 30s", c)
		}
	})
}

func TestVerifierIssuers(t *testing.T) {
	clock := newOIDCClock()
	a, b := newOIDCProvider(t, clock), newOIDCProvider(t, clock)
	v, err := NewVerifier(context.Background(), []OIDCConfig{
		{Issuer: a.Issuer(), Audience: "warden", RequiredScopes: []string{"x"}},
		{Issuer: b.Issuer(), Audience: "warden", RequiredScopes: []string{"y", "x"}},
	}, clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Issuers(); !reflect.DeepEqual(got, []string{a.Issuer(), b.Issuer()}) {
		t.Errorf("Issuers() = %v; want both", got)
	}
	if got := v.Scopes(); !reflect.DeepEqual(got, []string{"x", "y"}) {
		t.Errorf("Scopes() = %v; want [x y]", got)
	}
	// Each issuer's token is verified with that issuer's keys and rules.
	for _, p := range []*oidctest.Provider{a, b} {
		got, err := v.Verify(context.Background(), p.Token(t, map[string]any{"scope": "x y"}))
		if err != nil || got.Issuer != p.Issuer() {
			t.Errorf("Verify(token of %s) = %+v, %v; want its caller", p.Issuer(), got, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	clock := newOIDCClock()
	p := newOIDCProvider(b, clock)
	ctx := context.Background()
	claims := map[string]any{"email": "alice@example.com", "groups": []string{"analysts", "dba"}}
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			v := newTestVerifier(b, p, clock, nil)
			v.noCache = true
			token := p.Token(b, claims, oidctest.WithAlg(alg))
			if _, err := v.Verify(ctx, token); err != nil { // warms the key cache
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached", func(b *testing.B) {
		v := newTestVerifier(b, p, clock, nil)
		token := p.Token(b, claims)
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
