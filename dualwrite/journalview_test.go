package dualwrite

import (
	"errors"
	"testing"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// TestJournalViewNodeAndRemoteAgree reads one journal through NodeView and
// RemoteView and checks that both return exactly the FSM's nodes (nil and
// empty data, raw container and TTL owners, digest ACLs), walk subtrees in
// canonical order, and report the same digests.
func TestJournalViewNodeAndRemoteAgree(t *testing.T) {
	n := journalNode(t)
	ctx := t.Context()
	ttl, err := znode.TTLOwner(60_000)
	if err != nil {
		t.Fatal(err)
	}
	st := func(czxid, owner int64) znode.Stat {
		return znode.Stat{Czxid: czxid, Mzxid: czxid, Pzxid: czxid, Ctime: 1000 + czxid, Mtime: 1000 + czxid, EphemeralOwner: owner}
	}
	digestACL := []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY="}}}
	nodes := []*znode.Node{
		{Path: "/v", ACL: znode.WorldAnyone(), Stat: st(0x20, 0)},
		{Path: "/v/empty", Data: []byte{}, ACL: digestACL, Stat: st(0x21, 0)},
		{Path: "/v/empty/deep", Data: []byte("d"), ACL: znode.WorldAnyone(), Stat: st(0x22, 0)},
		{Path: "/v/container", Data: []byte("c"), ACL: znode.WorldAnyone(), Stat: st(0x23, znode.ContainerOwner)},
		{Path: "/v/ttl", Data: []byte("t"), ACL: znode.WorldAnyone(), Stat: st(0x24, ttl)},
		{Path: "/v-w", Data: []byte("sibling"), ACL: znode.WorldAnyone(), Stat: st(0x25, 0)},
	}
	if res, err := n.ImportBatch(ctx, &raftjournal.ImportBatch{Nodes: nodes}); err != nil || res.Err != nil {
		t.Fatalf("import: %v %v", err, res)
	}
	set := &raftjournal.SourceTxn{Zxid: 0x80, Ops: []raftjournal.SourceOp{{Kind: raftjournal.SourceSetData, Path: "/v-w",
		Data: []byte("v2"), Stat: znode.Stat{Czxid: 0x25, Mzxid: 0x80, Pzxid: 0x25, Ctime: 1037, Mtime: 1128, Version: 1}}}}
	if res, err := n.Submit(ctx, set); err != nil || res.Err != nil {
		t.Fatalf("source txn: %v %v", err, res)
	}

	// The remote view reads with the credentials /v/empty's ACL names: the
	// node enforces it.
	views := map[string]JournalView{"node": NodeView(n), "remote": RemoteView(remoteAdmin(n).WithZooKeeperAuth([]string{"digest:user:password"}))}
	for name, v := range views {
		t.Run(name, func(t *testing.T) {
			for _, p := range []string{"/", "/zookeeper", "/v", "/v/empty", "/v/empty/deep", "/v/container", "/v/ttl", "/v-w"} {
				got, ok, err := v.Get(ctx, p)
				want, _ := n.FSM().Node(p)
				if err != nil || !ok || !got.Equal(want) || (got.Data == nil) != (want.Data == nil) {
					t.Errorf("Get %s: %+v %v %v, want %+v", p, got, ok, err, want)
				}
			}
			if got, ok, err := v.Get(ctx, "/v/missing"); err != nil || ok || got != nil {
				t.Errorf("Get of a missing node: %v %v %v", got, ok, err)
			}
			for _, root := range []string{"/", "/v", "/v/empty", "/v-w", "/missing"} {
				var want []*znode.Node
				if err := n.FSM().Walk(func(zn *znode.Node) error {
					if underRoot(zn.Path, root) {
						want = append(want, zn)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				var got []*znode.Node
				if err := v.Walk(ctx, root, func(zn *znode.Node) error { got = append(got, zn); return nil }); err != nil {
					t.Fatalf("Walk %s: %v", root, err)
				}
				if len(got) != len(want) {
					t.Fatalf("Walk %s: %d nodes, want %d", root, len(got), len(want))
				}
				for i := range got {
					if !got[i].Equal(want[i]) {
						t.Errorf("Walk %s node %d: %+v, want %+v", root, i, got[i], want[i])
					}
					if i > 0 && znode.ComparePaths(got[i-1].Path, got[i].Path) >= 0 {
						t.Errorf("Walk %s: %s after %s", root, got[i].Path, got[i-1].Path)
					}
				}
			}
			stop := errors.New("stop")
			if err := v.Walk(ctx, "/", func(*znode.Node) error { return stop }); !errors.Is(err, stop) {
				t.Errorf("Walk stopped by fn: %v", err)
			}
			hist, err := v.DigestHistory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := n.FSM().DigestHistory()
			if len(hist) == 0 || len(hist) != len(want) || hist[len(hist)-1] != want[len(want)-1] {
				t.Errorf("DigestHistory %v, want %v", hist, want)
			}
			last, err := v.LastSourceZxid(ctx)
			if err != nil || last != n.FSM().Status().MaxSourceZxid || last != 0x80 {
				t.Errorf("LastSourceZxid %#x %v, want 0x80", last, err)
			}
			d, z, err := v.(JournalDigester).CurrentDigest(ctx)
			if err != nil || d != n.Digest() || z != 0x80 {
				t.Errorf("CurrentDigest %v at %#x (%v), want %v at 0x80", d, z, err, n.Digest())
			}
		})
	}
}
