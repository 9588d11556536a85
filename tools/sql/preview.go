package sql

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/warden-mcp/warden"
)

// The write preview. For an INSERT, UPDATE or DELETE an approval rule
// holds, warden runs the judged statement — the deparsed, schema-qualified
// text the executor would run, with the same parameters, on a connection
// with the same session settings and statement timeout — in a REPEATABLE
// READ transaction that it always rolls back, and shows the rows it
// affected before and after.
//
// PostgreSQL 15 has no RETURNING OLD, so the statement is rewritten on its
// parse tree to return the images itself, and nothing else changes:
//
//	UPDATE t SET ... FROM f WHERE w
//	  → UPDATE t SET ... FROM f,
//	      (SELECT o.tableoid AS warden_oid, o.ctid AS warden_ctid, o AS warden_row FROM t o) warden_old
//	    WHERE (w) AND warden_old.warden_oid = t.tableoid AND warden_old.warden_ctid = t.ctid
//	    RETURNING warden_old.warden_oid, warden_old.warden_ctid, (warden_old.warden_row).*, t.*
//
// The self-join on (tableoid, ctid) matches each target row with exactly
// the version of itself the UPDATE read (same snapshot, one row per
// physical tuple), so it neither adds nor removes affected rows and the
// old images are exactly the rows before the change. The subquery's
// column names cannot clash with the statement's unqualified column
// references (a plain second FROM item for t would make them ambiguous).
// The join reads the whole target table, which the statement timeout
// bounds. DELETE returns its
// (old) rows with tableoid and ctid directly; INSERT returns the new rows.
//
// The digest binds an approval to that row set: SHA-256 over the number of
// rows and, for UPDATE and DELETE, each affected row's (tableoid, ctid)
// and masked before-image. Any change to an affected row gives it a new
// ctid, and a row that starts or stops matching changes the set, so the
// digest changes; no raw masked value enters it. For INSERT it covers the
// number of rows only (the values come from the call, which the approval
// already binds, and volatile defaults such as now() differ on every run).
//
// When the approved call runs, the same rewritten statement runs first in
// the executing REPEATABLE READ transaction, under a savepoint rolled back
// at once; the real statement then runs on the same snapshot only if the
// digest is unchanged, and a concurrent change to an affected row after
// that snapshot makes PostgreSQL refuse the write (serialization failure),
// which warden reports the same way.
//
// A rollback undoes everything a statement does to tables, but not
// sequences, notifications, advisory locks, foreign or dblink servers or
// whatever granted code does. So only statements that call pg_catalog
// built-ins on the allow-list (functions_allowed.txt: none of those),
// read and write only tables (no views, foreign tables), write relations
// without user triggers or rules (nor tables a cascade reaches), and do
// not draw a sequence default (INSERT into a table with a serial or
// identity column) are previewed; anything else says why it was not.

// ruleDigest names refusals of an approved call whose rows changed.
const ruleDigest = "sql.preview"

// maxPreviewScan bounds the rows a preview reads for its count and digest
// (the statement timeout bounds the time).
const maxPreviewScan = 1_000_000

// previewForm is the statement rewritten to return what a preview needs.
type previewForm struct {
	sql    string
	kind   string
	target string // "schema.table"
	inh    bool
	// ids is set when the first two columns are tableoid and ctid;
	// before/after say which images follow.
	ids, before, after bool
}

// Preview implements warden.Previewer.
func (q *Query) Preview(ctx context.Context, a *warden.Action) (*warden.WritePreview, error) {
	p, ok := a.Plan.(*queryPlan)
	if !ok || p.refusal != nil || p.readOnly {
		return nil, nil
	}
	switch a.Kind {
	case warden.VerbInsert, warden.VerbUpdate, warden.VerbDelete, warden.VerbMerge:
	default:
		return nil, nil
	}
	pv, _, err := p.backend.preview(ctx, p, a, nil)
	return pv, err
}

// notPreviewed is a preview that was not run, and why.
func notPreviewed(why string) *warden.WritePreview {
	return &warden.WritePreview{NotPreviewed: why}
}

// rewriteForPreview returns the preview form of p, or a reason it has none.
func rewriteForPreview(statement string) (*previewForm, string) {
	tree, err := pg_query.Parse(statement)
	if err != nil || len(tree.Stmts) != 1 {
		return nil, "the statement could not be parsed again for the preview"
	}
	const old = "warden_old"
	f := &previewForm{}
	var extra string
	switch s := tree.Stmts[0].Stmt.Node.(type) {
	case *pg_query.Node_UpdateStmt:
		u := s.UpdateStmt
		if modifiesInWith(u.WithClause) {
			return nil, "data-modifying WITH clauses are not previewed"
		}
		rv := u.Relation
		f.kind, f.target, f.inh, f.ids, f.before, f.after = "update", rv.Schemaname+"."+rv.Relname, rv.Inh, true, true, true
		ref := refName(rv)
		only := "ONLY "
		if rv.Inh {
			only = ""
		}
		// A subquery whose column names cannot clash with the statement's
		// unqualified column references.
		self, err := parseFrom(fmt.Sprintf("(SELECT o.tableoid AS warden_oid, o.ctid AS warden_ctid, o AS warden_row FROM %s%s o) %s",
			only, pgx.Identifier{rv.Schemaname, rv.Relname}.Sanitize(), old))
		if err != nil {
			return nil, "the statement could not be rewritten for the preview"
		}
		u.FromClause = append(u.FromClause, self)
		join, err := parseWhere(fmt.Sprintf("%[1]s.warden_oid OPERATOR(pg_catalog.=) %[2]s.tableoid AND %[1]s.warden_ctid OPERATOR(pg_catalog.=) %[2]s.ctid", old, ref))
		if err != nil {
			return nil, "the statement could not be rewritten for the preview"
		}
		if u.WhereClause != nil {
			join = pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, []*pg_query.Node{u.WhereClause, join}, 0)
		}
		u.WhereClause = join
		extra = fmt.Sprintf("%[1]s.warden_oid::pg_catalog.text, %[1]s.warden_ctid::pg_catalog.text, (%[1]s.warden_row).*, %[2]s.*", old, ref)
		if u.ReturningList, err = parseTargets(extra); err != nil {
			return nil, "the statement could not be rewritten for the preview"
		}
	case *pg_query.Node_DeleteStmt:
		d := s.DeleteStmt
		if modifiesInWith(d.WithClause) {
			return nil, "data-modifying WITH clauses are not previewed"
		}
		rv := d.Relation
		f.kind, f.target, f.inh, f.ids, f.before = "delete", rv.Schemaname+"."+rv.Relname, rv.Inh, true, true
		ref := refName(rv)
		if d.ReturningList, err = parseTargets(fmt.Sprintf("%[1]s.tableoid::pg_catalog.text, %[1]s.ctid::pg_catalog.text, %[1]s.*", ref)); err != nil {
			return nil, "the statement could not be rewritten for the preview"
		}
	case *pg_query.Node_InsertStmt:
		in := s.InsertStmt
		if modifiesInWith(in.WithClause) {
			return nil, "data-modifying WITH clauses are not previewed"
		}
		if in.OnConflictClause != nil {
			return nil, "INSERT … ON CONFLICT is not previewed"
		}
		rv := in.Relation
		f.kind, f.target, f.inh, f.after = "insert", rv.Schemaname+"."+rv.Relname, false, true
		if in.ReturningList, err = parseTargets(refName(rv) + ".*"); err != nil {
			return nil, "the statement could not be rewritten for the preview"
		}
	case *pg_query.Node_MergeStmt:
		return nil, "MERGE is not previewed (PostgreSQL 15 cannot return the rows it changes)"
	default:
		return nil, "only INSERT, UPDATE and DELETE are previewed"
	}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return nil, "the statement could not be rewritten for the preview"
	}
	f.sql = out
	return f, ""
}

func refName(rv *pg_query.RangeVar) string {
	if rv.Alias != nil && rv.Alias.Aliasname != "" {
		return pgx.Identifier{rv.Alias.Aliasname}.Sanitize()
	}
	return pgx.Identifier{rv.Schemaname, rv.Relname}.Sanitize()
}

func modifiesInWith(w *pg_query.WithClause) bool {
	if w == nil {
		return false
	}
	for _, c := range w.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil || cte.Ctequery.GetSelectStmt() == nil {
			return true
		}
	}
	return false
}

func parseFrom(item string) (*pg_query.Node, error) {
	tree, err := pg_query.Parse("SELECT 1 FROM " + item)
	if err != nil {
		return nil, err
	}
	return tree.Stmts[0].Stmt.GetSelectStmt().FromClause[0], nil
}

func parseWhere(expr string) (*pg_query.Node, error) {
	tree, err := pg_query.Parse("SELECT 1 WHERE " + expr)
	if err != nil {
		return nil, err
	}
	return tree.Stmts[0].Stmt.GetSelectStmt().WhereClause, nil
}

func parseTargets(list string) ([]*pg_query.Node, error) {
	tree, err := pg_query.Parse("SELECT " + list)
	if err != nil {
		return nil, err
	}
	return tree.Stmts[0].Stmt.GetSelectStmt().TargetList, nil
}

// unsafeFunctions returns the first function the statement calls whose
// effects a rollback may not undo, or "".
func unsafeFunctions(p *queryPlan, fns []string) string {
	for _, f := range fns {
		name, ok := strings.CutPrefix(f, "pg_catalog.")
		if !ok || !allowedFunction(name) {
			return f
		}
	}
	return ""
}

// relationCheck finds relations that make a rollback unsound: views and
// foreign tables anywhere; user triggers, rules or (for kind insert) a
// sequence-drawing default on the written relations, their partitions and
// children, and the tables a foreign key cascade reaches from them.
const relationCheck = `
WITH RECURSIVE w(oid) AS (
	SELECT pg_catalog.to_regclass(x) FROM pg_catalog.unnest($1::pg_catalog.text[]) x
	UNION
	SELECT x.oid FROM w, LATERAL (
		SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) w.oid
		UNION ALL
		SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.confrelid OPERATOR(pg_catalog.=) w.oid AND k.contype OPERATOR(pg_catalog.=) 'f'
	) x(oid)
), r(oid) AS (
	SELECT pg_catalog.to_regclass(x) FROM pg_catalog.unnest($2::pg_catalog.text[]) x
)
SELECT c.oid::pg_catalog.regclass::pg_catalog.text,
	CASE
	WHEN c.relkind OPERATOR(pg_catalog.=) 'f' THEN 'is a foreign table'
	WHEN c.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['r','p','m']::pg_catalog."char"[]) THEN 'is not a table'
	WHEN c.oid IN (SELECT oid FROM w) AND c.relhasrules THEN 'has rewrite rules'
	WHEN c.oid IN (SELECT oid FROM w) AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid AND NOT t.tgisinternal)
		THEN 'has triggers (code warden cannot see)'
	WHEN $3 AND c.oid IN (SELECT oid FROM w) AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
		AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND a.attidentity OPERATOR(pg_catalog.<>) '')
		THEN 'has an identity column (a sequence a rollback does not rewind)'
	WHEN $3 AND c.oid IN (SELECT oid FROM w) AND EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) c.oid
		AND pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.~) 'nextval')
		THEN 'has a nextval default (a sequence a rollback does not rewind)'
	END
FROM pg_catalog.pg_class c
WHERE c.oid IN (SELECT oid FROM w UNION SELECT oid FROM r)
ORDER BY 1`

// relations splits the action's relation ops into written and read
// relations, as regclass text.
func relations(a *warden.Action) (written, read []string, missing bool) {
	for _, op := range a.Ops {
		schema, name, ok := strings.Cut(op.Object, ".")
		if !ok {
			continue
		}
		id := pgx.Identifier{schema, name}.Sanitize()
		switch op.Verb {
		case warden.VerbInsert, warden.VerbUpdate, warden.VerbDelete, warden.VerbMerge:
			written = append(written, id)
		case warden.VerbSelect:
			read = append(read, id)
		case warden.VerbExecute:
		default:
			missing = true
		}
	}
	return written, read, missing
}

// preview runs p's preview form in a transaction it rolls back, or, with
// tx set (the executing transaction), under a savepoint it rolls back.
// It returns the preview (NotPreviewed set when the statement is not
// previewed) and whether the digest can bind the call.
func (b *Backend) preview(ctx context.Context, p *queryPlan, a *warden.Action, tx pgx.Tx) (*warden.WritePreview, bool, error) {
	if f := unsafeFunctions(p, a.Functions); f != "" {
		return notPreviewed(fmt.Sprintf("it calls %s, which is not on the allow-list of built-ins whose effects a rollback undoes (sequences, notifications, advisory locks, dblink are not)", f)), false, nil
	}
	if p.callsCode {
		return notPreviewed("it calls granted functions, code warden cannot see, whose effects a rollback may not undo"), false, nil
	}
	form, why := rewriteForPreview(p.statement)
	if form == nil {
		return notPreviewed(why), false, nil
	}
	written, read, other := relations(a)
	if other {
		return notPreviewed("it does more than read and write tables"), false, nil
	}
	if tx == nil {
		conn, release, err := b.acquire(ctx, p)
		if err != nil {
			return nil, false, err
		}
		defer release()
		tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadWrite})
		if err != nil {
			return nil, false, b.unavailable(err)
		}
		// Always rolled back: nothing the preview did takes effect.
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	} else {
		if _, err := tx.Exec(ctx, "SAVEPOINT warden_preview"); err != nil {
			return nil, false, b.queryError(ctx, err)
		}
		defer tx.Exec(context.WithoutCancel(ctx), "ROLLBACK TO SAVEPOINT warden_preview") //nolint:errcheck
	}
	rows, err := tx.Query(ctx, relationCheck, written, read, form.kind == "insert" || strings.Contains(strings.ToUpper(p.statement), "DEFAULT"))
	if err != nil {
		return nil, false, b.queryError(ctx, err)
	}
	var rel string
	var reason *string
	var reasons []string
	if _, err := pgx.ForEachRow(rows, []any{&rel, &reason}, func() error {
		if reason != nil {
			reasons = append(reasons, rel+" "+*reason)
		}
		return nil
	}); err != nil {
		return nil, false, b.queryError(ctx, err)
	}
	if len(reasons) > 0 {
		return notPreviewed("a rollback may not undo all it does: " + strings.Join(reasons, "; ")), false, nil
	}
	pv, err := b.runPreview(ctx, tx, p, form)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			// The statement itself failed (a constraint, a type error): it
			// would fail the same way when run.
			return notPreviewed("the statement failed when previewed: " + warden.AsError(b.queryError(ctx, err)).Message), false, nil
		}
		return nil, false, b.queryError(ctx, err)
	}
	return pv, true, nil
}

func (b *Backend) runPreview(ctx context.Context, tx pgx.Tx, p *queryPlan, form *previewForm) (*warden.WritePreview, error) {
	rows, err := tx.Query(ctx, form.sql, p.params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	skip := 0
	if form.ids {
		skip = 2
	}
	width := len(fds) - skip
	if form.before && form.after {
		width /= 2
	}
	rules := p.names.rules(form.target, form.inh)
	pv := &warden.WritePreview{}
	for _, fd := range fds[skip : skip+width] {
		pv.Columns = append(pv.Columns, fd.Name)
		if rules[fd.Name] != nil {
			pv.Masked = append(pv.Masked, fd.Name)
		}
	}
	h := sha256.New()
	h.Write([]byte("warden/preview/v1\x00" + form.kind + "\x00"))
	for rows.Next() {
		if pv.Rows == maxPreviewScan {
			return nil, warden.Errorf(warden.Invalid, "the statement affects more than %d rows; it is not previewed", maxPreviewScan)
		}
		pv.Rows++
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		raw := rows.RawValues()
		image := func(off int) []*string {
			out := make([]*string, width)
			for i := range width {
				v := toJSON(vals[off+i], fds[off+i].DataTypeOID, raw[off+i])
				if r := rules[fds[off+i].Name]; r != nil && b.masker != nil {
					v = b.masker.Apply(r, v)
				} else if r != nil {
					v = "[masked]" // fail closed: never raw
				}
				out[i] = cell(v)
			}
			return out
		}
		var before, after []*string
		if form.before {
			before = image(skip)
		}
		if form.after {
			after = image(len(fds) - width)
		}
		if form.ids {
			fmt.Fprintf(h, "%v\x00%v\x00", vals[0], vals[1])
			for _, c := range before {
				if c == nil {
					h.Write([]byte{1})
				} else {
					h.Write([]byte(strconv.Quote(*c)))
				}
				h.Write([]byte{0})
			}
		}
		if pv.Rows <= warden.PreviewRowsShown {
			if before != nil {
				pv.Before = append(pv.Before, shortCells(before))
			}
			if after != nil {
				pv.After = append(pv.After, shortCells(after))
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(h, "rows=%d", pv.Rows)
	pv.Digest = hex.EncodeToString(h.Sum(nil))
	return pv, nil
}

// maxPreviewCell bounds each shown cell, in bytes: the preview is stored
// on the request and recorded. The digest covers the whole value.
const maxPreviewCell = 256

func shortCells(row []*string) []*string {
	for i, c := range row {
		if c != nil && len(*c) > maxPreviewCell {
			cut := maxPreviewCell
			for cut > 0 && (*c)[cut]&0xC0 == 0x80 {
				cut--
			}
			s := (*c)[:cut] + fmt.Sprintf("… (%d more bytes)", len(*c)-cut)
			row[i] = &s
		}
	}
	return row
}

// cell is a value as display text; nil is NULL.
func cell(v any) *string {
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		return &t
	}
	b, err := json.Marshal(v)
	if err != nil {
		s := fmt.Sprint(v)
		return &s
	}
	s := string(b)
	return &s
}

// checkDigest runs the preview in the executing transaction and refuses
// the call unless its digest is want.
func (b *Backend) checkDigest(ctx context.Context, tx pgx.Tx, p *queryPlan, a *warden.Action, want string) error {
	pv, bound, err := b.preview(ctx, p, a, tx)
	if err != nil {
		return err
	}
	if !bound || pv.Digest != want {
		return &warden.Error{Code: warden.Denied, Rule: ruleDigest,
			Message: "the rows this statement affects changed since it was approved; it did not run. Ask again: call without approval_id to request a new approval."}
	}
	return nil
}

var _ warden.Previewer = (*Query)(nil)
