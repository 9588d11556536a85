package mask

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Census is what the detectors found in a sample of one column's values:
// counts only. It never holds a value, so it can be printed, logged and
// tested freely.
type Census struct {
	// Sampled is the number of non-empty values looked at.
	Sampled int
	// Whole counts, per detector, the values that are one finding and
	// nothing else ("4111 1111 1111 1111", "ann@example.com").
	Whole map[string]int
	// Within counts, per detector, the values that hold at least one
	// finding ("call ann@example.com after 5").
	Within map[string]int
}

// Count adds one sampled value to c. Empty values are not counted.
func (d *Detectors) Count(c *Census, v string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return
	}
	c.Sampled++
	out, names := d.Scrub(v)
	if len(names) == 0 {
		return
	}
	if c.Within == nil {
		c.Within, c.Whole = map[string]int{}, map[string]int{}
	}
	for _, n := range names {
		c.Within[n]++
	}
	if len(names) == 1 && strings.TrimSpace(out) == markerFor(names[0]) {
		c.Whole[names[0]]++
	}
}

// Suggestion is a proposed column rule and why. A Suggestion with no
// Strategy is a note: something was found, but not enough to mask the
// whole column.
type Suggestion struct {
	Strategy string
	// Reason is a sentence for a config comment: "193/200 sampled values
	// are card numbers", "column name suggests a password".
	Reason string
	// FromValues: the sampled values decided, not the column's name.
	FromValues bool
}

// WholeShare is the share of sampled values one detector must find whole
// for the column to be masked on the evidence of its values alone.
const WholeShare = 0.5

// detectorRule is the strategy for a column whose values a detector finds,
// and how a sentence names one such value.
var detectorRule = map[string]struct{ strategy, one, many string }{
	CreditCard:  {"last4", "a card number", "card numbers"},
	Email:       {"email", "an email address", "email addresses"},
	USSSN:       {"redact", "a US social security number", "US social security numbers"},
	IBAN:        {"last4", "an IBAN", "IBANs"},
	SecretToken: {"redact", "a secret (token, key or password)", "secrets (tokens, keys or passwords)"},
}

// SuggestColumn proposes a rule for one column of table from its name and
// what the detectors found in a sample of its values. textual says whether
// the column holds text (or numbers that could be card numbers): a name
// such as password_reset_required on a boolean says nothing about
// secrets. The table's name only gives a bare `name` column its meaning
// (customers.name is a person's, products.name is not). It returns nil
// when nothing suggests the column is sensitive.
func SuggestColumn(table, name string, textual bool, c Census) *Suggestion {
	// The values' evidence first: it is what the column holds, not what
	// someone once called it.
	best, bestN := "", 0
	for _, det := range known {
		if n := c.Whole[det]; n > bestN {
			best, bestN = det, n
		}
	}
	if c.Sampled > 0 && float64(bestN) >= WholeShare*float64(c.Sampled) {
		r := detectorRule[best]
		return &Suggestion{Strategy: r.strategy, Reason: fmt.Sprintf("%d/%d sampled values are %s", bestN, c.Sampled, r.many), FromValues: true}
	}
	// A secret inside most values (a connection string's password, a
	// key=value config line) cannot be cut out by a column rule: redact.
	if n := c.Within[SecretToken]; c.Sampled > 0 && float64(n) >= WholeShare*float64(c.Sampled) {
		return &Suggestion{Strategy: "redact", Reason: fmt.Sprintf("%d/%d sampled values contain %s", n, c.Sampled, detectorRule[SecretToken].many), FromValues: true}
	}
	cat := nameCategory(name, textual)
	if cat == nil && textual && personTable(table) && names(words(name), []string{"name", "displayname"}) {
		return &Suggestion{Strategy: "redact", Reason: "column name in a table of people suggests a person's name"}
	}
	if cat != nil {
		reason := "column name suggests " + cat.what
		if c.Sampled > 0 && cat.detector != "" && c.Whole[cat.detector] == 0 {
			reason += fmt.Sprintf(" (none of %d sampled values is one)", c.Sampled)
		} else if n := c.Whole[cat.detector]; cat.detector != "" && n > 0 {
			reason += fmt.Sprintf(" (%d/%d sampled values are)", n, c.Sampled)
		}
		return &Suggestion{Strategy: cat.strategy, Reason: reason}
	}
	// Findings in some values only: the detectors mask them where they
	// are, and the column keeps its use.
	var parts []string
	for _, det := range known {
		if n := c.Within[det]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d/%d sampled values contain %s", n, c.Sampled, detectorRule[det].one))
		}
	}
	if len(parts) > 0 {
		return &Suggestion{Reason: strings.Join(parts, ", ") + "; the detectors mask them where they appear"}
	}
	return nil
}

// category is a kind of sensitive column recognised by its name.
type category struct {
	what     string // "a password"
	strategy string
	detector string // the detector that finds such values, if any
	// names are the category's names with the words run together
	// (card_number and cardNumber are "cardnumber").
	names []string
	// anyType: the name counts whatever the column's type (a date of
	// birth is a date).
	anyType bool
	// unless are words that make the name mean something else
	// (ip_address is not a postal address).
	unless []string
}

// qualifiers may follow a category's name in a column that still holds
// the value (phone_number, password_hash, email_2, address_line_1). Any
// other word after it makes a name that describes the value instead of
// holding it: password_changed_at, token_count, card_type, secret_name,
// email_verified.
var qualifiers = []string{
	"number", "no", "nr", "num", "hash", "hashed", "digest", "enc", "encrypted", "cipher",
	"ciphertext", "raw", "plain", "plaintext", "value", "text", "primary", "secondary",
	"home", "work", "main", "private", "personal", "full", "line", "salt",
}

var categories = []category{
	{what: "a password or secret", strategy: "redact", detector: SecretToken, names: []string{
		"password", "passwd", "pwd", "passphrase", "secret", "apikey", "apitoken", "accesstoken",
		"refreshtoken", "authtoken", "sessiontoken", "resettoken", "token", "privatekey", "secretkey",
		"accesskey", "signingkey", "encryptionkey", "credential", "credentials", "otp", "totp", "pin"}},
	{what: "a card number", strategy: "last4", detector: CreditCard, names: []string{
		"cardnumber", "cardno", "cardnum", "ccnumber", "ccnum", "creditcard", "pan"}},
	{what: "a social security or national id number", strategy: "redact", detector: USSSN, names: []string{
		"ssn", "socialsecurity", "socialsecuritynumber", "nationalid", "taxid", "nino", "passport",
		"driverslicense", "driverlicense"}},
	{what: "a bank account", strategy: "last4", detector: IBAN, names: []string{
		"iban", "bankaccount", "accountnumber", "routingnumber"}},
	{what: "an email address", strategy: "email", detector: Email, names: []string{"email", "emailaddress", "mail"}},
	{what: "a phone number", strategy: "partial(2,2)", names: []string{
		"phone", "mobile", "telephone", "tel", "fax", "msisdn", "cellphone"}},
	{what: "a date of birth", strategy: "redact", anyType: true, names: []string{
		"dob", "dateofbirth", "birthdate", "birthday"}},
	{what: "a person's name", strategy: "redact", names: []string{
		"firstname", "lastname", "fullname", "middlename", "givenname", "familyname", "surname",
		"maidenname", "forename", "cardholder", "cardholdername", "holdername", "customername",
		"contactname", "patientname", "employeename"}},
	{what: "a postal address", strategy: "redact", names: []string{
		"address", "streetaddress", "street", "addressline", "addressline1", "addressline2",
		"homeaddress", "billingaddress", "shippingaddress", "postaladdress"},
		unless: []string{"ip", "ipv4", "ipv6", "mac", "wallet", "server", "remote", "host", "web", "url", "contract", "bitcoin", "eth"}},
}

// people are the nouns that make a table's bare `name` column a person's.
// "client" is not among them: api_clients.name names software.
var people = []string{"customer", "user", "employee", "person", "people", "patient", "contact",
	"member", "staff", "student", "applicant", "guest", "passenger", "traveler", "traveller", "subscriber"}

// personTable reports whether the table's last word names people.
func personTable(table string) bool {
	w := words(table)
	if len(w) == 0 {
		return false
	}
	last := w[len(w)-1]
	return slices.Contains(people, last) || slices.Contains(people, strings.TrimSuffix(last, "s"))
}

// nameCategory returns the category a column name suggests, or nil.
func nameCategory(name string, textual bool) *category {
	w := words(name)
	for i := range categories {
		c := &categories[i]
		if (textual || c.anyType) && names(w, c.names) && !slices.ContainsFunc(w, func(x string) bool { return slices.Contains(c.unless, x) }) {
			return c
		}
	}
	return nil
}

// names reports whether consecutive words spell one of the names,
// followed by nothing but qualifiers and digits.
func names(w []string, names []string) bool {
	for i := range w {
		acc := ""
		for j := i; j < len(w); j++ {
			acc += w[j]
			if slices.Contains(names, acc) && onlyQualifiers(w[j+1:]) {
				return true
			}
		}
	}
	return false
}

func onlyQualifiers(w []string) bool {
	for _, x := range w {
		if !slices.Contains(qualifiers, x) && strings.Trim(x, "0123456789") != "" {
			return false
		}
	}
	return true
}

// words splits a column name into lower-case words at '_', '-', '.',
// blanks and camelCase boundaries: cardNumber, card_number and
// CARD-NUMBER are the same words.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])):
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}
