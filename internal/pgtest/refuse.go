package pgtest

import (
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// RefusingServer starts a server that speaks PostgreSQL's protocol just
// far enough to refuse every connection the way a real server does: it
// answers a TLS request with "no", asks for a password (which it reads
// and forgets) and then sends a FATAL error with SQLSTATE code. The local
// test server trusts every local connection, so this is how a test gets
// a real pgconn error for a wrong password (28P01) without changing the
// machine's pg_hba.conf. It returns the address; the server stops when
// the test ends.
func RefusingServer(t testing.TB, code string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go refuse(conn, code)
		}
	}()
	return ln.Addr().String()
}

func refuse(conn net.Conn, code string) {
	defer conn.Close()
	be := pgproto3.NewBackend(conn, conn)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		case *pgproto3.StartupMessage:
		default:
			return
		}
		break
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := be.Flush(); err != nil {
		return
	}
	if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return
	}
	if _, err := be.Receive(); err != nil {
		return
	}
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: "refused by pgtest.RefusingServer"})
	_ = be.Flush()
}
