package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// quietSetup is a quiet one-server ensemble with a tap and a one-node journal
// (on disk, reopenable): 140 writes through the tap, then an alignment
// through it, so that both sides logged a digest at the aligned zxid, and
// the tap's queue delivered.
type quietSetup struct {
	ens     *zktest.Ensemble
	node    *raftjournal.Node
	nodeCfg raftjournal.NodeConfig
	tap     *Tap
	via     *zk.Conn // a session through the tap, kept open (closing it is a txn)
	direct  *zk.Conn
	aligned int64
}

// alignOn sets path through conn until the write lands on a multiple of 128.
func alignOn(t testing.TB, conn *zk.Conn, path string) int64 {
	t.Helper()
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
		t.Fatal(err)
	}
	for {
		st, err := conn.Set(path, []byte("align"), -1)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mzxid%128 == 0 {
			return st.Mzxid
		}
	}
}

func newQuietSetup(t *testing.T) *quietSetup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q := &quietSetup{ens: zktest.New(t, zktest.Options{Servers: 1})}
	c := raftjournal.DefaultNodeConfig()
	c.NodeID, c.DataDir, c.RaftAddr, c.AdminAddr = "j1", t.TempDir(), testlog.FreeAddr(t), "127.0.0.1:0"
	c.Secret = testlog.Secret()
	c.Logger = testlog.New(t).With("node", "j1")
	c.Bootstrap = true
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	q.nodeCfg = c
	q.open(t)
	q.nodeCfg.Bootstrap = false // a reopen finds its configuration on disk
	q.tap = startTap(t, q.ens.Hosts(), q, nil)
	q.direct = zkWriter(t, q.ens.Hosts())
	via, _, err := zk.Connect([]string{q.tap.Addr()}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(via.Close)
	q.via = via
	mustCreate(t, via, "/app", []byte("app"), 0, nil)
	for i := range 140 {
		mustCreate(t, via, fmt.Sprintf("/app/c%03d", i), []byte("v"), 0, nil)
	}
	q.aligned = alignOn(t, via, "/align")
	if err := q.tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	return q
}

// open (re)opens the journal node and waits until it leads.
func (q *quietSetup) open(t *testing.T) {
	t.Helper()
	// A reopen must take the Raft address its configuration records; a
	// parallel test's connection may hold that port for a moment (FreeAddr's
	// port was given back to the system), so a bind failure is retried.
	var n *raftjournal.Node
	testlog.WaitFor(t, 30*time.Second, "the journal node to open", func() error {
		var err error
		if n, err = raftjournal.Open(q.nodeCfg); err != nil && !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
		return err
	})
	t.Cleanup(func() { n.Close() })
	q.node = n
}

// Submit makes the setup a Journal that follows a reopened node.
func (q *quietSetup) Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error) {
	return q.node.SubmitEntry(ctx, entry)
}

func (q *quietSetup) reconciler(t *testing.T, mod func(*ReconcilerConfig)) *Reconciler {
	t.Helper()
	cfg := DefaultReconcilerConfig()
	cfg.ZK, cfg.Journal, cfg.View = q.ens.Hosts(), q, NodeView(q.node)
	cfg.Grace, cfg.Interval = 300*time.Millisecond, 0
	cfg.Logger = testlog.New(t).With("component", "reconciler")
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewReconciler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestReconcilerDigestQuietEnsemble is issue 12 item 3: on a quiet ensemble
// whose newest logged digest (at the aligned zxid, equal on both sides)
// predates writes made around the proxy, a digest check must not say "equal":
// without alignment it says "unknown"; with alignment writes allowed it makes
// a comparable point at ZooKeeper's latest zxid and finds the difference, and
// after a repair pass finds the digests equal there.
func TestReconcilerDigestQuietEnsemble(t *testing.T) {
	t.Parallel()
	q := newQuietSetup(t)
	// Writes around the proxy, fewer than 128: ZooKeeper logs no new digest.
	if _, err := q.direct.Set("/app/c007", []byte("changed around the proxy"), -1); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, q.direct, "/app/bypass", []byte("b"), 0, nil)

	r := q.reconciler(t, nil)
	for i := range 2 {
		v, err := r.DigestCheck(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if v.Result != DigestUnknown {
			t.Fatalf("check %d: %+v; want unknown (ZooKeeper's newest logged digest, at %#x, predates the writes around the proxy)", i, v, q.aligned)
		}
	}

	r = q.reconciler(t, func(c *ReconcilerConfig) { c.AlignPath, c.AlignVia = "/zk2raft-align", []string{q.tap.Addr()} })
	v, err := r.DigestCheck(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != DigestDifferent || v.Zxid <= q.aligned {
		t.Fatalf("aligned check %+v; want different at a zxid past %#x", v, q.aligned)
	}
	t.Logf("aligned check: %s at %#x (%s)", v.Result, v.Zxid, v.How)
	if _, err := r.RepairAll(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	v, err = r.DigestCheck(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != DigestEqual || v.Zxid%128 != 0 {
		t.Fatalf("after the repair pass: %+v; want equal at an aligned zxid", v)
	}
}

// TestReconcilerRestart is issue 12 item 5. A journal node restarted from a
// snapshot replays the rest of its log only once it leads again: the first
// digest check after the restart must see the journal as it is (here equal
// to ZooKeeper at the aligned zxid, compared at ZooKeeper's latest state),
// not the snapshot's state. And a reconciler that starts must run its
// startup pass whatever the digests say short of "equal": a write around the
// proxy made while no reconciler ran (no event will tell of it) is repaired.
func TestReconcilerRestart(t *testing.T) {
	t.Parallel()
	q := newQuietSetup(t)
	via := q.via
	// A snapshot, then more mirrored writes and a new alignment: a restarted
	// node holds those in its log only.
	if err := q.node.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, err := via.Set(fmt.Sprintf("/app/c%03d", i%140), []byte(fmt.Sprint(i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	aligned := alignOn(t, via, "/align")
	if err := q.tap.WaitDelivered(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := q.node.Close(); err != nil {
		t.Fatal(err)
	}
	q.open(t)
	r := q.reconciler(t, nil)
	v, err := r.DigestCheck(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != DigestEqual || v.Zxid != aligned || v.How != "current" {
		t.Fatalf("first check after the restart: %+v; want equal at %#x, compared at ZooKeeper's latest state", v, aligned)
	}

	// A write around the proxy while no reconciler runs, then one starts.
	if _, err := q.direct.Set("/app/c001", []byte("while no reconciler ran"), -1); err != nil {
		t.Fatal(err)
	}
	startReconciler(t, r)
	reconcileWait(t, time.Minute, "the startup pass to repair the write made before it ran", func() error {
		n, ok := q.node.FSM().Node("/app/c001")
		if !ok || string(n.Data) != "while no reconciler ran" {
			return fmt.Errorf("journal has %v", n)
		}
		return nil
	})
	if st := r.Stats(); st.RepairPasses == 0 {
		t.Errorf("stats %+v: no repair pass", st)
	}
	waitConverged(t, q.ens.Hosts(), "/", NodeView(q.node), time.Minute)
}
