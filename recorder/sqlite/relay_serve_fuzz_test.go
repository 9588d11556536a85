package sqlite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// Any bytes a peer sends the relay, judged by what the store holds after
// them: every record committed is a call record that was sent byte for
// byte, in the order sent, one for each "committed" answer; the chain
// still verifies; and the relay still serves the next warden.
func FuzzRelayServe(f *testing.F) {
	if !sqlite.RelaySupported {
		f.Skip("no relay on this platform")
	}
	path := filepath.Join(f.TempDir(), "warden.db")
	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })

	start := sqlite.RelayFrame(recorder.KindCallStart, "s1", "c1", "2026-12-05T00:00:00Z", `{"tool":"sql_query"}`)
	f.Add(start)
	f.Add(append(append([]byte(nil), start...), sqlite.RelayFrame(recorder.KindCallFinish, "", "c1", "", `{}`)...))
	f.Add(append(append([]byte(nil), start...), start...)) // the second is refused: a duplicate
	f.Add(sqlite.RelayFrame(recorder.KindSessionStart, "s1", "c2", "", `{"id":"s1"}`))
	f.Add(sqlite.RelayFrame(recorder.KindCallStart, "", "c3", "", "\x00\xff not JSON"))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<30))
	f.Add(start[:10])

	last := func(t *testing.T) int64 {
		var seq int64
		if err := db.QueryRow(`SELECT coalesce(max(seq), 0) FROM records`).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := last(t)
		conn, err := net.Dial("unix", sqlite.RelaySocket(path))
		if err != nil {
			t.Fatalf("the relay no longer listens: %v", err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		hello := make([]byte, 8+16+ed25519.PublicKeySize)
		if _, err := io.ReadFull(conn, hello); err != nil {
			t.Fatalf("no greeting: %v", err)
		}
		conn.Write(data) // may fail once the relay stops reading: judged below
		conn.(*net.UnixConn).CloseWrite()
		answers, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("reading the answers: %v", err)
		}
		committed := 0
		for len(answers) > 0 {
			if len(answers) < 5 {
				t.Fatalf("a truncated answer: %q", answers)
			}
			n := int(binary.BigEndian.Uint32(answers[1:5]))
			if answers[0] > 2 || n > 4096 || len(answers) < 5+n {
				t.Fatalf("a malformed answer: %q", answers)
			}
			if answers[0] == 0 {
				committed++
			}
			answers = answers[5+n:]
		}

		rows, err := db.Query(`SELECT kind, coalesce(session_id, ''), coalesce(call_id, ''), coalesce(at, ''), body
			FROM records WHERE seq > ? ORDER BY seq`, before)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		rest, got := data, 0
		for rows.Next() {
			var kind, session, call, at, body string
			if err := rows.Scan(&kind, &session, &call, &at, &body); err != nil {
				t.Fatal(err)
			}
			frame := sqlite.RelayFrame(kind, session, call, at, body)
			if kind != recorder.KindCallStart && kind != recorder.KindCallFinish || call == "" {
				// The store's own signed checkpoints come between
				// records; one that was sent must not be committed.
				if kind != recorder.KindCheckpoint || bytes.Contains(data, frame) {
					t.Fatalf("the relay committed a %q record (call %q)", kind, call)
				}
				continue
			}
			got++
			i := bytes.Index(rest, frame)
			if i < 0 {
				t.Fatalf("committed %s of %q: not a frame that was sent (or not in the order sent)", kind, call)
			}
			rest = rest[i+len(frame):]
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if got != committed {
			t.Fatalf("%d records committed, %d answered as committed", got, committed)
		}
		if _, err := s.Verify(context.Background(), nil); err != nil {
			t.Fatalf("the chain after the relay's records: %v", err)
		}
	})
}
