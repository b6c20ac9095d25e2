package zkclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
)

// Client is a ZooKeeper session over one connection at a time (see the
// package documentation for the session, request, watch and retry rules).
// Its methods may be called from any number of goroutines.
type Client struct {
	cfg    Config
	logger *slog.Logger
	ctx    context.Context // ends with Close, or when the client gives up
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *eventQueue

	xid      atomic.Int32
	lastZxid atomic.Int64 // the largest zxid of a reply

	mu        sync.Mutex
	cur       *conn         // nil while disconnected
	ready     chan struct{} // closed when cur is set or the client stops
	fatal     error         // ErrClosed, or why the client gave up
	sessionID int64         // the session of the current (or last) usable connection
	resumeID  int64         // the session the next handshake resumes (0: a new one)
	passwd    []byte
	timeout   time.Duration // negotiated with the last server
	next      int           // index in Hosts of the next server to try
	auths     []Auth
	watches   watchSet

	closeOnce sync.Once
}

// Dial opens a session with one of the servers and returns once it is
// established and authenticated, trying the servers in turn until ctx ends;
// ctx bounds this first connect only. A server whose bytes are not
// ZooKeeper's fails Dial at once (ErrNotZooKeeper), as do refused
// credentials (ErrAuthFailed).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, c.cancel)
	cn, err := c.connect(true)
	if !stop() && err == nil { // ctx ended just as the session came
		cn.fail(ErrClosed)
		err = ctx.Err()
	}
	if err != nil {
		c.cancel()
		c.wg.Wait()
		if ctx.Err() != nil && !errors.Is(err, ErrAuthFailed) && !errors.Is(err, ErrNotZooKeeper) {
			err = fmt.Errorf("%w: %s: no session within the deadline (%v); last error: %w",
				ErrUnreachable, strings.Join(c.cfg.Hosts, ","), ctx.Err(), err)
		}
		return nil, err
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.events.deliver(c.ctx) }()
	go func() { defer c.wg.Done(); c.run(cn) }()
	return c, nil
}

// New returns a client that opens its session in the background, as Dial
// would, and keeps trying until it is closed: under Resend, calls wait for
// the session; under FailPending they fail until there is one. Refused
// credentials or a server that is not ZooKeeper end it (Err says why, and
// calls fail with it).
func New(cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.events.deliver(c.ctx) }()
	go func() {
		defer c.wg.Done()
		cn, err := c.connect(true)
		if err != nil {
			if c.ctx.Err() == nil {
				c.logger.Error("zookeeper client giving up", "err", err)
				c.shutdown(err)
			}
			c.events.close()
			return
		}
		c.run(cn)
	}()
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:     cfg,
		logger:  cfg.Logger,
		ready:   make(chan struct{}),
		auths:   slices.Clone(cfg.Auth),
		watches: newWatchSet(),
	}
	if cfg.ResumeSession != 0 {
		c.resumeID, c.passwd = cfg.ResumeSession, slices.Clone(cfg.ResumePassword)
	}
	c.next = cfg.FirstHost % len(cfg.Hosts)
	if cfg.FirstHost < 0 {
		c.next = rand.IntN(len(cfg.Hosts))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.events = newEventQueue(cfg.EventBuffer)
	return c, nil
}

// Events returns the channel of watch events and connection changes. It is
// closed once the client is closed or has given up (see Err).
func (c *Client) Events() <-chan Event { return c.events.out }

// SessionID returns the session id; it changes when the session expired and
// the client opened a new one.
func (c *Client) SessionID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Server returns the address of the server the client is connected to, ""
// while it is not.
func (c *Client) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.addr
}

// SessionTimeout returns the session timeout the server granted.
func (c *Client) SessionTimeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeout
}

// LastZxid returns the largest zxid a reply carried.
func (c *Client) LastZxid() int64 { return c.lastZxid.Load() }

// Err returns why the client stopped: nil while it runs, ErrClosed after
// Close, or the error it gave up with.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// Close ends the session (closeSession, best effort: a session not closed
// expires after its timeout) and stops the client; pending calls fail with
// ErrClosed. It is idempotent and waits for the client's goroutines.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		// Stop first, so that the server closing the connection after
		// closeSession is not taken for a connection to re-establish.
		c.mu.Lock()
		c.stopLocked(ErrClosed)
		cn := c.cur
		c.mu.Unlock()
		if cn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), min(time.Second, cn.timeout))
			_, _ = c.callOn(ctx, cn, zkwire.OpCloseSession, nil)
			cancel()
		}
		c.shutdown(ErrClosed)
		c.wg.Wait()
	})
	return nil
}

// Detach stops the client without ending its session: the connection is
// dropped and the session lives on in ZooKeeper until its timeout, for
// another process (or a later client with Config.ResumeSession) to resume.
// Pending calls fail with ErrClosed. After Detach, Close does nothing more.
func (c *Client) Detach() {
	c.closeOnce.Do(func() {
		c.shutdown(ErrClosed)
		c.wg.Wait()
	})
}

// shutdown stops the client with err (ErrClosed or why it gave up).
func (c *Client) shutdown(err error) {
	c.mu.Lock()
	c.stopLocked(err)
	cn := c.cur
	c.cur = nil
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		cn.fail(err)
	}
}

// stopLocked records why the client stops (the first reason wins) and
// releases the calls waiting for a connection.
func (c *Client) stopLocked(err error) {
	if c.fatal != nil {
		return
	}
	c.fatal = err
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// waitConn waits for a connection, until ctx ends or the client stops.
func (c *Client) waitConn(ctx context.Context) error {
	for {
		c.mu.Lock()
		cn, ready, fatal := c.cur, c.ready, c.fatal
		c.mu.Unlock()
		switch {
		case fatal != nil:
			return fatal
		case cn != nil:
			return nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Client) nextXid() int32 {
	for {
		if x := c.xid.Add(1) & 0x7fffffff; x != 0 {
			return x
		}
	}
}

// errSessionExpired is a handshake refused because the session is gone.
var errSessionExpired = errors.New("zkclient: session expired")

// connect establishes a connection, trying the servers in turn from c.next
// with a growing pause between rounds, until one gives a session, the
// client's context ends, or the credentials are refused. On the first
// connect a server that does not speak ZooKeeper's protocol ends it too.
func (c *Client) connect(initial bool) (*conn, error) {
	var lastErr error
	for round := 0; ; round++ {
		for range c.cfg.Hosts {
			if err := c.ctx.Err(); err != nil {
				if lastErr == nil {
					lastErr = err
				}
				return nil, lastErr
			}
			c.mu.Lock()
			addr := c.cfg.Hosts[c.next%len(c.cfg.Hosts)]
			c.next = (c.next + 1) % len(c.cfg.Hosts)
			c.mu.Unlock()
			cn, newSession, err := c.open(addr)
			if err != nil {
				c.logger.Debug("zookeeper connect failed", "server", addr, "err", err)
				lastErr = err
				if errors.Is(err, ErrAuthFailed) || (initial && errors.Is(err, ErrNotZooKeeper)) {
					return nil, err
				}
				continue
			}
			if !initial {
				c.events.push(Event{Type: zkwire.EventNone, State: zkwire.StateSyncConnected, Time: time.Now(),
					Missed: true, NewSession: newSession})
			}
			c.logger.Debug("zookeeper session connected", "server", addr, "session", fmt.Sprintf("%#x", c.SessionID()),
				"timeout", cn.timeout, "new-session", newSession)
			return cn, nil
		}
		t := time.NewTimer(min(50*time.Millisecond<<min(round, 5), time.Second))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
}

// open connects to one server: the handshake (resuming the session, or a new
// one when there is none or it expired), then credentials and watches, and
// makes the connection current.
func (c *Client) open(addr string) (*conn, bool, error) {
	c.mu.Lock()
	sid, pw := c.resumeID, c.passwd
	c.mu.Unlock()
	cn, resp, err := c.handshake(addr, sid, pw)
	newSession := sid == 0
	if errors.Is(err, errSessionExpired) {
		c.logger.Warn("zookeeper session expired; opening a new one", "session", fmt.Sprintf("%#x", sid))
		c.events.push(Event{Type: zkwire.EventNone, State: zkwire.StateExpired, Time: time.Now(), Missed: true})
		c.mu.Lock()
		c.resumeID, c.passwd = 0, nil
		c.watches.dropOneShot() // the server forgot them with the session
		c.mu.Unlock()
		cn, resp, err = c.handshake(addr, 0, nil)
		newSession = true
	}
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	c.resumeID, c.passwd = resp.SessionID, resp.Passwd
	c.mu.Unlock()
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.readLoop(cn) }()
	go func() { defer c.wg.Done(); cn.pingLoop() }()
	if err := c.setup(cn, !newSession); err != nil {
		cn.fail(err)
		return nil, false, err
	}
	c.mu.Lock()
	if c.fatal != nil {
		err := c.fatal
		c.mu.Unlock()
		cn.fail(err)
		return nil, false, err
	}
	// Only now is the session usable: a read on it sees the credentials.
	c.cur, c.sessionID, c.timeout = cn, resp.SessionID, cn.timeout
	close(c.ready)
	c.mu.Unlock()
	return cn, newSession, nil
}

// handshake dials addr and exchanges the connect records.
func (c *Client) handshake(addr string, sid int64, passwd []byte) (*conn, zkwire.ConnectResponse, error) {
	var resp zkwire.ConnectResponse
	var nc net.Conn
	var err error
	if c.cfg.Dialer != nil {
		nc, err = c.cfg.Dialer("tcp", addr, c.cfg.DialTimeout)
	} else {
		// Plain TCP, abandoned at once when the client is closed.
		d := net.Dialer{Timeout: c.cfg.DialTimeout}
		nc, err = d.DialContext(c.ctx, "tcp", addr)
	}
	if err != nil {
		return nil, resp, fmt.Errorf("zkclient: connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(c.cfg.DialTimeout))
	stop := context.AfterFunc(c.ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	rec := &recordingReader{r: nc}
	fr := zkwire.NewFrameReader(bufio.NewReaderSize(rec, readBuffer), c.cfg.MaxReplyFrame)
	resp, err = zkwire.ClientHandshake(nc, fr, zkwire.ConnectRequest{
		LastZxidSeen: c.lastZxid.Load(),
		TimeOut:      int32(c.cfg.SessionTimeout / time.Millisecond),
		SessionID:    sid,
		Passwd:       passwd,
		HasReadOnly:  true,
	})
	if err != nil {
		nc.Close()
		var de *zkwire.DecodeError
		switch {
		case errors.Is(err, zkwire.ErrSessionExpired):
			return nil, resp, errSessionExpired
		case errors.Is(err, zkwire.ErrFrameLength), errors.As(err, &de):
			return nil, resp, notZooKeeper(addr, rec.head, err)
		}
		return nil, resp, fmt.Errorf("zkclient: connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	rec.done = true
	cn := &conn{
		nc: nc, fr: fr, addr: addr, timeout: time.Duration(resp.TimeOut) * time.Millisecond,
		calls: make(map[int32]*Call), dead: make(chan struct{}),
	}
	cn.onDead = func() { c.connDied(cn) }
	return cn, resp, nil
}

// recordingReader keeps a connection's first bytes until done, for the
// error that says what a server that is not ZooKeeper answered.
type recordingReader struct {
	r    io.Reader
	done bool
	headKeeper
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.done {
		r.keep(p[:n])
	}
	return n, err
}

// setup authenticates a fresh connection and sets the watches again, before
// any other request may use it: persistent watches with addWatch (they
// belong to a connection), and, on a resumed session, one-shot watches with
// setWatches relative to the last zxid seen (the server fires at once those
// whose node changed since).
func (c *Client) setup(cn *conn, resumed bool) error {
	ctx, cancel := context.WithTimeout(c.ctx, max(cn.timeout, c.cfg.DialTimeout))
	defer cancel()
	c.mu.Lock()
	auths := slices.Clone(c.auths)
	persistent := c.watches.persistentList()
	oneShot := c.watches.setWatches(c.lastZxid.Load())
	c.mu.Unlock()
	for _, a := range auths {
		_, err := c.callOn(ctx, cn, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: a.Scheme, Auth: a.Cred})
		if zkwire.CodeOf(err) == zkwire.CodeAuthFailed {
			return fmt.Errorf("%w: %s: scheme %s", ErrAuthFailed, cn.addr, a.Scheme)
		}
		if err != nil {
			return fmt.Errorf("zkclient: %s: add %s credentials: %w", cn.addr, a.Scheme, err)
		}
	}
	for _, w := range persistent {
		if _, err := c.callOn(ctx, cn, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: w.path, Mode: w.mode}); err != nil {
			return fmt.Errorf("zkclient: %s: re-adding the watch on %s: %w", cn.addr, w.path, err)
		}
	}
	if resumed && oneShot != nil {
		if _, err := c.callOn(ctx, cn, zkwire.OpSetWatches, oneShot); err != nil {
			return fmt.Errorf("zkclient: %s: setting the watches again: %w", cn.addr, err)
		}
	}
	return nil
}

// run keeps the client connected until it is closed or gives up.
func (c *Client) run(cn *conn) {
	defer c.events.close()
	for {
		select {
		case <-cn.dead:
		case <-c.ctx.Done():
			return
		}
		c.connDied(cn)
		if c.Err() != nil {
			return
		}
		c.logger.Info("zookeeper connection lost; reconnecting", "server", cn.addr, "err", cn.cause())
		c.events.push(Event{Type: zkwire.EventNone, State: zkwire.StateDisconnected, Time: time.Now()})
		var err error
		if cn, err = c.connect(false); err != nil {
			if errors.Is(err, ErrAuthFailed) {
				c.logger.Error("zookeeper refused the credentials on reconnect; giving up", "err", err)
				c.events.push(Event{Type: zkwire.EventNone, State: zkwire.StateAuthFailed, Time: time.Now(), Missed: true})
				c.shutdown(err)
			}
			return
		}
	}
}

// connDied makes calls wait for (or, under FailPending, fail for want of)
// the next connection instead of trying a dead one. The connection calls it
// as it fails, before failing its calls.
func (c *Client) connDied(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cn {
		c.cur = nil
		if c.fatal == nil {
			c.ready = make(chan struct{})
		}
	}
}

// readLoop reads a connection's frames until it fails: replies go to their
// calls, notifications to the events.
func (c *Client) readLoop(cn *conn) {
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.timeout * 2 / 3))
		p, err := cn.fr.Next()
		if err != nil {
			if errors.Is(err, zkwire.ErrFrameLength) {
				err = fmt.Errorf("%w: %w", ErrNotZooKeeper, err)
			}
			cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
			return
		}
		hdr, body, err := zkwire.SplitReply(p)
		if err != nil {
			cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
			return
		}
		switch hdr.Xid {
		case zkwire.XidNotification:
			ev, err := zkwire.DecodeNotification(body)
			if err != nil {
				cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
				return
			}
			c.notify(ev, hdr.Zxid)
			continue
		case zkwire.XidPing:
			continue
		}
		if hdr.Zxid > 0 {
			for {
				old := c.lastZxid.Load()
				if hdr.Zxid <= old || c.lastZxid.CompareAndSwap(old, hdr.Zxid) {
					break
				}
			}
			if c.cfg.OnReply != nil {
				c.cfg.OnReply(hdr.Zxid)
			}
		}
		cl := cn.take(hdr.Xid)
		if cl == nil {
			continue // its caller gave up
		}
		resp, err := zkwire.DecodeResponse(cl.op, hdr.Err, body)
		if err != nil {
			err = fmt.Errorf("zkclient: %v reply from %s: %w", cl.op, cn.addr, err)
		} else if cl.watch != 0 {
			c.watchReplied(cl, hdr.Err)
		}
		cl.finish(hdr.Err, hdr.Zxid, resp, err)
	}
}
