package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// browser starts headless Chromium (Debian's chromium package, which
// .ci/run installs) with a fresh profile, and returns a context for its
// first tab: one person's browser, with its own cookies. (A second
// browser context in one Chromium would do, but chromedp v0.23.1 loses
// track of its tab after the first navigation.) The test is skipped when
// Chromium is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install -y chromium; .ci/run does)")
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// js evaluates an expression in the page (awaiting a promise).
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// text is the text of the first element matching sel, or "" when none does.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return js[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// fakeClock is the time warden and the identity provider see.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// serveInProcess runs `warden serve --transport http` in this process
// with clock, and returns its base URL.
func serveInProcess(t *testing.T, config, dsn string, clock warden.Clock) string {
	t.Helper()
	getenv := func(k string) (string, bool) {
		if k == "E2E_DSN" {
			return dsn, true
		}
		return "", false
	}
	logs, logw := io.Pipe()
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logw, Getenv: getenv, Clock: clock}
	ctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- m.Run(ctx, []string{"serve", "--config", config, "--transport", "http", "--listen", "127.0.0.1:0"})
		logw.Close()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, logs)
	}()
	t.Cleanup(func() {
		stop()
		if code := <-exited; code != 0 {
			t.Errorf("warden serve exited %d", code)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case code := <-exited:
		t.Fatalf("warden serve exited %d before listening", code)
	case <-time.After(60 * time.Second):
		t.Fatal("warden did not listen within 60s")
	}
	return ""
}

// callAsync makes a tool call that may wait for a reviewer, and delivers
// its result later.
func callAsync(c *client.Client, tool string, args map[string]any) <-chan result {
	out := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		req := mcp.CallToolRequest{}
		req.Params.Name = tool
		req.Params.Arguments = args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			out <- result{IsError: true, Text: "protocol error: " + err.Error()}
			return
		}
		r := result{IsError: res.IsError}
		for _, content := range res.Content {
			if tc, ok := content.(mcp.TextContent); ok {
				r.Text += tc.Text
			}
		}
		out <- r
	}()
	return out
}

// pendingID waits until the store holds a pending request for statement,
// and returns its id.
func pendingID(t *testing.T, config, statement string) string {
	t.Helper()
	var id string
	waitFor(t, 30*time.Second, func() bool {
		list, err := openRecording(t, config).Approvals(context.Background(), warden.ApprovalFilter{Status: warden.ApprovalPending})
		if err != nil {
			return false
		}
		for _, a := range list {
			if a.Statement == statement {
				id = a.ID
				return true
			}
		}
		return false
	})
	return id
}

func approvalStatus(t *testing.T, config, id string) warden.ApprovalStatus {
	t.Helper()
	a, err := openRecording(t, config).Approval(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

// saveScreenshot writes a screenshot of the page to the test's artifact
// directory (kept with go test -artifacts) and, when
// WARDEN_SCREENSHOT_DIR is set, there too (docs/console.png comes from
// this: WARDEN_SCREENSHOT_DIR=$PWD/docs).
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("WARDEN_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of the approvals page: %s", p)
	}
}

// TestConsoleInABrowser drives the reviewer's console with headless
// Chromium against warden serve, a test identity provider with an
// authorization endpoint, real PostgreSQL and a real MCP client whose
// held calls the console's decisions release or refuse.
func TestConsoleInABrowser(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	clock := &fakeClock{now: time.Now()}
	idp := oidctest.New(t)
	idp.Now = clock.Now
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  oidc:
    - {issuer: %[1]q, audience: warden, groups_claim: groups}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders], actions: [select, update]}
approvals:
  - {name: dba-review, backend: shop, when: [update], approvers: {groups: [dba]}, wait: 2m}
console:
  issuer: %[1]q
  client_id: warden-console
  client_secret: console-secret
  session_ttl: 10m
  auditors: {groups: [security]}
`, idp.Issuer())
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := serveInProcess(t, config, dsn, clock.Now)

	login := func(sub string, groups ...string) oidctest.Login {
		return oidctest.Login{ClientID: "warden-console", ClientSecret: "console-secret",
			Claims: map[string]any{"sub": sub, "email": sub, "groups": groups}}
	}
	signIn := func(t *testing.T, ctx context.Context, l oidctest.Login) {
		t.Helper()
		idp.SignIn(l)
		do(t, ctx, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#signin")),
			chromedp.Click(chromedp.CSS("#signin")))
		waitFor(t, 20*time.Second, func() bool {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			loc, err := chromedp.Run(c, chromedp.Location())
			return err == nil && strings.HasSuffix(loc, "/console/approvals")
		})
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#who")))
		if got := text(t, ctx, "#who"); !strings.Contains(got, l.Claims["sub"].(string)) {
			t.Fatalf("signed in as %q; want %s", got, l.Claims["sub"])
		}
	}

	// Alice, an analyst, calls through a real MCP client.
	src := &tokenSource{}
	src.set(idp.Token(t, map[string]any{"sub": "alice@example.com", "email": "alice@example.com", "groups": []string{"analysts"}}))
	agent := connect(t, base, "http", src, mcp.ProtocolVersion20251125)
	update1 := "UPDATE orders SET status = 'approved-by-console' WHERE id = 4"
	held1 := callAsync(agent, "sql_query", map[string]any{"database": "shop", "sql": update1, "purpose": "fix order 4 <script>alert(1)</script>"})
	id1 := pendingID(t, config, update1)

	bob := browser(t)   // a dba and an auditor
	carol := browser(t) // an analyst: not an approver
	alice := browser(t) // the requester

	t.Run("SignIn", func(t *testing.T) {
		signIn(t, bob, login("bob@example.com", "dba", "security"))
		do(t, bob, chromedp.WaitVisible(chromedp.CSS("#req-"+id1)))
		if got := text(t, bob, "#req-"+id1+" .purpose"); !strings.Contains(got, "<script>alert(1)</script>") {
			t.Errorf("purpose shown as %q; want the agent's words as text", got)
		}
		if n := js[int](t, bob, `document.querySelectorAll("script:not([src])").length`); n != 0 {
			t.Errorf("the page has %d inline scripts", n)
		}
		if got := text(t, bob, "#req-"+id1+" .statement"); got != update1 {
			t.Errorf("statement shown as %q; want %q", got, update1)
		}
		if got := text(t, bob, "#req-"+id1); !strings.Contains(got, "the agent's words") || !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "update public.orders") {
			t.Errorf("request shows %q; want requester, purpose labelled as the agent's, ops", got)
		}
		saveScreenshot(t, bob, "console.png")
	})

	t.Run("ForgedCallbackRefused", func(t *testing.T) {
		do(t, carol, chromedp.Navigate(base+"/console/callback?state=forged&code=stolen"))
		if got := text(t, carol, "main"); !strings.Contains(got, "does not belong to a sign-in this browser started") {
			t.Errorf("forged callback shows %q", got)
		}
	})

	t.Run("NonApproverSeesNoApprove", func(t *testing.T) {
		signIn(t, carol, login("carol@example.com", "analysts"))
		if n := js[int](t, carol, `document.querySelectorAll("button.approve").length`); n != 0 {
			t.Errorf("a non-approver sees %d Approve buttons", n)
		}
		if got := text(t, carol, "main"); strings.Contains(got, update1) {
			t.Errorf("a non-approver sees another user's request: %q", got)
		}
	})

	t.Run("RequesterCannotApprove", func(t *testing.T) {
		signIn(t, alice, login("alice@example.com", "analysts", "dba")) // a dba herself
		do(t, alice, chromedp.WaitVisible(chromedp.CSS("#req-"+id1)))
		if n := js[int](t, alice, `document.querySelectorAll("button.approve").length`); n != 0 {
			t.Errorf("the requester sees %d Approve buttons", n)
		}
		if got := text(t, alice, "#req-"+id1+" .whynot"); !strings.Contains(got, "requested this call") {
			t.Errorf("the requester is told %q", got)
		}
		// The server refuses what the page does not offer.
		status := js[int](t, alice, fmt.Sprintf(`fetch("/console/approvals/%s/decide", {method: "POST",
			body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value, decision: "approve"})}).then(r => r.status)`, id1))
		if status != http.StatusForbidden || approvalStatus(t, config, id1) != warden.ApprovalPending {
			t.Errorf("the requester's approve = %d, request %s; want 403 and still pending", status, approvalStatus(t, config, id1))
		}
	})

	t.Run("CSRFWithoutTokenRefused", func(t *testing.T) {
		status := js[int](t, bob, fmt.Sprintf(`fetch("/console/approvals/%s/decide", {method: "POST",
			body: new URLSearchParams({decision: "approve"})}).then(r => r.status)`, id1))
		if status != http.StatusForbidden || approvalStatus(t, config, id1) != warden.ApprovalPending {
			t.Errorf("approve without the CSRF token = %d; want 403 and still pending", status)
		}
	})

	t.Run("CrossSiteRequestRefused", func(t *testing.T) {
		// A page on another site posts a form to the console, even with
		// bob's real CSRF token: the Origin alone refuses it.
		token := js[string](t, bob, `document.querySelector("input[name=csrf]").value`)
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<form id=f method=post action="%s/console/approvals/%s/decide"><input name=csrf value=%q><input name=decision value=approve></form>
<script>document.getElementById("f").submit()</script>`, base, id1, token)
		}))
		defer evil.Close()
		evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1) // another site
		do(t, bob, chromedp.Navigate(evilURL))
		waitFor(t, 20*time.Second, func() bool { return strings.Contains(text(t, bob, "body"), "cross-site request refused") })
		if st := approvalStatus(t, config, id1); st != warden.ApprovalPending {
			t.Errorf("after the cross-site post the request is %s; want pending", st)
		}
	})

	t.Run("Approve", func(t *testing.T) {
		do(t, bob, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#req-"+id1+" button.approve")),
			chromedp.SendKeys(chromedp.CSS("#req-"+id1+" input[name=reason]"), "checked with the customer"),
			chromedp.Click(chromedp.CSS("#req-"+id1+" button.approve")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		if got := text(t, bob, "#flash"); !strings.Contains(got, "Approved request "+id1) {
			t.Errorf("flash = %q", got)
		}
		select {
		case r := <-held1:
			if r.IsError {
				t.Fatalf("the held call after approval = %s; want it to run", r.Text)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the held call did not return after approval")
		}
		if n := count(t, dsn, "SELECT count(*) FROM orders WHERE id = 4 AND status = 'approved-by-console'"); n != 1 {
			t.Errorf("the approved update changed %d rows; want 1", n)
		}
		// The list is live: a refresh begun before the decision may
		// briefly show it without the request; wait for its row.
		do(t, bob, chromedp.WaitVisible(chromedp.CSS("#done-"+id1)))
		if got := text(t, bob, "#done-"+id1+" .decider"); !strings.Contains(got, "bob@example.com") {
			t.Errorf("decided list shows decider %q", got)
		}
	})

	t.Run("DenyAndLiveUpdate", func(t *testing.T) {
		// bob's page is open; the new request appears without a reload.
		update2 := "UPDATE orders SET status = 'never' WHERE id = 5"
		held2 := callAsync(agent, "sql_query", map[string]any{"database": "shop", "sql": update2})
		id2 := pendingID(t, config, update2)
		do(t, bob, chromedp.WaitVisible(chromedp.CSS("#req-"+id2)))
		do(t, bob, chromedp.SendKeys(chromedp.CSS("#req-"+id2+" input[name=reason]"), "not during the freeze"),
			chromedp.Click(chromedp.CSS("#req-"+id2+" button.deny")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		select {
		case r := <-held2:
			if !r.IsError || !strings.Contains(r.Text, "denied") || !strings.Contains(r.Text, "not during the freeze") {
				t.Errorf("the denied call = %v %s; want refused with the reason", r.IsError, r.Text)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the held call did not return after the denial")
		}
		if n := count(t, dsn, "SELECT count(*) FROM orders WHERE status = 'never'"); n != 0 {
			t.Errorf("the denied update ran")
		}
		do(t, bob, chromedp.WaitVisible(chromedp.CSS("#done-"+id2)))
		if got := text(t, bob, "#done-"+id2); !strings.Contains(got, "denied") || !strings.Contains(got, "bob@example.com") {
			t.Errorf("decided list shows %q", got)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		do(t, carol, chromedp.Navigate(base+"/console/sessions"))
		if got := text(t, carol, "main"); !strings.Contains(got, "console.auditors") {
			t.Errorf("a non-auditor sees %q", got)
		}
		do(t, bob, chromedp.Navigate(base+"/console/sessions?subject=alice@example.com&tool=sql_query"), chromedp.WaitVisible(chromedp.CSS("table.sessions a")))
		do(t, bob, chromedp.Click(chromedp.CSS("table.sessions a")), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
		got := text(t, bob, "ol.timeline")
		if !strings.Contains(got, update1) || !strings.Contains(got, "used") || !strings.Contains(got, "not during the freeze") {
			t.Errorf("replay shows %q; want both calls with their approvals", got)
		}
		do(t, bob, chromedp.Navigate(base+"/console/sessions?subject=nobody"), chromedp.WaitVisible(chromedp.CSS("table.sessions")))
		if got := text(t, bob, "table.sessions tbody"); !strings.Contains(got, "No session matches") {
			t.Errorf("filter by an unknown subject shows %q", got)
		}
		do(t, bob, chromedp.Navigate(base+"/console/verify"), chromedp.WaitVisible(chromedp.CSS("#verdict")))
		if got := text(t, bob, "#verdict"); got != "Verifies." {
			t.Errorf("chain status = %q (%s)", got, text(t, bob, "#report"))
		}
	})

	t.Run("Logout", func(t *testing.T) {
		do(t, bob, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#logout")),
			chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#notice")))
		do(t, bob, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#signin")))
		if n := js[int](t, bob, `document.querySelectorAll("#who").length`); n != 0 {
			t.Errorf("after sign-out the console still shows a reviewer")
		}
	})

	t.Run("SessionExpiry", func(t *testing.T) {
		do(t, carol, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#who")))
		clock.Advance(10*time.Minute + time.Second)
		do(t, carol, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#signin")))
	})
}

// TestConsoleOnItsOwnListener: with the stdio transport the console
// serves on console.listen, for identity.local with reviewer: true, and
// nothing but the console is served there.
func TestConsoleOnItsOwnListener(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	cfg := `
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts], reviewer: true}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}"}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders], actions: [select]}
console:
  listen: 127.0.0.1:0
`
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) (string, bool) {
		if k == "E2E_DSN" {
			return dsn, true
		}
		return "", false
	}
	logs, logw := io.Pipe()
	stdin, stdinW := io.Pipe()
	m := &Main{Stdin: stdin, Stdout: io.Discard, Stderr: logw, Getenv: getenv, Clock: time.Now}
	exited := make(chan int, 1)
	go func() { exited <- m.Run(context.Background(), []string{"serve", "--config", config}); logw.Close() }()
	addr := make(chan string, 1)
	consoleListening := regexp.MustCompile(`warden console listening.*addr=(\S+)`)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := consoleListening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case code := <-exited:
		t.Fatalf("warden serve exited %d before the console listened", code)
	case <-time.After(60 * time.Second):
		t.Fatal("the console did not listen within 60s")
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/console/login"); code != http.StatusOK || !strings.Contains(body, "alice@example.com") {
		t.Errorf("local sign-in = %d %s", code, body)
	}
	if code, body := get("/console/approvals"); code != http.StatusOK || !strings.Contains(body, "Nothing is waiting for a decision") {
		t.Errorf("approvals = %d %s", code, body)
	}
	if code, _ := get("/mcp"); code != http.StatusNotFound {
		t.Errorf("/mcp on the console's listener = %d; want 404", code)
	}
	stdinW.Close() // stdio ends: warden stops, the console with it
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("warden serve exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("warden did not stop when stdin closed")
	}
}
