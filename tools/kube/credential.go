package kube

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// credentials are warden's own credentials for one cluster, in every form
// they could come back in: kept out of every result, whatever
// authenticates warden. They are collected
//
//   - from the config: a static token, the token file (read again when it
//     changes, so a rotated token is masked before it is first sent), basic
//     auth, a client key, an auth provider's tokens and secrets, an exec
//     plugin's secret environment;
//   - from the wire: the Authorization header of every request warden
//     sends, as an exec plugin (EKS, GKE, AKS kubeconfigs) or an auth
//     provider set it, seen below client-go's authentication layers; and
//     the client key an exec plugin returns, as TLS asks for it.
//
// Each is masked raw and encoded: base64 and base64url (at every
// alignment, so a copy inside a longer encoded value is found too),
// percent-encoded, and as a JSON string would escape it.
type credentials struct {
	mu       sync.RWMutex
	seen     map[string]bool
	patterns [][]byte // JSON-escaped forms, searched in encoded results
	plain    []string // raw and encoded forms, searched in decoded text

	tokenFile string
	fileMod   time.Time
	fileSize  int64
}

// minCredential is the shortest value masked: shorter ones would mask
// ordinary words wherever they appear.
const minCredential = 8

// credentialMarker replaces warden's credential wherever it appears.
const credentialMarker = "[masked:credential]"

func newCredentials(rc *rest.Config) *credentials {
	c := &credentials{seen: map[string]bool{}, tokenFile: rc.BearerTokenFile}
	c.add(rc.BearerToken)
	c.readTokenFile()
	if rc.Password != "" {
		c.add(rc.Password)
		c.add(rc.Username + ":" + rc.Password)
	}
	// What a kubeconfig gives a plugin to authenticate with: an auth
	// provider's tokens and client secret, an exec plugin's secret
	// environment (the token it returns is seen on the wire).
	if ap := rc.AuthProvider; ap != nil {
		for k, v := range ap.Config {
			if (*judge)(nil).secretName(k) {
				c.add(v)
			}
		}
	}
	if ep := rc.ExecProvider; ep != nil {
		for _, e := range ep.Env {
			if (*judge)(nil).secretName(e.Name) {
				c.add(e.Value)
			}
		}
	}
	key := rc.KeyData
	if len(key) == 0 && rc.KeyFile != "" {
		key, _ = os.ReadFile(rc.KeyFile)
	}
	c.addKey(key)
	return c
}

// addKey adds a PEM private key: whole, and each line of its body, so a
// copy with other line breaks or escaping is still found.
func (c *credentials) addKey(key []byte) {
	if len(key) == 0 {
		return
	}
	c.add(string(bytes.TrimSpace(key)))
	for rest := key; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		body := base64.StdEncoding.EncodeToString(blk.Bytes)
		c.add(body)
		for len(body) > 64 {
			c.add(body[:64])
			body = body[64:]
		}
		c.add(body)
	}
}

// readTokenFile adds the token file's content when the file changed.
func (c *credentials) readTokenFile() {
	if c.tokenFile == "" {
		return
	}
	fi, err := os.Stat(c.tokenFile)
	if err != nil {
		return
	}
	c.mu.RLock()
	same := fi.ModTime().Equal(c.fileMod) && fi.Size() == c.fileSize
	c.mu.RUnlock()
	if same {
		return
	}
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.fileMod, c.fileSize = fi.ModTime(), fi.Size()
	c.mu.Unlock()
	c.add(string(bytes.TrimSpace(tok)))
}

// observe adds the credential an Authorization header carries.
func (c *credentials) observe(h string) {
	c.mu.RLock()
	known := c.seen[h]
	c.mu.RUnlock()
	if known {
		return
	}
	scheme, v, _ := strings.Cut(h, " ")
	v = strings.TrimSpace(v)
	c.add(v)
	if strings.EqualFold(scheme, "basic") {
		if dec, err := base64.StdEncoding.DecodeString(v); err == nil {
			c.add(string(dec))
			if _, pw, ok := strings.Cut(string(dec), ":"); ok {
				c.add(pw)
			}
		}
	}
	c.mu.Lock()
	c.seen[h] = true
	c.mu.Unlock()
}

// add records s and its encodings.
func (c *credentials) add(s string) {
	if len(s) < minCredential {
		return
	}
	c.mu.RLock()
	known := c.seen[s]
	c.mu.RUnlock()
	if known {
		return
	}
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s)}
	raw := []byte(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms = append(forms, enc.EncodeToString(raw), strings.TrimRight(enc.EncodeToString(raw), "="))
		// At offsets 1 and 2 within a longer value: the characters that
		// depend on s alone.
		for k := 1; k <= 2; k++ {
			full := enc.EncodeToString(append(make([]byte, k), raw...))
			lo, hi := (8*k+5)/6, 8*(k+len(raw))/6
			forms = append(forms, full[lo:hi])
		}
		forms = append(forms, enc.EncodeToString(raw)[:8*len(raw)/6])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[s] = true
	for _, f := range forms {
		if len(f) < minCredential {
			continue
		}
		c.plain = append(c.plain, f)
		q, _ := json.Marshal(f)
		esc := q[1 : len(q)-1]
		c.patterns = append(c.patterns, esc)
		// Inside a JSON string inside a JSON string (an annotation
		// holding JSON).
		q2, _ := json.Marshal(string(esc))
		if esc2 := q2[1 : len(q2)-1]; !bytes.Equal(esc2, esc) {
			c.patterns = append(c.patterns, esc2)
		}
	}
}

// scrub replaces every form of the credentials in JSON text.
func (c *credentials) scrub(out []byte) []byte {
	c.readTokenFile()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range c.patterns {
		if bytes.Contains(out, p) {
			out = bytes.ReplaceAll(out, p, []byte(credentialMarker))
		}
	}
	return out
}

// scrubString is scrub for plain text (an error message).
func (c *credentials) scrubString(s string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range c.plain {
		s = strings.ReplaceAll(s, p, credentialMarker)
	}
	return s
}

// in reports whether decoded text carries a credential.
func (c *credentials) in(s string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, p := range c.plain {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// wrap puts observing under client-go's authentication layers, and, when
// the client certificate comes from a plugin at handshake time (an exec
// plugin that returns a certificate and key), records the key it hands
// TLS.
func (c *credentials) wrap(rt http.RoundTripper) http.RoundTripper {
	for inner := rt; inner != nil; {
		if t, ok := inner.(*http.Transport); ok {
			if tc := t.TLSClientConfig; tc != nil && tc.GetClientCertificate != nil {
				get := tc.GetClientCertificate
				tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
					cert, err := get(cri)
					if err == nil && cert != nil && cert.PrivateKey != nil {
						c.addPrivateKey(cert.PrivateKey)
					}
					return cert, err
				}
			}
			break
		}
		w, ok := inner.(utilnet.RoundTripperWrapper)
		if !ok {
			break
		}
		inner = w.WrappedRoundTripper()
	}
	return &observing{next: rt, creds: c}
}

// addPrivateKey adds a key as its PEM forms (PKCS#8, and SEC 1 or
// PKCS#1 by its type); a key already added adds nothing.
func (c *credentials) addPrivateKey(key crypto.PrivateKey) {
	var blocks []*pem.Block
	if der, err := x509.MarshalPKCS8PrivateKey(key); err == nil {
		blocks = append(blocks, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if der, err := x509.MarshalECPrivateKey(k); err == nil {
			blocks = append(blocks, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		}
	case *rsa.PrivateKey:
		blocks = append(blocks, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	}
	for _, b := range blocks {
		c.addKey(pem.EncodeToMemory(b))
	}
}

// observing records the Authorization header of every request, as the
// layers above it (bearer token, token file, exec plugin, auth provider,
// basic auth) set it.
type observing struct {
	next  http.RoundTripper
	creds *credentials
}

func (o *observing) RoundTrip(r *http.Request) (*http.Response, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		o.creds.observe(h)
	}
	return o.next.RoundTrip(r)
}
