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
		in.Progress = progress(ctx, s.mcp, req.Params.Meta.ProgressToken)
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
func progress(ctx context.Context, srv *server.MCPServer, token mcp.ProgressToken) func(string) {
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

// askInBrowser answers a call held for the calling user's confirmation in
// the browser with a URL-mode elicitation pointing at the console: for
// 2026-07-28 clients an input_required result (the client answers on a
// retry, with the state), for earlier ones the -32042
// URLElicitationRequiredError (the client retries once the user is done).
// A client that did not declare URL-mode elicitation gets the refusal as
// a tool result, whose text carries the URL. Either way the client's own
// answer confirms nothing: only the console does.
func askInBrowser(ctx context.Context, c *warden.Call, e *warden.Error) (*mcp.CallToolResult, error) {
	ask := e.Pending.Ask
	el := mcp.ElicitationParams{Mode: mcp.ElicitationModeURL, Message: ask.Message, URL: ask.URL, ElicitationID: ask.ElicitationID}
	if !canElicitURL(ctx) {
		return failure(c, e), nil
	}
	if mcp.IsModernProtocol(server.RequestProtocolVersion(ctx)) {
		return server.NewInputRequestBuilder(ask.State).Elicit(askID, el).ToolResult(), nil
	}
	return nil, mcp.URLElicitationRequiredError{Elicitations: []mcp.ElicitationParams{el}}
}

// browserAsk returns the refusal when err holds a call for a URL-mode
// confirmation, else nil.
func browserAsk(err error) *warden.Error {
	if err == nil {
		return nil
	}
	e := warden.AsError(err)
	if e.Code == warden.NeedsApproval && e.Pending != nil && e.Pending.Ask != nil && e.Pending.Ask.URL != "" {
		return e
	}
	return nil
}

// canElicitURL reports whether the client declared URL-mode elicitation
// (per request from 2026-07-28 on, at initialize before).
func canElicitURL(ctx context.Context) bool {
	var caps *mcp.ClientCapabilities
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.ClientCapabilities != nil {
		caps = info.ClientCapabilities
	}
	if caps == nil {
		if ci, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo); ok {
			c := ci.GetClientCapabilities()
			caps = &c
		}
	}
	return caps != nil && caps.Elicitation != nil && caps.Elicitation.URL != nil
}
