package recorder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// ExportRecord is one record as an export writes it: see the SQLite
// store's Export for the format. Instance names the chain in a store
// several instances write (PostgreSQL); it is "" for a store with one
// chain, whose lines then carry no "instance" key, so such an export is
// byte for byte what it was before stores had instances.
type ExportRecord struct {
	Instance              string
	Seq                   int64
	Kind                  string
	SessionID, CallID, At *string
	Body                  []byte
	PrevHash, Hash        []byte
}

// AppendExportLine appends r as one JSON line (with its newline) to line.
// body is the stored text itself when it is a JSON object on one line, a
// JSON string otherwise, so the hash can be recomputed from the line.
func AppendExportLine(line []byte, r *ExportRecord) []byte {
	line = append(line, '{')
	if r.Instance != "" {
		line = append(line, `"instance":`...)
		line = appendJSONString(line, r.Instance)
		line = append(line, ',')
	}
	line = append(line, `"seq":`...)
	line = strconv.AppendInt(line, r.Seq, 10)
	line = append(line, `,"kind":`...)
	line = appendJSONString(line, r.Kind)
	line = append(line, `,"session_id":`...)
	line = appendJSONNullable(line, r.SessionID)
	line = append(line, `,"call_id":`...)
	line = appendJSONNullable(line, r.CallID)
	line = append(line, `,"at":`...)
	line = appendJSONNullable(line, r.At)
	line = append(line, `,"body":`...)
	if rawBodyOK(r.Body) {
		line = append(line, r.Body...)
	} else {
		line = appendJSONString(line, string(r.Body))
	}
	line = append(line, `,"prev_hash":"`...)
	line = hex.AppendEncode(line, r.PrevHash)
	line = append(line, `","hash":"`...)
	line = hex.AppendEncode(line, r.Hash)
	return append(line, "\"}\n"...)
}

func rawBodyOK(b []byte) bool {
	return len(b) > 0 && b[0] == '{' && bytes.IndexAny(b, "\r\n") < 0 && json.Valid(b)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}

func appendJSONNullable(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}
