// Package sql provides the sql_query and sql_schema tools: PostgreSQL
// statements judged on the real parse tree and run with warden's own
// credentials inside warden's own transactions.
package sql
