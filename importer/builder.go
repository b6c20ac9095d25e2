package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

var (
	// ErrMismatch is matched by the errors that report a journal not holding
	// exactly what the stream carried (node count or digest); the target is
	// then left untouched.
	ErrMismatch = errors.New("importer: journal does not match the imported stream")
	// ErrBuilderClosed is returned by WriteNode after Finish or Abort.
	ErrBuilderClosed = errors.New("importer: builder finished")
)

// firstEntryIndex is the log index the first import entry is applied at:
// raftjournal's offline bootstrap puts the configuration at index 1.
const firstEntryIndex = 2

// Builder builds a fresh journal's state from a node stream, outside raft,
// for an offline bootstrap: nodes are cut into ImportBatch entries by size,
// encoded on one goroutine and applied to an FSM on another, so reading,
// encoding and applying overlap. It is a sink for exporter.Walker and for a
// snapshot file's records alike.
//
// Memory: the FSM holds the tree (it is the journal's state); besides that a
// Builder holds at most a few batches.
//
// WriteNode and ObserveZxid are called from one goroutine; Finish or Abort
// ends the Builder and stops its goroutines.
type Builder struct {
	opts  Options
	fsm   *raftjournal.FSM
	ctx   context.Context
	stop  context.CancelFunc
	g     *errgroup.Group
	batch batcher
	toEnc chan []*znode.Node

	tally   streamTally
	started time.Time
	closed  bool

	mu      sync.Mutex // guards what the applier updates
	applied Progress
	changed int64
	nextIdx uint64 // owned by the applier
}

// encoded is one entry on its way to the applier.
type encoded struct {
	entry []byte
	nodes int
}

// NewBuilder starts a Builder with a fresh FSM.
func NewBuilder(ctx context.Context, opts Options) (*Builder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	fsm, err := raftjournal.NewFSM(raftjournal.Config{Logger: opts.Logger, CompressSnapshots: opts.CompressSnapshots})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	b := &Builder{
		opts: opts, fsm: fsm, ctx: ctx, stop: stop, g: g,
		batch:   batcher{maxBytes: opts.BatchBytes, maxNodes: opts.BatchNodes},
		toEnc:   make(chan []*znode.Node, 2),
		started: time.Now(),
		nextIdx: firstEntryIndex,
	}
	entries := make(chan encoded, 2)
	hint := opts.SizeHint
	g.Go(func() error { // encoder
		defer close(entries)
		for nodes := range b.toEnc {
			e := encoded{raftjournal.Encode(&raftjournal.ImportBatch{Nodes: nodes, SizeHint: hint}), len(nodes)}
			hint = 0 // the first entry sizes the table
			select {
			case entries <- e:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error { // applier
		for e := range entries {
			if err := b.apply(e); err != nil {
				return err
			}
		}
		return nil
	})
	return b, nil
}

// apply applies one entry at the next index. It is called by the applier
// goroutine, and by Finish once that goroutine has ended.
func (b *Builder) apply(e encoded) error {
	idx := b.nextIdx
	b.nextIdx++
	res, err := b.fsm.ApplyEntry(idx, e.entry)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("importer: applying import entry %d: %w", idx-firstEntryIndex+1, err)
	}
	b.mu.Lock()
	b.applied.Entries++
	b.applied.Nodes += int64(e.nodes)
	b.applied.Bytes += int64(len(e.entry))
	b.changed += int64(res.Changed)
	p := b.applied
	b.mu.Unlock()
	if b.opts.Progress != nil {
		b.opts.Progress(p)
	}
	return nil
}

// WriteNode adds a node. Nodes should come parents first (the order of every
// export and snapshot), which keeps each on the FSM's fast path.
func (b *Builder) WriteNode(n *znode.Node) error {
	if b.closed {
		return ErrBuilderClosed
	}
	b.tally.add(n)
	if b.batch.add(n) {
		return b.flush()
	}
	return nil
}

// ObserveZxid is part of exporter.Sink; the journal learns its zxids from the
// nodes' stats.
func (b *Builder) ObserveZxid(int64) {}

func (b *Builder) flush() error {
	if len(b.batch.nodes) == 0 {
		return nil
	}
	select {
	case b.toEnc <- b.batch.take():
		return nil
	case <-b.ctx.Done():
		err := b.wait()
		if err == nil {
			err = b.ctx.Err()
		}
		return err
	}
}

// wait ends the pipeline and returns its first error.
func (b *Builder) wait() error {
	if !b.closed {
		b.closed = true
		close(b.toEnc)
	}
	return b.g.Wait()
}

// Built is the state a Builder produced, ready to install.
type Built struct {
	FSM      *raftjournal.FSM
	Expected Expectation
	// Digest and Nodes are the journal's.
	Digest   znode.Digest
	Nodes    int64
	Entries  int64
	Bytes    int64 // encoded entry bytes
	Changed  int64 // nodes that changed the journal (all of them in a fresh one, system nodes aside)
	MaxZxid  int64 // largest zxid in the stream's stats
	Duration time.Duration
}

// Finish applies what is left and a last entry carrying the checkpoint (the
// import's record in the journal's state), stops the goroutines, and checks
// the journal against the stream: same node count and digest, system nodes
// accounted for (see Expectation). A journal holding anything else, such as
// nodes left pending because their parent was not in the stream, is an error
// matching ErrMismatch.
func (b *Builder) Finish(cp *raftjournal.Checkpoint) (*Built, error) {
	if b.closed {
		return nil, ErrBuilderClosed
	}
	if err := b.flush(); err != nil {
		b.Abort()
		return nil, err
	}
	if err := b.wait(); err != nil {
		b.stop()
		return nil, err
	}
	b.stop()
	if err := b.apply(encoded{entry: raftjournal.Encode(&raftjournal.ImportBatch{Checkpoint: cp})}); err != nil {
		return nil, err
	}
	st := b.fsm.Status()
	exp := b.tally.expect()
	built := &Built{
		FSM: b.fsm, Expected: exp, Digest: st.Digest, Nodes: int64(st.Nodes),
		Entries: b.applied.Entries, Bytes: b.applied.Bytes, Changed: b.changed, MaxZxid: b.tally.maxZxid,
		Duration: time.Since(b.started),
	}
	switch {
	case st.Pending > 0:
		return nil, fmt.Errorf("%w: %d node(s) left pending because their parent is not in the stream (a subtree export needs its ancestors in the journal; import the whole tree)", ErrMismatch, st.Pending)
	case built.Nodes != exp.Nodes:
		return nil, fmt.Errorf("%w: journal holds %d nodes, the stream %d (+%d system nodes); duplicate paths in the stream?", ErrMismatch, built.Nodes, exp.StreamNodes, len(exp.Added))
	case built.Digest != exp.Digest:
		return nil, fmt.Errorf("%w: journal digest %v, expected %v (stream %v + system nodes %v)", ErrMismatch, built.Digest, exp.Digest, exp.StreamDigest, exp.AddedDigest)
	}
	return built, nil
}

// Abort stops the pipeline and drops the state. It is idempotent.
func (b *Builder) Abort() {
	b.stop()
	_ = b.wait()
}

// Progress returns what has been applied so far; safe from any goroutine.
func (b *Builder) Progress() Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied
}

// Install writes the built state into cfg.DataDir as the journal's initial
// snapshot (raftjournal.InstallInitialSnapshot, which decodes what it writes
// as it writes it) and checks the file on disk: header and footer intact, its
// trailer carrying the journal's node count and digest.
func (bt *Built) Install(cfg raftjournal.NodeConfig) (raftjournal.InitialSnapshot, error) {
	info, err := raftjournal.InstallInitialSnapshot(cfg, bt.FSM)
	if err != nil {
		return info, err
	}
	if info.Trailer.Digest != bt.Digest {
		return info, fmt.Errorf("%w: installed snapshot %s has digest %v, the journal %v", ErrMismatch, info.Path, info.Trailer.Digest, bt.Digest)
	}
	_, tr, err := znode.ReadSnapshotTrailer(info.Path)
	if err != nil {
		return info, fmt.Errorf("importer: checking the installed snapshot: %w", err)
	}
	if tr.Digest != bt.Digest || int64(tr.NodeCount) != bt.Nodes {
		return info, fmt.Errorf("%w: installed snapshot %s reads back as %d nodes with digest %v, the journal holds %d with %v",
			ErrMismatch, info.Path, tr.NodeCount, tr.Digest, bt.Nodes, bt.Digest)
	}
	return info, nil
}
