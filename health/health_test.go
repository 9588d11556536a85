package health_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/warden-mcp/warden/health"
)

func get(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestProbes(t *testing.T) {
	ok := func(context.Context) error { return nil }
	leaky := func(context.Context) error {
		return errors.New("dial tcp 10.0.0.7:5432: postgres://warden:s3cret@db/prod refused")
	}
	// hangs until its deadline: the probe must not wait longer.
	hangs := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name   string
		checks []health.Check
		code   int
		body   string
	}{
		{"ReadyWhenEveryCheckPasses", []health.Check{{"store", ok}, {"backend a", ok}}, 200, "store ok\nbackend a ok\n"},
		{"NotReadyNamesTheFailedCheckOnly", []health.Check{{"store", ok}, {"backend a", leaky}}, 503, "store ok\nbackend a failed\n"},
		{"ACheckPastItsDeadlineFails", []health.Check{{"store", hangs}}, 503, "store failed\n"},
		{"NoChecksIsReady", nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &health.Probes{Checks: tc.checks, Timeout: 1}
			if code, body := get(t, p.Ready()); code != tc.code || body != tc.body {
				t.Errorf("/readyz = %d %q; want %d %q", code, body, tc.code, tc.body)
			}
			// Liveness never depends on the checks.
			if code, body := get(t, p.Live()); code != 200 || body != "ok\n" {
				t.Errorf("/healthz = %d %q; want 200 ok", code, body)
			}
		})
	}
}
