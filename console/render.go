package console

import (
	"bytes"
	"html/template"
	"net/http"
)

var funcs = template.FuncMap{"inc": func(i int) int { return i + 1 }}

// pageData is what every page template gets: the signed-in reviewer, the
// CSRF token for its forms, whether the audit pages are theirs, and a
// one-time notice.
func (c *Console) pageData(r *http.Request, s *session, extra map[string]any) map[string]any {
	d := map[string]any{}
	if s != nil {
		d["Who"] = callerText(s.caller)
		d["CSRF"] = s.csrf
		d["Auditor"] = c.opts.Config.Auditors.Includes(s.caller)
		d["Flash"] = c.sessions.takeFlash(s)
		d["Local"] = c.oidc == nil
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

func (c *Console) render(w http.ResponseWriter, status int, name string, data map[string]any) {
	var b bytes.Buffer
	if err := c.pages.ExecuteTemplate(&b, name, data); err != nil {
		c.opts.Log.Error("console: rendering a page failed", "page", name, "err", err)
		c.refuse(w, http.StatusInternalServerError, "the page could not be rendered")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, status, "error", c.pageData(r, s, map[string]any{"Message": msg}))
}
