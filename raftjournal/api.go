package raftjournal

import (
	"context"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// The embedding API: ZooKeeper's operations, context first, on any node.
// Writes go to the leader (forwarded when this node follows), which stamps the
// time, commits them and answers with ZooKeeper's result or error code
// (errors.Is(err, CodeNoNode), CodeOf(err)). Reads are served by this node:
// locally by default, or linearizably with the Linearizable option.
//
// Paths are checked here the way ZooKeeper's client libraries check them, so
// a malformed path fails with CodeBadArguments without reaching the log.

// ReadOption configures a read.
type ReadOption func(*readOptions)

type readOptions struct {
	linearizable bool
	watcher      *Watcher
}

// Linearizable makes a read reflect every write that completed, on any node,
// before the read began: the node learns the leader's applied index (asking
// the leader, which confirms it still leads) and waits until it has applied
// that far. Without it a read is local, as in ZooKeeper, and a follower may
// return a slightly older state.
func Linearizable() ReadOption { return func(o *readOptions) { o.linearizable = true } }

// WithWatcher sets ZooKeeper's one-shot watch of the read on w: a data watch
// for Get, a data/exist watch for Exists (set whether or not the node
// exists), a child watch for Children. Events arrive on w after the change is
// applied on this node.
func WithWatcher(w *Watcher) ReadOption { return func(o *readOptions) { o.watcher = w } }

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WriteOption configures a write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	session int64
	auth    []znode.ID
	acl     []znode.ACL
	ttl     time.Duration
}

// WithSession makes the write on behalf of a session: ephemerals created with
// it belong to the session, and a write naming an expired session fails with
// CodeSessionExpired.
func WithSession(id int64) WriteOption { return func(o *writeOptions) { o.session = id } }

// WithAuth gives the caller's authenticated identities, which the "auth" ACL
// scheme expands to.
func WithAuth(ids ...znode.ID) WriteOption {
	return func(o *writeOptions) { o.auth = append(o.auth, ids...) }
}

// WithACL sets a created node's ACL list (default: world:anyone, all permissions).
func WithACL(acl []znode.ACL) WriteOption { return func(o *writeOptions) { o.acl = acl } }

// WithTTL sets a TTL node's time to live (ModePersistentTTL and
// ModePersistentSequentialTTL), in whole milliseconds.
func WithTTL(ttl time.Duration) WriteOption { return func(o *writeOptions) { o.ttl = ttl } }

func writeOpts(opts []WriteOption) writeOptions {
	o := writeOptions{acl: znode.WorldAnyone()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

func badPath(op OpKind, path string) error {
	return &OpError{Op: op, Path: path, Code: CodeBadArguments}
}

// write submits a single-op or multi Write and returns its per-op results.
func (n *Node) write(ctx context.Context, o writeOptions, multi bool, ops []Op) (*Result, error) {
	res, err := n.apply(ctx, &Write{Session: o.session, Auth: o.auth, Multi: multi, Ops: ops})
	if err != nil {
		return nil, err
	}
	if len(res.Ops) != len(ops) && res.Err == nil {
		return nil, fmt.Errorf("raftjournal: write at index %d returned %d results for %d ops", res.Index, len(res.Ops), len(ops))
	}
	return res, nil
}

// Create creates a node and returns its path (with the sequential suffix) and
// stat. Ephemeral modes need WithSession, TTL modes WithTTL.
func (n *Node) Create(ctx context.Context, path string, data []byte, mode CreateMode, opts ...WriteOption) (string, znode.WireStat, error) {
	var err error
	if mode.IsSequential() {
		err = znode.ValidateSequentialPrefix(path)
	} else {
		err = znode.ValidatePath(path)
	}
	if err != nil {
		return "", znode.WireStat{}, badPath(OpCreate, path)
	}
	o := writeOpts(opts)
	op := Op{Kind: OpCreate, Path: path, Data: data, ACL: o.acl, Mode: mode}
	if o.ttl != 0 {
		op.TTL = o.ttl.Milliseconds()
	}
	res, err := n.write(ctx, o, false, []Op{op})
	if err != nil {
		return "", znode.WireStat{}, err
	}
	if res.Err != nil {
		return "", znode.WireStat{}, res.Err
	}
	return res.Ops[0].Path, res.Ops[0].Stat, nil
}

// Set replaces a node's data if its version matches (-1: any) and returns the
// new stat (setData).
func (n *Node) Set(ctx context.Context, path string, data []byte, version int32, opts ...WriteOption) (znode.WireStat, error) {
	if znode.ValidatePath(path) != nil {
		return znode.WireStat{}, badPath(OpSetData, path)
	}
	res, err := n.write(ctx, writeOpts(opts), false, []Op{{Kind: OpSetData, Path: path, Data: data, Version: version}})
	if err != nil {
		return znode.WireStat{}, err
	}
	if res.Err != nil {
		return znode.WireStat{}, res.Err
	}
	return res.Ops[0].Stat, nil
}

// Delete deletes a childless node if its version matches (-1: any).
func (n *Node) Delete(ctx context.Context, path string, version int32, opts ...WriteOption) error {
	if znode.ValidatePath(path) != nil {
		return badPath(OpDelete, path)
	}
	res, err := n.write(ctx, writeOpts(opts), false, []Op{{Kind: OpDelete, Path: path, Version: version}})
	if err != nil {
		return err
	}
	return res.Err
}

// SetACL replaces a node's ACL list if its ACL version matches (-1: any).
func (n *Node) SetACL(ctx context.Context, path string, acl []znode.ACL, version int32, opts ...WriteOption) (znode.WireStat, error) {
	if znode.ValidatePath(path) != nil {
		return znode.WireStat{}, badPath(OpSetACL, path)
	}
	res, err := n.write(ctx, writeOpts(opts), false, []Op{{Kind: OpSetACL, Path: path, ACL: acl, Version: version}})
	if err != nil {
		return znode.WireStat{}, err
	}
	if res.Err != nil {
		return znode.WireStat{}, res.Err
	}
	return res.Ops[0].Stat, nil
}

// Multi applies ops atomically (create, delete, setData, check). It returns
// the per-op results in either case; when an op fails, the error is that op's
// and the results follow ZooKeeper's pattern (CodeOK before the failed op, its
// code, then CodeRuntimeInconsistency). A create's ACL defaults to
// world:anyone.
func (n *Node) Multi(ctx context.Context, ops []Op, opts ...WriteOption) ([]OpResult, error) {
	o := writeOpts(opts)
	ops = append([]Op(nil), ops...)
	for i := range ops {
		if ops[i].Kind == OpCreate && ops[i].ACL == nil {
			ops[i].ACL = o.acl
		}
	}
	res, err := n.write(ctx, o, true, ops)
	if err != nil {
		return nil, err
	}
	return res.Ops, res.Err
}

// Get returns a node's data and stat (getData).
func (n *Node) Get(ctx context.Context, path string, opts ...ReadOption) ([]byte, znode.WireStat, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	defer end()
	o := readOpts(opts)
	if o.linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return nil, znode.WireStat{}, err
		}
	}
	return n.fsm.Get(path, o.watcher)
}

// Exists returns a node's stat and whether it exists.
func (n *Node) Exists(ctx context.Context, path string, opts ...ReadOption) (znode.WireStat, bool, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return znode.WireStat{}, false, err
	}
	defer end()
	o := readOpts(opts)
	if o.linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return znode.WireStat{}, false, err
		}
	}
	st, ok := n.fsm.Exists(path, o.watcher)
	return st, ok, nil
}

// Children returns a node's child names, sorted, and its stat (getChildren2).
func (n *Node) Children(ctx context.Context, path string, opts ...ReadOption) ([]string, znode.WireStat, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	defer end()
	o := readOpts(opts)
	if o.linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return nil, znode.WireStat{}, err
		}
	}
	return n.fsm.Children(path, o.watcher)
}

// GetACL returns a node's ACL list and stat.
func (n *Node) GetACL(ctx context.Context, path string, opts ...ReadOption) ([]znode.ACL, znode.WireStat, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, znode.WireStat{}, err
	}
	defer end()
	if readOpts(opts).linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return nil, znode.WireStat{}, err
		}
	}
	return n.fsm.GetACL(path)
}

// Watch sets a persistent watch on path (addWatch), recursive (every change at
// or below path) or not (data and child changes of path itself). It stays
// until removed (FSM().RemoveWatches) or until w is closed. With Linearizable,
// the watch is registered once this node has applied every write completed
// before the call.
func (n *Node) Watch(ctx context.Context, path string, w *Watcher, recursive bool, opts ...ReadOption) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if znode.ValidatePath(path) != nil {
		return badPath(OpExists, path)
	}
	if readOpts(opts).linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return err
		}
	}
	n.fsm.AddWatch(path, w, recursive)
	return nil
}

// CreateSession opens a session with the given timeout and returns its id.
// The leader expires it when no TouchSession reached it for the timeout.
func (n *Node) CreateSession(ctx context.Context, timeout time.Duration) (int64, error) {
	ms := timeout.Milliseconds()
	if ms <= 0 || ms > 1<<31-1 {
		return 0, fmt.Errorf("%w: session timeout %v", ErrBadCommand, timeout)
	}
	res, err := n.apply(ctx, &CreateSession{TimeoutMs: int32(ms)})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	return res.Session, nil
}

// TouchSession tells the leader the session is alive (a ZooKeeper ping). It
// fails with CodeSessionExpired once the session is gone.
func (n *Node) TouchSession(ctx context.Context, id int64) error {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	_, err = n.onLeader(ctx, rpcTouch, payloadOf(appendVarint(nil, id)), func(context.Context) ([]byte, error) {
		return nil, n.touchLocal(id)
	})
	return err
}

// CloseSession closes a session, deleting its ephemerals.
func (n *Node) CloseSession(ctx context.Context, id int64) error {
	res, err := n.apply(ctx, &CloseSession{Session: id})
	if err != nil {
		return err
	}
	return res.Err
}

// ImportBatch submits nodes from a snapshot stream (the importer's bulk path)
// and waits for them to be applied. It is safe to call from many goroutines
// at once: the batches in flight share disk writes and replication rounds, so
// a handful in flight (errgroup.SetLimit) keeps the pipeline full.
func (n *Node) ImportBatch(ctx context.Context, b *ImportBatch) (*Result, error) {
	return n.Submit(ctx, b)
}

// Submit appends any command (SourceTxn from the dual-write proxy,
// CompactTombstones, ...) and returns its result; Result.Err holds a refusal
// by the state machine. The leader stamps the time of the commands that carry
// one (on this node, into c itself). Commands the state machine applies
// idempotently (ImportBatch, SourceTxn, CompactTombstones, SetPhase) are
// retried when a leader change leaves their outcome unknown, so they fail only
// when the context ends; a retried one may report fewer changes in
// Result.Changed than it made.
func (n *Node) Submit(ctx context.Context, c Command) (*Result, error) {
	return n.apply(ctx, c)
}

// SubmitEntry appends an already encoded entry (Encode), for callers that
// encode in parallel.
func (n *Node) SubmitEntry(ctx context.Context, entry []byte) (*Result, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	return n.applyEntry(ctx, &submission{entry: entry, typ: entryTypeOf(entry)})
}

// SetPhase changes the migration phase at one log index on every node
// (primary → shadow needs rollback).
func (n *Node) SetPhase(ctx context.Context, phase Phase, rollback bool) error {
	res, err := n.apply(ctx, &SetPhase{Phase: phase, Rollback: rollback})
	if err != nil {
		return err
	}
	return res.Err
}

// Checkpoint returns the value an importer stored under key with its last
// ImportBatch, after a linearizable read barrier, so a resumed import on any node
// sees every batch the cluster committed.
func (n *Node) Checkpoint(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, end, err := n.begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer end()
	if err := n.readBarrier(ctx); err != nil {
		return nil, false, err
	}
	v, ok := n.fsm.Checkpoint(key)
	return v, ok, nil
}
