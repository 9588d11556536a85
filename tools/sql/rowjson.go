package sql

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// rowWriter writes result rows as JSON straight from the bytes pgx read
// off the wire, by column type, without decoding them into Go values
// first: rows.Values() and the conversion of its values cost more than
// the rest of a read (the text[] decoder alone was 14 % of the server's
// CPU). The output is byte for byte what toJSON's values encode to with
// encoding/json, and each value counts the size valueSize gives toJSON's
// value, so max_result_bytes cuts a result at the same row as before.
// The encoders handle the common types in the binary format; anything
// else (other types, the text format, values such as infinite timestamps
// that the fast encoders leave alone) is decoded by pgx and converted by
// toJSON, as every value used to be.
type rowWriter struct {
	cols []cellEncoder
	// fallback decodes what the encoders leave alone.
	typeMap *pgtype.Map
	fds     []pgconn.FieldDescription
	// buf holds the rows array's elements, comma separated, without the
	// brackets.
	buf  []byte
	rows int
	// fallbacks counts the values left to the fallback (tests check the
	// common types never are).
	fallbacks int
}

// cellEncoder appends one non-NULL value's JSON to b and returns its size
// as valueSize counts it; ok is false when it leaves the value to the
// fallback (and then b may hold a partial value, which the caller drops).
type cellEncoder func(b, raw []byte) (out []byte, size int, ok bool)

var rowWriters = sync.Pool{New: func() any { return new(rowWriter) }}

// maxPooledRowBytes keeps a buffer that grew for one huge result from
// being held for the life of the process.
const maxPooledRowBytes = 1 << 20

func newRowWriter(fds []pgconn.FieldDescription, typeMap *pgtype.Map) *rowWriter {
	w := rowWriters.Get().(*rowWriter)
	w.fds, w.typeMap = fds, typeMap
	w.cols = w.cols[:0]
	for _, fd := range fds {
		w.cols = append(w.cols, encoderFor(fd.DataTypeOID, fd.Format, typeMap))
	}
	return w
}

func (w *rowWriter) release() {
	if cap(w.buf) > maxPooledRowBytes {
		return
	}
	w.buf, w.rows, w.fallbacks = w.buf[:0], 0, 0
	w.fds, w.typeMap = nil, nil
	rowWriters.Put(w)
}

// mark is a position to roll back to, see unwrite.
type mark struct{ buf, rows int }

// write appends one row and returns its size as rowSize counts it. An
// error is one pgx's decoder returned for a value the encoders left to it.
func (w *rowWriter) write(raw [][]byte) (mark, int, error) {
	m := mark{len(w.buf), w.rows}
	if w.rows > 0 {
		w.buf = append(w.buf, ',')
	}
	w.buf = append(w.buf, '[')
	size := 2 + len(raw)
	for i, r := range raw {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		start := len(w.buf)
		var n int
		if r == nil {
			w.buf, n = append(w.buf, "null"...), 4
		} else {
			var ok bool
			if w.buf, n, ok = w.cols[i](w.buf, r); !ok {
				var err error
				if w.buf, n, err = w.fallback(w.buf[:start], i, r); err != nil {
					return m, 0, err
				}
			}
		}
		size += n
	}
	w.buf = append(w.buf, ']')
	w.rows++
	return m, size, nil
}

// unwrite drops the rows written since m.
func (w *rowWriter) unwrite(m mark) {
	w.buf, w.rows = w.buf[:m.buf], m.rows
}

// fallback converts a value as every value used to be: decoded by pgx
// (exactly as rows.Values() does), converted by toJSON, encoded by
// encoding/json without HTML escaping.
func (w *rowWriter) fallback(b []byte, col int, raw []byte) ([]byte, int, error) {
	w.fallbacks++
	fd := &w.fds[col]
	var v any
	if t, ok := w.typeMap.TypeForOID(fd.DataTypeOID); ok {
		var err error
		if v, err = t.Codec.DecodeValue(w.typeMap, fd.DataTypeOID, fd.Format, raw); err != nil {
			return b, 0, err
		}
	} else if fd.Format == pgtype.TextFormatCode {
		v = string(raw)
	} else {
		v = append([]byte(nil), raw...)
	}
	j := toJSON(v, fd.DataTypeOID, raw)
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	if err := e.Encode(j); err != nil {
		return b, 0, err
	}
	return append(b, bytes.TrimSuffix(enc.Bytes(), []byte("\n"))...), valueSize(j), nil
}

// arrayElements maps the array types the encoders handle to their
// element type.
var arrayElements = map[uint32]uint32{
	pgtype.BoolArrayOID:        pgtype.BoolOID,
	pgtype.Int2ArrayOID:        pgtype.Int2OID,
	pgtype.Int4ArrayOID:        pgtype.Int4OID,
	pgtype.Int8ArrayOID:        pgtype.Int8OID,
	pgtype.Float4ArrayOID:      pgtype.Float4OID,
	pgtype.Float8ArrayOID:      pgtype.Float8OID,
	pgtype.NumericArrayOID:     pgtype.NumericOID,
	pgtype.TextArrayOID:        pgtype.TextOID,
	pgtype.VarcharArrayOID:     pgtype.VarcharOID,
	pgtype.BPCharArrayOID:      pgtype.BPCharOID,
	pgtype.NameArrayOID:        pgtype.NameOID,
	pgtype.TimestampArrayOID:   pgtype.TimestampOID,
	pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID,
	pgtype.DateArrayOID:        pgtype.DateOID,
	pgtype.UUIDArrayOID:        pgtype.UUIDOID,
	pgtype.ByteaArrayOID:       pgtype.ByteaOID,
}

// encoderFor picks the encoder for a column. The encoders read the binary
// format of pgx's own codecs for these types; a column whose type the
// connection's type map has given another codec goes to the fallback.
func encoderFor(oid uint32, format int16, typeMap *pgtype.Map) cellEncoder {
	t, known := typeMap.TypeForOID(oid)
	if format == pgtype.TextFormatCode {
		if !known {
			// rows.Values() returns an unknown type's text as a string.
			return encodeText
		}
		if builtinCodec(t) {
			// pgx asks for the text format for the types whose codec
			// prefers it (TextCodec, JSONCodec, JSONBCodec): text,
			// varchar, bpchar, name and json, jsonb come this way.
			return textFormatEncoder(oid)
		}
		return leaveToFallback
	}
	if format != pgtype.BinaryFormatCode || !known || !builtinCodec(t) {
		return leaveToFallback
	}
	if elem, ok := arrayElements[oid]; ok {
		enc := scalarEncoder(elem)
		return func(b, raw []byte) ([]byte, int, bool) { return appendArray(b, raw, elem, enc) }
	}
	if enc := scalarEncoder(oid); enc != nil {
		return enc
	}
	return leaveToFallback
}

// builtinCodec reports whether t is the type pgx registers by default for
// its OID: a connection may register its own.
func builtinCodec(t *pgtype.Type) bool {
	d, ok := builtinTypes.TypeForOID(t.OID)
	return ok && d == t
}

func leaveToFallback(b, _ []byte) ([]byte, int, bool) { return b, 0, false }

// textFormatEncoder is the encoder for a value of a built-in type sent in
// the text format. TextCodec decodes either format to string(raw), and
// the json codecs read the same text, so these encoders are the binary
// ones; jsonb's text has no version byte.
func textFormatEncoder(oid uint32) cellEncoder {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UnknownOID:
		return encodeText
	case pgtype.JSONOID:
		return encodeJSON
	case pgtype.JSONBOID:
		return encodeJSONBText
	}
	return leaveToFallback
}

func scalarEncoder(oid uint32) cellEncoder {
	switch oid {
	case pgtype.BoolOID:
		return encodeBool
	case pgtype.Int2OID:
		return encodeInt2
	case pgtype.Int4OID:
		return encodeInt4
	case pgtype.Int8OID:
		return encodeInt8
	case pgtype.Float4OID:
		return encodeFloat4
	case pgtype.Float8OID:
		return encodeFloat8
	case pgtype.NumericOID:
		return encodeNumeric
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return encodeText
	case pgtype.TimestampOID:
		return encodeTimestamp
	case pgtype.TimestamptzOID:
		return encodeTimestamptz
	case pgtype.DateOID:
		return encodeDate
	case pgtype.UUIDOID:
		return encodeUUID
	case pgtype.ByteaOID:
		return encodeBytea
	case pgtype.JSONOID:
		return encodeJSON
	case pgtype.JSONBOID:
		return encodeJSONB
	}
	return nil
}

// numberSize is what valueSize counts for a number or a boolean.
const numberSize = 24

func encodeBool(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 1 {
		return b, 0, false
	}
	if raw[0] == 1 { // as pgx reads it
		return append(b, "true"...), numberSize, true
	}
	return append(b, "false"...), numberSize, true
}

func encodeInt2(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 2 {
		return b, 0, false
	}
	return strconv.AppendInt(b, int64(int16(binary.BigEndian.Uint16(raw))), 10), numberSize, true
}

func encodeInt4(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 4 {
		return b, 0, false
	}
	return strconv.AppendInt(b, int64(int32(binary.BigEndian.Uint32(raw))), 10), numberSize, true
}

func encodeInt8(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 8 {
		return b, 0, false
	}
	v := int64(binary.BigEndian.Uint64(raw))
	if v > maxSafeInt || v < -maxSafeInt {
		start := len(b)
		b = append(b, '"')
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '"')
		return b, len(b) - start, true
	}
	return strconv.AppendInt(b, v, 10), numberSize, true
}

func encodeFloat4(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 4 {
		return b, 0, false
	}
	return appendFloat(b, float64(math.Float32frombits(binary.BigEndian.Uint32(raw))), 32)
}

func encodeFloat8(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 8 {
		return b, 0, false
	}
	return appendFloat(b, math.Float64frombits(binary.BigEndian.Uint64(raw)), 64)
}

// appendFloat writes f as encoding/json writes a float of that many bits;
// NaN and the infinities as floatJSON's strings.
func appendFloat(b []byte, f float64, bits int) ([]byte, int, bool) {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...), 5, true
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...), 10, true
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...), 11, true
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, numberSize, true
}

// encodeNumeric writes a numeric's decimal text from its base-10000
// digits, as PostgreSQL prints it (numericText gives the same text from
// pgx's decoded value): a JSON number when it has at most 15 significant
// digits, a string otherwise (see numericJSON).
func encodeNumeric(b, raw []byte) ([]byte, int, bool) {
	if len(raw) < 8 {
		return b, 0, false
	}
	ndigits := int(binary.BigEndian.Uint16(raw))
	weight := int(int16(binary.BigEndian.Uint16(raw[2:])))
	sign := binary.BigEndian.Uint16(raw[4:])
	dscale := int(int16(binary.BigEndian.Uint16(raw[6:])))
	switch sign {
	case 0xC000:
		return append(b, `"NaN"`...), 5, true
	case 0xD000:
		return append(b, `"Infinity"`...), 10, true
	case 0xF000:
		return append(b, `"-Infinity"`...), 11, true
	case 0x0000, 0x4000:
	default:
		return b, 0, false
	}
	if len(raw) != 8+2*ndigits || dscale < 0 || dscale == 0 && ndigits > weight+1 {
		return b, 0, false
	}
	if ndigits == 0 {
		return append(b, '0'), 1, true // pgx reads any zero as 0, without its scale
	}
	digit := func(i int) (int, bool) {
		if i < 0 || i >= ndigits {
			return 0, true
		}
		d := int(binary.BigEndian.Uint16(raw[8+2*i:]))
		return d, d < 10000
	}
	if d, _ := digit(0); weight > 0 && d == 0 {
		// A leading zero group (PostgreSQL never sends one) would write
		// a number with leading zeros, which is not JSON.
		return b, 0, false
	}
	start := len(b)
	b = append(b, '"')
	if sign == 0x4000 {
		b = append(b, '-')
	}
	if weight < 0 {
		b = append(b, '0')
	}
	for i := 0; i <= weight; i++ {
		d, ok := digit(i)
		if !ok {
			return b, 0, false
		}
		if i == 0 {
			b = strconv.AppendInt(b, int64(d), 10)
		} else {
			b = append4(b, d)
		}
	}
	if dscale > 0 {
		b = append(b, '.')
		for i, left := weight+1, dscale; left > 0; i, left = i+1, left-4 {
			d, ok := digit(i)
			if !ok {
				return b, 0, false
			}
			b = append4(b, d)
			if left < 4 {
				b = b[:len(b)-(4-left)]
			}
		}
	}
	text := b[start+1:]
	if len(text) > 0 && text[0] == '-' && significantDigitsOf(text) == 0 {
		// A negative zero pgx would read as 0; PostgreSQL never sends one.
		return b[:start], 0, false
	}
	if significantDigitsOf(text) <= 15 {
		copy(b[start:], text)
		b = b[:len(b)-1]
		return b, len(b) - start, true
	}
	b = append(b, '"')
	return b, len(b) - start, true
}

func append4(b []byte, d int) []byte {
	return append(b, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
}

// significantDigitsOf is significantDigits for bytes.
func significantDigitsOf(s []byte) int {
	n, started := 0, false
	for _, c := range s {
		if c < '0' || c > '9' {
			continue
		}
		started = started || c != '0'
		if started {
			n++
		}
	}
	return n
}

// pgEpoch is 2000-01-01, where PostgreSQL's dates and timestamps count
// from, in Unix seconds.
const pgEpoch = 946684800

// pgTime converts microseconds since 2000-01-01 into the time pgx
// decodes; ok is false outside years 1 to 9999 (and for the infinities),
// which go to the fallback with pgx's own range checks.
func pgTime(raw []byte) (time.Time, bool) {
	if len(raw) != 8 {
		return time.Time{}, false
	}
	us := int64(binary.BigEndian.Uint64(raw))
	t := time.Unix(pgEpoch+us/1_000_000, us%1_000_000*1000).UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return t, false
	}
	return t, true
}

func encodeTimestamptz(b, raw []byte) ([]byte, int, bool) {
	t, ok := pgTime(raw)
	if !ok {
		return b, 0, false
	}
	return appendQuotedTime(b, t, time.RFC3339Nano)
}

func encodeTimestamp(b, raw []byte) ([]byte, int, bool) {
	t, ok := pgTime(raw)
	if !ok {
		return b, 0, false
	}
	return appendQuotedTime(b, t, "2006-01-02T15:04:05.999999")
}

func encodeDate(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 4 {
		return b, 0, false
	}
	days := int32(binary.BigEndian.Uint32(raw))
	t := time.Date(2000, 1, int(1+days), 0, 0, 0, 0, time.UTC)
	if y := t.Year(); y < 1 || y > 9999 {
		return b, 0, false
	}
	return appendQuotedTime(b, t, "2006-01-02")
}

func appendQuotedTime(b []byte, t time.Time, layout string) ([]byte, int, bool) {
	start := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, layout)
	b = append(b, '"')
	return b, len(b) - start, true
}

func encodeUUID(b, raw []byte) ([]byte, int, bool) {
	if len(raw) != 16 {
		return b, 0, false
	}
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
	}
	return append(b, '"'), 38, true
}

func encodeBytea(b, raw []byte) ([]byte, int, bool) {
	start := len(b)
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	b = append(b, '"')
	return b, len(b) - start, true
}

// encodeJSON embeds json as toJSON does: its text, compacted as
// encoding/json compacts a json.RawMessage. Text that is not JSON goes to
// the fallback.
func encodeJSON(b, raw []byte) ([]byte, int, bool) {
	return appendCompactJSON(b, raw)
}

func encodeJSONB(b, raw []byte) ([]byte, int, bool) {
	if len(raw) == 0 || raw[0] != 1 {
		return b, 0, false
	}
	return appendCompactJSON(b, raw[1:]) // binary jsonb: version byte, then text
}

// encodeJSONBText is encodeJSON for jsonb in the text format. toJSON
// drops a leading 1 as binary jsonb's version byte whatever the format:
// such text (never JSON) goes to the fallback.
func encodeJSONBText(b, raw []byte) ([]byte, int, bool) {
	if len(raw) > 0 && raw[0] == 1 {
		return b, 0, false
	}
	return appendCompactJSON(b, raw)
}

func appendCompactJSON(b, text []byte) ([]byte, int, bool) {
	if !jsonNumbersFit(text) {
		return b, 0, false
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, text); err != nil {
		return b, 0, false
	}
	return buf.Bytes(), len(text), true
}

// jsonNumbersFit reports whether every number in a JSON text is surely
// within a float64's range: rows.Values() unmarshals json into Go values
// and fails the row on a number beyond 1.8e308, so a text with a number
// that may be that large (more than 300 digits before the point, counting
// a positive exponent) goes to the fallback and fails the same way.
func jsonNumbersFit(text []byte) bool {
	inString, escaped := false, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || c >= '0' && c <= '9':
			intDigits, exp, expSign := 0, 0, 1
			for ; i < len(text) && (text[i] == '-' || text[i] >= '0' && text[i] <= '9'); i++ {
				intDigits++
			}
			for ; i < len(text) && (text[i] == '.' || text[i] >= '0' && text[i] <= '9'); i++ {
			}
			if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
				i++
				if i < len(text) && (text[i] == '-' || text[i] == '+') {
					if text[i] == '-' {
						expSign = -1
					}
					i++
				}
				for ; i < len(text) && text[i] >= '0' && text[i] <= '9'; i++ {
					if exp = exp*10 + int(text[i]-'0'); exp > 1000 {
						exp = 1000
					}
				}
			}
			if intDigits+max(exp*expSign, 0) > 300 {
				return false
			}
			i-- // the loop steps past the number's last byte
		}
	}
	return true
}

func encodeText(b, raw []byte) ([]byte, int, bool) {
	b, n := appendText(b, raw)
	return b, n, true
}

// appendText writes s as encoding/json writes a string without HTML
// escaping: quotes, backslashes and control characters escaped, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped. It returns the size
// stringSize counts for s, in the same pass.
func appendText[S string | []byte](b []byte, s S) ([]byte, int) {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	size, invalid, start := 2+len(s), false, 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b, size = append(b, '\\', c), size+1
			case '\b':
				b, size = append(b, '\\', 'b'), size+5
			case '\f':
				b, size = append(b, '\\', 'f'), size+5
			case '\n':
				b, size = append(b, '\\', 'n'), size+5
			case '\r':
				b, size = append(b, '\\', 'r'), size+5
			case '\t':
				b, size = append(b, '\\', 't'), size+5
			default:
				b, size = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF]), size+5
			}
			i++
			start = i
			continue
		}
		// At most four bytes converted: stays on the stack.
		r, n := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			invalid = true
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	if invalid {
		size += 2 * len(s)
	}
	return append(b, '"'), size
}

// appendArray writes a one-dimensional array as a JSON array and a
// multi-dimensional one as nested arrays (see arrayJSON), each element
// with its type's encoder; an element that encoder leaves alone sends the
// whole array to the fallback.
func appendArray(b, raw []byte, elem uint32, enc cellEncoder) ([]byte, int, bool) {
	if len(raw) < 12 {
		return b, 0, false
	}
	ndim := int(int32(binary.BigEndian.Uint32(raw)))
	if binary.BigEndian.Uint32(raw[8:]) != elem || ndim < 0 || ndim > 6 || len(raw) < 12+8*ndim {
		return b, 0, false
	}
	if ndim == 0 {
		return append(b, "[]"...), 2, true
	}
	var dims [6]int
	total := 1
	for d := range ndim {
		n := int(int32(binary.BigEndian.Uint32(raw[12+8*d:])))
		if n <= 0 || n > len(raw) {
			return b, 0, false
		}
		dims[d] = n
		total *= n
		if total > len(raw) {
			return b, 0, false
		}
	}
	r := arrayReader{src: raw[12+8*ndim:]}
	b, size, ok := r.appendDim(b, dims[:ndim], enc)
	if !ok || len(r.src) != 0 {
		return b, 0, false
	}
	return b, size, true
}

type arrayReader struct{ src []byte }

func (r *arrayReader) appendDim(b []byte, dims []int, enc cellEncoder) ([]byte, int, bool) {
	b = append(b, '[')
	size := 2 + dims[0]
	for i := range dims[0] {
		if i > 0 {
			b = append(b, ',')
		}
		var n int
		var ok bool
		if len(dims) > 1 {
			b, n, ok = r.appendDim(b, dims[1:], enc)
		} else {
			b, n, ok = r.appendElement(b, enc)
		}
		if !ok {
			return b, 0, false
		}
		size += n
	}
	return append(b, ']'), size, true
}

func (r *arrayReader) appendElement(b []byte, enc cellEncoder) ([]byte, int, bool) {
	if len(r.src) < 4 {
		return b, 0, false
	}
	n := int(int32(binary.BigEndian.Uint32(r.src)))
	r.src = r.src[4:]
	if n == -1 {
		return append(b, "null"...), 4, true
	}
	if n < 0 || n > len(r.src) {
		return b, 0, false
	}
	v := r.src[:n]
	r.src = r.src[n:]
	return enc(b, v)
}
