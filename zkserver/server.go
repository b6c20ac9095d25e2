package zkserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// Server is a journal node's ZooKeeper-protocol port: it accepts client
// connections, runs their sessions through the journal and answers every
// request the way ZooKeeper 3.8 does. New starts it; Close stops it.
type Server struct {
	cfg    Config
	node   *raftjournal.Node
	fsm    *raftjournal.FSM
	logger *slog.Logger
	ln     net.Listener // plain; nil without Config.Addr
	tlsLn  net.Listener // TLS; nil without Config.SecureAddr
	m      *metrics
	start  time.Time

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	conns     map[*conn]struct{}
	perIP     map[string]int
	bySession map[int64]*conn
	local     map[int64]*localSession // shadow-phase sessions (see doc.go)
	touched   map[int64]struct{}      // journal sessions heard from since the last flush
	closed    bool

	localSeq atomic.Int64 // low bits of the next local session id
	stats    serverStats

	closeOnce sync.Once
}

// localSession is a session of the shadow phase, kept by this node only.
type localSession struct {
	timeoutMs int32
	conn      *conn     // attached connection, nil while detached
	detached  time.Time // when the last connection left
}

// serverStats are the counters srvr, stat and mntr report.
type serverStats struct {
	received, sent atomic.Int64
	latencyStats                // every request
	reads, updates latencyStats // mntr's readlatency and updatelatency

	bytesReceived      atomic.Int64
	connectionRequests atomic.Int64 // connect requests (connection_request_count)
	connectionRejected atomic.Int64 // closed at accept (maxClientCnxns)
	authFailed         atomic.Int64
	tlsHandshakes      atomic.Int64 // in progress
	lastResponseSize   atomic.Int64
	minResponseSize    atomic.Int64 // 0: none yet
	maxResponseSize    atomic.Int64
}

// latencyStats is a min/avg/max/count summary of request latencies.
type latencyStats struct {
	minLatency   atomic.Int64 // ns; 0: none yet
	maxLatency   atomic.Int64
	totalLatency atomic.Int64
	count        atomic.Int64
}

func (st *latencyStats) reset() {
	st.count.Store(0)
	st.totalLatency.Store(0)
	st.minLatency.Store(0)
	st.maxLatency.Store(0)
}

// ms returns min, average and max in milliseconds (ZooKeeper's units).
func (st *latencyStats) ms() (minMs int64, avgMs float64, maxMs int64) {
	if n := st.count.Load(); n > 0 {
		avgMs = float64(st.totalLatency.Load()) / float64(n) / 1e6
	}
	return st.minLatency.Load() / 1e6, avgMs, st.maxLatency.Load() / 1e6
}

func (st *serverStats) response(size int64) {
	st.lastResponseSize.Store(size)
	storeMax(&st.maxResponseSize, size)
	storeMin(&st.minResponseSize, size)
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// storeMin keeps the smallest value, 0 meaning none yet.
func storeMin(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if (cur != 0 && x >= cur) || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

func (st *latencyStats) observe(d time.Duration) {
	ns := max(d.Nanoseconds(), 1)
	st.count.Add(1)
	st.totalLatency.Add(ns)
	storeMax(&st.maxLatency, ns)
	storeMin(&st.minLatency, ns)
}

// New starts serving the ZooKeeper protocol for node on cfg.Addr.
func New(node *raftjournal.Node, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, node: node, fsm: node.FSM(), logger: logger, start: time.Now(),
		conns: map[*conn]struct{}{}, perIP: map[string]int{}, bySession: map[int64]*conn{},
		local: map[int64]*localSession{}, touched: map[int64]struct{}{},
	}
	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("zkserver: listen on client address %s: %w", cfg.Addr, err)
		}
		s.ln = ln
	}
	if cfg.SecureAddr != "" {
		ln, err := net.Listen("tcp", cfg.SecureAddr)
		if err != nil {
			if s.ln != nil {
				s.ln.Close()
			}
			return nil, fmt.Errorf("zkserver: listen on secure client address %s: %w", cfg.SecureAddr, err)
		}
		s.tlsLn = ln
	}
	s.localSeq.Store(time.Now().UnixMilli() & (1<<40 - 1))
	s.m = newMetrics(s, cfg.Registerer)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	node.SetClientPort(func() raftjournal.ClientPort {
		return raftjournal.ClientPort{Addr: s.Addr(), SecureAddr: s.SecureAddr(), Connections: s.ConnectionCount()}
	})
	s.wg.Add(1)
	go s.housekeeping()
	if s.ln != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.ln, false)
		logger.Info("zookeeper client port listening", "client-addr", s.Addr())
	}
	if s.tlsLn != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.tlsLn, true)
		logger.Info("zookeeper secure client port listening", "secure-client-addr", s.SecureAddr())
	}
	return s, nil
}

// Addr returns the bound client address ("" without a plain port).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// SecureAddr returns the bound secure (TLS) client address ("" without one).
func (s *Server) SecureAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// ConnectionCount returns the open client connections.
func (s *Server) ConnectionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops accepting, closes every connection (sessions live on in the
// journal until they expire, so clients resume them on another node) and
// waits for the server's goroutines. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.node.SetClientPort(nil)
		var err error
		for _, ln := range []net.Listener{s.ln, s.tlsLn} {
			if ln != nil {
				if e := ln.Close(); e != nil && err == nil {
					err = e
				}
			}
		}
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.close("server closing")
		}
		s.wg.Wait()
		s.m.unregister()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.logger.Warn("closing client listener", "error", err)
		}
	})
	return nil
}

func (s *Server) acceptLoop(ln net.Listener, secure bool) {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.logger.Warn("accept failed", "error", err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ip := remoteIP(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		if lim := s.cfg.MaxClientConnsPerIP; lim > 0 && s.perIP[ip] >= lim {
			s.mu.Unlock()
			s.m.refused.Inc()
			s.stats.connectionRejected.Add(1)
			s.logger.Warn("too many connections from one address; closing the new one", "remote", nc.RemoteAddr().String(), "max", lim)
			nc.Close()
			continue
		}
		if secure {
			nc = tls.Server(nc, s.cfg.TLS)
		}
		c := newConn(s, nc, ip)
		s.conns[c] = struct{}{}
		s.perIP[ip]++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

// forget removes a closed connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
	if id := c.sessionID.Load(); id != 0 {
		if s.bySession[id] == c {
			delete(s.bySession, id)
		}
		if ls := s.local[id]; ls != nil && ls.conn == c {
			ls.conn = nil
			ls.detached = time.Now()
		}
	}
}

// attach makes c the connection of a session on this node, closing the one
// it replaces (ZooKeeper closes a session's old connection on reconnect).
func (s *Server) attach(id int64, c *conn) {
	s.mu.Lock()
	old := s.bySession[id]
	s.bySession[id] = c
	if ls := s.local[id]; ls != nil {
		ls.conn = c
	}
	s.mu.Unlock()
	if old != nil && old != c {
		old.close("session reconnected on another connection")
	}
}

// touch records that a journal session was heard from.
func (s *Server) touch(id int64) {
	s.mu.Lock()
	s.touched[id] = struct{}{}
	s.mu.Unlock()
}

// housekeeping flushes session touches to the leader every half tick (one
// request for all of this node's sessions), expires detached local sessions,
// and drops connections when the phase leaves shadow (local sessions end) or
// a snapshot restore replaced the state (no watch fired for it).
func (s *Server) housekeeping() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.TickTime/2, 10*time.Millisecond))
	defer t.Stop()
	restores := s.fsm.Restores()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.flushTouches()
		if r := s.fsm.Restores(); r != restores {
			restores = r
			s.closeAll("the journal state was replaced by a snapshot")
		}
		s.expireLocal(s.fsm.Phase() != raftjournal.PhaseShadow)
	}
}

func (s *Server) flushTouches() {
	s.mu.Lock()
	if len(s.touched) == 0 {
		s.mu.Unlock()
		return
	}
	ids := make([]int64, 0, len(s.touched))
	for id := range s.touched {
		ids = append(ids, id)
	}
	clear(s.touched)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.TickTime)
	defer cancel()
	rep, err := s.node.TouchSessions(ctx, ids)
	if err != nil {
		if s.ctx.Err() == nil {
			s.logger.Debug("session touches did not reach the leader; retrying next tick", "sessions", len(ids), "error", err)
			s.mu.Lock()
			for _, id := range ids {
				s.touched[id] = struct{}{}
			}
			s.mu.Unlock()
		}
		return
	}
	s.m.touchBatches.Inc()
	for _, list := range []struct {
		ids []int64
		why string
	}{{rep.Expired, "expired"}, {rep.Moved, "moved to another node"}} {
		for _, id := range list.ids {
			s.mu.Lock()
			c := s.bySession[id]
			s.mu.Unlock()
			if c != nil && list.why == "expired" && c.ending.Load() {
				// Its own closeSession ended the session: that path answers
				// the client and then closes (closing here first lost the
				// reply, as ZooKeeper never does).
				continue
			}
			if c != nil {
				if list.why != "expired" {
					s.m.sessionsMoved.Inc()
				}
				c.close(fmt.Sprintf("session 0x%x %s", id, list.why))
			}
		}
	}
}

// expireLocal ends local sessions detached for longer than their timeout,
// and all of them (closing their connections) once the journal left shadow.
func (s *Server) expireLocal(all bool) {
	now := time.Now()
	var drop []*conn
	s.mu.Lock()
	for id, ls := range s.local {
		switch {
		case all:
			if ls.conn != nil {
				drop = append(drop, ls.conn)
			}
			delete(s.local, id)
		case ls.conn == nil && now.Sub(ls.detached) > time.Duration(ls.timeoutMs)*time.Millisecond:
			delete(s.local, id)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		c.close("the journal left the shadow phase; read-only sessions end")
	}
}

func (s *Server) closeAll(why string) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(why)
	}
}

// newLocalSession registers a shadow-phase session and returns its id:
// top byte 0x7B (journal sessions use 0x7A, ZooKeeper's its server id), then
// a byte of this node's id hash, then a counter seeded from the clock.
func (s *Server) newLocalSession(timeoutMs int32) int64 {
	h := byte(0)
	for _, b := range []byte(s.node.ID()) {
		h = h*31 + b
	}
	id := int64(0x7B)<<56 | int64(h)<<48 | s.localSeq.Add(1)&(1<<48-1)
	s.mu.Lock()
	s.local[id] = &localSession{timeoutMs: timeoutMs}
	s.mu.Unlock()
	return id
}

// lookupLocal reports whether id is a live local session of this node.
func (s *Server) lookupLocal(id int64) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.local[id]
	if ls == nil {
		return 0, false
	}
	return ls.timeoutMs, true
}

func (s *Server) endLocal(id int64) {
	s.mu.Lock()
	delete(s.local, id)
	s.mu.Unlock()
}

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}
