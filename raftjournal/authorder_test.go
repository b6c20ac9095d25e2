package raftjournal

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// testDigestID is the digest identity of "user:password".
func testDigestID(cred string) znode.ID { return znode.ID{Scheme: "digest", ID: znode.DigestID(cred)} }

// TestFixupACL checks fixupACL against what a real ZooKeeper 3.8.0 (Debian's,
// OpenJDK 17) stored for the same requests, read back with getACL as super
// (recorded 2026-12-06; TestAuthOrderZooKeeper checks the order live).
func TestFixupACL(t *testing.T) {
	ip := znode.ID{Scheme: "ip", ID: "127.0.0.1"}
	zed, amy, bob := testDigestID("zed:1"), testDigestID("amy:2"), testDigestID("bob:3")
	super := testDigestID("super:pw")
	auth := func(perms znode.Perm) znode.ACL { return znode.ACL{Perms: perms, ID: znode.ID{Scheme: "auth"}} }
	acl := func(perms znode.Perm, id znode.ID) znode.ACL { return znode.ACL{Perms: perms, ID: id} }
	many := []znode.ID{ip}
	for i := range 40 {
		many = append(many, testDigestID(fmt.Sprintf("u%d:p", i)))
	}
	// The order ZooKeeper stored for u0…u39 added in that order.
	manyOrder := []int{3, 20, 5, 31, 28, 37, 33, 14, 8, 26, 0, 1, 36, 23, 35, 25, 29, 4, 39, 10, 27, 18, 17, 32, 7, 34, 11, 19, 9, 30, 38, 15, 2, 12, 13, 6, 21, 24, 16, 22}
	var manyWant []znode.ACL
	for _, i := range manyOrder {
		manyWant = append(manyWant, acl(31, many[i+1]))
	}
	for _, tc := range []struct {
		name string
		auth []znode.ID
		in   []znode.ACL
		want []znode.ACL // nil: InvalidACL
	}{
		{"zed then amy", []znode.ID{ip, zed, amy}, []znode.ACL{auth(31)}, []znode.ACL{acl(31, amy), acl(31, zed)}},
		{"amy then zed", []znode.ID{ip, amy, zed}, []znode.ACL{auth(31)}, []znode.ACL{acl(31, amy), acl(31, zed)}},
		{"ip not given", []znode.ID{zed, amy}, []znode.ACL{auth(31)}, []znode.ACL{acl(31, amy), acl(31, zed)}},
		{"duplicate after expansion kept", []znode.ID{ip, amy}, []znode.ACL{auth(31), acl(31, amy)}, []znode.ACL{acl(31, amy), acl(31, amy)}},
		{"duplicates before expansion dropped", []znode.ID{ip, amy}, []znode.ACL{auth(31), auth(31), auth(1)}, []znode.ACL{acl(31, amy), acl(1, amy)}},
		{"perms 64 stored", []znode.ID{ip, amy}, []znode.ACL{auth(64)}, []znode.ACL{acl(64, amy)}},
		{"perms -1 stored", []znode.ID{ip, amy}, []znode.ACL{auth(-1)}, []znode.ACL{acl(-1, amy)}},
		{"super skipped", []znode.ID{ip, {Scheme: "super"}, super, amy}, []znode.ACL{auth(31)}, []znode.ACL{acl(31, amy), acl(31, super)}},
		{"repeated addauth", []znode.ID{ip, amy, amy, bob}, []znode.ACL{auth(31)}, []znode.ACL{acl(31, amy), acl(31, bob)}},
		{"40 identities", many, []znode.ACL{auth(31)}, manyWant},
		{"world other than anyone", nil, []znode.ACL{acl(31, znode.ID{Scheme: "world", ID: "nobody"})}, nil},
		{"ip prefix too long", nil, []znode.ACL{acl(31, znode.ID{Scheme: "ip", ID: "1.2.3.4/40"})}, nil},
		{"auth with only ip", []znode.ID{ip}, []znode.ACL{auth(31)}, nil},
		{"empty", nil, nil, nil},
		{"digest trailing colon is two parts", nil, []znode.ACL{acl(31, znode.ID{Scheme: "digest", ID: "a:b:"})}, []znode.ACL{acl(31, znode.ID{Scheme: "digest", ID: "a:b:"})}},
		{"digest one part", nil, []znode.ACL{acl(31, znode.ID{Scheme: "digest", ID: "a:"})}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, code := FixupACL(tc.in, tc.auth)
			if tc.want == nil {
				if code != CodeInvalidACL {
					t.Fatalf("got %v %v, want InvalidACL", got, code)
				}
				return
			}
			if code != CodeOK || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v %v\nwant %v", got, code, tc.want)
			}
		})
	}
}

// collidingIDs returns n digest identities whose spread hashes agree in
// their low bits (mask), so that they share a bin of every table up to
// mask+1 bins: enough of them make ConcurrentHashMap presize its table and
// then treeify the bin.
func collidingIDs(prefix string, mask int32, n int) ([]znode.ID, []string) {
	var ids []znode.ID
	var creds []string
	for i := 0; len(ids) < n; i++ {
		cred := fmt.Sprintf("%s%d:pw", prefix, i)
		id := testDigestID(cred)
		if chmSpread(javaIDHash(id))&mask == 0 {
			ids = append(ids, id)
			creds = append(creds, cred)
		}
	}
	return ids, creds
}

// TestAuthOrderZooKeeper adds identities to a connection of a real ZooKeeper
// 3.8 and checks, after each step, that an "auth" ACL comes back in the order
// FixupACL predicts. The steps drive ZooKeeper's ConcurrentHashMap through
// each path of the model: plain bins, a bin of 9 that presizes the table,
// one of 10 at 128 bins that becomes a tree, tree insertions, and doublings
// that split lists (reversing their heads) and trees.
func TestAuthOrderZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ZooKeeper server")
	}
	ens := zktest.New(t, zktest.Options{Servers: 1})
	conn, events, err := zk.Connect(ens.Hosts(), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(30 * time.Second)
	for conn.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			t.Fatal("no ZooKeeper session")
		}
	}
	added := []znode.ID{{Scheme: "ip", ID: "127.0.0.1"}} // ZooKeeper adds the connection's address first
	addAuth := func(creds ...string) {
		t.Helper()
		for _, c := range creds {
			if err := conn.AddAuth("digest", []byte(c)); err != nil {
				t.Fatal(err)
			}
			added = append(added, testDigestID(c))
		}
	}
	step := 0
	check := func(what string) {
		t.Helper()
		step++
		path := fmt.Sprintf("/auth-order-%d", step)
		if _, err := conn.Create(path, nil, 0, []zk.ACL{{Perms: zk.PermAll, Scheme: "auth"}}); err != nil {
			t.Fatal(err)
		}
		got, _, err := conn.GetACL(path)
		if err != nil {
			t.Fatal(err)
		}
		want, code := FixupACL([]znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}, added)
		if code != CodeOK {
			t.Fatalf("%s: FixupACL: %v", what, code)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: ZooKeeper stored %d entries, FixupACL predicts %d", what, len(got), len(want))
		}
		for i := range got {
			if got[i].Scheme != want[i].ID.Scheme || got[i].ID != want[i].ID.ID || got[i].Perms != int32(want[i].Perms) {
				t.Fatalf("%s (%d identities): entry %d: ZooKeeper %v, FixupACL %v", what, len(added), i, got[i], want[i])
			}
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	addAuth("zed:1", "amy:2")
	check("two identities")
	_, coll := collidingIDs("c", 127, 16)
	addAuth(coll[:9]...)
	check("a bin of 9 presizes the table to 128")
	addAuth(coll[9])
	check("a bin of 10 at 128 bins becomes a tree")
	addAuth(coll[10:]...)
	check("tree insertions")
	addAuth(coll[3]) // an existing key deep in the tree: no change
	check("a repeat")
	for i := range 90 {
		addAuth(fmt.Sprintf("r%d-%d:pw", i, rng.IntN(1<<30)))
	}
	check("doublings to 256 bins split the tree")
	for i := range 120 {
		addAuth(fmt.Sprintf("s%d-%d:pw", i, rng.IntN(1<<30)))
	}
	check("more doublings")
}
