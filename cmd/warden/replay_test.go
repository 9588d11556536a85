package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output")

// replaySession records one session with a call of every kind a replay
// shows: allowed with rows, masked values and a command tag; denied; a
// different caller; failed with an internal cause; and one still running.
func replaySession(t *testing.T) (*recorder.SessionSummary, []recorder.CallRecord) {
	t.Helper()
	ctx := context.Background()
	s, _ := openTestStore(t)
	must(t, s.StartSession(ctx, session("s-replay", alice, t0)))
	must(t, s.UpdateSession(ctx, &warden.Session{ID: "s-replay", ClientName: "claude-code", ClientVersion: "2.1.0", ProtocolVersion: "2025-11-25"}))

	ok := allowedCall("c1", "s-replay", alice, t0.Add(1500*time.Millisecond))
	ok.Args = json.RawMessage(`{"database":"shop","sql":"SELECT id, email FROM public.customers LIMIT 2","purpose":"find large orders"}`)
	ok.Detected = []string{"email"}
	must(t, s.StartCall(ctx, ok))
	must(t, s.FinishCall(ctx, finish(ok, &warden.Result{Structured: map[string]any{
		"columns": []any{"id", "email"}, "rows": []any{[]any{1, "[masked:email]"}, []any{2, "[masked:email]"}},
		"row_count": 2, "truncated": true, "command": "SELECT 2"}, Count: 2, Truncated: true}, nil, 2345*time.Microsecond)))

	must(t, s.FinishCall(ctx, deniedCall("c2", "s-replay", alice, t0.Add(3*time.Second))))

	other := allowedCall("c3", "s-replay", bob, t0.Add(4*time.Second))
	other.Args = json.RawMessage(`{"database":"shop","sql":"INSERT INTO notes (body) VALUES ($1)","params":["hello"]}`)
	other.Action.Kind, other.Action.Statement, other.Action.Purpose = "insert", "INSERT INTO notes (body) VALUES ($1)", ""
	other.Action.Ops, other.Action.Functions = []warden.Op{{Verb: warden.VerbInsert, Object: "public.notes"}}, nil
	other.Risk = warden.RiskWrite
	other.Decision.Rule, other.Decision.Reasons = "roles.dba.grants[0]", []string{"insert on public.notes is granted to dba"}
	must(t, s.StartCall(ctx, other))
	must(t, s.FinishCall(ctx, finish(other, nil, warden.Wrap(warden.Internal, errors.New("pgconn: connection reset by peer"), "internal error"), 20*time.Millisecond)))

	must(t, s.StartCall(ctx, allowedCall("c4", "s-replay", alice, t0.Add(5*time.Second))))
	must(t, s.EndSession(ctx, "s-replay", t0.Add(time.Minute)))

	sum, calls, err := s.Session(ctx, "s-replay")
	must(t, err)
	return sum, calls
}

func TestReplayGolden(t *testing.T) {
	sum, calls := replaySession(t)
	for _, tt := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"replay.golden", func(b *bytes.Buffer) error { return WriteReplay(b, sum, calls) }},
		{"replay.json.golden", func(b *bytes.Buffer) error { return WriteReplayJSON(b, sum, calls) }},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, b.Bytes())
		})
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestReplayJSONReadsBack(t *testing.T) {
	sum, calls := replaySession(t)
	var b bytes.Buffer
	must(t, WriteReplayJSON(&b, sum, calls))
	var tr Transcript
	if err := json.Unmarshal(b.Bytes(), &tr); err != nil {
		t.Fatalf("replay --json is not JSON: %v", err)
	}
	if len(tr.Calls) != 4 || tr.Calls[2].Caller == nil || tr.Calls[2].Caller.Subject != "bob@example.com" ||
		tr.Calls[0].Result == nil || tr.Calls[0].Result.Rows != 2 || tr.Calls[3].Status != "running" {
		t.Errorf("replay --json read back = %+v; want 4 calls: c1 with 2 rows, c3 by bob, c4 running", tr)
	}
}

func TestSessionsFilterByToolDecisionAndTime(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestStore(t)
	must(t, s.StartSession(ctx, session("s1", alice, t0)))
	must(t, s.StartSession(ctx, session("s2", alice, t0.Add(time.Hour))))
	must(t, s.StartSession(ctx, session("s3", bob, t0.Add(2*time.Hour))))
	c := allowedCall("c1", "s1", alice, t0)
	must(t, s.StartCall(ctx, c))
	must(t, s.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)))
	must(t, s.FinishCall(ctx, deniedCall("c2", "s2", alice, t0.Add(time.Hour))))
	schema := allowedCall("c3", "s3", bob, t0.Add(2*time.Hour))
	schema.Tool = "sql_schema"
	must(t, s.FinishCall(ctx, finish(schema, nil, nil, time.Millisecond)))

	for _, tt := range []struct {
		name   string
		filter recorder.SessionFilter
		want   []string
	}{
		{"Tool", recorder.SessionFilter{Tool: "sql_query"}, []string{"s2", "s1"}},
		{"OtherTool", recorder.SessionFilter{Tool: "sql_schema"}, []string{"s3"}},
		{"Denied", recorder.SessionFilter{Denied: true}, []string{"s2"}},
		{"UntilIsExclusive", recorder.SessionFilter{Until: t0.Add(time.Hour)}, []string{"s1"}},
		{"Range", recorder.SessionFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Hour)}, []string{"s3", "s2"}},
		{"All", recorder.SessionFilter{Subject: "alice@example.com", Tool: "sql_query", Denied: true, Since: t0}, []string{"s2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.Sessions(ctx, tt.filter)
			must(t, err)
			var got []string
			for _, sum := range list {
				got = append(got, sum.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Sessions(%+v) = %v; want %v", tt.filter, got, tt.want)
			}
		})
	}
}
