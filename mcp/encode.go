package mcp

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// warden builds the bytes of a tools/call response itself. mcp-go's path
// (CallToolResult.MarshalJSON builds a map and marshals it, and
// encoding/json re-validates every Marshaler's output) escapes the result
// text once and then scans it twice more, and scans structuredContent three
// times. Here the text is escaped once and structuredContent is checked
// once and copied. The bytes are mcp-go's own for every result warden
// builds (encode_test.go compares them over many results); anything of
// another shape goes through encoding/json, as before.

// appendToolResponse appends resp, followed by a newline, as
// json.Marshal would encode it, and reports whether it could: only a
// response holding a *mcp.CallToolResult whose content is text blocks, with
// no input requests, is built here; the caller marshals anything else.
func appendToolResponse(dst []byte, resp mcp.JSONRPCMessage) ([]byte, bool) {
	r, ok := resp.(mcp.JSONRPCResponse)
	if !ok {
		return dst, false
	}
	res, ok := r.Result.(*mcp.CallToolResult)
	if !ok || res == nil || len(res.InputRequests) > 0 || res.RequestState != "" {
		return dst, false
	}
	for _, c := range res.Content {
		if !plainText(c) {
			return dst, false
		}
	}
	structured, ok := structuredJSON(res)
	if !ok {
		return dst, false
	}
	id, err := json.Marshal(r.ID)
	if err != nil {
		return dst, false
	}
	jsonrpc, err := json.Marshal(r.JSONRPC)
	if err != nil {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, `{"jsonrpc":`...)
	dst = append(dst, jsonrpc...)
	dst = append(dst, `,"id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"result":{`...)
	// CallToolResult.MarshalJSON marshals a map: its keys come out sorted.
	if res.Meta != nil {
		meta, err := json.Marshal(res.Meta)
		if err != nil {
			return dst[:start], false
		}
		dst = append(dst, `"_meta":`...)
		dst = append(dst, meta...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"content":[`...)
	for i, c := range res.Content {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":`...)
		dst = appendString(dst, textOf(c).Type)
		dst = append(dst, `,"text":`...)
		dst = appendString(dst, textOf(c).Text)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if res.IsError {
		dst = append(dst, `,"isError":true`...)
	}
	if res.ResultType != "" {
		dst = append(dst, `,"resultType":`...)
		dst = appendString(dst, string(res.ResultType))
	}
	if structured != nil {
		dst = append(dst, `,"structuredContent":`...)
		dst = append(dst, structured...)
	}
	dst = append(dst, "}}\n"...)
	return dst, true
}

// plainText reports whether c is a text block with nothing but its type
// and text, which appendToolResponse writes itself.
func plainText(c mcp.Content) bool {
	var t mcp.TextContent
	switch v := c.(type) {
	case mcp.TextContent:
		t = v
	case *mcp.TextContent:
		if v == nil {
			return false
		}
		t = *v
	default:
		return false
	}
	return t.Annotations == nil && t.Meta == nil
}

func textOf(c mcp.Content) mcp.TextContent {
	if p, ok := c.(*mcp.TextContent); ok {
		return *p
	}
	return c.(mcp.TextContent)
}

// structuredJSON returns the bytes encoding/json would write for a
// result's structuredContent (nil when it has none), and whether it could
// tell them without encoding/json. Raw JSON (what warden sends) is used as
// it is when it is valid, holds no line break (it must stay on one line of
// stdio or one SSE data line) and nothing encoding/json would rewrite
// (<, >, &, U+2028, U+2029); compact JSON, as warden's tools write it, then
// comes out byte for byte as encoding/json writes it.
func structuredJSON(res *mcp.CallToolResult) ([]byte, bool) {
	var raw []byte
	switch {
	case len(res.RawStructuredContent) > 0:
		raw = res.RawStructuredContent
	case res.StructuredContent == nil:
		return nil, true
	default:
		v, ok := res.StructuredContent.(json.RawMessage)
		if !ok {
			return nil, false
		}
		raw = v
	}
	if !rawAsIs(raw) {
		return nil, false
	}
	return raw, true
}

// rawAsIs reports whether raw JSON can be written as it is: valid, with no
// line break and nothing encoding/json would escape.
func rawAsIs(raw []byte) bool {
	if len(raw) == 0 || bytes.IndexAny(raw, "\n\r<>&") >= 0 ||
		bytes.Contains(raw, []byte("\u2028")) || bytes.Contains(raw, []byte("\u2029")) {
		return false
	}
	return validJSON(raw)
}

// appendString appends s as a JSON string exactly as json.Marshal writes
// it (HTML escaping on: <, > and & as \u003c, \u003e and \u0026; control
// characters escaped; invalid UTF-8 as \ufffd; U+2028 and U+2029 escaped),
// by asking encoding/json itself: one escaping pass over the text, which
// is what mcp-go's path did several times.
func appendString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("warden: a string did not encode as JSON: " + err.Error()) // encoding/json encodes every string
	}
	return append(dst, b...)
}

// responseBuffers recycles the buffers responses are built in: a result is
// several kilobytes, built once per call.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuffer() *[]byte { return responseBuffers.Get().(*[]byte) }

// putBuffer returns b to the pool unless it grew past what calls usually
// need, so that one huge result does not stay pinned.
func putBuffer(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	responseBuffers.Put(b)
}

// maxDepth is encoding/json's limit on nesting: deeper JSON is not valid to
// it, so not to validJSON either.
const maxDepth = 10000

// validJSON reports whether b is one JSON value (with white space around
// it), exactly as json.Valid does (encode_test.go compares them), several
// times faster: structured content is checked once per call.
func validJSON(b []byte) bool {
	var stack []byte // the open containers, '{' or '['
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth { // an empty one counts too
				return false
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				var ok bool
				if i, ok = objectKey(b, i); !ok {
					return false
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = jsonString(b, i); !ok {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = jsonNumber(b, i); !ok {
				return false
			}
		case c == 't':
			if !bytes.HasPrefix(b[i:], []byte("true")) {
				return false
			}
			i += 4
		case c == 'f':
			if !bytes.HasPrefix(b[i:], []byte("false")) {
				return false
			}
			i += 5
		case c == 'n':
			if !bytes.HasPrefix(b[i:], []byte("null")) {
				return false
			}
			i += 4
		default:
			return false
		}
		// A value ended before i: close containers until the next value.
	next:
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
				if top == '{' {
					var ok bool
					if i, ok = objectKey(b, i); !ok {
						return false
					}
				}
				break next
			case top + 2:
				stack = stack[:len(stack)-1]
				i++
			default:
				return false
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// objectKey reads `"key" :` at i and returns where the value starts.
func objectKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := jsonString(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipSpace(b, i+1), true
}

// jsonString reads the string starting at b[i] == '"' and returns the index
// after its closing quote. Like encoding/json, it accepts any byte from
// 0x20 up other than an unescaped quote or backslash (UTF-8 is not
// checked).
func jsonString(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c != '\\':
			i++
			continue
		}
		if i+1 >= len(b) {
			return i, false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return i, false
			}
			for _, h := range b[i+2 : i+6] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return i, false
				}
			}
			i += 6
		default:
			return i, false
		}
	}
	return i, false
}

// jsonNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func jsonNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i, _ = digits(i)
	default:
		return i, false
	}
	var ok bool
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}
