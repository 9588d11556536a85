package flows

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
)

// Holder holds a call for a human's approval (approvals.Service).
type Holder interface {
	Hold(ctx context.Context, c *warden.Call, t warden.Tool, r *approvals.Rule, why string) error
}

// Guard is the flow-control stage (warden.FlowGuard). It is safe for
// concurrent use.
type Guard struct {
	rules   Rules
	budgets Budgets
	kinds   map[string]string
	store   warden.FlowStore
	roles   func(*warden.Caller) []string
	hold    Holder
	clock   warden.Clock
	tok     tokenizer
	// horizon is the longest window any rule or budget looks back.
	horizon   time.Duration
	maxPrint  int
	syncEvery time.Duration

	mu     sync.Mutex
	mems   map[string]*memory
	pruned time.Time
}

// Options configure a Guard.
type Options struct {
	Rules   Rules
	Budgets Budgets
	// Kinds maps backend names to kinds.
	Kinds map[string]string
	Store warden.FlowStore
	// Key keys the fingerprints (at least 16 bytes); it must be secret
	// and the same after a restart, or what was remembered is lost.
	Key []byte
	// Roles returns the roles a caller holds, for budgets.
	Roles func(*warden.Caller) []string
	// Hold holds calls under rules and budgets with action: approve; nil
	// when there are none.
	Hold  Holder
	Clock warden.Clock
	// MaxPrints bounds the fingerprints kept per caller (default
	// DefaultMaxPrints); a read past it is refused.
	MaxPrints int
	// SyncEvery is how often a caller's memory is brought up to date
	// with the store, for reads other instances made (default
	// DefaultSyncEvery). This instance's own reads are in memory at once.
	SyncEvery time.Duration
}

// DefaultSyncEvery bounds how late an instance learns of a read another
// instance sharing the store made. Reading the store on every call would
// cost more than the scan itself.
const DefaultSyncEvery = time.Second

// MaxReads bounds the reads kept per caller within the longest window
// (each is a call id, a time and counts: about 150 bytes); past it, a read
// of a source or a budgeted backend is refused like one past MaxPrints.
const MaxReads = 100_000

// DefaultMaxPrints is the default bound on the fingerprints kept per
// caller: 8 bytes each in the store, about 40 in memory.
const DefaultMaxPrints = 500_000

// New returns a Guard over validated rules and budgets.
func New(o Options) (*Guard, error) {
	if len(o.Key) < 16 {
		return nil, errors.New("flows: the fingerprint key must have at least 16 bytes")
	}
	if o.Store == nil || o.Clock == nil {
		return nil, errors.New("flows: a store and a clock are required")
	}
	g := &Guard{rules: o.Rules, budgets: o.Budgets, kinds: o.Kinds, store: o.Store, roles: o.Roles, hold: o.Hold,
		clock: o.Clock, maxPrint: o.MaxPrints, syncEvery: o.SyncEvery, mems: map[string]*memory{}}
	if g.syncEvery <= 0 {
		g.syncEvery = DefaultSyncEvery
	}
	if g.maxPrint <= 0 {
		g.maxPrint = DefaultMaxPrints
	}
	g.tok = tokenizer{k0: binary.LittleEndian.Uint64(o.Key), k1: binary.LittleEndian.Uint64(o.Key[8:]), minLen: 64, minDigits: 19}
	for _, r := range o.Rules {
		g.horizon = max(g.horizon, time.Duration(r.Window))
		g.tok.minLen = min(g.tok.minLen, r.MinLength)
		g.tok.minDigits = min(g.tok.minDigits, r.MinDigits)
	}
	for _, b := range o.Budgets {
		g.horizon = max(g.horizon, time.Duration(b.Per))
	}
	for _, r := range o.Rules {
		if r.Action == ActionApprove && o.Hold == nil {
			return nil, errors.New("flows: rules with action approve need the approval service")
		}
	}
	return g, nil
}

// tokenizer returns a tokenizer for one call: it has a scratch buffer,
// so concurrent calls must not share one.
func (g *Guard) tokenizer() *tokenizer {
	t := g.tok
	t.buf = nil
	return &t
}

// memory is what one caller read within the horizon: each rule's
// fingerprints (value → the newest read that held it) and every read, for
// budgets and to name source calls.
type memory struct {
	mu     sync.Mutex
	loaded bool
	seq    int64
	reads  []*warden.FlowRead
	// prints[i] is rule i's fingerprints: value → index into reads.
	prints    []map[uint64]int32
	count     int
	compacted time.Time
	synced    time.Time
}

func callerKey(c *warden.Caller) string {
	if c.Issuer == "" {
		return c.Subject
	}
	return c.Issuer + " " + c.Subject
}

// memory returns caller's memory, locked and brought up to date with the
// store (reads other instances, or this one before a restart, made).
func (g *Guard) memory(ctx context.Context, caller *warden.Caller) (*memory, error) {
	key := callerKey(caller)
	g.mu.Lock()
	m := g.mems[key]
	if m == nil {
		m = &memory{prints: make([]map[uint64]int32, len(g.rules))}
		for i := range m.prints {
			m.prints[i] = map[uint64]int32{}
		}
		g.mems[key] = m
	}
	g.mu.Unlock()
	m.mu.Lock()
	now := g.clock()
	if now.Sub(m.compacted) > g.horizon/24 && len(m.reads) > 0 && now.Sub(m.reads[0].At) > g.horizon {
		m.compact(g, now)
	}
	if !m.synced.IsZero() && now.Sub(m.synced) < g.syncEvery && !now.Before(m.synced) {
		return m, nil
	}
	reads, err := g.store.FlowReads(ctx, key, now.Add(-g.horizon), m.seq)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	for _, r := range reads {
		m.add(g, r)
	}
	m.synced = now
	return m, nil
}

// add puts a stored read into memory.
func (m *memory) add(g *Guard, r *warden.FlowRead) {
	m.seq = max(m.seq, r.Seq)
	idx := int32(len(m.reads))
	m.reads = append(m.reads, r)
	for i, rule := range g.rules {
		if !slices.Contains(r.Rules, rule.Name) {
			continue
		}
		for _, fp := range r.Prints {
			if _, ok := m.prints[i][fp]; !ok {
				m.count++
			}
			m.prints[i][fp] = idx
		}
	}
}

// compact forgets reads older than the horizon.
func (m *memory) compact(g *Guard, now time.Time) {
	old := m.reads
	m.reads, m.count = nil, 0
	for i := range m.prints {
		m.prints[i] = map[uint64]int32{}
	}
	for _, r := range old {
		if now.Sub(r.At) <= g.horizon {
			m.add(g, r)
		}
	}
	m.compacted = now
}

// Check implements warden.FlowGuard.
func (g *Guard) Check(ctx context.Context, c *warden.Call, t warden.Tool, args json.RawMessage) error {
	a := c.Action
	kind := g.kinds[a.Backend]
	var sinks []int
	for i, r := range g.rules {
		if r.To.matches(a, kind) {
			sinks = append(sinks, i)
		}
	}
	budgets := g.budgetsFor(c.Caller, a.Backend)
	if len(sinks) == 0 && len(budgets) == 0 {
		return nil
	}
	// What was found is decided under the memory's lock; holding a call
	// for a human happens after it is released.
	type finding struct {
		budget      int // -1 for a flow rule
		rows, bytes int64
		rule        int
		h           *hit
		src         *warden.FlowRead
	}
	var found []finding
	m, err := g.memory(ctx, c.Caller)
	if err != nil {
		return warden.Wrap(warden.Unavailable, err, "what this caller read earlier cannot be looked up now, so the call was refused (flow rules)")
	}
	now := g.clock()
	for _, bi := range budgets {
		b := g.budgets[bi]
		rows, bytes := m.used(b.Backend, now.Add(-time.Duration(b.Per)))
		if b.Rows > 0 && rows >= b.Rows || b.Bytes > 0 && bytes >= b.Bytes {
			found = append(found, finding{budget: bi, rows: rows, bytes: bytes})
		}
	}
	for _, i := range sinks {
		r := g.rules[i]
		prints := m.prints[i]
		if len(prints) == 0 {
			continue
		}
		var src *warden.FlowRead
		sc := &scanner{t: g.tokenizer(), lookup: func(fp uint64) bool {
			idx, ok := prints[fp]
			if !ok || now.Sub(m.reads[idx].At) > time.Duration(r.Window) {
				return false
			}
			src = m.reads[idx]
			return true
		}}
		if h := sc.scanArgs(args); h != nil {
			found = append(found, finding{budget: -1, rule: i, h: h, src: src})
		}
	}
	m.mu.Unlock()
	for _, f := range found {
		if f.budget >= 0 {
			if err := g.overBudget(ctx, c, t, f.budget, f.rows, f.bytes, "before it ran"); err != nil {
				return err
			}
			continue
		}
		r := g.rules[f.rule]
		from := "an earlier call"
		c.Flow = &warden.CallFlow{Rule: "flows." + r.Name, Argument: f.h.argument}
		if f.src != nil {
			from = "call " + f.src.CallID
			c.Flow.SourceCall = f.src.CallID
		}
		why := fmt.Sprintf("flow rule %q: argument %s carries a value this caller received from %s (%s) within %s; data read there may not be sent to %s",
			r.Name, f.h.argument, r.From.Describe(), from, r.Window, r.To.Describe())
		if r.Action == ActionApprove {
			if err := g.hold.Hold(ctx, c, t, holdRule("flows."+r.Name, a.Backend, r.Approvers, r.Timeout, r.Wait), why); err != nil {
				return err
			}
			continue
		}
		return &warden.Error{Code: warden.Denied, Rule: "flows." + r.Name,
			Message: why + ". The call did not run. Send only data that did not come from there (or that you wrote yourself)."}
	}
	return nil
}

// holdRule is the approval rule a flow rule or budget holds calls under.
func holdRule(ref, backend string, approvers *warden.Approvers, timeout warden.Duration, wait *warden.Duration) *approvals.Rule {
	return &approvals.Rule{Name: ref, Ref: ref, Backend: backend, Approvers: approvers, Timeout: timeout, Wait: wait}
}

func (g *Guard) overBudget(ctx context.Context, c *warden.Call, t warden.Tool, bi int, rows, bytes int64, when string) error {
	b := g.budgets[bi]
	ref := fmt.Sprintf("budgets[%d]", bi)
	c.Flow = &warden.CallFlow{Rule: ref}
	why := fmt.Sprintf("read budget %s: role %s may receive %s from %s per %s, and this caller has received %d rows and %d bytes in that time (checked %s)",
		ref, b.Role, caps(b), b.Backend, b.Per, rows, bytes, when)
	if b.Action == ActionApprove {
		return g.hold.Hold(ctx, c, t, holdRule(ref, b.Backend, b.Approvers, b.Timeout, b.Wait), why)
	}
	return &warden.Error{Code: warden.Denied, Rule: ref, Message: why + ". The call's result was not returned; ask for a narrower result, or wait until the window passes."}
}

func caps(b *Budget) string {
	var s []string
	if b.Rows > 0 {
		s = append(s, fmt.Sprintf("%d rows", b.Rows))
	}
	if b.Bytes > 0 {
		s = append(s, fmt.Sprintf("%d bytes", b.Bytes))
	}
	return strings.Join(s, " and ")
}

// used sums the rows and bytes received from backend since t.
func (m *memory) used(backend string, since time.Time) (rows, bytes int64) {
	for _, r := range m.reads {
		if r.Backend == backend && !r.At.Before(since) {
			rows += r.Rows
			bytes += r.Bytes
		}
	}
	return rows, bytes
}

// budgetsFor returns the indexes of the budgets that apply to caller on backend.
func (g *Guard) budgetsFor(caller *warden.Caller, backend string) []int {
	if len(g.budgets) == 0 {
		return nil
	}
	var out []int
	var roles []string
	if g.roles != nil {
		roles = g.roles(caller)
	}
	for i, b := range g.budgets {
		if b.Backend == backend && slices.Contains(roles, b.Role) {
			out = append(out, i)
		}
	}
	return out
}

// dataKeys names the part of each tool's result that is data (the rest
// is structure: column names and types, status, call ids).
var dataKeys = map[string]string{"sql_query": "rows", "http_call": "body", "kube_get": ""}

// Remember implements warden.FlowGuard.
func (g *Guard) Remember(ctx context.Context, c *warden.Call) error {
	a := c.Action
	key, returnsData := dataKeys[c.Tool]
	if c.Result == nil || a == nil || !returnsData {
		return nil
	}
	kind := g.kinds[a.Backend]
	var sources []string
	for _, r := range g.rules {
		if r.From.matches(a, kind) {
			sources = append(sources, r.Name)
		}
	}
	budgets := g.budgetsFor(c.Caller, a.Backend)
	if len(sources) == 0 && len(budgets) == 0 {
		return nil
	}
	data := []byte(c.Result.JSON)
	if key != "" {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(c.Result.JSON, &top); err != nil {
			return warden.Wrap(warden.Internal, err, "the result could not be read for flow rules")
		}
		data = top[key]
	}
	read := &warden.FlowRead{Caller: callerKey(c.Caller), CallID: c.ID, Backend: a.Backend, At: g.clock(),
		Rows: c.Result.Count, Bytes: int64(len(data)), Rules: sources}
	if len(sources) > 0 {
		read.Prints = g.tokenizer().remember(data)
	}
	unavailable := func(err error) error {
		return warden.Wrap(warden.Unavailable, err, "what this caller read cannot be remembered now, so the result was withheld (flow rules)")
	}
	m, err := g.memory(ctx, c.Caller)
	if err != nil {
		return unavailable(err)
	}
	// A result that would take the caller past a budget is withheld (or
	// held for a human, unless one already approved this exact call).
	if approved := c.Approval != nil && c.Approval.Status == warden.ApprovalUsed; !approved {
		for _, bi := range budgets {
			b := g.budgets[bi]
			rows, bytes := m.used(b.Backend, read.At.Add(-time.Duration(b.Per)))
			if b.Rows > 0 && rows+read.Rows > b.Rows || b.Bytes > 0 && bytes+read.Bytes > b.Bytes {
				m.mu.Unlock()
				if err := g.overBudget(ctx, c, nil, bi, rows, bytes, fmt.Sprintf("with this result of %d rows and %d bytes", read.Rows, read.Bytes)); err != nil {
					return err
				}
				if m, err = g.memory(ctx, c.Caller); err != nil {
					return unavailable(err)
				}
			}
		}
	}
	defer m.mu.Unlock()
	if m.count+len(read.Prints) > g.maxPrint || len(m.reads) >= MaxReads {
		c.Flow = &warden.CallFlow{Rule: "flows.memory"}
		return &warden.Error{Code: warden.Denied, Rule: "flows.memory",
			Message: fmt.Sprintf("warden remembers at most %d values (and %d reads) per caller for flow rules and budgets, and this result would take you past it; "+
				"the result was withheld. Ask for fewer rows or columns, or wait until earlier reads expire.", g.maxPrint, MaxReads)}
	}
	if err := g.store.AddFlowRead(context.WithoutCancel(ctx), read); err != nil {
		return warden.Wrap(warden.Unavailable, err, "what this caller read cannot be remembered now, so the result was withheld (flow rules)")
	}
	m.add(g, read)
	g.prune(ctx, read.At)
	return nil
}

// prune deletes stored reads older than the horizon, at most once per
// twenty-fourth of it; a failure is retried next time.
func (g *Guard) prune(ctx context.Context, now time.Time) {
	g.mu.Lock()
	due := now.Sub(g.pruned) > g.horizon/24
	if due {
		g.pruned = now
	}
	g.mu.Unlock()
	if due {
		_ = g.store.PruneFlowReads(context.WithoutCancel(ctx), now.Add(-g.horizon))
	}
}

var _ warden.FlowGuard = (*Guard)(nil)

// Explain says, without running anything, which flow rules and budgets
// cover the call a planned from args for caller, and what they would
// decide given what the caller has read: what `warden explain` prints.
func (g *Guard) Explain(ctx context.Context, caller *warden.Caller, a *warden.Action, args json.RawMessage) ([]string, error) {
	kind := g.kinds[a.Backend]
	m, err := g.memory(ctx, caller)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := g.clock()
	var out []string
	for i, r := range g.rules {
		if r.From.matches(a, kind) {
			out = append(out, fmt.Sprintf("rule %s: this call reads %s; the values it returns are remembered for %s", r.Name, r.From.Describe(), r.Window))
		}
		if !r.To.matches(a, kind) {
			continue
		}
		var src *warden.FlowRead
		prints := m.prints[i]
		sc := &scanner{t: g.tokenizer(), lookup: func(fp uint64) bool {
			idx, ok := prints[fp]
			if !ok || now.Sub(m.reads[idx].At) > time.Duration(r.Window) {
				return false
			}
			src = m.reads[idx]
			return true
		}}
		h := sc.scanArgs(args)
		switch {
		case h == nil:
			out = append(out, fmt.Sprintf("rule %s: this call sends to %s; its arguments carry nothing %s read from %s within %s (%d values remembered): it passes",
				r.Name, r.To.Describe(), caller.Subject, r.From.Describe(), r.Window, len(prints)))
		default:
			from := "an earlier call"
			if src != nil {
				from = "call " + src.CallID
			}
			out = append(out, fmt.Sprintf("rule %s: this call sends to %s and argument %s carries a value %s received from %s (%s): it would be %s",
				r.Name, r.To.Describe(), h.argument, caller.Subject, r.From.Describe(), from, map[string]string{ActionDeny: "denied", ActionApprove: "held for approval"}[r.Action]))
		}
	}
	for _, bi := range g.budgetsFor(caller, a.Backend) {
		b := g.budgets[bi]
		rows, bytes := m.used(b.Backend, now.Add(-time.Duration(b.Per)))
		out = append(out, fmt.Sprintf("budgets[%d]: %s; received so far: %d rows, %d bytes", bi, b.Describe(), rows, bytes))
	}
	if len(out) == 0 {
		out = append(out, "none: no flow rule or budget covers this call")
	}
	return out, nil
}
