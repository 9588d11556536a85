package mcp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestToolResultTranslatesEveryCode(t *testing.T) {
	call := &warden.Call{ID: "c-1"}
	secret := errors.New("dial postgres://warden:hunter2@db:5432/shop: connection refused\ngoroutine 1 [running]")
	tests := []struct {
		name     string
		err      error
		wantText []string
		notText  []string
	}{
		{"DeniedNamesRuleAndAlternatives",
			&warden.Error{Code: warden.Denied, Message: "no grant allows select public.payroll", Rule: "default-deny", Allowed: []string{"shop: select on public.orders"}},
			[]string{"Denied: no grant allows select public.payroll", "Rule: default-deny", "- shop: select on public.orders", "Call id: c-1"}, nil},
		{"InternalShowsOnlyTheCallID",
			&warden.Error{Code: warden.Internal, Message: "internal error", Err: secret},
			[]string{"internal error", "c-1"}, []string{"hunter2", "postgres://", "goroutine"}},
		{"UncodedErrorIsInternal", secret, []string{"internal error", "c-1"}, []string{"hunter2", "postgres://", "goroutine"}},
		{"UnavailableKeepsItsMessageNotItsCause",
			warden.Wrap(warden.Unavailable, secret, `database "shop" is unavailable; try again later`),
			[]string{`Unavailable: database "shop" is unavailable`}, []string{"hunter2", "postgres://"}},
		{"InvalidIsAToolError", warden.Errorf(warden.Invalid, "unknown database %q", "x"), []string{`Invalid request: unknown database "x"`}, nil},
		{"Unauthenticated", &warden.Error{Code: warden.Unauthenticated, Message: "no authenticated caller"}, []string{"Not authenticated"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := toolResult(call, tt.err)
			if !r.IsError {
				t.Fatalf("toolResult(%v).IsError = false; want true", tt.err)
			}
			got := text(r)
			body, _ := json.Marshal(r.StructuredContent)
			for _, w := range tt.wantText {
				if !strings.Contains(got, w) {
					t.Errorf("toolResult(%v) text = %q; want it to contain %q", tt.err, got, w)
				}
			}
			for _, n := range tt.notText {
				if strings.Contains(got, n) || strings.Contains(string(body), n) {
					t.Errorf("toolResult(%v) leaks %q: %q / %s", tt.err, n, got, body)
				}
			}
			var sc errorBody
			if err := json.Unmarshal(body, &sc); err != nil || sc.CallID != "c-1" || sc.Error.Code == "" {
				t.Errorf("structured content = %s; want error code and call_id", body)
			}
		})
	}
}

func TestToolResultReturnsRecordedBytes(t *testing.T) {
	raw := json.RawMessage(`{"rows":[[1]],"call_id":"c-2"}`)
	r := toolResult(&warden.Call{ID: "c-2", Result: &warden.Result{Structured: map[string]any{"ignored": true}, JSON: raw}}, nil)
	if r.IsError || text(r) != string(raw) {
		t.Errorf("toolResult(ok) = %v %q; want the recorded bytes %s", r.IsError, text(r), raw)
	}
}
