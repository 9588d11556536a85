package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// urlUser is the person behind an MCP client that supports URL-mode
// elicitation: open runs when the client is asked to open a URL (nil:
// the client accepts without anyone opening it).
type urlUser struct {
	open func(url string)
	urls []string
}

func (u *urlUser) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	if req.Params.Mode != mcp.ElicitationModeURL {
		return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}, nil
	}
	u.urls = append(u.urls, req.Params.URL)
	if u.open != nil {
		u.open(req.Params.URL)
	}
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept}}, nil
}

// dialURL connects a streamable-HTTP client that declares URL-mode
// elicitation, answering as u.
func dialURL(t *testing.T, base, version string, src *tokenSource, u *urlUser, opts ...client.ClientOption) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(base+"/mcp", transport.WithHTTPHeaderFunc(src.header))
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, client.WithProtocolVersion(version), client.WithElicitationHandler(u),
		client.WithClientCapabilities(mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}}}))
	c := client.NewClient(tr, opts...)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	initialize(t, c, version)
	return c
}

// TestURLModeConfirmation: a rule with approvers {user: browser} holds a
// call until the calling user confirms it on the console's page, signed
// in through the identity provider, in headless Chromium; the call then
// runs once. The client alone (accepting, retrying, naming the approval)
// runs nothing, and another signed-in user cannot confirm.
func TestURLModeConfirmation(t *testing.T) {
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
      - {backend: shop, tables: [public.notes], actions: [select, insert]}
approvals:
  - {name: confirm-notes, backend: shop, when: [insert], approvers: {user: browser}, wait: 0s}
console:
  issuer: %[1]q
  client_id: warden-console
  client_secret: console-secret
`, idp.Issuer())
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := serveInProcess(t, config, dsn, clock.Now)

	login := func(sub string) oidctest.Login {
		return oidctest.Login{ClientID: "warden-console", ClientSecret: "console-secret",
			Claims: map[string]any{"sub": sub, "email": sub, "groups": []string{"analysts"}}}
	}
	// openSignedIn opens url in b, signing in as sub on the way.
	openSignedIn := func(t *testing.T, b context.Context, url, sub string) {
		t.Helper()
		idp.SignIn(login(sub))
		do(t, b, chromedp.Navigate(url))
		if n := js[int](t, b, `document.querySelectorAll("#signin").length`); n > 0 {
			do(t, b, chromedp.Click(chromedp.CSS("#signin")))
		}
		waitFor(t, 20*time.Second, func() bool {
			c, cancel := context.WithTimeout(b, 2*time.Second)
			defer cancel()
			loc, err := chromedp.Run(c, chromedp.Location())
			return err == nil && loc == url
		})
		do(t, b, chromedp.WaitVisible(chromedp.CSS("#who")))
	}
	token := func(sub string) *tokenSource {
		src := &tokenSource{}
		src.set(idp.Token(t, map[string]any{"sub": sub, "email": sub, "groups": []string{"analysts"}}))
		return src
	}
	insert := func(note string) map[string]any {
		return map[string]any{"database": "shop", "sql": "INSERT INTO notes (body) VALUES ($1)", "params": []any{note}, "purpose": "note " + note}
	}
	callTool := func(c *client.Client, args map[string]any) (*mcp.CallToolResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		req := mcp.CallToolRequest{}
		req.Params.Name = "sql_query"
		req.Params.Arguments = args
		return c.CallTool(ctx, req)
	}
	pendingFor := func(t *testing.T, note string) *warden.Approval {
		t.Helper()
		list, err := openRecording(t, config).Approvals(context.Background(), warden.ApprovalFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if len(a.Params) == 1 && strings.Contains(a.Params[0], note) {
				return a
			}
		}
		t.Fatalf("no approval request for %s", note)
		return nil
	}

	alice := browser(t)
	carol := browser(t)

	t.Run("2025-11-25", func(t *testing.T) {
		const note = "url-mode-2025"
		agent := dialURL(t, base, mcp.ProtocolVersion20251125, token("alice@example.com"), &urlUser{})
		_, err := callTool(agent, insert(note))
		var required mcp.URLElicitationRequiredError
		if !errors.As(err, &required) || len(required.Elicitations) != 1 {
			t.Fatalf("first call: %v; want URLElicitationRequiredError (-32042) with one elicitation", err)
		}
		el := required.Elicitations[0]
		appr := pendingFor(t, note)
		if want := base + "/console/confirm/" + appr.ID; el.Mode != mcp.ElicitationModeURL || el.URL != want || el.ElicitationID != appr.ID {
			t.Fatalf("elicitation %+v; want mode url, %s, id %s", el, want, appr.ID)
		}

		// The client alone: retrying, naming the approval, or a
		// forged approval id runs nothing.
		for _, args := range []map[string]any{insert(note), withArg(insert(note), "approval_id", appr.ID), withArg(insert(note), "approval_id", "a-forged")} {
			if _, err := callTool(agent, args); !errors.As(err, &required) {
				t.Errorf("retry without the browser: %v; want the URL elicitation again", err)
			}
		}
		if n := notes(t, dsn, note); n != 0 {
			t.Fatalf("the call ran without the browser confirmation: %d rows", n)
		}

		// Carol, signed in, is refused the page and the POST.
		openSignedIn(t, carol, el.URL, "carol@example.com")
		if got := text(t, carol, "main"); !strings.Contains(got, "not yours to confirm") || strings.Contains(got, note) {
			t.Errorf("another user sees %q", got)
		}
		status := js[int](t, carol, fmt.Sprintf(`(async () => { const p = await fetch("/console/approvals"); const h = await p.text();
			const csrf = (h.match(/name="csrf" value="([^"]+)"/) || [])[1];
			const r = await fetch("/console/confirm/%s", {method: "POST", body: new URLSearchParams({csrf: csrf, answer: "confirm"})}); return r.status; })()`, appr.ID))
		if status != 403 {
			t.Errorf("another user's confirmation: HTTP %d; want 403", status)
		}
		if st := approvalStatus(t, config, appr.ID); st != warden.ApprovalPending {
			t.Fatalf("after another user's attempt the request is %s", st)
		}

		// Alice confirms in the browser; the retry runs the call once.
		openSignedIn(t, alice, el.URL, "alice@example.com")
		if got := text(t, alice, ".statement"); got != "INSERT INTO notes (body) VALUES ($1)" {
			t.Errorf("the page shows the statement as %q", got)
		}
		do(t, alice, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		res, err := callTool(agent, insert(note))
		if err != nil || res.IsError {
			t.Fatalf("retry after confirmation: %v %+v", err, res)
		}
		if n := notes(t, dsn, note); n != 1 {
			t.Fatalf("%d rows after the confirmed call; want 1", n)
		}
		// Used up: another retry is asked anew and runs nothing.
		if _, err := callTool(agent, insert(note)); !errors.As(err, &required) || required.Elicitations[0].ElicitationID == appr.ID {
			t.Errorf("retry after use: %v; want a new URL elicitation", err)
		}
		if n := notes(t, dsn, note); n != 1 {
			t.Fatalf("%d rows after a second retry; want 1", n)
		}
		if st := approvalStatus(t, config, appr.ID); st != warden.ApprovalUsed {
			t.Errorf("request is %s; want used", st)
		}
	})

	t.Run("2026-07-28", func(t *testing.T) {
		const note = "url-mode-2026"
		// The client accepts the URL elicitation without anyone
		// confirming in the browser: nothing runs.
		lazy := &urlUser{}
		agent := dialURL(t, base, mcp.ProtocolVersion20260728, token("alice@example.com"), lazy, client.WithMaxInputRoundTrips(3))
		res, err := callTool(agent, insert(note))
		if err == nil && !res.IsError && res.ResultType != mcp.ResultTypeInputRequired {
			t.Fatalf("the client alone completed the call: %+v", res)
		}
		if len(lazy.urls) == 0 || !strings.HasPrefix(lazy.urls[0], base+"/console/confirm/") {
			t.Fatalf("the client was asked to open %v; want the console's confirmation page", lazy.urls)
		}
		if n := notes(t, dsn, note); n != 0 {
			t.Fatalf("accepting in the client ran the call: %d rows", n)
		}

		// The user opens the URL, signs in and confirms; the client
		// then continues and the call runs once.
		user := &urlUser{open: func(url string) {
			openSignedIn(t, alice, url, "alice@example.com")
			do(t, alice, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		}}
		agent = dialURL(t, base, mcp.ProtocolVersion20260728, token("alice@example.com"), user)
		res, err = callTool(agent, insert(note))
		if err != nil || res.IsError || res.ResultType == mcp.ResultTypeInputRequired {
			t.Fatalf("call confirmed in the browser: %v %+v", err, res)
		}
		if len(user.urls) != 1 {
			t.Errorf("the user was asked %d times; want once", len(user.urls))
		}
		if n := notes(t, dsn, note); n != 1 {
			t.Fatalf("%d rows after the confirmed call; want 1", n)
		}
	})
}

func withArg(args map[string]any, k string, v any) map[string]any {
	out := map[string]any{k: v}
	for key, val := range args {
		out[key] = val
	}
	return out
}
