package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// Defaults applied by DefaultConfig and to zero Config fields.
const (
	// DefaultSessions spreads evenly over ensembles of one, two, three or six
	// servers (session i starts at server i in sorted order).
	DefaultSessions         = 6
	DefaultWorkers          = 64
	DefaultMaxBufferedBytes = 64 << 20
	DefaultSessionTimeout   = 30 * time.Second
	DefaultConnectTimeout   = 15 * time.Second
	DefaultRetryTimeout     = 2 * time.Minute
	DefaultMaxListed        = 1000
	// MaxSessions stays well under ZooKeeper's default of 60 connections per
	// client address.
	MaxSessions = 32
	// MaxWorkers bounds the nodes read at once: far past what an ensemble
	// answers any faster, and each worker holds buffers.
	MaxWorkers = 4096
)

var (
	// ErrUnreadable is matched by the error Walk returns when nodes could not be
	// read in full with the given credentials (NoAuth, or an ACL ZooKeeper
	// masked) and Config.AllowPartial is not set. The error is an
	// *UnreadableError listing them.
	ErrUnreadable = errors.New("exporter: nodes unreadable with the given credentials")
	// ErrACLMasked is matched, besides ErrUnreadable, by an *UnreadableError
	// that lists nodes whose ACL ZooKeeper masked because the credentials lack
	// ADMIN on them (see IsMaskedACL).
	ErrACLMasked = errors.New("exporter: ACL masked by ZooKeeper: the credentials lack ADMIN")
	// ErrNoRoot is returned when the node the walk starts at does not exist.
	ErrNoRoot = errors.New("exporter: no such node")
	// ErrWalkerClosed is returned by calls on a closed Walker.
	ErrWalkerClosed = errors.New("exporter: walker closed")
	// ErrInvalidConfig is returned (wrapped) by Config.Validate.
	ErrInvalidConfig = errors.New("exporter: invalid config")
)

// UnreadableError lists the nodes a walk could not read in full with the given
// credentials. Two reasons, told apart:
//
//   - NoAuth: ZooKeeper refused the read. The path stands for its whole
//     subtree, which the walk could not see.
//   - ACL masked: ZooKeeper answered getACL with its digest identities masked
//     (digest:user:x), because the credentials have READ but not ADMIN on the
//     node. The node and its subtree were read; its ACL was not.
type UnreadableError struct {
	Count int      // nodes not read in full, for either reason
	Paths []string // the first of them, in file order, at most Config.MaxListed
	// ACLMasked counts the nodes of Count whose ACL came back masked, and
	// ACLMaskedPaths lists the first of them, at most Config.MaxListed.
	ACLMasked      int
	ACLMaskedPaths []string
}

// maskedACLAdvice is what the operator can do about a masked ACL.
const maskedACLAdvice = "add --auth with an identity that has it, or super"

// Error renders the error on one line naming the first nodes of each reason
// and what to do about a masked ACL.
func (e *UnreadableError) Error() string {
	masked := make(map[string]bool, len(e.ACLMaskedPaths))
	for _, p := range e.ACLMaskedPaths {
		masked[p] = true
	}
	var noAuthPaths []string
	for _, p := range e.Paths {
		if !masked[p] {
			noAuthPaths = append(noAuthPaths, p)
		}
	}
	var parts []string
	if n := e.Count - e.ACLMasked; n > 0 {
		parts = append(parts, fmt.Sprintf("%d node(s) answered NoAuth, their subtrees were not read: %s",
			n, listPaths(noAuthPaths, n)))
	}
	switch {
	case e.ACLMasked == 1 && len(e.ACLMaskedPaths) == 1:
		parts = append(parts, fmt.Sprintf("%s: ACL masked: the credentials lack ADMIN on the node; %s",
			e.ACLMaskedPaths[0], maskedACLAdvice))
	case e.ACLMasked > 0:
		parts = append(parts, fmt.Sprintf("%d node(s) with their ACL masked (%s): the credentials lack ADMIN on them; %s",
			e.ACLMasked, listPaths(e.ACLMaskedPaths, e.ACLMasked), maskedACLAdvice))
	}
	return fmt.Sprintf("%v: %s", ErrUnreadable, strings.Join(parts, "; "))
}

// listPaths renders the first few of count paths, and how many more there are.
func listPaths(paths []string, count int) string {
	const show = 5
	if len(paths) > show {
		paths = paths[:show]
	}
	more := ""
	if count > len(paths) {
		more = fmt.Sprintf(" and %d more", count-len(paths))
	}
	return strings.Join(paths, ", ") + more
}

// Is matches ErrUnreadable, and ErrACLMasked when a node's ACL came back masked.
func (e *UnreadableError) Is(target error) bool {
	return target == ErrUnreadable || (target == ErrACLMasked && e.ACLMasked > 0)
}

// Config configures a Walker. Start from DefaultConfig; zero fields take the
// Default… values.
type Config struct {
	// Hosts are the ensemble's servers, "host:port" each.
	Hosts []string
	// Root is the subtree to export ("/" for the whole tree).
	Root string
	// Exclude are path globs (path.Match syntax, absolute); a node matching one is
	// left out with its subtree. /zookeeper is always left out when Root is "/".
	Exclude []string
	// Ephemerals says whether ephemeral nodes are recorded or skipped.
	Ephemerals EphemeralPolicy
	// AllowPartial makes a walk that met unreadable nodes succeed; they are still
	// listed in the summary, which says Partial. A NoAuth node is left out with
	// its subtree; a node whose ACL came back masked is recorded with the ACL as
	// ZooKeeper showed it (digest:user:x, which no identity matches), so that
	// the tree keeps its shape.
	AllowPartial bool
	// ExtendedTypes is recorded in the snapshot header: whether the ensemble runs
	// with zookeeper.extendedTypesEnabled. A client cannot tell.
	ExtendedTypes bool
	// Auth are credentials added to every session.
	Auth []zkclient.Auth

	// Sessions is the number of ZooKeeper sessions the walk reads over.
	Sessions int
	// Workers is the number of nodes read at once (each a getData, a getACL and,
	// for nodes with children, a getChildren2, in order on one session).
	Workers int
	// Window bounds the nodes issued but not yet written; 0 means 16 × Workers,
	// at least 1024, and at least eight times the nodes a multiRead walk has in
	// flight (8 × Workers/4 × BatchSize: 4096 by default), lest read-ahead be
	// evicted and read again. Together with MaxBufferedBytes it bounds the
	// reorder buffer that turns completion order into the file's order.
	Window int
	// MaxBufferedBytes bounds the data, ACLs and child names held by nodes read
	// but not yet written, in bytes.
	MaxBufferedBytes int64
	// RateLimit caps the requests sent to the ensemble per second; 0 means no cap.
	RateLimit float64
	// ReadMode chooses between multiRead batches and node-by-node reads; the
	// zero value, ReadModeAuto, uses multiRead where the ensemble has it and
	// Dialer is nil.
	ReadMode ReadMode
	// BatchSize is the nodes read per multiRead; 0 means DefaultBatchSize. A
	// multiRead walk keeps Workers/4 batches in flight.
	BatchSize int

	// SessionTimeout is the ZooKeeper session timeout asked for.
	SessionTimeout time.Duration
	// ConnectTimeout bounds establishing one session.
	ConnectTimeout time.Duration
	// RetryTimeout is how long reading one node may keep failing for want of a
	// server (connection loss, no server reachable) before the walk gives up.
	RetryTimeout time.Duration
	// Dialer opens connections (TLS, see zkclient.TLSOptions); nil means
	// plain TCP.
	Dialer zkclient.Dialer
	// MaxBufferSize bounds one reply from the server, in bytes; 0 means
	// zkclient.DefaultMaxReplyFrame, 64 MiB (a getChildren of 100k children
	// is several MiB). A server that is not ZooKeeper (an HTTP port) fails
	// the walk's Start at once.
	MaxBufferSize int

	// MaxListed caps each list in the summary (changed, unreadable); the counts
	// stay exact.
	MaxListed int
	// ToolVersion is recorded in the snapshot header.
	ToolVersion string
	// Logger receives the walk's log lines; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration for exporting the whole tree of the
// ensemble at hosts.
func DefaultConfig(hosts []string) Config {
	return Config{
		Hosts:            hosts,
		Root:             "/",
		Sessions:         DefaultSessions,
		Workers:          DefaultWorkers,
		MaxBufferedBytes: DefaultMaxBufferedBytes,
		SessionTimeout:   DefaultSessionTimeout,
		ConnectTimeout:   DefaultConnectTimeout,
		RetryTimeout:     DefaultRetryTimeout,
		MaxListed:        DefaultMaxListed,
	}
}

func (c Config) withDefaults() Config {
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Window == 0 {
		c.Window = max(16*c.Workers, 8*c.batchReaders()*c.BatchSize, 1024)
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	if c.MaxListed == 0 {
		c.MaxListed = DefaultMaxListed
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if len(c.Hosts) == 0 {
		return fmt.Errorf("%w: no hosts", ErrInvalidConfig)
	}
	if c.Root != "" {
		if err := znode.ValidatePath(c.Root); err != nil {
			return fmt.Errorf("%w: root: %w", ErrInvalidConfig, err)
		}
	}
	for _, p := range c.Exclude {
		if err := ValidateExclude(p); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.Ephemerals != EphemeralsInclude && c.Ephemerals != EphemeralsSkip {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, c.Ephemerals)
	}
	switch {
	case c.Sessions < 0 || c.Sessions > MaxSessions:
		return fmt.Errorf("%w: Sessions %d, want 1..%d", ErrInvalidConfig, c.Sessions, MaxSessions)
	case c.Workers < 0 || c.Workers > MaxWorkers:
		return fmt.Errorf("%w: Workers %d, want 1..%d", ErrInvalidConfig, c.Workers, MaxWorkers)
	case c.Window < 0:
		return fmt.Errorf("%w: Window %d is negative", ErrInvalidConfig, c.Window)
	case c.Window > 0 && c.Workers > 0 && c.Window < c.Workers:
		return fmt.Errorf("%w: Window %d is smaller than Workers %d", ErrInvalidConfig, c.Window, c.Workers)
	case c.MaxBufferedBytes < 0:
		return fmt.Errorf("%w: MaxBufferedBytes %d is negative", ErrInvalidConfig, c.MaxBufferedBytes)
	case c.BatchSize < 0 || c.BatchSize > maxBatchSize:
		return fmt.Errorf("%w: BatchSize %d, want 0..%d", ErrInvalidConfig, c.BatchSize, maxBatchSize)
	case c.ReadMode > ReadModeMultiRead:
		return fmt.Errorf("%w: %v", ErrInvalidConfig, c.ReadMode)
	case c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0):
		return fmt.Errorf("%w: RateLimit %v, want a finite number >= 0", ErrInvalidConfig, c.RateLimit)
	case c.SessionTimeout < 0 || c.ConnectTimeout < 0 || c.RetryTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	case c.MaxBufferSize < 0 || c.MaxListed < 0:
		return fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	return nil
}

// Sink receives the walk's nodes, parents before children. *znode.SnapshotWriter
// and *znode.SnapshotFile are sinks.
type Sink interface {
	WriteNode(*znode.Node) error
	// ObserveZxid raises the highest zxid the snapshot claims to reflect.
	ObserveZxid(int64)
}

// SinkFunc adapts a function to a Sink that ignores ObserveZxid.
type SinkFunc func(*znode.Node) error

func (f SinkFunc) WriteNode(n *znode.Node) error { return f(n) }
func (f SinkFunc) ObserveZxid(int64)             {}

// Walker exports a live ensemble's tree: a parallel, pipelined walk over a few
// sessions, streaming nodes to a Sink in depth-first order (see the package
// documentation for the ordering, consistency and fault rules).
//
// Use: NewWalker, Start (sessions and the start zxid), Header (for the snapshot
// file), Walk, Close.
type Walker struct {
	cfg      Config
	excl     excluder
	limiter  *rateLimiter
	maxReply atomicMax

	mu        sync.Mutex
	sessions  []*session
	multiRead bool // reads in multiRead batches over zkclient sessions
	started   bool
	walked    bool
	closed    bool
	startZxid int64
	startedAt time.Time

	stats walkStats
}

// walkStats are the counters Progress reads while the walk runs.
type walkStats struct {
	nodes, dataBytes, requests  atomic.Int64
	rereads, retries, renewed   atomic.Int64
	changed, deleted, noAuth    atomic.Int64
	aclMasked                   atomic.Int64
	ephemeralsSkipped, excluded atomic.Int64
}

// NewWalker checks cfg and returns a Walker; it does not connect yet.
func NewWalker(cfg Config) (*Walker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Walker{
		cfg:     cfg,
		excl:    excluder{root: cfg.Root, patterns: cfg.Exclude},
		limiter: newRateLimiter(cfg.RateLimit),
	}, nil
}

// Config returns the walker's configuration with defaults applied.
func (w *Walker) Config() Config { return w.cfg }

// Start opens the sessions and syncs each with the leader. The walk's start zxid
// is the lowest of the sync replies' zxids: every read of the walk reflects at
// least every transaction up to it.
func (w *Walker) Start(ctx context.Context) error {
	w.mu.Lock()
	switch {
	case w.closed:
		w.mu.Unlock()
		return ErrWalkerClosed
	case w.started:
		w.mu.Unlock()
		return nil
	}
	w.started = true
	w.mu.Unlock()
	multiRead, err := w.chooseReadMode(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrWalkerClosed
	}
	w.multiRead = multiRead
	for i := range w.cfg.Sessions {
		w.sessions = append(w.sessions, &session{index: i, w: w})
	}
	sessions := w.sessions
	w.mu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range sessions {
		g.Go(func() error { return s.open(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	start := int64(-1)
	for _, s := range sessions {
		if start < 0 || s.syncZxid < start {
			start = s.syncZxid
		}
	}
	w.mu.Lock()
	w.startZxid = start
	w.startedAt = time.Now()
	w.mu.Unlock()
	w.cfg.Logger.Info("walk sessions open", "sessions", len(sessions), "start-zxid", fmt.Sprintf("%#x", start),
		"read-mode", w.ReadMode())
	return nil
}

// ReadMode is how the walk reads nodes, ReadModeClassic or ReadModeMultiRead;
// valid after Start.
func (w *Walker) ReadMode() ReadMode {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.multiRead {
		return ReadModeMultiRead
	}
	return ReadModeClassic
}

// StartZxid is the zxid the walk starts at; valid after Start.
func (w *Walker) StartZxid() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.startZxid
}

// Header returns the snapshot header for this walk; valid after Start.
func (w *Walker) Header() znode.SnapshotHeader {
	w.mu.Lock()
	defer w.mu.Unlock()
	meta := map[string]string{
		// Clients see ephemeralOwner 0 for container and TTL nodes; a live walk
		// records them as it sees them, as persistent nodes.
		"owner_source": "client-api",
	}
	if w.cfg.AllowPartial {
		meta["allow_partial"] = "true"
	}
	return znode.SnapshotHeader{
		Source:        Source(w.cfg.Hosts, w.cfg.Root),
		StartZxid:     w.startZxid,
		CreatedAt:     w.startedAt,
		ToolVersion:   w.cfg.ToolVersion,
		Filters:       w.excl.filters(w.cfg.Ephemerals),
		Kind:          znode.SnapshotKindExport,
		ExtendedTypes: w.cfg.ExtendedTypes,
		Meta:          meta,
	}
}

// Source names an ensemble and subtree as the snapshot header does:
// zk://host:port,host:port/path.
func Source(hosts []string, root string) string {
	return "zk://" + strings.Join(hosts, ",") + root
}

// Progress is a snapshot of a running walk's counters.
type Progress struct {
	Nodes     int64 // nodes written to the sink
	DataBytes int64 // bytes of node data written
	Requests  int64 // requests sent to the ensemble
	Changed   int64 // nodes changed or deleted during the walk
	NoAuth    int64 // nodes the credentials could not read
	ACLMasked int64 // nodes whose ACL ZooKeeper masked (the credentials lack ADMIN)
}

// Progress returns the walk's counters so far; it may be called at any time from
// any goroutine.
func (w *Walker) Progress() Progress {
	return Progress{
		Nodes:     w.stats.nodes.Load(),
		DataBytes: w.stats.dataBytes.Load(),
		Requests:  w.stats.requests.Load(),
		Changed:   w.stats.changed.Load() + w.stats.deleted.Load(),
		NoAuth:    w.stats.noAuth.Load(),
		ACLMasked: w.stats.aclMasked.Load(),
	}
}

// Close closes the sessions; in-flight requests fail and a running Walk returns
// an error. It is idempotent.
func (w *Walker) Close() error {
	w.mu.Lock()
	w.closed = true
	sessions := w.sessions
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(s.close)
	}
	wg.Wait()
	return nil
}

// Walk reads the tree below Config.Root and writes it to sink, parents before
// children, and returns the summary. It may be called once, after Start. The
// summary is returned with the unreadable-nodes error too; other errors may come
// with a nil summary.
func (w *Walker) Walk(ctx context.Context, sink Sink) (*Summary, error) {
	w.mu.Lock()
	switch {
	case w.closed:
		w.mu.Unlock()
		return nil, ErrWalkerClosed
	case !w.started || w.startZxid < 0 || len(w.sessions) == 0:
		w.mu.Unlock()
		return nil, errors.New("exporter: Walk before a successful Start")
	case w.walked:
		w.mu.Unlock()
		return nil, errors.New("exporter: Walk called twice")
	}
	w.walked = true
	sessions := w.sessions
	w.mu.Unlock()

	began := time.Now()
	// Cancelling the caller's context closes the sessions, so that reads waiting
	// on a server that does not answer return at once.
	stopClosing := context.AfterFunc(ctx, func() { w.Close() })
	defer stopClosing()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *task, w.cfg.Window+1)
	results := make(chan *task, w.cfg.Window+1)
	var workers sync.WaitGroup
	if w.multiRead {
		batches := make(chan []*task)
		workers.Go(func() { w.batchTasks(work, batches) })
		for i := range w.cfg.batchReaders() {
			s := sessions[i%len(sessions)]
			workers.Go(func() { w.runBatchReader(ctx, s, batches, results) })
		}
	} else {
		for i := range w.cfg.Workers {
			s := sessions[i%len(sessions)]
			workers.Go(func() {
				for t := range work {
					w.read(ctx, s, t)
					results <- t
				}
			})
		}
	}
	r := newReorder(w, sink, work)
	err := r.run(ctx, results)
	close(work)
	cancel()
	workers.Wait()
	if err != nil {
		return nil, err
	}

	// A last sync bounds the walk from above: every state read reflects no
	// transaction beyond the zxid its reply carries.
	end := w.endSync(context.WithoutCancel(ctx), sessions[0])
	w.maxReply.observe(end)
	maxZxid := max(w.maxReply.load(), r.maxNodeZxid)
	sink.ObserveZxid(maxZxid)

	sum := r.summary(w, began, maxZxid)
	if sum.Unreadable > 0 && !w.cfg.AllowPartial {
		return sum, &UnreadableError{Count: int(sum.Unreadable), Paths: sum.UnreadableList,
			ACLMasked: int(sum.ACLMasked), ACLMaskedPaths: sum.ACLMaskedList}
	}
	return sum, nil
}

// endSync syncs one session and returns its reply's zxid (0 if it fails, which
// only loses precision: the replies already seen still bound the walk).
func (w *Walker) endSync(ctx context.Context, s *session) int64 {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	defer cancel()
	s.mu.Lock()
	conn, tr := s.conn, s.tracker
	s.mu.Unlock()
	if conn == nil || w.limiter.wait(ctx, 1) != nil {
		return 0
	}
	w.stats.requests.Add(1)
	if _, err := conn.Sync("/"); err != nil {
		return 0
	}
	return tr.last.Load()
}

// outcome is what reading one node came to.
type outcome uint8

const (
	outcomeRead       outcome = iota + 1 // read, consistent
	outcomeGone                          // NoNode: deleted since its parent was read
	outcomeUnreadable                    // NoAuth
	outcomeFailed                        // an error that ends the walk
)

// task is one node to read. Workers fill in the outcome; everything else belongs
// to the reorder buffer.
type task struct {
	path string

	// Set by the worker.
	outcome  outcome
	node     *znode.Node
	children []string
	rereads  int
	excluded int64 // children left out by exclusion
	err      error

	// Set by the reorder buffer.
	parent    *dir
	done      bool
	size      int64 // bytes held while buffered
	kids      *dir  // the node's children, once known
	lateIndex int   // in the outstanding heap
}

// errMoved reports that a node's stat differed between its reads.
var errMoved = errors.New("exporter: node changed between reads")

// Re-reads of a node whose stat keeps changing: the first few at once, then
// with a short pause that lets a burst of writes pass.
const (
	maxWalkRereads   = 50
	quickStatRetries = 5
)

// read reads one node until it has a consistent state, or gives up. It never
// returns an error: the outcome goes into the task.
func (w *Walker) read(ctx context.Context, s *session, t *task) {
	var failingSince time.Time
	backoff := 20 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			t.outcome, t.err = outcomeFailed, err
			return
		}
		conn, sid := s.current()
		if conn == nil {
			t.outcome, t.err = outcomeFailed, ErrWalkerClosed
			return
		}
		if conn.SessionID() != sid {
			if err := s.resync(ctx); err != nil {
				if !w.retry(ctx, t, &failingSince, &backoff, err) {
					return
				}
			}
			continue
		}
		zc, ok := conn.(*zk.Conn)
		if !ok {
			t.outcome, t.err = outcomeFailed, errors.New("exporter: internal error: a classic walk on a multiRead session")
			return
		}
		n, children, err := w.readOnce(ctx, zc, t.path)
		if conn.SessionID() != sid {
			// Some replies may come from a new session that has not synced.
			continue
		}
		switch {
		case err == nil:
			t.outcome, t.node, t.children = outcomeRead, n, children
			return
		case errors.Is(err, zk.ErrNoNode):
			t.outcome = outcomeGone
			return
		case errors.Is(err, zk.ErrNoAuth):
			t.outcome = outcomeUnreadable
			return
		case errors.Is(err, errMoved):
			t.rereads++
			w.stats.rereads.Add(1)
			if t.rereads >= maxWalkRereads {
				t.outcome, t.err = outcomeFailed, fmt.Errorf("exporter: read %s: it changed between the reads of each of %d attempts", t.path, t.rereads)
				return
			}
			if t.rereads > quickStatRetries {
				if !sleep(ctx, time.Duration(t.rereads)*time.Millisecond) {
					continue // the context check above reports it
				}
			}
			continue
		case errors.Is(err, zk.ErrSessionExpired):
			// go-zookeeper opens a new session; the check above syncs it.
		case !retryable(err):
			if ctx.Err() == nil {
				t.outcome, t.err = outcomeFailed, fmt.Errorf("exporter: read %s: %w", t.path, err)
			} else {
				t.outcome, t.err = outcomeFailed, ctx.Err()
			}
			return
		}
		if !w.retry(ctx, t, &failingSince, &backoff, err) {
			return
		}
	}
}

// retry waits before a read is tried again after err (connection loss and the
// like: go-zookeeper reconnects, to another server if need be, meanwhile). It
// fails the task and returns false once the node has been failing for longer
// than RetryTimeout.
func (w *Walker) retry(ctx context.Context, t *task, failingSince *time.Time, backoff *time.Duration, err error) bool {
	if ctx.Err() != nil {
		t.outcome, t.err = outcomeFailed, ctx.Err()
		return false
	}
	now := time.Now()
	if failingSince.IsZero() {
		*failingSince = now
	} else if now.Sub(*failingSince) > w.cfg.RetryTimeout {
		t.outcome, t.err = outcomeFailed, fmt.Errorf("exporter: read %s: no answer from the ensemble for %v: %w", t.path, w.cfg.RetryTimeout.Round(time.Second), err)
		return false
	}
	w.stats.retries.Add(1)
	w.cfg.Logger.Debug("retrying read", "path", t.path, "err", err, "backoff", *backoff)
	sleep(ctx, *backoff)
	*backoff = min(2**backoff, time.Second)
	return true
}

// retryable reports whether a request may succeed if sent again: connection
// loss, no server reachable, a session moving between servers, I/O errors. The
// errors ZooKeeper itself answers with are final.
func retryable(err error) bool {
	switch {
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrClosing), errors.Is(err, zk.ErrSessionMoved):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	// go-zookeeper reports a failed socket write as the raw error, and its own
	// vocabulary as "zk: ..." errors, which are all final here.
	return !strings.HasPrefix(err.Error(), "zk: ")
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readOnce reads a node's data, ACL and (when it has any) children on one
// session, in that order, and checks that the three replies describe the same
// state: same czxid (incarnation), mzxid (data), pzxid (children) and aversion
// (ACL). A node whose getData stat shows no children needs no getChildren2: the
// getACL stat's pzxid proves none came or went in between.
func (w *Walker) readOnce(ctx context.Context, conn *zk.Conn, path string) (*znode.Node, []string, error) {
	if err := w.limiter.wait(ctx, 2); err != nil {
		return nil, nil, err
	}
	w.stats.requests.Add(1)
	data, st, err := conn.Get(path)
	if err != nil {
		return nil, nil, err
	}
	w.stats.requests.Add(1)
	acl, ast, err := conn.GetACL(path)
	if err != nil {
		return nil, nil, err
	}
	if !sameState(st, ast) {
		return nil, nil, errMoved
	}
	var children []string
	if st.NumChildren > 0 {
		if err := w.limiter.wait(ctx, 1); err != nil {
			return nil, nil, err
		}
		w.stats.requests.Add(1)
		var cst *zk.Stat
		children, cst, err = conn.Children(path)
		if err != nil {
			return nil, nil, err
		}
		if !sameState(st, cst) {
			return nil, nil, errMoved
		}
	}
	ws := WireStatFromZK(st)
	return &znode.Node{
		Path:        path,
		Data:        data,
		ACL:         ACLFromZK(acl),
		Stat:        znode.FromWire(ws, ws.EphemeralOwner),
		NumChildren: ws.NumChildren,
	}, children, nil
}
