package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/warden-mcp/warden"
)

type sessionView struct {
	ID, Subject, Client, Transport, Started, Ended string
	Calls, Denied, Failed                          int
}

func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := SessionFilter{Subject: q.Get("subject"), Tool: q.Get("tool"), Denied: q.Get("decision") == "denied", Limit: 100}
	var problems []string
	for _, p := range []struct {
		key string
		t   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.key); v != "" {
			t, err := c.when(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s", p.key, err))
				continue
			}
			*p.t = t
		}
	}
	var rows []sessionView
	if len(problems) == 0 {
		list, err := c.opts.Audit.Sessions(r.Context(), f)
		if err != nil {
			c.renderError(w, r, s, http.StatusServiceUnavailable, "The recording cannot be read now.")
			return
		}
		for _, x := range list {
			v := sessionView{ID: warden.Printable(x.ID), Subject: warden.Printable(x.Subject), Client: warden.Printable(x.Client),
				Transport: warden.Printable(x.Transport), Started: stamp(x.StartedAt), Calls: x.Calls, Denied: x.Denied, Failed: x.Failed}
			if x.EndedAt != nil {
				v.Ended = stamp(*x.EndedAt)
			}
			rows = append(rows, v)
		}
	}
	c.render(w, http.StatusOK, "sessions", c.pageData(r, s, map[string]any{
		"Sessions": rows, "Problems": problems,
		"Subject": q.Get("subject"), "Tool": q.Get("tool"), "Decision": q.Get("decision"), "Since": q.Get("since"), "Until": q.Get("until"),
	}))
}

// when parses a time filter: a duration ago (90m, 7d) or a date or RFC
// 3339 time, as `warden sessions list --since` takes.
func (c *Console) when(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if d, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return c.opts.Clock().Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return c.opts.Clock().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("use a duration ago (1h, 7d) or a time (2026-12-01, RFC 3339)")
}

// transcript mirrors the JSON of `warden sessions replay --json`: the
// console shows what the recording holds, and nothing else.
type transcript struct {
	Session struct {
		ID              string  `json:"id"`
		Transport       string  `json:"transport"`
		Client          *client `json:"client"`
		ProtocolVersion string  `json:"protocol_version"`
		Caller          *who    `json:"caller"`
		StartedAt       string  `json:"started_at"`
		EndedAt         string  `json:"ended_at"`
		Calls           int     `json:"calls"`
		Denied          int     `json:"denied"`
		Failed          int     `json:"failed"`
	} `json:"session"`
	Calls []struct {
		N          int             `json:"n"`
		ID         string          `json:"id"`
		Tool       string          `json:"tool"`
		At         string          `json:"at"`
		OffsetMS   float64         `json:"offset_ms"`
		Caller     *who            `json:"caller"`
		Arguments  json.RawMessage `json:"arguments"`
		Purpose    string          `json:"purpose"`
		Backend    string          `json:"backend"`
		Kind       string          `json:"kind"`
		Risk       string          `json:"risk"`
		Operations []string        `json:"operations"`
		Decision   *struct {
			Effect  string   `json:"effect"`
			Rule    string   `json:"rule"`
			Reasons []string `json:"reasons"`
		} `json:"decision"`
		Approval *struct {
			ID        string `json:"id"`
			Rule      string `json:"rule"`
			Via       string `json:"via"`
			Status    string `json:"status"`
			DecidedBy string `json:"decided_by"`
			Reason    string `json:"reason"`
			Note      string `json:"note"`
		} `json:"approval"`
		Status  string `json:"status"`
		Outcome string `json:"outcome"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result *struct {
			Rows      int64  `json:"rows"`
			Truncated bool   `json:"truncated"`
			Bytes     int    `json:"bytes"`
			Command   string `json:"command"`
			Status    int    `json:"status"`
		} `json:"result"`
		Masked     []string `json:"masked"`
		DurationMS float64  `json:"duration_ms"`
	} `json:"calls"`
}

type client struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type who struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Method  string `json:"method"`
}

// entry is one line of the timeline; every field is printable text.
type entry struct {
	N                                 int
	ID, Tool, At, Offset, Caller      string
	Arguments, Purpose, Backend, Kind string
	Risk, Ops                         string
	Effect, Rule, Reasons             string
	Approval                          string
	Status, Outcome, Error, Result    string
	Masked                            string
	Duration                          string
	Denied                            bool
}

func (c *Console) replayPage(w http.ResponseWriter, r *http.Request, s *session) {
	raw, err := c.opts.Audit.Transcript(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		c.renderError(w, r, s, http.StatusNotFound, "There is no such session in the recording.")
		return
	}
	var t transcript
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil {
		c.renderError(w, r, s, http.StatusServiceUnavailable, "The recording cannot be read now.")
		return
	}
	p := warden.Printable
	head := map[string]string{
		"ID": p(t.Session.ID), "Transport": p(t.Session.Transport), "Protocol": p(t.Session.ProtocolVersion),
		"Started": p(t.Session.StartedAt), "Ended": p(t.Session.EndedAt),
		"Counts": fmt.Sprintf("%d calls, %d denied, %d failed", t.Session.Calls, t.Session.Denied, t.Session.Failed),
	}
	if t.Session.Client != nil {
		head["Client"] = p(strings.TrimSpace(t.Session.Client.Name + " " + t.Session.Client.Version))
	}
	if t.Session.Caller != nil {
		head["Caller"] = p(t.Session.Caller.Subject + " (" + t.Session.Caller.Method + ")")
	}
	var entries []entry
	for _, x := range t.Calls {
		e := entry{N: x.N, ID: p(x.ID), Tool: p(x.Tool), At: p(x.At), Offset: fmt.Sprintf("+%.1fs", x.OffsetMS/1000),
			Purpose: p(x.Purpose), Backend: p(x.Backend), Kind: p(x.Kind), Risk: p(x.Risk),
			Ops: p(strings.Join(x.Operations, "; ")), Status: p(x.Status), Outcome: p(x.Outcome), Masked: p(strings.Join(x.Masked, ", "))}
		if x.Caller != nil {
			e.Caller = p(x.Caller.Subject)
		}
		if len(x.Arguments) > 0 {
			var b bytes.Buffer
			if json.Indent(&b, x.Arguments, "", "  ") == nil {
				e.Arguments = printableLines(b.String())
			}
		}
		if d := x.Decision; d != nil {
			e.Effect, e.Rule, e.Reasons = p(d.Effect), p(d.Rule), p(strings.Join(d.Reasons, "; "))
			e.Denied = d.Effect == "deny"
		}
		if a := x.Approval; a != nil {
			s := fmt.Sprintf("%s %s (rule %s, via %s)", a.ID, a.Status, a.Rule, a.Via)
			if a.DecidedBy != "" {
				s += " by " + a.DecidedBy
			}
			if a.Reason != "" {
				s += ": " + a.Reason
			}
			if a.Note != "" {
				s += " — " + a.Note
			}
			e.Approval = p(s)
		}
		if x.Error != nil {
			e.Error = p(x.Error.Code + ": " + x.Error.Message)
		}
		if res := x.Result; res != nil {
			s := fmt.Sprintf("%d rows, %d bytes", res.Rows, res.Bytes)
			if res.Truncated {
				s += ", truncated"
			}
			if res.Command != "" {
				s += ", " + res.Command
			}
			if res.Status != 0 {
				s += fmt.Sprintf(", HTTP %d", res.Status)
			}
			e.Result = p(s)
		}
		if x.DurationMS > 0 {
			e.Duration = fmt.Sprintf("%.0f ms", x.DurationMS)
		}
		entries = append(entries, e)
	}
	c.render(w, http.StatusOK, "replay", c.pageData(r, s, map[string]any{"Head": head, "Entries": entries}))
}

func (c *Console) verifyPage(w http.ResponseWriter, r *http.Request, s *session) {
	ok, report := c.opts.Audit.Verify(r.Context())
	c.render(w, http.StatusOK, "verify", c.pageData(r, s, map[string]any{"OK": ok, "Report": printableLines(report)}))
}
