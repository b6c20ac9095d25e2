package cutover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// TestCutoverKazooKeepsSession: clients no one here wrote, connected
// through two proxies, live through the cutover: the gates pass, the journal
// becomes primary in one entry, the proxies close the clients' ZooKeeper
// connections and relay them to the journal, where they resume the same
// sessions. kazoo keeps its ephemeral (still owned by its session) and its
// DataWatch sees a change made on the journal; go-zookeeper's one-shot
// watch, set on ZooKeeper and re-registered on the journal by setWatches
// with its last zxid, fires for that change. A switched proxy that restarts
// starts held and goes straight to the journal, and go-zookeeper's session
// resumes through it again.
func TestCutoverKazooKeepsSession(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxy("p1", false)
	p2dir, p2addr := t.TempDir(), testlog.FreeAddr(t)
	startP2 := func() *proxy {
		return r.startProxyWith("p2", r.jc, func(c *dualwrite.Config, a *AgentConfig) {
			c.Listen, c.QueueDir = p2addr, p2dir
			c.Held = SwitchedBefore(p2dir)
			a.StateDir, a.ExpectJournal = p2dir, c.Held
		})
	}
	p2 := startP2()
	k := startKazoo(t, p.tap.Addr(), "/app")
	ready := k.next(t, "ready")
	session := ready["session"].(string)
	gz, _, err := gozk.Connect([]string{p2addr}, 10*time.Second, gozk.WithLogger(slogPrintf{testlog.New(t).With("client", "go-zookeeper")}))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	if _, err := gz.Create("/app/watched-go", []byte("g0"), 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, _, gw, err := gz.GetW("/app/watched-go")
	if err != nil {
		t.Fatal(err)
	}
	gsession := gz.SessionID()

	// The session reaches the journal's mirrored sessions.
	testlog.WaitFor(t, 30*time.Second, "kazoo's session mirrored into the journal", func() error {
		for _, s := range r.node.FSM().SourceSessions() {
			if fmt.Sprintf("%#x", s.ID) == session {
				return nil
			}
		}
		return fmt.Errorf("session %s not among %+v", session, r.node.FSM().SourceSessions())
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := Inspect(ctx, r.options())
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != "shadow" || len(st.Proxies) != 2 || st.Sessions.Known < 2 {
		t.Fatalf("status before: %+v", st)
	}

	rep, err := ToPrimary(ctx, r.options())
	if err != nil {
		t.Fatalf("cutover: %v\nsteps: %+v", err, rep)
	}
	if rep.Outcome != "committed" || r.phase() != raftjournal.PhasePrimary {
		t.Fatalf("outcome %q, phase %s", rep.Outcome, r.phase())
	}
	t.Logf("cutover: pause %s, steps %+v", rep.Pause, rep.Steps)
	if p.tap.Backend() != dualwrite.BackendJournal || p2.tap.Backend() != dualwrite.BackendJournal {
		t.Fatal("a proxy still relays to ZooKeeper")
	}

	k.send(t, "switched")
	res := k.next(t, "resumed")
	if res["session"] != session || res["owner"] != session || res["data"] != "mine" {
		t.Fatalf("after the cutover kazoo reports %v, want session and owner %s", res, session)
	}
	if st := p.tap.SwitchStatus(); st.JournalConnections < 1 {
		t.Fatalf("kazoo is not relayed to the journal: %+v", st)
	}
	// kazoo has no setWatches: its DataWatch reads and watches again once
	// reconnected, on its own thread, so "resumed" may come first. A change
	// made before that read would reach the DataWatch as data, not as an
	// event: wait until the journal holds kazoo's watch (wchc).
	testlog.WaitFor(t, 60*time.Second, "kazoo's DataWatch registered on the journal", func() error {
		out, err := zkclient.FourLetterWord(ctx, r.server.Addr(), "wchc")
		if err != nil {
			return err
		}
		owner := ""
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "\t") {
				owner = line
			} else if owner == session && line == "\t/app/watched" {
				return nil
			}
		}
		return fmt.Errorf("wchc:\n%s", out)
	})
	// Changes on the journal fire the watches set on ZooKeeper.
	if _, err := r.node.Set(ctx, "/app/watched", []byte("v1"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.node.Set(ctx, "/app/watched-go", []byte("g1"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-gw:
		if ev.Type != gozk.EventNodeDataChanged || ev.Path != "/app/watched-go" {
			t.Fatalf("go-zookeeper's watch: %+v", ev)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("go-zookeeper's watch did not fire")
	}
	if gz.SessionID() != gsession {
		t.Fatalf("go-zookeeper's session %#x became %#x", gsession, gz.SessionID())
	}
	k.send(t, "changed")
	fired := k.next(t, "the watch")
	if fired["fired"] != true || !strings.Contains(fmt.Sprint(fired["events"]), "CHANGED /app/watched v1") {
		t.Fatalf("watch: %v", fired)
	}
	if states := fmt.Sprint(fired["states"]); strings.Contains(states, "LOST") {
		t.Fatalf("kazoo lost its session: states %s", states)
	}
	// The journal's status says so too.
	st, err = Inspect(ctx, r.options())
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != "primary" || st.Last == nil || st.Last.Outcome != "committed" {
		t.Fatalf("status after: phase %s, last %+v", st.Phase, st.Last)
	}

	// p2 restarts: it remembers the switch, starts held, reads primary and
	// relays to the journal; go-zookeeper's session resumes through it.
	p2.stop()
	if !SwitchedBefore(p2dir) {
		t.Fatal("the switched proxy left no record of the switch in its state dir")
	}
	p2 = startP2()
	testlog.WaitFor(t, 30*time.Second, "the restarted proxy to relay to the journal", func() error {
		if held, _ := p2.tap.Held(); held || p2.tap.Backend() != dualwrite.BackendJournal {
			return fmt.Errorf("held %v, backend %s", held, p2.tap.Backend())
		}
		return nil
	})
	testlog.WaitFor(t, 60*time.Second, "go-zookeeper's session through the restarted proxy", func() error {
		data, _, err := gz.Get("/app/watched-go")
		if err != nil {
			return err
		}
		if string(data) != "g1" {
			return fmt.Errorf("data %q", data)
		}
		return nil
	})
	if gz.SessionID() != gsession {
		t.Fatalf("go-zookeeper's session %#x became %#x after the proxy restarted", gsession, gz.SessionID())
	}
}

// TestCutoverRefusedNamesGate: each refusal names its gate and nothing else:
// a registered proxy that does not answer fails the proxies gate (forcing
// another gate does not help); a client connected straight to ZooKeeper
// fails the direct-clients gate, naming its session; a proxy whose journal
// does not answer, with a write queued, fails the mirror-lag gate; a divergence injected into the
// journal fails the digest gate. Nothing is held and the phase stays
// shadow.
func TestCutoverRefusedNamesGate(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Register(ctx, r.jc, ProxyRecord{ID: "ghost", Admin: testlog.FreeAddr(t), Listen: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	o := r.options()
	_, err := ToPrimary(ctx, o)
	var ge *GateError
	if !errors.As(err, &ge) || len(ge.Failing) != 1 || ge.Failing[0].Name != GateProxies || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("want a refusal naming the proxies gate and the ghost, got %v", err)
	}
	o.Force = []string{GateDigest} // the wrong gate: still refused
	if _, err := ToPrimary(ctx, o); !errors.As(err, &ge) || ge.Failing[0].Name != GateProxies {
		t.Fatalf("forcing another gate: %v", err)
	}
	if err := Unregister(ctx, r.jc, "ghost"); err != nil {
		t.Fatal(err)
	}

	// A client straight to ZooKeeper, around the proxies.
	direct, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ToPrimary(ctx, r.options())
	if !errors.As(err, &ge) || len(ge.Failing) != 1 || ge.Failing[0].Name != GateDirect ||
		!strings.Contains(ge.Failing[0].Evidence, fmt.Sprintf("%#x", direct.SessionID())) {
		t.Fatalf("want a refusal naming the direct-clients gate and session %#x, got %v", direct.SessionID(), err)
	}
	direct.Close()

	// A proxy that cannot deliver: its journal address answers nothing.
	dead, err := importer.NewJournalCluster([]string{testlog.FreeAddr(t)}, creds(), testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	lagging := r.startProxyTo("lagging", false, dead)
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{lagging.tap.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, "/queued", nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, 30*time.Second, "the lagging proxy to see its journal unreachable", func() error {
		if st := lagging.tap.SwitchStatus(); st.Journal != "unreachable" || st.QueueRecords == 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	_, err = ToPrimary(ctx, r.options())
	if !errors.As(err, &ge) || ge.Failing[0].Name != GateLag || !strings.Contains(ge.Failing[0].Evidence, "lagging") {
		t.Fatalf("want a refusal naming the mirror-lag gate and the lagging proxy, got %v", err)
	}
	c.Close()
	lagging.stop()
	if err := Unregister(ctx, r.jc, "lagging"); err != nil {
		t.Fatal(err)
	}
	// Its write reaches the journal another way (the other proxy's
	// reconciler repairs it), so the digests can agree again.
	testlog.WaitFor(t, 60*time.Second, "the reconciler to repair the lagging proxy's write", func() error {
		if _, ok := r.node.FSM().Node("/queued"); !ok {
			return errors.New("/queued not in the journal")
		}
		return nil
	})

	// A node only the journal has: the digests differ.
	if _, err := r.jc.Submit(ctx, raftjournal.Encode(&raftjournal.ImportBatch{Nodes: []*znode.Node{{
		Path: "/phantom", Data: []byte("x"), ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 1, Mzxid: 1, Pzxid: 1}}}})); err != nil {
		t.Fatal(err)
	}
	_, err = ToPrimary(ctx, r.options())
	if !errors.As(err, &ge) || !slices.ContainsFunc(ge.Failing, func(g Gate) bool { return g.Name == GateDigest }) {
		t.Fatalf("want a refusal naming the digest gate, got %v", err)
	}
	if r.phase() != raftjournal.PhaseShadow {
		t.Fatalf("phase %s after refusals", r.phase())
	}
	if held, _ := p.tap.Held(); held || p.tap.Backend() != dualwrite.BackendZooKeeper {
		t.Fatal("a refused cutover left the proxy held or switched")
	}
	st, err := Inspect(ctx, r.options())
	if err != nil {
		t.Fatal(err)
	}
	if st.Last == nil || st.Last.Outcome != "refused" {
		t.Fatalf("last cutover in status: %+v", st.Last)
	}
}

// TestCutoverOrchestratorKilled: an orchestrator process killed with
// SIGKILL mid-cutover leaves every proxy consistent with the journal's phase.
// Killed after the hold (before the commit): at the hold's deadline the proxy
// fences the commit off (the token says expired) and releases its clients to
// ZooKeeper, and a request held meanwhile proceeds there. Killed after the
// commit: at the deadline the proxy reads primary and switches, and the
// client's session resumes on the journal.
func TestCutoverOrchestratorKilled(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{p.tap.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Create(ctx, "/held", nil, znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
		t.Fatal(err)
	}
	session := c.SessionID()

	killedOrchestrator(t, r.node.AdminAddr(), "hold", 4*time.Second)
	if held, _ := p.tap.Held(); !held {
		t.Fatal("the proxy is not holding after the orchestrator died holding it")
	}
	// A write sent now waits at the proxy until the deadline, then goes to
	// ZooKeeper.
	if _, err := c.SetData(ctx, "/held", []byte("after the hold"), -1); err != nil {
		t.Fatalf("held write: %v", err)
	}
	if held, _ := p.tap.Held(); held || p.tap.Backend() != dualwrite.BackendZooKeeper || r.phase() != raftjournal.PhaseShadow {
		t.Fatalf("after the deadline: held %v, backend %s, phase %s", held, p.tap.Backend(), r.phase())
	}
	zk, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := zk.GetData(ctx, "/held")
	zk.Close() // a session straight to ZooKeeper would fail the direct-clients gate
	if err != nil || string(data) != "after the hold" {
		t.Fatalf("ZooKeeper has %q, %v", data, err)
	}
	if v, ok := r.node.FSM().Checkpoint(TokenKey); !ok || !strings.HasSuffix(string(v), "/expired") {
		t.Fatalf("token %q: the expired hold did not fence the commit off", v)
	}
	// The fence holds: a commit with the dead cutover's guard is refused.
	id := strings.TrimSuffix(string(mustCheckpoint(t, r, TokenKey)), "/expired")
	if err := submit(ctx, r.jc, &raftjournal.SetPhase{Phase: raftjournal.PhasePrimary,
		Guard: &raftjournal.Checkpoint{Key: TokenKey, Value: holdToken(id)}}); !errors.Is(err, raftjournal.ErrGuardFailed) {
		t.Fatalf("a late commit of the dead cutover: %v", err)
	}
	testlog.WaitFor(t, 30*time.Second, "the journal to have the write made after the hold", func() error {
		n, ok := r.node.FSM().Node("/held")
		if !ok || string(n.Data) != "after the hold" {
			return fmt.Errorf("journal has %v", n)
		}
		return nil
	})

	// Killed after the commit: the proxy switches by itself at the deadline.
	killedOrchestrator(t, r.node.AdminAddr(), "commit", 10*time.Second)
	if r.phase() != raftjournal.PhasePrimary {
		t.Fatalf("phase %s after the commit", r.phase())
	}
	testlog.WaitFor(t, 30*time.Second, "the proxy to switch by itself", func() error {
		if p.tap.Backend() != dualwrite.BackendJournal {
			return fmt.Errorf("backend %s", p.tap.Backend())
		}
		return nil
	})
	// The client's session resumes on the journal through the proxy.
	testlog.WaitFor(t, 30*time.Second, "a write through the switched proxy", func() error {
		_, err := c.SetData(ctx, "/held", []byte("on the journal"), -1)
		return err
	})
	if c.SessionID() != session {
		t.Fatalf("session %#x became %#x", session, c.SessionID())
	}
	if n, ok := r.node.FSM().Node("/held"); !ok || string(n.Data) != "on the journal" {
		t.Fatalf("journal has %v", n)
	}
}

func mustCheckpoint(t *testing.T, r *rig, key string) []byte {
	t.Helper()
	v, ok := r.node.FSM().Checkpoint(key)
	if !ok {
		t.Fatalf("no checkpoint %s", key)
	}
	return v
}

// slogPrintf routes go-zookeeper's log lines to a test logger (shown if the
// test fails; safe after it ended).
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) { p.l.Info(fmt.Sprintf(format, args...)) }

// TestCutoverJournalLeaderKilled: the journal's leader is killed with
// kill -9 between the hold and the commit. The commit goes through the new
// leader within the hold, every surviving node ends in primary, the proxy
// switches, and a client's session — with its ephemeral — resumes on a
// surviving node through the proxy.
func TestCutoverJournalLeaderKilled(t *testing.T) {
	t.Parallel()
	r := newClusterRig(t)
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{p.tap.Addr()}, SessionTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Create(ctx, "/eph", []byte("mine"), znode.WorldAnyone(), zkwire.ModeEphemeral); err != nil {
		t.Fatal(err)
	}
	session := c.SessionID()
	// The proxy mirrors the session in the background: the sessions gate
	// waits for it.
	testlog.WaitFor(t, time.Minute, "the client's session known to the journal", func() error {
		st, err := Inspect(ctx, r.options())
		if err != nil {
			return err
		}
		if st.Sessions.AtProxies == 0 || len(st.Sessions.Missing) > 0 {
			return fmt.Errorf("sessions %+v", st.Sessions)
		}
		return nil
	})

	o := r.options()
	o.HoldTimeout = 20 * time.Second
	var killed string
	o.stepHook = func(step string) error {
		if step != "proof" {
			return nil
		}
		lp, err := r.leaderProc(ctx)
		if err != nil {
			return err
		}
		killed = lp.Spec.ID
		lp.Kill()
		return nil
	}
	rep, err := ToPrimary(ctx, o)
	if err != nil {
		t.Fatalf("cutover with the leader killed before the commit: %v\nsteps %+v", err, rep)
	}
	t.Logf("killed %s; pause %s; steps %+v", killed, rep.Pause, rep.Steps)
	phases := r.phases(ctx)
	if len(phases) != 2 {
		t.Fatalf("want the two surviving members to answer, got %v", phases)
	}
	for id, ph := range phases {
		if ph != "primary" {
			t.Fatalf("member %s is in phase %s (all: %v)", id, ph, phases)
		}
	}
	if p.tap.Backend() != dualwrite.BackendJournal {
		t.Fatal("the proxy did not switch")
	}
	testlog.WaitFor(t, 60*time.Second, "the client's session to resume through the proxy", func() error {
		data, st, err := c.GetData(ctx, "/eph")
		if err != nil {
			return err
		}
		if string(data) != "mine" || st.EphemeralOwner != session {
			return fmt.Errorf("/eph %q owned by %#x", data, st.EphemeralOwner)
		}
		return nil
	})
	if c.SessionID() != session {
		t.Fatalf("session %#x became %#x", session, c.SessionID())
	}
}

// TestCutoverGatesTailEvidence: with the data-directory route (a tail
// following ZooKeeper's transaction log, no proxy), the mirror-lag gate takes
// the tail's progress in the journal as its evidence: it passes while the
// tail keeps up with writes made straight to ZooKeeper, and fails, naming
// the tail, once the tail stopped and ZooKeeper moved on. The proxies gate
// says that a cutover with the tail alone is not built.
func TestCutoverGatesTailEvidence(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zk, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer zk.Close()
	// Written before the tail starts: a fresh server has no log file yet.
	for i := range 20 {
		if _, _, err := zk.Create(ctx, fmt.Sprintf("/tailed-%d", i), []byte("x"), znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	srv := r.ens.Servers()[0]
	tail, err := dualwrite.StartTail(ctx, dualwrite.TailConfig{DataDir: srv.DataDir, Journal: importer.NodeJournal(r.node),
		FromSet: true, ServerZxid: func(ctx context.Context) (int64, error) { return zkclient.ServerZxid(ctx, srv.ClientAddr) },
		Logger: testlog.New(t).With("component", "tail")})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	// The tail records progress as it moves: more writes after its start.
	for i := range 5 {
		if _, _, err := zk.Create(ctx, fmt.Sprintf("/tailed-after-%d", i), []byte("y"), znode.WorldAnyone(), zkwire.ModePersistent); err != nil {
			t.Fatal(err)
		}
	}
	o := r.options()
	o.ZK = r.ens.Hosts()
	o.MaxLag = time.Second
	gate := func(st *Status, name string) Gate {
		for _, g := range st.Gates {
			if g.Name == name {
				return g
			}
		}
		t.Fatalf("no gate %s", name)
		return Gate{}
	}
	testlog.WaitFor(t, 60*time.Second, "the mirror-lag gate to pass on the tail's progress", func() error {
		st, err := Inspect(ctx, o)
		if err != nil {
			return err
		}
		if g := gate(st, GateLag); !g.Pass || !strings.Contains(g.Evidence, "tail") || len(st.Tails) != 1 {
			return fmt.Errorf("mirror-lag: %+v", g)
		}
		if g := gate(st, GateProxies); g.Pass || !strings.Contains(g.Evidence, "tail alone is not built") {
			return fmt.Errorf("proxies: %+v", g)
		}
		return nil
	})
	if err := tail.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := zk.SetData(ctx, "/tailed-0", []byte("after the tail stopped"), -1); err != nil {
		t.Fatal(err)
	}
	testlog.WaitFor(t, 60*time.Second, "the mirror-lag gate to fail on the stopped tail", func() error {
		st, err := Inspect(ctx, o)
		if err != nil {
			return err
		}
		if g := gate(st, GateLag); g.Pass || !strings.Contains(g.Evidence, "behind ZooKeeper") {
			return fmt.Errorf("mirror-lag: %+v", g)
		}
		return nil
	})
}

// TestCutoverHoldWithinSessions: held clients cannot ping, and ZooKeeper
// expires a session whose client stays silent for its timeout, so the
// forward cutover's drain, proof and commit get at most half the shortest
// session timeout (4 s for the 8 s session here), not the proxies' whole
// hold deadline (15 s). A hold that would outlast it is refused with the
// clients released, their sessions alive in ZooKeeper; the next cutover
// commits with the same session.
func TestCutoverHoldWithinSessions(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gz, _, err := gozk.Connect([]string{p.tap.Addr()}, 8*time.Second, gozk.WithLogger(slogPrintf{testlog.New(t).With("client", "go-zookeeper")}))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	if _, err := gz.Create("/held", []byte("h"), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	session := gz.SessionID()
	testlog.WaitFor(t, 30*time.Second, "the 8 s session mirrored into the journal", func() error {
		for _, s := range r.node.FSM().SourceSessions() {
			if s.ID == session && s.TimeoutMs == 8000 {
				return nil
			}
		}
		return fmt.Errorf("session %#x not among %+v", session, r.node.FSM().SourceSessions())
	})

	o := r.options() // HoldTimeout 15 s
	o.stepHook = func(step string) error {
		if step == "hold" {
			<-time.After(5 * time.Second) // a drain slower than the budget (a deliberate delay)
		}
		return nil
	}
	rep, err := ToPrimary(ctx, o)
	var ae *AbortError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "half the shortest session timeout (8s)") {
		t.Fatalf("a cutover whose hold outlasts half the sessions' timeout: want it refused, saying why; got %v (report %+v)", err, rep)
	}
	t.Logf("refused: %v", err)
	if r.phase() != raftjournal.PhaseShadow {
		t.Fatalf("phase %s after the refusal", r.phase())
	}
	if held, _ := p.tap.Held(); held || p.tap.Backend() != dualwrite.BackendZooKeeper {
		t.Fatal("the refused cutover left the proxy held or switched")
	}
	// The session lives on in ZooKeeper, its ephemeral with it.
	direct, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	st, ok, err := direct.Exists(ctx, "/held")
	direct.Close()
	if err != nil || !ok || st.EphemeralOwner != session {
		t.Fatalf("after the refusal ZooKeeper's /held: exists %v, owner %#x, err %v; want owner %#x", ok, st.EphemeralOwner, err, session)
	}

	rep, err = ToPrimary(ctx, r.options())
	if err != nil {
		t.Fatalf("the cutover after the refusal: %v (report %+v)", err, rep)
	}
	testlog.WaitFor(t, 60*time.Second, "go-zookeeper on the journal with its session", func() error {
		_, st, err := gz.Get("/held")
		if err != nil {
			return err
		}
		if st.EphemeralOwner != session || gz.SessionID() != session {
			return fmt.Errorf("owner %#x, session %#x; want %#x", st.EphemeralOwner, gz.SessionID(), session)
		}
		return nil
	})
}
