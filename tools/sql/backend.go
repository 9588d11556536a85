package sql

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Backend is one configured PostgreSQL database: a connection pool whose
// every connection carries warden's session settings, and a cache of the
// catalog names needed to resolve unqualified names.
type Backend struct {
	Name string
	cfg  Config
	pool *pgxpool.Pool

	mu      sync.Mutex
	names   *names
	loaded  time.Time
	refresh time.Duration

	// masks are the column rules of this backend, by schema.table.column.
	masks  mask.Columns
	masker *mask.Masker
}

// SetMasking sets the backend's column rules and the masker that applies
// them; call it before the backend serves calls.
func (b *Backend) SetMasking(cols mask.Columns, m *mask.Masker) {
	b.masks, b.masker = cols, m
}

// CheckMasking loads the catalog and reports masking rules that name
// columns which do not exist.
func (b *Backend) CheckMasking(ctx context.Context) error {
	if len(b.masks) == 0 {
		return nil
	}
	n, err := b.catalog(ctx)
	if err != nil {
		return err
	}
	if len(n.mask.missing) > 0 {
		return &MaskingError{Missing: n.mask.missing}
	}
	return nil
}

// MaskingError reports masking rules that name columns which do not exist.
type MaskingError struct{ Missing []string }

func (e *MaskingError) Error() string {
	return "masking rules name columns that do not exist: " + strings.Join(e.Missing, ", ")
}

// NewBackend creates the pool without connecting: a database that is down
// at start makes calls fail as Unavailable, it does not stop warden.
func NewBackend(name string, cfg Config) (*Backend, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, warden.FieldErrorf("dsn", "not a valid PostgreSQL connection string")
	}
	pc.MaxConns = cfg.MaxConns
	// Session settings are startup parameters, so they hold from the
	// first statement and cost no round trip. The agent cannot change
	// them: SET, RESET and set_config are refused by the analyser.
	rp := pc.ConnConfig.RuntimeParams
	rp["application_name"] = "warden"
	// The statement that runs names every relation, function, operator
	// and type with its schema (the binder resolved them against the
	// configured search_path); the server's own search_path holds only
	// pg_catalog, so it cannot resolve a name to anything warden did not
	// judge.
	rp["search_path"] = "pg_catalog"
	rp["statement_timeout"] = strconv.FormatInt(time.Duration(cfg.StatementTimeout).Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(2*time.Duration(cfg.StatementTimeout).Milliseconds()+1000, 10)
	// The analyser parses with standard_conforming_strings on; the server
	// must read the text the same way or a backslash could end a literal
	// early.
	rp["standard_conforming_strings"] = "on"
	// Defence in depth: a transaction warden did not explicitly open read
	// write is read only.
	rp["default_transaction_read_only"] = "on"
	// A single row larger than the result cap is refused as it arrives
	// rather than read into memory whole (`SELECT repeat('x', 1e9)`).
	pc.ConnConfig.MaxProtocolMessageBodyLen = cfg.MaxResultBytes + 64<<10
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, warden.FieldErrorf("dsn", "cannot create connection pool")
	}
	return &Backend{Name: name, cfg: cfg, pool: pool, refresh: 10 * time.Second}, nil
}

// Close closes the pool.
func (b *Backend) Close() { b.pool.Close() }

// names is a snapshot of the relation, function and type names the
// analyser needs to resolve unqualified names as PostgreSQL would.
type names struct {
	searchPath []string
	relations  map[string]map[string]bool // schema → relation names
	functions  map[string]map[string]bool // schema → function names
	typeNames  map[string]map[string]bool // schema → type names
	types      map[uint32]string          // oid → formatted type name
	mask       *maskCatalog               // only for backends with column rules

	// Inheritance, by "schema.name": direct children and parents, and
	// each partition's partitioned root.
	children, parents map[string][]string
	partitionRoot     map[string]string

	// castFuncs are the user-defined functions that a statement may run
	// implicitly through a type: cast functions (pg_cast.castfunc outside
	// pg_catalog) and functions in a domain's CHECK constraints, by the
	// type ("schema.type") and by each relation with a column or row of
	// that type. PostgreSQL picks casts by type,
	// which the binder does not infer, so touching such a type or
	// relation counts as calling every such function.
	castFuncs map[string][]string

	// analyses caches Analyze results for this snapshot: the same text
	// resolved against the same names always analyses the same way.
	mu       sync.Mutex
	analyses map[analysisKey]*Analysis
	// cachedBytes is the statements' and their texts' bytes in analyses.
	cachedBytes int
}

// analysisKey: the same text with the same number of parameters binds
// the same way against one snapshot.
type analysisKey struct {
	sql     string
	nparams int
}

// The analysis cache of one snapshot holds at most maxCachedAnalyses
// statements and maxCachedBytes of statement text (as sent and as it
// runs): counting entries alone let 512 statements near
// max_statement_bytes hold some 64 MB. When either is reached the cache
// starts again empty.
const (
	maxCachedAnalyses = 512
	maxCachedBytes    = 4 << 20
)

// analyze returns the bound statement, from the cache when possible: the
// rewrite is cached per statement text and catalog snapshot. A statement
// longer than largeStatement is analysed only in one of the process's
// few slots for them (limits.go).
func (n *names) analyze(ctx context.Context, sql string, nparams int) (*Analysis, error) {
	key := analysisKey{sql, nparams}
	if an, ok := n.cached(key); ok {
		return an, nil
	}
	if len(sql) > largeStatement {
		release, err := largeAnalysisSlot(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		if an, ok := n.cached(key); ok { // analysed while this call waited
			return an, nil
		}
	}
	an, err := bind(sql, n, nparams)
	if err != nil {
		return nil, err
	}
	size := len(sql) + len(an.Text)
	n.mu.Lock()
	if n.analyses == nil || len(n.analyses) >= maxCachedAnalyses || n.cachedBytes+size > maxCachedBytes {
		n.analyses, n.cachedBytes = map[analysisKey]*Analysis{}, 0
	}
	if _, ok := n.analyses[key]; !ok {
		n.analyses[key] = an
		n.cachedBytes += size
	}
	n.mu.Unlock()
	return an, nil
}

func (n *names) cached(key analysisKey) (*Analysis, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	an, ok := n.analyses[key]
	return an, ok
}

// RelationSchema implements Names: pg_catalog is searched before the
// configured search_path, as PostgreSQL does when the path omits it.
func (n *names) RelationSchema(name string) string {
	return n.resolve(n.relations, name)
}

// FunctionSchema implements Names.
func (n *names) FunctionSchema(name string) string {
	return n.resolve(n.functions, name)
}

// TypeSchema implements Names.
func (n *names) TypeSchema(name string) string {
	return n.resolve(n.typeNames, name)
}

func (n *names) resolve(m map[string]map[string]bool, name string) string {
	if m["pg_catalog"][name] {
		return "pg_catalog"
	}
	for _, s := range n.searchPath {
		if m[s][name] {
			return s
		}
	}
	// Not found anywhere: PostgreSQL will report it missing, or create it
	// in the first schema of the path.
	return n.searchPath[0]
}

func (n *names) typeName(oid uint32) string {
	if t, ok := n.types[oid]; ok {
		return t
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// catalog returns a names snapshot no older than the refresh interval.
func (b *Backend) catalog(ctx context.Context) (*names, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names != nil && time.Since(b.loaded) < b.refresh {
		return b.names, nil
	}
	n, err := b.loadNames(ctx)
	if err != nil {
		if b.names != nil {
			// Keep serving the last good snapshot; the query itself
			// will report an unreachable database.
			return b.names, nil
		}
		return nil, err
	}
	b.names, b.loaded = n, time.Now()
	return n, nil
}

// forgetNames makes the next call reload the snapshot. The stale one is
// kept as the fallback for when the database cannot be reached.
func (b *Backend) forgetNames() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.loaded = time.Time{}
}

// refreshTypes reloads the snapshot when a result carries a type created
// after it was taken.
func (b *Backend) refreshTypes(ctx context.Context) *names {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, err := b.loadNames(ctx); err == nil {
		b.names, b.loaded = n, time.Now()
	}
	return b.names
}

func (b *Backend) loadNames(ctx context.Context) (*names, error) {
	schemas := append([]string{"pg_catalog"}, b.cfg.SearchPath...)
	n := &names{
		searchPath: b.cfg.SearchPath,
		relations:  map[string]map[string]bool{},
		functions:  map[string]map[string]bool{},
		typeNames:  map[string]map[string]bool{},
		types:      map[uint32]string{},
		children:   map[string][]string{}, parents: map[string][]string{},
		partitionRoot: map[string]string{}, castFuncs: map[string][]string{},
	}
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	add := func(m map[string]map[string]bool, q string) error {
		rows, err := tx.Query(ctx, q, schemas)
		if err != nil {
			return err
		}
		var s, name string
		_, err = pgx.ForEachRow(rows, []any{&s, &name}, func() error {
			if m[s] == nil {
				m[s] = map[string]bool{}
			}
			m[s][name] = true
			return nil
		})
		return err
	}
	if err := add(n.relations, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY($1) AND c.relkind IN ('r','v','m','f','p','S')`); err != nil {
		return nil, err
	}
	if err := add(n.functions, `SELECT DISTINCT n.nspname, p.proname FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = ANY($1)`); err != nil {
		return nil, err
	}
	if err := add(n.typeNames, `SELECT n.nspname, t.typname FROM pg_catalog.pg_type t
		JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = ANY($1)`); err != nil {
		return nil, err
	}
	if err := loadInheritance(ctx, tx, n); err != nil {
		return nil, err
	}
	if err := loadCastFuncs(ctx, tx, n); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT oid, pg_catalog.format_type(oid, NULL) FROM pg_catalog.pg_type`)
	if err != nil {
		return nil, err
	}
	var oid uint32
	var tname string
	if _, err := pgx.ForEachRow(rows, []any{&oid, &tname}, func() error {
		n.types[oid] = tname
		return nil
	}); err != nil {
		return nil, err
	}
	if len(b.masks) > 0 {
		if err := b.loadMaskCatalog(ctx, tx, n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// loadInheritance loads inheritance children and partitions, and each
// partition's partitioned root.
func loadInheritance(ctx context.Context, tx pgx.Tx, n *names) error {
	rows, err := tx.Query(ctx, `
		SELECT pn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p.relname,
		       cn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname, c.relispartition
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
		JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
		JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
		JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
		WHERE c.relkind IN ('r','p','f')`)
	if err != nil {
		return err
	}
	var parent, child string
	var partition bool
	partitionOf := map[string]string{}
	if _, err := pgx.ForEachRow(rows, []any{&parent, &child, &partition}, func() error {
		n.children[parent] = append(n.children[parent], child)
		n.parents[child] = append(n.parents[child], parent)
		if partition {
			partitionOf[child] = parent
		}
		return nil
	}); err != nil {
		return err
	}
	for part := range partitionOf {
		root := part
		for i := 0; i < 64 && partitionOf[root] != ""; i++ {
			root = partitionOf[root]
		}
		n.partitionRoot[part] = root
	}
	return nil
}

// loadCastFuncs loads the user-defined cast functions by type and by the
// relations whose columns (or row type) they convert.
func loadCastFuncs(ctx context.Context, tx pgx.Tx, n *names) error {
	rows, err := tx.Query(ctx, `
		WITH uc AS (
			SELECT t.oid AS typ, tn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) t.typname AS typname,
			       pn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p.proname AS fn
			FROM pg_catalog.pg_cast c
			JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
			JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
			JOIN pg_catalog.pg_type t ON t.oid IN (c.castsource, c.casttarget)
			JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
			WHERE pn.nspname OPERATOR(pg_catalog.<>) 'pg_catalog'
			  -- A cast runs only on values of its types: key it by the
			  -- types that are not built in, or by both when both are.
			  AND (tn.nspname OPERATOR(pg_catalog.<>) 'pg_catalog' OR NOT EXISTS (
			       SELECT 1 FROM pg_catalog.pg_type u JOIN pg_catalog.pg_namespace un ON un.oid = u.typnamespace
			       WHERE u.oid IN (c.castsource, c.casttarget) AND un.nspname OPERATOR(pg_catalog.<>) 'pg_catalog'))
			UNION
			-- A domain's CHECK constraints run on every value coerced to it.
			SELECT t.oid, tn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) t.typname,
			       pn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p.proname
			FROM pg_catalog.pg_constraint k
			JOIN pg_catalog.pg_type t ON t.oid = k.contypid
			JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
			JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = k.oid
			     AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
			JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
			JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
			WHERE pn.nspname OPERATOR(pg_catalog.<>) 'pg_catalog')
		SELECT typname, fn FROM uc
		UNION
		SELECT rn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r.relname, uc.fn
		FROM pg_catalog.pg_class r
		JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
		JOIN uc ON uc.typ IN (a.atttypid, r.reltype)`)
	if err != nil {
		return err
	}
	var key, fn string
	_, err = pgx.ForEachRow(rows, []any{&key, &fn}, func() error {
		n.castFuncs[key] = append(n.castFuncs[key], fn)
		return nil
	})
	return err
}

// unavailable reports a backend failure without connection details.
func (b *Backend) unavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return warden.Wrap(warden.Unavailable, err, "the call was cancelled")
	}
	// The cause helps whoever reads the refusal fix it (a wrong password
	// is not worth retrying); it never holds the DSN or the password.
	if cause, known := connectCause(err); known {
		return warden.Wrap(warden.Unavailable, err, "database "+strconv.Quote(b.Name)+" is unavailable: "+cause)
	}
	return warden.Wrap(warden.Unavailable, err, "database "+strconv.Quote(b.Name)+" is unavailable; try again later")
}

// Ping reports whether the database answers now (a ping on a pooled
// connection): what /readyz asks, every few seconds, so it is cheaper than
// Probe, which also reads the catalog.
func (b *Backend) Ping(ctx context.Context) error { return b.pool.Ping(ctx) }
