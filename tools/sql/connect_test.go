package sql

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/pgtest"
)

const testPassword = "Sup3r-Secret-Passw0rd"

// caFile writes a CA certificate that signed nothing the server holds.
func caFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// adminWith returns the test server's URL with its user, database and
// query changed.
func adminWith(t *testing.T, user, db, query string) string {
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, testPassword)
	u.Path = "/" + db
	u.RawQuery = query
	return u.String()
}

// TestConnectCause produces each failure for real — against the local
// server where it can (missing database, missing role, untrusted TLS),
// and against pgtest.RefusingServer where the local server's trust
// authentication cannot (a wrong password, a server without TLS) — and
// checks the cause names it without the DSN or the password.
func TestConnectCause(t *testing.T) {
	refuser := pgtest.RefusingServer(t, "28P01")
	for _, tc := range []struct {
		name, dsn, want string
	}{
		{"WrongPassword", "postgres://app:" + testPassword + "@" + refuser + "/shop?sslmode=disable", "authentication failed: wrong password"},
		{"NoSuchRole", adminWith(t, "warden_no_such_role", "postgres", ""), "authentication failed: the role does not exist"},
		{"NoSuchDatabase", adminWith(t, "postgres", "warden_no_such_database", ""), "database does not exist"},
		{"ConnectionRefused", "postgres://app:" + testPassword + "@" + closedPort(t) + "/shop?sslmode=disable", "connection refused"},
		{"ServerWithoutTLS", "postgres://app:" + testPassword + "@" + refuser + "/shop?sslmode=require", "TLS: the server does not accept TLS"},
		{"UntrustedCertificate", adminWith(t, "postgres", "postgres", "sslmode=verify-ca&sslrootcert="+url.QueryEscape(caFile(t))), "TLS: the server's certificate is not signed by a trusted authority"},
		{"UnknownHost", "postgres://app:" + testPassword + "@warden-no-such-host.invalid:5432/shop?sslmode=disable&connect_timeout=5", "DNS: the host name does not resolve"},
		{"Timeout", "postgres://app:" + testPassword + "@" + silentServer(t) + "/shop?sslmode=disable&connect_timeout=1", "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, tc.dsn)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected")
			}
			got := ConnectCause(err)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("ConnectCause(%v) = %q; want %q...", err, got, tc.want)
			}
			if strings.Contains(got, testPassword) || strings.Contains(got, "127.0.0.1") {
				t.Errorf("cause %q holds the password or the address", got)
			}
			// The same cause reaches a backend's probe and its refusals.
			cfg := Config{DSN: tc.dsn}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			b, err := NewBackend("shop", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, perr := b.Probe(ctx)
			var pe *ProbeError
			if !errors.As(perr, &pe) || !strings.HasPrefix(pe.Cause, tc.want) {
				t.Fatalf("Probe = %v; want a ProbeError %q", perr, tc.want)
			}
			var we *warden.Error
			if !errors.As(b.unavailable(pe.Err), &we) || we.Message != `database "shop" is unavailable: `+pe.Cause {
				t.Errorf("refusal = %v; want the cause %q", we, pe.Cause)
			}
		})
	}
}
