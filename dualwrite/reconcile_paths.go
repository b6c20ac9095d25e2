package dualwrite

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// repairPathsWorkers is RepairPaths' reading parallelism: its reads are the
// whole of its cost (two ZooKeeper round trips and a journal read per node),
// and a rollback waits for them.
const repairPathsWorkers = 32

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
	if err := r.checkEach(ctx, c, slow, &st, &mu, fail); err != nil {
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
