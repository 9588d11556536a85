// Package tracing exports a span per pipeline stage to an OpenTelemetry
// collector over OTLP/HTTP.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is `observe.traces`.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP base URL, such as
	// http://otel-collector:4318; spans go to its /v1/traces. Headers the
	// collector needs (a token) come from OTEL_EXPORTER_OTLP_HEADERS, so
	// no credential sits in warden.yaml.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of calls traced, 0 to 1 (default 1).
	SampleRatio *float64 `yaml:"sample_ratio"`
	// Service is the service.name resource attribute (default warden).
	Service string `yaml:"service"`
}

// Validate checks the endpoint and the ratio.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		errs = append(errs, warden.FieldErrorf("endpoint", "not an OTLP/HTTP endpoint: use http(s)://host:4318 (credentials go in OTEL_EXPORTER_OTLP_HEADERS, not the URL)"))
	}
	if r := c.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, warden.FieldErrorf("sample_ratio", "%v is not a ratio between 0 and 1", *r))
	}
	return errors.Join(errs...)
}

// Tracer makes the spans and sends them.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// New returns a tracer that batches spans to the collector of a
// validated config. Nothing is sent until the first call.
func New(ctx context.Context, cfg Config, version string) (*Tracer, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, warden.FieldErrorf("endpoint", "not a URL")
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(joinPath(u.Path, "/v1/traces"))}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("the OTLP exporter: %w", err)
	}
	ratio := 1.0
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	return NewWith(cfg.Service, version, exp, sdktrace.TraceIDRatioBased(ratio)), nil
}

// NewWith returns a tracer that batches spans to exp (tests pass an
// in-memory exporter), sampling calls with sampler.
func NewWith(service, version string, exp sdktrace.SpanExporter, sampler sdktrace.Sampler) *Tracer {
	if service == "" {
		service = "warden"
	}
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(5*time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
	)
	return &Tracer{provider: tp, tracer: tp.Tracer("github.com/warden-mcp/warden")}
}

func joinPath(base, p string) string { return strings.TrimSuffix(base, "/") + p }

// Shutdown sends what is buffered and stops.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// Calls returns the pipeline's observer: a span per call ("warden.call",
// the root of the call's trace unless the transport's context carries
// one) with a child span per stage ("warden.plan", ...). Attributes are
// closed-set values from labels, warden's own call and session ids and
// the outcome's code: never an argument, a result, a statement or an
// error message. A failed stage's span has status Error with the error's
// code as its description.
func (t *Tracer) Calls(labels *warden.Labels) warden.Observer {
	return &calls{t: t.tracer, labels: labels}
}

type calls struct {
	t      trace.Tracer
	labels *warden.Labels
}

// Observe implements warden.Observer.
func (o *calls) Observe(ctx context.Context, c *warden.Call, s warden.Stage) (context.Context, func(error)) {
	kind := trace.SpanKindInternal
	if s == warden.StageCall {
		kind = trace.SpanKindServer
	}
	ctx, span := o.t.Start(ctx, "warden."+string(s), trace.WithSpanKind(kind))
	if !span.IsRecording() {
		return ctx, func(error) { span.End() }
	}
	return ctx, func(err error) {
		attrs := []attribute.KeyValue{attribute.String("warden.tool", o.labels.Tool(c))}
		if s == warden.StageCall {
			attrs = append(attrs,
				attribute.String("warden.call_id", c.ID),
				attribute.String("warden.backend", o.labels.Backend(c)),
				attribute.String("warden.decision", o.labels.Decision(c)),
				attribute.String("warden.outcome", o.labels.Outcome(c)))
			if c.SessionID != "" {
				attrs = append(attrs, attribute.String("warden.session_id", c.SessionID))
			}
		}
		if err != nil {
			code := string(warden.ErrorCode(err))
			attrs = append(attrs, attribute.String("warden.error_code", code))
			span.SetStatus(codes.Error, code)
		}
		span.SetAttributes(attrs...)
		span.End()
	}
}

var _ warden.Observer = (*calls)(nil)
