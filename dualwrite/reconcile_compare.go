package dualwrite

// RepairAll: a full comparison and the repairs of what differs.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

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
		err = r.checkEach(ctx, c, paths, &st, &mu, func(p string, err error) {
			if isUnreadable(err) {
				if _, ok := found[p]; !ok && len(found) < maxUnreadableTracked {
					found[p] = err.Error()
				}
				return
			}
			st.Failed++
			r.stats.errors.Add(1)
			r.logger.Warn("repair check failed", "path", p, "error", err)
		})
		if err != nil {
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

// checkEach checks paths, reconcileWorkers at a time, adding their repairs
// to st under mu; a check that fails other than by ctx ending goes to fail,
// called under mu.
func (r *Reconciler) checkEach(ctx context.Context, c *zkclient.Client, paths []string, st *RepairStats, mu *sync.Mutex, fail func(p string, err error)) error {
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
			default:
				fail(p, err)
			}
			return nil
		})
	}
	return g.Wait()
}
