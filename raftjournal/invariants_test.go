package raftjournal

import (
	"slices"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// checkInvariants recomputes everything the FSM keeps incrementally and fails the
// test on any disagreement: the digest, child sets, ephemeral/container/TTL
// indexes, ACL reference counts, and that no path is both visible and pending.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	tr := f.s.t
	var d znode.Digest
	refs := map[aclID]int64{}
	eph := map[int64]map[string]struct{}{}
	containers, ttls := map[string]struct{}{}, map[string]struct{}{}
	kids := map[string][]string{}
	for p, n := range tr.nodes {
		d.Add(tr.nodeDigest(p, n))
		refs[n.acl]++
		if n.acl == 0 {
			t.Errorf("visible %s has no ACL", p)
		}
		if p != "/" {
			parent := znode.Parent(p)
			if tr.nodes[parent] == nil {
				t.Errorf("visible %s has no visible parent", p)
			}
			kids[parent] = append(kids[parent], znode.Base(p))
		}
		switch znode.EphemeralTypeOf(n.owner, true) {
		case znode.Ephemeral:
			if eph[n.owner] == nil {
				eph[n.owner] = map[string]struct{}{}
			}
			eph[n.owner][p] = struct{}{}
		case znode.Container:
			containers[p] = struct{}{}
		case znode.TTL:
			ttls[p] = struct{}{}
		}
		if _, ok := tr.ghosts[p]; ok {
			t.Errorf("%s is both visible and pending", p)
		}
	}
	for p, g := range tr.ghosts {
		if g.n.acl != 0 {
			refs[g.n.acl]++
		}
		if g.n.czxid == 0 && (g.hasData || g.n.acl != 0) {
			t.Errorf("pending %s has data or ACL without an incarnation", p)
		}
	}
	if d != tr.digest {
		t.Errorf("digest kept %s, recomputed %s", tr.digest, d)
	}
	for p, n := range tr.nodes {
		want := kids[p]
		var got []string
		if n.kids != nil {
			got = slices.Clone(n.kids.names)
			if n.kids.index != nil {
				if len(n.kids.index) != len(n.kids.names) {
					t.Errorf("%s: child index has %d entries for %d children", p, len(n.kids.index), len(n.kids.names))
				}
				for i, name := range n.kids.names {
					if n.kids.index[name] != int32(i) {
						t.Errorf("%s: child index of %s is %d, want %d", p, name, n.kids.index[name], i)
					}
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: child set %v, tree has %v", p, got, want)
		}
	}
	if len(eph) != len(tr.ephemerals) {
		t.Errorf("ephemeral index has %d owners, tree %d", len(tr.ephemerals), len(eph))
	}
	for o, set := range eph {
		if len(set) != len(tr.ephemerals[o]) {
			t.Errorf("ephemeral index for %#x has %d paths, tree %d", o, len(tr.ephemerals[o]), len(set))
		}
	}
	if len(containers) != len(tr.containers) || len(ttls) != len(tr.ttls) {
		t.Errorf("container/TTL index %d/%d, tree %d/%d", len(tr.containers), len(tr.ttls), len(containers), len(ttls))
	}
	for id := 1; id < len(tr.acls.lists); id++ {
		e := tr.acls.lists[id]
		if e.refs != refs[aclID(id)] {
			t.Errorf("ACL %d %v: %d references kept, %d counted", id, e.acl, e.refs, refs[aclID(id)])
		}
		if e.refs > 0 && tr.acls.byKey[e.key] != aclID(id) {
			t.Errorf("ACL %d not indexed by its key", id)
		}
	}
	if len(tr.acls.pending) != 0 {
		t.Errorf("%d ACL releases pending after apply", len(tr.acls.pending))
	}
}
