package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

// spliceServer serves handle behind warden's edge, the way every HTTP
// response leaves warden.
func spliceServer(t *testing.T, handle func(ctx context.Context, w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	s := benchServer(t, benchResult())
	ts := httptest.NewServer(s.edge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(withTransport(r.Context(), "http"), w)
	})))
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// The response a client receives is mcp-go's encoding of the real result,
// byte for byte, whether mcp-go writes it as a JSON body or as an SSE event.
func TestSpliceSendsTheRealResult(t *testing.T) {
	body := benchResult()
	results := map[string]*mcp.CallToolResult{
		"text+structured": toolResult(&warden.Call{ID: "c-1", Result: &warden.Result{JSON: body}}, nil),
		"text":            {Content: []mcp.Content{mcp.NewTextContent(string(body))}},
		"refusal":         failure(&warden.Call{ID: "c-2"}, &warden.Error{Code: warden.Denied, Rule: "r", Message: "no <b>&</b> \u2028"}),
	}
	for _, c := range encodeCases {
		results["text "+c[:min(len(c), 20)]] = &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(c)}}
	}
	for name, res := range results {
		want := mcpGoBytes(t, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(3)), res))
		for _, sse := range []bool{false, true} {
			ts := spliceServer(t, func(ctx context.Context, w http.ResponseWriter) {
				out := spliceResult(ctx, res)
				if out == res {
					t.Errorf("%s: not spliced", name)
				}
				msg := mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(3)), out)
				if sse { // mcp-go's writeSSEEvent
					b, _ := json.Marshal(msg)
					fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
					return
				}
				_ = json.NewEncoder(w).Encode(msg) // mcp-go's JSON response
			})
			got := get(t, ts.URL)
			if sse {
				want := append(append([]byte("event: message\ndata: "), bytes.TrimSuffix(want, []byte("\n"))...), "\n\n"...)
				if !bytes.Equal(got, want) {
					t.Errorf("%s over SSE: got %.300q, want %.300q", name, got, want)
				}
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: got %.300q, want %.300q", name, got, want)
			}
		}
	}
}

// A placeholder reaches no client: a write holding the nonce anywhere but
// in a placeholder this request registered is not sent at all.
func TestSpliceFailsClosed(t *testing.T) {
	res := toolResult(&warden.Call{ID: "c-1", Result: &warden.Result{JSON: []byte(`{"secret":"other request"}`)}}, nil)
	var stolen string // a placeholder another request registered
	other := spliceServer(t, func(ctx context.Context, w http.ResponseWriter) {
		stolen = spliceResult(ctx, res).Content[0].(mcp.TextContent).Text
		_, _ = io.WriteString(w, "{}")
	})
	get(t, other.URL)
	if !strings.HasPrefix(stolen, string(spliceNonce)) {
		t.Fatalf("no placeholder registered: %q", stolen)
	}
	nonce := string(spliceNonce)
	textOnly := &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("x")}}
	for name, write := range map[string]func(ctx context.Context, w http.ResponseWriter){
		"unregistered": func(ctx context.Context, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"result":{"content":[{"type":"text","text":"%s7"}]}}`, nonce)
		},
		"another request's": func(ctx context.Context, w http.ResponseWriter) {
			spliceResult(ctx, res) // this request's own is registered too
			fmt.Fprintf(w, `{"result":{"content":[{"type":"text","text":"%s"}]}}`, stolen)
		},
		"structured never registered": func(ctx context.Context, w http.ResponseWriter) {
			tok := spliceResult(ctx, textOnly).Content[0].(mcp.TextContent).Text
			fmt.Fprintf(w, `{"text":"%s","structuredContent":"%ss"}`, tok, tok)
		},
		"unquoted": func(ctx context.Context, w http.ResponseWriter) {
			tok := spliceResult(ctx, res).Content[0].(mcp.TextContent).Text
			fmt.Fprintf(w, `{"text":%s}`, tok)
		},
		"bare nonce": func(ctx context.Context, w http.ResponseWriter) {
			spliceResult(ctx, res)
			fmt.Fprintf(w, `{"text":"%s"}`, nonce)
		},
		"used twice, in two writes": func(ctx context.Context, w http.ResponseWriter) {
			tok := spliceResult(ctx, textOnly).Content[0].(mcp.TextContent).Text
			fmt.Fprintf(w, `{"text":"%s"}`, tok)
			fmt.Fprintf(w, `{"text":"%s"}`, tok)
		},
		"split across writes": func(ctx context.Context, w http.ResponseWriter) {
			tok := spliceResult(ctx, textOnly).Content[0].(mcp.TextContent).Text
			_, _ = io.WriteString(w, `{"text":"`+tok[:len(tok)-4])
			_, _ = io.WriteString(w, tok[len(tok)-4:]+`"}`)
		},
	} {
		ts := spliceServer(t, write)
		got := string(get(t, ts.URL))
		if strings.Contains(got, nonce) || strings.Contains(got, nonce[len(nonce)-8:]) || strings.Contains(got, "other request") {
			t.Errorf("%s: the client received %q", name, got)
		}
	}
}

// Only the streamable HTTP transport splices: elsewhere the result is
// returned whole.
func TestSpliceOnlyOverStreamableHTTP(t *testing.T) {
	res := toolResult(&warden.Call{ID: "c-1", Result: &warden.Result{JSON: []byte(`{"a":1}`)}}, nil)
	sp := &splicer{}
	for _, transport := range []string{"stdio", "sse", ""} {
		ctx := withSplicer(withTransport(context.Background(), transport), sp)
		if out := spliceResult(ctx, res); out != res {
			t.Errorf("%q: result replaced by %+v", transport, out)
		}
	}
	if out := spliceResult(withTransport(context.Background(), "http"), res); out != res {
		t.Errorf("no splicer: result replaced by %+v", out)
	}
}

// Through mcp-go's streamable HTTP server, as a client calls warden.
func TestToolsCallOverHTTPIsWhole(t *testing.T) {
	off := false
	for _, results := range []*ResultsConfig{nil, {StructuredContent: &off}} {
		s := benchServer(t, benchResult())
		s.opts.Results = results
		s.opts.Identity.AllowUnauthenticatedLoopback = true
		h, shutdown, err := s.HTTPHandler("http")
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(h)
		session := ""
		post := func(body string) []byte {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mcp", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if session != "" {
				req.Header.Set("Mcp-Session-Id", session)
				req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
				session = id
			}
			b, _ := io.ReadAll(resp.Body)
			return b
		}
		post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		got := post(fmt.Sprintf(strings.TrimSuffix(benchCall, "\n"), 9))
		res := toolResult(&warden.Call{Result: &warden.Result{JSON: benchResult()}}, nil)
		if results != nil {
			res.StructuredContent = nil
		}
		want := mcpGoBytes(t, mcp.NewJSONRPCResultResponse(mcp.NewRequestId(float64(9)), res))
		if !bytes.Equal(got, want) {
			t.Errorf("structured %v: got %.300q, want %.300q", results == nil, got, want)
		}
		_ = shutdown(context.Background())
		ts.Close()
	}
}
