package cutover

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// proxyProcEnv carries a proxyProcSpec to a proxy process.
const proxyProcEnv = "ZK2RAFT_TEST_CUTOVER_PROXY"

// proxyProcSpec is a proxy run in a process of its own, so that a test can
// kill it with SIGKILL and start it again on the same addresses and state
// directory, as an operator restarts `zk2raft proxy`.
type proxyProcSpec struct {
	ID        string
	ZK        []string
	Journal   []string // admin addresses
	Listen    string
	Admin     string
	QueueDir  string // the queue and the agent's state, as `zk2raft proxy --queue-dir`
	Poll      time.Duration
	StartWait time.Duration
	// Auth is the tap's and the reconciler's ZooKeeper credentials
	// (SCHEME:CRED), as `zk2raft proxy --auth` gives both.
	Auth []string
}

// TestCutoverProxyProcess is not a test: the body of the proxy processes
// the fault tests start. It wires the tap, the reconciler and the cutover
// agent the way `zk2raft proxy` does (internal/cli/proxy.go: started held
// when the state directory says so, the reconciler stopped at the switch).
func TestCutoverProxyProcess(t *testing.T) {
	var spec proxyProcSpec
	if !testproc.Child(proxyProcEnv, &spec) {
		return
	}
	os.Exit(runProxyProcess(spec))
}

func runProxyProcess(spec proxyProcSpec) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proxy", spec.ID)
	fail := func(what string, err error) int {
		logger.Error("proxy process: "+what, "err", err)
		return 3
	}
	jc, err := importer.NewJournalCluster(spec.Journal, creds(), logger.With("component", "journal-client"))
	if err != nil {
		return fail("journal client", err)
	}
	defer jc.Close()
	startHeld := StartHeld(spec.QueueDir)
	cfg := dualwrite.DefaultConfig()
	cfg.Listen, cfg.ZK, cfg.Journal, cfg.QueueDir, cfg.QueueNoSync = spec.Listen, spec.ZK, jc, spec.QueueDir, true
	cfg.Held = startHeld
	cfg.Auth = spec.Auth
	cfg.Logger = logger.With("component", "tap")
	tap, err := dualwrite.Start(context.Background(), cfg)
	if err != nil {
		return fail("tap", err)
	}
	defer tap.Close()
	view := dualwrite.FailoverView(jc.AdminAddrs, func(addr string) *raftjournal.AdminClient {
		return raftjournal.NewAdminClient(addr, creds())
	})
	rc := dualwrite.DefaultReconcilerConfig()
	rc.ZK, rc.Journal, rc.View, rc.Mirrored, rc.Interval = spec.ZK, jc, view, tap.MirroredZxid, 0
	rc.Auth = spec.Auth
	rc.Logger = logger.With("component", "reconcile")
	rec, err := dualwrite.NewReconciler(rc)
	if err != nil {
		return fail("reconciler", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rctx, rstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { rec.Run(rctx) })
	wg.Go(func() { dualwrite.RepairOwed(rctx, tap, rec, time.Second) })
	var stopRec sync.Once
	agent, err := NewAgent(AgentConfig{Tap: tap, Journal: jc, Members: jc.AdminAddrs, Credentials: creds(),
		Record: ProxyRecord{ID: spec.ID, Listen: tap.Addr(), Admin: spec.Admin, ZooKeeper: spec.ZK},
		Poll:   spec.Poll, StartWait: spec.StartWait, StateDir: spec.QueueDir, ExpectJournal: startHeld,
		Reconcile: rec.Stats, OnSwitch: func() { stopRec.Do(rstop) }, Logger: logger.With("component", "cutover")})
	if err != nil {
		return fail("agent", err)
	}
	wg.Go(func() { agent.Run(ctx) })
	ln, err := net.Listen("tcp", spec.Admin)
	if err != nil {
		return fail("admin address", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/cutover/", raftjournal.AdminGuard{Secret: testlog.Secret()}.Require(agent.Handler()))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Println("serving")
	testproc.WaitSignal()
	srv.Close()
	cancel()
	wg.Wait()
	rec.Close()
	return 0
}

// proxyProc is a proxy process and how to start it again.
type proxyProc struct {
	spec proxyProcSpec
	log  string
	proc *testproc.Process
}

// startProxyProc starts a proxy process mirroring into the rig's journal
// and waits until it is registered and its reconciler's startup pass is
// done (the direct-clients gate counts that pass's sessions).
func (r *rig) startProxyProc(t *testing.T, id string, auth ...string) *proxyProc {
	t.Helper()
	dir := t.TempDir()
	p := &proxyProc{spec: proxyProcSpec{ID: id, ZK: r.ens.Hosts(), Journal: r.admins, Listen: testlog.FreeAddr(t), Admin: testlog.FreeAddr(t),
		QueueDir: dir, Poll: 100 * time.Millisecond, StartWait: 10 * time.Second, Auth: auth}, log: filepath.Join(dir, "..", id+".log")}
	p.start(t, r)
	return p
}

func (p *proxyProc) start(t *testing.T, r *rig) {
	t.Helper()
	p.startOnly(t, r, true)
}

// startOnly starts the process and waits until it answers, unheld;
// startupPass also waits for the reconciler's startup pass.
func (p *proxyProc) startOnly(t *testing.T, r *rig, startupPass bool) {
	t.Helper()
	p.proc = testproc.Start(t, testproc.Options{Test: "TestCutoverProxyProcess", Env: proxyProcEnv, Spec: p.spec, LogFile: p.log})
	p.proc.WaitListening(t, p.spec.Admin, time.Minute)
	p.wait(t, r, startupPass)
}

// wait waits until the proxy is registered and unheld (and, with
// startupPass, its reconciler's startup pass is done).
func (p *proxyProc) wait(t *testing.T, r *rig, startupPass bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := newEnv(r.options())
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	testlog.WaitFor(t, time.Minute, "proxy process "+p.spec.ID+" to register and finish its startup pass", func() error {
		var ps ProxyState
		if err := e.proxyCall(ctx, ProxyRecord{ID: p.spec.ID, Admin: p.spec.Admin}, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
			return err
		}
		if !ps.Registered {
			return fmt.Errorf("not registered")
		}
		if ps.Tap.Held {
			return fmt.Errorf("held (settling its start)")
		}
		if startupPass && ps.Tap.Backend == dualwrite.BackendZooKeeper.String() && ps.Reconcile != nil && ps.Reconcile.RepairPasses == 0 && ps.Reconcile.DigestEqual == 0 {
			return fmt.Errorf("reconciler's startup pass not done")
		}
		return nil
	})
}

// state asks the proxy process for its cutover state.
func (p *proxyProc) state(t *testing.T, r *rig) ProxyState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := newEnv(r.options())
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	var ps ProxyState
	if err := e.proxyCall(ctx, ProxyRecord{ID: p.spec.ID, Admin: p.spec.Admin}, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
		t.Fatalf("proxy %s state: %v; its log:\n%s", p.spec.ID, err, testproc.LogTail(p.log, 40))
	}
	return ps
}
