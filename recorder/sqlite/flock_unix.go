//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"os"
	"runtime/debug"
	"syscall"
)

const flockSupported = true

var errWouldBlock = syscall.EWOULDBLOCK

// flock takes (exclusive) or releases f's lock; without block, taking it
// returns errWouldBlock when another holds it.
func flock(f *os.File, exclusive, block bool) error {
	how := syscall.LOCK_UN
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !block {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// hintPage is how much of the lock file is mapped: one page, which holds
// the hint.
const hintPage = 4096

// mapHint maps the first page of the lock file f, shared, growing the file
// to a page first (it is never shrunk: older wardens write only the hint
// at its start). Reading and writing the hint is then a memory access
// instead of a pread and a pwrite under the lock on every commit.
func mapHint(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < hintPage {
		if err := f.Truncate(hintPage); err != nil {
			return nil, err
		}
	}
	return syscall.Mmap(int(f.Fd()), 0, hintPage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

func unmapHint(m []byte) { _ = syscall.Munmap(m) }

// copyHint copies between the mapping and a buffer; ok is false if the
// mapping faulted (someone truncated the lock file under it), which is
// then treated as no hint rather than crashing the process.
func copyHint(dst, src []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	copy(dst, src)
	return true
}
