package http

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/warden-mcp/warden"
)

// failure translates a transport error into one the agent can act on.
// Messages name the API, never its URL or credentials; the cause kept for
// the recording is the error below net/url's, which quotes the URL.
func (b *Backend) failure(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	name := b.Name
	var (
		dnsErr      *net.DNSError
		unknownCA   x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
		netErr      net.Error
	)
	msg := ""
	switch {
	case ctx.Err() != nil:
		msg = fmt.Sprintf("the call to api %q was cancelled before it completed", name)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		msg = fmt.Sprintf("api %q did not answer within the timeout of %s; try again later, or ask for less", name, time.Duration(b.cfg.Timeout))
	case errors.Is(err, errOtherHost):
		msg = fmt.Sprintf("warden refused to connect anywhere but api %q's host", name)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("api %q refused the connection; it may be down, try again later", name)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("the host of api %q cannot be resolved", name)
	case errors.As(err, &unknownCA):
		msg = fmt.Sprintf("TLS with api %q failed: its certificate is signed by an authority warden does not trust (the operator may need to set ca_file)", name)
	case errors.As(err, &hostErr):
		msg = fmt.Sprintf("TLS with api %q failed: its certificate is not valid for the configured host", name)
	case errors.As(err, &invalidCert):
		msg = fmt.Sprintf("TLS with api %q failed: its certificate is expired, not yet valid or not usable", name)
	case errors.As(err, &verifyErr), errors.As(err, &alertErr):
		msg = fmt.Sprintf("TLS with api %q failed: the handshake was refused (a client certificate may be missing or not accepted)", name)
	case errors.As(err, &recordErr):
		msg = fmt.Sprintf("TLS with api %q failed: it did not answer with TLS (is base_url https when the API speaks http?)", name)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		msg = fmt.Sprintf("api %q closed the connection before the response was complete; try again later", name)
	default:
		msg = fmt.Sprintf("api %q could not be reached", name)
	}
	if s := err.Error(); b.secrets.scrubString(s) != s {
		// The cause is recorded: it must not carry a credential either.
		err = errors.New(b.secrets.scrubString(s))
	}
	return warden.Wrap(warden.Unavailable, err, msg)
}
