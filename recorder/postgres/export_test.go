package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden/internal/pgtest"
	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
)

func TestExportVerifiesPerChain(t *testing.T) {
	ctx := context.Background()
	url, keys := pgtest.New(t, ""), keyDir(t)
	a, b := open(t, url, keys, "w1"), open(t, url, keys, "w2")
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Hour)
		for j, s := range []*postgres.Store{a, b} {
			c := call(fmt.Sprintf("c-%d-%d", i, j), at)
			if err := s.StartCall(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishCall(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	key, err := a.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	// Closing signs each chain's end.
	a.Close()
	b.Close()
	ro, err := postgres.Open(ctx, url, recorder.Options{KeyDir: keys, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var buf bytes.Buffer
	n, err := ro.Export(ctx, &buf, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "postgres://") {
		t.Fatal("the export names the store's URL")
	}
	export := buf.Bytes()
	rep, err := recorder.VerifyExport(bytes.NewReader(export), key)
	if err != nil {
		t.Fatalf("VerifyExport = %v", err)
	}
	if rep.Records != n || len(rep.Chains) != 2 || rep.Chains[0].Instance != "w1" || rep.Chains[1].Instance != "w2" ||
		rep.Chains[0].Checkpoints == 0 || rep.Chains[1].Unsigned != 0 {
		t.Fatalf("report: %d of %d records, chains %+v; want both chains, named, signed to the end", rep.Records, n, rep.Chains)
	}

	lines := strings.SplitAfter(strings.TrimSuffix(string(export), "\n"), "\n")
	w2 := -1
	for i, l := range lines {
		if strings.HasPrefix(l, `{"instance":"w2",`) {
			w2 = i
			break
		}
	}
	if w2 < 2 {
		t.Fatalf("no w2 chain after w1's in the export:\n%s", export)
	}
	verify := func(lines []string) error {
		_, err := recorder.VerifyExport(strings.NewReader(strings.Join(lines, "")), key)
		return err
	}
	chainErr := func(t *testing.T, err error, inst string, tamper recorder.Tamper) {
		t.Helper()
		var ce *recorder.ChainError
		if !errors.As(err, &ce) || ce.Instance != inst || ce.Tamper != tamper || !strings.Contains(err.Error(), "instance "+inst) {
			t.Fatalf("VerifyExport = %v; want %s in instance %s's chain", err, tamper, inst)
		}
	}
	t.Run("ChangedRecordNamesItsInstance", func(t *testing.T) {
		l := append([]string(nil), lines...)
		l[w2+1] = strings.Replace(l[w2+1], `"sql_query"`, `"sql_exec"`, 1)
		if l[w2+1] == lines[w2+1] {
			t.Fatal("nothing changed")
		}
		chainErr(t, verify(l), "w2", recorder.Changed)
	})
	t.Run("DeletedRecordNamesItsInstance", func(t *testing.T) {
		l := append(append([]string(nil), lines[:1]...), lines[2:]...)
		chainErr(t, verify(l), "w1", recorder.Deleted)
	})
	t.Run("RecordMovedToAnotherChain", func(t *testing.T) {
		l := append([]string(nil), lines...)
		l[1] = strings.Replace(l[1], `"instance":"w1"`, `"instance":"w2"`, 1)
		if err := verify(l); err == nil {
			t.Fatal("an export with a record relabelled to another instance verifies")
		}
	})
	t.Run("ChainSplitInTheFile", func(t *testing.T) {
		l := append([]string(nil), lines[:w2]...)
		l = append(l, lines[w2+2:]...)
		l = append(l, lines[w2:w2+2]...)
		chainErr(t, verify(l), "w2", recorder.Reordered)
	})
	t.Run("OneChainAloneVerifies", func(t *testing.T) {
		rep, err := recorder.VerifyExport(strings.NewReader(strings.Join(lines[w2:], "")), key)
		if err != nil || len(rep.Chains) != 1 || rep.Chains[0].Instance != "w2" {
			t.Fatalf("w2's lines alone: %v, %+v", err, rep)
		}
	})
	t.Run("Since", func(t *testing.T) {
		var buf bytes.Buffer
		n2, err := ro.Export(ctx, &buf, t0.Add(90*time.Minute))
		if err != nil || n2 == 0 || n2 >= n {
			t.Fatalf("Export since = %d records, %v; want fewer than %d", n2, err, n)
		}
		rep, err := recorder.VerifyExport(&buf, key)
		if err != nil || len(rep.Chains) != 2 || !rep.Chains[0].Partial || rep.Chains[0].First == 1 {
			t.Fatalf("VerifyExport(since) = %v, %+v; want both chains, each from mid-chain", err, rep)
		}
	})
}
