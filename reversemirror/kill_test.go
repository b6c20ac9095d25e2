//go:build linux

package reversemirror_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkserver"
)

// mirrorSpec is a journal node with a client port and a reverse mirror, run
// in a process of its own (as `serve --client-addr --zk` runs them).
type mirrorSpec struct {
	ID, DataDir, RaftAddr, AdminAddr, ClientAddr string
	Bootstrap                                    bool
	Join                                         string
	ZooKeeper                                    []string
	SuperCred, Marker                            string
	MaxBatchOps                                  int
	Throttle                                     time.Duration
}

// TestMirrorProcess is not a test: the body of the journal processes
// TestMirrorSurvivesKill9 starts.
func TestMirrorProcess(t *testing.T) {
	var spec mirrorSpec
	if !testproc.Child(mirrorProcEnv, &spec) {
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := raftjournal.DefaultNodeConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdminAddr = spec.ID, spec.DataDir, spec.RaftAddr, spec.AdminAddr
	cfg.Bootstrap, cfg.Join, cfg.Secret = spec.Bootstrap, spec.Join, testlog.Secret()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 200*time.Millisecond
	cfg.CommitTimeout = zkserver.DefaultCommitTimeout
	cfg.Logger = logger
	n, err := raftjournal.Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	sc := testServerConfig()
	sc.Addr = spec.ClientAddr
	sc.Logger = logger.With("component", "zkserver")
	s, err := zkserver.New(n, sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zkserver:", err)
		os.Exit(3)
	}
	mc := reversemirror.Config{Node: n, Marker: spec.Marker, MaxBatchOps: spec.MaxBatchOps, Throttle: spec.Throttle,
		Logger: logger.With("component", "reversemirror")}
	mc.Root = "/zk2raft-test-unwatched" // the ensemble is shared: see runMirror
	mc.ZooKeeper.Hosts = spec.ZooKeeper
	mc.ZooKeeper.Auth = []zkclient.Auth{{Scheme: "digest", Cred: []byte(spec.SuperCred)}}
	m, err := reversemirror.New(mc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror:", err)
		os.Exit(3)
	}
	n.SetStatusExtension("reverse_mirror", func() any { return m.Status() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	testproc.WaitSignal()
	cancel()
	<-done
	s.Close()
	if err := n.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// TestMirrorSurvivesKill9: three journal processes, each running the mirror
// beside its node (it applies on the leader). Writers go through all three
// client ports while the mirror is throttled to lag; the leader is killed
// with SIGKILL mid-stream, with entries owed to ZooKeeper. The new leader's
// mirror resumes from the marker: ZooKeeper ends equal to the journal node
// by node (nothing doubled: sequential names, versions and cversions would
// differ; nothing skipped: nodes would be missing), and an ephemeral written
// before the kill is still in ZooKeeper (its session resumed from the marker).
func TestMirrorSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts three journal processes")
	}
	base := t.TempDir()
	creds := raftjournal.Credentials{Secret: testlog.Secret()}
	var specs []mirrorSpec
	for i := range 3 {
		sp := mirrorSpec{ID: fmt.Sprintf("m%d", i+1), RaftAddr: freeAddr(t), AdminAddr: freeAddr(t), ClientAddr: freeAddr(t),
			ZooKeeper: ensemble.Hosts(), SuperCred: superCred, Marker: markerPath(t), MaxBatchOps: 3, Throttle: 15 * time.Millisecond}
		sp.DataDir = filepath.Join(base, sp.ID, "data")
		if i == 0 {
			sp.Bootstrap = true
		} else {
			sp.Join = specs[0].AdminAddr
		}
		specs = append(specs, sp)
	}
	procs := make([]*testproc.Process, 3)
	start := func(i int) {
		procs[i] = testproc.Start(t, testproc.Options{Test: "TestMirrorProcess", Env: mirrorProcEnv, Spec: specs[i],
			LogFile: filepath.Join(base, specs[i].ID+".log")})
		procs[i].WaitListening(t, specs[i].ClientAddr, time.Minute)
	}
	logsOnFailure(t, base, specs)
	start(0)
	start(1)
	start(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	status := func(i int) (raftjournal.MemberStatus, error) {
		return raftjournal.RemoteStatus(ctx, creds, specs[i].RaftAddr)
	}
	testlog.WaitFor(t, time.Minute, "three members", func() error {
		st, err := raftjournal.NewAdminClient(specs[0].AdminAddr, creds).ClusterStatus(ctx, true)
		if err != nil || st.MemberCount != 3 {
			return fmt.Errorf("%d members, %v", st.MemberCount, err)
		}
		return nil
	})
	if res, err := raftjournal.RemoteApply(ctx, creds, specs[0].RaftAddr, raftjournal.Encode(&raftjournal.SetPhase{Phase: raftjournal.PhasePrimary})); err != nil || res.Err != nil {
		t.Fatalf("set primary: %v %v", err, res)
	}
	testlog.WaitFor(t, time.Minute, "every node primary", func() error {
		for i := range specs {
			if st, err := status(i); err != nil || st.Phase != "primary" {
				return fmt.Errorf("%s: phase %q, %v", specs[i].ID, st.Phase, err)
			}
		}
		return nil
	})
	var addrs []string
	for _, sp := range specs {
		addrs = append(addrs, sp.ClientAddr)
	}
	root := testRoot(t, "/kill9")
	setup := gozk(t, addrs...)
	all := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/q"} {
		if _, err := setup.Create(p, nil, 0, all); err != nil {
			t.Fatal(err)
		}
	}
	// The session that owns the ephemerals: its ZooKeeper twin has the same
	// timeout, and must outlive the survivors' stop (below).
	stay := gozkTimeout(t, time.Minute, addrs...)
	if _, err := stay.Create(root+"/e-before", []byte("before the kill"), zk.FlagEphemeral, all); err != nil {
		t.Fatal(err)
	}

	// Writers: sequential creates and setData, retried on errors (a write
	// whose outcome the failover left unknown may land twice in the journal:
	// ZooKeeper must then hold it twice too).
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		c := gozk(t, addrs...)
		mine := fmt.Sprintf("%s/w%d", root, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The writer's own node; a connection lost meanwhile (a loaded
			// machine, the client moving between members) is retried.
			for deadline := time.Now().Add(time.Minute); ; {
				_, err := c.Create(mine, nil, 0, all)
				if err == nil || err == zk.ErrNodeExists {
					break
				}
				if err != zk.ErrConnectionClosed && err != zk.ErrNoServer && err != zk.ErrSessionMoved || time.Now().After(deadline) {
					t.Errorf("create %s: %v", mine, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					_, err = c.Create(root+"/q/item-", []byte(mine), zk.FlagSequence, all)
				} else {
					_, err = c.Set(mine, []byte(fmt.Sprint(i)), -1)
				}
				if err == nil {
					acked.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	// Kill the leader once it has applied some of the stream and owes more.
	var leader int
	testlog.WaitFor(t, 2*time.Minute, "a leader that is mid-stream", func() error {
		for i := range specs {
			st, err := status(i)
			if err != nil || st.Role != "leader" {
				continue
			}
			rm := st.ReverseMirror
			if rm == nil || rm.AckedIndex <= rm.StartIndex || rm.PendingEntries < 20 {
				return fmt.Errorf("leader %s: reverse mirror %+v", st.ID, rm)
			}
			leader = i
			return nil
		}
		return fmt.Errorf("no leader")
	})
	before, _ := status(leader)
	procs[leader].Kill()
	t.Logf("killed leader %s with %d entries owed to ZooKeeper (acked %d)", specs[leader].ID, before.ReverseMirror.PendingEntries, before.ReverseMirror.AckedIndex)
	other := (leader + 1) % 3
	testlog.WaitFor(t, time.Minute, "a new leader", func() error {
		st, err := status(other)
		if err != nil || st.Leader == "" || st.Leader == specs[leader].ID {
			return fmt.Errorf("leader %q, %v", st.Leader, err)
		}
		return nil
	})
	// Writes go on through the survivors, then stop.
	time.Sleep(time.Second) // let the workload run on the new leader
	if _, err := stay.Create(root+"/e-after", nil, zk.FlagEphemeral, all); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	testlog.WaitFor(t, 2*time.Minute, "the new leader's mirror drains the outbox", func() error {
		st, err := status(other)
		if err != nil {
			return err
		}
		if rm := st.ReverseMirror; rm == nil || rm.PendingEntries > 0 {
			return fmt.Errorf("reverse mirror %+v", rm)
		}
		return nil
	})
	t.Logf("%d writes acknowledged", acked.Load())
	// The new leader's mirror resumed the ZooKeeper session that owns
	// e-before (named in the marker) instead of finding it expired.
	st, err := status(other)
	if err != nil {
		t.Fatal(err)
	}
	newLeader := other
	for i := range specs {
		if specs[i].ID == st.Leader {
			newLeader = i
		}
	}
	cs, err := raftjournal.NewAdminClient(specs[newLeader].AdminAddr, creds).ClusterStatus(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var ms reversemirror.Status
	if b, err := json.Marshal(cs.Extensions["reverse_mirror"]); err != nil || json.Unmarshal(b, &ms) != nil {
		t.Fatalf("status extension %v: %v", cs.Extensions, err)
	}
	if !ms.Running || ms.Sessions != 1 || ms.LostSessions != 0 || ms.Records == 0 {
		t.Errorf("new leader %s's mirror status %+v: want it running, holding the one ZooKeeper session resumed, none lost", cs.ID, ms)
	}
	// Stop the survivors, the leader last, and compare one's state with
	// ZooKeeper. The stopped mirror leaves its ZooKeeper sessions (the twin
	// that owns e-before and e-after) to the next one, which never comes:
	// the test holds them instead, as that mirror would, or ZooKeeper would
	// expire them with their ephemerals if the stops and the comparison
	// outlasted their timeout on a loaded machine (it did once with a 10 s
	// session: the ephemerals were missing in ZooKeeper).
	for _, i := range []int{3 - leader - newLeader, newLeader} {
		if err := procs[i].Stop(30 * time.Second); err != nil {
			t.Fatalf("stop %s: %v", specs[i].ID, err)
		}
	}
	holdTwins(t)
	f, _, err := raftjournal.OpenReadOnly(specs[other].DataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	compareWithZooKeeper(t, f, root, root+"/e-before", root+"/e-after")
}

// holdTwins resumes the ZooKeeper sessions the marker names for journal
// sessions and keeps them until the test ends.
func holdTwins(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct := zkDirect(t)
	names, err := markerSessions(t, direct)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, _, err := direct.GetData(ctx, markerPath(t)+"/"+name)
		if err != nil {
			t.Fatal(err)
		}
		z, err := strconv.ParseUint(string(data), 16, 64)
		if err != nil {
			t.Fatalf("marker child %s: %q", name, data)
		}
		c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ensemble.Hosts(), Auth: superAuth(), SessionTimeout: time.Minute,
			ResumeSession: int64(z), ResumePassword: zkserver.SessionPassword(int64(z))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.SessionID() != int64(z) {
			t.Errorf("ZooKeeper session %#x (journal session %s) had expired before the test could hold it", z, name)
		}
	}
}

// logsOnFailure prints the tail of each process's log if t fails.
func logsOnFailure(t *testing.T, base string, specs []mirrorSpec) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, sp := range specs {
			t.Logf("%s log:\n%s", sp.ID, testproc.LogTail(filepath.Join(base, sp.ID+".log"), 40))
		}
	})
}
