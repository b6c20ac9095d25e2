package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
)

// The rollback's gates, by name (what --force takes with --to shadow).
const (
	// GateReverseLag: ZooKeeper is not behind the journal by more than
	// Options.MaxLag (the reverse mirror's oldest pending entry), and the
	// mirror reports no error.
	GateReverseLag = "reverse-mirror-lag"
)

// RollbackGates lists the rollback's gates in the order they are checked.
var RollbackGates = []string{GateJournal, GateProxies, GateReverseLag}

// inspectRollback gathers the rollback's gates: the journal answers and is
// primary; every registered proxy answers; the reverse mirror keeps up.
func (e *env) inspectRollback(ctx context.Context, st *Status, js raftjournal.CutoverState) {
	g := Gate{Name: GateJournal, Pass: js.Phase == raftjournal.PhasePrimary.String(),
		Evidence: fmt.Sprintf("phase %s, applied index %d, last zxid %#x", js.Phase, js.AppliedIndex, js.LastZxid)}
	st.Gates = append(st.Gates, g)

	var bad, parts []string
	for _, p := range st.Proxies {
		if p.State == nil {
			bad = append(bad, p.Record.ID+" does not answer: "+p.Error)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (listen %s, backend %s, %d journal + %d zookeeper connections)", p.Record.ID, p.Record.Listen,
			p.State.Tap.Backend, p.State.Tap.JournalConnections, p.State.Tap.ZooKeeperConnections))
	}
	g = Gate{Name: GateProxies, Pass: len(st.Proxies) > 0 && len(bad) == 0}
	switch {
	case len(st.Proxies) == 0:
		g.Evidence = "no proxy registered with the journal: the rollback moves clients back through the proxies"
	case len(bad) > 0:
		g.Evidence = strings.Join(bad, "; ")
	default:
		g.Evidence = fmt.Sprintf("%d registered, all answer: %s", len(st.Proxies), strings.Join(parts, "; "))
	}
	st.Gates = append(st.Gates, g)

	st.Gates = append(st.Gates, e.reverseGate(ctx, js))
	for i := range st.Gates {
		if !st.Gates[i].Pass && containsStr(e.o.Force, st.Gates[i].Name) {
			st.Gates[i].Forced = true
		}
	}
}

// reverseGate reads the reverse mirror's lag from the replicated outbox and
// the leader's mirror's own view (its last error).
func (e *env) reverseGate(ctx context.Context, js raftjournal.CutoverState) Gate {
	g := Gate{Name: GateReverseLag}
	rm := js.ReverseMirror
	if rm == nil || !rm.Active {
		g.Evidence = "the journal has no active reverse mirror (never primary, or not primary now)"
		return g
	}
	g.Evidence = fmt.Sprintf("%d journal entries not yet in ZooKeeper, oldest %.1fs old; ZooKeeper holds index %d (its zxid %s)",
		rm.PendingEntries, rm.LagSeconds, rm.AckedIndex, rm.AckedZkZxid)
	g.Pass = rm.LagSeconds <= e.o.MaxLag.Seconds()
	if !g.Pass {
		g.Evidence += fmt.Sprintf(" — behind by more than %s: is a journal node running the reverse mirror (serve --zk), and does ZooKeeper answer it?", e.o.MaxLag)
	}
	if ms, leader := e.mirrorView(ctx); ms != nil {
		if ms.LastError != "" {
			g.Pass = false
			g.Evidence += "; the leader's mirror reports: " + ms.LastError
		} else if ms.Running {
			g.Evidence += fmt.Sprintf("; the leader's mirror runs (%d ZooKeeper sessions kept)", ms.Sessions)
		}
	} else if !leader {
		g.Evidence += "; no member answered as the leader, so the mirror's own view is unknown"
	} else {
		g.Evidence += "; the leader reports no reverse mirror of its own (started without --zk?)"
	}
	return g
}

// mirrorState is the part of a journal node's reverse-mirror status
// extension (reversemirror.Status) the rollback reads.
type mirrorState struct {
	Running   bool   `json:"running"`
	Sessions  int    `json:"zk_sessions"`
	LastError string `json:"last_error"`
}

// mirrorView returns the leader's reverse-mirror status extension, nil when
// it has none or does not answer; leader says whether a member answered as
// the leader at all (not during an election).
func (e *env) mirrorView(ctx context.Context) (ms *mirrorState, leader bool) {
	for _, m := range e.cluster.AdminAddrs() {
		cs, err := e.admin(m).ClusterStatus(ctx, true)
		if err != nil || cs.Role != "leader" {
			continue
		}
		raw, ok := cs.Extensions["reverse_mirror"]
		if !ok {
			return nil, true
		}
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, true
		}
		var st mirrorState
		if json.Unmarshal(b, &st) != nil {
			return nil, true
		}
		return &st, true
	}
	return nil, false
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ToShadow rolls back from the journal to ZooKeeper: gates, fence, hold,
// drain of the reverse mirror, one guarded SetPhase(shadow, rollback) entry,
// the switch back, and the rebaseline of the journal from ZooKeeper. See
// "Rollback" in the package documentation.
func ToShadow(ctx context.Context, o Options) (*Report, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	r := &run{env: e, rep: &Report{}}
	r.p = Progress{ID: fmt.Sprintf("r%d", time.Now().UnixNano()), To: "shadow", Started: time.Now().UTC(), Outcome: "in progress"}

	// 1. Gates.
	st, err := e.inspect(ctx, false)
	if err != nil {
		return nil, err
	}
	r.rep.Gates = st
	switch st.Phase {
	case raftjournal.PhaseShadow.String():
		n := r.switchBackAll(ctx, st.Proxies)
		r.step(ctx, "already shadow", true, fmt.Sprintf("the journal is shadow; %d proxies asked to relay to ZooKeeper", n), false)
		return r.finish(ctx, "already"), nil
	case raftjournal.PhaseFinalized.String():
		return nil, errors.New("rollback: the journal is finalized: there is no way back to ZooKeeper")
	}
	for _, g := range st.Gates {
		if g.Forced {
			o.Logger.Warn("rollback: GATE FORCED BY THE OPERATOR — proceeding although it fails", "gate", g.Name, "evidence", g.Evidence)
			r.step(ctx, "gate "+g.Name+" forced", false, g.Evidence, false)
		}
	}
	if failing := st.Failing(); len(failing) > 0 {
		ge := &GateError{Failing: failing}
		r.step(ctx, "gates", false, ge.Error(), false)
		return r.finish(ctx, "refused"), ge
	}
	r.step(ctx, "gates", true, "every gate passes"+forcedNote(o.Force), true)

	// Writes ZooKeeper took around the proxies while primary stay in
	// ZooKeeper, which is the source of truth again after the commit; the
	// rebaseline takes them into the journal. Say which, never silently.
	if sb := splitBrainSummary(st.SplitBrain); sb != "" {
		o.Logger.Warn("rollback: ZooKeeper holds split-brain writes from the primary period; they stay", "writes", sb)
		r.step(ctx, "split-brain writes", true, sb+"; ZooKeeper keeps them and the rebaseline takes them into the journal", false)
	}

	// The active fence (cutover/fence.go) comes off before the hold: the
	// reverse mirror walks the tree to restore every ACL, which does not
	// fit in a hold, and only while the journal is primary. A write around
	// the proxies from here to the commit is still caught by the sentry.
	fenceMoved := false // the fence changed ACLs in ZooKeeper: every node's aversion moved there
	if fs, err := e.liftFence(ctx); err != nil {
		r.step(ctx, "lift fence", false, err.Error(), false)
		return r.finish(ctx, "refused"), &RollbackAbortError{Reason: "cannot lift the fence on ZooKeeper: " + err.Error()}
	} else if fs != nil {
		fenceMoved = fs.Changed > 0
		r.step(ctx, "lift fence", true, fmt.Sprintf("the journal's ACLs restored in ZooKeeper: %d nodes walked, %d changed", fs.Nodes, fs.Changed), false)
	}

	// 2. Fence: the commit applies only while the token says hold.
	if err := setToken(ctx, e.cluster, holdToken(r.p.ID)); err != nil {
		r.step(ctx, "fence", false, err.Error(), false)
		return r.finish(ctx, "aborted"), &RollbackAbortError{Reason: "cannot write the rollback token: " + err.Error()}
	}

	// 3. Hold: no client byte more reaches the journal.
	var proxies []ProxyRecord
	for _, p := range st.Proxies {
		if p.State == nil {
			o.Logger.Warn("rollback: NOT HOLDING an unreachable proxy (proxies gate forced); it switches back when it reads the phase", "proxy", p.Record.ID, "error", p.Error)
			continue
		}
		proxies = append(proxies, p.Record)
	}
	// Held clients cannot ping, and until the commit the journal's leader
	// expires a session whose client stays silent for its timeout (the
	// reverse mirror then ends it in ZooKeeper too, with its ephemerals):
	// the drain and the commit get at most half the shortest timeout of the
	// sessions the rollback hands back to ZooKeeper, and a rollback that
	// needs longer is refused with the clients released, sessions and all.
	// The proxies' own deadline stays HoldTimeout.
	budget, budgetNote := r.holdBudget(ctx, raftjournal.PhaseShadow)
	holdStart := time.Now()
	deadline := holdStart.Add(budget)
	holdErrs := e.callAll(ctx, proxies, "/cutover/hold",
		holdRequest{ID: r.p.ID, TimeoutMs: o.HoldTimeout.Milliseconds(), To: raftjournal.PhaseShadow.String()})
	if err := errors.Join(holdErrs...); err != nil {
		return r.rabort(ctx, proxies, "hold: "+err.Error())
	}
	r.step(ctx, "hold", true, fmt.Sprintf("%d proxies hold their clients' requests (deadline %s%s)", len(proxies), o.HoldTimeout, budgetNote), false)
	if err := r.hook("hold"); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithDeadline(ctx, deadline.Add(-commitReserve(budget)))
	defer cancel()

	// 4–5. Drain the reverse mirror, then commit; a write that was on its
	// way when the proxies held lands in the outbox after the drain, and
	// the journal refuses the commit until ZooKeeper has it too: drain
	// again.
	var drained string
	for attempt := 1; ; attempt++ {
		if drained, err = r.drainReverse(hctx); err != nil {
			return r.rabort(ctx, proxies, "drain: "+err.Error()+budgetNote)
		}
		if attempt == 1 {
			r.step(ctx, "drain", true, drained, false)
		}
		if err := r.hook("drain"); err != nil {
			return nil, err
		}
		if left := time.Until(deadline); left < commitReserve(budget)/2 {
			return r.rabort(ctx, proxies, fmt.Sprintf("only %s of the hold left for the commit", left.Round(time.Millisecond)))
		}
		committed, err := r.commitRollback(ctx, deadline)
		if committed {
			break
		}
		switch {
		case errors.Is(err, raftjournal.ErrPhaseTransition) && hctx.Err() == nil:
			r.o.Logger.Info("rollback: the journal refused the commit (the reverse mirror owes ZooKeeper a late write); draining again", "err", err)
			continue
		case errors.Is(err, raftjournal.ErrGuardFailed):
			return r.rabort(ctx, proxies, "the commit was fenced off (a proxy's hold expired first): "+err.Error())
		case errors.Is(err, ErrOutcomeUnknown):
			r.step(ctx, "commit", false, err.Error()+": every proxy settles its hold by the journal's phase at its deadline", false)
			r.finish(ctx, "unknown")
			return r.rep, fmt.Errorf("%w; run `zk2raft cutover status` to see the phase and the proxies", err)
		default:
			return r.rabort(ctx, proxies, "commit failed: "+err.Error())
		}
	}
	r.step(ctx, "commit", true, "SetPhase(shadow, rollback) committed: ZooKeeper is the source of truth again; the journal's own zxids lowered for the rebaseline; journal-minted sessions ended, ZooKeeper's handed back", false)
	if err := r.hook("commit"); err != nil {
		return nil, err
	}

	// 6. The leader's reverse mirror lets go of the sessions it kept in
	// ZooKeeper, for their clients to resume them there.
	mirror := r.waitMirrorReleased(ctx, holdStart.Add(o.HoldTimeout))

	// 7. Switch back: each proxy checks the phase itself, reads the zxid
	// map, closes its journal connections and relays to ZooKeeper again.
	n := r.switchBackAll(ctx, st.Proxies)
	r.p.Pause = time.Since(holdStart).Round(time.Millisecond).String()
	r.step(ctx, "switch", n == len(proxies), fmt.Sprintf("%d of %d proxies relay to ZooKeeper again (their clients' journal zxids rewritten to ZooKeeper's); clients held for %s; %s",
		n, len(proxies), r.p.Pause, mirror), true)
	if err := r.hook("switch"); err != nil {
		return nil, err
	}

	// 8. Rebaseline: ZooKeeper's copies of what the journal wrote in its own
	// epoch take the journal's over, until a comparison finds nothing.
	rb, err := r.rebaseline(ctx, fenceMoved)
	if err != nil {
		r.step(ctx, "rebaseline", false, err.Error(), false)
		r.finish(ctx, "committed")
		return r.rep, fmt.Errorf("rollback: committed and switched back, but the rebaseline did not finish: %w (ZooKeeper is the source of truth; `zk2raft verify` shows what differs, and the proxies' reconcilers repair it)", err)
	}
	r.step(ctx, "rebaseline", true, rb, false)
	if n < len(proxies) {
		r.finish(ctx, "committed")
		return r.rep, fmt.Errorf("rollback: committed, but %d proxies did not switch back when asked (they do by themselves within their poll interval; see `zk2raft cutover status`)", len(proxies)-n)
	}
	return r.finish(ctx, "committed"), nil
}

// holdBudget is how long a hold may last before the commit: HoldTimeout,
// or half the shortest timeout among the sessions the held clients keep
// alive by pinging, when that is shorter. Held clients cannot ping: going
// forward ZooKeeper expires its sessions (the journal mirrors the expiry),
// going back the journal's leader expires the sessions it hands back (and
// the reverse mirror ends them in ZooKeeper, ephemerals and all). A session
// the journal minted ends at the rollback's commit whatever the hold takes.
// The note, empty when HoldTimeout stands, is for the hold step's detail.
func (r *run) holdBudget(ctx context.Context, to raftjournal.Phase) (time.Duration, string) {
	js, err := r.journalState(ctx)
	if err != nil {
		r.o.Logger.Warn("cutover: cannot read the sessions' timeouts; the hold gets its whole deadline", "err", err)
		return r.o.HoldTimeout, ""
	}
	sessions := js.SourceSessions // ZooKeeper's, mirrored in shadow
	if to == raftjournal.PhaseShadow {
		sessions = js.Sessions
	}
	var shortest time.Duration
	for _, s := range sessions {
		if raftjournal.JournalSession(s.ID) {
			continue
		}
		if d := time.Duration(s.TimeoutMs) * time.Millisecond; d > 0 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	if shortest == 0 || shortest/2 >= r.o.HoldTimeout {
		return r.o.HoldTimeout, ""
	}
	return shortest / 2, fmt.Sprintf("; done within %s, half the shortest session timeout (%s): held clients cannot ping", shortest/2, shortest)
}

// RollbackAbortError says the rollback stopped before its commit and
// released the proxies: the journal is still the source of truth and
// nothing was lost.
type RollbackAbortError struct{ Reason string }

func (e *RollbackAbortError) Error() string {
	return "rollback: aborted before the commit (the proxies relay to the journal again; nothing lost): " + e.Reason
}

// rabort is abort with the rollback's error.
func (r *run) rabort(ctx context.Context, held []ProxyRecord, reason string) (*Report, error) {
	rep, _ := r.abort(ctx, held, reason)
	return rep, &RollbackAbortError{Reason: reason}
}

func forcedNote(force []string) string {
	if len(force) == 0 {
		return ""
	}
	return " or is forced (" + strings.Join(force, ", ") + ")"
}

// drainReverse waits until ZooKeeper holds every journal write: the
// replicated outbox is empty (its cursor, the marker's index, is the last
// write's), read after a read barrier.
func (r *run) drainReverse(ctx context.Context) (string, error) {
	var pending error // what the journal last said is pending
	for {
		js, err := r.journalState(ctx)
		if err == nil {
			rm := js.ReverseMirror
			switch {
			case rm == nil:
				return "", errors.New("the journal has no reverse mirror state")
			case rm.PendingEntries == 0:
				return fmt.Sprintf("ZooKeeper holds every journal write: the marker names index %d (ZooKeeper zxid %s); journal applied %d",
					rm.AckedIndex, rm.AckedZkZxid, js.AppliedIndex), nil
			}
			err = fmt.Errorf("%d entries pending, oldest %.1fs old", rm.PendingEntries, rm.LagSeconds)
			pending = err
		} else if ctx.Err() != nil && pending != nil {
			err = pending // the call the deadline cut short says nothing new
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("ZooKeeper does not hold every journal write before the deadline: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// commitRollback submits the guarded SetPhase(shadow, rollback), retrying a
// leader change within the hold; when time runs out it fences the commit off
// and reads the phase, as the forward commit does. A refusal for a non-empty
// outbox (ErrPhaseTransition) is returned for the caller to drain again.
func (r *run) commitRollback(ctx context.Context, deadline time.Time) (bool, error) {
	return r.commitPhase(ctx, deadline, &raftjournal.SetPhase{Phase: raftjournal.PhaseShadow, Rollback: true,
		Guard: &raftjournal.Checkpoint{Key: TokenKey, Value: holdToken(r.p.ID)}})
}

// waitMirrorReleased waits (until the hold's deadline) for the leader's
// reverse mirror to stop and let go of the ZooKeeper sessions it kept, so
// that a client resuming its session on ZooKeeper does not race the keeper's
// connection. It says what it saw.
//
// When no member answers as the leader (the leader died at the commit and
// the others are electing) it does not wait for one: a mirror that died
// with its node holds no connection, and from that death the sessions it
// kept run out in ZooKeeper while the clients are held — a wait for the
// election cost them their sessions under load (TestRollbackClusterLeaderKilled).
// A mirror still alive on a node that lost the leadership stops by itself
// on the phase it applied; at worst its keeper and a resuming client take
// the session from each other until it does.
func (r *run) waitMirrorReleased(ctx context.Context, deadline time.Time) string {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		ms, leader := r.mirrorView(wctx)
		switch {
		case !leader:
			return "no member answered as the leader (an election?): not waiting for its reverse mirror, whose sessions in ZooKeeper run out while the clients are held"
		case ms == nil:
			return "the leader runs no reverse mirror of its own"
		case !ms.Running && ms.Sessions == 0:
			return "the reverse mirror stopped and released the sessions it kept in ZooKeeper"
		}
		select {
		case <-wctx.Done():
			return fmt.Sprintf("the reverse mirror still reports running %t with %d ZooKeeper sessions at the deadline", ms.Running, ms.Sessions)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// switchBackAll asks every proxy to switch back to ZooKeeper, all at once,
// and returns how many did.
func (r *run) switchBackAll(ctx context.Context, proxies []ProxyReport) int {
	return r.askAll(ctx, proxies, "/cutover/switch-back", "rollback: a proxy did not switch back when asked; it does by itself when it reads the phase")
}
