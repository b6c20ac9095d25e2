package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// testCreds are the cluster credentials of the tests' journals.
func testCreds() raftjournal.Credentials { return raftjournal.Credentials{Secret: testlog.Secret()} }

// remoteAdmin is a client of n's admin endpoint.
func remoteAdmin(n *raftjournal.Node) *raftjournal.AdminClient {
	return raftjournal.NewAdminClient(n.AdminAddr(), testCreds())
}

// journalNode starts a one-node journal (shadow phase, empty tree) with an
// on-disk store, closed in cleanup.
func journalNode(t testing.TB) *raftjournal.Node {
	t.Helper()
	return testproc.OpenNode(t, nil)
}

// startTap starts a tap in front of hosts mirroring into j, closed in cleanup.
func startTap(t testing.TB, hosts []string, j Journal, mod func(*Config)) *Tap {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ZK = hosts
	cfg.Journal = j
	cfg.QueueDir = t.TempDir()
	cfg.Logger = testlog.New(t).With("component", "tap")
	if mod != nil {
		mod(&cfg)
	}
	tap, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	return tap
}

// tapFixture is what most tap tests start from: the shared ensemble, a fresh
// one-node journal, a tap in front of the ensemble mirroring into the
// journal (through wrap's Journal when wrap is set: a gate, say), a fresh
// root (not created), and a go-zookeeper client connected through the tap.
type tapFixture struct {
	ens    *zktest.Ensemble
	node   *raftjournal.Node
	tap    *Tap
	root   string
	client *zk.Conn
}

func newTapFixture(t testing.TB, wrap func(Journal) Journal, mod func(*Config)) *tapFixture {
	t.Helper()
	f := &tapFixture{ens: testEnsemble(t), node: journalNode(t), root: freshRoot(t)}
	var j Journal = importer.NodeJournal(f.node)
	if wrap != nil {
		j = wrap(j)
	}
	f.tap = startTap(t, f.ens.Hosts(), j, mod)
	c, _, err := zk.Connect([]string{f.tap.Addr()}, 10*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f.client = c
	return f
}

// compareWithJournal verifies ZooKeeper's subtree at root against the
// journal's: zero differences or the test fails with the report.
func assertJournalEqual(t testing.TB, hosts []string, root string, n *raftjournal.Node) {
	t.Helper()
	// ZooKeeper masks digest ACLs (user:x) to readers without ADMIN on the
	// node: read as the workloads' identity.
	rep := compareSubtree(t, hosts, root, n, workloadAuth, kazooAuth)
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("journal differs from ZooKeeper under %s:\n%s", root, b.String())
	}
}

// TestTapMirrorsWorkloads runs both client workloads (go-zookeeper and kazoo)
// through the tap in front of a fresh ensemble and a fresh journal; then the
// journal holds exactly ZooKeeper's tree, node by node and by ZooKeeper's own
// digest at the same zxid.
func TestTapMirrorsWorkloads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zktest.Options{Servers: 1, ExtendedTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)

	st, err := runGoWorkload(ctx, t, []string{tap.Addr()}, "/go", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("go workload: %+v", st)
	if err := runKazooWorkload(ctx, t, tap.Addr(), "/kz"); err != nil {
		t.Fatal(err)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	zxid := alignThrough(t, tap.Addr(), "/align")
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	assertJournalEqual(t, ens.Hosts(), "/", n)

	out, err := zkclient.FourLetterWord(ctx, ens.Hosts()[0], "hash")
	if err != nil {
		t.Fatal(err)
	}
	log, err := zkclient.ParseDigestLog(out)
	if err != nil {
		t.Fatal(err)
	}
	var zkDigest znode.Digest
	found := false
	for _, e := range log {
		if e.Zxid == zxid {
			zkDigest, found = e.Digest, true
		}
	}
	if !found {
		t.Fatalf("ZooKeeper logged no digest at zxid %#x: %v", zxid, log)
	}
	var got *znode.Digest
	for _, e := range n.FSM().DigestHistory() {
		if e.Zxid == zxid {
			got = &e.Digest
		}
	}
	if got == nil || *got != zkDigest {
		t.Fatalf("journal digest at %#x %v (history %v), ZooKeeper's %s", zxid, got, n.FSM().DigestHistory(), zkDigest)
	}
	s := tap.Status()
	if s.Lost != nil || s.QueueRecords != 0 || s.Mirrored == 0 || s.LastMirrorZxid == "" {
		t.Fatalf("tap status after the workloads: %+v", s)
	}
	t.Logf("journal digest %s = ZooKeeper's at %#x; %d writes mirrored", zkDigest, zxid, s.Mirrored)
}

// alignThrough writes a scratch node through addr until the ensemble's last
// zxid is a multiple of 128 (ZooKeeper logs its digest there) and returns it.
func alignThrough(t testing.TB, addr, path string) int64 {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
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

// kazooAuth is the digest identity of testdata/kazoo_workload.py.
const kazooAuth = "kazoo:kazoo-secret"

type discardZK struct{}

func (discardZK) Printf(string, ...any) {}

// TestTapMalformedClient: garbage from one client closes that connection; a
// client on another connection carries on.
func TestTapMalformedClient(t *testing.T) {
	f := newTapFixture(t, nil, nil)
	n, tap, root, good := f.node, f.tap, f.root, f.client
	if _, err := good.Create(root, []byte("a"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	for _, garbage := range [][]byte{
		{0x7f, 0xff, 0xff, 0xff, 1, 2, 3},           // a frame longer than jute.maxbuffer
		{0, 0, 0, 3, 1, 2, 3},                       // a connect request too short to decode
		append([]byte{0, 0, 0, 2}, []byte("xx")...), // likewise
	} {
		c, err := net.Dial("tcp", tap.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(garbage)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		_, err = c.Read(buf)
		c.Close()
		if err == nil {
			t.Fatalf("garbage %x got an answer instead of a closed connection", garbage)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("garbage %x: connection left open", garbage)
		}
	}
	if _, err := good.Set(root, []byte("b"), -1); err != nil {
		t.Fatalf("the well-behaved client broke: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	data, _, err := n.Get(ctx, root)
	if err != nil || string(data) != "b" {
		t.Fatalf("journal %s = %q, %v; want \"b\"", root, data, err)
	}
}

// TestTapFourLetterWords: a four-letter word through the tap is answered by
// the server as if asked directly.
func TestTapFourLetterWords(t *testing.T) {
	ens := testEnsemble(t)
	n := journalNode(t)
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := zkclient.FourLetterWord(ctx, tap.Addr(), "ruok")
	if err != nil || out != "imok" {
		t.Fatalf("ruok through the tap: %q, %v", out, err)
	}
	if _, err := zkclient.ServerZxid(ctx, tap.Addr()); err != nil {
		t.Fatalf("srvr through the tap: %v", err)
	}
}

// gateJournal is a real journal behind a switch: closed, it is unreachable,
// as a journal cluster is during an outage.
type gateJournal struct {
	j    Journal
	open atomic.Bool
}

func (g *gateJournal) Submit(ctx context.Context, entry []byte) (*raftjournal.Result, error) {
	if !g.open.Load() {
		return nil, errors.New("journal unreachable (test gate closed)")
	}
	return g.j.Submit(ctx, entry)
}

// TestTapJournalOutageAndRestart: while the journal is unreachable, clients
// carry on and the mirrors wait in the queue; the proxy restarts on the same
// queue, the journal comes back, and it receives every write.
func TestTapJournalOutageAndRestart(t *testing.T) {
	ens := testEnsemble(t)
	n := journalNode(t)
	gate := &gateJournal{j: importer.NodeJournal(n)}
	queueDir := t.TempDir()
	tap1 := startTap(t, ens.Hosts(), gate, func(c *Config) { c.QueueDir = queueDir })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := freshRoot(t)
	if _, err := runGoWorkload(ctx, t, []string{tap1.Addr()}, root, 7); err != nil {
		t.Fatal(err)
	}
	st := tap1.Status()
	if st.QueueRecords == 0 || st.Delivered != 0 {
		t.Fatalf("with the journal down the mirrors should wait in the queue: %+v", st)
	}
	queued := st.QueueRecords
	if err := tap1.Close(); err != nil {
		t.Fatal(err)
	}
	gate.open.Store(true)
	tap2 := startTap(t, ens.Hosts(), gate, func(c *Config) { c.QueueDir = queueDir })
	if err := tap2.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d mirrors queued during the outage, delivered after the restart", queued)
	assertJournalEqual(t, ens.Hosts(), root, n)
}

// TestTapSync: in sync mode a write's reply comes after the journal committed
// its mirror; with the journal down the reply still comes, after SyncTimeout.
func TestTapSync(t *testing.T) {
	gate := &gateJournal{}
	gate.open.Store(true)
	f := newTapFixture(t, func(j Journal) Journal { gate.j = j; return gate },
		func(c *Config) { c.Sync, c.SyncTimeout = true, 500*time.Millisecond })
	n, tap, root, conn := f.node, f.tap, f.root, f.client
	var err error
	ctx := t.Context()
	for i := range 20 {
		v := fmt.Sprint(i)
		if i == 0 {
			_, err = conn.Create(root, []byte(v), 0, zk.WorldACL(zk.PermAll))
		} else {
			_, err = conn.Set(root, []byte(v), -1)
		}
		if err != nil {
			t.Fatal(err)
		}
		// No waiting: the reply came after the commit.
		data, _, err := n.Get(ctx, root)
		if err != nil || string(data) != v {
			t.Fatalf("write %d acknowledged before the journal had it: %q, %v", i, data, err)
		}
	}
	gate.open.Store(false)
	start := time.Now()
	if _, err := conn.Set(root, []byte("outage"), -1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 10*time.Second {
		t.Fatalf("with the journal down a sync write took %v, want about the 500ms SyncTimeout", d)
	}
	gate.open.Store(true)
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := tap.WaitDelivered(ctx2); err != nil {
		t.Fatal(err)
	}
	data, _, err := n.Get(ctx, root)
	if err != nil || string(data) != "outage" {
		t.Fatalf("after the outage the journal has %q, %v", data, err)
	}
}

// TestTapQueueOverflowRepaired: with the journal down and a tiny queue, the
// writes past the bound are lost to the mirror but never to the clients; the
// queue records that a repair is owed, and RepairOwed makes the journal equal
// to ZooKeeper and clears the record.
func TestTapQueueOverflowRepaired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zktest.Options{Servers: 1, ExtendedTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	n := journalNode(t)
	gate := &gateJournal{j: importer.NodeJournal(n)}
	tap := startTap(t, ens.Hosts(), gate, func(c *Config) { c.QueueMaxRecords = 10 })
	if _, err := runGoWorkload(ctx, t, []string{tap.Addr()}, "/overflow", 3); err != nil {
		t.Fatalf("clients must not notice the overflow: %v", err)
	}
	lost := tap.Status().Lost
	if lost == nil || lost.Count == 0 {
		t.Fatalf("queue of 10 records took the whole workload: %+v", tap.Status())
	}
	t.Logf("%d mirrors lost to the full queue", lost.Count)
	gate.open.Store(true)
	rec, err := NewReconciler(ReconcilerConfig{
		ZK: ens.Hosts(), Auth: []string{"digest:" + workloadAuth}, Journal: gate, View: NodeView(n),
		Logger: testlog.New(t).With("component", "reconcile"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- RepairOwed(rctx, tap, rec, 200*time.Millisecond) }()
	deadline := time.Now().Add(2 * time.Minute)
	for tap.Status().Lost != nil {
		if time.Now().After(deadline) {
			t.Fatal("the repair owed never completed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	assertJournalEqual(t, ens.Hosts(), "/overflow", n)
}

// TestTapClientLeavesAfterCloseSession: a client that sends closeSession and
// drops the connection at once still has the close mirrored (ZooKeeper
// answers after the client is gone): its ephemerals leave the journal too.
func TestTapClientLeavesAfterCloseSession(t *testing.T) {
	f := newTapFixture(t, nil, nil)
	ens, n, tap, root, conn := f.ens, f.node, f.tap, f.root, f.client
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tap.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fr := zkwire.NewFrameReader(c, zkwire.DefaultMaxReplyFrame)
	send := func(b []byte) {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(zkwire.AppendRecordFrame(nil, &zkwire.ConnectRequest{TimeOut: 10000, Passwd: make([]byte, 16)}))
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	eph := root + "/eph"
	b, err := zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: 1, Op: zkwire.OpCreate},
		&zkwire.CreateRequest{Path: eph, Data: []byte("e"), ACL: znode.WorldAnyone(), Flags: zkwire.ModeEphemeral})
	if err != nil {
		t.Fatal(err)
	}
	send(b)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	b, _ = zkwire.AppendRequestFrame(nil, zkwire.RequestHeader{Xid: 2, Op: zkwire.OpCloseSession}, nil)
	send(b)
	c.Close() // without waiting for the reply
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, _, _ := conn.Exists(eph); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ZooKeeper never closed the session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	assertJournalEqual(t, ens.Hosts(), root, n)
}
