package sql

import (
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// maxSafeInt is the largest integer a JSON consumer using float64 reads
// exactly; larger integers are returned as strings.
const maxSafeInt = 1<<53 - 1

// toJSON converts a value decoded by pgx into a faithful JSON value: NULL
// is null, integers beyond 2^53 and numerics that a float64 cannot hold
// are strings, timestamps are RFC 3339, bytea is base64, json is embedded.
func toJSON(v any, oid uint32, raw []byte) any {
	// raw is nil for SQL NULL, and for the elements of an array, which
	// arrive already decoded by pgx.
	if (oid == pgtype.JSONOID || oid == pgtype.JSONBOID) && raw != nil {
		if oid == pgtype.JSONBOID && len(raw) > 0 && raw[0] == 1 {
			raw = raw[1:] // binary jsonb: version byte, then text
		}
		if json.Valid(raw) {
			return json.RawMessage(append([]byte(nil), raw...))
		}
	}
	switch t := v.(type) {
	case nil:
		return nil
	case bool, string, int16, int32, int8, uint8, uint16, uint32:
		return t
	case int64:
		if t > maxSafeInt || t < -maxSafeInt {
			return fmt.Sprint(t)
		}
		return t
	case float32:
		if f := float64(t); math.IsNaN(f) || math.IsInf(f, 0) {
			return floatJSON(f)
		}
		// Kept as float32: encoding/json then writes the shortest text
		// that reads back as this float32 (1.1, not 1.100000023841858).
		return t
	case float64:
		return floatJSON(t)
	case []byte:
		return base64.StdEncoding.EncodeToString(t)
	case time.Time:
		switch oid {
		case pgtype.DateOID:
			return t.Format("2006-01-02")
		case pgtype.TimestampOID:
			return t.Format("2006-01-02T15:04:05.999999")
		default:
			return t.UTC().Format(time.RFC3339Nano)
		}
	case pgtype.Numeric:
		return numericJSON(t)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", t[0:4], t[4:6], t[6:8], t[8:10], t[10:16])
	case netip.Prefix:
		if t.IsSingleIP() && oid == pgtype.InetOID {
			return t.Addr().String()
		}
		return t.String()
	case netip.Addr:
		return t.String()
	case pgtype.Interval:
		return intervalText(t)
	case pgtype.Time:
		return clockText(t.Microseconds)
	case []any:
		return arrayJSON(t, oid, raw)
	case map[string]any:
		return t
	case fmt.Stringer:
		return t.String()
	case driver.Valuer:
		if dv, err := t.Value(); err == nil {
			return toJSON(dv, 0, nil)
		}
	}
	return fmt.Sprint(v)
}

// floatJSON returns NaN and the infinities as the strings PostgreSQL
// prints for them, since JSON has no such numbers.
func floatJSON(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// builtinTypes knows the element type of every built-in array type. Only
// TypeForOID is called on it, which reads and never writes, so it is safe
// to share.
var builtinTypes = pgtype.NewMap()

// arrayJSON converts the elements of an array with the element type's own
// rules (a date[] holds dates, not timestamps), and restores the shape of a
// multi-dimensional array, which pgx flattens.
func arrayJSON(flat []any, oid uint32, raw []byte) any {
	var elem uint32
	if t, ok := builtinTypes.TypeForOID(oid); ok {
		if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			elem = ac.ElementType.OID
		}
	}
	out := make([]any, len(flat))
	for i, e := range flat {
		out[i] = toJSON(e, elem, nil)
	}
	return nest(out, arrayDims(raw, len(flat)))
}

// arrayDims returns the dimension lengths of a multi-dimensional array in
// the binary format (ndim, flags, element oid, then a length and a lower
// bound per dimension), or nil when there is nothing to restore: one
// dimension, or the text format, which starts with '{' or '['.
func arrayDims(raw []byte, n int) []int {
	if len(raw) < 12 || raw[0] != 0 {
		return nil
	}
	ndim := int(binary.BigEndian.Uint32(raw))
	if ndim < 2 || len(raw) < 12+8*ndim {
		return nil
	}
	dims := make([]int, ndim)
	total := 1
	for d := range dims {
		dims[d] = int(binary.BigEndian.Uint32(raw[12+8*d:]))
		total *= dims[d]
	}
	if total != n || n == 0 {
		return nil
	}
	return dims
}

// nest cuts flat, in row-major order, into nested arrays of dims.
func nest(flat []any, dims []int) []any {
	if len(dims) < 2 {
		return flat
	}
	size := len(flat) / dims[0]
	out := make([]any, dims[0])
	for i := range out {
		out[i] = nest(flat[i*size:(i+1)*size], dims[1:])
	}
	return out
}

// clockText renders a time of day as PostgreSQL does: fractional seconds
// only when there are some, without trailing zeros.
func clockText(us int64) string {
	s := fmt.Sprintf("%02d:%02d:%02d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60)
	if frac := us % 1_000_000; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	return s
}

// numericJSON keeps numerics exact: a JSON number when it has at most 15
// significant digits (a float64 holds it exactly), a string otherwise.
func numericJSON(n pgtype.Numeric) any {
	if !n.Valid {
		return nil
	}
	if n.NaN {
		return "NaN"
	}
	if n.InfinityModifier != pgtype.Finite {
		if n.InfinityModifier == pgtype.Infinity {
			return "Infinity"
		}
		return "-Infinity"
	}
	s := numericText(n.Int, n.Exp)
	if significantDigits(s) <= 15 {
		return json.Number(s)
	}
	return s
}

// significantDigits counts the digits of a decimal text from the first
// non-zero one.
func significantDigits(s string) int {
	n, started := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
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

func numericText(i *big.Int, exp int32) string {
	if i == nil {
		return "0"
	}
	var s string
	if i.IsInt64() && i.Int64() != math.MinInt64 { // whose negation overflows
		// The common case, without big.Int's general formatting.
		v := i.Int64()
		if v < 0 {
			v = -v
		}
		s = strconv.FormatInt(v, 10)
	} else {
		s = new(big.Int).Abs(i).String()
	}
	neg := i.Sign() < 0
	switch {
	case exp > 0:
		s += strings.Repeat("0", int(exp))
	case exp < 0:
		scale := int(-exp)
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// intervalText renders an interval the way PostgreSQL's default output
// style does ("1 year 2 mons 3 days 04:05:06").
func intervalText(iv pgtype.Interval) string {
	if !iv.Valid {
		return ""
	}
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 { // PostgreSQL writes "-1 days"
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
		} else {
			parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
		}
	}
	plural(int64(iv.Months/12), "year")
	plural(int64(iv.Months%12), "mon")
	plural(int64(iv.Days), "day")
	if iv.Microseconds != 0 || len(parts) == 0 {
		us := iv.Microseconds
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		h, m, s, frac := us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, s)
		if frac != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}
