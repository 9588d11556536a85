package mcp

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

func TestHTTPConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		origins []string
		want    []string
		err     string
	}{
		{"CanonicalisesCaseAndDefaultPort", []string{"HTTPS://App.Example.com:443", "http://localhost:3000/"}, []string{"https://app.example.com", "http://localhost:3000"}, ""},
		{"KeepsIPv6Brackets", []string{"http://[::1]:8080"}, []string{"http://[::1]:8080"}, ""},
		{"RefusesWildcard", []string{"*"}, nil, `allowed_origins[0]: "*" is not allowed`},
		{"RefusesNull", []string{"null"}, nil, `allowed_origins[0]: "null" is not allowed`},
		{"RefusesPath", []string{"https://app.example.com/x"}, nil, "is not an origin"},
		{"RefusesOtherSchemes", []string{"file:///etc"}, nil, "is not an origin"},
		{"RefusesUserinfo", []string{"https://u@app.example.com"}, nil, "is not an origin"},
		{"RefusesBareHost", []string{"app.example.com"}, nil, "is not an origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := HTTPConfig{AllowedOrigins: append([]string(nil), tt.origins...)}
			err := c.Validate()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Validate(%q) = %v; want an error containing %q", tt.origins, err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(c.AllowedOrigins, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("Validate(%q) = %v, %q; want %q", tt.origins, err, c.AllowedOrigins, tt.want)
			}
		})
	}
	t.Run("FillsDefaults", func(t *testing.T) {
		var c HTTPConfig
		if err := c.Validate(); err != nil || c.MaxRequestBytes != 4<<20 || time.Duration(c.ReadTimeout) != 10*time.Second ||
			time.Duration(c.WriteTimeout) != 30*time.Second || time.Duration(c.IdleTimeout) != 2*time.Minute || len(c.AllowedOrigins) != 0 {
			t.Fatalf("Validate() of an empty section = %v, %+v; want the defaults and no origins", err, c)
		}
	})
	t.Run("RefusesTinyLimits", func(t *testing.T) {
		c := HTTPConfig{MaxRequestBytes: 10, WriteTimeout: warden.Duration(time.Millisecond)}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "max_request_bytes") || !strings.Contains(err.Error(), "write_timeout") {
			t.Fatalf("Validate(tiny) = %v; want errors naming max_request_bytes and write_timeout", err)
		}
	})
}

func TestCrossSite(t *testing.T) {
	s := &Server{opts: Options{Identity: &IdentityConfig{Resource: "https://warden.example.com/mcp"}},
		http: HTTPConfig{AllowedOrigins: []string{"https://app.example.com"}}}
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8765}
	public := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8765}
	tests := []struct {
		name    string
		local   net.Addr
		host    string
		headers map[string][]string
		refused bool
	}{
		{"PlainClientOnLoopback", loopback, "127.0.0.1:8765", nil, false},
		{"LocalhostName", loopback, "LOCALHOST:8765", nil, false},
		{"IPv6Loopback", loopback, "[::1]:8765", nil, false},
		{"ResourceHostBehindALocalProxy", loopback, "warden.example.com", nil, false},
		{"RebindingHost", loopback, "attacker.example:8765", nil, true},
		{"LoopbackLookalikeHost", loopback, "127.0.0.1.attacker.example", nil, true},
		{"RebindingHostIsFineOffLoopback", public, "attacker.example", nil, false},
		{"AllowedOrigin", loopback, "127.0.0.1:8765", map[string][]string{"Origin": {"https://app.example.com"}}, false},
		{"ForeignOrigin", loopback, "127.0.0.1:8765", map[string][]string{"Origin": {"https://evil.example"}}, true},
		{"ForeignOriginOffLoopback", public, "warden.example.com", map[string][]string{"Origin": {"https://evil.example"}}, true},
		{"NullOrigin", loopback, "127.0.0.1:8765", map[string][]string{"Origin": {"null"}}, true},
		{"TwoOrigins", loopback, "127.0.0.1:8765", map[string][]string{"Origin": {"https://app.example.com", "https://evil.example"}}, true},
		{"AllowedOriginDifferentCase", loopback, "127.0.0.1:8765", map[string][]string{"Origin": {"https://APP.example.com"}}, true},
		{"CrossSiteWithoutOrigin", loopback, "127.0.0.1:8765", map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, true},
		{"SameSiteWithoutOrigin", loopback, "127.0.0.1:8765", map[string][]string{"Sec-Fetch-Site": {"same-site"}}, true},
		{"UnknownFetchSite", loopback, "127.0.0.1:8765", map[string][]string{"Sec-Fetch-Site": {"bogus"}}, true},
		{"UserNavigation", loopback, "127.0.0.1:8765", map[string][]string{"Sec-Fetch-Site": {"none"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/mcp", nil)
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			r.Host = tt.host
			for k, v := range tt.headers {
				r.Header[k] = v
			}
			if _, got := s.crossSite(r); (got != "") != tt.refused {
				t.Errorf("crossSite(%s, Host %q, %v) = %q; want refused %v", tt.local, tt.host, tt.headers, got, tt.refused)
			}
		})
	}
}

func TestCheckRequestSpeaksJSON(t *testing.T) {
	s := &Server{}
	tests := []struct {
		name, msg, want string
	}{
		{"WrongFieldType", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`, "invalid tools/call request: params.name must be a string, not a number"},
		{"ParamsNotAnObject", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}`, "invalid tools/call request: params must be an object, not a string"},
		{"EmbeddedStructNamesDropped", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":[1]}}`, "invalid tools/list request: params.cursor must be a string, not an array"},
		{"InitializeVersionNotAString", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":7}}`, "invalid initialize request: params.protocolVersion must be a string, not a number"},
		{"ArgumentsNotAnObject", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"DROP"}}`, "invalid tools/call request: params.arguments must be an object"},
		{"WellFormed", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}}`, ""},
		{"NullArguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":null}}`, ""},
		{"MethodWardenDoesNotServe", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":5}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.checkRequest(context.Background(), 1, json.RawMessage(tt.msg))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("checkRequest(%s) = %q; want %q", tt.msg, got, tt.want)
			}
		})
	}
}

// TestRefusalsAreBounded drives the refusal log with a clock the test
// controls, against the real recorder: beyond the budget a window's
// refusals become one summary record, and nothing is lost.
func TestRefusalsAreBounded(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "rec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var n int
	p := &warden.Pipeline{Recorder: store, Clock: clock, NewID: func() string { n++; return "c-" + time.Duration(n).String() }}
	f := &refusals{pipeline: p, rules: map[string]int{}}

	refuse := func(k int, rule string) {
		r := httptest.NewRequest("POST", "/mcp", strings.NewReader("SECRET-BODY"))
		r.Header.Set("Origin", "https://evil.example/"+strings.Repeat("o", 1000))
		for i := 0; i < k; i++ {
			f.record(ctx, r, nil, &warden.Error{Code: warden.Unauthenticated, Rule: rule, Message: "no token"})
		}
	}
	refuse(50, "identity")
	advance(30 * time.Second)
	refuse(10, "http.allowed_origins")
	advance(31 * time.Second) // the first window has closed
	refuse(5, "identity")
	f.flush(ctx) // shutdown: nothing beyond the budget in the second window

	calls, err := store.Calls(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var individual, summaries, counted int
	for _, c := range calls {
		if strings.Contains(string(c.Args), "SECRET-BODY") || strings.Contains(string(c.Args), strings.Repeat("o", 300)) {
			t.Errorf("record %s keeps the body or an unclipped origin: %s", c.ID, c.Args)
		}
		if c.Tool != "http:refused" {
			individual++
			continue
		}
		summaries++
		var s summary
		if err := json.Unmarshal(c.Args, &s); err != nil {
			t.Fatal(err)
		}
		counted += s.Count
		if s.Count != 40 || s.Rules["identity"] != 30 || s.Rules["http.allowed_origins"] != 10 || s.Like == "" {
			t.Errorf("summary = %+v; want 40 refusals: 30 identity, 10 allowed_origins, like an earlier record", s)
		}
	}
	if individual != 2*refusalBudget-15 || summaries != 1 || individual+counted != 65 {
		t.Errorf("records: %d individual, %d summaries counting %d; want %d, 1, all 65 accounted for", individual, summaries, counted, 2*refusalBudget-15)
	}
}
