// Package postgres keeps warden's recording and approval requests in a PostgreSQL database that several warden instances share, each writing its own hash chain.
package postgres
