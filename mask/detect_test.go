package mask

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
)

const (
	mCard   = "[masked:credit_card]"
	mEmail  = "[masked:email]"
	mSSN    = "[masked:us_ssn]"
	mIBAN   = "[masked:iban]"
	mSecret = "[masked:secret_token]"
)

var (
	ghToken   = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
	ghPAT     = "github_pat_11ABCDEFG0" + strings.Repeat("aB3_", 18) + "xY9z"
	slackTok  = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	jwtToken  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	pemBlock  = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----"
	allKinds  = []string{CreditCard, Email, USSSN, IBAN, SecretToken}
	noneFired []string
)

func mustDetectors(t testing.TB, c Config) *Detectors {
	t.Helper()
	d, err := NewDetectors(c)
	if err != nil {
		t.Fatalf("NewDetectors(%+v) = %v", c, err)
	}
	return d
}

type scrubCase struct {
	name  string
	in    string
	want  string
	fired []string
}

func runScrub(t *testing.T, d *Detectors, tests []scrubCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fired := d.Scrub(tt.in)
			if got != tt.want {
				t.Errorf("Scrub(%q) = %q; want %q", tt.in, got, tt.want)
			}
			if !slices.Equal(fired, tt.fired) {
				t.Errorf("Scrub(%q) fired %q; want %q", tt.in, fired, tt.fired)
			}
			// Every result is a fixed point.
			if again, f := d.Scrub(got); again != got || f != nil {
				t.Errorf("Scrub(%q) = %q, %q; want it unchanged", got, again, f)
			}
		})
	}
}

func TestScrubCreditCard(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: []string{CreditCard}})
	card := []string{CreditCard}
	runScrub(t, d, []scrubCase{
		{"MasksVisa", "card 4111111111111111 ok", "card " + mCard + " ok", card},
		{"MasksMastercard", "5500000000000004", mCard, card},
		{"MasksAmex", "amex:340000000000009", "amex:" + mCard, card},
		{"MasksDiscover", "6011000000000004.", mCard + ".", card},
		{"MasksVisaTestNumber", "(4012888888881881)", "(" + mCard + ")", card},
		{"MasksSpacedGroups", "4111 1111 1111 1111", mCard, card},
		{"MasksDashedGroups", "4111-1111-1111-1111 exp 12/29", mCard + " exp 12/29", card},
		{"MasksAmexGroups", "3782 822463 10005", mCard, card},
		{"MasksCardBeforeCVV", "4111 1111 1111 1111 123", mCard + " 123", card},
		{"MasksCardAfterLongerChain", "ref 1234 4111 1111 1111 1111", "ref 1234 " + mCard, card},
		{"MasksCardInCSV", "4111111111111111,5500000000000004", mCard + "," + mCard, card},
		{"MasksCardNextToSymbols", "#4111111111111111;", "#" + mCard + ";", card},
		{"KeepsLuhnInvalid", "card 4111111111111112", "card 4111111111111112", noneFired},
		{"KeepsLuhnInvalidMastercard", "5500000000000005", "5500000000000005", noneFired},
		{"KeepsLuhnInvalidGroups", "4111 1111 1111 1112", "4111 1111 1111 1112", noneFired},
		{"KeepsOrderID", "order 1234567890123", "order 1234567890123", noneFired},
		{"KeepsPhoneNumbers", "+1 415 555 2671, +44 20 7946 0958, (415) 555-2671", "+1 415 555 2671, +44 20 7946 0958, (415) 555-2671", noneFired},
		{"KeepsTwentyDigitRun", "41111111111111110000", "41111111111111110000", noneFired},
		{"KeepsDigitsInsideWord", "id4111111111111111x", "id4111111111111111x", noneFired},
		{"KeepsDigitsAfterLetters", "x4111111111111111", "x4111111111111111", noneFired},
		{"KeepsDigitsBeforeLetters", "4111111111111111x", "4111111111111111x", noneFired},
		{"KeepsDigitsAfterUnderscore", "card_4111111111111111", "card_4111111111111111", noneFired},
		{"KeepsDecimalFraction", "0.4111111111111111", "0.4111111111111111", noneFired},
		{"KeepsMixedSeparators", "4111 1111-1111 1111", "4111 1111-1111 1111", noneFired},
		{"KeepsOddGrouping", "41 11 11 11 11 11 11 11", "41 11 11 11 11 11 11 11", noneFired},
		{"KeepsTooShort", "411111111111", "411111111111", noneFired},
		{"KeepsAllZeros", "0000 0000 0000 0000", "0000 0000 0000 0000", noneFired},
		{"KeepsMillisecondTimestamp", "updated 1717171717174", "updated 1717171717174", noneFired},
		{"KeepsLuhnValidNonCardPrefixes", "1234567890123452 7111111111111114 8111111111111112 9111111111111110 0111111111111119",
			"1234567890123452 7111111111111114 8111111111111112 9111111111111110 0111111111111119", noneFired},
		{"KeepsIMEI", "imei 356938035643809", "imei 356938035643809", noneFired},
	})
}

func TestScrubSSN(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: []string{USSSN}})
	ssn := []string{USSSN}
	runScrub(t, d, []scrubCase{
		{"MasksDashed", "ssn 123-45-6789.", "ssn " + mSSN + ".", ssn},
		{"MasksSpaced", "ssn: 123 45 6789", "ssn: " + mSSN, ssn},
		{"MasksHighArea", "899-99-9999", mSSN, ssn},
		{"MasksSeveral", "078-05-1120/219-09-9999", mSSN + "/" + mSSN, ssn},
		{"KeepsUndashed", "123456789", "123456789", noneFired},
		{"KeepsArea000", "000-12-3456", "000-12-3456", noneFired},
		{"KeepsArea666", "666-12-3456", "666-12-3456", noneFired},
		{"KeepsArea900To999", "900-12-3456 999-12-3456", "900-12-3456 999-12-3456", noneFired},
		{"KeepsGroup00", "123-00-4567", "123-00-4567", noneFired},
		{"KeepsSerial0000", "123-45-0000", "123-45-0000", noneFired},
		{"KeepsMixedSeparators", "123-45 6789", "123-45 6789", noneFired},
		{"KeepsLongerDashedRun", "1-123-45-6789 123-45-6789-1", "1-123-45-6789 123-45-6789-1", noneFired},
		{"KeepsLongerGroups", "1234-56-7890 123-456-7890", "1234-56-7890 123-456-7890", noneFired},
		{"KeepsInsideWord", "a123-45-6789 123-45-6789b", "a123-45-6789 123-45-6789b", noneFired},
		{"KeepsDates", "2024-01-15", "2024-01-15", noneFired},
	})
}

func TestScrubIBAN(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: []string{IBAN}})
	iban := []string{IBAN}
	runScrub(t, d, []scrubCase{
		{"MasksGermanGrouped", "IBAN DE89 3704 0044 0532 0130 00, thanks", "IBAN " + mIBAN + ", thanks", iban},
		{"MasksBritishGrouped", "GB29 NWBK 6016 1331 9268 19", mIBAN, iban},
		{"MasksCompact", "DE89370400440532013000", mIBAN, iban},
		{"MasksLetters", "FR1420041010050500013M02606", mIBAN, iban},
		{"MasksShortest", "NO9386011117947", mIBAN, iban},
		{"MasksLowerCase", "nl91abna0417164300", mIBAN, iban},
		{"MasksBeforeCurrency", "DE89 3704 0044 0532 0130 00 EUR", mIBAN + " EUR", iban},
		{"MasksFullGroupsBeforeWord", "BE68 5390 0754 7034 EURO", mIBAN + " EURO", iban},
		{"MasksAfterPunctuation", "iban:CH9300762011623852957;", "iban:" + mIBAN + ";", iban},
		{"KeepsWrongChecksum", "DE89370400440532013001", "DE89370400440532013001", noneFired},
		{"KeepsWrongChecksumGrouped", "GB29 NWBK 6016 1331 9268 18", "GB29 NWBK 6016 1331 9268 18", noneFired},
		{"KeepsWrongLengthForCountry", "DE8937040044053201300", "DE8937040044053201300", noneFired},
		{"KeepsInsideWord", "xDE89370400440532013000", "xDE89370400440532013000", noneFired},
		{"KeepsIrregularGroups", "DE89 37040 04405 32013 000", "DE89 37040 04405 32013 000", noneFired},
		{"KeepsOrderCode", "AB12 3456 7890 1234", "AB12 3456 7890 1234", noneFired},
	})
}

func TestScrubEmail(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: []string{Email}})
	email := []string{Email}
	runScrub(t, d, []scrubCase{
		{"MasksInText", "write to ada@example.com.", "write to " + mEmail + ".", email},
		{"MasksTagsAndSubdomains", "<ada.lovelace+tag@mail.example.co.uk>", "<" + mEmail + ">", email},
		{"MasksApostrophe", "o'brien@example.ie", mEmail, email},
		{"MasksRFCSpecials", "x!#$%*+^_~-y@example.org", mEmail, email},
		{"KeepsKeyBeforeAddress", "email=ada@example.com&x=1", "email=" + mEmail + "&x=1", email},
		{"KeepsURLAroundAddress", "https://x.test/users/ada@example.com?tab=1", "https://x.test/users/" + mEmail + "?tab=1", email},
		{"KeepsTableAroundAddress", "|ada@example.com|`bob@example.com`", "|" + mEmail + "|`" + mEmail + "`", email},
		{"KeepsSurroundingQuotes", "'ada@example.com' \"bob@example.net\"", "'" + mEmail + "' \"" + mEmail + "\"", email},
		{"MasksHyphenatedDomain", "ada@mail.example-corp.com", mEmail, email},
		{"MasksUpToTLD", "ada@example.com-x", mEmail + "-x", email},
		{"MasksInternationalLocalPart", "josé@example.com", mEmail, email},
		{"MasksInternationalDomain", "ada@bücher.de", mEmail, email},
		{"KeepsUnicodePunctuationAround", "メール：ada@example.com です", "メール：" + mEmail + " です", email},
		{"MasksSeveral", "a@example.com,b@example.com", mEmail + "," + mEmail, email},
		{"KeepsMaskedLocalPart", "***@example.com", "***@example.com", noneFired},
		{"KeepsNoTLD", "user@localhost", "user@localhost", noneFired},
		{"KeepsShortTLD", "a@b.c", "a@b.c", noneFired},
		{"KeepsNumericTLD", "a@10.0.0.1", "a@10.0.0.1", noneFired},
		{"KeepsNoLocalPart", "@example.com and (@example.com)", "@example.com and (@example.com)", noneFired},
		{"KeepsNoDomain", "ada@ and ada@.com", "ada@ and ada@.com", noneFired},
		{"KeepsMentions", "thanks @ada!", "thanks @ada!", noneFired},
	})
}

func TestScrubSecretToken(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: []string{SecretToken}})
	sec := []string{SecretToken}
	runScrub(t, d, []scrubCase{
		{"MasksAWSAccessKeyID", "key=AKIAIOSFODNN7EXAMPLE,", "key=" + mSecret + ",", sec},
		{"MasksAWSSessionKeyID", "ASIAY34FZKBOKMUTVV7A", mSecret, sec},
		{"KeepsAWSShortKey", "AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPL", noneFired},
		{"KeepsAWSKeyInWord", "XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX", "XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX", noneFired},
		{"MasksGitHubToken", "token " + ghToken, "token " + mSecret, sec},
		{"MasksGitHubTokenKinds", "gho_" + ghToken[4:] + " ghs_" + ghToken[4:], mSecret + " " + mSecret, sec},
		{"MasksGitHubFineGrainedToken", "GITHUB_TOKEN=" + ghPAT, "GITHUB_TOKEN=" + mSecret, sec},
		{"KeepsGitHubShortToken", "ghp_abc", "ghp_abc", noneFired},
		{"MasksSlackToken", "slack: " + slackTok, "slack: " + mSecret, sec},
		{"KeepsSlackWord", "xoxb-", "xoxb-", noneFired},
		{"MasksJWT", "Authorization: Bearer " + jwtToken, "Authorization: Bearer " + mSecret, sec},
		{"MasksJWTBeforeFullStop", "token " + jwtToken + ".", "token " + mSecret + ".", sec},
		{"KeepsDottedBase64WithoutAlg", "eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.c2ln", "eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.c2ln", noneFired},
		{"KeepsWordsStartingEy", "they eye a key.value.pair", "they eye a key.value.pair", noneFired},
		{"MasksPEMPrivateKey", "key:\n" + pemBlock + "\nafter", "key:\n" + mSecret + "\nafter", sec},
		{"MasksPKCS8PrivateKey", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----", mSecret, sec},
		{"MasksTruncatedPEMToEnd", "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "x " + mSecret, sec},
		{"KeepsCertificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", noneFired},
		{"MasksURLPassword", "postgres://app:s3cret@db/x", "postgres://app:" + mSecret + "@db/x", sec},
		{"MasksURLPasswordWithAt", "mysql://app:p@ss@db:3306/x?tls=1", "mysql://app:" + mSecret + "@db:3306/x?tls=1", sec},
		{"MasksURLPasswordWithoutUser", "redis://:s3cret@cache:6379/0", "redis://:" + mSecret + "@cache:6379/0", sec},
		{"KeepsURLWithoutPassword", "https://ada@example.com/x https://example.com:8443/a@b", "https://ada@example.com/x https://example.com:8443/a@b", noneFired},
		{"MasksKeywordPassword", "host=db password=s3cret user=x", "host=db password=" + mSecret + " user=x", sec},
		{"MasksQuotedKeywordPassword", "host=db password = 'a b\\'c' user=x", "host=db password = '" + mSecret + "' user=x", sec},
		{"MasksADONetPassword", "Server=db;User Id=x;Password=s3cret;Encrypt=true", "Server=db;User Id=x;Password=" + mSecret + ";Encrypt=true", sec},
		{"MasksODBCBracedPwd", "DRIVER={x};UID=u;PWD={s;3}", "DRIVER={x};UID=u;PWD={" + mSecret + "}", sec},
		{"MasksQueryPassword", "jdbc:postgresql://db/x?user=u&password=s3cret&ssl=true", "jdbc:postgresql://db/x?user=u&password=" + mSecret + "&ssl=true", sec},
		{"MasksEnvPassword", "PGPASSWORD=s3cret psql", "PGPASSWORD=" + mSecret + " psql", sec},
		{"MasksJSONPassword", `{"user":"u","password":"s3cret"}`, `{"user":"u","password":"` + mSecret + `"}`, sec},
		{"MasksEscapedJSONPassword", `{\"db_password\":\"s3cret\"}`, `{\"db_password\":\"` + mSecret + `\"}`, sec},
		{"MasksYAMLPassword", "db:\n  user: u\n  password: s3cret pass\n", "db:\n  user: u\n  password: " + mSecret + "\n", sec},
		{"KeepsProsePassword", "wrong password: try again", "wrong password: try again", noneFired},
		{"KeepsPasswordComparison", "if password == x", "if password == x", noneFired},
		{"KeepsEmptyPassword", "password= user=x", "password= user=x", noneFired},
		{"KeepsOtherKeys", "user=ada token_type=bearer", "user=ada token_type=bearer", noneFired},
	})
}

func TestScrubAll(t *testing.T) {
	d := mustDetectors(t, Config{
		Detectors: allKinds,
		Allow: map[string][]string{
			Email:       {" support@example.com "},
			CreditCard:  {"4242424242424242"},
			SecretToken: {"changeme"},
		},
	})
	runScrub(t, d, []scrubCase{
		{"MasksEverySpanInPlace", "call me at ada@example.com, card 4111 1111 1111 1111",
			"call me at " + mEmail + ", card " + mCard, []string{CreditCard, Email}},
		{"MasksEveryKind",
			"ssn 123-45-6789 iban GB29NWBK60161331926819 key AKIAIOSFODNN7EXAMPLE mail bob@example.net card 5500-0000-0000-0004",
			"ssn " + mSSN + " iban " + mIBAN + " key " + mSecret + " mail " + mEmail + " card " + mCard,
			[]string{CreditCard, Email, IBAN, SecretToken, USSSN}},
		{"KeepsAllowlistedEmail", "ask support@example.com or ada@example.com",
			"ask support@example.com or " + mEmail, []string{Email}},
		{"AllowlistIsExact", "Support@example.com xsupport@example.com", mEmail + " " + mEmail, []string{Email}},
		{"KeepsAllowlistedCard", "test card 4242424242424242", "test card 4242424242424242", noneFired},
		{"KeepsAllowlistedPassword", "password=changeme pwd=other", "password=changeme pwd=" + mSecret, []string{SecretToken}},
		{"AllowlistDoesNotCoverOtherForms", "4242 4242 4242 4242", mCard, []string{CreditCard}},
		{"MasksPasswordOnceNotAsEmail", "postgres://app:pw@db.example.com/x", "postgres://app:" + mSecret + "@db.example.com/x", []string{SecretToken}},
		{"MasksCardBeforeAt", "4111111111111111@example.com", mCard + "@example.com", []string{CreditCard}},
		{"KeepsUnicodeAround", "Karte：4111111111111111。Grüße, ådа@example.com — ok",
			"Karte：" + mCard + "。Grüße, " + mEmail + " — ok", []string{CreditCard, Email}},
		{"MasksPEMBeforeItsPassword", "password=" + pemBlock + " user=x", "password=" + mSecret + " user=x", []string{SecretToken}},
		{"MasksPEMInUserinfoOnce", "db://-----BEGIN RSA PRIVATE KEY-----x-----END RSA PRIVATE KEY-----@h", "db://" + mSecret + "@h", []string{SecretToken}},
		{"MasksValueFreedByAnother", "a@b.com4111111111111111", mEmail + mCard, []string{CreditCard, Email}},
		{"KeepsEmptyString", "", "", noneFired},
		{"KeepsPlainText", "Zürich, 2 items, €1,234.50, order 1234567890123", "Zürich, 2 items, €1,234.50, order 1234567890123", noneFired},
		{"KeepsInvalidUTF8", "\xff\xfe ada\xff@example.com", "\xff\xfe " + mEmail, []string{Email}},
	})
}

func TestMarkersAreInert(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	var all []string
	for _, k := range kinds {
		all = append(all, k.marker)
	}
	all = append(all, fallback, unencodable)
	for _, joiner := range []string{"", " ", "-", "@", ".", "=", ":", "://a:"} {
		in := strings.Join(all, joiner)
		if got, fired := d.Scrub(in); got != in || fired != nil {
			t.Errorf("Scrub(%q) = %q, %q; want it unchanged", in, got, fired)
		}
	}
}

func TestScrubDoesNotAllocateWithoutMatch(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	for _, in := range []string{
		"Ada Lovelace", "order 1234567890123", "ORD-2024-000123", "1234.50", "London, UK",
		"they said: password == x", "see https://example.com/a?b=c", "@ada", "4111111111111112",
	} {
		if n := testing.AllocsPerRun(100, func() { d.Scrub(in) }); n != 0 {
			t.Errorf("Scrub(%q) allocates %v times; want 0", in, n)
		}
	}
}

func TestScrubValue(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	var in any
	doc := `{
		"ada@example.com": {"email": "ada@example.com", "age": 36, "ok": true, "none": null, "db_password": "hunter2", "pwd_hint": "pet"},
		"items": [{"card": "4111 1111 1111 1111"}, "plain", 4111111111111111, ["123-45-6789"]],
		"n": 1.5
	}`
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(in)

	got, fired := d.ScrubValue(in)

	want := map[string]any{
		mEmail:  map[string]any{"email": mEmail, "age": json.Number("36"), "ok": true, "none": nil, "db_password": mSecret, "pwd_hint": "pet"},
		"items": []any{map[string]any{"card": mCard}, "plain", mCard, []any{mSSN}},
		"n":     json.Number("1.5"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ScrubValue(%s) = %#v; want %#v", doc, got, want)
	}
	if w := []string{CreditCard, Email, SecretToken, USSSN}; !slices.Equal(fired, w) {
		t.Errorf("ScrubValue fired %q; want %q", fired, w)
	}
	if after, _ := json.Marshal(in); string(after) != string(before) {
		t.Errorf("ScrubValue modified its input: %s; was %s", after, before)
	}

	t.Run("ReturnsInputWhenNothingFires", func(t *testing.T) {
		m := map[string]any{"a": []any{"x", float64(1)}}
		got, fired := d.ScrubValue(m)
		if reflect.ValueOf(got).Pointer() != reflect.ValueOf(m).Pointer() || fired != nil {
			t.Errorf("ScrubValue(%v) = %v, %q; want the same map, nothing fired", m, got, fired)
		}
	})
	t.Run("ScrubsRawMessage", func(t *testing.T) {
		got, _ := d.ScrubValue(json.RawMessage(`{"e":"ada@example.com"}`))
		if want := json.RawMessage(`{"e":"` + mEmail + `"}`); !reflect.DeepEqual(got, want) {
			t.Errorf("ScrubValue(RawMessage) = %s; want %s", got, want)
		}
	})
	t.Run("MasksWhatItCannotEncode", func(t *testing.T) {
		if got, _ := d.ScrubValue([]any{make(chan int)}); !reflect.DeepEqual(got, []any{unencodable}) {
			t.Errorf("ScrubValue([chan]) = %#v; want %q", got, unencodable)
		}
	})
	t.Run("EncodesOtherTypes", func(t *testing.T) {
		got, fired := d.ScrubValue(map[string]string{"e": "ada@example.com"})
		if want := json.RawMessage(`{"e":"` + mEmail + `"}`); !reflect.DeepEqual(got, want) || !slices.Equal(fired, []string{Email}) {
			t.Errorf("ScrubValue(map[string]string) = %#v, %q; want %s", got, fired, want)
		}
	})
}

func TestScrubJSON(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	tests := []struct {
		name, in, want string
		fired          []string
	}{
		{"KeepsLayoutScrubsKeys", `{"sql": "select 1 -- ada@example.com", "ada@example.com": 1,  "n":[1, 2.5e3, true, null]}`,
			`{"sql": "select 1 -- ` + mEmail + `", "` + mEmail + `": 1,  "n":[1, 2.5e3, true, null]}`, []string{Email}},
		{"DecodesEscapes", `{"q":"ada\u0040example.com \"x\" <b>"}`, `{"q":"` + mEmail + ` \"x\" <b>"}`, []string{Email}},
		{"ReencodesControlCharacters", "[\"4111111111111111\\n\\u0001\\t\"]", `["` + mCard + `\n\u0001\t"]`, []string{CreditCard}},
		{"ScrubsTopLevelString", `"123-45-6789"`, `"` + mSSN + `"`, []string{USSSN}},
		{"ScrubsNestedArrays", `[[["postgres://u:pw@db/x"]]]`, `[[["postgres://u:` + mSecret + `@db/x"]]]`, []string{SecretToken}},
		{"MasksCardNumbers", `{"card": 4111111111111111, "c2": 4.111111111111111e15, "c3": -5500000000000004.0}`,
			`{"card": "` + mCard + `", "c2": "` + mCard + `", "c3": "` + mCard + `"}`, []string{CreditCard}},
		{"KeepsOtherNumbers", `{"ms": 1717171717174, "big": 4111111111111112, "f": 4111111111111111.5, "e": 1e300}`,
			`{"ms": 1717171717174, "big": 4111111111111112, "f": 4111111111111111.5, "e": 1e300}`, noneFired},
		{"MasksPasswordValues", `{"user":"u", "Password" : "hunter2", "k": ["password", "x"], "pwd": 5, "passwords": "x"}`,
			`{"user":"u", "Password" : "` + mSecret + `", "k": ["password", "x"], "pwd": 5, "passwords": "x"}`, []string{SecretToken}},
		{"KeepsEmptyObject", `{}`, `{}`, noneFired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fired, err := d.ScrubJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("ScrubJSON(%s) = %v", tt.in, err)
			}
			if string(got) != tt.want || !slices.Equal(fired, tt.fired) {
				t.Errorf("ScrubJSON(%s) = %s, %q; want %s, %q", tt.in, got, fired, tt.want, tt.fired)
			}
			if !json.Valid(got) {
				t.Errorf("ScrubJSON(%s) = %s; not valid JSON", tt.in, got)
			}
		})
	}
	t.Run("RefusesInvalidJSON", func(t *testing.T) {
		got, _, err := d.ScrubJSON([]byte(`{"a": "ada@example.com"`))
		if warden.ErrorCode(err) != warden.Invalid || got != nil {
			t.Errorf("ScrubJSON(truncated) = %q, %v; want nil, an Invalid error", got, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // error lines, in order
	}{
		{"AcceptsAll", Config{Detectors: allKinds}, nil},
		{"AcceptsNone", Config{}, nil},
		{"AcceptsAllowlists", Config{Detectors: []string{Email, CreditCard}, Allow: map[string][]string{
			Email: {"support@example.com"}, CreditCard: {"4242 4242 4242 4242"}}}, nil},
		{"RefusesUnknownDetector", Config{Detectors: []string{"email", "phone"}},
			[]string{`detectors[1]: unknown detector "phone" (credit_card, email, us_ssn, iban, secret_token)`}},
		{"RefusesDuplicate", Config{Detectors: []string{"email", "email"}},
			[]string{`detectors[1]: detector "email" is listed twice`}},
		{"RefusesAllowlistForDisabledDetector", Config{Detectors: []string{"email"}, Allow: map[string][]string{"iban": {"GB29NWBK60161331926819"}}},
			[]string{`allow.iban: detector "iban" is not in detectors, so its allowlist would do nothing`}},
		{"RefusesAllowlistForUnknownDetector", Config{Detectors: []string{"email"}, Allow: map[string][]string{"phone": {"1"}}},
			[]string{`allow.phone: unknown detector "phone" (credit_card, email, us_ssn, iban, secret_token)`}},
		{"RefusesUndetectableAllowedValue", Config{Detectors: []string{"email"}, Allow: map[string][]string{"email": {"support", ""}}},
			[]string{`allow.email[0]: "support" is not a value the email detector detects, so allowing it would do nothing`,
				`allow.email[1]: empty value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() = %q; want %q", got, tt.want)
			}
			if err != nil {
				var fe *warden.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("Validate() = %v; want *warden.FieldError values", err)
				}
				if _, nerr := NewDetectors(tt.c); nerr == nil {
					t.Errorf("NewDetectors accepted a config Validate refuses")
				}
			}
		})
	}
	t.Run("PathsNestUnderMasking", func(t *testing.T) {
		c := Config{Detectors: []string{"phone"}}
		got := warden.Under("masking", c.Validate()).Error()
		if want := `masking.detectors[0]: unknown detector "phone" (credit_card, email, us_ssn, iban, secret_token)`; got != want {
			t.Errorf("Under(masking, Validate()) = %q; want %q", got, want)
		}
	})
}

func TestNames(t *testing.T) {
	got := Names()
	if want := []string{CreditCard, Email, USSSN, IBAN, SecretToken}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q; want %q", got, want)
	}
	if _, err := NewDetectors(Config{Detectors: got}); err != nil {
		t.Errorf("NewDetectors(Names()) = %v", err)
	}
}
