//go:build linux

package sqlite

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
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

// dialBlocking connects to the Unix socket at path, in blocking mode
// (see relayConn), with reads giving up after relayHelloWait.
func dialBlocking(path string) (*os.File, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		// Writes too: a relay that stops reading does not hold a
		// warden for ever.
		err = sockTimeout(fd, syscall.SO_SNDTIMEO, relayAnswerWait)
	}
	if err == nil {
		err = sockTimeout(fd, syscall.SO_RCVTIMEO, relayHelloWait)
	}
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// setReadTimeout bounds every read of f (SO_RCVTIMEO).
func setReadTimeout(f *os.File, d time.Duration) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var optErr error
	if err := raw.Control(func(fd uintptr) { optErr = sockTimeout(int(fd), syscall.SO_RCVTIMEO, d) }); err != nil {
		return err
	}
	return optErr
}

// sockTimeout bounds every read (SO_RCVTIMEO) or write (SO_SNDTIMEO) of
// the blocking socket fd.
func sockTimeout(fd, opt int, d time.Duration) error {
	tv := syscall.NsecToTimeval(d.Nanoseconds())
	return syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, opt, &tv)
}

// interruptConn wakes a read or write blocked on f, which then fails.
func interruptConn(f *os.File) { shutdown(f, syscall.SHUT_RDWR) }

// stopReading wakes a read blocked on f (and any later one), which then
// finds the end of the stream; writes still go through.
func stopReading(f *os.File) { shutdown(f, syscall.SHUT_RD) }

// shutdown shuts down one or both directions of the socket f (shutdown(2);
// the descriptor stays f's until f is closed).
func shutdown(f *os.File, how int) {
	if raw, err := f.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { syscall.Shutdown(int(fd), how) })
	}
}

// blockingConn turns an accepted connection into a file in blocking mode
// (see relayConn), with writes giving up after wait; c is closed.
func blockingConn(c *net.UnixConn, wait time.Duration) (*os.File, error) {
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, opErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) {
		// A descriptor of its own, with the close-on-exec flag; the
		// mode belongs to the open file both share, and c is closed
		// below without being read again.
		if fd, opErr = syscall.Dup(int(s)); opErr != nil {
			return
		}
		syscall.CloseOnExec(fd)
		if opErr = syscall.SetNonblock(fd, false); opErr != nil {
			return
		}
		opErr = sockTimeout(fd, syscall.SO_SNDTIMEO, wait)
	}); err != nil && opErr == nil {
		opErr = err
	}
	if opErr != nil {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return nil, opErr
	}
	return os.NewFile(uintptr(fd), "relay"), nil
}
