package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestWriterPageCacheIs512KiB: the writer connection's page cache is
// bounded at 512 KiB (SQLite's default, 2 MiB, grew to ≈ 4 MB of warden's
// memory); the readers keep SQLite's default.
func TestWriterPageCacheIs512KiB(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var writer, reader int
	if err := s.w.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&writer); err != nil {
		t.Fatal(err)
	}
	if err := s.read.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&reader); err != nil {
		t.Fatal(err)
	}
	if writer != -512 || reader != -2000 {
		t.Errorf("cache_size: writer %d, reader %d; want -512 and -2000 (KiB)", writer, reader)
	}
}
