package dualwrite

import (
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestJavaHostAddress(t *testing.T) {
	for _, tc := range []struct {
		ip, zone, want string
	}{
		{"127.0.0.1", "", "127.0.0.1"},
		{"::ffff:10.1.2.3", "", "10.1.2.3"},
		{"::1", "", "0:0:0:0:0:0:0:1"},
		{"fe80::1:ab", "eth0", "fe80:0:0:0:0:0:1:ab%eth0"},
		{"2001:db8::", "", "2001:db8:0:0:0:0:0:0"},
	} {
		if got := javaHostAddress(net.ParseIP(tc.ip), tc.zone); got != tc.want {
			t.Errorf("javaHostAddress(%s%%%s) = %s, want %s", tc.ip, tc.zone, got, tc.want)
		}
	}
}

// TestFixACLCertainty: an "auth" ACL is predicted when the identities are
// known whatever ZooKeeper's super user is, and marked for a read-back
// otherwise.
func TestFixACLCertainty(t *testing.T) {
	auth := []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}
	ip := znode.ID{Scheme: "ip", ID: "127.0.0.1"}
	ids := func(n int) identities {
		out := identities{added: []znode.ID{ip}}
		for i := range n {
			out.added = append(out.added, digestID(fmt.Appendf(nil, "user%d:pw", i)))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		ids      identities
		acl      []znode.ACL
		readBack bool
	}{
		{"no auth entry needs no identity", identities{unknown: true}, znode.WorldAnyone(), false},
		{"two digests", ids(2), auth, false},
		{"a SASL identity", identities{added: ids(2).added, unknown: true}, auth, true},
		{"only a SASL identity", identities{added: []znode.ID{ip}, unknown: true}, auth, true},
		// ip + 10 digests are 11 entries; the map resizes at 12, so whether
		// one of the digests is the super user's (one more entry, {super,
		// ""}) decides the order.
		{"at the resize threshold", ids(10), auth, true},
		{"past it", ids(40), auth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fixACL(tc.acl, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if rb := aclOwed(got); rb != tc.readBack {
				t.Fatalf("fixACL = %v: read-back %v, want %v", got, rb, tc.readBack)
			}
			if !tc.readBack && slices.ContainsFunc(got, func(a znode.ACL) bool { return a.ID.Scheme == "auth" }) {
				t.Fatalf("fixACL = %v keeps an auth entry", got)
			}
		})
	}
}
