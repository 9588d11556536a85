package sql

import "path"

// restrictedFunctions are the pg_catalog functions that are not harmless:
// they reach outside the statement's result (files, the network, other
// sessions, server state), change state that a read-only transaction does not
// protect, or run SQL text of their own and so hide what it reads. A call to
// one of them becomes an "execute pg_catalog.name" op, which policy refuses
// unless a grant names it. Every other pg_catalog function is harmless and is
// only listed in Analysis.Functions; functions in any other schema are always
// ops, because user-defined code can do anything.
//
// Entries are path.Match patterns on the unqualified function name ("*"
// matches any run of characters). pg_sleep is deliberately absent:
// statement_timeout bounds it.
var restrictedFunctions = []string{
	// Server files, large objects and the network.
	"pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_*",
	"pg_file_*", "pg_logdir_ls",
	"lo_*", "loread", "lowrite",
	"dblink*",

	// Sessions and the server.
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
	"pg_rotate_logfile*", "pg_promote", "pg_log_backend_memory_contexts",
	"pg_log_standby_snapshot", "pg_switch_wal", "pg_create_*",
	"pg_drop_replication_slot", "pg_copy_*_replication_slot",
	"pg_replication_*", "pg_logical_*", "pg_sync_replication_slots",
	"pg_backup_*", "pg_start_backup", "pg_stop_backup", "pg_wal_replay_*",
	"pg_stat_reset*", "pg_import_system_collations", "pg_export_snapshot",
	"pg_nextoid", "binary_upgrade_*",
	"brin_summarize*", "brin_desummarize_range", "gin_clean_pending_list",

	// Session settings: warden owns them.
	"set_config",

	// Locks and notifications outlive the call on a pooled connection.
	"pg_advisory*", "pg_try_advisory*",
	"pg_notify",

	// Sequences change even in a read-only transaction's view of the world.
	"nextval", "setval",

	// The random seed outlives the call on a pooled connection, and a
	// known seed makes the next caller's random() predictable.
	"setseed",

	// These run SQL text or read a whole table by name, so the relations they
	// read never appear in the parse tree.
	"query_to_xml*", "query_to_xmlschema", "table_to_xml*", "table_to_xmlschema",
	"cursor_to_xml*", "schema_to_xml*", "database_to_xml*",
	"ts_stat", "ts_rewrite",
}

// restrictedFunction reports whether the pg_catalog function name is on the
// restricted list.
func restrictedFunction(name string) bool {
	for _, pattern := range restrictedFunctions {
		if ok, _ := path.Match(pattern, name); ok {
			return true
		}
	}
	return false
}
