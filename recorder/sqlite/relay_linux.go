//go:build linux

package sqlite

import (
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
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

// The process's scheduling, as its stores send to a relay or lead one.
//
// The relay is the one process the other wardens on its store wait on,
// and it wakes one of them with every answer. Linux lets a woken thread
// preempt the one that woke it, so the relay lost its core to the warden
// it had just answered, and stayed off it for 0.6 ms on average while
// the others' records waited (docs/BENCHMARKS.md, "Issue 14, seventh
// round"). A warden that sends to a relay therefore runs its threads as
// SCHED_BATCH: the same share of the CPU at the same nice value, but its
// wakeups do not preempt whatever runs; the tick does. On a machine with
// a free core that changes nothing. A warden that leads runs as usual.
// A process started with another policy than SCHED_OTHER (by chrt, say)
// is someone's choice, and left as it is.
var sched struct {
	sync.Mutex
	sends   bool // a store of this process has sent to a relay
	leaders int  // stores of this process leading a relay
	batch   bool // the policy now set
}

// startedOther reports whether the process started as SCHED_OTHER, so
// that its policy is warden's to change.
var startedOther = sync.OnceValue(func() bool {
	attr, err := unix.SchedGetAttr(0, 0)
	return err == nil && attr.Policy == unix.SCHED_NORMAL
})

// schedule records e and sets every thread of the process to SCHED_BATCH
// while one of its stores sends and none leads, and back to SCHED_OTHER
// when one leads. Failures (a seccomp filter, say) leave the policy as
// it is: it is only ever a matter of speed.
func schedule(e schedEvent) {
	sched.Lock()
	defer sched.Unlock()
	switch e {
	case sending:
		sched.sends = true
	case leading:
		sched.leaders++
	case stoppedLeading:
		sched.leaders--
	}
	if batch := sched.sends && sched.leaders == 0; batch != sched.batch && startedOther() {
		policy := uint32(unix.SCHED_NORMAL)
		if batch {
			policy = unix.SCHED_BATCH
		}
		setPolicy(policy)
		sched.batch = batch
	}
}

// setPolicy sets the scheduling policy of every thread of the process,
// keeping each one's nice value. A thread the runtime starts meanwhile
// inherits the policy of the one that started it, so the threads are
// listed again until a pass finds none left to set.
func setPolicy(policy uint32) {
	done := map[int]bool{}
	for range 4 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		changed := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			done[tid], changed = true, true
			attr, err := unix.SchedGetAttr(tid, 0)
			if err != nil || attr.Policy == policy || attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH {
				continue // gone, already set, or a policy someone chose (real-time, idle): left alone
			}
			attr.Policy = policy
			attr.Flags = 0
			unix.SchedSetAttr(tid, attr, 0)
		}
		if !changed {
			return
		}
	}
}
