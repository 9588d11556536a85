package approvals_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

var (
	alice = &warden.Caller{Subject: "alice@example.com", Email: "alice@example.com", Groups: []string{"analysts", "dba"}, Method: "local"}
	bob   = &warden.Caller{Subject: "bob@example.com", Groups: []string{"dba"}, Method: "local"}
	carol = &warden.Caller{Subject: "carol@example.com", Groups: []string{"analysts"}, Method: "local"}
	// mallory is alice's subject from another issuer.
	mallory = &warden.Caller{Subject: "alice@example.com", Issuer: "https://other.example/", Method: "oidc"}
)

// clock is the injected clock: tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// estimating is the tool a call was planned by: the service asks it for
// the planner's estimate (tools/sql runs EXPLAIN; see its tests).
type estimating struct {
	rows  int64
	ok    bool
	err   error
	calls atomic.Int32
	// preview, when set, is what the tool previews a write to do.
	preview *warden.WritePreview
}

func (e *estimating) Preview(context.Context, *warden.Action) (*warden.WritePreview, error) {
	return e.preview, nil
}

func (e *estimating) Spec() warden.ToolSpec { return warden.ToolSpec{Name: "sql_query"} }
func (e *estimating) Plan(context.Context, json.RawMessage) (*warden.Action, error) {
	return nil, errors.New("not used")
}
func (e *estimating) Execute(context.Context, *warden.Action) (*warden.Result, error) {
	return nil, errors.New("not used")
}
func (e *estimating) Estimate(context.Context, *warden.Action) (int64, bool, error) {
	e.calls.Add(1)
	return e.rows, e.ok, e.err
}

type fixture struct {
	t     *testing.T
	svc   *approvals.Service
	store *sqlite.Store
	clock *clock
	tool  *estimating
	n     int
}

var kinds = map[string]string{"shop": "postgres", "billing": "http", "cluster": "kubernetes"}

func wait(d time.Duration) *warden.Duration { w := warden.Duration(d); return &w }

func rows(n int64) *int64 { return &n }

// newFixture serves rules over a real recording store.
func newFixture(t *testing.T, rules ...*approvals.Rule) *fixture {
	t.Helper()
	cfg := approvals.Config(rules)
	if err := cfg.Validate(kinds); err != nil {
		t.Fatalf("rules do not validate: %v", err)
	}
	store, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, clock: &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}, tool: &estimating{rows: 7, ok: true}}
	ids := 0
	f.svc = &approvals.Service{Rules: cfg, Kinds: kinds, Store: store, Key: []byte("0123456789abcdef0123456789abcdef"),
		Clock: f.clock.now, NewID: func() string { ids++; return fmt.Sprintf("a-%d", ids) }, Poll: 2 * time.Millisecond}
	return f
}

// call is a call policy allowed: who, what it does, and the arguments it
// was made with (their hash binds approvals).
func (f *fixture) call(who *warden.Caller, args map[string]any) *warden.Call {
	f.t.Helper()
	f.n++
	raw, _ := json.Marshal(args)
	hash, err := warden.CallHash("sql_query", raw)
	if err != nil {
		f.t.Fatal(err)
	}
	stmt, _ := args["sql"].(string)
	verb := strings.ToLower(strings.Fields(stmt)[0])
	a := &warden.Action{Tool: "sql_query", Backend: "shop", Kind: verb, Statement: stmt,
		Ops: []warden.Op{{Verb: verb, Object: "public.orders", Unfiltered: !strings.Contains(stmt, "WHERE") && verb != "select"}}}
	a.Purpose, _ = args["purpose"].(string)
	a.ApprovalID, _ = args["approval_id"].(string)
	return &warden.Call{ID: fmt.Sprintf("c-%d", f.n), SessionID: "s-1", Caller: who, Tool: "sql_query", Action: a, Hash: hash}
}

// approve runs the approval stage for c, with what the client can do.
func (f *fixture) approve(c *warden.Call, in *warden.Interaction) *warden.Error {
	f.t.Helper()
	return warden.AsError(f.svc.Approve(warden.WithInteraction(context.Background(), in), c, f.tool))
}

func (f *fixture) stored(id string) *warden.Approval {
	f.t.Helper()
	a, err := f.store.Approval(context.Background(), id)
	if err != nil {
		f.t.Fatalf("Approval(%s) = %v", id, err)
	}
	return a
}

// history is the recorded history of request id, one "from→to" per change.
func (f *fixture) history(id string) string {
	f.t.Helper()
	evs, err := f.store.ApprovalHistory(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Kind == "request" {
			out = append(out, "request")
			continue
		}
		s := ev.From + "→" + ev.To
		if ev.By != nil {
			s += " by " + ev.By.Subject
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func destructiveSQL(approvers warden.Approvers) *approvals.Rule {
	return &approvals.Rule{Name: "destructive-sql", Backend: "shop", When: []string{"insert", "update", "delete", "ddl"},
		Approvers: &approvers, Timeout: warden.Duration(10 * time.Minute), Wait: wait(0)}
}

var deleteArgs = map[string]any{"database": "shop", "sql": "DELETE FROM orders WHERE id = 3", "purpose": "remove the test order"}

func with(args map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range args {
		out[key] = val
	}
	out[k] = v
	return out
}

func TestRules(t *testing.T) {
	user := warden.Approvers{User: true}
	rules := []*approvals.Rule{
		{Name: "big-reads", Backend: "shop", When: []string{"select"}, RowsAbove: rows(1000), Approvers: &user},
		{Name: "wipes", Backend: "shop", When: []string{"update_without_where", "delete_without_where"}, Approvers: &warden.Approvers{Groups: []string{"dba"}}},
		{Name: "payroll", Backend: "shop", Tables: []string{"hr.*"}, Approvers: &user},
		{Name: "writes", Backend: "shop", When: []string{"insert", "update", "delete", "merge", "truncate", "ddl"}, Approvers: &user},
		{Name: "payments", Backend: "billing", When: []string{"POST", "DELETE"}, Paths: []string{"/v1/payments/**"}, Approvers: &user},
		{Name: "secret-reads", Backend: "cluster", Resources: []string{"secrets"}, Approvers: &user},
		{Name: "prod-lists", Backend: "cluster", When: []string{"list"}, Namespaces: []string{"prod-*"}, Approvers: &user},
		{Name: "event-gets", Backend: "cluster", When: []string{"get"}, Resources: []string{"events"}, Approvers: &user},
		{Name: "net", Backend: "cluster", Resources: []string{"*.networking.k8s.io"}, Approvers: &user},
	}
	f := newFixture(t, rules...)
	sqlAction := func(ops ...warden.Op) *warden.Action {
		return &warden.Action{Tool: "sql_query", Backend: "shop", Kind: ops[0].Verb, Ops: ops}
	}
	cases := []struct {
		name   string
		action *warden.Action
		rows   int64
		noEst  bool
		want   string
	}{
		{"HoldsWritesByVerb", sqlAction(warden.Op{Verb: "update", Object: "public.orders"}), 1, false, "writes"},
		{"LetsSmallReadsThrough", sqlAction(warden.Op{Verb: "select", Object: "public.orders"}), 10, false, ""},
		{"HoldsReadsAboveTheEstimate", sqlAction(warden.Op{Verb: "select", Object: "public.orders"}), 5000, false, "big-reads"},
		{"HoldsReadsWithoutAnEstimate", sqlAction(warden.Op{Verb: "select", Object: "public.orders"}), 0, true, "big-reads"},
		{"FirstMatchDecidesForUnfilteredDelete", sqlAction(warden.Op{Verb: "delete", Object: "public.orders", Unfiltered: true}), 1, false, "wipes"},
		{"FilteredDeleteIsAWrite", sqlAction(warden.Op{Verb: "delete", Object: "public.orders"}), 1, false, "writes"},
		{"HoldsAnyOpOnMatchingTables", sqlAction(warden.Op{Verb: "select", Object: "hr.salaries"}), 1, false, "payroll"},
		{"HoldsDataModifyingCTEByItsWrite", sqlAction(warden.Op{Verb: "select", Object: "public.orders"}, warden.Op{Verb: "delete", Object: "public.orders"}), 1, false, "writes"},
		{"NoOpsNoHold", &warden.Action{Tool: "sql_query", Backend: "shop", Kind: "select"}, 1, false, ""},
		{"HoldsHTTPMethodOnPath", &warden.Action{Tool: "http_call", Backend: "billing", Kind: "POST", Ops: []warden.Op{{Verb: "POST", Object: "/v1/payments/42/refund"}}}, 0, true, "payments"},
		{"LetsOtherPathsThrough", &warden.Action{Tool: "http_call", Backend: "billing", Kind: "POST", Ops: []warden.Op{{Verb: "POST", Object: "/v1/invoices/42"}}}, 0, true, ""},
		{"LetsGETThrough", &warden.Action{Tool: "http_call", Backend: "billing", Kind: "GET", Ops: []warden.Op{{Verb: "GET", Object: "/v1/payments/42"}}}, 0, true, ""},
		{"HoldsReadingASecret", kubeAction("get", warden.KubeObject{Namespace: "staging", Resource: "secrets", Name: "db"}), 0, true, "secret-reads"},
		{"HoldsListingSecretsAnywhere", kubeAction("list", warden.KubeObject{Namespace: "*", Resource: "secrets"}), 0, true, "secret-reads"},
		{"LetsPodsThrough", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "pods"}), 0, true, ""},
		{"HoldsListsInMatchingNamespaces", kubeAction("list", warden.KubeObject{Namespace: "prod-eu", Resource: "pods"}), 0, true, "prod-lists"},
		{"HoldsListsAcrossAllNamespacesUnderANamespaceRule", kubeAction("list", warden.KubeObject{Namespace: "*", Resource: "pods"}), 0, true, "prod-lists"},
		{"HoldsGetsUnderAListRuleToo", kubeAction("get", warden.KubeObject{Namespace: "prod-eu", Resource: "pods", Name: "x"}), 0, true, "prod-lists"},
		{"HoldsListsUnderAGetRule", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "events"}), 0, true, "event-gets"},
		{"HoldsTheSameObjectsUnderAnotherGroup", kubeAction("get", warden.KubeObject{Namespace: "staging", Resource: "events.events.k8s.io", Name: "e"}), 0, true, "event-gets"},
		{"HoldsListsOfTheOtherGroup", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "events.events.k8s.io"}), 0, true, "event-gets"},
		{"GroupGlobHoldsItsGroup", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "ingresses.networking.k8s.io"}), 0, true, "net"},
		{"GroupGlobHoldsTheOldNameOfItsObjects", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "ingresses.extensions"}), 0, true, "net"},
		{"GroupGlobIsOneLabel", kubeAction("list", warden.KubeObject{Namespace: "staging", Resource: "widgets.evil.networking.k8s.io"}), 0, true, ""},
		{"OtherBackendNotHeld", &warden.Action{Tool: "sql_query", Backend: "other", Kind: "delete", Ops: []warden.Op{{Verb: "delete", Object: "public.orders"}}}, 1, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.tool.rows, f.tool.ok = tc.rows, !tc.noEst
			r, _ := f.svc.Rule(context.Background(), tc.action, f.tool)
			got := ""
			if r != nil {
				got = r.Name
			}
			if got != tc.want {
				t.Errorf("Rule(%v, estimate %d) = %q; want %q", tc.action.Ops, tc.rows, got, tc.want)
			}
		})
	}
	t.Run("EstimatesOnlyWhenARuleAsks", func(t *testing.T) {
		f.tool.calls.Store(0)
		f.svc.Rule(context.Background(), sqlAction(warden.Op{Verb: "update", Object: "public.orders"}), f.tool)
		if n := f.tool.calls.Load(); n != 0 {
			t.Errorf("Rule(update) made %d estimates; want 0 (no rule with rows_above covers updates)", n)
		}
	})
	t.Run("FailsClosedWhenTheEstimateFails", func(t *testing.T) {
		f.tool.rows, f.tool.ok, f.tool.err = 1, true, errors.New("connection refused")
		defer func() { f.tool.err = nil }()
		if r, _ := f.svc.Rule(context.Background(), sqlAction(warden.Op{Verb: "select", Object: "public.orders"}), f.tool); r == nil || r.Name != "big-reads" {
			t.Errorf("Rule(select, estimate failed) = %v; want big-reads (held)", r)
		}
	})
}

func kubeAction(verb string, o warden.KubeObject) *warden.Action {
	return &warden.Action{Tool: "kube_get", Backend: "cluster", Kind: verb, Ops: []warden.Op{{Verb: verb, Object: o.String()}}}
}

func TestConfigValidate(t *testing.T) {
	user := warden.Approvers{User: true}
	none := warden.Approvers{}
	cases := []struct {
		name string
		rule *approvals.Rule
		want string
	}{
		{"UnknownBackend", &approvals.Rule{Name: "r", Backend: "shp", Approvers: &user}, `[0].backend: unknown backend "shp" (configured: billing, cluster, shop)`},
		{"MissingName", &approvals.Rule{Backend: "shop", Approvers: &user}, "[0].name: missing name"},
		{"BadName", &approvals.Rule{Name: "Big Deletes", Backend: "shop", Approvers: &user}, `[0].name: "Big Deletes" is not a rule name`},
		{"UnknownSQLCondition", &approvals.Rule{Name: "r", Backend: "shop", When: []string{"drop"}, Approvers: &user}, `[0].when[0]: unknown condition "drop" for a postgres backend`},
		{"MethodOnPostgres", &approvals.Rule{Name: "r", Backend: "shop", When: []string{"POST"}, Approvers: &user}, `[0].when[0]: unknown condition "POST"`},
		{"VerbOnHTTP", &approvals.Rule{Name: "r", Backend: "billing", When: []string{"delete"}, Approvers: &user}, `[0].when[0]: unknown condition "delete" for a http backend`},
		{"TablesOnHTTP", &approvals.Rule{Name: "r", Backend: "billing", Tables: []string{"public.x"}, Approvers: &user}, "[0].tables: tables is a condition for postgres backends"},
		{"PathsOnPostgres", &approvals.Rule{Name: "r", Backend: "shop", Paths: []string{"/x"}, Approvers: &user}, "[0].paths: paths is a condition for http backends"},
		{"RowsOnHTTP", &approvals.Rule{Name: "r", Backend: "billing", RowsAbove: rows(1), Approvers: &user}, "[0].rows_above: rows_above is a condition for postgres backends"},
		{"UnqualifiedTable", &approvals.Rule{Name: "r", Backend: "shop", Tables: []string{"orders"}, Approvers: &user}, "[0].tables[0]: \"orders\" must be schema-qualified"},
		{"BadPath", &approvals.Rule{Name: "r", Backend: "billing", Paths: []string{"v1/x"}, Approvers: &user}, "[0].paths[0]: \"v1/x\" must start with /"},
		{"NoApprovers", &approvals.Rule{Name: "r", Backend: "shop"}, "[0].approvers: missing approvers"},
		{"EmptyApprovers", &approvals.Rule{Name: "r", Backend: "shop", Approvers: &none}, "[0].approvers: no approvers"},
		{"TimeoutTooShort", &approvals.Rule{Name: "r", Backend: "shop", Approvers: &user, Timeout: warden.Duration(time.Second)}, "[0].timeout: 1s is too short"},
		{"WaitLongerThanTimeout", &approvals.Rule{Name: "r", Backend: "shop", Approvers: &user, Timeout: warden.Duration(time.Minute), Wait: wait(2 * time.Minute)}, "[0].wait: wait (2m0s) is longer than timeout (1m0s)"},
		{"VerbOnKube", &approvals.Rule{Name: "r", Backend: "cluster", When: []string{"delete"}, Approvers: &user}, `[0].when[0]: unknown condition "delete" for a kubernetes backend (one of get, list)`},
		{"TablesOnKube", &approvals.Rule{Name: "r", Backend: "cluster", Tables: []string{"public.x"}, Approvers: &user}, "[0].tables: tables is a condition for postgres backends"},
		{"ResourcesOnPostgres", &approvals.Rule{Name: "r", Backend: "shop", Resources: []string{"secrets"}, Approvers: &user}, "[0].resources: resources is a condition for kubernetes backends"},
		{"SubresourceRule", &approvals.Rule{Name: "r", Backend: "cluster", Resources: []string{"pods/log"}, Approvers: &user}, `[0].resources[0]: "pods/log" is not a resource`},
		{"BadWebhookWithoutEchoingIt", &approvals.Rule{Name: "r", Backend: "shop", Approvers: &user, Notify: &approvals.Notify{Webhook: "ftp://hooks.example/T0/secret"}}, "[0].notify.webhook: not an http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := approvals.Config{tc.rule}.Validate(kinds)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hooks.example") {
				t.Errorf("Validate error echoes the webhook URL: %v", err)
			}
		})
	}
	t.Run("DuplicateName", func(t *testing.T) {
		err := approvals.Config{{Name: "r", Backend: "shop", Approvers: &user}, {Name: "r", Backend: "shop", Approvers: &user}}.Validate(kinds)
		if err == nil || !strings.Contains(err.Error(), `[1].name: rule "r" is defined twice`) {
			t.Errorf("Validate(duplicate) = %v", err)
		}
	})
	t.Run("FillsDefaults", func(t *testing.T) {
		r := &approvals.Rule{Name: "r", Backend: "shop", Approvers: &user}
		if err := (approvals.Config{r}).Validate(kinds); err != nil {
			t.Fatal(err)
		}
		if time.Duration(r.Timeout) != 10*time.Minute || time.Duration(*r.Wait) != time.Minute {
			t.Errorf("defaults = timeout %s, wait %s; want 10m, 1m", r.Timeout, *r.Wait)
		}
	})
}

// ask runs c as a client that can ask its user, and returns the question.
func (f *fixture) ask(c *warden.Call) *warden.Pending {
	f.t.Helper()
	e := f.approve(c, &warden.Interaction{CanAsk: true})
	if e == nil || e.Code != warden.NeedsApproval || e.Pending == nil || e.Pending.Ask == nil {
		f.t.Fatalf("Approve(%s) = %v; want NeedsApproval with a question for the user", c.Action.Statement, e)
	}
	return e.Pending
}

// answer is the user's answer: an accept comes with the form ticked, as a
// client showing warden's form sends it.
func answer(state, action string) *warden.Interaction {
	a := &warden.Answer{State: state, Action: action}
	if action == warden.AnswerAccept {
		a.Content = map[string]any{warden.ConfirmField: true}
	}
	return &warden.Interaction{CanAsk: true, Answer: a}
}

func TestUserConfirmation(t *testing.T) {
	t.Run("AsksWithASummaryOfTheExactCall", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
		c := f.call(alice, deleteArgs)
		p := f.ask(c)
		for _, want := range []string{"alice@example.com", "remove the test order", "shop (sql_query)", "DELETE FROM orders WHERE id = 3", "delete public.orders", "Estimated rows: 7", `rule "destructive-sql"`} {
			if !strings.Contains(p.Ask.Message, want) {
				t.Errorf("prompt lacks %q:\n%s", want, p.Ask.Message)
			}
		}
		if c.Approval == nil || c.Approval.Status != warden.ApprovalPending || c.Approval.ID != p.ApprovalID {
			t.Errorf("call approval = %+v; want pending %s", c.Approval, p.ApprovalID)
		}
		a := f.stored(p.ApprovalID)
		if a.Status != warden.ApprovalPending || a.Via != warden.ViaUser || a.CallHash != c.Hash || a.Requester.Subject != alice.Subject || *a.EstimatedRows != 7 {
			t.Errorf("stored request = %+v", a)
		}
	})

	t.Run("RunsOnAcceptOnce", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
		p := f.ask(f.call(alice, deleteArgs))
		retry := f.call(alice, deleteArgs)
		if e := f.approve(retry, answer(p.Ask.State, warden.AnswerAccept)); e != nil {
			t.Fatalf("Approve(accepted) = %v; want nil", e)
		}
		if a := retry.Approval; a == nil || a.Status != warden.ApprovalUsed || a.DecidedBy != alice.Subject {
			t.Errorf("call approval = %+v; want used, decided by alice", a)
		}
		if a := f.stored(p.ApprovalID); a.Status != warden.ApprovalUsed || a.UsedBy != retry.ID {
			t.Errorf("stored = %s used by %q; want used by %s", a.Status, a.UsedBy, retry.ID)
		}
		if h := f.history(p.ApprovalID); h != "request, pending→used by alice@example.com" {
			t.Errorf("history = %s", h)
		}
		// The same state again is a replay: it is ignored, and the user
		// is asked anew.
		replay := f.call(alice, deleteArgs)
		e := f.approve(replay, answer(p.Ask.State, warden.AnswerAccept))
		if e == nil || e.Code != warden.NeedsApproval || e.Pending.ApprovalID == p.ApprovalID {
			t.Fatalf("Approve(replayed state) = %v; want a new question", e)
		}
		if !strings.Contains(replay.Approval.Note, "already used") {
			t.Errorf("replay note = %q; want it to say the state was already used", replay.Approval.Note)
		}
	})

	for _, tc := range []struct {
		name, action string
		content      map[string]any
		want         string
	}{
		{"DeclineRefuses", warden.AnswerDecline, nil, "declined"},
		{"CancelRefuses", warden.AnswerCancel, nil, "cancelled"},
		{"AcceptWithTheBoxUntickedRefuses", warden.AnswerAccept, map[string]any{warden.ConfirmField: false}, "declined"},
		{"AcceptWithoutTheFieldRefuses", warden.AnswerAccept, map[string]any{}, "declined"},
		{"AcceptWithoutContentRefuses", warden.AnswerAccept, nil, "declined"},
		{"AcceptWithAStringRefuses", warden.AnswerAccept, map[string]any{warden.ConfirmField: "true"}, "declined"},
		{"AcceptWithANumberRefuses", warden.AnswerAccept, map[string]any{warden.ConfirmField: float64(1)}, "declined"},
		{"AcceptWithExtraFieldsRefuses", warden.AnswerAccept, map[string]any{warden.ConfirmField: true, "also": "delete more"}, "declined"},
		{"DeclineWithTheBoxTickedRefuses", warden.AnswerDecline, map[string]any{warden.ConfirmField: true}, "declined"},
		{"CapitalisedAcceptRefuses", "Accept", map[string]any{warden.ConfirmField: true}, "cancelled"},
		{"UnknownActionRefuses", "maybe", nil, "cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
			p := f.ask(f.call(alice, deleteArgs))
			retry := f.call(alice, deleteArgs)
			in := answer(p.Ask.State, tc.action)
			in.Answer.Content = tc.content
			e := f.approve(retry, in)
			if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, tc.want) || e.Rule != "approvals.destructive-sql" {
				t.Fatalf("Approve(%s) = %v; want Denied saying %q by approvals.destructive-sql", tc.action, e, tc.want)
			}
			if a := f.stored(p.ApprovalID); a.Status != warden.ApprovalDenied {
				t.Errorf("stored status = %s; want denied", a.Status)
			}
			if !strings.HasPrefix(f.history(p.ApprovalID), "request, pending→denied by alice@example.com") {
				t.Errorf("history = %s", f.history(p.ApprovalID))
			}
		})
	}

	// Answers that do not count: the state is not one warden issued for
	// this principal and this exact call, or it is stale. Each is ignored
	// (the user is asked anew), and the original request stays pending.
	tamper := func(state string, edit func(map[string]any)) string {
		body, mac, _ := strings.Cut(strings.TrimPrefix(state, "w1."), ".")
		raw, _ := base64.RawURLEncoding.DecodeString(body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		edit(m)
		raw, _ = json.Marshal(m)
		return "w1." + base64.RawURLEncoding.EncodeToString(raw) + "." + mac
	}
	for _, tc := range []struct {
		name  string
		who   *warden.Caller
		args  map[string]any
		state func(issued string) string
		later time.Duration
		note  string
	}{
		{"IgnoresAnswerWithoutState", alice, deleteArgs, func(string) string { return "" }, 0, "without a requestState warden issued"},
		{"IgnoresForgedState", alice, deleteArgs, func(string) string { return "w1.eyJ2IjoxfQ.AAAA" }, 0, "without a requestState warden issued"},
		{"IgnoresStateWithEditedPayload", alice, with(deleteArgs, "sql", "DELETE FROM orders"), func(s string) string {
			return tamper(s, func(m map[string]any) { m["hash"] = "edited" })
		}, 0, "without a requestState warden issued"},
		{"IgnoresStateForChangedArguments", alice, with(deleteArgs, "sql", "DELETE FROM orders WHERE id > 0"), func(s string) string { return s }, 0, "different call"},
		{"IgnoresStateForChangedPurpose", alice, with(deleteArgs, "purpose", "something else"), func(s string) string { return s }, 0, "different call"},
		{"IgnoresStateOfAnotherPrincipal", carol, deleteArgs, func(s string) string { return s }, 0, "another principal"},
		{"IgnoresStateOfSameSubjectFromAnotherIssuer", mallory, deleteArgs, func(s string) string { return s }, 0, "another principal"},
		{"IgnoresExpiredState", alice, deleteArgs, func(s string) string { return s }, 11 * time.Minute, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
			p := f.ask(f.call(alice, deleteArgs))
			f.clock.advance(tc.later)
			c := f.call(tc.who, tc.args)
			e := f.approve(c, answer(tc.state(p.Ask.State), warden.AnswerAccept))
			if e == nil || e.Code != warden.NeedsApproval || e.Pending.Ask == nil {
				t.Fatalf("Approve = %v; want the user asked anew (NeedsApproval)", e)
			}
			if e.Pending.ApprovalID == p.ApprovalID {
				t.Errorf("the new question reuses request %s", p.ApprovalID)
			}
			if !strings.Contains(c.Approval.Note, tc.note) {
				t.Errorf("note = %q; want it to contain %q", c.Approval.Note, tc.note)
			}
			if a := f.stored(p.ApprovalID); a.Status != warden.ApprovalPending {
				t.Errorf("original request = %s; want still pending (only its own exact call may use it)", a.Status)
			}
		})
	}

	t.Run("RefusesWhenTheClientCannotBeAsked", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
		e := f.approve(f.call(alice, deleteArgs), &warden.Interaction{CanAsk: false})
		if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "cannot be asked") {
			t.Fatalf("Approve(client without elicitation) = %v; want Denied saying it cannot be asked", e)
		}
	})

	t.Run("FallsBackToReviewersWhenTheClientCannotBeAsked", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{User: true, Groups: []string{"dba"}}))
		e := f.approve(f.call(alice, deleteArgs), &warden.Interaction{CanAsk: false})
		if e == nil || e.Code != warden.NeedsApproval || e.Pending.Ask != nil || e.Pending.ApprovalID == "" {
			t.Fatalf("Approve(client without elicitation) = %v; want pending for reviewers", e)
		}
		if a := f.stored(e.Pending.ApprovalID); a.Via != warden.ViaReviewer {
			t.Errorf("request via = %s; want reviewer", a.Via)
		}
	})

	t.Run("IgnoresAnswersUnderReviewerRules", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{Groups: []string{"dba"}}))
		c := f.call(alice, deleteArgs)
		e := f.approve(c, answer("w1.x.y", warden.AnswerAccept))
		if e == nil || e.Code != warden.NeedsApproval || e.Pending.Ask != nil {
			t.Fatalf("Approve(self-approval through an answer) = %v; want pending for reviewers", e)
		}
		if !strings.Contains(c.Approval.Note, "not decided by the calling user") {
			t.Errorf("note = %q", c.Approval.Note)
		}
	})
}

// pend runs c against a reviewers' rule with no wait, and returns the
// pending request's id.
func (f *fixture) pend(c *warden.Call) string {
	f.t.Helper()
	e := f.approve(c, &warden.Interaction{})
	if e == nil || e.Code != warden.NeedsApproval || e.Pending == nil || e.Pending.ApprovalID == "" || e.Pending.Ask != nil {
		f.t.Fatalf("Approve(%s) = %v; want pending with an approval id", c.Action.Statement, e)
	}
	if !strings.Contains(e.Message, "approval_id") || !strings.Contains(e.Message, e.Pending.ApprovalID) {
		f.t.Errorf("pending message does not tell the agent how to retry: %s", e.Message)
	}
	return e.Pending.ApprovalID
}

func (f *fixture) decide(who *warden.Caller, id string, approve bool, reason string) *warden.Error {
	f.t.Helper()
	_, err := f.svc.Decide(context.Background(), who, id, approve, reason)
	return warden.AsError(err)
}

func TestReviewerApproval(t *testing.T) {
	dba := warden.Approvers{Groups: []string{"dba"}}

	t.Run("ApprovedCallRunsOnceOnRetry", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(carol, deleteArgs))
		if again := f.pend(f.call(carol, deleteArgs)); again != id {
			t.Errorf("the same call asked again = %s; want the pending request %s reused", again, id)
		}
		if e := f.decide(bob, id, true, "ticket OPS-12"); e != nil {
			t.Fatalf("Decide(bob, approve) = %v", e)
		}
		retry := f.call(carol, with(deleteArgs, "approval_id", id))
		if e := f.approve(retry, &warden.Interaction{}); e != nil {
			t.Fatalf("Approve(retry with approval_id) = %v; want nil", e)
		}
		if a := retry.Approval; a.Status != warden.ApprovalUsed || a.DecidedBy != bob.Subject || a.Reason != "ticket OPS-12" {
			t.Errorf("call approval = %+v; want used, decided by bob for ticket OPS-12", a)
		}
		again := f.call(carol, with(deleteArgs, "approval_id", id))
		if e := f.approve(again, &warden.Interaction{}); e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "already used by call "+retry.ID) {
			t.Errorf("Approve(second retry) = %v; want Denied: already used", e)
		}
		if h := f.history(id); h != "request, pending→approved by bob@example.com, approved→used" {
			t.Errorf("history = %s", h)
		}
	})

	t.Run("RequesterCannotApprove", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(alice, deleteArgs)) // alice is in dba herself
		if e := f.decide(alice, id, true, ""); e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "requested this call") {
			t.Errorf("Decide(requester) = %v; want Denied", e)
		}
		if e := f.decide(mallory, id, true, ""); e == nil || e.Code != warden.Denied {
			t.Errorf("Decide(requester's subject from another issuer) = %v; want Denied", e)
		}
		if a := f.stored(id); a.Status != warden.ApprovalPending {
			t.Errorf("status = %s; want pending", a.Status)
		}
	})

	t.Run("NonApproverCannotApprove", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(alice, deleteArgs))
		if e := f.decide(carol, id, true, ""); e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "may not decide") {
			t.Errorf("Decide(non-approver) = %v; want Denied", e)
		}
	})

	t.Run("UserConfirmationsAreNotForReviewers", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(warden.Approvers{User: true}))
		p := f.ask(f.call(alice, deleteArgs))
		if e := f.decide(bob, p.ApprovalID, true, ""); e == nil || e.Code != warden.Denied {
			t.Errorf("Decide(user confirmation) = %v; want Denied", e)
		}
	})

	for _, tc := range []struct {
		name string
		who  *warden.Caller
		args map[string]any
		id   string
		want string
	}{
		{"RefusesApprovalForADifferentStatement", carol, with(deleteArgs, "sql", "DELETE FROM orders"), "", "different call"},
		{"RefusesApprovalForADifferentPurpose", carol, with(deleteArgs, "purpose", "other"), "", "different call"},
		{"RefusesApprovalOfAnotherSubject", alice, deleteArgs, "", "another principal"},
		{"RefusesUnknownApprovalID", carol, deleteArgs, "a-404", "not an approval request warden issued"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, destructiveSQL(dba))
			id := f.pend(f.call(carol, deleteArgs))
			if e := f.decide(bob, id, true, ""); e != nil {
				t.Fatal(e)
			}
			if tc.id != "" {
				id = tc.id
			}
			c := f.call(tc.who, with(tc.args, "approval_id", id))
			e := f.approve(c, &warden.Interaction{})
			if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("Approve = %v; want Denied containing %q", e, tc.want)
			}
			if c.Approval == nil || c.Approval.Status != warden.ApprovalDenied {
				t.Errorf("call approval = %+v; want denied recorded", c.Approval)
			}
		})
	}

	t.Run("DeniedCallStaysDenied", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(carol, deleteArgs))
		if e := f.decide(bob, id, false, "not during the freeze"); e != nil {
			t.Fatal(e)
		}
		e := f.approve(f.call(carol, with(deleteArgs, "approval_id", id)), &warden.Interaction{})
		if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "bob@example.com denied") || !strings.Contains(e.Message, "not during the freeze") {
			t.Fatalf("Approve(denied) = %v", e)
		}
		if e := f.decide(bob, id, true, ""); e == nil || !strings.Contains(e.Message, "already denied") {
			t.Errorf("Decide(again) = %v; want refused: already decided", e)
		}
	})

	t.Run("PendingRequestExpires", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(carol, deleteArgs))
		f.clock.advance(10 * time.Minute)
		if e := f.decide(bob, id, true, ""); e == nil || !strings.Contains(e.Message, "expired") {
			t.Errorf("Decide(expired) = %v; want refused: expired", e)
		}
		e := f.approve(f.call(carol, with(deleteArgs, "approval_id", id)), &warden.Interaction{})
		if e == nil || e.Code != warden.Denied || !strings.Contains(e.Message, "expired") {
			t.Errorf("Approve(expired) = %v; want Denied: expired", e)
		}
		if h := f.history(id); h != "request, pending→expired" {
			t.Errorf("history = %s; want the expiry recorded once", h)
		}
		// A fresh call gets a fresh request.
		if fresh := f.pend(f.call(carol, deleteArgs)); fresh == id {
			t.Errorf("a new call reused expired request %s", id)
		}
	})

	t.Run("ApprovalMustBeUsedWithinTheTimeout", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(carol, deleteArgs))
		f.clock.advance(9 * time.Minute)
		if e := f.decide(bob, id, true, ""); e != nil {
			t.Fatal(e)
		}
		f.clock.advance(9 * time.Minute) // usable for 10m after approval
		if e := f.approve(f.call(carol, with(deleteArgs, "approval_id", id)), &warden.Interaction{}); e != nil {
			t.Fatalf("Approve 9m after approval = %v; want nil", e)
		}
		id2 := f.pend(f.call(carol, deleteArgs))
		if e := f.decide(bob, id2, true, ""); e != nil {
			t.Fatal(e)
		}
		f.clock.advance(10 * time.Minute)
		if e := f.approve(f.call(carol, with(deleteArgs, "approval_id", id2)), &warden.Interaction{}); e == nil || !strings.Contains(e.Message, "expired") {
			t.Errorf("Approve 10m after approval = %v; want Denied: expired", e)
		}
		if h := f.history(id2); h != "request, pending→approved by bob@example.com, approved→expired" {
			t.Errorf("history = %s", h)
		}
	})

	t.Run("ExpirySweepRecordsStaleRequests", func(t *testing.T) {
		f := newFixture(t, destructiveSQL(dba))
		id := f.pend(f.call(carol, deleteArgs))
		if n, err := f.svc.Expire(context.Background()); err != nil || n != 0 {
			t.Fatalf("Expire before the timeout = %d, %v; want 0", n, err)
		}
		f.clock.advance(time.Hour)
		if n, err := f.svc.Expire(context.Background()); err != nil || n != 1 {
			t.Fatalf("Expire after the timeout = %d, %v; want 1", n, err)
		}
		if a := f.stored(id); a.Status != warden.ApprovalExpired {
			t.Errorf("status = %s; want expired", a.Status)
		}
	})

	t.Run("WaitingCallRunsAsSoonAsApproved", func(t *testing.T) {
		r := destructiveSQL(dba)
		r.Wait = wait(time.Minute)
		f := newFixture(t, r)
		waiting := make(chan string, 1)
		in := &warden.Interaction{Progress: func(msg string) {
			select {
			case waiting <- msg:
			default:
			}
		}}
		c := f.call(carol, deleteArgs)
		done := make(chan *warden.Error, 1)
		go func() {
			done <- warden.AsError(f.svc.Approve(warden.WithInteraction(context.Background(), in), c, f.tool))
		}()
		msg := <-waiting // the request exists and the call is waiting on it
		list, err := f.store.Approvals(context.Background(), warden.ApprovalFilter{Status: warden.ApprovalPending})
		if err != nil || len(list) != 1 {
			t.Fatalf("pending requests = %v, %v; want 1", list, err)
		}
		if !strings.Contains(msg, list[0].ID) || !strings.Contains(msg, "dba") {
			t.Errorf("progress = %q; want it to name the request and who approves", msg)
		}
		if e := f.decide(bob, list[0].ID, true, ""); e != nil {
			t.Fatal(e)
		}
		if e := <-done; e != nil {
			t.Fatalf("waiting Approve = %v; want nil once approved", e)
		}
		if c.Approval.Status != warden.ApprovalUsed {
			t.Errorf("call approval = %+v", c.Approval)
		}
	})

	t.Run("CancelledWaitLeavesTheRequestPending", func(t *testing.T) {
		r := destructiveSQL(dba)
		r.Wait = wait(time.Minute)
		f := newFixture(t, r)
		ctx, cancel := context.WithCancel(context.Background())
		in := &warden.Interaction{Progress: func(string) { cancel() }}
		err := f.svc.Approve(warden.WithInteraction(ctx, in), f.call(carol, deleteArgs), f.tool)
		if e := warden.AsError(err); e == nil || e.Code != warden.Unavailable || !strings.Contains(e.Message, "still pending") {
			t.Fatalf("Approve(cancelled) = %v; want Unavailable, still pending", err)
		}
	})

	t.Run("NotifiesTheWebhook", func(t *testing.T) {
		got := make(chan []byte, 1)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- b
		}))
		defer hook.Close()
		r := destructiveSQL(dba)
		r.Notify = &approvals.Notify{Webhook: hook.URL + "/T000/B000/secret"}
		f := newFixture(t, r)
		id := f.pend(f.call(carol, deleteArgs))
		var n struct {
			Text     string
			Approval struct{ ID, Statement string }
		}
		if err := json.Unmarshal(<-got, &n); err != nil {
			t.Fatal(err)
		}
		if n.Approval.ID != id || !strings.Contains(n.Text, "warden approvals approve "+id) || !strings.Contains(n.Text, "DELETE FROM orders WHERE id = 3") || !strings.Contains(n.Text, "carol@example.com") {
			t.Errorf("notification = %+v", n)
		}
	})

	t.Run("NotificationLinksToTheConsole", func(t *testing.T) {
		got := make(chan []byte, 1)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- b
		}))
		defer hook.Close()
		r := destructiveSQL(dba)
		r.Notify = &approvals.Notify{Webhook: hook.URL + "/T000/B000/secret"}
		f := newFixture(t, r)
		f.svc.ConsoleURL = "https://warden.example.com/"
		id := f.pend(f.call(carol, deleteArgs))
		var n struct{ Text, URL string }
		if err := json.Unmarshal(<-got, &n); err != nil {
			t.Fatal(err)
		}
		want := "https://warden.example.com/console/approvals/" + id
		if n.URL != want || !strings.Contains(n.Text, "Review in the console: "+want) {
			t.Errorf("notification = %+v; want url %s in both", n, want)
		}
	})
}
