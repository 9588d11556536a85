package warden_test

import (
	"go/build"
	"os"
	"strings"
	"testing"
)

// TestLayering fails when a package imports something it must not: the
// root package holds the domain and imports no implementation; policy,
// mask, approvals and recorder know nothing of tools or transports;
// approvals reach the store only through warden.ApprovalStore; tools know
// nothing of transports, the recorder or approvals; the console reads the
// recording and mcp's claim mapping only through its own interfaces.
func TestLayering(t *testing.T) {
	const module = "github.com/warden-mcp/warden"
	forbidden := map[string][]string{
		".":               {module + "/"},
		"policy":          {module + "/tools", module + "/mcp", module + "/recorder", module + "/mask", module + "/cmd"},
		"mask":            {module + "/tools", module + "/mcp", module + "/recorder", module + "/policy", module + "/cmd"},
		"recorder":        {module + "/tools", module + "/mcp", module + "/policy", module + "/mask", module + "/approvals", module + "/cmd", module + "/recorder/"},
		"recorder/sqlite": {module + "/tools", module + "/mcp", module + "/policy", module + "/mask", module + "/approvals", module + "/cmd"},
		"approvals":       {module + "/tools", module + "/mcp", module + "/recorder", module + "/mask", module + "/cmd"},
		"tools/sql":       {module + "/mcp", module + "/recorder", module + "/policy", module + "/approvals", module + "/cmd"},
		"mcp":             {module + "/tools", module + "/recorder", module + "/policy", module + "/mask", module + "/approvals", module + "/cmd"},
		"tools/http":      {module + "/mcp", module + "/recorder", module + "/policy", module + "/approvals", module + "/cmd"},
		"console":         {module + "/tools", module + "/mcp", module + "/recorder", module + "/policy", module + "/mask", module + "/cmd"},
	}
	for dir, bad := range forbidden {
		if _, err := os.Stat(dir); err != nil {
			continue // a package not written yet
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("import %s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			for _, b := range bad {
				if strings.HasPrefix(imp, b) {
					t.Errorf("package %s imports %s; it must not import %s", dir, imp, b)
				}
			}
		}
	}
}
