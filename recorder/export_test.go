package recorder

import (
	"context"
	"database/sql"
	"fmt"
)

// Test hooks that put a live store into states a test cannot reach through
// the file system when it runs as root (which ignores file permissions).

// MakeReadOnly replaces s's writer with a connection that opened the
// database read-only, as SQLite does for a file it may not write.
func MakeReadOnly(s *Store) error {
	if err := s.write.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+s.path+"?mode=ro&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	s.write = db
	return s.prepare(context.Background())
}

// FillDisk caps s's database at its current size, as a full disk would.
func FillDisk(ctx context.Context, s *Store) error {
	var pages int64
	if err := s.write.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return err
	}
	_, err := s.write.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
	return err
}

// ExecWriter runs a statement on s's writer, to check that the schema
// refuses what the package never does.
func ExecWriter(ctx context.Context, s *Store, query string, args ...any) error {
	_, err := s.write.ExecContext(ctx, query, args...)
	return err
}
