//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"os"
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
