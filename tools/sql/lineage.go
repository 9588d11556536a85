package sql

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ColumnRef is one table column: schema, table (or view) and column name,
// as PostgreSQL stores them.
type ColumnRef struct{ Schema, Table, Column string }

// String returns "schema.table.column".
func (c ColumnRef) String() string { return c.Schema + "." + c.Table + "." + c.Column }

func compareColumnRefs(x, y ColumnRef) int {
	if c := strings.Compare(x.Schema, y.Schema); c != 0 {
		return c
	}
	if c := strings.Compare(x.Table, y.Table); c != 0 {
		return c
	}
	return strings.Compare(x.Column, y.Column)
}

// Columns tells the binder the ordered column names of a relation (table
// or view); ok=false when unknown.
type Columns interface {
	RelationColumns(schema, table string) (cols []string, ok bool)
}

// Lineage says where the values of one statement come from. Callers should
// also treat the statement as unresolved when len(Outputs) differs from the
// number of columns PostgreSQL reports for it: the binder never reports
// more columns than there are without saying why in Unresolved, but a
// function in FROM returning a composite type it cannot see can make it
// report fewer.
type Lineage struct {
	// Outputs has one entry per output column of the statement, in order,
	// after expanding `*` and `t.*` (for SELECT; for INSERT, UPDATE,
	// DELETE and MERGE the RETURNING list; for SELECT ... INTO, CREATE
	// TABLE AS and EXPLAIN the inner query's; empty for statements
	// returning nothing).
	Outputs []Output
	// Filters are the columns read to decide which rows or groups exist
	// or in what order: WHERE, JOIN ... ON, JOIN ... USING (both sides),
	// GROUP BY, HAVING, ORDER BY, window PARTITION BY / ORDER BY / frame
	// offsets, aggregate FILTER and ORDER BY, DISTINCT ON, LIMIT and
	// OFFSET, TABLESAMPLE, the WHERE of UPDATE and DELETE, MERGE's ON and
	// WHEN conditions, ON CONFLICT's arbiter and WHERE — anywhere in the
	// statement, including inside subqueries, CTEs and EXISTS.
	Filters []ColumnRef
	// Copied are columns whose values a write copies into storage: INSERT
	// ... VALUES/SELECT sources, UPDATE ... SET sources, MERGE ... UPDATE
	// SET / INSERT VALUES sources, ON CONFLICT DO UPDATE SET sources, and
	// the outputs of SELECT ... INTO and CREATE TABLE AS.
	Copied []ColumnRef
	// Unresolved lists references the binder could not resolve (unknown
	// relation columns, ambiguous names, unsupported constructs); callers
	// treat the whole statement as tainted.
	Unresolved []string
}

// Output is where one output column's values come from.
type Output struct {
	// Name is the output column name PostgreSQL would report (alias,
	// column name, or function name like "upper" or "?column?"); best
	// effort and informational only.
	Name string
	// Sources is every table column that feeds this output's value,
	// deduplicated and sorted: through any expression, subquery, CTE,
	// derived table, set operation branch or whole-row reference.
	Sources []ColumnRef
	// Direct is true when the output is exactly one source column,
	// unmodified: a plain column reference, possibly through aliases,
	// CTEs, derived tables or a scalar subquery that are themselves
	// plain. It is false for any expression, cast, aggregate, whole-row
	// value or set operation.
	Direct bool
}

// LineageOf binds the statement's column references to table columns, on
// the same single statement Analyze accepts. It returns a *warden.Error
// (Invalid) only when the statement cannot be parsed; everything else the
// binder cannot follow is listed in Lineage.Unresolved. Analyze runs first
// and judges everything else.
func LineageOf(sql string, names Names, cols Columns) (*Lineage, error) {
	return lineageOf(sql, names, cols, baseBindSteps+stepsPerByte*len(sql))
}

func lineageOf(sql string, names Names, cols Columns, budget int) (*Lineage, error) {
	tree, err := parse(sql)
	if err != nil {
		return nil, err
	}
	b := &binder{names: names, cols: cols, filters: map[ColumnRef]bool{}, copied: map[ColumnRef]bool{}, seen: map[string]bool{}, budget: budget}
	var outs []column
	switch n := len(tree.Stmts); n {
	case 0:
		b.unresolve("the statement is empty")
	case 1:
		outs = b.statement(unwrapNode(tree.Stmts[0].Stmt))
	default:
		b.unresolve(fmt.Sprintf("found %d statements; lineage is traced for exactly one", n))
	}
	return b.result(outs), nil
}

// sources is a sorted, duplicate-free set of columns. A sources value is
// never changed in place, so values can share one.
type sources []ColumnRef

func (s sources) union(t sources) sources {
	if len(t) == 0 {
		return s
	}
	if len(s) == 0 {
		return t
	}
	out := make(sources, 0, len(s)+len(t))
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		switch c := compareColumnRefs(s[i], t[j]); {
		case c < 0:
			out = append(out, s[i])
			i++
		case c > 0:
			out = append(out, t[j])
			j++
		default:
			out = append(out, s[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, s[i:]...)
	return append(out, t[j:]...)
}

// value is what the binder knows about one value: the columns it comes
// from, whether it is exactly one of them unmodified, and whether a whole
// row (a composite value) went into it.
type value struct {
	src    sources
	direct bool
	row    bool
}

// with combines two values into one computed from both; the result is
// never direct.
func (v value) with(w value) value {
	return value{src: v.src.union(w.src), row: v.row || w.row}
}

func combine(vs []value) value {
	if len(vs) == 1 {
		return vs[0]
	}
	var v value
	for _, w := range vs {
		v = v.with(w)
	}
	return v
}

// column is one named column of a relation, or one output column.
type column struct {
	name string
	v    value
}

// rel is the columns a FROM item provides.
type rel struct {
	cols []column
	// system: a table, which also has PostgreSQL's system columns.
	system bool
	// open are parts whose column lists are unknown (a table unknown to
	// Columns, a function result of unknown shape); any name might be one
	// of their columns.
	open []*openRel
}

type openRel struct {
	what string
	// column returns the value of a column of that name, if it exists;
	// ok=false when even its sources cannot be known.
	column func(name string) (v value, ok bool)
	// whole is the value of the whole row; nil when unknown.
	whole *value
}

// systemColumns exist in every table; they carry no user data.
var systemColumns = map[string]bool{"tableoid": true, "ctid": true, "xmin": true, "xmax": true, "cmin": true, "cmax": true}

// lookup finds the columns of r called name: known ones, maybe ones in
// open parts, and the open parts that cannot even guess. PostgreSQL
// refuses a name that is in both a known and an open part as ambiguous, so
// when a known column matches, the open parts do not matter.
func (r *rel) lookup(name string) (known, maybe []value, unknown []string) {
	for _, c := range r.cols {
		if c.name == name {
			known = append(known, c.v)
		}
	}
	if len(known) == 0 && r.system && systemColumns[name] {
		known = append(known, value{})
	}
	if len(known) > 0 {
		return known, nil, nil
	}
	for _, o := range r.open {
		if v, ok := o.column(name); ok {
			maybe = append(maybe, v)
		} else {
			unknown = append(unknown, o.what)
		}
	}
	return nil, maybe, unknown
}

// nsItem is one name-space entry of a query level, as PostgreSQL's
// ParseNamespaceItem: a relation that may be referenced by name, whose
// columns may be referenced unqualified.
type nsItem struct {
	name string
	// schema is set for a table referenced by its own name, so that
	// schema.table.column finds it.
	schema      string
	relVisible  bool
	colsVisible bool
	rel         *rel
}

// scope is one query level's name space, linked to the enclosing levels
// that correlated references reach.
type scope struct {
	items []nsItem
	up    *scope
	ctes  *cteEnv
}

func (s *scope) cteEnv() *cteEnv {
	if s == nil {
		return nil
	}
	return s.ctes
}

// cteEnv is a linked list of visible CTEs, innermost first, with the
// lineage of their outputs. pending marks a recursive CTE whose outputs are
// still being computed.
type cteEnv struct {
	name    string
	outs    []column
	pending bool
	up      *cteEnv
}

func (e *cteEnv) find(name string) *cteEnv {
	for ; e != nil; e = e.up {
		if e.name == name {
			return e
		}
	}
	return nil
}

// The binder's work for one statement is bounded by a budget of steps
// (one per node visited, well under a microsecond each): a base amount
// plus stepsPerByte for each byte of SQL text. Plain statements take under
// two steps per byte; recursive CTEs nested in recursive CTEs multiply the
// work, and are what the bound stops.
const (
	baseBindSteps = 1 << 18
	stepsPerByte  = 16
)

// maxRecursionRounds bounds the fixed-point iteration of one recursive
// WITH clause; sources only grow, so it is reached only by pathological
// statements.
const maxRecursionRounds = 16

// binder accumulates the lineage of one statement.
type binder struct {
	names      Names
	cols       Columns
	filters    map[ColumnRef]bool
	copied     map[ColumnRef]bool
	unresolved []string
	seen       map[string]bool
	steps      int
	budget     int
}

func (b *binder) unresolve(msg string) {
	if !b.seen[msg] {
		b.seen[msg] = true
		b.unresolved = append(b.unresolved, msg)
	}
}

func (b *binder) filter(v value) {
	for _, c := range v.src {
		b.filters[c] = true
	}
}

func (b *binder) copies(v value) {
	for _, c := range v.src {
		b.copied[c] = true
	}
}

// spent counts one step and reports whether the budget is gone.
func (b *binder) spent() bool {
	b.steps++
	if b.steps >= b.budget {
		b.unresolve("the statement is too complex to trace")
		return true
	}
	return false
}

type binderState struct {
	filters, copied map[ColumnRef]bool
	seen            map[string]bool
	unresolved      []string
}

func (b *binder) save() binderState {
	return binderState{filters: maps.Clone(b.filters), copied: maps.Clone(b.copied),
		seen: maps.Clone(b.seen), unresolved: slices.Clone(b.unresolved)}
}

func (b *binder) restore(s binderState) {
	b.filters, b.copied = maps.Clone(s.filters), maps.Clone(s.copied)
	b.seen, b.unresolved = maps.Clone(s.seen), slices.Clone(s.unresolved)
}

func (b *binder) result(outs []column) *Lineage {
	l := &Lineage{Unresolved: slices.Clone(b.unresolved)}
	for _, o := range outs {
		l.Outputs = append(l.Outputs, Output{Name: o.name, Sources: slices.Clone(o.v.src), Direct: o.v.direct && len(o.v.src) == 1})
	}
	l.Filters = sortedRefs(b.filters)
	l.Copied = sortedRefs(b.copied)
	return l
}

func sortedRefs(m map[ColumnRef]bool) []ColumnRef {
	if len(m) == 0 {
		return nil
	}
	return slices.SortedFunc(maps.Keys(m), compareColumnRefs)
}

func nodeName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().Name()) }

// statement binds a top-level statement and returns its output columns.
func (b *binder) statement(m proto.Message) []column {
	switch n := m.(type) {
	case *pg_query.SelectStmt:
		outs := b.selectStmt(n, nil)
		if selectsInto(n) {
			for _, o := range outs {
				b.copies(o.v)
			}
		}
		return outs
	case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		return b.query(m, nil)
	case *pg_query.ExplainStmt:
		return b.statement(unwrapNode(n.Query))
	case *pg_query.CreateTableAsStmt:
		outs := b.query(unwrapNode(n.Query), nil)
		for _, o := range outs {
			b.copies(o.v)
		}
		return outs
	case *pg_query.TruncateStmt:
		// Empties tables: no value goes anywhere.
		return nil
	case nil:
		b.unresolve("the statement is empty")
		return nil
	}
	b.unresolve(fmt.Sprintf("lineage of %s statements is not traced", nodeName(m)))
	return nil
}

// query binds a statement that yields rows (a SELECT, or DML with
// RETURNING) as a subquery of parent.
func (b *binder) query(m proto.Message, parent *scope) []column {
	switch n := m.(type) {
	case *pg_query.SelectStmt:
		return b.selectStmt(n, parent)
	case *pg_query.InsertStmt:
		return b.insertStmt(n, parent)
	case *pg_query.UpdateStmt:
		return b.updateStmt(n, parent)
	case *pg_query.DeleteStmt:
		return b.deleteStmt(n, parent)
	case *pg_query.MergeStmt:
		return b.mergeStmt(n, parent)
	case nil:
		b.unresolve("a subquery is missing")
		return nil
	}
	b.unresolve(fmt.Sprintf("lineage through %s is not traced", nodeName(m)))
	return nil
}

// with binds the CTEs of a WITH clause and returns the CTEs visible to its
// statement. A CTE body sees the enclosing query levels and the earlier
// siblings; with RECURSIVE, every sibling and itself, so the clause is
// bound repeatedly until the outputs stop changing.
func (b *binder) with(w *pg_query.WithClause, parent *scope) *cteEnv {
	env := parent.cteEnv()
	if w == nil {
		return env
	}
	var ctes []*pg_query.CommonTableExpr
	for _, n := range w.Ctes {
		if c := n.GetCommonTableExpr(); c != nil {
			ctes = append(ctes, c)
		} else {
			b.unresolve("this WITH clause is not supported")
		}
	}
	if !w.Recursive {
		for _, c := range ctes {
			outs := b.cte(c, &scope{up: parent, ctes: env})
			env = &cteEnv{name: c.Ctename, outs: outs, up: env}
		}
		return env
	}
	entries := make([]*cteEnv, len(ctes))
	for i, c := range ctes {
		env = &cteEnv{name: c.Ctename, pending: true, up: env}
		entries[i] = env
	}
	body := &scope{up: parent, ctes: env}
	saved := b.save()
	for round := 0; ; round++ {
		if round == maxRecursionRounds {
			b.unresolve("the lineage of a recursive WITH clause did not settle")
			break
		}
		// Only the last round's findings count: earlier rounds saw
		// pending CTEs.
		b.restore(saved)
		changed := false
		for i, c := range ctes {
			outs := b.cte(c, body)
			if entries[i].pending || !sameColumns(entries[i].outs, outs) {
				changed = true
			}
			entries[i].outs, entries[i].pending = outs, false
		}
		if !changed || b.steps >= b.budget {
			break
		}
	}
	return env
}

func sameColumns(x, y []column) bool {
	return slices.EqualFunc(x, y, func(a, b column) bool {
		return a.name == b.name && a.v.direct == b.v.direct && a.v.row == b.v.row && slices.Equal(a.v.src, b.v.src)
	})
}

// cte binds one CTE body, with its column aliases and the columns SEARCH
// and CYCLE add.
func (b *binder) cte(c *pg_query.CommonTableExpr, sc *scope) []column {
	outs := b.renameColumns(b.query(unwrapNode(c.Ctequery), sc), stringList(c.Aliascolnames), "WITH "+c.Ctename)
	if s := c.SearchClause; s != nil {
		v := b.namedColumns(outs, s.SearchColList, c.Ctename)
		outs = append(outs, column{name: s.SearchSeqColumn, v: v})
	}
	if cy := c.CycleClause; cy != nil {
		v := b.namedColumns(outs, cy.CycleColList, c.Ctename)
		outs = append(outs, column{name: cy.CycleMarkColumn, v: v}, column{name: cy.CyclePathColumn, v: v})
	}
	return outs
}

// namedColumns combines the values of the output columns a SEARCH or CYCLE
// clause names.
func (b *binder) namedColumns(outs []column, names []*pg_query.Node, what string) value {
	var v value
	for _, name := range stringList(names) {
		found := false
		for _, o := range outs {
			if o.name == name {
				v, found = v.with(o.v), true
			}
		}
		if !found {
			b.unresolve(fmt.Sprintf("column %q is not an output of %s", name, what))
		}
	}
	return v
}

// renameColumns applies a column alias list to outs, returning a copy.
func (b *binder) renameColumns(outs []column, names []string, what string) []column {
	if len(names) == 0 {
		return outs
	}
	outs = slices.Clone(outs)
	for i, name := range names {
		if i >= len(outs) {
			b.unresolve(fmt.Sprintf("%s has %d columns but %d names", what, len(outs), len(names)))
			break
		}
		outs[i].name = name
	}
	return outs
}

// stringList returns the String nodes of a name list, skipping anything
// else.
func stringList(nodes []*pg_query.Node) []string {
	var out []string
	for _, n := range nodes {
		if s := n.GetString_(); s != nil {
			out = append(out, s.Sval)
		}
	}
	return out
}

func aliasNames(a *pg_query.Alias) []string {
	if a == nil {
		return nil
	}
	return stringList(a.Colnames)
}

// selectStmt binds a SELECT, VALUES or set operation whose enclosing query
// level is parent.
func (b *binder) selectStmt(s *pg_query.SelectStmt, parent *scope) []column {
	if s == nil || b.spent() {
		return nil
	}
	lvl := &scope{up: parent, ctes: b.with(s.WithClause, parent)}
	var outs []column
	switch {
	case s.Op > pg_query.SetOperation_SETOP_NONE:
		outs = b.setOperation(s, lvl)
		b.orderBy(s.SortClause, lvl, outs)
	case len(s.ValuesLists) > 0:
		outs = b.values(s.ValuesLists, lvl)
		b.orderBy(s.SortClause, lvl, outs)
	default:
		for _, n := range s.FromClause {
			lvl.items = append(lvl.items, b.fromItem(n, lvl)...)
		}
		b.filter(b.expr(s.WhereClause, lvl))
		outs = b.targets(s.TargetList, lvl)
		b.groupBy(s.GroupClause, lvl, outs)
		b.filter(b.expr(s.HavingClause, lvl))
		for _, n := range s.WindowClause {
			b.expr(n, lvl)
		}
		for _, n := range s.DistinctClause {
			// Plain DISTINCT is a list holding one empty node.
			if unwrapNode(n) != nil {
				b.filter(b.outputOrExpr(n, lvl, outs))
			}
		}
		b.orderBy(s.SortClause, lvl, outs)
	}
	b.filter(b.expr(s.LimitCount, lvl))
	b.filter(b.expr(s.LimitOffset, lvl))
	return outs
}

// setOperation combines the branches of UNION, INTERSECT or EXCEPT
// position by position. Column names come from the left branch.
func (b *binder) setOperation(s *pg_query.SelectStmt, lvl *scope) []column {
	l := b.selectStmt(s.Larg, lvl)
	r := b.selectStmt(s.Rarg, lvl)
	if len(l) != len(r) {
		b.unresolve(fmt.Sprintf("the branches of a set operation return %d and %d columns", len(l), len(r)))
	}
	outs := make([]column, max(len(l), len(r)))
	for i := range outs {
		if i < len(l) {
			outs[i].name = l[i].name
			outs[i].v = outs[i].v.with(l[i].v)
		}
		if i < len(r) {
			outs[i].v = outs[i].v.with(r[i].v)
		}
	}
	return outs
}

// values binds a VALUES list: column i combines the i-th expression of
// every row.
func (b *binder) values(rows []*pg_query.Node, lvl *scope) []column {
	var outs []column
	for i, row := range rows {
		l := row.GetList()
		if l == nil {
			b.unresolve("this VALUES list is not supported")
			continue
		}
		if i == 0 {
			outs = make([]column, len(l.Items))
			for j := range outs {
				outs[j].name = fmt.Sprintf("column%d", j+1)
			}
		} else if len(l.Items) != len(outs) {
			b.unresolve("VALUES lists must all be the same length")
		}
		for j, e := range l.Items {
			v := b.expr(e, lvl)
			if j < len(outs) {
				outs[j].v = outs[j].v.with(v)
			}
		}
	}
	return outs
}

// targets binds a select or RETURNING list.
func (b *binder) targets(list []*pg_query.Node, sc *scope) []column {
	var outs []column
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			b.unresolve("this select list entry is not supported")
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStarRef(cr) {
			outs = append(outs, b.expandStar(cr, sc)...)
			continue
		}
		if ind := rt.Val.GetAIndirection(); ind != nil && len(ind.Indirection) > 0 && ind.Indirection[len(ind.Indirection)-1].GetAStar() != nil {
			// (composite).*: as many columns as the type has fields.
			v := b.expr(rt.Val, sc)
			b.unresolve(fmt.Sprintf("%s.* expands a composite value whose columns are unknown", colName(ind.Arg)))
			outs = append(outs, column{name: colName(ind.Arg), v: value{src: v.src, row: true}})
			continue
		}
		name := rt.Name
		if name == "" {
			name = colName(rt.Val)
		}
		outs = append(outs, column{name: name, v: b.expr(rt.Val, sc)})
	}
	return outs
}

func isStarRef(cr *pg_query.ColumnRef) bool {
	return len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

// columnRefParts splits a ColumnRef into its names and whether it ends in
// `*`; ok is false for anything else.
func columnRefParts(cr *pg_query.ColumnRef) (parts []string, star, ok bool) {
	for i, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			parts = append(parts, s.Sval)
			continue
		}
		if f.GetAStar() != nil && i == len(cr.Fields)-1 {
			return parts, true, true
		}
		return nil, false, false
	}
	return parts, false, len(parts) > 0
}

// expandStar expands `*`, `t.*` or `s.t.*` in a select or RETURNING list.
func (b *binder) expandStar(cr *pg_query.ColumnRef, sc *scope) []column {
	parts, _, ok := columnRefParts(cr)
	if !ok {
		b.unresolve("this column reference is not supported")
		return nil
	}
	var rels []*rel
	switch len(parts) {
	case 0:
		if sc != nil {
			for _, it := range sc.items {
				if it.colsVisible {
					rels = append(rels, it.rel)
				}
			}
		}
		if len(rels) == 0 {
			b.unresolve("SELECT * with no FROM clause")
		}
	case 1, 2:
		if it := b.findItem(parts, sc); it != nil {
			rels = append(rels, it.rel)
		}
	default:
		b.unresolve(fmt.Sprintf("%s.* has too many dotted names", strings.Join(parts, ".")))
	}
	var outs []column
	for _, r := range rels {
		outs = append(outs, r.cols...)
		for _, o := range r.open {
			// The number of columns is unknown, so the outputs after
			// this one cannot be matched to result columns.
			b.unresolve(fmt.Sprintf("the columns of %s are unknown, so * cannot be expanded", o.what))
			v := value{row: true}
			if o.whole != nil {
				v = v.with(*o.whole)
			}
			outs = append(outs, column{name: "?column?", v: v})
		}
	}
	return outs
}

// findItem finds the relation a qualifier names ([table] or [schema,
// table]), at the innermost query level that has one; nil after recording
// why not.
func (b *binder) findItem(parts []string, sc *scope) *nsItem {
	schema, name := "", parts[len(parts)-1]
	if len(parts) == 2 {
		schema = parts[0]
	}
	if it := findItemQuiet(schema, name, sc); it != nil {
		if it.ambiguous {
			b.unresolve(fmt.Sprintf("table reference %q is ambiguous", strings.Join(parts, ".")))
		}
		return it.item
	}
	b.unresolve(fmt.Sprintf("missing FROM-clause entry for %q", strings.Join(parts, ".")))
	return nil
}

type foundItem struct {
	item      *nsItem
	ambiguous bool
}

func findItemQuiet(schema, name string, sc *scope) *foundItem {
	for s := sc; s != nil; s = s.up {
		var found []*nsItem
		for i := range s.items {
			it := &s.items[i]
			if it.relVisible && it.name == name && (schema == "" || it.schema == schema) {
				found = append(found, it)
			}
		}
		if len(found) > 0 {
			return &foundItem{item: found[0], ambiguous: len(found) > 1}
		}
	}
	return nil
}

// whole is the value of a whole-row reference to r.
func (b *binder) whole(r *rel) value {
	v := value{row: true}
	for _, c := range r.cols {
		v = v.with(c.v)
	}
	for _, o := range r.open {
		if o.whole == nil {
			b.unresolve(fmt.Sprintf("whole-row reference to %s, whose columns are unknown", o.what))
			continue
		}
		v = v.with(*o.whole)
	}
	return v
}

// fromItem binds one FROM item of the level being built in lvl, whose
// items so far are what a LATERAL item may reference.
func (b *binder) fromItem(n *pg_query.Node, lvl *scope) []nsItem {
	if b.spent() {
		return nil
	}
	prior := &scope{items: lvl.items, up: lvl.up, ctes: lvl.ctes}
	outer := &scope{up: lvl.up, ctes: lvl.ctes}
	switch f := unwrapNode(n).(type) {
	case *pg_query.RangeVar:
		return []nsItem{b.rangeVar(f, lvl.ctes)}
	case *pg_query.RangeSubselect:
		sc := outer
		if f.Lateral {
			sc = prior
		}
		outs := b.query(unwrapNode(f.Subquery), sc)
		it := nsItem{colsVisible: true, rel: &rel{cols: b.renameColumns(outs, aliasNames(f.Alias), "a subquery in FROM")}}
		if f.Alias != nil {
			it.name, it.relVisible = f.Alias.Aliasname, true
		}
		return []nsItem{it}
	case *pg_query.RangeFunction:
		// Functions in FROM may always reference earlier FROM items.
		return []nsItem{b.rangeFunction(f, prior)}
	case *pg_query.RangeTableFunc:
		var names []string
		for _, c := range f.Columns {
			if col := c.GetRangeTableFuncCol(); col != nil {
				names = append(names, col.Colname)
			}
		}
		return []nsItem{b.tableFunction("XMLTABLE", f, names, f.Alias, prior)}
	case *pg_query.JsonTable:
		return []nsItem{b.tableFunction("JSON_TABLE", f, jsonTableColumns(f.Columns), f.Alias, prior)}
	case *pg_query.RangeTableSample:
		items := b.fromItem(f.Relation, lvl)
		for _, a := range f.Args {
			b.filter(b.expr(a, outer))
		}
		b.filter(b.expr(f.Repeatable, outer))
		return items
	case *pg_query.JoinExpr:
		return b.join(f, lvl)
	case nil:
		b.unresolve("a FROM item is missing")
		return nil
	default:
		b.unresolve(fmt.Sprintf("%s in FROM is not supported", nodeName(f)))
		return nil
	}
}

// rangeVar binds a relation named in FROM (or a DML target, with ctes
// nil): a CTE when unqualified and visible, else a table or view.
func (b *binder) rangeVar(rv *pg_query.RangeVar, ctes *cteEnv) nsItem {
	ref := rv.Relname
	if rv.Alias != nil {
		ref = rv.Alias.Aliasname
	}
	it := nsItem{name: ref, relVisible: true, colsVisible: true}
	if rv.Schemaname == "" && rv.Catalogname == "" {
		if c := ctes.find(rv.Relname); c != nil {
			it.rel = b.renamed(cteRel(c), rv.Alias, "WITH "+c.name)
			return it
		}
	}
	schema := rv.Schemaname
	if rv.Catalogname != "" {
		b.unresolve(fmt.Sprintf("%s.%s.%s names another database", rv.Catalogname, rv.Schemaname, rv.Relname))
		schema = ""
	} else if schema == "" && b.names != nil {
		schema = b.names.RelationSchema(rv.Relname)
	}
	if schema == "" {
		if rv.Catalogname == "" {
			b.unresolve(fmt.Sprintf("relation %q does not resolve to a schema", rv.Relname))
		}
		it.rel = &rel{open: []*openRel{{what: rv.Relname, column: func(string) (value, bool) { return value{}, false }}}}
		return it
	}
	if rv.Alias == nil {
		it.schema = schema
	}
	it.rel = b.tableRel(schema, rv.Relname, rv.Alias)
	return it
}

// tableRel is a table or view: its columns as Columns lists them, or, when
// Columns does not know it, any column named in the statement.
func (b *binder) tableRel(schema, table string, alias *pg_query.Alias) *rel {
	var list []string
	ok := false
	if b.cols != nil {
		list, ok = b.cols.RelationColumns(schema, table)
	}
	if ok {
		r := &rel{system: true}
		for _, c := range list {
			r.cols = append(r.cols, column{name: c, v: value{src: sources{{schema, table, c}}, direct: true}})
		}
		return b.renamed(r, alias, schema+"."+table)
	}
	// A name in the alias list stands for a column whose real name is
	// unknown.
	renamed := aliasNames(alias)
	return &rel{system: true, open: []*openRel{{
		what: schema + "." + table,
		column: func(name string) (value, bool) {
			if slices.Contains(renamed, name) {
				return value{}, false
			}
			return value{src: sources{{schema, table, name}}, direct: true}, true
		},
	}}}
}

func cteRel(c *cteEnv) *rel {
	if c.pending {
		// A recursive reference while the CTE's outputs are being
		// computed: it contributes what earlier rounds found.
		return &rel{open: []*openRel{{what: "WITH " + c.name, column: func(string) (value, bool) { return value{}, true }, whole: &value{}}}}
	}
	return &rel{cols: c.outs}
}

// renamed applies a FROM alias's column list to r's columns.
func (b *binder) renamed(r *rel, alias *pg_query.Alias, what string) *rel {
	names := aliasNames(alias)
	if len(names) == 0 {
		return r
	}
	out := *r
	if len(r.open) > 0 && len(names) > len(r.cols) {
		// Positions past the known columns are unknown; PostgreSQL
		// counts them.
		names = names[:len(r.cols)]
	}
	out.cols = b.renameColumns(r.cols, names, what)
	return &out
}

// catalogFunctionColumns are pg_catalog set-returning functions whose
// result columns do not depend on their argument types ("" is a scalar
// result, named after the alias or the function).
var catalogFunctionColumns = map[string][]string{
	"generate_series":           {""},
	"generate_subscripts":       {""},
	"regexp_matches":            {""},
	"regexp_split_to_table":     {""},
	"string_to_table":           {""},
	"json_object_keys":          {""},
	"jsonb_object_keys":         {""},
	"jsonb_path_query":          {""},
	"json_array_elements":       {"value"},
	"jsonb_array_elements":      {"value"},
	"json_array_elements_text":  {"value"},
	"jsonb_array_elements_text": {"value"},
	"json_each":                 {"key", "value"},
	"jsonb_each":                {"key", "value"},
	"json_each_text":            {"key", "value"},
	"jsonb_each_text":           {"key", "value"},
}

// rangeFunction binds a function (or ROWS FROM) in FROM: every output
// column carries the sources of the function's arguments.
func (b *binder) rangeFunction(rf *pg_query.RangeFunction, sc *scope) nsItem {
	r := &rel{}
	var all value
	open := false
	first, label := "", ""
	single := len(rf.Functions) == 1
	for i, fn := range rf.Functions {
		l := fn.GetList()
		if l == nil || len(l.Items) == 0 {
			b.unresolve("this function in FROM is not supported")
			continue
		}
		call := l.Items[0]
		v := b.expr(call, sc)
		v.direct = false
		all = all.with(v)
		if i == 0 {
			first = colName(call)
			label = first
			if fc := call.GetFuncCall(); fc != nil {
				label = strings.Join(stringList(fc.Funcname), ".")
			}
		}
		var defs []*pg_query.Node
		if len(l.Items) > 1 {
			if dl := l.Items[1].GetList(); dl != nil {
				defs = dl.Items
			}
		}
		if len(defs) == 0 && single {
			defs = rf.Coldeflist
		}
		names, ok := b.functionColumns(call, v, defs, rf.Alias, single)
		if !ok {
			open = true
			continue
		}
		for _, name := range names {
			r.cols = append(r.cols, column{name: name, v: v})
		}
	}
	ref := first
	if rf.Alias != nil {
		ref = rf.Alias.Aliasname
	}
	if open {
		// Any column is one of the function's, so any reference into it
		// gets every argument's sources; only its width is unknown.
		w := all
		r = &rel{open: []*openRel{{what: "the result of " + label + "()", column: func(string) (value, bool) { return w, true }, whole: &w}}}
		for _, name := range aliasNames(rf.Alias) {
			r.cols = append(r.cols, column{name: name, v: all})
		}
	} else {
		if rf.Ordinality {
			r.cols = append(r.cols, column{name: "ordinality"})
		}
		r = b.renamed(r, rf.Alias, "the result of "+label+"()")
	}
	return nsItem{name: ref, relVisible: true, colsVisible: true, rel: r}
}

// functionColumns names the result columns of one function in FROM, when
// they are known without the catalog: a column definition list, or a
// pg_catalog function whose shape is fixed.
func (b *binder) functionColumns(call *pg_query.Node, v value, defs []*pg_query.Node, alias *pg_query.Alias, single bool) ([]string, bool) {
	if len(defs) > 0 {
		var names []string
		for _, d := range defs {
			cd := d.GetColumnDef()
			if cd == nil {
				return nil, false
			}
			names = append(names, cd.Colname)
		}
		return names, true
	}
	fc := call.GetFuncCall()
	if fc == nil {
		return nil, false
	}
	parts, ok := nameStrings(fc.Funcname)
	if !ok || !b.catalogFunction(parts) {
		return nil, false
	}
	scalar := func(fn string, single bool) string {
		if single && alias != nil {
			return alias.Aliasname
		}
		return fn
	}
	fn := parts[len(parts)-1]
	if fn == "unnest" {
		// One column per array; an array of rows expands into the
		// rows' columns instead.
		if v.row || len(fc.Args) == 0 {
			return nil, false
		}
		names := make([]string, len(fc.Args))
		for i := range names {
			names[i] = scalar(fn, single && len(fc.Args) == 1)
		}
		return names, true
	}
	shape, ok := catalogFunctionColumns[fn]
	if !ok {
		return nil, false
	}
	names := make([]string, len(shape))
	for i, s := range shape {
		if s == "" {
			s = scalar(fn, single)
		}
		names[i] = s
	}
	return names, true
}

func (b *binder) catalogFunction(parts []string) bool {
	switch len(parts) {
	case 1:
		return b.names != nil && b.names.FunctionSchema(parts[0]) == "pg_catalog"
	case 2:
		return parts[0] == "pg_catalog"
	}
	return false
}

// tableFunction binds XMLTABLE or JSON_TABLE: every column carries every
// source of the whole expression.
func (b *binder) tableFunction(what string, m proto.Message, names []string, alias *pg_query.Alias, sc *scope) nsItem {
	v := b.children(m, sc)
	r := &rel{}
	for _, name := range names {
		r.cols = append(r.cols, column{name: name, v: v})
	}
	it := nsItem{name: strings.ToLower(what), relVisible: true, colsVisible: true, rel: b.renamed(r, alias, what)}
	if alias != nil {
		it.name = alias.Aliasname
	}
	return it
}

func jsonTableColumns(cols []*pg_query.Node) []string {
	var names []string
	for _, n := range cols {
		c := n.GetJsonTableColumn()
		if c == nil {
			continue
		}
		if c.Coltype == pg_query.JsonTableColumnType_JTC_NESTED {
			names = append(names, jsonTableColumns(c.Columns)...)
			continue
		}
		names = append(names, c.Name)
	}
	return names
}

// join binds a JoinExpr. As in PostgreSQL, the joined tables stay
// referenceable by name but their columns are reached unqualified only
// through the join's own column list (USING columns merged first), and an
// alias on the join hides the tables inside it.
func (b *binder) join(j *pg_query.JoinExpr, lvl *scope) []nsItem {
	left := b.fromItem(j.Larg, lvl)
	right := b.fromItem(j.Rarg, &scope{items: slices.Concat(lvl.items, left), up: lvl.up, ctes: lvl.ctes})
	l, r := visibleRel(left), visibleRel(right)
	using := stringList(j.UsingClause)
	if j.IsNatural {
		if len(l.open)+len(r.open) > 0 {
			b.unresolve("NATURAL JOIN of a relation whose columns are unknown")
		}
		for _, c := range l.cols {
			if slices.ContainsFunc(r.cols, func(d column) bool { return d.name == c.name }) && !slices.Contains(using, c.name) {
				using = append(using, c.name)
			}
		}
	}
	joined, merged := &rel{}, &rel{}
	for _, name := range using {
		lv, rv := b.usingColumn(l, name), b.usingColumn(r, name)
		b.filter(lv)
		b.filter(rv)
		v := lv.with(rv)
		v.direct = lv.direct && rv.direct && len(v.src) == 1
		joined.cols = append(joined.cols, column{name: name, v: v})
	}
	merged.cols = slices.Clone(joined.cols)
	for _, side := range []*rel{l, r} {
		for _, c := range side.cols {
			if !slices.Contains(using, c.name) {
				joined.cols = append(joined.cols, c)
			}
		}
	}
	joined.open = slices.Concat(l.open, r.open)
	b.filter(b.expr(j.Quals, &scope{items: slices.Concat(left, right), up: lvl.up, ctes: lvl.ctes}))
	if j.Alias != nil {
		return []nsItem{{name: j.Alias.Aliasname, relVisible: true, colsVisible: true, rel: b.renamed(joined, j.Alias, "a join")}}
	}
	var items []nsItem
	for _, it := range slices.Concat(left, right) {
		it.colsVisible = false
		items = append(items, it)
	}
	items = append(items, nsItem{colsVisible: true, rel: joined})
	if j.JoinUsingAlias != nil {
		items = append(items, nsItem{name: j.JoinUsingAlias.Aliasname, relVisible: true, rel: merged})
	}
	return items
}

// visibleRel is the column list a join side contributes: its items whose
// columns are visible unqualified, in order.
func visibleRel(items []nsItem) *rel {
	r := &rel{}
	for _, it := range items {
		if it.colsVisible {
			r.cols = append(r.cols, it.rel.cols...)
			r.open = append(r.open, it.rel.open...)
		}
	}
	return r
}

func (b *binder) usingColumn(side *rel, name string) value {
	known, maybe, unknown := side.lookup(name)
	switch {
	case len(known) == 1:
		return known[0]
	case len(known) > 1:
		b.unresolve(fmt.Sprintf("common column %q named in USING appears more than once in one side of the join", name))
		return combine(known)
	}
	for _, w := range unknown {
		b.unresolve(fmt.Sprintf("column %q named in USING: the columns of %s are unknown", name, w))
	}
	if len(maybe) == 0 && len(unknown) == 0 {
		b.unresolve(fmt.Sprintf("column %q named in USING does not exist in one side of the join", name))
	}
	return combine(maybe)
}

// columnRef binds a column reference used as a value.
func (b *binder) columnRef(cr *pg_query.ColumnRef, sc *scope) value {
	parts, star, ok := columnRefParts(cr)
	if !ok {
		b.unresolve("this column reference is not supported")
		return value{}
	}
	text := strings.Join(parts, ".")
	if star {
		// t.* (or *) as a value: the whole row.
		if len(parts) == 0 {
			v := value{row: true}
			for s := sc; s != nil; s = s.up {
				if len(s.items) == 0 {
					continue
				}
				for _, it := range s.items {
					if it.colsVisible {
						v = v.with(b.whole(it.rel))
					}
				}
				break
			}
			return v
		}
		if len(parts) > 2 {
			b.unresolve(fmt.Sprintf("%s.* has too many dotted names", text))
			return value{}
		}
		if it := b.findItem(parts, sc); it != nil {
			return b.whole(it.rel)
		}
		return value{}
	}
	switch len(parts) {
	case 1:
		return b.unqualified(parts[0], sc)
	case 2:
		if it := findItemQuiet("", parts[0], sc); it != nil {
			return b.inItem(it, parts[1], text)
		}
		// a.b where a is a column of a composite type.
		v := b.unqualified(parts[0], sc)
		v.direct = false
		return v
	case 3:
		if it := findItemQuiet(parts[0], parts[1], sc); it != nil {
			return b.inItem(it, parts[2], text)
		}
		if it := findItemQuiet("", parts[0], sc); it != nil {
			v := b.inItem(it, parts[1], parts[0]+"."+parts[1])
			v.direct = false
			return v
		}
	}
	b.unresolve(fmt.Sprintf("column reference %s does not resolve", text))
	return value{}
}

// inItem binds a column of a relation named by a qualifier.
func (b *binder) inItem(it *foundItem, name, text string) value {
	if it.ambiguous {
		b.unresolve(fmt.Sprintf("table reference in %s is ambiguous", text))
	}
	known, maybe, unknown := it.item.rel.lookup(name)
	switch {
	case len(known) == 1:
		return known[0]
	case len(known) > 1:
		b.unresolve(fmt.Sprintf("column reference %s is ambiguous", text))
		return combine(known)
	}
	for _, w := range unknown {
		b.unresolve(fmt.Sprintf("column %s: the columns of %s are unknown", text, w))
	}
	if len(maybe) == 0 && len(unknown) == 0 {
		b.unresolve(fmt.Sprintf("column %s does not exist", text))
	}
	return combine(maybe)
}

// unqualified binds a bare name, as PostgreSQL does: a column of the
// innermost query level that has one, else a whole-row reference to a
// relation of that name. A level whose open relations might have the
// column does not stop the search; every place it might bind contributes.
func (b *binder) unqualified(name string, sc *scope) value {
	var cands []value
	unsure := false
	for s := sc; s != nil; s = s.up {
		var known, maybe []value
		for _, it := range s.items {
			if !it.colsVisible {
				continue
			}
			k, m, u := it.rel.lookup(name)
			known, maybe = append(known, k...), append(maybe, m...)
			for _, w := range u {
				unsure = true
				b.unresolve(fmt.Sprintf("column %q may belong to %s, whose columns are unknown", name, w))
			}
		}
		if len(known) > 1 {
			b.unresolve(fmt.Sprintf("column reference %q is ambiguous", name))
		}
		if len(known) > 0 {
			return combine(append(cands, known...))
		}
		cands = append(cands, maybe...)
	}
	if it := findItemQuiet("", name, sc); it != nil {
		if it.ambiguous {
			b.unresolve(fmt.Sprintf("table reference %q is ambiguous", name))
		}
		cands = append(cands, b.whole(it.item.rel))
	} else if len(cands) == 0 && !unsure {
		b.unresolve(fmt.Sprintf("column %q does not exist", name))
	}
	return combine(cands)
}

// localColumn reports whether name is certainly (known) or possibly
// (maybe) a column of this query level, without recording anything.
func localColumn(name string, sc *scope) (known, maybe bool) {
	for _, it := range sc.items {
		if !it.colsVisible {
			continue
		}
		k, m, u := it.rel.lookup(name)
		known = known || len(k) > 0
		maybe = maybe || len(m)+len(u) > 0
	}
	return known, maybe
}

// expr binds an expression and returns its value. Clauses that only
// decide which rows exist (FILTER, ORDER BY in aggregates, windows) go to
// the filters instead; everything else feeds the value.
func (b *binder) expr(n *pg_query.Node, sc *scope) value {
	if n == nil {
		return value{}
	}
	return b.exprMsg(unwrapNode(n), sc)
}

func (b *binder) exprMsg(m proto.Message, sc *scope) value {
	if m == nil || !m.ProtoReflect().IsValid() || b.spent() {
		return value{}
	}
	switch n := m.(type) {
	case *pg_query.Node:
		return b.expr(n, sc)
	case *pg_query.ColumnRef:
		return b.columnRef(n, sc)
	case *pg_query.SubLink:
		return b.subLink(n, sc)
	case *pg_query.FuncCall:
		return b.funcCall(n, sc)
	case *pg_query.WindowDef:
		b.window(n, sc)
		return value{}
	case *pg_query.RowExpr:
		v := b.children(n, sc)
		v.row = true
		return v
	case *pg_query.RangeVar, *pg_query.RangeSubselect, *pg_query.RangeFunction, *pg_query.JoinExpr,
		*pg_query.RangeTableFunc, *pg_query.JsonTable, *pg_query.RangeTableSample:
		b.unresolve(fmt.Sprintf("%s inside an expression is not supported", nodeName(m)))
		return value{}
	}
	if isStatement(m) {
		b.unresolve(fmt.Sprintf("%s inside an expression is not supported", nodeName(m)))
		return value{}
	}
	return b.children(m, sc)
}

// children combines the values of every message field of m.
func (b *binder) children(m proto.Message, sc *scope) value {
	var v value
	pm := m.ProtoReflect()
	fields := pm.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !pm.Has(fd) || (fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind) {
			continue
		}
		switch {
		case fd.IsList():
			list := pm.Get(fd).List()
			for j := 0; j < list.Len(); j++ {
				v = v.with(b.exprMsg(list.Get(j).Message().Interface(), sc))
			}
		case fd.IsMap():
			pm.Get(fd).Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				v = v.with(b.exprMsg(mv.Message().Interface(), sc))
				return true
			})
		default:
			v = v.with(b.exprMsg(pm.Get(fd).Message().Interface(), sc))
		}
	}
	return v
}

// subLink binds a subquery used as a value. A plain scalar subquery keeps
// its single output's lineage (and Direct); any other kind combines every
// output and the tested expression.
func (b *binder) subLink(n *pg_query.SubLink, sc *scope) value {
	test := b.expr(n.Testexpr, sc)
	outs := b.query(unwrapNode(n.Subselect), sc)
	if n.SubLinkType == pg_query.SubLinkType_EXPR_SUBLINK && n.Testexpr == nil && len(outs) == 1 {
		return outs[0].v
	}
	v := test
	for _, o := range outs {
		v = v.with(o.v)
	}
	v.direct = false
	return v
}

// funcCall binds a function or aggregate call: its arguments feed the
// value; FILTER, ORDER BY (except in WITHIN GROUP, whose ORDER BY is the
// argument) and the window decide which rows it sees.
func (b *binder) funcCall(n *pg_query.FuncCall, sc *scope) value {
	var v value
	for _, a := range n.Args {
		v = v.with(b.expr(a, sc))
	}
	for _, o := range n.AggOrder {
		if n.AggWithinGroup {
			v = v.with(b.expr(o, sc))
		} else {
			b.filter(b.expr(o, sc))
		}
	}
	b.filter(b.expr(n.AggFilter, sc))
	if n.Over != nil {
		b.window(n.Over, sc)
	}
	return v
}

func (b *binder) window(w *pg_query.WindowDef, sc *scope) {
	for _, n := range w.PartitionClause {
		b.filter(b.expr(n, sc))
	}
	for _, n := range w.OrderClause {
		b.filter(b.expr(n, sc))
	}
	b.filter(b.expr(w.StartOffset, sc))
	b.filter(b.expr(w.EndOffset, sc))
}

// orderBy records ORDER BY items, which may name output columns by name or
// position.
func (b *binder) orderBy(list []*pg_query.Node, sc *scope, outs []column) {
	for _, n := range list {
		if sb := n.GetSortBy(); sb != nil {
			n = sb.Node
		}
		b.filter(b.outputOrExpr(n, sc, outs))
	}
}

// outputOrExpr binds an ORDER BY or DISTINCT ON item with PostgreSQL's
// SQL92 rules: an integer is an output position, a bare name an output
// column when one has that name, anything else an expression.
func (b *binder) outputOrExpr(n *pg_query.Node, sc *scope, outs []column) value {
	if k, ok := position(n); ok {
		return b.outputAt(outs, k)
	}
	if name, ok := bareName(n); ok {
		if v, ok := outputNamed(outs, name); ok {
			return v
		}
	}
	return b.expr(n, sc)
}

// groupBy records GROUP BY items: an integer is an output position; a bare
// name is an input column of this level first, else an output column.
func (b *binder) groupBy(list []*pg_query.Node, sc *scope, outs []column) {
	for _, n := range list {
		if gs := n.GetGroupingSet(); gs != nil {
			b.groupBy(gs.Content, sc, outs)
			continue
		}
		if k, ok := position(n); ok {
			b.filter(b.outputAt(outs, k))
			continue
		}
		if name, ok := bareName(n); ok {
			if v, ok := outputNamed(outs, name); ok {
				known, maybe := localColumn(name, sc)
				if !known {
					// An output column, unless a relation whose columns
					// are unknown has one of that name: then either.
					b.filter(v)
					if maybe {
						b.filter(b.expr(n, sc))
					}
					continue
				}
			}
		}
		b.filter(b.expr(n, sc))
	}
}

func position(n *pg_query.Node) (int, bool) {
	c := n.GetAConst()
	if c == nil || c.GetIval() == nil {
		return 0, false
	}
	return int(c.GetIval().Ival), true
}

func bareName(n *pg_query.Node) (string, bool) {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) != 1 {
		return "", false
	}
	s := cr.Fields[0].GetString_()
	if s == nil {
		return "", false
	}
	return s.Sval, true
}

func (b *binder) outputAt(outs []column, k int) value {
	if k < 1 || k > len(outs) {
		b.unresolve(fmt.Sprintf("position %d is not in the select list", k))
		return value{}
	}
	return outs[k-1].v
}

func outputNamed(outs []column, name string) (value, bool) {
	var vs []value
	for _, o := range outs {
		if o.name == name {
			vs = append(vs, o.v)
		}
	}
	return combine(vs), len(vs) > 0
}

// assigned collects, per target column, the values a write stores in it;
// spill holds values whose target column is unknown.
type assigned struct {
	cols  map[string]value
	spill value
}

func (a *assigned) add(name string, v value) {
	if a.cols == nil {
		a.cols = map[string]value{}
	}
	a.cols[name] = a.cols[name].with(v)
}

func (a *assigned) get(name string) value { return a.cols[name].with(a.spill) }

// after is the target relation as RETURNING sees it: each written column
// also carries what was written into it.
func (a *assigned) after(r *rel) *rel {
	if len(a.cols) == 0 && len(a.spill.src) == 0 {
		return r
	}
	out := &rel{system: r.system, cols: slices.Clone(r.cols)}
	for i, c := range out.cols {
		if w := a.get(c.name); len(w.src) > 0 {
			out.cols[i].v = c.v.with(w)
		}
	}
	for _, o := range r.open {
		out.open = append(out.open, a.open(o, true))
	}
	return out
}

// excluded is ON CONFLICT's EXCLUDED row: only what the INSERT proposed.
func (a *assigned) excluded(r *rel) *rel {
	out := &rel{}
	for _, c := range r.cols {
		out.cols = append(out.cols, column{name: c.name, v: a.get(c.name)})
	}
	for _, o := range r.open {
		out.open = append(out.open, a.open(o, false))
	}
	return out
}

func (a *assigned) open(o *openRel, keep bool) *openRel {
	all := a.spill
	for _, v := range a.cols {
		all = all.with(v)
	}
	var whole *value
	if o.whole != nil || !keep {
		w := all
		if keep {
			w = w.with(*o.whole)
		}
		whole = &w
	}
	return &openRel{what: o.what, whole: whole, column: func(name string) (value, bool) {
		v, ok := value{}, true
		if keep {
			v, ok = o.column(name)
		}
		if w := a.get(name); len(w.src) > 0 {
			v = v.with(w)
		}
		return v, ok
	}}
}

// set binds an UPDATE-style SET list: each value is copied into storage.
func (b *binder) set(list []*pg_query.Node, sc *scope, a *assigned) {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			b.unresolve("this SET item is not supported")
			continue
		}
		v := b.expr(rt.Val, sc)
		for _, i := range rt.Indirection {
			// SET col[i] = x, SET col.field = x: which part is written.
			v = v.with(b.expr(i, sc))
		}
		b.copies(v)
		a.add(rt.Name, v)
	}
}

// insertColumns names the target columns of an INSERT: its column list, or
// every column of the table; ok is false when they are unknown.
func insertColumns(list []*pg_query.Node, target *rel) (names []string, ok bool) {
	if len(list) == 0 {
		for _, c := range target.cols {
			names = append(names, c.name)
		}
		return names, len(target.open) == 0
	}
	for _, n := range list {
		if rt := n.GetResTarget(); rt != nil {
			names = append(names, rt.Name)
		}
	}
	return names, true
}

func (b *binder) insertValues(names []string, known bool, i int, v value, a *assigned) {
	b.copies(v)
	switch {
	case i < len(names):
		a.add(names[i], v)
	case known:
		b.unresolve("INSERT has more expressions than target columns")
		a.spill = a.spill.with(v)
	default:
		a.spill = a.spill.with(v)
	}
}

func (b *binder) insertStmt(s *pg_query.InsertStmt, parent *scope) []column {
	ctes := b.with(s.WithClause, parent)
	target := b.rangeVar(s.Relation, nil)
	names, known := insertColumns(s.Cols, target.rel)
	var a assigned
	if sel := s.SelectStmt.GetSelectStmt(); sel != nil {
		for i, o := range b.selectStmt(sel, &scope{up: parent, ctes: ctes}) {
			b.insertValues(names, known, i, o.v, &a)
		}
	}
	if oc := s.OnConflictClause; oc != nil {
		self := &scope{items: []nsItem{target}, up: parent, ctes: ctes}
		if inf := oc.Infer; inf != nil {
			// Whether a row conflicts tells whether a value exists.
			for _, n := range inf.IndexElems {
				if ie := n.GetIndexElem(); ie != nil && ie.Name != "" {
					b.filter(b.unqualified(ie.Name, self))
				} else if ie != nil {
					b.filter(b.expr(ie.Expr, self))
				}
			}
			b.filter(b.expr(inf.WhereClause, self))
		}
		if oc.Action == pg_query.OnConflictAction_ONCONFLICT_UPDATE {
			excluded := nsItem{name: "excluded", relVisible: true, colsVisible: true, rel: a.excluded(target.rel)}
			sc := &scope{items: []nsItem{target, excluded}, up: parent, ctes: ctes}
			b.set(oc.TargetList, sc, &a)
			b.filter(b.expr(oc.WhereClause, sc))
		}
	}
	target.rel = a.after(target.rel)
	return b.targets(s.ReturningList, &scope{items: []nsItem{target}, up: parent, ctes: ctes})
}

func (b *binder) updateStmt(s *pg_query.UpdateStmt, parent *scope) []column {
	ctes := b.with(s.WithClause, parent)
	lvl := &scope{items: []nsItem{b.rangeVar(s.Relation, nil)}, up: parent, ctes: ctes}
	for _, n := range s.FromClause {
		lvl.items = append(lvl.items, b.fromItem(n, lvl)...)
	}
	var a assigned
	b.set(s.TargetList, lvl, &a)
	b.filter(b.expr(s.WhereClause, lvl))
	items := slices.Clone(lvl.items)
	items[0].rel = a.after(items[0].rel)
	return b.targets(s.ReturningList, &scope{items: items, up: parent, ctes: ctes})
}

func (b *binder) deleteStmt(s *pg_query.DeleteStmt, parent *scope) []column {
	ctes := b.with(s.WithClause, parent)
	lvl := &scope{items: []nsItem{b.rangeVar(s.Relation, nil)}, up: parent, ctes: ctes}
	for _, n := range s.UsingClause {
		lvl.items = append(lvl.items, b.fromItem(n, lvl)...)
	}
	b.filter(b.expr(s.WhereClause, lvl))
	return b.targets(s.ReturningList, lvl)
}

func (b *binder) mergeStmt(s *pg_query.MergeStmt, parent *scope) []column {
	ctes := b.with(s.WithClause, parent)
	target := b.rangeVar(s.Relation, nil)
	source := b.fromItem(s.SourceRelation, &scope{up: parent, ctes: ctes})
	both := &scope{items: slices.Concat([]nsItem{target}, source), up: parent, ctes: ctes}
	b.filter(b.expr(s.JoinCondition, both))
	var a assigned
	for _, n := range s.MergeWhenClauses {
		wc := n.GetMergeWhenClause()
		if wc == nil {
			b.unresolve("this MERGE clause is not supported")
			continue
		}
		sc := both
		switch wc.MatchKind {
		case pg_query.MergeMatchKind_MERGE_WHEN_NOT_MATCHED_BY_SOURCE:
			sc = &scope{items: []nsItem{target}, up: parent, ctes: ctes}
		case pg_query.MergeMatchKind_MERGE_WHEN_NOT_MATCHED_BY_TARGET:
			sc = &scope{items: source, up: parent, ctes: ctes}
		}
		b.filter(b.expr(wc.Condition, sc))
		switch wc.CommandType {
		case pg_query.CmdType_CMD_UPDATE:
			b.set(wc.TargetList, sc, &a)
		case pg_query.CmdType_CMD_INSERT:
			names, known := insertColumns(wc.TargetList, target.rel)
			for i, e := range wc.Values {
				b.insertValues(names, known, i, b.expr(e, sc), &a)
			}
		}
	}
	target.rel = a.after(target.rel)
	return b.targets(s.ReturningList, &scope{items: slices.Concat([]nsItem{target}, source), up: parent, ctes: ctes})
}

// colName is the output column name PostgreSQL would choose for an
// expression without an alias (FigureColname), for the common forms.
func colName(n *pg_query.Node) string {
	switch v := unwrapNode(n).(type) {
	case *pg_query.ColumnRef:
		if k := len(v.Fields); k > 0 {
			if s := v.Fields[k-1].GetString_(); s != nil {
				return s.Sval
			}
		}
	case *pg_query.A_Indirection:
		for i := len(v.Indirection) - 1; i >= 0; i-- {
			if s := v.Indirection[i].GetString_(); s != nil {
				return s.Sval
			}
		}
		return colName(v.Arg)
	case *pg_query.FuncCall:
		if k := len(v.Funcname); k > 0 {
			if s := v.Funcname[k-1].GetString_(); s != nil {
				return s.Sval
			}
		}
	case *pg_query.A_Expr:
		if v.Kind == pg_query.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif"
		}
	case *pg_query.TypeCast:
		if name := colName(v.Arg); name != "?column?" {
			return name
		}
		if v.TypeName != nil {
			if names := stringList(v.TypeName.Names); len(names) > 0 {
				return names[len(names)-1]
			}
		}
	case *pg_query.CollateClause:
		return colName(v.Arg)
	case *pg_query.SubLink:
		switch v.SubLinkType {
		case pg_query.SubLinkType_EXISTS_SUBLINK:
			return "exists"
		case pg_query.SubLinkType_ARRAY_SUBLINK:
			return "array"
		case pg_query.SubLinkType_EXPR_SUBLINK:
			if sel := v.Subselect.GetSelectStmt(); sel != nil && len(sel.TargetList) == 1 {
				if rt := sel.TargetList[0].GetResTarget(); rt != nil {
					if rt.Name != "" {
						return rt.Name
					}
					return colName(rt.Val)
				}
			}
		}
	case *pg_query.CaseExpr:
		return "case"
	case *pg_query.A_ArrayExpr:
		return "array"
	case *pg_query.RowExpr:
		return "row"
	case *pg_query.CoalesceExpr:
		return "coalesce"
	case *pg_query.MinMaxExpr:
		if v.Op == pg_query.MinMaxOp_IS_LEAST {
			return "least"
		}
		return "greatest"
	case *pg_query.GroupingFunc:
		return "grouping"
	case *pg_query.MergeSupportFunc:
		return "merge_action"
	case *pg_query.SQLValueFunction:
		return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(v.Op.String(), "SVFOP_"), "_N"))
	case *pg_query.XmlExpr:
		if v.Op != pg_query.XmlExprOp_IS_DOCUMENT {
			return strings.ToLower(strings.TrimPrefix(v.Op.String(), "IS_"))
		}
	case *pg_query.XmlSerialize:
		return "xmlserialize"
	}
	return "?column?"
}
