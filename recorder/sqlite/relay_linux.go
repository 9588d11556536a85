//go:build linux

package sqlite

import (
	"os"
	"syscall"
)

const relaySupported = true

// noFollow opens a file only if its name is not a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// maxSocketPath is the room for a socket's path (sun_path, with its NUL).
const maxSocketPath = 108

// sameUser reports whether the process at the other end of c runs as this
// one's effective user (SO_PEERCRED: the credentials the kernel recorded
// at connect or listen).
func sameUser(c syscall.Conn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return cred.Uid == uint32(os.Geteuid())
}

// ownDir reports whether this process's user owns the directory fi
// describes and no one else may write it.
func ownDir(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o022 == 0
}

// fileIdentity returns the device and inode of a file.
func fileIdentity(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}
