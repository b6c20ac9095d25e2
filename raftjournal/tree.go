package raftjournal

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/zk2raft/zk2raft/znode"
)

// node is one visible znode. Its path is the key it is stored under and is not
// repeated here; the stat fields are ZooKeeper's StatPersisted, verbatim, laid out
// so that the struct is exactly 96 bytes (a Go size class) on 64-bit platforms.
// Data is never modified in place: a change replaces the slice, so readers and
// snapshots may share it.
type node struct {
	data     []byte
	czxid    int64
	mzxid    int64
	ctime    int64
	mtime    int64
	owner    int64 // raw ephemeralOwner
	pzxid    int64
	version  int32
	cversion int32 // persisted: child creates so far
	aversion int32
	acl      aclID
	kids     *kidSet // nil until the node has had a child
}

func (n *node) stat() znode.Stat {
	return znode.Stat{
		Czxid: n.czxid, Mzxid: n.mzxid, Ctime: n.ctime, Mtime: n.mtime,
		Version: n.version, Cversion: n.cversion, Aversion: n.aversion,
		EphemeralOwner: n.owner, Pzxid: n.pzxid,
	}
}

func (n *node) setStat(st *znode.Stat) {
	n.czxid, n.mzxid, n.ctime, n.mtime = st.Czxid, st.Mzxid, st.Ctime, st.Mtime
	n.version, n.cversion, n.aversion = st.Version, st.Cversion, st.Aversion
	n.owner, n.pzxid = st.EphemeralOwner, st.Pzxid
}

func (n *node) numChildren() int32 {
	if n.kids == nil {
		return 0
	}
	return int32(len(n.kids.names))
}

func (n *node) wireStat() znode.WireStat {
	return n.stat().Wire(int32(len(n.data)), n.numChildren())
}

// cvKey is the zxid as of which n.cversion is known (see "Child registers" in the
// package documentation): pinned in the child set once the node has one, else the
// node's pzxid, which is what a create or an imported stat implies.
func (n *node) cvKey() int64 {
	if n.kids != nil {
		return n.kids.cvZxid
	}
	return n.pzxid
}

// ensureKids allocates the child set, pinning the current cvKey.
func (n *node) ensureKids() *kidSet {
	if n.kids == nil {
		n.kids = &kidSet{cvZxid: n.pzxid}
	}
	return n.kids
}

// kidIndexThreshold is the child count above which a child set keeps a name →
// position index, making removal O(1) instead of a scan.
const kidIndexThreshold = 1024

// kidSet is a node's children: an unsorted slice of names (each a substring of the
// child's own path key, so names cost a string header and no bytes), plus an index
// map only for large sets. Readers sort a copy.
type kidSet struct {
	names  []string
	index  map[string]int32
	cvZxid int64
}

func (k *kidSet) add(name string) {
	if k.index != nil {
		k.index[name] = int32(len(k.names))
	}
	k.names = append(k.names, name)
	if k.index == nil && len(k.names) > kidIndexThreshold {
		k.index = make(map[string]int32, len(k.names)*2)
		for i, s := range k.names {
			k.index[s] = int32(i)
		}
	}
}

func (k *kidSet) remove(name string) bool {
	i := -1
	if k.index != nil {
		j, ok := k.index[name]
		if !ok {
			return false
		}
		i = int(j)
		delete(k.index, name)
	} else {
		i = slices.Index(k.names, name)
		if i < 0 {
			return false
		}
	}
	last := len(k.names) - 1
	if i != last {
		k.names[i] = k.names[last]
		if k.index != nil {
			k.index[k.names[i]] = int32(i)
		}
	}
	k.names[last] = ""
	k.names = k.names[:last]
	if cap(k.names) > 2*kidIndexThreshold && len(k.names) < cap(k.names)/4 {
		k.names = slices.Clip(slices.Clone(k.names))
	}
	if k.index != nil && len(k.names) <= kidIndexThreshold/2 {
		k.index = nil
	}
	return true
}

// tree is the replicated state's znode part: the visible tree, its digest and
// indexes, and the pending records and tombstones the mirror merge needs.
type tree struct {
	nodes  map[string]*node
	digest znode.Digest
	acls   *aclCache

	ephemerals map[int64]map[string]struct{} // raw owner → paths, NORMAL ephemerals only
	containers map[string]struct{}
	ttls       map[string]struct{}

	ghosts map[string]*ghost // pending records (source.go)
	tombs  map[string]tomb   // deletes seen from the source

	// events collects watch events while collect is set (there are watchers);
	// evZxid is the zxid they carry.
	events  []Event
	collect bool
	evZxid  int64

	scratch  []byte // nodeDigest's buffer
	sizedFor uint64 // the import size hint the node table was last sized for

	// rebased is the last rollback's window (rollback.go): nodes it lowered
	// to base, and ZooKeeper's zxids of the primary period that ended.
	rebased rebaseWindow
}

// The system nodes a fresh ZooKeeper 3.8 tree has (DataTree's constructor and
// addConfigNode). They are never deleted, and an observation of them only merges.
const (
	zookeeperPath = "/zookeeper"
	quotaPath     = "/zookeeper/quota"
	configPath    = "/zookeeper/config"
)

func isSystemNode(path string) bool {
	return path == "/" || path == zookeeperPath || path == quotaPath || path == configPath
}

func newTree() *tree {
	t := &tree{
		nodes:      make(map[string]*node),
		acls:       newACLCache(),
		ephemerals: make(map[int64]map[string]struct{}),
		containers: make(map[string]struct{}),
		ttls:       make(map[string]struct{}),
		ghosts:     make(map[string]*ghost),
		tombs:      make(map[string]tomb),
	}
	open := znode.WorldAnyone()
	for _, p := range []string{"/", zookeeperPath, quotaPath} {
		t.insertVisible(p, &node{data: []byte{}, acl: t.acls.acquire(open)})
	}
	// setACL(configZookeeper, READ_ACL_UNSAFE, -1) leaves aversion at -1.
	readOnly := []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	t.insertVisible(configPath, &node{data: []byte{}, acl: t.acls.acquire(readOnly), aversion: -1})
	t.events = t.events[:0]
	return t
}

// nodeDigest equals znode.NodeDigest(path, n.data, n.stat()) (a test checks it),
// computed as one CRC over the tree's scratch buffer when the node is small:
// three short updates miss the CRC's vectorized path and made digesting a quarter
// of an import's cost. Only the applier calls it (under the write lock).
func (t *tree) nodeDigest(path string, n *node) uint32 {
	const max = 4096
	if len(path)+len(n.data)+60 > max || strings.HasPrefix(path, "/zookeeper/") {
		return znode.NodeDigest(path, n.data, n.stat())
	}
	if path == "/" {
		path = ""
	}
	b := append(t.scratch[:0], path...)
	b = append(b, n.data...)
	be := binary.BigEndian
	b = be.AppendUint64(b, uint64(n.czxid))
	b = be.AppendUint64(b, uint64(n.mzxid))
	b = be.AppendUint64(b, uint64(n.pzxid))
	b = be.AppendUint64(b, uint64(n.ctime))
	b = be.AppendUint64(b, uint64(n.mtime))
	b = be.AppendUint32(b, uint32(n.version))
	b = be.AppendUint32(b, uint32(n.cversion))
	b = be.AppendUint32(b, uint32(n.aversion))
	b = be.AppendUint64(b, uint64(n.owner))
	t.scratch = b
	return crc32.ChecksumIEEE(b)
}

// pre and post bracket an in-place change of a visible node, keeping the digest.
func (t *tree) pre(path string, n *node)  { t.digest.Remove(t.nodeDigest(path, n)) }
func (t *tree) post(path string, n *node) { t.digest.Add(t.nodeDigest(path, n)) }

// insertVisible adds n at path under its visible parent, which the caller has
// checked exists.
func (t *tree) insertVisible(path string, n *node) {
	var parent *node
	if path != "/" {
		parent = t.nodes[znode.Parent(path)]
	}
	t.insertUnder(path, n, parent)
}

// insertUnder is insertVisible with the parent already looked up (nil for the
// root).
func (t *tree) insertUnder(path string, n, parent *node) {
	t.nodes[path] = n
	t.digest.Add(t.nodeDigest(path, n))
	if n.owner != 0 {
		t.track(path, n)
	}
	t.emit(EventNodeCreated, path)
	if parent != nil {
		i := strings.LastIndexByte(path, '/')
		parent.ensureKids().add(path[i+1:])
		if t.collect {
			t.emit(EventNodeChildrenChanged, znode.Parent(path))
		}
	}
}

// removeVisible takes n out of the visible tree. Its own child set is left as it
// is; callers deal with the children first or afterwards. The ACL reference is
// the caller's to release.
func (t *tree) removeVisible(path string, n *node) {
	delete(t.nodes, path)
	t.digest.Remove(t.nodeDigest(path, n))
	t.untrack(path, n)
	t.emit(EventNodeDeleted, path)
	parent := znode.Parent(path)
	if pn := t.nodes[parent]; pn != nil && pn.kids != nil {
		pn.kids.remove(znode.Base(path))
		t.emit(EventNodeChildrenChanged, parent)
	}
}

func (t *tree) track(path string, n *node) {
	switch znode.EphemeralTypeOf(n.owner, true) {
	case znode.Ephemeral:
		s := t.ephemerals[n.owner]
		if s == nil {
			s = make(map[string]struct{})
			t.ephemerals[n.owner] = s
		}
		s[path] = struct{}{}
	case znode.Container:
		t.containers[path] = struct{}{}
	case znode.TTL:
		t.ttls[path] = struct{}{}
	}
}

func (t *tree) untrack(path string, n *node) {
	switch znode.EphemeralTypeOf(n.owner, true) {
	case znode.Ephemeral:
		if s := t.ephemerals[n.owner]; s != nil {
			delete(s, path)
			if len(s) == 0 {
				delete(t.ephemerals, n.owner)
			}
		}
	case znode.Container:
		delete(t.containers, path)
	case znode.TTL:
		delete(t.ttls, path)
	}
}

func (t *tree) emit(typ EventType, path string) {
	if t.collect {
		t.events = append(t.events, Event{Type: typ, Path: path, Zxid: t.evZxid})
	}
}

// sortedChildren returns a visible node's child names in order.
func sortedChildren(n *node) []string {
	if n.kids == nil || len(n.kids.names) == 0 {
		return []string{}
	}
	out := slices.Clone(n.kids.names)
	slices.Sort(out)
	return out
}

// toZnode copies a visible node out as a znode.Node. Data is shared (never
// modified in place); the ACL list is the cache's, which is immutable.
func (t *tree) toZnode(path string, n *node) *znode.Node {
	return &znode.Node{
		Path:        path,
		Data:        n.data,
		ACL:         t.acls.get(n.acl),
		Stat:        n.stat(),
		NumChildren: n.numChildren(),
	}
}
