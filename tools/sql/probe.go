package sql

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ProbeError is a database warden cannot use: Cause says why, as
// ConnectCause words it (never the DSN or the password).
type ProbeError struct {
	Cause string
	Err   error
}

func (e *ProbeError) Error() string { return e.Cause }
func (e *ProbeError) Unwrap() error { return e.Err }

// Catalog is the names a database holds, for checking a config against:
// relations ("schema.name"), functions ("schema.name") and each
// relation's columns.
type Catalog struct {
	Relations map[string][]string // relation → columns
	Functions map[string]bool
}

// Probe connects and reads the catalog as warden will: the names the
// analyser resolves, and the columns the masking rules name. A database
// that cannot be reached or read is a *ProbeError; masking rules naming
// columns that do not exist are a *MaskingError.
func (b *Backend) Probe(ctx context.Context) (*Catalog, error) {
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	c := &Catalog{Relations: map[string][]string{}, Functions: map[string]bool{}}
	rows, err := tx.Query(ctx, `
		SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r','v','m','f','p','S')
		ORDER BY c.oid, a.attnum`)
	if err != nil {
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	var rel string
	var col *string
	if _, err := pgx.ForEachRow(rows, []any{&rel, &col}, func() error {
		if col == nil {
			c.Relations[rel] = c.Relations[rel][:0:0]
		} else {
			c.Relations[rel] = append(c.Relations[rel], *col)
		}
		return nil
	}); err != nil {
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	rows, err = tx.Query(ctx, `SELECT DISTINCT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p.proname
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace`)
	if err != nil {
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	var fn string
	if _, err := pgx.ForEachRow(rows, []any{&fn}, func() error { c.Functions[fn] = true; return nil }); err != nil {
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	// The snapshot the analyser uses, and the masking rules' columns.
	b.forgetNames()
	if err := b.CheckMasking(ctx); err != nil {
		var me *MaskingError
		if errors.As(err, &me) {
			return c, err
		}
		return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
	}
	if len(b.masks) == 0 {
		if _, err := b.catalog(ctx); err != nil {
			return nil, &ProbeError{Cause: ConnectCause(err), Err: err}
		}
	}
	return c, nil
}

// Missing returns the patterns (schema.name, with globs) that match no
// relation of the catalog, with match deciding what matches.
func (c *Catalog) Missing(patterns []string, match func(patterns []string, object string) bool) []string {
	var out []string
	for _, p := range patterns {
		found := false
		for rel := range c.Relations {
			if match([]string{p}, rel) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

// MissingFunctions returns the functions (schema.name) the catalog does
// not hold.
func (c *Catalog) MissingFunctions(names []string) []string {
	var out []string
	for _, n := range names {
		if !c.Functions[n] {
			out = append(out, n)
		}
	}
	return out
}

// Describe summarises the catalog for a report line.
func (c *Catalog) Describe() string {
	schemas := map[string]bool{}
	for rel := range c.Relations {
		s, _, _ := strings.Cut(rel, ".")
		if s != "pg_catalog" && s != "information_schema" && !strings.HasPrefix(s, "pg_") {
			schemas[s] = true
		}
	}
	n := 0
	for rel := range c.Relations {
		s, _, _ := strings.Cut(rel, ".")
		if schemas[s] {
			n++
		}
	}
	if n == 0 {
		return "no relations outside the system schemas"
	}
	return fmt.Sprintf("%d relations in schemas %s", n, strings.Join(slices.Sorted(maps.Keys(schemas)), ", "))
}
