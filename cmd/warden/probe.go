package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/tools/sql"
)

// probeTimeout bounds trying one backend at start and in check --connect.
const probeTimeout = 10 * time.Second

// probeResult is what trying one backend found. Nothing in it holds a
// DSN, a URL or a credential: causes are classified (sql.ConnectCause) or
// the tools' own agent-safe messages.
type probeResult struct {
	name, kind string
	// ok describes what answered; cause why the backend cannot be used.
	ok, cause string
	catalog   *sql.Catalog
	// missingColumns are masking rules naming columns that do not exist.
	missingColumns []string
	namespaces     []string
	nsCause        string
}

// probe tries every backend at once, each bounded by probeTimeout, and
// returns the results sorted by backend name. With listNamespaces it also
// lists each cluster's namespaces, for checking the config's names.
func (a *App) probe(ctx context.Context, listNamespaces bool) []probeResult {
	var (
		mu  sync.Mutex
		out []probeResult
		wg  sync.WaitGroup
	)
	add := func(r probeResult) { mu.Lock(); out = append(out, r); mu.Unlock() }
	for name, b := range a.Backends {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			r := probeResult{name: name, kind: "postgres"}
			cat, err := b.Probe(ctx)
			var me *sql.MaskingError
			var pe *sql.ProbeError
			switch {
			case errors.As(err, &me):
				r.missingColumns = me.Missing
				r.ok = "connected; " + cat.Describe()
			case errors.As(err, &pe):
				r.cause = pe.Cause
			case err != nil:
				r.cause = sql.ConnectCause(err)
			default:
				r.ok = "connected; " + cat.Describe()
			}
			r.catalog = cat
			add(r)
		})
	}
	for name, b := range a.HTTP {
		wg.Go(func() {
			r := probeResult{name: name, kind: "http"}
			if err := b.Probe(ctx); err != nil {
				r.cause = agentMessage(err)
			} else {
				r.ok = "reachable (connected, TLS verified for https; no request sent)"
			}
			add(r)
		})
	}
	for name, b := range a.Kube {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			r := probeResult{name: name, kind: "kubernetes"}
			if err := b.Probe(ctx); err != nil {
				r.cause = agentMessage(err)
				add(r)
				return
			}
			r.ok = "the API server answers warden's credentials"
			if listNamespaces {
				ns, err := b.Namespaces(ctx)
				if err != nil {
					r.nsCause = agentMessage(err)
				}
				r.namespaces = ns
			}
			add(r)
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(x, y probeResult) int { return strings.Compare(x.name, y.name) })
	return out
}

// agentMessage is the message of a coded error, which the tools write
// for the agent and so never hold an address or a credential; anything
// else is not printed.
func agentMessage(err error) string {
	var e *warden.Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "cannot be reached"
}

// reportBackends probes every backend at start and logs one line for
// each. A masking rule that names a column that does not exist stops
// warden; a backend that cannot be used does not (its calls are refused,
// with the cause, until it answers).
func (a *App) reportBackends(ctx context.Context) error {
	for _, r := range a.probe(ctx, false) {
		if len(r.missingColumns) > 0 {
			return warden.Under("masking.columns."+r.name, &sql.MaskingError{Missing: r.missingColumns})
		}
		if r.cause != "" {
			a.Log.Warn("backend unavailable; its calls are refused until it answers", "backend", r.name, "kind", r.kind, "cause", r.cause)
			continue
		}
		a.Log.Info("backend ready", "backend", r.name, "kind", r.kind, "found", r.ok)
	}
	return nil
}

// checkConnect is `warden check --connect`: it tries every backend and
// reports what the config names that the backends do not have. It
// returns the number of problems.
func (m *Main) checkConnect(ctx context.Context, cfg *Config) int {
	app := &App{}
	defer app.Close()
	w := m.Stdout
	var problems []string
	if err := app.newBackends(ctx, cfg); err != nil {
		fmt.Fprintf(w, "\nconnect: %v\n", err)
		return 1
	}
	if mc := cfg.Masking; mc != nil {
		// The masker is never asked to mask here; the rules only name
		// the columns to look for.
		masker := mask.NewMasker(nil)
		for name, cols := range mc.Columns {
			if b := app.Backends[name]; b != nil {
				b.SetMasking(cols, masker)
			}
		}
	}
	results := app.probe(ctx, true)
	fmt.Fprintln(w, "\nconnect:")
	byName := map[string]probeResult{}
	for _, r := range results {
		byName[r.name] = r
		if r.cause != "" {
			fmt.Fprintf(w, "  %s (%s): FAILED: %s\n", r.name, r.kind, r.cause)
			problems = append(problems, fmt.Sprintf("backends.%s: cannot be used: %s", r.name, r.cause))
			continue
		}
		fmt.Fprintf(w, "  %s (%s): ok: %s\n", r.name, r.kind, r.ok)
		for _, col := range r.missingColumns {
			problems = append(problems, fmt.Sprintf("masking.columns.%s.%s: no such column in database %q", r.name, col, r.name))
		}
		if r.nsCause != "" {
			problems = append(problems, fmt.Sprintf("backends.%s: cannot list namespaces to check the grants: %s", r.name, r.nsCause))
		}
	}
	// missing reports patterns of one config entry that name nothing the
	// backend has.
	missing := func(path, backend string, tables, functions, namespaces []string) {
		r, ok := byName[backend]
		if !ok || r.cause != "" {
			return
		}
		if c := r.catalog; c != nil {
			for _, t := range c.Missing(tables, policy.MatchObject) {
				problems = append(problems, fmt.Sprintf("%s.tables: %s matches no table or view in database %q", path, t, backend))
			}
			for _, f := range c.MissingFunctions(functions) {
				problems = append(problems, fmt.Sprintf("%s.functions: %s is not a function in database %q", path, f, backend))
			}
		}
		if r.kind == "kubernetes" && r.nsCause == "" {
			for _, ns := range namespaces {
				if ns == warden.AllNamespaces && len(r.namespaces) > 0 {
					continue
				}
				if !slices.ContainsFunc(r.namespaces, func(have string) bool { return policy.MatchGlobs([]string{ns}, have) }) {
					problems = append(problems, fmt.Sprintf("%s.namespaces: %s matches no namespace in cluster %q", path, ns, backend))
				}
			}
		}
	}
	for _, role := range slices.Sorted(maps.Keys(cfg.Roles)) {
		for i, g := range cfg.Roles[role].Grants {
			missing(fmt.Sprintf("roles.%s.grants[%d]", role, i), g.Backend, g.Tables, g.Functions, g.Namespaces)
		}
	}
	for i, r := range cfg.Approvals {
		missing(fmt.Sprintf("approvals[%d]", i), r.Backend, r.Tables, nil, r.Namespaces)
	}
	if len(problems) == 0 {
		fmt.Fprintln(w, "\nevery backend answered, and every table, column and namespace the config names exists")
		return 0
	}
	fmt.Fprintln(w, "\nproblems:")
	for _, p := range problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return len(problems)
}
