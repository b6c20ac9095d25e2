package zkserver

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// conn is one client connection. Two goroutines serve it: serve reads and
// decodes frames into an ordered queue, and process answers them one at a
// time in that order, writing each reply after the watch events already
// waiting (see "Ordering" in doc.go).
type conn struct {
	s  *Server
	nc net.Conn
	ip string
	br *bufio.Reader
	bw *bufio.Writer // process only (and the handshake before it starts)

	sessionID atomic.Int64
	// ending is set while the client's closeSession runs: the session's
	// disappearance is then this connection's own doing, and its reply must
	// be written before the connection closes.
	ending  atomic.Bool
	timeout time.Duration // negotiated
	local   bool          // a shadow-phase session of this node
	auth    []znode.ID    // certificate and addauth identities, then ip (process only)
	certIDs []znode.ID    // x509 (and super) from a verified client certificate
	watcher *raftjournal.Watcher

	queue  requestQueue
	slots  *semaphore.Weighted // outstanding requests (MaxOutstanding)
	budget *semaphore.Weighted // outstanding request bytes
	done   chan struct{}       // closed by close
	ctx    context.Context     // ends with close (or the server)
	cancel context.CancelFunc
	once   sync.Once

	// counters for cons and mntr
	received, sent atomic.Int64
	lastZxid       atomic.Int64
	lastCxid       atomic.Int64 // xid of the last reply
	lastResponse   atomic.Int64 // ms since the server started
	lastLatency    atomic.Int64 // ns
	latency        latencyStats
	connected      time.Time
	lastOp         atomic.Value // string
}

// request is one decoded client request waiting in the queue.
type request struct {
	hdr  zkwire.RequestHeader
	body zkwire.Request // nil for the header-only requests
	size int64          // frame bytes held in the budget
	at   time.Time
}

func newConn(s *Server, nc net.Conn, ip string) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{
		ctx: ctx, cancel: cancel,
		s: s, nc: nc, ip: ip,
		br:        bufio.NewReaderSize(nc, connBufferSize),
		bw:        bufio.NewWriterSize(nc, connBufferSize),
		queue:     requestQueue{ready: make(chan struct{}, 1)},
		slots:     semaphore.NewWeighted(int64(s.cfg.MaxOutstanding)),
		budget:    semaphore.NewWeighted(s.cfg.MaxOutstandingBytes),
		done:      make(chan struct{}),
		connected: time.Now(),
	}
}

// close ends the connection once; the client reconnects (to this node or
// another) and resumes its session.
func (c *conn) close(why string) {
	c.once.Do(func() {
		close(c.done)
		c.cancel()
		c.nc.Close()
		if why != "" {
			c.s.logger.Debug("closing client connection", "remote", c.nc.RemoteAddr().String(),
				"session", fmt.Sprintf("%#x", c.sessionID.Load()), "reason", why)
		}
	})
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// serve runs the connection: the first message (a four-letter word or a
// connect request), then the request loop.
func (c *conn) serve() {
	defer c.s.forget(c)
	defer c.close("")
	c.s.m.connections.Inc()
	defer c.s.m.connections.Dec()
	if tc, ok := c.nc.(*tls.Conn); ok && !c.tlsHandshake(tc) {
		return
	}
	// A client gets one session timeout's worth of the default to say anything.
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.maxTimeout()))
	fr := zkwire.NewFrameReader(c.br, c.s.cfg.maxBuffer())
	payload, word, err := fr.NextFirst()
	if err != nil {
		c.logBad("first frame", err)
		return
	}
	if word != 0 {
		c.fourLetterWord(word)
		return
	}
	c.s.stats.bytesReceived.Add(int64(len(payload)) + 4)
	req, err := zkwire.DecodeConnectRequest(payload)
	if err != nil {
		c.logBad("connect request", err)
		return
	}
	c.s.stats.connectionRequests.Add(1)
	if !c.handshake(req) {
		return
	}
	c.watcher = raftjournal.NewWatcher(c.s.cfg.WatchQueue)
	defer c.watcher.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.process()
	}()
	c.readLoop(fr)
	c.close("")
	wg.Wait()
}

// logBad logs a connection that sent something undecodable, naming the peer;
// a plain disconnect is not worth a line.
func (c *conn) logBad(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || c.closed() {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.s.logger.Info("client connection idle past its timeout; closing", "remote", c.nc.RemoteAddr().String(), "while", what)
		return
	}
	c.s.m.badRequests.Inc()
	c.s.logger.Warn("closing client connection: undecodable input", "remote", c.nc.RemoteAddr().String(),
		"session", fmt.Sprintf("%#x", c.sessionID.Load()), "while", what, "error", err)
}

// expiredResponse is ZooKeeper's answer to a reconnect it will not resume.
func expiredResponse(req zkwire.ConnectRequest) zkwire.ConnectResponse {
	return zkwire.ConnectResponse{Passwd: make([]byte, passwordLen), HasReadOnly: req.HasReadOnly}
}

// handshake opens or resumes the session and answers the connect request.
// It reports whether the connection goes on.
func (c *conn) handshake(req zkwire.ConnectRequest) bool {
	s := c.s
	timeoutMs := s.cfg.negotiate(req.TimeOut)
	ctx, cancel := context.WithTimeout(c.ctx, time.Duration(timeoutMs)*time.Millisecond)
	defer cancel()

	// A client that has seen a newer state than this node has applied must
	// not go back in time: ZooKeeper closes without an answer so that it
	// tries another server. This node first catches up with the leader, so a
	// follower a little behind still serves it.
	if req.LastZxidSeen > s.fsm.LastZxid() {
		if err := s.node.Sync(ctx); err != nil || req.LastZxidSeen > s.fsm.LastZxid() {
			s.logger.Info("refusing a client that has seen a newer zxid than this node applied",
				"remote", c.nc.RemoteAddr().String(), "client-zxid", fmt.Sprintf("%#x", req.LastZxidSeen),
				"node-zxid", fmt.Sprintf("%#x", s.fsm.LastZxid()))
			return false
		}
	}
	shadow := s.fsm.Phase() == raftjournal.PhaseShadow
	resp := zkwire.ConnectResponse{TimeOut: timeoutMs, HasReadOnly: req.HasReadOnly, ReadOnly: req.ReadOnly && shadow}
	id := req.SessionID
	switch {
	case id == 0 && shadow:
		id = s.newLocalSession(timeoutMs)
		c.local = true
	case id == 0:
		res, err := s.node.Submit(ctx, &raftjournal.CreateSession{TimeoutMs: timeoutMs})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			s.logger.Warn("could not open a session", "remote", c.nc.RemoteAddr().String(), "error", err)
			return false
		}
		id = res.Session
		if err := s.node.WaitApplied(ctx, res.Index); err != nil {
			return false
		}
		s.m.sessionsCreated.Inc()
	default:
		ok, local, err := c.resumable(ctx, id, req.Passwd)
		if err != nil {
			// The journal could not tell (no leader within the timeout): close
			// without an answer, so the client tries again, keeping its session.
			s.logger.Info("could not validate a reconnecting session; closing without an answer", "remote", c.nc.RemoteAddr().String(),
				"session", fmt.Sprintf("%#x", id), "error", err)
			return false
		}
		if !ok {
			s.m.sessionsRefused.Inc()
			s.logger.Info("refusing to resume an expired or unknown session", "remote", c.nc.RemoteAddr().String(),
				"session", fmt.Sprintf("%#x", id))
			c.writeRecord(expiredResponse(req))
			return false
		}
		c.local = local
	}
	resp.SessionID = id
	resp.Passwd = SessionPassword(id)
	c.sessionID.Store(id)
	c.timeout = time.Duration(timeoutMs) * time.Millisecond
	c.auth = append(append([]znode.ID(nil), c.certIDs...), znode.ID{Scheme: "ip", ID: c.ip})
	s.attach(id, c)
	if !c.local {
		s.touch(id)
	}
	return c.writeRecord(resp)
}

// resumable decides whether a reconnect may resume session id: the password
// must be ZooKeeper's for the id, and the session must be live — a local
// session of this node, or in the journal's table once this node has caught
// up with the leader, confirmed by the leader, which records this node as the
// session's owner (ClaimSessions): a connection the session left on another
// node is closed there, and its writes are refused. err is set when the
// journal could not tell.
func (c *conn) resumable(ctx context.Context, id int64, passwd []byte) (ok, local bool, err error) {
	s := c.s
	if subtle.ConstantTimeCompare(passwd, SessionPassword(id)) != 1 {
		return false, false, nil
	}
	if _, ok := s.lookupLocal(id); ok {
		return true, true, nil
	}
	if _, ok := s.fsm.Session(id); !ok {
		if err := s.node.Sync(ctx); err != nil {
			return false, false, err
		}
		if _, ok := s.fsm.Session(id); !ok {
			return false, false, nil
		}
	}
	rep, err := s.node.ClaimSessions(ctx, []int64{id})
	if err != nil {
		return false, false, err
	}
	return len(rep.Expired) == 0, false, nil
}

// writeRecord writes a connect response; it reports success.
func (c *conn) writeRecord(r zkwire.ConnectResponse) bool {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.maxTimeout()))
	if _, err := c.bw.Write(zkwire.AppendRecordFrame(nil, &r)); err != nil {
		return false
	}
	return c.bw.Flush() == nil
}

// readLoop decodes requests into the queue until the connection ends. A
// connection that goes quiet for its session timeout is closed (its session
// then expires on the leader unless it reconnects), and one that sends what
// does not decode is closed with a log line.
func (c *conn) readLoop(fr *zkwire.FrameReader) {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
		payload, err := fr.Next()
		if err != nil {
			c.logBad("request frame", err)
			return
		}
		size := int64(len(payload)) + 4
		c.received.Add(1)
		c.s.stats.received.Add(1)
		c.s.stats.bytesReceived.Add(size)
		hdr, body, err := zkwire.SplitRequest(payload)
		if err != nil {
			c.logBad("request header", err)
			return
		}
		req := &request{hdr: hdr, size: min(size, c.s.cfg.MaxOutstandingBytes), at: time.Now()}
		if zkwire.KnownOp(hdr.Op) {
			if req.body, err = zkwire.DecodeRequest(hdr.Op, body); err != nil {
				c.logBad("request body of "+hdr.Op.String(), err)
				return
			}
		}
		if err := c.slots.Acquire(c.ctx, 1); err != nil {
			return
		}
		if err := c.budget.Acquire(c.ctx, req.size); err != nil {
			return
		}
		c.s.m.outstanding.Inc()
		c.queue.push(req)
	}
}

// connBufferSize is a connection's read and write buffer: small, since a
// server holds one pair per client (a frame larger than it passes through
// in pieces, or straight to the socket).
const connBufferSize = 4 << 10

// requestQueue is a connection's requests read and not yet answered, in
// order. It holds what is waiting and nothing more (the slots and budget
// semaphores bound it), so an idle connection costs a few words.
type requestQueue struct {
	mu    sync.Mutex
	items []*request
	ready chan struct{} // capacity 1: signalled when the queue turns non-empty
}

func (q *requestQueue) push(r *request) {
	q.mu.Lock()
	q.items = append(q.items, r)
	if len(q.items) == 1 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	q.mu.Unlock()
}

// maxWriteBatch caps the pipelined writes of a session submitted together.
const maxWriteBatch = 64

// popIf returns the oldest request if ok accepts it, or nil.
func (q *requestQueue) popIf(ok func(*request) bool) *request {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 || !ok(q.items[0]) {
		return nil
	}
	r := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return r
}

// pop returns the oldest request, or nil.
func (q *requestQueue) pop() *request {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	r := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return r
}

func (q *requestQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// process answers the queued requests in order and delivers watch events in
// between. It ends when the connection closes or a request ends it.
func (c *conn) process() {
	defer c.close("")
	for {
		select {
		case <-c.done:
			return
		case <-c.watcher.Ready():
			if !c.drainEvents() || !c.flushIfIdle() {
				return
			}
		case <-c.queue.ready:
			for req := c.queue.pop(); req != nil; req = c.queue.pop() {
				batch := []*request{req}
				if pipelined(req.hdr.Op) {
					// The writes the client pipelined behind this one go
					// with it, in order (Node.SubmitInOrder).
					for len(batch) < maxWriteBatch {
						next := c.queue.popIf(func(r *request) bool { return pipelined(r.hdr.Op) })
						if next == nil {
							break
						}
						batch = append(batch, next)
					}
				}
				var keep bool
				if len(batch) > 1 {
					if !c.local {
						c.s.touch(c.sessionID.Load())
					}
					keep = c.submitWrites(batch)
				} else {
					keep = c.answer(req)
				}
				for _, r := range batch {
					c.budget.Release(r.size)
					c.slots.Release(1)
					c.s.m.outstanding.Dec()
				}
				if !keep || !c.flushIfIdle() {
					return
				}
			}
		}
	}
}

func (c *conn) overflowed() {
	c.s.logger.Warn("client's watch events overflowed its queue; closing the connection so it re-registers",
		"remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("%#x", c.sessionID.Load()), "queue", c.s.cfg.WatchQueue)
	c.close("watch queue overflow")
}

// flushIfIdle flushes the writer unless more requests are already waiting
// (their replies go out in the same write).
func (c *conn) flushIfIdle() bool {
	if c.queue.len() > 0 {
		return true
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.bw.Flush(); err != nil {
		c.close("write failed: " + err.Error())
		return false
	}
	return true
}

// drainEvents writes every event already waiting: they were fired by
// entries this node applied before the reply about to be written was
// computed, so the client sees them first.
func (c *conn) drainEvents() bool {
	for _, ev := range c.watcher.Take() {
		c.writeEvent(ev)
	}
	switch err := c.watcher.Err(); {
	case errors.Is(err, raftjournal.ErrWatcherOverflow):
		c.overflowed()
		return false
	case err != nil:
		return false // closed: the connection is ending
	}
	return true
}

func (c *conn) writeEvent(ev raftjournal.Event) {
	// ZooKeeper before 3.9 sends notifications with zxid -1.
	frame := zkwire.AppendNotificationFrame(nil, -1, zkwire.WatcherEvent{
		Type: zkwire.EventType(ev.Type), State: zkwire.StateSyncConnected, Path: ev.Path,
	})
	c.s.m.events.Inc()
	c.write(frame)
}

func (c *conn) write(frame []byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.bw.Write(frame); err != nil {
		c.close("write failed: " + err.Error())
	}
}

// reply writes a reply after the waiting events.
func (c *conn) reply(req *request, zxid int64, code zkwire.Code, body zkwire.Response) {
	if !c.drainEvents() {
		return
	}
	if code != zkwire.CodeOK {
		body = nil
	}
	frame, err := zkwire.AppendReplyFrame(nil, zkwire.ReplyHeader{Xid: req.hdr.Xid, Zxid: zxid, Err: code}, req.hdr.Op, body)
	if err != nil {
		// A bug of ours, not the client's: answer with a system error.
		c.s.logger.Error("encoding a reply failed", "op", req.hdr.Op.String(), "error", err)
		frame, _ = zkwire.AppendReplyFrame(nil, zkwire.ReplyHeader{Xid: req.hdr.Xid, Zxid: zxid, Err: zkwire.CodeSystemError}, req.hdr.Op, nil)
	}
	if lim := c.s.cfg.MaxReplyBuffer; lim > 0 && len(frame)-4 >= lim {
		// The Java client refuses a packet whose length reaches its
		// jute.maxbuffer ("Packet len ... is out of range") and drops the
		// connection; sending it would only cost both sides the bytes.
		c.s.m.oversizeReplies.Inc()
		c.s.logger.Warn("reply exceeds the reply limit; closing the connection instead of sending it",
			"remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("%#x", c.sessionID.Load()),
			"op", req.hdr.Op.String(), "path", requestPath(req.body), "bytes", len(frame)-4, "limit", lim)
		c.close("reply over the reply limit")
		return
	}
	if zxid > 0 && req.hdr.Xid >= 0 {
		c.lastZxid.Store(zxid)
	}
	c.sent.Add(1)
	st := &c.s.stats
	st.sent.Add(1)
	d := time.Since(req.at)
	st.observe(d)
	if isWrite(req.hdr.Op) {
		st.updates.observe(d)
	} else {
		st.reads.observe(d)
	}
	st.response(int64(len(frame) - 4))
	c.s.m.observe(req.hdr.Op, code, d)
	if lop := lastOpName(req.hdr.Op); lop != "" {
		c.lastOp.Store(lop)
	}
	c.lastCxid.Store(int64(req.hdr.Xid))
	c.lastResponse.Store(time.Since(c.s.start).Milliseconds())
	c.lastLatency.Store(d.Nanoseconds())
	c.latency.observe(d)
	c.write(frame)
}

// requestPath is the path a request names, for log lines ("" for none).
func requestPath(r zkwire.Request) string {
	switch r := r.(type) {
	case *zkwire.GetDataRequest:
		return r.Path
	case *zkwire.GetChildrenRequest:
		return r.Path
	case *zkwire.GetACLRequest:
		return r.Path
	case *zkwire.ExistsRequest:
		return r.Path
	case *zkwire.GetAllChildrenNumberRequest:
		return r.Path
	case *zkwire.GetEphemeralsRequest:
		return r.PrefixPath
	case *zkwire.CreateRequest:
		return r.Path
	case *zkwire.SetDataRequest:
		return r.Path
	}
	return ""
}
