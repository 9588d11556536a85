package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/policy"
)

// check validates the config and prints what it allows, without
// connecting to anything; with --connect it also tries every backend and
// reports what the config names that does not exist.
func (m *Main) check(ctx context.Context, args []string) error {
	fs := m.flags("check")
	config := fs.String("config", "warden.yaml", "config file")
	as := fs.String("as", "", "show the roles and grants of SUBJECT[:group,...]")
	connect := fs.Bool("connect", false, "also connect to every backend and check that the tables, columns and namespaces the config names exist")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := m.loadConfig(*config)
	if err != nil {
		return err
	}
	pol, err := policy.New(cfg.Roles, cfg.BackendKinds())
	if err != nil {
		return err
	}
	w := m.Stdout
	fmt.Fprintf(w, "%s: ok\n\nstore: %s\n", *config, storeName(cfg.Store.URL))
	if l := cfg.Identity.Local; l != nil {
		fmt.Fprintf(w, "identity.local: %s", l.Subject)
		if len(l.Groups) > 0 {
			fmt.Fprintf(w, " (groups: %s)", strings.Join(l.Groups, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nbackends:")
	for _, name := range slices.Sorted(maps.Keys(cfg.Backends)) {
		b := cfg.Backends[name]
		fmt.Fprintf(w, "  %s (%s)", name, b.Kind)
		if p := b.Postgres; p != nil {
			fmt.Fprintf(w, ": statement_timeout %s, max_rows %d, search_path %s", p.StatementTimeout, p.MaxRows, strings.Join(p.SearchPath, ", "))
		}
		if h := b.HTTP; h != nil {
			// Header names only: their values are credentials.
			fmt.Fprintf(w, ": timeout %s, max_response_bytes %d, credential headers %s", h.Timeout, h.MaxResponseBytes, strings.Join(slices.Sorted(maps.Keys(h.Headers)), ", "))
		}
		if k := b.Kube; k != nil {
			// How warden connects, never with what.
			via := "kubeconfig " + k.Kubeconfig
			switch {
			case k.InCluster:
				via = "the in-cluster service account"
			case k.Server != "":
				via = "token_file " + k.TokenFile
			case k.Context != "":
				via += ", context " + k.Context
			}
			fmt.Fprintf(w, ": %s, impersonate %v, timeout %s, max_objects %d, max_response_bytes %d", via, k.Impersonate, k.Timeout, k.MaxObjects, k.MaxResponseBytes)
			if m := k.Masking; m.Strict || len(m.SecretNames)+len(m.SecretFlags) > 0 {
				fmt.Fprintf(w, ", masking: strict %v", m.Strict)
				for _, l := range []struct {
					what string
					vals []string
				}{{"secret names", m.SecretNames}, {"secret flags", m.SecretFlags}, {"reveal", m.Reveal}} {
					if len(l.vals) > 0 {
						fmt.Fprintf(w, ", %s %s", l.what, strings.Join(l.vals, " "))
					}
				}
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nroles:")
	for _, name := range slices.Sorted(maps.Keys(cfg.Roles)) {
		r := cfg.Roles[name]
		var members []string
		for _, s := range r.Members.Subjects {
			members = append(members, "subject "+s)
		}
		for _, e := range r.Members.Emails {
			members = append(members, "email "+e)
		}
		for _, g := range r.Members.Groups {
			members = append(members, "group "+g)
		}
		fmt.Fprintf(w, "  %s — members: %s\n", name, strings.Join(members, ", "))
		for i, g := range r.Grants {
			fmt.Fprintf(w, "    grants[%d] %s\n", i, describeGrant(g))
		}
	}
	if len(cfg.Approvals) > 0 {
		fmt.Fprintln(w, "\napprovals (the first matching rule decides):")
		for i, r := range cfg.Approvals {
			var when []string
			if len(r.When) > 0 {
				when = append(when, "when "+strings.Join(r.When, ", "))
			}
			if len(r.Tables) > 0 {
				when = append(when, "tables "+strings.Join(r.Tables, ", "))
			}
			if len(r.Paths) > 0 {
				when = append(when, "paths "+strings.Join(r.Paths, ", "))
			}
			if len(r.Resources) > 0 {
				when = append(when, "resources "+strings.Join(r.Resources, ", "))
			}
			if len(r.Namespaces) > 0 {
				when = append(when, "namespaces "+strings.Join(r.Namespaces, ", "))
			}
			if r.RowsAbove != nil {
				when = append(when, fmt.Sprintf("estimate above %d rows", *r.RowsAbove))
			}
			if len(when) == 0 {
				when = append(when, "every call")
			}
			fmt.Fprintf(w, "  [%d] %s; %s; wait %s\n", i, r.Describe(), strings.Join(when, "; "), *r.Wait)
		}
	}
	if len(cfg.Flows) > 0 {
		fmt.Fprintln(w, "\nflows (checked after authorize, before approval rules):")
		for i, r := range cfg.Flows {
			fmt.Fprintf(w, "  [%d] %s\n", i, r.Describe())
		}
	}
	if len(cfg.Budgets) > 0 {
		fmt.Fprintln(w, "\nbudgets:")
		for i, b := range cfg.Budgets {
			fmt.Fprintf(w, "  [%d] %s\n", i, b.Describe())
		}
	}
	if *connect {
		if n := m.checkConnect(ctx, cfg); n > 0 {
			return fmt.Errorf("%s: %d problems found by --connect", *config, n)
		}
	}
	if *as != "" {
		caller := parseAs(*as)
		fmt.Fprintf(w, "\nas %s", caller.Subject)
		if len(caller.Groups) > 0 {
			fmt.Fprintf(w, " (groups: %s)", strings.Join(caller.Groups, ", "))
		}
		roles := pol.RolesFor(caller)
		if len(roles) == 0 {
			fmt.Fprintln(w, ": no roles — every call is denied")
			return nil
		}
		fmt.Fprintf(w, ": roles %s\n", strings.Join(roles, ", "))
		for _, g := range pol.Effective(caller) {
			fmt.Fprintf(w, "  %s\n", g)
		}
	}
	return nil
}

func describeGrant(g *policy.Grant) string { return g.Describe() }

// parseAs reads SUBJECT[:group,...].
func parseAs(s string) *warden.Caller {
	subject, groups, _ := strings.Cut(s, ":")
	c := &warden.Caller{Subject: subject, Method: "local"}
	if groups != "" {
		c.Groups = strings.Split(groups, ",")
	}
	if strings.Contains(subject, "@") {
		c.Email = subject
	}
	return c
}
