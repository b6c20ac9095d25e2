package datadir

import (
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/zk2raft/zk2raft/znode"
)

// Tree is ZooKeeper's DataTree rebuilt from a snapshot and replayed txns, with
// DataTree's own semantics, tolerance of re-applied txns included, so that
// its digest follows ZooKeeper's txn by txn.
//
// Like DataTree it is a map from path to node plus each node's set of child
// names: a replay over a fuzzy snapshot can, for a while, leave a node in the
// map that no parent lists (DataTree deletes a node without its children),
// and such nodes count in the digest as they do in ZooKeeper's. Walk visits
// what the parents list; Orphans counts the rest.
//
// A Tree is not safe for concurrent use.
type Tree struct {
	nodes      map[string]*node
	acls       aclCache
	sessions   map[int64]int32
	ephemerals map[int64]map[string]struct{}
	digest     znode.Digest
	zxid       int64 // the largest zxid applied (DataTree.lastProcessedZxid)
	extended   bool  // a TTL node or txn was seen

	// A snapshot's nodes are allocated in slabs, and their paths and data in
	// byte arenas, so that a million nodes cost a few thousand allocations
	// (and the collector a few thousand objects) instead of millions.
	slab  []node
	arena []byte
}

const (
	slabNodes  = 4096
	arenaBytes = 1 << 20
)

// newNode returns a zeroed node from the slab.
func (t *Tree) newNode() *node {
	if len(t.slab) == cap(t.slab) {
		t.slab = make([]node, 0, slabNodes)
	}
	t.slab = t.slab[:len(t.slab)+1]
	return &t.slab[len(t.slab)-1]
}

// emptyData is the non-nil empty data every empty node shares (nil and empty
// data differ; neither is ever written to).
var emptyData = []byte{}

// keep copies b into the arena; the copy is never written again. The copy of
// an empty slice is empty, never nil.
func (t *Tree) keep(b []byte) []byte {
	if len(b) == 0 {
		return emptyData
	}
	if len(b) > arenaBytes/4 {
		return append([]byte(nil), b...)
	}
	if cap(t.arena)-len(t.arena) < len(b) {
		t.arena = make([]byte, 0, arenaBytes)
	}
	start := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[start:len(t.arena):len(t.arena)]
}

// keepString copies b into the arena as a string.
func (t *Tree) keepString(b []byte) string {
	k := t.keep(b)
	if len(k) == 0 {
		return ""
	}
	return unsafe.String(&k[0], len(k))
}

type node struct {
	data []byte
	stat znode.Stat
	acl  int64  // ZooKeeper's index into the ACL cache (−1: world:anyone)
	dg   uint32 // the node's digest (NodeDigest), kept current
	// kids are the names the node lists as children, with the nodes: the
	// entries of the tree's map at those paths.
	kids map[string]*node
}

// NewTree returns an empty tree: no nodes, no sessions. LoadSnapshot fills it.
func NewTree() *Tree {
	t := &Tree{
		nodes:      make(map[string]*node),
		sessions:   make(map[int64]int32),
		ephemerals: make(map[int64]map[string]struct{}),
	}
	t.acls = newACLCache()
	return t
}

// structError is damage found in a snapshot's structure rather than its
// encoding (a node whose parent did not come first).
type structError struct{ msg string }

func (e *structError) Error() string        { return e.msg }
func (e *structError) Is(target error) bool { return target == ErrCorrupt }

// LoadSnapshot reads the snapshot f into t, which must be empty, and checks
// that every node's ACL index is in the snapshot's cache and every node's
// parent came before it.
func (t *Tree) LoadSnapshot(f SnapshotFile, maxLen int) (*SnapshotInfo, error) {
	rc, err := openSnapshotStream(f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	info, err := t.ReadSnapshot(rc, f.Path, f.Compression != CompressionNone, maxLen)
	if info != nil {
		info.File = f
	}
	if err == nil {
		t.zxid = f.Zxid
	}
	return info, err
}

// ReadSnapshot is LoadSnapshot from an uncompressed stream (see
// DecodeSnapshot); the tree's zxid is left for the caller to set.
func (t *Tree) ReadSnapshot(r io.Reader, name string, compressed bool, maxLen int) (*SnapshotInfo, error) {
	var lastParentPath string
	var lastParent *node
	v := &SnapshotVisitor{
		Session: func(id int64, to int32) error {
			t.sessions[id] = to
			return nil
		},
		ACL: func(idx int64, acl []znode.ACL) error {
			t.acls.load(idx, acl)
			return nil
		},
		Node: func(pb, db []byte, aclIdx int64, st znode.Stat) error {
			// An index the cache does not hold (yet) is resolved by the
			// replay, or reported by Unresolved: see aclCache.
			t.acls.addUsage(aclIdx)
			var p string
			var parent *node
			if len(pb) == 0 {
				p = "/"
			} else {
				if len(pb) < 2 || pb[0] != '/' || pb[len(pb)-1] == '/' {
					return &structError{fmt.Sprintf("node path %q is not absolute", pb)}
				}
				p = t.keepString(pb)
				// Siblings come one after the other, mostly: look the parent
				// up once for all of them.
				pp := znode.Parent(p)
				if pp == lastParentPath && lastParent != nil {
					parent = lastParent
				} else if parent = t.nodes[pp]; parent == nil {
					return &structError{fmt.Sprintf("node %q comes before its parent", p)}
				}
				lastParentPath, lastParent = pp, parent
			}
			n := t.newNode()
			n.stat, n.acl = st, aclIdx
			if db != nil {
				n.data = t.keep(db)
			}
			n.dg = znode.NodeDigest(p, n.data, n.stat)
			before := len(t.nodes)
			t.nodes[p] = n
			if len(t.nodes) == before {
				// ZooKeeper would overwrite it; a snapshot never repeats a path.
				return &structError{fmt.Sprintf("node %q appears twice", p)}
			}
			t.digest.Add(n.dg)
			if parent != nil {
				if parent.kids == nil {
					parent.kids = make(map[string]*node)
				}
				parent.kids[znode.Base(p)] = n
			}
			t.index(p, st.EphemeralOwner)
			return nil
		},
	}
	info, err := DecodeSnapshot(r, name, compressed, maxLen, v)
	if err != nil {
		return info, err
	}
	if t.nodes["/"] == nil {
		return info, &FileError{File: name, Offset: info.Bytes, Stream: compressed, Reason: "snapshot has no root node"}
	}
	t.acls.purgeUnused()
	return info, nil
}

// put adds n at p (replacing whatever was there, as NodeHashMap.put does)
// and accounts for it in the digest.
func (t *Tree) put(p string, n *node) {
	n.dg = znode.NodeDigest(p, n.data, n.stat)
	t.digest.Add(n.dg)
	if old := t.nodes[p]; old != nil {
		t.digest.Remove(old.dg)
	}
	t.nodes[p] = n
}

// preChange and postChange bracket a change to n, as NodeHashMap's do.
func (t *Tree) preChange(n *node) { t.digest.Remove(n.dg) }

func (t *Tree) postChange(p string, n *node) {
	n.dg = znode.NodeDigest(p, n.data, n.stat)
	t.digest.Add(n.dg)
}

// index records an ephemeral owner's node, as DataTree's ephemerals map does
// (keyed by the raw owner; containers and TTL nodes are never looked up by a
// session id, so they need no index of their own).
func (t *Tree) index(p string, owner int64) {
	switch znode.EphemeralTypeOf(owner, true) {
	case znode.Persistent, znode.Container:
		return
	case znode.TTL:
		t.extended = true
		return
	}
	set := t.ephemerals[owner]
	if set == nil {
		set = make(map[string]struct{})
		t.ephemerals[owner] = set
	}
	set[p] = struct{}{}
}

func (t *Tree) unindex(p string, owner int64) {
	if set := t.ephemerals[owner]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(t.ephemerals, owner)
		}
	}
}

// Digest returns the tree's digest: ZooKeeper's, over every node in the map.
func (t *Tree) Digest() znode.Digest { return t.digest }

// Zxid returns the largest zxid applied (the snapshot's, before any txn).
func (t *Tree) Zxid() int64 { return t.zxid }

// Len returns the number of nodes in the map (orphans included).
func (t *Tree) Len() int { return len(t.nodes) }

// Sessions returns the sessions and their timeouts (ms), as ZooKeeper would
// restore them: the snapshot's, plus createSession and minus closeSession
// txns since.
func (t *Tree) Sessions() map[int64]int32 { return t.sessions }

// ExtendedTypes reports whether the tree holds, or has held, a TTL node: the
// source ran with zookeeper.extendedTypesEnabled.
func (t *Tree) ExtendedTypes() bool { return t.extended }

// Node returns a copy of the node at path (nil if there is none): its data,
// ACL and persisted stat, and its child count.
func (t *Tree) Node(path string) *znode.Node {
	n := t.nodes[path]
	if n == nil {
		return nil
	}
	return t.view(path, n)
}

// view returns the node as a znode.Node; its ACL is nil if ZooKeeper's ACL
// cache does not hold the node's index (see Unresolved).
func (t *Tree) view(p string, n *node) *znode.Node {
	acl, _ := t.acls.get(n.acl)
	return &znode.Node{Path: p, Data: n.data, ACL: acl, Stat: n.stat, NumChildren: int32(len(n.kids))}
}

// Unresolved returns a node whose ACL index ZooKeeper's ACL cache does not
// hold, and the index: a fuzzy snapshot's node whose ACL was added while the
// snapshot was written, until the replay passes the txn that added it. A
// tree proven by a digest has none (ZooKeeper would fail reading that node's
// ACL); ok is false then.
func (t *Tree) Unresolved() (path string, idx int64, ok bool) {
	for p, n := range t.nodes {
		if _, found := t.acls.get(n.acl); !found {
			return p, n.acl, true
		}
	}
	return "", 0, false
}

// Walk calls fn with every node the root reaches, in canonical order
// (znode.ComparePaths: depth-first, parents first, siblings in byte order),
// below and including root. The nodes share data with the tree: fn must not
// modify them, and they are valid until the tree changes. skip, when not nil,
// leaves out a node and its subtree.
func (t *Tree) Walk(root string, skip func(path string) bool, fn func(*znode.Node) error) error {
	n := t.nodes[root]
	if n == nil {
		return nil
	}
	type frame struct {
		path  string
		node  *node
		names []string
	}
	if skip != nil && skip(root) {
		return nil
	}
	if err := fn(t.view(root, n)); err != nil {
		return err
	}
	stack := []frame{{root, n, sortedKids(n)}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if len(top.names) == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		name := top.names[0]
		top.names = top.names[1:]
		p := znode.Join(top.path, name)
		c := top.node.kids[name]
		if skip != nil && skip(p) {
			continue
		}
		if err := fn(t.view(p, c)); err != nil {
			return err
		}
		if len(c.kids) > 0 {
			stack = append(stack, frame{p, c, sortedKids(c)})
		}
	}
	return nil
}

func sortedKids(n *node) []string {
	if len(n.kids) == 0 {
		return nil
	}
	names := make([]string, 0, len(n.kids))
	for k := range n.kids {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Orphans counts the nodes in the map that the root does not reach through
// the parents' child lists (see Tree).
func (t *Tree) Orphans() int {
	reached := 0
	_ = t.Walk("/", nil, func(*znode.Node) error {
		reached++
		return nil
	})
	return len(t.nodes) - reached
}
