package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkclient"
)

// The gates, by name (what --force takes).
const (
	GateJournal  = "journal"        // the journal answers, in shadow
	GateProxies  = "proxies"        // at least one proxy registered, and every one answers
	GateDirect   = "direct-clients" // no ZooKeeper session but the proxies' (cons on every server)
	GateLag      = "mirror-lag"     // every proxy's mirrors reached the journal (queue, lag, lost)
	GateDigest   = "digest"         // equal digests at ZooKeeper's latest zxid
	GateRepairs  = "repairs"        // no reconciler repair (a write around the proxies) lately, nothing unreadable
	GateSessions = "sessions"       // every session of the proxies' clients is known to the journal
)

// Gates lists the gate names in the order they are checked.
var Gates = []string{GateJournal, GateProxies, GateDirect, GateLag, GateDigest, GateRepairs, GateSessions}

// Options configure Inspect and ToPrimary.
type Options struct {
	// Journal lists journal members' admin addresses; Credentials reach
	// them and the proxies' admin ports.
	Journal     []string
	Credentials raftjournal.Credentials
	// ZK lists ZooKeeper's servers (default: those the proxies registered).
	ZK []string
	// ZKAuth are credentials for reading ZooKeeper's digest and nodes.
	ZKAuth []string
	// Align makes Inspect's digest check comparable at ZooKeeper's latest
	// zxid with alignment writes of AlignPath through a proxy (ToPrimary
	// always aligns).
	Align     bool
	AlignPath string
	// MaxLag is the mirror-lag gate's bound on a proxy's oldest undelivered
	// mirror (default 5 s).
	MaxLag time.Duration
	// RepairQuiet is how long before the cutover the reconcilers must have
	// repaired nothing (default 1 min).
	RepairQuiet time.Duration
	// Force names gates to pass even though they fail (each logged loudly).
	Force []string
	// HoldTimeout is the proxies' hold deadline (default 5 s): past it, a
	// proxy settles the hold by the journal's phase by itself.
	HoldTimeout time.Duration
	// AdoptTimeout is the session timeout the journal gives owners of
	// ephemerals no proxy mirrored (0: the journal's default).
	AdoptTimeout time.Duration
	Logger       *slog.Logger

	// stepHook, in tests, runs after the steps "hold", "proof" and
	// "commit" (ToShadow: "hold", "drain", "commit", "switch"); an error
	// makes ToPrimary or ToShadow return at once without any clean-up, and
	// a hook may kill the process (kill -9 mid-cutover).
	stepHook func(step string) error
}

// DefaultAlignPath is the node alignment writes go to.
const DefaultAlignPath = "/zk2raft-cutover-align"

func (o *Options) defaults() error {
	if len(o.Journal) == 0 {
		return errors.New("cutover: no journal address")
	}
	if o.AlignPath == "" {
		o.AlignPath = DefaultAlignPath
	}
	if o.MaxLag <= 0 {
		o.MaxLag = 5 * time.Second
	}
	if o.RepairQuiet <= 0 {
		o.RepairQuiet = time.Minute
	}
	if o.HoldTimeout <= 0 {
		o.HoldTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, f := range o.Force {
		if !slices.Contains(Gates, f) && !slices.Contains(RollbackGates, f) {
			return fmt.Errorf("cutover: --force %q: no such gate (gates: %s; rollback: %s)", f, strings.Join(Gates, ", "), strings.Join(RollbackGates, ", "))
		}
	}
	return nil
}

// Gate is one gate's verdict with its evidence.
type Gate struct {
	Name     string `json:"name"`
	Pass     bool   `json:"pass"`
	Forced   bool   `json:"forced,omitempty"`
	Evidence string `json:"evidence"`
}

// ProxyReport is one registered proxy and what it answered.
type ProxyReport struct {
	Record ProxyRecord `json:"record"`
	State  *ProxyState `json:"state,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// Sessions compares the sessions the proxies' clients hold with the
// journal's.
type Sessions struct {
	AtProxies   int     `json:"at_proxies"`
	Known       int     `json:"known_to_both"`
	Missing     []int64 `json:"missing,omitempty"`
	Unmirrored  int     `json:"unmirrored_events"`
	Mirrored    int     `json:"journal_mirrored"`
	JournalOwns int     `json:"journal_sessions"`
}

// Status is the cutover's view: the phase and every gate with its evidence.
type Status struct {
	Phase         string                    `json:"phase"`
	Journal       *raftjournal.CutoverState `json:"-"`
	JournalZxid   string                    `json:"journal_max_source_zxid,omitempty"`
	ZooKeeperZxid string                    `json:"zookeeper_zxid,omitempty"`
	ZooKeeper     []string                  `json:"zookeeper,omitempty"`
	Proxies       []ProxyReport             `json:"proxies"`
	Tails         []TailReport              `json:"tails"`
	Digest        *dualwrite.DigestVerdict  `json:"digest,omitempty"`
	Sessions      Sessions                  `json:"sessions"`
	Gates         []Gate                    `json:"gates"`
	Last          *Progress                 `json:"last_cutover,omitempty"`
	Errors        []string                  `json:"errors,omitempty"`
	// SplitBrain lists the split-brain writes recorded in primary, Fence the
	// active fence, ReverseMirror its replicated lag, FinalizeGates the
	// gates of `cutover --to finalized` (finalize.go; in primary).
	SplitBrain    []reversemirror.SplitBrainWrite  `json:"split_brain,omitempty"`
	Fence         *FenceView                       `json:"fence,omitempty"`
	ReverseMirror *raftjournal.ReverseMirrorStatus `json:"reverse_mirror,omitempty"`
	FinalizeGates []Gate                           `json:"finalize_gates,omitempty"`
}

// TailReport is a tail's progress as it recorded it in the journal.
type TailReport struct {
	Name     string                 `json:"name"`
	Progress dualwrite.TailProgress `json:"progress"`
}

// tailsOf decodes the tails' progress records among checkpoints.
func tailsOf(cps []raftjournal.Checkpoint) []TailReport {
	var out []TailReport
	for _, cp := range cps {
		name, ok := strings.CutPrefix(cp.Key, dualwrite.TailCheckpointKey)
		if !ok || (name != "" && !strings.HasPrefix(name, "/")) {
			continue
		}
		var p dualwrite.TailProgress
		if json.Unmarshal(cp.Value, &p) != nil {
			continue
		}
		out = append(out, TailReport{Name: strings.TrimPrefix(name, "/"), Progress: p})
	}
	return out
}

// Failing returns the gates that fail and are not forced.
func (s *Status) Failing() []Gate {
	var out []Gate
	for _, g := range s.Gates {
		if !g.Pass && !g.Forced {
			out = append(out, g)
		}
	}
	return out
}

// env is what one Inspect or ToPrimary reaches.
type env struct {
	o       Options
	cluster *importer.JournalCluster
}

func newEnv(o Options) (*env, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	jc, err := importer.NewJournalCluster(o.Journal, o.Credentials, o.Logger.With("component", "journal-client"))
	if err != nil {
		return nil, fmt.Errorf("cutover: %w", err)
	}
	return &env{o: o, cluster: jc}, nil
}

func (e *env) close() { e.cluster.Close() }

func (e *env) admin(addr string) *raftjournal.AdminClient {
	return raftjournal.NewAdminClient(addr, e.o.Credentials)
}

// journalState reads the journal's committed state from the first member
// that answers.
func (e *env) journalState(ctx context.Context) (raftjournal.CutoverState, error) {
	var errs []error
	for _, m := range e.cluster.AdminAddrs() {
		st, err := e.admin(m).CutoverState(ctx, "zk2raft/")
		if err == nil {
			return st, nil
		}
		errs = append(errs, err)
	}
	return raftjournal.CutoverState{}, fmt.Errorf("cutover: no journal member answered: %w", errors.Join(errs...))
}

// proxyCall calls a proxy's agent.
func (e *env) proxyCall(ctx context.Context, p ProxyRecord, method, path string, body, out any) error {
	if err := e.admin(p.Admin).Call(ctx, method, path, body, out); err != nil {
		return fmt.Errorf("proxy %s (%s): %w", p.ID, p.Admin, err)
	}
	return nil
}

// zkZxid returns ZooKeeper's last zxid: the largest any server reports.
func zkZxid(ctx context.Context, hosts []string) (int64, error) {
	var best int64
	var errs []error
	ok := false
	for _, h := range hosts {
		z, err := zkclient.ServerZxid(ctx, h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok = true
		best = max(best, z)
	}
	if !ok {
		return 0, fmt.Errorf("cutover: no ZooKeeper server answered srvr: %w", errors.Join(errs...))
	}
	return best, nil
}

// digestCheck compares digests at ZooKeeper's latest zxid (after an
// alignment through via, when given).
// create makes the alignment node first (through the proxy's client port,
// so it is mirrored like a client's write; not while the proxy holds).
func (e *env) digestCheck(ctx context.Context, hosts []string, via *ProxyRecord, create bool) (dualwrite.DigestVerdict, error) {
	view := dualwrite.FailoverView(e.cluster.AdminAddrs, func(addr string) *raftjournal.AdminClient {
		return e.admin(addr).WithZooKeeperAuth(e.o.ZKAuth)
	})
	rc := dualwrite.DefaultReconcilerConfig()
	rc.ZK, rc.Auth, rc.Journal, rc.View, rc.Logger = hosts, e.o.ZKAuth, e.cluster, view, e.o.Logger
	r, err := dualwrite.NewReconciler(rc)
	if err != nil {
		return dualwrite.DigestVerdict{}, err
	}
	defer r.Close()
	if via != nil {
		if create {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := createVia(cctx, via.Listen, e.o.AlignPath, e.o.ZKAuth)
			cancel()
			if err != nil {
				return dualwrite.DigestVerdict{}, fmt.Errorf("cutover: alignment: %w", err)
			}
		}
		// A txn around the proxies (a session created or expired, a write
		// straight to ZooKeeper) between the alignment and the check leaves
		// the verdict unknown: align again, a few times.
		var v dualwrite.DigestVerdict
		for attempt := 0; attempt < 3; attempt++ {
			var ar alignResponse
			if err := e.proxyCall(ctx, *via, http.MethodPost, "/cutover/align", alignRequest{Path: e.o.AlignPath}, &ar); err != nil {
				return dualwrite.DigestVerdict{}, fmt.Errorf("cutover: alignment: %w", err)
			}
			if err := e.waitSourceZxid(ctx, ar.Zxid); err != nil {
				return dualwrite.DigestVerdict{}, err
			}
			if v, err = r.DigestCheck(ctx); err != nil || v.Result != dualwrite.DigestUnknown {
				return v, err
			}
			e.o.Logger.Info("cutover: digest check after an alignment is not comparable; aligning again", "zxid", fmt.Sprintf("%#x", ar.Zxid), "reason", v.Reason)
		}
		return v, nil
	}
	return r.DigestCheck(ctx)
}

// waitSourceZxid waits until the journal has applied ZooKeeper's zxid z.
func (e *env) waitSourceZxid(ctx context.Context, z int64) error {
	for {
		st, err := e.journalState(ctx)
		if err == nil && st.MaxSourceZxid >= z {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cutover: the journal has not applied ZooKeeper's zxid %#x: %w", z, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Inspect gathers the cutover's status: the phase, the proxies, and every
// gate with its evidence.
func Inspect(ctx context.Context, o Options) (*Status, error) {
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return e.inspect(ctx, o.Align)
}

func (e *env) inspect(ctx context.Context, align bool) (*Status, error) {
	st := &Status{}
	js, err := e.journalState(ctx)
	if err != nil {
		return nil, err
	}
	st.Journal, st.Phase = &js, js.Phase
	st.JournalZxid = fmt.Sprintf("%#x", js.MaxSourceZxid)
	for _, cp := range js.Checkpoints {
		if cp.Key == LogKey {
			var p Progress
			if json.Unmarshal(cp.Value, &p) == nil {
				st.Last = &p
			}
		}
	}
	records, err := proxiesOf(js.Checkpoints)
	if err != nil {
		return nil, err
	}
	hosts := e.o.ZK
	for _, r := range records {
		var ps ProxyState
		rep := ProxyReport{Record: r}
		if err := e.proxyCall(ctx, r, http.MethodGet, "/cutover/state", nil, &ps); err != nil {
			rep.Error = err.Error()
		} else {
			rep.State = &ps
		}
		st.Proxies = append(st.Proxies, rep)
		if len(e.o.ZK) == 0 {
			for _, h := range r.ZooKeeper {
				if !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
	}
	st.ZooKeeper = hosts
	var zkz int64
	if len(hosts) > 0 {
		if zkz, err = zkZxid(ctx, hosts); err != nil {
			st.Errors = append(st.Errors, err.Error())
		} else {
			st.ZooKeeperZxid = fmt.Sprintf("%#x", zkz)
		}
	}

	if js.Phase == raftjournal.PhasePrimary.String() {
		// The way back: the rollback's gates (rollback.go).
		e.inspectRollback(ctx, st, js)
		e.inspectPrimary(ctx, st, js)
		return st, nil
	}

	// journal
	g := Gate{Name: GateJournal, Pass: js.Phase == raftjournal.PhaseShadow.String(),
		Evidence: fmt.Sprintf("phase %s, applied index %d, ZooKeeper zxid seen %#x", js.Phase, js.AppliedIndex, js.MaxSourceZxid)}
	st.Gates = append(st.Gates, g)

	// proxies
	var bad []string
	for _, p := range st.Proxies {
		if p.State == nil {
			bad = append(bad, p.Record.ID+" does not answer: "+p.Error)
		}
	}
	// A journal node running a proxy in process (serve --zk --proxy-addr)
	// is not registered and not switched: its clients would stay on
	// ZooKeeper.
	for _, m := range e.inProcessProxies(ctx) {
		bad = append(bad, "journal member "+m+" runs an in-process proxy (serve --proxy-addr), which the cutover does not switch: move its clients to a zk2raft proxy")
	}
	g = Gate{Name: GateProxies, Pass: len(st.Proxies) > 0 && len(bad) == 0}
	switch {
	case len(st.Proxies) == 0:
		msg := "no proxy registered with the journal (a proxy registers itself when it starts with --journal)"
		if len(tailsOf(js.Checkpoints)) > 0 {
			msg += "; a tail mirrors ZooKeeper's log, but the cutover switches clients through proxies: a cutover with the tail alone is not built"
		}
		g.Evidence = strings.Join(append([]string{msg}, bad...), "; ")
	case len(bad) > 0:
		g.Evidence = strings.Join(bad, "; ")
	default:
		var parts []string
		for _, p := range st.Proxies {
			parts = append(parts, fmt.Sprintf("%s (listen %s, %d zookeeper + %d journal connections, backend %s)", p.Record.ID, p.Record.Listen,
				p.State.Tap.ZooKeeperConnections, p.State.Tap.JournalConnections, p.State.Tap.Backend))
		}
		g.Evidence = fmt.Sprintf("%d registered, all answer: %s", len(st.Proxies), strings.Join(parts, "; "))
	}
	st.Gates = append(st.Gates, g)

	// direct clients
	st.Gates = append(st.Gates, e.directGate(ctx, st, hosts))

	// mirror lag: the proxies' queues, and the tails' progress (the
	// data-directory route, dualwrite.Tail), either or both.
	st.Tails = tailsOf(js.Checkpoints)
	g = Gate{Name: GateLag, Pass: len(st.Proxies) > 0 || len(st.Tails) > 0}
	var parts []string
	for _, tl := range st.Tails {
		p := tl.Progress
		age := time.Since(p.UpdatedAt)
		s := fmt.Sprintf("tail %s (%s): every txn up to %#x mirrored, lag %.1fs, recorded %s ago", tl.Name, p.DataDir, p.Zxid, p.LagSeconds, age.Round(100*time.Millisecond))
		if zkz != 0 {
			s += fmt.Sprintf(", ZooKeeper at %#x", zkz)
		}
		// Caught up with ZooKeeper's latest zxid, or recording progress with
		// a small lag (under writes ZooKeeper is always a little ahead). An
		// idle tail does not record again, so a stale record is fine only
		// when it has everything.
		caughtUp := zkz != 0 && p.Zxid >= zkz
		fresh := p.LagSeconds <= e.o.MaxLag.Seconds() && age <= e.o.MaxLag+2*time.Second
		if !caughtUp && !fresh {
			g.Pass = false
			s += fmt.Sprintf(" — behind ZooKeeper and no progress within %s", e.o.MaxLag)
		}
		parts = append(parts, s)
	}
	for _, p := range st.Proxies {
		if p.State == nil {
			parts = append(parts, p.Record.ID+": unknown (does not answer: the proxies gate)")
			continue
		}
		t := p.State.Tap
		s := fmt.Sprintf("%s: queue %d, in flight %d, oldest undelivered %.1fs", p.Record.ID, t.QueueRecords, t.InFlight, t.LagSeconds)
		if zkz != 0 && t.LastMirroredZxid != 0 {
			s += fmt.Sprintf(", last mirrored %#x vs ZooKeeper %#x", t.LastMirroredZxid, zkz)
		}
		switch {
		case t.Lost:
			g.Pass = false
			s += " — mirrors were lost, a repair pass is owed"
		case t.Journal == "unreachable":
			g.Pass = false
			s += " — the journal does not answer this proxy"
		case t.LagSeconds > e.o.MaxLag.Seconds():
			g.Pass = false
			s += fmt.Sprintf(" — lag over %s", e.o.MaxLag)
		}
		parts = append(parts, s)
	}
	if js.MaxSourceZxid != 0 && zkz != 0 {
		parts = append(parts, fmt.Sprintf("journal has seen %#x of ZooKeeper's %#x", js.MaxSourceZxid, zkz))
	}
	if len(st.Proxies) == 0 && len(st.Tails) == 0 {
		parts = append(parts, "no proxy registered and no tail recording progress")
	}
	g.Evidence = strings.Join(parts, "; ")
	st.Gates = append(st.Gates, g)

	// digest
	g = Gate{Name: GateDigest}
	if len(hosts) == 0 {
		g.Evidence = "no ZooKeeper hosts known (no proxy registered; give --zk)"
	} else {
		var via *ProxyRecord
		if align {
			for _, p := range st.Proxies {
				if p.State != nil && p.State.Tap.Backend == dualwrite.BackendZooKeeper.String() {
					r := p.Record
					via = &r
					break
				}
			}
		}
		v, err := e.digestCheck(ctx, hosts, via, true)
		// Under concurrent writes the journal may log a digest at a zxid
		// before a lower txn of another connection arrived, and drops it
		// when that txn does (raftjournal's applySourceTxn): a "different"
		// read in that window is transient. Look again, as the reconciler
		// does, before saying different.
		for again := 0; again < 3 && err == nil && v.Result == dualwrite.DigestDifferent; again++ {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			v, err = e.digestCheck(ctx, hosts, nil, false)
		}
		if err != nil {
			g.Evidence = "digest check failed: " + err.Error()
		} else {
			st.Digest = &v
			// Equal at ZooKeeper's latest zxid passes. Under a steady write
			// load ZooKeeper is past any digest point by the time it is read,
			// so equal at a recent common zxid passes too, saying so: it says
			// nothing of the writes since, and the cutover proves equality at
			// ZooKeeper's latest zxid with the clients held, whatever this
			// gate said (--force does not skip that proof).
			recent := v.Result == dualwrite.DigestUnknown && v.Zxid != 0 && v.ZooKeeper == v.Journal
			g.Pass = v.Result == dualwrite.DigestEqual || recent
			g.Evidence = describeVerdict(v)
			if recent {
				g.Evidence += " — no difference found; the cutover proves equality at ZooKeeper's latest zxid with the clients held"
			}
			if via != nil {
				// The alignment moved ZooKeeper on: show where it is now.
				if z, err := zkZxid(ctx, hosts); err == nil {
					zkz = z
					st.ZooKeeperZxid = fmt.Sprintf("%#x", z)
				}
				if js2, err := e.journalState(ctx); err == nil {
					st.JournalZxid = fmt.Sprintf("%#x", js2.MaxSourceZxid)
				}
			}
			if v.Result == dualwrite.DigestUnknown && !align {
				g.Evidence += " (cutover --to primary aligns and checks at ZooKeeper's latest zxid; status --align does it now)"
			}
		}
	}
	st.Gates = append(st.Gates, g)

	// repairs
	g = Gate{Name: GateRepairs, Pass: true}
	parts = nil
	seen := false
	for _, p := range st.Proxies {
		if p.State == nil || p.State.Reconcile == nil {
			continue
		}
		seen = true
		r := p.State.Reconcile
		s := fmt.Sprintf("%s: %d node and %d delete repairs, %d of %d node events not covered by a proxy's mirror (writes around the proxies, or ZooKeeper's own deletes), %d unreadable",
			p.Record.ID, r.NodeRepairs, r.DeleteRepairs, max(r.Events-r.Skipped, 0), r.Events, r.Unreadable)
		if !r.LastRepair.IsZero() {
			ago := time.Since(r.LastRepair).Round(time.Second)
			s += fmt.Sprintf(", last repair %s ago", ago)
			if ago < e.o.RepairQuiet {
				g.Pass = false
				s += fmt.Sprintf(" (within %s: something writes around the proxies)", e.o.RepairQuiet)
			}
		}
		if r.Unreadable > 0 {
			g.Pass = false
		}
		parts = append(parts, s)
	}
	if !seen {
		g.Pass = false
		parts = append(parts, "no proxy runs a reconciler: writes around the proxies would go unseen")
	}
	g.Evidence = strings.Join(parts, "; ")
	st.Gates = append(st.Gates, g)

	// sessions
	st.Sessions = e.sessions(st, js)
	g = Gate{Name: GateSessions, Pass: len(st.Sessions.Missing) == 0 && st.Sessions.Unmirrored == 0}
	g.Evidence = fmt.Sprintf("%d sessions at the proxies, %d known to the journal too; %d mirrored in all, %d journal sessions; %d events not yet sent",
		st.Sessions.AtProxies, st.Sessions.Known, st.Sessions.Mirrored, st.Sessions.JournalOwns, st.Sessions.Unmirrored)
	if len(st.Sessions.Missing) > 0 {
		g.Evidence += fmt.Sprintf("; missing from the journal: %s", hexIDs(st.Sessions.Missing, 10))
	}
	st.Gates = append(st.Gates, g)

	for i := range st.Gates {
		if !st.Gates[i].Pass && slices.Contains(e.o.Force, st.Gates[i].Name) {
			st.Gates[i].Forced = true
		}
	}
	e.inspectPrimary(ctx, st, js)
	return st, nil
}

// directGate looks for ZooKeeper sessions that are not the proxies': a
// client connected straight to ZooKeeper (or through a proxy that is not
// registered) is not switched by the cutover, and its writes after the
// switch would go to a ZooKeeper that is no longer the source of truth. It
// reads `cons` on every server (4lw.commands.whitelist must allow it).
func (e *env) directGate(ctx context.Context, st *Status, hosts []string) Gate {
	g := Gate{Name: GateDirect}
	known := map[int64]bool{}
	for _, p := range st.Proxies {
		if p.State == nil {
			continue // its sessions, if it has any, show up as not the proxies'
		}
		for _, id := range p.State.Tap.Sessions {
			known[id] = true
		}
		if p.State.Tap.OwnSession != 0 {
			known[p.State.Tap.OwnSession] = true
		}
		if p.State.Reconcile != nil {
			for _, id := range p.State.Reconcile.Sessions {
				known[id] = true
			}
		}
	}
	if len(hosts) == 0 {
		g.Evidence = "no ZooKeeper hosts known"
		return g
	}
	// Short-lived sessions (a repair pass's walk, a client passing by) come
	// and go: only those seen in three looks a second apart count.
	var direct []string
	total := 0
	seen := map[int64]int{}
	for look := 0; look < 3; look++ {
		if look > 0 {
			select {
			case <-ctx.Done():
				g.Evidence = "interrupted: " + ctx.Err().Error()
				return g
			case <-time.After(time.Second):
			}
		}
		direct, total = nil, 0
		for _, h := range hosts {
			out, err := zkclient.FourLetterWord(ctx, h, "cons")
			if err != nil {
				// A server that does not answer may be down, or cut off
				// from here with clients of its own: it cannot be passed
				// over silently.
				g.Evidence = fmt.Sprintf("cannot list %s's connections (cons): %v — a server that is down: start it again, or, if it is gone for good, name the live servers with --zk; or --force %s", h, err, GateDirect)
				return g
			}
			if strings.Contains(out, "not in the whitelist") || strings.Contains(out, "not executed") {
				g.Evidence = fmt.Sprintf("cannot list %s's connections (cons): %s — allow cons in 4lw.commands.whitelist, or --force %s", h, strings.TrimSpace(out), GateDirect)
				return g
			}
			for _, c := range parseCons(out) {
				total++
				if known[c.session] {
					continue
				}
				if seen[c.session]++; seen[c.session] == look+1 {
					direct = append(direct, fmt.Sprintf("%#x from %s on %s", c.session, c.addr, h))
				}
			}
		}
		if len(direct) == 0 {
			break
		}
	}
	if len(direct) > 0 {
		n := len(direct)
		if n > 10 {
			direct = append(direct[:10], fmt.Sprintf("and %d more", n-10))
		}
		g.Evidence = fmt.Sprintf("%d of %d ZooKeeper sessions are not the proxies' (clients connected around them, an unregistered proxy, or short-lived sessions such as a repair pass's walk: check again): %s",
			n, total, strings.Join(direct, "; "))
		return g
	}
	g.Pass = true
	g.Evidence = fmt.Sprintf("all %d ZooKeeper sessions on %d servers belong to the proxies, their clients or their reconcilers", total, len(hosts))
	return g
}

type consEntry struct {
	addr    string
	session int64
}

// parseCons reads ZooKeeper's `cons` answer: one connection a line,
// "/ADDR[...](...,sid=0xID,...)"; connections without a session yet (the
// four-letter word's own) are left out.
func parseCons(out string) []consEntry {
	var res []consEntry
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		i := strings.Index(line, "sid=0x")
		if i < 0 {
			continue
		}
		hex := line[i+len("sid=0x"):]
		if j := strings.IndexAny(hex, ",)"); j >= 0 {
			hex = hex[:j]
		}
		id, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || id == 0 {
			continue
		}
		addr := line
		if j := strings.Index(addr, "["); j >= 0 {
			addr = addr[:j]
		}
		res = append(res, consEntry{addr: strings.TrimPrefix(addr, "/"), session: int64(id)})
	}
	return res
}

// inProcessProxies names the journal members that run a dual-write proxy
// in process (their /status has the "proxy" extension).
func (e *env) inProcessProxies(ctx context.Context) []string {
	addrs := e.cluster.AdminAddrs()
	for _, m := range addrs {
		cs, err := e.admin(m).ClusterStatus(ctx, false)
		if err != nil {
			continue
		}
		for _, mb := range cs.Members {
			if mb.Status != nil && mb.Status.AdminAddr != "" && !slices.Contains(addrs, mb.Status.AdminAddr) {
				addrs = append(addrs, mb.Status.AdminAddr)
			}
		}
		break
	}
	var out []string
	for _, m := range addrs {
		cs, err := e.admin(m).ClusterStatus(ctx, true)
		if err != nil {
			continue
		}
		if _, ok := cs.Extensions["proxy"]; ok {
			out = append(out, cs.ID)
		}
	}
	return out
}

func (e *env) sessions(st *Status, js raftjournal.CutoverState) Sessions {
	known := map[int64]bool{}
	for _, s := range js.SourceSessions {
		known[s.ID] = true
	}
	for _, s := range js.Sessions {
		known[s.ID] = true
	}
	out := Sessions{Mirrored: len(js.SourceSessions), JournalOwns: len(js.Sessions)}
	at := map[int64]bool{}
	for _, p := range st.Proxies {
		if p.State == nil || p.State.Tap.Backend != dualwrite.BackendZooKeeper.String() {
			continue
		}
		out.Unmirrored += p.State.Tap.SessionsUnmirrored
		for _, id := range p.State.Tap.Sessions {
			at[id] = true
		}
	}
	for id := range at {
		if known[id] {
			out.Known++
		} else {
			out.Missing = append(out.Missing, id)
		}
	}
	slices.Sort(out.Missing)
	out.AtProxies = len(at)
	return out
}

func hexIDs(ids []int64, n int) string {
	var parts []string
	for i, id := range ids {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%#x", id))
	}
	return strings.Join(parts, ", ")
}

func describeVerdict(v dualwrite.DigestVerdict) string {
	s := v.Result.String()
	if v.Zxid != 0 {
		s += fmt.Sprintf(" at zxid %#x (zookeeper %s, journal %s; %s)", v.Zxid, v.ZooKeeper, v.Journal, v.How)
	}
	if v.Reason != "" {
		s += ": " + v.Reason
	}
	return s
}
