package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/warden-mcp/warden/recorder"
)

// TestVerifyReportNeverCallsTheMACTailSigned: a --pubkey verification of a
// store whose head's signature lags its MAC part (warden was killed within
// a moment of writing) says which records the signature does not cover,
// and does not say the store reaches a signed head beyond them; one with
// the signing key says the MAC vouches for the rest.
func TestVerifyReportNeverCallsTheMACTailSigned(t *testing.T) {
	report := func(rep *recorder.VerifyReport) string {
		var b bytes.Buffer
		writeVerifyReport(&b, "sqlite:x.db", rep, "the key given with --pubkey")
		return b.String()
	}
	pub := report(&recorder.VerifyReport{Records: 7, First: 1, Last: 7,
		Head: &recorder.Head{Seq: 1, Signed: 1, Claimed: 7, At: "t"}, AfterHead: 6})
	if !strings.Contains(pub, "reaches its signed head (record 1,") || !strings.Contains(pub, "6 records after the signed head (seq 2..7): NOT vouched for by the signature") {
		t.Errorf("pubkey report:\n%s\nwant the signed head at 1 and records 2..7 reported as not vouched for", pub)
	}
	if strings.Contains(pub, "record 7,") {
		t.Errorf("pubkey report:\n%s\nnames record 7 as reached", pub)
	}
	key := report(&recorder.VerifyReport{Records: 7, First: 1, Last: 7, MACs: 7,
		Head: &recorder.Head{Seq: 7, Signed: 1, MACed: true, At: "t"}})
	if !strings.Contains(key, "reaches its head (record 7,") || !strings.Contains(key, "its signature names record 1, its MAC") || strings.Contains(key, "NOT vouched") {
		t.Errorf("report with the signing key:\n%s\nwant the head at 7, signed at 1, the rest vouched for by the MAC", key)
	}
	// A head that is not a file's (PostgreSQL's heads table) has no
	// signed part apart from its seq.
	pg := report(&recorder.VerifyReport{Records: 7, First: 1, Last: 7, Head: &recorder.Head{Seq: 7, At: "t"}})
	if !strings.Contains(pg, "reaches its signed head (record 7,") {
		t.Errorf("report of a head from a table:\n%s\nwant it to reach its signed head", pg)
	}
}
