package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// Alignment writes (ReconcilerConfig.AlignPath).
//
// ZooKeeper logs its digest only after txns whose zxid is a multiple of 128,
// so on a quiet ensemble its newest logged digest predates its latest writes
// and a digest check can only say "unknown". When the operator allows it, the
// reconciler then makes a comparable point: it writes AlignPath (setData,
// creating it first if need be) through the dual-write proxy (AlignVia, so
// that the writes are mirrored like any client's; or ZooKeeper itself, when
// there is no proxy, and the reconciler imports the node) until a write lands on a
// zxid Z that is a multiple of 128, waits until the journal has seen Z, and
// checks again: if nothing else was written meanwhile, ZooKeeper's digest at
// its latest zxid Z is compared with the journal's. That costs up to 128
// writes of a few bytes per check (maxAlignWrites bounds them when other
// clients keep taking the multiples).

// maxAlignWrites bounds the writes of one alignment.
const maxAlignWrites = 1024

// alignData is what alignment writes hold.
var alignData = []byte("zk2raft digest alignment")

// align writes AlignPath through AlignVia until a write lands on a multiple of
// 128 and the journal has seen it, and returns that zxid.
func (r *Reconciler) align(ctx context.Context) (int64, error) {
	conn, err := r.alignSession(ctx)
	if err != nil {
		return 0, err
	}
	path := r.cfg.AlignPath
	if _, _, err := conn.Create(ctx, path, alignData, znode.WorldAnyone(), zkwire.ModePersistent); err != nil && !errors.Is(err, zkclient.ErrNodeExists) {
		return 0, fmt.Errorf("dualwrite: alignment: create %s: %w", path, err)
	}
	var z int64
	for i := 0; ; i++ {
		if i == maxAlignWrites {
			return 0, fmt.Errorf("dualwrite: alignment: %d writes to %s and none landed on a multiple of %d", i, path, digestLogInterval)
		}
		st, err := conn.SetData(ctx, path, alignData, -1)
		if err != nil {
			return 0, fmt.Errorf("dualwrite: alignment: set %s: %w", path, err)
		}
		if st.Mzxid%digestLogInterval == 0 {
			z = st.Mzxid
			break
		}
	}
	// The journal must have seen Z before the digests are compared: through
	// the proxy's mirror, or, when the writes went to ZooKeeper itself (or
	// the mirror is slow), through this reconciler's own import of the node.
	deadline := time.Now().Add(30 * time.Second)
	imported := false
	importAt := time.Now().Add(max(2*r.cfg.Grace, 5*time.Second))
	for {
		if !imported && time.Now().After(importAt) {
			imported = true
			if _, err := r.CheckPath(ctx, path); err != nil {
				return z, fmt.Errorf("dualwrite: alignment: import %s: %w", path, err)
			}
		}
		last, err := r.cfg.View.LastSourceZxid(ctx)
		if err != nil {
			return z, fmt.Errorf("dualwrite: alignment: journal: %w", err)
		}
		if last >= z {
			return z, nil
		}
		if time.Now().After(deadline) {
			return z, fmt.Errorf("dualwrite: alignment: the journal has seen up to %#x, not the aligned %#x, after 30s", last, z)
		}
		select {
		case <-ctx.Done():
			return z, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alignSession returns the reconciler's session for alignment writes, opened
// on first use and kept until Close: opening and closing a session are txns
// too, which would move ZooKeeper past the aligned zxid.
func (r *Reconciler) alignSession(ctx context.Context) (*zkclient.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrReconcilerClosed
	}
	if r.alignConn != nil && r.alignConn.Err() == nil {
		return r.alignConn, nil
	}
	if r.alignConn != nil {
		_ = r.alignConn.Close()
		r.alignConn = nil
	}
	// FailPending: a write whose connection died is not sent again (its
	// outcome unknown, the next alignment simply writes on).
	conn, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.cfg.AlignVia, FirstHost: -1, Retry: zkclient.FailPending,
		Auth: r.zkAuth, SessionTimeout: r.cfg.SessionTimeout, Logger: r.logger.With("component", "align")})
	if err != nil {
		return nil, fmt.Errorf("dualwrite: alignment: connect to %v: %w", r.cfg.AlignVia, err)
	}
	r.alignConn = conn
	return conn, nil
}
