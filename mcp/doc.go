// Package mcp serves warden's tools over the Model Context Protocol (stdio,
// streamable HTTP, SSE), establishes who is calling, and translates
// warden's coded errors into MCP results in exactly one place.
package mcp
