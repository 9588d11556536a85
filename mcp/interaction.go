package mcp

import (
	"context"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// askID keys warden's confirmation among a result's input requests.
const askID = "warden_approval"

// interaction tells the pipeline what it may do with the person behind a
// tools/call request: ask them (elicitation), read their answer to an
// earlier question, and report progress. Nothing here is trusted: the
// approval stage verifies an answer's state before it counts.
func (s *Server) interaction(ctx context.Context, req mcp.CallToolRequest) *warden.Interaction {
	in := &warden.Interaction{CanAsk: canElicit(ctx)}
	if p := req.Params; p.RequestState != "" || len(p.InputResponses) > 0 {
		ans := &warden.Answer{State: p.RequestState}
		if el := server.ElicitationResponse(p.InputResponses, askID); el != nil {
			ans.Action = string(el.Action)
			ans.Content, _ = el.Content.(map[string]any)
		}
		in.Answer = ans
	}
	if req.Params.Meta != nil && req.Params.Meta.ProgressToken != nil {
		in.Progress = progress(ctx, req.Params.Meta.ProgressToken)
	}
	return in
}

// canElicit reports whether the client can be asked a question in form
// mode during this request: it declared the capability (per request from
// 2026-07-28 on, at initialize before), and, for the session-era
// protocols, the transport can carry a server-initiated request (mcp-go's
// SSE transport cannot).
func canElicit(ctx context.Context) bool {
	var caps *mcp.ClientCapabilities
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.ClientCapabilities != nil {
		caps = info.ClientCapabilities
	}
	cs := server.ClientSessionFromContext(ctx)
	if caps == nil {
		if ci, ok := cs.(server.SessionWithClientInfo); ok {
			c := ci.GetClientCapabilities()
			caps = &c
		}
	}
	if caps == nil || caps.Elicitation == nil || caps.Elicitation.Form == nil && caps.Elicitation.URL != nil {
		return false
	}
	if mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
		return true // the answer comes back on a retry of the request
	}
	_, ok := cs.(server.SessionWithElicitation)
	return ok
}

// progressEvery throttles progress notifications during a long wait.
const progressEvery = 5 * time.Second

// progress returns a reporter that sends notifications/progress for the
// request's token, at most once per progressEvery.
func progress(ctx context.Context, token mcp.ProgressToken) func(string) {
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return nil
	}
	var mu sync.Mutex
	var n float64
	var last time.Time
	return func(message string) {
		mu.Lock()
		defer mu.Unlock()
		if !last.IsZero() && time.Since(last) < progressEvery {
			return
		}
		last = time.Now()
		n++
		_ = srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
			"progressToken": token, "progress": n, "message": message,
		})
	}
}

// confirmSchema is the form the user fills in: one checkbox, so that a
// client showing the form makes the choice explicit.
var confirmSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		warden.ConfirmField: map[string]any{
			"type":        "boolean",
			"title":       "Run this exact call, once",
			"description": "Leave unticked, or decline, to refuse it.",
		},
	},
	"required": []string{warden.ConfirmField},
}
