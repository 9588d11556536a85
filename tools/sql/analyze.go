package sql

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/warden-mcp/warden"
)

// Names resolves unqualified names the way PostgreSQL would with the
// backend's search_path (pg_catalog implicitly first). A name that does not
// resolve to an existing object resolves to the schema PostgreSQL would
// create it in; an empty result means the name cannot be resolved, and
// Analyze refuses the statement as Invalid rather than guess.
type Names interface {
	// RelationSchema returns the schema an unqualified relation (table,
	// view, sequence) name resolves to. Analyze also uses it for the
	// objects a DDL statement creates (types, indexes, new functions).
	RelationSchema(name string) string
	// FunctionSchema returns the schema an unqualified function name
	// resolves to.
	FunctionSchema(name string) string
	// TypeSchema returns the schema an unqualified type name resolves to.
	TypeSchema(name string) string
}

// Analysis is what a statement does.
type Analysis struct {
	// Kind is the top-level kind: "select", "insert", "update", "delete",
	// "merge", "truncate", "ddl", "explain" or "explain analyze".
	Kind string
	// Ops are every operation, deduplicated and sorted by (Verb, Object).
	// Objects are "schema.name"; a schema itself is named by its bare name.
	Ops []warden.Op
	// Functions are every function called, schema-qualified, deduplicated
	// and sorted.
	Functions []string
	// ReadOnly is true when no op has a write verb; such statements run in
	// BEGIN READ ONLY.
	ReadOnly bool
	// Text is the statement that runs: deparsed from the bound tree, with
	// every relation, function, operator and type schema-qualified and
	// every masked relation replaced by its masking subquery.
	Text string
	// Masked maps result column names that carry a masked column's value
	// to a description of the mask. It is information for the agent: the
	// masking itself happened in Text.
	Masked map[string]string
	// HashParams is the number of the first of the two parameters that
	// carry the hash strategy's HMAC pads ($n+1, $n+2 after the caller's
	// n parameters), or 0 when no hash mask is used.
	HashParams int
	// Refusal, when set, refuses the call once policy has allowed it: it
	// is about masking rules, which a caller policy refuses must not learn.
	Refusal *warden.Error
}

// ruleStatement names the rule behind every refusal Analyze makes itself.
const ruleStatement = "sql.statement"

// Analyze decides what one SQL statement does, on PostgreSQL's own parse
// tree. It returns an *warden.Error: Invalid for a syntax error, an empty
// statement or a name that does not resolve; Denied (rule "sql.statement")
// for anything warden refuses outright, including every statement type it
// does not explicitly understand.
func Analyze(sql string, names Names) (*Analysis, error) {
	return bind(sql, names, -1)
}

// bind is Analyze for a call with nparams parameters (-1: unchecked): every
// $n must be one of them, and the hash masks' pads are bound after them.
func bind(sql string, names Names, nparams int) (*Analysis, error) {
	tree, err := parse(sql)
	if err != nil {
		return nil, err
	}
	switch n := len(tree.Stmts); {
	case n == 0:
		return nil, warden.Errorf(warden.Invalid, "the statement is empty; send one SQL statement")
	case n > 1:
		return nil, refused("send exactly one statement per call; found %d", n)
	}
	a := newAnalyzer(names)
	a.nparams = nparams
	kind := a.statement(unwrapNode(tree.Stmts[0].Stmt), frame{})
	if a.err == nil && kind == "" {
		a.fail(refused("this statement is not supported by warden"))
	}
	if a.err != nil {
		return nil, a.err
	}
	res := a.result(kind)
	text, err := pg_query.Deparse(tree)
	if err != nil {
		return nil, refused("warden cannot print this statement back as SQL, so it is refused")
	}
	// The judge and the executor must read the same statement: parse the
	// text that will run and require the very tree that was judged, so a
	// deparser that prints something PostgreSQL reads differently fails
	// closed instead of running unjudged.
	// tree is not read after this: sameTree may clear its positions.
	again, err := pg_query.Parse(text)
	if err != nil || !sameTree(tree, again) {
		return nil, refused("warden cannot print this statement back as SQL that reads the same, so it is refused; simplify it")
	}
	res.Text = text
	return res, nil
}

// sameTree reports whether two parse results are equal but for source
// positions. It clears the positions of both in place, as clearLocations
// does: copying them first took two thirds of its time, and a statement of
// tens of thousands of nodes spent a quarter of its analysis there.
func sameTree(a, b *pg_query.ParseResult) bool {
	clearLocations(a.ProtoReflect())
	clearLocations(b.ProtoReflect())
	return proto.Equal(a, b)
}

// clearLocations zeroes every source position in m. It also reads a type
// named pg_catalog.X as X: the deparser prints some built-in types
// unqualified (void, and the SQL-standard spellings), and on a connection
// whose search_path is pg_catalog, where warden creates no temporary
// types, the server reads X as pg_catalog.X.
func clearLocations(m protoreflect.Message) {
	if tn, ok := m.Interface().(*pg_query.TypeName); ok && len(tn.Names) == 2 && tn.Names[0].GetString_().GetSval() == "pg_catalog" {
		tn.Names = tn.Names[1:]
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.Int32Kind && (strings.HasSuffix(string(fd.Name()), "location") || fd.Name() == "stmt_len"):
			m.Clear(fd)
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				clearLocations(l.Get(i).Message())
			}
		case fd.IsMap():
		default:
			clearLocations(v.Message())
		}
		return true
	})
}

func syntaxError(err error) *warden.Error {
	var pe *parser.Error
	if !errors.As(err, &pe) {
		return warden.Wrap(warden.Internal, err, "cannot parse the statement")
	}
	msg := pe.Message
	if pe.Cursorpos > 0 {
		msg = fmt.Sprintf("%s (at character %d)", msg, pe.Cursorpos)
	}
	return &warden.Error{Code: warden.Invalid, Message: msg, Err: err}
}

func refused(format string, args ...any) *warden.Error {
	return &warden.Error{Code: warden.Denied, Rule: ruleStatement, Message: fmt.Sprintf(format, args...)}
}

// analyzer is the binder: one walk over the parse tree that resolves every
// name once, accumulates what the statement does (the ops policy judges),
// and rewrites the tree in place into the statement that runs. The first
// error wins; once set, the walk stops adding anything.
type analyzer struct {
	names Names
	// cat is the backend's catalog snapshot, when names is one: masking
	// rules, inheritance and view definitions. Nil in unit tests.
	cat *names
	// nparams is the number of parameters the call binds; -1 unchecked.
	nparams int
	// trusted is above zero while the walk is inside a view definition
	// it inlined: the view's grant covers what its body reads and calls,
	// so the body adds no ops, but it is still rewritten and masked.
	trusted int
	// target is the masked relation a write statement changes, if any.
	target *maskedTarget
	// explaining: the statement is under EXPLAIN, whose plan shows row
	// counts and estimates per partition.
	explaining bool
	// masked, hashParams and refusal become the Analysis fields.
	masked     map[string]string
	hashParams int
	refusal    *warden.Error
	ops        map[warden.Op]bool
	funcs      map[string]bool
	// changed is set whenever a DDL op is recorded, so that a DDL statement
	// whose objects went unrecognised is refused rather than let through
	// with no op to judge.
	changed bool
	err     *warden.Error
	// steps counts the nodes walked, views' inlined bodies included; see
	// maxBindSteps.
	steps int
}

// maxBindSteps bounds the work of binding one statement. A statement under
// max_statement_bytes has at most some tens of thousands of nodes, but
// inlining views multiplies them: views that each read the one below twice
// expand 2^depth times. Past the budget the statement is refused rather
// than analysed for as long as it takes.
const maxBindSteps = 500_000

func newAnalyzer(nm Names) *analyzer {
	a := &analyzer{names: nm, nparams: -1, ops: map[warden.Op]bool{}, funcs: map[string]bool{}, masked: map[string]string{}}
	a.cat, _ = nm.(*names)
	return a
}

// frame is what the walk knows about the place it is in.
type frame struct {
	// scope holds the CTE names visible here.
	scope *cteScope
	// lock: relations found here are row-locked by a FOR UPDATE/SHARE
	// clause, which needs a writable transaction.
	lock bool
	// ddl: relations found here are changed by a DDL statement rather than
	// read (the table an index is built on, a trigger's table).
	ddl bool
	// inDDL: the walk is inside a DDL statement, whose option and
	// definition nodes are walked generically.
	inDDL bool
	// returning: the walk is in a write's RETURNING list.
	returning bool
}

// cteScope is a linked list of visible CTE names, innermost first. PostgreSQL
// checks CTE names before the search_path, and only for unqualified names.
type cteScope struct {
	name string
	up   *cteScope
}

func (s *cteScope) has(name string) bool {
	for ; s != nil; s = s.up {
		if s.name == name {
			return true
		}
	}
	return false
}

func (s *cteScope) push(name string) *cteScope { return &cteScope{name: name, up: s} }

func (a *analyzer) fail(err *warden.Error) {
	if a.err == nil {
		a.err = err
	}
}

func (a *analyzer) op(verb, object string) {
	a.addOp(warden.Op{Verb: verb, Object: object})
}

func (a *analyzer) addOp(op warden.Op) {
	if op.Object != "" && a.err == nil && a.trusted == 0 {
		a.ops[op] = true
		a.changed = a.changed || op.Verb == warden.VerbDDL
	}
}

var writeOpVerbs = []string{
	warden.VerbInsert, warden.VerbUpdate, warden.VerbDelete,
	warden.VerbMerge, warden.VerbTruncate, warden.VerbDDL,
}

func (a *analyzer) result(kind string) *Analysis {
	res := &Analysis{Kind: kind, ReadOnly: true, HashParams: a.hashParams, Refusal: a.refusal}
	if len(a.masked) > 0 {
		res.Masked = a.masked
	}
	for op := range a.ops {
		res.Ops = append(res.Ops, op)
		if slices.Contains(writeOpVerbs, op.Verb) {
			res.ReadOnly = false
		}
	}
	slices.SortFunc(res.Ops, func(x, y warden.Op) int {
		if c := strings.Compare(x.Verb, y.Verb); c != 0 {
			return c
		}
		return strings.Compare(x.Object, y.Object)
	})
	for f := range a.funcs {
		res.Functions = append(res.Functions, f)
	}
	slices.Sort(res.Functions)
	return res
}

// unwrapNode returns the concrete node inside a pg_query.Node oneof, or nil.
func unwrapNode(n *pg_query.Node) proto.Message {
	if n == nil {
		return nil
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

// walk visits m and everything below it. Nodes that change what the nodes
// below them mean (statements, relations, function calls) are handled
// explicitly; everything else is walked field by field, so that nothing
// nested (a sublink in a function argument in an ORDER BY) is missed.
func (a *analyzer) walk(m proto.Message, c frame) {
	if a.err != nil || m == nil || !m.ProtoReflect().IsValid() {
		return
	}
	if a.steps++; a.steps > maxBindSteps {
		a.fail(&warden.Error{Code: warden.Invalid, Rule: "sql.size",
			Message: "the statement is too large for warden to analyse once its views are expanded; query fewer views, or the tables they read"})
		return
	}
	switch n := m.(type) {
	case *pg_query.Node:
		if rv := n.GetRangeVar(); rv != nil && !c.ddl {
			// A relation read in a FROM list: the one place a masked
			// relation can be replaced by its masking subquery.
			if repl := a.readRelation(rv, c); repl != nil {
				n.Node = repl
			}
			return
		}
		a.walk(unwrapNode(n), c)
	case *pg_query.RangeVar:
		if c.ddl {
			a.ddlRelation(n)
			return
		}
		if repl := a.readRelation(n, c); repl != nil {
			// Not in a Node, so it cannot be replaced: refuse rather
			// than read raw values.
			a.fail(refused("%s is masked and is read here in a way warden cannot mask; read it in a FROM clause", a.relationName(n)))
		}
	case *pg_query.FuncCall:
		multiUnnest := len(n.Args) > 1 && len(n.Funcname) == 1 && n.Funcname[0].GetString_().GetSval() == "unnest"
		a.call(&n.Funcname)
		if multiUnnest && len(n.Funcname) == 2 && n.Funcname[0].GetString_().GetSval() == "pg_catalog" {
			// unnest(a, b, ...) in FROM is grammar PostgreSQL recognises
			// only unqualified; on a pg_catalog-only search_path it is
			// pg_catalog's, as judged.
			n.Funcname = n.Funcname[1:]
		}
		a.walkChildren(n, c, "funcname")
	case *pg_query.A_Expr:
		switch n.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_OP_ALL:
			a.operator(&n.Name)
		}
		a.walkChildren(n, c)
	case *pg_query.SubLink:
		a.operator(&n.OperName)
		a.walkChildren(n, c)
	case *pg_query.TypeName:
		a.typeName(n)
		a.walkChildren(n, c, "names")
	case *pg_query.ParamRef:
		if a.nparams >= 0 && (n.Number < 1 || int(n.Number) > a.nparams) {
			a.fail(warden.Errorf(warden.Invalid, "the statement uses $%d but the call binds %d parameter(s); pass one value in params for each $n", n.Number, a.nparams))
		}
	case *pg_query.ColumnRef:
		a.columnRef(n)
		a.walkChildren(n, c)
	case *pg_query.ResTarget:
		if a.target != nil && c.returning {
			a.returningTarget(n)
		}
		a.walkChildren(n, c)
	case *pg_query.IntoClause:
		// SELECT ... INTO and CREATE TABLE AS both create the table.
		a.ddlRelation(n.Rel)
		c.ddl = false
		a.walkChildren(n, c, "rel")
	case *pg_query.DefElem:
		// A function's SET clause (CREATE/ALTER FUNCTION ... SET name =
		// value) holds a VariableSetStmt that applies while the function
		// runs; it is an option, not a statement run now.
		if n.Arg.GetVariableSetStmt() != nil {
			return
		}
		a.walkChildren(n, c)
	case *pg_query.ReplicaIdentityStmt:
		// ALTER TABLE ... REPLICA IDENTITY: a part of the ALTER TABLE,
		// holding only an index name.
	case *pg_query.TableLikeClause, *pg_query.Constraint:
		// CREATE TABLE (LIKE t) and REFERENCES t read t's definition and
		// rows; they do not change t.
		c.ddl = false
		c.inDDL = true
		a.walkChildren(n, c)
	default:
		if isStatement(m) {
			a.statement(m, c)
			return
		}
		if !c.inDDL && !knownNodes[string(m.ProtoReflect().Descriptor().Name())] {
			a.fail(refused("%s is not supported by warden: the binder refuses every construct it does not know", nodeDescription(m)))
			return
		}
		a.walkChildren(m, c)
	}
}

// knownNodes are the parse-tree nodes of queries and DML whose meaning the
// binder knows: it walks them field by field. Any other node in a query
// (SQL/JSON constructors that an older server would read as a function
// call, WHERE CURRENT OF, merge_action(), JSON_TABLE) is refused.
var knownNodes = map[string]bool{
	"List": true, "String": true, "Integer": true, "Float": true, "Boolean": true, "BitString": true,
	"TypeCast": true, "A_Const": true, "A_Star": true, "A_Indices": true, "A_Indirection": true, "A_ArrayExpr": true,
	"MultiAssignRef": true, "CaseExpr": true, "CaseWhen": true, "CoalesceExpr": true, "MinMaxExpr": true,
	"NullTest": true, "BooleanTest": true, "BoolExpr": true, "RowExpr": true, "SQLValueFunction": true,
	"CollateClause": true, "SortBy": true, "WindowDef": true, "RangeSubselect": true, "RangeFunction": true,
	"RangeTableSample": true, "RangeTableFunc": true, "RangeTableFuncCol": true, "JoinExpr": true,
	"Alias": true, "WithClause": true, "CommonTableExpr": true, "CTESearchClause": true,
	"CTECycleClause": true, "GroupingSet": true, "GroupingFunc": true, "LockingClause": true,
	"OnConflictClause": true, "InferClause": true, "IndexElem": true, "SetToDefault": true,
	"XmlExpr": true, "XmlSerialize": true, "MergeWhenClause": true, "NamedArgExpr": true,
}

func nodeDescription(m proto.Message) string {
	switch m.(type) {
	case *pg_query.JsonScalarExpr, *pg_query.JsonSerializeExpr, *pg_query.JsonParseExpr,
		*pg_query.JsonObjectConstructor, *pg_query.JsonArrayConstructor, *pg_query.JsonArrayQueryConstructor,
		*pg_query.JsonObjectAgg, *pg_query.JsonArrayAgg, *pg_query.JsonFuncExpr, *pg_query.JsonTable,
		*pg_query.JsonIsPredicate:
		return "SQL/JSON syntax (JSON_SCALAR, JSON_OBJECT, JSON_TABLE, IS JSON, ...)" +
			"; use the json/jsonb functions (to_json, json_build_object, jsonb_path_query)"
	case *pg_query.CurrentOfExpr:
		return "WHERE CURRENT OF"
	}
	return string(m.ProtoReflect().Descriptor().Name())
}

// walkChildren walks every populated message field of m except skip, in
// field-number order so that the first error found is deterministic.
func (a *analyzer) walkChildren(m proto.Message, c frame, skip ...protoreflect.Name) {
	pm := m.ProtoReflect()
	fields := pm.Descriptor().Fields()
	for i := 0; i < fields.Len() && a.err == nil; i++ {
		fd := fields.Get(i)
		if slices.Contains(skip, fd.Name()) || !pm.Has(fd) {
			continue
		}
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			continue
		}
		switch {
		case fd.IsList():
			list := pm.Get(fd).List()
			for j := 0; j < list.Len(); j++ {
				a.walk(list.Get(j).Message().Interface(), c)
			}
		case fd.IsMap():
			pm.Get(fd).Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
				a.walk(v.Message().Interface(), c)
				return a.err == nil
			})
		default:
			a.walk(pm.Get(fd).Message().Interface(), c)
		}
	}
}

// isStatement reports whether m is a statement node. Statements found
// anywhere in the tree go through statement, so that one nested where it
// should not be (NOTIFY in a rule, EXECUTE in CREATE TABLE AS) is refused.
func isStatement(m proto.Message) bool {
	return strings.HasSuffix(string(m.ProtoReflect().Descriptor().Name()), "Stmt")
}

// statement classifies one statement node and returns its kind ("" for a
// node that is not a statement on its own, like RETURN in a function body).
// Every statement type not named here is refused.
func (a *analyzer) statement(m proto.Message, c frame) string {
	if m == nil || a.err != nil {
		return ""
	}
	switch n := m.(type) {
	case *pg_query.SelectStmt:
		if a.selectStmt(n, c) {
			return "ddl"
		}
		return "select"
	case *pg_query.InsertStmt:
		a.insertStmt(n, c)
		return "insert"
	case *pg_query.UpdateStmt:
		a.updateStmt(n, c)
		return "update"
	case *pg_query.DeleteStmt:
		a.deleteStmt(n, c)
		return "delete"
	case *pg_query.MergeStmt:
		a.mergeStmt(n, c)
		return "merge"
	case *pg_query.TruncateStmt:
		a.truncateStmt(n)
		return "truncate"
	case *pg_query.ExplainStmt:
		return a.explainStmt(n)
	case *pg_query.ReturnStmt:
		// RETURN expr, the body of a SQL-standard function.
		a.walkChildren(n, c)
		return ""

	case *pg_query.TransactionStmt, *pg_query.ConstraintsSetStmt:
		a.fail(refused("transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET CONSTRAINTS) is not allowed: warden runs each statement in its own transaction; send the statement on its own"))
	case *pg_query.VariableSetStmt, *pg_query.VariableShowStmt:
		a.fail(refused("SET, RESET and SHOW are not allowed: warden owns session settings (search_path, statement_timeout, role); qualify names with their schema, and read a setting with SELECT current_setting('name')"))
	case *pg_query.AlterSystemStmt:
		a.fail(refused("ALTER SYSTEM is not allowed: it changes the server's configuration; ask a database administrator"))
	case *pg_query.DoStmt:
		a.fail(refused("DO blocks are not allowed: an anonymous code block can do anything and hides what it touches; send plain SQL statements"))
	case *pg_query.CallStmt:
		a.fail(refused("CALL is not allowed: a procedure can do anything, including transaction control; send plain SQL statements"))
	case *pg_query.CopyStmt:
		a.fail(refused("COPY is not allowed in any form: it moves data through files, programs or the copy protocol outside warden's result handling; use SELECT to read and INSERT to write"))
	case *pg_query.PrepareStmt, *pg_query.ExecuteStmt, *pg_query.DeallocateStmt:
		a.fail(refused("prepared statements (PREPARE, EXECUTE, DEALLOCATE) are not allowed: send the statement itself, with values in params"))
	case *pg_query.ListenStmt, *pg_query.NotifyStmt, *pg_query.UnlistenStmt:
		a.fail(refused("LISTEN, NOTIFY and UNLISTEN are not allowed: notifications outlive the call on warden's pooled connections"))
	case *pg_query.LockStmt:
		a.fail(refused("LOCK is not allowed: an explicit lock ends with warden's per-statement transaction and can block other sessions; use SELECT ... FOR UPDATE if a grant allows updates"))
	case *pg_query.VacuumStmt, *pg_query.ClusterStmt, *pg_query.ReindexStmt, *pg_query.CheckPointStmt:
		a.fail(refused("maintenance commands (VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT) are not allowed through warden; ask a database administrator"))
	case *pg_query.DiscardStmt:
		a.fail(refused("DISCARD is not allowed: warden owns session state"))
	case *pg_query.LoadStmt:
		a.fail(refused("LOAD is not allowed: it loads a shared library into the server"))
	case *pg_query.DeclareCursorStmt, *pg_query.FetchStmt, *pg_query.ClosePortalStmt:
		a.fail(refused("cursors (DECLARE, FETCH, MOVE, CLOSE) are not allowed: warden runs each statement in its own transaction; page through results with LIMIT and OFFSET"))

	case *pg_query.GrantStmt, *pg_query.GrantRoleStmt, *pg_query.AlterDefaultPrivilegesStmt:
		a.fail(adminRefused("privilege statements (GRANT, REVOKE, ALTER DEFAULT PRIVILEGES)"))
	case *pg_query.CreateRoleStmt, *pg_query.AlterRoleStmt, *pg_query.AlterRoleSetStmt, *pg_query.DropRoleStmt,
		*pg_query.DropOwnedStmt, *pg_query.ReassignOwnedStmt, *pg_query.AlterOwnerStmt:
		a.fail(adminRefused("role and ownership statements"))
	case *pg_query.CreatedbStmt, *pg_query.AlterDatabaseStmt, *pg_query.AlterDatabaseSetStmt,
		*pg_query.AlterDatabaseRefreshCollStmt, *pg_query.DropdbStmt:
		a.fail(adminRefused("database statements"))
	case *pg_query.CreateTableSpaceStmt, *pg_query.DropTableSpaceStmt, *pg_query.AlterTableSpaceOptionsStmt,
		*pg_query.AlterTableMoveAllStmt:
		a.fail(adminRefused("tablespace statements"))
	case *pg_query.CreateExtensionStmt, *pg_query.AlterExtensionStmt, *pg_query.AlterExtensionContentsStmt,
		*pg_query.AlterObjectDependsStmt:
		a.fail(adminRefused("extension statements"))
	case *pg_query.CreateFdwStmt, *pg_query.AlterFdwStmt, *pg_query.CreateForeignServerStmt,
		*pg_query.AlterForeignServerStmt, *pg_query.CreateUserMappingStmt, *pg_query.AlterUserMappingStmt,
		*pg_query.DropUserMappingStmt, *pg_query.CreateForeignTableStmt, *pg_query.ImportForeignSchemaStmt:
		a.fail(adminRefused("foreign-data statements (wrappers, servers, user mappings, foreign tables)"))
	case *pg_query.CreatePublicationStmt, *pg_query.AlterPublicationStmt, *pg_query.CreateSubscriptionStmt,
		*pg_query.AlterSubscriptionStmt, *pg_query.DropSubscriptionStmt:
		a.fail(adminRefused("replication statements (publications, subscriptions)"))
	case *pg_query.CreateEventTrigStmt, *pg_query.AlterEventTrigStmt, *pg_query.CreatePLangStmt,
		*pg_query.CreateAmStmt, *pg_query.CreateCastStmt, *pg_query.CreateTransformStmt,
		*pg_query.CreateOpClassStmt, *pg_query.CreateOpFamilyStmt, *pg_query.AlterOpFamilyStmt,
		*pg_query.SecLabelStmt:
		a.fail(adminRefused("database-wide definitions (event triggers, languages, access methods, casts, transforms, operator classes, security labels)"))

	default:
		return a.ddlStatement(m)
	}
	return ""
}

func adminRefused(what string) *warden.Error {
	return refused("%s are administrative and not allowed through warden; ask a database administrator", what)
}

// with walks the CTEs of a WITH clause and returns the frame its
// statement's body runs in. A CTE name is visible to later siblings and the
// body; with RECURSIVE, to every sibling and itself. CTE bodies run whether
// or not the body references them, so each is walked exactly once.
func (a *analyzer) with(w *pg_query.WithClause, c frame) frame {
	c.lock = false
	if w == nil {
		return c
	}
	ctes := make([]*pg_query.CommonTableExpr, 0, len(w.Ctes))
	for _, n := range w.Ctes {
		cte := n.GetCommonTableExpr()
		if cte == nil {
			a.fail(refused("this WITH clause is not supported by warden"))
			return c
		}
		ctes = append(ctes, cte)
	}
	if w.Recursive {
		for _, cte := range ctes {
			c.scope = c.scope.push(cte.Ctename)
		}
		for _, cte := range ctes {
			a.walk(cte, c)
		}
		return c
	}
	for _, cte := range ctes {
		a.walk(cte, c)
		c.scope = c.scope.push(cte.Ctename)
	}
	return c
}

// selectStmt walks a SELECT (or VALUES, or set operation) and reports
// whether it creates a table (SELECT ... INTO).
func (a *analyzer) selectStmt(s *pg_query.SelectStmt, c frame) bool {
	c.ddl, c.inDDL = false, false
	from := c
	c = a.with(s.WithClause, c)
	from.scope = c.scope
	// FOR UPDATE/SHARE locks rows of the relations in this level's FROM,
	// including subqueries in it; a locking read cannot run read-only.
	if len(s.LockingClause) > 0 {
		from.lock = true
	}
	for _, n := range s.FromClause {
		a.walk(n, from)
	}
	a.walk(s.Larg, from)
	a.walk(s.Rarg, from)
	// The locking clause names FROM items (often aliases), not relations.
	a.walkChildren(s, c, "with_clause", "from_clause", "larg", "rarg", "locking_clause")
	return selectsInto(s)
}

// selectsInto reports whether a SELECT creates a table. In a set operation
// PostgreSQL takes INTO from the leftmost branch; any branch will do here.
func selectsInto(s *pg_query.SelectStmt) bool {
	if s == nil {
		return false
	}
	return s.IntoClause != nil || selectsInto(s.Larg) || selectsInto(s.Rarg)
}

// writeTarget judges the table a DML statement writes and qualifies it in
// place. The target is never a CTE: PostgreSQL looks it up in the catalog
// only. unfiltered marks an UPDATE or DELETE without WHERE, which touches
// every row; inh that the write reaches the table's inheritance children.
func (a *analyzer) writeTarget(verb string, rv *pg_query.RangeVar, returning []*pg_query.Node, unfiltered, inh bool) string {
	name := a.relation(rv)
	if name == "" {
		return ""
	}
	a.addOp(warden.Op{Verb: verb, Object: a.judgedAs(name), Unfiltered: unfiltered})
	a.castOps(name)
	if inh && a.cat != nil {
		for _, child := range a.cat.descendants(name) {
			if a.cat.partitionRoot[child] == "" {
				a.addOp(warden.Op{Verb: verb, Object: child, Unfiltered: unfiltered})
			}
		}
	}
	if len(returning) > 0 {
		// RETURNING hands the target's rows back to the caller.
		a.relationOps([]string{warden.VerbSelect}, name, inh)
	}
	return name
}

func (a *analyzer) insertStmt(s *pg_query.InsertStmt, c frame) {
	c.ddl, c.inDDL = false, false // a query inside DDL is held to the same known-node rule
	c = a.with(s.WithClause, c)
	name := a.writeTarget(warden.VerbInsert, s.Relation, s.ReturningList, false, false)
	a.guardWrittenColumns(name, targetNames(s.Cols))
	if oc := s.OnConflictClause; oc != nil && oc.Action == pg_query.OnConflictAction_ONCONFLICT_UPDATE {
		a.op(warden.VerbUpdate, a.judgedAs(name))
	}
	a.walkChildren(s, c, "relation", "with_clause", "on_conflict_clause", "returning_list")
	// An INSERT's values come from elsewhere; only ON CONFLICT and
	// RETURNING read the target's own rows.
	a.guardTarget(s.Relation, name, false, func() {
		a.walk(s.OnConflictClause, c)
		a.walkReturning(s.ReturningList, c)
	})
}

func (a *analyzer) updateStmt(s *pg_query.UpdateStmt, c frame) {
	c.ddl, c.inDDL = false, false // a query inside DDL is held to the same known-node rule
	c = a.with(s.WithClause, c)
	name := a.writeTarget(warden.VerbUpdate, s.Relation, s.ReturningList, s.WhereClause == nil, s.Relation.GetInh())
	a.guardWrittenColumns(name, targetNames(s.TargetList))
	a.guardTarget(s.Relation, name, s.Relation.GetInh(), func() {
		a.walkChildren(s, c, "relation", "with_clause", "returning_list")
		a.walkReturning(s.ReturningList, c)
	})
}

func (a *analyzer) deleteStmt(s *pg_query.DeleteStmt, c frame) {
	c.ddl, c.inDDL = false, false // a query inside DDL is held to the same known-node rule
	c = a.with(s.WithClause, c)
	name := a.writeTarget(warden.VerbDelete, s.Relation, s.ReturningList, s.WhereClause == nil, s.Relation.GetInh())
	a.guardTarget(s.Relation, name, s.Relation.GetInh(), func() {
		a.walkChildren(s, c, "relation", "with_clause", "returning_list")
		a.walkReturning(s.ReturningList, c)
	})
}

func (a *analyzer) mergeStmt(s *pg_query.MergeStmt, c frame) {
	c.ddl, c.inDDL = false, false // a query inside DDL is held to the same known-node rule
	c = a.with(s.WithClause, c)
	name := a.writeTarget(warden.VerbMerge, s.Relation, s.ReturningList, false, s.Relation.GetInh())
	a.guardWrittenColumns(name, nil)
	a.guardTarget(s.Relation, name, s.Relation.GetInh(), func() {
		a.walkChildren(s, c, "relation", "with_clause", "returning_list")
		a.walkReturning(s.ReturningList, c)
	})
}

func (a *analyzer) walkReturning(list []*pg_query.Node, c frame) {
	c.returning = true
	for _, n := range list {
		a.walk(n, c)
	}
}

func (a *analyzer) truncateStmt(s *pg_query.TruncateStmt) {
	if s.Behavior == pg_query.DropBehavior_DROP_CASCADE {
		a.fail(cascadeRefused())
		return
	}
	for _, n := range s.Relations {
		rv := n.GetRangeVar()
		if rv == nil {
			a.fail(refused("this TRUNCATE is not supported by warden"))
			return
		}
		if name := a.relation(rv); name != "" {
			a.relationOps([]string{warden.VerbTruncate}, name, rv.Inh)
		}
	}
}

func cascadeRefused() *warden.Error {
	return refused("CASCADE is not allowed: it changes or empties objects the statement does not name; name every object explicitly")
}

// explainStmt: EXPLAIN without ANALYZE only plans the statement, so every
// relation it touches is at most looked at (and function calls are still
// judged: the planner may run them while folding constants). EXPLAIN
// ANALYZE runs it, with all its effects.
func (a *analyzer) explainStmt(s *pg_query.ExplainStmt) string {
	analyze := explainAnalyzes(s.Options)
	sub := newAnalyzer(a.names)
	sub.nparams, sub.explaining = a.nparams, true
	kind := sub.statement(unwrapNode(s.Query), frame{})
	if sub.err == nil && kind == "" {
		sub.fail(refused("EXPLAIN of this statement is not supported by warden"))
	}
	if sub.err != nil {
		a.fail(sub.err)
		return ""
	}
	for op := range sub.ops {
		if !analyze && op.Verb != warden.VerbExecute {
			op.Verb, op.Unfiltered = warden.VerbSelect, false
		}
		a.ops[op] = true
	}
	for f := range sub.funcs {
		a.funcs[f] = true
	}
	if len(sub.masked) > 0 {
		// Cost estimates come from statistics of the raw columns (a
		// scan's width is their average length): a plan over masked
		// relations shows no costs.
		s.Options = slices.DeleteFunc(s.Options, func(o *pg_query.Node) bool { return o.GetDefElem().GetDefname() == "costs" })
		s.Options = append(s.Options, pg_query.MakeSimpleDefElemNode("costs", pg_query.MakeStrNode("off"), -1))
	}
	// The inner statement was rewritten in place; what the rewrite needs
	// at execution (the hash pads, a deferred refusal) is the outer one's.
	a.hashParams = max(a.hashParams, sub.hashParams)
	if a.refusal == nil {
		a.refusal = sub.refusal
	}
	maps.Copy(a.masked, sub.masked)
	if analyze {
		return "explain analyze"
	}
	return "explain"
}

// explainAnalyzes reports whether EXPLAIN's options turn ANALYZE on. Only an
// explicit false (as PostgreSQL's defGetBoolean reads it) turns it off; any
// value warden does not understand counts as on, the stricter reading.
func explainAnalyzes(options []*pg_query.Node) bool {
	on := false
	for _, o := range options {
		d := o.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		if !explainFalse(d.Arg) {
			on = true
		}
	}
	return on
}

func explainFalse(arg *pg_query.Node) bool {
	switch v := unwrapNode(arg).(type) {
	case *pg_query.String:
		return strings.EqualFold(v.Sval, "false") || strings.EqualFold(v.Sval, "off")
	case *pg_query.Integer:
		return v.Ival == 0
	case *pg_query.Boolean:
		return !v.Boolval
	}
	return false
}

// readRelation handles a relation named where a query reads it: it is
// qualified in place, judged as a read (and, under FOR UPDATE/SHARE, a
// write) of itself and of every inheritance child it reads, and, when
// masking rules cover it, a replacement node is returned: the masking
// subquery that takes its place.
func (a *analyzer) readRelation(rv *pg_query.RangeVar, c frame) *pg_query.Node_RangeSubselect {
	if rv.Catalogname == "" && rv.Schemaname == "" && c.scope.has(rv.Relname) {
		return nil // a CTE, whose body is walked where it is defined
	}
	name := a.relation(rv)
	if name == "" {
		return nil
	}
	verbs := []string{warden.VerbSelect}
	if c.lock {
		verbs = append(verbs, warden.VerbUpdate)
	}
	a.relationOps(verbs, name, rv.Inh)
	a.guardPartitionRead(name)
	return a.maskRelation(rv, name)
}

// relationOps records verb on a relation and, when the statement reaches
// its inheritance children too (no ONLY), on each child: reading a parent
// returns its children's rows, so it needs their grants. Partitions are
// the exception: they are judged as their partitioned table, so a grant
// on that table covers them however they are reached.
func (a *analyzer) relationOps(verbs []string, name string, inh bool) {
	for _, v := range verbs {
		a.op(v, a.judgedAs(name))
	}
	a.castOps(name)
	if !inh || a.cat == nil {
		return
	}
	for _, child := range a.cat.descendants(name) {
		if a.cat.partitionRoot[child] != "" {
			continue
		}
		for _, v := range verbs {
			a.op(v, child)
		}
	}
}

// judgedAs is the object policy judges for a relation: a partition's
// partitioned root, or the relation itself.
func (a *analyzer) judgedAs(name string) string {
	if a.cat != nil {
		if root := a.cat.partitionRoot[name]; root != "" {
			return root
		}
	}
	return name
}

// ddlRelation records a DDL op on a relation the statement creates or
// changes, refusing temporary ones, and returns its name.
func (a *analyzer) ddlRelation(rv *pg_query.RangeVar) string {
	if rv == nil {
		return ""
	}
	if rv.Relpersistence == "t" || isTempSchema(rv.Schemaname) {
		a.fail(tempRefused())
		return ""
	}
	name := a.relation(rv)
	a.op(warden.VerbDDL, name)
	return name
}

func isTempSchema(schema string) bool {
	return schema == "pg_temp" || strings.HasPrefix(schema, "pg_temp_")
}

func tempRefused() *warden.Error {
	return refused("temporary objects (CREATE TEMP ..., SELECT ... INTO TEMP, anything in pg_temp) are not allowed: they would outlive the call on warden's pooled connections; use a CTE (WITH ...) for intermediate results")
}

// relation returns rv as schema.name, or "" after recording an error.
func (a *analyzer) relation(rv *pg_query.RangeVar) string {
	if rv == nil {
		a.fail(refused("this statement names no relation where one is expected"))
		return ""
	}
	if rv.Catalogname != "" {
		a.fail(crossDatabaseRefused(rv.Catalogname + "." + rv.Schemaname + "." + rv.Relname))
		return ""
	}
	name := a.qualify(rv.Schemaname, rv.Relname, a.relationSchema)
	if name != "" {
		rv.Schemaname = name[:len(name)-len(rv.Relname)-1]
	}
	return name
}

// relationName is rv as written, for messages.
func (a *analyzer) relationName(rv *pg_query.RangeVar) string {
	if rv.Schemaname != "" {
		return rv.Schemaname + "." + rv.Relname
	}
	return rv.Relname
}

func crossDatabaseRefused(name string) *warden.Error {
	return refused("cross-database names are not allowed: %q names another database; warden connects each backend to one database, so use schema.name", name)
}

func (a *analyzer) relationSchema(name string) string {
	if a.names == nil {
		return ""
	}
	return a.names.RelationSchema(name)
}

func (a *analyzer) functionSchema(name string) string {
	if a.names == nil {
		return ""
	}
	return a.names.FunctionSchema(name)
}

// qualify returns schema.name, resolving an empty schema with resolve.
func (a *analyzer) qualify(schema, name string, resolve func(string) string) string {
	if schema == "" && resolve != nil {
		schema = resolve(name)
	}
	if schema == "" {
		a.fail(warden.Errorf(warden.Invalid, "%q does not resolve to a schema on the search_path; qualify it as schema.%s", name, name))
		return ""
	}
	return schema + "." + name
}

// qualifyParts returns a dotted name list (as the parser splits it) as
// schema.name.
func (a *analyzer) qualifyParts(parts []string, resolve func(string) string) string {
	switch len(parts) {
	case 1:
		return a.qualify("", parts[0], resolve)
	case 2:
		return a.qualify(parts[0], parts[1], resolve)
	case 3:
		a.fail(crossDatabaseRefused(strings.Join(parts, ".")))
	default:
		a.fail(warden.Errorf(warden.Invalid, "improper qualified name (too many dotted names): %s", strings.Join(parts, ".")))
	}
	return ""
}

// nameStrings returns a list of String nodes as strings; ok is false for anything
// else.
func nameStrings(nodes []*pg_query.Node) (parts []string, ok bool) {
	for _, n := range nodes {
		s := n.GetString_()
		if s == nil {
			return nil, false
		}
		parts = append(parts, s.Sval)
	}
	return parts, len(parts) > 0
}

// call judges a function call and qualifies its name in place. An
// unqualified name resolves to one schema (pg_catalog first, then the
// search_path) and is sent qualified, so the server resolves overloads
// only among that schema's functions: lower(1) can never reach a
// public.lower(int). A pg_catalog function on the allow-list is only
// listed; any other function is an execute op that policy refuses unless
// a grant names it.
func (a *analyzer) call(funcname *[]*pg_query.Node) {
	parts, ok := nameStrings(*funcname)
	if !ok {
		a.fail(refused("this function call is not supported by warden"))
		return
	}
	name := a.qualifyParts(parts, a.functionSchema)
	if name == "" {
		return
	}
	schema, fn, _ := strings.Cut(name, ".")
	if len(parts) == 1 {
		*funcname = []*pg_query.Node{pg_query.MakeStrNode(schema), pg_query.MakeStrNode(fn)}
	}
	if a.trusted > 0 {
		return
	}
	a.funcs[name] = true
	if schema != "pg_catalog" || !allowedFunction(fn) {
		a.op(warden.VerbExecute, name)
	}
}

// operator judges an operator and qualifies it in place: an unqualified
// operator becomes OPERATOR(pg_catalog.op), so the server never resolves
// it to a user's operator; one qualified outside pg_catalog runs
// user-defined code and is an execute op. Operators written as keywords
// (IN, LIKE, BETWEEN, IS DISTINCT FROM) resolve on the connection's
// search_path, which holds only pg_catalog.
func (a *analyzer) operator(name *[]*pg_query.Node) {
	parts, ok := nameStrings(*name)
	if !ok {
		return
	}
	switch len(parts) {
	case 1:
		*name = []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(parts[0])}
	default:
		if q := a.qualifyParts(parts, a.functionSchema); q != "" && parts[0] != "pg_catalog" {
			a.op(warden.VerbExecute, q)
		}
	}
}

// typeName qualifies a type name in place: pg_catalog first, then the
// search_path, as PostgreSQL would.
func (a *analyzer) typeName(t *pg_query.TypeName) {
	if t.PctType {
		return // column%TYPE names a column, not a type
	}
	parts, ok := nameStrings(t.Names)
	if !ok {
		a.fail(refused("this type name is not supported by warden"))
		return
	}
	if len(parts) != 1 {
		a.castOps(a.qualifyParts(parts, nil))
		return
	}
	if name := a.qualify("", parts[0], a.typeSchema); name != "" {
		t.Names = []*pg_query.Node{pg_query.MakeStrNode(name[:len(name)-len(parts[0])-1]), pg_query.MakeStrNode(parts[0])}
		a.castOps(name)
	}
}

// castOps judges the user-defined cast functions a statement may run
// implicitly by touching a type or relation (see names.castFuncs).
func (a *analyzer) castOps(typeOrRelation string) {
	if a.cat == nil {
		return
	}
	for _, fn := range a.cat.castFuncs[typeOrRelation] {
		a.op(warden.VerbExecute, fn)
	}
}

func (a *analyzer) typeSchema(name string) string {
	if a.names == nil {
		return ""
	}
	return a.names.TypeSchema(name)
}

// ddlStatement records the objects a DDL statement creates, changes or
// drops. Objects named by a RangeVar are recorded by the walk in ddl mode,
// so a relation this code does not know about is still judged as changed,
// never as merely read; objects named by plain name lists are handled here.
func (a *analyzer) ddlStatement(m proto.Message) string {
	changed := a.changed
	a.changed = false
	c := frame{ddl: true, inDDL: true}
	switch n := m.(type) {
	case *pg_query.CreateStmt, *pg_query.CreateTableAsStmt, *pg_query.ViewStmt,
		*pg_query.CreateSeqStmt, *pg_query.AlterSeqStmt, *pg_query.RefreshMatViewStmt,
		*pg_query.CompositeTypeStmt, *pg_query.CreatePolicyStmt, *pg_query.AlterPolicyStmt,
		*pg_query.RuleStmt:
		a.walkChildren(n, c)
	case *pg_query.AlterTableStmt:
		for _, cmd := range n.Cmds {
			switch t := cmd.GetAlterTableCmd(); {
			case t == nil:
				a.fail(refused("this ALTER statement is not supported by warden"))
			case t.Subtype == pg_query.AlterTableType_AT_ChangeOwner:
				a.fail(adminRefused("role and ownership statements"))
			case t.Behavior == pg_query.DropBehavior_DROP_CASCADE:
				a.fail(cascadeRefused())
			}
		}
		a.walkChildren(n, c)
	case *pg_query.IndexStmt:
		table := a.ddlRelation(n.Relation)
		if schema, _, ok := strings.Cut(table, "."); ok && n.Idxname != "" {
			a.op(warden.VerbDDL, schema+"."+n.Idxname)
		}
		a.walkChildren(n, c, "relation")
	case *pg_query.CreateTrigStmt:
		// The trigger function runs on every future event; judge it as if
		// called now.
		a.call(&n.Funcname)
		a.walkChildren(n, c, "funcname")
	case *pg_query.CreateFunctionStmt:
		// A new function goes where new objects go, not where an existing
		// function of that name (say in pg_catalog) would resolve.
		a.ddlName(&n.Funcname, a.relationSchema)
		// A SQL-standard body (BEGIN ATOMIC, RETURN) is parsed and judged;
		// a body given as a string is data to the parser.
		a.walkChildren(n, frame{inDDL: true}, "funcname")
	case *pg_query.AlterFunctionStmt:
		a.ddlObject(pg_query.ObjectType_OBJECT_FUNCTION, &pg_query.Node{Node: &pg_query.Node_ObjectWithArgs{ObjectWithArgs: n.Func}})
		a.walkChildren(n, c, "func")
	case *pg_query.DefineStmt:
		if n.Kind == pg_query.ObjectType_OBJECT_TSPARSER || n.Kind == pg_query.ObjectType_OBJECT_TSTEMPLATE {
			a.fail(adminRefused("text search parsers and templates"))
			break
		}
		resolve := a.relationSchema
		if n.Kind == pg_query.ObjectType_OBJECT_AGGREGATE || n.Kind == pg_query.ObjectType_OBJECT_OPERATOR {
			resolve = a.functionSchema
		}
		a.ddlName(&n.Defnames, resolve)
		a.walkChildren(n, c, "defnames")
	case *pg_query.CreateEnumStmt:
		a.ddlName(&n.TypeName, a.relationSchema)
	case *pg_query.CreateRangeStmt:
		a.ddlName(&n.TypeName, a.relationSchema)
		a.walkChildren(n, c, "type_name")
	case *pg_query.AlterEnumStmt:
		a.ddlName(&n.TypeName, a.relationSchema)
	case *pg_query.AlterTypeStmt:
		a.ddlName(&n.TypeName, a.relationSchema)
		a.walkChildren(n, c, "type_name")
	case *pg_query.CreateDomainStmt:
		a.ddlName(&n.Domainname, a.relationSchema)
		a.walkChildren(n, c, "domainname")
	case *pg_query.AlterDomainStmt:
		if n.Behavior == pg_query.DropBehavior_DROP_CASCADE {
			a.fail(cascadeRefused())
			break
		}
		a.ddlName(&n.TypeName, a.relationSchema)
		a.walkChildren(n, c, "type_name")
	case *pg_query.CreateStatsStmt:
		if len(n.Defnames) > 0 {
			a.ddlName(&n.Defnames, a.relationSchema)
		}
		a.walkChildren(n, c, "defnames")
	case *pg_query.AlterStatsStmt:
		a.ddlName(&n.Defnames, a.relationSchema)
	case *pg_query.AlterCollationStmt:
		a.ddlName(&n.Collname, a.relationSchema)
	case *pg_query.AlterOperatorStmt:
		if n.Opername != nil {
			a.ddlName(&n.Opername.Objname, a.functionSchema)
		}
		a.walkChildren(n, c, "opername")
	case *pg_query.AlterTSDictionaryStmt:
		a.ddlName(&n.Dictname, a.relationSchema)
	case *pg_query.AlterTSConfigurationStmt:
		a.ddlName(&n.Cfgname, a.relationSchema)
	case *pg_query.CreateConversionStmt:
		a.ddlName(&n.ConversionName, a.relationSchema)
	case *pg_query.CreateSchemaStmt:
		switch {
		case n.Authrole != nil:
			a.fail(adminRefused("role and ownership statements (CREATE SCHEMA ... AUTHORIZATION)"))
		case len(n.SchemaElts) > 0:
			// Unqualified names inside resolve against the new schema;
			// separate statements keep every name explicit.
			a.fail(refused("CREATE SCHEMA with embedded CREATE statements is not supported: create the schema, then each object in its own statement"))
		default:
			a.ddlSchema(n.Schemaname)
		}
	case *pg_query.DropStmt:
		if n.Behavior == pg_query.DropBehavior_DROP_CASCADE {
			a.fail(cascadeRefused())
			break
		}
		for _, o := range n.Objects {
			a.ddlObject(n.RemoveType, o)
		}
	case *pg_query.CommentStmt:
		a.ddlObject(n.Objtype, n.Object)
	case *pg_query.RenameStmt:
		a.renameStmt(n)
	case *pg_query.AlterObjectSchemaStmt:
		var name string
		if n.Relation != nil {
			name = a.ddlRelation(n.Relation)
		} else {
			name = a.ddlObject(n.ObjectType, n.Object)
		}
		if _, obj, ok := strings.Cut(name, "."); ok {
			a.ddlName(&[]*pg_query.Node{pg_query.MakeStrNode(n.Newschema), pg_query.MakeStrNode(obj)}, nil)
		}
	default:
		a.fail(refused("%s statements are not supported by warden", m.ProtoReflect().Descriptor().Name()))
	}
	if a.err == nil && !a.changed {
		a.fail(refused("warden cannot tell which objects this statement changes, so it is refused"))
	}
	a.changed = a.changed || changed
	return "ddl"
}

func (a *analyzer) renameStmt(n *pg_query.RenameStmt) {
	switch n.RenameType {
	case pg_query.ObjectType_OBJECT_SCHEMA:
		a.ddlSchema(n.Subname)
		a.ddlSchema(n.Newname)
		return
	case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_ATTRIBUTE,
		pg_query.ObjectType_OBJECT_TABCONSTRAINT, pg_query.ObjectType_OBJECT_DOMCONSTRAINT,
		pg_query.ObjectType_OBJECT_TRIGGER, pg_query.ObjectType_OBJECT_RULE,
		pg_query.ObjectType_OBJECT_POLICY:
		// Renames a part of a relation, type or domain: that object changes.
		if n.Relation != nil {
			a.ddlRelation(n.Relation)
		} else {
			a.ddlObject(n.RenameType, n.Object)
		}
		return
	}
	var name string
	if n.Relation != nil {
		name = a.ddlRelation(n.Relation)
	} else {
		name = a.ddlObject(n.RenameType, n.Object)
	}
	// The new name is an object the statement creates, in the same schema.
	if schema, _, ok := strings.Cut(name, "."); ok {
		a.ddlName(&[]*pg_query.Node{pg_query.MakeStrNode(schema), pg_query.MakeStrNode(n.Newname)}, nil)
	}
}

// adminObjects are object types whose DDL is administrative: they are not
// in a schema, or need superuser-level rights, or reach outside the
// database.
var adminObjects = map[pg_query.ObjectType]bool{
	pg_query.ObjectType_OBJECT_ACCESS_METHOD: true, pg_query.ObjectType_OBJECT_AMOP: true,
	pg_query.ObjectType_OBJECT_AMPROC: true, pg_query.ObjectType_OBJECT_CAST: true,
	pg_query.ObjectType_OBJECT_DATABASE: true, pg_query.ObjectType_OBJECT_DEFAULT: true,
	pg_query.ObjectType_OBJECT_DEFACL: true, pg_query.ObjectType_OBJECT_EVENT_TRIGGER: true,
	pg_query.ObjectType_OBJECT_EXTENSION: true, pg_query.ObjectType_OBJECT_FDW: true,
	pg_query.ObjectType_OBJECT_FOREIGN_SERVER: true, pg_query.ObjectType_OBJECT_LANGUAGE: true,
	pg_query.ObjectType_OBJECT_LARGEOBJECT: true, pg_query.ObjectType_OBJECT_OPCLASS: true,
	pg_query.ObjectType_OBJECT_OPFAMILY: true, pg_query.ObjectType_OBJECT_PARAMETER_ACL: true,
	pg_query.ObjectType_OBJECT_PUBLICATION: true, pg_query.ObjectType_OBJECT_PUBLICATION_NAMESPACE: true,
	pg_query.ObjectType_OBJECT_PUBLICATION_REL: true, pg_query.ObjectType_OBJECT_ROLE: true,
	pg_query.ObjectType_OBJECT_SUBSCRIPTION: true, pg_query.ObjectType_OBJECT_TABLESPACE: true,
	pg_query.ObjectType_OBJECT_TRANSFORM: true, pg_query.ObjectType_OBJECT_TSPARSER: true,
	pg_query.ObjectType_OBJECT_TSTEMPLATE: true, pg_query.ObjectType_OBJECT_USER_MAPPING: true,
}

// ddlObject records a DDL op on an object named the way DROP, COMMENT,
// RENAME and ALTER ... SET SCHEMA name it, and returns its qualified name
// ("" for a schema or on error).
func (a *analyzer) ddlObject(t pg_query.ObjectType, n *pg_query.Node) string {
	if adminObjects[t] {
		a.fail(adminRefused("statements on " + objectTypeName(t) + " objects"))
		return ""
	}
	switch t {
	case pg_query.ObjectType_OBJECT_SCHEMA:
		if s := n.GetString_(); s != nil {
			a.ddlSchema(s.Sval)
			return ""
		}
	case pg_query.ObjectType_OBJECT_FUNCTION, pg_query.ObjectType_OBJECT_PROCEDURE,
		pg_query.ObjectType_OBJECT_ROUTINE, pg_query.ObjectType_OBJECT_AGGREGATE,
		pg_query.ObjectType_OBJECT_OPERATOR:
		if f := n.GetObjectWithArgs(); f != nil {
			return a.ddlName(&f.Objname, a.functionSchema)
		}
	case pg_query.ObjectType_OBJECT_COLUMN, pg_query.ObjectType_OBJECT_TABCONSTRAINT,
		pg_query.ObjectType_OBJECT_TRIGGER, pg_query.ObjectType_OBJECT_RULE,
		pg_query.ObjectType_OBJECT_POLICY:
		// [schema.]table.part: the table is what changes.
		if l := n.GetList(); l != nil && len(l.Items) >= 2 {
			head := l.Items[:len(l.Items)-1]
			name := a.ddlName(&head, a.relationSchema)
			l.Items = append(head, l.Items[len(l.Items)-1])
			return name
		}
	case pg_query.ObjectType_OBJECT_DOMCONSTRAINT:
		// COMMENT names it (domain type, constraint); RENAME names the
		// domain alone. The domain is what changes.
		if l := n.GetList(); l != nil && len(l.Items) > 0 {
			if tn := l.Items[0].GetTypeName(); tn != nil {
				return a.ddlName(&tn.Names, a.relationSchema)
			}
			return a.ddlName(&l.Items, a.relationSchema)
		}
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_INDEX,
		pg_query.ObjectType_OBJECT_SEQUENCE, pg_query.ObjectType_OBJECT_FOREIGN_TABLE,
		pg_query.ObjectType_OBJECT_TYPE, pg_query.ObjectType_OBJECT_DOMAIN,
		pg_query.ObjectType_OBJECT_COLLATION, pg_query.ObjectType_OBJECT_CONVERSION,
		pg_query.ObjectType_OBJECT_STATISTIC_EXT, pg_query.ObjectType_OBJECT_TSCONFIGURATION,
		pg_query.ObjectType_OBJECT_TSDICTIONARY:
		switch v := unwrapNode(n).(type) {
		case *pg_query.List:
			return a.ddlName(&v.Items, a.relationSchema)
		case *pg_query.TypeName:
			return a.ddlName(&v.Names, a.relationSchema)
		}
	}
	a.fail(refused("statements on %s objects are not supported by warden", objectTypeName(t)))
	return ""
}

// objectTypeNames spell the object types whose enum names do not read as
// SQL.
var objectTypeNames = map[pg_query.ObjectType]string{
	pg_query.ObjectType_OBJECT_AMOP:          "operator family member",
	pg_query.ObjectType_OBJECT_AMPROC:        "operator family member",
	pg_query.ObjectType_OBJECT_DEFACL:        "default privileges",
	pg_query.ObjectType_OBJECT_FDW:           "foreign-data wrapper",
	pg_query.ObjectType_OBJECT_LARGEOBJECT:   "large object",
	pg_query.ObjectType_OBJECT_MATVIEW:       "materialized view",
	pg_query.ObjectType_OBJECT_OPCLASS:       "operator class",
	pg_query.ObjectType_OBJECT_OPFAMILY:      "operator family",
	pg_query.ObjectType_OBJECT_STATISTIC_EXT: "statistics",
	pg_query.ObjectType_OBJECT_TSPARSER:      "text search parser",
	pg_query.ObjectType_OBJECT_TSTEMPLATE:    "text search template",
}

func objectTypeName(t pg_query.ObjectType) string {
	if name, ok := objectTypeNames[t]; ok {
		return name
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_")), "_", " ")
}

// ddlName records a DDL op on a dotted name list and returns schema.name.
// resolve may be nil when the list is known to be qualified.
func (a *analyzer) ddlName(nodes *[]*pg_query.Node, resolve func(string) string) string {
	parts, ok := nameStrings(*nodes)
	if !ok {
		a.fail(refused("this statement names an object in a form warden does not support"))
		return ""
	}
	if len(parts) == 2 && isTempSchema(parts[0]) {
		a.fail(tempRefused())
		return ""
	}
	name := a.qualifyParts(parts, resolve)
	if len(parts) == 1 && name != "" {
		// Sent qualified: the connection's search_path is pg_catalog.
		*nodes = []*pg_query.Node{pg_query.MakeStrNode(name[:len(name)-len(parts[0])-1]), pg_query.MakeStrNode(parts[0])}
	}
	a.op(warden.VerbDDL, name)
	return name
}

// ddlSchema records a DDL op on a schema itself, named by its bare name.
func (a *analyzer) ddlSchema(name string) {
	if isTempSchema(name) {
		a.fail(tempRefused())
		return
	}
	a.op(warden.VerbDDL, name)
}
