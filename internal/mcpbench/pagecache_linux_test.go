package mcpbench_test

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropPageCache writes the file at path to disk and drops it from the page
// cache, so that the server's first exec reads it back from disk, as a
// deployed binary is read. A binary the linker has just written sits in
// the page cache in 2 MB folios (the linker writes its output through a
// memory map), and Linux 6.18 maps a whole large folio on a fault: nearly
// every page of the binary is then resident after a few calls (warden at
// c=8: 56 MB of RssFile, against 40 MB for the same binary read from disk
// or installed by cp).
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
