package exporter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/zkwire"
)

// wireClient is a small ZooKeeper session client written on zkwire, for the
// multiRead walk: go-zookeeper has no multiRead (opcode 22). It only reads.
//
// It behaves as go-zookeeper does where the walk depends on it, so that the
// walk's session rules (session.go) hold unchanged:
//
//   - Requests are pipelined: each takes the next xid and its reply is matched
//     by xid. send writes a batch of requests in one write, so that a multiRead
//     and the getACLs that follow it leave together.
//   - A connection that dies fails its pending requests with
//     zk.ErrConnectionClosed (the walk retries them); a background goroutine
//     reconnects to the next server with the session id, password and the
//     last zxid seen, and authenticates again.
//   - An expired session is replaced by a new one on the same client (its
//     SessionID changes; the walk notices and syncs it), as go-zookeeper does.
//
// Every reply's zxid goes to the walk's replyTracker, as trackedConn does for
// go-zookeeper's connections.
type wireClient struct {
	hosts       []string // sorted; the first connection tries hosts[first] first
	first       int
	auth        []Auth
	timeout     time.Duration // requested session timeout
	dialTimeout time.Duration
	maxReply    int
	dialer      zk.Dialer
	tracker     *replyTracker
	logger      *slog.Logger

	xid      atomic.Int32
	lastZxid atomic.Int64
	sid      atomic.Int64 // current session id

	mu      sync.Mutex
	cur     *wireConn // nil while reconnecting
	fatal   error     // set once the client is closed or gave up
	passwd  []byte
	next    int // index in hosts of the next server to try
	stopped bool

	done     chan struct{} // closed by Close
	doneOnce sync.Once
	wg       sync.WaitGroup // run, and every connection's reader and pinger
}

// errWireAuthFailed is returned when ZooKeeper refuses the credentials.
var errWireAuthFailed = errors.New("exporter: authentication failed")

type wireOptions struct {
	Hosts          []string
	FirstHost      int
	Auth           []Auth
	SessionTimeout time.Duration
	DialTimeout    time.Duration
	MaxReply       int // bytes; 0 = no bound but the frame format's (zkwire.MaxFrame)
	Dialer         zk.Dialer
	Tracker        *replyTracker
	Logger         *slog.Logger
}

// dialWire opens a session, trying the servers in sorted order from
// FirstHost, until one gives it or ctx ends.
func dialWire(ctx context.Context, o wireOptions) (*wireClient, error) {
	hosts := slices.Clone(o.Hosts)
	slices.Sort(hosts)
	if len(hosts) == 0 {
		return nil, fmt.Errorf("exporter: no servers")
	}
	c := &wireClient{
		hosts: hosts, first: o.FirstHost % len(hosts), auth: o.Auth,
		timeout: o.SessionTimeout, dialTimeout: o.DialTimeout, maxReply: o.MaxReply,
		dialer: o.Dialer, tracker: o.Tracker, logger: o.Logger,
	}
	c.done = make(chan struct{})
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.dialTimeout <= 0 {
		c.dialTimeout = 5 * time.Second
	}
	if c.maxReply <= 0 {
		// As go-zookeeper's default: a multiRead of a batch of wide nodes
		// carries every child list of the batch in one reply.
		c.maxReply = zkwire.MaxFrame
	}
	if c.dialer == nil {
		c.dialer = net.DialTimeout
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.tracker == nil {
		c.tracker = &replyTracker{}
	}
	c.next = c.first
	stop := context.AfterFunc(ctx, c.end)
	defer stop()
	var lastErr error
	for round := 0; ; round++ {
		for range c.hosts {
			cn, err := c.open()
			if err == nil && !stop() {
				cn.fail(ctx.Err())
				err = ctx.Err()
			}
			if err == nil {
				c.mu.Lock()
				c.cur = cn
				c.mu.Unlock()
				c.wg.Go(func() { c.run(cn) })
				return c, nil
			}
			lastErr = err
			if errors.Is(err, errWireAuthFailed) {
				c.Close()
				return nil, err
			}
			if ctx.Err() != nil {
				c.Close()
				return nil, fmt.Errorf("%w: %v (last error: %v)", ErrUnreachable, ctx.Err(), lastErr)
			}
		}
		if !sleep(ctx, min(100*time.Millisecond<<min(round, 4), time.Second)) {
			c.Close()
			return nil, fmt.Errorf("%w: %v (last error: %v)", ErrUnreachable, ctx.Err(), lastErr)
		}
	}
}

// SessionID is the current session's id; it changes when the session expired
// and the client opened a new one.
func (c *wireClient) SessionID() int64 { return c.sid.Load() }

// Close ends the session's connection; it is idempotent and waits for the
// client's goroutines.
func (c *wireClient) Close() {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		c.fatal = zk.ErrClosing
		c.end()
	}
	cn := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cn != nil {
		cn.closeSession(c.nextXid())
		cn.fail(zk.ErrClosing)
	}
	c.wg.Wait()
}

// end stops reconnecting and makes open give up.
func (c *wireClient) end() { c.doneOnce.Do(func() { close(c.done) }) }

// lifetime returns a context that ends when the client is closed (or cancel
// is called).
func (c *wireClient) lifetime() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel() }
}

// wireReq is one request of a batch.
type wireReq struct {
	Op  zkwire.OpCode
	Req zkwire.Request
}

// wireCall is one request waiting for its reply.
type wireCall struct {
	op   zkwire.OpCode
	xid  int32
	done chan struct{}
	code zkwire.Code
	resp zkwire.Response
	zxid int64
	err  error
}

func (cl *wireCall) finish(code zkwire.Code, zxid int64, resp zkwire.Response, err error) {
	cl.code, cl.zxid, cl.resp, cl.err = code, zxid, resp, err
	close(cl.done)
}

// wait returns the call's reply record, or its error: a ZooKeeper error
// converted to go-zookeeper's (convertWireError), zk.ErrConnectionClosed for a
// connection that died first, or ctx's error.
func (cl *wireCall) wait(ctx context.Context) (zkwire.Response, error) {
	select {
	case <-cl.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cl.err != nil {
		return nil, cl.err
	}
	if cl.code != zkwire.CodeOK {
		return nil, convertWireError(cl.code)
	}
	return cl.resp, nil
}

// convertWireError maps a ZooKeeper error code to go-zookeeper's error of the
// same meaning, so that the walk has one error vocabulary whichever client
// read the node.
func convertWireError(code zkwire.Code) error {
	switch code {
	case zkwire.CodeOK:
		return nil
	case zkwire.CodeNoNode:
		return zk.ErrNoNode
	case zkwire.CodeNoAuth:
		return zk.ErrNoAuth
	case zkwire.CodeSessionExpired:
		return zk.ErrSessionExpired
	case zkwire.CodeSessionMoved:
		return zk.ErrSessionMoved
	case zkwire.CodeConnectionLoss:
		return zk.ErrConnectionClosed
	case zkwire.CodeAuthFailed:
		return zk.ErrAuthFailed
	case zkwire.CodeBadArguments:
		return zk.ErrBadArguments
	}
	// The "zk: " prefix makes retryable treat it as final, as it does
	// go-zookeeper's own errors.
	return fmt.Errorf("zk: %w", code.Err())
}

// send writes reqs, in order, in one write on the current connection and
// returns their calls. It does not wait for replies, nor for a connection:
// while the client is reconnecting the calls fail with zk.ErrConnectionClosed.
func (c *wireClient) send(reqs ...wireReq) []*wireCall {
	calls := make([]*wireCall, len(reqs))
	for i, r := range reqs {
		calls[i] = &wireCall{op: r.Op, xid: c.nextXid(), done: make(chan struct{})}
	}
	var frame []byte
	for i, r := range reqs {
		var err error
		frame, err = zkwire.AppendRequestFrame(frame, zkwire.RequestHeader{Xid: calls[i].xid, Op: r.Op}, r.Req)
		if err != nil {
			err = fmt.Errorf("exporter: encode %v: %w", r.Op, err)
			for _, cl := range calls {
				cl.finish(0, 0, nil, err)
			}
			return calls
		}
	}
	c.mu.Lock()
	cn, fatal := c.cur, c.fatal
	c.mu.Unlock()
	switch {
	case fatal != nil:
		for _, cl := range calls {
			cl.finish(0, 0, nil, fatal)
		}
	case cn == nil:
		for _, cl := range calls {
			cl.finish(0, 0, nil, zk.ErrConnectionClosed)
		}
	default:
		cn.send(calls, frame)
	}
	return calls
}

// call sends one request and waits for its reply.
func (c *wireClient) call(ctx context.Context, op zkwire.OpCode, req zkwire.Request) (zkwire.Response, error) {
	return c.send(wireReq{op, req})[0].wait(ctx)
}

func (c *wireClient) nextXid() int32 {
	for {
		if x := c.xid.Add(1) & 0x7fffffff; x != 0 {
			return x
		}
	}
}

// run reconnects whenever the current connection dies, until the client is
// closed or the credentials are refused.
func (c *wireClient) run(cn *wireConn) {
	for {
		select {
		case <-cn.dead:
		case <-c.done:
			return
		}
		c.mu.Lock()
		if c.cur == cn {
			c.cur = nil
		}
		c.mu.Unlock()
		c.logger.Debug("zookeeper connection lost", "server", cn.addr, "err", cn.cause())
		for round := 0; ; round++ {
			var err error
			for range c.hosts {
				select {
				case <-c.done:
					return
				default:
				}
				if cn, err = c.open(); err == nil {
					break
				}
				if errors.Is(err, errWireAuthFailed) {
					c.mu.Lock()
					if c.fatal == nil {
						// Final for the walk (retryable says no to "zk: " errors).
						c.fatal = fmt.Errorf("%w: %w", zk.ErrAuthFailed, err)
					}
					c.mu.Unlock()
					return
				}
			}
			if err == nil {
				break
			}
			t := time.NewTimer(min(50*time.Millisecond<<min(round, 4), time.Second))
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return
			}
		}
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			cn.fail(zk.ErrClosing)
			return
		}
		c.cur = cn
		c.mu.Unlock()
	}
}

// open connects to the next server: handshake (resuming the session, or a new
// one when there is none or it expired), then the credentials.
func (c *wireClient) open() (*wireConn, error) {
	ctx, cancel := c.lifetime()
	defer cancel()
	c.mu.Lock()
	addr := c.hosts[c.next%len(c.hosts)]
	c.next++
	passwd := c.passwd
	c.mu.Unlock()
	sid := c.sid.Load()
	cn, resp, err := c.handshake(ctx, addr, sid, passwd)
	if errors.Is(err, zk.ErrSessionExpired) {
		c.logger.Info("zookeeper session expired; opening a new one", "session", fmt.Sprintf("%#x", sid))
		cn, resp, err = c.handshake(ctx, addr, 0, nil)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.passwd = resp.Passwd
	c.mu.Unlock()
	c.wg.Go(func() { c.readLoop(cn) })
	c.wg.Go(cn.pingLoop)
	for _, a := range c.auth {
		_, err := c.callOn(ctx, cn, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: a.Scheme, Auth: a.Cred})
		if errors.Is(err, zk.ErrAuthFailed) {
			cn.fail(err)
			return nil, fmt.Errorf("%w: %s: scheme %s", errWireAuthFailed, addr, a.Scheme)
		}
		if err != nil {
			cn.fail(err)
			return nil, fmt.Errorf("exporter: %s: add %s credentials: %w", addr, a.Scheme, err)
		}
	}
	// Only now is the session usable: a read on it sees the credentials.
	c.sid.Store(resp.SessionID)
	return cn, nil
}

// callOn sends one request on cn (not the current connection: setup uses it
// before the connection is made current).
func (c *wireClient) callOn(ctx context.Context, cn *wireConn, op zkwire.OpCode, req zkwire.Request) (zkwire.Response, error) {
	cl := &wireCall{op: op, xid: c.nextXid(), done: make(chan struct{})}
	frame, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: cl.xid, Op: op}, req)
	if err != nil {
		return nil, err
	}
	cn.send([]*wireCall{cl}, frame)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return cl.wait(ctx)
}

// handshake dials addr and exchanges the connect records. An expired session
// is zk.ErrSessionExpired.
func (c *wireClient) handshake(ctx context.Context, addr string, sid int64, passwd []byte) (*wireConn, zkwire.ConnectResponse, error) {
	var resp zkwire.ConnectResponse
	nc, err := c.dialer("tcp", addr, c.dialTimeout)
	if err != nil {
		return nil, resp, fmt.Errorf("exporter: connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(c.dialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(nc, trackedReadBuffer)
	fr := zkwire.NewFrameReader(br, c.maxReply)
	resp, err = zkwire.ClientHandshake(nc, fr, zkwire.ConnectRequest{
		LastZxidSeen: c.lastZxid.Load(),
		TimeOut:      int32(c.timeout / time.Millisecond),
		SessionID:    sid,
		Passwd:       passwd,
		HasReadOnly:  true,
	})
	if err != nil {
		nc.Close()
		if errors.Is(err, zkwire.ErrSessionExpired) {
			return nil, resp, zk.ErrSessionExpired
		}
		return nil, resp, fmt.Errorf("exporter: connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	cn := &wireConn{
		nc: nc, fr: fr, addr: addr, timeout: time.Duration(resp.TimeOut) * time.Millisecond,
		calls: make(map[int32]*wireCall), dead: make(chan struct{}),
	}
	return cn, resp, nil
}

// readLoop reads a connection's replies until it fails.
func (c *wireClient) readLoop(cn *wireConn) {
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.timeout * 2 / 3))
		p, err := cn.fr.Next()
		if err != nil {
			cn.fail(fmt.Errorf("%w: %s: %w", zk.ErrConnectionClosed, cn.addr, err))
			return
		}
		hdr, body, err := zkwire.SplitReply(p)
		if err != nil {
			cn.fail(fmt.Errorf("%w: %s: %w", zk.ErrConnectionClosed, cn.addr, err))
			return
		}
		if hdr.Xid < 0 {
			continue // ping, or a watch event (the walk sets none)
		}
		cl := cn.take(hdr.Xid)
		if hdr.Zxid > 0 {
			c.tracker.observe(hdr.Zxid)
			for {
				old := c.lastZxid.Load()
				if hdr.Zxid <= old || c.lastZxid.CompareAndSwap(old, hdr.Zxid) {
					break
				}
			}
		}
		if cl == nil {
			continue
		}
		resp, err := zkwire.DecodeResponse(cl.op, hdr.Err, body)
		if err != nil {
			err = fmt.Errorf("exporter: %v reply from %s: %w", cl.op, cn.addr, err)
		}
		cl.finish(hdr.Err, hdr.Zxid, resp, err)
	}
}

// wireConn is one TCP connection of a wireClient's session.
type wireConn struct {
	nc      net.Conn
	fr      *zkwire.FrameReader // readLoop's
	addr    string
	timeout time.Duration // negotiated session timeout

	wmu sync.Mutex // one batch at a time

	mu    sync.Mutex
	calls map[int32]*wireCall
	err   error
	dead  chan struct{}
}

// send registers the calls and writes their frames; a dead connection fails
// them with zk.ErrConnectionClosed.
func (cn *wireConn) send(calls []*wireCall, frame []byte) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		for _, cl := range calls {
			cl.finish(0, 0, nil, zk.ErrConnectionClosed)
		}
		return
	}
	for _, cl := range calls {
		cn.calls[cl.xid] = cl
	}
	cn.mu.Unlock()
	if err := cn.write(frame); err != nil {
		cn.fail(fmt.Errorf("%w: %s: %w", zk.ErrConnectionClosed, cn.addr, err))
	}
}

func (cn *wireConn) write(frame []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.timeout))
	_, err := cn.nc.Write(frame)
	return err
}

func (cn *wireConn) take(xid int32) *wireCall {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cl := cn.calls[xid]
	delete(cn.calls, xid)
	return cl
}

// fail closes the connection once and fails its pending calls with err.
func (cn *wireConn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	calls := cn.calls
	cn.calls = nil
	cn.mu.Unlock()
	_ = cn.nc.Close()
	close(cn.dead)
	for _, cl := range calls {
		cl.finish(0, 0, nil, err)
	}
}

func (cn *wireConn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// closeSession asks the server to end the session, so that it does not
// linger for its timeout; best effort, with a short wait.
func (cn *wireConn) closeSession(xid int32) {
	frame, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: xid, Op: zkwire.OpCloseSession}, nil)
	if cn.write(frame) != nil {
		return
	}
	select {
	case <-cn.dead:
	case <-time.After(200 * time.Millisecond):
	}
}

// pingLoop pings every third of the session timeout, which keeps the session
// alive and the read deadline (two thirds) from passing on an idle connection.
func (cn *wireConn) pingLoop() {
	ping, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}, nil)
	t := time.NewTicker(cn.timeout / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := cn.write(ping); err != nil {
				cn.fail(fmt.Errorf("%w: %s: ping: %w", zk.ErrConnectionClosed, cn.addr, err))
				return
			}
		case <-cn.dead:
			return
		}
	}
}
