package warden

import (
	"context"
	"time"
)

// Session describes the client connection a call arrives on: who opened it,
// with which client software, over which transport and protocol revision.
type Session struct {
	ID              string    `json:"id"`
	Transport       string    `json:"transport"`
	ClientName      string    `json:"client_name,omitempty"`
	ClientVersion   string    `json:"client_version,omitempty"`
	ProtocolVersion string    `json:"protocol_version,omitempty"`
	Caller          *Caller   `json:"caller,omitempty"`
	StartedAt       time.Time `json:"started_at"`
}

type sessionKey struct{}

// WithSession returns a context that carries s.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session carried by ctx, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}
