package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
)

// TestConsoleShowsTheWritePreview (issue 17, item 3): a reviewer in a
// real browser sees what a held UPDATE will do — the rows it affects,
// before and after, with the masked column masked — and the approved call
// then runs. The page is saved as console-preview.png.
func TestConsoleShowsTheWritePreview(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  oidc:
    - {issuer: %[1]q, audience: warden, groups_claim: groups}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s}
masking:
  columns:
    shop:
      public.customers.email: email
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.customers], actions: [select, update]}
approvals:
  - {name: dba-review, backend: shop, when: [update], approvers: {groups: [dba]}, wait: 2m}
console:
  issuer: %[1]q
  client_id: warden-console
  client_secret: console-secret
`, idp.Issuer())
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := serveInProcess(t, config, dsn, time.Now)

	src := &tokenSource{}
	src.set(idp.Token(t, map[string]any{"sub": "alice@example.com", "email": "alice@example.com", "groups": []string{"analysts"}}))
	agent := connect(t, base, "http", src, mcp.ProtocolVersion20251125)
	update := "UPDATE customers SET name = upper(name) WHERE id <= 3"
	held := callAsync(agent, "sql_query", map[string]any{"database": "shop", "sql": update, "purpose": "shout"})
	id := pendingID(t, config, update)

	bob := browser(t)
	idp.SignIn(oidctest.Login{ClientID: "warden-console", ClientSecret: "console-secret",
		Claims: map[string]any{"sub": "bob@example.com", "email": "bob@example.com", "groups": []string{"dba"}}})
	do(t, bob, chromedp.Navigate(base+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#signin")),
		chromedp.Click(chromedp.CSS("#signin")))
	do(t, bob, chromedp.WaitVisible(chromedp.CSS("#req-"+id+" .preview table")))
	got := text(t, bob, "#req-"+id+" .preview")
	for _, want := range []string{"Affects 3 row(s)", "email (masked)", "customer 1", "CUSTOMER 1", "***@example.com", "before", "after"} {
		if !strings.Contains(got, want) {
			t.Errorf("the preview shows %q; want %q in it", got, want)
		}
	}
	if page := text(t, bob, "body"); strings.Contains(page, "c1@example.com") {
		t.Errorf("the page shows a raw masked email")
	}
	if n := js[int](t, bob, `document.querySelectorAll("#req-`+id+` .preview td.changed").length`); n != 3 {
		t.Errorf("%d cells marked changed; want 3 (the names)", n)
	}
	saveScreenshot(t, bob, "console-preview.png")

	do(t, bob, chromedp.Click(chromedp.CSS("#req-"+id+" button.approve")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	select {
	case r := <-held:
		if r.IsError {
			t.Fatalf("the approved call = %s; want it to run", r.Text)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the held call did not return after approval")
	}
	if n := count(t, dsn, "SELECT count(*) FROM customers WHERE name LIKE 'CUSTOMER %'"); n != 3 {
		t.Errorf("the approved update changed %d rows; want 3", n)
	}
}
