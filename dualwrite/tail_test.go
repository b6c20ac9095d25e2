//go:build linux

package dualwrite

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/spawn"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zkload"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// The tail runs in a process of its own, so the test can kill -9 it: the
// test binary re-executed into TestTailProcess with its configuration in
// $ZK2RAFT_DUALWRITE_TAIL.

const tailProcessEnv = "ZK2RAFT_DUALWRITE_TAIL"

type tailSpec struct {
	DataDir, Journal string
	From             int64
	FromSet          bool
	Server           string // a ZooKeeper server's client address, for ServerZxid
}

// TestTailProcess is not a test: it is the body of a tail process started by
// TestTailUnderLoad. It mirrors until SIGTERM (exit 0) or until the tail
// fails (exit 4).
func TestTailProcess(t *testing.T) {
	raw := os.Getenv(tailProcessEnv)
	if raw == "" {
		return
	}
	var spec tailSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(3)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	j, err := importer.DialJournal(ctx, raftjournal.NewAdminClient(spec.Journal, testCreds()), logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "journal:", err)
		os.Exit(3)
	}
	cfg := TailConfig{DataDir: spec.DataDir, Journal: j, From: spec.From, FromSet: spec.FromSet, Logger: logger,
		CheckpointEvery: 200 * time.Millisecond}
	if spec.Server != "" {
		cfg.ServerZxid = func(ctx context.Context) (int64, error) { return zkclient.ServerZxid(ctx, spec.Server) }
	}
	tl, err := StartTail(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(4)
	}
	select {
	case <-ctx.Done():
		tl.Close()
		os.Exit(0)
	case <-tl.Done():
		fmt.Fprintln(os.Stderr, "tail stopped:", tl.Err())
		os.Exit(4)
	}
}

type tailProcess struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startTailProcess(t *testing.T, spec tailSpec, logFile string) *tailProcess {
	t.Helper()
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestTailProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), tailProcessEnv+"="+string(raw))
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := spawn.Start(cmd); err != nil {
		t.Fatal(err)
	}
	p := &tailProcess{cmd: cmd, done: make(chan error, 1), log: logFile}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("tail process log:\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *tailProcess) kill() {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
}

// exited reports the process's end if it has ended.
func (p *tailProcess) exited() (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	default:
		return nil, false
	}
}

// waitTail waits until the journal's tail checkpoint reaches zxid.
func waitTail(t *testing.T, n *raftjournal.Node, p *tailProcess, zxid int64) TailProgress {
	t.Helper()
	j := importer.NodeJournal(n)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		prog, ok, err := ReadTailProgress(t.Context(), j, "")
		if err != nil {
			t.Fatal(err)
		}
		if ok && prog.Zxid >= zxid {
			return prog
		}
		if err, done := p.exited(); done {
			t.Fatalf("the tail process exited (%v) before reaching %#x", err, zxid)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail's checkpoint is at %#x (ok %v), waiting for %#x", prog.Zxid, ok, zxid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tailEnsembleOptions() zktest.Options {
	return zktest.Options{
		Servers:          3,
		ExtendedTypes:    true,
		SystemProperties: map[string]string{"znode.container.checkIntervalMs": "200"},
		Config:           map[string]string{"snapCount": "400", "preAllocSize": "256"},
	}
}

// TestTailUnderLoad is the tail's end-to-end check: a journal copied from one
// server's data directory at zxid E, a tail (its own process) mirroring that
// server's log from E on while a write load runs and trees are seeded,
// killed with SIGKILL and restarted (it resumes from its checkpoint in the
// journal), then the load stopped: the journal's tree equals ZooKeeper's,
// its digest equals ZooKeeper's at the same zxid (the tail's checkpoint and
// every `hash` entry the journal also logged), and containers and TTL nodes
// that ZooKeeper removes itself disappear from the journal too.
func TestTailUnderLoad(t *testing.T) {
	ens := zktest.New(t, tailEnsembleOptions())
	hosts := ens.Hosts()
	n := journalNode(t)
	const server = 2
	dir := ens.Servers()[server-1].DataDir

	// Something to copy: a tree, and a load that runs from now to the end.
	seed := func(o treegen.Options) *treegen.Tree {
		o.Logger = testlog.New(t)
		tree, err := treegen.Seed(t.Context(), hosts, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tree.Close() })
		return tree
	}
	kafka := seed(treegen.Options{Profile: "kafka", Root: "/kafka", Nodes: 1000, Seed: 3})
	load, err := zkload.Start(hosts, zkload.Options{Root: "/load", Workers: 3, TTL: true})
	if err != nil {
		t.Fatal(err)
	}
	loadStopped := false
	defer func() {
		if !loadStopped {
			load.Stop()
		}
	}()

	// The copy: the server's data directory as of E, into the journal.
	st, err := datadir.Load(t.Context(), datadir.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e := st.Zxid
	var batch []*znode.Node
	flush := func() {
		if len(batch) == 0 {
			return
		}
		res, err := n.ImportBatch(t.Context(), &raftjournal.ImportBatch{Nodes: batch})
		if err != nil || res.Err != nil {
			t.Fatalf("import: %v %v", err, res)
		}
		batch = nil
	}
	if err := st.Tree.Walk("/", func(p string) bool { return p == "/zookeeper" }, func(nd *znode.Node) error {
		batch = append(batch, nd.Clone())
		if len(batch) == 500 {
			flush()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flush()
	t.Logf("copied %d nodes as of %#x (%s)", st.Tree.Len(), e, st.Check.Record)

	// The tail, from E; more trees while it runs; kill -9 and a restart.
	logs := t.TempDir()
	spec := tailSpec{DataDir: dir, Journal: n.AdminAddr(), From: e, FromSet: true, Server: hosts[server-1]}
	p := startTailProcess(t, spec, filepath.Join(logs, "tail.log"))
	adv := seed(treegen.Options{Profile: "adversarial", Root: "/adv", Nodes: 1200, BigChildren: 200, DeepLevels: 30, Seed: 3})
	mid := waitTail(t, n, p, e+1)
	p.kill()
	t.Logf("tail killed at checkpoint %#x", mid.Zxid)
	more := seed(treegen.Options{Profile: "registry", Root: "/registry", Nodes: 500, Seed: 3})
	p = startTailProcess(t, spec, filepath.Join(logs, "tail.log")) // resumes from its checkpoint; From is ignored

	// Containers and TTL nodes: in the journal while ZooKeeper has them, gone
	// from it once ZooKeeper removes them.
	c := dialZK(t, hosts)
	world := zk.WorldACL(zk.PermAll)
	for _, op := range []func() error{
		func() error { _, err := c.Create("/expiring", nil, 0, world); return err },
		func() error { _, err := c.CreateContainer("/expiring/ctr", nil, zk.FlagContainer, world); return err },
		func() error { _, err := c.Create("/expiring/ctr/child", nil, 0, world); return err },
		func() error {
			// Long enough for the tail to mirror it before ZooKeeper expires it.
			_, err := c.CreateTTL("/expiring/ttl", []byte("t"), zk.FlagTTL, world, 10*time.Second)
			return err
		},
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	_, st2, err := c.Exists("/expiring/ttl")
	if err != nil {
		t.Fatal(err)
	}
	prog := waitTail(t, n, p, st2.Mzxid)
	for path, owner := range map[string]int64{"/expiring/ctr": znode.ContainerOwner, "/expiring/ttl": ttlOwner(t, 10_000)} {
		nd, ok := n.FSM().Node(path)
		if !ok {
			t.Fatalf("%s not in the journal at checkpoint %#x", path, prog.Zxid)
		}
		if nd.Stat.EphemeralOwner != owner {
			t.Errorf("%s: the journal holds owner %#x, ZooKeeper's raw owner is %#x", path, nd.Stat.EphemeralOwner, owner)
		}
	}
	if err := c.Delete("/expiring/ctr/child", -1); err != nil {
		t.Fatal(err)
	}

	stats, err := load.Stop()
	loadStopped = true
	if err != nil {
		t.Fatalf("load: %v (%+v)", err, stats)
	}
	waitNoChildren(t, c, "/expiring")
	waitNoChildren(t, c, "/load/c")
	waitNoChildren(t, c, "/load/ttl")
	end := maxServerZxid(t.Context(), ens)
	for _, s := range ens.Servers() {
		waitServerZxid(t, s.ClientAddr, end)
	}
	final := waitTail(t, n, p, end)
	t.Logf("load %+v; ZooKeeper at %#x, tail checkpoint %#x", stats, end, final.Zxid)

	// The digest at the same zxid: the tail's checkpoint says ZooKeeper's
	// (from the log's TxnDigests), the journal's own is the same.
	want, err := datadir.Load(t.Context(), datadir.Options{DataDir: ens.Servers()[0].DataDir, ToZxid: final.Zxid})
	if err != nil {
		t.Fatal(err)
	}
	if want.Tree.Digest() != final.Digest {
		t.Fatalf("the tail says ZooKeeper's digest at %#x is %v, server 1's log says %v", final.Zxid, final.Digest, want.Tree.Digest())
	}
	if got := n.FSM().Status().Digest; got != final.Digest {
		t.Fatalf("journal digest %v, ZooKeeper's at %#x: %v", got, final.Zxid, final.Digest)
	}
	hist, err := remoteAdmin(n).Digests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	journalAt := map[int64]znode.Digest{}
	for _, h := range hist.History {
		journalAt[h.Zxid] = h.Digest
	}
	out, err := ens.FourLetterWord(t.Context(), 1, "hash")
	if err != nil {
		t.Fatal(err)
	}
	zkLog, err := zkclient.ParseDigestLog(out)
	if err != nil {
		t.Fatal(err)
	}
	common := 0
	for _, h := range zkLog {
		if d, ok := journalAt[h.Zxid]; ok && h.Zxid > e {
			common++
			if d != h.Digest {
				t.Errorf("at zxid %#x the journal logged digest %v, ZooKeeper's hash %v", h.Zxid, d, h.Digest)
			}
		}
	}
	t.Logf("%d digest history entries compared with ZooKeeper's hash", common)
	if common == 0 {
		t.Error("no zxid in both the journal's digest history and ZooKeeper's hash")
	}

	// Node by node, against the live ensemble.
	var auth []zkclient.Auth
	for _, tree := range []*treegen.Tree{kafka, adv, more} {
		auth = append(auth, zkclient.Auth{Scheme: tree.Credential.Scheme(), Cred: tree.Credential.Auth()})
	}
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: hosts, Chroot: "/", Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rep, err := verify.Compare(t.Context(), src, verify.NewJournalSource("journal://test", verify.JournalState{Tree: n.FSM(), Nodes: -1}), verify.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("journal differs from ZooKeeper:\n%s", b.String())
	}
	for _, path := range []string{"/expiring/ctr", "/expiring/ttl"} {
		if _, ok := n.FSM().Node(path); ok {
			t.Errorf("%s is still in the journal after ZooKeeper removed it", path)
		}
	}
	for _, path := range []string{"/load/c", "/load/ttl"} {
		if kids, _, err := n.FSM().Children(path, nil); err != nil || len(kids) != 0 {
			t.Errorf("%s in the journal: %d children (%v), ZooKeeper removed them all", path, len(kids), err)
		}
	}
}

// dialZK opens a go-zookeeper session, closed in cleanup.
func dialZK(t testing.TB, hosts []string) *zk.Conn {
	t.Helper()
	c, ev, err := zk.Connect(hosts, 10*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			t.Fatal("no ZooKeeper session")
		}
	}
	return c
}

// waitNoChildren waits, on a child watch, until path has no children.
func waitNoChildren(t *testing.T, c *zk.Conn, path string) {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		kids, _, ch, err := c.ChildrenW(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s still has %d children", path, len(kids))
		}
	}
}

func waitServerZxid(t *testing.T, addr string, zxid int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		z, err := zkclient.ServerZxid(t.Context(), addr)
		if err == nil && z >= zxid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %#x (%v), waiting for %#x", addr, z, err, zxid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ttlOwner(t *testing.T, ms int64) int64 {
	t.Helper()
	o, err := znode.TTLOwner(ms)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestTailCheckpointsWhenIdle: a batch that arrives within CheckpointEvery of
// the last checkpoint is recorded once the tail goes idle, not only when the
// next write comes (the cutover's mirror-lag gate reads the checkpoint; a
// stale one held it shut on a quiet ensemble).
func TestTailCheckpointsWhenIdle(t *testing.T) {
	t.Parallel()
	ens := zktest.New(t, zktest.Options{Servers: 1})
	n := testproc.OpenNode(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	zc, err := zkclient.Dial(ctx, zkclient.Config{Hosts: ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	// A fresh server has no log file until its first write.
	if _, _, err := zc.Create(ctx, "/before", nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
		t.Fatal(err)
	}
	srv := ens.Servers()[0]
	tl, err := StartTail(ctx, TailConfig{DataDir: srv.DataDir, Journal: importer.NodeJournal(n), FromSet: true,
		CheckpointEvery: 3 * time.Second, Logger: testlog.New(t).With("component", "tail")})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	// The first write's batch is checkpointed at once (no checkpoint yet),
	// the second's, coming right after, is owed.
	for _, p := range []string{"/first", "/second"} {
		if _, _, err := zc.Create(ctx, p, nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
			t.Fatal(err)
		}
		want, err := zkclient.ServerZxid(ctx, srv.ClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		testlog.WaitFor(t, 10*time.Second, fmt.Sprintf("the tail to apply %s", p), func() error {
			if z := tl.Progress().Zxid; z < want {
				return fmt.Errorf("applied %#x, ZooKeeper at %#x", z, want)
			}
			return nil
		})
	}
	want := tl.Progress().Zxid
	testlog.WaitFor(t, 10*time.Second, "the idle tail to record its progress", func() error {
		p, ok, err := ReadTailProgress(ctx, importer.NodeJournal(n), "")
		if err != nil {
			return err
		}
		if !ok || p.Zxid < want {
			return fmt.Errorf("checkpoint at %#x (recorded %v), applied %#x", p.Zxid, ok, want)
		}
		return nil
	})
}
