package mask

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The tests in this file judge by outcome: after Scrub or ScrubJSON, can
// the planted secret be read back from the output in any form — raw,
// JSON-escaped, base64 or base64url at any alignment, under gzip, inside
// an embedded document? reveals answers that with the standard library's
// decoders, independently of the package's own.

var (
	awsID       = "AKIAIOSFODNN7EXAMPLE"
	awsSecret   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	kubeToken   = "kt-7f3a9c1e5b2d4068.a1b2c3d4e5f60718293a"
	regPassword = "S3cr3tPassw0rd!"
	regAuth     = base64.StdEncoding.EncodeToString([]byte("robot$ci:" + regPassword))
	clientSec   = "cs_9f8e7d6c5b4a3210fedc"
	urlPass     = "pa/ss?w0rd#x"
	plainPass   = "hunter2-Sup3r"
	keyBody     = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"
	cardNumber  = "4111111111111111"
	email       = "ada.lovelace@example.com"
	certData    = base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIG...\n-----END CERTIFICATE-----\n"))
)

// planted is a secret in the context that makes it one.
type planted struct {
	name    string
	text    string   // the plaintext as a system would store it
	secrets []string // what must not be readable afterwards
}

var plantedCorpus = []planted{
	{"Card", "card " + cardNumber + " exp 12/29", []string{cardNumber}},
	{"Email", "contact: " + email, []string{email}},
	{"AWSCredentialsFile", "[default]\naws_access_key_id = " + awsID + "\naws_secret_access_key = " + awsSecret + "\n", []string{awsID, awsSecret}},
	{"AWSEnv", "export AWS_ACCESS_KEY_ID=" + awsID + " AWS_SECRET_ACCESS_KEY=" + awsSecret, []string{awsID, awsSecret}},
	{"AWSCredentialsCSV", "User name,Password,Access key ID,Secret access key,Console login link\nci,," + awsID + "," + awsSecret + ",https://console\n", []string{awsID, awsSecret}},
	{"AWSPairInText", "keys " + awsID + " / " + awsSecret, []string{awsID, awsSecret}},
	{"AWSJSON", `{"AccessKeyId": "` + awsID + `", "SecretAccessKey": "` + awsSecret + `", "Expiration": "2026-12-03T10:00:00Z"}`, []string{awsID, awsSecret}},
	{"Kubeconfig", "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: " + kubeToken +
		"\n    client-certificate-data: " + certData +
		"\n    client-key-data: " + base64.StdEncoding.EncodeToString([]byte(pemBlock)) + "\n",
		[]string{kubeToken, keyBody}},
	{"KubeconfigOIDC", "users:\n- name: oidc\n  user:\n    auth-provider:\n      config:\n        client-id: warden\n        client-secret: " + clientSec + "\n        refresh-token: rt-" + clientSec + "\n",
		[]string{clientSec}},
	{"DockerConfig", `{"auths":{"registry.example.com":{"auth":"` + regAuth + `"}}}`, []string{regPassword, regAuth}},
	{"DockerConfigPassword", `{"auths":{"registry.example.com":{"username":"robot","password":"` + regPassword + `"}}}`, []string{regPassword}},
	{"ClientSecretAssignment", "client_id=warden&client_secret=" + clientSec + "&grant_type=client_credentials", []string{clientSec}},
	{"URLPasswordWithSlash", "redis://default:" + urlPass + "@cache.example.com:6379/0", []string{urlPass}},
	{"URLPasswordWithSlashNoUser", "amqp://:" + urlPass + "@mq/vhost", []string{urlPass}},
	{"AzureConnectionString", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + awsSecret + ";EndpointSuffix=core.windows.net", []string{awsSecret}},
	{"PresignedURL", "https://b.s3.amazonaws.com/k?X-Amz-Credential=" + awsID + "%2F20261203&X-Amz-Security-Token=" + kubeToken + "&X-Amz-Signature=" + clientSec, []string{kubeToken, clientSec}},
	{"SASToken", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-12-04&sp=r&sig=" + clientSec, []string{clientSec}},
	{"CookieHeader", "HTTP/1.1 200 OK\r\nSet-Cookie: session=" + kubeToken + "; Path=/; HttpOnly\r\n", []string{kubeToken}},
	{"PasswdAssignment", "user=app passwd=" + plainPass + " host=db", []string{plainPass}},
	{"YAMLPassword", "db:\n  user: app\n  password: " + plainPass + "\n", []string{plainPass}},
	{"YAMLBlockPassword", "db:\n  password: |\n    " + plainPass + "\n  user: app\n", []string{plainPass}},
	{"YAMLAliasPassword", "defaults: &pw " + plainPass + "\ndb:\n  password: *pw\n", []string{plainPass}},
	{"BasicAuthHeader", "curl -H 'Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("ada:"+plainPass)) + "' https://api", []string{plainPass}},
	{"BearerHeader", "Authorization: Bearer " + kubeToken, []string{kubeToken}},
	{"GitHubToken", "GITHUB_TOKEN " + ghToken, []string{ghToken}},
	{"PEMKey", "key:\n" + pemBlock + "\n", []string{keyBody}},
	{"EnvPair", `[{"name":"LOG_LEVEL","value":"debug"},{"name":"DB_PASSWORD","value":"` + plainPass + `"}]`, []string{plainPass}},
	{"CopiedSecret", `{"apiVersion":"v1","data":{"settings":"` + base64.StdEncoding.EncodeToString([]byte("opaque-"+plainPass)) + `"},"kind":"Secret","metadata":{"name":"app"}}`,
		[]string{plainPass}},
	{"CopiedSecretInError", `Error from server (BadRequest): error when creating "s.yaml": {"apiVersion":"v1","data":{"settings":"` +
		base64.StdEncoding.EncodeToString([]byte("opaque-"+plainPass)) + `"},"kind":"Secret"} (rejected)`, []string{plainPass}},
	{"EnvPairInLog", `level=info msg="starting" env=[{"name":"DB_PASSWORD","value":"` + plainPass + `"}] pid=7`, []string{plainPass}},
}

// encodings are the forms a stored value takes on its way to a result.
var encodings = []struct {
	name string
	enc  func(string) string
}{
	{"Raw", func(s string) string { return s }},
	{"Base64", func(s string) string { return "data: " + base64.StdEncoding.EncodeToString([]byte(s)) + " end" }},
	// Blanks shift the alignment and keep embedded documents whole.
	{"Base64Offset1", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(" " + s)) }},
	{"Base64Offset2", func(s string) string { return base64.StdEncoding.EncodeToString([]byte("\n " + s + "\n")) }},
	{"Base64URL", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"Base64URLOffset1", func(s string) string { return "v=" + base64.URLEncoding.EncodeToString([]byte("\n"+s)) }},
	{"Base64Wrapped", func(s string) string { return wrap(base64.StdEncoding.EncodeToString([]byte(s)), 64) }},
	{"Base64Twice", func(s string) string {
		return base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(s))))
	}},
	{"GzipBase64", func(s string) string { return base64.StdEncoding.EncodeToString(gz(s)) }},
	{"EmbeddedJSON", func(s string) string { return mustJSON(map[string]any{"kind": "Note", "body": s}) }},
	{"EmbeddedYAML", func(s string) string { return "kind: Note\nbody: |\n  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n" }},
	{"HelmRelease", func(s string) string {
		manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  notes: |\n    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
		return base64.StdEncoding.EncodeToString(gz(mustJSON(map[string]any{"name": "app", "version": 3, "manifest": manifest})))
	}},
	{"Base64OfJSONOfBase64", func(s string) string {
		return base64.StdEncoding.EncodeToString([]byte(mustJSON(map[string]any{"blob": base64.StdEncoding.EncodeToString([]byte(s))})))
	}},
}

func TestScrubSeesThroughEncodings(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	for _, p := range plantedCorpus {
		for _, e := range encodings {
			t.Run(p.name+"/"+e.name, func(t *testing.T) {
				in := e.enc(p.text)
				for _, secret := range p.secrets {
					if !reveals(in, secret) {
						t.Fatalf("test oracle cannot read %q from the input %q", secret, in)
					}
				}
				out, fired := d.Scrub(in)
				for _, secret := range p.secrets {
					if reveals(out, secret) {
						t.Errorf("Scrub(%q) = %q; %q can be read back", in, out, secret)
					}
				}
				if fired == nil {
					t.Errorf("Scrub(%q) fired nothing", in)
				}
				if again, f := d.Scrub(out); again != out || f != nil {
					t.Errorf("Scrub(%q) = %q; Scrub of that = %q, %q; want a fixed point", in, out, again, f)
				}

				// The same value as a string member of a JSON result, as
				// the pipeline scrubs it.
				doc := mustJSON(map[string]any{"items": []any{map[string]any{"id": 7, "value": in}}})
				got, fired, err := d.ScrubJSON([]byte(doc))
				if err != nil || !json.Valid(got) {
					t.Fatalf("ScrubJSON(%s) = %s, %v", doc, got, err)
				}
				for _, secret := range p.secrets {
					if reveals(string(got), secret) {
						t.Errorf("ScrubJSON(%s) = %s; %q can be read back", doc, got, secret)
					}
				}
				if fired == nil {
					t.Errorf("ScrubJSON(%s) fired nothing", doc)
				}
			})
		}
	}
}

func TestScrubJSONScansKeysAndNumbers(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	for _, tt := range []struct {
		name, doc string
		secrets   []string
	}{
		{"CardAsNumber", `{"card": 4111111111111111, "n": 3}`, []string{cardNumber}},
		{"CardAsExponent", `[4.111111111111111e15, 41111111111111110e-1]`, []string{cardNumber}},
		{"CardAsKey", `{"4111111111111111": {"exp": "12/29"}, "5500000000000004": {"exp": "01/30"}}`, []string{cardNumber, "5500000000000004"}},
		{"EmailAsKey", `{"users": {"ada.lovelace@example.com": {"role": "admin"}}}`, []string{email}},
		{"TokenAsKey", `{"` + ghToken + `": true}`, []string{ghToken}},
		{"AWSSecretByName", `{"AWS_SECRET_ACCESS_KEY": "` + awsSecret + `"}`, []string{awsSecret}},
		{"ClientSecretByName", `{"oauth": {"clientSecret": "` + clientSec + `"}}`, []string{clientSec}},
		{"TokenByName", `{"token": "` + kubeToken + `"}`, []string{kubeToken}},
		{"RegistryAuthByName", `{"auths": {"r.example.com": {"auth": "` + regAuth + `"}}}`, []string{regAuth, regPassword}},
		{"AuthorizationKeepsScheme", `{"headers": {"Authorization": "Bearer abc"}}`, []string{"abc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, fired, err := d.ScrubJSON([]byte(tt.doc))
			if err != nil || !json.Valid(got) || fired == nil {
				t.Fatalf("ScrubJSON(%s) = %s, %q, %v", tt.doc, got, fired, err)
			}
			for _, s := range tt.secrets {
				if reveals(string(got), s) {
					t.Errorf("ScrubJSON(%s) = %s; %q can be read back", tt.doc, got, s)
				}
			}
		})
	}
	t.Run("KeepsSchemeAndStructure", func(t *testing.T) {
		got, _, _ := d.ScrubJSON([]byte(`{"Authorization": "Bearer abc", "auth": "oauth2", "card": 4111111111111111}`))
		if want := `{"Authorization": "Bearer ` + mSecret + `", "auth": "oauth2", "card": "` + mCard + `"}`; string(got) != want {
			t.Errorf("ScrubJSON = %s; want %s", got, want)
		}
	})
	t.Run("CollidingKeysMaskTheirValue", func(t *testing.T) {
		in := map[string]any{"4111111111111111": "a", "5500000000000004": "b", "x": "y"}
		got, _ := d.ScrubValue(in)
		want := map[string]any{mCard: fallback, "x": "y"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ScrubValue(%v) = %v; want %v", in, got, want)
		}
	})
}

// falsePositives are values detectors must leave alone, raw and encoded.
var falsePositives = []string{
	"123e4567-e89b-12d3-a456-426614174000", "f47ac10b-58cc-4372-a567-0e02b2c3d479",
	"9fceb02d0ae598e95dc970b74767f19372d61af8", "9fceb02", "48213577", "123456789",
	"sha256:3b5e4a8f1c2d9e0b7a6f5c4d3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09",
	"docker.io/library/nginx@sha256:3b5e4a8f1c2d9e0b7a6f5c4d3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09",
	"2026-12-03T09:22:39Z", "2026-12-03T09:22:39.123456789+01:00", "1733217759", "1733217759123",
	"Lovelace", "delivered", "configuration", "internationalization", "Authentication", "kubernetes",
	"ORD-2024-118842", "kube-system", "default-token-abcde", "system:serviceaccount:kube-system:default",
	"/api/v1/namespaces/default/pods/web-7f9c6d5b8-x2x4k", "https://example.com:8443/a@b",
	"http://svc:8080/users/bob@internal", "token_type=bearer", "Bearer token required", "the Bearer authentication scheme",
	"existingSecret: app-credentials\nsecretName: db-creds\n",
	"env:\n- name: DB_PASSWORD_FILE\n  value: /run/secrets/db\n- name: LOG_LEVEL\n  value: debug\n",
	"client-certificate-data: " + certData + "\n",
	"auth: oauth2\nmode: strict\n",
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  LOG_LEVEL: debug\n",
	`{"kind":"Secret","data":{"password":"[masked:secret]"}}`,
	`{"metadata":{"resourceVersion":"48213577","uid":"f47ac10b-58cc-4372-a567-0e02b2c3d479","generation":3}}`,
	`created: {"kind":"ConfigMap","data":{"LOG_LEVEL":"debug"}} and {"kind":"Secret","data":{}} env=[{"name":"LOG_LEVEL","value":"debug"}]`,
	"hello world, this is fine", "Zürich, 2 items, €1,234.50",
	"42", "1234", "+1 415 555 2671",
	"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
}

func TestScrubLeavesHarmlessValuesAlone(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	helm := base64.StdEncoding.EncodeToString(gz(mustJSON(map[string]any{
		"name": "app", "version": 3, "info": map[string]any{"status": "deployed", "last_deployed": "2026-12-03T09:22:39Z"},
		"manifest": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx@sha256:3b5e4a8f1c2d9e0b7a6f5c4d3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09\n        env:\n        - name: LOG_LEVEL\n          value: debug\n",
	})))
	var cases []string
	for _, v := range falsePositives {
		cases = append(cases, v,
			base64.StdEncoding.EncodeToString([]byte(v)),
			base64.RawURLEncoding.EncodeToString([]byte(v)),
			base64.StdEncoding.EncodeToString(gz(v)))
	}
	cases = append(cases, helm)
	changed := 0
	for _, in := range cases {
		if out, fired := d.Scrub(in); out != in || fired != nil {
			changed++
			t.Errorf("Scrub(%q) = %q, %q; want it unchanged", in, out, fired)
		}
		doc := mustJSON(map[string]any{in: in, "n": 1733217759123})
		if out, fired, err := d.ScrubJSON([]byte(doc)); err != nil || string(out) != doc || fired != nil {
			t.Errorf("ScrubJSON(%s) = %s, %q, %v; want it unchanged", doc, out, fired, err)
		}
	}
	t.Logf("false positives: %d of %d harmless values", changed, len(cases))

	// A realistic result: not one of its 10,000 cells may change.
	for _, c := range resultCells(0) {
		if out, fired := d.Scrub(c); out != c || fired != nil {
			t.Errorf("Scrub(%q) = %q, %q; want it unchanged", c, out, fired)
		}
	}
}

func TestScrubKeepsWhatIsNotSecretInPlace(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	var kubeconfig string
	for _, p := range plantedCorpus {
		if p.name == "Kubeconfig" {
			kubeconfig = p.text
		}
	}
	out, _ := d.Scrub(kubeconfig)
	for _, keep := range []string{"client-certificate-data: " + certData, "name: admin", "kind: Config"} {
		if !strings.Contains(out, keep) {
			t.Errorf("Scrub(kubeconfig) = %q; want %q kept", out, keep)
		}
	}
	annotation := mustJSON(map[string]any{"kind": "Deployment", "spec": map[string]any{"owner": email, "replicas": 3}})
	out, _ = d.Scrub(annotation)
	if want := `{"kind":"Deployment","spec":{"owner":"` + mEmail + `","replicas":3}}`; out != want {
		t.Errorf("Scrub(%s) = %s; want %s (scrubbed member by member)", annotation, out, want)
	}
	b64 := "x " + base64.StdEncoding.EncodeToString([]byte("contact "+email)) + " y"
	if out, _ := d.Scrub(b64); out != "x "+mEmail+" y" {
		t.Errorf("Scrub(%q) = %q; want the whole run masked", b64, out)
	}
}

func TestScrubBoundsDecoding(t *testing.T) {
	d := mustDetectors(t, Config{Detectors: allKinds})
	t.Run("GzipBombIsMasked", func(t *testing.T) {
		bomb := base64.StdEncoding.EncodeToString(gz(strings.Repeat("0", inflateBase+4<<20)))
		out, fired := d.Scrub("blob " + bomb)
		if out != "blob "+mSecret || fired == nil {
			t.Errorf("Scrub(gzip bomb) = %.80q, %q; want it masked, as it cannot be inspected", out, fired)
		}
	})
	t.Run("TooDeepGzipIsMasked", func(t *testing.T) {
		s := "harmless"
		for range maxLayers {
			s = base64.StdEncoding.EncodeToString(gz(s))
		}
		if out, fired := d.Scrub(s); out != mSecret || fired == nil {
			t.Errorf("Scrub(%d layers of gzip) = %q, %q; want it masked", maxLayers*2, out, fired)
		}
	})
}

// reveals reports whether secret can be read from s: raw, JSON-escaped,
// or after base64/base64url decoding (any alignment), gunzip, and JSON
// string decoding, a few layers deep.
func reveals(s, secret string) bool { return revealsAt(s, secret, 0) }

var b64RunRE = regexp.MustCompile(`[A-Za-z0-9+/_\-]{8,}(?:\s*\n\s*[A-Za-z0-9+/_\-]+)*={0,2}`)

func revealsAt(s, secret string, depth int) bool {
	if strings.Contains(s, secret) {
		return true
	}
	if esc, _ := json.Marshal(secret); strings.Contains(s, string(esc[1:len(esc)-1])) {
		return true
	}
	if depth > 6 {
		return false
	}
	if strings.Contains(s, `\`) {
		// JSON text: read its strings.
		for _, m := range regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).FindAllString(s, -1) {
			var v string
			if json.Unmarshal([]byte(m), &v) == nil && v != m[1:len(m)-1] && revealsAt(v, secret, depth+1) {
				return true
			}
		}
	}
	for _, run := range b64RunRE.FindAllString(s, -1) {
		run = strings.Join(strings.Fields(run), "")
		run = strings.TrimRight(run, "=")
		run = strings.NewReplacer("-", "+", "_", "/").Replace(run)
		for off := 0; off < 4 && off < len(run); off++ {
			r := run[off:]
			if len(r)%4 == 1 {
				r = r[:len(r)-1]
			}
			dec, err := base64.RawStdEncoding.DecodeString(r)
			if err != nil || len(dec) == 0 {
				continue
			}
			if bytes.HasPrefix(dec, []byte{0x1f, 0x8b}) {
				if zr, err := gzip.NewReader(bytes.NewReader(dec)); err == nil {
					var buf bytes.Buffer
					_, _ = buf.ReadFrom(zr)
					if revealsAt(buf.String(), secret, depth+1) {
						return true
					}
				}
			}
			if revealsAt(string(dec), secret, depth+1) {
				return true
			}
		}
	}
	return false
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

func mustJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString("\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}
