package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// rollbackToPrimary is the rebaseline tests' start: a rollback rig with its
// reverse mirror and one proxy, n go-zookeeper sessions through it opened on
// ZooKeeper (mirrored into the journal, so that they resume on both sides),
// each with its own node under /load, then the cutover to primary.
func rollbackToPrimary(t *testing.T, n int) (*rig, *proxy, []*gozk.Conn) {
	t.Helper()
	r := newRollbackRig(t)
	r.startMirror(t)
	p := r.startProxyWith("p1", r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Auth = []string{"digest:" + rollbackSuper} })
	var conns []*gozk.Conn
	var ids []int64
	for i := range n {
		c, _ := gozkThrough(t, p.tap.Addr())
		if i == 0 {
			if _, err := c.Create("/load", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Create(fmt.Sprintf("/load/w%d", i), []byte("0"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ids = append(ids, c.SessionID())
	}
	r.waitMirrored(t, ids...)
	testlog.WaitFor(t, 2*time.Minute, "the proxy's reconciler to be quiet", func() error {
		rs := p.agent.State().Reconcile
		if ago := time.Since(rs.LastRepair); !rs.LastRepair.IsZero() && ago < 2*time.Second {
			return fmt.Errorf("last repair %s ago", ago)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if rep, err := ToPrimary(ctx, r.rollbackOptions()); err != nil {
		t.Fatalf("cutover: %v (%+v)", err, rep)
	}
	for _, c := range conns {
		testlog.WaitFor(t, 60*time.Second, "a session on the journal", func() error {
			_, err := c.Sync("/load")
			return err
		})
	}
	return r, p, conns
}

// TestRollbackRebaselineUnderLoad: go-zookeeper sessions write through the
// proxy without pause, before, across and after the rollback, until it
// returns, each on its own node, and one creates new nodes. The rebaseline
// must end with a true statement — the journal equals ZooKeeper by the
// digests at a zxid after its repairs, that zxid named — and the rollback
// succeeds (exit 0 in the CLI). Once the load stops and the proxy's mirrors
// are in, verify finds the two sides equal node by node.
func TestRollbackRebaselineUnderLoad(t *testing.T) {
	t.Parallel()
	const writers = 4
	r, p, conns := rollbackToPrimary(t, writers)
	// Writes on the journal in primary, for the rebaseline to repair.
	for i := range 20 {
		if _, err := conns[0].Create(fmt.Sprintf("/load/p%02d", i), []byte("primary"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}

	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i, c := range conns {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i == writers-1 && k%4 == 0 {
					_, err = c.Create(fmt.Sprintf("/load/c%05d", k), []byte("new"), 0, gozk.WorldACL(gozk.PermAll))
				} else {
					_, err = c.Set(fmt.Sprintf("/load/w%d", i), []byte(fmt.Sprint(k)), -1)
				}
				switch {
				case err == nil:
					done.Add(1)
				case errors.Is(err, gozk.ErrConnectionClosed) || errors.Is(err, gozk.ErrNoServer) || errors.Is(err, gozk.ErrNodeExists):
					// The connection loss of the switch (a create may
					// have applied before it: its retry finds the node).
				default:
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	testlog.WaitFor(t, time.Minute, "the load to run on the journal", func() error {
		if n := done.Load(); n < 50 {
			return fmt.Errorf("%d writes", n)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := r.rollbackOptions()
	var atSwitch int64
	o.stepHook = func(step string) error {
		if step == "switch" {
			atSwitch = done.Load()
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	during := done.Load() - atSwitch
	if err != nil {
		t.Fatalf("rollback under load: %v\nsteps: %+v", err, rep)
	}
	last := rep.Steps[len(rep.Steps)-1]
	t.Logf("rebaseline under load (%d writes acknowledged from the switch back to its end): %s", during, last.Detail)
	if last.Name != "rebaseline" || !last.OK || !strings.HasPrefix(last.Detail, rebaselineByDigest+": digests equal at") {
		t.Fatalf("rebaseline under load: %+v", last)
	}
	if during == 0 {
		t.Fatal("no write was acknowledged while the rebaseline ran: the test did not load it")
	}
	if rep.Outcome != "committed" || r.phase() != raftjournal.PhaseShadow || p.tap.Backend() != dualwrite.BackendZooKeeper {
		t.Fatalf("outcome %q, phase %s, backend %s", rep.Outcome, r.phase(), p.tap.Backend())
	}

	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("writes failed with more than a connection loss: %v", errs[:min(len(errs), 5)])
	}
	// The statement was true: with the load stopped and the mirrors in,
	// both sides are equal node by node.
	testlog.WaitFor(t, 2*time.Minute, "verify clean once the load stopped", func() error {
		if err := p.tap.WaitDelivered(ctx); err != nil {
			return err
		}
		return verifyErr(r)
	})
}

// TestRollbackRebaselineFindsOutside: a node changed in the journal behind
// everyone's back after the commit — outside what the journal wrote in its
// epoch and what the sentry recorded — is not among the targeted repair's
// nodes; the digests then differ, and the rebaseline compares every node,
// finds it and repairs it before it says equal. It never says equal over the
// wrong tree.
func TestRollbackRebaselineFindsOutside(t *testing.T) {
	t.Parallel()
	r, _, conns := rollbackToPrimary(t, 1)
	c := conns[0]
	// Before the cutover /load and /load/w0 exist; /load's children change
	// in primary too.
	if _, err := c.Create("/load/in-primary", []byte("p"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	parent, ok := r.node.FSM().Node("/load")
	if !ok {
		t.Fatal("the journal has no /load")
	}
	w0, ok := r.node.FSM().Node("/load/w0")
	if !ok {
		t.Fatal("the journal has no /load/w0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := r.rollbackOptions()
	o.stepHook = func(step string) error {
		if step != "switch" {
			return nil
		}
		// A ghost: a node ZooKeeper never had, imported into the journal at
		// an old zxid (before /load/w0's creation, after /load's), as a
		// stray import or a bug might.
		z := parent.Stat.Czxid
		if z >= w0.Stat.Czxid {
			return fmt.Errorf("test: /load %#x is not older than /load/w0 %#x", z, w0.Stat.Czxid)
		}
		ghost := &znode.Node{Path: "/load/ghost", Data: []byte("behind everyone's back"), ACL: znode.WorldAnyone(),
			Stat: znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: parent.Stat.Ctime, Mtime: parent.Stat.Ctime}}
		if err := submit(ctx, r.jc, &raftjournal.ImportBatch{Nodes: []*znode.Node{ghost}}); err != nil {
			return err
		}
		if _, ok := r.node.FSM().Node("/load/ghost"); !ok {
			return errors.New("test: the journal did not take the ghost")
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	if err != nil {
		t.Fatalf("rollback: %v\nsteps: %+v", err, rep)
	}
	last := rep.Steps[len(rep.Steps)-1]
	t.Logf("rebaseline: %s", last.Detail)
	if last.Name != "rebaseline" || !last.OK || !rebaselineClean(last.Detail) ||
		!strings.Contains(last.Detail, "not proven: digests differ") {
		t.Fatalf("rebaseline with a node changed outside the targeted set: %+v", last)
	}
	if _, ok := r.node.FSM().Node("/load/ghost"); ok {
		t.Fatal("the rebaseline said equal, and the journal still has the ghost ZooKeeper never had")
	}
	if err := verifyErr(r); err != nil {
		t.Fatalf("after the rebaseline: %v", err)
	}
}
