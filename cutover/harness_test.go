package cutover

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkserver"
)

// rig is a real ZooKeeper (one server of its own: the digest gate compares
// whole trees, so tests cannot share an ensemble), a one-node journal with
// its ZooKeeper-protocol port, and proxies (tap, reconciler, agent, admin
// port) in front of ZooKeeper, all on loopback.
type rig struct {
	t      testing.TB
	ens    *zktest.Ensemble
	node   *raftjournal.Node // the one-node rig's journal (nil in a cluster rig)
	server *zkserver.Server
	jc     *importer.JournalCluster
	admins []string            // the journal members' admin addresses
	procs  []*testproc.Journal // a cluster rig's journal node processes
}

func creds() raftjournal.Credentials { return raftjournal.Credentials{Secret: testlog.Secret()} }

func newRig(t testing.TB) *rig {
	t.Helper()
	return newRigWith(t, zktest.Options{Servers: 1})
}

// newRigWith is newRig on an ensemble started with zo (three servers, for a
// server to die).
func newRigWith(t testing.TB, zo zktest.Options) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	r := &rig{t: t, ens: ens}
	n := testproc.OpenNode(t, func(c *raftjournal.NodeConfig) { c.SessionTick = 100 * time.Millisecond })
	r.node = n
	sc := zkserver.DefaultConfig()
	sc.Addr = "127.0.0.1:0"
	sc.TickTime = 500 * time.Millisecond
	sc.MaxSessionTimeout = 60 * time.Second
	sc.FourLetterWords = []string{"*"}
	sc.MaxClientConnsPerIP = 0
	sc.Logger = testlog.New(t).With("component", "zkserver")
	srv, err := zkserver.New(n, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r.server = srv
	jc, err := importer.NewJournalCluster([]string{n.AdminAddr()}, creds(), testlog.New(t).With("component", "journal-client"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jc.Close() })
	r.jc = jc
	r.admins = []string{n.AdminAddr()}
	return r
}

// newClusterRig is a rig whose journal is three node processes (killable
// with kill -9), each with a ZooKeeper-protocol port.
func newClusterRig(t *testing.T) *rig {
	t.Helper()
	return newClusterRigWith(t, zktest.Options{Servers: 1}, nil)
}

// newClusterRigWith is newClusterRig on an ensemble started with zo, each
// node's spec changed by mod (when not nil) before it starts.
func newClusterRigWith(t *testing.T, zo zktest.Options, mod func(*rig, *testproc.JournalSpec)) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	r := &rig{t: t, ens: ens}
	base := t.TempDir()
	for i := range 3 {
		spec := testproc.JournalSpec{ID: fmt.Sprintf("n%d", i+1), DataDir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			RaftAddr: testlog.FreeAddr(t), AdminAddr: testlog.FreeAddr(t), ClientAddr: testlog.FreeAddr(t), Secret: testlog.Secret()}
		if i == 0 {
			spec.Bootstrap = true
		} else {
			spec.Join = r.admins[0]
		}
		if mod != nil {
			mod(r, &spec)
		}
		j := testproc.StartJournal(t, spec)
		j.WaitListening(t, spec.AdminAddr, time.Minute)
		r.procs = append(r.procs, j)
		r.admins = append(r.admins, spec.AdminAddr)
		admin := raftjournal.NewAdminClient(spec.AdminAddr, creds())
		testlog.WaitFor(t, time.Minute, spec.ID+" to join with a leader", func() error {
			cs, err := admin.ClusterStatus(ctx, false)
			if err != nil {
				return err
			}
			if cs.Leader == "" || len(cs.Members) != i+1 {
				return fmt.Errorf("leader %q, %d members", cs.Leader, len(cs.Members))
			}
			return nil
		})
	}
	jc, err := importer.NewJournalCluster(r.admins, creds(), testlog.New(t).With("component", "journal-client"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jc.Close() })
	r.jc = jc
	return r
}

// leaderProc returns the journal process that leads now.
func (r *rig) leaderProc(ctx context.Context) (*testproc.Journal, error) {
	for _, p := range r.procs {
		if exited, _ := p.Exited(); exited {
			continue
		}
		cs, err := raftjournal.NewAdminClient(p.Spec.AdminAddr, creds()).ClusterStatus(ctx, true)
		if err != nil {
			continue
		}
		if cs.Role == "leader" {
			return p, nil
		}
	}
	return nil, errors.New("no journal process leads")
}

// phases returns every answering member's applied phase.
func (r *rig) phases(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, a := range r.admins {
		cs, err := raftjournal.NewAdminClient(a, creds()).ClusterStatus(ctx, true)
		if err == nil {
			out[cs.ID] = cs.Phase
		}
	}
	return out
}

// proxy is one dual-write proxy with its cutover agent, as `zk2raft proxy`
// wires them.
type proxy struct {
	id    string
	tap   *dualwrite.Tap
	agent *Agent
	admin string
	stop  func()
}

func (r *rig) startProxy(id string, held bool) *proxy {
	r.t.Helper()
	return r.startProxyWith(id, r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Held = held })
}

// startProxyTo starts a proxy that mirrors into j (a journal that does not
// answer, for the mirror-lag gate); it registers through the rig's journal.
func (r *rig) startProxyTo(id string, held bool, j dualwrite.Journal) *proxy {
	r.t.Helper()
	return r.startProxyWith(id, j, func(c *dualwrite.Config, _ *AgentConfig) { c.Held = held })
}

// startProxyWith starts a proxy mirroring into j, with mod applied to its
// tap's and agent's configurations.
func (r *rig) startProxyWith(id string, j dualwrite.Journal, mod func(*dualwrite.Config, *AgentConfig)) *proxy {
	t := r.t
	t.Helper()
	logger := testlog.New(t).With("proxy", id)
	cfg := dualwrite.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ZK = r.ens.Hosts()
	cfg.Journal = j
	cfg.QueueDir = t.TempDir()
	cfg.QueueNoSync = true
	cfg.Logger = logger.With("component", "tap")
	acfg := AgentConfig{Journal: r.jc, Members: r.jc.AdminAddrs, Credentials: creds(),
		Record: ProxyRecord{ID: id, ZooKeeper: r.ens.Hosts()}, Poll: 100 * time.Millisecond, Logger: logger.With("component", "cutover")}
	mod(&cfg, &acfg)
	tap, err := dualwrite.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	view := dualwrite.FailoverView(r.jc.AdminAddrs, func(addr string) *raftjournal.AdminClient {
		return raftjournal.NewAdminClient(addr, creds())
	})
	rc := dualwrite.DefaultReconcilerConfig()
	rc.ZK, rc.Journal, rc.View, rc.Mirrored, rc.Interval = r.ens.Hosts(), j, view, tap.MirroredZxid, 0
	rc.Auth = cfg.Auth // the tap's read-back credentials, as zk2raft proxy gives both
	rc.Logger = logger.With("component", "reconcile")
	rec, err := dualwrite.NewReconciler(rc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acfg.Tap, acfg.Reconcile = tap, rec.Stats
	acfg.Record.Listen, acfg.Record.Admin = tap.Addr(), ln.Addr().String()
	agent, err := NewAgent(acfg)
	if err != nil {
		t.Fatal(err)
	}
	guard := raftjournal.AdminGuard{Secret: testlog.Secret()}
	mux := http.NewServeMux()
	mux.Handle("/cutover/", guard.Require(agent.Handler()))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { agent.Run(ctx) })
	wg.Go(func() { rec.Run(ctx) })
	// As `zk2raft proxy` does: a lost mirror (a write whose reply a dead
	// ZooKeeper server never sent) is made good by a repair pass.
	wg.Go(func() { dualwrite.RepairOwed(ctx, tap, rec, time.Second) })
	p := &proxy{id: id, tap: tap, agent: agent, admin: ln.Addr().String()}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			srv.Close()
			rec.Close()
			tap.Close()
		})
	}
	t.Cleanup(p.stop)
	testlog.WaitFor(t, 30*time.Second, "proxy "+id+" to register", func() error {
		if !agent.State().Registered {
			return errors.New("not registered")
		}
		return nil
	})
	// The reconciler's startup pass walks ZooKeeper on sessions of its own
	// (which the direct-clients gate would count while they last).
	testlog.WaitFor(t, 60*time.Second, "proxy "+id+"'s reconciler to finish its startup pass", func() error {
		if st := rec.Stats(); st.RepairPasses == 0 && st.DigestEqual == 0 {
			return errors.New("startup pass not done")
		}
		return nil
	})
	return p
}

func (r *rig) options() Options {
	return Options{Journal: r.admins, Credentials: creds(), HoldTimeout: 15 * time.Second, // generous: a loaded machine under -race
		RepairQuiet: time.Millisecond, Logger: testlog.New(r.t).With("component", "orchestrator")}
}

func (r *rig) phase() raftjournal.Phase { return r.node.FSM().Phase() }

// kazoo runs testdata/kazoo_cutover.py against addr; lines come back on out.
type kazoo struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   chan map[string]any
	errb  *strings.Builder
	mu    sync.Mutex
	close func()
}

const kazooPython = "/usr/bin/python3"

func startKazoo(t *testing.T, addr, root string) *kazoo {
	t.Helper()
	return startKazooScript(t, "kazoo_cutover.py", addr, root)
}

// startKazooScript runs testdata/<script> against addr under root.
func startKazooScript(t *testing.T, script, addr, root string, args ...string) *kazoo {
	t.Helper()
	if out, err := exec.Command(kazooPython, "-c", "import kazoo").CombinedOutput(); err != nil {
		t.Fatalf("kazoo is not installed for %s (apt-get install python3-kazoo; make deps): %v: %s", kazooPython, err, out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kazooPython, append([]string{script, addr, root}, args...)...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "VIRTUAL_ENV=")
	}), "PYTHONDONTWRITEBYTECODE=1")
	k := &kazoo{cmd: cmd, out: make(chan map[string]any, 8), errb: &strings.Builder{}}
	cmd.Stderr = &lockedWriter{w: k.errb, mu: &k.mu}
	if k.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				k.out <- m
			}
		}
		close(k.out)
	}()
	k.close = func() {
		k.in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(k.close)
	return k
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (k *kazoo) stderr() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.errb.String()
}

// next waits for kazoo's next JSON line.
func (k *kazoo) next(t *testing.T, what string) map[string]any {
	t.Helper()
	select {
	case m, ok := <-k.out:
		if !ok {
			t.Fatalf("kazoo ended before %s; stderr:\n%s", what, k.stderr())
		}
		return m
	case <-time.After(90 * time.Second):
		t.Fatalf("kazoo did not report %s in 90s; stderr:\n%s", what, k.stderr())
	}
	return nil
}

func (k *kazoo) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(k.in, line); err != nil {
		t.Fatalf("kazoo stdin: %v; stderr:\n%s", err, k.stderr())
	}
}
