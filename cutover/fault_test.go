package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/rehearsal"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// faultLoad starts the rehearsal's go-zookeeper workload (no kazoo: the
// rehearsal test runs it) through addr, listed twice.
func faultLoad(t *testing.T, ctx context.Context, addr, root string) *rehearsal.Workload {
	t.Helper()
	w, err := rehearsal.Start(ctx, rehearsal.Config{Hosts: []string{addr, addr}, Root: root, Writers: 2, Watchers: 1, NoKazoo: true,
		Logger: testlog.New(t).With("component", "rehearsal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// waitWrites waits until the workload has had n requests answered after
// since.
func waitWrites(t *testing.T, w *rehearsal.Workload, since time.Time, n int, what string) {
	t.Helper()
	testlog.WaitFor(t, 2*time.Minute, what, func() error {
		if p := w.ProgressSince(since); p.Writes < n || p.WatchesFired < 2 {
			return fmt.Errorf("progress %+v", p)
		}
		return nil
	})
}

// verifyLoad stops the workload and checks every promise against the
// journal's ZooKeeper port.
func verifyLoad(t *testing.T, ctx context.Context, w *rehearsal.Workload, journalClient string) {
	t.Helper()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := w.Verify(ctx, []string{journalClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Summary() {
		t.Logf("workload: %s", l)
	}
	if pr := res.Problems(); len(pr) > 0 {
		t.Fatalf("promises broken:\n  %s", strings.Join(pr, "\n  "))
	}
}

// TestCutoverProxyKilled: a proxy process is killed with kill -9 in the
// middle of a cutover, under a client workload, twice.
//
// While it holds (before the commit), and started again at once on the same
// addresses and state directory: the restarted proxy no longer holds for
// the cutover, which aborts before the commit, saying so; the clients go on
// with ZooKeeper.
//
// After the commit, before the switch: the command says the journal is
// primary and the proxy did not switch; started again, the proxy relays
// nothing to ZooKeeper (its state directory says a cutover held it) and goes
// to the journal, where the clients resume their sessions.
//
// Throughout, no acknowledged write is lost and no session or ephemeral.
func TestCutoverProxyKilled(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxyProc(t, "p1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := faultLoad(t, ctx, p.spec.Listen, "/faults")
	waitWrites(t, w, time.Now(), 50, "the workload to run on ZooKeeper")

	// Killed while holding, and back before the drain.
	o := r.options()
	o.stepHook = func(step string) error {
		if step == "hold" {
			p.proc.Kill()
			p.startOnly(t, r, false)
		}
		return nil
	}
	rep, err := ToPrimary(ctx, o)
	var ae *AbortError
	if !errors.As(err, &ae) {
		t.Fatalf("a proxy killed and restarted during the hold: want an abort, got %v (report %+v)", err, rep)
	}
	t.Logf("killed while holding: %v", err)
	if r.phase() != raftjournal.PhaseShadow {
		t.Fatalf("phase %s after the abort", r.phase())
	}
	if ps := p.state(t, r); ps.Tap.Held || ps.Tap.Backend != dualwrite.BackendZooKeeper.String() {
		t.Fatalf("after the abort the proxy is held %v, relays to %s", ps.Tap.Held, ps.Tap.Backend)
	}
	waitWrites(t, w, time.Now(), 50, "the workload to go on with ZooKeeper")
	p.wait(t, r, true) // the restarted reconciler's startup pass (its sessions fail the direct-clients gate)

	// Killed after the commit, before the switch; started again afterwards.
	o = r.options()
	o.stepHook = func(step string) error {
		if step == "commit" {
			p.proc.Kill()
		}
		return nil
	}
	// The restarted proxy's reconciler repairs what the kill lost (writes
	// whose replies died with the process); a gate refusing while it does
	// is retried: the hook kills only at the commit.
	testlog.WaitFor(t, 2*time.Minute, "the gates to pass for the second cutover", func() error {
		rep, err = ToPrimary(ctx, o)
		if errors.As(err, new(*GateError)) {
			return err
		}
		return nil
	})
	if err == nil || rep == nil || rep.Outcome != "committed" || !strings.Contains(err.Error(), "did not switch") {
		t.Fatalf("a proxy killed after the commit: want committed and a proxy not switched, got %v (report %+v)", err, rep)
	}
	t.Logf("killed after the commit: %v", err)
	if r.phase() != raftjournal.PhasePrimary {
		t.Fatalf("phase %s after the commit", r.phase())
	}
	// A client that connects the moment the proxy listens again, and
	// writes: the write must be the journal's.
	wrote := make(chan error, 1)
	go func() { wrote <- writeOnRestart(ctx, p.spec.Listen, "/faults-after-restart") }()
	restarted := time.Now()
	p.start(t, r)
	if err := <-wrote; err != nil {
		t.Fatalf("a write through the restarted proxy: %v", err)
	}
	testlog.WaitFor(t, 30*time.Second, "the write made through the restarted proxy to be the journal's", func() error {
		if _, ok := r.node.FSM().Node("/faults-after-restart"); !ok {
			return errors.New("not in the journal (did the restarted proxy relay it to ZooKeeper?)")
		}
		return nil
	})
	if ps := p.state(t, r); ps.Tap.Held || ps.Tap.Backend != dualwrite.BackendJournal.String() {
		t.Fatalf("the restarted proxy is held %v, relays to %s; its log:\n%s", ps.Tap.Held, ps.Tap.Backend, testproc.LogTail(p.log, 40))
	}
	waitWrites(t, w, restarted, 50, "the workload to go on with the journal")
	verifyLoad(t, ctx, w, r.server.Addr())
}

// writeOnRestart dials addr until it answers (a proxy starting again) and
// creates path there.
func writeOnRestart(ctx context.Context, addr, path string) error {
	for {
		c, err := zkclient.Dial(ctx, zkclient.Config{Hosts: []string{addr}, SessionTimeout: 20 * time.Second})
		if err == nil {
			defer c.Close()
			_, _, err = c.Create(ctx, path, []byte("x"), znode.WorldAnyone(), zkwire.ModePersistent)
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond): // polling for a port that is not open yet
		}
	}
}

// TestCutoverZooKeeperServerDies: ZooKeeper's leader is killed with kill -9
// while the proxy holds its clients, before the drain, under a client
// workload. Whatever the cutover then does — commit after the ensemble
// elected another leader, or abort back to ZooKeeper saying why — the
// journal and the proxy end on one side, and no acknowledged write, session
// or ephemeral is lost. After an abort, a cutover with the server still dead
// is refused by the direct-clients gate, saying to start it again (or name
// the live servers); started again, the cutover goes through.
func TestCutoverZooKeeperServerDies(t *testing.T) {
	t.Parallel()
	r := newRigWith(t, zktest.Options{Servers: 3})
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := faultLoad(t, ctx, p.tap.Addr(), "/faults")
	waitWrites(t, w, time.Now(), 50, "the workload to run on ZooKeeper")

	o := r.options()
	killed := 0
	o.stepHook = func(step string) error {
		if step != "hold" {
			return nil
		}
		id, err := r.ens.Leader(ctx)
		if err != nil {
			return err
		}
		killed = id
		return r.ens.Kill(id)
	}
	rep, err := ToPrimary(ctx, o)
	t.Logf("ZooKeeper server %d killed before the drain: %v (report %+v)", killed, err, rep)
	var ae *AbortError
	switch {
	case err == nil:
		if rep.Outcome != "committed" || r.phase() != raftjournal.PhasePrimary {
			t.Fatalf("no error but outcome %q, phase %s", rep.Outcome, r.phase())
		}
	case errors.As(err, &ae):
		if r.phase() != raftjournal.PhaseShadow {
			t.Fatalf("aborted, but the phase is %s", r.phase())
		}
		if held, _ := p.tap.Held(); held || p.tap.Backend() != dualwrite.BackendZooKeeper {
			t.Fatalf("aborted, but the proxy is held %v, relays to %s", held, p.tap.Backend())
		}
		waitWrites(t, w, time.Now(), 50, "the workload to go on with ZooKeeper's two servers")
		// With the server still dead, the direct-clients gate cannot list
		// its connections, and says what to do.
		_, err = ToPrimary(ctx, r.options())
		var ge *GateError
		if !errors.As(err, &ge) || !slices.ContainsFunc(ge.Failing, func(g Gate) bool { return g.Name == GateDirect }) ||
			!strings.Contains(err.Error(), "start it again") {
			t.Fatalf("a cutover with a ZooKeeper server down: want the direct-clients gate to say so, got %v", err)
		}
		// As the message says: the server is started again, and the
		// cutover goes through.
		if err := r.ens.StartServer(ctx, killed); err != nil {
			t.Fatal(err)
		}
		testlog.WaitFor(t, 2*time.Minute, "a cutover once the server is back", func() error {
			rep, err = ToPrimary(ctx, r.options())
			if errors.As(err, new(*GateError)) || errors.As(err, new(*AbortError)) {
				return err
			}
			if err != nil {
				t.Fatalf("second cutover: %v", err)
			}
			return nil
		})
	default:
		t.Fatalf("cutover with a ZooKeeper server killed: %v", err)
	}
	if r.phase() != raftjournal.PhasePrimary || p.tap.Backend() != dualwrite.BackendJournal {
		t.Fatalf("phase %s, the proxy relays to %s", r.phase(), p.tap.Backend())
	}
	waitWrites(t, w, time.Now(), 50, "the workload to go on with the journal")
	verifyLoad(t, ctx, w, r.server.Addr())
}
