package sql

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/mask"
)

// Masking happens at the source. Before a statement runs, the binder
// replaces every reference to a relation covered by masking rules — the
// masked table, its inheritance children and partitions (which inherit
// the rules), and any view or materialized view that reads one (whose
// definition is inlined and masked in turn) — by a subquery exposing the
// same columns with the strategies applied in SQL:
//
//	FROM customers c
//	  → FROM (SELECT id, <last4 of card_number> AS card_number, ... FROM public.customers) c
//
// PostgreSQL then never reads a raw masked value on the agent's behalf:
// whatever the statement computes — counts, comparisons, DISTINCT, set
// operations, errors, plans, copies into other tables — it computes over
// masked values. Masked columns are always text. A write that changes a
// masked table cannot be rewritten that way (its target must be the table
// itself), so it may not read the target's masked columns at all (in
// WHERE, SET, ON CONFLICT, RETURNING, or as a whole row).

// ruleMasking names masking refusals.
const ruleMasking = "masking.columns"

// maskCatalog is the part of a catalog snapshot masking needs; it is
// loaded only for backends with column rules.
type maskCatalog struct {
	// columns are each relation's ordered column names ("schema.table").
	columns map[string][]string
	// own are the configured rules, by relation and column.
	own map[string]map[string]*mask.Rule
	// viewDefs are the definitions of the views and materialized views
	// that read a masked relation, directly or not.
	viewDefs map[string]string
	// missing lists masking rules whose column does not exist.
	missing []string
	// oracles are the columns a write must not set, by relation and
	// column, with the reason: a masked column under a unique index or
	// exclusion constraint, or a column whose foreign key references a
	// masked column. Whether such a write fails tells whether a raw
	// value exists.
	oracles map[string]map[string]string
	// keyedBy maps partitioned tables whose partition key uses a masked
	// column to that column: which partition holds a row is a function
	// of the raw value, so a partition may be read only through its
	// partitioned table.
	keyedBy map[string]string
}

// rules are the masking rules that apply to reading relation name: its
// own and its ancestors' (a child or partition keeps its parent's rules
// however it is reached), and with inh its descendants' too (reading a
// parent reads their rows). Two different strategies on one column
// become redact.
func (n *names) rules(name string, inh bool) map[string]*mask.Rule {
	mc := n.mask
	if mc == nil {
		return nil
	}
	rels := append([]string{name}, n.ancestors(name)...)
	if inh {
		rels = append(rels, n.descendants(name)...)
	}
	var out map[string]*mask.Rule
	for _, rel := range rels {
		for col, r := range mc.own[rel] {
			if !slices.Contains(mc.columns[name], col) {
				continue
			}
			if out == nil {
				out = map[string]*mask.Rule{}
			}
			if prev, ok := out[col]; ok && prev.Strategy != r.Strategy {
				r = &mask.Rule{Strategy: "redact"}
			}
			out[col] = r
		}
	}
	return out
}

// descendants are the inheritance children and partitions of name, at any
// depth.
func (n *names) descendants(name string) []string {
	var out []string
	var visit func(string, int)
	visit = func(rel string, depth int) {
		if depth > 64 {
			return
		}
		for _, c := range n.children[rel] {
			out = append(out, c)
			visit(c, depth+1)
		}
	}
	visit(name, 0)
	return out
}

func (n *names) ancestors(name string) []string {
	var out []string
	var visit func(string, int)
	visit = func(rel string, depth int) {
		if depth > 64 {
			return
		}
		for _, p := range n.parents[rel] {
			out = append(out, p)
			visit(p, depth+1)
		}
	}
	visit(name, 0)
	return out
}

func (b *Backend) loadMaskCatalog(ctx context.Context, tx pgx.Tx, n *names) error {
	mc := &maskCatalog{columns: map[string][]string{}, own: map[string]map[string]*mask.Rule{}, viewDefs: map[string]string{}}
	rows, err := tx.Query(ctx, `
		SELECT n.nspname, c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r','v','m','f','p')
		  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY c.oid, a.attnum`)
	if err != nil {
		return err
	}
	var schema, rel, col string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &rel, &col}, func() error {
		key := schema + "." + rel
		mc.columns[key] = append(mc.columns[key], col)
		return nil
	}); err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(b.masks)) {
		i := strings.LastIndexByte(key, '.')
		rel, col := key[:i], key[i+1:]
		if !slices.Contains(mc.columns[rel], col) {
			mc.missing = append(mc.missing, key)
			continue
		}
		if mc.own[rel] == nil {
			mc.own[rel] = map[string]*mask.Rule{}
		}
		mc.own[rel][col] = b.masks[key]
	}
	n.mask = mc
	if err := loadGeneratedFromMasked(ctx, tx, n); err != nil {
		return err
	}
	// Views that read a masked relation (or its parent, whose reads
	// reach the masked child) are inlined, transitively. Their definitions
	// are printed on this connection, whose search_path is pg_catalog, so
	// every other name in them comes qualified.
	rows, err = tx.Query(ctx, `
		SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname, pg_catalog.pg_get_viewdef(v.oid)
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
		JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
		JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
		JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
		WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		  AND v.oid OPERATOR(pg_catalog.<>) t.oid AND v.relkind IN ('v','m')`)
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
	if err := loadOracles(ctx, tx, n); err != nil {
		return err
	}
	if err := loadMaskedPartitionKeys(ctx, tx, n); err != nil {
		return err
	}
	sensitive := func(rel string) bool {
		_, isView := mc.viewDefs[rel]
		return isView || len(n.rules(rel, true)) > 0
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			if _, done := mc.viewDefs[e.view]; !done && sensitive(e.table) {
				mc.viewDefs[e.view], changed = e.def, true
			}
		}
	}
	return nil
}

// loadGeneratedFromMasked masks generated columns computed from a masked
// column (card_md5 GENERATED ALWAYS AS (md5(card_number))): PostgreSQL
// computed them from the raw value when the row was written, so they are
// redacted unless a rule of their own says otherwise.
func loadGeneratedFromMasked(ctx context.Context, tx pgx.Tx, n *names) error {
	rows, err := tx.Query(ctx, `
		SELECT n.nspname, c.relname, g.attname, s.attname
		FROM pg_catalog.pg_attrdef ad
		JOIN pg_catalog.pg_attribute g ON g.attrelid = ad.adrelid AND g.attnum = ad.adnum AND g.attgenerated OPERATOR(pg_catalog.<>) ''
		JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
		     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = ad.adrelid
		JOIN pg_catalog.pg_attribute s ON s.attrelid = ad.adrelid AND s.attnum OPERATOR(pg_catalog.=) d.refobjsubid`)
	if err != nil {
		return err
	}
	type gen struct{ rel, col, source string }
	var gens []gen
	var schema, rel, col, source string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &rel, &col, &source}, func() error {
		gens = append(gens, gen{schema + "." + rel, col, source})
		return nil
	}); err != nil {
		return err
	}
	for _, g := range gens {
		if n.rules(g.rel, false)[g.source] == nil || n.rules(g.rel, false)[g.col] != nil {
			continue
		}
		if n.mask.own[g.rel] == nil {
			n.mask.own[g.rel] = map[string]*mask.Rule{}
		}
		n.mask.own[g.rel][g.col] = &mask.Rule{Strategy: "redact"}
	}
	return nil
}

// loadOracles finds the columns whose writes would reveal masked values
// through a constraint's verdict.
func loadOracles(ctx context.Context, tx pgx.Tx, n *names) error {
	mc := n.mask
	mc.oracles = map[string]map[string]string{}
	add := func(rel, col, why string) {
		if mc.oracles[rel] == nil {
			mc.oracles[rel] = map[string]string{}
		}
		mc.oracles[rel][col] = why
	}
	rows, err := tx.Query(ctx, `
		SELECT n.nspname, c.relname, a.attname, ic.relname
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
		JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND (a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[])
		     -- columns used in an expression or a partial index's predicate
		     OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
		                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid
		                  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = i.indrelid
		                  AND d.refobjsubid OPERATOR(pg_catalog.=) a.attnum))
		WHERE i.indisunique OR i.indisexclusion`)
	if err != nil {
		return err
	}
	var schema, rel, col, index string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &rel, &col, &index}, func() error {
		if n.rules(schema+"."+rel, false)[col] != nil {
			add(schema+"."+rel, col, "the unique index "+index+" would tell whether the masked value exists")
		}
		return nil
	}); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `
		SELECT sn.nspname, s.relname, sa.attname, rn.nspname, r.relname, ra.attname
		FROM pg_catalog.pg_constraint k
		JOIN pg_catalog.pg_class s ON s.oid = k.conrelid
		JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
		JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
		JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
		CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(sk, rk) -- the multi-array form exists only unqualified
		JOIN pg_catalog.pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum OPERATOR(pg_catalog.=) u.sk
		JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum OPERATOR(pg_catalog.=) u.rk
		WHERE k.contype = 'f'`)
	if err != nil {
		return err
	}
	var rschema, rrel, rcol string
	_, err = pgx.ForEachRow(rows, []any{&schema, &rel, &col, &rschema, &rrel, &rcol}, func() error {
		if n.rules(rschema+"."+rrel, false)[rcol] != nil {
			add(schema+"."+rel, col, "its foreign key to the masked column "+rschema+"."+rrel+"."+rcol+" would tell whether a value exists there")
		}
		return nil
	})
	return err
}

// loadMaskedPartitionKeys finds the partitioned tables partitioned by a
// masked column (directly or in a key expression).
func loadMaskedPartitionKeys(ctx context.Context, tx pgx.Tx, n *names) error {
	mc := n.mask
	mc.keyedBy = map[string]string{}
	rows, err := tx.Query(ctx, `
		SELECT n.nspname, c.relname, a.attname
		FROM pg_catalog.pg_partitioned_table p
		JOIN pg_catalog.pg_class c ON c.oid = p.partrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND (a.attnum OPERATOR(pg_catalog.=) ANY (p.partattrs::pg_catalog.int2[])
		     OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
		                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = p.partrelid
		                  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = p.partrelid
		                  AND d.refobjsubid OPERATOR(pg_catalog.=) a.attnum AND d.deptype = 'a'))`)
	if err != nil {
		return err
	}
	var schema, rel, col string
	_, err = pgx.ForEachRow(rows, []any{&schema, &rel, &col}, func() error {
		if n.rules(schema+"."+rel, false)[col] != nil {
			mc.keyedBy[schema+"."+rel] = col
		}
		return nil
	})
	return err
}

// guardPartitionRead refuses (after policy) reading a partition directly
// when its table is partitioned by a masked column: the rows a partition
// holds tell the range of their raw values.
func (a *analyzer) guardPartitionRead(name string) {
	if a.cat == nil || a.cat.mask == nil || a.refusal != nil {
		return
	}
	if col, ok := a.cat.mask.keyedBy[name]; ok && a.explaining {
		a.refusal = &warden.Error{Code: warden.Denied, Rule: ruleMasking, Message: fmt.Sprintf(
			"EXPLAIN of %s is refused: it is partitioned by the masked column %s, and a plan shows rows per partition, which would reveal the ranges of raw values", name, col)}
		return
	}
	for _, parent := range a.cat.ancestors(name) {
		if col, ok := a.cat.mask.keyedBy[parent]; ok {
			a.refusal = &warden.Error{Code: warden.Denied, Rule: ruleMasking, Message: fmt.Sprintf(
				"%s is a partition of %s, which is partitioned by the masked column %s: which rows a partition holds would reveal their raw values; read %s instead", name, parent, col, parent)}
			return
		}
	}
}

// guardWrittenColumns refuses (after policy) a write that sets a column
// whose constraint would reveal a masked value; nil columns means all.
func (a *analyzer) guardWrittenColumns(name string, columns []string) {
	if a.cat == nil || a.cat.mask == nil || name == "" {
		return
	}
	oracles := a.cat.mask.oracles[name]
	if len(oracles) == 0 {
		return
	}
	if columns == nil {
		columns = a.cat.mask.columns[name]
	}
	for _, col := range columns {
		if why, ok := oracles[col]; ok && a.refusal == nil {
			a.refusal = &warden.Error{Code: warden.Denied, Rule: ruleMasking, Message: fmt.Sprintf(
				"this statement writes %s.%s, and %s: whether the write succeeds would reveal a masked value; leave that column out", name, col, why)}
		}
	}
}

// targetNames are the column names a list of ResTargets sets.
func targetNames(list []*pg_query.Node) []string {
	var out []string
	for _, n := range list {
		if rt := n.GetResTarget(); rt != nil {
			out = append(out, rt.Name)
		}
	}
	return out
}

// statisticsRelations hold samples of column values; on a backend with
// masking rules they would hand out raw masked values whatever the grants.
var statisticsRelations = map[string]bool{
	"pg_catalog.pg_stats": true, "pg_catalog.pg_stats_ext": true, "pg_catalog.pg_stats_ext_exprs": true,
	"pg_catalog.pg_statistic": true, "pg_catalog.pg_statistic_ext_data": true,
}

// maskRelation returns the node that replaces a read of relation name when
// masking covers it: the masking subquery of a table, or the inlined,
// masked definition of a view. It returns nil when nothing covers it.
func (a *analyzer) maskRelation(rv *pg_query.RangeVar, name string) *pg_query.Node_RangeSubselect {
	if a.cat == nil || a.cat.mask == nil {
		return nil
	}
	var inlined *pg_query.Node_RangeSubselect
	if def, ok := a.cat.mask.viewDefs[name]; ok {
		// A view may also carry rules of its own: they are applied over
		// the inlined definition.
		inlined = a.inlineView(&pg_query.RangeVar{Relname: rv.Relname}, name, def)
		if inlined == nil || len(a.cat.mask.own[name]) == 0 {
			if inlined != nil && rv.Alias != nil {
				if len(rv.Alias.Colnames) == 0 {
					rv.Alias.Colnames = inlined.RangeSubselect.Alias.Colnames
				}
				inlined.RangeSubselect.Alias = rv.Alias
			}
			return inlined
		}
	}
	if statisticsRelations[name] && a.refusal == nil {
		a.refusal = &warden.Error{Code: warden.Denied, Rule: ruleMasking, Message: fmt.Sprintf(
			"%s is refused on a database with masked columns: planner statistics hold sampled raw values (most common values, histograms)", name)}
	}
	rules := a.cat.rules(name, rv.Inh)
	if len(rules) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, col := range a.cat.mask.columns[name] {
		if i > 0 {
			sb.WriteString(", ")
		}
		id := pgx.Identifier{col}.Sanitize()
		if r := rules[col]; r != nil {
			sb.WriteString(a.maskExpr(r, id))
			a.masked[col] = r.Strategy + " (" + name + "." + col + ")"
		} else {
			sb.WriteString(id)
		}
		sb.WriteString(" AS ")
		sb.WriteString(id)
	}
	sb.WriteString(" FROM ")
	if !rv.Inh {
		sb.WriteString("ONLY ")
	}
	sb.WriteString(pgx.Identifier{rv.Schemaname, rv.Relname}.Sanitize())
	tree, err := pg_query.Parse(sb.String())
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		a.fail(warden.Errorf(warden.Internal, "cannot build the masking subquery of %s", name))
		return nil
	}
	if inlined != nil {
		tree.Stmts[0].Stmt.GetSelectStmt().FromClause = []*pg_query.Node{{Node: inlined}}
	}
	return subselect(tree.Stmts[0].Stmt, rv, nil)
}

// subselect wraps a query as a FROM item named as rv was: its alias, or
// its bare name. cols name the columns when rv's alias does not.
func subselect(q *pg_query.Node, rv *pg_query.RangeVar, cols []string) *pg_query.Node_RangeSubselect {
	alias := &pg_query.Alias{Aliasname: rv.Relname}
	if rv.Alias != nil {
		alias = rv.Alias
	}
	if len(alias.Colnames) == 0 {
		for _, c := range cols {
			alias.Colnames = append(alias.Colnames, pg_query.MakeStrNode(c))
		}
	}
	return &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{Subquery: q, Alias: alias}}
}

// maxViewDepth bounds view inlining.
const maxViewDepth = 16

// inlineView replaces a view that reads masked data by its definition,
// bound like the statement's own text (so the masked relations in it are
// replaced in turn). The view's grant covers its body, so the body adds
// no ops. A materialized view is inlined the same way: its stored rows
// hold raw values, so it is computed afresh, over masked values.
func (a *analyzer) inlineView(rv *pg_query.RangeVar, name, def string) *pg_query.Node_RangeSubselect {
	if a.trusted >= maxViewDepth {
		a.fail(refused("view %s nests views too deeply for warden to inline it", name))
		return nil
	}
	tree, err := pg_query.Parse(def)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		a.fail(refused("view %s reads masked columns and warden cannot inline its definition; query the tables it reads instead", name))
		return nil
	}
	a.trusted++
	a.walk(tree.Stmts[0].Stmt, frame{})
	a.trusted--
	return subselect(tree.Stmts[0].Stmt, rv, a.cat.mask.columns[name])
}

// Character classes of the partial strategies, as mask.keepEnds counts
// them: ASCII letters and digits and every non-ASCII character are kept or
// starred; other ASCII characters are separators and stay.
const (
	sepClass   = `[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]`
	alnumClass = `[^\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]`
)

// maskExpr is the SQL for a strategy applied to column col (an identifier
// already quoted). Every strategy yields text and keeps NULL as NULL, as
// mask.Masker does for values read in Go.
func (a *analyzer) maskExpr(r *mask.Rule, col string) string {
	v := "(" + col + ")::pg_catalog.text"
	switch r.Strategy {
	case "null":
		return "NULL::pg_catalog.text"
	case "redact":
		return "CASE WHEN " + col + " IS NULL THEN NULL ELSE " + quote(mask.Redacted) + "::pg_catalog.text END"
	case "email":
		return "CASE WHEN " + col + " IS NULL THEN NULL WHEN " + v + " OPERATOR(pg_catalog.~) '^.+@[^@]*$' THEN '***' OPERATOR(pg_catalog.||) pg_catalog.substring(" + v + ", '^.+(@[^@]*)$') ELSE " + quote(mask.Redacted) + " END"
	case "hash":
		if a.hashParams == 0 {
			a.hashParams = max(a.nparams, 0) + 1
		}
		inner, outer := "$"+strconv.Itoa(a.hashParams)+"::pg_catalog.bytea", "$"+strconv.Itoa(a.hashParams+1)+"::pg_catalog.bytea"
		mac := "pg_catalog.sha256(" + outer + " OPERATOR(pg_catalog.||) pg_catalog.sha256(" + inner + " OPERATOR(pg_catalog.||) pg_catalog.textsend(" + v + ")))"
		return "CASE WHEN " + col + " IS NULL THEN NULL ELSE 'hash:' OPERATOR(pg_catalog.||) pg_catalog.translate(pg_catalog.encode(pg_catalog.substring(" + mac + ", 1, 12), 'base64'), '+/', '-_') END"
	}
	n, m, ok := r.Ends()
	if !ok {
		// A strategy this code does not know: mask the whole value.
		return "CASE WHEN " + col + " IS NULL THEN NULL ELSE " + quote(mask.Redacted) + "::pg_catalog.text END"
	}
	return keepEndsExpr(v, n, m)
}

// asciiAlnum and asciiStars translate ASCII letters and digits to '*'.
var (
	asciiAlnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	asciiStars = strings.Repeat("*", len(asciiAlnum))
)

// keepEndsExpr is mask.keepEnds in SQL: keep the first n and last m letters
// and digits of v, star the others, keep separators; redact a value with
// no more than n+m letters and digits. An all-ASCII value (the common case)
// takes a fast path: two anchored regular expressions find where the kept
// ends stop, and translate stars the middle; a global regexp_replace costs
// several times more per row.
func keepEndsExpr(v string, n, m int) string {
	ends := func(s string, k int) string { // length of the shortest prefix of s holding k letters or digits
		if k == 0 {
			return "0"
		}
		return "pg_catalog.length(pg_catalog.substring(" + s + ", '^(?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(k) + "}'))"
	}
	head, tail := ends(v, n), ends("pg_catalog.reverse("+v+")", m)
	middle := "pg_catalog.substr(" + v + ", " + head + " OPERATOR(pg_catalog.+) 1, pg_catalog.length(" + v + ") OPERATOR(pg_catalog.-) " + head + " OPERATOR(pg_catalog.-) " + tail + ")"
	fast := "pg_catalog.\"left\"(" + v + ", " + head + ") OPERATOR(pg_catalog.||) pg_catalog.translate(" + middle + ", " + quote(asciiAlnum) + ", " + quote(asciiStars) + ") OPERATOR(pg_catalog.||) pg_catalog.\"right\"(" + v + ", " + tail + ")"
	prefix := "pg_catalog.substring(" + v + ", '^(?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(n) + "}')"
	rest := "pg_catalog.substr(" + v + ", pg_catalog.length(" + prefix + ") OPERATOR(pg_catalog.+) 1)"
	general := prefix + " OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(" + rest + ", '" + alnumClass + "(?=(?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(m) + "})', '*', 'g')"
	if n == 0 && m > 0 { // left(v, -0) would be '', not v
		// One regular expression on the reversed value finds the kept
		// tail and, by matching at all, that there is more to hide.
		t := "pg_catalog.\"substring\"(pg_catalog.reverse(" + v + "), '^((?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(m) + "})" + sepClass + "*" + alnumClass + "')"
		fast = "COALESCE(pg_catalog.translate(pg_catalog.\"left\"(" + v + ", OPERATOR(pg_catalog.-) pg_catalog.length(" + t + ")), " + quote(asciiAlnum) + ", " + quote(asciiStars) + ") OPERATOR(pg_catalog.||) pg_catalog.reverse(" + t + "), " + quote(mask.Redacted) + ")"
		return "CASE WHEN " + v + " IS NULL THEN NULL" +
			" WHEN pg_catalog.octet_length(" + v + ") OPERATOR(pg_catalog.=) pg_catalog.length(" + v + ") THEN " + fast +
			" WHEN " + v + " OPERATOR(pg_catalog.!~) '^(?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(n+m+1) + "}' THEN " + quote(mask.Redacted) +
			" ELSE " + general + " END"
	}
	return "CASE WHEN " + v + " IS NULL THEN NULL" +
		" WHEN " + v + " OPERATOR(pg_catalog.!~) '^(?:" + sepClass + "*" + alnumClass + "){" + strconv.Itoa(n+m+1) + "}' THEN " + quote(mask.Redacted) +
		" WHEN pg_catalog.octet_length(" + v + ") OPERATOR(pg_catalog.=) pg_catalog.length(" + v + ") THEN " + fast +
		" ELSE " + general + " END"
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// maskedTarget is a masked relation a write statement changes.
type maskedTarget struct {
	name string
	// ref is how the statement names the target: its alias or bare name.
	ref     string
	columns map[string]*mask.Rule
}

// guardTarget runs walk with the write's target watched: when masking
// rules cover it, any read of its masked columns or of its whole row is
// refused (after policy).
func (a *analyzer) guardTarget(rv *pg_query.RangeVar, name string, inh bool, walk func()) {
	if a.cat == nil || name == "" {
		walk()
		return
	}
	rules := a.cat.rules(name, inh)
	if len(rules) == 0 {
		walk()
		return
	}
	ref := rv.Relname
	if rv.Alias != nil {
		ref = rv.Alias.Aliasname
	}
	saved := a.target
	a.target = &maskedTarget{name: name, ref: ref, columns: rules}
	walk()
	a.target = saved
}

// columnRef refuses a read of a masked write target's masked column or
// whole row. An unqualified name is taken to be the target's: the
// stricter reading.
func (a *analyzer) columnRef(cr *pg_query.ColumnRef) {
	t := a.target
	if t == nil {
		return
	}
	var parts []string
	for _, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	if len(parts) == 0 {
		return
	}
	last := parts[len(parts)-1]
	qualifier := ""
	if len(parts) >= 2 {
		qualifier = parts[len(parts)-2]
	}
	star := cr.Fields[len(cr.Fields)-1].GetAStar() != nil
	switch {
	case star && last == t.ref:
		a.refuseTarget(t, "its whole row")
	case star:
	case len(parts) == 1 && last == t.ref:
		a.refuseTarget(t, "its whole row")
	case t.columns[last] != nil && (qualifier == "" || qualifier == t.ref):
		a.refuseTarget(t, "its masked column "+last)
	}
}

// returningTarget refuses RETURNING * on a masked target.
func (a *analyzer) returningTarget(rt *pg_query.ResTarget) {
	if cr := rt.Val.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetAStar() != nil {
		a.refuseTarget(a.target, "its whole row (RETURNING *)")
	}
}

func (a *analyzer) refuseTarget(t *maskedTarget, what string) {
	if a.refusal == nil {
		a.refusal = &warden.Error{Code: warden.Denied, Rule: ruleMasking, Message: fmt.Sprintf(
			"this statement writes %s, which has masked columns, and reads %s: a write's own target cannot be masked, so it may not read masked values; filter and return other columns", t.name, what)}
	}
}

// describeMasks lists the masked columns a result carries, for the
// columns' `mask` annotation.
func describeMasks(res *QueryResult, masked map[string]string) {
	for i, c := range res.Columns {
		if d, ok := masked[c.Name]; ok {
			res.Columns[i].Masked, res.Columns[i].Mask = true, d
		}
	}
}

// maskingReady refuses calls while the backend's masking rules cannot be
// enforced: the catalog they need is not loaded, or they name columns
// that do not exist.
func (b *Backend) maskingReady(n *names) error {
	if len(b.masks) == 0 {
		return nil
	}
	if n.mask == nil {
		return warden.Errorf(warden.Unavailable, "database %q: the masking catalog is not loaded", b.Name)
	}
	if len(n.mask.missing) > 0 {
		return warden.Errorf(warden.Unavailable, "database %q: masking rules name columns that do not exist (%s); warden refuses calls until the configuration is fixed", b.Name, strings.Join(n.mask.missing, ", "))
	}
	return nil
}
