package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
)

// TestReconcilerUnreadableNodes is issue 12 item 4: nodes clients created
// through the proxy with ACLs the reconciler's credentials cannot read (auth
// ACLs of an identity it lacks: NoAuth; READ without ADMIN: a masked ACL) do
// not stop the repair of everything else. A pass repairs the writes made
// around the proxy and reports the unreadable nodes (count, paths, metric,
// stats); an event check on one records it instead of retrying.
func TestReconcilerUnreadableNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)
	root := freshRoot(t)

	owner, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	auth := []zk.ACL{{Perms: zk.PermAll, Scheme: "auth"}}
	readOnly := append(zk.WorldACL(zk.PermRead), zk.ACL{Perms: zk.PermAll, Scheme: "auth"})
	mustCreate(t, owner, root, nil, 0, nil)
	mustCreate(t, owner, root+"/locked", []byte("l"), 0, auth)
	mustCreate(t, owner, root+"/masked", []byte("m"), 0, readOnly)
	mustCreate(t, owner, root+"/open", nil, 0, nil)
	for _, p := range []string{"/a", "/c"} {
		mustCreate(t, owner, root+"/open"+p, []byte("x"), 0, nil)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}

	// The default `serve`: a reconciler without credentials.
	reg := prometheus.NewRegistry()
	cfg := DefaultReconcilerConfig()
	cfg.ZK, cfg.Journal, cfg.View, cfg.Root = ens.Hosts(), importer.NodeJournal(n), NodeView(n), root
	cfg.Grace, cfg.Interval = 300*time.Millisecond, 0
	cfg.Mirrored = tap.MirroredZxid
	cfg.Logger, cfg.Registerer = testlog.New(t).With("component", "reconciler"), reg
	r, err := NewReconciler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })

	// Writes around the proxy, with no reconciler running: only a pass sees them.
	direct := zkWriter(t, ens.Hosts())
	if _, err := direct.Set(root+"/open/a", []byte("set around the proxy"), -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, direct, root+"/open/b", []byte("created around the proxy"), 0, nil)
	if err := direct.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	// Around the proxy, READ for all and ADMIN for owner only: the reconciler
	// reads it with its ACL masked, and the journal has no copy to stand in.
	mustCreate(t, direct, root+"/masked2", []byte("m2"), 0, readOnly)
	if err := direct.Delete(root+"/open/c", -1); err != nil {
		t.Fatal(err)
	}
	st, err := r.RepairAll(ctx, "")
	if err != nil {
		t.Fatalf("RepairAll: %v (a node it cannot read must not fail the pass)", err)
	}
	t.Logf("repair pass: %+v", st)
	if st.NodeRepairs == 0 || st.DeleteRepairs == 0 {
		t.Errorf("the pass repaired %d nodes and %d deletes; want both", st.NodeRepairs, st.DeleteRepairs)
	}
	// root/masked came through the proxy: the journal's ACL stands in for the
	// masked one (same incarnation and aversion), so it is compared in full.
	want := []string{root + "/locked", root + "/masked2"}
	for _, p := range want {
		if !slices.Contains(st.UnreadablePaths, p) {
			t.Errorf("the pass does not report %s as unreadable: %v", p, st.UnreadablePaths)
		}
	}
	if stats := r.Stats(); stats.Unreadable != 2 || !slices.Equal(stats.UnreadablePaths, want) {
		t.Errorf("stats report %d unreadable %v; want %v", stats.Unreadable, stats.UnreadablePaths, want)
	}
	if got := gatherSeries(t, reg)["zk2raft_reconcile_unreadable_nodes"]; got != 2 {
		t.Errorf("zk2raft_reconcile_unreadable_nodes = %v, want 2", got)
	}
	// What it could read is repaired.
	if rep, err := reconcileCompare(ctx, ens.Hosts(), root+"/open", NodeView(n)); err != nil || rep.Counts.Differences != 0 {
		t.Fatalf("the readable subtree still differs: %v %+v", err, rep)
	}

	// An event on a node read with its ACL masked (READ, no ADMIN), created
	// around the proxy: the check records it as unreadable and does not
	// retry. (ZooKeeper sends no event at all for a node the watcher cannot
	// READ: checked below with CheckPath.)
	startReconciler(t, r)
	waitWatching(t, r, direct, root+"/open/probe")
	mustCreate(t, direct, root+"/masked3", []byte("m3"), 0, readOnly)
	reconcileWait(t, 30*time.Second, "the event check to record the unreadable node", func() error {
		if s := r.Stats(); !slices.Contains(s.UnreadablePaths, root+"/masked3") {
			return fmt.Errorf("unreadable %v", s.UnreadablePaths)
		}
		return nil
	})
	if s := r.Stats(); s.Errors != 0 {
		t.Errorf("an unreadable node counted as a failed check: %+v", s)
	}
	mustCreate(t, direct, root+"/locked2", []byte("l2"), 0, auth)
	if _, err := r.CheckPath(ctx, root+"/locked2"); !errors.Is(err, ErrNodeUnreadable) {
		t.Fatalf("CheckPath of a node the credentials cannot read: %v, want ErrNodeUnreadable", err)
	}
}
