// Package oidctest runs a local OpenID Connect identity provider for tests.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Provider is a running test identity provider. It serves
// /.well-known/openid-configuration (issuer = the server's URL) and /jwks,
// and signs tokens with its keys. It is safe for concurrent use.
type Provider struct {
	// Now is the time Token stamps into iat and exp (default time.Now);
	// set it to the clock the code under test uses.
	Now func() time.Time

	srv       *httptest.Server
	fetches   atomic.Int64
	closeOnce sync.Once

	mu     sync.Mutex
	login  *Login
	codes  map[string]*grant
	rsaKey signingKey
	ecKey  signingKey
	edKey  signingKey
	rsaSeq int
}

type signingKey struct {
	kid  string
	priv crypto.Signer
}

// New starts a provider with an RSA-2048 key "rsa-1", an EC P-256 key
// "ec-1" and an Ed25519 key "ed-1". It is closed when the test ends.
func New(t testing.TB) *Provider {
	t.Helper()
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: generate RSA key: %v", err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("oidctest: generate EC key: %v", err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("oidctest: generate Ed25519 key: %v", err)
	}
	p := &Provider{
		Now:    time.Now,
		rsaKey: signingKey{"rsa-1", rsaPriv},
		ecKey:  signingKey{"ec-1", ecPriv},
		edKey:  signingKey{"ed-1", edPriv},
		rsaSeq: 1,
		codes:  map[string]*grant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("GET /jwks", p.serveJWKS)
	mux.HandleFunc("GET /authorize", p.serveAuthorize)
	mux.HandleFunc("POST /token", p.serveToken)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// Issuer returns the provider's issuer URL (no trailing slash).
func (p *Provider) Issuer() string { return p.srv.URL }

// JWKSFetches returns how many times /jwks was served.
func (p *Provider) JWKSFetches() int { return int(p.fetches.Load()) }

// Close shuts the server down, making the issuer unreachable. It may be
// called more than once.
func (p *Provider) Close() { p.closeOnce.Do(p.srv.Close) }

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{
		"issuer":                                p.Issuer(),
		"jwks_uri":                              p.Issuer() + "/jwks",
		"authorization_endpoint":                p.Issuer() + "/authorize",
		"token_endpoint":                        p.Issuer() + "/token",
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "EdDSA"},
	})
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	p.mu.Lock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		// The RSA key signs both RS256 and PS256, so it declares no alg.
		{Key: p.rsaKey.priv.Public(), KeyID: p.rsaKey.kid, Use: "sig"},
		{Key: p.ecKey.priv.Public(), KeyID: p.ecKey.kid, Use: "sig", Algorithm: string(jose.ES256)},
		{Key: p.edKey.priv.Public(), KeyID: p.edKey.kid, Use: "sig", Algorithm: string(jose.EdDSA)},
	}}
	p.mu.Unlock()
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Rotate adds a new RSA key with a new kid, removes the old one from the
// JWKS, makes the new one the signer for RS256 and PS256, and returns its
// kid.
func (p *Provider) Rotate(t testing.TB) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: generate RSA key: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rsaSeq++
	p.rsaKey = signingKey{fmt.Sprintf("rsa-%d", p.rsaSeq), priv}
	return p.rsaKey.kid
}

// Option changes how Token signs.
type Option func(*tokenOptions)

type tokenOptions struct {
	alg      jose.SignatureAlgorithm
	kid      string
	unsigned bool
	hmacPub  bool
	tamper   bool
}

// WithAlg signs with alg using the matching key: RS256/384/512 and
// PS256/384/512 with the RSA key, ES256 with the EC key, EdDSA with the
// Ed25519 key.
func WithAlg(alg jose.SignatureAlgorithm) Option { return func(o *tokenOptions) { o.alg = alg } }

// WithKID puts kid in the header instead of the signing key's own kid.
func WithKID(kid string) Option { return func(o *tokenOptions) { o.kid = kid } }

// Unsigned produces an `alg: none` token with an empty signature.
func Unsigned() Option { return func(o *tokenOptions) { o.unsigned = true } }

// HS256WithPublicKey produces an HS256 token whose HMAC key is the PEM
// encoding of the RSA public key: the classic algorithm-confusion attack
// against verifiers that let the token pick the algorithm.
func HS256WithPublicKey() Option { return func(o *tokenOptions) { o.hmacPub = true } }

// Tamper changes the payload after signing (sub becomes
// "mallory@example.com"), keeping the original signature.
func Tamper() Option { return func(o *tokenOptions) { o.tamper = true } }

// Token signs claims over the defaults iss=Issuer, sub="alice@example.com",
// aud="warden", iat=Now, exp=Now+1h. A claim given as nil is removed; a
// time.Time value is written as seconds since the epoch. By default it
// signs with RS256 and the current RSA key.
func (p *Provider) Token(t testing.TB, claims map[string]any, opts ...Option) string {
	t.Helper()
	o := tokenOptions{alg: jose.RS256}
	for _, opt := range opts {
		opt(&o)
	}
	now := p.Now()
	all := map[string]any{
		"iss": p.Issuer(),
		"sub": "alice@example.com",
		"aud": "warden",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	maps.Copy(all, claims)
	for k, v := range all {
		switch v := v.(type) {
		case nil:
			delete(all, k)
		case time.Time:
			all[k] = v.Unix()
		}
	}
	payload, err := json.Marshal(all)
	if err != nil {
		t.Fatalf("oidctest: encode claims: %v", err)
	}

	var token string
	switch {
	case o.unsigned:
		token = compact(t, map[string]any{"alg": "none", "typ": "JWT", "kid": o.kidOr("rsa-1")}, payload, nil)
	case o.hmacPub:
		p.mu.Lock()
		pub := p.rsaKey.priv.Public()
		kid := o.kidOr(p.rsaKey.kid)
		p.mu.Unlock()
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatalf("oidctest: encode public key: %v", err)
		}
		key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		token = p.sign(t, jose.HS256, key, kid, payload)
	default:
		key := p.keyFor(t, o.alg)
		token = p.sign(t, o.alg, key.priv, o.kidOr(key.kid), payload)
	}
	if o.tamper {
		parts := strings.Split(token, ".")
		all["sub"] = "mallory@example.com"
		forged, err := json.Marshal(all)
		if err != nil {
			t.Fatalf("oidctest: encode claims: %v", err)
		}
		parts[1] = base64.RawURLEncoding.EncodeToString(forged)
		token = strings.Join(parts, ".")
	}
	return token
}

func (o *tokenOptions) kidOr(def string) string {
	if o.kid != "" {
		return o.kid
	}
	return def
}

func (p *Provider) keyFor(t testing.TB, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return p.rsaKey
	case jose.ES256:
		return p.ecKey
	case jose.EdDSA:
		return p.edKey
	}
	t.Fatalf("oidctest: no key for algorithm %s", alg)
	return signingKey{}
}

func (p *Provider) sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("oidctest: signer for %s: %v", alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("oidctest: sign: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("oidctest: serialize: %v", err)
	}
	return s
}

// compact assembles a compact JWS from its parts without signing.
func compact(t testing.TB, header map[string]any, payload, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatalf("oidctest: encode header: %v", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)
}
