package importer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// Defaults applied by DefaultOptions and to zero Options fields.
const (
	// DefaultBatchBytes is the target encoded size of one ImportBatch entry.
	// Measured (BenchmarkOnlineImport): 256 KiB to 1 MiB entries keep a
	// three-node cluster's disks and links busy; much larger ones make one
	// AppendEntries round (up to MaxAppendEntries entries) tens of MiB.
	DefaultBatchBytes = 512 << 10
	// DefaultBatchNodes caps the nodes of one entry, so that a tree of tiny
	// nodes still makes entries the FSM applies in a few milliseconds.
	DefaultBatchNodes = 8192
	// DefaultInFlight is how many entries an online import keeps submitted and
	// not yet applied.
	DefaultInFlight = 16
	// DefaultRetryTimeout is how long one online batch may keep failing for
	// want of a leader before the import gives up.
	DefaultRetryTimeout = 2 * time.Minute
	// MaxBatchBytes bounds BatchBytes well under the journal RPC's frame limit.
	MaxBatchBytes = 64 << 20
	// MaxInFlight bounds InFlight.
	MaxInFlight = 1024
)

// ErrInvalidOptions is returned (wrapped) by Options.Validate.
var ErrInvalidOptions = errors.New("importer: invalid options")

// Options tune how nodes are cut into ImportBatch entries and, for an online
// import, how they are sent.
type Options struct {
	// BatchBytes is the target encoded size of one entry in bytes; a node
	// larger than that gets an entry of its own.
	BatchBytes int
	// BatchNodes caps the nodes in one entry.
	BatchNodes int
	// InFlight is how many entries an online import keeps submitted at once
	// (they share the leader's disk writes and replication rounds).
	InFlight int
	// RetryTimeout bounds how long one online entry may keep failing with a
	// retryable error (no leader, leader changed, outcome unknown) before the
	// import fails; retrying is safe because applying a batch twice changes
	// nothing the first application did not.
	RetryTimeout time.Duration
	// SizeHint is the number of nodes the import brings, when known (a
	// snapshot trailer's count); the journal sizes its table once for it.
	SizeHint uint64
	// CompressSnapshots writes the offline journal's snapshot zstd-compressed.
	CompressSnapshots bool
	// Progress, when set, is called from the importing goroutine after every
	// entry applied, with the totals so far. It must be quick.
	Progress func(Progress)
	// Logger receives the import's log lines; nil discards them.
	Logger *slog.Logger
}

// Progress is what an import has done so far.
type Progress struct {
	Nodes   int64 // nodes applied to the journal
	Bytes   int64 // encoded entry bytes applied
	Entries int64 // entries applied
	Skipped int64 // nodes a resumed import did not send again
}

// DefaultOptions returns the default options.
func DefaultOptions() Options {
	return Options{
		BatchBytes:   DefaultBatchBytes,
		BatchNodes:   DefaultBatchNodes,
		InFlight:     DefaultInFlight,
		RetryTimeout: DefaultRetryTimeout,
	}
}

func (o Options) withDefaults() Options {
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.BatchNodes == 0 {
		o.BatchNodes = DefaultBatchNodes
	}
	if o.InFlight == 0 {
		o.InFlight = DefaultInFlight
	}
	if o.RetryTimeout == 0 {
		o.RetryTimeout = DefaultRetryTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether the options can be used; zero fields take defaults.
func (o Options) Validate() error {
	switch {
	case o.BatchBytes < 0 || o.BatchBytes > MaxBatchBytes:
		return fmt.Errorf("%w: BatchBytes %d, want 1..%d (or 0 for %d)", ErrInvalidOptions, o.BatchBytes, MaxBatchBytes, DefaultBatchBytes)
	case o.BatchNodes < 0:
		return fmt.Errorf("%w: BatchNodes %d is negative", ErrInvalidOptions, o.BatchNodes)
	case o.InFlight < 0 || o.InFlight > MaxInFlight:
		return fmt.Errorf("%w: InFlight %d, want 1..%d (or 0 for %d)", ErrInvalidOptions, o.InFlight, MaxInFlight, DefaultInFlight)
	case o.RetryTimeout < 0:
		return fmt.Errorf("%w: RetryTimeout %v is negative", ErrInvalidOptions, o.RetryTimeout)
	}
	return nil
}

// encodedSize is an upper bound of a node's size in an ImportBatch entry
// (raftjournal's codec: varint lengths and a varint stat of at most 9 × 10
// bytes, usually far less).
func encodedSize(n *znode.Node) int {
	size := len(n.Path) + len(n.Data) + 2*5 + 5 + 9*10
	for i := range n.ACL {
		size += len(n.ACL[i].ID.Scheme) + len(n.ACL[i].ID.ID) + 3*5
	}
	return size
}

// batcher cuts a node stream into batches by encoded size and count.
type batcher struct {
	maxBytes, maxNodes int
	nodes              []*znode.Node
	bytes              int
}

// add appends n and reports whether the batch is full and must be taken.
func (b *batcher) add(n *znode.Node) bool {
	b.nodes = append(b.nodes, n)
	b.bytes += encodedSize(n)
	return b.bytes >= b.maxBytes || len(b.nodes) >= b.maxNodes
}

// take returns the batch so far and starts a new one.
func (b *batcher) take() []*znode.Node {
	out := b.nodes
	b.nodes = make([]*znode.Node, 0, cap(out))
	b.bytes = 0
	return out
}
