package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
)

// refusalWindow and refusalBudget bound what requests without a verified
// caller can add to the recording: at most refusalBudget records each,
// plus one summary, per refusalWindow.
const (
	refusalWindow = time.Minute
	refusalBudget = 20
)

// clipLen bounds each client-chosen string a refusal record keeps.
const clipLen = 200

// refusals records requests refused at the transport's edge. A refused
// request is described compactly — method, path, declared size, origin,
// reason — and never by its body, which is not even read. Requests without
// a verified caller cost an attacker nothing, so beyond a budget per window
// they are only counted, and the count is recorded once when the window
// closes: a flood grows the recording by a bounded amount. Refusals of a
// verified caller are always recorded one by one.
type refusals struct {
	pipeline *warden.Pipeline

	mu      sync.Mutex
	start   time.Time // of the current window
	n       int       // individual records in the window
	lastID  string    // the window's last individual record
	dropped int       // refusals counted, not recorded, in the window
	bytes   int64     // their declared body sizes
	rules   map[string]int
}

// record records a refusal and returns the id of the record that
// accounts for it.
func (f *refusals) record(ctx context.Context, r *http.Request, caller *warden.Caller, e *warden.Error) string {
	if caller != nil {
		return f.pipeline.Refuse(warden.WithCaller(ctx, caller), "http:"+r.Method+" "+clip(r.URL.Path, clipLen), describe(r), e).ID
	}
	now := f.pipeline.Clock()
	f.mu.Lock()
	summary := f.rollLocked(now)
	if f.n >= refusalBudget {
		f.dropped++
		if r.ContentLength > 0 {
			f.bytes += r.ContentLength
		}
		f.rules[e.Rule]++
		id := f.lastID
		f.mu.Unlock()
		f.write(ctx, summary)
		return id
	}
	f.n++
	window := f.start
	f.mu.Unlock()
	f.write(ctx, summary)
	id := f.pipeline.Refuse(ctx, "http:"+r.Method+" "+clip(r.URL.Path, clipLen), describe(r), e).ID
	f.mu.Lock()
	if f.start.Equal(window) {
		f.lastID = id
	}
	f.mu.Unlock()
	return id
}

// run closes each window soon after it has passed, so a flood's count is
// recorded even when no request follows it, until ctx is done.
func (f *refusals) run(ctx context.Context) {
	t := time.NewTicker(refusalWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.mu.Lock()
			s := f.rollLocked(f.pipeline.Clock())
			f.mu.Unlock()
			f.write(ctx, s)
		}
	}
}

// flush records the current window's count, if any; called at shutdown.
func (f *refusals) flush(ctx context.Context) {
	f.mu.Lock()
	s := f.takeLocked(f.pipeline.Clock())
	f.mu.Unlock()
	f.write(ctx, s)
}

// summary is one window's refusals beyond the budget.
type summary struct {
	Count int            `json:"count"`
	Bytes int64          `json:"declared_bytes"`
	From  time.Time      `json:"from"`
	To    time.Time      `json:"to"`
	Rules map[string]int `json:"rules"`
	Like  string         `json:"like,omitempty"`
}

// rollLocked starts a new window when the current one has passed and
// returns the summary of the one that ended, if it counted anything.
func (f *refusals) rollLocked(now time.Time) *summary {
	if !f.start.IsZero() && now.Sub(f.start) < refusalWindow {
		return nil
	}
	s := f.takeLocked(now)
	f.start, f.n, f.lastID = now, 0, ""
	return s
}

func (f *refusals) takeLocked(now time.Time) *summary {
	if f.dropped == 0 {
		f.rules = map[string]int{}
		return nil
	}
	s := &summary{Count: f.dropped, Bytes: f.bytes, From: f.start, To: now, Rules: f.rules, Like: f.lastID}
	f.dropped, f.bytes, f.rules = 0, 0, map[string]int{}
	return s
}

func (f *refusals) write(ctx context.Context, s *summary) {
	if s == nil {
		return
	}
	args, _ := json.Marshal(s)
	rules := slices.Sorted(maps.Keys(s.Rules))
	f.pipeline.Refuse(context.WithoutCancel(ctx), "http:refused", args, &warden.Error{
		Code: warden.Unauthenticated, Rule: "refusal-flood",
		Message: fmt.Sprintf("%d more requests without a verified caller were refused between %s and %s (rules: %s); they are counted, not recorded one by one",
			s.Count, s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339), strings.Join(rules, ", ")),
	})
}

// describe is what the recording keeps of a refused request: never its
// body, and every client-chosen string clipped.
func describe(r *http.Request) json.RawMessage {
	d := struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Bytes  int64  `json:"declared_bytes"`
		Origin string `json:"origin,omitempty"`
	}{r.Method, clip(r.URL.Path, clipLen), r.ContentLength, clip(strings.ToValidUTF8(strings.Join(r.Header.Values("Origin"), ", "), "?"), clipLen)}
	b, _ := json.Marshal(d)
	return b
}
