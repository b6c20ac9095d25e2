//go:build linux

package dualwrite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
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
	"github.com/zk2raft/zk2raft/znode"
)

// Journal nodes that a test kills with SIGKILL run in their own processes:
// the journal-process harness raftjournal's kill -9 test shares
// (internal/testproc), the test binary re-executed into TestJournalProcess.

// TestJournalProcess is not a test: it is the body of the journal node
// processes the fault tests start, and does nothing in a normal run.
func TestJournalProcess(t *testing.T) { testproc.JournalChild() }

// journalCluster runs three journal node processes.
type journalCluster struct {
	t     *testing.T
	base  string
	specs []testproc.JournalSpec
	mu    sync.Mutex
	procs []*testproc.Journal
}

func startJournalCluster(t *testing.T) *journalCluster {
	t.Helper()
	c := &journalCluster{t: t, base: t.TempDir()}
	for i := range 3 {
		id := fmt.Sprintf("p%d", i+1)
		c.specs = append(c.specs, testproc.JournalSpec{ID: id, DataDir: filepath.Join(c.base, id, "data"),
			RaftAddr: testlog.FreeAddr(t), AdminAddr: testlog.FreeAddr(t), Secret: testlog.Secret()})
	}
	c.specs[0].Bootstrap = true
	c.specs[1].Join, c.specs[2].Join = c.specs[0].AdminAddr, c.specs[0].AdminAddr
	c.procs = make([]*testproc.Journal, 3)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			if p != nil {
				p.Kill()
			}
		}
		if t.Failed() {
			for _, s := range c.specs {
				t.Logf("%s log tail:\n%s", s.ID, testproc.LogTail(s.LogFile(), 40))
			}
		}
	})
	for i := range c.specs {
		c.start(i)
		c.waitStatus(i, func(ms raftjournal.MemberStatus) error {
			if ms.Leader == "" {
				return errors.New("no leader yet")
			}
			return nil
		})
	}
	return c
}

func (c *journalCluster) start(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs[i] = testproc.StartJournal(c.t, c.specs[i])
}

func (c *journalCluster) kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	p.Kill()
}

func (c *journalCluster) stop(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	p.StopClean(c.t)
}

func (c *journalCluster) status(i int) (raftjournal.MemberStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return raftjournal.RemoteStatus(ctx, testCreds(), c.specs[i].RaftAddr)
}

func (c *journalCluster) waitStatus(i int, cond func(raftjournal.MemberStatus) error) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms, err := c.status(i)
		if err == nil {
			err = cond(ms)
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("journal node %s: %v", c.specs[i].ID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *journalCluster) leader() int {
	for i := range c.specs {
		if ms, err := c.status(i); err == nil && ms.Role == "leader" {
			return i
		}
	}
	return -1
}

// faultLoad writes through addr from several sessions until stopped, riding
// out connection loss: every write whose outcome is unknown is simply
// followed by more writes, since the check at the end compares the journal
// with ZooKeeper itself.
type faultLoad struct {
	acked atomic.Int64
	lost  atomic.Int64
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startFaultLoad(t *testing.T, addr, root string, clients int) *faultLoad {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	l := &faultLoad{stop: make(chan struct{})}
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			conn, _, err := zk.Connect([]string{addr}, 8*time.Second, zk.WithLogger(discardZK{}))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			base := fmt.Sprintf("%s/c%d", root, c)
			for {
				if _, err := conn.Create(base, nil, 0, zk.WorldACL(zk.PermAll)); err == nil || errors.Is(err, zk.ErrNodeExists) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The session survives the faults: a reconnect through the tap
			// reaches another server, which resumes it.
			session := conn.SessionID()
			defer func() {
				if conn.SessionID() != session {
					t.Errorf("client %d lost its session %#x (now %#x) across the faults", c, session, conn.SessionID())
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				p := fmt.Sprintf("%s/n%d", base, i%50)
				var err error
				switch i % 5 {
				case 0, 1:
					_, err = conn.Create(p, []byte(fmt.Sprint(i)), 0, zk.WorldACL(zk.PermAll))
				case 2:
					_, err = conn.Set(p, []byte(fmt.Sprint(i)), -1)
				case 3:
					_, err = conn.CreateProtectedEphemeralSequential(base+"/e-", nil, zk.WorldACL(zk.PermAll))
				case 4:
					err = conn.Delete(p, -1)
				}
				switch {
				case err == nil || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode):
					l.acked.Add(1)
				default:
					l.lost.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *faultLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// TestTapFaults: a ZooKeeper server is killed mid-workload (the clients carry
// on through the tap, reconnecting to other servers) and the journal leader
// is killed with SIGKILL (the mirror waits in the queue and catches up).
// Afterwards the journal equals ZooKeeper node by node and by digest.
func TestTapFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zktest.Options{Servers: 3, ExtendedTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	jc := startJournalCluster(t)
	// The tap reaches the cluster through a member that is not the leader,
	// which is the one killed.
	lead := jc.leader()
	via := (lead + 1) % 3
	j, err := importer.DialJournal(ctx, raftjournal.NewAdminClient(jc.specs[via].AdminAddr, testCreds()), testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tap := startTap(t, ens.Hosts(), j, nil)
	load := startFaultLoad(t, tap.Addr(), "/faults", 6)

	time.Sleep(time.Second)
	victim, err := ens.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killing ZooKeeper server %d (the ensemble's leader)", victim)
	if err := ens.Kill(victim); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t.Logf("killing journal leader %s with SIGKILL", jc.specs[lead].ID)
	jc.kill(lead)
	time.Sleep(2 * time.Second)
	if err := ens.StartServer(ctx, victim); err != nil {
		t.Fatal(err)
	}
	jc.start(lead)
	time.Sleep(2 * time.Second)
	load.finish()
	t.Logf("fault load: %d writes acknowledged, %d lost to connection loss", load.acked.Load(), load.lost.Load())
	if load.acked.Load() < 100 {
		t.Fatalf("only %d writes went through the faults", load.acked.Load())
	}
	// The load's sessions are closed; their closes (and the ephemerals they
	// delete) are mirrored before the aligning write, so that the journal's
	// digest at its zxid has them.
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	delivered := maxServerZxid(ctx, ens)
	// A write whose server died after committing it, before the reply, has
	// no mirror: the tap records its outcome as unknown and the repair pass
	// makes the journal whole.
	if lost := tap.Status().Lost; lost != nil {
		t.Logf("writes of unknown outcome (their server died): %+v; repairing", *lost)
		rec, err := NewReconciler(ReconcilerConfig{ZK: ens.Hosts(), Journal: j, View: RemoteView(raftjournal.NewAdminClient(jc.specs[via].AdminAddr, testCreds())),
			Logger: testlog.New(t).With("component", "reconcile")})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- RepairOwed(rctx, tap, rec, 200*time.Millisecond) }()
		for tap.Status().Lost != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		stop()
		<-done
		rec.Close()
	}
	// The journal's digest logged at an aligned zxid Z must be ZooKeeper's
	// `hash` at Z. The journal logs it only when txn Z is the newest source
	// zxid it has seen, and drops it if a txn below Z that changes the tree
	// arrives later (the tap's queue keeps ZooKeeper's commit order per
	// connection only); then the test aligns again, everything delivered.
	var (
		zxid     int64
		zkDigest znode.Digest
		atZxid   *znode.Digest
		jd       *raftjournal.AdminDigests
		digest   string
	)
	for attempt := 1; ; attempt++ {
		zxid = alignThrough(t, tap.Addr(), "/align")
		if err := tap.WaitDelivered(ctx); err != nil {
			t.Fatal(err)
		}
		if s := tap.Status(); s.Lost != nil {
			t.Fatalf("tap lost mirrors after the repair: %+v", s.Lost)
		}
		// Every member applies everything (one later stops so that its data
		// dir can be opened read-only and compared).
		digest = ""
		for i := range jc.specs {
			jc.waitStatus(i, func(ms raftjournal.MemberStatus) error {
				var got int64
				fmt.Sscanf(ms.MaxSourceZxid, "0x%x", &got)
				if got < zxid {
					return fmt.Errorf("applied source zxid %s, want %#x or later (the aligning session's close)", ms.MaxSourceZxid, zxid)
				}
				if digest == "" {
					digest = ms.Digest
				}
				if ms.Digest != digest {
					return fmt.Errorf("digest %s, another member has %s", ms.Digest, digest)
				}
				return nil
			})
		}
		out, err := zkclient.FourLetterWord(ctx, ens.Hosts()[victim%3], "hash")
		if err != nil {
			t.Fatal(err)
		}
		dlog, err := zkclient.ParseDigestLog(out)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range dlog {
			if e.Zxid == zxid {
				zkDigest, found = e.Digest, true
			}
		}
		if !found {
			t.Fatalf("ZooKeeper logged no digest at %#x", zxid)
		}
		if jd, err = raftjournal.NewAdminClient(jc.specs[via].AdminAddr, testCreds()).Digests(ctx); err != nil {
			t.Fatal(err)
		}
		atZxid = nil
		for _, e := range jd.History {
			if e.Zxid == zxid {
				atZxid = &e.Digest
			}
		}
		if atZxid != nil || attempt == 3 {
			break
		}
		t.Logf("the journal has no digest at %#x (a late txn below it dropped it); aligning again", zxid)
	}
	// Over the whole run: every zxid both digest logs hold must agree.
	if out, err := zkclient.FourLetterWord(ctx, ens.Hosts()[victim%3], "hash"); err == nil {
		if dlog, err := zkclient.ParseDigestLog(out); err == nil {
			zk := map[int64]znode.Digest{}
			for _, e := range dlog {
				zk[e.Zxid] = e.Digest
			}
			common, differ := 0, []string{}
			for _, e := range jd.History {
				if d, ok := zk[e.Zxid]; ok {
					common++
					if d != e.Digest {
						differ = append(differ, fmt.Sprintf("%#x journal %s zookeeper %s", e.Zxid, e.Digest, d))
					}
				}
			}
			t.Logf("digest histories: %d zxids in common, %d differ %v", common, len(differ), differ)
		}
	}
	// ZooKeeper's servers must agree with each other for the comparison to
	// say anything about the journal.
	hashes := zkHashesAt(ctx, ens, zxid)
	zkAgree := true
	for _, d := range hashes {
		zkAgree = zkAgree && d == zkDigest
	}
	digestErr := ""
	if atZxid == nil || *atZxid != zkDigest || !zkAgree {
		digestErr = fmt.Sprintf("journal digest at %#x %v, ZooKeeper's %s (each server's: %v)", zxid, atZxid, zkDigest, hashes)
		dumpDigestDiagnostics(t, ctx, ens, jc, zxid, jd)
	}
	if late := sessionClosesBetween(ens, delivered, zxid); len(late) > 0 {
		t.Logf("session closes committed after the load's mirrors were delivered (ZooKeeper at %#x) and before %#x: %v", delivered, zxid, late)
	}
	if n, last := lateWarnings(jc, via); n > 0 {
		t.Logf("late changes that dropped digests (all members: %d lines); the last on %s:\n%s", n, jc.specs[via].ID, strings.Join(last, "\n"))
	}
	jc.stop(via)
	src, err := verify.Open(ctx, "zk://"+ens.ConnectString(), verify.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fsm, _, err := raftjournal.OpenReadOnly(jc.specs[via].DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tgt := verify.NewJournalSource("journal://"+jc.specs[via].DataDir, verify.JournalState{Tree: fsm, Nodes: -1})
	rep, err := verify.Compare(ctx, src, tgt, verify.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("journal differs from ZooKeeper after the faults (%s):\n%s", digestErr, b.String())
	}
	switch {
	case digestErr == "":
	case !zkAgree:
		// ZooKeeper's own servers logged different digests at one zxid: their
		// trees differ (a ZooKeeper sync fault), and the journal matches the
		// one compared node by node.
		t.Logf("ZooKeeper's servers disagree on the digest at %#x (%s); node by node the journal equals the server compared", zxid, digestErr)
	default:
		var jw znode.Digest
		_ = fsm.Walk(func(n *znode.Node) error { jw.Add(n.Digest()); return nil })
		t.Errorf("node by node the trees are equal, but %s; the journal's digest now %s, recomputed from its nodes %s", digestErr, fsm.Digest(), jw)
	}
	t.Logf("after the faults: journal digest %s = ZooKeeper's at %#x; every member at %s now", zkDigest, zxid, digest)
}

// TestTapKill9: the proxy is killed with SIGKILL under load. Every write a
// client saw acknowledged through it was queued before the reply, so a new
// proxy on the same queue delivers all of them to the journal.
func TestTapKill9(t *testing.T) {
	ens := testEnsemble(t)
	n := journalNode(t)
	queueDir := t.TempDir()
	spec := tapSpec{Listen: testlog.FreeAddr(t), QueueDir: queueDir, ZK: ens.Hosts()}
	proc := testproc.Start(t, testproc.Options{Test: "TestTapProcess", Env: tapProcessEnv, Spec: spec})
	defer func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("tap process stderr:\n%s", proc.Stderr())
		}
	}()
	root := freshRoot(t)
	var conn *zk.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, _, err := zk.Connect([]string{spec.Listen}, 5*time.Second, zk.WithLogger(discardZK{}))
		if err == nil {
			if _, err = c.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err == nil {
				conn = c
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("tap process never served: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	acked := []string{root}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("%s/c%d-%05d", root, c, i)
				if _, err := conn.Create(p, []byte(p), 0, zk.WorldACL(zk.PermAll)); err != nil {
					return // the proxy died under the request
				}
				mu.Lock()
				acked = append(acked, p)
				mu.Unlock()
			}
		}()
	}
	// Kill once the load is well under way (a count, not a time: a loaded
	// machine acknowledges far fewer creates per second).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
	}
	proc.Kill() // SIGKILL, mid-load
	close(stop)
	wg.Wait()
	conn.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 50 {
		t.Fatalf("only %d creates acknowledged before the kill", len(acked))
	}
	tap := startTap(t, ens.Hosts(), importer.NodeJournal(n), func(c *Config) { c.QueueDir = queueDir })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tap.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range acked {
		if _, _, err := n.Get(ctx, p); err != nil {
			t.Fatalf("acknowledged create %s missing from the journal after the proxy's SIGKILL: %v", p, err)
		}
	}
	t.Logf("%d creates acknowledged before SIGKILL, all in the journal after the restart", len(acked))
}
