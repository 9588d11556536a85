package sqlite_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warden-mcp/warden/recorder"
	"github.com/warden-mcp/warden/recorder/sqlite"
)

// counted opens the store at path counting the records its own writer
// commits.
func counted(t *testing.T, path string) (*sqlite.Store, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	s, err := sqlite.OpenWith(context.Background(), "sqlite:"+path, recorder.Options{
		OnCommit: func(records int, _ time.Duration) { n.Add(int64(records)) }})
	must(t, err)
	return s, n
}

// callRows returns how many records each call id has in the store.
func callRows(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	must(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT call_id, count(*) FROM records WHERE call_id IS NOT NULL GROUP BY call_id`)
	must(t, err)
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		must(t, rows.Scan(&id, &n))
		got[id] = n
	}
	must(t, rows.Err())
	return got
}

func requireRelay(t *testing.T) {
	t.Helper()
	if !sqlite.RelaySupported {
		t.Skip("no relay on this platform")
	}
}

// The first warden on a store commits the call records of the second; the
// second commits nothing itself, and the chain holds every record once.
func TestRelayCommitsForTheOthers(t *testing.T) {
	requireRelay(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	a, byA := counted(t, path)
	b, byB := counted(t, path)
	if fi, err := os.Stat(sqlite.RelaySocket(path)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("relay socket: %v, mode %v; want it, mode 0600", err, fi.Mode().Perm())
	}
	const n = 40
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range n {
				c := allowedCall(fmt.Sprintf("b%d-%d", w, i), "", alice, t0)
				if err := b.StartCall(ctx, c); err != nil {
					t.Errorf("StartCall = %v", err)
					return
				}
				if err := b.FinishCall(ctx, finish(c, nil, nil, time.Millisecond)); err != nil {
					t.Errorf("FinishCall = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A second start of a call the relay committed is refused, as the
	// store's index refuses it, and changes nothing.
	if err := b.StartCall(ctx, allowedCall("b0-0", "", alice, t0)); err == nil || !strings.Contains(err.Error(), "call was already started") {
		t.Errorf("StartCall of a started call through the relay = %v; want it refused as already started", err)
	}
	if got := byB.Load(); got != 0 {
		t.Errorf("the second warden committed %d records itself; want 0 (the relay commits them)", got)
	}
	if got := byA.Load(); got < 4*n*2 {
		t.Errorf("the relay committed %d records; want at least %d", got, 4*n*2)
	}
	pub, err := a.PublicKey()
	must(t, err)
	must(t, b.Close())
	must(t, a.Close())
	rep, err := verify(t, path, pub)
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	rows := callRows(t, path)
	if len(rows) != 4*n {
		t.Errorf("%d calls recorded; want %d", len(rows), 4*n)
	}
	for id, k := range rows {
		if k != 2 {
			t.Errorf("call %s has %d records; want its start and finish", id, k)
		}
	}
	if rep.Records-rep.Checkpoints != 4*n*2 {
		t.Errorf("Verify: %d records besides checkpoints; want %d", rep.Records-rep.Checkpoints, 4*n*2)
	}
}

// A relay that closes while others write hands over: nothing is lost or
// recorded twice, and every write succeeds.
func TestRelayClosingLosesNothing(t *testing.T) {
	requireRelay(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	first, _ := counted(t, path)
	pub, err := first.PublicKey()
	must(t, err)
	others := make([]*sqlite.Store, 3)
	for i := range others {
		others[i], _ = counted(t, path)
	}
	var wg sync.WaitGroup
	var written atomic.Int64
	for i, s := range others {
		for w := range 3 {
			wg.Go(func() {
				for n := range 150 {
					c := allowedCall(fmt.Sprintf("s%d-w%d-%d", i, w, n), "", alice, t0)
					if err := s.StartCall(ctx, c); err != nil {
						t.Errorf("StartCall = %v", err)
						return
					}
					written.Add(1)
				}
			})
		}
	}
	// Close the relay once writing is under way; another takes over.
	for written.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	must(t, first.Close())
	wg.Wait()
	for _, s := range others {
		must(t, s.Close())
	}
	if _, err := verify(t, path, pub); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	rows := callRows(t, path)
	if len(rows) != 3*3*150 {
		t.Errorf("%d calls recorded; want %d", len(rows), 3*3*150)
	}
	for id, k := range rows {
		if k != 1 {
			t.Errorf("call %s has %d records; want 1", id, k)
		}
	}
}

// TestRelayProcess is TestRelayKilled's relay; it does nothing unless
// started by it.
func TestRelayProcess(t *testing.T) {
	path := os.Getenv("WARDEN_RELAY_PROCESS")
	if path == "" {
		t.Skip("run by TestRelayKilled")
	}
	s, err := sqlite.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until killed
}

// startProcess runs argv (this test binary, with a -test.run naming a
// helper test) with env set to path, and returns it and its output; it
// is killed when the test ends, if it has not been already.
func startProcess(t *testing.T, env, path string, argv ...string) (*osexec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env+"="+path)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout)
}

// startRelayProcess runs TestRelayProcess on the store at path, once it
// is the relay.
func startRelayProcess(t *testing.T, path string) *osexec.Cmd {
	t.Helper()
	cmd, out := startProcess(t, "WARDEN_RELAY_PROCESS", path, os.Args[0], "-test.run=^TestRelayProcess$", "-test.count=1")
	if !out.Scan() || out.Text() != "ready" {
		t.Fatal("the relay process did not start")
	}
	return cmd
}

// A relay killed (kill -9) while others write: the others go on, one of
// them becomes the relay, the chain verifies, and every record a write
// returned nil for is there exactly once.
func TestRelayKilled(t *testing.T) {
	requireRelay(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	// Created first, so the child finds its key.
	s0, err := sqlite.Open(ctx, "sqlite:"+path)
	must(t, err)
	pub, err := s0.PublicKey()
	must(t, err)
	must(t, s0.Close())

	cmd := startRelayProcess(t, path)
	a, byA := counted(t, path)
	b, _ := counted(t, path)
	var mu sync.Mutex
	ok := map[string]bool{}
	var wg sync.WaitGroup
	var written atomic.Int64
	for i, s := range []*sqlite.Store{a, b, a, b} {
		wg.Go(func() {
			for n := range 200 {
				id := fmt.Sprintf("w%d-%d", i, n)
				// A record the relay committed as it died is found in
				// the store, as sent, when written again: no call fails.
				err := s.StartCall(ctx, allowedCall(id, "", alice, t0))
				if err != nil {
					t.Errorf("StartCall = %v", err)
				}
				mu.Lock()
				ok[id] = err == nil
				mu.Unlock()
				written.Add(1)
			}
		})
	}
	for written.Load() < 150 {
		time.Sleep(time.Millisecond)
	}
	relayed := byA.Load()
	must(t, cmd.Process.Kill())
	cmd.Wait()
	wg.Wait()
	must(t, a.Close())
	must(t, b.Close())
	if relayed != 0 {
		t.Errorf("before the kill a warden committed %d records itself; want the relay to have", relayed)
	}
	if _, err := verify(t, path, pub); err != nil {
		t.Fatalf("Verify after the relay was killed = %v", err)
	}
	rows := callRows(t, path)
	for id, good := range ok {
		if k := rows[id]; k != 1 && good || k > 1 {
			t.Errorf("call %s: StartCall said ok=%v, %d records; want 1 when ok, never more", id, good, k)
		}
	}
	if len(ok) != 800 {
		t.Errorf("%d calls written; want 800", len(ok))
	}
}

// Something else listening where the relay would: a warden that finds
// another store's greeting (another key) or none sends it nothing and
// writes its records itself.
func TestRelayImpostorGetsNothing(t *testing.T) {
	requireRelay(t)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		hello func(real ed25519.PublicKey, id [16]byte) []byte
	}{
		{"AnotherKey", func(_ ed25519.PublicKey, id [16]byte) []byte {
			other, _, _ := ed25519.GenerateKey(nil)
			return append(append([]byte("WRDNRLY1"), id[:]...), other...)
		}},
		{"AnotherFile", func(pub ed25519.PublicKey, id [16]byte) []byte {
			id[15] ^= 1
			return append(append([]byte("WRDNRLY1"), id[:]...), pub...)
		}},
		{"AnotherProtocol", func(pub ed25519.PublicKey, id [16]byte) []byte {
			return append(append([]byte("WRDNRLY9"), id[:]...), pub...)
		}},
		{"Silent", func(ed25519.PublicKey, [16]byte) []byte { return nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The impostor holds the relay's flock, so the warden
			// cannot take over, and listens on its socket.
			path, pub, id := storeWithoutRelay(t)
			os.Remove(sqlite.RelaySocket(path))
			ln, err := net.Listen("unix", sqlite.RelaySocket(path))
			must(t, err)
			defer ln.Close()
			got := fakeRelay(ln, c.hello(pub, id))
			s, byS := counted(t, path)
			for i := range 5 {
				must(t, s.StartCall(ctx, allowedCall(fmt.Sprintf("c%d", i), "", alice, t0)))
			}
			must(t, s.Close())
			ln.Close()
			time.Sleep(10 * time.Millisecond)
			if n := got.Load(); n != 0 {
				t.Errorf("the impostor received %d bytes; want none", n)
			}
			if byS.Load() < 5 {
				t.Errorf("the warden committed %d records itself; want its 5", byS.Load())
			}
			if rows := callRows(t, path); len(rows) != 5 {
				t.Errorf("%d calls in the store; want 5", len(rows))
			}
		})
	}
}

// What the relay reads is only ever a call's start or finish: anything
// else sent to it (another kind, a short or oversized frame, a record
// without a call) closes the connection and writes nothing.
func TestRelayRefusesAnythingButACallRecord(t *testing.T) {
	requireRelay(t)
	path := filepath.Join(t.TempDir(), "warden.db")
	a, byA := counted(t, path)
	defer a.Close()
	for _, c := range []struct {
		name string
		send []byte
	}{
		{"Checkpoint", sqlite.RelayFrame(recorder.KindCheckpoint, "", "x", "", `{"seq":1}`)},
		{"SessionStart", sqlite.RelayFrame(recorder.KindSessionStart, "s1", "", "", `{"id":"s1"}`)},
		{"SessionStartWithCall", sqlite.RelayFrame(recorder.KindSessionStart, "s1", "c1", "", `{"id":"s1"}`)},
		{"CallWithoutID", sqlite.RelayFrame(recorder.KindCallStart, "", "", "", `{}`)},
		{"Oversized", binary.BigEndian.AppendUint32(nil, 1<<30)},
		{"Undersized", binary.BigEndian.AppendUint32(nil, 3)},
		{"FieldPastTheEnd", append(binary.BigEndian.AppendUint32(nil, 16), binary.BigEndian.AppendUint32(make([]byte, 12), 1000)...)},
		{"Truncated", sqlite.RelayFrame(recorder.KindCallStart, "", "c1", "", `{}`)[:10]},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := byA.Load()
			conn, err := net.Dial("unix", sqlite.RelaySocket(path))
			must(t, err)
			defer conn.Close()
			hello := make([]byte, 8+16+ed25519.PublicKeySize)
			_, err = io.ReadFull(conn, hello)
			must(t, err)
			conn.Write(c.send)
			if c.name == "Truncated" {
				conn.(*net.UnixConn).CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, conn)
			if err != nil || n != 0 {
				t.Errorf("after a bad frame the relay answered %d bytes (%v); want the connection closed unanswered", n, err)
			}
			if got := byA.Load(); got != before {
				t.Errorf("the relay committed %d records; want none", got-before)
			}
		})
	}
	if rows := callRows(t, path); len(rows) != 0 {
		t.Errorf("%d calls in the store; want none", len(rows))
	}
	// And a good one is answered: the test above is not passing because
	// nothing is ever answered.
	conn, err := net.Dial("unix", sqlite.RelaySocket(path))
	must(t, err)
	defer conn.Close()
	hello := make([]byte, 8+16+ed25519.PublicKeySize)
	_, err = io.ReadFull(conn, hello)
	must(t, err)
	conn.Write(sqlite.RelayFrame(recorder.KindCallStart, "", "good", "", `{"id":"good"}`))
	answer := make([]byte, 5)
	_, err = io.ReadFull(conn, answer)
	must(t, err)
	if answer[0] != 0 {
		t.Errorf("a call start sent to the relay: status %d; want 0 (committed)", answer[0])
	}
	if rows := callRows(t, path); rows["good"] != 1 {
		t.Errorf("records of the call sent to the relay: %d; want 1", rows["good"])
	}
}

// A caller that stops waiting gets its context's error, and the store
// stays usable.
func TestRelayContextEnds(t *testing.T) {
	requireRelay(t)
	path := filepath.Join(t.TempDir(), "warden.db")
	a, _ := counted(t, path)
	defer a.Close()
	b, _ := counted(t, path)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.StartCall(ctx, allowedCall("gone", "", alice, t0))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("StartCall with an ended context = %v; want context.Canceled", err)
	}
	must(t, b.StartCall(context.Background(), allowedCall("next", "", alice, t0)))
	if rows := callRows(t, path); rows["next"] != 1 {
		t.Errorf("records of the call after: %d; want 1", rows["next"])
	}
}

// TestRelayPeerProcess is TestRelayChecksTheOtherUser's process of
// another user; it does nothing unless started by it.
func TestRelayPeerProcess(t *testing.T) {
	sock := os.Getenv("WARDEN_RELAY_PEER")
	if sock == "" {
		t.Skip("run by TestRelayChecksTheOtherUser")
	}
	switch os.Getenv("WARDEN_RELAY_PEER_MODE") {
	case "relay":
		// Another user's relay at the socket, with the true greeting.
		hello, err := hex.DecodeString(os.Getenv("WARDEN_RELAY_PEER_HELLO"))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(sock, 0o777)
		got := fakeRelay(ln, hello)
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
		time.Sleep(10 * time.Millisecond)
		fmt.Println(got.Load())
	case "warden":
		// Another user's warden sending a call record to the relay.
		c, err := net.Dial("unix", sock)
		if err != nil {
			fmt.Println("dial:", err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		body := `{"id":"intruder"}`
		var frame []byte
		for _, f := range []string{recorder.KindCallStart, "", "intruder", ""} {
			frame = binary.BigEndian.AppendUint32(frame, uint32(len(f)))
			frame = append(frame, f...)
		}
		frame = append(frame, body...)
		c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
		n, _ := io.Copy(io.Discard, c)
		fmt.Println("answered", n)
	}
}

// Another user on the socket, whatever its mode: the relay commits
// nothing for a warden of another user, and a warden sends nothing to a
// relay of another user, even one that greets it with the true store and
// key. Judged by what reaches the store and the other end.
func TestRelayChecksTheOtherUser(t *testing.T) {
	requireRelay(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	const nobody = 65534
	ctx := context.Background()
	run := func(t *testing.T, env ...string) (*osexec.Cmd, io.WriteCloser, *bufio.Scanner) {
		exe, err := os.Executable()
		must(t, err)
		// The test binary must be readable by the other user: copy it.
		dir, err := os.MkdirTemp("", "relay-peer-")
		must(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		must(t, os.Chmod(dir, 0o755))
		bin := filepath.Join(dir, "peer.test")
		data, err := os.ReadFile(exe)
		must(t, err)
		must(t, os.WriteFile(bin, data, 0o755))
		cmd := osexec.Command(bin, "-test.run=^TestRelayPeerProcess$", "-test.count=1")
		cmd.Dir = dir
		cmd.Env = append([]string{"HOME=" + dir}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		stdin, err := cmd.StdinPipe()
		must(t, err)
		stdout, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		return cmd, stdin, bufio.NewScanner(stdout)
	}

	t.Run("RelayOfAnotherUser", func(t *testing.T) {
		// This test holds the relay's flock, so the warden cannot
		// become the relay; the other user listens on its socket.
		path, pub, id := storeWithoutRelay(t)
		hello := append(append([]byte("WRDNRLY1"), id[:]...), pub...)
		sock := sqlite.RelaySocket(path)
		if !strings.HasPrefix(sock, os.TempDir()) {
			t.Skip("the relay's socket is not in the shared temporary directory here")
		}
		os.Remove(sock)
		_, stdin, out := run(t, "WARDEN_RELAY_PEER="+sock, "WARDEN_RELAY_PEER_MODE=relay", "WARDEN_RELAY_PEER_HELLO="+hex.EncodeToString(hello))
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("the other user's relay did not start: %q", out.Text())
		}
		defer os.Remove(sock)
		s, byS := counted(t, path)
		for i := range 5 {
			must(t, s.StartCall(ctx, allowedCall(fmt.Sprintf("c%d", i), "", alice, t0)))
		}
		must(t, s.Close())
		stdin.Close()
		if !out.Scan() || out.Text() != "0" {
			t.Errorf("the other user's relay received %q bytes; want 0", out.Text())
		}
		if byS.Load() < 5 {
			t.Errorf("the warden committed %d records itself; want its 5", byS.Load())
		}
		if rows := callRows(t, path); len(rows) != 5 {
			t.Errorf("%d calls in the store; want 5", len(rows))
		}
	})

	t.Run("WardenOfAnotherUser", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "warden.db")
		a, byA := counted(t, path)
		defer a.Close()
		sock := sqlite.RelaySocket(path)
		// As if the socket's mode let anyone connect.
		must(t, os.Chmod(sock, 0o777))
		_, _, out := run(t, "WARDEN_RELAY_PEER="+sock, "WARDEN_RELAY_PEER_MODE=warden")
		if !out.Scan() {
			t.Fatal("the other user's warden said nothing")
		}
		if got := out.Text(); got != "answered 0" && !strings.HasPrefix(got, "dial:") {
			t.Errorf("the other user's warden: %q; want no answer", got)
		}
		if byA.Load() != 0 {
			t.Errorf("the relay committed %d records for another user; want none", byA.Load())
		}
		if rows := callRows(t, path); len(rows) != 0 {
			t.Errorf("%d calls in the store; want none", len(rows))
		}
	})
}

// storeWithoutRelay creates a store, and holds its relay's flock until the
// test ends, so no warden opening it becomes the relay; it returns the
// store's path, public key and identity as the relay's greeting names it.
func storeWithoutRelay(t *testing.T) (path string, pub ed25519.PublicKey, id [16]byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "warden.db")
	s0, err := sqlite.Open(context.Background(), "sqlite:"+path)
	must(t, err)
	pub, err = s0.PublicKey()
	must(t, err)
	must(t, s0.Close())
	lf, err := os.OpenFile(strings.TrimSuffix(sqlite.RelaySocket(path), ".sock")+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	t.Cleanup(func() { lf.Close() })
	must(t, syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	fi, err := os.Stat(path)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	binary.BigEndian.PutUint64(id[:], uint64(st.Dev))
	binary.BigEndian.PutUint64(id[8:], st.Ino)
	return path, pub, id
}

// fakeRelay greets every connection to ln with hello and counts the bytes
// it is sent, until ln is closed.
func fakeRelay(ln net.Listener, hello []byte) *atomic.Int64 {
	got := new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(hello)
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	return got
}

// A relay that reads a record and goes away without answering may have
// committed it: the warden writes it itself, and when the store refuses
// it as a duplicate, it is durable only if the store holds that very
// record. The relay here is the test: it reads the record, has the store
// commit a call with the same id (the same record, or another), and
// closes the connection unanswered.
func TestRelayLostAnswer(t *testing.T) {
	requireRelay(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		same bool
	}{{"SameRecordCommitted", true}, {"AnotherRecordUnderTheID", false}} {
		t.Run(c.name, func(t *testing.T) {
			path, pub, id := storeWithoutRelay(t)
			call := allowedCall("lost", "", alice, t0)
			committed := call
			if !c.same {
				committed = allowedCall("lost", "", alice, t0.Add(time.Second))
			}
			os.Remove(sqlite.RelaySocket(path))
			ln, err := net.Listen("unix", sqlite.RelaySocket(path))
			must(t, err)
			defer ln.Close()
			read := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					read <- err
					return
				}
				defer conn.Close()
				conn.Write(append(append([]byte("WRDNRLY1"), id[:]...), pub...))
				var n [4]byte
				if _, err := io.ReadFull(conn, n[:]); err != nil {
					read <- err
					return
				}
				if _, err := io.ReadFull(conn, make([]byte, binary.BigEndian.Uint32(n[:]))); err != nil {
					read <- err
					return
				}
				// Committed, as a relay would, then gone unanswered.
				other, err := sqlite.OpenWith(ctx, "sqlite:"+path, recorder.Options{NoRelay: true})
				if err == nil {
					err = errors.Join(other.StartCall(ctx, committed), other.Close())
				}
				read <- err
			}()
			s, _ := counted(t, path)
			defer s.Close()
			err = s.StartCall(ctx, call)
			must(t, <-read)
			switch {
			case c.same && err != nil:
				t.Errorf("StartCall after the relay committed it unanswered = %v; want nil (the store holds it)", err)
			case !c.same && (err == nil || !strings.Contains(err.Error(), "call was already started")):
				t.Errorf("StartCall of a call another record holds the id of = %v; want it refused as already started", err)
			}
			if rows := callRows(t, path); rows["lost"] != 1 {
				t.Errorf("records of the call: %d; want 1", rows["lost"])
			}
		})
	}
}
