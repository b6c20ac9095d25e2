package raftjournal

import (
	"bytes"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestPermits(t *testing.T) {
	digest := znode.ID{Scheme: "digest", ID: "alice:abc="}
	acl := []znode.ACL{{Perms: znode.PermRead | znode.PermAdmin, ID: digest}, {Perms: znode.PermAll, ID: znode.ID{Scheme: "ip", ID: "10.0.0.0/8"}}}
	for _, tc := range []struct {
		name string
		perm znode.Perm
		ids  []znode.ID
		want bool
	}{
		{"digest reads", znode.PermRead, []znode.ID{digest}, true},
		{"digest may not write", znode.PermWrite, []znode.ID{digest}, false},
		{"ip in the net", znode.PermWrite, []znode.ID{{Scheme: "ip", ID: "10.1.2.3"}}, true},
		{"ip outside", znode.PermWrite, []znode.ID{{Scheme: "ip", ID: "11.1.2.3"}}, false},
		{"super", znode.PermDelete, []znode.ID{{Scheme: "super"}}, true},
		{"nobody", znode.PermRead, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Permits(acl, tc.perm, tc.ids); got != tc.want {
				t.Fatalf("Permits = %t, want %t", got, tc.want)
			}
		})
	}
	if !Permits(nil, znode.PermAll, nil) || !Permits(znode.WorldAnyone(), znode.PermAll, nil) {
		t.Fatal("an empty list and world:anyone permit everything")
	}
}

// TestWriteVersions: a Write without CheckACL is still written as version 1,
// byte for byte; with it, version 2, and it round-trips; the FSM refuses a
// write the caller may not make only when the entry asks.
func TestWriteVersions(t *testing.T) {
	w := &Write{Session: 7, Auth: []znode.ID{{Scheme: "ip", ID: "127.0.0.1"}}, Ops: []Op{{Kind: OpSetData, Path: "/a", Version: -1}}}
	v1 := Encode(w)
	if v1[1] != 1 {
		t.Fatalf("unchecked write has version %d", v1[1])
	}
	w.CheckACL = true
	v2 := Encode(w)
	if v2[1] != 2 || !bytes.Equal(v2[2:len(v2)-1], v1[2:]) {
		t.Fatalf("checked write: version %d, payload %x vs %x", v2[1], v2, v1)
	}
	c, err := Decode(v2)
	if err != nil || !c.(*Write).CheckACL {
		t.Fatalf("decode: %v %+v", err, c)
	}
	f, _ := NewFSM(DefaultConfig())
	apply := func(i uint64, c Command) *Result {
		t.Helper()
		res, err := f.ApplyEntry(i, Encode(c))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	apply(1, &SetPhase{Phase: PhasePrimary})
	private := []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: "alice:x"}}}
	apply(2, &Write{Ops: []Op{{Kind: OpCreate, Path: "/p", ACL: private}}})
	if res := apply(3, &Write{Ops: []Op{{Kind: OpSetData, Path: "/p", Version: -1}}}); res.Err != nil {
		t.Fatalf("unchecked write: %v", res.Err)
	}
	if res := apply(4, &Write{CheckACL: true, Ops: []Op{{Kind: OpSetData, Path: "/p", Version: -1}}}); CodeOf(res.Err) != CodeNoAuth {
		t.Fatalf("checked write by a stranger: %v", res.Err)
	}
	if res := apply(5, &Write{CheckACL: true, Auth: []znode.ID{{Scheme: "digest", ID: "alice:x"}}, Ops: []Op{{Kind: OpSetData, Path: "/p", Version: -1}}}); res.Err != nil {
		t.Fatalf("checked write by alice: %v", res.Err)
	}
}
