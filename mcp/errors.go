package mcp

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/warden-mcp/warden"
)

// errorBody is the structured content of a refused or failed call.
type errorBody struct {
	Error struct {
		Code    warden.Code `json:"code"`
		Message string      `json:"message"`
		Rule    string      `json:"rule,omitempty"`
		Allowed []string    `json:"allowed,omitempty"`
	} `json:"error"`
	// ApprovalID and ExpiresAt are set on a call held for approval: call
	// again with the same arguments and this approval_id once approved.
	ApprovalID string `json:"approval_id,omitempty"`
	ExpiresAt  string `json:"expires_at,omitempty"`
	CallID     string `json:"call_id"`
}

// toolResult translates a pipeline outcome into the MCP result the agent
// sees. It is the one place where warden errors meet the protocol: every
// refusal and failure becomes a tool result with isError set and a message
// the agent can act on; internal failures show only the call id.
func toolResult(c *warden.Call, err error) *mcp.CallToolResult {
	if err == nil {
		body := c.Result.JSON
		if body == nil {
			return failure(c, &warden.Error{Code: warden.Internal, Message: "internal error"})
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{mcp.NewTextContent(string(body))},
			StructuredContent: json.RawMessage(body),
		}
	}
	e := warden.AsError(err)
	if e.Code == warden.NeedsApproval && e.Pending != nil && e.Pending.Ask != nil {
		// Ask the user: input_required for 2026-07-28 clients, which
		// answer on a retry; mcp-go sends older clients elicitation/create
		// and calls the handler again with the answer. Either way the
		// answer arrives with the state, and only counts if it verifies.
		return server.NewInputRequestBuilder(e.Pending.Ask.State).
			Elicit(askID, mcp.ElicitationParams{Message: e.Pending.Ask.Message, RequestedSchema: confirmSchema}).
			ToolResult()
	}
	return failure(c, e)
}

func failure(c *warden.Call, e *warden.Error) *mcp.CallToolResult {
	var b errorBody
	b.CallID = c.ID
	b.Error.Code = e.Code
	b.Error.Rule = e.Rule
	b.Error.Allowed = e.Allowed
	b.Error.Message = e.Message
	if p := e.Pending; p != nil && e.Code == warden.NeedsApproval {
		b.ApprovalID = p.ApprovalID
		b.ExpiresAt = p.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if e.Code == warden.Internal {
		// The cause goes to the recording and the operator's log only.
		b.Error.Message = "internal error; the details are in warden's recording under call " + c.ID
	}

	var t strings.Builder
	switch e.Code {
	case warden.Denied:
		t.WriteString("Denied: ")
	case warden.Unauthenticated:
		t.WriteString("Not authenticated: ")
	case warden.Invalid:
		t.WriteString("Invalid request: ")
	case warden.Unavailable:
		t.WriteString("Unavailable: ")
	case warden.NeedsApproval:
		t.WriteString("Needs approval: ")
	default:
		t.WriteString("Error: ")
	}
	t.WriteString(b.Error.Message)
	if e.Rule != "" {
		t.WriteString("\nRule: " + e.Rule)
	}
	if len(e.Allowed) > 0 {
		t.WriteString("\nYou may instead use:")
		for _, a := range e.Allowed {
			t.WriteString("\n  - " + a)
		}
	}
	if b.ApprovalID != "" {
		t.WriteString("\nApproval id: " + b.ApprovalID + " (pending until " + b.ExpiresAt + ")")
	}
	t.WriteString("\nCall id: " + c.ID)
	body, _ := json.Marshal(b)
	return &mcp.CallToolResult{
		Content:           []mcp.Content{mcp.NewTextContent(t.String())},
		StructuredContent: json.RawMessage(body),
		IsError:           true,
	}
}
