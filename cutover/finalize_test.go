package cutover

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
)

// TestFinalizeGates: finalize is refused from shadow, refused while a
// registered proxy still relays to ZooKeeper, refused while a split-brain
// write is unresolved (naming it, and `cutover status` lists it), and once
// both are settled (the proxy switched, the write acknowledged) it commits
// the phase finalized, after which the journal refuses a rollback and a
// second finalize says "already".
func TestFinalizeGates(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	// The agent reads the phase only once an hour: after the commit below
	// its proxy still relays to ZooKeeper until asked.
	p := r.startProxyWith("p1", r.jc, func(_ *dualwrite.Config, a *AgentConfig) { a.Poll = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := r.options()

	if _, err := ToFinalized(ctx, o); err == nil || !strings.Contains(err.Error(), "shadow") {
		t.Fatalf("finalize from shadow: %v", err)
	}
	if err := r.node.SetPhase(ctx, raftjournal.PhasePrimary, false); err != nil {
		t.Fatal(err)
	}
	refused := func(gate, evidence string) {
		t.Helper()
		rep, err := ToFinalized(ctx, o)
		var fe *FinalizeRefusedError
		if !errors.As(err, &fe) || len(fe.Failing) != 1 || fe.Failing[0].Name != gate || !strings.Contains(fe.Failing[0].Evidence, evidence) {
			t.Fatalf("finalize: %v; want refused by gate %s (%q)", err, gate, evidence)
		}
		if rep == nil || rep.Outcome != "refused" || r.phase() != raftjournal.PhasePrimary {
			t.Fatalf("refused finalize: report %+v, phase %s", rep, r.phase())
		}
	}
	refused(GateFinalizeProxies, "p1 still relays to ZooKeeper")

	// `cutover --to primary` again asks the proxy to switch, and writes
	// nothing to ZooKeeper (no gates, no alignment through the proxy).
	if rep, err := ToPrimary(ctx, o); err != nil || rep.Outcome != "already" {
		t.Fatalf("cutover --to primary when primary: %+v, %v", rep, err)
	}
	if b := p.tap.Backend(); b != dualwrite.BackendJournal {
		t.Fatalf("proxy backend %s after cutover --to primary asked it to switch", b)
	}
	zc, err := zkclient.Dial(ctx, zkclient.Config{Hosts: r.ens.Hosts()})
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	if _, ok, err := zc.Exists(ctx, DefaultAlignPath); ok || err != nil {
		t.Errorf("ZooKeeper has %s (%v): cutover --to primary aligned through a proxy in primary", DefaultAlignPath, err)
	}

	// A split-brain write, as the reverse mirror's sentry records it.
	w := &reversemirror.SplitBrainWrite{Path: "/app/x", Op: "setData", Zxid: 0x1_0000_0123, Session: 0x42, SessionFrom: "cons",
		Expected: "the node at version 3", Found: "version 4", DetectedAt: time.Now().UTC()}
	if err := submit(ctx, r.jc, reversemirror.SplitBrainCheckpoint(w)); err != nil {
		t.Fatal(err)
	}
	refused(GateFinalizeSplitBrain, "setData /app/x at ZooKeeper zxid 0x100000123 by session 0x42")
	st, err := Inspect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.SplitBrain) != 1 || st.SplitBrain[0].Path != "/app/x" || len(st.FinalizeGates) != 3 || st.FinalizeGates[2].Pass {
		t.Fatalf("status in primary: split brain %+v, finalize gates %+v", st.SplitBrain, st.FinalizeGates)
	}
	if _, err := Resolve(ctx, o, ResolveOptions{Zxid: 0x1_0000_0124, Note: "wrong zxid"}); err == nil {
		t.Fatal("resolved a write that was not recorded")
	}
	done, err := Resolve(ctx, o, ResolveOptions{Zxid: 0x1_0000_0123, Note: "a test's write; ZooKeeper is retired"})
	if err != nil || len(done) != 1 || done[0].Resolved.By != "operator" {
		t.Fatalf("resolve: %+v, %v", done, err)
	}

	rep, err := ToFinalized(ctx, o)
	if err != nil || rep.Outcome != "committed" {
		t.Fatalf("finalize: %+v, %v", rep, err)
	}
	testlog.WaitFor(t, 30*time.Second, "the journal finalized", func() error {
		if ph := r.phase(); ph != raftjournal.PhaseFinalized {
			return errors.New(ph.String())
		}
		return nil
	})
	err = submit(ctx, r.jc, &raftjournal.SetPhase{Phase: raftjournal.PhaseShadow, Rollback: true, Time: time.Now().UnixMilli()})
	if !errors.Is(err, raftjournal.ErrPhaseTransition) {
		t.Fatalf("rollback after finalize: %v; want refused", err)
	}
	if rep, err := ToFinalized(ctx, o); err != nil || rep.Outcome != "already" {
		t.Fatalf("second finalize: %+v, %v", rep, err)
	}
}
