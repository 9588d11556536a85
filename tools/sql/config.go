package sql

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/warden-mcp/warden"
)

// Config is one `kind: postgres` entry of `backends` in warden.yaml.
type Config struct {
	Kind string `yaml:"kind"`
	// DSN is a PostgreSQL connection string; only warden ever sees it.
	DSN string `yaml:"dsn"`
	// StatementTimeout bounds every statement (default 5s).
	StatementTimeout warden.Duration `yaml:"statement_timeout"`
	// MaxRows caps the rows returned per call (default 1000).
	MaxRows int `yaml:"max_rows"`
	// SearchPath is the schema list unqualified names resolve against
	// (default [public]); warden sets it on every connection.
	SearchPath []string `yaml:"search_path"`
	// MaxConns bounds the backend's connection pool (default 4).
	MaxConns int32 `yaml:"max_conns"`
	// MaxStatementBytes bounds the statement's text (default 64 KiB):
	// checked before the parser sees it.
	MaxStatementBytes int `yaml:"max_statement_bytes"`
	// MaxResultBytes caps one result's size as returned to the agent
	// (default 4 MiB): the rows that fit are returned with truncated set.
	MaxResultBytes int `yaml:"max_result_bytes"`
}

// Defaults, applied by Validate.
const (
	DefaultStatementTimeout = 5 * time.Second
	DefaultMaxRows          = 1000
	DefaultMaxConns         = 4
	DefaultMaxResultBytes   = 4 << 20
)

// Validate fills defaults and checks the config. Errors carry key paths
// relative to the backend entry and never include the DSN.
func (c *Config) Validate() error {
	if c.DSN == "" {
		return warden.FieldErrorf("dsn", "missing connection string")
	}
	if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		return warden.FieldErrorf("dsn", "not a valid PostgreSQL connection string")
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = warden.Duration(DefaultStatementTimeout)
	}
	if c.StatementTimeout < warden.Duration(time.Millisecond) {
		return warden.FieldErrorf("statement_timeout", "must be at least 1ms")
	}
	switch {
	case c.MaxRows == 0:
		c.MaxRows = DefaultMaxRows
	case c.MaxRows < 0:
		return warden.FieldErrorf("max_rows", "must be positive, got %d", c.MaxRows)
	}
	switch {
	case c.MaxConns == 0:
		c.MaxConns = DefaultMaxConns
	case c.MaxConns < 0:
		return warden.FieldErrorf("max_conns", "must be positive, got %d", c.MaxConns)
	}
	switch {
	case c.MaxStatementBytes == 0:
		c.MaxStatementBytes = DefaultMaxStatementBytes
	case c.MaxStatementBytes < 1024 || c.MaxStatementBytes > 1<<20:
		return warden.FieldErrorf("max_statement_bytes", "must be between 1024 and 1048576, got %d", c.MaxStatementBytes)
	}
	switch {
	case c.MaxResultBytes == 0:
		c.MaxResultBytes = DefaultMaxResultBytes
	case c.MaxResultBytes < 1024 || c.MaxResultBytes > 256<<20:
		return warden.FieldErrorf("max_result_bytes", "must be between 1024 and 268435456, got %d", c.MaxResultBytes)
	}
	if len(c.SearchPath) == 0 {
		c.SearchPath = []string{"public"}
	}
	for i, s := range c.SearchPath {
		if s == "" || s == "$user" || s == "pg_temp" {
			return warden.FieldErrorf(fmt.Sprintf("search_path[%d]", i), "%q is not allowed: name real schemas", s)
		}
	}
	return nil
}
