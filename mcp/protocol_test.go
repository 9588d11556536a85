package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/server"
)

// checkRequest decodes a tools/call once; every other message, and a
// tools/call whose method is spelled with a JSON escape ("tools\/call",
// the same method), takes the general path. Both must judge every message
// alike: the same refusal, word for word, or none.
func TestCheckRequestToolsCallOnceAsBefore(t *testing.T) {
	s := benchServer(t, benchResult())
	bodies := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":{"sql":"select 1"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":[1]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql_query","arguments":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":[]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":{}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","task":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","inputResponses":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","requestState":5}}`,
		`{"jsonrpc":"2.0","id":1,"params":{"name":5},"method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"params":{"arguments":7},"method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"arguments":4}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":5}}}`,
		`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"extra":}`,
	}
	for _, initialized := range []bool{false, true} {
		cs := &stdioSession{}
		if initialized {
			cs.Initialize()
		}
		ctx := s.mcp.WithContext(withTransport(context.Background(), "stdio"), cs)
		for _, body := range bodies {
			escaped := strings.ReplaceAll(body, `"tools/call"`, `"tools\/call"`)
			once := fmt.Sprint(s.checkRequest(ctx, 1, json.RawMessage(body)))
			general := fmt.Sprint(s.checkRequest(ctx, 1, json.RawMessage(escaped)))
			if once != general {
				t.Errorf("initialized %v, %s:\n once:    %s\n general: %s", initialized, body, once, general)
			}
		}
	}
	// The decode-once path is taken, and refuses in JSON terms.
	err := s.checkRequest(context.Background(), 1, json.RawMessage(bodies[5]))
	if err == nil || err.Error() != "invalid tools/call request: params.name must be a string, not a number" {
		t.Errorf("got %v", err)
	}
}

var _ server.ClientSession = (*stdioSession)(nil)
