package exporter

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
)

// replyTracker records the zxids in the reply headers a session receives:
// the walk needs them for the zxid range it records (the sync reply's zxid is
// where the walk starts, the highest reply zxid is a bound on every state it
// read). go-zookeeper reads every reply's zxid but does not expose it, so a
// classic session's connections pass through zkclient.Guard, which reports
// the reply headers (requests only: xid ≥ 0) as they pass; a multiRead
// session's zkclient.Client reports them (Config.OnReply).
type replyTracker struct {
	last atomic.Int64 // zxid of the most recent reply carrying one
	max  *atomicMax   // shared by every connection of a walk
}

func (t *replyTracker) observe(z int64) {
	t.last.Store(z)
	if t.max != nil {
		t.max.observe(z)
	}
}

// atomicMax keeps the largest value observed.
type atomicMax struct{ v atomic.Int64 }

func (m *atomicMax) observe(z int64) {
	for {
		cur := m.v.Load()
		if z <= cur || m.v.CompareAndSwap(cur, z) {
			return
		}
	}
}

func (m *atomicMax) load() int64 { return m.v.Load() }

// spreadHosts is a go-zookeeper HostProvider that starts at a given server of the
// (sorted) list, so that a walk's sessions land on different servers and share the
// read load, and that leaves host names unresolved, so that a TLS dialer sees the
// name it must verify. It otherwise behaves as go-zookeeper's DNSHostProvider.
type spreadHosts struct {
	mu         sync.Mutex
	first      int
	servers    []string
	curr, last int
}

func (h *spreadHosts) Init(servers []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(servers) == 0 {
		return fmt.Errorf("exporter: no servers")
	}
	h.servers = slices.Clone(servers)
	slices.Sort(h.servers)
	h.curr = (h.first%len(h.servers) + len(h.servers) - 1) % len(h.servers)
	h.last = -1
	return nil
}

func (h *spreadHosts) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

func (h *spreadHosts) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.servers)
	retryStart := h.curr == h.last
	if h.last == -1 {
		h.last = h.curr
	}
	return h.servers[h.curr], retryStart
}

func (h *spreadHosts) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.curr
}

// session is one of a walk's ZooKeeper connections.
//
// go-zookeeper reconnects by itself, to another server if need be, and keeps
// the session (its lastZxid keeps a reconnect from landing on a server behind
// what the session has seen). When the ensemble expires the session,
// go-zookeeper opens a new one on the same connection and re-sends the
// credentials, but the new session starts with no zxid floor: until it has
// synced, a lagging server could answer with a tree older than the walk's start.
// So every read checks that it was answered within the session the walk last
// synced (syncedID); if not, resync syncs the new session first and the read is
// retried.
type session struct {
	index int
	w     *Walker

	mu       sync.Mutex
	conn     sessionConn
	tracker  *replyTracker
	syncedID int64 // the session id the last sync was answered in
	syncZxid int64 // zxid of the sync that opened the first session
	closed   bool
}

// open establishes the session and syncs it with the leader, so that every read
// it serves reflects at least every transaction committed before the walk.
func (s *session) open(ctx context.Context) error {
	conn, tr, syncZxid, err := s.w.dial(ctx, s.index)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return ErrWalkerClosed
	}
	s.conn, s.tracker, s.syncZxid, s.syncedID = conn, tr, syncZxid, conn.SessionID()
	return nil
}

// sessionConn is what a walk's session reads over: a go-zookeeper *zk.Conn,
// or a *wireSession (a zkclient.Client) in a multiRead walk. Both reconnect
// by themselves and open a new session when the old one expired.
type sessionConn interface {
	SessionID() int64
	Sync(path string) (string, error)
	Close()
}

// current returns the connection and the session id reads must be answered in;
// nil once closed.
func (s *session) current() (sessionConn, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, s.syncedID
}

// resync syncs the connection's current session if it is not the one last
// synced: the old one expired and go-zookeeper made a new one.
func (s *session) resync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrWalkerClosed
	}
	id := s.conn.SessionID()
	if id == s.syncedID && id != 0 {
		return nil
	}
	if err := s.w.limiter.wait(ctx, 1); err != nil {
		return err
	}
	s.w.stats.requests.Add(1)
	if _, err := s.conn.Sync("/"); err != nil {
		return err
	}
	if after := s.conn.SessionID(); after != id || id == 0 {
		return zk.ErrSessionExpired // changed again under the sync; try again
	}
	s.syncedID = id
	s.w.stats.renewed.Add(1)
	s.w.cfg.Logger.Info("session expired, continuing on a new session", "session", s.index, "id", fmt.Sprintf("%#x", id))
	return nil
}

// close closes the connection; it is idempotent.
func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// dial opens the index-th session: connect, authenticate, sync. It returns the
// zxid of the sync reply.
func (w *Walker) dial(ctx context.Context, index int) (sessionConn, *replyTracker, int64, error) {
	tr := &replyTracker{max: &w.maxReply}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	defer cancel()
	var conn sessionConn
	var err error
	if w.multiRead {
		conn, err = w.dialWire(cctx, index, tr)
	} else {
		conn, err = w.dialClassic(cctx, index, tr)
	}
	if err != nil {
		return nil, nil, 0, err
	}
	if err := w.limiter.wait(ctx, 1); err != nil {
		conn.Close()
		return nil, nil, 0, err
	}
	w.stats.requests.Add(1)
	if _, err := conn.Sync("/"); err != nil {
		where := ""
		if s, ok := conn.(interface{ Server() string }); ok {
			where = " with " + s.Server()
		}
		conn.Close()
		return nil, nil, 0, fmt.Errorf("exporter: sync%s: %w", where, err)
	}
	return conn, tr, tr.last.Load(), nil
}

// dialClassic opens a go-zookeeper session whose replies feed tr.
func (w *Walker) dialClassic(ctx context.Context, index int, tr *replyTracker) (sessionConn, error) {
	conn, err := Connect(ctx, w.cfg.Hosts, ConnectOptions{
		SessionTimeout: w.cfg.SessionTimeout,
		Auth:           w.cfg.Auth,
		Logger:         w.cfg.Logger,
		MaxBufferSize:  w.cfg.MaxBufferSize,
		Dialer:         w.cfg.Dialer,
		FirstHost:      index,
		OnReply: func(xid int32, zxid int64) {
			if xid >= 0 && zxid > 0 {
				tr.observe(zxid)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}
