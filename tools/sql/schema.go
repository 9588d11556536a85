package sql

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Grants answers whether a caller holds a grant for one operation; the
// policy package implements it.
type Grants interface {
	Permits(c *warden.Caller, backend string, op warden.Op) bool
}

// Schema is the sql_schema tool: the tables and columns a caller may use,
// so an agent can write valid queries without guessing.
type Schema struct {
	Backends Backends
	Grants   Grants
}

type schemaArgs struct {
	Database string `json:"database"`
	Table    string `json:"table"`
}

type schemaPlan struct {
	backend *Backend
	schema  string // with table: its schema
	table   string
}

// Spec implements warden.Tool.
func (s *Schema) Spec() warden.ToolSpec {
	return warden.ToolSpec{
		Name:  "sql_schema",
		Title: "List the tables and columns you may use",
		Description: "List the tables and views of a PostgreSQL database that you may read, with their columns " +
			"and types and the actions you may perform on each. Pass `table` for one table. Masked columns are flagged.",
		BackendKind: "postgres",
		BackendArg:  "database",
		ReadOnly:    true,
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"database": map[string]any{"type": "string", "description": "The configured database."},
				"table":    map[string]any{"type": "string", "description": "One table, as schema.table or a name on the search path."},
			},
			"required":             []string{"database"},
			"additionalProperties": false,
		},
	}
}

// Plan implements warden.Tool. Describing one table is a read of it;
// listing needs only some grant on the database, and lists only what the
// caller's grants allow.
func (s *Schema) Plan(ctx context.Context, raw json.RawMessage) (*warden.Action, error) {
	var args schemaArgs
	if err := warden.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	b, err := s.Backends.lookup(args.Database)
	if err != nil {
		return nil, err
	}
	a := &warden.Action{Tool: "sql_schema", Backend: b.Name, Kind: "schema"}
	p := &schemaPlan{backend: b}
	if args.Table != "" {
		schema, table, qualified := strings.Cut(args.Table, ".")
		if !qualified {
			n, err := b.catalog(ctx)
			if err != nil {
				return nil, b.unavailable(err)
			}
			schema, table = n.RelationSchema(args.Table), args.Table
		}
		if schema == "" || table == "" || strings.Contains(table, ".") {
			return nil, warden.Errorf(warden.Invalid, "table %q must be a name or schema.name", args.Table)
		}
		p.schema, p.table = schema, table
		a.Ops = []warden.Op{{Verb: warden.VerbSelect, Object: schema + "." + table}}
		a.Statement = "describe " + schema + "." + table
	}
	a.Plan = p
	return a, nil
}

// TableInfo describes one table or view.
type TableInfo struct {
	Schema      string       `json:"schema"`
	Name        string       `json:"name"`
	Kind        string       `json:"kind"`
	Description string       `json:"description,omitempty"`
	Actions     []string     `json:"actions"`
	Columns     []ColumnInfo `json:"columns"`
}

// ColumnInfo describes one column.
type ColumnInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Masked   bool   `json:"masked"`
	// Mask is the column's masking strategy, when it is masked.
	Mask        string `json:"mask,omitempty"`
	Description string `json:"description,omitempty"`
}

// SchemaResult is what sql_schema returns.
type SchemaResult struct {
	Database   string      `json:"database"`
	SearchPath []string    `json:"search_path"`
	Tables     []TableInfo `json:"tables"`
	CallID     string      `json:"call_id"`
}

const schemaQuery = `
SELECT n.nspname, c.relname,
       CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'f' THEN 'foreign table' ELSE 'table' END,
       coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), ''),
       a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(pg_catalog.col_description(c.oid, a.attnum), '')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r','v','m','f','p')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND ($1 = '' OR (n.nspname = $1 AND c.relname = $2))
ORDER BY n.nspname, c.relname, a.attnum`

// Execute implements warden.Tool.
func (s *Schema) Execute(ctx context.Context, a *warden.Action) (*warden.Result, error) {
	p, ok := a.Plan.(*schemaPlan)
	if !ok {
		return nil, warden.Errorf(warden.Internal, "sql_schema: action carries no plan")
	}
	caller := warden.CallerFrom(ctx)
	b := p.backend
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, b.unavailable(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	rows, err := tx.Query(ctx, schemaQuery, p.schema, p.table)
	if err != nil {
		return nil, b.queryError(ctx, err)
	}
	res := &SchemaResult{Database: b.Name, SearchPath: b.cfg.SearchPath, Tables: []TableInfo{}, CallID: a.CallID}
	n, _ := b.catalog(ctx) // for the rules children and partitions inherit; nil falls back to the configured ones
	var (
		schema, name, kind, desc, col, typ, coldesc string
		nullable                                    bool
		skip                                        string
	)
	_, err = pgx.ForEachRow(rows, []any{&schema, &name, &kind, &desc, &col, &typ, &nullable, &coldesc}, func() error {
		object := schema + "." + name
		if object == skip {
			return nil
		}
		if len(res.Tables) == 0 || res.Tables[len(res.Tables)-1].Schema != schema || res.Tables[len(res.Tables)-1].Name != name {
			actions := permitted(s.Grants, caller, b.Name, object)
			if !slices.Contains(actions, warden.VerbSelect) {
				skip = object
				return nil
			}
			res.Tables = append(res.Tables, TableInfo{Schema: schema, Name: name, Kind: kind, Description: desc, Actions: actions})
		}
		t := &res.Tables[len(res.Tables)-1]
		info := ColumnInfo{Name: col, Type: typ, Nullable: nullable, Description: coldesc}
		if r := columnRule(b, n, object, col); r != nil {
			info.Masked, info.Mask = true, r.Strategy
		}
		t.Columns = append(t.Columns, info)
		return nil
	})
	if err != nil {
		return nil, b.queryError(ctx, err)
	}
	if p.table != "" && len(res.Tables) == 0 {
		return nil, warden.Errorf(warden.Invalid, "table %s.%s does not exist", p.schema, p.table)
	}
	return &warden.Result{Structured: res, Count: int64(len(res.Tables))}, nil
}

// columnRule is the masking rule that applies to a column as a query reads
// it: inherited from parents, and from children when read with them.
func columnRule(b *Backend, n *names, object, col string) *mask.Rule {
	if n != nil && n.mask != nil {
		return n.rules(object, true)[col]
	}
	return b.masks[object+"."+col]
}

func permitted(g Grants, c *warden.Caller, backend, object string) []string {
	var out []string
	for _, verb := range warden.TableVerbs {
		if g.Permits(c, backend, warden.Op{Verb: verb, Object: object}) {
			out = append(out, verb)
		}
	}
	return out
}

var _ warden.Tool = (*Schema)(nil)
