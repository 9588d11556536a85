package sqlite_test

import (
	"context"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warden-mcp/warden/recorder/sqlite"
)

// threads lists process pid's threads.
func threads(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// newStoreWithRelayProcess creates a store and runs TestRelayProcess,
// its relay, in a process of its own.
func newStoreWithRelayProcess(t *testing.T) (string, *osexec.Cmd) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warden.db")
	s0, err := sqlite.Open(context.Background(), "sqlite:"+path)
	must(t, err)
	must(t, s0.Close()) // created first, so the relay finds its key
	return path, startRelayProcess(t, path)
}

// policies counts the scheduling policies of process pid's threads.
func policies(pid int) map[uint32]int {
	got := map[uint32]int{}
	for _, tid := range threads(pid) {
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil { // else ended meanwhile
			got[attr.Policy]++
		}
	}
	return got
}

// A warden sending its records to the relay runs every thread as
// SCHED_BATCH, so that the relay's answers do not hand the relay's core to
// the warden answered; the relay runs as usual; a sender that becomes
// the relay goes back to the usual policy, its nice value untouched.
func TestSenderYieldsToTheRelay(t *testing.T) {
	requireRelay(t)
	self := os.Getpid()
	if p := policies(self); p[unix.SCHED_NORMAL] == 0 || len(p) != 1 {
		t.Skipf("this test process's threads run with policies %v; want SCHED_OTHER only", p)
	}
	// One step nicer than it was, so that a policy set with the nice
	// value reset would show.
	attr, err := unix.SchedGetAttr(0, 0)
	must(t, err)
	nice := attr.Nice + 1
	for _, tid := range threads(self) {
		unix.Setpriority(unix.PRIO_PROCESS, tid, int(nice))
	}
	t.Cleanup(func() {
		// The process stays a sender after its store closes: put the
		// test binary back as it was for the tests after this one (its
		// nice value only where the process may lower it).
		for _, tid := range threads(self) {
			if attr, err := unix.SchedGetAttr(tid, 0); err == nil {
				attr.Policy, attr.Flags, attr.Nice = unix.SCHED_NORMAL, 0, nice-1
				if unix.SchedSetAttr(tid, attr, 0) != nil {
					attr.Nice = nice
					unix.SchedSetAttr(tid, attr, 0)
				}
			}
		}
	})

	ctx := context.Background()
	path, cmd := newStoreWithRelayProcess(t)

	b, byB := counted(t, path)
	defer b.Close()
	must(t, b.StartCall(ctx, allowedCall("c1", "", alice, t0)))
	if n := byB.Load(); n != 0 {
		t.Fatalf("the sender committed %d records itself; want the relay to have", n)
	}
	if p := policies(self); p[unix.SCHED_BATCH] == 0 || len(p) != 1 {
		t.Errorf("a sender's threads: %v; want all SCHED_BATCH (%d)", p, unix.SCHED_BATCH)
	}
	if p := policies(cmd.Process.Pid); p[unix.SCHED_NORMAL] == 0 || len(p) != 1 {
		t.Errorf("the relay's threads: %v; want all SCHED_OTHER", p)
	}
	for _, tid := range threads(self) {
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil && attr.Nice != nice {
			t.Errorf("a sender's thread at nice %d; want %d, unchanged", attr.Nice, nice)
		}
	}

	// The relay dies; the sender becomes it.
	must(t, cmd.Process.Kill())
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for i := 2; byB.Load() == 0 || !sqlite.Leads(b); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the sender did not become the relay")
		}
		must(t, b.StartCall(ctx, allowedCall(fmt.Sprintf("c%d", i), "", alice, t0)))
		time.Sleep(10 * time.Millisecond)
	}
	if p := policies(self); p[unix.SCHED_NORMAL] == 0 || len(p) != 1 {
		t.Errorf("a sender become the relay: %v; want all SCHED_OTHER", p)
	}
}

// TestSenderProcess is TestChosenPolicyStays's warden; it does nothing
// unless started by it. It records calls until its store leads the relay,
// saying "sent" after its first and "leads" then.
func TestSenderProcess(t *testing.T) {
	path := os.Getenv("WARDEN_SENDER_PROCESS")
	if path == "" {
		t.Skip("run by TestChosenPolicyStays")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	defer s.Close()
	for i := 0; !sqlite.Leads(s); i++ {
		must(t, s.StartCall(ctx, allowedCall(fmt.Sprintf("p%d", i), "", alice, t0)))
		if i == 0 {
			fmt.Println("sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("leads")
	io.Copy(io.Discard, os.Stdin) // until killed
}

// A warden started with a policy of someone's choosing (chrt -b) keeps
// it, as a sender and once it leads.
func TestChosenPolicyStays(t *testing.T) {
	requireRelay(t)
	chrt, err := osexec.LookPath("chrt")
	if err != nil {
		t.Skip("no chrt here")
	}
	path, relay := newStoreWithRelayProcess(t)
	sender, said := startProcess(t, "WARDEN_SENDER_PROCESS", path, chrt, "-b", "0", os.Args[0], "-test.run=^TestSenderProcess$", "-test.count=1")
	if !said.Scan() || said.Text() != "sent" {
		t.Fatal("the sender did not send")
	}
	if p := policies(sender.Process.Pid); p[unix.SCHED_BATCH] == 0 || len(p) != 1 {
		t.Errorf("a sender started as SCHED_BATCH: %v; want all SCHED_BATCH", p)
	}
	must(t, relay.Process.Kill())
	if !said.Scan() || said.Text() != "leads" {
		t.Fatal("the sender did not become the relay")
	}
	if p := policies(sender.Process.Pid); p[unix.SCHED_BATCH] == 0 || len(p) != 1 {
		t.Errorf("a warden started as SCHED_BATCH, once it leads: %v; want all SCHED_BATCH, as chosen", p)
	}
}
