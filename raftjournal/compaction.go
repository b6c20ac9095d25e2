package raftjournal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshots:
//
// raft snapshots on an entry count (SnapshotThreshold), which fits neither of
// the journal's workloads: a bulk import writes a few large entries (one
// snapshot per N entries would rewrite a growing tree every few seconds, which
// is quadratic in the tree size), and native writes many tiny ones. The node
// therefore snapshots by bytes: when the log applied since the last snapshot
// reaches max(SnapshotMinLogBytes, SnapshotLogRatio × the last snapshot's size).
// Snapshot work is then at most a constant times the log written, whatever the
// tree size; and the log replayed after a restart is bounded by the same
// figure. raft's count trigger stays as a backstop (SnapshotThreshold, 1M
// entries by default, checked every SnapshotInterval).
//
// Before each snapshot, TrailingLogs (how many entries compaction keeps behind
// the snapshot for followers that lag a little) is set from the average entry
// size so that about TrailingLogBytes stay: a few hundred import entries, or
// hundreds of thousands of native writes.

// nodeFSM is the FSM as raft sees it in a node: it keeps the applied index the
// read path waits on, counts the bytes applied for the snapshot policy, times
// applies, snapshots and restores, and names the snapshot file in restore
// errors.
type nodeFSM struct {
	*FSM
	metrics *nodeMetrics

	// applied is the index of the last command or configuration entry applied
	// (raft's own AppliedIndex counts entries handed to the FSM goroutine, not
	// applied ones, and no-op and barrier entries never reach the FSM).
	applied        atomic.Uint64
	appliedBytes   atomic.Int64
	appliedEntries atomic.Int64

	// sizes of the entries applied (ZooKeeper's proposal sizes in srvr and
	// mntr); 0: none yet
	lastEntry, minEntry, maxEntry atomic.Int64

	snapMark atomic.Int64 // appliedBytes covered by the last snapshot
	snapSize atomic.Int64 // the last snapshot's size in bytes

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after every apply
}

var (
	_ raft.BatchingFSM   = (*nodeFSM)(nil)
	_ raft.FSMSnapshot   = (*nodeSnapshot)(nil)
	_ raft.SnapshotSink  = (*countingSink)(nil)
	_ io.ReadCloser      = (*snapshotFile)(nil)
	_ raft.SnapshotStore = (*snapshotStore)(nil)
)

func newNodeFSM(f *FSM, m *nodeMetrics) *nodeFSM {
	return &nodeFSM{FSM: f, metrics: m, notify: make(chan struct{})}
}

func (f *nodeFSM) startPolicy(rec recovered) {
	f.snapSize.Store(rec.snapshotSize)
}

func (f *nodeFSM) setApplied(idx uint64) {
	f.applied.Store(idx)
	f.mu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

func (f *nodeFSM) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notify
}

// waitApplied waits until the FSM has applied index idx.
func (f *nodeFSM) waitApplied(ctx context.Context, idx uint64) error {
	for {
		ch := f.changed()
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raftjournal: waiting to apply index %d (applied %d): %w", idx, f.applied.Load(), ctx.Err())
		}
	}
}

// Apply implements raft.FSM (raft uses ApplyBatch).
func (f *nodeFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM.
func (f *nodeFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	out := f.FSM.ApplyBatch(logs)
	var bytes int64
	for _, l := range logs {
		size := int64(len(l.Data))
		bytes += size
		if l.Type == raft.LogCommand {
			f.lastEntry.Store(size)
			if cur := f.minEntry.Load(); cur == 0 || size < cur {
				f.minEntry.Store(size)
			}
			if size > f.maxEntry.Load() {
				f.maxEntry.Store(size)
			}
		}
	}
	f.appliedBytes.Add(bytes)
	f.appliedEntries.Add(int64(len(logs)))
	f.metrics.fsmApply.Observe(time.Since(start).Seconds())
	if len(logs) > 0 {
		f.setApplied(logs[len(logs)-1].Index)
	}
	return out
}

// Snapshot implements raft.FSM. raft calls it on the FSM goroutine, between
// applies, so the byte mark matches the captured state.
func (f *nodeFSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	mark := f.appliedBytes.Load()
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	f.metrics.snapshotSeconds.WithLabelValues("capture").Observe(time.Since(start).Seconds())
	return &nodeSnapshot{inner: s, f: f, mark: mark}, nil
}

// Restore implements raft.FSM.
func (f *nodeFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	path, size, index := "", int64(0), uint64(0)
	if sf, ok := rc.(*snapshotFile); ok {
		path, index = sf.path, sf.index
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
	}
	if err := f.FSM.Restore(rc); err != nil {
		if path != "" {
			return fmt.Errorf("raftjournal: restore snapshot %s: %w", path, err)
		}
		return fmt.Errorf("raftjournal: restore snapshot: %w", err)
	}
	f.snapMark.Store(f.appliedBytes.Load())
	f.snapSize.Store(size)
	f.metrics.snapshotSeconds.WithLabelValues("restore").Observe(time.Since(start).Seconds())
	f.metrics.restores.Inc()
	// Publish the applied index last: whoever waits on it (reads, tests)
	// then sees the restore fully accounted. The snapshot covers everything
	// up to its raft index, configuration entries after the last command
	// included: a read index pointing at one of those must be satisfied by it.
	f.setApplied(max(f.FSM.Status().AppliedIndex, index))
	return nil
}

// nodeSnapshot times the write and records its size for the policy.
type nodeSnapshot struct {
	inner raft.FSMSnapshot
	f     *nodeFSM
	mark  int64
}

func (s *nodeSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	cs := &countingSink{SnapshotSink: sink}
	if err := s.inner.Persist(cs); err != nil {
		return err
	}
	s.f.snapMark.Store(s.mark)
	s.f.snapSize.Store(cs.n)
	s.f.metrics.snapshotSeconds.WithLabelValues("persist").Observe(time.Since(start).Seconds())
	s.f.metrics.snapshotBytes.Set(float64(cs.n))
	return nil
}

func (s *nodeSnapshot) Release() { s.inner.Release() }

type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (c *countingSink) Write(p []byte) (int, error) {
	n, err := c.SnapshotSink.Write(p)
	c.n += int64(n)
	return n, err
}

// trailingLogs converts TrailingLogBytes to an entry count from the average
// entry size applied so far (256 bytes before anything was applied).
func (f *nodeFSM) trailingLogs(cfg *NodeConfig) uint64 {
	avg := int64(256)
	if e := f.appliedEntries.Load(); e > 0 {
		avg = max(f.appliedBytes.Load()/e, 1)
	}
	n := uint64(cfg.TrailingLogBytes / avg)
	return min(max(n, cfg.MinTrailingLogs), cfg.MaxTrailingLogs)
}

// snapshotDue reports whether the log since the last snapshot is large enough.
func (f *nodeFSM) snapshotDue(cfg *NodeConfig) bool {
	since := f.appliedBytes.Load() - f.snapMark.Load()
	limit := max(cfg.SnapshotMinLogBytes, int64(cfg.SnapshotLogRatio*float64(f.snapSize.Load())))
	return since >= limit
}

// compactionTick is how often the snapshot policy is checked.
const compactionTick = time.Second

// runCompaction applies the snapshot policy until the node closes.
func (n *Node) runCompaction() {
	defer n.wg.Done()
	t := time.NewTicker(compactionTick)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.fsm.snapshotDue(&n.cfg) {
			continue
		}
		rc := n.raft.ReloadableConfig()
		if tl := n.fsm.trailingLogs(&n.cfg); tl != rc.TrailingLogs {
			rc.TrailingLogs = tl
			if err := n.raft.ReloadConfig(rc); err != nil {
				n.logger.Warn("cannot set trailing logs", "trailing-logs", tl, "error", err)
			}
		}
		start := time.Now()
		err := n.raft.Snapshot().Error()
		switch {
		case err == nil:
			n.logger.Info("snapshot taken", "applied-index", n.fsm.applied.Load(), "bytes", n.fsm.snapSize.Load(),
				"trailing-logs", rc.TrailingLogs, "took", time.Since(start).Round(time.Millisecond))
		case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown):
		default:
			n.logger.Warn("snapshot failed", "error", err)
		}
	}
}
