// Package mcpbench measures warden through a real MCP client against the
// MCP floor (a do-nothing server returning the same bytes) and plain pgx.
package mcpbench
