package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// embedded are values that must never survive Scrub wherever they sit in
// a string, as long as they are not glued to a word.
var embedded = []string{
	"4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", "3782 822463 10005",
	"ada@example.com", "o'brien+tag@mail.example.co.uk",
	"123-45-6789",
	"DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819",
	"AKIAIOSFODNN7EXAMPLE", ghToken, jwtToken,
}

// separators are what FuzzScrub puts on both sides of an embedded value.
var separators = []string{" ", ",", ";", "(", ")", "|", "\n", "\t", "<", ">", "\"", "'", "/", "=", ": ", "。"}

func FuzzScrub(f *testing.F) {
	for _, s := range []string{
		"", "call me at ada@example.com, card 4111 1111 1111 1111",
		"order 1234567890123", "+1 415 555 2671", "0.4111111111111111",
		"ssn 123-45-6789", "IBAN DE89 3704 0044 0532 0130 00 EUR",
		"postgres://app:s3cret@db.example.com/x", "host=db password= user=x",
		"db:\n  password: s3cret\n", `{"password":"x","e":"a@b.co"}`,
		"Authorization: Bearer " + jwtToken, pemBlock[:40],
		"メール：ada@example.com です", "\xff@\xfe.com",
		"[masked:email]@example.com", "password=[masked:secret_token]x",
	} {
		f.Add(s, uint16(0), uint8(0), uint8(0))
	}
	d := mustDetectors(f, Config{Detectors: allKinds})
	f.Fuzz(func(t *testing.T, s string, pos uint16, which, sep uint8) {
		checkFixedPoint(t, d, s)
		checkEmbedded(t, d, s, pos, which, sep)
	})
}

// checkFixedPoint checks that Scrub(s) settles: scrubbing its output
// changes nothing and fires nothing.
func checkFixedPoint(t *testing.T, d *Detectors, s string) {
	t.Helper()
	out, fired := d.Scrub(s)
	if (out != s) != (fired != nil) {
		t.Fatalf("Scrub(%q) = %q, %q; want a change exactly when something fired", s, out, fired)
	}
	if again, f := d.Scrub(out); again != out || f != nil {
		t.Fatalf("Scrub(%q) = %q; Scrub of that = %q, %q; want a fixed point", s, out, again, f)
	}
	// The prefilter may only skip a detector that would find nothing.
	for _, k := range kinds {
		for _, scan := range k.scans {
			if start, end := scan(s, 0); start >= 0 {
				if want, _ := candidates(s); want&k.bit != 0 {
					continue
				}
				t.Fatalf("candidates(%q) skips %s, which finds %q", s, k.name, s[start:end])
			}
		}
	}
	// One pass masks and one confirms, except where masking one value
	// gives another the word boundary it lacked
	// ("a@b.com4111111111111111": the card follows "com" until the address
	// is masked). Those take a third pass; none may need the fallback.
	b := newBudget(len(s))
	if _, _, passes := d.scrubAt(s, 0, &b); passes > maxPasses {
		t.Fatalf("Scrub(%q) did not settle in %d passes", s, maxPasses)
	}
}

// checkEmbedded checks that a known value put into s between separators
// does not survive Scrub.
func checkEmbedded(t *testing.T, d *Detectors, s string, pos uint16, which, sep uint8) {
	t.Helper()
	known := embedded[int(which)%len(embedded)]
	p := int(pos) % (len(s) + 1)
	b := separators[int(sep)%len(separators)]
	in := s[:p] + b + known + b + s[p:]
	got, _ := d.Scrub(in)
	if strings.Count(got, known) > strings.Count(s, known) {
		t.Fatalf("Scrub(%q) = %q; %q survived", in, got, known)
	}
}

// vocabulary is what FuzzScrubFragments builds strings from: pieces of
// every detector's syntax, markers, separators and awkward bytes, so the
// fuzzer reaches interactions between detectors that random bytes rarely
// do.
var vocabulary = []string{
	"4111", "1111", "4111111111111111", "5500000000000004", "378282246310005", "822463", "10005",
	"123", "45", "6789", "0", "9", "1234567890", "0.", "+",
	"@", "ada", "example", ".", "com", "co", "é", "メール", "\xff", "_", "x",
	"DE89", "3704", "0044", "0532", "0130", "00", "GB29", "NWBK", "DE89370400440532013000",
	"AKIA", "IOSFODNN7EXAMPLE", "ghp_", strings.Repeat("a", 36), "xoxb-", "github_pat_", strings.Repeat("B_", 41),
	"eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxIn0", "sig",
	"-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "-----",
	"password", "pwd", "PASSWORD", "=", ":", "://", "//", "postgres", "'", "\"", "\\", "\\\"",
	"{", "}", "[", "]", ",", ";", "&", "?", "/",
	" ", "  ", "-", "\n", "\t",
	"[masked:email]", "[masked:secret_token]", "[masked:credit_card]", "[masked:iban]", "[masked:us_ssn]", "[masked]",
}

func FuzzScrubFragments(f *testing.F) {
	f.Add([]byte{0, 85, 1, 85, 1, 85, 1}, uint16(3), uint8(0), uint8(0))
	f.Add([]byte{16, 17, 18, 19, 20}, uint16(9), uint8(4), uint8(1))
	f.Add([]byte{55, 58, 56, 83, 16, 58}, uint16(5), uint8(10), uint8(14))
	d := mustDetectors(f, Config{
		Detectors: allKinds,
		Allow: map[string][]string{
			Email:       {"ada@example.co"},
			CreditCard:  {"5500000000000004"},
			SecretToken: {"sig"},
		},
	})
	f.Fuzz(func(t *testing.T, picks []byte, pos uint16, which, sep uint8) {
		var b strings.Builder
		for _, p := range picks {
			b.WriteString(vocabulary[int(p)%len(vocabulary)])
		}
		s := b.String()
		checkFixedPoint(t, d, s)
		checkEmbedded(t, d, s, pos, which, sep)
	})
}

// FuzzScrubJSON checks that ScrubJSON keeps documents valid and scrubs
// exactly what ScrubValue scrubs in the decoded document.
func FuzzScrubJSON(f *testing.F) {
	for _, s := range []string{
		`{"a": "ada@example.com", "ada@example.com": [1, "4111 1111 1111 1111", null]}`,
		`"123-45-6789"`, `[{"password": "x"}, {"pwd" : 5}, "\u0040\"\\"]`,
		`{"q":"ada\u0040example.com \ud83d\ude00 \u2028"}`, `{}`, `[]`, `1e3`,
		`{"4111111111111111": 4111111111111111, "a": "{\"kind\":\"Secret\",\"data\":{\"k\":\"dg==\"}}", "token": "x"}`,
		`["ZGF0YTogcGFzc3dvcmQ9aHVudGVyMg==", "k: |\n  v\npassword: *a\n"]`,
	} {
		f.Add([]byte(s))
	}
	d := mustDetectors(f, Config{Detectors: allKinds})
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, _, err := d.ScrubJSON(raw)
		if !json.Valid(raw) {
			if err == nil {
				t.Fatalf("ScrubJSON(%q) accepted invalid JSON", raw)
			}
			return
		}
		if err != nil {
			t.Fatalf("ScrubJSON(%q) = %v", raw, err)
		}
		if !json.Valid(out) {
			t.Fatalf("ScrubJSON(%q) = %q; not valid JSON", raw, out)
		}
		if again, f, err := d.ScrubJSON(out); err != nil || string(again) != string(out) || f != nil {
			t.Fatalf("ScrubJSON(%q) = %q; ScrubJSON of that = %q, %q, %v; want a fixed point", raw, out, again, f, err)
		}
		if !utf8.Valid(raw) {
			return // decoding replaces invalid bytes, scrubbing keeps them
		}
		if _, dup := decodeMembers(t, raw); dup {
			return // decoding keeps the last of duplicate keys, scrubbing keeps all
		}
		want, _ := d.ScrubValue(decode(t, raw))
		// Keys that scrub to the same text hold "[masked]" in ScrubValue.
		if got, _ := decodeMembers(t, out); !reflect.DeepEqual(got, want) {
			t.Fatalf("ScrubJSON(%q) = %q, decoding to %#v; ScrubValue gives %#v", raw, out, got, want)
		}
	})
}

// decodeMembers decodes raw as decode does, except that a key repeated in
// an object holds "[masked]"; dup reports whether there was one.
func decodeMembers(t *testing.T, raw []byte) (v any, dup bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var value func() any
	value = func() any {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
		switch tok {
		case json.Delim('{'):
			m := map[string]any{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					t.Fatalf("decode %q: %v", raw, err)
				}
				e := value()
				if _, ok := m[k.(string)]; ok {
					m[k.(string)], dup = fallback, true
					continue
				}
				m[k.(string)] = e
			}
			_, _ = dec.Token()
			return m
		case json.Delim('['):
			a := []any{}
			for dec.More() {
				a = append(a, value())
			}
			_, _ = dec.Token()
			return a
		}
		return tok
	}
	return value(), dup
}

func decode(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}

// layerSecrets are planted by FuzzScrubLayers: a plaintext in the context
// that makes its secret one, and the secret.
var layerSecrets = []struct{ text, secret string }{
	{"card 4111111111111111 ok", "4111111111111111"},
	{"mail ada.lovelace@example.com", "ada.lovelace@example.com"},
	{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	{"users:\n- user:\n    token: kt-7f3a9c1e5b2d4068\n", "kt-7f3a9c1e5b2d4068"},
	{`{"auths":{"r.io":{"auth":"cm9ib3Q6UzNjcjN0UGFzc3cwcmQh"}}}`, "cm9ib3Q6UzNjcjN0UGFzc3cwcmQh"},
	{"redis://u:pa/ss?w0rd@cache:6379/0", "pa/ss?w0rd"},
	{"token " + ghToken, ghToken},
}

// FuzzScrubLayers plants a secret under up to four encoding layers chosen
// by the fuzzer, in fuzzed text, and checks that Scrub does not crash,
// settles, lets no form of the secret through, keeps its output within a
// bound of its input, and does work linear in its input and in what gzip
// produced.
func FuzzScrubLayers(f *testing.F) {
	f.Add("", uint8(0), []byte{0}, uint16(0))
	f.Add("kind: Note\nbody: x\n", uint8(3), []byte{2, 4}, uint16(5))
	f.Add(`{"a":"b"}`, uint8(4), []byte{5, 1, 3}, uint16(3))
	f.Add("H4sI ey== [masked:email] \n  - a: *x\n", uint8(2), []byte{6, 2, 0, 7}, uint16(9))
	d := mustDetectors(f, Config{Detectors: allKinds})
	f.Fuzz(func(t *testing.T, text string, which uint8, layers []byte, pos uint16) {
		if len(text) > 4096 || len(layers) > 4 {
			return
		}
		// The fuzzed text alone: no crash, a fixed point, bounded work.
		checkLayersWork(t, d, text)

		ls := layerSecrets[int(which)%len(layerSecrets)]
		v := ls.text
		for _, l := range layers {
			v = encodeLayer(l, v)
		}
		p := int(pos) % (len(text) + 1)
		in := text[:p] + " " + v + " " + text[p:]
		out := checkLayersWork(t, d, in)
		if !strings.Contains(text, ls.secret) && reveals(out, ls.secret) {
			t.Fatalf("Scrub(%q) = %q; %q can be read back", in, out, ls.secret)
		}
	})
}

// encodeLayer wraps v in the layer l picks.
func encodeLayer(l byte, v string) string {
	switch l % 8 {
	case 0:
		return base64.StdEncoding.EncodeToString([]byte(v))
	case 1:
		return base64.RawURLEncoding.EncodeToString([]byte(v))
	case 2:
		return base64.StdEncoding.EncodeToString(gz(v))
	case 3:
		return mustJSON(map[string]any{"k": v})
	case 4:
		return "a: 1\nb: |\n  " + strings.ReplaceAll(v, "\n", "\n  ") + "\n"
	case 5:
		return wrap(base64.StdEncoding.EncodeToString([]byte(v)), 64)
	case 6:
		return base64.StdEncoding.EncodeToString([]byte(" " + v))
	default:
		return mustJSON([]any{1, map[string]any{"x": []any{v}}})
	}
}

// checkLayersWork scrubs s and checks what FuzzScrubLayers promises.
func checkLayersWork(t *testing.T, d *Detectors, s string) string {
	t.Helper()
	b := newBudget(len(s))
	out, fired, passes := d.scrubAt(s, 0, &b)
	if passes > maxPasses {
		t.Fatalf("Scrub(%q) did not settle", s)
	}
	if (out != s) != (fired != 0) {
		t.Fatalf("Scrub(%q) = %q, %v; want a change exactly when something fired", s, out, fired)
	}
	if again, f := d.Scrub(out); again != out || f != nil {
		t.Fatalf("Scrub(%q) = %q; Scrub of that = %q, %q; want a fixed point", s, out, again, f)
	}
	// A marker is at most 22 bytes and replaces at least one.
	if len(out) > 22*len(s)+32 {
		t.Fatalf("Scrub(%q) = %q: %d bytes from %d", s, out, len(out), len(s))
	}
	if limit := workFactor * (len(s) + b.inflated + 64); b.scanned > limit {
		t.Fatalf("Scrub(%q) looked at %d bytes; want at most %d", s, b.scanned, limit)
	}
	return out
}

// workFactor bounds the bytes all layers look at per byte of input (and
// of gzip output): passes × views × layers.
const workFactor = 4 * 4 * maxLayers * 2
