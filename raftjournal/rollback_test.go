package raftjournal

import (
	"reflect"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// TestRollbackRebase: a rollback ends the journal's own sessions (their
// ephemerals go), hands ZooKeeper's back to ZooKeeper, lowers every zxid the
// journal stamped in its epoch to ZooKeeper's zxid at the cutover so that
// ZooKeeper's copies win every merge, closes the period in the zxid map
// (which translates journal zxids down to ZooKeeper's), and a second
// primary period mints above everything before.
func TestRollbackRebase(t *testing.T) {
	h := newHarness(t)
	const zkSession = 0x100000abcd0001
	st := func(c, m int64) znode.Stat { return znode.Stat{Czxid: c, Mzxid: m, Pzxid: c, Ctime: 1000, Mtime: 1000} }
	if res := h.apply(&ImportBatch{Nodes: []*znode.Node{
		{Path: "/old", Data: []byte("o"), ACL: znode.WorldAnyone(), Stat: st(0x100000004, 0x100000004)},
		{Path: "/old/kid", Data: []byte("k"), ACL: znode.WorldAnyone(), Stat: st(0x100000005, 0x100000005)},
	}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.apply(&SourceSessions{Open: []SourceSession{{ID: zkSession, TimeoutMs: 10000}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.primary()
	const base = 0x100000005
	m := h.f.ZxidMap()
	if len(m) != 1 || m[0].To != 0 || len(m[0].Points) != 1 || m[0].Points[0].ZooKeeper != base {
		t.Fatalf("zxid map after primary: %+v", m)
	}
	from := m[0].From
	s := h.session()
	created := h.mustWrite(0, create("/new", "n", ModePersistent)).Stat.Czxid
	h.mustWrite(0, create("/new/child", "c", ModePersistent))
	h.mustWrite(0, setData("/old", "o2", -1))
	h.mustWrite(s, create("/new/eph", "e", ModeEphemeral))
	h.mustWrite(zkSession, create("/old/zk-eph", "z", ModeEphemeral))
	h.mustWrite(0, create("/box", "", ModeContainer))
	h.mustWrite(0, create("/box/in", "", ModePersistent))
	if created <= from || uint64(created)>>32 <= 1 {
		t.Fatalf("journal zxid %#x not above the period's start %#x and ZooKeeper's epoch", created, from)
	}
	recs := h.f.MirrorPending(0, 0)
	// ZooKeeper acknowledges the first two records at 0x100000010, the rest
	// at 0x100000020.
	h.apply(&MirrorAck{Index: recs[1].Index, ZkZxid: 0x100000010})
	h.apply(&MirrorAck{Index: recs[len(recs)-1].Index, ZkZxid: 0x100000020})

	res := h.apply(&SetPhase{Phase: PhaseShadow, Rollback: true})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	rb := res.Rollback
	if rb == nil || len(rb.ClosedSessions) != 1 || rb.ClosedSessions[0] != s || rb.Returned != 1 || rb.Base != base || rb.AckedZkZxid != 0x100000020 {
		t.Fatalf("rollback result %+v", rb)
	}
	if len(res.Deleted) != 1 || res.Deleted[0] != "/new/eph" {
		t.Errorf("deleted %v, want the journal session's ephemeral", res.Deleted)
	}
	if ss := h.f.Sessions(); len(ss) != 0 {
		t.Errorf("sessions after the rollback: %+v", ss)
	}
	if src := h.f.SourceSessions(); len(src) != 1 || src[0].ID != zkSession || src[0].Ephemerals != 1 {
		t.Errorf("mirrored sessions after the rollback: %+v", src)
	}
	stat := func(p string) znode.WireStat {
		t.Helper()
		_, ws, err := h.f.Get(p, nil)
		if err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		return ws
	}
	if ws := stat("/new"); ws.Czxid != base || ws.Mzxid != base || ws.Pzxid != base {
		t.Errorf("/new after the rollback: %+v, want every zxid %#x", ws, base)
	}
	if ws := stat("/old"); ws.Czxid != 0x100000004 || ws.Mzxid != base || ws.Pzxid != base {
		t.Errorf("/old after the rollback: %+v", ws)
	}
	if ws := stat("/old/kid"); ws.Czxid != 0x100000005 || ws.Mzxid != 0x100000005 {
		t.Errorf("/old/kid (untouched in primary) changed: %+v", ws)
	}

	// The nodes still carrying the base: every node the journal wrote or
	// whose children it changed, and /old/kid, which ZooKeeper created at
	// the base itself (its last write before the cutover): a superset.
	want := []string{"/", "/box", "/box/in", "/new", "/new/child", "/old", "/old/kid", "/old/zk-eph"}
	if rn := h.f.Rebased(0); rn.Base != base || rn.UpTo != 0x100000020 || rn.Total != len(want) || !reflect.DeepEqual(rn.Paths, want) {
		t.Errorf("Rebased after the rollback: %+v, want base %#x, up to 0x100000020, %v", rn, base, want)
	}
	if rn := h.f.Rebased(2); rn.Total != len(want) || !reflect.DeepEqual(rn.Paths, want[:2]) {
		t.Errorf("Rebased(2): %+v, want %d in all and the first two", rn, len(want))
	}

	// The map: closed, translating down.
	m = h.f.ZxidMap()
	if len(m) != 1 || m[0].To < recs[len(recs)-1].Zxid {
		t.Fatalf("zxid map after the rollback: %+v", m)
	}
	for _, c := range []struct {
		z, want int64
		ok      bool
	}{
		{created, base, true}, // before the first ack's last record
		{recs[1].Zxid, 0x100000010, true},
		{recs[len(recs)-1].Zxid, 0x100000020, true},
		{m[0].To, 0x100000020, true},
		{0x100000007, 0x100000007, false}, // ZooKeeper's own
		{m[0].To + 1, m[0].To + 1, false}, // beyond anything minted
	} {
		if got, ok := TranslateZxid(m, c.z); got != c.want || ok != c.ok {
			t.Errorf("TranslateZxid(%#x) = %#x, %t; want %#x, %t", c.z, got, ok, c.want, c.ok)
		}
	}

	// ZooKeeper's copies take the nodes over: an import of /new (a newer
	// incarnation than the lowered one), a mirrored setData of /old.
	if res := h.apply(&ImportBatch{Nodes: []*znode.Node{
		{Path: "/new", Data: []byte("n"), ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 0x100000011, Mzxid: 0x100000011, Pzxid: 0x100000012, Cversion: 1, Ctime: 2000, Mtime: 2000}},
		{Path: "/new/child", Data: []byte("c"), ACL: znode.WorldAnyone(), Stat: st(0x100000012, 0x100000012)},
	}}); res.Err != nil || res.Changed != 2 {
		t.Fatalf("import after the rollback: %+v", res)
	}
	if ws := stat("/new"); ws.Czxid != 0x100000011 || ws.Ctime != 2000 || ws.Pzxid != 0x100000012 || ws.NumChildren != 1 {
		t.Errorf("/new after the import: %+v", ws)
	}
	// ZooKeeper's copy of the container, read through the client API (raw
	// owner 0), stays a container; one created after the period does not.
	if res := h.apply(&ImportBatch{Nodes: []*znode.Node{
		{Path: "/box", Data: []byte{}, ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 0x100000013, Mzxid: 0x100000013, Pzxid: 0x100000014, Cversion: 1, Ctime: 2000, Mtime: 2000}},
	}}); res.Err != nil || res.Changed != 1 {
		t.Fatalf("import of the container: %+v", res)
	}
	if got := dumpTree(t, h.f)["/box"].Stat.EphemeralOwner; got != znode.ContainerOwner {
		t.Errorf("the container's raw owner after the import: %#x, want %#x", got, znode.ContainerOwner)
	}
	if res := h.apply(&SourceTxn{Zxid: 0x100000030, Ops: []SourceOp{{Kind: SourceSetData, Path: "/old", Data: []byte("o3"),
		Stat: znode.Stat{Czxid: 0x100000004, Mzxid: 0x100000030, Pzxid: 0x100000021, Version: 2, Ctime: 1000, Mtime: 3000}}}}); res.Err != nil || res.Changed == 0 {
		t.Fatalf("mirrored setData after the rollback: %+v", res)
	}
	if data, ws, _ := h.f.Get("/old", nil); string(data) != "o3" || ws.Mzxid != 0x100000030 || ws.Mtime != 3000 {
		t.Errorf("/old after the mirrored setData: %q %+v", data, ws)
	}

	// ZooKeeper's copies replaced those nodes: they no longer carry the base.
	want = []string{"/", "/box/in", "/old/kid", "/old/zk-eph"}
	if rn := h.f.Rebased(0); rn.Total != len(want) || !reflect.DeepEqual(rn.Paths, want) {
		t.Errorf("Rebased after ZooKeeper's copies: %+v, want %v", rn, want)
	}

	// The map survives a snapshot, and with it the rebased window.
	restored := roundTrip(t, h.f)
	if rn := restored.Rebased(0); rn.Base != base || !reflect.DeepEqual(rn.Paths, want) {
		t.Errorf("Rebased after a snapshot round trip: %+v, want %v", rn, want)
	}
	if got := restored.ZxidMap(); !reflect.DeepEqual(got, m) {
		t.Errorf("restored zxid map %+v, want %+v", got, m)
	}

	// A second period mints above the first and every source zxid.
	h.primary()
	m2 := h.f.ZxidMap()
	if len(m2) != 2 || m2[1].From < m[0].To || m2[1].Points[0].ZooKeeper != 0x100000030 {
		t.Fatalf("second period: %+v", m2)
	}
	if z := h.mustWrite(0, create("/again", "", ModePersistent)).Stat.Czxid; z <= m[0].To {
		t.Errorf("second period's zxid %#x not above the first's %#x", z, m[0].To)
	}
}

// TestZxidMapThinning: a period past maxZxidPoints keeps its first and last
// points and gets coarser, never ahead of ZooKeeper.
func TestZxidMapThinning(t *testing.T) {
	s := newState()
	s.epoch, s.counter, s.maxSourceZxid = 2, 0, 0x100000001
	s.zxidMapStart()
	for i := int64(1); i <= 3*maxZxidPoints; i++ {
		s.zxidMapPoint(2<<32|i, 0x100000001+i)
	}
	p := s.zmap[0]
	if len(p.Points) > maxZxidPoints || p.Points[0].ZooKeeper != 0x100000001 || p.Points[len(p.Points)-1].ZooKeeper != 0x100000001+3*maxZxidPoints {
		t.Fatalf("%d points, first %+v, last %+v", len(p.Points), p.Points[0], p.Points[len(p.Points)-1])
	}
	for i := int64(1); i <= 3*maxZxidPoints; i += 97 {
		got, ok := TranslateZxid(s.zmap, 2<<32|i)
		if !ok || got > 0x100000001+i {
			t.Fatalf("TranslateZxid(%d) = %#x, %t: ahead of ZooKeeper's %#x", i, got, ok, 0x100000001+i)
		}
	}
}
