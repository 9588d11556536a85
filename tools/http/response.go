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

// maxJSONDepth bounds the nesting of a JSON body returned as JSON: deeper
// documents can break the agent's JSON parser (and with it the session),
// so they are withheld (with masking rules) or returned as text.
const maxJSONDepth = 64

// read reads at most max_response_bytes of the body and builds the result:
// credential echoes replaced, JSON parsed and masked, text as a string,
// binary described. With json_paths masking rules, only a body that
// parses as JSON is returned; any other (XML, CSV, JSONP, text, cut or
// too deep JSON) is withheld, so the rules cannot be escaped by asking
// for another representation.
func (b *Backend) read(resp *http.Response, method string) (*CallResult, error) {
	res := &CallResult{Status: resp.StatusCode, Headers: map[string]string{}}
	b.responseHeaders(resp, res)
	limit := b.cfg.MaxResponseBytes
	// Read past the cap by the widest spelling of the longest
	// credential (\u-escaped inside percent-escapes), so an echo that
	// straddles the cap is seen whole and scrubbed.
	margin := int64(12*b.secrets.longest + 64)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+margin))
	if err != nil {
		return nil, err
	}
	res.Bytes = int64(len(raw))
	if res.Bytes > limit {
		res.Truncated, res.Bytes = true, limit
	}
	if method == "HEAD" || len(raw) == 0 {
		res.BodyKind = "empty"
		return res, nil
	}
	// clean: no credential is left under any decoding. A JSON document
	// that is not clean can still be returned: each of its strings is
	// scrubbed after parsing (JSON escapes are decoded then). Anything
	// else that is not clean is withheld.
	buf, clean := b.secrets.scrub(raw)
	const unclean = "it contains one of the API's credentials in an encoding warden cannot cut out"
	if res.Truncated {
		buf = b.trimSecretPrefix(buf[:min(int64(len(buf)), limit)])
	}
	masked := b.jsonMask.Len() > 0
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	// The transport decodes gzip itself (and drops the header); any
	// other coding leaves bytes warden cannot read, scrub or mask.
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	coded := enc != "" && enc != "identity"
	switch {
	case len(buf) == 0:
		res.BodyKind = "empty"
	case coded && masked:
		return withhold(res, fmt.Sprintf("it is encoded (%s), so masking rules cannot be applied to it", enc)), nil
	case coded:
		res.BodyKind, res.Body = "binary", fmt.Sprintf("body encoded as %s, %d bytes (not shown)", enc, res.Bytes)
	case isJSONType(mt) || (mt == "" || isTextType(mt)) && looksLikeJSON(buf):
		why := ""
		switch {
		case res.Truncated:
			why = fmt.Sprintf("it was cut at max_response_bytes (%d bytes); ask for less (filters, paging)", limit)
		case jsonDepth(buf) > maxJSONDepth:
			why = fmt.Sprintf("it nests deeper than %d levels", maxJSONDepth)
		default:
			if v, ok := parseJSON(buf); ok {
				if !clean {
					v = b.redactValue(v)
				}
				res.BodyKind = "json"
				res.Body, res.Masked = b.jsonMask.Apply(v)
				return res, nil
			}
			why = "it is not valid JSON"
		}
		switch {
		case masked:
			return withhold(res, "masking rules apply to it and "+why), nil
		case !clean:
			return withhold(res, unclean), nil
		}
		if !res.Truncated {
			res.Notes = append(res.Notes, "the body is returned as text: "+why)
		}
		res.BodyKind, res.Body = "text", text(buf, res.Truncated)
	case masked:
		kind := mt
		if kind == "" {
			kind = "unlabelled"
		}
		return withhold(res, fmt.Sprintf("masking rules apply to this API and it is not JSON (%s); warden asked for application/json", kind)), nil
	case isTextType(mt) || mt == "" && utf8.Valid(buf) && !bytes.ContainsRune(buf, 0):
		if !clean {
			return withhold(res, unclean), nil
		}
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

// withhold returns res with its body withheld, and the reason.
func withhold(res *CallResult, why string) *CallResult {
	res.BodyKind, res.Body = "withheld", nil
	res.Notes = append(res.Notes, "the body is withheld because "+why)
	return res
}

// jsonDepth returns the deepest nesting of arrays and objects in buf,
// reading at most one level past maxJSONDepth.
func jsonDepth(buf []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(buf); i++ {
		c := buf[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > deepest {
				if deepest = depth; deepest > maxJSONDepth {
					return deepest
				}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
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
		v := strings.Join(vals, ", ")
		if name == "Location" {
			loc, err := resp.Request.URL.Parse(vals[0])
			if err != nil {
				continue
			}
			p, ok := b.agentPath(loc)
			if !ok {
				res.Notes = append(res.Notes, "the Location header is withheld: it points outside the API's base URL, or to a path warden refuses")
				continue
			}
			if loc.RawQuery != "" {
				p += "?" + loc.RawQuery
			}
			v = p
		}
		res.Headers[name] = b.secrets.scrubString(v)
	}
}

// redactValue replaces credential values in every string and key of a
// parsed JSON document: the raw bytes were scrubbed already, but JSON
// escapes (\u0041) can spell a credential that no byte search finds.
func (b *Backend) redactValue(v any) any {
	if len(b.secrets.values) == 0 {
		return v
	}
	switch t := v.(type) {
	case string:
		return b.secrets.scrubString(t)
	case []any:
		for i, e := range t {
			t[i] = b.redactValue(e)
		}
	case map[string]any:
		for k, e := range t {
			if nk := b.secrets.scrubString(k); nk != k {
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
// spelling, so the cap never leaves part of one.
func (b *Backend) trimSecretPrefix(buf []byte) []byte {
	for _, s := range b.secrets.forms {
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
