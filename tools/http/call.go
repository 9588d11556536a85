package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

// Methods are the request methods http_call sends; policy.HTTPMethods
// lists the same.
var Methods = []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}

// maxRequestBody caps the body an agent may send.
const maxRequestBody = 1 << 20

// maxStatementBody caps how much of a request body the statement (shown
// to approvers and recorded) quotes; the arguments are recorded whole.
const maxStatementBody = 4 << 10

// maxRedirects bounds followed redirects (follow_redirects: same_origin).
const maxRedirects = 5

// Call is the http_call tool.
type Call struct {
	Backends Backends
	// Policy judges each redirect a same_origin backend would follow, as
	// if the agent had asked for it: a redirect must not reach a path the
	// caller holds no grant for. Without it, redirects are never followed.
	Policy warden.Authorizer
	// Holds names the approval rule that would hold an action, or ""; a
	// redirect that a rule would hold is not followed (the agent can make
	// that call itself, and have it approved). Nil when no approval rules
	// are configured.
	Holds func(ctx context.Context, a *warden.Action) string
}

type callArgs struct {
	API        string                     `json:"api"`
	Method     string                     `json:"method"`
	Path       string                     `json:"path"`
	Query      map[string]json.RawMessage `json:"query"`
	Headers    map[string]string          `json:"headers"`
	Body       json.RawMessage            `json:"body"`
	Purpose    string                     `json:"purpose"`
	ApprovalID string                     `json:"approval_id"`
}

type callPlan struct {
	backend *Backend
	method  string
	// path is canonical and relative to the base URL; it is the object
	// policy judged.
	path     string
	rawQuery string
	header   http.Header
	body     []byte
}

// Spec implements warden.Tool.
func (c *Call) Spec() warden.ToolSpec {
	return warden.ToolSpec{
		Name:  "http_call",
		Title: "Call an HTTP API",
		Description: "Send one request to a configured HTTP API through warden. Warden adds the API's credentials itself " +
			"(you never see or send them), checks the method and path against your grants, and returns the status, a " +
			"filtered set of headers and the body (JSON parsed, masked, capped in size). The path is relative to the " +
			"API's base URL and must mean one thing to any server: no absolute URLs, '..', '//', backslashes, '@', ';', " +
			"encoded '/', '?', '#' or '%', and beyond ASCII only letters and digits; put other values in query. A " +
			"_method parameter is judged as the method it names. Redirects are returned, not followed, unless the API " +
			"is configured to follow them within itself (and your grants and approval rules allow the new request).",
		BackendKind: "http",
		BackendArg:  "api",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"api":    map[string]any{"type": "string", "description": "The configured API to call."},
				"method": map[string]any{"type": "string", "enum": Methods, "description": "The request method."},
				"path":   map[string]any{"type": "string", "description": "The path under the API's base URL, starting with /, like /v1/invoices/42. Characters such as { } | \" must be percent-encoded."},
				"query": map[string]any{"type": "object", "description": "Query parameters; a value may be a string, number, boolean or a list of them (repeated parameter).",
					"additionalProperties": map[string]any{"type": []string{"string", "number", "boolean", "array"},
						"items": map[string]any{"type": []string{"string", "number", "boolean"}}}},
				"headers": map[string]any{"type": "object", "description": "Request headers; only " + strings.Join(AgentHeaders, ", ") + ".",
					"additionalProperties": map[string]any{"type": "string"}},
				"body":        map[string]any{"description": "The request body: a JSON value is sent as application/json, a string as text/plain unless Content-Type says otherwise."},
				"purpose":     map[string]any{"type": "string", "description": "Why you are making this request; recorded and shown to approvers."},
				"approval_id": map[string]any{"type": "string", "description": "The approval id of a call that was held for approval."},
			},
			"required":             []string{"api", "method", "path"},
			"additionalProperties": false,
		},
	}
}

// Plan implements warden.Tool: it decodes the arguments and checks the
// method, path, query, headers and body without contacting the API.
func (c *Call) Plan(_ context.Context, raw json.RawMessage) (*warden.Action, error) {
	var args callArgs
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	b, err := c.Backends.lookup(args.API)
	if err != nil {
		return nil, err
	}
	method := strings.ToUpper(args.Method)
	switch {
	case args.Method == "":
		return nil, warden.Errorf(warden.Invalid, "missing argument \"method\" (one of %s)", strings.Join(Methods, ", "))
	case !slices.Contains(Methods, method):
		return nil, &warden.Error{Code: warden.Denied, Rule: "http.method",
			Message: fmt.Sprintf("the method %q is refused: warden sends only %s", args.Method, strings.Join(Methods, ", "))}
	}
	path, err := canonicalPath(args.Path)
	if err != nil {
		return nil, err
	}
	rawQuery, err := encodeQuery(args.Query)
	if err != nil {
		return nil, err
	}
	header, err := agentHeaders(args.Headers, b.creds)
	if err != nil {
		return nil, err
	}
	body, contentType, err := requestBody(args.Body, method)
	if err != nil {
		return nil, err
	}
	if body != nil && header.Get("Content-Type") == "" {
		if header == nil {
			header = http.Header{}
		}
		header.Set("Content-Type", contentType)
	}
	ops, note, err := requestOps(method, path, rawQuery, body, header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	target := path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	return &warden.Action{
		Tool:       "http_call",
		Backend:    b.Name,
		Kind:       method,
		Ops:        ops,
		Statement:  statement(method, target, body) + note,
		Purpose:    args.Purpose,
		ApprovalID: args.ApprovalID,
		Plan:       &callPlan{backend: b, method: method, path: path, rawQuery: rawQuery, header: header, body: body},
	}, nil
}

// requestOps are the operations a request performs, as policy and
// approval rules judge them: its method on its path, and every method an
// override parameter asks the server to treat it as (_method=DELETE in a
// POST is judged as a DELETE too). note tells approvers about overrides.
func requestOps(method, path, rawQuery string, body []byte, contentType string) ([]warden.Op, string, error) {
	named, err := methodOverrides(method, rawQuery, body, contentType)
	if err != nil {
		return nil, "", err
	}
	ops := []warden.Op{{Verb: method, Object: path}}
	for _, m := range named {
		ops = append(ops, warden.Op{Verb: m, Object: path})
	}
	note := ""
	if len(named) > 0 {
		note = "\n\n(asks the server to treat it as " + strings.Join(named, ", ") + " too, by a method-override parameter)"
	}
	return ops, note, nil
}

// statement is the request as recorded and shown to approvers: the
// request line, and the body when there is one.
func statement(method, target string, body []byte) string {
	s := method + " " + target
	switch {
	case body == nil:
	case len(body) > maxStatementBody:
		s += fmt.Sprintf("\n\n%s… (%d bytes)", strings.ToValidUTF8(string(body[:maxStatementBody]), ""), len(body))
	default:
		s += "\n\n" + string(body)
	}
	return s
}

// encodeQuery turns the query argument into a query string, keys sorted.
// Numbers keep the agent's digits.
func encodeQuery(q map[string]json.RawMessage) (string, error) {
	if len(q) == 0 {
		return "", nil
	}
	vals := url.Values{}
	for k, raw := range q {
		if k == "" {
			return "", warden.Errorf(warden.Invalid, "query has an empty parameter name")
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var one any
		if err := dec.Decode(&one); err != nil {
			return "", warden.Errorf(warden.Invalid, "query parameter %q is not a JSON value", k)
		}
		items, isList := one.([]any)
		if !isList {
			items = []any{one}
		}
		for _, it := range items {
			switch t := it.(type) {
			case string:
				vals.Add(k, t)
			case json.Number:
				vals.Add(k, t.String())
			case bool:
				vals.Add(k, fmt.Sprint(t))
			default:
				return "", warden.Errorf(warden.Invalid, "query parameter %q must be a string, number or boolean, or a list of them", k)
			}
		}
	}
	return vals.Encode(), nil
}

// requestBody encodes the body argument: a JSON string is sent as its
// text, any other JSON value as compact JSON.
func requestBody(raw json.RawMessage, method string) ([]byte, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, "", nil
	}
	if method == "GET" || method == "HEAD" {
		return nil, "", warden.Errorf(warden.Invalid, "a %s request carries no body; pass parameters in query", method)
	}
	var body []byte
	contentType := "application/json"
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", warden.Errorf(warden.Invalid, "body is not valid JSON")
		}
		body, contentType = []byte(s), "text/plain; charset=utf-8"
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, "", warden.Errorf(warden.Invalid, "body is not valid JSON")
		}
		body = buf.Bytes()
	}
	if len(body) > maxRequestBody {
		return nil, "", warden.Errorf(warden.Invalid, "the body is %d bytes; the limit is %d", len(body), maxRequestBody)
	}
	return body, contentType, nil
}

// CallResult is what http_call returns.
type CallResult struct {
	Status int `json:"status"`
	// Headers are the response headers on warden's allowlist, values of
	// repeated headers joined with ", ".
	Headers map[string]string `json:"headers"`
	// BodyKind says how to read Body: "json" (the parsed document),
	// "text" (a string), "binary" (a description), "empty", or "withheld"
	// (a body warden could not mask, see Notes).
	BodyKind string `json:"body_kind"`
	Body     any    `json:"body"`
	// Bytes is the size of the body as received; with Truncated, the
	// body was cut at max_response_bytes and was larger.
	Bytes     int64 `json:"bytes"`
	Truncated bool  `json:"truncated"`
	// Masked names each json_paths rule that masked something.
	Masked []string `json:"masked,omitempty"`
	// Redirects lists the redirects followed, as requests under the API.
	Redirects []string `json:"redirects,omitempty"`
	// Notes explain anything warden withheld or did not follow.
	Notes  []string `json:"notes,omitempty"`
	CallID string   `json:"call_id"`
}

// Execute implements warden.Tool: one request with the backend's
// credentials, bounded by the backend's timeout and by ctx, so a hanging
// API is abandoned when the call is cancelled.
func (c *Call) Execute(ctx context.Context, a *warden.Action) (*warden.Result, error) {
	p, ok := a.Plan.(*callPlan)
	if !ok {
		return nil, warden.Errorf(warden.Internal, "http_call: action carries no plan")
	}
	res, err := p.backend.do(ctx, p, c.Policy, c.Holds)
	if err != nil {
		return nil, err
	}
	res.CallID = a.CallID
	return &warden.Result{Structured: res, Count: 1, Truncated: res.Truncated}, nil
}

// do sends the planned request and reads the response.
func (b *Backend) do(ctx context.Context, p *callPlan, pol warden.Authorizer, holds func(context.Context, *warden.Action) string) (*CallResult, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Duration(b.cfg.Timeout))
	defer cancel()
	u := b.base
	u.RawPath = b.basePath + p.path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = p.rawQuery
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(cctx, p.method, u.String(), body)
	if err != nil || req.URL.EscapedPath() != u.RawPath || req.URL.Host != b.base.Host {
		// The URL did not come out as planned: never send something
		// other than what policy judged.
		return nil, warden.Errorf(warden.Internal, "http_call: the request URL does not match the plan")
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "warden")
	var notes []string
	if b.jsonMask.Len() > 0 {
		// Masking rules read JSON: ask for nothing else (read withholds
		// whatever else comes back).
		if acc := req.Header.Get("Accept"); !acceptsOnlyJSON(acc) {
			if acc != "" {
				notes = append(notes, fmt.Sprintf("Accept was sent as application/json, not %q: masking rules apply to this API and read JSON only", acc))
			}
			req.Header.Set("Accept", "application/json")
		}
	}
	for k, v := range b.creds {
		req.Header[k] = v
	}
	st := &redirects{}
	client := &http.Client{Transport: b.client, CheckRedirect: b.checkRedirect(pol, holds, p, st)}
	resp, err := client.Do(req)
	if err != nil {
		return nil, b.failure(ctx, err)
	}
	defer resp.Body.Close()
	res, err := b.read(resp, resp.Request.Method)
	if err != nil {
		return nil, b.failure(ctx, err)
	}
	for i, r := range st.followed {
		st.followed[i] = b.secrets.scrubString(r)
	}
	res.Redirects = st.followed
	for _, n := range append(notes, st.notes...) {
		res.Notes = append(res.Notes, b.secrets.scrubString(n))
	}
	return res, nil
}

// acceptsOnlyJSON reports whether every media range of an Accept value is
// a JSON type (application/json, application/problem+json, ...).
func acceptsOnlyJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return false
	}
	for _, r := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil || !isJSONType(mt) {
			return false
		}
	}
	return true
}

// redirects is what checkRedirect saw during one call.
type redirects struct {
	followed []string
	notes    []string
}

// checkRedirect follows a redirect only with follow_redirects: same_origin,
// only under the base URL, and only when the whole decision made for the
// agent's request allows the new one: policy grants its method and path
// (and any method an override in its query or body names), and no
// approval rule would hold it. Otherwise the 3xx is returned as it is.
func (b *Backend) checkRedirect(pol warden.Authorizer, holds func(context.Context, *warden.Action) string, p *callPlan, st *redirects) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if b.cfg.FollowRedirects != FollowSameOrigin {
			return http.ErrUseLastResponse
		}
		if len(via) > maxRedirects {
			st.notes = append(st.notes, fmt.Sprintf("redirect not followed: more than %d redirects", maxRedirects))
			return http.ErrUseLastResponse
		}
		path, ok := b.agentPath(req.URL)
		if !ok {
			st.notes = append(st.notes, "redirect not followed: it leaves the API's base URL, or names a path warden refuses")
			return http.ErrUseLastResponse
		}
		target := req.Method + " " + path
		if req.URL.RawQuery != "" {
			target += "?" + req.URL.RawQuery
		}
		if pol == nil {
			st.notes = append(st.notes, "redirect to "+target+" not followed: no policy to judge it")
			return http.ErrUseLastResponse
		}
		// 307 and 308 resend the body; 301, 302 and 303 turn the
		// request into a GET without one.
		var body []byte
		if req.Method == p.method {
			body = p.body
		}
		ops, _, err := requestOps(req.Method, path, req.URL.RawQuery, body, req.Header.Get("Content-Type"))
		if err != nil {
			st.notes = append(st.notes, "redirect to "+target+" not followed: "+warden.AsError(err).Message)
			return http.ErrUseLastResponse
		}
		a := &warden.Action{Tool: "http_call", Backend: b.Name, Kind: req.Method, Ops: ops, Statement: target}
		if d := pol.Authorize(warden.CallerFrom(req.Context()), a); d.Effect != warden.Allow {
			st.notes = append(st.notes, "redirect to "+target+" not followed: "+strings.Join(d.Reasons, "; "))
			return http.ErrUseLastResponse
		}
		if holds != nil {
			if rule := holds(req.Context(), a); rule != "" {
				st.notes = append(st.notes, fmt.Sprintf("redirect to %s not followed: approval rule %q would hold it; make that call yourself so it can be approved", target, rule))
				return http.ErrUseLastResponse
			}
		}
		// Send the canonical form that was judged.
		req.URL.RawPath = b.basePath + path
		req.URL.Path, _ = url.PathUnescape(req.URL.RawPath)
		st.followed = append(st.followed, target)
		return nil
	}
}

// agentPath returns u's path relative to the base URL, canonical, when u
// is on the API's origin and under its base path.
func (b *Backend) agentPath(u *url.URL) (string, bool) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if u.Scheme != b.base.Scheme || !strings.EqualFold(u.Hostname(), b.base.Hostname()) || port != b.port || u.User != nil || u.Opaque != "" {
		return "", false
	}
	esc := u.EscapedPath()
	rest := esc
	if b.basePath != "" {
		switch {
		case esc == b.basePath:
			rest = "/"
		case strings.HasPrefix(esc, b.basePath+"/"):
			rest = esc[len(b.basePath):]
		default:
			return "", false
		}
	}
	if rest == "" {
		rest = "/"
	}
	p, err := canonicalPath(rest)
	if err != nil {
		return "", false
	}
	return p, true
}

var _ warden.Tool = (*Call)(nil)
