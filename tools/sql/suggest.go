package sql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/warden-mcp/warden/mask"
)

// SurveyOptions bound what Survey reads.
type SurveyOptions struct {
	// Schemas are the schemas to read; empty means every schema but the
	// system ones.
	Schemas []string
	// Sample is the number of rows sampled per table (default 200).
	Sample int
	// StatementTimeout bounds each statement (default 5s); it is also
	// the lock timeout, so a table locked by a migration is skipped, not
	// waited for.
	StatementTimeout time.Duration
	// ConnectTimeout bounds the connection (default 10s).
	ConnectTimeout time.Duration
	// Detectors judge the sampled values; nil samples nothing.
	Detectors *mask.Detectors
}

// Survey is what a database holds, as `warden init` needs it: its
// relations and columns, and for each column that holds text what the
// detectors found in a sample of it — counts only, never a value.
type Survey struct {
	Database string
	Tables   []SurveyedTable
}

// SurveyedTable is one table, view, materialized view or foreign table.
type SurveyedTable struct {
	Schema, Name string
	// Kind is table, partitioned table, view, materialized view or
	// foreign table.
	Kind string
	// Rows is the planner's estimate; -1 when never analysed.
	Rows int64
	// Sampled is how many rows were read.
	Sampled int
	// Skipped says why the table was not sampled ("" when it was, or
	// when it is a view).
	Skipped string
	Columns []SurveyedColumn
}

// Object is schema.name.
func (t *SurveyedTable) Object() string { return t.Schema + "." + t.Name }

// HoldsData reports whether the relation stores rows of its own (a view
// reads other relations, whose rules it inherits).
func (t *SurveyedTable) HoldsData() bool {
	return t.Kind == "table" || t.Kind == "partitioned table" || t.Kind == "foreign table"
}

// SurveyedColumn is one column.
type SurveyedColumn struct {
	Name, Type string
	// Textual: the column holds text, JSON, binary data or numbers that
	// could be card numbers, so its name can say it holds a secret.
	Textual bool
	// Sampled: its values were sampled.
	Sampled bool
	Census  mask.Census
}

// DefaultSample is the rows sampled per table.
const DefaultSample = 200

// maxSampledValue is how much of each value is read: enough for any
// identifier or token, and it bounds the transfer of large documents.
const maxSampledValue = 4096

// surveyColumns lists the relations and columns a survey reads. Partitions
// are read through their partitioned table; extensions' own tables are
// left out.
const surveyColumns = `
SELECT n.nspname, c.relname,
       CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                      WHEN 'p' THEN 'partitioned table' ELSE 'table' END,
       c.reltuples::pg_catalog.int8, pg_catalog.has_table_privilege(c.oid, 'SELECT'),
       a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typcategory, t.typcategory)::pg_catalog.text, coalesce(bt.typname, t.typname)::pg_catalog.text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND (pg_catalog.cardinality($1::pg_catalog.text[]) = 0 OR n.nspname = ANY($1))
ORDER BY n.nspname, c.relname, a.attnum`

// SurveyDatabase connects with dsn and reads the schema and a sample of
// every text-like column of every table, inside one read-only
// transaction whose statements are bounded by o.StatementTimeout. The
// sampled values are judged by o.Detectors as they are read and then
// dropped: they are never returned, logged or put in an error. Errors name
// the cause (ConnectCause), never the DSN.
func SurveyDatabase(ctx context.Context, dsn string, o SurveyOptions) (*Survey, error) {
	if o.Sample <= 0 {
		o.Sample = DefaultSample
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 5 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error can quote the connection string.
		return nil, errors.New("not a valid PostgreSQL connection string")
	}
	if cc.ConnectTimeout == 0 || cc.ConnectTimeout > o.ConnectTimeout {
		cc.ConnectTimeout = o.ConnectTimeout
	}
	ms := strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
	rp := cc.RuntimeParams
	rp["application_name"] = "warden init"
	rp["default_transaction_read_only"] = "on"
	rp["statement_timeout"] = ms
	rp["lock_timeout"] = ms
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(4*o.StatementTimeout.Milliseconds(), 10)
	// Names are quoted by the survey itself; the server resolves nothing.
	rp["search_path"] = "pg_catalog"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("cannot connect: %s", ConnectCause(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("cannot start a read-only transaction: %s", ConnectCause(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	s := &Survey{}
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.current_database()").Scan(&s.Database); err != nil {
		return nil, fmt.Errorf("cannot read the catalog: %s", ConnectCause(err))
	}
	schemas := o.Schemas
	if schemas == nil {
		schemas = []string{}
	}
	rows, err := tx.Query(ctx, surveyColumns, schemas)
	if err != nil {
		return nil, fmt.Errorf("cannot read the catalog: %s", ConnectCause(err))
	}
	var (
		schema, name, kind, col, typ, cat, base string
		reltuples                               int64
		readable                                bool
	)
	canRead := map[string]bool{}
	_, err = pgx.ForEachRow(rows, []any{&schema, &name, &kind, &reltuples, &readable, &col, &typ, &cat, &base}, func() error {
		if n := len(s.Tables); n == 0 || s.Tables[n-1].Schema != schema || s.Tables[n-1].Name != name {
			s.Tables = append(s.Tables, SurveyedTable{Schema: schema, Name: name, Kind: kind, Rows: reltuples})
			canRead[schema+"."+name] = readable
		}
		t := &s.Tables[len(s.Tables)-1]
		sampled := cat == "S" || base == "json" || base == "jsonb" || base == "xml" || base == "int8" || base == "numeric"
		t.Columns = append(t.Columns, SurveyedColumn{
			Name: col, Type: typ, Sampled: sampled && t.HoldsData(),
			Textual: sampled || base == "bytea",
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the catalog: %s", ConnectCause(err))
	}
	if len(o.Schemas) > 0 {
		if err := missingSchemas(ctx, tx, o.Schemas); err != nil {
			return nil, err
		}
	}
	if o.Detectors == nil {
		return s, nil
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		if !t.HoldsData() || !hasSampled(t) {
			continue
		}
		if !canRead[t.Object()] {
			t.Skipped = "no SELECT privilege"
			continue
		}
		if err := sampleTable(ctx, tx, t, o); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			t.Skipped = sampleError(err)
		}
	}
	return s, nil
}

func hasSampled(t *SurveyedTable) bool {
	for _, c := range t.Columns {
		if c.Sampled {
			return true
		}
	}
	return false
}

// missingSchemas reports named schemas that do not exist.
func missingSchemas(ctx context.Context, tx pgx.Tx, schemas []string) error {
	var missing []string
	err := tx.QueryRow(ctx, `SELECT coalesce(pg_catalog.array_agg(s ORDER BY s), '{}') FROM pg_catalog.unnest($1::pg_catalog.text[]) s
		WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = s)`, schemas).Scan(&missing)
	if err != nil {
		return fmt.Errorf("cannot read the catalog: %s", ConnectCause(err))
	}
	if len(missing) > 0 {
		return fmt.Errorf("schema %s does not exist", strings.Join(missing, ", "))
	}
	return nil
}

// sampleError says why a table could not be sampled, without the server's
// message (which could quote a value).
func sampleError(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "42501":
			return "no SELECT privilege"
		case "57014":
			return "sampling took longer than the statement timeout"
		case "55P03":
			return "the table is locked"
		}
		return "sampling failed (SQLSTATE " + pg.Code + ")"
	}
	return "sampling failed: " + ConnectCause(err)
}

// sampleTable reads up to o.Sample rows of t's sampled columns, in a
// savepoint so that a failure skips the table and not the survey. A large
// table is read through TABLESAMPLE SYSTEM, so the rows come from across
// the table and only a few pages are read; a small one (or one the planner
// knows nothing about) is read from its start.
func sampleTable(ctx context.Context, tx pgx.Tx, t *SurveyedTable, o SurveyOptions) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	defer sp.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	var exprs []string
	var idx []int
	for i, c := range t.Columns {
		if c.Sampled {
			exprs = append(exprs, "pg_catalog.left("+pgx.Identifier{c.Name}.Sanitize()+"::pg_catalog.text, "+strconv.Itoa(maxSampledValue)+")")
			idx = append(idx, i)
		}
	}
	from := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	plain := "SELECT " + strings.Join(exprs, ", ") + " FROM " + from + " LIMIT " + strconv.Itoa(o.Sample)
	query := plain
	if t.Kind != "foreign table" && t.Rows > int64(20*o.Sample) {
		// Four times the rows wanted, as a share of the estimate.
		pct := 400 * float64(o.Sample) / float64(t.Rows)
		query = "SELECT " + strings.Join(exprs, ", ") + " FROM " + from + " TABLESAMPLE SYSTEM (" +
			strconv.FormatFloat(pct, 'f', 6, 64) + ") LIMIT " + strconv.Itoa(o.Sample)
	}
	read := func(q string) (int, error) {
		rows, err := sp.Query(ctx, q)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		vals := make([]*string, len(idx))
		dest := make([]any, len(idx))
		for i := range vals {
			dest[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return n, err
			}
			n++
			for i, v := range vals {
				if v != nil {
					o.Detectors.Count(&t.Columns[idx[i]].Census, *v)
				}
			}
		}
		return n, rows.Err()
	}
	n, err := read(query)
	if err == nil && query != plain && n < o.Sample/2 {
		// The pages drawn held too few rows (an estimate out of date):
		// read from the start instead.
		for i := range idx {
			t.Columns[idx[i]].Census = mask.Census{}
		}
		n, err = read(plain)
	}
	t.Sampled = n
	return err
}
