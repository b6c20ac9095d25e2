package raftjournal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

// Node is one member of a journal cluster: the FSM, replicated by hashicorp/raft
// over TCP with an on-disk log and file snapshots, plus what the leader decides
// (session expiry, container and TTL clean-up, the time stamped into writes),
// forwarding so that the API works on every member, and the admin endpoint.
//
// Ordering: a write returns once it is committed and applied on the leader, so
// when Create returns on any node, a linearizable read on any node sees it. A
// local read sees what this node has applied, which on a follower may lag.
// Watches fire on the node where they were registered, after apply.
//
// All methods are safe for concurrent use. Close stops everything the node
// started and waits for it.
type Node struct {
	extensions sync.Map // name → func() any, for /status
	cfg        NodeConfig
	logger     *slog.Logger
	fsm        *nodeFSM
	st         *stores
	lock       *dirLock
	mux        *muxLayer
	raft       *raft.Raft
	rpc        *rpcClient
	metrics    *nodeMetrics
	admin      *adminServer
	adminAddr  string // bound address, set before anything runs
	tracker    *sessionTracker
	id         raft.ServerID
	addr       raft.ServerAddress

	// clientPort reports the ZooKeeper-protocol port (SetClientPort).
	clientPort atomic.Pointer[func() ClientPort]

	// readyTerm is the term in which this node, as leader, has applied a
	// barrier: from then on its applied index covers every committed entry.
	readyTerm atomic.Uint64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the node's goroutines

	// opMu is read-held by every API call for its duration and write-held by
	// Close once raft is down, so the stores never close under a call.
	opMu   sync.RWMutex
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Open starts a node: it locks the data dir, opens the stores, restores the
// newest snapshot and checks the log after it, starts raft and the admin
// server, and bootstraps or joins a cluster when the data dir is empty. A data
// dir with Raft state restarts the node as the member it was; Bootstrap and
// Join are then ignored.
func Open(cfg NodeConfig) (*Node, error) { return OpenContext(context.Background(), cfg) }

// OpenContext is Open whose start-up waits (the join's retries) end with ctx:
// a process asked to stop while it joins stops at once.
func OpenContext(ctx context.Context, cfg NodeConfig) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkSecret(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("raftjournal: create data dir: %w", err)
	}
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				_ = undo[i]()
			}
		}
	}()
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	undo = append(undo, lock.release)
	stopped, accepted, err := checkBeforeOpen(&cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStores(cfg.DataDir, &cfg, newHclog(logger, "raft-store"))
	if err != nil {
		return nil, err
	}
	undo = append(undo, st.close)
	fsm, err := NewFSM(Config{Logger: logger, CompressSnapshots: cfg.CompressSnapshots})
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: logger, st: st, lock: lock, id: raft.ServerID(cfg.NodeID), rpc: newRPCClient(cfg.ForwardTimeout, cfg.Credentials())}
	n.metrics = newNodeMetrics(n)
	n.fsm = newNodeFSM(fsm, n.metrics)
	rec, err := recoverState(n.fsm, st, stopped, cfg.AcceptLogLoss)
	if err != nil {
		return nil, err
	}
	for _, d := range append(accepted, rec.accepted...) {
		logger.Error("starting on a damaged data dir: the loss is accepted (AcceptLogLoss); entries a quorum acknowledged may be gone for good",
			"file", d.Path, "damage", d.Problem, "log", fmt.Sprintf("%d..%d", rec.firstLog, rec.lastLog), "snapshot-index", rec.snapshotIndex)
	}
	hasState, err := raft.HasExistingState(st.log, st.stable, st.snaps)
	if err != nil {
		return nil, fmt.Errorf("%w: read raft state in %s: %v", ErrCorruptLog, cfg.DataDir, err)
	}
	if !hasState {
		if err := checkFreshForStart(cfg.DataDir); err != nil {
			return nil, err
		}
		if !cfg.Bootstrap && cfg.Join == "" {
			return nil, fmt.Errorf("%w: data dir %s holds no journal: start the node with Bootstrap (a new cluster) or Join (a running one)", ErrInvalidConfig, cfg.DataDir)
		}
	}
	n.fsm.startPolicy(rec)
	var adminLn net.Listener
	if cfg.AdminAddr != "" {
		if adminLn, err = listenAdmin(cfg.AdminAddr, cfg.TLS); err != nil {
			return nil, err
		}
		undo = append(undo, adminLn.Close)
		n.adminAddr = adminLn.Addr().String()
	}
	mux, err := listenMux(cfg.RaftAddr, cfg.AdvertiseAddr, cfg.Credentials(), logger)
	if err != nil {
		return nil, err
	}
	undo = append(undo, mux.Close)
	n.mux = mux
	n.addr = raft.ServerAddress(mux.Addr().String())
	needJoin := cfg.Join != "" && !hasState
	if hasState {
		if err := checkIdentity(cfg.DataDir, rec.config, n.id, n.addr, cfg.Join != ""); err != nil {
			return nil, err
		}
		// A member that is not in the configuration (a join that crashed
		// before its configuration entry arrived) or is there under another
		// address asks to be added again.
		needJoin = cfg.Join != "" && !slices.ContainsFunc(rec.config.Servers, func(s raft.Server) bool {
			return s.ID == n.id && sameAddr(string(s.Address), string(n.addr))
		})
	}
	trans := newTransport(mux, logger)
	undo = append(undo, trans.Close)
	// From here raft may write: the record of the last clean stop no longer
	// describes the log.
	if err := removeStopped(cfg.DataDir); err != nil {
		return nil, err
	}
	var logs raft.LogStore = st.log
	if cfg.LogCacheEntries > 0 {
		if logs, err = raft.NewLogCache(cfg.LogCacheEntries, st.log); err != nil {
			return nil, fmt.Errorf("raftjournal: log cache: %w", err)
		}
	}
	notify := make(chan bool, 16)
	r, err := raft.NewRaft(n.raftConfig(notify), n.fsm, logs, st.stable, st.snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("raftjournal: start raft: %w", err)
	}
	n.raft = r
	undo = append(undo, func() error { return r.Shutdown().Error() })
	n.ctx, n.cancel = context.WithCancel(context.Background())
	undo = append(undo, func() error { n.cancel(); n.wg.Wait(); return nil })
	n.tracker = newSessionTracker()
	mux.serve(n.serveRPC)

	if !hasState && cfg.Bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: n.id, Address: n.addr}}}
		if err := r.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("raftjournal: bootstrap: %w", err)
		}
	}
	n.wg.Add(2)
	go n.runLeadership(notify)
	go n.runCompaction()

	if cfg.AdminAddr != "" {
		n.admin = startAdmin(n, adminLn)
		undo = append(undo, n.admin.close)
	}
	if needJoin {
		if err := n.join(ctx, cfg.Join); err != nil {
			return nil, err
		}
	}
	logger.Info("journal node started", "node-id", cfg.NodeID, "raft-addr", string(n.addr), "admin-addr", n.AdminAddr(),
		"data-dir", cfg.DataDir, "restored-snapshot-index", rec.snapshotIndex, "log", fmt.Sprintf("%d..%d", rec.firstLog, rec.lastLog))
	return n, nil
}

func (n *Node) raftConfig(notify chan bool) *raft.Config {
	c := raft.DefaultConfig()
	cfg := &n.cfg
	c.LocalID = n.id
	c.Logger = newHclog(n.logger, "raft")
	c.NotifyCh = notify
	c.HeartbeatTimeout = cfg.HeartbeatTimeout
	c.ElectionTimeout = cfg.ElectionTimeout
	c.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	c.CommitTimeout = cfg.CommitTimeout
	c.MaxAppendEntries = cfg.MaxAppendEntries
	// Concurrent Applies are taken from the apply channel in batches of up to
	// MaxAppendEntries (one disk write and one AppendEntries round for all of
	// them) whether or not the channel is buffered: writers blocked in the
	// send are collected too. BatchApplyCh would buffer it, but raft never
	// answers the futures still in the buffer when it shuts down, so a write
	// in flight during Close would wait forever.
	c.BatchApplyCh = false
	c.SnapshotThreshold = cfg.SnapshotThreshold
	c.SnapshotInterval = cfg.SnapshotInterval
	c.TrailingLogs = n.fsm.trailingLogs(cfg)
	// recoverState restored the newest snapshot already, or failed loudly.
	c.NoSnapshotRestoreOnStart = true
	c.ShutdownOnRemove = true
	c.NoLegacyTelemetry = true
	return c
}

// Close stops the node: the admin server, raft (without leaving the cluster:
// a restart with the same data dir rejoins as the same member), the RPC server
// and the node's goroutines, then closes the stores and releases the data dir.
// It waits for in-flight calls, which fail with ErrClosed or ErrOutcomeUnknown,
// and is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.cancel()
		if n.admin != nil {
			errs = append(errs, n.admin.close())
		}
		errs = append(errs, n.raft.Shutdown().Error())
		errs = append(errs, n.mux.Close())
		n.wg.Wait()
		n.opMu.Lock()
		n.closed = true
		n.opMu.Unlock()
		n.rpc.close()
		n.recordStop()
		errs = append(errs, n.st.close(), n.lock.release())
		n.closeErr = errors.Join(errs...)
		n.logger.Info("journal node closed", "node-id", n.cfg.NodeID)
	})
	return n.closeErr
}

// begin starts an API call: it fails once the node is closing, and returns a
// context that ends with the node.
func (n *Node) begin(ctx context.Context) (context.Context, func(), error) {
	n.opMu.RLock()
	if n.closed || n.ctx.Err() != nil {
		n.opMu.RUnlock()
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		n.opMu.RUnlock()
	}, nil
}

// ID returns the node's Raft server id.
func (n *Node) ID() string { return string(n.id) }

// RaftAddr returns the advertised Raft address (also the journal RPC address).
func (n *Node) RaftAddr() string { return string(n.addr) }

// AdminAddr returns the admin server's bound address, or "" when there is none.
func (n *Node) AdminAddr() string { return n.adminAddr }

// FSM returns the node's state machine, for reads and watches beyond the API
// (Walk, GetACL, Sessions, DigestHistory). Never apply entries to it directly.
func (n *Node) FSM() *FSM { return n.fsm.FSM }

// Digest returns ZooKeeper's tree digest of what this node has applied.
func (n *Node) Digest() znode.Digest { return n.fsm.Digest() }

// AppliedIndex returns the index of the last log entry this node's FSM applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }

func (n *Node) isLeader() bool { return n.raft.State() == raft.Leader }

// IsLeader reports whether this node is the leader right now.
func (n *Node) IsLeader() bool { return n.isLeader() }

// Leader returns the current leader's id and Raft address, empty when unknown.
func (n *Node) Leader() (id, raftAddr string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

// Snapshot makes the node take a snapshot now and compact its log (keeping
// the trailing entries). It returns when the snapshot is on disk.
func (n *Node) Snapshot(ctx context.Context) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	f := n.raft.Snapshot()
	if err := waitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil
		}
		return fmt.Errorf("raftjournal: snapshot: %w", err)
	}
	return nil
}

// waitFuture waits for a raft future, or the context.
func waitFuture(ctx context.Context, f raft.Future) error {
	if ctx.Done() == nil {
		return f.Error()
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueueTimeout is how long raft may wait to queue an entry: the context's
// deadline, or forever.
func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 0
}

// applyLocal appends an encoded, time-stamped entry on this node as leader and
// waits for its result. A write raft never queued fails with ErrNotLeader (and
// may be retried at the leader); one that was queued and then lost its leader
// or its caller fails with ErrOutcomeUnknown.
func (n *Node) applyLocal(ctx context.Context, entry []byte, typ EntryType) (*Result, error) {
	start := time.Now()
	return n.applied(ctx, n.raft.Apply(entry, enqueueTimeout(ctx)), typ, start)
}

// applied waits for an entry handed to raft.Apply and returns its result,
// with applyLocal's errors.
func (n *Node) applied(ctx context.Context, f raft.ApplyFuture, typ EntryType, start time.Time) (*Result, error) {
	err := waitFuture(ctx, f)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return nil, ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("raftjournal: raft apply queue full until the deadline: %w", context.DeadlineExceeded)
	case errors.Is(err, raft.ErrRaftShutdown):
		return nil, fmt.Errorf("%w (%w): %w", ErrOutcomeUnknown, CodeConnectionLoss, ErrClosed)
	default:
		return nil, fmt.Errorf("%w (%w): %w", ErrOutcomeUnknown, CodeConnectionLoss, err)
	}
	res, ok := f.Response().(*Result)
	if !ok {
		return nil, fmt.Errorf("raftjournal: entry %d applied without a result (%T)", f.Index(), f.Response())
	}
	n.metrics.observeApply(typ, time.Since(start))
	return res, nil
}

// onLeader runs local on this node if it leads, and otherwise sends the
// request to the leader, retrying across leader changes while the context
// allows: when no leader is known, when the request reached a node that no
// longer leads, and when the leader could not be reached at all.
func (n *Node) onLeader(ctx context.Context, method byte, payload func() []byte, local func(context.Context) ([]byte, error)) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		defer cancel()
	}
	backoff := 5 * time.Millisecond
	for {
		var resp []byte
		var err error
		addr, _ := n.raft.LeaderWithID()
		switch {
		case n.isLeader():
			resp, err = local(ctx)
		case addr == "" || addr == n.addr:
			err = ErrNoLeader
		default:
			n.metrics.forwardedOut.Inc()
			resp, err = n.rpc.call(ctx, string(addr), method, payload())
		}
		var dial *errDial
		if err == nil || !(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.As(err, &dial)) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			if n.ctx.Err() != nil {
				return nil, ErrClosed
			}
			if errors.Is(err, ErrNotLeader) {
				err = ErrNoLeader
			}
			return nil, fmt.Errorf("%w: %v (%v)", ErrNoLeader, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func noPayload() []byte { return nil }

func payloadOf(b []byte) func() []byte { return func() []byte { return b } }

// apply submits a command: on the leader it is stamped and appended here,
// elsewhere it is forwarded to the leader, which stamps it.
func (n *Node) apply(ctx context.Context, c Command) (*Result, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	return n.applyEntry(ctx, &submission{cmd: c, typ: c.EntryType()})
}

// submission is a command on its way to the log: decoded (from the API, so the
// leader can stamp it without decoding) or encoded (forwarded, SubmitEntry).
type submission struct {
	cmd   Command
	entry []byte // the unstamped encoding, made from cmd when first needed
	typ   EntryType
}

func (s *submission) encoded() []byte {
	if s.entry == nil {
		s.entry = Encode(s.cmd)
	}
	return s.entry
}

// stamped returns the entry as the leader appends it, with its clock in it.
func (s *submission) stamped(now int64) []byte {
	if s.cmd != nil {
		if stampCommand(s.cmd, now) {
			return Encode(s.cmd)
		}
		return s.encoded()
	}
	return stampEntry(s.entry, now)
}

func (n *Node) applyEntry(ctx context.Context, sub *submission) (*Result, error) {
	backoff := 20 * time.Millisecond
	for {
		res, err := n.applyEntryOnce(ctx, sub)
		// Imports, mirrored txns, tombstone compaction and phase changes are
		// idempotent in the FSM: when a leader change leaves their outcome
		// unknown, applying them again is safe, and the caller gets a result.
		if err == nil || !errors.Is(err, ErrOutcomeUnknown) || !idempotentEntry(sub.typ) || ctx.Err() != nil || n.ctx.Err() != nil {
			return res, err
		}
		n.logger.Debug("retrying idempotent entry after an unknown outcome", "type", sub.typ.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// idempotentEntry reports whether applying an entry twice has the effect of
// applying it once.
func idempotentEntry(t EntryType) bool {
	switch t {
	case EntryImportBatch, EntrySourceTxn, EntrySourceBatch, EntryCompactTombstones, EntrySetPhase, EntryMirrorAck:
		return true
	}
	return false
}

func (n *Node) applyEntryOnce(ctx context.Context, sub *submission) (*Result, error) {
	var res *Result
	start := time.Now()
	resp, err := n.onLeader(ctx, rpcApply, sub.encoded, func(ctx context.Context) ([]byte, error) {
		r, err := n.applyLocal(ctx, sub.stamped(time.Now().UnixMilli()), sub.typ)
		res = r
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		if res, err = decodeResult(resp); err != nil {
			return nil, err
		}
		n.metrics.observeApply(sub.typ, time.Since(start))
	}
	return res, nil
}

// stampCommand sets the Time of the commands that carry one; it reports
// whether c is one of them.
func stampCommand(c Command, now int64) bool {
	switch c := c.(type) {
	case *Write:
		c.Time = now
	case *CreateSession:
		c.Time = now
	case *CloseSession:
		c.Time = now
	case *ExpireSessions:
		c.Time = now
	case *CleanupNodes:
		c.Time = now
	case *SetPhase:
		c.Time = now
	default:
		return false
	}
	return true
}

// stampEntry returns the entry with the leader's clock (ms since the Unix
// epoch) in its Time field, for the commands that carry one; the FSM never
// reads a clock. Other entries, and ones that do not decode (the FSM will
// report them), are returned as they are.
func stampEntry(entry []byte, now int64) []byte {
	switch entryTypeOf(entry) {
	case EntryWrite, EntryCreateSession, EntryCloseSession, EntryExpireSessions, EntryCleanupNodes, EntrySetPhase:
	default:
		return entry
	}
	c, err := Decode(entry)
	if err != nil {
		return entry
	}
	stampCommand(c, now)
	return Encode(c)
}

// leaderReadIndex is the read index a linearizable read waits for: this
// leader's applied index once it has applied a barrier in its term (so every
// entry committed before it took over is included), confirmed by a quorum
// still following it afterwards.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.isLeader() {
		return 0, ErrNotLeader
	}
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		if err := waitFuture(ctx, n.raft.Barrier(enqueueTimeout(ctx))); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return 0, ErrNotLeader
			}
			return 0, fmt.Errorf("raftjournal: read barrier: %w", err)
		}
		n.readyTerm.Store(term)
	}
	idx := n.fsm.applied.Load()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("raftjournal: verify leader: %w", err)
	}
	return idx, nil
}

// readBarrier waits until this node has applied everything committed before
// it was called (the read-index pattern): on the leader the index is its own,
// a follower asks the leader for it.
func (n *Node) readBarrier(ctx context.Context) error {
	resp, err := n.onLeader(ctx, rpcReadIndex, noPayload, func(ctx context.Context) ([]byte, error) {
		idx, err := n.leaderReadIndex(ctx)
		if err != nil {
			return nil, err
		}
		return appendUvarint(nil, idx), nil
	})
	if err != nil {
		return err
	}
	d := &decoder{b: resp}
	idx := d.uvarint("read index")
	if err := d.finish(); err != nil {
		return fmt.Errorf("raftjournal: malformed read index: %v", err)
	}
	return n.fsm.waitApplied(ctx, idx)
}

// join asks the member at adminAddr to add this node as a voter, retrying
// until JoinTimeout or until ctx ends.
func (n *Node) join(ctx context.Context, adminAddr string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.JoinTimeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		err := NewAdminClient(adminAddr, n.cfg.Credentials()).join(ctx, string(n.id), string(n.addr))
		if err == nil {
			n.logger.Info("joined cluster", "via", adminAddr)
			return nil
		}
		if errors.Is(err, ErrUnauthenticated) {
			return fmt.Errorf("raftjournal: join via %s: %w", adminAddr, err)
		}
		n.logger.Warn("join failed, retrying", "via", adminAddr, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("raftjournal: join via %s: %w", adminAddr, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// AddVoter adds (or re-addresses) a voting member; on a follower the request
// goes to the leader. Adding a member that is already there with the same
// address does nothing.
func (n *Node) AddVoter(ctx context.Context, id, raftAddr string) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	_, err = n.onLeader(ctx, rpcAddVoter, payloadOf(appendString(appendString(nil, id), raftAddr)), func(ctx context.Context) ([]byte, error) {
		return nil, n.addVoterLocal(ctx, id, raftAddr)
	})
	return err
}

func (n *Node) addVoterLocal(ctx context.Context, id, addr string) error {
	if !n.isLeader() {
		return ErrNotLeader
	}
	if id == "" || addr == "" {
		return fmt.Errorf("%w: add voter needs an id and an address", ErrBadCommand)
	}
	cf := n.raft.GetConfiguration()
	if err := waitFuture(ctx, cf); err != nil {
		return fmt.Errorf("raftjournal: read configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.ID == raft.ServerID(id) && s.Address == raft.ServerAddress(addr) && s.Suffrage == raft.Voter:
			return nil
		case s.ID == raft.ServerID(id) || s.Address == raft.ServerAddress(addr):
			// A member coming back under a new address, or a new member reusing
			// an address: the old entry goes first (what Consul does).
			if err := waitFuture(ctx, n.raft.RemoveServer(s.ID, 0, enqueueTimeout(ctx))); err != nil {
				return leaderErr("remove stale member "+string(s.ID), err)
			}
		}
	}
	if err := waitFuture(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))); err != nil {
		return leaderErr("add voter "+id, err)
	}
	n.logger.Info("added voter", "id", id, "raft-addr", addr)
	return nil
}

// RemoveServer removes a member from the cluster; on a follower the request
// goes to the leader. Removing the leader itself makes it step down. An id
// that is not a member is an error matching ErrBadCommand.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	// Checked here, on the configuration this node has, rather than on the
	// leader: the leader's removal stays idempotent, so a retry at a new
	// leader after the old one committed it does not fail.
	if n.memberAddr(id) == "" {
		return fmt.Errorf("%w: no member %q in the configuration", ErrBadCommand, id)
	}
	_, err = n.onLeader(ctx, rpcRemove, payloadOf(appendString(nil, id)), func(ctx context.Context) ([]byte, error) {
		return nil, n.removeLocal(ctx, id)
	})
	return err
}

func (n *Node) removeLocal(ctx context.Context, id string) error {
	if !n.isLeader() {
		return ErrNotLeader
	}
	if err := waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))); err != nil {
		return leaderErr("remove "+id, err)
	}
	n.logger.Info("removed member", "id", id)
	return nil
}

// TransferLeadership asks the leader to hand leadership to the member id, or
// to the most up-to-date follower when id is empty, and waits for the handover.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	addr := ""
	if id != "" {
		if addr = n.memberAddr(id); addr == "" {
			return fmt.Errorf("%w: no member %q", ErrBadCommand, id)
		}
	}
	_, err = n.onLeader(ctx, rpcTransfer, payloadOf(appendString(appendString(nil, id), addr)), func(ctx context.Context) ([]byte, error) {
		return nil, n.transferLocal(ctx, id, addr)
	})
	return err
}

func (n *Node) transferLocal(ctx context.Context, id, addr string) error {
	if !n.isLeader() {
		return ErrNotLeader
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	if err := waitFuture(ctx, f); err != nil {
		return fmt.Errorf("raftjournal: leadership transfer: %w", err)
	}
	return nil
}

func (n *Node) memberAddr(id string) string {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return ""
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			return string(s.Address)
		}
	}
	return ""
}

// leaderErr maps raft's leadership errors to ErrNotLeader (retried at the new
// leader) and labels the rest.
func leaderErr(what string, err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		// Membership changes here are idempotent, so a retry at the next
		// leader is safe even when this one may have committed the change.
		return ErrNotLeader
	}
	return fmt.Errorf("raftjournal: %s: %w", what, err)
}
