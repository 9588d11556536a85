// Package metrics exports warden's calls, stages, recorder and
// authentication failures as Prometheus metrics.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/warden-mcp/warden"
)

// AuthFailure reasons: the closed set of the auth_failures reason label,
// one per way an HTTP request is refused for want of a valid identity.
const (
	// ReasonMissingToken: no bearer token.
	ReasonMissingToken = "missing_token"
	// ReasonInvalidToken: a token that did not verify (signature, issuer,
	// audience, expiry).
	ReasonInvalidToken = "invalid_token"
	// ReasonInsufficientScope: a valid token without the required scopes.
	ReasonInsufficientScope = "insufficient_scope"
	// ReasonAccessDenied: a valid token refused otherwise.
	ReasonAccessDenied = "access_denied"
	// ReasonOther: anything else (never a caller-chosen string).
	ReasonOther = "other"
)

var reasons = []string{ReasonMissingToken, ReasonInvalidToken, ReasonInsufficientScope, ReasonAccessDenied, ReasonOther}

// Buckets of the latency histograms, in seconds: from a policy decision
// (tens of microseconds) to a call held for a human (minutes).
var (
	stageBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	commitBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
)

// Metrics is warden's Prometheus registry and the Observer that fills
// it. Every label value comes from a closed set (warden.Labels, stage
// names, reasons): never from an argument, a result or an error message.
type Metrics struct {
	reg *prometheus.Registry

	calls      *prometheus.CounterVec
	inFlight   prometheus.Gauge
	stages     *prometheus.HistogramVec
	commits    prometheus.Histogram
	committed  prometheus.Counter
	authFailed *prometheus.CounterVec

	// Probes for the gauges read at scrape time.
	mu        sync.Mutex
	queue     func() int
	pending   func(context.Context) (int, error)
	scrapeCtx func() (context.Context, context.CancelFunc)
}

// New returns the metrics of a warden of this version, with the Go
// runtime's and the process's collectors.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_calls_total",
			Help: "Tool calls finished, by tool, backend, policy decision and outcome (ok or the error code).",
		}, []string{"tool", "backend", "decision", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_calls_in_flight",
			Help: "Tool calls being handled now (including those waiting for approval).",
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warden_stage_duration_seconds",
			Help:    "Time spent in each pipeline stage, by stage and tool; stage=call is the whole call.",
			Buckets: stageBuckets,
		}, []string{"stage", "tool"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "warden_recorder_commit_duration_seconds",
			Help:    "Time each write transaction of the recording store took (one group commit of records).",
			Buckets: commitBuckets,
		}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_recorder_records_total",
			Help: "Records handed to the recording store's commits.",
		}),
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_auth_failures_total",
			Help: "HTTP requests refused for want of a valid identity, by reason.",
		}, []string{"reason"}),
		scrapeCtx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 2*time.Second)
		},
	}
	for _, r := range reasons {
		m.authFailed.WithLabelValues(r) // present at 0 from the start
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "warden_build_info", Help: "Always 1; the version label is warden's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.calls, m.inFlight, m.stages, m.commits, m.committed, m.authFailed, build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_recorder_queue_depth",
			Help: "Records and jobs waiting for the recording store's writer.",
		}, m.queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_approvals_pending",
			Help: "Approval requests waiting for a reviewer, in the store (shared by every instance on it); -1 when the store could not be read.",
		}, m.pendingApprovals),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Calls returns the pipeline's observer: one histogram sample per stage,
// and for the whole call a count by tool, backend, decision and outcome,
// labelled from the closed sets of labels.
func (m *Metrics) Calls(labels *warden.Labels) warden.Observer {
	return &calls{m: m, labels: labels}
}

type calls struct {
	m      *Metrics
	labels *warden.Labels
	// stages caches each (stage, tool) histogram: a label lookup hashes
	// the values, and a call passes up to eight stages.
	stages sync.Map // stageKey -> prometheus.Observer
}

type stageKey struct {
	stage warden.Stage
	tool  string
}

func (o *calls) stage(s warden.Stage, tool string) prometheus.Observer {
	k := stageKey{s, tool}
	if h, ok := o.stages.Load(k); ok {
		return h.(prometheus.Observer)
	}
	h := o.m.stages.WithLabelValues(string(s), tool)
	o.stages.Store(k, h)
	return h
}

// Observe implements warden.Observer.
func (o *calls) Observe(ctx context.Context, c *warden.Call, s warden.Stage) (context.Context, func(error)) {
	start := time.Now()
	if s == warden.StageCall {
		o.m.inFlight.Inc()
	}
	return ctx, func(error) {
		tool := o.labels.Tool(c)
		o.stage(s, tool).Observe(time.Since(start).Seconds())
		if s == warden.StageCall {
			o.m.inFlight.Dec()
			o.m.calls.WithLabelValues(tool, o.labels.Backend(c), o.labels.Decision(c), o.labels.Outcome(c)).Inc()
		}
	}
}

// AuthFailed counts an HTTP request refused for want of a valid
// identity. A reason outside the closed set counts as ReasonOther.
func (m *Metrics) AuthFailed(reason string) {
	switch reason {
	case ReasonMissingToken, ReasonInvalidToken, ReasonInsufficientScope, ReasonAccessDenied:
	default:
		reason = ReasonOther
	}
	m.authFailed.WithLabelValues(reason).Inc()
}

// Commit records one write transaction of the recording store: the
// recorder's OnCommit hook.
func (m *Metrics) Commit(records int, took time.Duration) {
	m.commits.Observe(took.Seconds())
	m.committed.Add(float64(records))
}

// WatchQueue sets the function the queue-depth gauge reads at scrape.
func (m *Metrics) WatchQueue(depth func() int) {
	m.mu.Lock()
	m.queue = depth
	m.mu.Unlock()
}

// WatchApprovals sets the function the pending-approvals gauge reads at
// scrape (bounded by a 2s timeout).
func (m *Metrics) WatchApprovals(pending func(context.Context) (int, error)) {
	m.mu.Lock()
	m.pending = pending
	m.mu.Unlock()
}

func (m *Metrics) queueDepth() float64 {
	m.mu.Lock()
	f := m.queue
	m.mu.Unlock()
	if f == nil {
		return 0
	}
	return float64(f())
}

func (m *Metrics) pendingApprovals() float64 {
	m.mu.Lock()
	f := m.pending
	m.mu.Unlock()
	if f == nil {
		return 0
	}
	ctx, cancel := m.scrapeCtx()
	defer cancel()
	n, err := f(ctx)
	if err != nil {
		return -1
	}
	return float64(n)
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry is the registry the metrics are in, for tests and for
// gathering.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var _ warden.Observer = (*calls)(nil)
