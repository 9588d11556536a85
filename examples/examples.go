// Package examples holds warden's example configs and the demo's data,
// embedded so that `warden demo` works from any directory.
package examples

import "embed"

// FS holds demo.yaml (the demo's config, as alice), demo-dba.yaml (the same
// as bob, a reviewer) and demo.sql (the demo database).
//
//go:embed demo.yaml demo-dba.yaml demo.sql
var FS embed.FS
