package sql

import (
	_ "embed"
	"strings"
)

// allowedFunctionsText is the allow-list of pg_catalog functions a
// statement may call without a grant naming them (functions_allowed.txt).
//
// It was built deliberately from the running server's catalog rather than
// by listing bad functions, which is always one release behind:
//
//	SELECT proname, <category> FROM pg_catalog.pg_proc
//	WHERE pronamespace = 'pg_catalog'::regnamespace
//	  -- callable from SQL: no internal, cstring, trigger or handler types
//	  AND NOT EXISTS (SELECT 1 FROM unnest(proargtypes::oid[] || prorettype) t
//	                  WHERE t IN ('internal'::regtype, 'cstring'::regtype, 'trigger'::regtype, ...))
//	  AND proname !~ '^(pg_|has_|txid|lo_|to_reg|acl|binary_upgrade|brin_|gin_|currtid|
//	                    ts_stat|ts_rewrite|query_to_xml|table_to_xml|cursor_to_xml|
//	                    schema_to_xml|database_to_xml|inet_client|inet_server|set_config|
//	                    current_setting|setseed|nextval|setval|currval|lastval|version|
//	                    current_query|row_security_active)'
//	  AND proname !~ '_description$' AND proname NOT IN ('loread', 'lowrite')
//
// then reviewed by hand: of the volatile functions only clock_timestamp,
// timeofday, random and gen_random_uuid stayed (setseed, which makes
// random's state an input, did not); validators (amvalidate, fmgr_*,
// *_validator), regclass(text) (a probe for relation names) and
// xmlvalidate went out; pg_typeof, pg_size_pretty, pg_size_bytes,
// pg_column_size and pg_sleep* came in (pg_sleep is bounded by the
// statement timeout).
//
// Left out, so a grant must name them: everything about the server rather
// than the data — statistics and activity (pg_stat_*), files (pg_read_*,
// pg_ls_*, pg_hba_file_rules, pg_show_all_file_settings), configuration
// (current_setting, set_config), object definitions and comments
// (pg_get_*def, *_description), privileges (has_*), transaction ids
// (txid_*, pg_current_xact_id), sequences (nextval, setval, currval,
// lastval), large objects (lo_*), locks (pg_advisory_*), notifications,
// administration (pg_terminate_backend, pg_reload_conf, backups,
// replication), and functions that run SQL text or read a table by name
// (query_to_xml, table_to_xml, ts_stat, ts_rewrite).
//
//go:embed functions_allowed.txt
var allowedFunctionsText string

// allowedFunctions maps each allow-listed name to its category.
var allowedFunctions = parseAllowList(allowedFunctionsText)

func parseAllowList(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		name, category, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		m[name] = category
	}
	return m
}

// allowedFunction reports whether the pg_catalog function name may run
// without a grant.
func allowedFunction(name string) bool {
	_, ok := allowedFunctions[name]
	return ok
}

// ruleFunctions names the allow-list in refusals.
const ruleFunctions = "sql.functions"
