package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"slices"
	"strings"

	"github.com/warden-mcp/warden"
)

// overrideNames are the parameter names frameworks read as "treat this
// request as another method": Rails, Laravel and Symfony read _method
// from the form (Laravel from a JSON body too), Express's
// method-override from whatever key it is configured with, usually one of
// the header names. Compared case-insensitively.
var overrideNames = []string{"_method", "x-http-method-override", "x-http-method", "x-method-override"}

// methodOverrides returns the methods the request asks a server to treat
// it as, besides its own: every override parameter in the query, in a
// form or multipart body, or at the top level of a JSON body, whatever
// Content-Type says (servers differ on when they parse a body). An
// override that names a method warden does not send is refused.
func methodOverrides(method, rawQuery string, body []byte, contentType string) ([]string, error) {
	var named []string
	addValues := func(where string, vals map[string][]string) error {
		for k, vs := range vals {
			if !slices.Contains(overrideNames, strings.ToLower(strings.TrimSpace(k))) {
				continue
			}
			for _, v := range vs {
				m := strings.ToUpper(strings.TrimSpace(v))
				if !slices.Contains(Methods, m) {
					return &warden.Error{Code: warden.Denied, Rule: "http.method",
						Message: fmt.Sprintf("the %s parameter %s=%q asks the server to treat the request as another method, which warden does not send; use the method argument instead", where, k, v)}
				}
				if m != method && !slices.Contains(named, m) {
					named = append(named, m)
				}
			}
		}
		return nil
	}
	if err := addValues("query", formPairs(rawQuery)); err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return named, nil
	}
	if err := addValues("body", formPairs(string(body))); err != nil {
		return nil, err
	}
	if err := addValues("body", jsonTopLevel(body)); err != nil {
		return nil, err
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err == nil && strings.HasPrefix(mt, "multipart/") {
		vals, err := multipartFields(body, params["boundary"])
		if err != nil {
			return nil, warden.Errorf(warden.Invalid, "the multipart body cannot be read: %v", err)
		}
		if err := addValues("body", vals); err != nil {
			return nil, err
		}
	}
	return named, nil
}

// formPairs reads s as a form the way the loosest server does: pairs
// split at & and at ; (older parsers accept both), each pair kept when
// the others are malformed.
func formPairs(s string) map[string][]string {
	vals := map[string][]string{}
	for _, pair := range strings.FieldsFunc(s, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		vals[k] = append(vals[k], v)
	}
	return vals
}

// jsonTopLevel returns every member of a top-level JSON object, repeated
// names included (parsers differ on which one wins), or nothing when body
// is not one. A value that is not a string is kept as its JSON text.
func jsonTopLevel(body []byte) map[string][]string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	vals := map[string][]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return vals
		}
		k, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return vals
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			v = string(raw)
		}
		vals[k] = append(vals[k], v)
	}
	return vals
}

// multipartFields returns the form fields of a multipart body (values cut
// at 64 bytes: only short ones can name a method).
func multipartFields(body []byte, boundary string) (map[string][]string, error) {
	if boundary == "" {
		return nil, errors.New("Content-Type has no boundary")
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	vals := map[string][]string{}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			return vals, nil
		}
		if err != nil {
			return nil, errors.New("malformed multipart body")
		}
		v, _ := io.ReadAll(io.LimitReader(part, 64))
		vals[part.FormName()] = append(vals[part.FormName()], string(v))
	}
}
