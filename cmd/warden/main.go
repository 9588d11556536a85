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
	heapProfile(os.Getenv("WARDEN_MEMPROFILE"))
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

// heapProfile writes a heap profile to path as the process exits
// normally (allocations since start and what the last GC found live),
// for measuring warden's memory as a client drives it. An empty path
// writes nothing.
func heapProfile(path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "warden: WARDEN_MEMPROFILE: %v\n", err)
	}
}
