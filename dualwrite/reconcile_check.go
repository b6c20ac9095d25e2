package dualwrite

// Checks and repairs of one path.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// checkResult counts the entries one check submitted.
type checkResult struct {
	nodes, deletes int
	absent         bool // the node was absent on both sides
}

func (c checkResult) repaired() bool { return c.nodes+c.deletes > 0 }

// CheckPath compares one path in ZooKeeper (after a sync) and in the journal,
// and repairs the journal if they differ. It reports whether it submitted a
// repair. A path outside Root or in /zookeeper is ErrOutOfScope.
func (r *Reconciler) CheckPath(ctx context.Context, path string) (bool, error) {
	if err := znode.ValidatePath(path); err != nil {
		return false, err
	}
	if !r.inScope(path) {
		return false, fmt.Errorf("%w: %s (root %s)", ErrOutOfScope, path, r.cfg.Root)
	}
	c, err := r.zk(ctx)
	if err != nil {
		return false, err
	}
	if err := c.Sync(ctx, "/"); err != nil {
		return false, err
	}
	res, err := r.check(ctx, c, path)
	return res.repaired(), err
}

// check compares path and repairs it, reading again when ZooKeeper changed
// under the repair. The caller has synced the session. A node that was
// unreadable and is read now is no longer reported.
func (r *Reconciler) check(ctx context.Context, c *zkclient.Client, path string) (checkResult, error) {
	res, err := r.check1(ctx, c, path)
	if err == nil {
		r.readable(path)
	}
	return res, err
}

func (r *Reconciler) check1(ctx context.Context, c *zkclient.Client, path string) (checkResult, error) {
	r.stats.checks.Add(1)
	r.metrics.checks.Inc()
	var res checkResult
	for range maxCheckAttempts {
		zn, err := r.readZK(ctx, c, path)
		if err != nil {
			return res, err
		}
		jn, inJournal, err := r.cfg.View.Get(ctx, path)
		if err != nil {
			return res, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
		}
		if zn != nil {
			if err := fillFromJournal(zn, jn); err != nil {
				return res, err
			}
			var why string
			if inJournal {
				diff := differingFields(zn, jn)
				if len(diff) == 0 {
					return res, nil
				}
				why = "differs: " + strings.Join(diff, ",")
			} else {
				why = "missing in the journal"
			}
			n, err := r.repairNode(ctx, c, zn, why)
			res.nodes += n
			return res, err
		}
		if !inJournal {
			res.absent = true
			return res, nil
		}
		deleted, again, err := r.repairDelete(ctx, c, path)
		if deleted {
			res.deletes++
		}
		if err != nil || !again {
			return res, err
		}
	}
	return res, fmt.Errorf("dualwrite: %s changed under each of %d checks", path, maxCheckAttempts)
}

// readZK reads a node's data, ACL and stat in one state (getData and getACL
// until both show the same czxid and aversion: the stat and data are
// getData's, and the ACL was the same then), or nil when it does not exist.
func (r *Reconciler) readZK(ctx context.Context, c *zkclient.Client, path string) (*znode.Node, error) {
	for range maxConsistentReads {
		data, ws, err := c.GetData(ctx, path)
		if zkwire.CodeOf(err) == zkwire.CodeNoNode {
			return nil, nil
		}
		if err != nil {
			return nil, zkReadError(path, err)
		}
		acl, as, err := c.GetACL(ctx, path)
		if zkwire.CodeOf(err) == zkwire.CodeNoNode {
			return nil, nil
		}
		if err != nil {
			return nil, zkReadError(path, err)
		}
		// Same incarnation and ACL version: the ACL was the node's when
		// getData read it (a setData or a child's change in between moves
		// only what getData's stat describes), so a hot node reads too.
		if ws.Czxid != as.Czxid || ws.Aversion != as.Aversion {
			continue
		}
		return &znode.Node{
			Path:        path,
			Data:        data,
			ACL:         acl,
			Stat:        znode.FromWire(ws, ws.EphemeralOwner),
			NumChildren: ws.NumChildren,
		}, nil
	}
	return nil, fmt.Errorf("dualwrite: zookeeper: %s changed on each of %d reads", path, maxConsistentReads)
}

// zkReadError wraps a read's error; NoAuth is ErrNodeUnreadable.
func zkReadError(path string, err error) error {
	if zkwire.CodeOf(err) == zkwire.CodeNoAuth {
		return fmt.Errorf("%w: %s: %w", ErrNodeUnreadable, path, err)
	}
	return fmt.Errorf("dualwrite: zookeeper: %w", err)
}

// fillFromJournal completes a node read through the client API with what the
// client API hides and the journal (jn, nil when it lacks the node) knows:
//
//   - Clients see ephemeralOwner 0 for containers and TTL nodes; when the
//     journal holds the same incarnation (czxid) with such a raw owner, it is
//     kept.
//   - Credentials with READ but without ADMIN on a node get its digest
//     identities masked (digest:user:x, exporter.IsMaskedACL): not the ACL.
//     When the journal holds the same incarnation at the same aversion with an
//     ACL that masks to the same list, that ACL is the one; otherwise the node
//     cannot be repaired with these credentials (exporter.ErrACLMasked).
func fillFromJournal(zn, jn *znode.Node) error {
	same := jn != nil && zn.Stat.Czxid == jn.Stat.Czxid
	if same && zn.Stat.EphemeralOwner == 0 {
		switch znode.EphemeralTypeOf(jn.Stat.EphemeralOwner, true) {
		case znode.Container, znode.TTL:
			zn.Stat.EphemeralOwner = jn.Stat.EphemeralOwner
		}
	}
	if exporter.IsMaskedACL(zn.ACL) {
		if !same || zn.Stat.Aversion != jn.Stat.Aversion || !znode.EqualACLs(exporter.MaskACL(jn.ACL), zn.ACL) {
			return fmt.Errorf("%w: %s: its ACL cannot be read (add credentials with ADMIN on it)", exporter.ErrACLMasked, zn.Path)
		}
		zn.ACL = jn.ACL
	}
	return nil
}

// differingFields names what differs between ZooKeeper's node and the
// journal's: data (nil against empty too), ACL and each persisted stat field.
// The child count is derived and not compared: a missing or extra child is
// the child's own difference, and shows in the parent's pzxid.
func differingFields(zn, jn *znode.Node) []string {
	var out []string
	switch {
	case (zn.Data == nil) != (jn.Data == nil):
		out = append(out, "nil-vs-empty")
	case string(zn.Data) != string(jn.Data):
		out = append(out, "data")
	}
	if !znode.EqualACLs(zn.ACL, jn.ACL) {
		out = append(out, "acl")
	}
	a, b := zn.Stat, jn.Stat
	for _, f := range []struct {
		name string
		diff bool
	}{
		{"czxid", a.Czxid != b.Czxid}, {"mzxid", a.Mzxid != b.Mzxid}, {"pzxid", a.Pzxid != b.Pzxid},
		{"ctime", a.Ctime != b.Ctime}, {"mtime", a.Mtime != b.Mtime}, {"version", a.Version != b.Version},
		{"cversion", a.Cversion != b.Cversion}, {"aversion", a.Aversion != b.Aversion},
		{"ephemeralOwner", a.EphemeralOwner != b.EphemeralOwner},
	} {
		if f.diff {
			out = append(out, f.name)
		}
	}
	return out
}

// repairNode imports zn, read from ZooKeeper, with the ancestors whose
// journal copy differs (up to the first the journal holds), parents first.
// It returns the number of nodes submitted.
func (r *Reconciler) repairNode(ctx context.Context, c *zkclient.Client, zn *znode.Node, why string) (int, error) {
	batch := []*znode.Node{zn}
	whys := []string{why}
	for p := znode.Parent(zn.Path); p != "" && !znode.IsSystemPath(p); p = znode.Parent(p) {
		pz, err := r.readZK(ctx, c, p)
		if err != nil {
			return 0, err
		}
		if pz == nil {
			break // gone meanwhile: its own event (or the next pass) deals with it
		}
		pj, inJournal, err := r.cfg.View.Get(ctx, p)
		if err != nil {
			return 0, fmt.Errorf("dualwrite: journal view: %s: %w", p, err)
		}
		if err := fillFromJournal(pz, pj); err != nil {
			return 0, err
		}
		pwhy := "parent of a repaired node, missing in the journal"
		if inJournal {
			diff := differingFields(pz, pj)
			if len(diff) == 0 {
				break
			}
			pwhy = "parent of a repaired node, differs: " + strings.Join(diff, ",")
		}
		batch = append(batch, pz)
		whys = append(whys, pwhy)
		if inJournal {
			break
		}
	}
	slices.Reverse(batch)
	slices.Reverse(whys)
	res, err := r.submit(ctx, &raftjournal.ImportBatch{Nodes: batch})
	if err != nil {
		return 0, err
	}
	for i, n := range batch {
		r.logger.Info("repaired node", "path", n.Path, "kind", "node", "why", whys[i],
			"czxid", fmt.Sprintf("%#x", n.Stat.Czxid), "mzxid", fmt.Sprintf("%#x", n.Stat.Mzxid), "changed", res.Changed)
	}
	if res.Changed == 0 {
		// The journal kept its own state: newer than what was read (the tap
		// got there first), or a divergence the merge does not resolve (same
		// versions, different contents), which verify reports.
		r.logger.Warn("repair changed nothing in the journal", "path", zn.Path, "why", why)
		// Not counted: nothing was repaired, and the repairs gate reads
		// a repair as a write around the proxies.
		return 0, nil
	}
	r.countRepairs("node", len(batch))
	return len(batch), nil
}

// repairDelete deletes path (or its highest ancestor missing in ZooKeeper)
// from the journal. again says ZooKeeper changed meanwhile and the check must
// read again.
func (r *Reconciler) repairDelete(ctx context.Context, c *zkclient.Client, path string) (deleted, again bool, err error) {
	target := path
	var parent znode.WireStat
	for {
		q := znode.Parent(target)
		if q == "" {
			return false, false, fmt.Errorf("dualwrite: zookeeper has no root node")
		}
		st, ok, err := c.Exists(ctx, q)
		if err != nil {
			return false, false, fmt.Errorf("dualwrite: zookeeper: %w", err)
		}
		if ok {
			parent = st
			break
		}
		target = q
	}
	// The parent's stat first, then the node's absence: every incarnation of
	// target created before the parent's pzxid is then dead.
	if _, ok, err := c.Exists(ctx, target); err != nil {
		return false, false, fmt.Errorf("dualwrite: zookeeper: %w", err)
	} else if ok {
		return false, true, nil
	}
	jn, inJournal, err := r.cfg.View.Get(ctx, target)
	if err != nil {
		return false, false, fmt.Errorf("dualwrite: journal view: %s: %w", target, err)
	}
	if !inJournal {
		return false, false, nil // deleted meanwhile (the tap, another check)
	}
	z := parent.Pzxid
	if jn.Stat.Czxid >= z {
		// Created after the parent was read, and gone since: read again.
		return false, true, nil
	}
	if z%digestLogInterval == 0 && jn.Stat.Czxid < z-1 {
		z-- // see the package comment: keep repairs out of the digest history
	}
	why := "absent in ZooKeeper"
	if target != path {
		why = "ancestor of " + path + " absent in ZooKeeper"
	}
	res, err := r.submit(ctx, &raftjournal.SourceTxn{Zxid: z, Ops: []raftjournal.SourceOp{{Kind: raftjournal.SourceDelete, Path: target}}})
	if err != nil {
		return false, false, err
	}
	r.logger.Info("repaired node", "path", target, "kind", "delete", "why", why,
		"zxid", fmt.Sprintf("%#x", z), "czxid", fmt.Sprintf("%#x", jn.Stat.Czxid), "changed", res.Changed)
	r.countRepairs("delete", 1)
	if q := znode.Parent(target); !znode.IsSystemPath(q) {
		if _, err := r.refresh(ctx, c, q, "parent of a deleted node"); err != nil {
			return true, false, err
		}
	}
	return true, false, nil
}

// refresh imports path from ZooKeeper when the journal's copy differs.
func (r *Reconciler) refresh(ctx context.Context, c *zkclient.Client, path, why string) (int, error) {
	zn, err := r.readZK(ctx, c, path)
	if err != nil || zn == nil {
		return 0, err
	}
	jn, inJournal, err := r.cfg.View.Get(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("dualwrite: journal view: %s: %w", path, err)
	}
	if err := fillFromJournal(zn, jn); err != nil {
		return 0, err
	}
	if inJournal {
		diff := differingFields(zn, jn)
		if len(diff) == 0 {
			return 0, nil
		}
		why += ", differs: " + strings.Join(diff, ",")
	} else {
		why += ", missing in the journal"
	}
	return r.repairNode(ctx, c, zn, why)
}

// submit sends a repair and turns a refusal into an error.
func (r *Reconciler) submit(ctx context.Context, cmd raftjournal.Command) (*raftjournal.Result, error) {
	res, err := r.cfg.Journal.Submit(ctx, raftjournal.Encode(cmd))
	if err != nil {
		return nil, fmt.Errorf("dualwrite: submitting a repair: %w", err)
	}
	if res.Err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRepairRefused, res.Err)
	}
	return res, nil
}

func (r *Reconciler) countRepairs(kind string, n int) {
	if kind == "node" {
		r.stats.nodeRepairs.Add(int64(n))
	} else {
		r.stats.deleteRepairs.Add(int64(n))
	}
	now := time.Now()
	r.stats.lastRepair.Store(now.UnixNano())
	r.metrics.repairs.WithLabelValues(kind).Add(float64(n))
	r.metrics.lastRepair.Set(float64(now.UnixNano()) / 1e9)
}
