package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder/sqlite"
	whttp "github.com/warden-mcp/warden/tools/http"
)

// route is what a framework dispatched: the method after any override and
// the path after its decoding.
type route struct {
	Method, Path string
	Accept       string
}

// framework is an upstream that reads each request as loosely as the
// servers and frameworks warden may sit in front of, and logs the route it
// dispatches. Its path is percent-decoded until stable (double decoding),
// backslashes and overlong UTF-8 read as / and ., Unicode NFKC-normalised
// and best-fit mapped (∕ ⁄ ․ ...), ;parameters stripped, trailing dots and
// spaces stripped (Windows), dot segments resolved, case folded the .NET
// way (upper, then lower: ı reads as i), the trailing slash and an
// extension dropped (Rails, older Spring). Its method honours
// X-HTTP-Method-Override (and the other override headers) and _method in
// the query, a form, multipart or JSON body (Rails, Laravel, Symfony,
// Express method-override).
//
// The tests judge warden by this log: what reached a server, read as a
// server reads it.
type framework struct {
	*httptest.Server
	mu      sync.Mutex
	routes  []route
	respond func(w http.ResponseWriter, r *http.Request, rt route)
}

func newFramework(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, rt route)) *framework {
	t.Helper()
	f := &framework{respond: respond}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := route{Method: frameworkMethod(r), Path: frameworkPath(r.URL.EscapedPath()), Accept: r.Header.Get("Accept")}
		f.mu.Lock()
		f.routes = append(f.routes, rt)
		f.mu.Unlock()
		if f.respond != nil {
			f.respond(w, r, rt)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"method": rt.Method, "route": rt.Path})
	}))
	t.Cleanup(f.Close)
	return f
}

// log returns the routes dispatched so far and forgets them.
func (f *framework) log() []route {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.routes
	f.routes = nil
	return r
}

var bestFit = strings.NewReplacer(
	"\u2215", "/", "\u2044", "/", "\uff0f", "/", "\u29f8", "/", "\ufe68", "\\", "\uff3c", "\\", "\u29f5", "\\", "\u2216", "\\",
	"\u2024", ".", "\uff0e", ".", "\ufe52", ".", "\u2025", "..", "\u2026", "...", "\u02b9", "'", "\u02bc", "'", "\u037e", ";",
	"\xc0\xae", ".", "\xc0\xaf", "/", "\xe0\x80\xae", ".",
)

func frameworkPath(escaped string) string {
	p := escaped
	for range 4 {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	p = bestFit.Replace(norm.NFKC.String(bestFit.Replace(p)))
	p = strings.Map(func(r rune) rune { // best fit drops combining marks
		if unicode.IsMark(r) {
			return -1
		}
		return r
	}, p)
	p = strings.ReplaceAll(p, "\\", "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		if strings.Trim(s, ". ") != "" {
			s = strings.TrimRight(s, ". ")
		} else {
			s = strings.TrimRight(s, " ")
		}
		segs[i] = s
	}
	p = path.Clean("/" + strings.Join(segs, "/"))
	p = strings.ToLower(strings.ToUpper(p))
	if dir, file := path.Split(p); strings.Contains(file, ".") && !strings.HasPrefix(file, ".") {
		p = dir + file[:strings.Index(file, ".")]
	}
	return strings.TrimSuffix(p, "/")
}

func frameworkMethod(r *http.Request) string {
	m := r.Method
	if m == "HEAD" {
		m = "GET" // routed to the GET handler
	}
	for _, h := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		if v := r.Header.Get(h); v != "" {
			m = v
		}
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	fields := url.Values{}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for k, v := range q {
		fields[k] = v
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/x-www-form-urlencoded":
		// Older parsers split pairs at ; too.
		form, _ := url.ParseQuery(strings.ReplaceAll(string(body), ";", "&"))
		for k, v := range form {
			fields[k] = v
		}
	case strings.HasPrefix(mt, "multipart/"):
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			v, _ := io.ReadAll(part)
			fields.Add(part.FormName(), string(v))
		}
	case strings.Contains(mt, "json"):
		var obj map[string]any
		if json.Unmarshal(body, &obj) == nil {
			for k, v := range obj {
				if s, ok := v.(string); ok {
					fields.Add(k, s)
				}
			}
		}
	}
	for k, v := range fields {
		if strings.EqualFold(k, "_method") || strings.EqualFold(k, "x-http-method-override") {
			m = v[len(v)-1]
		}
	}
	return strings.ToUpper(m)
}

// directRoute sends target as the request line's target, bypassing
// warden, and returns the route the framework dispatched: it shows an
// attack input is real against this server.
func directRoute(t *testing.T, f *framework, method, target string) route {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	conn, err := net.Dial("tcp", f.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, b.String())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("direct %s %s: %v", method, target, err)
	}
	resp.Body.Close()
	log := f.log()
	if len(log) != 1 {
		return route{Method: "(rejected by the server)", Path: resp.Status}
	}
	return log[0]
}

// edgeFixture is the real pipeline over one backend "billing": a policy,
// optional approval rules (approvers: the calling user, whom the test
// client cannot ask, so a held call never runs), and a SQLite recording
// whose files tests read.
type edgeFixture struct {
	t        *testing.T
	pipeline *warden.Pipeline
	tool     *whttp.Call
	db       string
}

func newEdgeFixture(t *testing.T, b *whttp.Backend, grants []*policy.Grant, rules ...*approvals.Rule) *edgeFixture {
	t.Helper()
	pol, err := policy.New(policy.Config{"analyst": {Members: policy.Members{Groups: []string{"analysts"}}, Grants: grants}},
		map[string]string{"billing": "http"})
	if err != nil {
		t.Fatal(err)
	}
	tool := newTool(b, pol)
	reg, err := warden.NewRegistry(tool)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "warden.db")
	store, err := sqlite.Open(context.Background(), "sqlite:"+db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	n := 0
	p := &warden.Pipeline{Tools: reg, Policy: pol, Recorder: store, Clock: time.Now,
		NewID: func() string { n++; return fmt.Sprintf("c-%d", n) }}
	if len(rules) > 0 {
		for _, r := range rules {
			r.Approvers = &warden.Approvers{User: true}
		}
		cfg := approvals.Config(rules)
		if err := cfg.Validate(map[string]string{"billing": "http"}); err != nil {
			t.Fatal(err)
		}
		ids := 0
		svc := &approvals.Service{Rules: cfg, Kinds: map[string]string{"billing": "http"}, Store: store,
			Key: []byte("0123456789abcdef0123456789abcdef"), Clock: time.Now, NewID: func() string { ids++; return fmt.Sprintf("a-%d", ids) }}
		p.Approvals = svc
		tool.Holds = func(ctx context.Context, a *warden.Action) string {
			if r, _ := svc.Rule(ctx, a, tool); r != nil {
				return r.Name
			}
			return ""
		}
	}
	return &edgeFixture{t: t, pipeline: p, tool: tool, db: db}
}

// run makes one call as the analyst and returns the result's JSON, or the
// error the agent would see.
func (f *edgeFixture) run(args map[string]any) (string, *warden.Error) {
	f.t.Helper()
	args["api"] = "billing"
	raw, _ := json.Marshal(args)
	c, err := f.pipeline.Run(warden.WithCaller(context.Background(), analyst), "http_call", raw)
	if err != nil {
		return "", warden.AsError(err)
	}
	return string(c.Result.JSON), nil
}

// recording returns the bytes of the recording's files.
func (f *edgeFixture) recording() string {
	f.t.Helper()
	var all bytes.Buffer
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(f.db + suffix); err == nil {
			all.Write(b)
		}
	}
	return all.String()
}

// decodedViews returns s read every way an agent could decode it: as is,
// HTML-unescaped, JSON-unescaped, percent-decoded, and every run of base64
// or base64url characters decoded at each of its four offsets, each of
// these applied to the others. A test's own decoder, not warden's.
func decodedViews(s string) []string {
	seen := map[string]bool{s: true}
	views := []string{s}
	frontier := views
	for range 3 {
		var next []string
		for _, v := range frontier {
			for _, d := range []string{html.UnescapeString(v), jsonUnescapeAll(v), percentDecodeAll(v)} {
				if !seen[d] {
					seen[d] = true
					next = append(next, d)
				}
			}
		}
		views = append(views, next...)
		frontier = next
	}
	var b64 []string
	for _, v := range views {
		for _, run := range base64Run.FindAllString(strings.NewReplacer("\\n", "", "\n", "", "\r", "").Replace(v), -1) {
			run = strings.TrimRight(run, "=")
			// Both alphabets at once: base64url's - and _ read as + and /.
			run = strings.NewReplacer("-", "+", "_", "/").Replace(run)
			for off := range 4 {
				r := run[off:]
				if len(r)%4 == 1 {
					r = r[:len(r)-1]
				}
				if d, err := base64.RawStdEncoding.DecodeString(r); err == nil {
					b64 = append(b64, string(d))
				}
			}
		}
	}
	return append(views, b64...)
}

var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{8,}`)

var uEscape = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)

func jsonUnescapeAll(s string) string {
	s = uEscape.ReplaceAllStringFunc(s, func(m string) string {
		var r rune
		fmt.Sscanf(m[2:], "%04x", &r)
		return string(r)
	})
	return strings.NewReplacer(`\/`, "/", `\"`, `"`, `\\`, `\`).Replace(s)
}

var pctEscape = regexp.MustCompile(`%[0-9a-fA-F]{2}`)

func percentDecodeAll(s string) string {
	return pctEscape.ReplaceAllStringFunc(s, func(m string) string {
		var b byte
		fmt.Sscanf(m[1:], "%02x", &b)
		return string([]byte{b})
	})
}

// reconstructs reports which 8-byte window of a secret any decoded view
// of out contains, or "".
func reconstructs(out string, secrets ...string) string {
	for _, v := range decodedViews(out) {
		for _, s := range secrets {
			for i := 0; i+8 <= len(s); i++ {
				if strings.Contains(v, s[i:i+8]) {
					return s[i : i+8]
				}
			}
		}
	}
	return ""
}
