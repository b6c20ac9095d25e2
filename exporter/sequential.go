package exporter

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/znode"
)

// WalkOptions tune [SequentialWalk].
type WalkOptions struct {
	// SkipSystem leaves out /zookeeper and everything below it.
	SkipSystem bool
	// RawOwner, when set, supplies the raw ephemeralOwner for a node the caller
	// knows more about (a container or TTL node it created). It receives the
	// client-visible value and returns the raw one.
	RawOwner func(path string, clientOwner int64) int64
}

// SequentialWalk visits every node below root (root included) one request at a
// time: getData, getACL and getChildren2 per node, re-reading a node whose stat
// changed between the reads. A node deleted during the walk is skipped. fn may stop
// the walk by returning an error, which SequentialWalk returns.
//
// ACLs are passed on as ZooKeeper answers them: masked (digest:user:x) where the
// credentials lack ADMIN on the node. ClientDigest needs no ACL (ZooKeeper's
// digest does not cover ACLs); a caller that keeps ACLs checks IsMaskedACL.
func SequentialWalk(ctx context.Context, conn *zk.Conn, root string, opts WalkOptions, fn func(*znode.Node) error) error {
	if err := znode.ValidatePath(root); err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	stack := []string{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if opts.SkipSystem && znode.IsSystemPath(path) {
			continue
		}
		n, children, err := readNode(conn, path)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return fmt.Errorf("exporter: read %s: %w", path, err)
		}
		if opts.RawOwner != nil {
			n.Stat.EphemeralOwner = opts.RawOwner(path, n.Stat.EphemeralOwner)
		}
		if err := fn(n); err != nil {
			return err
		}
		// Push in reverse so that children come off the stack in sorted order.
		sort.Sort(sort.Reverse(sort.StringSlice(children)))
		for _, c := range children {
			stack = append(stack, znode.Join(path, c))
		}
	}
	return nil
}

// maxStatRetries bounds the re-reads of a node that keeps changing under the walk.
const maxStatRetries = 20

// readNode reads one node so that its data, ACL and children belong to the same
// state: the stats of the three replies must agree on mzxid, pzxid and aversion.
func readNode(conn *zk.Conn, path string) (*znode.Node, []string, error) {
	for range maxStatRetries {
		data, st, err := conn.Get(path)
		if err != nil {
			return nil, nil, err
		}
		acl, ast, err := conn.GetACL(path)
		if err != nil {
			return nil, nil, err
		}
		children, cst, err := conn.Children(path)
		if err != nil {
			return nil, nil, err
		}
		if !sameState(st, ast) || !sameState(st, cst) {
			continue
		}
		ws := WireStatFromZK(cst)
		return &znode.Node{
			Path:        path,
			Data:        data,
			ACL:         ACLFromZK(acl),
			Stat:        znode.FromWire(ws, ws.EphemeralOwner),
			NumChildren: ws.NumChildren,
		}, children, nil
	}
	return nil, nil, fmt.Errorf("exporter: %s changed on each of %d reads", path, maxStatRetries)
}

func sameState(a, b *zk.Stat) bool {
	return a.Czxid == b.Czxid && a.Mzxid == b.Mzxid && a.Pzxid == b.Pzxid && a.Aversion == b.Aversion
}

// WireStatFromZK converts go-zookeeper's Stat.
func WireStatFromZK(s *zk.Stat) znode.WireStat {
	return znode.WireStat{
		Czxid:          s.Czxid,
		Mzxid:          s.Mzxid,
		Ctime:          s.Ctime,
		Mtime:          s.Mtime,
		Version:        s.Version,
		Cversion:       s.Cversion,
		Aversion:       s.Aversion,
		EphemeralOwner: s.EphemeralOwner,
		DataLength:     s.DataLength,
		NumChildren:    s.NumChildren,
		Pzxid:          s.Pzxid,
	}
}

// ACLFromZK converts go-zookeeper's ACL list, keeping nil nil.
func ACLFromZK(acl []zk.ACL) []znode.ACL {
	if acl == nil {
		return nil
	}
	out := make([]znode.ACL, len(acl))
	for i, a := range acl {
		out[i] = znode.ACL{Perms: znode.Perm(a.Perms), ID: znode.ID{Scheme: a.Scheme, ID: a.ID}}
	}
	return out
}

// ACLToZK converts an ACL list for go-zookeeper.
func ACLToZK(acl []znode.ACL) []zk.ACL {
	if acl == nil {
		return nil
	}
	out := make([]zk.ACL, len(acl))
	for i, a := range acl {
		out[i] = zk.ACL{Perms: int32(a.Perms), Scheme: a.ID.Scheme, ID: a.ID.ID}
	}
	return out
}
