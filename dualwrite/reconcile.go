package dualwrite

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
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
	// repairPathsWorkers is RepairPaths' reading parallelism: its reads are
	// the whole of its cost (two ZooKeeper round trips and a journal read
	// per node), and a rollback waits for them.
	repairPathsWorkers = 32
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

// ---- checks and repairs ----

// checkResult counts the entries one check submitted.
type checkResult struct {
	nodes, deletes int
	absent         bool // the node was absent on both sides
}

func (c checkResult) repaired() bool { return c.nodes+c.deletes > 0 }

// CheckPath compares one path in ZooKeeper (after a sync) and in the journal,
// and repairs the journal if they differ. It reports whether it submitted a
// repair. A path outside Root or in /zookeeper is ErrOutOfScope.
func (r *Reconciler) CheckPath(ctx context.Context, path string) (bool, error) {
	if err := znode.ValidatePath(path); err != nil {
		return false, err
	}
	if !r.inScope(path) {
		return false, fmt.Errorf("%w: %s (root %s)", ErrOutOfScope, path, r.cfg.Root)
	}
	c, err := r.zk(ctx)
	if err != nil {
		return false, err
	}
	if err := c.Sync(ctx, "/"); err != nil {
		return false, err
	}
	res, err := r.check(ctx, c, path)
	return res.repaired(), err
}

// check compares path and repairs it, reading again when ZooKeeper changed
// under the repair. The caller has synced the session. A node that was
// unreadable and is read now is no longer reported.
func (r *Reconciler) check(ctx context.Context, c *zkclient.Client, path string) (checkResult, error) {
	res, err := r.check1(ctx, c, path)
	if err == nil {
		r.readable(path)
	}
	return res, err
}

func (r *Reconciler) check1(ctx context.Context, c *zkclient.Client, path string) (checkResult, error) {
	r.stats.checks.Add(1)
	r.metrics.checks.Inc()
	var res checkResult
	for range maxCheckAttempts {
		zn, err := r.readZK(ctx, c, path)
		if err != nil {
			return res, err
		}
		jn, inJournal, err := r.cfg.View.Get(ctx, path)
		if err != nil {
			return res, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
		}
		if zn != nil {
			if err := fillFromJournal(zn, jn); err != nil {
				return res, err
			}
			var why string
			if inJournal {
				diff := differingFields(zn, jn)
				if len(diff) == 0 {
					return res, nil
				}
				why = "differs: " + strings.Join(diff, ",")
			} else {
				why = "missing in the journal"
			}
			n, err := r.repairNode(ctx, c, zn, why)
			res.nodes += n
			return res, err
		}
		if !inJournal {
			res.absent = true
			return res, nil
		}
		deleted, again, err := r.repairDelete(ctx, c, path)
		if deleted {
			res.deletes++
		}
		if err != nil || !again {
			return res, err
		}
	}
	return res, fmt.Errorf("dualwrite: %s changed under each of %d checks", path, maxCheckAttempts)
}

// readZK reads a node's data, ACL and stat in one state (getData and getACL
// until both show the same czxid and aversion: the stat and data are
// getData's, and the ACL was the same then), or nil when it does not exist.
func (r *Reconciler) readZK(ctx context.Context, c *zkclient.Client, path string) (*znode.Node, error) {
	for range maxConsistentReads {
		data, ws, err := c.GetData(ctx, path)
		if zkwire.CodeOf(err) == zkwire.CodeNoNode {
			return nil, nil
		}
		if err != nil {
			return nil, zkReadError(path, err)
		}
		acl, as, err := c.GetACL(ctx, path)
		if zkwire.CodeOf(err) == zkwire.CodeNoNode {
			return nil, nil
		}
		if err != nil {
			return nil, zkReadError(path, err)
		}
		// Same incarnation and ACL version: the ACL was the node's when
		// getData read it (a setData or a child's change in between moves
		// only what getData's stat describes), so a hot node reads too.
		if ws.Czxid != as.Czxid || ws.Aversion != as.Aversion {
			continue
		}
		return &znode.Node{
			Path:        path,
			Data:        data,
			ACL:         acl,
			Stat:        znode.FromWire(ws, ws.EphemeralOwner),
			NumChildren: ws.NumChildren,
		}, nil
	}
	return nil, fmt.Errorf("dualwrite: zookeeper: %s changed on each of %d reads", path, maxConsistentReads)
}

// zkReadError wraps a read's error; NoAuth is ErrNodeUnreadable.
func zkReadError(path string, err error) error {
	if zkwire.CodeOf(err) == zkwire.CodeNoAuth {
		return fmt.Errorf("%w: %s: %w", ErrNodeUnreadable, path, err)
	}
	return fmt.Errorf("dualwrite: zookeeper: %w", err)
}

// fillFromJournal completes a node read through the client API with what the
// client API hides and the journal (jn, nil when it lacks the node) knows:
//
//   - Clients see ephemeralOwner 0 for containers and TTL nodes; when the
//     journal holds the same incarnation (czxid) with such a raw owner, it is
//     kept.
//   - Credentials with READ but without ADMIN on a node get its digest
//     identities masked (digest:user:x, exporter.IsMaskedACL): not the ACL.
//     When the journal holds the same incarnation at the same aversion with an
//     ACL that masks to the same list, that ACL is the one; otherwise the node
//     cannot be repaired with these credentials (exporter.ErrACLMasked).
func fillFromJournal(zn, jn *znode.Node) error {
	same := jn != nil && zn.Stat.Czxid == jn.Stat.Czxid
	if same && zn.Stat.EphemeralOwner == 0 {
		switch znode.EphemeralTypeOf(jn.Stat.EphemeralOwner, true) {
		case znode.Container, znode.TTL:
			zn.Stat.EphemeralOwner = jn.Stat.EphemeralOwner
		}
	}
	if exporter.IsMaskedACL(zn.ACL) {
		if !same || zn.Stat.Aversion != jn.Stat.Aversion || !znode.EqualACLs(exporter.MaskACL(jn.ACL), zn.ACL) {
			return fmt.Errorf("%w: %s: its ACL cannot be read (add credentials with ADMIN on it)", exporter.ErrACLMasked, zn.Path)
		}
		zn.ACL = jn.ACL
	}
	return nil
}

// differingFields names what differs between ZooKeeper's node and the
// journal's: data (nil against empty too), ACL and each persisted stat field.
// The child count is derived and not compared: a missing or extra child is
// the child's own difference, and shows in the parent's pzxid.
func differingFields(zn, jn *znode.Node) []string {
	var out []string
	switch {
	case (zn.Data == nil) != (jn.Data == nil):
		out = append(out, "nil-vs-empty")
	case string(zn.Data) != string(jn.Data):
		out = append(out, "data")
	}
	if !znode.EqualACLs(zn.ACL, jn.ACL) {
		out = append(out, "acl")
	}
	a, b := zn.Stat, jn.Stat
	for _, f := range []struct {
		name string
		diff bool
	}{
		{"czxid", a.Czxid != b.Czxid}, {"mzxid", a.Mzxid != b.Mzxid}, {"pzxid", a.Pzxid != b.Pzxid},
		{"ctime", a.Ctime != b.Ctime}, {"mtime", a.Mtime != b.Mtime}, {"version", a.Version != b.Version},
		{"cversion", a.Cversion != b.Cversion}, {"aversion", a.Aversion != b.Aversion},
		{"ephemeralOwner", a.EphemeralOwner != b.EphemeralOwner},
	} {
		if f.diff {
			out = append(out, f.name)
		}
	}
	return out
}

// repairNode imports zn, read from ZooKeeper, with the ancestors whose
// journal copy differs (up to the first the journal holds), parents first.
// It returns the number of nodes submitted.
func (r *Reconciler) repairNode(ctx context.Context, c *zkclient.Client, zn *znode.Node, why string) (int, error) {
	batch := []*znode.Node{zn}
	whys := []string{why}
	for p := znode.Parent(zn.Path); p != "" && !znode.IsSystemPath(p); p = znode.Parent(p) {
		pz, err := r.readZK(ctx, c, p)
		if err != nil {
			return 0, err
		}
		if pz == nil {
			break // gone meanwhile: its own event (or the next pass) deals with it
		}
		pj, inJournal, err := r.cfg.View.Get(ctx, p)
		if err != nil {
			return 0, fmt.Errorf("dualwrite: journal view: %s: %w", p, err)
		}
		if err := fillFromJournal(pz, pj); err != nil {
			return 0, err
		}
		pwhy := "parent of a repaired node, missing in the journal"
		if inJournal {
			diff := differingFields(pz, pj)
			if len(diff) == 0 {
				break
			}
			pwhy = "parent of a repaired node, differs: " + strings.Join(diff, ",")
		}
		batch = append(batch, pz)
		whys = append(whys, pwhy)
		if inJournal {
			break
		}
	}
	slices.Reverse(batch)
	slices.Reverse(whys)
	res, err := r.submit(ctx, &raftjournal.ImportBatch{Nodes: batch})
	if err != nil {
		return 0, err
	}
	for i, n := range batch {
		r.logger.Info("repaired node", "path", n.Path, "kind", "node", "why", whys[i],
			"czxid", fmt.Sprintf("%#x", n.Stat.Czxid), "mzxid", fmt.Sprintf("%#x", n.Stat.Mzxid), "changed", res.Changed)
	}
	if res.Changed == 0 {
		// The journal kept its own state: newer than what was read (the tap
		// got there first), or a divergence the merge does not resolve (same
		// versions, different contents), which verify reports.
		r.logger.Warn("repair changed nothing in the journal", "path", zn.Path, "why", why)
		// Not counted: nothing was repaired, and the repairs gate reads
		// a repair as a write around the proxies.
		return 0, nil
	}
	r.countRepairs("node", len(batch))
	return len(batch), nil
}

// repairDelete deletes path (or its highest ancestor missing in ZooKeeper)
// from the journal. again says ZooKeeper changed meanwhile and the check must
// read again.
func (r *Reconciler) repairDelete(ctx context.Context, c *zkclient.Client, path string) (deleted, again bool, err error) {
	target := path
	var parent znode.WireStat
	for {
		q := znode.Parent(target)
		if q == "" {
			return false, false, fmt.Errorf("dualwrite: zookeeper has no root node")
		}
		st, ok, err := c.Exists(ctx, q)
		if err != nil {
			return false, false, fmt.Errorf("dualwrite: zookeeper: %w", err)
		}
		if ok {
			parent = st
			break
		}
		target = q
	}
	// The parent's stat first, then the node's absence: every incarnation of
	// target created before the parent's pzxid is then dead.
	if _, ok, err := c.Exists(ctx, target); err != nil {
		return false, false, fmt.Errorf("dualwrite: zookeeper: %w", err)
	} else if ok {
		return false, true, nil
	}
	jn, inJournal, err := r.cfg.View.Get(ctx, target)
	if err != nil {
		return false, false, fmt.Errorf("dualwrite: journal view: %s: %w", target, err)
	}
	if !inJournal {
		return false, false, nil // deleted meanwhile (the tap, another check)
	}
	z := parent.Pzxid
	if jn.Stat.Czxid >= z {
		// Created after the parent was read, and gone since: read again.
		return false, true, nil
	}
	if z%digestLogInterval == 0 && jn.Stat.Czxid < z-1 {
		z-- // see the package comment: keep repairs out of the digest history
	}
	why := "absent in ZooKeeper"
	if target != path {
		why = "ancestor of " + path + " absent in ZooKeeper"
	}
	res, err := r.submit(ctx, &raftjournal.SourceTxn{Zxid: z, Ops: []raftjournal.SourceOp{{Kind: raftjournal.SourceDelete, Path: target}}})
	if err != nil {
		return false, false, err
	}
	r.logger.Info("repaired node", "path", target, "kind", "delete", "why", why,
		"zxid", fmt.Sprintf("%#x", z), "czxid", fmt.Sprintf("%#x", jn.Stat.Czxid), "changed", res.Changed)
	r.countRepairs("delete", 1)
	if q := znode.Parent(target); !znode.IsSystemPath(q) {
		if _, err := r.refresh(ctx, c, q, "parent of a deleted node"); err != nil {
			return true, false, err
		}
	}
	return true, false, nil
}

// refresh imports path from ZooKeeper when the journal's copy differs.
func (r *Reconciler) refresh(ctx context.Context, c *zkclient.Client, path, why string) (int, error) {
	zn, err := r.readZK(ctx, c, path)
	if err != nil || zn == nil {
		return 0, err
	}
	jn, inJournal, err := r.cfg.View.Get(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
	}
	if err := fillFromJournal(zn, jn); err != nil {
		return 0, err
	}
	if inJournal {
		diff := differingFields(zn, jn)
		if len(diff) == 0 {
			return 0, nil
		}
		why += ", differs: " + strings.Join(diff, ",")
	} else {
		why += ", missing in the journal"
	}
	return r.repairNode(ctx, c, zn, why)
}

// submit sends a repair and turns a refusal into an error.
func (r *Reconciler) submit(ctx context.Context, cmd raftjournal.Command) (*raftjournal.Result, error) {
	res, err := r.cfg.Journal.Submit(ctx, raftjournal.Encode(cmd))
	if err != nil {
		return nil, fmt.Errorf("dualwrite: submitting a repair: %w", err)
	}
	if res.Err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRepairRefused, res.Err)
	}
	return res, nil
}

func (r *Reconciler) countRepairs(kind string, n int) {
	if kind == "node" {
		r.stats.nodeRepairs.Add(int64(n))
	} else {
		r.stats.deleteRepairs.Add(int64(n))
	}
	now := time.Now()
	r.stats.lastRepair.Store(now.UnixNano())
	r.metrics.repairs.WithLabelValues(kind).Add(float64(n))
	r.metrics.lastRepair.Set(float64(now.UnixNano()) / 1e9)
}

// ---- full comparison ----

// RepairStats is what one RepairAll did.
type RepairStats struct {
	// Passes is the number of verify comparisons run (more than one when a
	// pass listed only part of what differs).
	Passes int
	// Compared is the number of distinct paths the last pass compared.
	Compared int64
	// Differences is the number of differing paths found, over all passes.
	Differences int
	// Converged counts differences that went away on re-reading (writes in
	// flight).
	Converged int64
	// NodeRepairs and DeleteRepairs count the nodes imported and the deletes
	// submitted.
	NodeRepairs, DeleteRepairs int
	// Failed counts paths whose check failed (logged).
	Failed int
	// Unreadable counts the nodes the credentials could not read (NoAuth or a
	// masked ACL, in the walk or in a check): not compared, not repaired.
	// UnreadablePaths lists the first of them.
	Unreadable      int64
	UnreadablePaths []string
}

// RepairAll compares the subtree at root ("" means Root) in ZooKeeper and in
// the journal with verify.Compare and repairs every path that differs. On a
// tree that is already equal it submits nothing.
func (r *Reconciler) RepairAll(ctx context.Context, root string) (RepairStats, error) {
	var st RepairStats
	if root == "" {
		root = r.cfg.Root
	}
	if err := znode.ValidatePath(root); err != nil {
		return st, err
	}
	if !r.inScope(root) {
		return st, fmt.Errorf("%w: %s (root %s)", ErrOutOfScope, root, r.cfg.Root)
	}
	r.repairMu.Lock()
	defer r.repairMu.Unlock()
	c, err := r.zk(ctx)
	if err != nil {
		return st, err
	}
	start := time.Now()
	defer func() {
		r.stats.passes.Add(1)
		r.metrics.passes.Inc()
		r.logger.Info("repair pass done", "root", root, "passes", st.Passes, "compared", st.Compared,
			"differences", st.Differences, "converged", st.Converged, "node_repairs", st.NodeRepairs,
			"delete_repairs", st.DeleteRepairs, "failed", st.Failed, "unreadable", st.Unreadable, "elapsed", time.Since(start).Round(time.Millisecond))
		if st.Unreadable > 0 {
			r.logger.Warn("repair pass: nodes unreadable with the reconciler's credentials were not compared or repaired (give it credentials that read every node: a super digest)",
				"count", st.Unreadable, "paths", st.UnreadablePaths)
		}
	}()
	found := map[string]string{}
	var foundCount int64
	for st.Passes < maxRepairPasses {
		st.Passes++
		rep, walkUnreadable, err := r.compare(ctx, root)
		if err != nil {
			return st, err
		}
		for _, p := range walkUnreadable.paths {
			if len(found) < maxUnreadableTracked {
				found[p] = "unreadable in the repair pass's walk"
			}
		}
		foundCount = max(foundCount, walkUnreadable.count)
		st.Compared, st.Converged = rep.Compared, st.Converged+rep.Counts.Converged
		paths := repairTargets(rep)
		st.Differences += len(paths)
		if len(paths) == 0 {
			break
		}
		if err := c.Sync(ctx, "/"); err != nil {
			return st, err
		}
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(reconcileWorkers)
		for _, p := range paths {
			g.Go(func() error {
				res, err := r.check(gctx, c, p)
				mu.Lock()
				defer mu.Unlock()
				st.NodeRepairs += res.nodes
				st.DeleteRepairs += res.deletes
				switch {
				case err == nil:
				case gctx.Err() != nil:
					return gctx.Err()
				case isUnreadable(err):
					if _, ok := found[p]; !ok && len(found) < maxUnreadableTracked {
						found[p] = err.Error()
					}
				default:
					st.Failed++
					r.stats.errors.Add(1)
					r.logger.Warn("repair check failed", "path", p, "error", err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return st, err
		}
		if rep.Counts.Differences <= int64(len(rep.Differences)) {
			break // everything that differed was listed, and checked
		}
	}
	st.Unreadable = max(foundCount, int64(len(found)))
	st.UnreadablePaths = slices.Sorted(maps.Keys(found))
	if len(st.UnreadablePaths) > 20 {
		st.UnreadablePaths = st.UnreadablePaths[:20]
	}
	if root == r.cfg.Root {
		r.resetUnreadable(found, st.Unreadable, start)
	} else {
		for p, why := range found {
			r.noteUnreadable(p, fmt.Errorf("%w: %s", ErrNodeUnreadable, why))
		}
	}
	return st, nil
}

// RepairPaths checks each of paths as CheckPath does and repairs what
// differs: a repair of a known set of nodes, without a walk of either side.
// Paths outside Root or in /zookeeper are skipped. After one sync it reads
// each node from ZooKeeper and the journal in parallel; the nodes ZooKeeper
// has and the journal lacks or holds differently, under a parent the journal
// holds, are imported together in batches (parents first: one Raft entry per
// batch instead of one per node); every other difference (a node to delete,
// a missing parent) goes through CheckPath's own repair. It reports what it
// did in RepairStats (Compared: the paths checked; Differences: those that
// differed; NodeRepairs: the nodes the journal took; Failed and Unreadable
// as RepairAll); it proves nothing about the nodes it was not given.
func (r *Reconciler) RepairPaths(ctx context.Context, paths []string) (RepairStats, error) {
	var st RepairStats
	c, err := r.zk(ctx)
	if err != nil {
		return st, err
	}
	if err := c.Sync(ctx, "/"); err != nil {
		return st, err
	}
	st.Passes = 1
	var mu sync.Mutex
	found := map[string]string{}
	var imports []*znode.Node
	var slow []string
	fail := func(p string, err error) {
		if isUnreadable(err) {
			if len(found) < maxUnreadableTracked {
				found[p] = err.Error()
			}
			st.Unreadable++
			return
		}
		st.Failed++
		r.stats.errors.Add(1)
		r.logger.Warn("repair check failed", "path", p, "error", err)
	}
	// 1. Read both sides of every path.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(repairPathsWorkers)
	for _, p := range paths {
		if znode.ValidatePath(p) != nil || !r.inScope(p) {
			continue
		}
		g.Go(func() error {
			zn, jn, inJournal, parentKnown, err := r.readBoth(gctx, c, p)
			mu.Lock()
			defer mu.Unlock()
			st.Compared++
			switch {
			case err != nil && gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				fail(p, err)
			case zn == nil && !inJournal:
			case zn != nil && inJournal && len(differingFields(zn, jn)) == 0:
			case zn != nil && parentKnown:
				st.Differences++
				imports = append(imports, zn)
			default:
				st.Differences++
				slow = append(slow, p)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	// 2. Import the plain differences in batches, parents first.
	slices.SortFunc(imports, func(a, b *znode.Node) int { return znode.ComparePaths(a.Path, b.Path) })
	for len(imports) > 0 {
		n, size := 0, 0
		for n < len(imports) && n < repairBatchNodes && (n == 0 || size+len(imports[n].Data) < repairBatchBytes) {
			size += len(imports[n].Data) + len(imports[n].Path)
			n++
		}
		res, err := r.submit(ctx, &raftjournal.ImportBatch{Nodes: imports[:n]})
		if err != nil {
			return st, err
		}
		if res.Changed > 0 {
			st.NodeRepairs += res.Changed
			r.countRepairs("node", res.Changed)
		}
		r.logger.Info("repaired nodes", "kind", "node", "why", "differs from ZooKeeper or missing in the journal", "nodes", n, "changed", res.Changed,
			"first", imports[0].Path, "last", imports[n-1].Path)
		imports = imports[n:]
	}
	// 3. The rest, one by one.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(reconcileWorkers)
	for _, p := range slow {
		g.Go(func() error {
			res, err := r.check(gctx, c, p)
			mu.Lock()
			defer mu.Unlock()
			st.NodeRepairs += res.nodes
			st.DeleteRepairs += res.deletes
			switch {
			case err == nil:
			case gctx.Err() != nil:
				return gctx.Err()
			default:
				fail(p, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	st.UnreadablePaths = slices.Sorted(maps.Keys(found))
	if len(st.UnreadablePaths) > 20 {
		st.UnreadablePaths = st.UnreadablePaths[:20]
	}
	for p, why := range found {
		r.noteUnreadable(p, fmt.Errorf("%w: %s", ErrNodeUnreadable, why))
	}
	return st, nil
}

// RepairPaths' import batches: at most this many nodes, and about this many
// bytes of data, in one ImportBatch.
const (
	repairBatchNodes = 500
	repairBatchBytes = 2 << 20
)

// readBoth reads path from ZooKeeper (nil when absent there) and from the
// journal, completing ZooKeeper's copy with what the client API hides
// (fillFromJournal), and says whether the journal holds the parent.
func (r *Reconciler) readBoth(ctx context.Context, c *zkclient.Client, path string) (zn, jn *znode.Node, inJournal, parentKnown bool, err error) {
	r.stats.checks.Add(1)
	r.metrics.checks.Inc()
	if zn, err = r.readZK(ctx, c, path); err != nil {
		return nil, nil, false, false, err
	}
	if jn, inJournal, err = r.cfg.View.Get(ctx, path); err != nil {
		return nil, nil, false, false, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
	}
	if zn == nil {
		return nil, jn, inJournal, false, nil
	}
	if err := fillFromJournal(zn, jn); err != nil {
		return nil, nil, false, false, err
	}
	r.readable(path)
	if inJournal {
		return zn, jn, true, true, nil
	}
	if q := znode.Parent(path); q != "" {
		if _, parentKnown, err = r.cfg.View.Get(ctx, q); err != nil {
			return nil, nil, false, false, fmt.Errorf("dualwrite: journal view: %s: %w", q, err)
		}
	}
	return zn, jn, false, parentKnown, nil
}

// walkUnreadable is what a repair pass's walk of ZooKeeper could not read.
type walkUnreadable struct {
	count int64
	paths []string
}

// compare runs one verify comparison of root between ZooKeeper and the view.
// Nodes the credentials cannot read do not fail it: they are left out of the
// walk (their journal copies show as extra, and their checks find them
// unreadable) and returned.
func (r *Reconciler) compare(ctx context.Context, root string) (*verify.Report, walkUnreadable, error) {
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.cfg.ZK, Auth: r.zkAuth, Logger: r.logger, AllowUnreadable: true})
	if err != nil {
		return nil, walkUnreadable{}, err
	}
	defer src.Close()
	cfg := verify.DefaultConfig()
	cfg.Path = root
	cfg.MaxDiffs = repairListLimit
	cfg.MaxSubtreeDiffs = -1
	cfg.Logger = r.logger
	rep, err := verify.Compare(ctx, src, viewSource{r.cfg.View}, cfg)
	if errors.Is(err, verify.ErrNothingCompared) {
		// The root is on neither side (or unreadable): nothing to repair.
		// The pass says it compared 0 nodes; it claims no equality.
		rep, err = &verify.Report{}, nil
	}
	var u walkUnreadable
	u.count, u.paths = src.Unreadable()
	return rep, u, err
}

// repairTargets lists the paths of a report's differences, in canonical
// order, once each, leaving out a journal-only path whose parent is
// journal-only too (its ancestor's delete takes it).
func repairTargets(rep *verify.Report) []string {
	extra := make(map[string]bool)
	for _, d := range rep.Differences {
		if d.Kind == verify.KindExtra {
			extra[d.Path] = true
		}
	}
	var out []string
	for _, d := range rep.Differences {
		if len(out) > 0 && out[len(out)-1] == d.Path {
			continue
		}
		if d.Kind == verify.KindExtra && extra[znode.Parent(d.Path)] {
			continue
		}
		out = append(out, d.Path)
	}
	return out
}

// viewSource is the journal view as a live verify side that the comparison
// re-reads (Rereader), with raw owners.
type viewSource struct{ v JournalView }

var (
	_ verify.Source   = viewSource{}
	_ verify.Rereader = viewSource{}
)

func (s viewSource) Info() verify.Info {
	return verify.Info{
		URI: "journal", Scheme: "journal", Description: "journal (reconciler view)",
		Live: true, RawOwners: true, ExtendedTypes: true, Root: "/", Nodes: -1,
	}
}

func (s viewSource) Walk(ctx context.Context, scope verify.Scope, fn func(*znode.Node) error) error {
	return s.v.Walk(ctx, scope.Root, fn)
}

func (s viewSource) Reread(ctx context.Context, path string) (*znode.Node, error) {
	n, ok, err := s.v.Get(ctx, path)
	if err != nil || !ok {
		return nil, err
	}
	return n, nil
}

func (s viewSource) Close() error { return nil }

// ---- digests ----

// DigestResult is a digest check's verdict.
type DigestResult uint8

// The digest verdicts.
const (
	DigestUnknown   DigestResult = iota // nothing comparable
	DigestEqual                         // equal as of DigestVerdict.Zxid
	DigestDifferent                     // different, or the journal missed ZooKeeper's logged zxids
)

func (d DigestResult) String() string {
	switch d {
	case DigestUnknown:
		return "unknown"
	case DigestEqual:
		return "equal"
	case DigestDifferent:
		return "different"
	}
	return fmt.Sprintf("DigestResult(%d)", uint8(d))
}

// DigestVerdict is the outcome of a digest check.
type DigestVerdict struct {
	Result DigestResult
	// Zxid is the zxid both digests are as of (0 when none).
	Zxid int64
	// ZooKeeper and Journal are the digests compared.
	ZooKeeper, Journal znode.Digest
	// How says what was compared: "history" (both logs at Zxid) or "current"
	// (ZooKeeper's tree exactly at its last zxid against the journal's now).
	How string
	// Reason explains an unknown or different verdict without a common zxid.
	Reason string
	// Time is when the check ran.
	Time time.Time
}

// DigestCheck compares ZooKeeper's digest log (`hash`, the first server that
// answers) with the journal's digest history at the newest zxid both hold.
//
// With AlignPath set, a check that finds nothing comparable makes a
// comparable point with alignment writes and checks again (align.go).
func (r *Reconciler) DigestCheck(ctx context.Context) (DigestVerdict, error) {
	v, err := r.digestCheck(ctx)
	if err != nil {
		return v, err
	}
	if v.Result == DigestUnknown && r.cfg.AlignPath != "" {
		z, aerr := r.align(ctx)
		if aerr != nil {
			if ctx.Err() != nil {
				return v, ctx.Err()
			}
			r.logger.Warn("digest check: alignment failed", "path", r.cfg.AlignPath, "error", aerr)
			v.Reason += "; alignment failed: " + aerr.Error()
		} else if v2, err := r.digestCheck(ctx); err == nil {
			v = v2
			v.How += fmt.Sprintf(", after an alignment write at %#x", z)
		} else {
			return v, err
		}
	}
	v.Time = time.Now()
	switch v.Result {
	case DigestEqual:
		r.stats.digestEqual.Add(1)
	case DigestDifferent:
		r.stats.digestDifferent.Add(1)
	default:
		r.stats.digestUnknown.Add(1)
	}
	r.metrics.digestChecks.WithLabelValues(v.Result.String()).Inc()
	r.lastMu.Lock()
	r.lastDig = v
	r.lastMu.Unlock()
	r.logger.Info("digest check", "result", v.Result.String(), "zxid", fmt.Sprintf("%#x", v.Zxid), "how", v.How,
		"zookeeper", v.ZooKeeper.String(), "journal", v.Journal.String(), "reason", v.Reason)
	return v, nil
}

func (r *Reconciler) digestCheck(ctx context.Context) (DigestVerdict, error) {
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.cfg.ZK, Auth: r.zkAuth, Logger: r.logger})
	if err != nil {
		return DigestVerdict{}, err
	}
	defer src.Close()
	zi, err := src.Digests(ctx)
	if err != nil {
		return DigestVerdict{}, err
	}
	var hist []raftjournal.DigestEntry
	var last int64
	var cur *journalCurrent
	if dr, ok := r.cfg.View.(journalDigestReader); ok {
		// Read together, after a read barrier: a member that restarted and
		// has not replayed its log yet would report an old state.
		ds, err := dr.DigestState(ctx)
		if err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal digests: %w", err)
		}
		hist, last, cur = ds.History, ds.MaxSourceZxid, &journalCurrent{digest: ds.Digest, zxid: ds.MaxSourceZxid}
	} else {
		if hist, err = r.cfg.View.DigestHistory(ctx); err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal digest history: %w", err)
		}
		if last, err = r.cfg.View.LastSourceZxid(ctx); err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal last source zxid: %w", err)
		}
		if d, ok := r.cfg.View.(JournalDigester); ok {
			dg, z, err := d.CurrentDigest(ctx)
			if err != nil {
				return DigestVerdict{}, fmt.Errorf("dualwrite: journal digest: %w", err)
			}
			cur = &journalCurrent{digest: dg, zxid: z}
		}
	}
	return judgeDigests(zi, hist, last, cur), nil
}

// journalCurrent is the journal's digest now and the largest source zxid it
// has seen.
type journalCurrent struct {
	digest znode.Digest
	zxid   int64
}

// judgeDigests compares ZooKeeper's digests with the journal's. Equal digests
// at a zxid prove the trees equal as of that zxid, and nothing about the
// writes after it: "equal" is said only at ZooKeeper's latest state.
//
//  1. ZooKeeper's tree exactly at its last zxid Z, logged (HasCurrent, Exact),
//     and the journal's digest now when the largest source zxid it saw is Z:
//     equal or different as of Z ("current"). An equal digest means the
//     same tree; a journal that saw Z but lacks an older write differs, and a
//     repair pass is right.
//  2. Otherwise the newest zxid E both histories hold ("history"): different
//     there is a difference; equal there is equal only if E is ZooKeeper's
//     last zxid, and otherwise unknown (ZooKeeper logs every 128 zxids, so on
//     a quiet ensemble its newest entry predates its latest writes). The
//     journal logs a digest only for the newest source zxid, and drops the
//     entries a late txn proved wrong (raftjournal's applySourceTxn), so it
//     holds one entry per zxid; should it hold several, one that matches
//     makes it equal.
//  3. Otherwise unknown: no zxid both logged (ZooKeeper logs only every 128
//     zxids, in memory, the last 1024; the journal only for txns it was sent
//     in order, and not while a create's parent read back later is ahead).
//
// An unknown verdict gets a comparable point from an alignment write
// (ReconcilerConfig.AlignPath) or not at all; the event checks and repair
// passes do not depend on it.
func judgeDigests(zi verify.DigestInfo, hist []raftjournal.DigestEntry, lastSource int64, cur *journalCurrent) DigestVerdict {
	if cur != nil && zi.HasCurrent && zi.Exact && cur.zxid == zi.Zxid {
		v := DigestVerdict{Zxid: zi.Zxid, ZooKeeper: zi.Current, Journal: cur.digest, How: "current", Result: DigestDifferent}
		if zi.Current == cur.digest {
			v.Result = DigestEqual
		}
		return v
	}
	byZxid := make(map[int64][]znode.Digest, len(hist))
	for _, e := range hist {
		byZxid[e.Zxid] = append(byZxid[e.Zxid], e.Digest)
	}
	for i := len(zi.History) - 1; i >= 0; i-- {
		e := zi.History[i]
		ds, ok := byZxid[e.Zxid]
		if !ok {
			continue
		}
		v := DigestVerdict{Zxid: e.Zxid, ZooKeeper: e.Digest, Journal: ds[len(ds)-1], How: "history", Result: DigestDifferent}
		if !slices.Contains(ds, e.Digest) {
			return v
		}
		v.Journal = e.Digest
		if zi.Exact && zi.Zxid == e.Zxid {
			v.Result = DigestEqual
			return v
		}
		v.Result = DigestUnknown
		v.Reason = fmt.Sprintf("equal at %#x, but zookeeper is at %#x: the writes since are not covered", e.Zxid, zi.Zxid)
		return v
	}
	if len(zi.History) == 0 {
		return DigestVerdict{Result: DigestUnknown, Reason: "zookeeper has logged no digest yet (one every 128 zxids)"}
	}
	return DigestVerdict{Result: DigestUnknown, Reason: fmt.Sprintf(
		"no common zxid: zookeeper logs %#x..%#x and is at %#x; the journal has seen up to %#x and logged %s",
		zi.History[0].Zxid, zi.History[len(zi.History)-1].Zxid, zi.Zxid, lastSource, journalLogged(hist))}
}

// journalLogged describes the journal's digest history for a reason.
func journalLogged(hist []raftjournal.DigestEntry) string {
	if len(hist) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%#x..%#x", hist[0].Zxid, hist[len(hist)-1].Zxid)
}

// ---- Run ----

// Run reconciles until ctx ends: it watches Root for events and checks them,
// checks digests every Interval, and repairs everything after events may have
// been lost. It returns nil when ctx ends, and an error when it cannot go on
// (the ZooKeeper client gave up, for instance on refused credentials). One Run
// at a time.
func (r *Reconciler) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("dualwrite: reconciler already running")
	}
	defer r.running.Store(false)
	c, err := r.zk(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := c.AddWatch(ctx, r.cfg.Root, zkwire.AddWatchPersistentRecursive); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("dualwrite: watching %s: %w", r.cfg.Root, err)
	}
	r.logger.Info("reconciler running", "root", r.cfg.Root, "grace", r.cfg.Grace, "interval", r.cfg.Interval)
	q := newReconcileQueue()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.consumeEvents(gctx, c, q) })
	g.Go(func() error { return r.checkLoop(gctx, c, q) })
	g.Go(func() error { return r.repairLoop(gctx) })
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// requestRepair asks Run for a RepairAll; requests coalesce.
func (r *Reconciler) requestRepair(why string) {
	select {
	case r.repairReq <- why:
	default:
	}
}

func (r *Reconciler) consumeEvents(ctx context.Context, c *zkclient.Client, q *reconcileQueue) error {
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				if err := c.Err(); err != nil && !errors.Is(err, zkclient.ErrClosed) {
					return err
				}
				return ErrReconcilerClosed
			}
			if ev.Missed {
				r.requestRepair(fmt.Sprintf("zookeeper events may have been lost (%s)", ev.State))
			}
			switch ev.Type {
			case zkwire.EventNodeCreated, zkwire.EventNodeDeleted, zkwire.EventNodeDataChanged:
			default:
				continue
			}
			if !r.inScope(ev.Path) {
				continue
			}
			r.stats.events.Add(1)
			r.metrics.events.Inc()
			q.add(ev.Path, ev.Time, r.cfg.Grace)
		case <-ctx.Done():
			return nil
		}
	}
}

func (r *Reconciler) checkLoop(ctx context.Context, c *zkclient.Client, q *reconcileQueue) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if due := q.popDue(time.Now()); len(due) > 0 {
			if err := r.checkDue(ctx, c, q, due); err != nil {
				return err
			}
			continue
		}
		wait := time.Hour
		if next, ok := q.next(); ok {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-q.wake:
			timer.Stop() // since Go 1.23 a stopped timer delivers nothing stale
		case <-ctx.Done():
			return nil
		}
	}
}

// checkDue checks the paths whose grace has passed. A recent mirror by the
// tap may defer a check (the grace), never cancel it: once the grace has
// passed, every event is settled by the zxid rule (covered) or checked. A
// failed check is retried with a growing delay, then left to a RepairAll; a
// node the credentials cannot read is recorded as unreadable instead.
func (r *Reconciler) checkDue(ctx context.Context, c *zkclient.Client, q *reconcileQueue, due []*queuedPath) error {
	slices.SortFunc(due, func(a, b *queuedPath) int { return znode.ComparePaths(a.path, b.path) })
	retry := func(it *queuedPath, err error) {
		if r.noteUnreadable(it.path, err) {
			return
		}
		r.stats.errors.Add(1)
		if it.attempts+1 >= maxEventRetries {
			r.logger.Error("event check failed; leaving it to a repair pass", "path", it.path, "error", err)
			r.requestRepair("event checks failed")
			return
		}
		delay := min(r.cfg.Grace<<it.attempts, 30*time.Second)
		r.logger.Warn("event check failed; will retry", "path", it.path, "error", err, "in", delay)
		q.retry(it, time.Now().Add(delay))
	}
	if err := c.Sync(ctx, "/"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		for _, it := range due {
			retry(it, err)
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reconcileWorkers)
	for _, it := range due {
		g.Go(func() error {
			if it.attempts == 0 {
				covered, err := r.coveredByTap(gctx, c, it.path)
				if err == nil && covered {
					r.stats.skipped.Add(1)
					r.metrics.skipped.Inc()
					r.logger.Debug("event covered by the tap's mirror", "path", it.path)
					return nil
				}
			}
			if err := r.checkEvent(gctx, c, it.path); err != nil {
				if gctx.Err() != nil {
					return nil
				}
				retry(it, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// coveredByTap applies the zxid rule to an event on path: the tap's last
// mirror of a write on it (Mirrored) covers ZooKeeper's state if
//
//   - the node exists, that write did not delete it, and its zxid is at
//     least the node's czxid and mzxid: the tap mirrored the write that made
//     the node as it is (or a later one);
//   - or the node is gone, that write deleted it, and the parent's pzxid is
//     no later than it: no child of the parent was created or deleted since,
//     so no other incarnation came and went.
//
// Anything else, a write around the proxy included, is checked. (A setACL
// fires no event; the digest checks catch it.)
func (r *Reconciler) coveredByTap(ctx context.Context, c *zkclient.Client, path string) (bool, error) {
	if r.cfg.Mirrored == nil {
		return false, nil
	}
	mz, deleted, ok := r.cfg.Mirrored(path)
	if !ok {
		return false, nil
	}
	st, exists, err := c.Exists(ctx, path)
	if err != nil {
		return false, err
	}
	if exists {
		return !deleted && mz >= st.Czxid && mz >= st.Mzxid, nil
	}
	if !deleted {
		return false, nil
	}
	pst, pexists, err := c.Exists(ctx, znode.Parent(path))
	if err != nil || !pexists {
		return false, err
	}
	return pst.Pzxid <= mz, nil
}

// checkEvent checks a path an event named. A node absent on both sides was
// created and deleted around the proxy (or its delete was mirrored): its
// parent's child registers (pzxid, cversion) are checked too.
func (r *Reconciler) checkEvent(ctx context.Context, c *zkclient.Client, path string) error {
	res, err := r.check(ctx, c, path)
	if err != nil {
		return err
	}
	if res.absent {
		if p := znode.Parent(path); r.inScope(p) {
			// The parent's child registers (pzxid, cversion) are comparable
			// only once the journal has seen ZooKeeper's last change of
			// them: under a steady create and delete of children (a lock
			// recipe's), the mirror of the newest child is often still on
			// its way, and a "repair" then would only copy what the mirror
			// brings a moment later — and fail the cutover's repairs gate
			// with no write around the proxies. That newest child's own
			// event is checked in its turn, and the digest checks see any
			// difference left.
			if settled, err := r.parentSettled(ctx, c, p); err != nil || settled {
				return err
			}
			if _, err := r.refresh(ctx, c, p, "parent of a node created and deleted"); err != nil {
				return err
			}
		}
	}
	return nil
}

// parentSettled reports whether the journal's copy of path holds
// ZooKeeper's child registers as of ZooKeeper's last change of them (its
// pzxid P, read now), waiting up to the grace for the mirror of that change:
// under a steady create and delete of children (a lock recipe's) the
// mirror of the newest child is often still on its way, from another
// connection, and a "repair" would copy what the mirror brings a moment
// later — and fail the cutover's repairs gate with no write around the
// proxies. Settled: the journal's pzxid reached P with ZooKeeper's cversion,
// or passed it (a later change, which has its own event). Not settled within
// the grace: the change at P did not come through a proxy, and the caller
// repairs.
func (r *Reconciler) parentSettled(ctx context.Context, c *zkclient.Client, path string) (bool, error) {
	st, exists, err := c.Exists(ctx, path)
	if err != nil || !exists {
		return false, err
	}
	deadline := time.Now().Add(max(r.cfg.Grace, 100*time.Millisecond))
	for {
		jn, ok, err := r.cfg.View.Get(ctx, path)
		if err != nil {
			return false, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
		}
		if ok && jn.Stat.Czxid == st.Czxid {
			switch {
			case jn.Stat.Pzxid > st.Pzxid:
				return true, nil
			case jn.Stat.Pzxid == st.Pzxid:
				// The journal keeps ZooKeeper's persisted cversion.
				return jn.Stat.Cversion == znode.PersistedCversion(st.Cversion, st.NumChildren), nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Reconciler) repairLoop(ctx context.Context) error {
	r.startupPass(ctx)
	var tick <-chan time.Time
	if r.cfg.Interval > 0 {
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case why := <-r.repairReq:
			r.logger.Info("repair pass requested", "why", why)
			if _, err := r.RepairAll(ctx, ""); err != nil && ctx.Err() == nil {
				r.logger.Error("repair pass failed", "error", err)
			}
		case <-tick:
			r.digestThenRepair(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// startupPass compares the journal with ZooKeeper when Run starts, since the
// events of the time before the watch are lost: a digest check, then a
// repair pass unless the digests are equal at ZooKeeper's latest state. It is
// retried, with a growing delay, until it completes or ctx ends: a restart
// never skips it.
func (r *Reconciler) startupPass(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		v, err := r.DigestCheck(ctx)
		switch {
		case err == nil && v.Result == DigestEqual:
			r.logger.Info("startup pass: the journal's digest equals ZooKeeper's at its latest zxid; no repair pass needed",
				"zxid", fmt.Sprintf("%#x", v.Zxid))
			return
		case err != nil && ctx.Err() == nil:
			r.logger.Warn("startup pass: digest check failed; running a repair pass", "error", err)
		case err == nil:
			r.logger.Info("startup pass: running a repair pass", "digests", v.Result.String(), "reason", v.Reason)
		}
		_, err = r.RepairAll(ctx, "")
		if err == nil || ctx.Err() != nil {
			return
		}
		r.logger.Error("startup repair pass failed; retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// digestThenRepair runs a repair pass when the digests differ, and still
// differ a grace later: a difference at ZooKeeper's latest zxid can be the
// tap's last mirrors not delivered yet.
func (r *Reconciler) digestThenRepair(ctx context.Context) {
	v, err := r.DigestCheck(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("digest check failed", "error", err)
		}
		return
	}
	if v.Result != DigestDifferent {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(r.cfg.Grace):
	}
	if v, err = r.DigestCheck(ctx); err != nil || v.Result != DigestDifferent {
		return
	}
	if _, err := r.RepairAll(ctx, ""); err != nil && ctx.Err() == nil {
		r.logger.Error("repair pass failed", "error", err)
	}
}

// queuedPath is a path waiting for its check.
type queuedPath struct {
	path     string
	due      time.Time // when the check runs
	last     time.Time // the last event on the path
	attempts int       // failed checks so far
	index    int       // in the heap
}

// reconcileQueue holds the pending checks, one per path, by due time.
type reconcileQueue struct {
	mu     sync.Mutex
	byPath map[string]*queuedPath
	h      pathHeap
	wake   chan struct{}
}

func newReconcileQueue() *reconcileQueue {
	return &reconcileQueue{byPath: make(map[string]*queuedPath), wake: make(chan struct{}, 1)}
}

// add records an event on path: a new check due grace after it, or the
// pending one (not pushed back, so a busy path is still checked).
func (q *reconcileQueue) add(path string, at time.Time, grace time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.byPath[path]; it != nil {
		if at.After(it.last) {
			it.last = at
		}
		return
	}
	it := &queuedPath{path: path, due: at.Add(grace), last: at}
	q.byPath[path] = it
	heap.Push(&q.h, it)
	q.signal()
}

// retry puts a failed check back, due at the given time.
func (q *reconcileQueue) retry(it *queuedPath, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur := q.byPath[it.path]; cur != nil {
		// A new event came meanwhile: its check covers this one.
		cur.attempts = max(cur.attempts, it.attempts+1)
		return
	}
	it.attempts++
	it.due = due
	q.byPath[it.path] = it
	heap.Push(&q.h, it)
	q.signal()
}

func (q *reconcileQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// popDue removes and returns the checks due at now.
func (q *reconcileQueue) popDue(now time.Time) []*queuedPath {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*queuedPath
	for len(q.h) > 0 && !q.h[0].due.After(now) {
		it := heap.Pop(&q.h).(*queuedPath)
		delete(q.byPath, it.path)
		out = append(out, it)
	}
	return out
}

// next returns when the earliest check is due.
func (q *reconcileQueue) next() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return time.Time{}, false
	}
	return q.h[0].due, true
}

// pathHeap orders pending checks by due time (container/heap).
type pathHeap []*queuedPath

func (h pathHeap) Len() int           { return len(h) }
func (h pathHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pathHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pathHeap) Push(x any) {
	it := x.(*queuedPath)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *pathHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// ---- stats and metrics ----

// ReconcilerStats are the reconciler's counters since it was made.
type ReconcilerStats struct {
	Events        int64 // node events in scope received
	Skipped       int64 // event checks skipped because the tap mirrored the path
	Checks        int64 // paths compared (events, CheckPath, RepairAll)
	NodeRepairs   int64 // nodes imported from ZooKeeper
	DeleteRepairs int64 // deletes submitted
	Errors        int64 // checks that failed
	RepairPasses  int64 // RepairAll runs
	// Digest checks by verdict.
	DigestEqual, DigestDifferent, DigestUnknown int64
	// LastRepair is when the last repair was submitted (zero if none).
	LastRepair time.Time
	// LastDigest is the last digest check's verdict (zero if none).
	LastDigest DigestVerdict
	// Unreadable counts the nodes the reconciler's credentials cannot read
	// (NoAuth, or a masked ACL): it cannot compare or repair them.
	// UnreadablePaths lists the first of them.
	Unreadable      int64
	UnreadablePaths []string
	// Sessions are the reconciler's own ZooKeeper sessions (its event
	// session and its alignment session, when open): the cutover's
	// direct-clients gate tells them from clients that bypass the proxies.
	Sessions []int64 `json:",omitempty"`
}

type reconcileCounters struct {
	events, skipped, checks, nodeRepairs, deleteRepairs, errors, passes atomic.Int64
	digestEqual, digestDifferent, digestUnknown                         atomic.Int64
	lastRepair                                                          atomic.Int64 // unix ns
}

// Stats returns the counters.
func (r *Reconciler) Stats() ReconcilerStats {
	s := &r.stats
	out := ReconcilerStats{
		Events: s.events.Load(), Skipped: s.skipped.Load(), Checks: s.checks.Load(),
		NodeRepairs: s.nodeRepairs.Load(), DeleteRepairs: s.deleteRepairs.Load(), Errors: s.errors.Load(),
		RepairPasses: s.passes.Load(), DigestEqual: s.digestEqual.Load(), DigestDifferent: s.digestDifferent.Load(),
		DigestUnknown: s.digestUnknown.Load(),
	}
	if ns := s.lastRepair.Load(); ns != 0 {
		out.LastRepair = time.Unix(0, ns)
	}
	// TryLock: r.mu is held while a session is dialled; Stats serves
	// /status and must not wait for that (the sessions then show next time).
	if r.mu.TryLock() {
		for _, c := range []*zkclient.Client{r.client, r.alignConn} {
			if c != nil {
				if id := c.SessionID(); id != 0 {
					out.Sessions = append(out.Sessions, id)
				}
			}
		}
		r.mu.Unlock()
	}
	r.lastMu.Lock()
	out.LastDigest = r.lastDig
	r.lastMu.Unlock()
	out.Unreadable, out.UnreadablePaths = r.unreadableStats(20)
	return out
}

// reconcileMetrics are zk2raft_reconcile_*.
type reconcileMetrics struct {
	events, skipped, checks, passes prometheus.Counter
	repairs                         *prometheus.CounterVec // kind: node, delete
	digestChecks                    *prometheus.CounterVec // result: equal, different, unknown
	lastRepair                      prometheus.Gauge
	unreadable                      prometheus.Gauge
}

func newReconcileMetrics(reg prometheus.Registerer) (*reconcileMetrics, error) {
	const ns, sub = "zk2raft", "reconcile"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &reconcileMetrics{
		events:  counter("events_total", "ZooKeeper node events received under the reconciled root."),
		skipped: counter("skipped_total", "Event checks skipped because the tap mirrored a write on the path."),
		checks:  counter("checks_total", "Paths compared between ZooKeeper and the journal."),
		passes:  counter("repair_passes_total", "Full compare-and-repair passes."),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "repairs_total",
			Help: "Repairs submitted to the journal: node (imported from ZooKeeper) or delete."}, []string{"kind"}),
		digestChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "digest_checks_total",
			Help: "Digest checks by verdict."}, []string{"result"}),
		lastRepair: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_repair_timestamp",
			Help: "Unix time of the last repair submitted."}),
		unreadable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "unreadable_nodes",
			Help: "Nodes the reconciler's credentials cannot read (NoAuth, or a masked ACL), which it therefore cannot compare or repair."}),
	}
	for _, k := range []string{"node", "delete"} {
		m.repairs.WithLabelValues(k)
	}
	for _, d := range []DigestResult{DigestEqual, DigestDifferent, DigestUnknown} {
		m.digestChecks.WithLabelValues(d.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.skipped, m.checks, m.passes, m.repairs, m.digestChecks, m.lastRepair, m.unreadable} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("dualwrite: registering reconciler metrics: %w", err)
			}
		}
	}
	return m, nil
}
