// Package recorder keeps warden's log of sessions and calls in SQLite, durable before any result is returned.
package recorder
