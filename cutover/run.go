package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// Step is one logged step of a cutover.
type Step struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
}

// Progress is a cutover's log, kept in the journal under LogKey.
type Progress struct {
	ID       string    `json:"id"`
	To       string    `json:"to"`
	Started  time.Time `json:"started"`
	Steps    []Step    `json:"steps"`
	Outcome  string    `json:"outcome"` // in progress, refused, aborted, committed, already, unknown
	Finished time.Time `json:"finished,omitzero"`
	// Pause is how long the proxies held their clients (hold to switch).
	Pause string `json:"pause,omitempty"`
}

// Report is what ToPrimary did.
type Report struct {
	Progress
	// Gates is the status the decision was made on.
	Gates *Status `json:"gates,omitempty"`
}

// GateError is ToPrimary's refusal: the gates that failed.
type GateError struct{ Failing []Gate }

func (e *GateError) Error() string {
	var parts []string
	for _, g := range e.Failing {
		parts = append(parts, fmt.Sprintf("gate %q fails: %s", g.Name, g.Evidence))
	}
	return "cutover: refused: " + strings.Join(parts, "; ") + " (--force GATE overrides one gate)"
}

// AbortError says the cutover stopped before the commit and released the
// proxies: ZooKeeper is still the source of truth and nothing was lost.
type AbortError struct{ Reason string }

func (e *AbortError) Error() string {
	return "cutover: aborted before the commit (the proxies relay to ZooKeeper again; nothing lost): " + e.Reason
}

// ErrOutcomeUnknown says the commit's outcome is unknown: the proxies settle
// their holds by the journal's phase at their deadline.
var ErrOutcomeUnknown = errors.New("cutover: the commit's outcome is unknown")

// commitReserve is the part of the hold the commit and the switch may use:
// the commit is not attempted with less of the proxies' deadline left.
func commitReserve(hold time.Duration) time.Duration { return max(hold/4, 500*time.Millisecond) }

type run struct {
	*env
	p   Progress
	rep *Report
}

func (r *run) step(ctx context.Context, name string, ok bool, detail string, persist bool) {
	r.p.Steps = append(r.p.Steps, Step{Name: name, At: time.Now().UTC(), OK: ok, Detail: detail})
	lvl := "info"
	if !ok {
		lvl = "warn"
	}
	if lvl == "warn" {
		r.o.Logger.Warn("cutover: "+name, "cutover", r.p.ID, "detail", detail)
	} else {
		r.o.Logger.Info("cutover: "+name, "cutover", r.p.ID, "detail", detail)
	}
	if persist {
		r.persist(ctx)
	}
}

// persist writes the progress to the journal (best effort: the log lines
// say the same).
func (r *run) persist(ctx context.Context) {
	v, _ := json.Marshal(r.p)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := submit(wctx, r.cluster, &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: LogKey, Value: v}}); err != nil {
		r.o.Logger.Warn("cutover: could not record progress in the journal", "err", err)
	}
}

func (r *run) finish(ctx context.Context, outcome string) *Report {
	r.p.Outcome, r.p.Finished = outcome, time.Now().UTC()
	r.persist(ctx)
	r.rep.Progress = r.p
	return r.rep
}

func (r *run) hook(step string) error {
	if r.o.stepHook == nil {
		return nil
	}
	return r.o.stepHook(step)
}

// ToPrimary cuts over from ZooKeeper to the journal: gates, hold, drain,
// proof, one guarded SetPhase entry, switch. See the package documentation.
func ToPrimary(ctx context.Context, o Options) (*Report, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	r := &run{env: e, rep: &Report{}}
	r.p = Progress{ID: fmt.Sprintf("c%d", time.Now().UnixNano()), To: "primary", Started: time.Now().UTC(), Outcome: "in progress"}

	// Already cut over: ask the proxies to follow, and nothing else. The
	// gates are not run: their alignment would write to ZooKeeper through a
	// proxy that still relays there, a split-brain write in primary.
	if already, err := r.already(ctx); already || err != nil {
		return r.rep, err
	}

	// 1. Gates, with an aligned digest check (writes through a proxy).
	st, err := e.inspect(ctx, true)
	if err != nil {
		return nil, err
	}
	r.rep.Gates = st
	if st.Phase != raftjournal.PhaseShadow.String() {
		return nil, fmt.Errorf("cutover: the journal is in phase %s", st.Phase)
	}
	for _, g := range st.Gates {
		if g.Forced {
			o.Logger.Warn("cutover: GATE FORCED BY THE OPERATOR — proceeding although it fails", "gate", g.Name, "evidence", g.Evidence)
			r.step(ctx, "gate "+g.Name+" forced", false, g.Evidence, false)
		}
	}
	if failing := st.Failing(); len(failing) > 0 {
		ge := &GateError{Failing: failing}
		r.step(ctx, "gates", false, ge.Error(), false)
		return r.finish(ctx, "refused"), ge
	}
	detail := "every gate passes"
	if len(o.Force) > 0 {
		detail = "every gate passes or is forced (" + strings.Join(o.Force, ", ") + ")"
	}
	r.step(ctx, "gates", true, detail, true)

	// 2. The fence: the commit applies only while the token says hold.
	if err := setToken(ctx, e.cluster, holdToken(r.p.ID)); err != nil {
		r.step(ctx, "fence", false, err.Error(), false)
		return r.finish(ctx, "aborted"), &AbortError{Reason: "cannot write the cutover token: " + err.Error()}
	}

	// 3. Hold.
	var proxies []ProxyRecord
	for _, p := range st.Proxies {
		if p.State == nil {
			// Only with the proxies gate forced: it follows the phase by
			// itself when it can reach the journal again.
			o.Logger.Warn("cutover: NOT HOLDING an unreachable proxy (proxies gate forced); its clients may write to ZooKeeper until it reads the new phase", "proxy", p.Record.ID, "error", p.Error)
			continue
		}
		proxies = append(proxies, p.Record)
	}
	// The drain, the proof and the commit get the hold's budget (at most
	// half the shortest session timeout: ZooKeeper expires a held client's
	// session); the proxies' own deadline stays HoldTimeout.
	budget, budgetNote := r.holdBudget(ctx, raftjournal.PhasePrimary)
	holdStart := time.Now()
	deadline := holdStart.Add(budget)
	holdErrs := e.callAll(ctx, proxies, "/cutover/hold", holdRequest{ID: r.p.ID, TimeoutMs: o.HoldTimeout.Milliseconds()})
	held := proxies
	if err := errors.Join(holdErrs...); err != nil {
		// Release every one: a proxy whose answer was lost may hold all the same.
		return r.abort(ctx, proxies, "hold: "+err.Error())
	}
	r.step(ctx, "hold", true, fmt.Sprintf("%d proxies hold their clients' requests (deadline %s%s)", len(held), o.HoldTimeout, budgetNote), false)
	if err := r.hook("hold"); err != nil {
		return nil, err
	}
	// From here on, everything must be done well before the budget ends
	// (and the proxies' deadline, past which they settle the hold by
	// themselves).
	hctx, cancel := context.WithDeadline(ctx, deadline.Add(-commitReserve(budget)))
	defer cancel()

	// 4. Drain: nothing in flight, every mirror and session delivered.
	if err := r.drain(hctx, held); err != nil {
		return r.abort(ctx, held, "drain: "+err.Error()+budgetNote)
	}
	r.step(ctx, "drain", true, "no request in flight; every mirror and session event committed by the journal", false)

	// 5. Prove: equal digests at ZooKeeper's latest zxid, every session known.
	proof, err := r.prove(hctx, held)
	if err != nil {
		return r.abort(ctx, held, "proof: "+err.Error()+budgetNote)
	}
	r.step(ctx, "proof", true, proof, false)
	if err := r.hook("proof"); err != nil {
		return nil, err
	}

	// 6. Commit, fenced by the token.
	if left := time.Until(deadline); left < commitReserve(budget)/2 {
		return r.abort(ctx, held, fmt.Sprintf("only %s of the hold left for the commit%s", left.Round(time.Millisecond), budgetNote))
	}
	committed, err := r.commit(ctx, deadline)
	if !committed {
		switch {
		case errors.Is(err, raftjournal.ErrGuardFailed):
			return r.abort(ctx, held, "the commit was fenced off (a proxy's hold expired first): "+err.Error())
		case errors.Is(err, ErrOutcomeUnknown):
			r.step(ctx, "commit", false, err.Error()+": every proxy settles its hold by the journal's phase at its deadline", false)
			r.finish(ctx, "unknown")
			return r.rep, fmt.Errorf("%w; run `zk2raft cutover status` to see the phase and the proxies", err)
		default:
			return r.abort(ctx, held, "commit failed: "+err.Error())
		}
	}
	// Not persisted yet: the clients are still held; finish records it.
	r.step(ctx, "commit", true, "SetPhase(primary) committed: the journal is the source of truth; ZooKeeper's sessions adopted", false)
	if err := r.hook("commit"); err != nil {
		return nil, err
	}

	// 7. Switch: each proxy checks the phase itself, closes its ZooKeeper
	// connections and relays to the journal.
	n := r.switchAll(ctx, st.Proxies)
	pause := time.Since(holdStart)
	r.p.Pause = pause.Round(time.Millisecond).String()
	detail = fmt.Sprintf("%d of %d proxies relay to the journal; clients held for %s", n, len(proxies), r.p.Pause)
	r.step(ctx, "switch", n == len(proxies), detail, false)
	if n < len(proxies) {
		r.finish(ctx, "committed")
		return r.rep, fmt.Errorf("cutover: committed, but %d proxies did not switch when asked (a running proxy switches by itself within its poll interval; one that is down relays nothing when it starts again until it has read the phase; see `zk2raft cutover status`)", len(proxies)-n)
	}
	return r.finish(ctx, "committed"), nil
}

// commit submits the guarded SetPhase(primary); see commitPhase.
func (r *run) commit(ctx context.Context, deadline time.Time) (bool, error) {
	return r.commitPhase(ctx, deadline, &raftjournal.SetPhase{Phase: raftjournal.PhasePrimary,
		AdoptTimeoutMs: int32(r.o.AdoptTimeout.Milliseconds()),
		Guard:          &raftjournal.Checkpoint{Key: TokenKey, Value: holdToken(r.p.ID)}})
}

// commitPhase submits a guarded phase change until it is applied, the guard
// or the state machine refuses it (returned at once: ErrGuardFailed,
// ErrPhaseTransition), or the hold's deadline nears; a leader change in
// between (the outcome of one attempt unknown) is retried, which the guard
// and the entry's idempotence make safe. When time runs out it fences the
// commit off (the token says aborted) and only then reads the phase, so that
// the answer cannot change afterwards: cmd's phase means committed, any
// other means not and never will be. It returns ErrOutcomeUnknown when even
// that fails.
func (r *run) commitPhase(ctx context.Context, deadline time.Time, cmd *raftjournal.SetPhase) (bool, error) {
	cctx, cancel := context.WithDeadline(ctx, deadline.Add(-commitReserve(r.o.HoldTimeout)/4))
	defer cancel()
	var last error
	for attempt := 1; ; attempt++ {
		err := submit(cctx, r.cluster, cmd)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, raftjournal.ErrGuardFailed) || errors.Is(err, raftjournal.ErrPhaseTransition) {
			return false, err
		}
		last = err
		r.o.Logger.Warn("cutover: commit attempt failed; retrying within the hold", "to", cmd.Phase.String(), "attempt", attempt, "err", err)
		select {
		case <-cctx.Done():
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	// Out of time: fence, then read.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	if err := setToken(fctx, r.cluster, abortedToken(r.p.ID)); err != nil {
		return false, fmt.Errorf("%w: commit: %v; fencing it off: %v", ErrOutcomeUnknown, last, err)
	}
	js, err := r.journalState(fctx)
	switch {
	case err != nil:
		return false, fmt.Errorf("%w: commit: %v; reading the phase: %v", ErrOutcomeUnknown, last, err)
	case js.Phase == cmd.Phase.String():
		return true, nil
	}
	return false, fmt.Errorf("not committed within the hold: %w", last)
}

// abort fences the commit off, releases the held proxies and says why.
func (r *run) abort(ctx context.Context, held []ProxyRecord, reason string) (*Report, error) {
	actx := context.WithoutCancel(ctx)
	if err := setToken(actx, r.cluster, abortedToken(r.p.ID)); err != nil {
		r.o.Logger.Warn("cutover: could not fence the commit off; the proxies settle their holds at their deadline", "err", err)
	}
	var errs []string
	for _, p := range held {
		if err := r.proxyCall(actx, p, http.MethodPost, "/cutover/release", holdRequest{ID: r.p.ID}, nil); err != nil {
			errs = append(errs, err.Error())
		}
	}
	detail := reason
	if len(errs) > 0 {
		detail += "; release failed (they release at their deadline): " + strings.Join(errs, "; ")
	}
	r.step(actx, "abort", false, detail, false)
	return r.finish(actx, "aborted"), &AbortError{Reason: reason}
}

// drain waits until every held proxy has nothing in flight and has
// delivered every mirror and session event.
func (r *run) drain(ctx context.Context, held []ProxyRecord) error {
	for {
		busy := ""
		for _, p := range held {
			var ps ProxyState
			if err := r.proxyCall(ctx, p, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
				return err
			}
			if err := r.stillHeld(p, ps); err != nil {
				return err
			}
			t := ps.Tap
			if t.InFlight > 0 || t.QueueRecords > 0 || t.SessionsUnmirrored > 0 {
				busy = fmt.Sprintf("%s: %d in flight, %d queued, %d session events", p.ID, t.InFlight, t.QueueRecords, t.SessionsUnmirrored)
				break
			}
			if t.Lost {
				return fmt.Errorf("%s lost mirrors (a repair pass is owed)", p.ID)
			}
		}
		if busy == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not drained before the deadline (%s)", busy)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stillHeld says whether proxy p, as its state ps says, still holds its
// clients for this cutover: a proxy restarted since the hold (or whose hold
// expired) may relay to ZooKeeper, and its writes would not be in the proof.
func (r *run) stillHeld(p ProxyRecord, ps ProxyState) error {
	if ps.Hold == nil || ps.Hold.ID != r.p.ID || !ps.Tap.Held {
		return fmt.Errorf("%s no longer holds its clients for this cutover (it restarted, or its hold expired): it may relay to ZooKeeper; run the cutover again", p.ID)
	}
	return nil
}

// prove checks, with the clients held, that the journal equals ZooKeeper at
// ZooKeeper's latest zxid and knows every session the proxies carry.
func (r *run) prove(ctx context.Context, held []ProxyRecord) (string, error) {
	if len(held) == 0 {
		return "", errors.New("no proxy held")
	}
	st := &Status{}
	var via *ProxyRecord
	for _, p := range held {
		var ps ProxyState
		if err := r.proxyCall(ctx, p, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
			return "", err
		}
		if err := r.stillHeld(p, ps); err != nil {
			return "", err
		}
		st.Proxies = append(st.Proxies, ProxyReport{Record: p, State: &ps})
		if via == nil && ps.Tap.Backend == dualwrite.BackendZooKeeper.String() {
			pp := p
			via = &pp
		}
	}
	hosts := r.rep.Gates.ZooKeeper
	v, err := r.digestCheck(ctx, hosts, via, false)
	if err != nil {
		return "", err
	}
	if v.Result != dualwrite.DigestEqual {
		return "", fmt.Errorf("digest %s", describeVerdict(v))
	}
	zkz, err := zkZxid(ctx, hosts)
	if err != nil {
		return "", err
	}
	if zkz != v.Zxid {
		return "", fmt.Errorf("digests equal at %#x but ZooKeeper has moved on to %#x (a write or session change around the proxies)", v.Zxid, zkz)
	}
	js, err := r.journalState(ctx)
	if err != nil {
		return "", err
	}
	if js.MaxSourceZxid < zkz {
		return "", fmt.Errorf("the journal has applied %#x, ZooKeeper is at %#x", js.MaxSourceZxid, zkz)
	}
	ss := r.sessions(st, js)
	if len(ss.Missing) > 0 {
		return "", fmt.Errorf("sessions unknown to the journal: %s", hexIDs(ss.Missing, 10))
	}
	return fmt.Sprintf("digests equal at ZooKeeper's latest zxid %#x (%s); the journal has applied it; %d sessions at the proxies, all known to the journal",
		v.Zxid, v.ZooKeeper, ss.AtProxies), nil
}

// switchAll asks every proxy to switch, all at once, and returns how many
// did.
func (r *run) switchAll(ctx context.Context, proxies []ProxyReport) int {
	return r.askAll(ctx, proxies, "/cutover/switch", "cutover: a proxy did not switch when asked; it switches by itself when it reads the phase")
}

// askAll posts path to every proxy (the run's id as the body) and returns
// how many answered; a failure is logged with warn, not returned: a proxy
// follows the committed phase by itself.
func (r *run) askAll(ctx context.Context, proxies []ProxyReport, path, warn string) int {
	recs := make([]ProxyRecord, len(proxies))
	for i, p := range proxies {
		recs[i] = p.Record
	}
	n := 0
	for i, err := range r.callAll(ctx, recs, path, holdRequest{ID: r.p.ID}) {
		if err != nil {
			r.o.Logger.Warn(warn, "proxy", recs[i].ID, "err", err)
			continue
		}
		n++
	}
	return n
}

// callAll posts body to path on every proxy at once (the clients' pause
// starts with the first call) and returns each one's error.
func (e *env) callAll(ctx context.Context, proxies []ProxyRecord, path string, body any) []error {
	errs := make([]error, len(proxies))
	var eg errgroup.Group
	eg.SetLimit(32)
	for i, p := range proxies {
		eg.Go(func() error {
			errs[i] = e.proxyCall(ctx, p, http.MethodPost, path, body, nil)
			return nil
		})
	}
	eg.Wait()
	return errs
}

// already handles a journal that is primary or finalized: every proxy is
// asked to relay to it (one that missed the switch), and the report says
// "already".
func (r *run) already(ctx context.Context) (bool, error) {
	js, err := r.journalState(ctx)
	if err != nil {
		return false, err
	}
	if js.Phase != raftjournal.PhasePrimary.String() && js.Phase != raftjournal.PhaseFinalized.String() {
		return false, nil
	}
	st, err := r.finalizeStatus(ctx)
	if err != nil {
		return false, err
	}
	r.rep.Gates = st
	n := r.switchAll(ctx, st.Proxies)
	r.step(ctx, "already "+st.Phase, true, fmt.Sprintf("the journal is %s; %d of %d proxies relay to it", st.Phase, n, len(st.Proxies)), false)
	r.finish(ctx, "already")
	return true, nil
}
