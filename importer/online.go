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

// ErrRefused is matched by the error an online import returns when the
// journal refused a batch (wrong phase, malformed node): retrying cannot help.
var ErrRefused = errors.New("importer: journal refused the import")

// Online imports a node stream into a running journal: nodes are cut into
// ImportBatch entries by size and up to Options.InFlight of them are
// submitted at once, so they share the leader's disk writes and replication
// rounds. Each entry carries the import's checkpoint: the length of the
// longest prefix of the stream whose batches had all been applied when the
// entry was sent (batches in flight may be applied in any order, so only that
// prefix is known to be in the journal). A rerun reads the checkpoint and
// skips that prefix; what it sends again is merged idempotently.
//
// WriteNode is called from one goroutine; Finish ends the import.
type Online struct {
	j    Journal
	opts Options
	key  string
	base CheckpointValue

	parent context.Context // the caller's
	ctx    context.Context // the batches', cancelled on the first failure
	stop   context.CancelFunc
	g      *errgroup.Group
	batch  batcher
	tally  streamTally
	skip   int64 // leading nodes already in the journal (resume)

	mu        sync.Mutex
	ends      []int64 // per batch: stream position after its last node
	done      []bool
	low       int    // batches before low are all applied
	prefix    int64  // stream position covered by batches[:low]
	lastIndex uint64 // largest log index a batch was applied at
	progress  Progress
	retries   int64
}

// NewOnline starts an online import under checkpoint key. base is the
// checkpoint to continue from (zero for a new import): its Nodes leading
// nodes of the stream are taken as applied and not sent again.
func NewOnline(ctx context.Context, j Journal, key string, base CheckpointValue, opts Options) (*Online, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	parent := ctx
	ctx, stop := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.InFlight)
	o := &Online{
		j: j, opts: opts, key: key, base: base, parent: parent, ctx: ctx, stop: stop, g: g,
		batch: batcher{maxBytes: opts.BatchBytes, maxNodes: opts.BatchNodes},
		skip:  base.Nodes, prefix: base.Nodes,
	}
	o.progress.Skipped = base.Nodes
	return o, nil
}

// WriteNode adds the next node of the stream.
func (o *Online) WriteNode(n *znode.Node) error {
	o.tally.add(n)
	if o.tally.nodes <= o.skip {
		return nil
	}
	if o.batch.add(n) {
		return o.send()
	}
	return nil
}

// ObserveZxid is part of exporter.Sink.
func (o *Online) ObserveZxid(int64) {}

func (o *Online) send() error {
	if len(o.batch.nodes) == 0 {
		return nil
	}
	if err := o.ctx.Err(); err != nil {
		return o.fail()
	}
	nodes := o.batch.take()
	o.mu.Lock()
	seq := len(o.ends)
	o.ends = append(o.ends, o.tally.nodes)
	o.done = append(o.done, false)
	cp := o.base
	cp.Nodes, cp.Done = o.prefix, false
	o.mu.Unlock()
	hint := uint64(0)
	if seq == 0 {
		hint = o.opts.SizeHint
	}
	// Go blocks while InFlight batches are outstanding: the stream waits.
	o.g.Go(func() error {
		entry := raftjournal.Encode(&raftjournal.ImportBatch{
			Nodes: nodes, SizeHint: hint, Checkpoint: &raftjournal.Checkpoint{Key: o.key, Value: cp.Encode()},
		})
		res, err := o.submit(entry)
		if err != nil {
			return err
		}
		o.mu.Lock()
		o.done[seq] = true
		for o.low < len(o.done) && o.done[o.low] {
			o.prefix = o.ends[o.low]
			o.low++
		}
		o.lastIndex = max(o.lastIndex, res.Index)
		o.progress.Nodes += int64(len(nodes))
		o.progress.Entries++
		o.progress.Bytes += int64(len(entry))
		p := o.progress
		o.mu.Unlock()
		if o.opts.Progress != nil {
			o.opts.Progress(p)
		}
		return nil
	})
	return nil
}

// fail returns the import's first error.
func (o *Online) fail() error {
	err := o.g.Wait()
	if err == nil {
		err = o.ctx.Err()
	}
	return err
}

// submit sends one entry, retrying what may succeed on another attempt until
// RetryTimeout: no leader, a leader change, a lost connection, an outcome
// unknown (the batch is idempotent, so sending it twice is harmless).
func (o *Online) submit(entry []byte) (*raftjournal.Result, error) {
	var since time.Time
	backoff := 20 * time.Millisecond
	for {
		res, err := o.j.Submit(o.ctx, entry)
		if err == nil {
			if res.Err != nil {
				return nil, fmt.Errorf("%w: %w", ErrRefused, res.Err)
			}
			return res, nil
		}
		if o.ctx.Err() != nil || !retryable(err) {
			return nil, fmt.Errorf("importer: submit import entry: %w", err)
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		} else if now.Sub(since) > o.opts.RetryTimeout {
			return nil, fmt.Errorf("importer: submit import entry: still failing after %v: %w", o.opts.RetryTimeout, err)
		}
		o.mu.Lock()
		o.retries++
		o.mu.Unlock()
		o.opts.Logger.Debug("retrying import entry", "error", err, "backoff", backoff)
		select {
		case <-o.ctx.Done():
			return nil, o.ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// retryable reports whether an error submitting a batch may go away: the
// refusals that say the entry itself is wrong never do.
func retryable(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raftjournal.ErrNoLeader):
		return false
	case errors.Is(err, raftjournal.ErrBadCommand), errors.Is(err, raftjournal.ErrWrongPhase),
		errors.Is(err, raftjournal.ErrInvalidConfig), errors.Is(err, raftjournal.ErrCorruptEntry):
		return false
	}
	return true
}

// OnlineResult is what Finish reports.
type OnlineResult struct {
	Expected Expectation
	// Sent counts the nodes this run sent; Skipped those a resumed run took as
	// already applied.
	Sent, Skipped int64
	Entries       int64
	Bytes         int64
	Retries       int64
	// LastIndex is the log index of the import's last entry.
	LastIndex uint64
	// MaxZxid is the largest zxid in the stream's stats.
	MaxZxid int64
	// Journal is the state of the journal node asked once it applied LastIndex.
	Journal JournalState
	// Checked says the journal was fresh when the import began, so its digest
	// and node count were checked against the stream (Expected).
	Checked bool
}

// Finish sends what is left, waits for every batch, then writes the final
// checkpoint (Done, with the stream's totals) and reads the journal's state.
// When the import began on a fresh journal, the state must equal the stream
// (system nodes accounted for) or Finish returns an error matching
// ErrMismatch. total and digest describe the whole stream as its source
// vouches for it (a snapshot trailer); Finish checks the stream against them.
func (o *Online) Finish(total int64, digest znode.Digest) (*OnlineResult, error) {
	defer o.stop()
	if err := o.send(); err != nil {
		return nil, err
	}
	if err := o.g.Wait(); err != nil {
		return nil, err
	}
	if o.tally.nodes != total || o.tally.digest != digest {
		return nil, fmt.Errorf("%w: the stream had %d nodes with digest %v, its source says %d with %v", ErrMismatch, o.tally.nodes, o.tally.digest, total, digest)
	}
	final := o.base
	final.Nodes, final.Total, final.Digest, final.Done = o.tally.nodes, total, digest.String(), true
	// The batches' context ended with Wait; the last entry and the state
	// read run under the caller's.
	ctx := o.parent
	o.ctx = ctx
	res, err := o.submit(raftjournal.Encode(&raftjournal.ImportBatch{Checkpoint: &raftjournal.Checkpoint{Key: o.key, Value: final.Encode()}}))
	if err != nil {
		return nil, err
	}
	o.lastIndex = max(o.lastIndex, res.Index)
	out := &OnlineResult{
		Expected: o.tally.expect(), Sent: o.progress.Nodes, Skipped: o.progress.Skipped,
		Entries: o.progress.Entries + 1, Bytes: o.progress.Bytes, Retries: o.retries, LastIndex: o.lastIndex,
		Checked: o.base.BaseFresh, MaxZxid: o.tally.maxZxid,
	}
	sctx, cancel := context.WithTimeout(ctx, o.opts.RetryTimeout)
	defer cancel()
	if out.Journal, err = o.j.State(sctx, o.lastIndex); err != nil {
		return nil, err
	}
	if out.Checked {
		switch e := out.Expected; {
		case out.Journal.Nodes != e.Nodes:
			return out, fmt.Errorf("%w: journal holds %d nodes, the stream %d (+%d system nodes)", ErrMismatch, out.Journal.Nodes, e.StreamNodes, len(e.Added))
		case out.Journal.Digest != e.Digest:
			return out, fmt.Errorf("%w: journal digest %v, expected %v (stream %v + system nodes %v)", ErrMismatch, out.Journal.Digest, e.Digest, e.StreamDigest, e.AddedDigest)
		}
	}
	return out, nil
}

// Abort stops sending; batches in flight may still be applied.
func (o *Online) Abort() {
	o.stop()
	_ = o.g.Wait()
}
