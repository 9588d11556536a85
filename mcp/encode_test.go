package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

// encodeCases are strings a result's text can hold: everything
// encoding/json escapes, and what it leaves alone.
var encodeCases = []string{
	"",
	"plain ascii",
	`quotes " and \ backslash`,
	"<script>alert('&')</script>",
	"line\nbreak\r\ttab\b\f",
	"\x00\x01\x1f\x7f control",
	"unicode: é ü 日本語 😀",
	"separators \u2028 and \u2029 in text",
	"invalid utf-8: \xff\xfe \xc3 end",
	"truncated rune at end \xe2\x80",
	"\u2027\u202a near the separators",
	strings.Repeat("large ", 50000) + "\u2028<&>",
}

// mcpGoBytes is what mcp-go's transports write for resp (json.Marshal, as
// its stdio writer and its streamable HTTP encoder do).
func mcpGoBytes(t *testing.T, resp mcp.JSONRPCMessage) []byte {
	t.Helper()
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestAppendToolResponseMatchesMCPGo(t *testing.T) {
	var results []*mcp.CallToolResult
	for _, text := range encodeCases {
		results = append(results, &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(text)}})
		// warden's own shapes: the result's JSON as text and as structured
		// content, and refusals (isError, both forms).
		js, _ := json.Marshal(map[string]any{"rows": [][]any{{1, text, nil, true, 1.5}}, "row_count": 1})
		results = append(results, &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(js))}, StructuredContent: json.RawMessage(js)})
		e := failure(&warden.Call{ID: "c-1"}, &warden.Error{Code: warden.Denied, Rule: "policy." + text, Message: text, Allowed: []string{text}})
		results = append(results, e)
	}
	// 2026-07-28 responses carry resultType and the server's identity.
	modern := toolResult(&warden.Call{ID: "c-2", Result: &warden.Result{JSON: []byte(`{"a":1}`)}}, nil)
	modern.ResultType = mcp.ResultTypeComplete
	modern.Meta = mcp.NewMetaFromMap(map[string]any{"io.modelcontextprotocol/serverInfo": map[string]any{"name": "warden<", "version": "1"}})
	results = append(results, modern)
	results = append(results, &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("a"), mcp.NewTextContent("b")}, IsError: true})
	results = append(results, &mcp.CallToolResult{Content: []mcp.Content{}})
	results = append(results, &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Type: "text", Text: "pointer"}}})

	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(3) == 0 {
				b[i] = "<>&\"\\\n\u2028é"[rng.IntN(11)]
			}
		}
		results = append(results, &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(b))}})
	}

	ids := []mcp.RequestId{mcp.NewRequestId(int64(7)), mcp.NewRequestId(float64(1e21)), mcp.NewRequestId("id-<&>\u2028"), mcp.NewRequestId(nil)}
	for i, res := range results {
		resp := mcp.NewJSONRPCResultResponse(ids[i%len(ids)], res)
		want := mcpGoBytes(t, resp)
		got, ok := appendToolResponse(nil, resp)
		if !ok {
			t.Fatalf("result %d: not built by warden: %.200s", i, want)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("result %d differs from mcp-go's bytes\n got: %.400q\nwant: %.400q", i, got, want)
		}
	}
}

// Structured content warden cannot send as it is (not valid, or holding
// what encoding/json rewrites) goes through encoding/json: the response is
// still mcp-go's, byte for byte, or is not built at all.
func TestAppendToolResponseStructuredFallsBack(t *testing.T) {
	for _, raw := range []string{
		`{"a":"<b>"}`, `{"a":"x & y"}`, "{\"a\":\"\u2028\"}", "{\"a\":\"\u2029\"}",
		"{\n\"a\": 1\n}", "{\"a\":1}\r", `{"a":`, `not json`, `{"a":1}{"b":2}`,
	} {
		res := &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(raw)}, StructuredContent: json.RawMessage(raw)}
		resp := mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), res)
		if got, ok := appendToolResponse(nil, resp); ok {
			t.Errorf("structured %q: built by warden as %q; want encoding/json's path", raw, got)
		}
	}
	// A compact body with spaces inside strings is sent as it is.
	raw := `{"a":"x y","b":[1,2.5,null,true]}`
	res := &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(raw)}, StructuredContent: json.RawMessage(raw)}
	resp := mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), res)
	got, ok := appendToolResponse(nil, resp)
	if want := mcpGoBytes(t, resp); !ok || !bytes.Equal(got, want) {
		t.Fatalf("got %q (%v), want %q", got, ok, want)
	}
}

// What warden does not build itself is left to encoding/json.
func TestAppendToolResponseLeavesOtherShapes(t *testing.T) {
	for name, resp := range map[string]mcp.JSONRPCMessage{
		"tools/list":     mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), &mcp.ListToolsResult{}),
		"error":          mcp.JSONRPCError{JSONRPC: "2.0", ID: mcp.NewRequestId(int64(1)), Error: mcp.NewJSONRPCErrorDetails(1, "x", nil)},
		"notification":   mcp.JSONRPCNotification{JSONRPC: "2.0"},
		"image":          mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), &mcp.CallToolResult{Content: []mcp.Content{mcp.NewImageContent("AAAA", "image/png")}}),
		"annotated text": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent{Type: "text", Text: "x", Annotated: mcp.Annotated{Annotations: &mcp.Annotations{Priority: ptr(1.0)}}}}}),
		"map structured": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent("x")}, StructuredContent: map[string]any{"a": 1}}),
		"input required": mcp.NewJSONRPCResultResponse(mcp.NewRequestId(int64(1)), toolResult(&warden.Call{ID: "c"}, &warden.Error{Code: warden.NeedsApproval, Pending: &warden.Pending{Ask: &warden.Ask{State: "s", Message: "ok?"}, ExpiresAt: time.Now()}})),
	} {
		if got, ok := appendToolResponse(nil, resp); ok {
			t.Errorf("%s: built by warden as %q", name, got)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %q, want %q", s, got, want)
		}
	}
	for _, s := range encodeCases {
		check(s)
	}
	for b := range 256 {
		check(string([]byte{byte(b)}))
		check("a" + string([]byte{byte(b)}) + "z")
	}
	for r := rune(0); r < 0x3000; r++ {
		if utf8.ValidRune(r) {
			check(string(r))
		}
	}
}

// BenchmarkAppendToolResponse is warden's encoding of the same response
// BenchmarkEncodeResult measures through mcp-go.
func BenchmarkAppendToolResponse(b *testing.B) {
	encode := func(resp mcp.JSONRPCMessage) error {
		buf := getBuffer()
		defer putBuffer(buf)
		out, ok := appendToolResponse((*buf)[:0], resp)
		*buf = out
		if !ok {
			return errors.New("not built by appendToolResponse")
		}
		return nil
	}
	b.Run("text+structured", func(b *testing.B) { benchEncodeResult(b, true, encode) })
	b.Run("text", func(b *testing.B) { benchEncodeResult(b, false, encode) })
}

var validCases = []string{
	``, ` `, `0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.25e-10`, `+1`, `1 2`,
	`true`, `false`, `null`, `tru`, `nul`, `nulls`, `True`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\ude00"`, `"\u12"`, `"\x"`, "\"\x01\"", "\"\x7f\xff\xfe\"", `"abc`, `"\`,
	`{}`, `[]`, ` { } `, `{"a":1}`, `{"a" : [1, {"b":null}] }`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`,
	`[1 2]`, `{"a":1 "b":2}`, `[}`, `{]`, `[[[]]]`, `[[[]]`, `]`, `}`, `{"a":[1,2,{"c":"d"}],"e":{"f":[]}}`,
	"\t[\r\n1\n]\n", `[1]x`, `{"a":1}{"b":2}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	check := func(b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%.200q) = %v, json.Valid says %v", b, got, want)
		}
	}
	for _, c := range validCases {
		check([]byte(c))
	}
	body := benchResult()
	check(body)
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("{}[],:\"\\ \t\n-+.0123456789eEtrufalsn/u\x01\xff")
	for range 20000 {
		b := bytes.Clone(body)
		if rng.IntN(2) == 0 {
			b = b[:rng.IntN(len(b)+1)]
		}
		for range rng.IntN(4) {
			if len(b) > 0 {
				b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		check(b)
		small := make([]byte, rng.IntN(12))
		for i := range small {
			small[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(small)
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
