package main

import (
	"strings"
	"testing"
)

const consoleSection = `
console: {issuer: "https://idp.example.com", client_id: warden-console, base_url: "https://warden.example.com"}
`

func TestParseConfigBrowserApprovers(t *testing.T) {
	withEnv := env(map[string]string{"SHOP_DSN": "postgres://db/shop"})
	cfg, err := ParseConfig([]byte(goodConfig+consoleSection+`
approvals:
  - {name: confirm-deletes, backend: shop, when: [delete], approvers: {user: browser}}
  - {name: in-client, backend: shop, when: [update], approvers: {user: true}}
`), withEnv)
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	b, c := cfg.Approvals[0].Approvers, cfg.Approvals[1].Approvers
	if !b.User || !b.Browser || b.Reviewers() {
		t.Errorf("user: browser decoded as %+v; want the calling user, in the browser", b)
	}
	if !c.User || c.Browser {
		t.Errorf("user: true decoded as %+v; want the calling user, in the client", c)
	}
	if got := cfg.Approvals[0].Describe(); !strings.Contains(got, "in the browser") {
		t.Errorf("Describe() = %q; want it to say the user confirms in the browser", got)
	}

	for _, tt := range []struct{ name, yaml, want string }{
		{"NeedsConsole", goodConfig + "approvals: [{name: r, backend: shop, approvers: {user: browser}}]\n",
			"approvals[0].approvers.user: user: browser needs the console"},
		{"UnknownMode", goodConfig + consoleSection + "approvals: [{name: r, backend: shop, approvers: {user: email}}]\n",
			`approvals[0].approvers.user: "email" is not a way to confirm`},
		{"UnknownKeyBesideBrowser", goodConfig + consoleSection + "approvals: [{name: r, backend: shop, approvers: {user: browser, group: [dba]}}]\n",
			"approvals[0].approvers.group: unknown key"},
		{"WithReviewers", goodConfig + consoleSection + "approvals: [{name: r, backend: shop, approvers: {user: browser, groups: [dba]}}]\n",
			"approvals[0].approvers.user: user: browser cannot be combined with groups or subjects"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml), withEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig() = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
