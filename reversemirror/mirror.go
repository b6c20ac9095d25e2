package reversemirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBatchOps   = 500
	DefaultMaxBatchBytes = 512 << 10
	DefaultMaxInFlight   = 4
	DefaultPoll          = 5 * time.Millisecond
	DefaultAckInterval   = 50 * time.Millisecond
	DefaultRetry         = time.Second
	DefaultVerify        = 5 * time.Second
)

// Config configures a Mirror.
type Config struct {
	// Node is the journal node this mirror runs beside; it applies only
	// while that node leads and the journal is primary.
	Node *raftjournal.Node
	// ZooKeeper is the ensemble to keep current. Its Auth should be
	// ZooKeeper's super user (zookeeper.DigestAuthenticationProvider.superDigest):
	// the mirror writes every node whatever its ACL, as the journal's clients
	// were allowed to. Retry is set by the mirror.
	ZooKeeper zkclient.Config
	// Marker is the marker node's path (DefaultMarker when empty).
	Marker string
	// MaxBatchOps and MaxBatchBytes bound one ZooKeeper multi (several journal
	// entries go in one when they follow each other on one session).
	MaxBatchOps   int
	MaxBatchBytes int
	// MaxInFlight bounds the multis sent on one ZooKeeper session and not
	// yet answered (DefaultMaxInFlight when zero; 1: one at a time).
	MaxInFlight int
	// Poll is how often an idle mirror looks for new entries; AckInterval
	// how often it tells the journal what ZooKeeper holds; Retry how long it
	// waits after a failure before it tries again.
	Poll        time.Duration
	AckInterval time.Duration
	Retry       time.Duration
	// Throttle is the least time between two ZooKeeper multis (0: none): it
	// spares a loaded ensemble at the price of lag (tests use it to hold one).
	Throttle time.Duration
	// Root is the subtree the split-brain sentry watches and the fence
	// covers ("/" when empty: the whole tree but /zookeeper).
	Root string
	// Verify is how often the sentry checks its unresolved split-brain
	// records again, resolving those ZooKeeper agrees with again
	// (DefaultVerify when zero).
	Verify time.Duration
	// Logger receives the mirror's log lines; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Marker == "" {
		c.Marker = DefaultMarker
	}
	if c.MaxBatchOps <= 0 {
		c.MaxBatchOps = DefaultMaxBatchOps
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.AckInterval <= 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.Retry <= 0 {
		c.Retry = DefaultRetry
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Verify <= 0 {
		c.Verify = DefaultVerify
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.ZooKeeper.Retry = zkclient.Resend
	return c
}

// Status is what this process's mirror is doing. The replicated lag (what a
// cutover gate reads, on any node) is raftjournal.MirrorStatus.
type Status struct {
	// Running: this node leads a primary journal and the mirror is connected.
	Running bool `json:"running"`
	// Applied is the last journal index ZooKeeper holds, as this mirror last
	// wrote or read it in the marker; AppliedZkZxid is ZooKeeper's zxid of it.
	Applied       uint64 `json:"applied_index"`
	AppliedZkZxid int64  `json:"applied_zk_zxid"`
	// Records, Ops and Multis count what this process wrote to ZooKeeper.
	Records uint64 `json:"records"`
	Ops     uint64 `json:"ops"`
	Multis  uint64 `json:"multis"`
	// Sent is the last journal index sent to ZooKeeper (Applied once its
	// multi is answered); InFlight the multis sent and not yet answered,
	// MaxInFlight the most this process had in flight at once.
	Sent        uint64 `json:"sent_index"`
	InFlight    int    `json:"in_flight"`
	MaxInFlight int    `json:"max_in_flight"`
	// Sessions is how many ZooKeeper sessions the mirror keeps alive for
	// journal sessions with ephemerals; LostSessions counts those ZooKeeper
	// had expired (their ephemerals are missing in ZooKeeper until the
	// journal closes the session too).
	Sessions     int    `json:"zk_sessions"`
	LostSessions uint64 `json:"lost_zk_sessions"`
	// CleanupGone counts deletes of ephemerals, containers and TTL nodes that
	// ZooKeeper had already made on its own.
	CleanupGone uint64 `json:"cleanup_already_gone"`
	// Resyncs counts the times the mirror read its marker again because a
	// write's outcome was unknown (a lost connection) or the marker had moved.
	Resyncs uint64 `json:"resyncs"`
	// LastError is the last failure (a divergence stops the mirror at that
	// entry and is retried, never skipped); empty once an entry succeeds.
	LastError string `json:"last_error,omitempty"`
	// SplitBrain counts the split-brain writes this process recorded (the
	// records themselves are in the journal: SplitBrainPrefix).
	SplitBrain uint64 `json:"split_brain_recorded"`
	// SentryEvents counts the watch events the sentry took as suspects,
	// SentryOwn those it matched to the mirror's own writes, SentryScans its
	// completed scans of ZooKeeper against the journal.
	SentryEvents uint64 `json:"sentry_events"`
	SentryOwn    uint64 `json:"sentry_own_events"`
	SentryScans  uint64 `json:"sentry_scans"`
}

// Mirror applies the journal's outbox to ZooKeeper (see the package
// documentation).
type Mirror struct {
	cfg    Config
	logger *slog.Logger
	sentry *sentry
	mu     sync.Mutex
	st     Status
}

// New returns a mirror; Run starts it.
func New(cfg Config) (*Mirror, error) {
	if cfg.Node == nil {
		return nil, errors.New("reversemirror: no journal node")
	}
	if len(cfg.ZooKeeper.Hosts) == 0 {
		return nil, errors.New("reversemirror: no ZooKeeper servers")
	}
	if err := znode.ValidatePath(cfg.Marker); cfg.Marker != "" && err != nil {
		return nil, fmt.Errorf("reversemirror: marker: %w", err)
	}
	if err := znode.ValidatePath(cfg.Root); cfg.Root != "" && err != nil {
		return nil, fmt.Errorf("reversemirror: root: %w", err)
	}
	cfg = cfg.withDefaults()
	m := &Mirror{cfg: cfg, logger: cfg.Logger}
	m.sentry = newSentry(m)
	return m, nil
}

// Status returns a copy of the mirror's status.
func (m *Mirror) Status() Status {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	m.sentry.mu.Lock()
	st.SentryEvents, st.SentryOwn, st.SentryScans = m.sentry.events, m.sentry.owned, m.sentry.scans
	m.sentry.mu.Unlock()
	return st
}

func (m *Mirror) update(fn func(*Status)) {
	m.mu.Lock()
	fn(&m.st)
	m.mu.Unlock()
}

// active reports whether this node should apply: it leads and the journal is
// primary.
func (m *Mirror) active() bool {
	return m.cfg.Node.IsLeader() && m.cfg.Node.FSM().Phase() == raftjournal.PhasePrimary
}

// Run applies the outbox whenever this node leads a primary journal, until ctx
// ends. Failures are logged, kept in Status and retried; Run returns only
// ctx's error.
func (m *Mirror) Run(ctx context.Context) error {
	idle := time.NewTicker(100 * time.Millisecond)
	defer idle.Stop()
	sctx, stopSentry := context.WithCancel(ctx)
	sentryDone := make(chan struct{})
	go func() { defer close(sentryDone); m.sentry.run(sctx) }()
	defer func() { stopSentry(); <-sentryDone }()
	for {
		if m.active() {
			err := m.runTerm(ctx)
			m.update(func(s *Status) { s.Running = false })
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				m.logger.Warn("reverse mirror stopped; retrying", "error", err, "retry-in", m.cfg.Retry)
				m.update(func(s *Status) { s.LastError = err.Error() })
				if !sleep(ctx, m.cfg.Retry) {
					return ctx.Err()
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// term is one stretch of applying, on one ZooKeeper session, while this node
// leads.
type term struct {
	m      *Mirror
	fsm    *raftjournal.FSM
	zk     *zkclient.Client
	marker string

	start         uint64 // this primary period's SetPhase index
	startTime     int64  // and its time
	applied       uint64 // last journal index in ZooKeeper (the marker's)
	appliedZkZxid int64
	appliedZxid   int64  // its journal zxid
	markerVersion int32  // the marker's version after the last multi answered
	sent          uint64 // last journal index sent (applied when nothing is in flight)

	flights     []*flight        // multis in flight, oldest first
	pipeNode    string           // this term's pipeline node (a child of the marker)
	pipeVersion int32            // its version after the last multi answered
	lastConn    *zkclient.Client // the connection the last multi went through
	gone        map[goneKey]bool // clean-up deletes ZooKeeper had made itself
	quietLooked time.Time        // when quietDue last looked at the fence

	sessions map[int64]int64            // journal session → ZooKeeper session, as the marker's children say
	live     map[int64]int64            // the same as this mirror holds them (written with the next multi)
	twins    map[int64]*zkclient.Client // journal session → the client holding it
	counted  map[int64]bool             // ZooKeeper sessions already counted lost
	timeouts map[int64]int32            // journal session timeouts (ms), as last read

	acked   uint64
	ackedAt time.Time
	acking  chan struct{} // an ack in the background, closed when it ends
	ackDone uint64        // what it acknowledged (read once acking is closed)

	verifiedAt  time.Time     // last look at the unresolved split-brain records
	settleAfter time.Time     // no settling before (a check or a record failed)
	walking     chan struct{} // the fence's walk, closed when it ends
	walkFailed  time.Time     // when the last walk failed (read once walking is closed)
	fenceLook   time.Time     // when runFence last looked at the request
	// batchFencing: the batch being assembled writes fenced ACLs.
	batchFencing bool
}

func (m *Mirror) runTerm(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	zk, err := zkclient.Dial(ctx, m.cfg.ZooKeeper)
	if err != nil {
		return fmt.Errorf("reversemirror: %w", err)
	}
	t := &term{m: m, fsm: m.cfg.Node.FSM(), zk: zk, marker: m.cfg.Marker,
		sessions: map[int64]int64{}, live: map[int64]int64{}, twins: map[int64]*zkclient.Client{}, counted: map[int64]bool{},
		gone: map[goneKey]bool{}}
	defer zk.Close()
	defer func() {
		cancel()
		if t.walking != nil {
			<-t.walking
		}
		if t.acking != nil {
			<-t.acking
		}
	}()
	// On the way out twins are detached, not closed: the sessions and their
	// ephemerals live on for the next leader's mirror to resume. When the
	// primary period is over (a rollback, finalize), the journal's own
	// sessions end in ZooKeeper instead (endPeriod).
	defer func() {
		if t.fsm.Phase() != raftjournal.PhasePrimary {
			t.endPeriod(context.WithoutCancel(ctx))
		}
		t.detachTwins()
	}()
	if err := t.sync(ctx); err != nil {
		return err
	}
	m.update(func(s *Status) { s.Running = true })
	m.logger.Info("reverse mirror running", "start", t.start, "applied", t.applied, "zookeeper", zk.Server())
	wait := time.NewTimer(0)
	defer wait.Stop()
	// after takes the outcome of a step: nil goes on, errResync re-reads
	// the marker, anything else ends the term (retried by Run).
	after := func(err error) error {
		switch {
		case err == nil:
			t.ack(ctx, false)
			return nil
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errResync):
			m.logger.Info("reverse mirror re-reading its marker", "cause", err)
			m.update(func(s *Status) { s.Resyncs++ })
			return t.sync(ctx)
		default:
			t.ack(ctx, true)
			return err
		}
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !m.active() {
			err := t.drain(ctx)
			t.ack(ctx, true)
			if err != nil && !errors.Is(err, errResync) && ctx.Err() == nil {
				return err
			}
			return nil
		}
		if len(t.flights) == 0 {
			// Nothing in flight: ZooKeeper holds exactly what the marker
			// says, the moment to judge the sentry's suspects and start a
			// fence walk.
			t.settle(ctx)
			t.runFence(ctx)
			if st := t.fsm.MirrorStatus(); st.Start != t.start || st.StartTime != t.startTime {
				// A rollback and a new primary period came and went
				// between two looks: start the new period from the marker.
				t.endPeriod(ctx)
				if err := t.sync(ctx); err != nil {
					return err
				}
				continue
			}
		} else if t.quietDue() {
			if err := after(t.drain(ctx)); err != nil {
				return err
			}
			continue
		}
		if n := len(t.flights); n > 0 && (n >= m.cfg.MaxInFlight || len(t.flights[n-1].b.closes) > 0) {
			// The window is full, or the last multi ends a session whose
			// connection it closes once answered.
			if err := after(t.complete(ctx)); err != nil {
				return err
			}
			continue
		}
		recs := t.fsm.MirrorPending(t.sent, m.cfg.MaxBatchOps)
		if len(recs) == 0 {
			if len(t.flights) > 0 {
				// Look again for new entries while the oldest multi is
				// answered.
				wait.Reset(m.cfg.Poll)
				select {
				case <-ctx.Done():
					return nil
				case <-t.flights[0].call.Done():
					if err := after(t.complete(ctx)); err != nil {
						return err
					}
				case <-wait.C:
				}
				continue
			}
			t.ack(ctx, true)
			wait.Reset(m.cfg.Poll)
			select {
			case <-ctx.Done():
				return nil
			case <-wait.C:
			}
			continue
		}
		if recs[0].Index <= t.sent {
			return fmt.Errorf("reversemirror: outbox returned index %d at or below %d", recs[0].Index, t.sent)
		}
		if setACL(&recs[0]) {
			// Not a multi op: it goes alone, with nothing in flight.
			err := t.drain(ctx)
			if err == nil {
				err = t.applySetACL(ctx, &recs[0])
			}
			if err := after(err); err != nil {
				return err
			}
			continue
		}
		b, err := t.assemble(ctx, recs)
		if err != nil {
			t.ack(ctx, true)
			return err
		}
		if n := len(t.flights); n > 0 && b.conn != t.flights[n-1].b.conn {
			// ZooKeeper keeps the order of one session's requests only:
			// a multi on another session waits for those in flight.
			if err := after(t.drain(ctx)); err != nil {
				return err
			}
			continue
		}
		t.send(b)
		t.ack(ctx, false)
		if m.cfg.Throttle > 0 && !sleep(ctx, m.cfg.Throttle) {
			return nil
		}
	}
}

// errResync says the outcome of a write is unknown or someone else wrote the
// marker: read it again and go on from what it says.
var errResync = errors.New("reversemirror: marker must be read again")

// sync reads the marker (creating it at the first start, resetting it at the
// start of a new primary period), resumes the ZooKeeper sessions it names
// and reads this term's pipeline node. Nothing may be in flight.
func (t *term) sync(ctx context.Context) error {
	if len(t.flights) > 0 {
		return fmt.Errorf("reversemirror: internal error: marker read with %d multis in flight", len(t.flights))
	}
	t.lastConn = nil
	if err := t.syncMarker(ctx); err != nil {
		return err
	}
	return t.syncPipe(ctx)
}

func (t *term) syncMarker(ctx context.Context) error {
	st := t.fsm.MirrorStatus()
	t.start, t.startTime = st.Start, st.StartTime
	if err := t.zk.Sync(ctx, t.marker); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
		return fmt.Errorf("reversemirror: sync %s: %w", t.marker, err)
	}
	data, stat, err := t.zk.GetData(ctx, t.marker)
	switch {
	case errors.Is(err, zkclient.ErrNoNode):
		md := &markerData{Start: st.Start, StartTime: st.StartTime, Index: st.Acked}
		_, mst, err := t.zk.Create(ctx, t.marker, md.encode(), t.markerACL(), 0)
		if errors.Is(err, zkclient.ErrNodeExists) {
			return t.syncMarker(ctx)
		}
		if err != nil {
			return fmt.Errorf("reversemirror: create the marker %s: %w", t.marker, err)
		}
		t.m.logger.Info("reverse mirror created its marker", "marker", t.marker, "index", md.Index)
		t.setApplied(md, mst.Version, mst.Mzxid)
		return t.resumeSessions(ctx, nil)
	case err != nil:
		return fmt.Errorf("reversemirror: read the marker %s: %w", t.marker, err)
	}
	md, err := decodeMarker(data)
	if err != nil {
		return err
	}
	thisPeriod := md.Start == st.Start && md.StartTime == st.StartTime
	lastPeriod := st.PrevStart != 0 && md.Start == st.PrevStart && md.StartTime == st.PrevStartTime
	switch {
	case !thisPeriod && !lastPeriod:
		// Only this journal's current or previous period is its own: a
		// marker of any other (another journal's, or one from before a
		// period whose mirror never ran) is not trusted to say what
		// ZooKeeper holds.
		return fmt.Errorf("reversemirror: marker %s belongs to another journal (its primary period began at index %d at %s, this journal's at %d at %s): another journal writes to this ensemble, or one that was rebuilt; delete the marker and its children if this journal is the right one",
			t.marker, md.Start, time.UnixMilli(md.StartTime).UTC().Format(time.RFC3339Nano), st.Start, time.UnixMilli(st.StartTime).UTC().Format(time.RFC3339Nano))
	case lastPeriod:
		// A new primary period: everything before it is ZooKeeper's own.
		old := md.Index
		if err := t.dropSessionChildren(ctx); err != nil {
			return err
		}
		md = &markerData{Start: st.Start, StartTime: st.StartTime, Index: st.Acked}
		mst, err := t.zk.SetData(ctx, t.marker, md.encode(), stat.Version)
		if err != nil {
			return fmt.Errorf("reversemirror: reset the marker %s: %w", t.marker, err)
		}
		t.m.logger.Info("reverse mirror starts a new primary period", "start", st.Start, "previous-marker-index", old)
		t.setApplied(md, mst.Version, mst.Mzxid)
		return t.resumeSessions(ctx, nil)
	case md.Index < st.Acked:
		return fmt.Errorf("reversemirror: marker %s says ZooKeeper holds journal index %d, but the journal was told %d: ZooKeeper lost acknowledged writes (restored from a backup?)", t.marker, md.Index, st.Acked)
	}
	t.setApplied(md, stat.Version, stat.Mzxid)
	sess, err := t.sessionChildren(ctx)
	if err != nil {
		return err
	}
	return t.resumeSessions(ctx, sess)
}

// sessionChildren reads the marker's session children.
func (t *term) sessionChildren(ctx context.Context) (map[int64]int64, error) {
	names, _, err := t.zk.GetChildren(ctx, t.marker)
	if err != nil {
		return nil, fmt.Errorf("reversemirror: read the marker's sessions: %w", err)
	}
	out := make(map[int64]int64, len(names))
	for _, name := range names {
		if strings.HasPrefix(name, pipelinePrefix) {
			continue
		}
		data, _, err := t.zk.GetData(ctx, t.marker+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("reversemirror: read the marker's sessions: %w", err)
		}
		j, z, err := parseSessionChild(name, data)
		if err != nil {
			return nil, err
		}
		out[j] = z
	}
	return out, nil
}

// dropSessionChildren deletes the session children of an earlier period.
func (t *term) dropSessionChildren(ctx context.Context) error {
	names, _, err := t.zk.GetChildren(ctx, t.marker)
	if err != nil {
		return fmt.Errorf("reversemirror: read the marker's sessions: %w", err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, pipelinePrefix) {
			continue // an ephemeral: it goes with its mirror's session
		}
		child := t.marker + "/" + name
		data, _, err := t.zk.GetData(ctx, child)
		if errors.Is(err, zkclient.ErrNoNode) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reversemirror: read the marker's sessions: %w", err)
		}
		if j, z, err := parseSessionChild(name, data); err == nil && raftjournal.JournalSession(j) {
			t.closeSession(ctx, j, z)
		}
		if err := t.zk.Delete(ctx, child, -1); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
			return fmt.Errorf("reversemirror: drop the earlier period's sessions: %w", err)
		}
	}
	return nil
}

func (t *term) setApplied(md *markerData, version int32, zkZxid int64) {
	t.applied, t.sent, t.markerVersion, t.appliedZkZxid = md.Index, md.Index, version, zkZxid
	t.m.update(func(s *Status) { s.Applied, s.Sent, s.InFlight, s.AppliedZkZxid = md.Index, md.Index, 0, zkZxid })
}

func (t *term) markerACL() []znode.ACL {
	if len(t.m.cfg.ZooKeeper.Auth) == 0 {
		return znode.WorldAnyone()
	}
	return []znode.ACL{
		{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}},
		{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}},
	}
}

// ack tells the journal what ZooKeeper holds, at most every AckInterval
// unless forced. An unforced ack commits in the background (one at a time),
// so that the pipeline does not wait for the journal; a forced one waits.
func (t *term) ack(ctx context.Context, force bool) {
	if t.acking != nil {
		select {
		case <-t.acking:
		default:
			if !force {
				return
			}
			<-t.acking
		}
		t.acking = nil
		t.acked = max(t.acked, t.ackDone)
	}
	if t.applied <= t.acked || !force && time.Since(t.ackedAt) < t.m.cfg.AckInterval {
		return
	}
	a := &raftjournal.MirrorAck{Index: t.applied, ZkZxid: t.appliedZkZxid, Time: time.Now().UnixMilli()}
	t.ackedAt = time.Now()
	if force {
		if t.submitAck(ctx, a) {
			t.acked = a.Index
		}
		return
	}
	done := make(chan struct{})
	t.acking, t.ackDone = done, 0
	go func() {
		defer close(done)
		if t.submitAck(ctx, a) {
			t.ackDone = a.Index
		}
	}()
}

func (t *term) submitAck(ctx context.Context, a *raftjournal.MirrorAck) bool {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if res, err := t.m.cfg.Node.Submit(actx, a); err != nil || res.Err != nil {
		if err == nil {
			err = res.Err
		}
		t.m.logger.Warn("reverse mirror ack failed; the next one carries it", "index", a.Index, "error", err)
		return false
	}
	return true
}

func setACL(r *raftjournal.MirrorRecord) bool {
	return len(r.Ops) == 1 && r.Ops[0].Kind == raftjournal.MirrorSetACL
}

// applySetACL applies a setACL entry (not a multi op in ZooKeeper) and then
// the marker. Its expected aversion makes a repeat detectable: a BadVersion
// whose node already has the ACL and aversion the journal gave it is the
// same write made before a crash.
func (t *term) applySetACL(ctx context.Context, r *raftjournal.MirrorRecord) error {
	op := &r.Ops[0]
	acl, version := t.aclFor(op.ACL), op.Version
	if t.fenceTouched() {
		// A fence moved ZooKeeper's aversions off the journal's in this
		// period: the write goes unconditionally (and a repeat is harmless).
		version = -1
	}
	_, err := t.zk.SetACL(ctx, op.Path, acl, version)
	if errors.Is(err, zkclient.ErrBadVersion) {
		have, st, gerr := t.zk.GetACL(ctx, op.Path)
		if gerr == nil && st.Aversion == op.Version+1 && slices.Equal(have, acl) {
			err = nil
		}
	}
	switch {
	case errors.Is(err, zkclient.ErrConnectionLoss):
		return fmt.Errorf("%w: setACL of journal entry %d: %w", errResync, r.Index, err)
	case err != nil:
		t.m.sentry.suspect(op.Path)
		return fmt.Errorf("reversemirror: journal entry %d (zxid %#x) setACL %s: ZooKeeper refused it: %w: ZooKeeper's copy differs from the journal's; the mirror stops here and retries, it never skips an entry", r.Index, r.Zxid, op.Path, err)
	}
	md := &markerData{Start: t.start, StartTime: t.startTime, Index: r.Index, Zxid: fmt.Sprintf("%#x", r.Zxid)}
	st, err := t.zk.SetData(ctx, t.marker, md.encode(), t.markerVersion)
	if err != nil {
		return fmt.Errorf("%w: marker after setACL of journal entry %d: %w", errResync, r.Index, err)
	}
	t.markerVersion, t.applied, t.appliedZxid, t.appliedZkZxid = st.Version, r.Index, r.Zxid, st.Mzxid
	t.sent = r.Index
	t.m.update(func(s *Status) {
		s.Applied, s.Sent, s.AppliedZkZxid = t.applied, t.sent, t.appliedZkZxid
		s.Records++
		s.Ops++
	})
	return nil
}

// zkOp turns a record op into a multi op (a create fenced while the fence
// is asked for).
func (t *term) zkOp(op *raftjournal.MirrorOp) zkclient.Op {
	switch op.Kind {
	case raftjournal.MirrorCreate:
		return zkclient.CreateOp(op.Path, op.Data, t.aclFor(op.ACL), zkMode(op.Mode), time.Duration(op.TTL)*time.Millisecond)
	case raftjournal.MirrorDelete:
		return zkclient.DeleteOp(op.Path, op.Version)
	case raftjournal.MirrorSetData:
		return zkclient.SetDataOp(op.Path, op.Data, op.Version)
	default: // check
		return zkclient.CheckOp(op.Path, op.Version)
	}
}

func maps(m map[int64]int64) map[int64]int64 {
	out := make(map[int64]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
