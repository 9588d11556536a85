package recorder_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/warden-mcp/warden/recorder"
)

// Several wardens that start on one new store at once all create its
// signing key: every one of them must come away with the same key, and
// none may read the file while another is still writing it.
func TestCreateKeyFileConcurrently(t *testing.T) {
	for round := range 200 {
		path := filepath.Join(t.TempDir(), "signing.key")
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				k, err := recorder.CreateKeyFile(path)
				keys[i], errs[i] = k, err
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, creator %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: creators %d and 0 came away with different keys", round, i)
			}
		}
		onDisk, err := recorder.ReadKeyFile(path)
		if err != nil || !bytes.Equal(onDisk, keys[0]) {
			t.Fatalf("round %d: the key on disk is not the one the creators use (%v)", round, err)
		}
		left, _ := os.ReadDir(filepath.Dir(path))
		if len(left) != 1 {
			t.Fatalf("round %d: %d files beside the key, want none", round, len(left)-1)
		}
	}
}
