// Package health answers an orchestrator's liveness and readiness probes.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Check is one thing readiness depends on.
type Check struct {
	// Name says what is checked ("store", "backend analytics"); it is
	// the only thing about a check a probe's answer shows.
	Name string
	// Probe returns nil when the thing is usable now. It must honour
	// ctx: a probe has a deadline.
	Probe func(ctx context.Context) error
}

// Probes are the answers to /healthz and /readyz.
type Probes struct {
	Checks []Check
	// Timeout bounds each check (default 2s).
	Timeout time.Duration
	// Log gets a warning naming each check that fails (default: none).
	Log *slog.Logger
}

// Live answers /healthz: the process is up and serving HTTP. It checks
// nothing else, so an orchestrator restarts warden only when warden
// itself is stuck, never because the store or a backend is down.
func (p *Probes) Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprint(w, "ok\n")
	})
}

// Ready answers /readyz: 200 when every check passes, 503 otherwise. The
// body lists each check as "NAME ok" or "NAME failed" and nothing more:
// a cause can quote a host or a DSN, so it goes nowhere (the log names
// the check that failed). Checks run in parallel, each within Timeout.
func (p *Probes) Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed := p.Run(r.Context())
		var b strings.Builder
		for _, c := range p.Checks {
			state := "ok"
			if failed[c.Name] {
				state = "failed"
			}
			fmt.Fprintf(&b, "%s %s\n", c.Name, state)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = fmt.Fprint(w, b.String())
	})
}

// Run runs every check and returns the names of those that failed.
func (p *Probes) Run(ctx context.Context) map[string]bool {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		failed = map[string]bool{}
	)
	for _, c := range p.Checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := c.Probe(cctx); err != nil {
				mu.Lock()
				failed[c.Name] = true
				mu.Unlock()
				if p.Log != nil {
					p.Log.Warn("readiness check failed", "check", c.Name)
				}
			}
		})
	}
	wg.Wait()
	return failed
}
