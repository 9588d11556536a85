//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import (
	"errors"
	"os"
)

// Without flock(2), writers rely on SQLite's lock alone (see writelock.go).
const flockSupported = false

var errWouldBlock = errors.New("would block")

func flock(*os.File, bool, bool) error { return errors.ErrUnsupported }

func mapHint(*os.File) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapHint([]byte) {}

func copyHint(dst, src []byte) bool { return copy(dst, src) == len(dst) }
