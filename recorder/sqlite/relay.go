package sqlite

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-mcp/warden/recorder"
)

// Several wardens sharing a store (one stdio warden per agent, on one
// machine) used to take turns at the write lock for every record: each
// commit waited for the others', and began on a page cache SQLite had
// dropped because another process wrote, so eight of them recorded less
// than eight with a store each. Now one of them, the relay, commits the
// call records of the others too. The first writer to take an exclusive
// flock of the relay's lock file listens on a Unix socket beside it
// (relaySocket); another warden opening the store sends its call
// records there and waits for the answer, and the relay appends them with
// its own: through the same writer, in the same group commits, its page
// cache warm. The answer comes only once the record is durable, exactly
// as a commit of its own would.
//
// What goes through the relay is only what needs nothing but an insert:
// a call's start and finish, whose uniqueness the store's index checks.
// Session records (which read the store to check the session), approvals,
// flows, prunes and checkpoints are written by each warden itself, under
// the write lock, as before; so is everything when there is no relay (a
// socket name another user holds, a path too long for one, a platform
// without peer credentials) or when it cannot be reached. The write lock and the seq
// key still order every commit: the relay only decides who makes them.
//
// Whom a warden trusts: the socket is made mode 0600, and each side checks
// the other's user id (SO_PEERCRED) is its own; the relay says which file
// it writes (device and inode) and with which signing key, and a warden
// that finds another file or key there writes itself. A process running
// as the same user can write the store file directly, so the socket gives
// it nothing it did not have.
//
// When the relay closes, it stops accepting, answers every record it has
// read, then closes each connection before reading another: a warden that
// gets no answer knows its record was not read, or that the relay died
// while committing it (or took longer than relayAnswerWait). Either way it
// writes the record itself; if the relay had committed it, the unique
// index refuses the second copy, and the warden finds that very record in
// the store (Store.appendCall): never lost, never recorded twice. The next
// writer to find the relay gone takes the flock and becomes the relay.

// relayMagic opens the relay's greeting: version 1 of this protocol.
var relayMagic = [8]byte{'W', 'R', 'D', 'N', 'R', 'L', 'Y', '1'}

// aLongTimeAgo is a deadline in the past: setting it wakes a read or
// write waiting on a connection, which then fails.
var aLongTimeAgo = time.Unix(1, 0)

// Greeting: magic, the store file's device and inode, the public key.
const relayHelloSize = 8 + 8 + 8 + ed25519.PublicKeySize

// maxRelayRecord bounds one record's fields sent to the relay; a larger
// record is written by its warden itself.
const maxRelayRecord = maxBatchBytes

// Limits on the relay's side: connections it serves at once, and how
// many each warden opens to it (one per call recording at that moment).
const (
	maxRelayConns    = 256
	maxRelayPerPeer  = 32
	relayAnswerWait  = 10 * time.Second // a relay that does not answer by then is given up on
	relayHelloWait   = time.Second
	relayRetryPeriod = 50 * time.Millisecond // between attempts to reach or become the relay
)

// Answer status bytes.
const (
	relayOK      byte = 0 // committed
	relayErr     byte = 1 // refused or failed; the message says why; not written
	relayNotDone byte = 2 // not written (the relay is closing): write it yourself
)

type fileID struct{ dev, ino uint64 }

// relay is a store's side of the relay: serving the other wardens when it
// holds the flock, sending to the one that does otherwise.
type relay struct {
	w        *writer
	lockPath string
	sockPath string
	id       fileID
	pub      ed25519.PublicKey

	mu      sync.Mutex
	lead    *os.File // the flock held while this store is the relay
	ln      *net.UnixListener
	conns   map[*net.UnixConn]bool // served connections; true while a record is being committed
	serving sync.WaitGroup
	closing bool
	idle    []*relayConn // connections to the relay not in use
	open    int          // connections to the relay, idle or in use
	retryAt time.Time    // no new attempt to reach or become the relay before this
	closed  bool

	// leading mirrors lead != nil, read without mu on every record.
	leading atomic.Bool
}

// relayConn is a connection to the relay.
//
// Both ends wait for each other through the Go runtime's poller, as any
// net.Conn does: a goroutine waiting for a record or an answer is parked
// and its thread free. They were once blocking sockets, read with plain
// system calls; but a thread blocked in a system call keeps its P, and
// the runtime's monitor, finding Ps held in system calls, polls every
// 20 µs and hands them from thread to thread: in eight wardens sharing a
// store, half the relay's context switches were that monitor waking
// (docs/BENCHMARKS.md, "Issue 14, sixth round").
type relayConn struct {
	c   *net.UnixConn
	br  *bufio.Reader
	buf []byte
}

// schedEvent is what schedule (relay_linux.go) is told: a store of this
// process sent to a relay, began leading one, or stopped.
type schedEvent int

const (
	sending schedEvent = iota
	leading
	stoppedLeading
)

// relaySocket is where the relay of the store file id listens: in the
// user's runtime directory ($XDG_RUNTIME_DIR, mode 0700), or the system's
// temporary one, named by the file's device and inode, so every warden
// opening the file by whatever path (a link, a relative path) finds the
// same one. The relay is whoever holds an flock of the lock file beside
// it (the same name, .lock): one per store file, whatever path it was
// opened by. Not beside the
// store: a socket in the store's directory is a file that backups and
// scans of the directory cannot read, and the path there can be too long
// for one. In a shared temporary directory another user may take the name
// first; then there is no relay (this warden cannot listen, and finds
// another user at the other end when it connects), only the write lock.
func relaySocket(id fileID) string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if fi, err := os.Stat(dir); dir == "" || err != nil || !fi.IsDir() || !ownDir(fi) {
		dir = os.TempDir()
	}
	return filepath.Join(dir, fmt.Sprintf("warden-relay-%x-%x.sock", id.dev, id.ino))
}

// newRelay prepares the relay of the store at dbPath and tries to become
// it. It returns nil where there can be none (see relay_*.go).
func newRelay(w *writer, dbPath string) *relay {
	if !relaySupported {
		return nil
	}
	fi, err := os.Stat(dbPath)
	if err != nil {
		return nil
	}
	id, ok := fileIdentity(fi)
	if !ok {
		return nil
	}
	sock := relaySocket(id)
	if len(sock) >= maxSocketPath {
		return nil
	}
	r := &relay{w: w, lockPath: strings.TrimSuffix(sock, ".sock") + ".lock", sockPath: sock, id: id,
		pub: w.key.Public().(ed25519.PublicKey), conns: map[*net.UnixConn]bool{}}
	r.mu.Lock()
	r.tryLead()
	r.mu.Unlock()
	return r
}

// tryLead takes the relay's flock if it is free and starts serving; r.mu
// is held.
func (r *relay) tryLead() {
	if r.lead != nil || r.closed {
		return
	}
	// Never through a link someone else left at the name; only locked,
	// never written.
	f, err := os.OpenFile(r.lockPath, os.O_RDONLY|os.O_CREATE|noFollow, 0o600)
	if err != nil {
		return
	}
	if err := flock(f, true, false); err != nil {
		f.Close()
		return
	}
	// A relay that closes removes the lock file, holding its flock: if
	// this one locked a file so removed (opened just before), it is not
	// the relay; the next attempt opens the file now at the name.
	if held, err := f.Stat(); err != nil || !sameFile(held, r.lockPath) {
		f.Close()
		return
	}
	// Holding the flock, this store is the only one that may listen: a
	// socket file left here is a dead relay's.
	_ = os.Remove(r.sockPath)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: r.sockPath, Net: "unix"})
	if err != nil {
		f.Close()
		return
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(r.sockPath, 0o600); err != nil {
		ln.Close()
		f.Close()
		return
	}
	r.lead, r.ln, r.closing = f, ln, false
	r.leading.Store(true)
	schedule(leading)
	for _, c := range r.idle {
		c.c.Close()
	}
	r.open -= len(r.idle)
	r.idle = nil
	r.serving.Add(1)
	go r.accept(ln)
}

// sameFile reports whether name still names the file fi describes.
func sameFile(fi os.FileInfo, name string) bool {
	now, err := os.Lstat(name)
	return err == nil && os.SameFile(fi, now)
}

// accept serves the connections of other wardens until the listener is
// closed.
func (r *relay) accept(ln *net.UnixListener) {
	defer r.serving.Done()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // out of descriptors, say: not a spin
			continue
		}
		if !sameUser(c) {
			c.Close() // the warden writes its records itself
			continue
		}
		r.mu.Lock()
		if r.closing || len(r.conns) >= maxRelayConns {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c] = false
		r.serving.Add(1)
		r.mu.Unlock()
		go r.serve(c)
	}
}

// serve reads records from one warden and answers each once it is
// committed (or refused), until the warden closes the connection, sends
// something that is not a record, or the relay closes.
//
// Every write has a deadline: a warden that stops reading must not keep
// the relay from closing. Reads have none: a warden may send its next
// record whenever it likes, and Close stops the reading (CloseRead).
func (r *relay) serve(c *net.UnixConn) {
	defer r.serving.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	var hello [relayHelloSize]byte
	copy(hello[:], relayMagic[:])
	binary.BigEndian.PutUint64(hello[8:], r.id.dev)
	binary.BigEndian.PutUint64(hello[16:], r.id.ino)
	copy(hello[24:], r.pub)
	if err := writeWithin(c, hello[:], relayHelloWait); err != nil {
		return
	}
	br := bufio.NewReaderSize(c, 16<<10)
	var buf, answer []byte
	for {
		p, err := readRelayRecord(br, &buf)
		if err != nil {
			return // closed, malformed, or the relay closing (stopReading)
		}
		if cap(buf) > 1<<20 {
			buf = nil // not kept for every record after one large one
		}
		r.mu.Lock()
		if r.closing {
			// Read but not to be committed by a relay that is closing
			// (Close is waiting for this goroutine): say so, so the
			// warden writes it itself.
			r.mu.Unlock()
			writeWithin(c, relayAnswer(answer[:0], relayNotDone, ""), relayAnswerWait)
			return
		}
		r.conns[c] = true
		r.mu.Unlock()
		err = r.w.appendFor(context.Background(), p, true)
		r.mu.Lock()
		r.conns[c] = false
		closing := r.closing
		r.mu.Unlock()
		switch {
		case err == nil:
			answer = relayAnswer(answer[:0], relayOK, "")
		case errors.Is(err, errClosed):
			answer = relayAnswer(answer[:0], relayNotDone, "")
		default:
			answer = relayAnswer(answer[:0], relayErr, err.Error())
		}
		if err := writeWithin(c, answer, relayAnswerWait); err != nil || closing {
			return
		}
	}
}

// writeWithin writes b to c, giving up after wait.
func writeWithin(c *net.UnixConn, b []byte, wait time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}

// relayAnswer appends an answer: status, message length, message.
func relayAnswer(b []byte, status byte, msg string) []byte {
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	b = append(b, status)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// A record on the wire: its length (4 bytes, big-endian), then kind,
// session id, call id and time, each a 4-byte length and its bytes, then
// the body, the rest.
func appendRelayRecord(b []byte, p *pending) []byte {
	n := 16 + len(p.kind) + len(p.sessionID) + len(p.callID) + len(p.at) + len(p.body)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, s := range []string{p.kind, p.sessionID, p.callID, p.at} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return append(b, p.body...)
}

// relayed reports whether p is a record the relay commits for others:
// a call's start or finish, which needs no check but the unique index.
func relayed(p *pending) bool {
	return p.check == nil && p.callID != "" && p.duplicate == callDuplicate(p.kind) && p.duplicate != "" &&
		len(p.kind)+len(p.sessionID)+len(p.callID)+len(p.at)+len(p.body) <= maxRelayRecord
}

// readRelayRecord reads one record, into *buf (reused), and builds it as
// the sending warden would have. Anything but a well-formed call record
// is an error.
func readRelayRecord(br *bufio.Reader, buf *[]byte) (*pending, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 16 || n > maxRelayRecord+16 {
		return nil, errors.New("relay: record size out of bounds")
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	var f [4]string
	for i := range f {
		if len(b) < 4 {
			return nil, errors.New("relay: truncated record")
		}
		l := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(l) > uint64(len(b)) {
			return nil, errors.New("relay: truncated record")
		}
		f[i], b = string(b[:l]), b[l:]
	}
	kind, sessionID, callID, at := f[0], f[1], f[2], f[3]
	dup := callDuplicate(kind)
	if dup == "" || callID == "" {
		return nil, errors.New("relay: not a call record")
	}
	p := newPending(kind, sessionID, callID, at, string(b))
	p.duplicate = dup
	return p, nil
}

// send has the relay commit p, if there is one to reach and this store is
// not it. handled is false when the relay did not answer, so the caller
// writes the record itself (err is then nil); unanswered says it was sent
// and may have been committed all the same (the relay died, or was slow).
func (r *relay) send(ctx context.Context, p *pending) (handled, unanswered bool, err error) {
	if r.leading.Load() {
		return false, false, nil
	}
	if err := ctx.Err(); err != nil {
		return true, false, err
	}
	rc := r.get()
	if rc == nil {
		return false, false, nil
	}
	rc.buf = appendRelayRecord(rc.buf[:0], p)
	// The deadline is set before the context can move it to the past.
	if err := rc.c.SetDeadline(time.Now().Add(relayAnswerWait)); err != nil {
		r.drop(rc, false)
		return false, false, nil
	}
	stop := context.AfterFunc(ctx, func() { rc.c.SetDeadline(aLongTimeAgo) })
	status, msg, err := r.roundTrip(rc)
	if stopped := stop(); err != nil || !stopped {
		// The connection's deadline was moved, or it may still carry
		// an answer: it is not used again.
		r.drop(rc, err != nil && ctx.Err() == nil)
	} else {
		r.put(rc)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The record may yet be committed; as with a record of its
			// own the caller stopped waiting for, it is not durable as
			// far as the caller knows.
			return true, false, ctxErr
		}
		// No answer: the relay did not read it, or died committing
		// it. Written again by the caller, the unique index refuses
		// it if the relay had committed it (see Store.appendCall).
		return false, true, nil
	}
	switch status {
	case relayOK:
		return true, false, nil
	case relayErr:
		return true, false, errors.New(msg)
	default: // relayNotDone: the relay is closing, and did not write it
		r.mu.Lock()
		r.retryAt = time.Time{}
		r.mu.Unlock()
		return false, false, nil
	}
}

func (r *relay) roundTrip(rc *relayConn) (status byte, msg string, err error) {
	if _, err := rc.c.Write(rc.buf); err != nil {
		return 0, "", err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(rc.br, hdr[:]); err != nil {
		return 0, "", err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 4096 || hdr[0] > relayNotDone {
		return 0, "", errors.New("relay: malformed answer")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rc.br, b); err != nil {
		return 0, "", err
	}
	return hdr[0], string(b), nil
}

// get returns an idle connection to the relay, or a new one, or nil when
// there is no relay to reach now (and then tries to become it).
func (r *relay) get() *relayConn {
	r.mu.Lock()
	if n := len(r.idle); n > 0 {
		rc := r.idle[n-1]
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		return rc
	}
	if r.closed || r.open >= maxRelayPerPeer || time.Now().Before(r.retryAt) {
		r.mu.Unlock()
		return nil
	}
	r.open++
	r.mu.Unlock()
	rc, err := r.dial()
	if err != nil {
		r.mu.Lock()
		r.open--
		r.retryAt = time.Now().Add(relayRetryPeriod)
		// No relay, or one this store will not use: become it, if the
		// flock is free (it is not, while another serves).
		r.tryLead()
		r.mu.Unlock()
		return nil
	}
	return rc
}

// dial connects to the relay and checks its greeting: the same user, the
// same store file, the same key.
func (r *relay) dial() (*relayConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: r.sockPath, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if !sameUser(c) {
		c.Close()
		return nil, errors.New("relay: another user")
	}
	if err := c.SetReadDeadline(time.Now().Add(relayHelloWait)); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	var hello [relayHelloSize]byte
	if _, err := io.ReadFull(br, hello[:]); err != nil {
		c.Close()
		return nil, err
	}
	id := fileID{binary.BigEndian.Uint64(hello[8:]), binary.BigEndian.Uint64(hello[16:])}
	if [8]byte(hello[:8]) != relayMagic || id != r.id || !r.pub.Equal(ed25519.PublicKey(hello[24:])) {
		c.Close()
		return nil, fmt.Errorf("relay: another store or key")
	}
	schedule(sending)
	return &relayConn{c: c, br: br}, nil
}

func (r *relay) put(rc *relayConn) {
	if cap(rc.buf) > 1<<20 {
		rc.buf = nil // not kept for every record after one large one
	}
	r.mu.Lock()
	if r.closed || r.leading.Load() {
		r.open--
		r.mu.Unlock()
		rc.c.Close()
		return
	}
	r.idle = append(r.idle, rc)
	r.mu.Unlock()
}

// drop closes a connection that is not to be used again. When the relay
// may be gone, the idle ones go too, and the next record tries to reach
// or become it at once.
func (r *relay) drop(rc *relayConn, gone bool) {
	rc.c.Close()
	r.mu.Lock()
	r.open--
	if gone {
		for _, c := range r.idle {
			c.c.Close()
		}
		r.open -= len(r.idle)
		r.idle = nil
		r.retryAt = time.Time{}
	}
	r.mu.Unlock()
}

// close stops serving (answering what was read, reading nothing more) and
// closes the connections to the relay. The writer is still open: records
// being committed for other wardens finish first.
func (r *relay) close() {
	r.mu.Lock()
	r.closed, r.closing = true, true
	if r.ln != nil {
		r.ln.Close()
	}
	for c, busy := range r.conns {
		if !busy {
			// Waiting for the next record: stop waiting (the read
			// finds the end of the stream; answers still go out). One
			// being read is not committed (serve checks closing).
			c.CloseRead()
		}
	}
	for _, c := range r.idle {
		c.c.Close()
	}
	r.idle = nil
	r.mu.Unlock()
	r.serving.Wait()
	r.mu.Lock()
	if r.lead != nil {
		// Removed while locked, so no file is left behind (tryLead
		// checks that the file it locked is still the one at the name);
		// closing releases the flock: another warden may lead.
		os.Remove(r.lockPath)
		r.lead.Close()
		r.lead = nil
		r.leading.Store(false)
		schedule(stoppedLeading)
	}
	r.mu.Unlock()
}

// callDuplicate is the refusal of a second start or finish of a call, for
// the two call record kinds, and "" for any other kind.
func callDuplicate(kind string) string {
	switch kind {
	case recorder.KindCallStart:
		return "call was already started"
	case recorder.KindCallFinish:
		return "call was already finished"
	}
	return ""
}
