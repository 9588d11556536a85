package main

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
)

const goodConfig = `
identity:
  local: {subject: alice@example.com, groups: [analysts]}
backends:
  shop: {kind: postgres, dsn: "${SHOP_DSN}", statement_timeout: 2s, max_rows: 10}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders, public.customers], actions: [select]}
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseConfigExpandsEnvironmentAndAppliesDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(goodConfig), env(map[string]string{"SHOP_DSN": "postgres://u:secret@db/shop"}))
	if err != nil {
		t.Fatalf("ParseConfig(good) = %v", err)
	}
	pg := cfg.Backends["shop"].Postgres
	if pg.DSN != "postgres://u:secret@db/shop" {
		t.Errorf("dsn = %q; want the expanded value", pg.DSN)
	}
	if time.Duration(pg.StatementTimeout) != 2*time.Second || pg.MaxRows != 10 {
		t.Errorf("statement_timeout, max_rows = %s, %d; want 2s, 10", pg.StatementTimeout, pg.MaxRows)
	}
	if strings.Join(pg.SearchPath, ",") != "public" || pg.MaxConns != 4 {
		t.Errorf("defaults search_path, max_conns = %v, %d; want [public], 4", pg.SearchPath, pg.MaxConns)
	}
	if cfg.Store.URL != DefaultStore {
		t.Errorf("store = %q; want %q", cfg.Store.URL, DefaultStore)
	}
}

func TestParseConfigRejects(t *testing.T) {
	withEnv := env(map[string]string{"SHOP_DSN": "postgres://u:hunter2@db/shop"})
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"UnknownTopLevelKey", goodConfig + "extra: 1\n", "extra: unknown key"},
		{"UnknownFlowKey", goodConfig + "flows: [{name: f, form: {backend: shop}, to: {backend: shop}}]\n", "flows[0].form: unknown key"},
		{"FlowUnknownBackend", goodConfig + "flows: [{name: f, from: {backend: shp}, to: {backend: shop}}]\n", `flows[0].from.backend: unknown backend "shp"`},
		{"BudgetUnknownRole", goodConfig + "budgets: [{role: intern, backend: shop, rows: 10}]\n", `budgets[0].role: unknown role "intern"`},
		{"BudgetBadPer", goodConfig + "budgets: [{role: analyst, backend: shop, rows: 10, per: often}]\n", `budgets[0].per: invalid duration "often"`},
		{"WildcardOrigin", goodConfig + "http: {allowed_origins: ['*']}\n", `http.allowed_origins[0]: "*" is not allowed`},
		{"UnknownHTTPKey", goodConfig + "http: {max_body: 5}\n", "http.max_body: unknown key"},
		{"BadHTTPTimeout", goodConfig + "http: {read_timeout: forever}\n", `http.read_timeout: invalid duration "forever"`},
		{"UnknownBackendKey", strings.Replace(goodConfig, "max_rows: 10", "max_rows: 10, maxrows: 5", 1), "backends.shop.maxrows: unknown key"},
		{"UnknownGrantKey", strings.Replace(goodConfig, "actions: [select]", "actions: [select], colums: [a]", 1), "roles.analyst.grants[0].colums: unknown key"},
		{"UnsetVariable", strings.Replace(goodConfig, "SHOP_DSN", "NOPE_DSN", 1), "backends.shop.dsn: environment variable NOPE_DSN is not set"},
		{"UnknownBackendInGrant", strings.Replace(goodConfig, "{backend: shop,", "{backend: shp,", 1), `roles.analyst.grants[0].backend: unknown backend "shp"`},
		{"BadDuration", strings.Replace(goodConfig, "statement_timeout: 2s", "statement_timeout: soon", 1), `backends.shop.statement_timeout: invalid duration "soon"`},
		{"BadNumber", strings.Replace(goodConfig, "max_rows: 10", "max_rows: many", 1), `backends.shop.max_rows: expected a whole number`},
		{"NegativeRows", strings.Replace(goodConfig, "max_rows: 10", "max_rows: -1", 1), `backends.shop.max_rows: must be positive`},
		{"UnknownKind", strings.Replace(goodConfig, "kind: postgres", "kind: mysql", 1), `backends.shop.kind: unknown kind "mysql"`},
		{"UnknownDetector", goodConfig + "masking: {detectors: [emial]}\n", `masking.detectors[0]: unknown detector "emial"`},
		{"UnknownStrategy", goodConfig + "masking: {columns: {shop: {public.customers.card_number: last5}}}\n", `masking.columns.shop.public.customers.card_number.strategy: unknown strategy "last5"`},
		{"UnqualifiedMaskedColumn", goodConfig + "masking: {columns: {shop: {card_number: last4}}}\n", `masking.columns.shop.card_number: must be schema.table.column`},
		{"MaskingUnknownBackend", goodConfig + "masking: {columns: {shp: {public.customers.card_number: last4}}}\n", `masking.columns.shp: unknown backend "shp"`},
		{"ShortHashKey", goodConfig + "masking: {hash_key: short, columns: {shop: {public.customers.card_number: hash}}}\n", `masking.hash_key: must be at least 32 characters`},
		{"ApprovalUnknownKey", goodConfig + "approvals: [{name: r, backend: shop, when: [delete], approvers: user, timout: 5m}]\n", "approvals[0].timout: unknown key"},
		{"ApprovalUnknownBackend", goodConfig + "approvals: [{name: r, backend: shp, approvers: user}]\n", `approvals[0].backend: unknown backend "shp"`},
		{"ApprovalUnknownCondition", goodConfig + "approvals: [{name: r, backend: shop, when: [delete, wipe], approvers: user}]\n", `approvals[0].when[1]: unknown condition "wipe"`},
		{"ApproversNotUser", goodConfig + "approvals: [{name: r, backend: shop, approvers: dba}]\n", `approvals[0].approvers: "dba" is not an approver`},
		{"ApproversUnknownKey", goodConfig + "approvals: [{name: r, backend: shop, approvers: {group: [dba]}}]\n", "approvals[0].approvers.group: unknown key"},
		{"ApprovalBadTimeout", goodConfig + "approvals: [{name: r, backend: shop, approvers: user, timeout: soon}]\n", `approvals[0].timeout: invalid duration "soon"`},
		{"KubeWithoutDetectors", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true}\n", 1), "backends.k8s: kubernetes objects carry environment values"},
		{"KubeWithoutConnection", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes}\n", 1), "backends.k8s.kubeconfig: say how warden reaches the cluster"},
		{"KubeTwoConnections", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true, server: https://k}\n", 1), "backends.k8s.kubeconfig: use exactly one of"},
		{"KubePlainHTTP", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, server: http://k, token_file: /nonexistent}\n", 1), "backends.k8s.server: must be an https:// URL"},
		{"KubeMissingTokenFile", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, server: https://k, token_file: /nonexistent/token}\n", 1), "backends.k8s.token_file: cannot be read: no such file"},
		{"KubeMissingKubeconfig", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, kubeconfig: /nonexistent/config}\n", 1), "backends.k8s.kubeconfig: cannot be read: no such file"},
		{"KubeMaskingUnknownKey", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true, masking: {strict: true, reveals: [x]}}\n", 1), "backends.k8s.masking.reveals: unknown key"},
		{"KubeMaskingBadReveal", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true, masking: {strict: true, reveal: [\"labels:x\"]}}\n", 1), `backends.k8s.masking.reveal[0]: "labels:x" is not a path`},
		{"KubeUnknownKey", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true, namespace: x}\n", 1), "backends.k8s.namespace: unknown key"},
		{"KubeGrantWithoutNamespaces", strings.Replace(strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true}\n", 1),
			"actions: [select]}", "actions: [select]}\n      - {backend: k8s, resources: [pods]}", 1), "roles.analyst.grants[1].namespaces: missing namespaces"},
		{"KubeInClusterOutsideACluster", strings.Replace(goodConfig, "backends:\n", "backends:\n  k8s: {kind: kubernetes, in_cluster: true}\n", 1), "backends.k8s.in_cluster: warden is not running in a cluster"},
		{"NoRoles", strings.Split(goodConfig, "roles:")[0], "roles: no roles configured"},
		{"DuplicateKey", goodConfig + "roles: {}\n", "key appears twice"},
		{"OIDCNeedsAudience", strings.Replace(goodConfig, "identity:\n", "identity:\n  oidc: [{issuer: https://idp.example.com}]\n", 1), "identity.oidc[0].audience"},
		{"OIDCUnknownKey", strings.Replace(goodConfig, "identity:\n", "identity:\n  oidc: [{issuer: https://idp.example.com, audience: warden, group_claim: g}]\n", 1), "identity.oidc[0].group_claim: unknown key"},
		{"OIDCWithUnauthenticatedLoopback", strings.Replace(goodConfig, "identity:\n", "identity:\n  allow_unauthenticated_loopback: true\n  oidc: [{issuer: https://idp.example.com, audience: warden}]\n", 1), "identity.allow_unauthenticated_loopback: cannot be combined with oidc"},
		{"StoreScheme", goodConfig + "store: mysql://u:pw@x/db\n", `store: scheme "mysql" is not supported`},
		{"PostgresStoreWithoutKeys", goodConfig + "store: postgres://u:pw@x/db\n", `store.keys: a PostgreSQL store needs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml), withEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig() = %v; want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseConfig() error leaks the DSN password: %v", err)
			}
		})
	}
}

func TestParseConfigReadsApprovalRules(t *testing.T) {
	cfg, err := ParseConfig([]byte(goodConfig+`
approvals:
  - {name: wipes, backend: shop, when: [update_without_where, delete_without_where], approvers: {groups: [dba], subjects: [ops@example.com]}, wait: 0s}
  - {name: destructive-sql, backend: shop, when: [insert, update, delete, ddl], rows_above: 100, approvers: user, timeout: 5m}
`), env(map[string]string{"SHOP_DSN": "postgres://db/shop"}))
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	if len(cfg.Approvals) != 2 {
		t.Fatalf("approvals = %d rules; want 2", len(cfg.Approvals))
	}
	w, d := cfg.Approvals[0], cfg.Approvals[1]
	if w.Approvers.User || strings.Join(w.Approvers.Groups, ",") != "dba" || strings.Join(w.Approvers.Subjects, ",") != "ops@example.com" ||
		time.Duration(*w.Wait) != 0 || time.Duration(w.Timeout) != 10*time.Minute {
		t.Errorf("wipes = %+v approvers %+v; want reviewers dba and ops, no wait, the default timeout", w, w.Approvers)
	}
	if !d.Approvers.User || d.Approvers.Reviewers() || *d.RowsAbove != 100 || time.Duration(d.Timeout) != 5*time.Minute || time.Duration(*d.Wait) != time.Minute {
		t.Errorf("destructive-sql = %+v approvers %+v; want the user, rows_above 100, timeout 5m, the default wait", d, d.Approvers)
	}
}

func TestInvalidDSNIsReportedWithoutItsContents(t *testing.T) {
	bad := strings.Replace(goodConfig, `"${SHOP_DSN}"`, `"postgres://u:hunter2@db:notaport/shop"`, 1)
	_, err := ParseConfig([]byte(bad), env(nil))
	if err == nil || !strings.Contains(err.Error(), "backends.shop.dsn: not a valid PostgreSQL connection string") {
		t.Fatalf("ParseConfig(bad dsn) = %v; want a dsn error", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestUnderPrefixesKeyPaths(t *testing.T) {
	err := warden.Under("backends.shop", warden.FieldErrorf("dsn", "missing"))
	if err.Error() != "backends.shop.dsn: missing" {
		t.Errorf("Under() = %q", err)
	}
}
