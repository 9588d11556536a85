package sqlite

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/warden-mcp/warden/recorder"
)

// frameOf is the tests' own encoding of a relayed record, written from
// the protocol's description (relay.go, appendRelayRecord's comment)
// rather than by calling it: the length, then kind, session id, call id
// and time, each a 4-byte length and its bytes, then the body.
func frameOf(kind, session, call, at, body string) []byte {
	var b []byte
	for _, f := range []string{kind, session, call, at} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	b = append(b, body...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// The relay's frame reader, on any bytes a peer may send: it never panics,
// never holds more than one bounded frame, and what it accepts is a call
// record whose canonical encoding is exactly the bytes it consumed, so
// the record the relay commits is the record that was sent, not one
// read differently from the same bytes.
func FuzzReadRelayRecord(f *testing.F) {
	start := frameOf(recorder.KindCallStart, "s1", "c1", "2026-12-05T00:00:00Z", `{"tool":"sql_query"}`)
	finish := frameOf(recorder.KindCallFinish, "", "c1", "", `{}`)
	f.Add(start)
	f.Add(append(append([]byte(nil), start...), finish...))
	f.Add(frameOf(recorder.KindCheckpoint, "", "x", "", `{"seq":1}`))
	f.Add(frameOf(recorder.KindCallStart, "", "", "", `{}`))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<30))
	f.Add(binary.BigEndian.AppendUint32(nil, 3))
	f.Add(append(binary.BigEndian.AppendUint32(nil, 16), binary.BigEndian.AppendUint32(make([]byte, 12), 1000)...))
	f.Add(start[:10])
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, 16<<10)
		var buf []byte
		consumed := 0
		for {
			p, err := readRelayRecord(br, &buf)
			if cap(buf) > maxRelayRecord+16 {
				t.Fatalf("the reader holds %d bytes; one frame is at most %d", cap(buf), maxRelayRecord+16)
			}
			if err != nil {
				if p != nil {
					t.Fatalf("an error (%v) and a record", err)
				}
				return
			}
			now := len(data) - src.Len() - br.Buffered()
			got := data[consumed:now]
			consumed = now
			if p.kind != recorder.KindCallStart && p.kind != recorder.KindCallFinish {
				t.Fatalf("accepted a %q record; the relay takes call records only", p.kind)
			}
			if p.callID == "" {
				t.Fatal("accepted a call record without a call id")
			}
			if !relayed(p) {
				t.Fatalf("accepted a record its sender would not relay: %+v", p)
			}
			if want := frameOf(p.kind, p.sessionID, p.callID, p.at, p.body); !bytes.Equal(got, want) {
				t.Fatalf("read %q from the bytes %q, whose encoding is %q", p.callID, got, want)
			}
			if again := appendRelayRecord(nil, p); !bytes.Equal(again, got) {
				t.Fatalf("the sender's encoding of the record read differs from the bytes read")
			}
			if !p.hashed {
				t.Fatal("a relayed record is committed unhashed")
			}
		}
	})
}
