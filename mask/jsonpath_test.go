package mask_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden/mask"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONMasksApply(t *testing.T) {
	const body = `{"data":[{"id":1,"card":{"number":"4111 1111 1111 1111","brand":"visa"},"email":"a@example.com"},
		{"id":2,"card":{"number":5500000000000004,"brand":"mc"},"owner":{"email":"b@example.com"}},
		{"id":3,"card":null}],"meta":{"email":"ops@example.com","token":{"k":"v"}}}`
	tests := []struct {
		name      string
		rules     mask.JSONPaths
		want      string
		wantFired []string
	}{
		{"ArrayWildcardThenMembers", mask.JSONPaths{"$.data[*].card.number": {Strategy: "last4"}},
			`{"data":[{"card":{"brand":"visa","number":"**** **** **** 1111"},"email":"a@example.com","id":1},{"card":{"brand":"mc","number":"************0004"},"id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":"ops@example.com","token":{"k":"v"}}}`,
			[]string{"last4 ($.data[*].card.number)"}},
		{"RecursiveDescent", mask.JSONPaths{"$..email": {Strategy: "email"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"***@example.com","id":1},{"card":{"brand":"mc","number":5500000000000004},"id":2,"owner":{"email":"***@example.com"}},{"card":null,"id":3}],"meta":{"email":"***@example.com","token":{"k":"v"}}}`,
			[]string{"email ($..email)"}},
		{"IndexAndBracketName", mask.JSONPaths{"$.data[1]['card']": {Strategy: "redact"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"a@example.com","id":1},{"card":"[masked]","id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":"ops@example.com","token":{"k":"v"}}}`,
			[]string{"redact ($.data[1]['card'])"}},
		{"ContainerIsRedactedWhole", mask.JSONPaths{"$.meta.token": {Strategy: "last4"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"a@example.com","id":1},{"card":{"brand":"mc","number":5500000000000004},"id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":"ops@example.com","token":"[masked]"}}`,
			[]string{"last4 ($.meta.token)"}},
		{"MemberWildcard", mask.JSONPaths{"$.meta.*": {Strategy: "null"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"a@example.com","id":1},{"card":{"brand":"mc","number":5500000000000004},"id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":null,"token":null}}`,
			[]string{"null ($.meta.*)"}},
		{"NothingSelected", mask.JSONPaths{"$.nope[*].x": {Strategy: "redact"}, "$.data[9].card": {Strategy: "redact"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"a@example.com","id":1},{"card":{"brand":"mc","number":5500000000000004},"id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":"ops@example.com","token":{"k":"v"}}}`,
			nil},
		{"NullStaysNull", mask.JSONPaths{"$.data[2].card": {Strategy: "last4"}},
			`{"data":[{"card":{"brand":"visa","number":"4111 1111 1111 1111"},"email":"a@example.com","id":1},{"card":{"brand":"mc","number":5500000000000004},"id":2,"owner":{"email":"b@example.com"}},{"card":null,"id":3}],"meta":{"email":"ops@example.com","token":{"k":"v"}}}`,
			[]string{"last4 ($.data[2].card)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := mask.NewJSONMasks(tt.rules, mask.NewMasker([]byte("k")))
			if err != nil {
				t.Fatal(err)
			}
			got, fired := j.Apply(decode(t, body))
			if s := encode(t, got); s != tt.want {
				t.Errorf("Apply(%v) =\n%s\nwant\n%s", tt.rules, s, tt.want)
			}
			if !slices.Equal(fired, tt.wantFired) {
				t.Errorf("Apply(%v) fired %q; want %q", tt.rules, fired, tt.wantFired)
			}
		})
	}
}

func TestJSONMasksRoot(t *testing.T) {
	j, err := mask.NewJSONMasks(mask.JSONPaths{"$": {Strategy: "redact"}}, mask.NewMasker(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := j.Apply(decode(t, `{"a":1}`)); got != mask.Redacted {
		t.Errorf("Apply($) = %v; want %q", got, mask.Redacted)
	}
	if got, _ := j.Apply(decode(t, `"secret"`)); got != mask.Redacted {
		t.Errorf("Apply($) on a string = %v; want %q", got, mask.Redacted)
	}
	var nilMasks *mask.JSONMasks
	if got, fired := nilMasks.Apply("x"); got != "x" || fired != nil || nilMasks.Len() != 0 {
		t.Errorf("nil JSONMasks changed the value")
	}
}

func TestParseJSONPath(t *testing.T) {
	valid := []string{"$", "$.a", "$.a.b", "$.data[*].card.number", "$..email", "$['first-name']", `$["x y"]`, "$[0]", "$.a[12].b", "$.*", "$..a.b", "$.a-b_c$"}
	for _, p := range valid {
		if _, err := mask.ParseJSONPath(p); err != nil {
			t.Errorf("ParseJSONPath(%q) = %v; want ok", p, err)
		}
	}
	invalid := map[string]string{
		"a.b":           "must start with $",
		"$.":            "expected a member name",
		"$..":           ".. must be followed by a member name",
		"$.a[":          "unclosed [",
		"$.a[-1]":       "not supported",
		"$.a[0:2]":      "not supported",
		"$.a[0,1]":      "not supported",
		"$.a[?(@.x)]":   "not supported",
		"$.a b":         "unexpected",
		`$['a\'b']`:     "must not contain quotes",
		"$..*":          ".. must be followed by a member name",
		"$[+1]":         "not supported",
		"$.data[*]card": "unexpected",
	}
	for p, want := range invalid {
		if _, err := mask.ParseJSONPath(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseJSONPath(%q) = %v; want an error containing %q", p, err, want)
		}
	}
}

func TestValidateJSONPaths(t *testing.T) {
	err := mask.ValidateJSONPaths(map[string]mask.JSONPaths{
		"billing": {
			"$.data[*].card.number": {Strategy: "last4"},
			"$.a[0:1]":              {Strategy: "redact"},
			"$.b":                   {Strategy: "rot13"},
			"$.c":                   {Strategy: "redact", OnExpression: "deny"},
			"$.d":                   nil,
		},
	})
	for _, want := range []string{
		`json_paths.billing["$.a[0:1]"]: [0:1] is not supported`,
		`json_paths.billing["$.b"].strategy: unknown strategy "rot13"`,
		`json_paths.billing["$.c"].on_expression: applies to column rules only`,
		`json_paths.billing["$.d"]: missing rule`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateJSONPaths() = %v; want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "card.number") {
		t.Errorf("ValidateJSONPaths() reports the valid rule: %v", err)
	}
}
