package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
)

// Config configures a Tap.
type Config struct {
	// Listen is the address clients connect to ("127.0.0.1:2181").
	Listen string
	// ZK lists the ensemble's servers (host:port). Each client connection is
	// relayed to one of them; a client that reconnects after its server died
	// reaches another.
	ZK []string
	// Journal receives the mirrored writes.
	Journal Journal
	// QueueDir holds the durable queue of mirrored writes not yet committed by
	// the journal.
	QueueDir string
	// Queue bounds the durable queue; zero fields take DefaultQueueConfig's.
	QueueMaxBytes   int64
	QueueMaxRecords int
	// QueueNoSync skips fsync in the queue (tests and benchmarks only: a crash
	// of the machine may then lose mirrored writes).
	QueueNoSync bool
	// QueueSyncOnAppend holds each reply until its mirror is fsynced, so that
	// not even a crash of the proxy's machine can lose it. By default the
	// mirror is written to the queue file before the reply (a proxy crash
	// loses nothing) and fsynced within QueueSyncEvery; a machine crash may
	// lose that window, which the queue detects at the next start and the
	// repair pass (RepairOwed) makes good.
	QueueSyncOnAppend bool
	QueueSyncEvery    time.Duration
	// Sync holds each write's reply until the journal has committed its
	// mirror (at most SyncTimeout; then the reply is released and the write
	// stays queued). Async (the default) holds it only until the mirror is on
	// disk in the queue.
	Sync        bool
	SyncTimeout time.Duration
	// Auth are credentials, "scheme:credential" ("digest:user:password"), for
	// the tap's own session, which reads back at delivery what replies lack
	// (readback.go). Only an ACL the tap cannot predict (a connection with a
	// SASL identity, for one) needs them: READ and ADMIN on such nodes, which
	// a super digest gives.
	Auth []string
	// DialTimeout bounds connecting to a ZooKeeper server.
	DialTimeout time.Duration
	// MaxRequestFrame is the ensemble's jute.maxbuffer: the largest client
	// request frame, in bytes, its servers accept (-Djute.maxbuffer, default
	// 0xfffff). A client frame above it closes the connection, as the server
	// would, with a warning in the log. A proxy given less than the ensemble
	// refuses requests ZooKeeper would take.
	MaxRequestFrame int
	// DeliveryBatch is how many queued mirrors are submitted to the journal
	// at once.
	DeliveryBatch int
	// DeliveryLinger is how long delivery waits after a short batch (async
	// mode), so that the journal commits mirrors in fewer, larger entries.
	DeliveryLinger time.Duration
	// Held starts the tap holding (Hold): a proxy that restarts does not
	// relay anyone anywhere before its cutover agent has read the journal's
	// phase (package cutover).
	Held bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults for the optional fields.
func DefaultConfig() Config {
	return Config{
		SyncTimeout:     10 * time.Second,
		DialTimeout:     5 * time.Second,
		MaxRequestFrame: zkwire.DefaultMaxBuffer,
		DeliveryBatch:   1024,
		DeliveryLinger:  10 * time.Millisecond,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = d.SyncTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.MaxRequestFrame <= 0 {
		c.MaxRequestFrame = d.MaxRequestFrame
	}
	if c.DeliveryBatch <= 0 {
		c.DeliveryBatch = d.DeliveryBatch
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("dualwrite: no listen address")
	case len(c.ZK) == 0:
		return errors.New("dualwrite: no ZooKeeper servers")
	case c.Journal == nil:
		return errors.New("dualwrite: no journal")
	case c.QueueDir == "":
		return errors.New("dualwrite: no queue directory")
	}
	for _, h := range c.ZK {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return fmt.Errorf("dualwrite: ZooKeeper server %q: %w", h, err)
		}
	}
	for _, a := range c.Auth {
		if _, err := zkclient.ParseAuth(a); err != nil {
			return fmt.Errorf("dualwrite: %w", err)
		}
	}
	return nil
}

// Tap is the dual-write proxy: it relays ZooKeeper clients to the ensemble
// and mirrors every write ZooKeeper committed into the journal.
type Tap struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	queue   *Queue
	metrics *metrics
	reader  *zkclient.Client // the tap's own session, for reading back what replies lack

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[*conn]struct{}
	suspect map[string]time.Time // servers a connection recently lost
	closed  bool

	next atomic.Uint64 // round-robin start

	rbCache   readBackCache
	jstate    journalTracker
	recent    sync.Map     // path → mirrorMark of the last mirrored write
	inflight  atomic.Int64 // write requests relayed whose reply is not handled yet
	lastZxid  atomic.Int64 // zxid of the last write queued for the journal
	delivered *deliveryState

	sw       switchState    // the cutover's hold and backend (switch.go)
	sessions *sessionMirror // ZooKeeper sessions for the journal (sessions.go)
}

// Start opens the queue, connects the tap's reading session, starts the
// delivery loop and listens for clients.
func Start(ctx context.Context, cfg Config) (*Tap, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	qc := DefaultQueueConfig(cfg.QueueDir)
	if cfg.QueueMaxBytes > 0 {
		qc.MaxBytes = cfg.QueueMaxBytes
	}
	if cfg.QueueMaxRecords > 0 {
		qc.MaxRecords = cfg.QueueMaxRecords
	}
	qc.NoSync = cfg.QueueNoSync
	qc.SyncOnAppend = cfg.QueueSyncOnAppend
	if cfg.QueueSyncEvery > 0 {
		qc.SyncEvery = cfg.QueueSyncEvery
	}
	qc.Logger = cfg.Logger
	q, err := OpenQueue(qc)
	if err != nil {
		return nil, err
	}
	t := &Tap{
		cfg:     cfg,
		log:     cfg.Logger,
		queue:   q,
		conns:   make(map[*conn]struct{}),
		suspect: make(map[string]time.Time),
	}
	t.metrics = newMetrics(t)
	if cfg.Registerer != nil {
		if err := t.metrics.register(cfg.Registerer); err != nil {
			q.Close()
			return nil, err
		}
	}
	t.delivered = newDeliveryState()
	t.sessions = newSessionMirror()
	if cfg.Held {
		t.sw.held, t.sw.heldSince, t.sw.release = true, time.Now(), make(chan struct{})
	}
	auth, _ := zkclient.ParseAuths(cfg.Auth) // checked by Validate
	rd, err := zkclient.New(zkclient.Config{Hosts: cfg.ZK, FirstHost: -1, Retry: zkclient.Resend, Auth: auth,
		SessionTimeout: readerSessionTimeout, Logger: t.log.With("component", "zk-reader")})
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("dualwrite: reading session to %v: %w", cfg.ZK, err)
	}
	t.reader = rd
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		rd.Close()
		q.Close()
		return nil, fmt.Errorf("dualwrite: listen on %s: %w", cfg.Listen, err)
	}
	t.ln = ln
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if lost, ok := q.Lost(); ok {
		t.log.Warn("the queue overflowed before: the journal is missing mirrored writes until a repair pass",
			"first-zxid", fmt.Sprintf("%#x", lost.FirstZxid), "last-zxid", fmt.Sprintf("%#x", lost.LastZxid), "count", lost.Count)
	}
	st := q.Stats()
	t.log.Info("dual-write proxy listening", "addr", ln.Addr().String(), "zk", cfg.ZK, "sync", cfg.Sync,
		"queue", cfg.QueueDir, "queued", st.Records)
	t.wg.Add(4)
	go t.acceptLoop()
	go t.deliverLoop()
	go t.pruneLoop()
	go t.sessionLoop()
	return t, nil
}

// readerSessionTimeout is the session timeout of the tap's read-back
// session, and the bound on one read-back.
const readerSessionTimeout = 10 * time.Second

// Addr returns the address clients connect to.
func (t *Tap) Addr() string { return t.ln.Addr().String() }

// Close stops accepting, closes every relayed connection, stops delivery and
// closes the queue: what was queued stays on disk for the next start.
func (t *Tap) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	err := t.ln.Close()
	for _, c := range conns {
		c.close()
	}
	t.closeJournalConns()
	t.cancel()
	t.wg.Wait()
	_ = t.reader.Close()
	return errors.Join(err, t.queue.Close())
}

// mirrorMark is the last write the tap mirrored on a path.
type mirrorMark struct {
	zxid    int64
	deleted bool // the write deleted the path (a delete, or a closeSession's ephemeral)
	at      time.Time
}

// noteMirrored records a mirrored write on path, keeping the highest zxid
// (replies of different connections reach the tap in any order; within a
// multi, a later op on the same path wins).
func (t *Tap) noteMirrored(path string, m mirrorMark) {
	for {
		v, loaded := t.recent.LoadOrStore(path, m)
		if !loaded {
			return
		}
		old := v.(mirrorMark)
		if old.zxid > m.zxid || t.recent.CompareAndSwap(path, old, m) {
			return
		}
	}
}

// MirroredZxid returns the zxid of the last write the tap mirrored on path
// (queued for the journal) in the last five minutes, and whether that write
// deleted it: the reconciler settles an event on path without a check when
// ZooKeeper's node is no newer than that write (ReconcilerConfig.Mirrored).
func (t *Tap) MirroredZxid(path string) (zxid int64, deleted, ok bool) {
	v, ok := t.recent.Load(path)
	if !ok {
		return 0, false, false
	}
	m := v.(mirrorMark)
	return m.zxid, m.deleted, true
}

func (t *Tap) acceptLoop() {
	defer t.wg.Done()
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serve(nc)
		}()
	}
}

// serve relays one client connection until either side ends it: to
// ZooKeeper, mirroring its writes, or after the cutover to the journal. A
// connection that arrives during a hold waits before anything is dialled.
func (t *Tap) serve(client net.Conn) {
	if !t.waitHold(nil) {
		client.Close()
		return
	}
	if t.Backend() == BackendJournal {
		t.serveJournal(client)
		return
	}
	server, addr, err := t.dial()
	if err != nil {
		t.log.Warn("no ZooKeeper server reachable; closing the client connection", "client", client.RemoteAddr().String(), "err", err)
		t.metrics.dialFailures.Inc()
		client.Close()
		return
	}
	c := newConn(t, client, server, addr)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.close()
		return
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	t.metrics.connections.Inc()
	t.metrics.connectionsTotal.Inc()
	c.run()
	t.metrics.connections.Dec()
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	if c.session != 0 {
		t.sessions.detach(c.session)
	}
}

// dial connects to a server of the ensemble: round robin from a rotating
// start, servers a connection recently lost tried last.
func (t *Tap) dial() (net.Conn, string, error) {
	hosts := t.cfg.ZK
	start := int(t.next.Add(1)) + rand.IntN(len(hosts))
	order := make([]string, 0, len(hosts))
	var later []string
	now := time.Now()
	t.mu.Lock()
	for i := range hosts {
		h := hosts[(start+i)%len(hosts)]
		if until, ok := t.suspect[h]; ok && now.Before(until) {
			later = append(later, h)
			continue
		}
		order = append(order, h)
	}
	t.mu.Unlock()
	order = append(order, later...)
	var errs []error
	for _, h := range order {
		d := net.Dialer{Timeout: t.cfg.DialTimeout}
		nc, err := d.DialContext(t.ctx, "tcp", h)
		if err == nil {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			return nc, h, nil
		}
		t.markSuspect(h)
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

// markSuspect makes dial try h last for a while.
func (t *Tap) markSuspect(h string) {
	t.mu.Lock()
	t.suspect[h] = time.Now().Add(10 * time.Second)
	t.mu.Unlock()
}

// pruneLoop forgets old entries of the recently-mirrored map.
func (t *Tap) pruneLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			t.recent.Range(func(k, v any) bool {
				if now.Sub(v.(mirrorMark).at) > 5*time.Minute {
					t.recent.Delete(k)
				}
				return true
			})
		}
	}
}
