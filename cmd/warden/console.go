package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/warden-mcp/warden/approvals"
	"github.com/warden-mcp/warden/console"
	"github.com/warden-mcp/warden/mcp"
	"github.com/warden-mcp/warden/recorder"
)

// provisionConsole builds the reviewer's console from a validated config:
// decisions go through the approvals service, the audit pages read the
// store.
func (m *Main) provisionConsole(ctx context.Context, app *App) (*console.Console, error) {
	cfg := app.Config
	c := cfg.Console
	decider := app.Approvals
	if decider == nil {
		decider = &approvals.Service{Store: app.Store, Clock: m.Clock}
	}
	opts := console.Options{
		Config: *c, Approvals: app.Store, Decider: decider, Confirmer: decider,
		Audit: &consoleAudit{m: m, store: app.Store}, Clock: m.Clock, Log: app.Log,
	}
	if c.Issuer != "" {
		// The reviewer is the same principal as with a bearer token from
		// this issuer: its identity.oidc claims, unless the console says
		// otherwise.
		claims := &mcp.OIDCConfig{Issuer: c.Issuer}
		for _, o := range cfg.Identity.OIDC {
			if o.Issuer == c.Issuer {
				o := o
				claims = &o
			}
		}
		if c.SubjectClaim != "" {
			claims.SubjectClaim = c.SubjectClaim
		}
		if c.EmailClaim != "" {
			claims.EmailClaim = c.EmailClaim
		}
		if c.GroupsClaim != "" {
			claims.GroupsClaim = c.GroupsClaim
		}
		opts.Claims = claims
	} else if l := cfg.Identity.Local; l != nil && l.Reviewer {
		opts.Local = cfg.Identity.Caller()
	}
	con, err := console.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return con, nil
}

// serveConsole serves the console alone on ln (console.listen) until ctx
// ends.
func serveConsole(ctx context.Context, app *App, h http.Handler, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	app.Log.Info("warden console listening", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		app.Log.Error("the console stopped serving", "err", err)
	}
}

// consoleAudit is the console's view of the recording.
type consoleAudit struct {
	m     *Main
	store recorder.Store
}

func (a *consoleAudit) Sessions(ctx context.Context, f console.SessionFilter) ([]console.SessionRow, error) {
	list, err := a.store.Sessions(ctx, recorder.SessionFilter{Subject: f.Subject, Tool: f.Tool, Denied: f.Denied,
		Since: f.Since, Until: f.Until, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	rows := make([]console.SessionRow, len(list))
	for i, s := range list {
		rows[i] = console.SessionRow{ID: s.ID, Subject: s.Caller.Subject, Client: strings.TrimSpace(s.ClientName + " " + s.ClientVersion),
			Transport: s.Transport, StartedAt: s.StartedAt, EndedAt: s.EndedAt, Calls: s.Calls, Denied: s.Denied, Failed: s.Failed}
	}
	return rows, nil
}

func (a *consoleAudit) Transcript(ctx context.Context, id string) ([]byte, error) {
	s, calls, err := a.store.Session(ctx, id)
	if errors.Is(err, recorder.ErrNotFound) {
		return nil, console.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := WriteReplayJSON(&b, s, calls); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func (a *consoleAudit) Verify(ctx context.Context) (bool, string) {
	key, err := a.store.PublicKey()
	if err != nil {
		return false, "the signing key cannot be read"
	}
	rep, err := a.store.Audit(ctx, recorder.AuditOptions{Key: key})
	if err != nil {
		return false, err.Error()
	}
	var b strings.Builder
	writeVerifyReport(&b, "the recording", rep, a.store.KeySource())
	return true, b.String()
}

// consoleOnLoopback gives the approvals service the console's address when
// console.base_url is not set, which the console allows only on a
// loopback listener: the confirmation URLs (approvers: {user: browser})
// point there.
func consoleOnLoopback(app *App, ln net.Listener) {
	if app.Approvals == nil || app.Approvals.ConsoleURL != "" {
		return
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		app.Approvals.ConsoleURL = "http://" + a.String()
	}
}
