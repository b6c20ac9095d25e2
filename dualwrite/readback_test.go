package dualwrite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	dto "github.com/prometheus/client_model/go"

	"github.com/zk2raft/zk2raft/importer"
)

// TestTapReadBackOffReplyPath is issue 12 item 11: 3,000 creates in flight on
// one connection (go-zookeeper pipelines concurrent calls on its one
// connection), some under a second parent, and multis of creates whose
// replies carry no stat (ZooKeeper 3.8). The parents' cversions and the
// multis' txn time are not in the replies; the tap reads them back at
// delivery, not in the reply path: with the journal unreachable every reply
// comes back while the reads made are a handful (the first delivery attempt's
// batch, one read per parent), not one per create. Once the journal is back
// it holds exactly ZooKeeper's subtree, node by node.
func TestTapReadBackOffReplyPath(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	n := journalNode(t)
	gate := &gateJournal{j: importer.NodeJournal(n)}
	tap := startTap(t, ens.Hosts(), gate, nil)
	root := freshRoot(t)
	conn, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/a", root + "/b"} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	const creates = 3000
	var wg sync.WaitGroup
	errs := make(chan error, creates+10)
	for i := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parent := root + "/a"
			if i%3 == 0 {
				parent = root + "/b"
			}
			if _, err := conn.Create(fmt.Sprintf("%s/n%d", parent, i), []byte("x"), 0, acl); err != nil {
				errs <- err
			}
		}()
	}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := conn.Multi(
				&zk.CreateRequest{Path: fmt.Sprintf("%s/m%d", root, i), Data: []byte("m"), Acl: acl},
				&zk.CreateRequest{Path: fmt.Sprintf("%s/m%d/c", root, i), Data: []byte("c"), Acl: acl},
				&zk.CreateRequest{Path: fmt.Sprintf("%s/a/m%d", root, i), Data: []byte("a"), Acl: acl},
			)
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	reads := func() float64 {
		var sum float64
		for _, kind := range []string{"parent", "ctime", "acl"} {
			for _, res := range []string{"ok", "gone", "error"} {
				var m dto.Metric
				if err := tap.metrics.readbacks.WithLabelValues(kind, res).Write(&m); err != nil {
					t.Fatal(err)
				}
				sum += m.GetCounter().GetValue()
			}
		}
		return sum
	}
	if r := reads(); r > 20 {
		t.Fatalf("%v read-backs while %d creates were answered with the journal unreachable: the reads are in the reply path", r, creates)
	}
	gate.open.Store(true)
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d creates and 10 multis mirrored with %v read-backs", creates, reads())
	requireEqual(t, compareSubtree(t, ens.Hosts(), root, n), root)
}

// TestTapDeleteParentRegisters: a lock recipe's churn (create an ephemeral
// sequential child, delete it) through the tap, ending on deletes, with no
// reconciler: the journal holds ZooKeeper's parent exactly. A delete's reply
// carries no stat, and needs none: ZooKeeper's delete moves only the parent's
// pzxid (to the delete's zxid) and leaves its persisted cversion alone, which
// the journal mirrors; a sequential create's name gives the persisted
// cversion. (The reconciler's parent check must compare persisted with
// persisted: comparing the client-visible cversion "repaired" a lock's parent
// after every release and held the cutover's repairs gate shut.)
func TestTapDeleteParentRegisters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)
	root := freshRoot(t)
	conn, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	acl := zk.WorldACL(zk.PermAll)
	lock := root + "/lock"
	for _, p := range []string{root, lock} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	var held []string
	for i := range 20 {
		p, err := conn.Create(lock+"/lock-", nil, zk.FlagEphemeral|zk.FlagSequence, acl)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			held = append(held, p) // a holder that stays a while
			continue
		}
		if err := conn.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
	}
	// The last changes under the parent are deletes.
	for _, p := range held[:3] {
		if err := conn.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	requireEqual(t, compareSubtree(t, ens.Hosts(), root, n), root)
}
