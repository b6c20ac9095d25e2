package cutover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
)

// The finalize gates, by name. None can be forced: finalize cannot be
// undone.
const (
	GateFinalizePrimary    = "primary"          // the journal is primary
	GateFinalizeProxies    = "proxies-switched" // every registered proxy answers and relays to the journal
	GateFinalizeSplitBrain = "split-brain"      // no unresolved split-brain write
)

// FinalizeGates lists the finalize gates in the order they are checked.
var FinalizeGates = []string{GateFinalizePrimary, GateFinalizeProxies, GateFinalizeSplitBrain}

// FinalizeRefusedError is ToFinalized's refusal: the gates that failed.
type FinalizeRefusedError struct{ Failing []Gate }

func (e *FinalizeRefusedError) Error() string {
	var parts []string
	for _, g := range e.Failing {
		parts = append(parts, fmt.Sprintf("gate %q fails: %s", g.Name, g.Evidence))
	}
	return "cutover: finalize refused (nothing was changed): " + strings.Join(parts, "; ")
}

// finalizeToken is TokenKey's value while a finalize may commit.
func finalizeToken(id string) []byte { return []byte(id + "/finalize") }

// finalizeGates judges the finalize gates from a status that has the phase,
// the proxies and the split-brain records.
func finalizeGates(st *Status) []Gate {
	gates := []Gate{{Name: GateFinalizePrimary, Pass: st.Phase == raftjournal.PhasePrimary.String(),
		Evidence: "phase " + st.Phase}}
	g := Gate{Name: GateFinalizeProxies, Pass: true}
	var parts []string
	for _, p := range st.Proxies {
		switch {
		case p.State == nil:
			g.Pass = false
			parts = append(parts, p.Record.ID+" does not answer ("+strings.Join(strings.Fields(p.Error), " ")+"): it may still relay to ZooKeeper; start it (it switches by itself) or `cutover unregister` it if it is gone for good")
		case p.State.Tap.Backend != dualwrite.BackendJournal.String():
			g.Pass = false
			parts = append(parts, fmt.Sprintf("%s still relays to ZooKeeper (%d ZooKeeper connections)", p.Record.ID, p.State.Tap.ZooKeeperConnections))
		case p.State.Tap.Held:
			g.Pass = false
			parts = append(parts, p.Record.ID+" holds its clients (a cutover is under way)")
		case p.State.Tap.ZooKeeperConnections > 0:
			g.Pass = false
			parts = append(parts, fmt.Sprintf("%s relays to the journal but still has %d ZooKeeper connections", p.Record.ID, p.State.Tap.ZooKeeperConnections))
		default:
			parts = append(parts, fmt.Sprintf("%s relays to the journal (%d connections)", p.Record.ID, p.State.Tap.JournalConnections))
		}
	}
	if len(st.Proxies) == 0 {
		parts = append(parts, "no proxy registered")
	}
	g.Evidence = strings.Join(parts, "; ")
	gates = append(gates, g)

	open := Unresolved(st.SplitBrain)
	g = Gate{Name: GateFinalizeSplitBrain, Pass: len(open) == 0}
	switch {
	case len(open) == 0:
		g.Evidence = fmt.Sprintf("no unresolved split-brain write (%d recorded, all resolved)", len(st.SplitBrain))
	default:
		var ws []string
		for i, w := range open {
			if i == 5 {
				ws = append(ws, fmt.Sprintf("and %d more", len(open)-5))
				break
			}
			ws = append(ws, w.String())
		}
		g.Evidence = fmt.Sprintf("%d unresolved (ZooKeeper took writes around the proxies that the journal does not have): %s — undo each in ZooKeeper (the sentry then resolves it as verified) or acknowledge it: `zk2raft cutover resolve --zxid Z --note WHY`",
			len(open), strings.Join(ws, "; "))
	}
	gates = append(gates, g)
	return gates
}

// finalizeStatus reads what the finalize gates need: the phase, the proxies
// and the split-brain records (no ZooKeeper round trips).
func (e *env) finalizeStatus(ctx context.Context) (*Status, error) {
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Journal: &js, Phase: js.Phase, SplitBrain: reversemirror.SplitBrainWrites(js.Checkpoints), Fence: fenceOf(js.Checkpoints)}
	records, err := proxiesOf(js.Checkpoints)
	if err != nil {
		return nil, err
	}
	for _, r := range records {
		var ps ProxyState
		rep := ProxyReport{Record: r}
		if err := e.proxyCall(ctx, r, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
			rep.Error = err.Error()
		} else {
			rep.State = &ps
		}
		st.Proxies = append(st.Proxies, rep)
	}
	st.FinalizeGates = finalizeGates(st)
	st.ReverseMirror = e.reverseMirror(ctx)
	return st, nil
}

// reverseMirror reads the reverse mirror's replicated lag from the first
// member that answers (nil when none does or the journal never was primary).
func (e *env) reverseMirror(ctx context.Context) *raftjournal.ReverseMirrorStatus {
	for _, m := range e.cluster.AdminAddrs() {
		cs, err := e.admin(m).ClusterStatus(ctx, true)
		if err == nil {
			return cs.ReverseMirror
		}
	}
	return nil
}

// FinalizeSummary is what ToFinalized would do, for the confirmation.
func FinalizeSummary(ctx context.Context, o Options) (*Status, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return e.finalizeStatus(ctx)
}

// ToFinalized ends the migration, with no way back: gates (the journal is
// primary, every registered proxy relays to the journal, no split-brain
// write unresolved), then SetPhase(finalized) committed through Raft,
// guarded by the cutover token so that it cannot land under a concurrent
// cutover command. From that entry on the journal records nothing for
// ZooKeeper (the outbox is dropped), the reverse mirror on every node stops
// applying and closes the ZooKeeper sessions it kept, and the journal
// refuses any phase change back to shadow. The caller asks the operator to
// confirm first (the CLI does unless --yes).
func ToFinalized(ctx context.Context, o Options) (*Report, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	r := &run{env: e, rep: &Report{}}
	r.p = Progress{ID: fmt.Sprintf("c%d", time.Now().UnixNano()), To: raftjournal.PhaseFinalized.String(), Started: time.Now().UTC(), Outcome: "in progress"}
	st, err := e.finalizeStatus(ctx)
	if err != nil {
		return nil, err
	}
	r.rep.Gates = st
	switch st.Phase {
	case raftjournal.PhaseFinalized.String():
		r.step(ctx, "already finalized", true, "the journal is finalized", false)
		return r.finish(ctx, "already"), nil
	case raftjournal.PhaseShadow.String():
		return nil, errors.New("cutover: finalize: the journal is shadow; finalize follows a cutover to primary (cutover --to primary)")
	}
	var failing []Gate
	for _, g := range st.FinalizeGates {
		if !g.Pass {
			failing = append(failing, g)
		}
	}
	if len(failing) > 0 {
		fe := &FinalizeRefusedError{Failing: failing}
		r.step(ctx, "gates", false, fe.Error(), false)
		return r.finish(ctx, "refused"), fe
	}
	r.step(ctx, "gates", true, "every finalize gate passes", true)

	if err := setToken(ctx, e.cluster, finalizeToken(r.p.ID)); err != nil {
		r.step(ctx, "fence", false, err.Error(), false)
		return r.finish(ctx, "aborted"), fmt.Errorf("cutover: finalize: cannot write the cutover token (nothing was changed): %w", err)
	}
	cmd := &raftjournal.SetPhase{Phase: raftjournal.PhaseFinalized, Time: time.Now().UnixMilli(),
		Guard: &raftjournal.Checkpoint{Key: TokenKey, Value: finalizeToken(r.p.ID)}}
	if err := submit(ctx, e.cluster, cmd); err != nil {
		if errors.Is(err, raftjournal.ErrGuardFailed) {
			r.step(ctx, "commit", false, err.Error(), false)
			return r.finish(ctx, "aborted"), fmt.Errorf("cutover: finalize: another cutover command took the token first (nothing was changed): %w", err)
		}
		// The outcome may be unknown: the phase says.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		js, rerr := e.journalState(rctx)
		cancel()
		if rerr != nil || js.Phase != raftjournal.PhaseFinalized.String() {
			r.step(ctx, "commit", false, err.Error(), false)
			return r.finish(ctx, "unknown"), fmt.Errorf("cutover: finalize: %w (run `zk2raft cutover status` to see the phase)", err)
		}
	}
	detail := "SetPhase(finalized) committed: no way back to ZooKeeper; the reverse mirror stops and closes the ZooKeeper sessions it kept"
	if rm := st.ReverseMirror; rm != nil && rm.PendingEntries > 0 {
		detail += fmt.Sprintf("; ZooKeeper never got the last %d journal entries (it holds up to index %d)", rm.PendingEntries, rm.AckedIndex)
	}
	r.step(ctx, "commit", true, detail, false)
	return r.finish(ctx, "committed"), nil
}

// inspectPrimary adds to a status what matters from primary on: the
// split-brain records, the fence, the reverse mirror's lag and the finalize
// gates.
func (e *env) inspectPrimary(ctx context.Context, st *Status, js raftjournal.CutoverState) {
	st.SplitBrain = reversemirror.SplitBrainWrites(js.Checkpoints)
	st.Fence = fenceOf(js.Checkpoints)
	if js.Phase == raftjournal.PhaseShadow.String() {
		return
	}
	st.ReverseMirror = e.reverseMirror(ctx)
	if js.Phase == raftjournal.PhasePrimary.String() {
		st.FinalizeGates = finalizeGates(st)
	}
}
