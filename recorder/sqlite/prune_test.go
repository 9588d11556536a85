package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// writeSession records a session with n allowed calls.
func writeSession(t testing.TB, s *sqlite.Store, id string, at time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	must(t, s.StartSession(ctx, session(id, alice, at)))
	for i := range n {
		c := allowedCall(fmt.Sprintf("%s-c%d", id, i), id, alice, at.Add(time.Duration(i)*time.Second))
		must(t, s.StartCall(ctx, c))
		must(t, s.FinishCall(ctx, finish(c, &warden.Result{Structured: map[string]any{"i": i}, Count: 1}, nil, time.Millisecond)))
	}
	must(t, s.EndSession(ctx, id, at.Add(time.Hour)))
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	url := "sqlite:" + path
	old := t0.Add(-100 * 24 * time.Hour)

	// A hundred days ago: two sessions, checkpointed every 5 records and
	// at close.
	s, err := sqlite.OpenWith(ctx, url, recorder.Options{CheckpointEvery: 5, Clock: func() time.Time { return old }})
	must(t, err)
	writeSession(t, s, "old1", old, 3)
	writeSession(t, s, "old2", old.Add(time.Hour), 3)
	pub, err := s.PublicKey()
	must(t, err)
	must(t, s.Close())
	oldRecords := int64(countRows(t, path, ""))

	// Today.
	s, err = sqlite.OpenWith(ctx, url, recorder.Options{CheckpointEvery: 5, Clock: func() time.Time { return t0 }})
	must(t, err)
	defer s.Close()
	writeSession(t, s, "new1", t0, 2)

	defer sqlite.SetPruneChunk(4)() // several steps, each anchored
	p, err := s.Prune(ctx, t0.Add(-90*24*time.Hour))
	if err != nil {
		t.Fatalf("Prune = %v", err)
	}
	// Everything before the last old checkpoint goes; it stays as the
	// anchor.
	if p.Records != oldRecords-1 || p.Anchor != oldRecords {
		t.Errorf("Prune = %+v; want %d records before anchor %d", p, oldRecords-1, oldRecords)
	}
	list, err := s.Sessions(ctx, recorder.SessionFilter{})
	must(t, err)
	if len(list) != 1 || list[0].ID != "new1" {
		t.Errorf("Sessions after prune = %+v; want only new1", list)
	}
	if p, err := s.Prune(ctx, t0.Add(-90*24*time.Hour)); err != nil || p.Records != 0 {
		t.Errorf("second Prune = %+v, %v; want nothing left to prune", p, err)
	}
	if _, err := s.Prune(ctx, t0.Add(time.Hour)); err != nil {
		t.Errorf("Prune(up to now) = %v", err)
	}
	must(t, s.Close())

	rep, err := verify(t, path, pub)
	if err != nil {
		t.Fatalf("Verify after prune = %v", err)
	}
	if rep.PrunedBefore <= oldRecords || rep.First != rep.PrunedBefore {
		t.Errorf("Verify after prune = %+v; want the chain to start at the anchor, after record %d", rep, oldRecords)
	}

	t.Run("DeletingMoreIsRefusedByTheSchema", func(t *testing.T) {
		s, err := sqlite.Open(ctx, url)
		must(t, err)
		defer s.Close()
		for _, q := range []string{
			"DELETE FROM records",
			fmt.Sprintf("DELETE FROM records WHERE seq = %d", rep.First),
			"UPDATE horizon SET seq = 1",
			fmt.Sprintf("UPDATE horizon SET seq = %d", rep.Last-1), // a prune record, not a checkpoint
		} {
			if err := sqlite.ExecWriter(ctx, s, q); err == nil {
				t.Errorf("%s = nil; want a refusal", q)
			}
		}
	})

	t.Run("DeletingMoreBehindItsBackIsCaught", func(t *testing.T) {
		kinds := column(t, path, "kind")
		seqs := column(t, path, "seq")
		next := ""
		for i, k := range kinds[1:] {
			if k == "checkpoint" {
				next = seqs[i+1]
				break
			}
		}
		exec(t, path, dropTriggers, "DELETE FROM records WHERE seq < "+next)
		_, err := verify(t, path, pub)
		assertTamper(t, err, rep.First, recorder.Deleted)
	})
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	path, pub := fillStore(t)
	s, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
	must(t, err)
	defer s.Close()
	var out bytes.Buffer
	n, err := s.Export(ctx, &out, time.Time{})
	if err != nil || n != 26 {
		t.Fatalf("Export = %d, %v; want 26 records", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 26 {
		t.Fatalf("export has %d lines; want 26", len(lines))
	}
	var first struct {
		Seq       int64          `json:"seq"`
		Kind      string         `json:"kind"`
		SessionID *string        `json:"session_id"`
		CallID    *string        `json:"call_id"`
		Body      map[string]any `json:"body"`
		PrevHash  string         `json:"prev_hash"`
		Hash      string         `json:"hash"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 is not JSON: %v\n%s", err, lines[0])
	}
	if first.Seq != 1 || first.Kind != "session_start" || first.SessionID == nil || *first.SessionID != "s1" || first.CallID != nil ||
		first.Body["id"] != "s1" || first.PrevHash != strings.Repeat("0", 64) || len(first.Hash) != 64 {
		t.Errorf("line 1 = %s; want session s1's start, no call id, the empty chain as prev_hash, and a hash", lines[0])
	}

	t.Run("Verifies", func(t *testing.T) {
		rep, err := recorder.VerifyExport(strings.NewReader(out.String()), pub)
		if err != nil || rep.Records != 26 || rep.Checkpoints != 3 || rep.Partial {
			t.Errorf("VerifyExport = %+v, %v; want 26 records, 3 checkpoints", rep, err)
		}
	})
	t.Run("EditedLineIsNamed", func(t *testing.T) {
		edited := strings.Replace(out.String(), `"sql":"SELECT id FROM public.orders`, `"sql":"SELECT id FROM public.payroll`, 3)
		_, err := recorder.VerifyExport(strings.NewReader(edited), pub)
		assertTamper(t, err, 3, recorder.Changed) // record 3 is c1's start
	})
	t.Run("DroppedLineIsNamed", func(t *testing.T) {
		dropped := strings.Join(append(append([]string{}, lines[:6]...), lines[7:]...), "\n")
		_, err := recorder.VerifyExport(strings.NewReader(dropped), pub)
		assertTamper(t, err, 7, recorder.Deleted)
	})
	t.Run("SinceStartsMidChainAndVerifies", func(t *testing.T) {
		var part bytes.Buffer
		n, err := s.Export(ctx, &part, t0.Add(5*time.Second))
		if err != nil || n == 0 || n >= 26 {
			t.Fatalf("Export(since) = %d, %v; want part of the chain", n, err)
		}
		rep, err := recorder.VerifyExport(&part, pub)
		if err != nil || !rep.Partial || rep.Last != 26 {
			t.Errorf("VerifyExport(since) = %+v, %v; want a partial chain verified to record 26", rep, err)
		}
	})
	t.Run("KeepsBodiesByteForByte", func(t *testing.T) {
		s, path := openStore(t)
		c := allowedCall("c1", "", alice, t0)
		c.Args = json.RawMessage(`{"sql":"SELECT 'a < b & c', 'é\u2028'"}`)
		must(t, s.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)))
		pub, err := s.PublicKey()
		must(t, err)
		must(t, s.Close())
		r, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{ReadOnly: true})
		must(t, err)
		defer r.Close()
		var b bytes.Buffer
		_, err = r.Export(ctx, &b, time.Time{})
		must(t, err)
		if _, err := recorder.VerifyExport(bufio.NewReader(&b), pub); err != nil {
			t.Errorf("VerifyExport(body with <, & and non-ASCII) = %v", err)
		}
	})
}
