package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/flows"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/mcp"
	"github.com/warden-mcp/warden/metrics"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder"
	httptool "github.com/warden-mcp/warden/tools/http"
	"github.com/warden-mcp/warden/tools/kube"
	"github.com/warden-mcp/warden/tools/sql"
	"github.com/warden-mcp/warden/tracing"
)

// Version is set at build time.
var Version = "0.1.0-dev"

// Main is the warden program: end-to-end tests run the same wiring.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) (string, bool)
	Clock          warden.Clock

	// command is the command being run ("sessions list"): a usage error
	// prints its usage lines.
	command string
}

// NewMain returns a Main wired to the process's standard streams.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.LookupEnv, Clock: time.Now}
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const usage = `warden — a zero-trust MCP server for AI agents

Usage:
  warden serve    [--config warden.yaml] [--transport stdio|http|sse] [--listen 127.0.0.1:8765]
  warden check    [--config warden.yaml] [--as SUBJECT[:group,...]] [--connect]
  warden sessions list   [--config ...] [--subject S] [--since 1h] [--until T] [--tool T] [--denied] [--limit N]
  warden sessions show   [--config ...] ID
  warden sessions replay [--config ...] [--json] ID
  warden sessions verify [--config ...] [--pubkey FILE|BASE64] [--head FILE] [--print-key] [--export FILE] [--reseal]
  warden sessions export [--config ...] [--format jsonl] [--since 1h]
  warden approvals list    [--config ...] [--all | --status S]
  warden approvals show    [--config ...] ID
  warden approvals approve [--config ...] [--token T] [--reason R] ID
  warden approvals deny    [--config ...] [--token T] [--reason R] ID
  warden explain  [--config ...] --as SUBJECT[:group,...] TOOL [key=value | key:=json]...   dry-run decision; exit 0 allow, 1 refused
  warden demo     [--database-url URL]
  warden init     --dsn URL [--schema s,...] [--sample N] [--out warden.yaml] [--force]
  warden version
`

// Run runs one command and returns the process exit code: 0 ok, 1
// failure, 2 usage error.
func (m *Main) Run(ctx context.Context, args []string) int {
	err := m.run(ctx, args)
	if err == nil {
		return 0
	}
	var ue *usageError
	var help *helpRequested
	var status exitStatus
	switch {
	case errors.As(err, &help):
		writeHelp(m.Stdout, help.command, help.fs)
		return 0
	case errors.As(err, &ue):
		writeUsageError(m.Stderr, m.command, ue.msg)
		return 2
	case errors.As(err, &status):
		return int(status)
	}
	fmt.Fprintf(m.Stderr, "warden: %s\n", err)
	return 1
}

func (m *Main) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("missing command")
	}
	m.command = args[0]
	if groups[args[0]] && len(args) > 1 && isHelpArg(args[1]) {
		return &helpRequested{command: args[0]}
	}
	switch args[0] {
	case "serve":
		return m.serve(ctx, args[1:])
	case "check":
		return m.check(ctx, args[1:])
	case "sessions":
		return m.sessions(ctx, args[1:])
	case "approvals":
		return m.approvals(ctx, args[1:])
	case "explain":
		return m.explain(ctx, args[1:])
	case "demo":
		return m.demo(ctx, args[1:])
	case "init":
		return m.initCmd(ctx, args[1:])
	case "version":
		if len(args) > 1 {
			if isHelpArg(args[1]) {
				return &helpRequested{command: "version"}
			}
			return usagef("version takes no arguments, got %q", args[1])
		}
		fmt.Fprintln(m.Stdout, "warden", Version)
		return nil
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" && !isHelpArg(args[1]) {
			// warden help sessions list = warden sessions list --help
			return m.run(ctx, append(args[1:], "--help"))
		}
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	return usagef("unknown command %q", args[0])
}

// flags returns the flag set of a command. Parse errors and help are
// reported by Run, once: the flag package itself prints nothing.
func (m *Main) flags(name string) *flag.FlagSet {
	m.command = name
	fs := flag.NewFlagSet("warden "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses flags that may come before or after positional arguments
// (`warden sessions show ID --config x`); positional arguments are left in
// fs.Args().
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return &helpRequested{command: commandOf(fs), fs: fs}
			}
			return usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

func (m *Main) loadConfig(path string) (*Config, error) {
	return m.load(path, LoadConfig)
}

// loadRecordingConfig loads what the commands that work on the recording
// need (store and identity), without the backends' secrets.
func (m *Main) loadRecordingConfig(path string) (*Config, error) {
	return m.load(path, LoadRecordingConfig)
}

func (m *Main) load(path string, load func(string, func(string) (string, bool)) (*Config, error)) (*Config, error) {
	cfg, err := load(path, m.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// A relative store path is relative to the config file, so the same
	// file works from any working directory.
	p, isFile := strings.CutPrefix(cfg.Store.URL, "sqlite:")
	if isFile && !filepath.IsAbs(p) {
		cfg.Store.URL = "sqlite:" + filepath.Join(filepath.Dir(path), p)
	}
	if k := cfg.Store.Keys; k != "" && !filepath.IsAbs(k) {
		cfg.Store.Keys = filepath.Join(filepath.Dir(path), k)
	}
	return cfg, nil
}

// App is a provisioned warden: store, backends, policy, tools, pipeline.
type App struct {
	Config   *Config
	Store    recorder.Store
	Backends sql.Backends
	HTTP     httptool.Backends
	Kube     kube.Backends
	Policy   *policy.Policy
	Pipeline *warden.Pipeline
	// Approvals holds calls for a human; nil without approval rules.
	Approvals *approvals.Service
	// Flows is the flow-control stage; nil without flows and budgets.
	Flows *flows.Guard
	// Verifier verifies bearer tokens; nil without identity.oidc.
	Verifier *mcp.Verifier
	Log      *slog.Logger
	// Metrics are the Prometheus metrics the pipeline, the recorder and
	// the transport fill.
	Metrics *metrics.Metrics
	// Tracer sends spans; nil without observe.traces.
	Tracer *tracing.Tracer

	detectors *mask.Detectors
}

// Provision opens the store and creates the backend pools (without
// connecting) from a validated config.
func (m *Main) Provision(ctx context.Context, cfg *Config) (*App, error) {
	log := cfg.Log.Logger(m.Stderr)
	pol, err := policy.New(cfg.Roles, cfg.BackendKinds())
	if err != nil {
		return nil, err
	}
	met := metrics.New(Version)
	storeOpts := cfg.Store.Options()
	storeOpts.OnCommit = met.Commit
	store, err := openStore(ctx, cfg.Store.URL, storeOpts)
	if err != nil {
		return nil, fmt.Errorf("open the recording store: %w", err)
	}
	met.WatchQueue(queueDepth(store))
	app := &App{Config: cfg, Store: store, Backends: sql.Backends{}, HTTP: httptool.Backends{}, Kube: kube.Backends{}, Policy: pol, Log: log, Metrics: met}
	if len(cfg.Identity.OIDC) > 0 {
		// Discovery and a first key fetch now: an issuer warden cannot
		// verify against stops it at start, not at the first call.
		if app.Verifier, err = mcp.NewVerifier(ctx, cfg.Identity.OIDC, m.Clock, nil); err != nil {
			app.Close()
			return nil, warden.Under("identity.oidc", err)
		}
	}
	if err := app.newBackends(ctx, cfg); err != nil {
		app.Close()
		return nil, err
	}
	if err := app.provisionMasking(ctx, cfg); err != nil {
		app.Close()
		return nil, err
	}
	httpCall := &httptool.Call{Backends: app.HTTP, Policy: pol}
	kubeGet := &kube.Get{Backends: app.Kube, Grants: pol}
	if app.detectors != nil {
		kubeGet.Scrubber = app.detectors // max_response_bytes counts masked objects
	}
	reg, err := warden.NewRegistry(
		&sql.Query{Backends: app.Backends},
		&sql.Schema{Backends: app.Backends, Grants: pol},
		httpCall,
		kubeGet,
	)
	if err != nil {
		app.Close()
		return nil, err
	}
	var tools []string
	for _, t := range reg.Tools() {
		tools = append(tools, t.Spec().Name)
	}
	labels := warden.NewLabels(tools, slices.Sorted(maps.Keys(cfg.Backends)))
	observers := warden.Observers{met.Calls(labels), warden.LogCalls(log, labels)}
	if t := cfg.Observe.Traces; t != nil {
		if app.Tracer, err = tracing.New(ctx, *t, Version); err != nil {
			app.Close()
			return nil, warden.Under("observe.traces", err)
		}
		observers = append(observers, app.Tracer.Calls(labels))
	}
	app.Pipeline = &warden.Pipeline{
		Tools:    reg,
		Policy:   pol,
		Recorder: store,
		Clock:    m.Clock,
		NewID:    newID("c"),
		Log:      log,
		Observer: observers,
	}
	if app.detectors != nil {
		app.Pipeline.Scrubber = app.detectors
	}
	if len(cfg.Approvals) > 0 || needsHold(cfg) {
		// The key that authenticates the requestState tokens warden
		// hands clients: derived from the signing key, outside the
		// store, and the same after a restart, so questions in flight
		// survive it.
		key, err := store.Secret(ctx, "approvals.state_key", 32)
		if err != nil {
			app.Close()
			return nil, fmt.Errorf("approvals: %w", err)
		}
		app.Approvals = &approvals.Service{
			Rules: cfg.Approvals, Kinds: cfg.BackendKinds(), Store: store, Key: key,
			Clock: m.Clock, NewID: newID("a"), Log: log,
		}
		if cfg.Console != nil {
			app.Approvals.ConsoleURL = cfg.Console.BaseURL
		}
		if app.detectors != nil {
			app.Approvals.Scrubber = app.detectors // write previews
		}
		app.Pipeline.Approvals = app.Approvals
		met.WatchApprovals(func(ctx context.Context) (int, error) {
			pending, err := store.Approvals(ctx, warden.ApprovalFilter{Status: warden.ApprovalPending})
			now, n := m.Clock(), 0
			for _, a := range pending {
				if now.Before(a.ExpiresAt) { // expired ones wait for RunExpiry to mark them
					n++
				}
			}
			return n, err
		})
		// A redirect http_call would follow is judged by the same rules.
		svc := app.Approvals
		httpCall.Holds = func(ctx context.Context, a *warden.Action) string {
			if r, _ := svc.Rule(ctx, a, httpCall); r != nil {
				return r.Name
			}
			return ""
		}
	}
	if len(cfg.Flows)+len(cfg.Budgets) > 0 {
		// Fingerprints are keyed with a key derived from the signing
		// key: the same after a restart, never in the store.
		key, err := store.Secret(ctx, "flows.fingerprint_key", 32)
		if err != nil {
			app.Close()
			return nil, fmt.Errorf("flows: %w", err)
		}
		fs, ok := store.(warden.FlowStore)
		if !ok {
			app.Close()
			return nil, errors.New("flows: the configured store does not keep what flow rules remember; use store: sqlite:PATH")
		}
		opts := flows.Options{Rules: cfg.Flows, Budgets: cfg.Budgets, Kinds: cfg.BackendKinds(), Store: fs, Key: key,
			Roles: pol.RolesFor, Clock: m.Clock}
		if app.Approvals != nil {
			opts.Hold = app.Approvals
		}
		if app.Flows, err = flows.New(opts); err != nil {
			app.Close()
			return nil, err
		}
		app.Pipeline.Flows = app.Flows
	}
	return app, nil
}

// needsHold reports whether a flow rule or budget holds calls for approval.
func needsHold(cfg *Config) bool {
	for _, r := range cfg.Flows {
		if r.Action == flows.ActionApprove {
			return true
		}
	}
	for _, b := range cfg.Budgets {
		if b.Action == flows.ActionApprove {
			return true
		}
	}
	return false
}

// newBackends creates the backends' clients and pools, without
// connecting.
func (a *App) newBackends(ctx context.Context, cfg *Config) error {
	if a.Backends == nil {
		a.Backends, a.HTTP, a.Kube = sql.Backends{}, httptool.Backends{}, kube.Backends{}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Backends)) {
		var err error
		switch b := cfg.Backends[name]; {
		case b.Postgres != nil:
			var be *sql.Backend
			if be, err = sql.NewBackend(name, *b.Postgres); err == nil {
				a.Backends[name] = be
			}
		case b.HTTP != nil:
			var be *httptool.Backend
			if be, err = httptool.NewBackend(ctx, name, *b.HTTP); err == nil { // resolves and pins the host
				a.HTTP[name] = be
			}
		case b.Kube != nil:
			var be *kube.Backend
			if be, err = kube.NewBackend(name, *b.Kube); err == nil {
				// Continue tokens open on every instance that shares the
				// key (check --connect has no store, and seals none).
				var key []byte
				if a.Store != nil {
					key, err = a.Store.Secret(ctx, "kube.continue_key."+name, 32)
				}
				if err == nil {
					if key != nil {
						be.SetContinueKey(key)
					}
					a.Kube[name] = be
				}
			}
		}
		if err != nil {
			return warden.Under("backends."+name, err)
		}
	}
	return nil
}

// provisionMasking gives each backend its column rules and builds the
// value detectors. The hash strategy's key comes from the config or is
// derived from the signing key (never kept in the store).
func (a *App) provisionMasking(ctx context.Context, cfg *Config) error {
	m := cfg.Masking
	if m == nil {
		return nil
	}
	if len(m.Detectors) > 0 {
		d, err := mask.NewDetectors(*m)
		if err != nil {
			return warden.Under("masking", err)
		}
		a.detectors = d
	}
	if len(m.Columns) == 0 && len(m.JSONPaths) == 0 {
		return nil
	}
	key := []byte(m.HashKey)
	if len(key) == 0 {
		var err error
		if key, err = a.Store.Secret(ctx, "masking.hash_key", 32); err != nil {
			return fmt.Errorf("masking: %w", err)
		}
	}
	masker := mask.NewMasker(key)
	for name, cols := range m.Columns {
		a.Backends[name].SetMasking(cols, masker)
	}
	for name, paths := range m.JSONPaths {
		jm, err := mask.NewJSONMasks(paths, masker)
		if err != nil {
			return warden.Under("masking.json_paths."+name, err)
		}
		a.HTTP[name].SetMasking(jm)
	}
	return nil
}

// Close releases the app's resources.
func (a *App) Close() {
	a.Backends.Close()
	a.HTTP.Close()
	a.Kube.Close()
	if a.Tracer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.Tracer.Shutdown(ctx) // sends what is buffered
		cancel()
	}
	if a.Store != nil {
		_ = a.Store.Close()
	}
}

func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	config := fs.String("config", "warden.yaml", "config file")
	transport := fs.String("transport", "stdio", "stdio, http or sse")
	listen := fs.String("listen", "127.0.0.1:8765", "address for the http and sse transports")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Arg(0))
	}
	switch *transport {
	case "stdio", "http", "sse":
	default:
		return usagef("unknown transport %q (use stdio, http or sse)", *transport)
	}
	cfg, err := m.loadConfig(*config)
	if err != nil {
		return err
	}
	token, _ := m.Getenv("WARDEN_TOKEN")
	if *transport == "stdio" && token == "" && cfg.Identity.Local == nil {
		return errors.New("stdio needs a caller: set WARDEN_TOKEN to a token from a configured issuer, or configure identity.local")
	}
	app, err := m.Provision(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	// Every backend is tried now and reported, one line each: a
	// database warden cannot reach or log in to is named with the cause
	// at start, not at the first call. warden still starts (the others
	// work; the failed one's calls are refused with the cause until it
	// answers). A masking rule naming a column that does not exist stops
	// it.
	if err := app.reportBackends(ctx); err != nil {
		return err
	}
	if keep := cfg.Store.Keep; keep > 0 {
		go app.Store.Retain(ctx, keep, app.Log)
	}
	if app.Approvals != nil {
		go app.Approvals.RunExpiry(ctx, time.Minute)
	}
	probes := app.probes()
	handlers := map[string]http.Handler{"GET /readyz": probes.Ready()}
	if cfg.Observe.Listen == "" {
		handlers["GET /metrics"] = app.Metrics.Handler()
	} else {
		ln, err := net.Listen("tcp", cfg.Observe.Listen)
		if err != nil {
			return warden.Under("observe.listen", err)
		}
		app.Log.Info("observability endpoints listening", "addr", ln.Addr().String())
		go func() {
			if err := serveObserve(ctx, ln, observeHandler(probes, app.Metrics.Handler())); err != nil {
				app.Log.Error("the observability listener stopped", "err", err)
			}
		}()
	}
	var con http.Handler
	if cfg.Console != nil {
		c, err := m.provisionConsole(ctx, app)
		if err != nil {
			return err
		}
		con = c
		if cfg.Console.Listen != "" {
			ln, err := net.Listen("tcp", cfg.Console.Listen)
			if err != nil {
				return fmt.Errorf("console.listen: %w", err)
			}
			consoleOnLoopback(app, ln)
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			defer func() { cancel(); <-done }()
			go func() { defer close(done); serveConsole(cctx, app, c, ln) }()
			con = nil
		} else if *transport == "stdio" {
			return errors.New("console: with the stdio transport the console needs its own listener: set console.listen (a loopback address such as 127.0.0.1:8766)")
		}
	}
	srv := mcp.New(mcp.Options{
		Pipeline:   app.Pipeline,
		Policy:     app.Policy,
		Sessions:   app.Store,
		Identity:   &cfg.Identity,
		HTTP:       &cfg.HTTP,
		Results:    &cfg.Results,
		Verifier:   app.Verifier,
		Version:    Version,
		Log:        app.Log,
		NewID:      newID("s"),
		Console:    con,
		Handlers:   handlers,
		AuthFailed: app.Metrics.AuthFailed,
	})
	if *transport == "stdio" {
		return srv.ServeStdio(ctx, m.Stdin, m.Stdout, token)
	}
	if _, _, err := srv.HTTPHandler(*transport); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if con != nil {
		consoleOnLoopback(app, ln)
	}
	app.Log.Info("warden listening", endpoints(*transport, ln.Addr(), app.Verifier != nil)...)
	return srv.ServeHTTP(ctx, ln, *transport)
}

// endpoints are the attributes of the listening message: the address and
// the full URLs a client connects to.
func endpoints(transport string, addr net.Addr, metadata bool) []any {
	base := "http://" + addr.String()
	attrs := []any{"transport", transport, "addr", addr.String()}
	endpoint := "/mcp"
	if transport == "sse" {
		endpoint = "/sse"
		attrs = append(attrs, "sse", base+"/sse", "message", base+"/message")
	} else {
		attrs = append(attrs, "mcp", base+"/mcp")
	}
	if metadata {
		// RFC 9728: the metadata of /mcp is at the well-known path + /mcp.
		attrs = append(attrs, "metadata", base+"/.well-known/oauth-protected-resource"+endpoint)
	}
	return append(attrs, "health", base+"/healthz")
}

// newID returns a generator of time-ordered ids such as c-0fz3k2m8q1w5x7ab.
func newID(prefix string) func() string {
	enc := base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
	return func() string {
		var b [10]byte
		binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
		_, _ = rand.Read(b[6:])
		return prefix + "-" + enc.EncodeToString(b[:])
	}
}
