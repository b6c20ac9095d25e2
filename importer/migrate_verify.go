package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// zookeeperDigestCheck compares the journal's digest with ZooKeeper's own
// (the hash four-letter word, logged at zxids that are multiples of 128).
// That is possible when the walk saw no change and ZooKeeper logged a digest
// at a zxid Z with nodeMax <= Z <= the walk's start zxid, where nodeMax is the
// newest zxid in any node's stat: every change to the tree (create, delete,
// setData) leaves its zxid in some node's stat, so the tree at Z is the tree
// the walk read. (setACL leaves none, but ACLs are not part of the digest;
// session txns take zxids without touching the tree.)
func zookeeperDigestCheck(ctx context.Context, ws *exporter.Summary, cfg exporter.Config, nodeMax int64, journal string) Check {
	c := Check{Check: CheckZooKeeperDigest, Result: NotComparable}
	// Nodes copied with a masked ACL do not stop it: the digest leaves ACLs out.
	switch {
	case cfg.Root != "/" || len(cfg.Exclude) > 0 || cfg.Ephemerals != exporter.EphemeralsInclude || ws.Unreadable > ws.ACLMasked:
		c.Detail = "the migration did not copy the whole tree"
		return c
	case ws.Changed > 0 || ws.Deleted > 0:
		c.Detail = fmt.Sprintf("writes landed during the walk (zxid %#x..%#x); the journal holds a fuzzy copy that the mirror stream completes", ws.StartZxid, ws.MaxZxid)
		return c
	}
	out, err := zkclient.FourLetterWord(ctx, cfg.Hosts[0], "hash")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	entries, err := zkclient.ParseDigestLog(out)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Zxid < nodeMax || e.Zxid > ws.StartZxid {
			continue
		}
		c.Detail = fmt.Sprintf("ZooKeeper's digest at zxid %#x (its tree as the walk read it: no change between the newest node zxid and the walk, none during it) is %v, the journal's %s; writes after the walk are the mirror's to bring",
			e.Zxid, e.Digest, journal)
		if e.Digest.String() == journal {
			c.Result = Equal
		} else {
			c.Result = Different
			c.Detail += " (expected when the tree holds container or TTL nodes, which the client API shows as persistent; otherwise a real difference: run with --verify full)"
		}
		return c
	}
	c.Detail = fmt.Sprintf("ZooKeeper logs its digest only at zxids that are multiples of 128, and none lies between the tree's last change (zxid %#x) and the walk's start (%#x)", nodeMax, ws.StartZxid)
	return c
}

// fullVerify compares the source (the kept snapshot, or the live ensemble)
// with the journal node by node. The journal side is the built state, which
// the installed snapshot was just read back against; it is streamed in the
// canonical order verify needs (FSM snapshots are in plain byte order).
func fullVerify(ctx context.Context, cfg exporter.Config, uri, kept string, built *Built, installed string, logger *slog.Logger) (*verify.Report, error) {
	var src verify.Source
	var err error
	if kept != "" {
		src, err = verify.OpenSnapshot(kept)
	} else {
		src, err = verify.Open(ctx, uri, verify.OpenOptions{Auth: cfg.Auth, Logger: logger})
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var nodes []*znode.Node
	if err := built.FSM.Walk(func(n *znode.Node) error {
		nodes = append(nodes, n)
		return nil
	}); err != nil {
		return nil, err
	}
	tgt := verify.MemorySource(verify.Info{
		URI: "journal snapshot " + installed, Scheme: "journal", Description: "the migrated journal",
		RawOwners: true, ExtendedTypes: true, Root: "/", Exclude: []string{"/zookeeper"},
	}, nodes, nil)
	defer tgt.Close()
	vc := verify.DefaultConfig()
	vc.Path, vc.Exclude, vc.Logger = cfg.Root, cfg.Exclude, logger
	return verify.Compare(ctx, src, tgt, vc)
}

// verifySourceURI is the migration's source as verify names it: the live
// ensemble (zk://HOSTS[/ROOT]) or the data directory pinned at the exported
// zxid (datadir://DIR?zxid=Z).
func verifySourceURI(cfg exporter.Config, dd *dataDirSource) string {
	if dd != nil {
		return dd.verifyURI()
	}
	uri := "zk://" + strings.Join(cfg.Hosts, ",")
	if cfg.Root != "/" {
		uri += cfg.Root
	}
	return uri
}

// listQuotas returns the paths that have a quota under /zookeeper/quota.
func listQuotas(ctx context.Context, cfg exporter.Config, logger *slog.Logger) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := exporter.Connect(cctx, cfg.Hosts, exporter.ConnectOptions{Auth: cfg.Auth, Logger: logger})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []string
	err = exporter.SequentialWalk(cctx, conn, "/zookeeper/quota", exporter.WalkOptions{}, func(n *znode.Node) error {
		if strings.HasSuffix(n.Path, "/zookeeper_limits") {
			out = append(out, strings.TrimPrefix(strings.TrimSuffix(n.Path, "/zookeeper_limits"), "/zookeeper/quota"))
		}
		return nil
	})
	if errors.Is(err, zk.ErrNoNode) {
		err = nil
	}
	return out, err
}
