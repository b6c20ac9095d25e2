package importer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"path"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// A migration into a journal that already held nodes (a rerun after an
// interrupted run, or a journal the mirror has been filling) merges the walk
// into what is there: the merge brings every node the walk read up to date,
// but cannot know of the nodes ZooKeeper deleted since they reached the
// journal. The sweep finds them: the journal's nodes in the migrated scope
// that the walk did not read. Each is checked against ZooKeeper as it is
// now, and deleted from the journal only if ZooKeeper has no such node, by a
// mirrored delete at the zxid of its parent's last child change (pzxid),
// which removes only incarnations created before it: a node created again
// since is kept. This is the reconciler's repairDelete, which importer
// cannot import (dualwrite sits above it).

// walkedPaths is an exporter.Sink recording which paths the walk wrote, as
// 64-bit hashes (8 bytes a node). Two paths sharing a hash would make the
// sweep keep a node ZooKeeper deleted; the final comparison would then find
// it and the migration would not say "verified".
type walkedPaths struct {
	seed maphash.Seed
	set  map[uint64]struct{}
}

func newWalkedPaths() *walkedPaths {
	return &walkedPaths{seed: maphash.MakeSeed(), set: make(map[uint64]struct{})}
}

func (w *walkedPaths) WriteNode(n *znode.Node) error {
	w.set[maphash.String(w.seed, n.Path)] = struct{}{}
	return nil
}

func (w *walkedPaths) ObserveZxid(int64) {}

func (w *walkedPaths) has(p string) bool {
	_, ok := w.set[maphash.String(w.seed, p)]
	return ok
}

// sweepResult is what a sweep did and what the journal's scope holds after.
type sweepResult struct {
	Extra   int // journal nodes in scope the walk did not read
	Deleted int // deletes submitted (a subtree counts once)
	Kept    int // extra nodes ZooKeeper still has (created since the walk read their parent)
	// Nodes and Digest are the journal's scope after the sweep, filtered as
	// the walk filters (exclusions, /zookeeper, skipped ephemerals).
	Nodes  int64
	Digest znode.Digest
}

// inScope reports whether the journal node at p is one the walk would have
// read: under root, not in /zookeeper, not excluded (a pattern matches it or
// an ancestor below root).
func inScope(cfg exporter.Config, p string) bool {
	if znode.IsSystemPath(p) {
		return false
	}
	root := cfg.Root
	for q := p; q != "" && (q == root || len(q) > len(root)); q = znode.Parent(q) {
		for _, pat := range cfg.Exclude {
			if ok, _ := path.Match(pat, q); ok {
				return false
			}
		}
		if q == root {
			break
		}
	}
	return true
}

// scopeState walks the journal's subtree at the walk's root and returns the
// nodes in scope, their count and digest, and calls extra with each one the
// walk did not read.
func scopeState(ctx context.Context, admin *raftjournal.AdminClient, cfg exporter.Config, walked *walkedPaths, extra func(*znode.Node)) (int64, znode.Digest, error) {
	var nodes int64
	var d znode.Digest
	err := admin.WalkTree(ctx, cfg.Root, true, func(n *znode.Node) error {
		if !inScope(cfg, n.Path) {
			return nil
		}
		if cfg.Ephemerals == exporter.EphemeralsSkip && n.Stat.EphemeralOwner != 0 {
			return nil
		}
		nodes++
		d.Add(znode.NodeDigest(n.Path, n.Data, n.Stat))
		if extra != nil && !walked.has(n.Path) {
			extra(n)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("importer: reading the journal's %s to find the nodes ZooKeeper deleted (give ZooKeeper credentials that read the whole scope, or super): %w", cfg.Root, err)
	}
	return nodes, d, nil
}

// sweep deletes from the journal the nodes in the migrated scope that the
// walk did not read and ZooKeeper no longer has.
func sweep(ctx context.Context, j Journal, admin *raftjournal.AdminClient, cfg exporter.Config, walked *walkedPaths, src migrateSource, logger *slog.Logger) (*sweepResult, error) {
	res := &sweepResult{}
	var extras []*znode.Node
	nodes, digest, err := scopeState(ctx, admin, cfg, walked, func(n *znode.Node) { extras = append(extras, n) })
	if err != nil {
		return nil, err
	}
	res.Nodes, res.Digest, res.Extra = nodes, digest, len(extras)
	if len(extras) == 0 {
		return res, nil
	}
	exists, closeExists, err := src.Exists(ctx, logger)
	if err != nil {
		return nil, fmt.Errorf("importer: sweep: %w", err)
	}
	defer closeExists()
	var gone string // the last subtree deleted: its nodes are gone with it
	for _, n := range extras {
		if gone != "" && (n.Path == gone || len(n.Path) > len(gone) && n.Path[:len(gone)] == gone && n.Path[len(gone)] == '/') {
			continue
		}
		target, deleted, err := sweepOne(ctx, exists, j, cfg.Root, n, logger)
		if err != nil {
			return nil, err
		}
		if deleted {
			res.Deleted++
			gone = target
		} else {
			res.Kept++
		}
	}
	if res.Deleted > 0 {
		if res.Nodes, res.Digest, err = scopeState(ctx, admin, cfg, walked, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// sweepOne deletes n (or its highest ancestor below root that ZooKeeper no
// longer has) from the journal when ZooKeeper has no such node. It returns
// the path deleted.
func sweepOne(ctx context.Context, exists func(string) (int64, bool, error), j Journal, root string, n *znode.Node, logger *slog.Logger) (string, bool, error) {
	target := n.Path
	var pzxid int64
	for {
		q := znode.Parent(target)
		if q == "" {
			return "", false, errors.New("importer: sweep: zookeeper has no root node")
		}
		pz, ok, err := exists(q)
		if err != nil {
			return "", false, fmt.Errorf("importer: sweep: %w", err)
		}
		if ok || q == root || len(q) < len(root) {
			if !ok {
				return "", false, nil // the migrated root itself is gone: not the sweep's to decide
			}
			pzxid = pz
			break
		}
		target = q
	}
	// The parent's stat first, then the node's absence: every incarnation of
	// target created before the parent's pzxid is then dead.
	if _, ok, err := exists(target); err != nil {
		return "", false, fmt.Errorf("importer: sweep: %w", err)
	} else if ok {
		return "", false, nil // created since the walk read its parent
	}
	czxid := n.Stat.Czxid
	if target != n.Path {
		czxid = 0 // an ancestor: the tomb at the parent's pzxid kills what is older
	}
	z := pzxid
	if czxid >= z {
		return "", false, nil
	}
	if z%128 == 0 && czxid < z-1 {
		z-- // ZooKeeper logs its digest at multiples of 128: keep repairs out of the journal's digest history there
	}
	res, err := j.Submit(ctx, raftjournal.Encode(&raftjournal.SourceTxn{Zxid: z, Ops: []raftjournal.SourceOp{{Kind: raftjournal.SourceDelete, Path: target}}}))
	if err != nil {
		return "", false, fmt.Errorf("importer: sweep: deleting %s: %w", target, err)
	}
	if res.Err != nil {
		return "", false, fmt.Errorf("%w: deleting %s: %w", ErrRefused, target, res.Err)
	}
	logger.Info("swept a node ZooKeeper no longer has", "path", target, "zxid", fmt.Sprintf("%#x", z), "changed", res.Changed)
	return target, true, nil
}

// authStrings renders ZooKeeper credentials as SCHEME:CRED, the form the
// admin port's tree reads take them in.
func authStrings(auth []zkclient.Auth) []string {
	var out []string
	for _, a := range auth {
		out = append(out, a.Scheme+":"+string(a.Cred))
	}
	return out
}
