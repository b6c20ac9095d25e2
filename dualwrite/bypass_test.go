package dualwrite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
)

// movingHosts is a go-zookeeper HostProvider for a session that moves: it
// gives the tap until move is called, and ZooKeeper itself from then on, so
// the session's reconnect after the tap is gone resumes it there. (Connect
// shuffles the servers it is given, so the provider keeps its own.)
type movingHosts struct {
	mu          sync.Mutex
	tap, direct string
	moved       bool
}

func (h *movingHosts) Init([]string) error { return nil }

func (h *movingHosts) Len() int { return 2 }

func (h *movingHosts) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.moved {
		return h.tap, false
	}
	return h.direct, false
}

func (h *movingHosts) Connected() {}

func (h *movingHosts) move() {
	h.mu.Lock()
	h.moved = true
	h.mu.Unlock()
}

// TestTapBypassAfterProxiedWrite is issue 12 item 2: writes around the proxy
// within the grace after a proxied write to the same path, which the
// reconciler used to skip because the tap "recently mirrored" the path:
//
//   - a node created through the proxy and deleted directly;
//   - a node created through the proxy and set directly;
//   - an ephemeral created through the proxy by a session that then moves to
//     a direct connection (the proxy goes away) and closes there.
//
// With the tap's hint, the reconciler settles each event by the zxid rule
// once the grace has passed, and the journal ends equal to ZooKeeper, the
// parent's pzxid, cversion and child count included.
func TestTapBypassAfterProxiedWrite(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens := testEnsemble(t)
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)
	root := freshRoot(t)

	viaTap, _, err := zk.Connect([]string{tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer viaTap.Close()
	direct := zkWriter(t, ens.Hosts())
	mustCreate(t, viaTap, root, []byte("root"), 0, nil)
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultReconcilerConfig()
	cfg.ZK, cfg.Journal, cfg.View, cfg.Root = ens.Hosts(), importer.NodeJournal(n), NodeView(n), root
	cfg.Interval = 0 // events only (and the startup pass)
	cfg.Mirrored = tap.MirroredZxid
	cfg.Logger = testlog.New(t).With("component", "reconciler")
	r, err := NewReconciler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	startReconciler(t, r)
	waitWatching(t, r, viaTap, root+"/probe")

	// Proxied writes, each followed at once (well within the grace) by one
	// around the proxy.
	mustCreate(t, viaTap, root+"/deleted", []byte("a"), 0, nil)
	if err := direct.Delete(root+"/deleted", -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, viaTap, root+"/set", []byte("b"), 0, nil)
	if _, err := direct.Set(root+"/set", []byte("set around the proxy"), -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, viaTap, root+"/proxied", []byte("c"), 0, nil) // covered by the tap: no check needed

	// A session that moves: through the tap first, then ZooKeeper directly.
	hosts := &movingHosts{tap: tap.Addr(), direct: ens.Hosts()[0]}
	mover, events, err := zk.Connect([]string{tap.Addr(), ens.Hosts()[0]}, 30*time.Second,
		zk.WithLogger(discardZK{}), zk.WithHostProvider(hosts))
	if err != nil {
		t.Fatal(err)
	}
	defer mover.Close()
	if err := waitSession(ctx, mover, events); err != nil {
		t.Fatal(err)
	}
	session := mover.SessionID()
	if _, err := mover.Create(root+"/eph", []byte("e"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.FSM().Node(root + "/eph"); !ok {
		t.Fatalf("the ephemeral was not mirrored (mover on %s, tap %s, status %+v)", mover.Server(), tap.Addr(), tap.Status())
	}
	hosts.move()
	tap.Close() // the proxy goes away: the session moves to ZooKeeper itself
	reconcileWait(t, time.Minute, "the session to move to a direct connection", func() error {
		if mover.State() != zk.StateHasSession || mover.Server() == tap.Addr() {
			return fmt.Errorf("state %v, server %s", mover.State(), mover.Server())
		}
		return nil
	})
	if mover.SessionID() != session {
		t.Fatalf("the session changed (%#x, was %#x): it did not move", mover.SessionID(), session)
	}
	mover.Close() // closeSession on the direct connection deletes the ephemeral

	waitConverged(t, ens.Hosts(), root, NodeView(n), time.Minute)
	if st := r.Stats(); st.NodeRepairs == 0 || st.DeleteRepairs < 2 {
		t.Errorf("reconciler stats %+v: want node and delete repairs", st)
	}
}
