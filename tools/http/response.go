package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// CredentialMarker replaces a credential value wherever an upstream
// echoes it, in a header or the body.
const CredentialMarker = "[masked:credential]"

var credentialMarker = []byte(CredentialMarker)

// read reads at most max_response_bytes of the body and builds the result:
// credential echoes replaced, JSON parsed and masked, text as a string,
// binary described.
func (b *Backend) read(resp *http.Response, method string) (*CallResult, error) {
	res := &CallResult{Status: resp.StatusCode, Headers: map[string]string{}}
	b.responseHeaders(resp, res)
	limit := b.cfg.MaxResponseBytes
	// Read past the cap by the longest credential, so an echo that
	// straddles the cap is still replaced whole.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+int64(b.longest)+1))
	if err != nil {
		return nil, err
	}
	res.Bytes = int64(len(raw))
	if res.Bytes > limit {
		res.Truncated, res.Bytes = true, limit
	}
	buf := b.redact(raw)
	if res.Truncated {
		buf = b.trimSecretPrefix(buf[:min(int64(len(buf)), limit)])
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case len(buf) == 0 || method == "HEAD":
		res.BodyKind = "empty"
	case isJSONType(mt) || (mt == "" || isTextType(mt)) && looksLikeJSON(buf):
		if !res.Truncated {
			if v, ok := parseJSON(buf); ok {
				res.BodyKind = "json"
				res.Body, res.Masked = b.jsonMask.Apply(b.redactValue(v))
				break
			}
		}
		if b.jsonMask.Len() > 0 {
			// The json_paths rules cannot be applied to a document that
			// does not parse; returning it as text would bypass them.
			res.BodyKind = "withheld"
			why := "it is not valid JSON"
			if res.Truncated {
				why = fmt.Sprintf("it was cut at max_response_bytes (%d bytes)", limit)
			}
			res.Notes = append(res.Notes, "the JSON body is withheld because masking rules apply to it and "+why+"; ask for less (filters, paging)")
			break
		}
		res.BodyKind, res.Body = "text", text(buf, res.Truncated)
	case isTextType(mt) || mt == "" && utf8.Valid(buf) && !bytes.ContainsRune(buf, 0):
		res.BodyKind, res.Body = "text", text(buf, res.Truncated)
	default:
		if mt == "" {
			mt, _, _ = mime.ParseMediaType(http.DetectContentType(buf))
		}
		size := fmt.Sprintf("%d bytes", res.Bytes)
		if res.Truncated {
			size = fmt.Sprintf("more than %d bytes", limit)
		}
		res.BodyKind, res.Body = "binary", fmt.Sprintf("binary body, %s, %s (not shown)", size, mt)
	}
	return res, nil
}

// responseHeaders copies the allowlisted headers, never a credential
// header, with credential echoes replaced; Location only as a path under
// the API.
func (b *Backend) responseHeaders(resp *http.Response, res *CallResult) {
	for _, name := range ResponseHeaders {
		vals := resp.Header.Values(name)
		if len(vals) == 0 || b.creds.Get(name) != "" {
			continue
		}
		v := string(b.redact([]byte(strings.Join(vals, ", "))))
		if name == "Location" {
			loc, err := resp.Request.URL.Parse(vals[0])
			if err != nil {
				continue
			}
			p, ok := b.agentPath(loc)
			if !ok {
				res.Notes = append(res.Notes, "the Location header is withheld: it points outside the API's base URL")
				continue
			}
			if loc.RawQuery != "" {
				p += "?" + loc.RawQuery
			}
			v = string(b.redact([]byte(p)))
		}
		res.Headers[name] = v
	}
}

// redact replaces every credential value in buf; it returns buf itself
// when there is none.
func (b *Backend) redact(buf []byte) []byte {
	for _, s := range b.secrets {
		if bytes.Contains(buf, s) {
			buf = bytes.ReplaceAll(buf, s, credentialMarker)
		}
	}
	return buf
}

func (b *Backend) redactString(s string) string {
	for _, sec := range b.secrets {
		if strings.Contains(s, string(sec)) {
			s = strings.ReplaceAll(s, string(sec), CredentialMarker)
		}
	}
	return s
}

// redactValue replaces credential values in every string and key of a
// parsed JSON document: the raw bytes were scrubbed already, but JSON
// escapes (\u0041) can spell a credential that no byte search finds.
func (b *Backend) redactValue(v any) any {
	if len(b.secrets) == 0 {
		return v
	}
	switch t := v.(type) {
	case string:
		return b.redactString(t)
	case []any:
		for i, e := range t {
			t[i] = b.redactValue(e)
		}
	case map[string]any:
		for k, e := range t {
			if nk := b.redactString(k); nk != k {
				delete(t, k)
				t[nk] = b.redactValue(e)
				continue
			}
			t[k] = b.redactValue(e)
		}
	}
	return v
}

// trimSecretPrefix drops a tail of a cut body that begins a credential
// value, so the cap never leaves part of one.
func (b *Backend) trimSecretPrefix(buf []byte) []byte {
	for _, s := range b.secrets {
		for n := min(len(s)-1, len(buf)); n > 0; n-- {
			if bytes.HasSuffix(buf, s[:n]) {
				buf = buf[:len(buf)-n]
				break
			}
		}
	}
	return buf
}

// text returns a body as a string of valid UTF-8; a cut body loses the
// partial character at its end.
func text(buf []byte, truncated bool) string {
	if truncated {
		for i := 0; i < utf8.UTFMax && len(buf) > 0; i++ {
			r, size := utf8.DecodeLastRune(buf)
			if r != utf8.RuneError || size != 1 {
				break
			}
			buf = buf[:len(buf)-1]
		}
	}
	return strings.ToValidUTF8(string(buf), "\uFFFD")
}

func parseJSON(buf []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	// Only white space may follow the document.
	if len(bytes.TrimSpace(buf[dec.InputOffset():])) != 0 {
		return nil, false
	}
	return v, true
}

func looksLikeJSON(buf []byte) bool {
	t := bytes.TrimLeft(buf, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

func isJSONType(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json"
}

var textTypes = []string{
	"application/javascript", "application/x-www-form-urlencoded", "application/xml", "application/yaml",
	"application/x-yaml", "application/x-ndjson", "application/graphql", "application/csv",
}

func isTextType(mt string) bool {
	return strings.HasPrefix(mt, "text/") || isJSONType(mt) || strings.HasSuffix(mt, "+xml") || slices.Contains(textTypes, mt)
}
