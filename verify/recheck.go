package verify

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/znode"
)

// Rechecks: a difference a live side may still resolve (a write in flight)
// is held and re-read before it is reported.

// versionVector is what changes with every write to a node: a difference in
// it means one side is newer, and a live side may catch up.
type versionVector struct {
	present                   bool
	czxid, mzxid, pzxid       int64
	version, cversion, aversn int32
}

func vectorOf(n *znode.Node) versionVector {
	if n == nil {
		return versionVector{}
	}
	return versionVector{true, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid, n.Stat.Version, n.Stat.Cversion, n.Stat.Aversion}
}

// recheckable reports whether a difference may be a write in flight: a side
// is live and one side is newer than the other, in a way re-reading the live
// side can resolve. Equal versions with different contents are divergence,
// whatever the sides; a live node already newer than a static side's cannot
// become older, so re-reading it is pointless.
func (c *comparison) recheckable(s, t *znode.Node) bool {
	if c.cfg.Rechecks == 0 || (c.srcLive == nil && c.tgtLive == nil) {
		return false
	}
	vs, vt := vectorOf(s), vectorOf(t)
	if vs == vt {
		return false
	}
	if c.srcLive != nil && c.tgtLive != nil || !vs.present || !vt.present {
		return true
	}
	live, static := vs, vt
	if c.srcLive == nil {
		live, static = vt, vs
	}
	return !live.newerThan(static)
}

// newerThan reports whether v is a later state of the same node than o, or a
// later incarnation: every counter at least o's. Counters of one incarnation
// only grow.
func (v versionVector) newerThan(o versionVector) bool {
	if v.czxid != o.czxid {
		return v.czxid > o.czxid
	}
	return v.mzxid >= o.mzxid && v.pzxid >= o.pzxid && v.version >= o.version &&
		v.cversion >= o.cversion && v.aversn >= o.aversn
}

// hold keeps a difference for re-checking, within the budget.
func (c *comparison) hold(path string, s, t *znode.Node, diffs []Difference, st int) bool {
	if len(c.pending) >= c.cfg.MaxPending {
		return false
	}
	sp := &suspect{path: path, subtree: st, last: diffs}
	var size int64
	if c.srcLive == nil {
		sp.src, size = s, size+nodeSize(s)
	}
	if c.tgtLive == nil {
		sp.tgt, size = t, size+nodeSize(t)
	}
	if c.pendingBytes+size > c.cfg.MaxPendingBytes {
		return false
	}
	c.pendingBytes += size
	for _, d := range diffs {
		sp.first = append(sp.first, Allowed{Kind: d.Kind, Field: d.Field})
	}
	c.pending = append(c.pending, sp)
	return true
}

func nodeSize(n *znode.Node) int64 {
	if n == nil {
		return 0
	}
	size := int64(len(n.Path) + len(n.Data) + 128)
	for _, a := range n.ACL {
		size += int64(len(a.ID.Scheme) + len(a.ID.ID) + 8)
	}
	return size
}

// recheck re-reads the held differences on the live sides, with growing
// pauses, until they agree or the rounds run out.
func (c *comparison) recheck(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	c.report.Counts.Rechecked = int64(len(c.pending))
	c.cfg.Logger.Info("re-checking differences on the live side", "nodes", len(c.pending), "rounds", c.cfg.Rechecks)
	interval := c.cfg.RecheckInterval
	rounds := 0
	for rounds < c.cfg.Rechecks && len(c.pending) > 0 {
		rounds++
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		interval = min(2*interval, c.cfg.MaxRecheckInterval)
		for _, side := range []Rereader{c.srcLive, c.tgtLive} {
			if s, ok := side.(Syncer); ok {
				if err := s.Sync(ctx); err != nil {
					return err
				}
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.cfg.RecheckWorkers)
		for _, sp := range c.pending {
			g.Go(func() error { return c.reread(gctx, sp) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		still := c.pending[:0]
		for _, sp := range c.pending {
			if len(sp.last) > 0 {
				still = append(still, sp)
				continue
			}
			c.report.Counts.Converged++
			c.subtrees[sp.subtree].Converged++
			if len(c.report.Converged) < c.cfg.MaxDiffs {
				c.report.Converged = append(c.report.Converged, ConvergedDifference{Path: sp.path, What: sp.first, Rechecks: rounds})
			}
		}
		clear(c.pending[len(still):])
		c.pending = still
	}
	for _, sp := range c.pending {
		for i := range sp.last {
			sp.last[i].Rechecked = rounds
		}
		c.addDifferences(sp.last, sp.subtree, false)
	}
	c.pending = nil
	return nil
}

// reread reads a held path again on the live sides and recomputes what
// differs (allowances applied, not counted again).
func (c *comparison) reread(ctx context.Context, sp *suspect) error {
	s, t := sp.src, sp.tgt
	var err error
	if c.srcLive != nil {
		if s, err = c.srcLive.Reread(ctx, sp.path); err != nil {
			return err
		}
	}
	if c.tgtLive != nil {
		if t, err = c.tgtLive.Reread(ctx, sp.path); err != nil {
			return err
		}
	}
	var rest []Difference
	masked := c.liveMasked(s != nil && exporter.IsMaskedACL(s.ACL), t != nil && exporter.IsMaskedACL(t.ACL))
	if s == nil || t == nil || masked || !sameNode(s, t) {
		for _, d := range diffNodes(sp.path, s, t, masked) {
			if rule, _ := c.allowance(&d); rule == "" {
				rest = append(rest, d)
			}
		}
	}
	sp.last = rest
	return nil
}
