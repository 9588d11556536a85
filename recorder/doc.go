// Package recorder keeps warden's log of sessions and calls in SQLite as a hash chain with signed checkpoints, durable before any result is returned.
package recorder
