package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/warden-mcp/warden/internal/oidctest"
	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
)

// approvalsConfig is the config under test: analysts may read and update
// orders, delete orders and notes; deleting notes needs the calling user's
// confirmation, deleting orders the user's or a dba's, and updating orders
// a dba's (waiting `wait`, notifying `webhook` when set).
func approvalsConfig(t *testing.T, dsn, wait, webhook string) string {
	t.Helper()
	notify := ""
	if webhook != "" {
		notify = fmt.Sprintf(", notify: {webhook: %q}", webhook)
	}
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  local: {subject: alice@example.com, groups: [analysts], reviewer: true}
  allow_unauthenticated_loopback: true
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}", statement_timeout: 5s, max_rows: 50}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders, public.customers], actions: [select, update, delete]}
      - {backend: shop, tables: [public.notes], actions: [select, insert, delete]}
approvals:
  - {name: confirm-note-deletes, backend: shop, when: [delete], tables: [public.notes], approvers: user}
  - {name: order-deletes, backend: shop, when: [delete], tables: [public.orders], approvers: {user: true, groups: [dba]}, wait: 0s}
  - {name: dba-review, backend: shop, when: [update], approvers: {groups: [dba]}, wait: %s%s}
  - {name: big-reads, backend: shop, when: [select], tables: [public.orders], rows_above: 20, approvers: user}
`, wait, notify)
	dir := t.TempDir()
	path := filepath.Join(dir, "warden.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	return path
}

// as writes a sibling of config (same store) whose identity.local is
// subject in groups: another user of the same warden, or a reviewer (the
// config under test lets the local identity review: a single-user setup).
func as(t *testing.T, config, subject, groups string) string {
	t.Helper()
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "local: {subject: alice@example.com, groups: [analysts]",
		fmt.Sprintf("local: {subject: %s, groups: [%s]", subject, groups), 1)
	path := filepath.Join(filepath.Dir(config), strings.Split(subject, "@")[0]+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// user is the person at the client: it answers each question warden asks
// with the next of its answers (decline once they run out), and remembers
// every question.
type user struct {
	mu      sync.Mutex
	answers []mcp.ElicitationResponseAction
	asked   []string
	// content, when set, is what the user's client sends as the form's
	// content instead of {"confirm": true}; noContent sends none at all.
	content   any
	noContent bool
}

func answering(answers ...mcp.ElicitationResponseAction) *user { return &user{answers: answers} }

func (u *user) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked = append(u.asked, req.Params.Message)
	action := mcp.ElicitationResponseActionDecline
	if len(u.answers) > 0 {
		action, u.answers = u.answers[0], u.answers[1:]
	}
	res := &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: action}}
	switch {
	case u.noContent:
	case u.content != nil:
		res.Content = u.content
	case action == mcp.ElicitationResponseActionAccept:
		res.Content = map[string]any{"confirm": true}
	}
	return res, nil
}

func (u *user) questions() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.asked)
}

// tamper is a client that edits its own tools/call requests on the way
// out, as a malicious or buggy agent could: edit gets the n-th request's
// params (1-based) as JSON.
type tamper struct {
	mu   sync.Mutex
	n    int
	edit func(n int, params map[string]any)
	sent []map[string]any
}

func (tm *tamper) apply(req transport.JSONRPCRequest) transport.JSONRPCRequest {
	if tm == nil || req.Method != string(mcp.MethodToolsCall) {
		return req
	}
	b, err := json.Marshal(req.Params)
	if err != nil {
		return req
	}
	var params map[string]any
	if err := json.Unmarshal(b, &params); err != nil {
		return req
	}
	tm.mu.Lock()
	tm.n++
	n, edit := tm.n, tm.edit
	tm.mu.Unlock()
	if edit != nil {
		edit(n, params)
	}
	tm.mu.Lock()
	tm.sent = append(tm.sent, params)
	tm.mu.Unlock()
	req.Params = params
	return req
}

func (tm *tamper) sentState(i int) string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if i >= len(tm.sent) {
		return ""
	}
	s, _ := tm.sent[i]["requestState"].(string)
	return s
}

type tamperStdio struct {
	*transport.Stdio
	tm *tamper
}

func (t *tamperStdio) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	return t.Stdio.SendRequest(ctx, t.tm.apply(req))
}

type tamperHTTP struct {
	*transport.StreamableHTTP
	tm *tamper
}

func (t *tamperHTTP) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	return t.StreamableHTTP.SendRequest(ctx, t.tm.apply(req))
}

// dial connects a client to warden over stdio (target is the config) or
// streamable HTTP or SSE (target is the base URL), answering questions as
// u (nil: a client without elicitation) and editing requests with tm.
func dial(t *testing.T, kind, target, version string, u *user, tm *tamper) *client.Client {
	t.Helper()
	var tr transport.Interface
	switch kind {
	case "stdio":
		tr = &tamperStdio{Stdio: transport.NewStdio(wardenBin, []string{"E2E_DSN=" + os.Getenv("E2E_DSN")}, "serve", "--config", target), tm: tm}
	case "http":
		h, err := transport.NewStreamableHTTP(target + "/mcp")
		if err != nil {
			t.Fatal(err)
		}
		tr = &tamperHTTP{StreamableHTTP: h, tm: tm}
	case "sse":
		s, err := transport.NewSSE(target + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		tr = s
	}
	opts := []client.ClientOption{client.WithProtocolVersion(version)}
	if u != nil {
		opts = append(opts, client.WithElicitationHandler(u))
	}
	c := client.NewClient(tr, opts...)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	initialize(t, c, version)
	return c
}

func deleteNote(note string) map[string]any {
	return map[string]any{"database": "shop", "sql": "DELETE FROM notes WHERE body = $1", "params": []any{note}, "purpose": "tidy up " + note}
}

func addNote(t *testing.T, dsn, note string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO notes (body) VALUES ($1)", note); err != nil {
		t.Fatal(err)
	}
}

func notes(t *testing.T, dsn, note string) int {
	return count(t, dsn, "SELECT count(*) FROM notes WHERE body = $1", note)
}

// approvalOf returns the recorded approval of the calls with the given
// statement and first param, in order, as "outcome/status[/decided_by]".
func approvalTrail(t *testing.T, config, statement, param string) []string {
	t.Helper()
	calls, err := openRecording(t, config).Calls(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range calls {
		if c.Statement != statement || !strings.Contains(string(c.Args), param) {
			continue
		}
		s := c.Outcome
		if a := c.Approval; a != nil {
			s += "/" + string(a.Status)
			if a.DecidedBy != "" {
				s += "/" + a.DecidedBy
			}
		}
		out = append(out, s)
	}
	return out
}

func recordedNotes(t *testing.T, config, statement, param string) []string {
	t.Helper()
	calls, err := openRecording(t, config).Calls(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range calls {
		if c.Statement == statement && strings.Contains(string(c.Args), param) && c.Approval != nil && c.Approval.Note != "" {
			out = append(out, c.Approval.Note)
		}
	}
	return out
}

var (
	accept  = mcp.ElicitationResponseActionAccept
	decline = mcp.ElicitationResponseActionDecline
	cancel  = mcp.ElicitationResponseActionCancel
)

// TestApprovalByTheCallingUser drives the user's confirmation through real
// MCP clients on the session-era protocol (mcp-go sends elicitation/create
// and calls the handler again) and on 2026-07-28 (input_required, the
// client retries), over stdio and streamable HTTP.
func TestApprovalByTheCallingUser(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	for _, kind := range []string{"stdio", "http"} {
		for _, version := range []string{mcp.ProtocolVersion20251125, mcp.ProtocolVersion20260728} {
			t.Run(kind+"/"+version, func(t *testing.T) {
				config := approvalsConfig(t, dsn, "0s", "")
				target := config
				if kind == "http" {
					target = startServer(t, config, "http")
				}
				modern := version == mcp.ProtocolVersion20260728
				const stmt = "DELETE FROM notes WHERE body = $1"
				run := func(t *testing.T, u *user, tm *tamper, note string) result {
					t.Helper()
					return call(t, dial(t, kind, target, version, u, tm), "sql_query", deleteNote(note))
				}

				t.Run("AcceptRunsTheExactCallOnce", func(t *testing.T) {
					note := "accept " + kind + version
					addNote(t, dsn, note)
					u := answering(accept)
					r := run(t, u, nil, note)
					if r.IsError || r.Body["row_count"] != float64(1) || notes(t, dsn, note) != 0 {
						t.Fatalf("accepted delete = %v %s; want it to run", r.IsError, r.Text)
					}
					q := u.questions()
					if len(q) != 1 {
						t.Fatalf("the user was asked %d times; want once", len(q))
					}
					for _, want := range []string{"alice@example.com", "Stated purpose (from the agent): tidy up " + note, "shop (sql_query)", stmt, `$1 = "` + note + `"`, "delete public.notes", "Estimated rows:", "Accept runs exactly this call, once"} {
						if !strings.Contains(q[0], want) {
							t.Errorf("question lacks %q:\n%s", want, q[0])
						}
					}
					if trail := approvalTrail(t, config, stmt, note); !slices.Equal(trail, []string{"pending/pending", "ok/used/alice@example.com"}) {
						t.Errorf("recorded = %v; want the question (pending) then the call it released (ok, used)", trail)
					}
				})

				for _, tc := range []struct {
					name   string
					answer mcp.ElicitationResponseAction
					says   string
				}{{"DeclineRefuses", decline, "declined"}, {"CancelRefuses", cancel, "cancelled"}} {
					t.Run(tc.name, func(t *testing.T) {
						note := tc.name + " " + kind + version
						addNote(t, dsn, note)
						r := run(t, answering(tc.answer), nil, note)
						if !r.IsError || !strings.Contains(r.Text, tc.says) || !strings.Contains(r.Text, "Rule: approvals.confirm-note-deletes") {
							t.Errorf("%s = %v %q; want a refusal saying the user %s", tc.answer, r.IsError, r.Text, tc.says)
						}
						if notes(t, dsn, note) != 1 {
							t.Errorf("the note was deleted although the user answered %s", tc.answer)
						}
						if trail := approvalTrail(t, config, stmt, note); !slices.Equal(trail, []string{"pending/pending", "denied/denied/alice@example.com"}) {
							t.Errorf("recorded = %v", trail)
						}
					})
				}

				// Only an explicit yes approves: an accept whose form is not
				// exactly {"confirm": true}, or an action other than
				// "accept", leaves the note in the database.
				for _, tc := range []struct {
					name      string
					action    mcp.ElicitationResponseAction
					content   any
					noContent bool
				}{
					{"AcceptWithoutContent", accept, nil, true},
					{"AcceptWithEmptyForm", accept, map[string]any{}, false},
					{"AcceptWithConfirmFalse", accept, map[string]any{"confirm": false}, false},
					{"AcceptWithConfirmString", accept, map[string]any{"confirm": "true"}, false},
					{"AcceptWithConfirmNumber", accept, map[string]any{"confirm": 1}, false},
					{"AcceptWithConfirmNull", accept, map[string]any{"confirm": nil}, false},
					{"AcceptWithConfirmInAList", accept, map[string]any{"confirm": []any{true}}, false},
					{"AcceptWithConfirmObject", accept, map[string]any{"confirm": map[string]any{"value": true}}, false},
					{"AcceptWithExtraFields", accept, map[string]any{"confirm": true, "scope": "all"}, false},
					{"AcceptWithOtherCase", accept, map[string]any{"Confirm": true}, false},
					{"AcceptWithContentAString", accept, "confirm", false},
					{"AcceptWithContentAList", accept, []any{true}, false},
					{"AcceptWithContentTrue", accept, true, false},
					{"ActionInCapitals", "ACCEPT", map[string]any{"confirm": true}, false},
					{"ActionOk", "ok", map[string]any{"confirm": true}, false},
					{"ActionEmpty", "", map[string]any{"confirm": true}, false},
					{"DeclineWithConfirmTrue", decline, map[string]any{"confirm": true}, false},
				} {
					t.Run("NotAnExplicitYes/"+tc.name, func(t *testing.T) {
						note := tc.name + " " + kind + version
						addNote(t, dsn, note)
						u := answering(tc.action)
						u.content, u.noContent = tc.content, tc.noContent
						r := run(t, u, nil, note)
						if notes(t, dsn, note) != 1 {
							t.Fatalf("the note was deleted after the answer %q %v", tc.action, tc.content)
						}
						if !r.IsError || !strings.Contains(r.Text, "Rule: approvals.confirm-note-deletes") {
							t.Errorf("answer %q %v = %v %q; want a refusal naming the rule", tc.action, tc.content, r.IsError, r.Text)
						}
						if len(u.questions()) != 1 {
							t.Errorf("the user was asked %d times; want once", len(u.questions()))
						}
						if trail := approvalTrail(t, config, stmt, note); !slices.Equal(trail, []string{"pending/pending", "denied/denied/alice@example.com"}) {
							t.Errorf("recorded = %v; want the question then a denial", trail)
						}
					})
				}

				// An agent (or its client) that answers for the user: each
				// answer without a state warden issued for this exact call
				// is ignored, and the user is asked. The user declines, so
				// a forgery that worked would show as a deleted note.
				acceptResponse := func() map[string]any {
					b, _ := json.Marshal(mcp.NewElicitationInputResponse(mcp.ElicitationResult{
						ElicitationResponse: mcp.ElicitationResponse{Action: accept, Content: map[string]any{"confirm": true}}}))
					var v any
					_ = json.Unmarshal(b, &v)
					return map[string]any{"warden_approval": v}
				}
				for _, tc := range []struct {
					name, state, note string
				}{
					{"ForgedRequestStateIsIgnored", "w1.eyJ2IjoxLCJpZCI6ImEtMSJ9.AAAA", "without a requestState warden issued"},
					{"UnsolicitedInputResponsesAreIgnored", "", "without a requestState warden issued"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						note := tc.name + " " + kind + version
						addNote(t, dsn, note)
						u := answering(decline)
						tm := &tamper{edit: func(n int, p map[string]any) {
							if n == 1 {
								if tc.state != "" {
									p["requestState"] = tc.state
								}
								p["inputResponses"] = acceptResponse()
							}
						}}
						r := run(t, u, tm, note)
						if !r.IsError || !strings.Contains(r.Text, "declined") || notes(t, dsn, note) != 1 {
							t.Errorf("self-approved delete = %v %q, note left %d; want the user asked (and declining)", r.IsError, r.Text, notes(t, dsn, note))
						}
						if len(u.questions()) != 1 {
							t.Errorf("the user was asked %d times; want once", len(u.questions()))
						}
						if n := recordedNotes(t, config, stmt, note); len(n) == 0 || !strings.Contains(n[0], tc.note) {
							t.Errorf("recorded notes = %v; want the ignored answer noted", n)
						}
					})
				}

				t.Run("ClientWithoutElicitationIsRefused", func(t *testing.T) {
					note := "no elicitation " + kind + version
					addNote(t, dsn, note)
					r := run(t, nil, nil, note)
					if !r.IsError || !strings.Contains(r.Text, "cannot be asked") || notes(t, dsn, note) != 1 {
						t.Errorf("delete from a client without elicitation = %v %q; want a refusal saying it cannot ask", r.IsError, r.Text)
					}
				})

				if !modern {
					// Session-era clients never see a requestState: mcp-go
					// asks them with elicitation/create and keeps the state
					// on the server, so there is none to replay or to carry
					// to changed arguments.
					return
				}
				t.Run("ReplayedRequestStateIsIgnored", func(t *testing.T) {
					note := "replay " + kind + version
					addNote(t, dsn, note)
					tm := &tamper{}
					if r := run(t, answering(accept), tm, note); r.IsError {
						t.Fatalf("first delete = %s", r.Text)
					}
					used := tm.sentState(1)
					if used == "" {
						t.Fatal("the client's retry carried no requestState")
					}
					addNote(t, dsn, note) // the same call again, with the state that released the first
					u := answering(decline)
					r := run(t, u, &tamper{edit: func(n int, p map[string]any) {
						if n == 1 {
							p["requestState"], p["inputResponses"] = used, acceptResponse()
						}
					}}, note)
					if !r.IsError || notes(t, dsn, note) != 1 || len(u.questions()) != 1 {
						t.Errorf("replayed state = %v %q, asked %d; want ignored, the user asked", r.IsError, r.Text, len(u.questions()))
					}
					if n := recordedNotes(t, config, stmt, note); len(n) == 0 || !strings.Contains(n[len(n)-1], "already used") {
						t.Errorf("recorded notes = %v; want the replay noted", n)
					}
				})

				t.Run("ChangedArgumentsNeedANewConfirmation", func(t *testing.T) {
					note, victim := "changed "+kind+version, "victim "+kind+version
					addNote(t, dsn, note)
					addNote(t, dsn, victim)
					u := answering(accept, decline)
					r := run(t, u, &tamper{edit: func(n int, p map[string]any) {
						if n == 2 { // the retry that carries the user's accept
							args := p["arguments"].(map[string]any)
							args["params"] = []any{victim}
							args["purpose"] = "tidy up " + note
						}
					}}, note)
					if !r.IsError || notes(t, dsn, victim) != 1 || notes(t, dsn, note) != 1 {
						t.Errorf("accept carried to other arguments = %v %q; want nothing deleted", r.IsError, r.Text)
					}
					// The changed call is a new question, showing what changed;
					// the client's own retry of the original then carries a
					// state for other arguments, and is asked anew too.
					if q := u.questions(); len(q) < 2 || !strings.Contains(q[1], `$1 = "`+victim+`"`) {
						t.Errorf("questions = %q; want a second one showing the changed parameter", q)
					}
					if n := recordedNotes(t, config, stmt, victim); len(n) == 0 || !strings.Contains(n[0], "different call") {
						t.Errorf("recorded notes = %v; want the changed arguments noted", n)
					}
				})
			})
		}
	}
}

// TestApprovalOverSSEUsesReviewers: mcp-go's SSE transport cannot carry
// elicitation/create, so its clients are never asked: a rule that only the
// user can satisfy refuses, one that reviewers can satisfy waits for them.
func TestApprovalOverSSEUsesReviewers(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := approvalsConfig(t, dsn, "0s", "")
	base := startServer(t, config, "sse")
	u := answering(accept)
	c := dial(t, "sse", base, mcp.ProtocolVersion20250618, u, nil)
	note := "sse note"
	addNote(t, dsn, note)
	r := call(t, c, "sql_query", deleteNote(note))
	if !r.IsError || !strings.Contains(r.Text, "cannot be asked") || notes(t, dsn, note) != 1 {
		t.Errorf("user-only rule over SSE = %v %q; want a refusal", r.IsError, r.Text)
	}
	r = call(t, c, "sql_query", map[string]any{"database": "shop", "sql": "DELETE FROM orders WHERE id = 30"})
	if !r.IsError || r.Body["approval_id"] == nil || !strings.Contains(r.Text, "Needs approval") || count(t, dsn, "SELECT count(*) FROM orders WHERE id = 30") != 1 {
		t.Errorf("user-or-reviewer rule over SSE = %v %q; want pending for a reviewer", r.IsError, r.Text)
	}
	if len(u.questions()) != 0 {
		t.Errorf("the SSE client was asked %d questions; want none", len(u.questions()))
	}
}

var approvalID = regexp.MustCompile(`a-[0-9a-z]+`)

// TestApprovalByAReviewer: a call that needs a dba is held with an
// approval_id; `warden approvals` decides it as the config's local identity;
// the agent's retry with the same arguments and the id runs it once.
func TestApprovalByAReviewer(t *testing.T) {
	hook := make(chan []byte, 8)
	webhook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hook <- b
	}))
	defer webhook.Close()
	for _, tc := range []struct{ kind, version string }{
		{"stdio", mcp.ProtocolVersion20251125},
		{"http", mcp.ProtocolVersion20260728},
	} {
		t.Run(tc.kind+"/"+tc.version, func(t *testing.T) {
			dsn := pgtest.New(t, e2eSchema)
			config := approvalsConfig(t, dsn, "0s", webhook.URL+"/hooks/T0/secret")
			bob := as(t, config, "bob@example.com", "dba")
			carol := as(t, config, "carol@example.com", "analysts, dba")
			target, carolTarget := config, carol
			if tc.kind == "http" {
				target = startServer(t, config, "http")
				carolTarget = startServer(t, carol, "http")
			}
			alice := dial(t, tc.kind, target, tc.version, nil, nil)
			update := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'held' WHERE id = $1", "params": []any{1}, "purpose": "hold order 1"}
			status := func(id int) string {
				return fmt.Sprint(count(t, dsn, "SELECT count(*) FROM orders WHERE id = $1 AND status = 'held'", id))
			}

			r := call(t, alice, "sql_query", update)
			id, _ := r.Body["approval_id"].(string)
			if !r.IsError || id == "" || !strings.Contains(r.Text, "approval_id \""+id+"\"") || r.Body["error"].(map[string]any)["code"] != "needs_approval" {
				t.Fatalf("update = %v %q; want held with an approval_id", r.IsError, r.Text)
			}
			if status(1) != "0" {
				t.Fatal("a held update ran")
			}
			var n struct {
				Text     string
				Approval struct{ ID string }
			}
			if err := json.Unmarshal(<-hook, &n); err != nil || n.Approval.ID != id || !strings.Contains(n.Text, "warden approvals approve "+id) {
				t.Errorf("webhook got %+v, %v; want the request and how to approve it", n, err)
			}
			if again := call(t, alice, "sql_query", update); again.Body["approval_id"] != id {
				t.Errorf("the same call again = %v; want the pending request %s, not a new one", again.Body["approval_id"], id)
			}

			out, errOut, code := runWarden(t, "approvals", "list", "--config", config)
			if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "pending") || !strings.Contains(out, "dba-review") {
				t.Errorf("approvals list = %d\n%s%s", code, out, errOut)
			}
			_, errOut, code = runWarden(t, "approvals", "approve", id, "--config", config)
			if code != 1 || !strings.Contains(errOut, "you (alice@example.com) requested this call") {
				t.Errorf("the requester approving = %d %q; want refused", code, errOut)
			}
			_, errOut, code = runWarden(t, "approvals", "approve", id, "--config", as(t, config, "dave@example.com", "analysts"))
			if code != 1 || !strings.Contains(errOut, "may not decide") {
				t.Errorf("a non-reviewer approving = %d %q; want refused", code, errOut)
			}
			out, errOut, code = runWarden(t, "approvals", "approve", id, "--config", bob, "--reason", "OPS-7")
			if code != 0 || !strings.Contains(out, "approved "+id) {
				t.Fatalf("bob approving = %d %s%s", code, out, errOut)
			}
			_, errOut, code = runWarden(t, "approvals", "deny", id, "--config", bob)
			if code != 1 || !strings.Contains(errOut, "already approved") {
				t.Errorf("deciding again = %d %q; want refused", code, errOut)
			}

			other := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'held' WHERE id = $1", "params": []any{2}, "purpose": "hold order 1", "approval_id": id}
			if r := call(t, alice, "sql_query", other); !r.IsError || !strings.Contains(r.Text, "different call") || status(2) != "0" {
				t.Errorf("approval_id on another statement = %v %q; want refused", r.IsError, r.Text)
			}
			withID := map[string]any{"approval_id": id}
			for k, v := range update {
				withID[k] = v
			}
			carolClient := dial(t, tc.kind, carolTarget, tc.version, nil, nil)
			if r := call(t, carolClient, "sql_query", withID); !r.IsError || !strings.Contains(r.Text, "another principal") || status(1) != "0" {
				t.Errorf("approval_id used by another subject = %v %q; want refused", r.IsError, r.Text)
			}
			r = call(t, alice, "sql_query", withID)
			if r.IsError || r.Body["row_count"] != float64(1) || status(1) != "1" {
				t.Fatalf("retry with the approval = %v %q; want it to run", r.IsError, r.Text)
			}
			if r := call(t, alice, "sql_query", withID); !r.IsError || !strings.Contains(r.Text, "already used") {
				t.Errorf("second retry = %v %q; want refused: an approval releases one call", r.IsError, r.Text)
			}

			// A denial is final, and its reason reaches the agent.
			deny := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'held' WHERE id = 3"}
			r = call(t, alice, "sql_query", deny)
			denyID, _ := r.Body["approval_id"].(string)
			<-hook
			if _, errOut, code := runWarden(t, "approvals", "deny", denyID, "--config", bob, "--reason", "change freeze"); code != 0 {
				t.Fatalf("bob denying = %d %s", code, errOut)
			}
			deny["approval_id"] = denyID
			if r := call(t, alice, "sql_query", deny); !r.IsError || !strings.Contains(r.Text, "bob@example.com denied") || !strings.Contains(r.Text, "change freeze") || status(3) != "0" {
				t.Errorf("retry after a denial = %v %q; want refused with the reason", r.IsError, r.Text)
			}

			out, _, _ = runWarden(t, "approvals", "show", id, "--config", config)
			for _, want := range []string{"status     used", "requester  alice@example.com", "hold order 1", "UPDATE orders SET status = 'held' WHERE id = $1",
				"pending → approved by bob@example.com", "OPS-7", "approved → used"} {
				if !strings.Contains(out, want) {
					t.Errorf("approvals show lacks %q:\n%s", want, out)
				}
			}
			trail := approvalTrail(t, config, "UPDATE orders SET status = 'held' WHERE id = $1", "hold order 1")
			want := []string{"pending/pending", "pending/pending", "denied/denied", "denied/denied", "ok/used/bob@example.com", "denied/denied"}
			if !slices.Equal(trail, want) {
				t.Errorf("recorded = %v; want %v", trail, want)
			}
			sessions, err := openRecording(t, config).Sessions(context.Background(), recorder.SessionFilter{Subject: "alice@example.com"})
			if err != nil || len(sessions) == 0 {
				t.Fatalf("alice's sessions = %v, %v", sessions, err)
			}
			var replay strings.Builder
			for _, s := range sessions {
				out, _, _ := runWarden(t, "sessions", "replay", s.ID, "--config", config)
				replay.WriteString(out)
			}
			if !strings.Contains(replay.String(), "approval   "+id+" under rule dba-review (reviewer): used, decided by bob@example.com: OPS-7") {
				t.Errorf("replay does not show the approval that released the call:\n%s", replay.String())
			}
			if out, _, code := runWarden(t, "sessions", "verify", "--config", config); code != 0 {
				t.Errorf("sessions verify = %d\n%s", code, out)
			}
		})
	}
}

// TestWaitingCallRunsWhenApproved: with a wait, the held call reports
// progress and runs as soon as a reviewer approves it, in the same call.
func TestWaitingCallRunsWhenApproved(t *testing.T) {
	for _, tc := range []struct{ kind, version string }{
		{"stdio", mcp.ProtocolVersion20251125},
		{"http", mcp.ProtocolVersion20251125},
		{"http", mcp.ProtocolVersion20260728},
	} {
		t.Run(tc.kind+"/"+tc.version, func(t *testing.T) {
			dsn := pgtest.New(t, e2eSchema)
			config := approvalsConfig(t, dsn, "60s", "")
			target := config
			if tc.kind == "http" {
				target = startServer(t, config, "http")
			}
			c := dial(t, tc.kind, target, tc.version, nil, nil)
			progress := make(chan string, 16)
			c.OnNotification(func(n mcp.JSONRPCNotification) {
				if n.Method == string(mcp.MethodNotificationProgress) {
					msg, _ := n.Params.AdditionalFields["message"].(string)
					progress <- msg
				}
			})
			done := make(chan *mcp.CallToolResult, 1)
			go func() {
				req := mcp.CallToolRequest{}
				req.Params.Name = "sql_query"
				req.Params.Arguments = map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'waited' WHERE id = 5"}
				req.Params.Meta = &mcp.Meta{ProgressToken: "wait-1"}
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
				defer cancel()
				res, err := c.CallTool(ctx, req)
				if err != nil {
					t.Errorf("waiting call: %v", err)
				}
				done <- res
			}()
			var id string
			select {
			case msg := <-progress:
				id = approvalID.FindString(msg)
				if !strings.Contains(msg, "waiting for a reviewer (a member of dba)") || id == "" {
					t.Fatalf("progress = %q; want it to say who it waits for and the approval id", msg)
				}
			case res := <-done:
				t.Fatalf("the call returned before a reviewer decided: %+v", res)
			}
			if out, errOut, code := runWarden(t, "approvals", "approve", id, "--config", as(t, config, "bob@example.com", "dba")); code != 0 {
				t.Fatalf("approve = %d %s%s", code, out, errOut)
			}
			res := <-done
			if res == nil || res.IsError || count(t, dsn, "SELECT count(*) FROM orders WHERE id = 5 AND status = 'waited'") != 1 {
				t.Fatalf("waiting call = %+v; want it to run once approved", res)
			}
			if trail := approvalTrail(t, config, "UPDATE orders SET status = 'waited' WHERE id = 5", ""); !slices.Equal(trail, []string{"ok/used/bob@example.com"}) {
				t.Errorf("recorded = %v; want one call, released by bob's approval", trail)
			}
		})
	}
}

// TestApprovalExpiresWithAnInjectedClock runs warden in process over a
// stdio pipe with a clock the test moves: a pending request expires, and
// expiry is a refusal for the agent and for the reviewer.
func TestApprovalExpiresWithAnInjectedClock(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := approvalsConfig(t, dsn, "0s", "")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	getenv := func(k string) (string, bool) {
		if k == "E2E_DSN" {
			return dsn, true
		}
		return "", false
	}
	main := func(stdin io.Reader, stdout io.Writer) *Main {
		return &Main{Stdin: stdin, Stdout: stdout, Stderr: io.Discard, Getenv: getenv, Clock: clock}
	}
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	ctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- main(serverIn, serverOut).Run(ctx, []string{"serve", "--config", config}) }()
	t.Cleanup(func() {
		stop()
		clientOut.Close()
		if code := <-exited; code != 0 {
			t.Errorf("warden serve exited %d", code)
		}
	})
	c := client.NewClient(transport.NewIO(clientIn, clientOut, nil), client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	initialize(t, c, mcp.ProtocolVersion20251125)
	cli := func(args ...string) (string, int) {
		var out strings.Builder
		m := main(strings.NewReader(""), &out)
		m.Stderr = &out
		code := m.Run(context.Background(), args)
		return out.String(), code
	}

	update := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'late' WHERE id = 7"}
	r := call(t, c, "sql_query", update)
	id, _ := r.Body["approval_id"].(string)
	if id == "" {
		t.Fatalf("update = %s; want held", r.Text)
	}
	advance(10*time.Minute + time.Second)
	var out string
	var code int
	bob := as(t, config, "bob@example.com", "dba")
	if out, code = cli("approvals", "approve", id, "--config", bob); code != 1 || !strings.Contains(out, "expired") {
		t.Errorf("approving an expired request = %d %q; want refused: expired", code, out)
	}
	update["approval_id"] = id
	if r := call(t, c, "sql_query", update); !r.IsError || !strings.Contains(r.Text, "expired") {
		t.Errorf("retry after expiry = %v %q; want refused: expired", r.IsError, r.Text)
	}
	if n := count(t, dsn, "SELECT count(*) FROM orders WHERE id = 7 AND status = 'late'"); n != 0 {
		t.Errorf("the expired call ran")
	}
	if out, code = cli("approvals", "list", "--all", "--config", config); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "expired") {
		t.Errorf("approvals list --all = %d\n%s", code, out)
	}
	// An approval granted in time is usable for the rule's timeout after
	// the grant, and not after.
	delete(update, "approval_id")
	r = call(t, c, "sql_query", update)
	fresh, _ := r.Body["approval_id"].(string)
	if fresh == "" || fresh == id {
		t.Fatalf("a new call after expiry = %s; want a new request", r.Text)
	}
	if out, code = cli("approvals", "approve", fresh, "--config", bob); code != 0 {
		t.Fatalf("approve = %d %s", code, out)
	}
	advance(10 * time.Minute)
	update["approval_id"] = fresh
	if r := call(t, c, "sql_query", update); !r.IsError || !strings.Contains(r.Text, "expired") {
		t.Errorf("retry 10m after the approval = %v %q; want refused: expired", r.IsError, r.Text)
	}
	history, err := openRecording(t, config).ApprovalHistory(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, ev := range history {
		steps = append(steps, ev.Kind)
	}
	if !slices.Equal(steps, []string{"request", "approved", "expired"}) {
		t.Errorf("history of %s = %v; want request, approved, expired", fresh, steps)
	}
}

// TestExplainShowsTheApprovalRule: the dry run names the rule that would
// hold a call, with the planner's estimate that decided it.
func TestExplainShowsTheApprovalRule(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema+"ANALYZE orders;")
	config := approvalsConfig(t, dsn, "0s", "")
	for _, tc := range []struct {
		sql, want string
		code      int // 1: the call would be held, so it would not run as given
	}{
		{"SELECT * FROM orders", "approval  needed: rule big-reads on shop: approved by the calling user, within 10m0s (held when the estimate is above 20 rows", 1},
		{"SELECT * FROM orders WHERE id = 1", "approval  none", 0},
		{"UPDATE orders SET status = 'x' WHERE id = 1", "approval  needed: rule dba-review on shop: approved by groups dba", 1},
		{"DELETE FROM notes", "approval  needed: rule confirm-note-deletes", 1},
	} {
		out, errOut, code := runWarden(t, "explain", "--config", config, "--as", "alice@example.com:analysts", "sql_query", "database=shop", "sql="+tc.sql)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("explain %q = %d; want %q in\n%s%s", tc.sql, code, tc.want, out, errOut)
		}
	}
	out, _, _ := runWarden(t, "explain", "--config", config, "--as", "alice@example.com:analysts", "sql_query", "database=shop", "sql=SELECT * FROM orders")
	if !strings.Contains(out, "estimate  30 rows") {
		t.Errorf("explain does not show the estimate that decided:\n%s", out)
	}
	if n := count(t, dsn, "SELECT count(*) FROM orders"); n != 30 {
		t.Errorf("orders after explain = %d; want 30", n)
	}
}

// TestReviewerDecidesWithABearerToken: over HTTP with OIDC, the requester
// and the reviewer are both subjects of tokens from the trusted issuer;
// `warden approvals approve --token` verifies the reviewer's token like
// any other.
func TestReviewerDecidesWithABearerToken(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	idp := oidctest.New(t)
	cfg := fmt.Sprintf(`
store: sqlite:recording.db
identity:
  oidc:
    - {issuer: %q, audience: warden, groups_claim: realm_access.roles}
backends:
  shop: {kind: postgres, dsn: "${E2E_DSN}"}
roles:
  analyst:
    members: {groups: [analysts]}
    grants:
      - {backend: shop, tables: [public.orders], actions: [select, update]}
approvals:
  - {name: dba-review, backend: shop, when: [update], approvers: {groups: [dba]}, wait: 0s}
`, idp.Issuer())
	config := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_DSN", dsn)
	token := func(sub string, groups ...any) string {
		return idp.Token(t, map[string]any{"sub": sub, "email": sub, "realm_access": map[string]any{"roles": groups}})
	}
	alice := token("alice@example.com", "analysts", "dba") // a dba herself
	src := &tokenSource{}
	src.set(alice)
	c := connect(t, startServer(t, config, "http"), "http", src, mcp.ProtocolVersion20251125)
	update := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'held' WHERE id = 9"}
	r := call(t, c, "sql_query", update)
	id, _ := r.Body["approval_id"].(string)
	if id == "" {
		t.Fatalf("update = %s; want held", r.Text)
	}
	if _, errOut, code := runWarden(t, "approvals", "approve", id, "--config", config, "--token", alice); code != 1 || !strings.Contains(errOut, "requested this call") {
		t.Errorf("approve with the requester's token = %d %q; want refused", code, errOut)
	}
	if _, errOut, code := runWarden(t, "approvals", "approve", id, "--config", config, "--token", idp.Token(t, map[string]any{"sub": "bob@example.com"}, oidctest.Tamper())); code != 1 || !strings.Contains(errOut, "the token is not valid") {
		t.Errorf("approve with a tampered token = %d %q; want refused", code, errOut)
	}
	if _, errOut, code := runWarden(t, "approvals", "approve", id, "--config", config); code != 1 || !strings.Contains(errOut, "needs a reviewer identity") {
		t.Errorf("approve without an identity = %d %q; want refused", code, errOut)
	}
	// Someone who writes their own config, naming a dba as the local
	// identity and pointing at the same store, is no reviewer: with an
	// issuer configured only a verified token decides, and a config that
	// says otherwise does not load.
	local := filepath.Join(t.TempDir(), "local.yaml")
	sameStore := strings.Replace(cfg, "store: sqlite:recording.db", "store: sqlite:"+filepath.Join(filepath.Dir(config), "recording.db"), 1)
	if err := os.WriteFile(local, []byte(strings.Replace(sameStore, "identity:\n", "identity:\n  local: {subject: bob@example.com, groups: [dba]}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runWarden(t, "approvals", "approve", id, "--config", local); code != 1 || !strings.Contains(errOut, "the local identity does not decide") {
		t.Errorf("approve as a local identity beside an issuer = %d %q; want refused", code, errOut)
	}
	selfMade := filepath.Join(t.TempDir(), "reviewer.yaml")
	if err := os.WriteFile(selfMade, []byte(strings.Replace(sameStore, "identity:\n", "identity:\n  local: {subject: bob@example.com, groups: [dba], reviewer: true}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runWarden(t, "approvals", "approve", id, "--config", selfMade); code != 1 || !strings.Contains(errOut, "identity.local.reviewer: cannot be combined with oidc") {
		t.Errorf("approve with a local reviewer beside an issuer = %d %q; want the config refused", code, errOut)
	}
	if a, err := openRecording(t, config).Approval(context.Background(), id); err != nil || a.Status != "pending" {
		t.Fatalf("after the refused decisions the request is %+v, %v; want pending", a, err)
	}
	if out, errOut, code := runWarden(t, "approvals", "approve", id, "--config", config, "--token", token("bob@example.com", "dba")); code != 0 {
		t.Fatalf("approve with bob's token = %d %s%s", code, out, errOut)
	}
	update["approval_id"] = id
	if r := call(t, c, "sql_query", update); r.IsError || count(t, dsn, "SELECT count(*) FROM orders WHERE id = 9 AND status = 'held'") != 1 {
		t.Errorf("retry = %v %s; want it to run", r.IsError, r.Text)
	}
	h, err := openRecording(t, config).ApprovalHistory(context.Background(), id)
	if err != nil || len(h) != 3 || h[1].By == nil || h[1].By.Subject != "bob@example.com" || h[1].By.Issuer != idp.Issuer() {
		t.Errorf("history = %+v, %v; want bob, from the issuer, approving", h, err)
	}
}

// TestLocalIdentityReviewsOnlyWhenTheConfigSaysSo: without an issuer, a
// config whose identity.local names a dba does not make its writer a
// reviewer; only identity.local.reviewer: true (a single-user setup) does.
func TestLocalIdentityReviewsOnlyWhenTheConfigSaysSo(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	withFlag := approvalsConfig(t, dsn, "0s", "")
	data, err := os.ReadFile(withFlag)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(filepath.Dir(withFlag), "noflag.yaml")
	if err := os.WriteFile(config, []byte(strings.Replace(string(data), ", reviewer: true}", "}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := dial(t, "stdio", config, mcp.ProtocolVersion20251125, nil, nil)
	update := map[string]any{"database": "shop", "sql": "UPDATE orders SET status = 'held' WHERE id = 4"}
	r := call(t, alice, "sql_query", update)
	id, _ := r.Body["approval_id"].(string)
	if id == "" {
		t.Fatalf("update = %s; want held", r.Text)
	}
	held := func() int { return count(t, dsn, "SELECT count(*) FROM orders WHERE id = 4 AND status = 'held'") }
	_, errOut, code := runWarden(t, "approvals", "approve", id, "--config", as(t, config, "bob@example.com", "dba"))
	if code != 1 || !strings.Contains(errOut, "identity.local.reviewer: true") {
		t.Errorf("a local dba approving without the opt-in = %d %q; want refused, naming the setting", code, errOut)
	}
	update["approval_id"] = id
	if r := call(t, alice, "sql_query", update); !r.IsError || held() != 0 {
		t.Fatalf("retry after a refused approval = %v %q; want it still held", r.IsError, r.Text)
	}
	if out, errOut, code := runWarden(t, "approvals", "approve", id, "--config", as(t, withFlag, "bob@example.com", "dba")); code != 0 {
		t.Fatalf("a local dba approving with reviewer: true = %d %s%s", code, out, errOut)
	}
	if r := call(t, alice, "sql_query", update); r.IsError || held() != 1 {
		t.Errorf("retry after the approval = %v %q; want it to run", r.IsError, r.Text)
	}
}

// TestApprovalsTableEditedByHandReleasesNothing: someone who can write the
// store sets a held request to approved, or puts back the approved row of
// a request already used. Neither runs the call (again): a row counts only
// if warden's MAC over it verifies and the chain's newest record for it
// names the same status.
func TestApprovalsTableEditedByHandReleasesNothing(t *testing.T) {
	dsn := pgtest.New(t, e2eSchema)
	config := approvalsConfig(t, dsn, "0s", "")
	bob := as(t, config, "bob@example.com", "dba")
	alice := dial(t, "stdio", config, mcp.ProtocolVersion20251125, nil, nil)
	total := func(id int) int {
		return count(t, dsn, "SELECT (total * 100)::int FROM orders WHERE id = $1", id)
	}
	edit := func(q string, args ...any) {
		t.Helper()
		db, err := sqlOpen(storePath(config))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DROP TRIGGER IF EXISTS approvals_forward`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	hold := func(id int) (map[string]any, string) {
		t.Helper()
		update := map[string]any{"database": "shop", "sql": fmt.Sprintf("UPDATE orders SET total = total + 1 WHERE id = %d", id)}
		r := call(t, alice, "sql_query", update)
		aid, _ := r.Body["approval_id"].(string)
		if aid == "" {
			t.Fatalf("update = %s; want held", r.Text)
		}
		update["approval_id"] = aid
		return update, aid
	}

	t.Run("PendingSetToApproved", func(t *testing.T) {
		before := total(5)
		update, id := hold(5)
		edit(`UPDATE approvals SET status = 'approved', body = json_set(body, '$.status', 'approved') WHERE id = ?`, id)
		if r := call(t, alice, "sql_query", update); !r.IsError || total(5) != before || !strings.Contains(r.Text, "changed outside warden") {
			t.Errorf("retry after a hand-made approval = %v %q, total %d → %d; want refused, unchanged", r.IsError, r.Text, before, total(5))
		}
	})

	t.Run("UsedApprovalPutBack", func(t *testing.T) {
		before := total(6)
		update, id := hold(6)
		if out, errOut, code := runWarden(t, "approvals", "approve", id, "--config", bob); code != 0 {
			t.Fatalf("bob approving = %d %s%s", code, out, errOut)
		}
		var body string
		var mac []byte
		func() {
			db, err := sqlOpen(storePath(config))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.QueryRow(`SELECT body, mac FROM approvals WHERE id = ?`, id).Scan(&body, &mac); err != nil {
				t.Fatal(err)
			}
		}()
		if r := call(t, alice, "sql_query", update); r.IsError || total(6) != before+100 {
			t.Fatalf("retry after bob's approval = %v %q; want it to run once", r.IsError, r.Text)
		}
		edit(`UPDATE approvals SET status = 'approved', body = ?, mac = ? WHERE id = ?`, body, mac, id)
		if r := call(t, alice, "sql_query", update); !r.IsError || total(6) != before+100 || !strings.Contains(r.Text, "changed outside warden") {
			t.Errorf("retry with the approved row put back = %v %q, total %d → %d; want refused, run once", r.IsError, r.Text, before, total(6))
		}
	})
}
