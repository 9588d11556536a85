// Package sqlite keeps warden's recording and approval requests in a SQLite file, one hash chain per file, durable before any result is returned.
package sqlite
