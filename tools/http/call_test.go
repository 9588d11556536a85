package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	whttp "github.com/warden-mcp/warden/tools/http"
)

func TestAllowedGETThroughThePipeline(t *testing.T) {
	var got *http.Request
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"v7"`)
		w.Header().Set("Set-Cookie", "session=abc123; HttpOnly")
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("X-Request-Id", "req-1")
		_, _ = io.WriteString(w, `{"id":42,"status":"open","amount":12.50,"big":12345678901234567890}`)
	})
	b := newBackend(t, up.URL+"/api", nil)
	pol := billingPolicy(t)
	p, store := newPipeline(t, newTool(b, pol), pol)
	ctx := warden.WithCaller(context.Background(), analyst)

	c, err := p.Run(ctx, "http_call", json.RawMessage(`{"api":"billing","method":"GET","path":"/v1/invoices/42","query":{"status":"open"},"headers":{"Accept":"application/json"},"purpose":"check invoice"}`))
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got.RequestURI != "/api/v1/invoices/42?status=open" {
		t.Errorf("upstream saw %s; want /api/v1/invoices/42?status=open", got.RequestURI)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+bearerToken {
		t.Errorf("upstream saw Authorization %q; want the configured credential", a)
	}
	if got.Header.Get("X-Api-Key") != apiKey || got.Header.Get("Accept") != "application/json" {
		t.Errorf("upstream headers = %v; want the credential and the agent's Accept", got.Header)
	}
	if c.Action.Statement != "GET /v1/invoices/42?status=open" || c.Action.Kind != "GET" ||
		!slices.Equal(c.Action.Ops, []warden.Op{{Verb: "GET", Object: "/v1/invoices/42"}}) {
		t.Errorf("action = %+v; want GET /v1/invoices/42", c.Action)
	}
	var res map[string]any
	if err := json.Unmarshal(c.Result.JSON, &res); err != nil {
		t.Fatal(err)
	}
	if res["status"] != float64(200) || res["body_kind"] != "json" || res["call_id"] != c.ID || res["truncated"] != false {
		t.Errorf("result = %s; want status 200, a JSON body and the call id", c.Result.JSON)
	}
	if !strings.Contains(string(c.Result.JSON), `"big":12345678901234567890`) || !strings.Contains(string(c.Result.JSON), `"amount":12.50`) {
		t.Errorf("result = %s; want numbers exactly as sent", c.Result.JSON)
	}
	hdrs := res["headers"].(map[string]any)
	if hdrs["Etag"] != nil || hdrs["ETag"] != `"v7"` || hdrs["X-Request-Id"] != "req-1" {
		t.Errorf("headers = %v; want ETag and X-Request-Id", hdrs)
	}
	for _, h := range []string{"Set-Cookie", "Www-Authenticate", "WWW-Authenticate"} {
		if _, ok := hdrs[h]; ok {
			t.Errorf("headers = %v; %s must be filtered", hdrs, h)
		}
	}
	calls, err := store.Calls(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 {
		t.Fatalf("recorded %d calls; want 1", len(calls))
	}
	if rec := fmt.Sprintf("%+v", calls[0]); leaks(rec) != "" {
		t.Errorf("the recording contains a credential: %s", rec)
	}
}

func TestPolicyJudgesThePlannedRequest(t *testing.T) {
	up := newUpstream(t, jsonHandler(`{}`))
	b := newBackend(t, up.URL, nil)
	pol := billingPolicy(t)
	p, _ := newPipeline(t, newTool(b, pol), pol)
	ctx := warden.WithCaller(context.Background(), analyst)
	tests := []struct {
		name, args, reason, allowed string
	}{
		{"DeniesPath", `{"api":"billing","method":"GET","path":"/v1/admin/users"}`,
			`no grant allows GET /v1/admin/users on backend "billing"`, "billing: GET, HEAD on /v1/invoices/** (roles.analyst.grants[0])"},
		{"DeniesMethod", `{"api":"billing","method":"DELETE","path":"/v1/invoices/42"}`,
			`no grant allows DELETE /v1/invoices/42`, "billing: POST on /v1/notes (roles.analyst.grants[1])"},
		{"DeniesPathThatOnlyLooksGranted", `{"api":"billing","method":"GET","path":"/v1/invoices%2F..%2F..%2Fadmin"}`,
			`encoded slashes`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			c, err := p.Run(ctx, "http_call", json.RawMessage(tt.args))
			e := warden.AsError(err)
			if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, tt.reason) {
				t.Fatalf("Run(%s) = %v; want Denied containing %q", tt.args, err, tt.reason)
			}
			if tt.allowed != "" && !slices.Contains(e.Allowed, tt.allowed) {
				t.Errorf("Run(%s) allowed = %q; want %q", tt.args, e.Allowed, tt.allowed)
			}
			if c.Decision == nil || c.Decision.Effect != warden.Deny {
				t.Errorf("Run(%s) decision = %+v; want a recorded denial", tt.args, c.Decision)
			}
			if up.hits.Load() != before {
				t.Errorf("Run(%s) reached the upstream", tt.args)
			}
		})
	}

	// And directly: the Action Plan builds is what policy.Authorize judges.
	a, err := newTool(b, nil).Plan(context.Background(), json.RawMessage(`{"api":"billing","method":"patch","path":"/v1/invoices/42"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := pol.Authorize(analyst, a); d.Effect != warden.Deny || !strings.Contains(d.Reasons[0], "PATCH /v1/invoices/42") {
		t.Errorf("Authorize(PATCH) = %s %q; want a denial naming PATCH /v1/invoices/42", d.Effect, d.Reasons)
	}
}

func TestPlanRefusesEscapes(t *testing.T) {
	up := newUpstream(t, jsonHandler(`{}`))
	tool := newTool(newBackend(t, up.URL+"/api", nil), nil)
	tests := []struct {
		name, path string
		code       warden.Code
		reason     string
	}{
		{"AbsoluteURL", "http://evil.example/v1/invoices", warden.Denied, "absolute URLs"},
		{"AbsoluteURLOtherScheme", "javascript:alert(1)", warden.Denied, "absolute URLs"},
		{"SchemeWithEncodedSlashes", "https:%2F%2Fevil.example", warden.Denied, "absolute URLs"},
		{"SchemeRelativeHost", "//evil.example/v1", warden.Denied, "names a host"},
		{"DotDot", "/v1/../admin", warden.Denied, "dot segments"},
		{"DotDotAtEnd", "/v1/invoices/..", warden.Denied, "dot segments"},
		{"Dot", "/v1/./invoices", warden.Denied, "dot segments"},
		{"LeavesBasePath", "/../other-api/x", warden.Denied, "dot segments"},
		{"EncodedDotDot", "/v1/%2e%2e/admin", warden.Denied, "dot segments"},
		{"EncodedDotDotUpper", "/v1/%2E%2E/admin", warden.Denied, "dot segments"},
		{"HalfEncodedDotDot", "/v1/.%2e/admin", warden.Denied, "dot segments"},
		{"DoubleEncodedDotDot", "/v1/%252e%252e/admin", warden.Denied, "double percent-encoding"},
		{"DoubleEncodedSlash", "/v1/x%252Fadmin", warden.Denied, "double percent-encoding"},
		{"TripleEncoded", "/v1/%25252e%25252e/admin", warden.Denied, "double percent-encoding"},
		{"RunOfDots", "/v1/.../admin", warden.Denied, "dot segments"},
		{"DotDotTrailingSpace", "/v1/.. /admin", warden.Denied, "dot segments"},
		{"DotDotEncodedSpace", "/v1/..%20/admin", warden.Denied, "dot segments"},
		{"FullwidthDots", "/v1/%EF%BC%8E%EF%BC%8E/admin", warden.Denied, "look-alikes"},
		{"RawFullwidthDots", "/v1/\uff0e\uff0e/admin", warden.Denied, "look-alikes"},
		{"TwoDotLeader", "/v1/%E2%80%A5/admin", warden.Denied, "look-alikes"},
		{"FullwidthSolidusTraversal", "/v1/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin", warden.Denied, "look-alikes"},
		{"FullwidthReverseSolidus", "/v1/x%EF%BC%BCadmin", warden.Denied, "look-alikes"},
		{"OverlongUTF8Dots", "/v1/%C0%AE%C0%AE/admin", warden.Denied, "valid UTF-8"},
		{"TomcatPathParameter", "/v1/..;/admin", warden.Denied, "; is refused"},
		{"PathParameter", "/v1/invoices;jsessionid=1", warden.Denied, "; is refused"},
		{"Backslash", "/v1\\..\\admin", warden.Denied, "backslashes"},
		{"LeadingBackslashes", "\\\\evil.example\\x", warden.Denied, "backslashes"},
		{"EncodedBackslash", "/v1/%5c..%5cadmin", warden.Denied, "encoded backslashes"},
		{"EncodedSlash", "/v1/invoices%2F..%2Fadmin", warden.Denied, "encoded slashes"},
		{"At", "/v1/x@evil.example", warden.Denied, "@ is refused"},
		{"LeadingAt", "/@evil.example/", warden.Denied, "@ is refused"},
		{"NUL", "/v1/invoices\x00.json", warden.Denied, "control character"},
		{"EncodedNUL", "/v1/invoices%00.json", warden.Denied, "encoded control characters"},
		{"CRLFInjection", "/v1/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", warden.Denied, "control character"},
		{"EncodedCRLF", "/v1/x%0d%0aHost:%20evil", warden.Denied, "encoded control characters"},
		{"Tab", "/v1/\tx", warden.Denied, "control character"},
		{"EmptySegment", "/v1//admin", warden.Denied, "empty segments"},
		{"EncodedSemicolon", "/v1/..%3B/admin", warden.Denied, "; is refused"},
		{"EncodedQuestionMark", "/v1/admin%3F/x", warden.Denied, "encoded ? and #"},
		{"EncodedHash", "/v1/admin%23/x", warden.Denied, "encoded ? and #"},
		{"LiteralPercent", "/v1/100%25", warden.Denied, "literal %"},
		{"DoubleEncodingBuiltFromParts", "/v1/%25%32%46admin", warden.Denied, "literal %"},
		{"TrailingDot", "/v1/admin./x", warden.Denied, "ending in a dot or a space"},
		{"TrailingEncodedSpace", "/v1/admin%20/x", warden.Denied, "ending in a dot or a space"},
		{"DivisionSlash", "/v1/..\u2215admin", warden.Denied, "look-alikes"},
		{"FractionSlash", "/v1/..%E2%81%84admin", warden.Denied, "look-alikes"},
		{"FullwidthSemicolon", "/v1/x\uff1by", warden.Denied, "look-alikes"},
		{"GreekQuestionMark", "/v1/x\u037ey", warden.Denied, "look-alikes"},
		{"ModifierLetterApostrophe", "/v1/x\u02bcy", warden.Denied, "look-alikes"},
		{"ZeroWidthSpace", "/v1/ad\u200bmin", warden.Denied, "look-alikes"},
		{"NoBreakSpace", "/v1/admin\u00a0", warden.Denied, "look-alikes"},
		{"FullwidthLetters", "/v1/\uff41\uff44\uff4d\uff49\uff4e", warden.Denied, "NFKC"},
		{"Ligature", "/v1/\ufb01le", warden.Denied, "NFKC"},
		{"KelvinSign", "/v1/\u212aey", warden.Denied, "NFKC"},
		{"DecomposedAccent", "/v1/cafe\u0301", warden.Denied, "NFKC"},
		{"CombiningMarkOnDot", "/v1/..\u0338/admin", warden.Denied, "combining mark"},
		{"LeadingCombiningMark", "/v1/\u0301x", warden.Denied, "combining mark"},
		{"Relative", "v1/invoices", warden.Invalid, "must start with /"},
		{"Empty", "", warden.Invalid, "missing argument"},
		{"QueryInPath", "/v1/invoices?x=1", warden.Invalid, "query argument"},
		{"Fragment", "/v1/invoices#x", warden.Invalid, "fragments"},
		{"MalformedEscape", "/v1/%zz", warden.Invalid, "malformed percent-escape"},
		{"TruncatedEscape", "/v1/%2", warden.Invalid, "malformed percent-escape"},
		{"UnencodedBrace", "/v1/{id}", warden.Invalid, "must be percent-encoded"},
		{"TooLong", "/" + strings.Repeat("a", 3000), warden.Invalid, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, _ := json.Marshal(map[string]string{"api": "billing", "method": "GET", "path": tt.path})
			_, err := tool.Plan(context.Background(), args)
			e := warden.AsError(err)
			if e == nil || e.Code != tt.code || !strings.Contains(e.Message, tt.reason) {
				t.Fatalf("Plan(path %q) = %v; want %s containing %q", tt.path, err, tt.code, tt.reason)
			}
			if e.Code == warden.Denied && e.Rule != "http.path" {
				t.Errorf("Plan(path %q) rule = %q; want http.path", tt.path, e.Rule)
			}
		})
	}
	if up.hits.Load() != 0 {
		t.Errorf("a refused plan reached the upstream")
	}
}

func TestPathsAreSentInCanonicalForm(t *testing.T) {
	var uri string
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { uri = r.RequestURI })
	tool := newTool(newBackend(t, up.URL+"/api/", nil), nil)
	tests := []struct{ path, object, sent string }{
		{"/v1/invoices/42", "/v1/invoices/42", "/api/v1/invoices/42"},
		{"/", "/", "/api/"},
		{"/v1/invoices/", "/v1/invoices/", "/api/v1/invoices/"},
		{"/v1/%7Einvoices/%41", "/v1/~invoices/A", "/api/v1/~invoices/A"},
		{"/v1/a%2ab", "/v1/a*b", "/api/v1/a*b"},
		{"/v1/events/2024-01-01T10%3A00%21", "/v1/events/2024-01-01T10:00!", "/api/v1/events/2024-01-01T10:00!"},
		{"/v1/phones/%2B4912", "/v1/phones/+4912", "/api/v1/phones/+4912"},
		{"/v1/%5Bx%5D%7B%7D", "/v1/%5Bx%5D%7B%7D", "/api/v1/%5Bx%5D%7B%7D"},
		{"/v1/Straße/東京/Ярослав", "/v1/Stra%C3%9Fe/%E6%9D%B1%E4%BA%AC/%D0%AF%D1%80%D0%BE%D1%81%D0%BB%D0%B0%D0%B2", "/api/v1/Stra%C3%9Fe/%E6%9D%B1%E4%BA%AC/%D0%AF%D1%80%D0%BE%D1%81%D0%BB%D0%B0%D0%B2"},
		{"/v1/café", "/v1/caf%C3%A9", "/api/v1/caf%C3%A9"},
		{"/v1/a b", "/v1/a%20b", "/api/v1/a%20b"},
		{"/v1/users/alice%40example.com", "/v1/users/alice%40example.com", "/api/v1/users/alice%40example.com"},
		{"/v1/x:y,z=1!*'()$&+", "/v1/x:y,z=1!*'()$&+", "/api/v1/x:y,z=1!*'()$&+"},
		{"/v1/..a/b..c", "/v1/..a/b..c", "/api/v1/..a/b..c"},
	}
	for _, tt := range tests {
		args, _ := json.Marshal(map[string]string{"api": "billing", "method": "GET", "path": tt.path})
		a, err := tool.Plan(context.Background(), args)
		if err != nil {
			t.Errorf("Plan(path %q) = %v; want ok", tt.path, err)
			continue
		}
		if a.Ops[0].Object != tt.object {
			t.Errorf("Plan(path %q) object = %q; want %q", tt.path, a.Ops[0].Object, tt.object)
		}
		if _, err := tool.Execute(context.Background(), a); err != nil {
			t.Errorf("Execute(path %q) = %v", tt.path, err)
			continue
		}
		if uri != tt.sent {
			t.Errorf("path %q reached the upstream as %q; want %q", tt.path, uri, tt.sent)
		}
	}
}

func TestPlanRefusesHeadersAndMethods(t *testing.T) {
	up := newUpstream(t, jsonHandler(`{}`))
	tool := newTool(newBackend(t, up.URL, nil), nil)
	tests := []struct {
		name, args string
		code       warden.Code
		reason     string
	}{
		{"Authorization", `{"headers":{"Authorization":"Bearer agent-token"}}`, warden.Denied, "credential header that warden sets"},
		{"AuthorizationAnyCase", `{"headers":{"authorization":"Bearer agent-token"}}`, warden.Denied, "credential header that warden sets"},
		{"ConfiguredCredential", `{"headers":{"x-api-key":"mine"}}`, warden.Denied, "credential header that warden sets"},
		{"ProxyAuthorization", `{"headers":{"Proxy-Authorization":"Basic eA=="}}`, warden.Denied, "never from the agent"},
		{"Cookie", `{"headers":{"Cookie":"session=1"}}`, warden.Denied, "never from the agent"},
		{"Host", `{"headers":{"Host":"evil.example"}}`, warden.Denied, "fixed by the API's base_url"},
		{"XForwardedFor", `{"headers":{"X-Forwarded-For":"127.0.0.1"}}`, warden.Denied, "forwarding headers"},
		{"XForwardedHost", `{"headers":{"X-Forwarded-Host":"evil.example"}}`, warden.Denied, "forwarding headers"},
		{"Forwarded", `{"headers":{"Forwarded":"for=1.2.3.4"}}`, warden.Denied, "forwarding headers"},
		{"XRealIP", `{"headers":{"X-Real-IP":"10.0.0.1"}}`, warden.Denied, "forwarding headers"},
		{"MethodOverride", `{"headers":{"X-HTTP-Method-Override":"DELETE"}}`, warden.Denied, "override the path or method"},
		{"OriginalURL", `{"headers":{"X-Original-URL":"/admin"}}`, warden.Denied, "override the path or method"},
		{"Connection", `{"headers":{"Connection":"close"}}`, warden.Denied, "hop-by-hop"},
		{"TransferEncoding", `{"headers":{"Transfer-Encoding":"chunked"}}`, warden.Denied, "hop-by-hop"},
		{"ContentLength", `{"headers":{"Content-Length":"0"}}`, warden.Denied, "hop-by-hop"},
		{"Upgrade", `{"headers":{"Upgrade":"websocket"}}`, warden.Denied, "hop-by-hop"},
		{"AcceptEncoding", `{"headers":{"Accept-Encoding":"identity"}}`, warden.Denied, "compression"},
		{"Unlisted", `{"headers":{"X-Custom":"1"}}`, warden.Denied, "only content-negotiation"},
		{"CRLFInValue", `{"headers":{"Accept":"text/plain\r\nX-Injected: 1"}}`, warden.Denied, "line break"},
		{"BadName", `{"headers":{"Bad Name":"1"}}`, warden.Invalid, "not a valid header name"},
		{"DuplicateName", `{"headers":{"accept":"a","Accept":"b"}}`, warden.Invalid, "given twice"},
		{"Trace", `{"method":"TRACE"}`, warden.Denied, `the method "TRACE" is refused`},
		{"Connect", `{"method":"CONNECT"}`, warden.Denied, "refused"},
		{"MissingMethod", `{"method":""}`, warden.Invalid, "missing argument"},
		{"UnknownAPI", `{"api":"payroll"}`, warden.Invalid, `unknown api "payroll"`},
		{"UnknownArgument", `{"url":"http://evil.example"}`, warden.Invalid, `unknown argument "url"`},
		{"BodyOnGET", `{"body":{"a":1}}`, warden.Invalid, "carries no body"},
		{"QueryObject", `{"query":{"a":{"b":1}}}`, warden.Invalid, "must be a string, number or boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"api": "billing", "method": "GET", "path": "/v1/invoices"}
			var extra map[string]any
			if err := json.Unmarshal([]byte(tt.args), &extra); err != nil {
				t.Fatal(err)
			}
			for k, v := range extra {
				args[k] = v
			}
			raw, _ := json.Marshal(args)
			_, err := tool.Plan(context.Background(), raw)
			e := warden.AsError(err)
			if e == nil || e.Code != tt.code || !strings.Contains(e.Message, tt.reason) {
				t.Fatalf("Plan(%s) = %v; want %s containing %q", raw, err, tt.code, tt.reason)
			}
			if leaks(e.Message) != "" {
				t.Errorf("Plan(%s) error quotes a credential: %s", raw, e.Message)
			}
		})
	}
	// approval_id is a claim the approval stage checks; Plan only carries it.
	if a, err := tool.Plan(context.Background(), json.RawMessage(`{"api":"billing","method":"GET","path":"/v1/invoices","approval_id":"a-1"}`)); err != nil || a.ApprovalID != "a-1" {
		t.Errorf("Plan(approval_id a-1) = %+v, %v; want the action to carry approval_id a-1", a, err)
	}
	if _, err := tool.Plan(context.Background(), json.RawMessage(`{"api":"billing","method":"GET","path":"/x","headers":{"X-Custom":"1"}}`)); !slices.ContainsFunc(warden.AsError(err).Allowed, func(s string) bool { return strings.Contains(s, "If-None-Match") }) {
		t.Errorf("a refused header does not list the headers the agent may set: %v", warden.AsError(err).Allowed)
	}
}

func TestRequestEncoding(t *testing.T) {
	var got *http.Request
	var body string
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(http.StatusCreated)
	})
	tool := newTool(newBackend(t, up.URL, nil), nil)

	res := mustCall(t, tool, `{"api":"billing","method":"POST","path":"/v1/notes","body":{"text": "hi",  "n": 12345678901234567890},"headers":{"Idempotency-Key":"k-1"}}`)
	if res.Status != 201 || res.BodyKind != "empty" {
		t.Errorf("POST result = %+v; want 201 with an empty body", res)
	}
	if body != `{"text":"hi","n":12345678901234567890}` || got.Header.Get("Content-Type") != "application/json" || got.Header.Get("Idempotency-Key") != "k-1" {
		t.Errorf("upstream got %q (%s); want compact JSON", body, got.Header.Get("Content-Type"))
	}
	mustCall(t, tool, `{"api":"billing","method":"PUT","path":"/v1/notes/1","body":"plain text","headers":{"Content-Type":"text/markdown"}}`)
	if body != "plain text" || got.Header.Get("Content-Type") != "text/markdown" || got.Method != "PUT" {
		t.Errorf("upstream got %s %q (%s); want the string as text with the agent's Content-Type", got.Method, body, got.Header.Get("Content-Type"))
	}
	mustCall(t, tool, `{"api":"billing","method":"get","path":"/v1/x","query":{"status":"open","n":12345678901234567890,"tag":["a","b c"],"flag":true,"q":"a&b=c"}}`)
	if want := "/v1/x?flag=true&n=12345678901234567890&q=a%26b%3Dc&status=open&tag=a&tag=b+c"; got.RequestURI != want || got.Method != "GET" {
		t.Errorf("upstream got %s %s; want GET %s", got.Method, got.RequestURI, want)
	}
	if got.Header.Get("User-Agent") != "warden" {
		t.Errorf("User-Agent = %q; want warden", got.Header.Get("User-Agent"))
	}

	a, err := tool.Plan(context.Background(), json.RawMessage(`{"api":"billing","method":"POST","path":"/v1/notes","body":{"text":"hi"},"query":{"x":"1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "POST /v1/notes?x=1\n\n{\"text\":\"hi\"}"; a.Statement != want {
		t.Errorf("statement = %q; want %q", a.Statement, want)
	}
	res = mustCall(t, tool, `{"api":"billing","method":"HEAD","path":"/v1/x"}`)
	if got.Method != "HEAD" || res.BodyKind != "empty" {
		t.Errorf("HEAD = %+v (upstream %s); want an empty body", res, got.Method)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	other := newUpstream(t, jsonHandler(`{"stolen":true}`))
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/invoices/away":
			http.Redirect(w, r, other.URL+"/collect?token=x", http.StatusFound)
		case "/api/v1/invoices/old":
			http.Redirect(w, r, "/api/v1/invoices/new?x=1", http.StatusMovedPermanently)
		case "/api/v1/invoices/admin":
			http.Redirect(w, r, "/api/v1/admin", http.StatusFound)
		case "/api/v1/invoices/outside":
			http.Redirect(w, r, "/other-api/v1", http.StatusFound)
		default:
			jsonHandler(`{"path":"`+r.URL.Path+`"}`)(w, r)
		}
	})
	ctx := warden.WithCaller(context.Background(), analyst)
	pol := billingPolicy(t)

	t.Run("ByDefault", func(t *testing.T) {
		tool := newTool(newBackend(t, up.URL+"/api", nil), pol)
		res, err := call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/away"}`)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusFound || other.hits.Load() != 0 {
			t.Errorf("status %d, other host hit %d times; want the 302 as is and no request elsewhere", res.Status, other.hits.Load())
		}
		if _, ok := res.Headers["Location"]; ok || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "Location header is withheld") }) {
			t.Errorf("headers %v notes %q; want the off-site Location withheld, with a note", res.Headers, res.Notes)
		}
		res = mustCall(t, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/old"}`)
		if res.Status != http.StatusMovedPermanently || res.Headers["Location"] != "/v1/invoices/new?x=1" || len(res.Redirects) != 0 {
			t.Errorf("result %+v; want the 301 as is, Location as a path under the API", res)
		}
	})
	t.Run("SameOrigin", func(t *testing.T) {
		tool := newTool(newBackend(t, up.URL+"/api", func(c *whttp.Config) { c.FollowRedirects = "same_origin" }), pol)
		res, err := call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/away"}`)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusFound || other.hits.Load() != 0 {
			t.Errorf("status %d, other host hit %d times; want no redirect to another host", res.Status, other.hits.Load())
		}
		res, err = call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/old"}`)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 200 || !slices.Equal(res.Redirects, []string{"GET /v1/invoices/new?x=1"}) || encodeJSON(t, res.Body) != `{"path":"/api/v1/invoices/new"}` {
			t.Errorf("result %+v; want the granted same-origin redirect followed", res)
		}
		res, err = call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/admin"}`)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusFound || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "GET /v1/admin not followed: no grant allows") }) {
			t.Errorf("result %+v; want a redirect to an ungranted path returned as is, with the reason", res)
		}
		res, err = call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices/outside"}`)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusFound || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "leaves the API's base URL") }) {
			t.Errorf("result %+v; want a redirect out of the base path returned as is", res)
		}
	})
}

func TestCredentialsAreNeverEchoed(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		// Echo every request header back, as headers and in the body.
		for k, v := range r.Header {
			w.Header()["X-Echo-"+k] = v
		}
		w.Header().Set("X-Request-Id", r.Header.Get("Authorization"))
		w.Header().Set("Set-Cookie", "token="+r.Header.Get("X-Api-Key"))
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, r.Header.Get("X-Api-Key"): "as a key"})
		case "/escaped":
			w.Header().Set("Content-Type", "application/json")
			// JSON escapes spell the token without its bytes appearing.
			esc := ""
			for _, c := range bearerToken {
				esc += fmt.Sprintf(`\u%04x`, c)
			}
			_, _ = io.WriteString(w, `{"token":"`+esc+`"}`)
		case "/text":
			w.Header().Set("Content-Type", "text/plain")
			for k, v := range r.Header {
				fmt.Fprintf(w, "%s: %s\n", k, strings.Join(v, ","))
			}
		case "/straddle":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, strings.Repeat("x", 100)+r.Header.Get("Authorization")+" and more")
		case "/shifted":
			// The second echo is cut by the read; replacing the first
			// with the shorter marker moves its start below the cap.
			a := r.Header.Get("Authorization")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, a+strings.Repeat("x", 120-len(a))+a+" and more")
		}
	}
	up := newUpstream(t, echo)
	for _, path := range []string{"/json", "/escaped", "/text", "/straddle", "/shifted"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			tool := newTool(newBackend(t, up.URL, func(c *whttp.Config) {
				if path == "/straddle" || path == "/shifted" {
					c.MaxResponseBytes = 115 // cuts the echoed token
				}
			}), nil)
			res := mustCall(t, tool, `{"api":"billing","method":"GET","path":"`+path+`"}`)
			out := encodeJSON(t, res)
			if s := leaks(out); s != "" {
				t.Errorf("the result contains credential %q: %s", s, out)
			}
			if path == "/straddle" || path == "/shifted" {
				if s := res.Body.(string); strings.Contains(s, bearerToken[:4]) || !res.Truncated {
					t.Errorf("the cut body keeps part of the credential: %q", s)
				}
				return
			}
			if !strings.Contains(out, whttp.CredentialMarker) {
				t.Errorf("the result shows no %s where the echo was: %s", whttp.CredentialMarker, out)
			}
			if _, ok := res.Headers["X-Request-Id"]; !ok {
				t.Errorf("X-Request-Id is missing; want it present, masked")
			}
		})
	}
}

func TestMaskingByJSONPathAndDetector(t *testing.T) {
	up := newUpstream(t, jsonHandler(`{"data":[{"id":"inv-1","card":{"number":"4111 1111 1111 1111"},"contact":"ann@example.com"},
		{"id":"inv-2","card":{"number":"5500 0000 0000 0004"},"note":"card on file 4012888888881881"}]}`))
	b := newBackend(t, up.URL, nil)
	masks, err := mask.NewJSONMasks(mask.JSONPaths{"$.data[*].card.number": {Strategy: "last4"}}, mask.NewMasker([]byte("k")))
	if err != nil {
		t.Fatal(err)
	}
	b.SetMasking(masks)
	pol := billingPolicy(t)
	p, _ := newPipeline(t, newTool(b, pol), pol, mask.CreditCard, mask.Email)
	c, err := p.Run(warden.WithCaller(context.Background(), analyst), "http_call", json.RawMessage(`{"api":"billing","method":"GET","path":"/v1/invoices"}`))
	if err != nil {
		t.Fatal(err)
	}
	out := string(c.Result.JSON)
	for _, want := range []string{`"number":"**** **** **** 1111"`, `"number":"**** **** **** 0004"`, `"contact":"[masked:email]"`,
		`"note":"card on file [masked:credit_card]"`, `"masked":["last4 ($.data[*].card.number)"]`} {
		if !strings.Contains(out, want) {
			t.Errorf("result = %s; want it to contain %s", out, want)
		}
	}
	for _, raw := range []string{"4111 1111 1111 1111", "ann@example.com", "4012888888881881"} {
		if strings.Contains(out, raw) {
			t.Errorf("result = %s; contains the raw value %s", out, raw)
		}
	}
	if !slices.Equal(c.Detected, []string{"credit_card", "email"}) {
		t.Errorf("detected = %v; want credit_card, email", c.Detected)
	}
}

func TestResponseBodies(t *testing.T) {
	big := `{"data":[` + strings.Repeat(`{"card":{"number":"4111 1111 1111 1111"}},`, 100) + `{}]}`
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, big)
		case "/big.txt":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, strings.Repeat("é", 2000))
		case "/image.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 1226)...))
		case "/unlabelled":
			_, _ = w.Write([]byte{0, 1, 2, 3, 0xff})
		case "/json-as-text":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, `{"card":{"number":"4111 1111 1111 1111"}}`)
		case "/broken.json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"card":{"number":"4111 1111 1111 1111"`)
		case "/two-documents":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"a":1} {"card":{"number":"4111 1111 1111 1111"}}`)
		case "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"title":"not found"}`)
		}
	})
	masked := func(t *testing.T, edit func(*whttp.Config)) *whttp.Call {
		b := newBackend(t, up.URL, edit)
		m, err := mask.NewJSONMasks(mask.JSONPaths{"$..number": {Strategy: "last4"}}, mask.NewMasker(nil))
		if err != nil {
			t.Fatal(err)
		}
		b.SetMasking(m)
		return newTool(b, nil)
	}
	capped := func(c *whttp.Config) { c.MaxResponseBytes = 1024 }
	tests := []struct {
		name     string
		tool     *whttp.Call
		path     string
		kind     string
		bytes    int64
		trunc    bool
		body     string // substring of the encoded body
		notInAll string
	}{
		{"SizeCapOnText", newTool(newBackend(t, up.URL, capped), nil), "/big.txt", "text", 1024, true, "éé", ""},
		{"SizeCapOnJSONWithoutRules", newTool(newBackend(t, up.URL, capped), nil), "/big.json", "text", 1024, true, `{\"data\":[`, ""},
		{"SizeCapOnMaskedJSONWithholds", masked(t, capped), "/big.json", "withheld", 1024, true, "null", "4111"},
		{"JSONWithinCapIsMasked", masked(t, nil), "/big.json", "json", int64(len(big)), false, "**** **** **** 1111", "4111"},
		{"JSONLabelledTextIsMasked", masked(t, nil), "/json-as-text", "json", 41, false, "**** **** **** 1111", "4111"},
		{"BrokenJSONWithRulesIsWithheld", masked(t, nil), "/broken.json", "withheld", 39, false, "null", "4111"},
		{"TrailingDocumentWithRulesIsWithheld", masked(t, nil), "/two-documents", "withheld", 49, false, "null", "4111"},
		{"BinaryIsDescribed", newTool(newBackend(t, up.URL, nil), nil), "/image.png", "binary", 1234, false, "binary body, 1234 bytes, image/png (not shown)", "PNG"},
		{"CappedBinary", newTool(newBackend(t, up.URL, capped), nil), "/image.png", "binary", 1024, true, "more than 1024 bytes", ""},
		{"UnlabelledBinaryIsSniffed", newTool(newBackend(t, up.URL, nil), nil), "/unlabelled", "binary", 5, false, "application/octet-stream", ""},
		{"ProblemJSON", newTool(newBackend(t, up.URL, nil), nil), "/problem", "json", 21, false, `{"title":"not found"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustCall(t, tt.tool, `{"api":"billing","method":"GET","path":"`+tt.path+`"}`)
			out := encodeJSON(t, res)
			if res.BodyKind != tt.kind || res.Bytes != tt.bytes || res.Truncated != tt.trunc {
				t.Errorf("GET %s = kind %s, bytes %d, truncated %v; want %s, %d, %v", tt.path, res.BodyKind, res.Bytes, res.Truncated, tt.kind, tt.bytes, tt.trunc)
			}
			if b := encodeJSON(t, res.Body); !strings.Contains(b, tt.body) {
				t.Errorf("GET %s body = %s; want it to contain %s", tt.path, b, tt.body)
			}
			if tt.notInAll != "" && strings.Contains(out, tt.notInAll) {
				t.Errorf("GET %s result = %s; must not contain %s", tt.path, out, tt.notInAll)
			}
			if s, ok := res.Body.(string); ok && res.BodyKind == "text" && int64(len(s)) > tt.bytes {
				t.Errorf("GET %s returned %d bytes of text; cap %d", tt.path, len(s), tt.bytes)
			}
		})
	}
}

func TestMethodsMatchPolicy(t *testing.T) {
	if !slices.Equal(whttp.Methods, policy.HTTPMethods) {
		t.Errorf("tools/http plans %v but policy grants %v", whttp.Methods, policy.HTTPMethods)
	}
}

func TestSpec(t *testing.T) {
	s := (&whttp.Call{}).Spec()
	if s.Name != "http_call" || s.BackendKind != "http" || s.BackendArg != "api" {
		t.Errorf("Spec() = %s/%s/%s; want http_call/http/api", s.Name, s.BackendKind, s.BackendArg)
	}
	props := s.InputSchema["properties"].(map[string]any)
	for _, arg := range []string{"api", "method", "path", "query", "headers", "body", "purpose", "approval_id"} {
		if _, ok := props[arg]; !ok {
			t.Errorf("the input schema lacks %q", arg)
		}
	}
	if _, err := json.Marshal(s.InputSchema); err != nil {
		t.Errorf("the input schema does not encode: %v", err)
	}
}
