package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// t0 is not in UTC on purpose: the store must record UTC.
var t0 = time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))

var (
	alice = &warden.Caller{Subject: "alice@example.com", Issuer: "https://idp.example.com/",
		Email: "alice@example.com", Groups: []string{"analysts"}, Method: "oidc"}
	bob = &warden.Caller{Subject: "bob@example.com", Groups: []string{"dba"}, Method: "local"}
)

func openTestStore(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warden.db")
	s, err := sqlite.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open(sqlite:%s) = %v; want nil", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func session(id string, c *warden.Caller, at time.Time) *warden.Session {
	return &warden.Session{ID: id, Transport: "stdio", Caller: c, StartedAt: at}
}

// allowedCall is a call that policy allowed and that ran successfully.
func allowedCall(id, sessionID string, c *warden.Caller, at time.Time) *warden.Call {
	return &warden.Call{
		ID: id, SessionID: sessionID, Caller: c, Tool: "sql_query",
		Args: json.RawMessage(`{"database": "shop", "sql": "SELECT id FROM public.orders WHERE total > 10"}`),
		Action: &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select",
			Ops:       []warden.Op{{Verb: warden.VerbSelect, Object: "public.orders"}},
			Functions: []string{"count"},
			Statement: "SELECT id FROM public.orders WHERE total > 10",
			Purpose:   "find large orders"},
		Risk: warden.RiskRead,
		Decision: &warden.Decision{Effect: warden.Allow, Rule: "roles.analyst.grants[0]",
			Reasons: []string{"select on public.orders is granted to analyst"}},
		StartedAt: at,
	}
}

// finish completes c as the pipeline does after Execute.
func finish(c *warden.Call, res *warden.Result, err *warden.Error, took time.Duration) *warden.Call {
	c.Result, c.Err, c.EndedAt = res, err, c.StartedAt.Add(took)
	return c
}

// deniedCall is refused by policy before it runs: it has only a finish.
func deniedCall(id, sessionID string, c *warden.Caller, at time.Time) *warden.Call {
	call := allowedCall(id, sessionID, c, at)
	call.Args = json.RawMessage(`{"database":"shop","sql":"DELETE FROM public.orders"}`)
	call.Action.Kind, call.Action.Statement = "delete", "DELETE FROM public.orders"
	call.Action.Ops = []warden.Op{{Verb: warden.VerbDelete, Object: "public.orders"}}
	call.Risk = ""
	call.Decision = &warden.Decision{Effect: warden.Deny, Rule: "default-deny",
		Reasons: []string{"delete on public.orders is not granted"},
		Allowed: []string{"select on public.orders", "select on public.customers"}}
	return finish(call, nil, call.Decision.Err().(*warden.Error), time.Millisecond)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteSession(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestStore(t)
	if err := s.StartSession(ctx, session("s1", alice, t0)); err != nil {
		t.Fatal(err)
	}
	ok := allowedCall("c1", "s1", alice, t0)
	if err := s.StartCall(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCall(ctx, finish(ok, &warden.Result{Structured: map[string]any{}, Count: 3}, nil, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	denied := deniedCall("c2", "s1", bob, t0.Add(time.Second))
	denied.Action.Statement = "DELETE FROM public.orders\n-- \x1b[2Jcleanup\u202e"
	if err := s.FinishCall(ctx, denied); err != nil {
		t.Fatal(err)
	}
	sum, calls, err := s.Session(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSession(&b, sum, calls); err != nil {
		t.Fatalf("WriteSession = %v", err)
	}
	out := b.String()
	for _, want := range []string{
		"session    s1",
		"caller     alice@example.com via oidc (https://idp.example.com/), groups analysts",
		"calls      2: 1 denied, 0 failed",
		"#1  sql_query  OK  c1",
		"decision   allow by roles.analyst.grants[0]",
		"reason     select on public.orders is granted to analyst",
		"statement  SELECT id FROM public.orders WHERE total > 10",
		"result     3 rows/objects",
		"#2  sql_query  DENIED  c2",
		"caller     bob@example.com via local, groups dba", // differs from the session's caller
		"decision   deny by default-deny",
		"reason     delete on public.orders is not granted",
		"allowed    select on public.orders; select on public.customers",
		"error      denied: delete on public.orders is not granted",
		"statement  DELETE FROM public.orders\n               -- \\x1b[2Jcleanup\\u202e\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteSession output lacks %q; got:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Errorf("WriteSession output passes terminal control characters through:\n%q", out)
	}
}

func TestWriteSessionList(t *testing.T) {
	ended := t0.Add(time.Hour)
	list := []recorder.SessionSummary{
		{ID: "s2", Transport: "http", ClientName: "cursor", ClientVersion: "1.0", Caller: *bob, StartedAt: t0.Add(time.Minute), Calls: 10, Denied: 2, Failed: 1},
		{ID: "s1", Transport: "stdio", ClientName: "evil\x1b]0;pwned\a", Caller: *alice, StartedAt: t0, EndedAt: &ended, Calls: 1},
	}
	var b bytes.Buffer
	if err := WriteSessionList(&b, list); err != nil {
		t.Fatalf("WriteSessionList = %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		"SESSION  STARTED               ENDED                 SUBJECT            CLIENT              TRANSPORT  CALLS  DENIED  FAILED",
		"s2       2025-03-01T12:01:00Z  open                  bob@example.com    cursor 1.0          http       10     2       1",
		`s1       2025-03-01T12:00:00Z  2025-03-01T13:00:00Z  alice@example.com  evil\x1b]0;pwned\a  stdio      1      0       0`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("WriteSessionList =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	b.Reset()
	if err := WriteSessionList(&b, nil); err != nil || b.String() != "no sessions recorded\n" {
		t.Errorf("WriteSessionList(nil) = %q, %v; want \"no sessions recorded\\n\", nil", b.String(), err)
	}
}
