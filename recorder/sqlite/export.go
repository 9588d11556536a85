package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/warden-mcp/warden/recorder"
)

// Export writes records as JSON lines, one object per record, for a SIEM
// or an auditor:
//
//	{"seq":12,"kind":"call_finish","session_id":"s-…","call_id":"c-…","at":"2025-…Z",
//	 "body":{…},"prev_hash":"<hex>","hash":"<hex>"}
//
// NULL columns are null. body is the stored text itself, byte for byte
// (it is always a JSON object; anything else is written as a JSON string),
// so anyone can recompute each hash as chain.go describes, and
// VerifyExport (`warden sessions verify --export FILE`) checks a file
// without the store. With a non-zero since, the export starts at the first
// record stamped at or after it and runs to the end: a contiguous stretch of
// the chain, vouched for by the checkpoints in it. Export reads one
// snapshot and returns the number of records written.
func (s *Store) Export(ctx context.Context, w io.Writer, since time.Time) (int64, error) {
	if s.version < 2 {
		return 0, fmt.Errorf("store schema version %d has no hash chain: open it with warden serve once to migrate it", s.version)
	}
	var n int64
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		from := int64(0)
		if !since.IsZero() {
			var first sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM records WHERE at >= ?`, recorder.FormatTime(since)).Scan(&first); err != nil {
				return err
			}
			if !first.Valid {
				return nil
			}
			from = first.Int64
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, kind, session_id, call_id, at, body, prev_hash, hash
			FROM records WHERE seq >= ? ORDER BY seq`, from)
		if err != nil {
			return err
		}
		defer rows.Close()
		bw := bufio.NewWriterSize(w, 64<<10)
		var line []byte
		var seq int64
		var kind, body, prev, hash sql.RawBytes
		var sid, cid, at sql.NullString
		for rows.Next() {
			if err := rows.Scan(&seq, &kind, &sid, &cid, &at, &body, &prev, &hash); err != nil {
				return err
			}
			line = append(line[:0], `{"seq":`...)
			line = strconv.AppendInt(line, seq, 10)
			line = append(line, `,"kind":`...)
			line = appendJSONString(line, string(kind))
			line = append(line, `,"session_id":`...)
			line = appendJSONNullable(line, sid)
			line = append(line, `,"call_id":`...)
			line = appendJSONNullable(line, cid)
			line = append(line, `,"at":`...)
			line = appendJSONNullable(line, at)
			line = append(line, `,"body":`...)
			if rawBodyOK(body) {
				line = append(line, body...)
			} else {
				line = appendJSONString(line, string(body))
			}
			line = append(line, `,"prev_hash":"`...)
			line = hex.AppendEncode(line, prev)
			line = append(line, `","hash":"`...)
			line = hex.AppendEncode(line, hash)
			line = append(line, "\"}\n"...)
			if _, err := bw.Write(line); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return n, fmt.Errorf("exporting records: %w", err)
	}
	return n, nil
}

// rawBodyOK reports whether a stored body can be embedded as is: a JSON
// object on one line. This package writes nothing else, but a tampered
// store might hold anything, and the export must stay one record a line.
func rawBodyOK(b []byte) bool {
	return len(b) > 0 && b[0] == '{' && bytes.IndexAny(b, "\r\n") < 0 && json.Valid(b)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}

func appendJSONNullable(b []byte, s sql.NullString) []byte {
	if !s.Valid {
		return append(b, "null"...)
	}
	return appendJSONString(b, s.String)
}
