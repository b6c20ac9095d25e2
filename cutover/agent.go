package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// AgentConfig configures a proxy's cutover agent.
type AgentConfig struct {
	// Tap is the proxy's tap.
	Tap *dualwrite.Tap
	// Record is what the proxy registers (ID and Admin required).
	Record ProxyRecord
	// Journal takes the agent's writes (registration, the token).
	Journal Submitter
	// Members returns journal members' admin addresses, and Credentials
	// reach them.
	Members     func() []string
	Credentials raftjournal.Credentials
	// Reconcile, when the proxy runs a reconciler, returns its figures.
	Reconcile func() dualwrite.ReconcilerStats
	// Poll is how often the agent reads the journal's phase (default 1 s).
	Poll time.Duration
	// StartWait bounds the first look at the phase of a tap started held
	// (dualwrite.Config.Held): primary switches it, shadow releases it, and
	// a journal that does not answer within StartWait releases it to
	// ZooKeeper with a warning (default 10 s).
	StartWait time.Duration
	// StateDir, when set, keeps a file (switchedFile) saying the proxy
	// switched to the journal, so that after a restart it starts held
	// (SwitchedBefore) and relays nothing to ZooKeeper.
	StateDir string
	// ExpectJournal says the proxy switched before it restarted: a tap
	// started held then stays held until the journal answers, however long
	// that takes, instead of falling back to ZooKeeper after StartWait.
	ExpectJournal bool
	// OnSwitch, when set, runs once the tap relays to the journal (the
	// proxy stops its reconciler: ZooKeeper is no longer the source of
	// truth, and mirrors into a primary journal are refused).
	OnSwitch func()
	// OnSwitchBack, when set, runs each time a rollback switches the tap
	// back to ZooKeeper (the proxy restarts its reconciler).
	OnSwitchBack func()
	Logger       *slog.Logger
}

// switchedFile is the name of the file in AgentConfig.StateDir that says the
// proxy relays to the journal; heldFile names the cutover that holds the
// proxy, from the hold until it is settled.
const (
	switchedFile = "cutover-switched"
	heldFile     = "cutover-held"
)

// StartHeld reports whether a proxy whose state dir is dir must start with
// its tap held (dualwrite.Config.Held) and ExpectJournal set: it switched to
// the journal before, or a cutover held it when it stopped — the commit may
// have landed since, so it relays nothing before it has fenced that cutover
// and read the journal's phase.
func StartHeld(dir string) bool { return SwitchedBefore(dir) || heldBefore(dir) != "" }

// heldBefore returns the id of the cutover that held the proxy when it
// stopped, or "".
func heldBefore(dir string) string {
	if dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, heldFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// noteHeld records (id != "") or forgets the cutover holding the proxy.
func (a *Agent) noteHeld(id string) error {
	if a.cfg.StateDir == "" {
		return nil
	}
	path := filepath.Join(a.cfg.StateDir, heldFile)
	if id == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log.Warn("cutover: cannot remove the hold record from the state dir; the next start settles it with the journal first", "err", err)
		}
		return nil
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("cutover: recording the hold in the state dir: %w", err)
	}
	return nil
}

// SwitchedBefore reports whether a proxy whose state dir is dir had switched
// to the journal before (start its tap held, and set ExpectJournal).
func SwitchedBefore(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, switchedFile))
	return err == nil
}

// Agent is the proxy's side of the cutover: it registers the proxy, serves
// the orchestrator's hold, release, switch and align calls on the proxy's
// admin port (Handler), and keeps the tap consistent with the journal's
// committed phase on its own (Run): a tap that relays to ZooKeeper while the
// journal is primary is switched, and a hold whose deadline passed is
// settled by the journal, never by the orchestrator's word alone.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger

	mu         sync.Mutex
	hold       *HoldInfo
	registered bool
	phase      string // the journal's phase as last read
	phaseAt    time.Time
	lastErr    string
	switched   bool // OnSwitch ran since the last switch back
	mapLoaded  bool // the journal's zxid map is installed in the tap (rollback.go)
}

// HoldInfo is a hold the orchestrator placed.
type HoldInfo struct {
	ID       string    `json:"id"`
	Since    time.Time `json:"since"`
	Deadline time.Time `json:"deadline"`
}

// ProxyState is what GET /cutover/state answers.
type ProxyState struct {
	Record     ProxyRecord                `json:"record"`
	Registered bool                       `json:"registered"`
	Tap        dualwrite.SwitchStatus     `json:"tap"`
	Hold       *HoldInfo                  `json:"hold,omitempty"`
	Phase      string                     `json:"journal_phase,omitempty"`
	PhaseAt    time.Time                  `json:"journal_phase_at,omitzero"`
	Error      string                     `json:"error,omitempty"`
	Reconcile  *dualwrite.ReconcilerStats `json:"reconcile,omitempty"`
}

// NewAgent checks the configuration.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	switch {
	case cfg.Tap == nil:
		return nil, errors.New("cutover: agent without a tap")
	case cfg.Journal == nil || cfg.Members == nil:
		return nil, errors.New("cutover: agent without a journal")
	case cfg.Record.ID == "" || cfg.Record.Admin == "":
		return nil, errors.New("cutover: agent without a proxy id or admin address")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.StartWait <= 0 {
		cfg.StartWait = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: cfg.Logger}, nil
}

// State returns the agent's state.
func (a *Agent) State() ProxyState {
	a.mu.Lock()
	st := ProxyState{Record: a.cfg.Record, Registered: a.registered, Phase: a.phase, PhaseAt: a.phaseAt, Error: a.lastErr}
	if a.hold != nil {
		h := *a.hold
		st.Hold = &h
	}
	a.mu.Unlock()
	st.Tap = a.cfg.Tap.SwitchStatus()
	if a.cfg.Reconcile != nil {
		r := a.cfg.Reconcile()
		st.Reconcile = &r
	}
	return st
}

func (a *Agent) setErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastErr = ""
	} else {
		a.lastErr = err.Error()
	}
}

// Run registers the proxy and keeps the tap consistent with the journal's
// phase until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if held, _ := a.cfg.Tap.Held(); held && a.cfg.Tap.Backend() == dualwrite.BackendZooKeeper {
		a.settleStart(ctx)
	}
	tick := time.NewTicker(a.cfg.Poll)
	defer tick.Stop()
	for {
		if !a.isRegistered() {
			rec := a.cfg.Record
			rec.Registered = time.Now().UTC()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := Register(rctx, a.cfg.Journal, rec)
			cancel()
			if err == nil {
				a.mu.Lock()
				a.registered = true
				a.mu.Unlock()
				a.log.Info("cutover: proxy registered with the journal", "id", rec.ID, "admin", rec.Admin, "listen", rec.Listen)
			} else if ctx.Err() == nil {
				a.log.Warn("cutover: registering the proxy failed; will retry", "err", err)
			}
		}
		a.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (a *Agent) isRegistered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registered
}

// settleStart decides a tap started held: by the journal's phase, or
// released to ZooKeeper when the journal does not answer in time.
func (a *Agent) settleStart(ctx context.Context) {
	deadline := time.Now().Add(a.cfg.StartWait)
	held := heldBefore(a.cfg.StateDir)
	if held != "" {
		a.log.Warn("cutover: this proxy stopped while a cutover held it; fencing that cutover off and following the journal's phase before relaying anything", "cutover", held)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var st raftjournal.CutoverState
		var err error
		// A cutover that held this proxy when it stopped may still be
		// running, and its commit may land while this proxy relays to
		// ZooKeeper: fence it off first, as an expired hold does. Only then
		// is the phase read final.
		if held != "" {
			err = setToken(rctx, a.cfg.Journal, expiredToken(held))
		}
		if err == nil {
			st, err = a.committedState(rctx)
		}
		cancel()
		if err == nil && held != "" {
			held = ""
			a.noteHeld("")
		}
		if err == nil {
			if phaseIsJournal(st.Phase) {
				if err = a.switchNow(ctx, "the journal is "+st.Phase+" at start"); err == nil {
					return
				}
			} else if err = a.startAfterRollback(ctx); err == nil {
				a.cfg.Tap.Release()
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			if a.cfg.ExpectJournal || held != "" {
				a.log.Warn("cutover: this proxy switched to the journal, or a cutover held it, before it restarted, and the journal does not answer; holding clients until it does", "err", err)
				deadline = time.Now().Add(a.cfg.StartWait)
			} else {
				a.log.Warn("cutover: the journal's phase is unknown at start; relaying to ZooKeeper (shadow) — the proxy switches as soon as it reads primary", "err", err)
				a.cfg.Tap.Release()
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func phaseIsJournal(p string) bool {
	return p == raftjournal.PhasePrimary.String() || p == raftjournal.PhaseFinalized.String()
}

// tick settles an expired hold, or switches a tap the journal's phase says
// should be switched.
func (a *Agent) tick(ctx context.Context) {
	a.mu.Lock()
	h := a.hold
	a.mu.Unlock()
	if h != nil && time.Now().After(h.Deadline) {
		a.expire(ctx, h)
		return
	}
	backend := a.cfg.Tap.Backend()
	if backend == dualwrite.BackendZooKeeper {
		a.loadZxidMap(ctx)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	phase, addrs, err := a.appliedPhase(rctx)
	cancel()
	if err != nil {
		a.setErr(err)
		return
	}
	if backend == dualwrite.BackendJournal {
		// A rollback this proxy missed (or was not held for): follow the
		// journal back to ZooKeeper, but never while a hold is settling.
		if phase == raftjournal.PhaseShadow.String() && h == nil {
			a.log.Warn("rollback: the journal is shadow and this proxy still relays to it; switching back to ZooKeeper")
			if err := a.switchBack(ctx, "journal phase shadow"); err != nil {
				a.setErr(err)
			}
		}
		return
	}
	if phaseIsJournal(phase) {
		a.log.Warn("cutover: the journal is "+phase+" and this proxy still relays to ZooKeeper; switching", "journal", addrs)
		if err := a.switchTo(addrs, "journal phase "+phase); err != nil {
			a.setErr(err)
		}
	}
}

// expire settles a hold whose deadline passed without a release or a
// switch: it fences the commit (the token says expired, so a SetPhase still
// on its way is refused), then follows the journal's committed phase.
func (a *Agent) expire(ctx context.Context, h *HoldInfo) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := setToken(rctx, a.cfg.Journal, expiredToken(h.ID)); err != nil {
		a.setErr(fmt.Errorf("hold %s expired; cannot fence the journal, still holding: %w", h.ID, err))
		a.log.Warn("cutover: hold expired but the journal does not answer; still holding (releasing now could fork the state)", "cutover", h.ID, "err", err)
		return
	}
	st, err := a.committedState(rctx)
	if err != nil {
		a.setErr(fmt.Errorf("hold %s expired; journal phase unknown, still holding: %w", h.ID, err))
		return
	}
	if phaseIsJournal(st.Phase) {
		a.log.Warn("cutover: hold expired; the journal committed "+st.Phase+", switching", "cutover", h.ID)
		if err := a.switchNow(ctx, "hold expired after the commit"); err != nil {
			a.setErr(err)
		}
		return
	}
	if a.cfg.Tap.Backend() == dualwrite.BackendJournal {
		// A rollback's hold: the journal is shadow, so it committed.
		a.log.Warn("rollback: hold expired; the journal committed shadow, switching back to ZooKeeper", "cutover", h.ID)
		if err := a.switchBack(ctx, "hold expired after the rollback's commit"); err != nil {
			a.setErr(err)
		}
		return
	}
	a.log.Warn("cutover: hold expired before a commit; releasing the clients to ZooKeeper (the cutover is fenced off)", "cutover", h.ID, "phase", st.Phase)
	a.mu.Lock()
	a.hold = nil
	a.mu.Unlock()
	a.cfg.Tap.Release()
	a.noteHeld("")
	a.setErr(nil)
}

// committedState reads the journal's state after a read barrier, from the
// first member that answers.
func (a *Agent) committedState(ctx context.Context) (raftjournal.CutoverState, error) {
	var errs []error
	for _, m := range a.cfg.Members() {
		st, err := raftjournal.NewAdminClient(m, a.cfg.Credentials).CutoverState(ctx, TokenKey)
		if err == nil {
			a.notePhase(st.Phase)
			return st, nil
		}
		errs = append(errs, err)
	}
	return raftjournal.CutoverState{}, fmt.Errorf("cutover: no journal member answered: %w", errors.Join(errs...))
}

func (a *Agent) notePhase(p string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.phase, a.phaseAt = p, time.Now()
}

// appliedPhase reads the phase members applied (an applied entry is
// committed, so primary anywhere is primary) and the members' client
// addresses.
func (a *Agent) appliedPhase(ctx context.Context) (string, []string, error) {
	var errs []error
	for _, m := range a.cfg.Members() {
		cs, err := raftjournal.NewAdminClient(m, a.cfg.Credentials).ClusterStatus(ctx, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The member that applied the most has the newest committed phase
		// (an applied entry is committed): after a rollback a lagging member
		// may still say primary.
		phase, newest := cs.Phase, cs.AppliedIndex
		var addrs []string
		for _, mb := range cs.Members {
			if mb.Status == nil {
				continue
			}
			if mb.Status.AppliedIndex > newest {
				phase, newest = mb.Status.Phase, mb.Status.AppliedIndex
			}
			if mb.Status.ClientAddr != "" {
				addrs = append(addrs, mb.Status.ClientAddr)
			}
		}
		a.notePhase(phase)
		return phase, addrs, nil
	}
	return "", nil, fmt.Errorf("cutover: no journal member answered: %w", errors.Join(errs...))
}

// switchNow switches the tap to the journal's client ports.
func (a *Agent) switchNow(ctx context.Context, why string) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, addrs, err := a.appliedPhase(rctx)
	if err != nil {
		return err
	}
	return a.switchTo(addrs, why)
}

func (a *Agent) switchTo(addrs []string, why string) error {
	n, err := a.cfg.Tap.SwitchToJournal(addrs)
	if err != nil {
		return fmt.Errorf("cutover: %w (no journal member has --client-addr)", err)
	}
	a.mu.Lock()
	a.hold = nil
	a.mu.Unlock()
	a.setErr(nil)
	if a.cfg.StateDir != "" {
		if err := os.WriteFile(filepath.Join(a.cfg.StateDir, switchedFile), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			a.log.Warn("cutover: cannot record the switch in the state dir; after a restart this proxy waits for the journal's phase only StartWait", "err", err)
		}
	}
	a.noteHeld("")
	a.log.Info("cutover: proxy switched to the journal", "why", why, "closed-connections", n, "journal", addrs)
	a.mu.Lock()
	fire := !a.switched
	a.switched = true
	a.mu.Unlock()
	if fire && a.cfg.OnSwitch != nil {
		a.cfg.OnSwitch()
	}
	return nil
}

// Handler serves the orchestrator's calls under /cutover/ (mount it behind
// the admin port's authentication).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cutover/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.State()) })
	mux.HandleFunc("POST /cutover/hold", a.handleHold)
	mux.HandleFunc("POST /cutover/release", a.handleRelease)
	mux.HandleFunc("POST /cutover/switch", a.handleSwitch)
	mux.HandleFunc("POST /cutover/switch-back", a.handleSwitchBack)
	mux.HandleFunc("POST /cutover/align", a.handleAlign)
	return mux
}

type holdRequest struct {
	ID        string `json:"id"`
	TimeoutMs int64  `json:"timeout_ms"`
	// To is the phase the hold is for: "" or "primary" (the proxy relays
	// to ZooKeeper), "shadow" (a rollback: it relays to the journal).
	To string `json:"to,omitempty"`
}

type alignRequest struct {
	Path string `json:"path"`
}

type alignResponse struct {
	Zxid int64 `json:"zxid"`
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (a *Agent) handleHold(w http.ResponseWriter, r *http.Request) {
	var req holdRequest
	if err := decode(r, &req); err != nil || req.ID == "" || req.TimeoutMs <= 0 {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("cutover: hold needs an id and a positive timeout_ms (%v)", err))
		return
	}
	switch backend := a.cfg.Tap.Backend(); {
	case req.To == raftjournal.PhaseShadow.String() && backend != dualwrite.BackendJournal:
		writeErr(w, http.StatusConflict, errors.New("rollback: this proxy already relays to ZooKeeper"))
		return
	case req.To != raftjournal.PhaseShadow.String() && backend == dualwrite.BackendJournal:
		writeErr(w, http.StatusConflict, errors.New("cutover: this proxy already relays to the journal"))
		return
	}
	// Recorded before the tap holds: a proxy killed from here on starts
	// held and fences this cutover off before it relays anything.
	if err := a.noteHeld(req.ID); err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	now := time.Now()
	a.mu.Lock()
	a.hold = &HoldInfo{ID: req.ID, Since: now, Deadline: now.Add(time.Duration(req.TimeoutMs) * time.Millisecond)}
	a.mu.Unlock()
	a.cfg.Tap.Hold()
	a.log.Info("cutover: holding for the orchestrator", "cutover", req.ID, "deadline", time.Duration(req.TimeoutMs)*time.Millisecond)
	writeJSON(w, http.StatusOK, a.State())
}

func (a *Agent) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req holdRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	a.mu.Lock()
	h := a.hold
	if h != nil && req.ID != "" && h.ID != req.ID {
		a.mu.Unlock()
		writeErr(w, http.StatusConflict, fmt.Errorf("cutover: held for %s, not %s", h.ID, req.ID))
		return
	}
	a.hold = nil
	a.mu.Unlock()
	a.cfg.Tap.Release()
	a.noteHeld("")
	a.log.Info("cutover: released by the orchestrator", "cutover", req.ID)
	writeJSON(w, http.StatusOK, a.State())
}

// handleSwitch switches only when the journal's committed phase says so.
func (a *Agent) handleSwitch(w http.ResponseWriter, r *http.Request) {
	var req holdRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := a.committedState(ctx)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	if !phaseIsJournal(st.Phase) {
		writeErr(w, http.StatusConflict, fmt.Errorf("cutover: the journal is %s; a proxy switches only when it is primary", st.Phase))
		return
	}
	if err := a.switchNow(ctx, "cutover "+req.ID); err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, a.State())
}

func (a *Agent) handleAlign(w http.ResponseWriter, r *http.Request) {
	var req alignRequest
	if err := decode(r, &req); err != nil || req.Path == "" {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("cutover: align needs a path (%v)", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	z, err := a.cfg.Tap.Align(ctx, req.Path)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, alignResponse{Zxid: z})
}
