package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden"
)

// gates holds a gateTool's calls: each runs until its gate is opened
// (success) or its call is cancelled, and says when it has started.
type gates struct {
	mu sync.Mutex
	m  map[string]*gate
}

type gate struct{ started, open chan struct{} }

// openAll lets every call still held end, so that a failed test does not
// hang in the server's shutdown.
func (g *gates) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gt := range g.m {
		select {
		case <-gt.open:
		default:
			close(gt.open)
		}
	}
}

func (g *gates) get(name string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]*gate{}
	}
	if g.m[name] == nil {
		g.m[name] = &gate{started: make(chan struct{}), open: make(chan struct{})}
	}
	return g.m[name]
}

// gateTool is "slow": its call names a gate and holds until it opens,
// reporting progress first (so a call with a progressToken is answered on
// an event stream).
type gateTool struct{ gates *gates }

func (gateTool) Spec() warden.ToolSpec {
	return warden.ToolSpec{Name: "slow", BackendKind: "postgres", BackendArg: "database",
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{
			"database": map[string]any{"type": "string"}, "gate": map[string]any{"type": "string"}}}}
}

func (gateTool) Plan(_ context.Context, args json.RawMessage) (*warden.Action, error) {
	var a struct{ Gate string }
	if err := json.Unmarshal(args, &a); err != nil || a.Gate == "" {
		return nil, &warden.Error{Code: warden.Invalid, Rule: "args", Message: "no gate"}
	}
	return &warden.Action{Tool: "slow", Backend: "shop", Kind: "select", Statement: a.Gate}, nil
}

func (t gateTool) Execute(ctx context.Context, a *warden.Action) (*warden.Result, error) {
	g := t.gates.get(a.Statement)
	warden.InteractionFrom(ctx).Report("running")
	close(g.started)
	select {
	case <-g.open:
		return &warden.Result{JSON: []byte(`{"gate":"` + a.Statement + `","done":true}`)}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// gateRecorder keeps each call's recorded outcome by its gate.
type gateRecorder struct {
	nopRecorder
	mu       sync.Mutex
	outcomes map[string]string
}

func (r *gateRecorder) FinishCall(_ context.Context, c *warden.Call) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Action != nil {
		r.outcomes[c.Action.Statement] = c.Caller.Subject + " " + c.Outcome()
	}
	return nil
}

func (r *gateRecorder) outcome(gate string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcomes[gate]
}

// cancelFixture is streamable HTTP behind OIDC, with two subjects.
type cancelFixture struct {
	t          *testing.T
	s          *Server
	url        string
	gates      *gates
	rec        *gateRecorder
	alice, bob string // their bearer tokens
}

func newCancelFixture(t *testing.T) *cancelFixture { return newCancelFixtureOn(t, "http") }

func newCancelFixtureOn(t *testing.T, transport string) *cancelFixture {
	clock := newOIDCClock()
	p := newOIDCProvider(t, clock)
	f := &cancelFixture{t: t, gates: &gates{}, rec: &gateRecorder{outcomes: map[string]string{}}}
	reg, err := warden.NewRegistry(gateTool{gates: f.gates})
	if err != nil {
		t.Fatal(err)
	}
	var seq atomic.Int64
	pl := &warden.Pipeline{Tools: reg, Policy: allowAll{}, Recorder: f.rec, Clock: time.Now,
		NewID: func() string { return "c-" + strconv.FormatInt(seq.Add(1), 10) }}
	f.s = New(Options{Pipeline: pl, Policy: allowAll{}, Sessions: nopRecorder{}, Identity: &IdentityConfig{},
		Verifier: newTestVerifier(t, p, clock, nil)})
	h, shutdown, err := f.s.HTTPHandler(transport)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { _ = shutdown(context.Background()); srv.Close() })
	t.Cleanup(f.gates.openAll)
	f.url = srv.URL + map[string]string{"http": "/mcp", "sse": "/sse"}[transport]
	f.alice = p.Token(t, map[string]any{"sub": "alice@example.com"})
	f.bob = p.Token(t, map[string]any{"sub": "bob@example.com"})
	return f
}

// post sends one message as token's subject.
func (f *cancelFixture) post(token string, c httpCase) (int, string, http.Header) {
	req, err := http.NewRequest(http.MethodPost, f.url, strings.NewReader(c.body))
	if err != nil {
		f.t.Error(err)
		return 0, "", nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Error(err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// session opens a session-era session as token's subject.
func (f *cancelFixture) session(token string) string {
	_, _, h := f.post(token, httpCase{body: `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`})
	sid := h.Get("Mcp-Session-Id")
	if sid == "" {
		f.t.Fatal("initialize opened no session")
	}
	f.post(token, httpCase{header: map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	return sid
}

// How a call is sent: served directly (2026-07-28), left to mcp-go for its
// progressToken (2026-07-28), or in a session (2025-11-25, sid).
type callKind string

const (
	viaDirect  callKind = "direct"
	viaMCPGo   callKind = "progressToken"
	viaSession callKind = "session"
)

func slowCall(kind callKind, id int, gate, sid string) httpCase {
	args := `"arguments":{"database":"shop","gate":"` + gate + `"}`
	switch kind {
	case viaMCPGo:
		c := modernCall(strconv.Itoa(id), "slow", args, `{}`)
		c.body = strings.Replace(c.body, `"_meta":{`, `"_meta":{"progressToken":"p-`+gate+`",`, 1)
		return c
	case viaSession:
		return httpCase{header: map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"},
			body: `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"slow",` + args + `}}`}
	}
	return modernCall(strconv.Itoa(id), "slow", args, `{}`)
}

// modernCancel is a 2026-07-28 notifications/cancelled of id.
func modernCancel(id int) httpCase {
	return httpCase{header: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "notifications/cancelled"},
		body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + strconv.Itoa(id) + `,"reason":"x",` + modernMeta(`{}`, "") + `}}`}
}

// escaped is c with its method and requestId written with JSON escapes,
// which mean the same to every decoder.
func escaped(c httpCase) httpCase {
	c.body = strings.Replace(c.body, `"notifications/cancelled"`, `"notifications\/cancelled"`, 1)
	c.body = strings.Replace(c.body, `"requestId"`, `"request\u0049d"`, 1)
	return c
}

// sessionCancel is a session-era notifications/cancelled of id in sid.
func sessionCancel(id int, sid string) httpCase {
	return httpCase{header: map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"},
		body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + strconv.Itoa(id) + `}}`}
}

// start sends c as token's subject and waits until its gate's call runs;
// the answer arrives on the channel returned.
func (f *cancelFixture) start(token string, c httpCase, gate string) <-chan string {
	answer := make(chan string, 1)
	go func() {
		status, body, _ := f.post(token, c)
		answer <- strconv.Itoa(status) + " " + body
	}()
	select {
	case <-f.gates.get(gate).started:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("call %s did not start", gate)
	}
	return answer
}

func (f *cancelFixture) wait(answer <-chan string, gate string) string {
	select {
	case a := <-answer:
		return a
	case <-time.After(10 * time.Second):
		f.t.Fatalf("call %s was not answered", gate)
		return ""
	}
}

// stillRunning checks that alice's call has not been answered yet, after
// bob's cancellations had time to reach it.
func (f *cancelFixture) stillRunning(answer <-chan string) {
	f.t.Helper()
	select {
	case got := <-answer:
		f.t.Fatalf("alice's call ended after bob's cancellations: %.300s", got)
	case <-time.After(50 * time.Millisecond):
	}
}

// succeeded checks that gate's call was answered with its result and
// recorded as alice's success.
func (f *cancelFixture) succeeded(answer, gate string) {
	f.t.Helper()
	if !strings.HasPrefix(answer, "200 ") || !strings.Contains(answer, `\"done\":true`) || strings.Contains(answer, `"isError":true`) {
		f.t.Errorf("call %s = %.300s; want its result", gate, answer)
	}
	if got := f.rec.outcome(gate); got != "alice@example.com ok" {
		f.t.Errorf("call %s recorded as %q; want alice@example.com ok", gate, got)
	}
}

// cancelled checks that gate's call was cancelled: answered as a failure
// (the pipeline's error for a call whose context ended) and recorded as
// one.
func (f *cancelFixture) cancelled(answer, gate string) {
	f.t.Helper()
	if strings.Contains(answer, `\"done\":true`) || !strings.Contains(answer, `"isError":true`) {
		f.t.Errorf("call %s = %.300s; want it cancelled", gate, answer)
	}
	if got := f.rec.outcome(gate); got != "alice@example.com error" {
		f.t.Errorf("call %s recorded as %q; want alice@example.com error", gate, got)
	}
}

// A notifications/cancelled reaches only its sender's calls: bob cannot
// cancel alice's call by its id, whichever way either of them sends it;
// alice can. Over 2026-07-28 the id alone would name the call in mcp-go.
func TestCancelReachesOnlyTheCallersCalls(t *testing.T) {
	for _, kind := range []callKind{viaDirect, viaMCPGo, viaSession} {
		t.Run(string(kind), func(t *testing.T) {
			f := newCancelFixture(t)
			var aliceSID, bobSID string
			if kind == viaSession {
				aliceSID, bobSID = f.session(f.alice), f.session(f.bob)
			}
			directBefore := f.s.httpDirectCalls.Load()

			// bob sends cancellations of alice's id every way he can.
			a := f.start(f.alice, slowCall(kind, 7, "a1", aliceSID), "a1")
			for _, c := range []httpCase{modernCancel(7), escaped(modernCancel(7))} {
				if status, body, _ := f.post(f.bob, c); status != http.StatusAccepted {
					t.Errorf("bob's 2026-07-28 cancel = %d %s; want 202 (accepted, and ignored)", status, body)
				}
			}
			if kind == viaSession {
				if status, body, _ := f.post(f.bob, sessionCancel(7, bobSID)); status != http.StatusAccepted {
					t.Errorf("bob's cancel in his session = %d %s; want 202", status, body)
				}
				if status, _, _ := f.post(f.bob, sessionCancel(7, aliceSID)); status != http.StatusForbidden {
					t.Errorf("bob's cancel in alice's session = %d; want 403", status)
				}
			}
			f.stillRunning(a)
			close(f.gates.get("a1").open)
			f.succeeded(f.wait(a, "a1"), "a1")

			// alice cancels her own call.
			a = f.start(f.alice, slowCall(kind, 8, "a2", aliceSID), "a2")
			cancel := escaped(modernCancel(8))
			if kind == viaSession {
				cancel = sessionCancel(8, aliceSID)
			}
			if status, body, _ := f.post(f.alice, cancel); status != http.StatusAccepted {
				t.Errorf("alice's cancel = %d %s; want 202", status, body)
			}
			f.cancelled(f.wait(a, "a2"), "a2")

			served := f.s.httpDirectCalls.Load() - directBefore
			if want := map[callKind]int64{viaDirect: 2}[kind]; served != want {
				t.Errorf("%d calls served directly; want %d", served, want)
			}
			if n := f.s.httpInflight.len(); n != 0 {
				t.Errorf("%d calls still registered for cancellation; want none", n)
			}
		})
	}
}

// Two callers' calls with the same id, at once, each complete; one
// caller's calls that share an id are registered apart, so the first to
// end does not unregister the other, which its caller can still cancel.
// Nothing stays registered.
func TestCancelSameIDs(t *testing.T) {
	for _, kind := range []callKind{viaDirect, viaMCPGo} {
		t.Run(string(kind), func(t *testing.T) {
			f := newCancelFixture(t)
			a := f.start(f.alice, slowCall(kind, 1, "a", ""), "a")
			b := f.start(f.bob, slowCall(kind, 1, "b", ""), "b")
			a2 := f.start(f.alice, slowCall(kind, 1, "a2", ""), "a2")
			if n := f.s.httpInflight.len(); n != 2 {
				t.Errorf("%d keys registered; want 2 (alice's id 1, bob's id 1)", n)
			}
			close(f.gates.get("b").open)
			if got := f.wait(b, "b"); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `\"done\":true`) {
				t.Errorf("bob's call = %.300s; want its result", got)
			}
			if got := f.rec.outcome("b"); got != "bob@example.com ok" {
				t.Errorf("bob's call recorded as %q; want bob@example.com ok", got)
			}
			close(f.gates.get("a").open)
			f.succeeded(f.wait(a, "a"), "a")
			// alice's other call with id 1 is still registered.
			if status, body, _ := f.post(f.alice, modernCancel(1)); status != http.StatusAccepted {
				t.Errorf("alice's cancel = %d %s; want 202", status, body)
			}
			f.cancelled(f.wait(a2, "a2"), "a2")
			if n := f.s.httpInflight.len(); n != 0 {
				t.Errorf("%d keys still registered; want none", n)
			}
		})
	}
}

// Many callers' calls with the same ids at once, for -race: each gets its
// own answer and nothing stays registered. Each worker cancels its call's
// id after the answer: a pair of workers, one alice's and one bob's, share
// their ids, so bob's cancellations fall on alice's calls in flight and
// must not reach them. (Two workers of one caller may not share ids: a
// caller's cancellation rightly reaches its own calls with that id.)
func TestCancelRegistryConcurrent(t *testing.T) {
	f := newCancelFixture(t)
	var wg sync.WaitGroup
	for w := range 8 {
		token := f.alice
		if w%2 == 1 {
			token = f.bob
		}
		wg.Go(func() {
			for i := range 10 {
				gate := fmt.Sprintf("w%d-%d", w, i)
				close(f.gates.get(gate).open)
				kind := viaDirect
				if i%3 == 0 {
					kind = viaMCPGo
				}
				id := 100*(w/2) + i
				status, body, _ := f.post(token, slowCall(kind, id, gate, ""))
				if status != http.StatusOK || !strings.Contains(body, `\"done\":true`) {
					t.Errorf("call %s = %d %.200s", gate, status, body)
				}
				f.post(token, modernCancel(id))
			}
		})
	}
	wg.Wait()
	if n := f.s.httpInflight.len(); n != 0 {
		t.Errorf("%d keys still registered; want none", n)
	}
}

// Entries under one key are removed by their own calls in any order, and
// one a cancellation took stays gone.
func TestInflightCalls(t *testing.T) {
	var c inflightCalls
	k := callKey(&warden.Caller{Subject: "alice", Issuer: "i"}, float64(1))
	other := callKey(&warden.Caller{Subject: "bob", Issuer: "i"}, float64(1))
	var cancelled []int
	add := func(key inflightID, n int) *inflightCall {
		return c.add(key, func() { cancelled = append(cancelled, n) })
	}
	e1, e2, e3 := add(k, 1), add(k, 2), add(k, 3)
	b := add(other, 9)
	c.remove(e2) // the middle one
	c.remove(e3) // the head
	c.cancel(k)
	if len(cancelled) != 1 || cancelled[0] != 1 {
		t.Errorf("cancel(alice, 1) cancelled %v; want [1]", cancelled)
	}
	c.remove(e1) // already taken by the cancellation
	e4 := add(k, 4)
	c.remove(e1)
	if c.len() != 2 {
		t.Errorf("%d keys; want 2 (alice's new call, bob's)", c.len())
	}
	c.remove(e4)
	c.remove(b)
	if c.len() != 0 {
		t.Errorf("%d keys left; want none", c.len())
	}
}

// Over SSE every message names its session, which authenticate checks is
// the caller's: bob's cancellations in his own session do not reach
// alice's call with the same id, and he cannot post into hers.
func TestCancelOverSSE(t *testing.T) {
	f := newCancelFixtureOn(t, "sse")
	connect := func(token string) (*client.Client, *transport.SSE) {
		c, err := client.NewSSEMCPClient(f.url, transport.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		init.Params.ClientInfo = mcp.Implementation{Name: "t", Version: "1"}
		if _, err := c.Initialize(ctx, init); err != nil {
			t.Fatal(err)
		}
		return c, c.GetTransport().(*transport.SSE)
	}
	alice, aliceT := connect(f.alice)
	_, bobT := connect(f.bob)
	cancelAll := func(tr *transport.SSE) { // ids 1 to 9: both clients number their requests alike
		for id := 1; id < 10; id++ {
			n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: string(mcp.MethodNotificationCancelled),
				Params: mcp.NotificationParams{AdditionalFields: map[string]any{"requestId": id}}}}
			if err := tr.SendNotification(context.Background(), n); err != nil {
				t.Error(err)
			}
		}
	}
	call := func(gate string) <-chan string {
		answer := make(chan string, 1)
		go func() {
			req := mcp.CallToolRequest{}
			req.Params.Name = "slow"
			req.Params.Arguments = map[string]any{"database": "shop", "gate": gate}
			res, err := alice.CallTool(context.Background(), req)
			switch {
			case err != nil:
				answer <- "error " + err.Error()
			case res.IsError:
				answer <- `200 "isError":true`
			default:
				answer <- `200 \"done\":true`
			}
		}()
		select {
		case <-f.gates.get(gate).started:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %s did not start", gate)
		}
		return answer
	}

	a := call("s1")
	cancelAll(bobT)
	req, _ := http.NewRequest(http.MethodPost, aliceT.GetEndpoint().String(), // /message?sessionId=…
		strings.NewReader(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}`))
	req.Header.Set("Authorization", "Bearer "+f.bob)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob's cancel in alice's session = %v %v; want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	f.stillRunning(a)
	close(f.gates.get("s1").open)
	f.succeeded(f.wait(a, "s1"), "s1")

	a = call("s2")
	cancelAll(aliceT)
	f.cancelled(f.wait(a, "s2"), "s2")
}
