package mcp

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/warden-mcp/warden"
)

// OIDCConfig is one entry of identity.oidc in warden.yaml: an identity
// provider whose bearer tokens warden accepts.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its tokens' iss claim
	// spells it. It must be https; http is accepted only for loopback
	// hosts (tests, local development).
	Issuer string `yaml:"issuer"`
	// Audience is warden's resource id: tokens whose aud does not include
	// it were minted for something else and are refused.
	Audience string `yaml:"audience"`
	// SubjectClaim names the claim that identifies the caller (default "sub").
	SubjectClaim string `yaml:"subject_claim"`
	// EmailClaim names the claim holding the caller's email (default
	// "email"). It is ignored when the token says email_verified: false.
	EmailClaim string `yaml:"email_claim"`
	// GroupsClaim names the claim holding the caller's groups, as a dotted
	// path through nested objects ("realm_access.roles"); its value may be
	// a string or a list of strings. A claim whose name itself contains
	// dots (Auth0's "https://example.com/groups") is found too: an exact
	// top-level match wins over the path.
	GroupsClaim string `yaml:"groups_claim"`
	// RequiredScopes must all be granted by the token's scope (a
	// space-separated string) or scp (a list or a string) claim.
	RequiredScopes []string `yaml:"required_scopes"`
	// ClockSkew is the leeway for exp, nbf and a future iat (default 30s,
	// at most 5m; 0 means the default).
	ClockSkew warden.Duration `yaml:"clock_skew"`
}

const (
	defaultClockSkew = 30 * time.Second
	maxClockSkew     = 5 * time.Minute
)

// Validate fills in defaults and checks the entry. Errors are
// warden.FieldErrors with paths relative to the entry.
func (c *OIDCConfig) Validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, warden.FieldErrorf("issuer", "missing issuer: the identity provider's issuer URL, exactly as in its tokens' iss claim"))
	} else if err := checkEndpoint(c.Issuer); err != nil {
		errs = append(errs, warden.FieldErrorf("issuer", "%v", err))
	}
	if c.Audience == "" {
		errs = append(errs, warden.FieldErrorf("audience", "missing audience: warden's resource id that tokens must be minted for (for example \"warden\"); without it a token minted for any other service would be accepted"))
	}
	if c.SubjectClaim == "" {
		c.SubjectClaim = "sub"
	}
	if c.EmailClaim == "" {
		c.EmailClaim = "email"
	}
	if c.GroupsClaim != "" && slices.Contains(strings.Split(c.GroupsClaim, "."), "") {
		errs = append(errs, warden.FieldErrorf("groups_claim", "%q is not a claim name or a dotted path like realm_access.roles", c.GroupsClaim))
	}
	for i, s := range c.RequiredScopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			errs = append(errs, warden.FieldErrorf(fmt.Sprintf("required_scopes[%d]", i), "%q is not a scope: scopes are single words without spaces or quotes", s))
		}
	}
	switch skew := time.Duration(c.ClockSkew); {
	case skew == 0:
		c.ClockSkew = warden.Duration(defaultClockSkew)
	case skew < 0 || skew > maxClockSkew:
		errs = append(errs, warden.FieldErrorf("clock_skew", "must be between 0s and %s, got %s", maxClockSkew, skew))
	}
	return errors.Join(errs...)
}

// checkEndpoint accepts an absolute https URL, or an http URL on a
// loopback host: tokens and keys fetched over plain http from anywhere
// else could be forged in transit.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL like https://idp.example.com/", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry credentials, a query or a fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (http is accepted only on a loopback host)", s)
	}
	return fmt.Errorf("%q must use https", s)
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// allowedAlgs are the asymmetric JWS algorithms warden accepts. `none` and
// the HMAC family are excluded on purpose: an HS256 token "signed" with an
// issuer's public key (which anyone can download) must never verify.
var allowedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

func algAllowed(alg string) bool {
	return slices.Contains(allowedAlgs, jose.SignatureAlgorithm(alg))
}

const (
	// maxTokenSize bounds the tokens warden parses; real tokens, even with
	// long group lists, are a few kilobytes.
	maxTokenSize = 64 << 10
	// tokenCacheSize bounds the verified-token cache.
	tokenCacheSize = 10_000
	// discoveryTimeout bounds discovery and the first key fetch of one
	// issuer at start.
	discoveryTimeout = 30 * time.Second
)

// Verifier verifies bearer tokens from any configured issuer. It is safe
// for concurrent use.
type Verifier struct {
	clock   warden.Clock
	issuers map[string]*issuerVerifier
	names   []string // issuers in configuration order
	scopes  []string // union of required scopes, sorted
	cache   *tokenCache
	// noCache disables the verified-token cache (benchmarks of the full
	// verification).
	noCache bool
}

// issuerVerifier verifies the tokens of one issuer.
type issuerVerifier struct {
	cfg  OIDCConfig
	oidc *oidc.IDTokenVerifier
}

// NewVerifier discovers each issuer, fetches its keys once and returns a
// verifier for tokens from any of them. It fails when a config entry is
// invalid, an issuer is unreachable, its discovery document names another
// issuer, or it publishes no usable signing key: warden must not start
// with an issuer it cannot verify against. Errors are warden.FieldErrors
// with paths relative to identity.oidc ("[0].issuer: ...").
// httpClient nil means http.DefaultClient; clock nil means time.Now.
func NewVerifier(ctx context.Context, cfgs []OIDCConfig, clock warden.Clock, httpClient *http.Client) (*Verifier, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("no OIDC issuer is configured")
	}
	if clock == nil {
		clock = time.Now
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	v := &Verifier{
		clock:   clock,
		issuers: make(map[string]*issuerVerifier, len(cfgs)),
		cache:   newTokenCache(tokenCacheSize),
	}
	for i, cfg := range cfgs {
		path := fmt.Sprintf("[%d]", i)
		if err := cfg.Validate(); err != nil {
			return nil, warden.Under(path, err)
		}
		if _, dup := v.issuers[cfg.Issuer]; dup {
			return nil, warden.FieldErrorf(path+".issuer", "issuer %q is configured twice; tokens are matched to an entry by their issuer, so each issuer may appear once", cfg.Issuer)
		}
		iv, err := newIssuerVerifier(ctx, cfg, clock, httpClient)
		if err != nil {
			return nil, warden.FieldErrorf(path+".issuer", "%v", err)
		}
		v.issuers[cfg.Issuer] = iv
		v.names = append(v.names, cfg.Issuer)
		for _, s := range cfg.RequiredScopes {
			if !slices.Contains(v.scopes, s) {
				v.scopes = append(v.scopes, s)
			}
		}
	}
	slices.Sort(v.scopes)
	return v, nil
}

func newIssuerVerifier(ctx context.Context, cfg OIDCConfig, clock warden.Clock, client *http.Client) (*issuerVerifier, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("cannot discover %s: %s", cfg.Issuer, clip(err.Error(), 300))
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, fmt.Errorf("the discovery document of %s names no jwks_uri", cfg.Issuer)
	}
	if err := checkEndpoint(meta.JWKSURI); err != nil {
		return nil, fmt.Errorf("the jwks_uri of %s is unusable: %v", cfg.Issuer, err)
	}
	keys := newKeySet(meta.JWKSURI, client, clock)
	if err := keys.refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("cannot fetch the signing keys of %s: %v", cfg.Issuer, err)
	}
	// The start-up fetch does not count against the refetch rate limit:
	// a key rotated just after start must verify on first sight.
	keys.fetchMu.Lock()
	keys.lastAttempt = time.Time{}
	keys.fetchMu.Unlock()
	names := make([]string, len(allowedAlgs))
	for i, a := range allowedAlgs {
		names[i] = string(a)
	}
	return &issuerVerifier{
		cfg: cfg,
		// go-oidc checks the signature (through keys), the issuer and the
		// audience; expiry is ours, so that it honours the configured skew
		// and clock (go-oidc has no leeway for exp and a fixed 5m for nbf).
		oidc: oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
			ClientID:             cfg.Audience,
			SupportedSigningAlgs: names,
			SkipExpiryCheck:      true,
		}),
	}, nil
}

// Issuers returns the configured issuers, in configuration order, for the
// protected-resource metadata.
func (v *Verifier) Issuers() []string { return slices.Clone(v.names) }

// Scopes returns the union of the required scopes of every issuer, sorted.
func (v *Verifier) Scopes() []string { return slices.Clone(v.scopes) }

// Verify checks token on every call: its signature with an asymmetric
// algorithm, issuer, audience, exp (required) and nbf with the issuer's
// clock skew, and the required scopes. It returns the caller the token
// names, or a *warden.Error: Code Unauthenticated with a short reason for
// any invalid token, or Code Denied with Rule "insufficient_scope" for a
// valid token that lacks a required scope. Neither the error message nor
// its cause contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*warden.Caller, error) {
	if token == "" {
		return nil, unauthenticated("missing bearer token", nil)
	}
	if len(token) > maxTokenSize {
		return nil, unauthenticated("token is too large", nil)
	}
	now := v.clock()
	var key [sha256.Size]byte
	if !v.noCache {
		key = sha256.Sum256([]byte(token))
		if c, ok := v.cache.get(key, now); ok {
			return cloneCaller(c), nil
		}
	}

	// Route by the unverified header and issuer; everything they say is
	// verified again by go-oidc below. Checking the algorithm here too
	// gives a precise refusal instead of a parse error.
	alg, iss, err := peek(token)
	if err != nil {
		return nil, unauthenticated(errMalformed.Error(), err)
	}
	if !algAllowed(alg) {
		return nil, unauthenticated(fmt.Sprintf("token signing algorithm %s is not allowed (use RS*, PS*, ES* or EdDSA)", printableAlg(alg)), nil)
	}
	if iss == "" {
		return nil, unauthenticated("token has no issuer", nil)
	}
	iv, ok := v.issuers[iss]
	if !ok {
		return nil, unauthenticated("token issuer is not trusted", nil)
	}
	caller, until, err := iv.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if !v.noCache {
		v.cache.put(key, caller, until, now)
	}
	return cloneCaller(caller), nil
}

// verify verifies a token routed to this issuer; until is when its
// verification stops holding (exp plus the skew).
func (iv *issuerVerifier) verify(ctx context.Context, token string, now time.Time) (_ *warden.Caller, until time.Time, _ error) {
	probe := &sigProbe{}
	tok, err := iv.oidc.Verify(context.WithValue(ctx, sigProbeKey{}, probe), token)
	if err != nil {
		return nil, until, iv.diagnose(probe, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, until, unauthenticated(errMalformed.Error(), err)
	}

	skew := time.Duration(iv.cfg.ClockSkew)
	exp, present, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, until, unauthenticated(err.Error(), nil)
	case !present:
		return nil, until, unauthenticated("token has no expiry (exp)", nil)
	case !now.Before(exp.Add(skew)):
		return nil, until, unauthenticated("token expired", nil)
	}
	nbf, present, err := numericDate(claims, "nbf")
	switch {
	case err != nil:
		return nil, until, unauthenticated(err.Error(), nil)
	case present && now.Add(skew).Before(nbf):
		return nil, until, unauthenticated("token not valid yet", nil)
	}
	iat, present, err := numericDate(claims, "iat")
	switch {
	case err != nil:
		return nil, until, unauthenticated(err.Error(), nil)
	case present && now.Add(skew).Before(iat):
		return nil, until, unauthenticated("token not valid yet (issued in the future)", nil)
	}

	caller, err := iv.cfg.CallerFromClaims(claims)
	if err != nil {
		return nil, until, err
	}
	if missing := missingScopes(claims, iv.cfg.RequiredScopes); len(missing) > 0 {
		return nil, until, &warden.Error{Code: warden.Denied, Rule: "insufficient_scope",
			Message: fmt.Sprintf("token lacks the required scope %s; ask the identity provider for a token with it", strings.Join(missing, ", "))}
	}
	return caller, exp.Add(skew), nil
}

// CallerFromClaims is the caller that verified claims of this issuer name,
// by its subject, email and groups claims: bearer tokens and the
// console's ID tokens map to callers the same way, so a reviewer is the
// same principal in both. It returns an Unauthenticated *warden.Error
// when the subject claim is missing.
func (c *OIDCConfig) CallerFromClaims(claims map[string]any) (*warden.Caller, error) {
	subjectClaim, emailClaim := cmp.Or(c.SubjectClaim, "sub"), cmp.Or(c.EmailClaim, "email")
	subject, _ := lookupClaim(claims, subjectClaim).(string)
	if subject == "" {
		if subjectClaim == "sub" {
			return nil, unauthenticated("token has no subject", nil)
		}
		return nil, unauthenticated(fmt.Sprintf("token has no subject (claim %q)", subjectClaim), nil)
	}
	email, _ := lookupClaim(claims, emailClaim).(string)
	if v, ok := claims["email_verified"]; ok && (v == false || v == "false") {
		// Policy may match members by email: one the provider says it has
		// not verified could be anyone's.
		email = ""
	}
	var groups []string
	if c.GroupsClaim != "" {
		groups = stringsOf(lookupClaim(claims, c.GroupsClaim))
	}
	return &warden.Caller{
		Subject: subject,
		Issuer:  c.Issuer,
		Email:   email,
		Groups:  groups,
		Method:  "oidc",
	}, nil
}

// diagnose turns a go-oidc failure into a reason. go-oidc's errors are
// untyped strings, so instead of matching them the key set records what
// it saw (sigProbe), and the claims go-oidc checks after the signature are
// re-read from the verified payload.
func (iv *issuerVerifier) diagnose(p *sigProbe, err error) error {
	if p.err != nil {
		return unauthenticated(p.err.Error(), err)
	}
	if p.payload == nil {
		return unauthenticated(errMalformed.Error(), err)
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(p.payload, &c) != nil {
		return unauthenticated(errMalformed.Error(), err)
	}
	if c.Iss != iv.cfg.Issuer {
		return unauthenticated("token issuer is not trusted", err)
	}
	if !slices.Contains(stringsOf(decodeAny(c.Aud)), iv.cfg.Audience) {
		return unauthenticated(fmt.Sprintf("token audience does not include %q", iv.cfg.Audience), err)
	}
	return unauthenticated("token claims are malformed", err)
}

func unauthenticated(reason string, cause error) *warden.Error {
	return &warden.Error{Code: warden.Unauthenticated, Rule: "identity", Message: reason, Err: cause}
}

// peek reads the alg header and the iss claim of a compact JWS without
// verifying anything.
func peek(token string) (alg, iss string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", errors.New("not a compact JWS: want three dot-separated parts")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &h); err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return "", "", fmt.Errorf("payload: %w", err)
	}
	return h.Alg, c.Iss, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// printableAlg quotes an attacker-chosen alg for a message, bounded.
func printableAlg(alg string) string {
	if alg == "" {
		return `""`
	}
	if len(alg) > 16 || strings.ContainsFunc(alg, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' }) {
		return "(unrecognised)"
	}
	return alg
}

// numericDate reads a NumericDate claim (seconds since the epoch).
func numericDate(claims map[string]any, name string) (t time.Time, present bool, err error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		return time.Time{}, false, nil
	}
	f, ok := raw.(float64)
	// Beyond year 9999 (or negative) is not a date anyone issues.
	if !ok || math.IsNaN(f) || f < 0 || f > 253402300799 {
		return time.Time{}, true, fmt.Errorf("token has an invalid %s claim", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// lookupClaim finds a claim by name, or else by a dotted path through
// nested objects.
func lookupClaim(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	return cur
}

// stringsOf reads a claim that may be one string or a list of strings;
// anything else in it is ignored.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		if v != "" {
			return []string{v}
		}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func decodeAny(raw json.RawMessage) any {
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

// missingScopes returns the required scopes that neither scope (RFC 8693:
// space-separated) nor scp (a list, or a space-separated string) grants.
func missingScopes(claims map[string]any, required []string) []string {
	if len(required) == 0 {
		return nil
	}
	var granted []string
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			granted = append(granted, strings.Fields(v)...)
		case []any:
			granted = append(granted, stringsOf(v)...)
		}
	}
	var missing []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func cloneCaller(c *warden.Caller) *warden.Caller {
	cp := *c
	cp.Groups = slices.Clone(c.Groups)
	return &cp
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// reason is a verification failure whose text is fit to show the caller.
type reason string

func (r reason) Error() string { return string(r) }

const (
	errMalformed    reason = "token is malformed"
	errBadSignature reason = "token signature is invalid"
	errUnknownKey   reason = "token signing key is not among the issuer's published keys"
)

// sigProbe records, for one verification, what the key set saw: go-oidc
// wraps key-set errors with %v, losing their type.
type sigProbe struct {
	err     error  // a reason, when the signature did not verify
	payload []byte // the verified payload, when it did
}

type sigProbeKey struct{}

// keySet is an oidc.KeySet over an issuer's JWKS. It is hand-written
// rather than go-oidc's RemoteKeySet because that one refetches the JWKS
// on every token naming an unknown kid, with no rate limit, so a flood of
// tokens with random kids makes warden hammer the identity provider. Here
// the keys are cached; a token naming an unknown kid triggers a refetch
// at most once per minRefresh (so key rotation just works), and keys older
// than maxAge are refetched on next use (so a key the provider withdrew
// stops verifying). A failed refetch keeps the keys already known.
type keySet struct {
	url    string
	client *http.Client
	clock  warden.Clock
	// minRefresh is the least time between two fetches.
	minRefresh time.Duration
	// maxAge is how long fetched keys are used before a refetch.
	maxAge time.Duration

	// fetchMu serialises fetches; lastAttempt is guarded by it.
	fetchMu     sync.Mutex
	lastAttempt time.Time

	mu      sync.RWMutex
	keys    jose.JSONWebKeySet
	fetched time.Time
	gen     uint64 // counts successful fetches
}

const (
	defaultMinRefresh = 10 * time.Second
	defaultKeyMaxAge  = time.Hour
	fetchTimeout      = 10 * time.Second
	maxJWKSSize       = 1 << 20
)

func newKeySet(url string, client *http.Client, clock warden.Clock) *keySet {
	return &keySet{url: url, client: client, clock: clock, minRefresh: defaultMinRefresh, maxAge: defaultKeyMaxAge}
}

// VerifySignature implements oidc.KeySet: it verifies jwt's signature
// with the published key its kid names and returns the payload. The
// algorithm is restricted to allowedAlgs here as well as by go-oidc.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	probe, _ := ctx.Value(sigProbeKey{}).(*sigProbe)
	if probe == nil {
		probe = &sigProbe{}
	}
	payload, err := k.verify(ctx, jwt)
	probe.payload, probe.err = payload, err
	return payload, err
}

func (k *keySet) verify(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, allowedAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errMalformed
	}
	h := jws.Signatures[0].Header
	k.mu.RLock()
	stale := k.clock().Sub(k.fetched) > k.maxAge
	k.mu.RUnlock()
	if stale {
		// Refresh in the request that notices first; the others keep
		// using the known keys rather than queue behind a slow provider.
		_ = k.refresh(ctx, false)
	}
	payload, gen, err := k.verifyWith(jws, h.KeyID, h.Algorithm)
	// An unknown kid (or, without a kid, no key that verifies) may mean
	// the provider rotated its keys: refetch, rate-limited, and retry if
	// the keys changed (by this fetch or one that just ran).
	if err == errUnknownKey || (err == errBadSignature && h.KeyID == "") {
		_ = k.refresh(ctx, true)
		if k.generation() != gen {
			payload, _, err = k.verifyWith(jws, h.KeyID, h.Algorithm)
		}
	}
	return payload, err
}

func (k *keySet) generation() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gen
}

// verifyWith verifies jws with the current keys, and says which
// generation of keys it used.
func (k *keySet) verifyWith(jws *jose.JSONWebSignature, kid, alg string) (_ []byte, gen uint64, _ error) {
	k.mu.RLock()
	keys, gen := k.keys.Keys, k.gen
	k.mu.RUnlock()
	known := false
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		known = true
		if !keyFits(key, alg) {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, gen, nil
		}
	}
	if !known {
		return nil, gen, errUnknownKey
	}
	return nil, gen, errBadSignature
}

// keyFits reports whether key may verify a signature made with alg: its
// declared alg (if any) must be alg, and its type and curve must match.
func keyFits(key *jose.JSONWebKey, alg string) bool {
	if key.Algorithm != "" && key.Algorithm != alg {
		return false
	}
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// errRateLimited means a refetch was skipped because the last one was
// less than minRefresh ago.
var errRateLimited = errors.New("the signing keys were fetched moments ago")

// errFetchInProgress means a refetch was skipped because another one is
// running.
var errFetchInProgress = errors.New("the signing keys are being fetched")

// refresh refetches the key set unless a fetch was attempted less than
// minRefresh ago. With wait, a caller that finds a fetch running waits
// for it (and is then rate-limited, but sees its keys); without, it
// returns at once.
func (k *keySet) refresh(ctx context.Context, wait bool) error {
	if wait {
		k.fetchMu.Lock()
	} else if !k.fetchMu.TryLock() {
		return errFetchInProgress
	}
	defer k.fetchMu.Unlock()
	now := k.clock()
	if !k.lastAttempt.IsZero() {
		if d := now.Sub(k.lastAttempt); d >= 0 && d < k.minRefresh {
			return errRateLimited
		}
	}
	k.lastAttempt = now
	// The fetch outlives the request that triggered it: its result serves
	// every request after it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	set, err := k.fetch(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.keys, k.fetched = set, now
	k.gen++
	k.mu.Unlock()
	return nil
}

func (k *keySet) fetch(ctx context.Context) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return set, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("GET %s: %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return set, fmt.Errorf("GET %s: %v", k.url, err)
	}
	if len(body) > maxJWKSSize {
		return set, fmt.Errorf("GET %s: the key set is larger than %d bytes", k.url, maxJWKSSize)
	}
	set, err = parseJWKS(body)
	if err != nil {
		return set, fmt.Errorf("GET %s: %v", k.url, err)
	}
	return set, nil
}

// parseJWKS keeps the usable signature keys of a JWKS: public RSA, EC and
// Ed25519 keys not reserved for encryption and not declaring an algorithm
// warden refuses. Keys it cannot use are skipped (RFC 7517 §5), so one odd
// key does not hide the others; a set with no usable key is an error.
func parseJWKS(body []byte) (jose.JSONWebKeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &raw); err != nil {
		return set, errors.New("the key set is not a JWKS JSON object")
	}
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if json.Unmarshal(r, &jwk) != nil {
			continue
		}
		if jwk.Use == "enc" || (jwk.Algorithm != "" && !algAllowed(jwk.Algorithm)) {
			continue
		}
		pub := jwk.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		if !pub.Valid() {
			continue
		}
		set.Keys = append(set.Keys, pub)
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("the key set has no usable signature key (of %d keys)", len(raw.Keys))
	}
	return set, nil
}

// tokenCache remembers verified tokens, keyed by their SHA-256, until
// their expiry, so a hot token costs a hash and a map lookup. It holds at
// most max entries: when full it drops expired entries, then a random
// tenth (Go's map iteration order is random).
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	caller *warden.Caller
	until  time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]cachedToken)}
}

func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*warden.Caller, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.caller, true
}

func (c *tokenCache) put(key [sha256.Size]byte, caller *warden.Caller, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max-c.max/10 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cachedToken{caller: caller, until: until}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

var _ oidc.KeySet = (*keySet)(nil)
