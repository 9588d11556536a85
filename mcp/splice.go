package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
)

// Over streamable HTTP, mcp-go writes the response itself (json.Encoder, or
// an SSE event when the call was upgraded to a stream), so warden cannot
// hand it bytes. Instead the tool handler builds the two expensive values
// of the result (the text block's escaped string and the raw structured
// content) and returns a result holding placeholders; the edgeWriter of
// the same HTTP request, which every byte of the response passes through,
// replaces them in the one write that carries the response. Everything
// else in the response (id, resultType, _meta, isError, SSE framing) is
// still mcp-go's.
//
// A placeholder is a JSON string: spliceNonce (random per process, so no
// client can name one), a sequence number, and "s" for structured
// content. It must never reach a client, so the writer fails closed:
// any write holding the nonce is sent only when every placeholder in it
// is one this request registered and is replaced; otherwise nothing of
// that write is sent (the client sees a failed response, never a
// placeholder). Splicing is used only on the streamable HTTP transport,
// where a request's response is written to that request's own writer.

var spliceNonce = func() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("warden: no randomness for the response splice nonce: " + err.Error())
	}
	return []byte("wardenSplice" + hex.EncodeToString(b))
}()

var errSplice = errors.New("warden: a response holds a placeholder that is not this request's; nothing of it was sent")

// splicer holds the values a request's handler built, by sequence number,
// until the response carrying their placeholders is written.
type splicer struct {
	mu      sync.Mutex
	pending map[int]*splice
}

// spliceSeq numbers placeholders across the process, so that one request's
// placeholder is never another's.
var spliceSeq atomic.Int64

type splice struct {
	text       *[]byte // the text block's JSON string, quotes included
	structured []byte  // raw JSON, or nil when not sent
}

type splicerKey struct{}

func withSplicer(ctx context.Context, sp *splicer) context.Context {
	return context.WithValue(ctx, splicerKey{}, sp)
}

// spliceResult registers the values of res with the request's splicer
// and returns the placeholder result mcp-go will encode instead, or res
// itself when the request has no splicer (stdio builds its responses
// whole; SSE writes them to another request's stream) or res is not a
// shape warden builds.
func spliceResult(ctx context.Context, res *mcp.CallToolResult) *mcp.CallToolResult {
	sp, _ := ctx.Value(splicerKey{}).(*splicer)
	if sp == nil || transportFrom(ctx) != "http" || res == nil || len(res.Content) != 1 || !plainText(res.Content[0]) ||
		res.Meta != nil || res.ResultType != "" || len(res.InputRequests) > 0 || res.RequestState != "" {
		return res
	}
	structured, ok := structuredJSON(res)
	if !ok {
		return res
	}
	text := getBuffer()
	*text = appendString((*text)[:0], textOf(res.Content[0]).Text)
	n := int(spliceSeq.Add(1))
	sp.mu.Lock()
	if sp.pending == nil {
		sp.pending = map[int]*splice{}
	}
	sp.pending[n] = &splice{text: text, structured: structured}
	sp.mu.Unlock()

	token := string(spliceNonce) + strconv.Itoa(n)
	out := &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(token)}, IsError: res.IsError}
	if structured != nil {
		out.StructuredContent = json.RawMessage(`"` + token + `s"`)
	}
	return out
}

// rewrite appends p to dst with every placeholder replaced, or returns
// errSplice when p holds the nonce anywhere but in a placeholder this
// request registered.
func (sp *splicer) rewrite(dst, p []byte) ([]byte, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var used []int
	rest := p
	for {
		i := bytes.Index(rest, spliceNonce)
		if i < 0 {
			break
		}
		// "NONCE<digits>" or "NONCE<digits>s", quotes included.
		j := i + len(spliceNonce)
		k := j
		for k < len(rest) && k-j < 18 && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		n, err := strconv.Atoi(string(rest[j:k]))
		structured := k < len(rest) && rest[k] == 's'
		if structured {
			k++
		}
		s := sp.pending[n]
		if err != nil || i == 0 || rest[i-1] != '"' || k >= len(rest) || rest[k] != '"' || s == nil || (structured && s.structured == nil) {
			return dst, errSplice
		}
		dst = append(dst, rest[:i-1]...)
		if structured {
			dst = append(dst, s.structured...)
		} else {
			dst = append(dst, *s.text...)
		}
		rest = rest[k+1:]
		used = append(used, n)
	}
	for _, n := range used {
		if s := sp.pending[n]; s != nil {
			putBuffer(s.text)
			delete(sp.pending, n)
		}
	}
	return append(dst, rest...), nil
}

// release returns the buffers of values that were never written (the
// client went away before the response).
func (sp *splicer) release() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for n, s := range sp.pending {
		putBuffer(s.text)
		delete(sp.pending, n)
	}
}

// nonceTail returns how many bytes at the end of p could begin the nonce
// (0 if none): a placeholder split across two writes is put back together
// before it is judged.
func nonceTail(p []byte) int {
	from := max(0, len(p)-len(spliceNonce)+1)
	for i := from; i < len(p); i++ {
		if p[i] == spliceNonce[0] && bytes.HasPrefix(spliceNonce, p[i:]) {
			return len(p) - i
		}
	}
	return 0
}
