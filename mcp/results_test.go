package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
)

// callOverStdio serves s on in-process pipes, sends initialize and one
// sql_query call, and returns the call's result as sent on the wire.
func callOverStdio(t *testing.T, s *Server) map[string]json.RawMessage {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeStdio(ctx, inR, outW, "") }()
	t.Cleanup(func() { cancel(); inW.Close(); outR.Close(); <-done })
	out := bufio.NewReaderSize(outR, 64<<10)
	send := func(line string) {
		if _, err := io.WriteString(inW, line); err != nil {
			t.Fatal(err)
		}
	}
	// The call goes once initialize is answered: mcp-go serves stdio
	// messages concurrently.
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	if _, err := out.ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	send(fmt.Sprintf(benchCall, 1))
	for {
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var msg struct {
			ID     int                        `json:"id"`
			Result map[string]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Fatalf("response is not JSON: %v: %.200s", err, line)
		}
		if msg.ID == 1 {
			return msg.Result
		}
	}
}

func TestResultForms(t *testing.T) {
	body := benchResult()
	off := false
	for _, tt := range []struct {
		name       string
		results    *ResultsConfig
		structured bool
	}{
		{"DefaultSendsTextAndStructuredContent", nil, true},
		{"TextOnlySendsTheSameJSONOnce", &ResultsConfig{StructuredContent: &off}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := benchServer(t, body)
			s.opts.Results = tt.results
			res := callOverStdio(t, s)
			var content []struct{ Type, Text string }
			if err := json.Unmarshal(res["content"], &content); err != nil || len(content) != 1 || content[0].Type != "text" {
				t.Fatalf("content = %s; want one text block", res["content"])
			}
			if content[0].Text != string(body) {
				t.Errorf("text = %.100s…; want the result's JSON", content[0].Text)
			}
			sc, has := res["structuredContent"]
			if has != tt.structured {
				t.Fatalf("structuredContent present = %v; want %v", has, tt.structured)
			}
			if has {
				var got, want any
				_ = json.Unmarshal(sc, &got)
				_ = json.Unmarshal(body, &want)
				if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
					t.Errorf("structuredContent = %.100s…; want the result's JSON", sc)
				}
			}
			if bytes.Contains(res["isError"], []byte("true")) {
				t.Errorf("isError = %s", res["isError"])
			}
		})
	}
}
