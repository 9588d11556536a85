package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/health"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/tracing"
)

// LogConfig is `log`: warden's own log on standard error.
type LogConfig struct {
	// Level is debug, info (default), warn or error. At debug every call
	// is logged; at info, refusals and failures.
	Level string `yaml:"level"`
	// Format is text (default) or json (one JSON object a line).
	Format string `yaml:"format"`
}

// Validate checks the level and the format.
func (c LogConfig) Validate() error {
	var errs []error
	if _, err := c.level(); err != nil {
		errs = append(errs, warden.FieldErrorf("level", "%q is not a level: use debug, info, warn or error", c.Level))
	}
	switch c.Format {
	case "", "text", "json":
	default:
		errs = append(errs, warden.FieldErrorf("format", "%q is not a format: use text or json", c.Format))
	}
	return errors.Join(errs...)
}

func (c LogConfig) level() (slog.Level, error) {
	switch strings.ToLower(c.Level) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q", c.Level)
}

// Logger returns the logger the config describes, writing to w.
func (c LogConfig) Logger(w io.Writer) *slog.Logger {
	level, _ := c.level()
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ObserveConfig is `observe`: where the metrics and the probes are served.
type ObserveConfig struct {
	// Listen, when set, is a separate address serving /metrics, /healthz
	// and /readyz only, without authentication (scrapers and kubelets
	// carry no tokens); /metrics then leaves the MCP listener. Unset,
	// all three are served on the MCP listener. Either way a request
	// that a browser marks as coming from a page is refused.
	Listen string `yaml:"listen"`
	// Traces, when set, sends a span per call and per stage to an
	// OpenTelemetry collector.
	Traces *tracing.Config `yaml:"traces"`
}

// Validate checks the listen address and the traces.
func (c ObserveConfig) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, warden.FieldErrorf("listen", "%q is not an address: use host:port, for example 0.0.0.0:9090", c.Listen))
		}
	}
	if c.Traces != nil {
		errs = append(errs, warden.Under("traces", c.Traces.Validate()))
	}
	return errors.Join(errs...)
}

// probes are the checks /readyz runs: the store can take a record, and
// every backend answers.
func (a *App) probes() *health.Probes {
	checks := []health.Check{{Name: "store", Probe: storeProbe(a.Store)}}
	add := func(kind, name string, probe func(context.Context) error) {
		checks = append(checks, health.Check{Name: "backend " + name + " (" + kind + ")", Probe: probe})
	}
	for _, name := range slices.Sorted(maps.Keys(a.Backends)) {
		add("postgres", name, a.Backends[name].Ping)
	}
	for _, name := range slices.Sorted(maps.Keys(a.HTTP)) {
		add("http", name, a.HTTP[name].Probe)
	}
	for _, name := range slices.Sorted(maps.Keys(a.Kube)) {
		add("kubernetes", name, a.Kube[name].Probe)
	}
	return &health.Probes{Checks: checks, Log: a.Log}
}

// storeProbe is the store's readiness check. A store that can tell
// whether it takes a record now implements Probe (the SQLite store opens a
// write transaction and rolls it back); for one that does not, reading one
// approval request shows at least that it answers.
func storeProbe(s recorder.Store) func(context.Context) error {
	if p, ok := s.(interface{ Probe(context.Context) error }); ok {
		return p.Probe
	}
	return func(ctx context.Context) error {
		_, err := s.Approvals(ctx, warden.ApprovalFilter{Limit: 1})
		return err
	}
}

// queueDepth is the store's writer queue length, for the metric; 0 for a
// store that has no queue to report.
func queueDepth(s recorder.Store) func() int {
	if q, ok := s.(interface{ QueueDepth() int }); ok {
		return q.QueueDepth
	}
	return func() int { return 0 }
}

// observeHandler serves the observability endpoints on their own
// listener: GET only, and never to a page in a browser (no Origin, no
// cross-site Sec-Fetch-Site), since nothing on it is authenticated.
func observeHandler(p *health.Probes, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", p.Live())
	mux.Handle("GET /readyz", p.Ready())
	mux.Handle("GET /metrics", metrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.Header.Get("Sec-Fetch-Site")
		if r.Header.Get("Origin") != "" || (site != "" && site != "none" && site != "same-origin") {
			http.Error(w, "browser requests are refused", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveObserve serves h on ln until ctx is done.
func serveObserve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
