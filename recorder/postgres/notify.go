package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
)

// approvalChannel is the NOTIFY channel a committed approval change is
// announced on; the payload is the request's id.
const approvalChannel = "warden_approvals"

// listener holds one connection that LISTENs for approval changes from
// every instance and wakes the calls waiting for them. It starts with the
// first watch and runs until the store closes; when its connection fails
// it wakes every watcher (a signal may have been missed) and reconnects,
// and meanwhile the approval stage's poll is the fallback.
type listener struct {
	mu       sync.Mutex
	started  bool
	watchers map[string]map[chan struct{}]struct{}
}

// WatchApproval implements warden.ApprovalWatcher.
func (s *Store) WatchApproval(ctx context.Context, id string) (<-chan struct{}, func()) {
	l := &s.listen
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.watchers == nil {
		l.watchers = map[string]map[chan struct{}]struct{}{}
	}
	if l.watchers[id] == nil {
		l.watchers[id] = map[chan struct{}]struct{}{}
	}
	l.watchers[id][ch] = struct{}{}
	if !l.started {
		l.started = true
		go s.listenLoop()
	}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.watchers[id], ch)
		if len(l.watchers[id]) == 0 {
			delete(l.watchers, id)
		}
		l.mu.Unlock()
	}
}

// wake signals the watchers of id, or every watcher when all is set.
func (l *listener) wake(id string, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	signal := func(set map[chan struct{}]struct{}) {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if all {
		for _, set := range l.watchers {
			signal(set)
		}
		return
	}
	signal(l.watchers[id])
}

func (s *Store) listenLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-s.closed
		cancel()
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := s.listenOnce(ctx); err != nil && ctx.Err() == nil {
			s.listen.wake("", true)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// listenOnce connects, LISTENs and delivers notifications until the
// connection fails or ctx ends. The connection is its own, not the
// pool's: a LISTENing session must stay open.
func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+approvalChannel); err != nil {
		return err
	}
	// Changes made before the LISTEN took effect were not announced to
	// this connection: have every waiting call look again.
	s.listen.wake("", true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.listen.wake(n.Payload, false)
	}
}

var _ warden.ApprovalWatcher = (*Store)(nil)
