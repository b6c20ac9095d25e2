package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// ZKClient is a small ZooKeeper session client written on zkwire, for the
// reconciler: go-zookeeper has no addWatch (persistent and persistent
// recursive watches). It only reads, so it owns no ephemerals.
//
// # Session
//
// DialZK tries the servers in turn, starting at a random one, until one gives
// a session; the server clamps the requested timeout, and the negotiated one
// sets the pace: a ping every third of it, and a connection that stays silent
// for two thirds of it is dead. On connection loss the client reconnects to
// the next server with the same session id and password and the last zxid it
// saw (a server behind that zxid refuses it, and the next one is tried),
// authenticates again and re-adds its watches (persistent watches belong to a
// server connection, so a new connection has none). If the session expired
// meanwhile, it opens a new one and does the same: a reader loses nothing but
// the events of the gap.
//
// # Requests
//
// Requests are pipelined: each gets the next xid (31 bits, never 0) and its
// reply is matched by xid, so any number of goroutines may call at once.
// Every request this client makes is a read or idempotent (auth, addWatch),
// so one whose connection dies before its reply is sent again on the next
// connection; a call returns only with a reply, a ZooKeeper error (a
// *zkwire.Error), ctx's error, ErrZKClosed or ErrZKAuthFailed.
//
// # Events
//
// Events delivers watch notifications (Type, Path) and connection changes
// (Type zkwire.EventNone with State Disconnected, SyncConnected after a
// reconnect, Expired). An event whose Missed is set says events may have been
// lost before it: a reconnect (events fired while no connection had the
// watches), a new session, or a consumer so slow that the buffer
// (ZKClientConfig.EventBuffer) overflowed. Events are never dropped silently.
type ZKClient struct {
	cfg    ZKClientConfig
	logger *slog.Logger
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *zkcEventQueue

	xid      atomic.Int32
	lastZxid atomic.Int64 // the largest zxid of an ordinary reply

	mu        sync.Mutex
	cur       *zkcConn      // nil while disconnected
	ready     chan struct{} // closed when cur is set or the client is done
	fatal     error         // ErrZKClosed, or why the client gave up
	sessionID int64
	passwd    []byte
	watches   map[string]zkwire.AddWatchMode
	auths     []ZKAuth

	closeOnce sync.Once
}

// Errors of a ZKClient.
var (
	// ErrZKClosed is returned by calls on a closed ZKClient.
	ErrZKClosed = errors.New("dualwrite: zookeeper client closed")
	// ErrZKAuthFailed is returned when ZooKeeper refuses the credentials
	// (AuthFailed); a client whose configured credentials are refused on a
	// reconnect gives up with it.
	ErrZKAuthFailed = errors.New("dualwrite: zookeeper authentication failed")
	// ErrZKUnreachable is returned by DialZK when no server gave a session.
	ErrZKUnreachable = errors.New("dualwrite: no zookeeper server gave a session")

	// errZKConnLost fails the requests of a dead connection; they are sent
	// again on the next.
	errZKConnLost = errors.New("dualwrite: zookeeper connection lost")
	// errZKSessionExpired is a reconnect refused because the session is gone.
	errZKSessionExpired = errors.New("dualwrite: zookeeper session expired")
)

// ZKAuth is a credential added to the session (addauth scheme cred), e.g.
// {"digest", "user:password"}.
type ZKAuth struct {
	Scheme string
	Cred   []byte
}

// ZKClientConfig configures a ZKClient.
type ZKClientConfig struct {
	// Hosts are the ensemble's servers, host:port.
	Hosts []string
	// SessionTimeout is the timeout asked for; the server clamps it to its
	// [minSessionTimeout, maxSessionTimeout]. Default 10s.
	SessionTimeout time.Duration
	// Auth are added right after the session is made, and again after every
	// reconnect.
	Auth []ZKAuth
	// DialTimeout bounds connecting to one server and its handshake. Default 5s.
	DialTimeout time.Duration
	// MaxReplyFrame bounds a reply, in bytes. Default zkwire.DefaultMaxReplyFrame.
	MaxReplyFrame int
	// EventBuffer is how many events wait for a slow consumer before the
	// next ones are dropped (and the first event delivered after that is
	// marked Missed). Default 65536.
	EventBuffer int
	Logger      *slog.Logger
}

// Defaults of ZKClientConfig.
const (
	DefaultZKSessionTimeout = 10 * time.Second
	DefaultZKDialTimeout    = 5 * time.Second
	DefaultZKEventBuffer    = 1 << 16
)

// Validate reports whether the configuration can be used.
func (c ZKClientConfig) Validate() error {
	if len(c.Hosts) == 0 {
		return errors.New("dualwrite: zookeeper client: no hosts")
	}
	if c.SessionTimeout < 0 || c.DialTimeout < 0 || c.MaxReplyFrame < 0 || c.EventBuffer < 0 {
		return errors.New("dualwrite: zookeeper client: negative timeout or size")
	}
	for _, a := range c.Auth {
		if a.Scheme == "" {
			return errors.New("dualwrite: zookeeper client: auth without a scheme")
		}
	}
	return nil
}

func (c ZKClientConfig) withDefaults() ZKClientConfig {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultZKSessionTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultZKDialTimeout
	}
	if c.MaxReplyFrame == 0 {
		c.MaxReplyFrame = zkwire.DefaultMaxReplyFrame
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultZKEventBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ZKEvent is a watch notification or a change of the connection.
type ZKEvent struct {
	// Type is the node event (NodeCreated, NodeDeleted, NodeDataChanged, …),
	// or EventNone for a connection change.
	Type zkwire.EventType
	// State is SyncConnected for node events; for connection changes
	// Disconnected, SyncConnected (reconnected, watches re-added) or Expired
	// (the session was lost; a new one follows with SyncConnected).
	State zkwire.KeeperState
	// Path is the node's server-absolute path (node events).
	Path string
	// Zxid is the notification's zxid: −1 before ZooKeeper 3.9, the
	// triggering txn's since.
	Zxid int64
	// Time is when the client received the event.
	Time time.Time
	// Missed says events may have been lost before this one.
	Missed bool
	// NewSession is set on the SyncConnected event of a new session.
	NewSession bool
}

// DialZK opens a session with one of the servers and returns once it is
// established and authenticated, trying the servers in turn until ctx ends.
func DialZK(ctx context.Context, cfg ZKClientConfig) (*ZKClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &ZKClient{
		cfg:     cfg,
		logger:  cfg.Logger,
		ready:   make(chan struct{}),
		watches: make(map[string]zkwire.AddWatchMode),
		auths:   slices.Clone(cfg.Auth),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.events = newZKCEventQueue(cfg.EventBuffer)
	stop := context.AfterFunc(ctx, c.cancel) // DialZK's ctx bounds the first connect only
	cn, err := c.connect(rand.IntN(len(cfg.Hosts)), true)
	stop()
	if err == nil && c.ctx.Err() != nil { // ctx ended just as the session came
		cn.fail(ErrZKClosed)
		err = c.ctx.Err()
	}
	if err != nil {
		c.cancel()
		c.wg.Wait()
		if ctx.Err() != nil && !errors.Is(err, ErrZKAuthFailed) {
			err = fmt.Errorf("%w: %w", ErrZKUnreachable, ctx.Err())
		}
		return nil, err
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.events.deliver(c.ctx) }()
	go func() { defer c.wg.Done(); c.run(cn) }()
	return c, nil
}

// Events returns the channel of watch events and connection changes. It is
// closed once the client is closed (or has given up: see Err).
func (c *ZKClient) Events() <-chan ZKEvent { return c.events.out }

// SessionID returns the current session's id.
func (c *ZKClient) SessionID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Server returns the address of the server the client is connected to, ""
// while it is not.
func (c *ZKClient) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.addr
}

// Err returns why the client stopped: nil while it runs, ErrZKClosed after
// Close, or the error it gave up with.
func (c *ZKClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// Close ends the session (closeSession) and stops the client. It is
// idempotent and waits for the client's goroutines.
func (c *ZKClient) Close() error {
	c.closeOnce.Do(func() {
		// Stop first, so that the server closing the connection after
		// closeSession is not taken for a connection to re-establish.
		c.mu.Lock()
		c.stopLocked(ErrZKClosed)
		cn := c.cur
		c.mu.Unlock()
		if cn != nil {
			// Best effort: a session not closed expires after its timeout.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = c.callOn(ctx, cn, zkwire.OpCloseSession, nil)
			cancel()
		}
		c.shutdown(ErrZKClosed)
		c.wg.Wait()
	})
	return nil
}

// shutdown stops the client with err (ErrZKClosed or why it gave up).
func (c *ZKClient) shutdown(err error) {
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
func (c *ZKClient) stopLocked(err error) {
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

// Exists returns the node's stat, and false (with no error) when the node
// does not exist.
func (c *ZKClient) Exists(ctx context.Context, path string) (znode.WireStat, bool, error) {
	resp, err := c.do(ctx, zkwire.OpExists, &zkwire.ExistsRequest{Path: path})
	if zkwire.CodeOf(err) == zkwire.CodeNoNode {
		return znode.WireStat{}, false, nil
	}
	if err != nil {
		return znode.WireStat{}, false, err
	}
	return resp.(*zkwire.ExistsResponse).Stat, true, nil
}

// GetData returns the node's data (nil and empty kept apart) and stat.
func (c *ZKClient) GetData(ctx context.Context, path string) ([]byte, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetData, &zkwire.GetDataRequest{Path: path})
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetDataResponse)
	return r.Data, r.Stat, nil
}

// GetACL returns the node's ACL list and stat.
func (c *ZKClient) GetACL(ctx context.Context, path string) ([]znode.ACL, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetACL, &zkwire.GetACLRequest{Path: path})
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetACLResponse)
	return r.ACL, r.Stat, nil
}

// GetChildren returns the node's child names (in the server's order) and its
// stat (getChildren2).
func (c *ZKClient) GetChildren(ctx context.Context, path string) ([]string, znode.WireStat, error) {
	resp, err := c.do(ctx, zkwire.OpGetChildren2, &zkwire.GetChildrenRequest{Path: path})
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	r := resp.(*zkwire.GetChildren2Response)
	return r.Children, r.Stat, nil
}

// Sync makes the server the client is connected to catch up with the leader,
// so that later reads see every write committed before the call.
func (c *ZKClient) Sync(ctx context.Context, path string) error {
	_, err := c.do(ctx, zkwire.OpSync, &zkwire.SyncRequest{Path: path})
	return err
}

// AddWatch sets a persistent watch (recursive or not) on path; the client
// sets it again after every reconnect.
func (c *ZKClient) AddWatch(ctx context.Context, path string, mode zkwire.AddWatchMode) error {
	if _, err := c.do(ctx, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: path, Mode: mode}); err != nil {
		return err
	}
	c.mu.Lock()
	c.watches[path] = mode
	c.mu.Unlock()
	return nil
}

// AddAuth adds a credential to the session (addauth) and keeps it for
// reconnects. ZooKeeper answers a refused credential with AuthFailed and
// closes the connection: AddAuth then returns an error matching
// ErrZKAuthFailed and does not keep the credential.
func (c *ZKClient) AddAuth(ctx context.Context, scheme string, cred []byte) error {
	_, err := c.do(ctx, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: scheme, Auth: cred})
	if zkwire.CodeOf(err) == zkwire.CodeAuthFailed {
		return fmt.Errorf("%w: scheme %s: %w", ErrZKAuthFailed, scheme, err)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.auths = append(c.auths, ZKAuth{Scheme: scheme, Cred: slices.Clone(cred)})
	c.mu.Unlock()
	return nil
}

// pathOf names a request's path for errors.
func pathOf(req zkwire.Request) string {
	switch r := req.(type) {
	case *zkwire.ExistsRequest:
		return r.Path
	case *zkwire.GetDataRequest:
		return r.Path
	case *zkwire.GetACLRequest:
		return r.Path
	case *zkwire.GetChildrenRequest:
		return r.Path
	case *zkwire.SyncRequest:
		return r.Path
	case *zkwire.AddWatchRequest:
		return r.Path
	}
	return ""
}

// do sends a request on the current connection, again on the next one if the
// connection dies first, and returns the reply's record.
func (c *ZKClient) do(ctx context.Context, op zkwire.OpCode, req zkwire.Request) (zkwire.Response, error) {
	for {
		cn, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.callOn(ctx, cn, op, req)
		if errors.Is(err, errZKConnLost) {
			continue
		}
		if e, ok := err.(*zkwire.Error); ok {
			e.Path = pathOf(req)
		}
		return resp, err
	}
}

// conn waits for a connection.
func (c *ZKClient) conn(ctx context.Context) (*zkcConn, error) {
	for {
		c.mu.Lock()
		cn, ready, fatal := c.cur, c.ready, c.fatal
		c.mu.Unlock()
		if fatal != nil {
			return nil, fatal
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *ZKClient) nextXid() int32 {
	for {
		x := c.xid.Add(1) & 0x7fffffff
		if x != 0 {
			return x
		}
	}
}

// callOn sends one request on cn and waits for its reply. A ZooKeeper error
// is a *zkwire.Error; a dead connection is errZKConnLost.
func (c *ZKClient) callOn(ctx context.Context, cn *zkcConn, op zkwire.OpCode, req zkwire.Request) (zkwire.Response, error) {
	call := &zkcCall{op: op, xid: c.nextXid(), done: make(chan struct{})}
	frame, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: call.xid, Op: op}, req)
	if err != nil {
		return nil, err
	}
	cn.send(call, frame)
	select {
	case <-call.done:
	case <-ctx.Done():
		cn.forget(call.xid)
		return nil, ctx.Err()
	}
	if call.err != nil {
		return nil, call.err
	}
	if call.code != zkwire.CodeOK {
		return nil, &zkwire.Error{Code: call.code, Op: op}
	}
	return call.resp, nil
}

// connect establishes a connection, starting with the server at index first:
// a new session (first use or after expiry) or the current one. It returns
// nil and an error once the client's context ends, or on refused
// credentials.
func (c *ZKClient) connect(first int, initial bool) (*zkcConn, error) {
	hosts := c.cfg.Hosts
	var lastErr error
	for round := 0; ; round++ {
		for i := range hosts {
			addr := hosts[(first+i)%len(hosts)]
			if err := c.ctx.Err(); err != nil {
				if lastErr == nil {
					lastErr = err
				}
				return nil, lastErr
			}
			cn, newSession, err := c.open(addr)
			if err != nil {
				c.logger.Debug("zookeeper connect failed", "server", addr, "error", err)
				lastErr = err
				if errors.Is(err, ErrZKAuthFailed) {
					return nil, err
				}
				continue
			}
			if !initial {
				c.events.push(ZKEvent{Type: zkwire.EventNone, State: zkwire.StateSyncConnected, Time: time.Now(),
					Missed: true, NewSession: newSession})
			}
			c.logger.Info("zookeeper session connected", "server", addr, "session", fmt.Sprintf("%#x", c.SessionID()),
				"timeout", cn.timeout, "new_session", newSession)
			return cn, nil
		}
		backoff := min(100*time.Millisecond<<min(round, 5), 2*time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
}

// open connects to one server: handshake (resuming the session, or a new one
// when there is none or it expired), then auth and watches, and makes the
// connection current.
func (c *ZKClient) open(addr string) (*zkcConn, bool, error) {
	c.mu.Lock()
	sid, pw := c.sessionID, c.passwd
	c.mu.Unlock()
	cn, resp, err := c.handshake(addr, sid, pw)
	newSession := sid == 0
	if errors.Is(err, errZKSessionExpired) {
		c.logger.Warn("zookeeper session expired", "session", fmt.Sprintf("%#x", sid))
		c.events.push(ZKEvent{Type: zkwire.EventNone, State: zkwire.StateExpired, Time: time.Now(), Missed: true})
		c.mu.Lock()
		c.sessionID, c.passwd = 0, nil
		c.mu.Unlock()
		cn, resp, err = c.handshake(addr, 0, nil)
		newSession = true
	}
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	c.sessionID, c.passwd = resp.SessionID, resp.Passwd
	c.mu.Unlock()
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.readLoop(cn) }()
	go func() { defer c.wg.Done(); cn.pingLoop() }()
	if err := c.setup(cn); err != nil {
		cn.fail(err)
		return nil, false, err
	}
	c.mu.Lock()
	if c.fatal != nil {
		c.mu.Unlock()
		cn.fail(c.fatal)
		return nil, false, c.fatal
	}
	c.cur = cn
	close(c.ready)
	c.mu.Unlock()
	return cn, newSession, nil
}

// handshake dials addr and exchanges the connect records.
func (c *ZKClient) handshake(addr string, sid int64, passwd []byte) (*zkcConn, zkwire.ConnectResponse, error) {
	var resp zkwire.ConnectResponse
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, resp, err
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	fr := zkwire.NewFrameReader(nc, c.cfg.MaxReplyFrame)
	resp, err = zkwire.ClientHandshake(nc, fr, zkwire.ConnectRequest{
		LastZxidSeen: c.lastZxid.Load(),
		TimeOut:      int32(c.cfg.SessionTimeout / time.Millisecond),
		SessionID:    sid,
		Passwd:       passwd,
		HasReadOnly:  true,
	})
	if err != nil {
		nc.Close()
		if errors.Is(err, zkwire.ErrSessionExpired) {
			return nil, resp, errZKSessionExpired
		}
		return nil, resp, fmt.Errorf("dualwrite: connect to %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	timeout := time.Duration(resp.TimeOut) * time.Millisecond
	cn := &zkcConn{
		nc: nc, fr: fr, addr: addr, timeout: timeout, logger: c.logger,
		calls: make(map[int32]*zkcCall), dead: make(chan struct{}),
	}
	cn.onDead = func() { c.connDied(cn) }
	return cn, resp, nil
}

// setup authenticates a fresh connection and sets the watches again, before
// any other request may use it.
func (c *ZKClient) setup(cn *zkcConn) error {
	ctx, cancel := context.WithTimeout(c.ctx, max(cn.timeout, c.cfg.DialTimeout))
	defer cancel()
	c.mu.Lock()
	auths := slices.Clone(c.auths)
	modes := maps.Clone(c.watches)
	c.mu.Unlock()
	for _, a := range auths {
		_, err := c.callOn(ctx, cn, zkwire.OpAuth, &zkwire.AuthPacket{Scheme: a.Scheme, Auth: a.Cred})
		if zkwire.CodeOf(err) == zkwire.CodeAuthFailed {
			return fmt.Errorf("%w: scheme %s", ErrZKAuthFailed, a.Scheme)
		}
		if err != nil {
			return fmt.Errorf("dualwrite: auth on %s: %w", cn.addr, err)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(modes)) {
		if _, err := c.callOn(ctx, cn, zkwire.OpAddWatch, &zkwire.AddWatchRequest{Path: p, Mode: modes[p]}); err != nil {
			return fmt.Errorf("dualwrite: re-adding the watch on %s at %s: %w", p, cn.addr, err)
		}
	}
	return nil
}

// run keeps the client connected until it is closed.
func (c *ZKClient) run(cn *zkcConn) {
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
		c.logger.Warn("zookeeper connection lost", "server", cn.addr, "error", cn.cause())
		c.events.push(ZKEvent{Type: zkwire.EventNone, State: zkwire.StateDisconnected, Time: time.Now()})
		next := (slices.Index(c.cfg.Hosts, cn.addr) + 1) % len(c.cfg.Hosts)
		var err error
		if cn, err = c.connect(next, false); err != nil {
			if errors.Is(err, ErrZKAuthFailed) {
				c.logger.Error("zookeeper refused the credentials on reconnect; giving up", "error", err)
				c.events.push(ZKEvent{Type: zkwire.EventNone, State: zkwire.StateAuthFailed, Time: time.Now(), Missed: true})
				c.shutdown(err)
			}
			return
		}
	}
}

// connDied makes calls wait for the next connection instead of trying a dead
// one again. The connection calls it as it fails.
func (c *ZKClient) connDied(cn *zkcConn) {
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
// calls, notifications to the event queue.
func (c *ZKClient) readLoop(cn *zkcConn) {
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(cn.timeout * 2 / 3))
		p, err := cn.fr.Next()
		if err != nil {
			cn.fail(fmt.Errorf("%w: %s: %w", errZKConnLost, cn.addr, err))
			return
		}
		hdr, body, err := zkwire.SplitReply(p)
		if err != nil {
			cn.fail(fmt.Errorf("%w: %s: %w", errZKConnLost, cn.addr, err))
			return
		}
		switch hdr.Xid {
		case zkwire.XidNotification:
			ev, err := zkwire.DecodeNotification(body)
			if err != nil {
				cn.fail(fmt.Errorf("%w: %s: %w", errZKConnLost, cn.addr, err))
				return
			}
			c.events.push(ZKEvent{Type: ev.Type, State: ev.State, Path: ev.Path, Zxid: hdr.Zxid, Time: time.Now()})
		case zkwire.XidPing:
		default:
			call := cn.take(hdr.Xid)
			if call == nil {
				continue // its caller gave up
			}
			if hdr.Zxid > 0 {
				for {
					old := c.lastZxid.Load()
					if hdr.Zxid <= old || c.lastZxid.CompareAndSwap(old, hdr.Zxid) {
						break
					}
				}
			}
			resp, err := zkwire.DecodeResponse(call.op, hdr.Err, body)
			if err != nil {
				err = fmt.Errorf("dualwrite: %v reply from %s: %w", call.op, cn.addr, err)
			}
			call.finish(hdr.Err, resp, err)
		}
	}
}

// zkcCall is one request waiting for its reply.
type zkcCall struct {
	op   zkwire.OpCode
	xid  int32
	done chan struct{}
	code zkwire.Code
	resp zkwire.Response
	err  error
}

func (cl *zkcCall) finish(code zkwire.Code, resp zkwire.Response, err error) {
	cl.code, cl.resp, cl.err = code, resp, err
	close(cl.done)
}

// zkcConn is one TCP connection of the session.
type zkcConn struct {
	nc      net.Conn
	fr      *zkwire.FrameReader // used by readLoop only
	addr    string
	timeout time.Duration // negotiated session timeout
	logger  *slog.Logger

	wmu sync.Mutex // one frame at a time

	mu     sync.Mutex
	calls  map[int32]*zkcCall
	err    error
	dead   chan struct{}
	onDead func() // called once as the connection fails, before its calls are
}

// send registers the call and writes its frame. A dead connection fails the
// call with errZKConnLost.
func (cn *zkcConn) send(call *zkcCall, frame []byte) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		call.finish(0, nil, errZKConnLost)
		return
	}
	cn.calls[call.xid] = call
	cn.mu.Unlock()
	if err := cn.write(frame); err != nil {
		cn.fail(fmt.Errorf("%w: %s: %w", errZKConnLost, cn.addr, err))
	}
}

func (cn *zkcConn) write(frame []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.timeout))
	_, err := cn.nc.Write(frame)
	return err
}

func (cn *zkcConn) take(xid int32) *zkcCall {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	call := cn.calls[xid]
	delete(cn.calls, xid)
	return call
}

func (cn *zkcConn) forget(xid int32) { cn.take(xid) }

// fail closes the connection once and fails its calls with errZKConnLost
// (they are sent again on the next connection).
func (cn *zkcConn) fail(err error) {
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
	if cn.onDead != nil {
		cn.onDead()
	}
	for _, call := range calls {
		call.finish(0, nil, fmt.Errorf("%w: %w", errZKConnLost, err))
	}
}

func (cn *zkcConn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// pingLoop pings every third of the session timeout, which keeps the session
// alive and the read deadline (two thirds) from passing on an idle
// connection.
func (cn *zkcConn) pingLoop() {
	ping, _ := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: zkwire.XidPing, Op: zkwire.OpPing}, nil)
	t := time.NewTicker(cn.timeout / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := cn.write(ping); err != nil {
				cn.fail(fmt.Errorf("%w: %s: ping: %w", errZKConnLost, cn.addr, err))
				return
			}
		case <-cn.dead:
			return
		}
	}
}

// zkcEventQueue holds events between the connection's reader and the
// consumer, so that a slow consumer never stalls replies; past its bound it
// drops events and marks the next one delivered Missed.
type zkcEventQueue struct {
	mu      sync.Mutex
	q       []ZKEvent
	limit   int
	missed  bool
	stopped bool
	wake    chan struct{}
	out     chan ZKEvent
	closed  chan struct{}
}

func newZKCEventQueue(limit int) *zkcEventQueue {
	return &zkcEventQueue{limit: limit, wake: make(chan struct{}, 1), out: make(chan ZKEvent), closed: make(chan struct{})}
}

func (q *zkcEventQueue) push(ev ZKEvent) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	if len(q.q) >= q.limit {
		q.missed = true
		q.mu.Unlock()
		return
	}
	if q.missed {
		ev.Missed, q.missed = true, false
	}
	q.q = append(q.q, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close stops accepting events; deliver closes out once it has handed over
// what was queued.
func (q *zkcEventQueue) close() {
	q.mu.Lock()
	if !q.stopped {
		q.stopped = true
		close(q.closed)
	}
	q.mu.Unlock()
}

// deliver hands queued events to out until ctx ends (Close) or the queue is
// closed and empty, then closes out.
func (q *zkcEventQueue) deliver(ctx context.Context) {
	defer close(q.out)
	for {
		q.mu.Lock()
		batch := q.q
		q.q = nil
		stopped := q.stopped
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case q.out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		if stopped {
			return
		}
		select {
		case <-q.wake:
		case <-q.closed:
		case <-ctx.Done():
			return
		}
	}
}
