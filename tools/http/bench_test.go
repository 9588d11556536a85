package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	whttp "github.com/warden-mcp/warden/tools/http"
)

const benchBody = `{"id":"inv-42","status":"open","amount":1250,"currency":"EUR","customer":{"id":"c-17","name":"ACME"},"lines":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}`

// BenchmarkHTTPCall compares a small JSON GET through the whole pipeline
// (strict decoding, path checks, policy, durable intent record, the
// request with injected credentials, credential scrubbing, JSON parsing,
// one encoding, durable outcome record in SQLite) with the same request
// made directly with net/http and its body parsed, in the same process
// against the same httptest server. docs/BENCHMARKS.md records the
// results.
func BenchmarkHTTPCall(b *testing.B) {
	up := newUpstream(b, jsonHandler(benchBody))
	var direct, pipeline time.Duration

	b.Run("net-http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		url := up.URL + "/api/v1/invoices/42?status=open"
		durations := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+bearerToken)
			req.Header.Set("X-Api-Key", apiKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			var v any
			if err != nil || json.Unmarshal(body, &v) != nil || resp.StatusCode != 200 {
				b.Fatalf("direct GET failed: %v %d", err, resp.StatusCode)
			}
			durations = append(durations, time.Since(start))
		}
		direct = reportP50(b, durations)
	})

	// The tool alone (plan and execute, no policy, no recording), to
	// show what the pipeline's other stages add.
	b.Run("tool", func(b *testing.B) {
		tool := newTool(newBackend(b, up.URL+"/api", nil), nil)
		args := `{"api":"billing","method":"GET","path":"/v1/invoices/42","query":{"status":"open"}}`
		mustCall(b, tool, args)
		durations := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			mustCall(b, tool, args)
			durations = append(durations, time.Since(start))
		}
		reportP50(b, durations)
	})

	b.Run("pipeline", func(b *testing.B) {
		backend := newBackend(b, up.URL+"/api", nil)
		pol := billingPolicy(b)
		p, _ := newPipeline(b, newTool(backend, pol), pol)
		ctx := warden.WithCaller(context.Background(), analyst)
		args := json.RawMessage(`{"api":"billing","method":"GET","path":"/v1/invoices/42","query":{"status":"open"}}`)
		run := func() {
			c, err := p.Run(ctx, "http_call", args)
			if err != nil {
				b.Fatal(err)
			}
			if len(c.Result.JSON) < len(benchBody) {
				b.Fatalf("result = %s", c.Result.JSON)
			}
		}
		run() // connect once
		durations := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			run()
			durations = append(durations, time.Since(start))
		}
		pipeline = reportP50(b, durations)
	})

	if direct > 0 && pipeline > 0 {
		b.Logf("p50: net/http %s, pipeline %s, ratio %.2f×", direct, pipeline, float64(pipeline)/float64(direct))
	}
}

func reportP50(b *testing.B, d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p50 := d[len(d)/2]
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	return p50
}

// BenchmarkLargeResponseScrubbing measures what the credential check
// costs on a 1 MiB JSON response full of escapes (\", %XX, &amp; — each
// one a decoding warden tries): the same call to an API without
// credentials, and to one with two (every spelling replaced, then the
// decoding views searched). docs/BENCHMARKS.md records the results.
func BenchmarkLargeResponseScrubbing(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"items":[`)
	for i := 0; body.Len() < 1<<20-200; i++ {
		fmt.Fprintf(&body, `{"id":%d,"title":"a \"quoted\" 100%% & more","url":"/v1/items/%d?q=a%%20b&amp;x=1"},`, i, i)
	}
	body.WriteString(`{}]}`)
	up := newUpstream(b, jsonHandler(body.String()))
	for _, tt := range []struct {
		name string
		edit func(*whttp.Config)
	}{
		{"no-credentials", func(c *whttp.Config) { c.Headers = nil; c.MaxResponseBytes = 2 << 20 }},
		{"two-credentials", func(c *whttp.Config) { c.MaxResponseBytes = 2 << 20 }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			tool := newTool(newBackend(b, up.URL, tt.edit), nil)
			b.ReportAllocs()
			b.SetBytes(int64(body.Len()))
			for b.Loop() {
				if res := mustCall(b, tool, `{"api":"billing","method":"GET","path":"/v1/items"}`); res.BodyKind != "json" {
					b.Fatalf("body kind %s", res.BodyKind)
				}
			}
		})
	}
}
