//go:build !linux

package sqlite

import (
	"os"
	"syscall"
)

// Elsewhere there is no relay (it checks its peers with SO_PEERCRED):
// every warden writes its records itself, under the write lock.
const relaySupported = false

const maxSocketPath = 0

const noFollow = 0

func sameUser(syscall.Conn) bool { return false }

func ownDir(os.FileInfo) bool { return false }

func fileIdentity(os.FileInfo) (fileID, bool) { return fileID{}, false }

func schedule(schedEvent) {}
