package reversemirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// kazooWorkload is written by kazoo, through the journal's client port:
// sequential nodes, a transaction (multi), setData with versions, a
// recursive delete, ACLs with "auth" expanded.
const kazooWorkload = `
import sys
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, make_acl
zk = KazooClient(hosts=sys.argv[1], auth_data=[("digest", "kaz:pw")])
zk.start(timeout=30)
root = sys.argv[2] + "/kazoo"
zk.ensure_path(root + "/a/b")
for i in range(4):
    zk.create(root + "/q/item-", b"%d" % i, sequence=True, makepath=True)
zk.set(root + "/a", b"one")
zk.set(root + "/a", b"two", version=1)
t = zk.transaction()
t.create(root + "/t1", b"x")
t.create(root + "/t1/c", b"")
t.set_data(root + "/a/b", b"in-multi")
t.check(root + "/a", 2)
t.delete(root + "/q/item-0000000000")
res = t.commit()
assert not any(isinstance(r, Exception) for r in res), res
bad = zk.transaction()
bad.create(root + "/never", b"")
bad.check(root + "/a", 99)
assert any(isinstance(r, Exception) for r in bad.commit())
zk.create(root + "/secret", b"s", acl=[make_acl("auth", "", all=True)])
zk.set_acls(root + "/a", [make_acl("world", "anyone", read=True), make_digest_acl("kaz", "pw", all=True)])
zk.create(root + "/gone/x/y", b"", makepath=True)
zk.delete(root + "/gone", recursive=True)
zk.stop()
print("ok")
`

// TestMirrorFollowsJournal: a one-node journal in primary takes writes of
// every kind from go-zookeeper and kazoo through its client port; the mirror
// beside it brings ZooKeeper to the same tree, node by node (verify), except
// zxids and times and the owner of a journal session's ephemeral.
func TestMirrorFollowsJournal(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	m := runMirror(t, n, nil)
	root := testRoot(t, "/follows")

	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	mustCreate := func(c *zk.Conn, p string, data []byte, flags int32) string {
		t.Helper()
		name, err := c.Create(p, data, flags, all)
		if err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		return name
	}
	mustCreate(c, root, []byte("r"), 0)
	mustCreate(c, root+"/p", []byte("p"), 0)
	for i := range 3 {
		if _, err := c.Set(root+"/p", []byte{byte('a' + i)}, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(c, root+"/q", nil, 0)
	var seqs []string
	for range 5 {
		seqs = append(seqs, mustCreate(c, root+"/q/job-", []byte("j"), zk.FlagSequence))
	}
	if err := c.Delete(seqs[1], 0); err != nil {
		t.Fatal(err)
	}
	mustCreate(c, root+"/empty", []byte{}, 0)
	if _, err := c.CreateContainer(root+"/box", nil, zk.FlagContainer, all); err != nil {
		t.Fatal(err)
	}
	mustCreate(c, root+"/box/item", nil, 0)
	if _, err := c.CreateTTL(root+"/ttl", []byte("t"), zk.FlagTTL, all, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A multi of several kinds, and one that fails (changes nothing).
	if _, err := c.Multi(
		&zk.CreateRequest{Path: root + "/m", Data: []byte("m"), Acl: all},
		&zk.CreateRequest{Path: root + "/q/job-", Data: []byte("in-multi"), Acl: all, Flags: zk.FlagSequence},
		&zk.SetDataRequest{Path: root + "/m", Data: []byte("m2"), Version: 0},
		&zk.CheckVersionRequest{Path: root + "/p", Version: 3},
		&zk.DeleteRequest{Path: seqs[2], Version: -1},
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Multi(
		&zk.CreateRequest{Path: root + "/never", Acl: all},
		&zk.DeleteRequest{Path: root + "/missing", Version: -1},
	); err == nil {
		t.Fatal("failing multi succeeded")
	}
	if _, err := c.SetACL(root+"/p", zk.DigestACL(zk.PermAll, "alice", "pw"), -1); err != nil {
		t.Fatal(err)
	}
	// Ephemerals: one session that ends (its ephemerals go), one that stays.
	gone := gozk(t, addr)
	mustCreate(gone, root+"/e-gone", nil, zk.FlagEphemeral)
	mustCreate(gone, root+"/q/lock-", nil, zk.FlagEphemeral|zk.FlagSequence)
	gone.Close()
	stay := gozk(t, addr)
	mustCreate(stay, root+"/e-stay", []byte("alive"), zk.FlagEphemeral)
	stayLock := mustCreate(stay, root+"/q/lock-", nil, zk.FlagEphemeral|zk.FlagSequence)

	if out := kazoo(t, addr, root, kazooWorkload); !strings.Contains(out, "ok") {
		t.Fatalf("kazoo: %s", out)
	}

	// The closed session's end reaches the journal asynchronously.
	waitGone(t, f, root+"/e-gone")
	st := waitDrained(t, f, m)
	compareWithZooKeeper(t, f, root, root+"/e-stay", stayLock)

	var md struct{ Start, Index uint64 }
	if err := json.Unmarshal([]byte(marker(t)), &md); err != nil {
		t.Fatal(err)
	}
	kept, err := markerSessions(t, zkDirect(t))
	if md.Index != st.Acked || md.Start != st.Start || len(kept) != 1 || err != nil {
		t.Errorf("marker %+v with sessions %v (%v), journal mirror status %+v: want the same index and one kept session", md, kept, err, st)
	}
	if rm := n.Status().ReverseMirror; rm == nil || !rm.Active || rm.PendingEntries != 0 || rm.AckedIndex != st.Acked || rm.LagSeconds != 0 {
		t.Errorf("/status reverse_mirror %+v", rm)
	}
	ms := m.Status()
	if ms.Records == 0 || ms.Applied != st.Acked || ms.LostSessions != 0 || ms.LastError != "" {
		t.Errorf("mirror status %+v", ms)
	}
	t.Logf("mirror: %d journal entries in %d ZooKeeper multis, %d ops; marker %s", ms.Records, ms.Multis, ms.Ops, marker(t))
}

// waitGone waits until the journal no longer has path.
func waitGone(t *testing.T, f *raftjournal.FSM, p string) {
	t.Helper()
	testlog.WaitFor(t, time.Minute, p+" deleted in the journal", func() error {
		if _, ok := f.Exists(p, nil); ok {
			return errors.New("still there")
		}
		return nil
	})
}

// zkDirect is a session straight to ZooKeeper as its super user (what a
// client around the proxies would be; also the test's way to read).
// markerSessions lists the marker's session children (s-…), leaving out
// the running mirror's pipeline node (p-…).
func markerSessions(t *testing.T, c *zkclient.Client) ([]string, error) {
	t.Helper()
	names, _, err := c.GetChildren(context.Background(), markerPath(t))
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "s-") {
			out = append(out, n)
		}
	}
	return out, err
}

func zkDirect(t *testing.T) *zkclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ensemble.Hosts(), Auth: superAuth()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMirrorStopsOnSplitBrain: a write made straight to ZooKeeper in primary
// makes the mirror's next write to that node fail its version check. The
// mirror stops at that journal entry, says which and why, overwrites
// nothing, skips nothing (later entries wait), and goes on by itself once
// the operator has put the node back.
func TestMirrorStopsOnSplitBrain(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	m := runMirror(t, n, func(c *reversemirror.Config) { c.Retry = 100 * time.Millisecond })
	root := testRoot(t, "/splitbrain")
	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/x"} {
		if _, err := c.Create(p, []byte("j0"), 0, all); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, f, m)
	compareWithZooKeeper(t, f, root)

	ctx := context.Background()
	direct := zkDirect(t)
	if _, err := direct.SetData(ctx, root+"/x", []byte("straight to zookeeper"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(root+"/x", []byte("j1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(root+"/after", nil, 0, all); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, time.Minute, "the mirror reports the split-brain write", func() error {
		if e := m.Status().LastError; !strings.Contains(e, root+"/x") || !strings.Contains(e, "differs") {
			return fmt.Errorf("last error %q", e)
		}
		return nil
	})
	if st := f.MirrorStatus(); st.Pending != 2 {
		t.Errorf("outbox %+v, want the setData and the create still owed", st)
	}
	data, _, err := direct.GetData(ctx, root+"/x")
	if err != nil || string(data) != "straight to zookeeper" {
		t.Errorf("ZooKeeper's %s = %q, %v: the mirror overwrote the split-brain write", root+"/x", data, err)
	}
	if _, ok, err := direct.Exists(ctx, root+"/after"); ok || err != nil {
		t.Errorf("%s reached ZooKeeper past a stuck entry (exists %t, %v)", root+"/after", ok, err)
	}
	if rep := compareReport(t, f, root); rep.Equal() {
		t.Error("verify calls the trees equal across a split-brain write")
	}
	// The operator undoes the stray write (version 1 → 2, data back); the
	// mirror's expected version is 0, so it stays stuck until the node is
	// put back as the journal left it: here by deleting and re-creating it.
	if err := direct.Delete(ctx, root+"/x", -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := direct.Create(ctx, root+"/x", []byte("j0"), znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	// Everything agrees but the parent's cversion, which counts the
	// repair's create in ZooKeeper.
	rep := compareReport(t, f, root)
	if d := rep.Differences; len(d) != 1 || d[0].Path != root || d[0].Field != verify.FieldCversion {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Errorf("after the repair, want only %s's cversion to differ:\n%s", root, b.String())
	}
	if data, _, err := direct.GetData(ctx, root+"/x"); err != nil || string(data) != "j1" {
		t.Errorf("after repair ZooKeeper's %s = %q, %v; want the journal's j1", root+"/x", data, err)
	}
}

// TestMirrorRoundTrips: primary → shadow → primary → shadow. A rollback is
// refused while entries are owed to ZooKeeper and allowed once the mirror
// drained them; the next primary period starts the marker afresh (its index
// and sessions) and is mirrored like the first; each time ZooKeeper equals
// the journal.
func TestMirrorRoundTrips(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := testRoot(t, "/roundtrips")
	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	if _, err := c.Create(root, nil, 0, all); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Create(root+"/first-", []byte{byte(i)}, zk.FlagSequence, all); err != nil {
			t.Fatal(err)
		}
	}
	// No mirror yet: ZooKeeper lacks them, so the way back is closed.
	if err := n.SetPhase(ctx, raftjournal.PhaseShadow, true); !errors.Is(err, raftjournal.ErrPhaseTransition) {
		t.Fatalf("rollback with 4 entries owed: %v", err)
	}
	m := runMirror(t, n, nil)
	waitDrained(t, f, m)
	compareWithZooKeeper(t, f, root)
	e := gozk(t, addr)
	if _, err := e.Create(root+"/eph", nil, zk.FlagEphemeral, all); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	if err := n.SetPhase(ctx, raftjournal.PhaseShadow, true); err != nil {
		t.Fatalf("rollback once drained: %v", err)
	}
	e.Close() // in shadow the journal does not own sessions' ends: ZooKeeper does
	for round := range 2 {
		if err := n.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
			t.Fatal(err)
		}
		testlog.WaitFor(t, time.Minute, "a write accepted in primary again", func() error {
			_, err := c.Create(fmt.Sprintf("%s/round%d-", root, round), nil, zk.FlagSequence, all)
			return err
		})
		if _, err := c.Set(root, []byte{byte(round)}, -1); err != nil {
			t.Fatal(err)
		}
		st := waitDrained(t, f, m)
		var md struct{ Start, Index uint64 }
		if err := json.Unmarshal([]byte(marker(t)), &md); err != nil || md.Start != st.Start || md.Index != st.Acked {
			t.Errorf("round %d: marker %+v (%v), journal %+v", round, md, err, st)
		}
		compareWithZooKeeper(t, f, root, root+"/eph")
		if err := n.SetPhase(ctx, raftjournal.PhaseShadow, true); err != nil {
			t.Fatalf("round %d: rollback: %v", round, err)
		}
	}
	if ms := m.Status(); ms.LastError != "" {
		t.Errorf("mirror: %s", ms.LastError)
	}
}

// TestMirrorRefusesForeignMarker: a second journal pointed at an ensemble
// whose marker another journal wrote (its primary period began at the same
// index, at another time) refuses to trust it: it writes nothing and says
// why, rather than skipping entries the marker seems to cover.
func TestMirrorRefusesForeignMarker(t *testing.T) {
	a, addrA := primaryNode(t)
	ma := runMirror(t, a, nil)
	c := gozk(t, addrA)
	foreignA, foreignB := testRoot(t, "/foreign-a"), testRoot(t, "/foreign-b")
	if _, err := c.Create(foreignA, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, a.FSM(), ma)
	before := marker(t)

	b, addrB := primaryNode(t)
	if sa, sb := a.FSM().MirrorStatus(), b.FSM().MirrorStatus(); sa.Start != sb.Start {
		t.Logf("the journals' periods begin at %d and %d", sa.Start, sb.Start)
	}
	mb := runMirror(t, b, nil) // the same marker path: this test's
	cb := gozk(t, addrB)
	if _, err := cb.Create(foreignB, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, time.Minute, "the second mirror refuses the marker", func() error {
		if e := mb.Status().LastError; !strings.Contains(e, "belongs to another journal") {
			return fmt.Errorf("last error %q", e)
		}
		return nil
	})
	if after := marker(t); after != before {
		t.Errorf("marker changed from %s to %s", before, after)
	}
	if _, ok, err := zkDirect(t).Exists(context.Background(), foreignB); ok || err != nil {
		t.Errorf("the second journal's write reached ZooKeeper (%t, %v)", ok, err)
	}
}

// TestMirrorSessionExpiry: a journal session that owns an ephemeral expires
// on the journal (its client went away without closing it); the expiry's
// delete reaches ZooKeeper and the ZooKeeper session the mirror kept for it
// is closed.
func TestMirrorSessionExpiry(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	m := runMirror(t, n, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := testRoot(t, "/expiry")
	app, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{addr}, SessionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := app.Create(ctx, root, nil, znode.WorldAnyone(), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := app.Create(ctx, root+"/eph", []byte("e"), znode.WorldAnyone(), 1); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	direct := zkDirect(t)
	_, st, err := direct.GetData(ctx, root+"/eph")
	if err != nil || st.EphemeralOwner == 0 {
		t.Fatalf("ZooKeeper's copy of the ephemeral: owner %#x, %v", st.EphemeralOwner, err)
	}
	if ms := m.Status(); ms.Sessions != 1 {
		t.Fatalf("mirror holds %d ZooKeeper sessions, want 1", ms.Sessions)
	}
	app.Detach() // gone without closing: the journal expires the session
	waitGone(t, f, root+"/eph")
	waitDrained(t, f, m)
	if _, ok, err := direct.Exists(ctx, root+"/eph"); ok || err != nil {
		t.Errorf("ZooKeeper still has the expired session's ephemeral (%t, %v)", ok, err)
	}
	if ms := m.Status(); ms.Sessions != 0 || ms.LastError != "" {
		t.Errorf("mirror status %+v: want no ZooKeeper session kept", ms)
	}
	kids, err := markerSessions(t, direct)
	if err != nil || len(kids) != 0 {
		t.Errorf("marker's sessions %v, %v: want none", kids, err)
	}
	compareWithZooKeeper(t, f, root)
}
