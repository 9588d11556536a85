package sql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectCause says why a connection to PostgreSQL failed, in words an
// operator can act on: authentication failed, database does not exist,
// connection refused, TLS, timeout, DNS. It is built from the error's
// types and SQLSTATE, never from its text, and never holds the DSN, the
// host, the user or the password. It returns "" for nil.
func ConnectCause(err error) string {
	c, _ := connectCause(err)
	return c
}

// connectCause is ConnectCause; known is false when the error is none of
// the classified causes.
func connectCause(err error) (cause string, known bool) {
	if err == nil {
		return "", false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "28P01":
			return "authentication failed: wrong password (SQLSTATE 28P01)", true
		case "28000":
			return "authentication failed: the role does not exist, may not log in, or pg_hba.conf rejects it (SQLSTATE 28000)", true
		case "3D000":
			return "database does not exist (SQLSTATE 3D000)", true
		case "42501":
			return "permission denied: the role may not connect to this database (SQLSTATE 42501)", true
		case "53300":
			return "too many connections (SQLSTATE 53300)", true
		case "57P03":
			return "the server is starting up, shutting down or in recovery (SQLSTATE 57P03)", true
		case "57014":
			return "timeout: statement_timeout cancelled the statement (SQLSTATE 57014)", true
		case "55P03":
			return "timeout: a lock was not granted in time (SQLSTATE 55P03)", true
		}
		return "the server refused (SQLSTATE " + pg.Code + ")", true
	}
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled", true
	case errors.As(err, &dns):
		return "DNS: the host name does not resolve", true
	case errors.As(err, &hostname):
		return "TLS: the server's certificate is not for this host name", true
	case errors.As(err, &unknownCA):
		return "TLS: the server's certificate is not signed by a trusted authority (sslrootcert)", true
	case errors.As(err, &invalid):
		return "TLS: the server's certificate is not valid (expired or not for serving)", true
	case errors.As(err, &verify):
		return "TLS: the server's certificate could not be verified", true
	case errors.As(err, &alert), errors.As(err, &record):
		return "TLS: the handshake failed", true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens at that host and port", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the host is unreachable", true
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout: the server did not answer in time", true
	case errors.Is(err, syscall.ENOENT):
		return "connection refused: no server socket at that path", true
	}
	// pgconn reports a server that answers the TLS request with "no" as
	// a plain error. When the connection required TLS and the failure is
	// none of the above, TLS is what failed.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && requiresTLS(ce.Config) {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return "TLS: the server closed the connection during the handshake", true
		}
		return "TLS: the server does not accept TLS connections, or the handshake failed (sslmode requires TLS)", true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return "the server closed the connection", true
	}
	return "cannot connect", false
}

// requiresTLS reports whether every attempt pgconn makes uses TLS, as
// sslmode=require, verify-ca and verify-full do.
func requiresTLS(c *pgconn.Config) bool {
	if c == nil || c.TLSConfig == nil {
		return false
	}
	for _, f := range c.Fallbacks {
		if f.TLSConfig == nil {
			return false
		}
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
