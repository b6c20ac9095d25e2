package dualwrite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
)

// TestReconcilerLockChurnNoRepairs: four connections through the tap churn
// one lock parent (create an ephemeral sequential child, delete it) while
// the reconciler watches. Every write came through the proxy, so the
// reconciler must repair nothing: its parent check waits for the mirror of
// ZooKeeper's last change of the parent's child registers (parentSettled),
// which arrives from another connection out of zxid order. Before that check
// the demo's kazoo Lock "repaired" its parent about 900 times in three
// minutes and the cutover's repairs gate never passed.
func TestReconcilerLockChurnNoRepairs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)
	root := freshRoot(t)
	lock := root + "/lock"

	conns := make([]*zk.Conn, 4)
	for i := range conns {
		c, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	mustCreate(t, conns[0], root, nil, 0, nil)
	mustCreate(t, conns[0], lock, nil, 0, nil)
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultReconcilerConfig()
	cfg.ZK, cfg.Journal, cfg.View, cfg.Root = ens.Hosts(), importer.NodeJournal(n), NodeView(n), root
	cfg.Interval = 0 // events only (and the startup pass)
	cfg.Grace = 300 * time.Millisecond
	cfg.Mirrored = tap.MirroredZxid
	cfg.Logger = testlog.New(t).With("component", "reconciler")
	r, err := NewReconciler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	startReconciler(t, r)
	waitWatching(t, r, conns[0], root+"/probe")
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()

	acl := zk.WorldACL(zk.PermAll)
	var g errgroup.Group
	for _, c := range conns {
		g.Go(func() error {
			for range 60 {
				p, err := c.Create(lock+"/lock-", nil, zk.FlagEphemeral|zk.FlagSequence, acl)
				if err != nil {
					return err
				}
				if err := c.Delete(p, -1); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	// Every event settled: the checks stop moving for longer than a grace.
	last, since := r.Stats(), time.Now()
	reconcileWait(t, time.Minute, "the reconciler to settle the churn's events", func() error {
		s := r.Stats()
		if s.Checks != last.Checks || s.Skipped != last.Skipped || s.Events != last.Events {
			last, since = s, time.Now()
		}
		if wait := 5 * cfg.Grace; time.Since(since) < wait {
			return fmt.Errorf("events %d, checks %d, skipped %d: changed less than %s ago", s.Events, s.Checks, s.Skipped, wait)
		}
		return nil
	})
	after := r.Stats()
	t.Logf("churn: %d events, %d checks, %d skipped, %d node and %d delete repairs",
		after.Events-before.Events, after.Checks-before.Checks, after.Skipped-before.Skipped,
		after.NodeRepairs-before.NodeRepairs, after.DeleteRepairs-before.DeleteRepairs)
	if after.Events-before.Events < 2*60 {
		t.Fatalf("the reconciler saw %d events of the churn's 480 writes", after.Events-before.Events)
	}
	if nr, dr := after.NodeRepairs-before.NodeRepairs, after.DeleteRepairs-before.DeleteRepairs; nr+dr != 0 || after.Errors != before.Errors {
		t.Fatalf("the reconciler repaired writes that all came through the proxy: %d node, %d delete repairs, %d errors", nr, dr, after.Errors-before.Errors)
	}
	requireEqual(t, compareSubtree(t, ens.Hosts(), root, n), root)
}
