// Command warden is a zero-trust MCP server: agents get typed tools
// instead of credentials, and every call is authorized and recorded.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := profile(os.Getenv("WARDEN_CPUPROFILE"))
	m := NewMain()
	code := m.Run(ctx, os.Args[1:])
	stop()
	stopProfile()
	os.Exit(code)
}

// profile writes a CPU profile of the whole process to path, for
// measuring warden as a client drives it (internal/mcpbench): the
// profile ends when the process exits normally. An empty path profiles
// nothing.
func profile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "warden: WARDEN_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
