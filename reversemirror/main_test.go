package reversemirror_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/znode"
)

// mirrorProcEnv marks a child process of the kill -9 test.
const mirrorProcEnv = "ZK2RAFT_REVERSE_MIRROR_PROCESS"

// superCred is ZooKeeper's super user in the tests' ensemble; the mirror
// writes as it.
const superCred = "super:mirror-secret"

var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	if os.Getenv(mirrorProcEnv) != "" {
		os.Exit(m.Run()) // a child process: no ensemble of its own
	}
	zktest.Main(m, ensembleOptions(1), &ensemble)
}

// ensembleOptions are the tests' ensembles: extended types on, and the
// mirror's super user.
func ensembleOptions(servers int) zktest.Options {
	return zktest.Options{Servers: servers, ExtendedTypes: true, SystemProperties: map[string]string{
		"zookeeper.DigestAuthenticationProvider.superDigest": znode.DigestID(superCred),
	}}
}

func superAuth() []zkclient.Auth {
	return []zkclient.Auth{{Scheme: "digest", Cred: []byte(superCred)}}
}

func freeAddr(t testing.TB) string { return testlog.FreeAddr(t) }

// is adapts a predicate to testlog.WaitFor.
func is(cond func() bool) func() error {
	return func() error {
		if !cond() {
			return fmt.Errorf("not yet")
		}
		return nil
	}
}

func testServerConfig() zkserver.Config {
	c := zkserver.DefaultConfig()
	c.Addr = "127.0.0.1:0"
	c.TickTime = 200 * time.Millisecond
	c.MaxSessionTimeout = 60 * time.Second
	c.MaxClientConnsPerIP = 0
	return c
}

// primaryNode starts a one-node journal in primary with a client port.
func primaryNode(t *testing.T) (*raftjournal.Node, string) {
	t.Helper()
	return startNode(t, raftjournal.PhasePrimary)
}

// startNode starts a one-node journal in phase (shadow or primary) with a
// client port.
func startNode(t testing.TB, phase raftjournal.Phase) (*raftjournal.Node, string) {
	t.Helper()
	n := testproc.OpenNode(t, func(c *raftjournal.NodeConfig) { c.CommitTimeout = zkserver.DefaultCommitTimeout })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if phase == raftjournal.PhasePrimary {
		if err := n.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
			t.Fatal(err)
		}
	}
	sc := testServerConfig()
	sc.Logger = testlog.New(t)
	s, err := zkserver.New(n, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return n, s.Addr()
}

// runMirror runs a mirror beside n until the test ends.
func runMirror(t testing.TB, n *raftjournal.Node, tweak func(*reversemirror.Config)) *reversemirror.Mirror {
	t.Helper()
	cfg := reversemirror.Config{Node: n, Logger: testlog.New(t), Marker: markerPath(t)}
	cfg.ZooKeeper.Hosts = ensemble.Hosts()
	cfg.ZooKeeper.Auth = superAuth()
	cfg.ZooKeeper.SessionTimeout = 10 * time.Second
	// The tests share one ensemble: a sentry watching "/" would take every
	// other test's nodes for split-brain writes. Tests of the sentry and the
	// fence set their own root.
	cfg.Root = "/zk2raft-test-unwatched"
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := reversemirror.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// waitDrained waits until the journal's outbox is empty (every record
// acknowledged by the mirror).
func waitDrained(t *testing.T, f *raftjournal.FSM, m *reversemirror.Mirror) raftjournal.MirrorStatus {
	t.Helper()
	var st raftjournal.MirrorStatus
	testlog.WaitFor(t, 2*time.Minute, "the reverse mirror drains", func() error {
		st = f.MirrorStatus()
		if st.Pending > 0 {
			last := ""
			if m != nil {
				last = m.Status().LastError
			}
			return fmt.Errorf("%d entries pending (acked %d, last %d; mirror error %q)", st.Pending, st.Acked, st.LastIndex, last)
		}
		return nil
	})
	if m != nil && m.Status().LastError != "" {
		t.Fatalf("mirror error: %s", m.Status().LastError)
	}
	return st
}

// compareWithZooKeeper compares ZooKeeper's subtree root with the journal's,
// node by node, allowing only the fields the reverse mirror cannot make
// equal: zxids and times (each side stamps its own) and, at the paths given,
// the ephemeralOwner of ephemerals written for journal-minted sessions.
func compareWithZooKeeper(t *testing.T, f *raftjournal.FSM, root string, ownerPaths ...string) *verify.Report {
	t.Helper()
	rep := compareReport(t, f, root, ownerPaths...)
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("ZooKeeper differs from the journal under %s:\n%s", root, b.String())
	}
	return rep
}

func compareReport(t *testing.T, f *raftjournal.FSM, root string, ownerPaths ...string) *verify.Report {
	t.Helper()
	return compareReportOn(t, ensemble.Hosts(), f, root, ownerPaths...)
}

func compareReportOn(t *testing.T, hosts []string, f *raftjournal.FSM, root string, ownerPaths ...string) *verify.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: hosts, Chroot: root, Auth: superAuth()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg := verify.DefaultConfig()
	cfg.Path = root
	cfg.Rechecks = -1 // the outbox is drained: nothing is in flight
	var what []verify.Allowed
	for _, fl := range []verify.Field{verify.FieldCzxid, verify.FieldMzxid, verify.FieldPzxid, verify.FieldCtime, verify.FieldMtime} {
		what = append(what, verify.Allowed{Kind: verify.KindMismatch, Field: fl})
	}
	cfg.Allow = append(cfg.Allow, verify.AllowRule{Pattern: root + "/**", What: what, Reason: "each side stamps its own zxids and times", Origin: "test"})
	for _, p := range ownerPaths {
		cfg.Allow = append(cfg.Allow, verify.AllowRule{Pattern: p, What: []verify.Allowed{{Kind: verify.KindMismatch, Field: verify.FieldEphemeralOwner}},
			Reason: "ephemeral of a journal-minted session, owned in ZooKeeper by the mirror's session", Origin: "test"})
	}
	rep, err := verify.Compare(ctx, src, verify.NewJournalSource("journal://test", verify.JournalState{Tree: f, Nodes: -1}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// markerPath is the test's own marker: the tests' journals share one
// ensemble, and a marker belongs to one journal (a repeated run of the test,
// -count=2, has a journal of its own: runSuffix).
func markerPath(t testing.TB) string {
	return reversemirror.DefaultMarker + "-" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + runSuffix(t)
}

// testRoot is the subtree a test writes under: base, and for a repeated run
// of the test (-count=2) a suffix, since the ensemble outlives one run and
// still has the first run's nodes.
func testRoot(t testing.TB, base string) string { return base + runSuffix(t) }

var runs struct {
	sync.Mutex
	of    map[testing.TB]string
	count map[string]int
}

// runSuffix is "" for a test's first run in this process and "-run<n>" for
// the later ones, the same for every call within one run.
func runSuffix(t testing.TB) string {
	runs.Lock()
	defer runs.Unlock()
	if s, ok := runs.of[t]; ok {
		return s
	}
	if runs.of == nil {
		runs.of, runs.count = map[testing.TB]string{}, map[string]int{}
	}
	runs.count[t.Name()]++
	s := ""
	if n := runs.count[t.Name()]; n > 1 {
		s = fmt.Sprintf("-run%d", n)
	}
	runs.of[t] = s
	return s
}

// marker reads the mirror's marker from ZooKeeper.
func marker(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ensemble.Hosts(), Auth: superAuth()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data, _, err := c.GetData(ctx, markerPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// gozk opens a go-zookeeper session to the journal's client ports.
func gozk(t *testing.T, addrs ...string) *zk.Conn {
	t.Helper()
	return gozkTimeout(t, 10*time.Second, addrs...)
}

// gozkTimeout is gozk with a session timeout of its own.
func gozkTimeout(t *testing.T, timeout time.Duration, addrs ...string) *zk.Conn {
	t.Helper()
	c, ev, err := zk.Connect(addrs, timeout, zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	testlog.WaitFor(t, 30*time.Second, "a go-zookeeper session", func() error {
		select {
		case <-ev:
		default:
		}
		if s := c.State(); s != zk.StateHasSession {
			return fmt.Errorf("state %v", s)
		}
		return nil
	})
	return c
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// kazoo runs a kazoo script against hostPort with root as argv[2].
func kazoo(t *testing.T, hostPort, root, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", script, hostPort, root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kazoo: %v\n%s\n(install python3-kazoo: make deps)", err, out)
	}
	return string(out)
}
