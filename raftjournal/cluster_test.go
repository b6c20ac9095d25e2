package raftjournal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/znode"
)

// Cluster tests run real hashicorp/raft nodes with on-disk stores under
// t.TempDir(), talking TCP on loopback. Timeouts are short (loopback) but not so
// short that the race detector on two cores makes leaders flap.

func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

func freeAddr(t testing.TB) string { return testlog.FreeAddr(t) }

// testNodeConfig is a node configuration with loopback timings.
func testNodeConfig(t testing.TB, id string, logger *slog.Logger) NodeConfig {
	t.Helper()
	c := DefaultNodeConfig()
	c.NodeID = id
	c.DataDir = t.TempDir()
	c.RaftAddr = freeAddr(t)
	c.AdminAddr = "127.0.0.1:0"
	c.Secret = testlog.Secret()
	c.Logger = logger.With("node", id)
	// Raft's default timings: shorter ones make leaders flap when the race
	// detector and other test binaries share two cores.
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SessionTick = 20 * time.Millisecond
	c.CleanupInterval = 100 * time.Millisecond
	c.JoinTimeout = 30 * time.Second
	c.ForwardTimeout = 20 * time.Second
	return c
}

// testCreds are the credentials test nodes share.
func testCreds() Credentials { return Credentials{Secret: testlog.Secret()} }

// testAdmin is a client of n's admin endpoint with the test cluster's secret.
func testAdmin(n *Node) *AdminClient { return NewAdminClient(n.AdminAddr(), testCreds()) }

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCluster is a set of in-process nodes; a stopped node's slot is nil.
type testCluster struct {
	t     testing.TB
	cfgs  []NodeConfig
	nodes []*Node
}

// newTestCluster starts size nodes: the first bootstraps, the others join
// through its admin address. tweak, when not nil, adjusts every config.
func newTestCluster(t testing.TB, size int, tweak func(*NodeConfig)) *testCluster {
	t.Helper()
	logger := testLogger(t)
	c := &testCluster{t: t}
	t.Cleanup(c.closeAll)
	for i := range size {
		cfg := testNodeConfig(t, fmt.Sprintf("n%d", i+1), logger)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = c.nodes[0].AdminAddr()
		}
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := Open(cfg)
		if err != nil {
			t.Fatalf("open %s: %v", cfg.NodeID, err)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, n)
		if i == 0 {
			waitFor(t, 10*time.Second, "the first node to lead", func() error {
				if !n.IsLeader() {
					return errors.New("not leader")
				}
				return nil
			})
		}
	}
	c.waitMembers(size)
	return c
}

func (c *testCluster) closeAll() {
	for i, n := range c.nodes {
		if n != nil {
			if err := n.Close(); err != nil {
				c.t.Errorf("close %s: %v", c.cfgs[i].NodeID, err)
			}
			c.nodes[i] = nil
		}
	}
}

// stop closes node i (raft shuts down without leaving the cluster).
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("close %s: %v", c.cfgs[i].NodeID, err)
	}
	c.nodes[i] = nil
}

// restart reopens node i from its data dir.
func (c *testCluster) restart(i int) *Node {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Bootstrap, cfg.Join = false, ""
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("restart %s: %v", cfg.NodeID, err)
	}
	c.nodes[i] = n
	return n
}

func (c *testCluster) running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits for one running node to lead and returns its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, 15*time.Second, "a leader", func() error {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				idx = i
				return nil
			}
		}
		return errors.New("no running node leads")
	})
	return idx
}

// follower returns the index of a running node that does not lead.
func (c *testCluster) follower(not ...int) int {
	c.t.Helper()
	l := c.leader()
	for i, n := range c.nodes {
		if n != nil && i != l && !slices.Contains(not, i) {
			return i
		}
	}
	c.t.Fatal("no running follower")
	return -1
}

func (c *testCluster) waitMembers(size int) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("%d members everywhere", size), func() error {
		for _, n := range c.running() {
			st := n.Status()
			if len(st.Members) != size {
				return fmt.Errorf("%s sees %d members", n.ID(), len(st.Members))
			}
			if st.Leader == "" {
				return fmt.Errorf("%s sees no leader", n.ID())
			}
		}
		return nil
	})
}

// converge waits until every running node has applied the same index and
// holds the same digest, and returns the digest.
func (c *testCluster) converge() znode.Digest {
	c.t.Helper()
	var d znode.Digest
	waitFor(c.t, 30*time.Second, "the nodes to converge", func() error {
		nodes := c.running()
		l := c.nodes[c.leader()]
		want, wantIdx := l.Digest(), l.AppliedIndex()
		for _, n := range nodes {
			if n.AppliedIndex() != wantIdx || n.Digest() != want {
				return fmt.Errorf("%s applied %d digest %s; leader %s applied %d digest %s", n.ID(), n.AppliedIndex(), n.Digest(), l.ID(), wantIdx, want)
			}
		}
		d = want
		return nil
	})
	return d
}

// primary moves the cluster to the primary phase (native writes allowed).
func (c *testCluster) primary() {
	c.t.Helper()
	if err := c.nodes[c.leader()].SetPhase(c.t.Context(), PhasePrimary, false); err != nil {
		c.t.Fatal(err)
	}
}

// treeOf dumps a node's tree.
func treeOf(t testing.TB, n *Node) map[string]*znode.Node {
	t.Helper()
	return dumpTree(t, n.FSM())
}

func TestNodeAPISingle(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes[0]
	ctx := t.Context()

	// A fresh journal shadows ZooKeeper: native writes are refused.
	if _, _, err := n.Create(ctx, "/x", nil, ModePersistent); !errors.Is(err, CodeNotReadOnly) {
		t.Fatalf("create in shadow: %v, want NotReadOnly", err)
	}
	c.primary()

	tests := []struct {
		name string
		do   func() error
		code Code
	}{
		{"create", func() error { _, _, err := n.Create(ctx, "/a", []byte("1"), ModePersistent); return err }, CodeOK},
		{"create exists", func() error { _, _, err := n.Create(ctx, "/a", nil, ModePersistent); return err }, CodeNodeExists},
		{"create no parent", func() error { _, _, err := n.Create(ctx, "/b/c", nil, ModePersistent); return err }, CodeNoNode},
		{"bad path", func() error { _, _, err := n.Create(ctx, "/a/", nil, ModePersistent); return err }, CodeBadArguments},
		{"set", func() error { _, err := n.Set(ctx, "/a", []byte("2"), 0); return err }, CodeOK},
		{"set bad version", func() error { _, err := n.Set(ctx, "/a", []byte("3"), 0); return err }, CodeBadVersion},
		{"ephemeral without session", func() error { _, _, err := n.Create(ctx, "/e", nil, ModeEphemeral); return err }, CodeSessionExpired},
		{"ttl", func() error {
			_, _, err := n.Create(ctx, "/ttl", nil, ModePersistentTTL, WithTTL(time.Hour))
			return err
		}, CodeOK},
		{"setACL", func() error { _, err := n.SetACL(ctx, "/a", znode.WorldAnyone(), 0); return err }, CodeOK},
		{"setACL empty", func() error { _, err := n.SetACL(ctx, "/a", nil, -1); return err }, CodeInvalidACL},
		{"delete not empty", func() error {
			if _, _, err := n.Create(ctx, "/a/kid", nil, ModePersistent); err != nil {
				return err
			}
			return n.Delete(ctx, "/a", -1)
		}, CodeNotEmpty},
		{"delete", func() error { return n.Delete(ctx, "/a/kid", 0) }, CodeOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodeOf(tc.do()); got != tc.code {
				t.Fatalf("code %s, want %s", got, tc.code)
			}
		})
	}

	data, st, err := n.Get(ctx, "/a", Linearizable())
	if err != nil || string(data) != "2" || st.Version != 1 || st.Aversion != 1 || st.NumChildren != 0 || st.Cversion != 2 {
		t.Fatalf("get /a: %q %+v %v", data, st, err)
	}
	acl, _, err := n.GetACL(ctx, "/a")
	if err != nil || !znode.EqualACLs(acl, znode.WorldAnyone()) {
		t.Fatalf("getACL: %v %v", acl, err)
	}

	// A failed multi reports ZooKeeper's per-op pattern and changes nothing.
	before := n.Digest()
	res, err := n.Multi(ctx, []Op{
		{Kind: OpCreate, Path: "/m1"},
		{Kind: OpCheck, Path: "/a", Version: 7},
		{Kind: OpSetData, Path: "/a", Data: []byte("x"), Version: -1},
	})
	if !errors.Is(err, CodeBadVersion) || len(res) != 3 || res[0].Err != CodeOK || res[1].Err != CodeBadVersion || res[2].Err != CodeRuntimeInconsistency {
		t.Fatalf("failed multi: %+v %v", res, err)
	}
	if n.Digest() != before {
		t.Fatal("failed multi changed the tree")
	}
	if _, ok, _ := n.Exists(ctx, "/m1"); ok {
		t.Fatal("failed multi created /m1")
	}

	// Watches fire after apply.
	w := NewWatcher(16)
	defer w.Close()
	if _, _, err := n.Get(ctx, "/a", WithWatcher(w)); err != nil {
		t.Fatal(err)
	}
	if err := n.Watch(ctx, "/", w, true); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Set(ctx, "/a", []byte("w"), -1); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	e, ok := w.Next(wctx)
	wcancel()
	if !ok {
		t.Fatal("no watch event")
	}
	if e.Type != EventNodeDataChanged || e.Path != "/a" {
		t.Fatalf("event %+v", e)
	}

	// Sessions: ephemerals go with the session; an unknown session is expired.
	s, err := n.CreateSession(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Create(ctx, "/eph", nil, ModeEphemeral, WithSession(s)); err != nil {
		t.Fatal(err)
	}
	if err := n.TouchSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := n.CloseSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := n.Exists(ctx, "/eph"); ok {
		t.Fatal("ephemeral survived its session")
	}
	if err := n.TouchSession(ctx, s); !errors.Is(err, CodeSessionExpired) {
		t.Fatalf("touch closed session: %v", err)
	}

	st2 := n.Status()
	if st2.Role != "leader" || st2.Leader != "n1" || st2.Phase != "primary" || st2.Digest != n.Digest().String() ||
		st2.NodeCount != n.FSM().NodeCount() || st2.AppliedIndex == 0 || st2.CommitIndex < st2.AppliedIndex || len(st2.Members) != 1 {
		t.Fatalf("status %+v", st2)
	}
}

// TestClusterWorkloadLeaderCrash runs a concurrent write workload on a
// three-node cluster, takes the leader down mid-flight (raft shut down without
// leaving, stores closed), keeps writing, restarts it, and checks that every
// acknowledged write is on every node and that the digests agree.
func TestClusterWorkloadLeaderCrash(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	if _, _, err := c.nodes[0].Create(ctx, "/w", nil, ModePersistent); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		acked = map[string][]byte{}
		ops   atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	var stopOnce sync.Once
	stopWriters := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopWriters) // before the cluster closes, even when the test fails
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Spread writes over whichever nodes are up (followers forward).
				var n *Node
				for k := range 3 {
					mu.Lock()
					cand := c.nodes[(w+i+k)%3]
					mu.Unlock()
					if cand != nil {
						n = cand
						break
					}
				}
				path := fmt.Sprintf("/w/%d-%d", w, i)
				data := []byte(fmt.Sprintf("v%d", i))
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, _, err := n.Create(wctx, path, data, ModePersistent)
				cancel()
				ops.Add(1)
				if err == nil {
					mu.Lock()
					acked[path] = data
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, 20*time.Second, "writes before the crash", func() error {
		if ops.Load() < 200 {
			return fmt.Errorf("%d writes", ops.Load())
		}
		return nil
	})
	l := c.leader()
	mu.Lock()
	old := c.nodes[l]
	c.nodes[l] = nil
	mu.Unlock()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	before := ops.Load()
	waitFor(t, 30*time.Second, "writes after the crash", func() error {
		if ops.Load() < before+200 {
			return fmt.Errorf("%d writes since the crash", ops.Load()-before)
		}
		return nil
	})
	cfg := c.cfgs[l]
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("restart the old leader: %v", err)
	}
	mu.Lock()
	c.nodes[l] = n
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	stopWriters()

	digest := c.converge()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes attempted, %d acknowledged, digest %s", ops.Load(), len(acked), digest)
	for _, n := range c.running() {
		tree := treeOf(t, n)
		for p, data := range acked {
			got, ok := tree[p]
			if !ok {
				t.Fatalf("%s lost acknowledged write %s", n.ID(), p)
			}
			if !bytes.Equal(got.Data, data) {
				t.Fatalf("%s: %s holds %q, want %q", n.ID(), p, got.Data, data)
			}
		}
	}
	first := treeOf(t, c.nodes[0])
	for _, n := range c.running()[1:] {
		if d := diffTrees(first, treeOf(t, n)); d != "" {
			t.Fatalf("%s differs from %s:\n%s", n.ID(), c.nodes[0].ID(), d)
		}
	}
}

// TestClusterFollowerWritesAndReads: writes on a follower reach the leader;
// a linearizable read on the other follower sees them at once.
func TestClusterFollowerWritesAndReads(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	f1 := c.follower()
	f2 := c.follower(f1)
	w, r := c.nodes[f1], c.nodes[f2]
	for i := range 50 {
		p := fmt.Sprintf("/f%d", i)
		if _, _, err := w.Create(ctx, p, []byte{byte(i)}, ModePersistent); err != nil {
			t.Fatalf("create %s on follower %s: %v", p, w.ID(), err)
		}
		data, st, err := r.Get(ctx, p, Linearizable())
		if err != nil || len(data) != 1 || data[0] != byte(i) || st.Version != 0 {
			t.Fatalf("linearizable read of %s on %s right after the write: %q %v", p, r.ID(), data, err)
		}
		if _, ok, err := r.Exists(ctx, p, Linearizable()); err != nil || !ok {
			t.Fatalf("linearizable exists %s: %v %v", p, ok, err)
		}
	}
	// Session touches and closes from a follower reach the leader.
	s, err := r.CreateSession(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.TouchSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	kids, _, err := w.Children(ctx, "/", Linearizable())
	if err != nil || len(kids) != 51 {
		t.Fatalf("children of / on %s: %d %v", w.ID(), len(kids), err)
	}
	if got := c.nodes[c.leader()].metrics; testCounter(got.forwardedIn) == 0 {
		t.Fatal("the leader counted no forwarded writes")
	}
	c.converge()
}

// TestClusterFullRestart: stop every node, start them all again; state and
// digest are identical.
func TestClusterFullRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	n := c.nodes[0]
	s, err := n.CreateSession(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mode := ModePersistent
		if i%10 == 0 {
			mode = ModeEphemeral
		}
		if _, _, err := c.nodes[i%3].Create(ctx, fmt.Sprintf("/r%d", i), []byte("x"), mode, WithSession(s)); err != nil {
			t.Fatal(err)
		}
	}
	// One node restarts from a snapshot plus log, the others from the log alone.
	if err := c.nodes[1].Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	d := c.converge()
	want := treeOf(t, c.nodes[0])
	wantSessions := c.nodes[0].FSM().Sessions()
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.restart(i)
	}
	c.waitMembers(3)
	if got := c.converge(); got != d {
		t.Fatalf("digest after restart %s, before %s", got, d)
	}
	for _, n := range c.running() {
		if diff := diffTrees(want, treeOf(t, n)); diff != "" {
			t.Fatalf("%s after restart:\n%s", n.ID(), diff)
		}
		if got := n.FSM().Sessions(); !slices.Equal(got, wantSessions) {
			t.Fatalf("%s sessions %v, want %v", n.ID(), got, wantSessions)
		}
	}
}

// TestClusterSnapshotInstall: a follower that was down while the leader
// snapshotted and compacted its log past it catches up by snapshot install.
func TestClusterSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *NodeConfig) {
		cfg.MinTrailingLogs, cfg.MaxTrailingLogs = 1, 1
		// raft-wal frees compacted entries a segment at a time.
		cfg.WALSegmentBytes = 8 << 10
	})
	c.primary()
	ctx := t.Context()
	lag := c.follower()
	c.stop(lag)
	l := c.nodes[c.leader()]
	for i := range 200 {
		if _, _, err := l.Create(ctx, fmt.Sprintf("/s%d", i), bytes.Repeat([]byte("d"), 100), ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	// TrailingLogs starts from the average entry size; pin it to 1 entry.
	rc := l.raft.ReloadableConfig()
	rc.TrailingLogs = 1
	if err := l.raft.ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	if err := l.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := l.st.log.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first < 100 {
		t.Fatalf("leader log still starts at %d after compaction", first)
	}
	// The lagging follower holds a few log entries and no snapshot of its
	// own, so the restarted node's only possible restore is an install.
	n := c.restart(lag)
	c.converge()
	if got := testCounter(n.metrics.restores); got < 1 {
		t.Fatalf("follower caught up without installing a snapshot (restores %v)", got)
	}
	if diff := diffTrees(treeOf(t, l), treeOf(t, n)); diff != "" {
		t.Fatalf("after snapshot install:\n%s", diff)
	}
}

// TestClusterSessionExpiry: the leader expires a session nobody touches and
// every node loses its ephemerals; a touched session lives on.
func TestClusterSessionExpiry(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	f := c.nodes[c.follower()]
	const timeout = 2 * time.Second
	live, err := f.CreateSession(ctx, timeout)
	if err != nil {
		t.Fatal(err)
	}
	// The live session is touched from here on, every tenth of its timeout.
	stop := make(chan struct{})
	touchErr := make(chan error, 1)
	go func() {
		defer close(touchErr)
		for {
			select {
			case <-stop:
				return
			case <-time.After(timeout / 10):
			}
			if err := f.TouchSession(ctx, live); err != nil {
				touchErr <- err
				return
			}
		}
	}()
	dead, err := f.CreateSession(ctx, timeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []int64{dead, live} {
		if _, _, err := f.Create(ctx, fmt.Sprintf("/e-%x", s), nil, ModeEphemeral, WithSession(s)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*timeout, "the untouched session to expire", func() error {
		if _, ok, _ := c.nodes[c.leader()].Exists(ctx, fmt.Sprintf("/e-%x", dead)); ok {
			return errors.New("still there")
		}
		return nil
	})
	time.Sleep(timeout) // the live session outlives its timeout
	close(stop)
	if err := <-touchErr; err != nil {
		t.Fatalf("touch live session: %v", err)
	}
	c.converge()
	for _, n := range c.running() {
		if _, ok, _ := n.Exists(ctx, fmt.Sprintf("/e-%x", dead)); ok {
			t.Fatalf("%s still has the expired session's ephemeral", n.ID())
		}
		if _, ok, _ := n.Exists(ctx, fmt.Sprintf("/e-%x", live)); !ok {
			t.Fatalf("%s lost the live session's ephemeral", n.ID())
		}
	}
	if err := f.TouchSession(ctx, dead); !errors.Is(err, CodeSessionExpired) {
		t.Fatalf("touch expired session: %v", err)
	}
}

// TestClusterContainerCleanup: the leader deletes an empty container once the
// journal is primary.
func TestClusterContainerCleanup(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.primary()
	n := c.nodes[0]
	ctx := t.Context()
	if _, _, err := n.Create(ctx, "/c", nil, ModeContainer); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Create(ctx, "/c/x", nil, ModePersistent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Create(ctx, "/t", nil, ModePersistentTTL, WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(ctx, "/c/x", -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the container and TTL node to go", func() error {
		for _, p := range []string{"/c", "/t"} {
			if _, ok, _ := n.Exists(ctx, p); ok {
				return fmt.Errorf("%s still there", p)
			}
		}
		return nil
	})
}

// TestClusterMembership: remove a member, hand leadership over, and add a new
// member through a follower's admin endpoint.
func TestClusterMembership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.primary()
	ctx := t.Context()
	l := c.leader()
	f := c.follower()
	// Leadership transfer, asked of a follower.
	if err := c.nodes[f].TransferLeadership(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a new leader", func() error {
		if c.nodes[l].IsLeader() {
			return errors.New("old leader still leads")
		}
		for _, n := range c.running() {
			if n.IsLeader() {
				return nil
			}
		}
		return errors.New("no leader")
	})
	// Remove a follower via the other one's admin endpoint.
	l = c.leader()
	victim := c.follower()
	other := 3 - l - victim
	if err := testAdmin(c.nodes[other]).Call(ctx, "POST", "/remove", map[string]string{"id": c.cfgs[victim].NodeID}, nil); err != nil {
		t.Fatal(err)
	}
	c.stop(victim)
	c.waitMembers(2)
	// A fresh node joins through a follower; the request reaches the leader.
	cfg := testNodeConfig(t, "n4", c.cfgs[0].Logger)
	cfg.Join = c.nodes[other].AdminAddr()
	n4, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.cfgs[victim], c.nodes[victim] = cfg, n4
	c.waitMembers(3)
	if _, _, err := n4.Create(ctx, "/joined", nil, ModePersistent); err != nil {
		t.Fatal(err)
	}
	c.converge()
	// Transfer to a named member.
	if err := n4.TransferLeadership(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n4 to lead", func() error {
		if !n4.IsLeader() {
			return errors.New("n4 does not lead")
		}
		return nil
	})
}
