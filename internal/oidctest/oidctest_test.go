package oidctest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func getJSON(t *testing.T, url string, v any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func jwks(t *testing.T, p *Provider) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := getJSON(t, p.Issuer()+"/jwks", &set); err != nil {
		t.Fatalf("GET /jwks: %v", err)
	}
	return set
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestProvider(t *testing.T) {
	p := New(t)
	now := time.Unix(1_800_000_000, 0)
	p.Now = func() time.Time { return now }

	t.Run("ServesDiscovery", func(t *testing.T) {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(t, p.Issuer()+"/.well-known/openid-configuration", &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Issuer != p.Issuer() || doc.JWKSURI != p.Issuer()+"/jwks" {
			t.Errorf("discovery = %+v; want issuer %s and its /jwks", doc, p.Issuer())
		}
	})

	t.Run("SignsVerifiableTokens", func(t *testing.T) {
		set := jwks(t, p)
		for _, tc := range []struct {
			alg jose.SignatureAlgorithm
			kid string
		}{{jose.RS256, "rsa-1"}, {jose.PS256, "rsa-1"}, {jose.ES256, "ec-1"}, {jose.EdDSA, "ed-1"}} {
			tok := p.Token(t, map[string]any{"groups": []string{"a"}}, WithAlg(tc.alg))
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tc.alg})
			if err != nil {
				t.Fatalf("%s: parse: %v", tc.alg, err)
			}
			if got := jws.Signatures[0].Header.KeyID; got != tc.kid {
				t.Errorf("%s: kid = %q; want %q", tc.alg, got, tc.kid)
			}
			keys := set.Key(tc.kid)
			if len(keys) != 1 {
				t.Fatalf("%s: JWKS has %d keys %q; want 1", tc.alg, len(keys), tc.kid)
			}
			payload, err := jws.Verify(keys[0])
			if err != nil {
				t.Fatalf("%s: verify: %v", tc.alg, err)
			}
			var c map[string]any
			_ = json.Unmarshal(payload, &c)
			if c["iss"] != p.Issuer() || c["sub"] != "alice@example.com" || c["aud"] != "warden" ||
				c["exp"] != float64(now.Add(time.Hour).Unix()) || c["iat"] != float64(now.Unix()) {
				t.Errorf("%s: claims = %v; want the defaults", tc.alg, c)
			}
		}
	})

	t.Run("OverridesAndRemovesClaims", func(t *testing.T) {
		tok := p.Token(t, map[string]any{"exp": nil, "sub": "bob", "nbf": now.Add(time.Minute)})
		jws, _ := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		var c map[string]any
		_ = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
		if _, ok := c["exp"]; ok || c["sub"] != "bob" || c["nbf"] != float64(now.Add(time.Minute).Unix()) {
			t.Errorf("claims = %v; want no exp, sub bob, nbf as seconds", c)
		}
	})

	t.Run("AttackTokens", func(t *testing.T) {
		if h := header(t, p.Token(t, nil, Unsigned())); h["alg"] != "none" {
			t.Errorf("Unsigned header = %v; want alg none", h)
		}
		if h := header(t, p.Token(t, nil, HS256WithPublicKey())); h["alg"] != "HS256" || h["kid"] != "rsa-1" {
			t.Errorf("HS256WithPublicKey header = %v; want alg HS256, kid rsa-1", h)
		}
		if h := header(t, p.Token(t, nil, WithKID("nope"))); h["kid"] != "nope" {
			t.Errorf("WithKID header = %v; want kid nope", h)
		}
		tok := p.Token(t, nil, Tamper())
		set := jwks(t, p)
		key := set.Key("rsa-1")[0]
		jws, _ := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		if _, err := jws.Verify(key); err == nil {
			t.Error("Tamper token verifies; want a broken signature")
		}
	})

	t.Run("RotateReplacesTheRSAKey", func(t *testing.T) {
		kid := p.Rotate(t)
		set := jwks(t, p)
		if len(set.Key("rsa-1")) != 0 || len(set.Key(kid)) != 1 {
			t.Fatalf("after Rotate JWKS kids = %v; want %s without rsa-1", kids(set), kid)
		}
		if h := header(t, p.Token(t, nil)); h["kid"] != kid {
			t.Errorf("Token after Rotate has kid %v; want %s", h["kid"], kid)
		}
	})

	t.Run("CountsJWKSFetches", func(t *testing.T) {
		before := p.JWKSFetches()
		jwks(t, p)
		if got := p.JWKSFetches(); got != before+1 {
			t.Errorf("JWKSFetches() = %d; want %d", got, before+1)
		}
	})

	t.Run("CloseMakesItUnreachable", func(t *testing.T) {
		p.Close()
		p.Close()
		if _, err := http.Get(p.Issuer() + "/jwks"); err == nil {
			t.Error("GET /jwks after Close succeeded; want an error")
		}
	})
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}
