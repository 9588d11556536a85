package http_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	whttp "github.com/warden-mcp/warden/tools/http"
)

// pathAttacks are spellings of a path outside /v1/public that a server
// could read as one: each escapes /v1/public/x to reach /v1/admin.
var pathAttacks = []string{
	"/v1/public/../admin",
	"/v1/public/%2e%2e/admin",
	"/v1/public/%2E%2e/admin",
	"/v1/public/.%2e/admin",
	"/v1/public/%252e%252e/admin",
	"/v1/public/%25%32%65%25%32%65/admin",
	"/v1/public/%25252e%25252e/admin",
	"/v1/public/..%2fadmin",
	"/v1/public/..%252fadmin",
	"/v1/public/x%2f..%2f..%2fadmin",
	"/v1/public/..\\admin",
	"/v1/public/..%5cadmin",
	"/v1/public/..;/admin",
	"/v1/public/..%3b/admin",
	"/v1/public/..%3B/admin",
	"/v1/public/%2e%2e%3bx/admin",
	"/v1/public/.. /admin",
	"/v1/public/..%20/admin",
	"/v1/public/.../admin",
	"/v1/public/...%20/../../admin",
	"/v1/public/..\uff0fadmin",
	"/v1/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
	"/v1/public/\uff0e\uff0e/admin",
	"/v1/public/..\u2215admin",
	"/v1/public/..%E2%88%95admin",
	"/v1/public/..\u2044admin",
	"/v1/public/\u2025/admin",
	"/v1/public/\u2024\u2024/admin",
	"/v1/public/..\uff3cadmin",
	"/v1/public/%C0%AE%C0%AE/admin",
	"/v1/public/%C0%AE%C0%AE%C0%AFadmin",
	"/v1/public/%E0%80%AE%E0%80%AE/admin",
	"/v1/public/x/..%00/../admin",
	"/v1/public/..\u0338/admin",
	"/v1/public/.\u0307./admin",
}

// TestPathSpellingsReachOnlyGrantedRoutes sends every spelling through the
// real pipeline to a framework that decodes as loosely as servers do, and
// judges by what the framework dispatched: nothing outside the grant.
func TestPathSpellingsReachOnlyGrantedRoutes(t *testing.T) {
	fw := newFramework(t, nil)
	f := newEdgeFixture(t, newBackend(t, fw.URL, nil),
		[]*policy.Grant{{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/v1/public/**"}}})
	real := 0
	for _, p := range pathAttacks {
		t.Run(p, func(t *testing.T) {
			if rt := directRoute(t, fw, "GET", p); !strings.HasPrefix(rt.Path, "/v1/public") {
				real++ // without warden, this spelling leaves the grant
			}
			out, e := f.run(map[string]any{"method": "GET", "path": p})
			for _, rt := range fw.log() {
				if !strings.HasPrefix(rt.Path+"/", "/v1/public/") {
					t.Errorf("GET %q reached the framework as %s %s (agent got %s %v)", p, rt.Method, rt.Path, out, e)
				}
			}
			if e != nil && (e.Message == "" || e.Code != warden.Denied && e.Code != warden.Invalid) {
				t.Errorf("GET %q refused as %s %q; want a denial with a reason", p, e.Code, e.Message)
			}
		})
	}
	t.Logf("%d of %d spellings leave /v1/public on the framework when sent directly", real, len(pathAttacks))
	if real < len(pathAttacks)/2 {
		t.Errorf("only %d of %d spellings leave /v1/public on the framework without warden: the framework decodes too strictly to prove anything", real, len(pathAttacks))
	}
}

// TestApprovalRulesHoldEverySpelling: a rule holding /v1/admin/** holds
// every spelling a server reads as that path; held calls never run here
// (the test client cannot be asked), so the framework must never dispatch
// an admin route.
func TestApprovalRulesHoldEverySpelling(t *testing.T) {
	fw := newFramework(t, nil)
	f := newEdgeFixture(t, newBackend(t, fw.URL, nil),
		[]*policy.Grant{{Backend: "billing", Methods: []string{"GET", "POST", "DELETE"}, Paths: []string{"/**"}}},
		&approvals.Rule{Name: "admin", Backend: "billing", Paths: []string{"/v1/admin/**"}})
	spellings := []string{
		"/v1/admin/users", "/V1/ADMIN/users", "/v1/Admin/Users/", "/v1/admin/", "/v1/ADMIN", "/v1/admin.json",
		"/v1/admin/users.json", "/v1/%61dmin/users", "/v1/%41DMIN/users", "/v1/adm%C4%B1n/users", "/v1/adm\u0131n",
		"/v1/admin%2Fusers", "/v1/admin;x/users", "/v1/admin%3Bx/users", "/v1/admin./users", "/v1/admin%20/users",
		"/v1/admin%2e/users", "/v1/\uff41\uff44\uff4d\uff49\uff4e/users", "/v1/ADM\u0130N", "/v1/public/../admin/users",
		"/v1/admin%3F/users", "/v1/admin%23/users", "/v1/admin\\users", "/v1/a%64min.xml",
	}
	for _, p := range spellings {
		for _, m := range []string{"GET", "DELETE"} {
			out, e := f.run(map[string]any{"method": m, "path": p})
			for _, rt := range fw.log() {
				if rt.Path == "/v1/admin" || strings.HasPrefix(rt.Path, "/v1/admin/") {
					t.Errorf("%s %q was not held: the framework dispatched %s %s (agent got %s)", m, p, rt.Method, rt.Path, out)
				}
			}
			if e == nil {
				t.Errorf("%s %q ran without approval: %s", m, p, out)
			}
		}
	}
	// Harmless neighbours still run.
	for _, p := range []string{"/v1/administrators", "/v1/invoices/INV-2024-001", "/v1/admins"} {
		if out, e := f.run(map[string]any{"method": "GET", "path": p}); e != nil {
			t.Errorf("GET %q = %s %q; want it to run (no rule names it)", p, e.Code, e.Message)
		} else if len(fw.log()) != 1 {
			t.Errorf("GET %q = %s but did not reach the framework", p, out)
		}
	}
}

// overrideAttacks are POSTs that a framework dispatches as DELETE.
func overrideAttacks() []map[string]any {
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("_method", "DELETE")
	_ = w.Close()
	return []map[string]any{
		{"query": map[string]any{"_method": "DELETE"}},
		{"query": map[string]any{"_METHOD": "delete"}},
		{"query": map[string]any{"X-HTTP-Method-Override": "DELETE"}},
		{"query": map[string]any{"_method": []string{"GET", "DELETE"}}},
		{"body": "_method=DELETE", "headers": map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"body": "a=1&%5Fmethod=DELETE", "headers": map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}},
		{"body": map[string]any{"_method": "DELETE", "note": "x"}},
		{"body": "a=1;_method=DELETE", "headers": map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"body": mp.String(), "headers": map[string]string{"Content-Type": w.FormDataContentType()}},
		{"headers": map[string]string{"X-HTTP-Method-Override": "DELETE"}},
		{"headers": map[string]string{"X-HTTP-Method": "DELETE"}},
		{"headers": map[string]string{"X-Method-Override": "DELETE"}},
	}
}

// TestMethodOverridesAreJudgedAsTheMethodTheyName: the framework honours
// every override convention; warden judges the method it names, for
// policy and for approval rules, or refuses the override.
func TestMethodOverridesAreJudgedAsTheMethodTheyName(t *testing.T) {
	fw := newFramework(t, nil)
	b := newBackend(t, fw.URL, nil)
	run := func(t *testing.T, f *edgeFixture, wantDelete bool) {
		for i, extra := range overrideAttacks() {
			args := map[string]any{"method": "POST", "path": "/v1/notes/1"}
			for k, v := range extra {
				args[k] = v
			}
			out, e := f.run(args)
			deleted := false
			for _, rt := range fw.log() {
				deleted = deleted || rt.Method == "DELETE"
			}
			if deleted != wantDelete {
				t.Errorf("attack %d (%v): framework dispatched DELETE = %v; want %v (agent got %s %v)", i, extra, deleted, wantDelete && e == nil, out, e)
			}
			if e != nil && e.Message == "" {
				t.Errorf("attack %d refused without a reason", i)
			}
		}
	}
	t.Run("DeleteNotGranted", func(t *testing.T) {
		f := newEdgeFixture(t, b, []*policy.Grant{{Backend: "billing", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/notes/**"}}})
		run(t, f, false)
	})
	t.Run("DeleteHeldForApproval", func(t *testing.T) {
		f := newEdgeFixture(t, b, []*policy.Grant{{Backend: "billing", Methods: []string{"GET", "POST", "DELETE"}, Paths: []string{"/v1/notes/**"}}},
			&approvals.Rule{Name: "deletes", Backend: "billing", When: []string{"DELETE"}})
		run(t, f, false)
	})
	t.Run("DeleteGrantedRunsAsDelete", func(t *testing.T) {
		f := newEdgeFixture(t, b, []*policy.Grant{{Backend: "billing", Methods: []string{"GET", "POST", "DELETE"}, Paths: []string{"/v1/notes/**"}}})
		out, e := f.run(map[string]any{"method": "POST", "path": "/v1/notes/1", "query": map[string]any{"_method": "DELETE"}})
		if e != nil || !strings.Contains(out, `"method":"DELETE"`) {
			t.Errorf("POST ?_method=DELETE with DELETE granted = %s %v; want it to run", out, e)
		}
		fw.log()
	})
	t.Run("UnknownMethodRefused", func(t *testing.T) {
		f := newEdgeFixture(t, b, []*policy.Grant{{Backend: "billing", Methods: []string{"POST"}, Paths: []string{"/v1/notes/**"}}})
		_, e := f.run(map[string]any{"method": "POST", "path": "/v1/notes/1", "query": map[string]any{"_method": "PURGE"}})
		if e == nil || e.Code != warden.Denied || len(fw.log()) != 0 {
			t.Errorf("POST ?_method=PURGE = %v; want a denial before the framework", e)
		}
	})
}

// TestRedirectsRunTheWholeDecisionAgain: a followed redirect is judged by
// policy and approval rules for its new method and path, as the framework
// reads them.
func TestRedirectsRunTheWholeDecisionAgain(t *testing.T) {
	fw := newFramework(t, func(w http.ResponseWriter, r *http.Request, rt route) {
		to := map[string]string{
			"/v1/public/to-admin":    "/v1/Admin/users",
			"/v1/public/to-admin-2":  "/v1/%61dmin/users/",
			"/v1/public/to-admin-3":  "/v1/admin.json",
			"/v1/public/to-private":  "/v1/private",
			"/v1/public/to-override": "/v1/public/x?_method=DELETE",
			"/v1/public/to-ok":       "/v1/public/ok?page=2",
		}[r.URL.Path]
		if to != "" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"route":%q,"method":%q}`, rt.Path, rt.Method)
	})
	b := newBackend(t, fw.URL, func(c *whttp.Config) { c.FollowRedirects = whttp.FollowSameOrigin })
	f := newEdgeFixture(t, b,
		[]*policy.Grant{{Backend: "billing", Methods: []string{"GET", "POST"}, Paths: []string{"/v1/public/**", "/v1/admin/**", "/v1/admin.json"}}},
		&approvals.Rule{Name: "admin", Backend: "billing", Paths: []string{"/v1/admin/**"}})
	for _, tt := range []struct{ method, path, note string }{
		{"GET", "/v1/public/to-admin", "not followed"}, // no grant names /v1/Admin: refused before the rules
		{"GET", "/v1/public/to-admin-2", "would hold it"},
		{"POST", "/v1/public/to-admin-3", "would hold it"},
		{"GET", "/v1/public/to-private", "no grant allows"},
		{"POST", "/v1/public/to-override", "DELETE"},
	} {
		out, e := f.run(map[string]any{"method": tt.method, "path": tt.path})
		log := fw.log()
		for _, rt := range log[1:] {
			t.Errorf("%s %s: the redirect reached the framework as %s %s", tt.method, tt.path, rt.Method, rt.Path)
		}
		if e != nil || !strings.Contains(out, `"status":307`) || !strings.Contains(out, tt.note) {
			t.Errorf("%s %s = %s %v; want the 307 returned with a note containing %q", tt.method, tt.path, out, e, tt.note)
		}
	}
	out, e := f.run(map[string]any{"method": "GET", "path": "/v1/public/to-ok"})
	if e != nil || !strings.Contains(out, `"route":"/v1/public/ok"`) || !strings.Contains(out, `"GET /v1/public/ok?page=2"`) {
		t.Errorf("a redirect inside the grant = %s %v; want it followed", out, e)
	}
}

// TestMaskingCannotBeNegotiatedAway: with json_paths rules, warden asks
// for JSON whatever the agent asks for, and returns nothing it cannot mask.
func TestMaskingCannotBeNegotiatedAway(t *testing.T) {
	const card = "4111 1111 1111 1111"
	deep := strings.Repeat(`{"a":`, 100) + `{"number":"` + card + `"}` + strings.Repeat("}", 100)
	bodies := map[string][2]string{ // path → content type, body
		"/xml":       {"application/xml", "<card><number>" + card + "</number></card>"},
		"/yaml":      {"application/yaml", "card:\n  number: " + card + "\n"},
		"/csv":       {"text/csv", "number\n" + card + "\n"},
		"/jsonp":     {"application/javascript", `cb({"card":{"number":"` + card + `"}})`},
		"/text":      {"text/plain", "card number " + card},
		"/html":      {"text/html", "<p>" + card + "</p>"},
		"/mislabel":  {"application/json", "<card>" + card + "</card>"},
		"/unlabel":   {"", "number=" + card},
		"/truncated": {"application/json", `{"card":{"number":"` + card + `"},"pad":"` + strings.Repeat("x", 300) + `"}`},
		"/deep":      {"application/json", deep},
		"/ndjson":    {"application/x-ndjson", `{"number":"` + card + `"}` + "\n" + `{"number":"` + card + `"}`},
		"/octet":     {"application/octet-stream", card},
	}
	fw := newFramework(t, func(w http.ResponseWriter, r *http.Request, rt route) {
		if r.URL.Path == "/negotiated" {
			// Honours Accept, as most frameworks do.
			if strings.Contains(r.Header.Get("Accept"), "json") {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"card":{"number":%q}}`, card)
			} else {
				w.Header().Set("Content-Type", "application/xml")
				fmt.Fprintf(w, "<number>%s</number>", card)
			}
			return
		}
		b := bodies[r.URL.Path]
		if b[0] != "" {
			w.Header().Set("Content-Type", b[0])
		} else {
			w.Header()["Content-Type"] = nil
		}
		_, _ = w.Write([]byte(b[1]))
	})
	masked := func(t *testing.T) *whttp.Backend {
		b := newBackend(t, fw.URL, func(c *whttp.Config) { c.MaxResponseBytes = 200 })
		m, err := mask.NewJSONMasks(mask.JSONPaths{"$..number": {Strategy: "last4"}}, mask.NewMasker(nil))
		if err != nil {
			t.Fatal(err)
		}
		b.SetMasking(m)
		return b
	}
	f := newEdgeFixture(t, masked(t), []*policy.Grant{{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/**"}}})
	out, e := f.run(map[string]any{"method": "GET", "path": "/negotiated", "headers": map[string]string{"Accept": "application/xml"}, "query": map[string]any{"format": "xml"}})
	if log := fw.log(); len(log) != 1 || log[0].Accept != "application/json" {
		t.Errorf("the framework received Accept %v; want application/json whatever the agent asked", log)
	}
	if e != nil || !strings.Contains(out, "**** **** **** 1111") {
		t.Errorf("negotiated = %s %v; want the JSON, masked", out, e)
	}
	for p := range bodies {
		out, e := f.run(map[string]any{"method": "GET", "path": p, "headers": map[string]string{"Accept": "text/csv"}})
		if e != nil || !strings.Contains(out, `"body_kind":"withheld"`) || !strings.Contains(out, "withheld because") {
			t.Errorf("GET %s = %s %v; want the body withheld with a reason", p, out, e)
		}
		if strings.Contains(strings.ReplaceAll(out, " ", ""), "4111111111111111") {
			t.Errorf("GET %s returned the card: %s", p, out)
		}
	}
	if strings.Contains(strings.ReplaceAll(f.recording(), " ", ""), "4111111111111111") {
		t.Errorf("the recording holds the card")
	}
	fw.log()
	// Without masking rules, other representations are still answered.
	plain := newEdgeFixture(t, newBackend(t, fw.URL, nil), []*policy.Grant{{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/**"}}})
	for p, want := range map[string]string{"/xml": `"body_kind":"text"`, "/csv": `"body_kind":"text"`, "/deep": "nests deeper than 64"} {
		if out, e := plain.run(map[string]any{"method": "GET", "path": p}); e != nil || !strings.Contains(out, want) {
			t.Errorf("unmasked GET %s = %s %v; want %s", p, out, e, want)
		}
	}
	shallow := strings.Repeat(`{"a":`, 60) + "1" + strings.Repeat("}", 60)
	bodies["/shallow"] = [2]string{"application/json", shallow}
	if out, e := plain.run(map[string]any{"method": "GET", "path": "/shallow"}); e != nil || !strings.Contains(out, `"body_kind":"json"`) {
		t.Errorf("60 levels = %s %v; want JSON", out, e)
	}
}

// TestCredentialsNeverComeBackInAnyEncoding: the upstream echoes the
// credentials in every encoding it can think of, in the body, headers,
// Location and redirects, cut bodies and malformed responses; neither the
// agent nor the recording can reconstruct any part of them.
func TestCredentialsNeverComeBackInAnyEncoding(t *testing.T) {
	const (
		user     = "svc-billing-user"
		password = "p/ss+w0rd&<secret>=42"
		token    = "tok/en+With/Slashes=and+Pluses"
	)
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	secrets := []string{user, password, token, user + ":" + password, basic}
	encodings := func(s string) map[string]string {
		b := []byte(s)
		out := map[string]string{
			"raw":      s,
			"query":    strings.ReplaceAll(fmt.Sprintf("%q", s), `"`, ""),
			"pct":      pctAll(s, "%%%02X"),
			"pctlower": pctAll(s, "%%%02x"),
			"b64":      base64.StdEncoding.EncodeToString(b),
			"b64url":   base64.RawURLEncoding.EncodeToString(b),
			"jsonsl":   strings.ReplaceAll(s, "/", `\/`),
			"uall":     uAll(s),
			"mixed":    mixed(s),
			"html":     htmlAll(s),
		}
		for i := range 3 {
			out[fmt.Sprintf("b64in%d", i)] = base64.StdEncoding.EncodeToString(append(append([]byte("prefix"[:i+1]), b...), "-tail-bytes"...))
			out[fmt.Sprintf("b64urlin%d", i)] = base64.URLEncoding.EncodeToString(append(append([]byte("xyz"[:i]), b...), "!?"...))
		}
		return out
	}
	fw := newFramework(t, func(w http.ResponseWriter, r *http.Request, rt route) {
		q := r.URL.Query()
		s := map[string]string{"user": user, "password": password, "token": r.Header.Get("X-Api-Key"), "basic": r.Header.Get("Authorization")}[q.Get("s")]
		v := encodings(s)[q.Get("enc")]
		switch q.Get("in") {
		case "header":
			w.Header().Set("ETag", `"`+v+`"`)
			w.Header().Set("X-Request-Id", v)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		case "location":
			http.Redirect(w, r, "/v1/done?token="+url.QueryEscape(v), http.StatusFound)
		case "json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"echo":"%s","k":{"%s":1}}`, strings.ReplaceAll(v, `"`, `\"`), strings.ReplaceAll(v, `"`, `\"`))
		case "cut":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(strings.Repeat("x", 150) + v + strings.Repeat("y", 50)))
		case "malformed":
			conn, buf, _ := w.(http.Hijacker).Hijack()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n" + v + "\r\n\r\n")
			_ = buf.Flush()
			conn.Close()
		default:
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("echo: " + v))
		}
	})
	b := newBackend(t, fw.URL, func(c *whttp.Config) {
		c.Headers = map[string]string{"Authorization": "Basic " + basic, "X-Api-Key": token}
		c.FollowRedirects = whttp.FollowSameOrigin
	})
	f := newEdgeFixture(t, b, []*policy.Grant{{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/**"}}})
	cut := newEdgeFixture(t, newBackend(t, fw.URL, func(c *whttp.Config) {
		c.Headers = map[string]string{"Authorization": "Basic " + basic, "X-Api-Key": token}
		c.MaxResponseBytes = 170
	}), []*policy.Grant{{Backend: "billing", Methods: []string{"GET"}, Paths: []string{"/**"}}})
	answered := 0
	for _, s := range []string{"user", "password", "token", "basic"} {
		for enc := range encodings("x") {
			for _, in := range []string{"body", "json", "header", "location", "cut", "malformed"} {
				fx := f
				if in == "cut" {
					fx = cut
				}
				out, e := fx.run(map[string]any{"method": "GET", "path": "/v1/echo", "query": map[string]any{"s": s, "enc": enc, "in": in}})
				if e != nil {
					out = e.Message + " | " + errorText(e)
				} else {
					answered++
				}
				if w := reconstructs(out, secrets...); w != "" {
					t.Errorf("%s as %s in %s: the agent can read %q of a credential: %s", s, enc, in, w, out)
				}
			}
		}
	}
	if answered == 0 {
		t.Fatal("no call was answered")
	}
	for _, fx := range []*edgeFixture{f, cut} {
		if w := reconstructs(fx.recording(), secrets...); w != "" {
			t.Errorf("the recording holds %q of a credential", w)
		}
	}
}

func pctAll(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

func uAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// mixed spells s with escapes of three kinds, alternating.
func mixed(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `\u%04X`, s[i])
		case 1:
			fmt.Fprintf(&b, "%%%02x", s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func htmlAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "&#x%x;", s[i])
	}
	return b.String()
}

// TestOrdinaryRequestsStillRun counts false refusals: ordinary paths,
// queries and bodies must reach the framework as sent.
func TestOrdinaryRequestsStillRun(t *testing.T) {
	fw := newFramework(t, nil)
	f := newEdgeFixture(t, newBackend(t, fw.URL, nil),
		[]*policy.Grant{{Backend: "billing", Methods: []string{"GET", "HEAD", "POST"}, Paths: []string{"/**"}}},
		&approvals.Rule{Name: "admin", Backend: "billing", Paths: []string{"/v1/admin/**"}})
	calls := []map[string]any{
		{"method": "GET", "path": "/v1/invoices/INV-2024-001"},
		{"method": "GET", "path": "/v1/items", "query": map[string]any{"q": "a b"}},
		{"method": "GET", "path": "/v1/items", "query": map[string]any{"q": "Zürich 東京 ﬁ ＡＢＣ ../..;/%2e"}},
		{"method": "GET", "path": "/v1/users/alice%40example.com"},
		{"method": "GET", "path": "/v1/files/report-2024.pdf"},
		{"method": "GET", "path": "/v1/cities/Zürich"},
		{"method": "GET", "path": "/v1/cities/%E6%9D%B1%E4%BA%AC"},
		{"method": "GET", "path": "/v1/products/サーバー"},
		{"method": "GET", "path": "/v1/events/2024-01-01T10:00:00Z"},
		{"method": "GET", "path": "/v1/projects/p1:undelete"},
		{"method": "GET", "path": "/v1/invoices/"},
		{"method": "GET", "path": "/v1/tags/c++"},
		{"method": "POST", "path": "/v1/notes", "body": map[string]any{"method": "DELETE", "text": "the method field of a note"}},
		{"method": "POST", "path": "/v1/forms", "body": "name=ada&method=card", "headers": map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"method": "GET", "path": "/v1/administrators"},
		{"method": "GET", "path": "/v1/greetings/नमस्ते"},
		{"method": "GET", "path": "/v1/names/Zoë/Ñandú"},
		{"method": "HEAD", "path": "/v1/invoices/INV-2024-001"},
	}
	refused := 0
	for _, c := range calls {
		if out, e := f.run(c); e != nil {
			refused++
			t.Errorf("%v was refused: %s %q", c, e.Code, e.Message)
		} else if len(fw.log()) != 1 {
			t.Errorf("%v = %s but did not reach the framework", c, out)
		}
	}
	t.Logf("false refusals: %d of %d ordinary calls", refused, len(calls))
}

// TestHeadIsHeldLikeGet: servers answer HEAD with their GET handler, so a
// rule holding GET holds HEAD; a JSON body naming _method twice is judged
// by every value (parsers differ on which one wins).
func TestHeadIsHeldLikeGet(t *testing.T) {
	fw := newFramework(t, nil)
	f := newEdgeFixture(t, newBackend(t, fw.URL, nil),
		[]*policy.Grant{{Backend: "billing", Methods: []string{"GET", "HEAD", "POST", "DELETE"}, Paths: []string{"/**"}}},
		&approvals.Rule{Name: "secret-reads", Backend: "billing", When: []string{"GET"}, Paths: []string{"/v1/secrets/**"}},
		&approvals.Rule{Name: "deletes", Backend: "billing", When: []string{"DELETE"}})
	for _, m := range []string{"GET", "HEAD"} {
		if _, e := f.run(map[string]any{"method": m, "path": "/v1/secrets/db"}); e == nil || e.Code != warden.Denied && e.Code != warden.NeedsApproval {
			t.Errorf("%s /v1/secrets/db = %v; want it held by secret-reads", m, e)
		}
	}
	_, e := f.run(map[string]any{"method": "POST", "path": "/v1/notes/1", "body": json.RawMessage(`{"_method":"DELETE","_method":"GET"}`)})
	if e == nil {
		t.Errorf("POST with _method DELETE then GET ran; want it held by deletes")
	}
	if log := fw.log(); len(log) != 0 {
		t.Errorf("held calls reached the framework: %v", log)
	}
}
