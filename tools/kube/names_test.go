package kube

import (
	"slices"
	"testing"
)

func TestComponents(t *testing.T) {
	for in, want := range map[string][]string{
		"AWS_SECRET_ACCESS_KEY":   {"aws", "secret", "access", "key"},
		"awsSecretAccessKey":      {"aws", "secret", "access", "key"},
		"--aws-secret-access-key": {"aws", "secret", "access", "key"},
		"APIKey":                  {"api", "key"},
		"db.password":             {"db", "password"},
		"MONKEY":                  {"monkey"},
		"":                        nil,
	} {
		if got := components(in); !slices.Equal(got, want) {
			t.Errorf("components(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestSecretName(t *testing.T) {
	j := newJudge(Masking{SecretNames: []string{"vault"}})
	for name, want := range map[string]bool{
		"DB_PASSWORD": true, "PGPASSWORD": true, "dbPassword": true, "MYSQL_ROOT_PASSWD": true, "PWD": true,
		"AWS_SECRET_ACCESS_KEY": true, "API_KEY": true, "apikey": true, "KEY": true, "GITHUB_TOKEN": true,
		"accessToken": true, "DATABASE_DSN": true, "BASIC_AUTH": true, "CLIENT_CREDENTIALS": true, "PRIVATE_KEY": true,
		"SESSION_COOKIE": true, "VAULT_ADDR": true, "tls.key": true, "client-key-data": true, "id-token": true,
		"MONKEY": false, "KEYCLOAK_URL": false, "TOKENIZER_MODEL": false, "LOG_LEVEL": false, "PORT": false,
		"SECRET_NAME": false, "TOKEN_TTL": false, "PASSWORD_FILE": false, "KEY_PATH": false, "PUBLIC_KEY": false,
		"AUTH_ENABLED": false, "AUTHOR": false, "TURKEY": false, "DONKEY_COUNT": false, "HOSTNAME": false,
	} {
		if got := j.secretName(name); got != want {
			t.Errorf("secretName(%q) = %v; want %v", name, got, want)
		}
	}
}

func TestWords(t *testing.T) {
	j := newJudge(Masking{SecretFlags: []string{"-W"}})
	for _, tc := range []struct{ in, want string }{
		{"--password hunter22", "--password [masked:secret]"},
		{"--password=hunter22", "--password=[masked:secret]"},
		{"--db-password 'two words' --port 5432", "--db-password '[masked:secret] [masked:secret] --port 5432"},
		{"mysql -u root -phunter22 app", "mysql -u root -p[masked:secret] app"},
		{"mysql -u root -p app", "mysql -u root -p [masked:secret]"},
		{"ssh -p 22 host", "ssh -p 22 host"},
		{"docker run -p 8080:80/tcp nginx", "docker run -p 8080:80/tcp nginx"},
		{"curl -u admin:hunter22 https://x", "curl -u admin:[masked:secret] https://x"},
		{"curl -H Authorization: Bearer abc.def.ghi", "curl -H Authorization: Bearer [masked:secret]"},
		{"env DB_PASSWORD=hunter22 ./run", "env DB_PASSWORD=[masked:secret] ./run"},
		{"java -Djavax.net.ssl.keyStorePassword=changeit -Xmx1g", "java -Djavax.net.ssl.keyStorePassword=[masked:secret] -Xmx1g"},
		{"pg_dump -W hunter22", "pg_dump -W [masked:secret]"},
		{"--port=8080 --log-level debug", "--port=8080 --log-level debug"},
		{"--token -v", "--token -v"},
		{"--password=$(DB_PASSWORD)", "--password=$(DB_PASSWORD)"},
		{"send Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "send Bearer [masked:secret]"},
		{"use Basic auth for the admin UI", "use Basic auth for the admin UI"},
	} {
		if got, _, _ := j.words(tc.in, pendNone); got != tc.want {
			t.Errorf("words(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	// An args array is one stream: a flag that ends one element masks the
	// next element.
	if _, _, p := j.words("--password", pendNone); p != pendSecret {
		t.Errorf("--password leaves %v; want the next word masked", p)
	}
}

func TestLines(t *testing.T) {
	j := newJudge(Masking{})
	in := "db.host=db\ndb.password = hunter22\nexport API_TOKEN=\"abc\"\nlevel: debug\nsecret: x1y2z3"
	want := "db.host=db\ndb.password = [masked:secret]\nexport API_TOKEN=[masked:secret]\nlevel: debug\nsecret: [masked:secret]"
	if got, _ := j.lines(in); got != want {
		t.Errorf("lines =\n%s\nwant\n%s", got, want)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"app.kubernetes.io/*", "app.kubernetes.io/name", true},
		{"*", "anything/at.all", true},
		{"LOG_*", "LOG_LEVEL", true},
		{"LOG_*", "XLOG_LEVEL", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
		{"exact", "exact", true},
	} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v; want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
