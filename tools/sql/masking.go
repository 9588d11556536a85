package sql

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Masking rules follow provenance, not names: a result column is masked
// when PostgreSQL reports it comes straight from a masked column (pgx field
// descriptions, before the statement runs), or when the parse tree shows a
// masked column feeding it through any expression, subquery, CTE, set
// operation, whole-row value or view. A masked column used to choose or
// order rows, or copied by a write, refuses the call.

// maskCatalog is the part of a names snapshot masking needs; it is loaded
// only for backends with column rules.
type maskCatalog struct {
	// columns are each relation's ordered column names ("schema.table").
	columns map[string][]string
	// attrs maps (relation oid, attnum) to the column.
	attrs map[attrKey]ColumnRef
	// sensitive are the relations whose values may carry a masked column:
	// the masked tables and every view that reads one, directly or not.
	sensitive map[string]bool
	// viewDefs are the definitions of the sensitive views.
	viewDefs map[string]string
	// missing lists masking rules whose column does not exist.
	missing []string
	// plans caches mask plans by statement text; guarded by names.mu.
	plans map[string]*maskPlan
}

type attrKey struct {
	oid    uint32
	attnum uint16
}

// RelationColumns implements Columns for the lineage binder.
func (n *names) RelationColumns(schema, table string) ([]string, bool) {
	if n.mask == nil {
		return nil, false
	}
	cols, ok := n.mask.columns[schema+"."+table]
	return cols, ok
}

func (b *Backend) loadMaskCatalog(ctx context.Context, tx pgx.Tx, n *names) error {
	mc := &maskCatalog{columns: map[string][]string{}, attrs: map[attrKey]ColumnRef{}, sensitive: map[string]bool{}, viewDefs: map[string]string{}, plans: map[string]*maskPlan{}}
	rows, err := tx.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r','v','m','f','p')
		  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY c.oid, a.attnum`)
	if err != nil {
		return err
	}
	var (
		oid          uint32
		schema, rel  string
		attnum       int16
		col          string
		relationOIDs = map[string]uint32{}
	)
	if _, err := pgx.ForEachRow(rows, []any{&oid, &schema, &rel, &attnum, &col}, func() error {
		key := schema + "." + rel
		mc.columns[key] = append(mc.columns[key], col)
		mc.attrs[attrKey{oid, uint16(attnum)}] = ColumnRef{Schema: schema, Table: rel, Column: col}
		relationOIDs[key] = oid
		return nil
	}); err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(b.masks)) {
		i := strings.LastIndexByte(key, '.')
		rel, col := key[:i], key[i+1:]
		found := false
		for _, c := range mc.columns[rel] {
			found = found || c == col
		}
		if !found {
			mc.missing = append(mc.missing, key)
			continue
		}
		mc.sensitive[rel] = true
	}
	// Views that read a sensitive relation are sensitive, transitively.
	rows, err = tx.Query(ctx, `
		SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname, pg_catalog.pg_get_viewdef(v.oid)
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
		JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
		JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
		JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
		WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
		  AND v.oid <> t.oid AND v.relkind IN ('v','m')`)
	if err != nil {
		return err
	}
	type edge struct{ view, table, def string }
	var edges []edge
	var vs, vr, ts, tr, def string
	if _, err := pgx.ForEachRow(rows, []any{&vs, &vr, &ts, &tr, &def}, func() error {
		edges = append(edges, edge{vs + "." + vr, ts + "." + tr, def})
		return nil
	}); err != nil {
		return err
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			if mc.sensitive[e.table] && !mc.sensitive[e.view] {
				mc.sensitive[e.view], mc.viewDefs[e.view], changed = true, e.def, true
			}
		}
	}
	n.mask = mc
	return nil
}

// maskPlan says how each output column of a statement is masked.
type maskPlan struct {
	columns []*columnMask // one per output column; nil when not masked
}

type columnMask struct {
	rule *mask.Rule
	// whole is set for computed values: they are redacted whole.
	whole bool
	// source names the masked column(s), for the result and the record.
	source string
}

func (c *columnMask) describe() string {
	if c.whole {
		return "redact (computed from " + c.source + ")"
	}
	return c.rule.Strategy + " (" + c.source + ")"
}

func maskRefusal(rule, format string, args ...any) error {
	return &warden.Error{Code: warden.Denied, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// planMasks decides, before the statement runs, how its results are
// masked, or refuses it. It returns nil when nothing it touches carries
// masked data.
func (b *Backend) planMasks(ctx context.Context, n *names, sql string, an *Analysis) (*maskPlan, error) {
	if len(b.masks) == 0 {
		return nil, nil
	}
	if n.mask == nil {
		return nil, warden.Errorf(warden.Unavailable, "database %q: the masking catalog is not loaded", b.Name)
	}
	if len(n.mask.missing) > 0 {
		return nil, warden.Errorf(warden.Unavailable, "database %q: masking rules name columns that do not exist (%s); warden refuses calls until the configuration is fixed", b.Name, strings.Join(n.mask.missing, ", "))
	}
	touches := false
	for _, op := range an.Ops {
		touches = touches || n.mask.sensitive[op.Object]
	}
	if !touches {
		return nil, nil
	}
	// The same text against the same catalog snapshot masks the same way;
	// the snapshot is reloaded every few seconds and after DDL.
	n.mu.Lock()
	cached, ok := n.mask.plans[sql]
	n.mu.Unlock()
	if ok {
		return cached, nil
	}
	plan, err := b.buildMaskPlan(ctx, n, sql, an)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if len(n.mask.plans) >= maxCachedAnalyses {
		n.mask.plans = map[string]*maskPlan{}
	}
	n.mask.plans[sql] = plan
	n.mu.Unlock()
	return plan, nil
}

func (b *Backend) buildMaskPlan(ctx context.Context, n *names, sql string, an *Analysis) (*maskPlan, error) {
	lin, err := LineageOf(sql, n, n)
	if err != nil {
		return nil, err
	}
	if len(lin.Unresolved) > 0 {
		return nil, maskRefusal("masking.lineage", "this statement reads masked columns and warden cannot trace which columns feed its results (%s); select the columns you need by name", strings.Join(lin.Unresolved, "; "))
	}
	exp := &expander{n: n, seen: map[string]*Lineage{}}
	for _, f := range lin.Filters {
		for _, src := range exp.sources(f) {
			if r := b.masks[src.ref.String()]; r != nil && !r.AllowFilter {
				return nil, maskRefusal("masking.filter", "%s is masked, so it cannot be used to filter, join, group or order rows (that would reveal it one comparison at a time); filter on another column", src.ref)
			}
		}
	}
	for _, c := range lin.Copied {
		for _, src := range exp.sources(c) {
			if b.masks[src.ref.String()] != nil {
				return nil, maskRefusal("masking.copy", "%s is masked, so a write cannot copy its value into another column", src.ref)
			}
		}
	}
	if exp.err != nil {
		return nil, exp.err
	}
	if strings.HasPrefix(an.Kind, "explain") {
		// A plan shows no values; what EXPLAIN ANALYZE could reveal
		// through row counts is covered by the filter check above.
		return nil, nil
	}
	fields, err := b.describe(ctx, sql)
	if err != nil {
		return nil, err
	}
	if len(fields) != len(lin.Outputs) {
		return nil, maskRefusal("masking.lineage", "this statement reads masked columns and its %d result columns do not match the %d warden traced; select the columns you need by name", len(fields), len(lin.Outputs))
	}
	plan := &maskPlan{columns: make([]*columnMask, len(fields))}
	for i, out := range lin.Outputs {
		var masked []source
		for _, s := range out.Sources {
			for _, src := range exp.sources(s) {
				if b.masks[src.ref.String()] != nil {
					src.direct = src.direct && out.Direct
					masked = append(masked, src)
				}
			}
		}
		// PostgreSQL's own account of where a plain column came from.
		if ref, ok := n.mask.attrs[attrKey{fields[i].oid, fields[i].attnum}]; ok && fields[i].oid != 0 {
			for _, src := range exp.sources(ref) {
				if b.masks[src.ref.String()] != nil {
					masked = append(masked, src)
				}
			}
		}
		if exp.err != nil {
			return nil, exp.err
		}
		if len(masked) == 0 {
			continue
		}
		names := make([]string, 0, len(masked))
		direct := len(masked) > 0
		for _, m := range masked {
			names = append(names, m.ref.String())
			direct = direct && m.direct && m.ref == masked[0].ref
		}
		sort.Strings(names)
		names = slices.Compact(names)
		if direct {
			plan.columns[i] = &columnMask{rule: b.masks[names[0]], source: names[0]}
			continue
		}
		for _, nm := range names {
			if b.masks[nm].OnExpression == "deny" {
				return nil, maskRefusal("masking.expression", "result column %d (%s) is computed from %s, which is masked with on_expression: deny; select the column itself to get its masked value", i+1, out.Name, nm)
			}
		}
		plan.columns[i] = &columnMask{rule: &mask.Rule{Strategy: "redact"}, whole: true, source: strings.Join(names, ", ")}
	}
	return plan, nil
}

// source is a table column a value comes from, and whether it arrives
// unmodified.
type source struct {
	ref    ColumnRef
	direct bool
}

// expander resolves columns of sensitive views to the table columns behind
// them, through the views' own definitions.
type expander struct {
	n     *names
	seen  map[string]*Lineage
	err   error
	depth int
}

func (e *expander) sources(ref ColumnRef) []source {
	rel := ref.Schema + "." + ref.Table
	def, isView := e.n.mask.viewDefs[rel]
	if !isView {
		return []source{{ref: ref, direct: true}}
	}
	if e.depth > 16 {
		e.fail(rel, "views nest too deeply")
		return nil
	}
	lin, ok := e.seen[rel]
	if !ok {
		var err error
		lin, err = LineageOf(def, e.n, e.n)
		if err != nil || len(lin.Unresolved) > 0 {
			e.fail(rel, "its definition cannot be traced")
			return nil
		}
		e.seen[rel] = lin
	}
	cols := e.n.mask.columns[rel]
	idx := -1
	for i, c := range cols {
		if c == ref.Column {
			idx = i
		}
	}
	if idx < 0 || idx >= len(lin.Outputs) {
		e.fail(rel, "its columns do not match its definition")
		return nil
	}
	e.depth++
	defer func() { e.depth-- }()
	var out []source
	for _, s := range lin.Outputs[idx].Sources {
		for _, inner := range e.sources(s) {
			inner.direct = inner.direct && lin.Outputs[idx].Direct
			out = append(out, inner)
		}
	}
	return out
}

func (e *expander) fail(view, why string) {
	if e.err == nil {
		e.err = maskRefusal("masking.view", "view %s reads masked columns and %s, so it is refused; query the tables it reads instead", view, why)
	}
}

type fieldOrigin struct {
	oid    uint32
	attnum uint16
}

// describe asks PostgreSQL, without running the statement, where each
// result column comes from.
func (b *Backend) describe(ctx context.Context, sql string) ([]fieldOrigin, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, b.unavailable(err)
	}
	defer conn.Release()
	sd, err := conn.Conn().PgConn().Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, b.queryError(ctx, err)
	}
	out := make([]fieldOrigin, len(sd.Fields))
	for i, f := range sd.Fields {
		out[i] = fieldOrigin{oid: f.TableOID, attnum: f.TableAttributeNumber}
	}
	return out, nil
}
