package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/postgres"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// openStore opens the recording store a URL names, by its scheme. Only the
// scheme is ever named in an error: the rest of a URL may hold a password.
func openStore(ctx context.Context, url string, opts recorder.Options) (recorder.Store, error) {
	scheme, _, ok := strings.Cut(url, ":")
	if !ok || scheme == "" {
		return nil, errors.New("store URL must have the form sqlite:PATH")
	}
	switch scheme {
	case "sqlite":
		return sqlite.OpenWith(ctx, url, opts)
	case "postgres", "postgresql":
		return postgres.Open(ctx, url, opts)
	}
	if strings.ContainsAny(scheme, "/\\.@") {
		return nil, errors.New("store URL must have the form sqlite:PATH")
	}
	return nil, fmt.Errorf("store URL scheme %q is not supported: use sqlite:PATH or postgres://...", scheme)
}

// storeName is how output names the store: a SQLite store by its URL, a
// PostgreSQL store by no more than that, since its URL may hold a password.
func storeName(url string) string {
	if postgres.IsURL(url) {
		return "the PostgreSQL store"
	}
	return url
}
