// Package warden holds the domain types of the warden MCP gateway and the
// pipeline every tool call runs through; it imports no implementation.
package warden
