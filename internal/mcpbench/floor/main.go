// Command floor is the MCP floor of warden's benchmarks: a server built
// with the official Go SDK that does nothing but return a fixed result for
// sql_query, so what it costs is what any MCP server pays to send those
// bytes to a client. With -query it also runs that query on the
// PostgreSQL database in $BENCH_DSN on every call (through a pgx pool,
// reading every row's raw bytes and converting none) before it returns
// the same fixed result: what any server that really runs the query pays,
// with nothing governed, masked or recorded.
//
//	floor -text result.json [-structured] [-query SQL] [-listen 127.0.0.1:0 [-stateless]]
//
// Without -listen it serves stdio; with it, streamable HTTP at /mcp, and
// it prints "floor listening addr=HOST:PORT" on stderr once it listens.
// -stateless serves HTTP without sessions, which is how the SDK's handler
// accepts a 2026-07-28 client: its default, stateful handler refuses that
// version, and the SDK's client then falls back to a 2025-11-25 session
// (initialize, Mcp-Session-Id, responses as event streams), so that floor
// and a 2026-07-28 warden would be measured in two protocol eras.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	textFile := flag.String("text", "", "file holding the result text")
	structured := flag.Bool("structured", false, "also send the text as structuredContent")
	listen := flag.String("listen", "", "serve streamable HTTP on this address instead of stdio")
	query := flag.String("query", "", "run this query on $BENCH_DSN on every call before answering")
	stateless := flag.Bool("stateless", false, "serve streamable HTTP without sessions (what a 2026-07-28 client needs)")
	flag.Parse()
	if err := run(*textFile, *structured, *query, *listen, *stateless); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(textFile string, structured bool, query, listen string, stateless bool) error {
	text, err := os.ReadFile(textFile)
	if err != nil {
		return err
	}
	if structured && !json.Valid(text) {
		return fmt.Errorf("%s is not JSON; it cannot be sent as structured content", textFile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var pool *pgxpool.Pool
	if query != "" {
		if pool, err = pgxpool.New(ctx, os.Getenv("BENCH_DSN")); err != nil {
			return err
		}
		defer pool.Close()
	}

	s := mcp.NewServer(&mcp.Implementation{Name: "floor", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{
		Name:        "sql_query",
		Description: "returns a fixed result",
		InputSchema: json.RawMessage(`{"type":"object"}`),
	}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if pool != nil {
			rows, err := pool.Query(ctx, query)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				_ = rows.RawValues()
			}
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
		res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}
		if structured {
			res.StructuredContent = json.RawMessage(text)
		}
		return res, nil
	})
	if listen == "" {
		return s.Run(ctx, &mcp.StdioTransport{})
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "floor listening addr=%s\n", ln.Addr())
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	hs := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
