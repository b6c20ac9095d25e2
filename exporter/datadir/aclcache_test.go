package datadir

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// snapshotBytes encodes a plain ZooKeeper snapshot: an ACL cache and nodes
// (path, ACL index), zero stats and no data.
func snapshotBytes(acls map[int64][]znode.ACL, order []int64, nodes []struct {
	path string
	acl  int64
}) []byte {
	var b bytes.Buffer
	be := binary.BigEndian
	i32 := func(v int32) { b.Write(be.AppendUint32(nil, uint32(v))) }
	i64 := func(v int64) { b.Write(be.AppendUint64(nil, uint64(v))) }
	str := func(s string) { i32(int32(len(s))); b.WriteString(s) }
	i32(snapMagic)
	i32(snapVersion)
	i64(-1)
	i32(0)
	i32(int32(len(order)))
	for _, idx := range order {
		i64(idx)
		i32(int32(len(acls[idx])))
		for _, a := range acls[idx] {
			i32(int32(a.Perms))
			str(a.ID.Scheme)
			str(a.ID.ID)
		}
	}
	for _, n := range nodes {
		str(n.path)
		i32(-1)
		i64(n.acl)
		b.Write(make([]byte, statSize))
	}
	str("/")
	i64(int64(adler32.Checksum(b.Bytes())))
	str("/")
	return b.Bytes()
}

// TestFuzzySnapshotACL is the race a real ensemble showed: a fuzzy snapshot
// serializes the ACL cache first, then a node created meanwhile with a new
// ACL list, whose index the cache does not hold. Replaying the create (which
// finds the node) hands the list the same index, as ZooKeeper's own restart
// does, and resolves it.
func TestFuzzySnapshotACL(t *testing.T) {
	read := znode.ACL{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}
	digest := znode.ACL{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: "u:x"}}
	ip := znode.ACL{Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.0.0.1"}}
	snap := snapshotBytes(
		map[int64][]znode.ACL{1: {read}, 2: {digest}},
		[]int64{1, 2},
		[]struct {
			path string
			acl  int64
		}{{"", -1}, {"/zookeeper", -1}, {"/zookeeper/config", 1}, {"/a", 2}, {"/b", 3}},
	)
	tree := NewTree()
	if _, err := tree.ReadSnapshot(bytes.NewReader(snap), "snapshot.5", false, 0); err != nil {
		t.Fatal(err)
	}
	if p, idx, bad := tree.Unresolved(); !bad || p != "/b" || idx != 3 {
		t.Fatalf("Unresolved = %q %d %v, want /b 3", p, idx, bad)
	}
	if n := tree.Node("/b"); n.ACL != nil {
		t.Fatalf("/b's ACL %v before the replay", n.ACL)
	}
	// The replayed create of /b, which the snapshot already holds.
	tx := &Txn{Zxid: 6, Record: Record{Type: TxnCreate, Path: "/b", ACL: []znode.ACL{ip}, ParentCversion: 2}}
	res, err := tree.Apply(tx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skips) != 1 || res.Skips[0].Err != "NodeExists" {
		t.Fatalf("skips %+v, want the NodeExists", res.Skips)
	}
	if p, idx, bad := tree.Unresolved(); bad {
		t.Fatalf("still unresolved: %s %d", p, idx)
	}
	if n := tree.Node("/b"); len(n.ACL) != 1 || n.ACL[0] != ip {
		t.Fatalf("/b's ACL %v, want [%v]", n.ACL, ip)
	}
	// Reference counting: /a's list goes with the last node using it, and a
	// list seen again later gets a new index.
	if _, err := tree.Apply(&Txn{Zxid: 7, Record: Record{Type: TxnDelete, Path: "/a"}}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.acls.get(2); ok {
		t.Error("index 2 still in the cache after its last node was deleted")
	}
	if _, err := tree.Apply(&Txn{Zxid: 8, Record: Record{Type: TxnCreate, Path: "/c", ACL: []znode.ACL{digest}, ParentCversion: 3}}, false); err != nil {
		t.Fatal(err)
	}
	if n := tree.nodes["/c"]; n.acl != 4 {
		t.Errorf("/c got ACL index %d, want 4 (the next after 3)", n.acl)
	}
}
