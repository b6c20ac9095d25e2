package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
)

// TestRollbackCluster is the rollback with several proxies and a three-node
// journal (issue 16): two proxies, on each a kazoo and a go-zookeeper
// session begun on ZooKeeper; cutover to primary; writes of every kind
// through both proxies on the journal (creates of every mode, sequentials,
// multi, setData, setACL, deletes, ephemerals; kazoo's and go-zookeeper's);
// a rollback whose drain would outlast half the sessions' timeout is
// refused, the clients kept on the journal with their sessions; a
// journal-minted session with an ephemeral; then the rollback. Checked
// after it: every member is shadow and both proxies relay to ZooKeeper;
// ZooKeeper holds every write acknowledged in primary (paths with their
// sequential names, data, ACLs, deletes, the ephemerals with their owners);
// the sessions of kazoo and go-zookeeper on both proxies are the same; the
// journal-minted session expired with its ephemeral; the mirroring into the
// journal resumes through both proxies; and ZooKeeper equals each of the
// three journal members, node by node.
//
// No rehearsal load runs here: on a three-node journal whose leadership
// moves under load it reported a write applied twice (its check after a
// connection loss reads without a sync), and its watchers' reconnects hit
// go-zookeeper v1.0.4's own data race (Conn.lastZxid, sendSetWatches
// against recvLoop) under -race.
func TestRollbackCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Sessions of 20 s: a forward cutover's hold under load (8 s seen) plus
	// the time since a client's last ping stays within them.
	sides := []*clusterSide{r.startSide(t, "p1", 20*time.Second), r.startSide(t, "p2", 20*time.Second)}
	r.waitSessionsKnown(t, ctx)
	r.cutoverRetrying(t, ctx, sides)
	checkSessions(t, sides, "on the journal")

	for _, s := range sides {
		s.primaryWrites(t, 1)
	}
	// A rollback whose drain would outlast the clients' sessions is
	// refused: held clients cannot ping, so the drain and the commit get
	// half the shortest session timeout (20 s here); the hook stands for a
	// drain slower than that (a deliberate delay, not a wait for an event).
	// The clients go on on the journal with their sessions.
	o := r.rollbackOptions()
	o.stepHook = func(step string) error {
		if step == "hold" {
			<-time.After(11 * time.Second)
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	var ae *RollbackAbortError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "half the shortest session timeout") {
		t.Fatalf("a rollback whose drain outlasts half the sessions' timeout: want it refused, saying why; got %v (report %+v)", err, rep)
	}
	t.Logf("refused: %v", err)
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
	}
	checkSessions(t, sides, "on the journal after the refused rollback")

	// A session the journal mints, through the second proxy: it cannot live
	// on in ZooKeeper; it expires at the rollback, with its ephemeral.
	minted, _ := gozkThrough(t, sides[1].addr)
	mintedID := minted.SessionID()
	if !raftjournal.JournalSession(mintedID) {
		t.Fatalf("a new session through the switched proxy is %#x, not the journal's", mintedID)
	}
	testlog.WaitFor(t, 60*time.Second, "the journal-minted session's ephemeral", func() error {
		_, err := minted.Create("/gz-p2/minted-eph", nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll))
		switch {
		case err == nil, errors.Is(err, gozk.ErrNodeExists): // a retry after a connection loss: its own
			return nil
		case errors.Is(err, gozk.ErrConnectionClosed), errors.Is(err, gozk.ErrNoServer):
			return err
		}
		t.Fatal(err)
		return nil
	})

	rep, err = ToShadow(ctx, r.rollbackOptions())
	if err != nil {
		t.Fatalf("rollback: %v\nsteps %+v", err, rep)
	}
	r.checkRolledBack(t, ctx, rep, sides)

	zk := r.superZK(t)
	for _, s := range sides {
		s.checkZooKeeper(t, zk)
	}
	checkSessions(t, sides, "back on ZooKeeper")
	testlog.WaitFor(t, 60*time.Second, "the journal-minted session to expire", func() error {
		if id := minted.SessionID(); id == mintedID || minted.State() != gozk.StateHasSession {
			return fmt.Errorf("session %#x, state %v", id, minted.State())
		}
		return nil
	})
	minted.Close()
	if _, _, err := zk.GetData(ctx, "/gz-p2/minted-eph"); !errors.Is(err, zkclient.ErrNoNode) {
		t.Errorf("the journal-minted session's ephemeral in ZooKeeper: %v", err)
	}
	r.mirroringResumes(t, ctx, sides, "after-rollback")
	// The proxies' reconcilers may still repair what the keeper's deletes
	// left; the comparison is clean once they have.
	testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

// TestRollbackClusterLeaderKilled: two round trips through two proxies
// and a three-node journal, and in each rollback the journal's leader — the
// node whose reverse mirror applies — is killed with kill -9:
//
//   - right after the rollback held the proxies, with journal writes still
//     owed to ZooKeeper (the mirror is throttled to one entry per multi,
//     150 ms apart): the new leader's mirror resumes from ZooKeeper's marker
//     and the drain goes on;
//   - right after the commit, before its mirror was seen letting go of the
//     ZooKeeper sessions it kept: the proxies switch back without waiting
//     for the election (the sessions the dead mirror kept run out in
//     ZooKeeper meanwhile), the clients resume them, and a journal-minted
//     session's ephemeral still goes.
//
// The rollback either commits, or refuses with the journal still primary
// and the proxies released to it, saying so — and then a second rollback
// commits. Either way: ZooKeeper holds every write acknowledged in primary
// through both proxies, the sessions of kazoo and go-zookeeper on both
// proxies survive, mirroring resumes through both, and ZooKeeper equals all
// three members once the killed node is back.
func TestRollbackClusterLeaderKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, func(m *testproc.ReverseMirrorSpec) { m.Throttle, m.MaxBatchOps = 150*time.Millisecond, 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The throttled drain holds the clients for seconds (9–17 s here under
	// load), and the drain and the commit get half the shortest session
	// timeout: sessions of 40 s leave it 20 s.
	sides := []*clusterSide{r.startSide(t, "p1", 40*time.Second), r.startSide(t, "p2", 40*time.Second)}
	r.waitSessionsKnown(t, ctx)
	for round, killAt := range []string{"hold", "commit"} {
		round++
		r.cutoverRetrying(t, ctx, sides)
		checkSessions(t, sides, "on the journal")
		for _, s := range sides {
			s.primaryWrites(t, round)
		}
		// A session the journal mints, with an ephemeral: whichever node
		// leads after the commit, it must not outlive the rollback in
		// ZooKeeper.
		minted, _ := gozkThrough(t, sides[1].addr)
		mintedEph := fmt.Sprintf("/gz-p2/minted-%d", round)
		testlog.WaitFor(t, 60*time.Second, "the journal-minted session's ephemeral", func() error {
			_, err := minted.Create(mintedEph, nil, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll))
			if err == nil || errors.Is(err, gozk.ErrNodeExists) {
				return nil
			}
			return err
		})

		if killAt == "commit" {
			// This round is about the commit, not the drain: the
			// throttled mirror catches up first.
			r.waitMirrorCaughtUp(t, ctx)
		}
		o := r.rollbackOptions()
		o.MaxLag = 5 * time.Minute // the throttled mirror lags on purpose
		o.HoldTimeout = 45 * time.Second
		var killed *testproc.Journal
		pending := -1
		o.stepHook = func(step string) error {
			if step != killAt || killed != nil {
				return nil
			}
			for _, a := range r.liveAdmins() {
				if js, err := raftjournal.NewAdminClient(a, creds()).CutoverState(ctx, "zk2raft/"); err == nil && js.ReverseMirror != nil {
					pending = js.ReverseMirror.PendingEntries
					break
				}
			}
			lp, err := r.leaderProc(ctx)
			if err != nil {
				return err
			}
			killed = lp
			lp.Kill()
			return nil
		}
		rep, err := ToShadow(ctx, o)
		if killed == nil {
			t.Fatalf("round %d: the rollback did not reach the %s step: %v\nsteps %+v", round, killAt, err, rep)
		}
		t.Logf("round %d: killed the leader %s after the %s step with %d journal entries owed to ZooKeeper", round, killed.Spec.ID, killAt, pending)
		if killAt == "hold" && pending <= 0 {
			t.Fatalf("the leader was killed with %d entries owed to ZooKeeper: the drain had nothing to resume", pending)
		}
		var ae *RollbackAbortError
		switch {
		case err == nil:
			t.Logf("round %d: the rollback committed", round)
		case errors.As(err, &ae) && killAt == "hold":
			// Refused, with nothing lost: the journal is still primary and
			// the proxies relay to it again; a second rollback goes through.
			t.Logf("round %d: the rollback refused: %v", round, err)
			for id, ph := range r.phases(ctx) {
				if ph != raftjournal.PhasePrimary.String() {
					t.Fatalf("after the refused rollback member %s is %s", id, ph)
				}
			}
			for _, s := range sides {
				s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
			}
			r.waitMirrorCaughtUp(t, ctx)
			if rep, err = ToShadow(ctx, r.rollbackOptions()); err != nil {
				t.Fatalf("the second rollback: %v\nsteps %+v", err, rep)
			}
		default:
			t.Fatalf("round %d: rollback with the leader killed after the %s step: %v\nsteps %+v", round, killAt, err, rep)
		}
		r.checkRolledBack(t, ctx, rep, sides)
		if killAt == "commit" {
			// Every node runs a mirror: the report must not say otherwise
			// while the others elect a leader.
			for _, st := range rep.Steps {
				if st.Name == "switch" && strings.Contains(st.Detail, "runs no reverse mirror") {
					t.Errorf("round %d: the switch step says %q", round, st.Detail)
				}
			}
		}
		// The test's own client straight to ZooKeeper is closed before the
		// next cutover, whose direct-clients gate would refuse it.
		zk := r.superZK(t)
		for _, s := range sides {
			s.checkZooKeeper(t, zk)
		}
		checkSessions(t, sides, "back on ZooKeeper")
		testlog.WaitFor(t, 2*time.Minute, "the journal-minted session's ephemeral to leave ZooKeeper", func() error {
			if _, _, err := zk.GetData(ctx, mintedEph); !errors.Is(err, zkclient.ErrNoNode) {
				return fmt.Errorf("%s: %v", mintedEph, err)
			}
			return nil
		})
		minted.Close()

		// The killed node comes back and catches up.
		spec := killed.Spec
		spec.Bootstrap, spec.Join = false, ""
		for i, p := range r.procs {
			if p == killed {
				r.procs[i] = testproc.StartJournal(t, spec)
				r.procs[i].WaitListening(t, spec.AdminAddr, time.Minute)
			}
		}
		r.mirroringResumes(t, ctx, sides, fmt.Sprintf("after-rollback-%d", round))
		testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
		if n := len(r.liveAdmins()); n != 3 {
			t.Fatalf("%d journal members run, want 3", n)
		}
		zk.Close()
	}
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}

// TestRollbackClusterProxyKilled: of two proxies in front of a three-node
// journal, the second runs in a process of its own and is killed with
// kill -9 in the middle of a rollback, twice.
//
// While it holds, and started again at once on the same addresses and
// state directory: the restarted proxy fences the rollback off (its state
// directory says a rollback held it) and follows the journal, still
// primary; the rollback refuses before its commit, saying so, and both
// proxies relay to the journal again. Nothing is lost.
//
// After the commit, started again before the command ends: the command
// says the journal is shadow and the proxy did not switch back; the
// restarted proxy relays to ZooKeeper (it read the committed phase), with
// the journal's zxid map, and its switch record is gone.
//
// Throughout, the sessions of kazoo and go-zookeeper on both proxies (begun
// on ZooKeeper) survive, and ZooKeeper ends with every write acknowledged
// in primary and equal to each journal member.
func TestRollbackClusterProxyKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := newRollbackClusterRig(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The killed proxy's clients ride out its restart: their sessions'
	// timeout covers a race-built process starting under load.
	sides := []*clusterSide{r.startSide(t, "p1", 20*time.Second), r.startProcSide(t, "p2", 30*time.Second)}
	p2 := sides[1].proc
	r.waitSessionsKnown(t, ctx)
	r.cutoverRetrying(t, ctx, sides)
	checkSessions(t, sides, "on the journal")
	for _, s := range sides {
		s.primaryWrites(t, 1)
	}

	// Killed while holding, and back before the drain.
	o := r.rollbackOptions()
	o.stepHook = func(step string) error {
		if step == "hold" {
			p2.proc.Kill()
			p2.startOnly(t, r, false)
		}
		return nil
	}
	rep, err := ToShadow(ctx, o)
	var ae *RollbackAbortError
	if !errors.As(err, &ae) || rep == nil || rep.Outcome != "aborted" {
		t.Fatalf("a proxy killed and restarted during the rollback's hold: want the rollback refused, got %v (report %+v)", err, rep)
	}
	t.Logf("killed while holding: %v", err)
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhasePrimary.String() {
			t.Fatalf("after the refused rollback member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendJournal, "after the refused rollback")
	}
	checkSessions(t, sides, "on the journal after the refused rollback")
	for _, s := range sides {
		s.primaryWrites(t, 2)
	}

	// Killed after the commit, before the switch back; started again
	// before the command ends.
	o = r.rollbackOptions()
	o.stepHook = func(step string) error {
		switch step {
		case "commit":
			p2.proc.Kill()
		case "switch":
			p2.startOnly(t, r, false)
		}
		return nil
	}
	rep, err = ToShadow(ctx, o)
	if err == nil || rep == nil || rep.Outcome != "committed" || !strings.Contains(err.Error(), "did not switch back") {
		t.Fatalf("a proxy killed after the rollback's commit: want committed and a proxy not switched back, got %v (report %+v)", err, rep)
	}
	t.Logf("killed after the commit: %v", err)
	for _, s := range rep.Steps {
		t.Logf("rollback step %s ok=%t: %s", s.Name, s.OK, s.Detail)
	}
	if last := rep.Steps[len(rep.Steps)-1]; last.Name != "rebaseline" || !rebaselineClean(last.Detail) {
		t.Fatalf("the rollback's last step: %+v", last)
	}
	for id, ph := range r.phases(ctx) {
		if ph != raftjournal.PhaseShadow.String() {
			t.Fatalf("after the rollback member %s is %s", id, ph)
		}
	}
	for _, s := range sides {
		s.checkTap(t, dualwrite.BackendZooKeeper, "after the rollback")
	}
	if SwitchedBefore(p2.spec.QueueDir) || heldBefore(p2.spec.QueueDir) != "" {
		t.Errorf("the restarted proxy relays to ZooKeeper in shadow but its state directory says switched %t, held by %q: its next start would wait for the journal",
			SwitchedBefore(p2.spec.QueueDir), heldBefore(p2.spec.QueueDir))
	}

	zk := r.superZK(t)
	for _, s := range sides {
		s.checkZooKeeper(t, zk)
	}
	checkSessions(t, sides, "back on ZooKeeper")
	if ss := sides[1].tap(t); ss.ZxidsRewritten == 0 {
		t.Errorf("the restarted proxy rewrote no zxid: %+v", ss)
	}
	r.mirroringResumes(t, ctx, sides, "after-rollback")
	testlog.WaitFor(t, 2*time.Minute, "ZooKeeper equal to each of the three journal members", func() error { return r.membersEqualZooKeeper(ctx) })
	for _, s := range sides {
		s.k.send(t, "stop")
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Second))
}
