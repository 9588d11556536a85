package mask

import (
	"strings"
	"testing"
)

func TestSuggestColumnByName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		textual bool
		want    string // strategy; "" for no rule
	}{
		{"password", true, "redact"},
		{"password_hash", true, "redact"},
		{"passwordHash", true, "redact"},
		{"PASSWORD-HASH", true, "redact"},
		{"password_changed_at", true, ""},
		{"password_reset_required", false, ""},
		{"api_key", true, "redact"},
		{"key_id", true, ""},
		{"token_count", true, ""},
		{"token_expires_at", true, ""},
		{"secret_name", true, ""},
		{"client_secret", true, "redact"},
		{"card_number", true, "last4"},
		{"cardNumber", true, "last4"},
		{"card_type", true, ""},
		{"ssn", true, "redact"},
		{"email", true, "email"},
		{"customer_email", true, "email"},
		{"email_verified", false, ""},
		{"email_template", true, ""},
		{"email_address", true, "email"},
		{"phone_number", true, "partial(2,2)"},
		{"mobile_phone_2", true, "partial(2,2)"},
		{"date_of_birth", false, "redact"},
		{"first_name", true, "redact"},
		{"name", true, ""},
		{"product_name", true, ""},
		{"address_line_1", true, "redact"},
		{"ip_address", true, ""},
		{"iban", true, "last4"},
		{"pan_size", true, ""},
	} {
		got := SuggestColumn("things", tc.name, tc.textual, Census{})
		strategy := ""
		if got != nil {
			strategy = got.Strategy
		}
		if strategy != tc.want {
			t.Errorf("SuggestColumn(%q, %v) = %q; want %q", tc.name, tc.textual, strategy, tc.want)
		}
	}
}

func TestSuggestColumnByValues(t *testing.T) {
	d, err := NewDetectors(Config{Detectors: Names()})
	if err != nil {
		t.Fatal(err)
	}
	census := func(vals ...string) Census {
		var c Census
		for _, v := range vals {
			d.Count(&c, v)
		}
		return c
	}
	cards := census("4111 1111 1111 1111", "5500005555555559", "n/a", "4111111111111111")
	if s := SuggestColumn("t", "ref", true, cards); s == nil || s.Strategy != "last4" || s.Reason != "3/4 sampled values are card numbers" || !s.FromValues {
		t.Errorf("cards: %+v", s)
	}
	prose := census("call ada@example.com", "fine", "ok", "later")
	if s := SuggestColumn("t", "notes", true, prose); s == nil || s.Strategy != "" || !strings.HasPrefix(s.Reason, "1/4 sampled values contain an email address") {
		t.Errorf("prose: %+v", s)
	}
	if s := SuggestColumn("t", "status", true, census("active", "closed", "", "")); s != nil {
		t.Errorf("status: %+v; want nil", s)
	}
	if c := census("", "  "); c.Sampled != 0 {
		t.Errorf("empty values counted: %+v", c)
	}
}

func TestSuggestBareNameByTable(t *testing.T) {
	for _, tc := range []struct {
		table, column string
		want          bool
	}{
		{"customers", "name", true},
		{"hr_employees", "name", true},
		{"people", "display_name", true},
		{"products", "name", false},
		{"api_clients", "name", false},
		{"customers", "name_hash", true},
		{"customers", "status", false},
	} {
		got := SuggestColumn(tc.table, tc.column, true, Census{})
		if (got != nil && got.Strategy == "redact") != tc.want {
			t.Errorf("SuggestColumn(%q, %q) = %+v; want masked %v", tc.table, tc.column, got, tc.want)
		}
	}
}
