package dualwrite

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// xidInjected is the xid of the requests the tap adds to a client's stream
// (getEphemerals before a closeSession). ZooKeeper echoes xids without
// interpreting them; clients use positive xids and a few small negative ones.
const xidInjected int32 = -0x7A7A

// conn relays one client connection to one ZooKeeper server.
//
// Client to server, frames are copied unchanged except that a create (1) is
// sent as create2 (15), whose reply carries the new node's stat, and that a
// getEphemerals is slipped in before a closeSession, so that the tap learns
// which ephemerals the close deletes. Server to client, the create2 reply is
// cut back to the create reply the client asked for, the injected reply is
// dropped, and the reply to every successful write is held until its mirror
// is queued (async) or committed (sync). Replies keep their order.
type conn struct {
	t          *Tap
	client     net.Conn
	server     net.Conn
	serverAddr string
	log        *slog.Logger

	mu       sync.Mutex
	pending  map[int32]pendingQ
	npending int
	auth     identities // what the connection authenticated as (for "auth" ACLs)

	session    int64    // from the connect response; server-side goroutine only
	ephemerals []string // the injected getEphemerals' answer; server-side goroutine only

	closeOnce sync.Once
	closing   bool          // we closed it (not the peer)
	done      chan struct{} // closed by close

	reqSession atomic.Int64 // the session id the client's connect request asked to resume
}

// pending is a request awaiting its reply.
type pending struct {
	op       zkwire.OpCode
	req      zkwire.Request // decoded for writes and auth only
	strip    bool           // a create sent as create2
	injected bool
	created  *zkwire.Create2Response // the create2 reply of a stripped create
}

// pendingQ holds the requests awaiting a reply under one xid: one, except
// for a client that reuses an xid before its reply (ZooKeeper answers in
// order, so the first is answered first).
type pendingQ struct {
	first pending
	more  []pending
}

// maxPending bounds a connection's unanswered requests: ZooKeeper's own
// outstanding limit is far lower, so a client past it is broken or hostile.
const maxPending = 1 << 16

func newConn(t *Tap, client, server net.Conn, addr string) *conn {
	return &conn{
		t: t, client: client, server: server, serverAddr: addr,
		log:     t.log.With("client", client.RemoteAddr().String(), "server", addr),
		pending: make(map[int32]pendingQ),
		auth:    newIdentities(server.LocalAddr()),
		done:    make(chan struct{}),
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

func (c *conn) weClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// run relays until either side ends.
func (c *conn) run() {
	defer c.close()
	cr := bufio.NewReaderSize(c.client, 64<<10)
	fr := zkwire.NewFrameReader(cr, c.t.cfg.MaxRequestFrame)
	first, word, err := fr.NextFirst()
	if err != nil {
		switch {
		case errors.Is(err, io.EOF):
		case errors.Is(err, zkwire.ErrFrameLength):
			c.refuseFrame(err)
		default:
			c.log.Info("client sent no valid first frame; closing", "err", err)
			c.t.metrics.malformed.Inc()
		}
		return
	}
	if word != 0 {
		c.relayFourLetterWord(word, first, cr)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.close()
		c.serverToClient()
	}()
	if c.clientToServer(first, fr, cr) {
		// The client ended its stream, typically right after a closeSession:
		// ZooKeeper still answers what it received (after a closeSession it
		// then closes), and those replies are mirrored. The server side stays
		// open until then: ZooKeeper treats a half-close as a close and
		// would drop the replies.
		deadline := time.Now().Add(drainTimeout)
	drain:
		for c.pendingCount() > 0 {
			select {
			case <-done:
				break drain
			case <-time.After(5 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				c.log.Warn("ZooKeeper did not finish answering a departed client; its last replies are not mirrored", "after", drainTimeout)
				break
			}
		}
	}
	c.close()
	<-done
	c.dropPending()
}

// drainTimeout bounds how long the replies to a departed client's last
// requests are awaited.
const drainTimeout = 10 * time.Second

// relayFourLetterWord passes a four-letter-word exchange through as bytes.
func (c *conn) relayFourLetterWord(word zkwire.FourLetterWord, arg []byte, cr *bufio.Reader) {
	c.t.metrics.fourLetterWords.Inc()
	head := binary.BigEndian.AppendUint32(nil, uint32(word))
	head = append(head, arg...)
	if _, err := c.server.Write(head); err != nil {
		return
	}
	go func() {
		io.Copy(c.server, cr)
		c.server.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c.client, c.server)
}

// refuseFrame logs a client frame over the ensemble's jute.maxbuffer: the
// connection is closed, as a ZooKeeper server closes it ("Len error"), and
// the client sees ConnectionLoss.
func (c *conn) refuseFrame(err error) {
	c.t.metrics.malformed.Inc()
	c.t.metrics.oversized.Inc()
	c.log.Warn("client frame over jute.maxbuffer refused; closing the connection as ZooKeeper would (if the ensemble runs with a larger -Djute.maxbuffer, give the proxy the same with --jute-maxbuffer)",
		"jute-maxbuffer", c.t.cfg.MaxRequestFrame, "err", err)
}

// clientToServer forwards the connect request and then every request. It
// reports whether the client ended its stream cleanly (EOF between frames).
func (c *conn) clientToServer(connect []byte, fr *zkwire.FrameReader, cr *bufio.Reader) (eof bool) {
	w := bufio.NewWriterSize(c.server, 64<<10)
	creq, err := zkwire.DecodeConnectRequest(connect)
	if err != nil {
		c.log.Info("malformed connect request; closing", "err", err)
		c.t.metrics.malformed.Inc()
		return
	}
	c.reqSession.Store(creq.SessionID)
	if !c.t.waitHold(c.done) || c.weClosed() {
		return
	}
	c.t.rewriteConnect(connect) // after a rollback (rewrite.go)
	if err := writeFrame(w, connect); err != nil || w.Flush() != nil {
		return
	}
	for {
		payload, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return true
			}
			switch {
			case c.weClosed() || isClosedErr(err):
			case errors.Is(err, zkwire.ErrFrameLength):
				c.refuseFrame(err)
			default:
				c.log.Info("client stream broken; closing the connection", "err", err)
			}
			return
		}
		hdr, body, err := zkwire.SplitRequest(payload)
		if err != nil {
			c.log.Info("malformed request header; closing", "err", err)
			c.t.metrics.malformed.Inc()
			return
		}
		// The cutover's hold: nothing more goes to ZooKeeper until it ends
		// (a switch to the journal closes this connection first).
		if !c.t.waitHold(c.done) || c.weClosed() {
			return
		}
		c.t.rewriteRequest(hdr.Op, payload) // setWatches after a rollback (rewrite.go)
		p := pending{op: hdr.Op}
		if mirrored(hdr.Op) || hdr.Op == zkwire.OpAuth {
			// The server answers an undecodable body with an error, which
			// mirrors nothing; the request is relayed as is.
			var err error
			if p.req, err = zkwire.DecodeRequest(hdr.Op, body); err != nil {
				c.log.Debug("undecodable request body; relayed as is", "op", hdr.Op, "xid", hdr.Xid, "err", err)
			}
		}
		switch hdr.Op {
		case zkwire.OpCreate:
			binary.BigEndian.PutUint32(payload[4:8], uint32(zkwire.OpCreate2))
			p.strip = true
		case zkwire.OpCloseSession:
			inj, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: xidInjected, Op: zkwire.OpGetEphemerals}, &zkwire.GetEphemeralsRequest{PrefixPath: "/"})
			if !c.track(xidInjected, pending{op: zkwire.OpGetEphemerals, injected: true}) {
				return
			}
			if _, err := w.Write(inj); err != nil {
				return
			}
		}
		if !c.track(hdr.Xid, p) {
			c.log.Warn("client exceeds the pending request limit; closing", "limit", maxPending)
			c.t.metrics.malformed.Inc()
			return
		}
		if err := writeFrame(w, payload); err != nil {
			return
		}
		if cr.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
		c.t.metrics.requests.Inc()
	}
}

func (c *conn) track(xid int32, p pending) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.npending >= maxPending {
		return false
	}
	if q, ok := c.pending[xid]; ok {
		q.more = append(q.more, p)
		c.pending[xid] = q
	} else {
		c.pending[xid] = pendingQ{first: p}
	}
	c.npending++
	if mirrored(p.op) {
		c.t.inflight.Add(1)
	}
	return true
}

// settle ends the tracking of a write request whose reply was handled.
func (c *conn) settle(p pending) {
	if mirrored(p.op) {
		c.t.inflight.Add(-1)
	}
}

// dropPending forgets the requests never answered (the connection ended).
//
// A write among them may have been committed by the ensemble all the same
// (its server died after the commit, before the reply): its outcome is
// unknown, so the tap records a loss, and the repair pass (RepairOwed) makes
// the journal whole.
func (c *conn) dropPending() {
	c.mu.Lock()
	unknown := 0
	for xid, q := range c.pending {
		for _, p := range append([]pending{q.first}, q.more...) {
			if mirrored(p.op) && !p.injected {
				unknown++
			}
			c.settle(p)
		}
		delete(c.pending, xid)
	}
	c.npending = 0
	c.mu.Unlock()
	if unknown > 0 {
		c.log.Warn("connection ended with writes unanswered; their outcome is unknown, a repair pass is owed", "writes", unknown)
		c.t.lose(0, "outcome unknown")
	}
}

func (c *conn) pendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.npending
}

func (c *conn) match(xid int32) (pending, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.pending[xid]
	if !ok {
		return pending{}, false
	}
	p := q.first
	if len(q.more) == 0 {
		delete(c.pending, xid)
	} else {
		c.pending[xid] = pendingQ{first: q.more[0], more: q.more[1:]}
	}
	c.npending--
	return p, true
}

// serverToClient forwards the connect response, notifications and replies,
// mirroring the writes that succeeded before their replies go out.
func (c *conn) serverToClient() {
	sr := bufio.NewReaderSize(c.server, 64<<10)
	fr := zkwire.NewFrameReader(sr, zkwire.DefaultMaxReplyFrame)
	w := bufio.NewWriterSize(c.client, 64<<10)
	lost := func(err error) {
		if c.weClosed() || isClosedErr(err) {
			return
		}
		// The server went away under a live client: the client reconnects
		// through the proxy, and should reach another server.
		c.t.markSuspect(c.serverAddr)
		c.log.Info("ZooKeeper server connection lost; closing the client connection so it reconnects", "err", err)
	}
	payload, err := fr.Next()
	if err != nil {
		lost(err)
		return
	}
	resp, err := zkwire.DecodeConnectResponse(payload)
	if err != nil {
		c.log.Warn("malformed connect response from ZooKeeper; closing", "err", err)
		return
	}
	c.session = resp.SessionID
	switch {
	case resp.SessionID != 0 && resp.TimeOut > 0:
		c.t.sessions.attach(resp.SessionID, resp.TimeOut)
	default:
		c.session = 0
		if id := c.reqSession.Load(); id != 0 {
			c.t.sessions.expiredSession(id)
		}
	}
	if err := writeFrame(w, payload); err != nil || w.Flush() != nil {
		return
	}
	// A client that went away (its writes fail) does not stop the loop: the
	// replies to its last requests are still mirrored.
	clientGone := false
	for {
		payload, err := fr.Next()
		if err != nil {
			lost(err)
			return
		}
		hdr, body, err := zkwire.SplitReply(payload)
		if err != nil {
			c.log.Warn("malformed reply from ZooKeeper; closing", "err", err)
			return
		}
		if hdr.Xid != zkwire.XidNotification {
			p, ok := c.match(hdr.Xid)
			if !ok {
				c.log.Warn("reply matches no request; closing", "xid", hdr.Xid)
				return
			}
			if p.injected {
				c.ephemerals = nil
				if hdr.Err == zkwire.CodeOK {
					if r, err := zkwire.DecodeResponse(zkwire.OpGetEphemerals, hdr.Err, body); err == nil {
						c.ephemerals = r.(*zkwire.GetEphemeralsResponse).Ephemerals
					}
				}
				continue
			}
			if p.strip && hdr.Err == zkwire.CodeOK {
				payload, err = c.stripCreate2(payload, hdr, body, &p)
				if err != nil {
					c.log.Warn("malformed create2 reply from ZooKeeper; closing", "err", err)
					c.settle(p)
					return
				}
			}
			c.replied(hdr, body, p)
			c.settle(p)
		}
		if clientGone {
			continue // still mirroring what ZooKeeper answers
		}
		err = writeFrame(w, payload)
		if err == nil && sr.Buffered() == 0 {
			err = w.Flush()
		}
		if err != nil {
			clientGone = true
		}
	}
}

// stripCreate2 turns a create2 reply back into the create reply the client
// asked for, keeping the reply with its stat in p for the mirror.
func (c *conn) stripCreate2(payload []byte, hdr zkwire.ReplyHeader, body []byte, p *pending) ([]byte, error) {
	r, err := zkwire.DecodeResponse(zkwire.OpCreate2, hdr.Err, body)
	if err != nil {
		return nil, err
	}
	cr := r.(*zkwire.Create2Response)
	p.created = cr
	out, err := zkwire.AppendReplyFrame(nil, hdr, zkwire.OpCreate, &zkwire.CreateResponse{Path: cr.Path})
	if err != nil {
		return nil, err
	}
	return out[4:], nil // writeFrame adds the length
}

// replied handles a reply to a tracked request: auth bookkeeping, and the
// mirror of a write that succeeded (held here until queued or committed).
func (c *conn) replied(hdr zkwire.ReplyHeader, body []byte, p pending) {
	switch {
	case p.op == zkwire.OpAuth:
		if hdr.Err == zkwire.CodeOK {
			if ap, ok := p.req.(*zkwire.AuthPacket); ok {
				c.mu.Lock()
				c.auth = c.auth.add(ap)
				c.mu.Unlock()
			} else {
				c.mu.Lock()
				c.auth.unknown = true
				c.mu.Unlock()
			}
		}
		return
	case p.op == zkwire.OpSASL:
		// A SASL exchange that succeeds gives the connection an identity
		// (sasl:authorizationID) the tap cannot name.
		if hdr.Err == zkwire.CodeOK {
			c.mu.Lock()
			c.auth.unknown = true
			c.mu.Unlock()
		}
		return
	case !mirrored(p.op) || hdr.Err != zkwire.CodeOK:
		return
	}
	var resp zkwire.Response
	if p.created != nil {
		resp = p.created
	} else if len(body) > 0 {
		r, err := zkwire.DecodeResponse(p.op, hdr.Err, body)
		if err != nil {
			c.log.Warn("undecodable reply to a write; the journal misses it until the reconciler repairs it", "op", p.op, "zxid", hdr.Zxid, "err", err)
			c.t.lose(hdr.Zxid, "undecodable reply")
			return
		}
		resp = r
	}
	c.mu.Lock()
	auth := c.auth
	c.mu.Unlock()
	w := write{op: p.op, req: p.req, resp: resp, zxid: hdr.Zxid, session: c.session, auth: auth, ephemerals: c.ephemerals}
	c.t.mirror(w)
	if p.op == zkwire.OpCloseSession {
		c.ephemerals = nil
		c.t.sessions.closed(c.session)
	}
}

// mirrored reports whether the tap mirrors successful requests of op.
func mirrored(op zkwire.OpCode) bool {
	switch op {
	case zkwire.OpCreate, zkwire.OpCreate2, zkwire.OpCreateContainer, zkwire.OpCreateTTL,
		zkwire.OpDelete, zkwire.OpSetData, zkwire.OpSetACL, zkwire.OpMulti, zkwire.OpCloseSession:
		return true
	}
	return false
}

func writeFrame(w *bufio.Writer, payload []byte) error {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(payload)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}
