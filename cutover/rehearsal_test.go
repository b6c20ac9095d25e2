package cutover

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/rehearsal"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// TestCutoverRehearsal is issue 15's rehearsal with its figures asserted: a
// client workload runs through the proxy's address — go-zookeeper sessions
// writing sequential nodes, each with an ephemeral, a beacon node others keep
// data watches on, and kazoo clients contending in an Election and for a Lock
// — and the cutover to primary happens in the middle of it. Afterwards, read
// from the journal through its ZooKeeper port (package rehearsal): 0
// sessions lost, 0 ephemerals lost, every acknowledged write there and none
// twice (a write answered with a connection loss is looked for and written
// again only when absent), no error but a connection loss, watches set on
// ZooKeeper fired for changes made on the journal, and kazoo's recipes never
// had two holders and changed hands on both sides of the switch.
func TestCutoverRehearsal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The proxy's address twice: go-zookeeper reconnects at once instead of
	// waiting a second at the end of its list (the runbook's advice).
	w, err := rehearsal.Start(ctx, rehearsal.Config{Hosts: []string{p.tap.Addr(), p.tap.Addr()}, Root: "/rehearsal",
		Logger: testlog.New(t).With("component", "rehearsal")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	started := time.Now()
	waitProgress(t, w, started, "the workload to run on ZooKeeper")

	rep, err := ToPrimary(ctx, r.options())
	if err != nil {
		t.Fatalf("cutover under the workload: %v\nsteps: %+v", err, rep)
	}
	if rep.Outcome != "committed" || r.phase() != raftjournal.PhasePrimary || p.tap.Backend() != dualwrite.BackendJournal {
		t.Fatalf("outcome %q, phase %s, backend %s", rep.Outcome, r.phase(), p.tap.Backend())
	}
	switched := time.Now()
	waitProgress(t, w, switched, "the workload to run on the journal")

	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := w.Verify(ctx, []string{r.server.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rehearsal: cutover held the clients %s (steps %+v)", rep.Pause, rep.Steps)
	for _, l := range res.Summary() {
		t.Logf("rehearsal: %s", l)
	}
	if pr := res.Problems(); len(pr) > 0 {
		t.Fatalf("the rehearsal broke promises:\n  %s\nkazoo states: %v", strings.Join(pr, "\n  "), res.KazooStates)
	}
	if res.SwitchAt.Before(started) || res.SwitchAt.After(switched) {
		t.Fatalf("the first connection loss (%s) is not within the cutover (%s to %s)", res.SwitchAt, started, switched)
	}
}

// waitProgress waits until the workload has made progress of every kind
// since since: writes, Lock and Election changes, watches fired.
func waitProgress(t *testing.T, w *rehearsal.Workload, since time.Time, what string) {
	t.Helper()
	testlog.WaitFor(t, 2*time.Minute, what, func() error {
		p := w.ProgressSince(since)
		if p.Writes < 50 || p.LockAcquired < 3 || p.Elected < 2 || p.WatchesFired < 4 {
			return fmt.Errorf("progress %+v", p)
		}
		return nil
	})
}
