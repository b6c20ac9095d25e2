package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// The reconciler catches what the tap cannot see: writes from clients that
// bypass the proxy, and the ephemerals ZooKeeper deletes when a session
// expires. It compares ZooKeeper with the journal and submits repairs that are
// observations of ZooKeeper's state, so that the journal's merge
// (raftjournal, "Merging ZooKeeper's writes") makes them idempotent and safe
// to race with the tap: a repair older than what the journal holds is
// dropped, a newer one replaces it.
//
// Three triggers:
//
//   - Events. A persistent recursive watch on Root (a zkclient.Client with
//     the Resend policy, which sets it again after a reconnect). Each
//     NodeCreated, NodeDataChanged or NodeDeleted is settled Grace after it
//     arrived (later events on the same path join the pending one): a recent
//     mirror by the tap may defer a check, never cancel it. Once the grace
//     has passed, the zxid rule (coveredByTap) settles the event without a
//     check only when ZooKeeper's node is no newer than the tap's last mirror
//     of a write on it (Mirrored); everything else is checked, a node absent
//     on both sides with its parent. setACL fires no event in ZooKeeper; the
//     digest path catches it (the digest covers aversion). ZooKeeper sends no
//     event for a node the watcher cannot READ: credentials that read
//     everything (a super digest) are needed to see writes on such nodes.
//   - Digests, every Interval: ZooKeeper's `hash` log and its latest zxid
//     against the journal's digests, read after a read barrier
//     (judgeDigests). Equal only at ZooKeeper's latest state; a difference,
//     confirmed a grace later, starts a RepairAll; "unknown" (nothing
//     comparable) makes a comparable point with alignment writes when
//     AlignPath allows them (align.go).
//   - Startup. When Run starts, events from before the watch are lost: the
//     startup pass runs a RepairAll unless the digests are equal at
//     ZooKeeper's latest state, and retries until it completes.
//   - Lost events. A reconnect, a new session or an overflowing event buffer
//     may have lost events: a RepairAll follows.
//
// Nodes the credentials cannot read (NoAuth, or a masked ACL the journal
// cannot stand in for) are not compared or repaired, and stop nothing else:
// they are reported (unreadable.go).
//
// A check reads the node from ZooKeeper (getData and getACL until both show
// the same version) and from the view, and compares data (nil against empty),
// ACL and every persisted stat field. Repairs:
//
//   - ZooKeeper has the node and the journal lacks it or differs: an
//     ImportBatch of the node as read, with each ancestor that differs too
//     (up to the first one the journal holds), parents first, so that the
//     parent's child registers (pzxid, cversion) are repaired with it. The
//     client API shows ephemeralOwner 0 for containers and TTL nodes; when the
//     journal holds the same incarnation (czxid) with such an owner, its raw
//     owner is kept and the 0 is no difference. A masked ACL (credentials
//     without ADMIN) is never imported (fillFromJournal).
//   - The journal has the node and ZooKeeper does not: read the parent's stat,
//     then confirm the node is still absent — in that order, every incarnation
//     created before the parent's pzxid P is dead — and submit a SourceTxn
//     deleting it at P. If the parent is gone too, the delete is of the
//     highest missing ancestor (one delete kills the subtree created before
//     it). The parent is then re-read and imported if it differs. A journal
//     incarnation created at or after P died after the parent was read: the
//     check reads again. The journal logs a digest for a SourceTxn whose zxid
//     is a multiple of 128, labelled with that zxid although a repair's
//     delete is applied long after it; so when P is such a zxid and the
//     incarnation allows, the delete is submitted at P−1 instead (the parent's
//     pzxid is then raised to P−1 ≤ P, still true).
//
// RepairAll runs verify.Compare between ZooKeeper (exporter's walker) and the
// view (a live side the comparison re-reads, so writes in flight converge
// instead of being repaired) and checks each path that differs, in canonical
// order; a deleted subtree's descendants are left to its root's delete.

// Defaults of ReconcilerConfig.
const (
	DefaultReconcileGrace    = 2 * time.Second
	DefaultReconcileInterval = time.Minute
)

const (
	// reconcileWorkers checks run at once (their ZooKeeper reads are
	// pipelined on one session).
	reconcileWorkers = 8
	// maxCheckAttempts bounds the re-reads of one check when ZooKeeper keeps
	// changing under it.
	maxCheckAttempts = 5
	// maxEventRetries is how many times a failed event check is retried
	// before a RepairAll is asked for instead.
	maxEventRetries = 5
	// repairListLimit is how many differences one verify pass lists; a pass
	// that found more is followed by another, up to maxRepairPasses.
	repairListLimit = 10_000
	maxRepairPasses = 5
	// maxConsistentReads bounds the getData/getACL pairs read to see one
	// state of a node.
	maxConsistentReads = 20
	// digestLogInterval is ZooKeeper's DIGEST_LOG_INTERVAL.
	digestLogInterval = 128
)

// Errors of the reconciler.
var (
	// ErrOutOfScope is returned by CheckPath and RepairAll for a path outside
	// Root or inside /zookeeper, which is never reconciled.
	ErrOutOfScope = errors.New("dualwrite: path outside the reconciled subtree")
	// ErrReconcilerClosed is returned by calls on a closed Reconciler.
	ErrReconcilerClosed = errors.New("dualwrite: reconciler closed")
	// ErrRepairRefused is returned (wrapped) when the journal refused a repair
	// (a journal past the shadow phase, a malformed entry).
	ErrRepairRefused = errors.New("dualwrite: journal refused the repair")
)

// ReconcilerConfig configures a Reconciler. Start from DefaultReconcilerConfig.
type ReconcilerConfig struct {
	// ZK lists the ensemble's servers (host:port).
	ZK []string
	// Auth are credentials, "scheme:credential" ("digest:user:password"),
	// added to every session; nodes they cannot read fail their checks.
	Auth []string
	// SessionTimeout is the reconciler's session timeout (default 10s).
	SessionTimeout time.Duration
	// Journal receives the repairs; View reads the journal.
	Journal Journal
	View    JournalView
	// Root is the subtree reconciled ("/" by default). /zookeeper is never
	// reconciled.
	Root string
	// Grace is how long after an event its check waits, so that the tap's own
	// mirror of the write lands first. Zero means DefaultReconcileGrace.
	Grace time.Duration
	// Interval is the period of the digest check. Zero disables it
	// (DefaultReconcilerConfig sets DefaultReconcileInterval). The check
	// compares the whole tree's digest whatever Root is; a difference
	// repairs Root.
	Interval time.Duration
	// Mirrored is an optional hint from the tap (Tap.MirroredZxid): the zxid
	// of the last write it mirrored on path, and whether that write deleted
	// it. An event on such a path is settled without a check when ZooKeeper's
	// node is no newer than that write (the zxid rule, checkDue).
	Mirrored func(path string) (zxid int64, deleted, ok bool)
	// AlignPath, when set with AlignVia, allows alignment writes: a digest
	// check that finds nothing comparable writes this node through AlignVia
	// (the dual-write proxy's address; or ZooKeeper's, without a proxy) until
	// ZooKeeper's zxid is a multiple of 128, then checks again (align.go).
	// Empty: such a check says "unknown", and only the event checks and the
	// repair passes (startup, lost mirrors) catch writes around the proxy; a
	// setACL around it fires no event and is caught by a digest check only.
	AlignPath string
	AlignVia  []string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultReconcilerConfig returns the defaults: the whole tree, a 2s grace,
// a digest check every minute.
func DefaultReconcilerConfig() ReconcilerConfig {
	return ReconcilerConfig{
		Root:           "/",
		SessionTimeout: zkclient.DefaultSessionTimeout,
		Grace:          DefaultReconcileGrace,
		Interval:       DefaultReconcileInterval,
	}
}

// Validate reports whether the configuration can be used.
func (c ReconcilerConfig) Validate() error {
	switch {
	case len(c.ZK) == 0:
		return errors.New("dualwrite: reconciler: no ZooKeeper hosts")
	case c.Journal == nil:
		return errors.New("dualwrite: reconciler: no journal")
	case c.View == nil:
		return errors.New("dualwrite: reconciler: no journal view")
	case c.Grace < 0, c.Interval < 0, c.SessionTimeout < 0:
		return errors.New("dualwrite: reconciler: negative duration")
	}
	if c.Root != "" {
		if err := znode.ValidatePath(c.Root); err != nil {
			return fmt.Errorf("dualwrite: reconciler: root: %w", err)
		}
		if znode.IsSystemPath(c.Root) {
			return fmt.Errorf("dualwrite: reconciler: root %s: /zookeeper is never reconciled", c.Root)
		}
	}
	for _, a := range c.Auth {
		if _, err := zkclient.ParseAuth(a); err != nil {
			return fmt.Errorf("dualwrite: reconciler: %w", err)
		}
	}
	if c.AlignPath != "" {
		if err := znode.ValidatePath(c.AlignPath); err != nil || c.AlignPath == "/" || znode.IsSystemPath(c.AlignPath) {
			return fmt.Errorf("dualwrite: reconciler: alignment path %q: want a node of its own outside /zookeeper", c.AlignPath)
		}
		if len(c.AlignVia) == 0 {
			return errors.New("dualwrite: reconciler: an alignment path needs the proxy's address to write through (AlignVia)")
		}
	}
	return nil
}

// Reconciler keeps the journal equal to ZooKeeper by repairing what the tap
// did not mirror. CheckPath, RepairAll and DigestCheck may be called
// concurrently with Run and with each other (RepairAll runs one at a time).
// Its ZooKeeper session is opened on first use and ended by Close.
type Reconciler struct {
	cfg     ReconcilerConfig
	logger  *slog.Logger
	zkAuth  []zkclient.Auth
	metrics *reconcileMetrics
	stats   reconcileCounters

	mu        sync.Mutex
	client    *zkclient.Client
	alignConn *zkclient.Client // alignment writes (align.go), opened on first use
	closed    bool

	unreadable unreadableSet

	running   atomic.Bool
	repairMu  sync.Mutex    // one RepairAll at a time
	repairReq chan string   // a RepairAll Run should start, and why
	lastMu    sync.Mutex    // guards lastDigest
	lastDig   DigestVerdict // the last DigestCheck's verdict
}

// NewReconciler checks the configuration and registers the metrics. It does
// not connect: the session opens on first use.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultReconcileGrace
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = zkclient.DefaultSessionTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reconciler{
		cfg:       cfg,
		logger:    cfg.Logger.With("component", "reconciler"),
		repairReq: make(chan string, 1),
	}
	for _, a := range cfg.Auth {
		au, _ := zkclient.ParseAuth(a) // checked by Validate
		r.zkAuth = append(r.zkAuth, au)
	}
	m, err := newReconcileMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r.metrics = m
	return r, nil
}

// Close ends the reconciler's ZooKeeper session. It is idempotent; Run and
// the other calls fail with ErrReconcilerClosed afterwards.
func (r *Reconciler) Close() error {
	r.mu.Lock()
	c, ac := r.client, r.alignConn
	r.client, r.alignConn, r.closed = nil, nil, true
	r.mu.Unlock()
	if ac != nil {
		_ = ac.Close()
	}
	if c != nil {
		return c.Close()
	}
	return nil
}

// zk returns the reconciler's ZooKeeper client, connecting on first use (and
// again if the previous client gave up).
func (r *Reconciler) zk(ctx context.Context) (*zkclient.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrReconcilerClosed
	}
	if r.client != nil {
		if r.client.Err() == nil {
			return r.client, nil
		}
		_ = r.client.Close() // gave up; waits for its goroutines
		r.client = nil
	}
	c, err := zkclient.Dial(ctx, zkclient.Config{
		Hosts:          r.cfg.ZK,
		FirstHost:      -1,
		Retry:          zkclient.Resend,
		Auth:           r.zkAuth,
		SessionTimeout: r.cfg.SessionTimeout,
		Logger:         r.logger,
	})
	if err != nil {
		return nil, err
	}
	r.client = c
	return c, nil
}

// inScope reports whether path is reconciled.
func (r *Reconciler) inScope(path string) bool {
	return underRoot(path, r.cfg.Root) && !znode.IsSystemPath(path)
}
