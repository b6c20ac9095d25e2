package reversemirror_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// kazooFenced tries to write straight to ZooKeeper without credentials and
// prints what ZooKeeper answered to each attempt, and what a read gets.
const kazooFenced = `
import sys
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE
zk = KazooClient(hosts=sys.argv[1]); zk.start()
root = sys.argv[2]
def attempt(name, fn):
    try:
        fn(); print(name, "ok")
    except Exception as e:
        print(name, type(e).__name__)
attempt("set", lambda: zk.set(root + "/a", b"around the proxies"))
attempt("create", lambda: zk.create(root + "/a/new", b"x"))
attempt("create-top", lambda: zk.create(root + "/new", b"x"))
attempt("delete", lambda: zk.delete(root + "/a/leaf"))
attempt("setacl", lambda: zk.set_acls(root + "/a", OPEN_ACL_UNSAFE))
print("read", zk.get(root + "/a")[0].decode())
zk.stop()
`

// requestFence asks the mirror for want and waits until it answered.
func requestFence(t *testing.T, n *raftjournal.Node, id, want string) *reversemirror.FenceState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := n.Submit(ctx, reversemirror.FenceRequestCheckpoint(&reversemirror.FenceRequest{ID: id, Want: want, Requested: time.Now()})); err != nil || res.Err != nil {
		t.Fatalf("fence request: %v %v", err, res)
	}
	var st *reversemirror.FenceState
	testlog.WaitFor(t, 2*time.Minute, "the mirror answers fence request "+id, func() error {
		_, st = reversemirror.DecodeFence(n.FSM().Checkpoints("zk2raft/fence/"))
		if st == nil || st.Request != id || !st.Done && st.Error == "" {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	if st.Error != "" {
		t.Fatalf("fence %s: %s", want, st.Error)
	}
	return st
}

// acls reads every ACL under root in ZooKeeper.
func acls(t *testing.T, c *zkclient.Client, root string) map[string][]znode.ACL {
	t.Helper()
	ctx := context.Background()
	out := map[string][]znode.ACL{}
	level := []string{root}
	for len(level) > 0 {
		var next []string
		for _, p := range level {
			acl, _, err := c.GetACL(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = acl
			kids, _, err := c.GetChildren(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range kids {
				next = append(next, p+"/"+k)
			}
		}
		level = next
	}
	return out
}

// TestFenceRefusesDirectWrites: with the fence on, ZooKeeper refuses an
// independent client's (kazoo's) setData, creates (under a node and under
// the root), delete and setACL, and still lets it read what it could read;
// the journal's writes keep reaching ZooKeeper through the mirror, new
// nodes fenced too. Lifting the fence gives every node exactly the ACL it
// had (the journal's), the nodes created meanwhile the journal's ACL.
func TestFenceRefusesDirectWrites(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	root := testRoot(t, "/fence-"+strings.ToLower(t.Name()))
	m := runMirror(t, n, func(c *reversemirror.Config) { c.Root, c.Retry = root, 200*time.Millisecond })
	c := gozk(t, addr)
	if err := c.AddAuth("digest", []byte("app:secret")); err != nil {
		t.Fatal(err)
	}
	all := zk.WorldACL(zk.PermAll)
	mixed := append(zk.WorldACL(zk.PermRead), zk.DigestACL(zk.PermAll, "app", "secret")...)
	for _, n := range []struct {
		p   string
		acl []zk.ACL
	}{{root, all}, {root + "/a", all}, {root + "/a/leaf", all}, {root + "/p", mixed}, {root + "/w", zk.DigestACL(zk.PermWrite|zk.PermRead, "app", "secret")}} {
		if _, err := c.Create(n.p, []byte("j0"), 0, n.acl); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, f, m)
	direct := zkDirect(t)
	before := acls(t, direct, root)

	st := requestFence(t, n, "f1", reversemirror.FenceOn)
	if st.Changed != len(before) || st.NotInJournal != 0 {
		t.Errorf("fence walk %+v, want %d ACLs changed", st, len(before))
	}
	fenced := acls(t, direct, root)
	mirrorID := znode.ID{Scheme: "digest", ID: znode.DigestID(superCred)}
	for p, acl := range fenced {
		for _, a := range acl {
			if a.ID != mirrorID && a.Perms != znode.PermRead {
				t.Errorf("%s fenced as %v: only the mirror may write", p, acl)
			}
		}
	}
	out := kazoo(t, ensemble.Hosts()[0], root, kazooFenced)
	for _, want := range []string{"set NoAuthError", "create NoAuthError", "create-top NoAuthError", "delete NoAuthError", "setacl NoAuthError", "read j0"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("kazoo against the fence: want %q in\n%s", want, out)
		}
	}

	// The journal's writes still reach ZooKeeper, fenced.
	if _, err := c.Set(root+"/a", []byte("j1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(root+"/a/during", []byte("d"), 0, mixed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetACL(root+"/p", all, 0); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	if acl, _, err := direct.GetACL(context.Background(), root+"/a/during"); err != nil || slices.ContainsFunc(acl, func(a znode.ACL) bool { return a.ID != mirrorID && a.Perms != znode.PermRead }) {
		t.Errorf("a node the journal created under the fence has ACL %v (%v)", acl, err)
	}

	requestFence(t, n, "f2", reversemirror.FenceOff)
	after := acls(t, direct, root)
	for p, acl := range after {
		jacl, _, err := f.GetACL(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(acl, jacl) {
			t.Errorf("%s after the lift: %v, the journal's %v", p, acl, jacl)
		}
		if old, ok := before[p]; ok && p != root+"/p" && !slices.Equal(acl, old) {
			t.Errorf("%s after the lift: %v, before the fence %v", p, acl, old)
		}
	}
	if len(after) != len(before)+1 {
		t.Errorf("%d nodes after, %d before (+1 created under the fence)", len(after), len(before))
	}
	if data, _, err := direct.GetData(context.Background(), root+"/a"); err != nil || string(data) != "j1" {
		t.Errorf("ZooKeeper's %s = %q, %v; want the journal's j1", root+"/a", data, err)
	}
	if recs := records(f, root); len(recs) != 0 {
		t.Errorf("the fence and the mirror's writes were reported as split-brain writes: %+v", recs)
	}
	if e := m.Status().LastError; e != "" {
		t.Errorf("mirror error: %s", e)
	}
}

// TestFinalizeEndsTheMirror: once the journal is finalized the mirror stops
// applying (the journal records nothing more for ZooKeeper), closes the
// ZooKeeper sessions it kept (ZooKeeper deletes their ephemerals), and the
// journal refuses any rollback.
func TestFinalizeEndsTheMirror(t *testing.T) {
	n, addr := primaryNode(t)
	f := n.FSM()
	root := testRoot(t, "/finalize-"+strings.ToLower(t.Name()))
	m := runMirror(t, n, nil)
	c := gozk(t, addr)
	all := zk.WorldACL(zk.PermAll)
	if _, err := c.Create(root, nil, 0, all); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(root+"/eph", nil, zk.FlagEphemeral, all); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, f, m)
	direct := zkDirect(t)
	ctx := context.Background()
	if _, ok, err := direct.Exists(ctx, root+"/eph"); !ok || err != nil {
		t.Fatalf("the ephemeral is not in ZooKeeper before finalize: %t %v", ok, err)
	}
	if m.Status().Sessions != 1 {
		t.Fatalf("the mirror keeps %d ZooKeeper sessions, want 1", m.Status().Sessions)
	}

	if err := n.SetPhase(ctx, raftjournal.PhaseFinalized, false); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, time.Minute, "the mirror stops and ZooKeeper deletes the kept session's ephemeral", func() error {
		if st := m.Status(); st.Running || st.Sessions != 0 {
			return fmt.Errorf("mirror %+v", st)
		}
		if _, ok, err := direct.Exists(ctx, root+"/eph"); ok || err != nil {
			return fmt.Errorf("ephemeral still in ZooKeeper (%v)", err)
		}
		return nil
	})
	if _, err := c.Create(root+"/after", nil, 0, all); err != nil {
		t.Fatal(err)
	}
	if st := f.MirrorStatus(); st.Active || st.Pending != 0 {
		t.Errorf("the journal still owes ZooKeeper entries after finalize: %+v", st)
	}
	if _, ok, err := direct.Exists(ctx, root+"/after"); ok || err != nil {
		t.Errorf("a write after finalize reached ZooKeeper (%t, %v)", ok, err)
	}
	res, err := n.Submit(ctx, &raftjournal.SetPhase{Phase: raftjournal.PhaseShadow, Rollback: true, Time: time.Now().UnixMilli()})
	if err != nil || res.Err == nil {
		t.Fatalf("a rollback after finalize: %v, %v; want refused", err, res)
	}
	if f.Phase() != raftjournal.PhaseFinalized {
		t.Errorf("phase %s after the refused rollback", f.Phase())
	}
}
