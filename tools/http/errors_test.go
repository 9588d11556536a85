package http_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	whttp "github.com/warden-mcp/warden/tools/http"
)

// wantUnavailable checks err is Unavailable with a message containing
// want, and that neither the message nor the recorded cause carries a
// credential or the upstream URL.
func wantUnavailable(t *testing.T, err error, want string, url string) {
	t.Helper()
	e := warden.AsError(err)
	if e == nil || e.Code != warden.Unavailable || !strings.Contains(e.Message, want) {
		t.Fatalf("error = %v; want Unavailable containing %q", err, want)
	}
	if s := leaks(errorText(err)); s != "" {
		t.Errorf("the error carries credential %q: %s", s, errorText(err))
	}
	if strings.Contains(e.Message, url) || strings.Contains(errorText(err), "/v1/invoices") {
		t.Errorf("the error names the upstream URL: %s", errorText(err))
	}
}

func TestTimeout(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hangs until warden gives up
	})
	tool := newTool(newBackend(t, up.URL, func(c *whttp.Config) { c.Timeout = warden.Duration(50 * time.Millisecond) }), nil)
	_, err := call(t, context.Background(), tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
	wantUnavailable(t, err, "did not answer within the timeout of 50ms", up.URL)
}

func TestTimeoutWhileReadingTheBody(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"partial":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	tool := newTool(newBackend(t, up.URL, func(c *whttp.Config) { c.Timeout = warden.Duration(50 * time.Millisecond) }), nil)
	_, err := call(t, context.Background(), tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
	wantUnavailable(t, err, "did not answer within the timeout", up.URL)
}

func TestCancellingTheCallAbandonsAHangingUpstream(t *testing.T) {
	arrived, gone := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // the client went away
		close(gone)
	})
	tool := newTool(newBackend(t, up.URL, func(c *whttp.Config) { c.Timeout = warden.Duration(time.Hour) }), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := call(t, ctx, tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		wantUnavailable(t, err, "was cancelled", up.URL)
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return after its context was cancelled")
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not abandoned")
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tool := newTool(newBackend(t, "http://"+addr+"/api", nil), nil)
	_, err = call(t, context.Background(), tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
	wantUnavailable(t, err, `api "billing" refused the connection`, "http://"+addr)
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+bearerToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"tls":true}`))
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("TrustedThroughCAFile", func(t *testing.T) {
		tool := newTool(newBackend(t, srv.URL, func(c *whttp.Config) { c.CAFile = caFile }), nil)
		res := mustCall(t, tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
		if res.Status != 200 || encodeJSON(t, res.Body) != `{"tls":true}` {
			t.Errorf("result = %+v; want 200 over TLS", res)
		}
	})
	t.Run("UntrustedCertificate", func(t *testing.T) {
		tool := newTool(newBackend(t, srv.URL, nil), nil)
		_, err := call(t, context.Background(), tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
		wantUnavailable(t, err, "signed by an authority warden does not trust", srv.URL)
	})
	t.Run("PlainHTTPToTLS", func(t *testing.T) {
		tool := newTool(newBackend(t, strings.Replace(srv.URL, "https://", "http://", 1), nil), nil)
		res, err := call(t, context.Background(), tool, `{"api":"billing","method":"GET","path":"/v1/invoices"}`)
		// Go's server answers plain HTTP on a TLS port with a 400.
		if err == nil && res.Status != http.StatusBadRequest {
			t.Errorf("plain HTTP to a TLS server = %+v; want an error or a 400", res)
		}
	})
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "Bearer hunter2-hunter2"
	tests := []struct {
		name string
		cfg  whttp.Config
		want string
	}{
		{"MissingBaseURL", whttp.Config{}, "base_url: missing base_url"},
		{"OtherScheme", whttp.Config{BaseURL: "ftp://files.internal/"}, "base_url: must be an http:// or https:// URL"},
		{"NoHost", whttp.Config{BaseURL: "https:///api"}, "base_url: must name a host"},
		{"Userinfo", whttp.Config{BaseURL: "https://user:hunter2-hunter2@billing.internal/api"}, "base_url: must not carry credentials"},
		{"Query", whttp.Config{BaseURL: "https://billing.internal/api?key=hunter2-hunter2"}, "base_url: must not have a query"},
		{"Fragment", whttp.Config{BaseURL: "https://billing.internal/api#x"}, "base_url: must not have a fragment"},
		{"DotInBasePath", whttp.Config{BaseURL: "https://billing.internal/api/../x"}, "base_url: its path must be plain"},
		{"CRLFInValue", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Authorization": "Bearer hunter2-hunter2\r\nX: y"}}, "headers.Authorization: the value contains a line break"},
		{"ShortValue", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"X-Key": "abc"}}, "headers.X-Key: the value is shorter than 8 characters"},
		{"EmptyValue", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"X-Key": ""}}, "headers.X-Key: empty value"},
		{"HostHeader", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Host": "evil.example.com"}}, "headers.Host: Host is set by warden itself"},
		{"HopByHop", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"connection": "keep-alive-x"}}, "headers.connection: Connection is set by warden itself"},
		{"ContentHeader", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Accept": "application/json"}}, "headers.Accept: Accept describes content"},
		{"BadName", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"X Key": secret}}, "headers.X Key: not a valid header name"},
		{"DuplicateName", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Authorization": secret, "authorization": secret}}, "headers.authorization: the same header as Authorization"},
		{"ShortBasicPassword", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("hunter2-user:pw1"))}}, "headers.Authorization: a Basic credential must be base64 of user:password with a password of at least 8"},
		{"BasicNotBase64", whttp.Config{BaseURL: "https://b.internal", Headers: map[string]string{"Authorization": "Basic hunter2-hunter2!"}}, "headers.Authorization: a Basic credential must be base64"},
		{"NegativeCap", whttp.Config{BaseURL: "https://b.internal", MaxResponseBytes: -1}, "max_response_bytes: must be positive"},
		{"TinyTimeout", whttp.Config{BaseURL: "https://b.internal", Timeout: warden.Duration(time.Microsecond)}, "timeout: must be at least 1ms"},
		{"FollowRedirects", whttp.Config{BaseURL: "https://b.internal", FollowRedirects: "always"}, `follow_redirects: unknown value "always"`},
		{"MissingCAFile", whttp.Config{BaseURL: "https://b.internal", CAFile: filepath.Join(dir, "nope.pem")}, "ca_file: cannot read"},
		{"CAFileNotPEM", whttp.Config{BaseURL: "https://b.internal", CAFile: notPEM}, "ca_file: " + notPEM + " holds no PEM certificate"},
		{"CertWithoutKey", whttp.Config{BaseURL: "https://b.internal", CertFile: notPEM}, "key_file: cert_file needs key_file"},
		{"BadKeyPair", whttp.Config{BaseURL: "https://b.internal", CertFile: notPEM, KeyFile: notPEM}, "cert_file: cannot load the client certificate"},
		{"TLSFilesNeedHTTPS", whttp.Config{BaseURL: "http://b.internal", CAFile: notPEM}, "base_url: ca_file, cert_file and key_file need an https base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v; want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Validate() echoes a secret: %v", err)
			}
		})
	}

	c := whttp.Config{BaseURL: "https://billing.internal/api/", Headers: map[string]string{"Authorization": secret}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if c.Timeout != warden.Duration(10*time.Second) || c.MaxResponseBytes != 1<<20 {
		t.Errorf("defaults = %s, %d; want 10s, 1 MiB", c.Timeout, c.MaxResponseBytes)
	}
}
