package mcp

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// tracker maps protocol sessions to recorded warden sessions.
//
// Clients on the 2025 revisions open a session with initialize, and it ends
// when the transport closes it. Clients on 2026-07-28 have no protocol
// session: each request stands alone. warden groups such requests from one
// caller and one client into a recorded session that ends after a period
// without calls, so the recording still reads as a conversation.
type tracker struct {
	rec   SessionRecorder
	clock warden.Clock
	newID func() string
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	owners  map[string]*warden.Caller // protocol session → the subject that opened it
}

type entry struct {
	sess      *warden.Session
	last      time.Time
	stateless bool
}

func newTracker(rec SessionRecorder, clock warden.Clock, newID func() string, log *slog.Logger) *tracker {
	return &tracker{rec: rec, clock: clock, newID: newID, log: log, entries: map[string]*entry{}, owners: map[string]*warden.Caller{}}
}

// sessionKey is the key of a protocol session, or "" when the request has
// none.
func sessionKey(cs server.ClientSession) string {
	if cs == nil || cs.SessionID() == "" {
		return ""
	}
	return "sid:" + cs.SessionID()
}

// bind records who opened a protocol session.
func (t *tracker) bind(key string, c *warden.Caller) {
	if key == "" || c == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.owners[key]; !ok {
		t.owners[key] = c
	}
}

// owner returns who opened the protocol session, or nil.
func (t *tracker) owner(key string) *warden.Caller {
	if key == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.owners[key]
}

// initialized records a session when a 2025-era client completes
// initialize, so sessions without calls are recorded too.
func (t *tracker) initialized(ctx context.Context, client mcp.Implementation, protocol string) {
	key := sessionKey(server.ClientSessionFromContext(ctx))
	if key == "" {
		return
	}
	t.open(ctx, key, false, client, protocol)
}

// forRequest returns the recorded session a tool call belongs to,
// starting one if needed.
func (t *tracker) forRequest(ctx context.Context) *warden.Session {
	var client mcp.Implementation
	protocol := server.RequestProtocolVersion(ctx)
	cs := server.ClientSessionFromContext(ctx)
	if ci, ok := cs.(server.SessionWithClientInfo); ok {
		client = ci.GetClientInfo()
	}
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.ClientInfo != nil {
		client = *info.ClientInfo
	}
	key, stateless := sessionKey(cs), false
	if key == "" || server.IsModernRequest(ctx) && transportFrom(ctx) != "stdio" {
		subject := ""
		if c := warden.CallerFrom(ctx); c != nil {
			subject = c.Subject
		}
		key, stateless = "anon:"+transportFrom(ctx)+"\x00"+subject+"\x00"+client.Name+"\x00"+client.Version, true
	}
	return t.open(ctx, key, stateless, client, protocol)
}

func (t *tracker) open(ctx context.Context, key string, stateless bool, client mcp.Implementation, protocol string) *warden.Session {
	now := t.clock()
	t.mu.Lock()
	t.sweepLocked(now)
	e, ok := t.entries[key]
	if ok {
		e.last = now
		changed := false
		if e.sess.ClientName == "" && client.Name != "" {
			e.sess.ClientName, e.sess.ClientVersion, changed = client.Name, client.Version, true
		}
		if e.sess.ProtocolVersion == "" && protocol != "" {
			e.sess.ProtocolVersion, changed = protocol, true
		}
		sess := *e.sess
		t.mu.Unlock()
		if changed {
			t.must(t.rec.UpdateSession(context.WithoutCancel(ctx), &sess), "update")
		}
		return &sess
	}
	sess := &warden.Session{
		ID:              t.newID(),
		Transport:       transportFrom(ctx),
		ClientName:      client.Name,
		ClientVersion:   client.Version,
		ProtocolVersion: protocol,
		Caller:          warden.CallerFrom(ctx),
		StartedAt:       now,
	}
	t.entries[key] = &entry{sess: sess, last: now, stateless: stateless}
	copied := *sess
	t.mu.Unlock()
	t.must(t.rec.StartSession(context.WithoutCancel(ctx), &copied), "start")
	return &copied
}

// sweepLocked ends sessionless groups that have been idle too long.
func (t *tracker) sweepLocked(now time.Time) {
	for key, e := range t.entries {
		if e.stateless && now.Sub(e.last) > statelessIdle {
			delete(t.entries, key)
			t.must(t.rec.EndSession(context.Background(), e.sess.ID, e.last), "end")
		}
	}
}

// statelessIdle is how long a sessionless group stays open without calls.
var statelessIdle = 10 * time.Minute

func (t *tracker) end(key string) {
	if key == "" {
		return
	}
	t.mu.Lock()
	e, ok := t.entries[key]
	delete(t.entries, key)
	delete(t.owners, key)
	t.mu.Unlock()
	if ok {
		t.must(t.rec.EndSession(context.Background(), e.sess.ID, t.clock()), "end")
	}
}

func (t *tracker) endAll() {
	t.mu.Lock()
	entries := t.entries
	t.entries = map[string]*entry{}
	t.mu.Unlock()
	now := t.clock()
	for _, e := range entries {
		t.must(t.rec.EndSession(context.Background(), e.sess.ID, now), "end")
	}
}

// must logs a session-record failure. Session records frame the calls;
// each call is still refused if its own record cannot be written.
func (t *tracker) must(err error, what string) {
	if err != nil {
		t.log.Error("recording session "+what+" failed", "err", err)
	}
}
