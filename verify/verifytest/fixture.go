// Package verifytest builds the deterministic trees and snapshot files that the
// verify tests, the command-line tests and the golden reports share.
package verifytest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// FixtureTime is the ctime of the fixture's first node; every later write is a
// second later. Fixed, so reports made from the fixture are deterministic.
var FixtureTime = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).UnixMilli()

// fixtureBuilder builds a consistent tree: zxids and times increase with each
// write, parents' persisted cversion, pzxid and child counts follow their
// children, as ZooKeeper keeps them.
type fixtureBuilder struct {
	zxid  int64
	nodes map[string]*znode.Node
	order []string
}

func newFixtureBuilder() *fixtureBuilder {
	b := &fixtureBuilder{zxid: 0x100000000, nodes: map[string]*znode.Node{}}
	b.nodes["/"] = &znode.Node{Path: "/", Data: []byte{}, ACL: znode.WorldAnyone()}
	b.order = append(b.order, "/")
	return b
}

func (b *fixtureBuilder) tick() (int64, int64) {
	b.zxid++
	return b.zxid, FixtureTime + (b.zxid-0x100000000)*1000
}

func (b *fixtureBuilder) create(path string, data []byte, acl []znode.ACL, owner int64) *znode.Node {
	z, t := b.tick()
	if acl == nil {
		acl = znode.WorldAnyone()
	}
	n := &znode.Node{Path: path, Data: data, ACL: acl, Stat: znode.Stat{
		Czxid: z, Mzxid: z, Pzxid: z, Ctime: t, Mtime: t, EphemeralOwner: owner,
	}}
	p := b.nodes[znode.Parent(path)]
	p.Stat.Cversion++
	p.Stat.Pzxid = z
	p.NumChildren++
	b.nodes[path] = n
	b.order = append(b.order, path)
	return n
}

func (b *fixtureBuilder) setData(path string, data []byte) {
	z, t := b.tick()
	n := b.nodes[path]
	n.Data, n.Stat.Mzxid, n.Stat.Mtime = data, z, t
	n.Stat.Version++
}

func (b *fixtureBuilder) setACL(path string, acl []znode.ACL) {
	b.tick()
	n := b.nodes[path]
	n.ACL = acl
	n.Stat.Aversion++
}

func (b *fixtureBuilder) delete(path string) {
	z, _ := b.tick()
	delete(b.nodes, path)
	p := b.nodes[znode.Parent(path)]
	p.Stat.Pzxid = z
	p.NumChildren--
}

// list returns deep copies of the nodes in canonical order.
func (b *fixtureBuilder) list() []*znode.Node {
	var out []*znode.Node
	for _, p := range b.order {
		if n, ok := b.nodes[p]; ok {
			out = append(out, n.Clone())
		}
	}
	SortNodes(out)
	return out
}

// Tree is a small tree with one of each thing a comparison must tell
// apart: nil, empty, binary and text data, ACL variants, ephemeral, container
// and TTL owners, sequential children after deletes, unicode names, and
// sibling names ("app", "app-1", "app.d") whose canonical order differs from
// plain string order.
func Tree() []*znode.Node {
	b := newFixtureBuilder()
	digestID := znode.ID{Scheme: "digest", ID: "ops:UY6ZNAHWNxq8GDS8hLhfUrW6FS0="}
	b.create("/app", []byte(`{"name":"app","replicas":3}`), nil, 0)
	b.create("/app/config", []byte("timeout=30s\nretries=5\n"), nil, 0)
	b.create("/app/config/nil", nil, nil, 0)
	b.create("/app/config/empty", []byte{}, nil, 0)
	b.create("/app/config/binary", []byte{0x00, 0x01, 0xfe, 0xff, 0x80, 0x7f}, nil, 0)
	b.create("/app/locks", nil, nil, znode.ContainerOwner)
	b.create("/app/locks/lock-0000000000", []byte("holder-a"), nil, 0x1000000a0b0001)
	ttl, _ := znode.TTLOwner(3_600_000)
	b.create("/app/leases", []byte("lease"), nil, ttl)
	b.create("/app-1", []byte("sibling with a dash"), nil, 0)
	b.create("/app-1/x", []byte("x"), nil, 0)
	b.create("/app.d", nil, nil, 0)
	b.create("/app.d/readme", []byte("dot sibling"), nil, 0)
	b.create("/queue", nil, nil, 0)
	for i := range 6 {
		b.create(znode.SequentialName("/queue/item-", int32(i)), []byte(fmt.Sprintf("job %d", i)), nil, 0)
	}
	b.delete("/queue/item-0000000001")
	b.delete("/queue/item-0000000003")
	b.create("/secure", []byte("s3cret"), []znode.ACL{
		{Perms: znode.PermAll, ID: digestID},
		{Perms: znode.PermRead, ID: znode.ID{Scheme: "ip", ID: "10.0.0.0/8"}},
	}, 0)
	b.setACL("/secure", []znode.ACL{{Perms: znode.PermAll, ID: digestID}})
	b.create("/unicode", nil, nil, 0)
	b.create("/unicode/配置", []byte("中文数据"), nil, 0)
	b.create("/unicode/café", []byte("precomposed"), nil, 0)
	b.create("/unicode/cafe\u0301", []byte("combining"), nil, 0)
	b.setData("/app/config", []byte("timeout=45s\nretries=5\n"))
	b.setData("/app/config", []byte("timeout=60s\nretries=5\n"))
	return b.list()
}

// Header is the header of the fixture's snapshots.
func Header(source string) znode.SnapshotHeader {
	return znode.SnapshotHeader{
		Source:        source,
		CreatedAt:     time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
		ToolVersion:   "test",
		Filters:       znode.SnapshotFilters{Path: "/", Exclude: []string{"/zookeeper"}, Ephemerals: "include"},
		Kind:          znode.SnapshotKindExport,
		ExtendedTypes: true,
	}
}

// WriteSnapshot writes nodes, in the order given, as a snapshot file. A zero
// h.StartZxid becomes the largest zxid of the nodes: an exact snapshot.
func WriteSnapshot(t testing.TB, path string, h znode.SnapshotHeader, nodes []*znode.Node) string {
	t.Helper()
	if h.StartZxid == 0 {
		for _, n := range nodes {
			h.StartZxid = max(h.StartZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
		}
	}
	f, err := znode.CreateSnapshotFile(path, h, znode.SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	for _, n := range nodes {
		if err := f.WriteNode(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

// CloneNodes deep-copies a node list.
func CloneNodes(nodes []*znode.Node) []*znode.Node {
	out := make([]*znode.Node, len(nodes))
	for i, n := range nodes {
		out[i] = n.Clone()
	}
	return out
}

// FindNode returns the node at path.
func FindNode(t testing.TB, nodes []*znode.Node, path string) *znode.Node {
	t.Helper()
	for _, n := range nodes {
		if n.Path == path {
			return n
		}
	}
	t.Fatalf("fixture has no %s", path)
	return nil
}

// SortNodes sorts nodes into canonical order (znode.ComparePaths).
func SortNodes(nodes []*znode.Node) {
	slices.SortFunc(nodes, func(a, b *znode.Node) int { return znode.ComparePaths(a.Path, b.Path) })
}

// LargeOptions shape a large synthetic tree.
type LargeOptions struct {
	Nodes    int // total, the root included
	Fanout   int // children per top-level node; 0 means 1000
	DataSize int // bytes of data per leaf
}

// WriteLarge writes a synthetic tree of about opts.Nodes nodes straight to a
// snapshot file, in canonical order, without holding it in memory: the root,
// top-level nodes /dNNNNNN and their leaves /dNNNNNN/nNNNNNN. It returns the
// file's trailer.
func WriteLarge(t testing.TB, path string, opts LargeOptions) znode.SnapshotTrailer {
	t.Helper()
	if opts.Fanout == 0 {
		opts.Fanout = 1000
	}
	h := Header("synthetic")
	f, err := znode.CreateSnapshotFile(path, h, znode.SnapshotWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	zxid := int64(0x100000000)
	data := make([]byte, opts.DataSize)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	tops := (opts.Nodes - 1 + opts.Fanout) / (opts.Fanout + 1)
	write := func(n *znode.Node) {
		if err := f.WriteNode(n); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(z int64) znode.Stat {
		return znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: FixtureTime + z&0xffffff, Mtime: FixtureTime + z&0xffffff}
	}
	acl := znode.WorldAnyone()
	write(&znode.Node{Path: "/", Data: []byte{}, ACL: acl, Stat: znode.Stat{Cversion: int32(tops), Pzxid: zxid + int64(opts.Nodes)}, NumChildren: int32(tops)})
	left := opts.Nodes - 1
	for d := 0; d < tops && left > 0; d++ {
		left--
		kids := min(opts.Fanout, left)
		left -= kids
		zxid++
		top := &znode.Node{Path: fmt.Sprintf("/d%06d", d), ACL: acl, Stat: stat(zxid), NumChildren: int32(kids)}
		top.Stat.Cversion = int32(kids)
		top.Stat.Pzxid = zxid + int64(kids)
		write(top)
		for k := range kids {
			zxid++
			write(&znode.Node{Path: fmt.Sprintf("/d%06d/n%06d", d, k), Data: data, ACL: acl, Stat: stat(zxid)})
		}
	}
	f.ObserveZxid(zxid + 1)
	tr, err := f.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
