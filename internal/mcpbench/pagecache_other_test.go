//go:build !linux

package mcpbench_test

// dropPageCache is Linux only (the benchmark reads /proc); elsewhere the
// binary stays as the linker left it.
func dropPageCache(string) error { return nil }
