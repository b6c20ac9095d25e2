package reversemirror

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

// The split-brain sentry: see "Split-brain writes" in the package
// documentation.

// SplitBrainPrefix starts the keys of the journal checkpoints that record
// split-brain writes (replicated, so that a restart or a leader change
// forgets none): SplitBrainPrefix + the ZooKeeper zxid in 16 hex digits + the
// node's path.
const SplitBrainPrefix = "zk2raft/splitbrain/"

// settleParallel bounds the sentry's checks in flight at once.
const settleParallel = 64

// MaxSplitBrainRecords bounds the records kept; past it the sentry records
// one overflow record (path "", op "overflow") that an operator must resolve
// like the others.
const MaxSplitBrainRecords = 1000

// SplitBrainWrite is one write ZooKeeper took around the proxies while the
// journal was primary: ZooKeeper's copy of Path is not what the reverse
// mirror made it.
type SplitBrainWrite struct {
	Path string `json:"path"`
	// Op is what happened to the node in ZooKeeper: create (ZooKeeper has a
	// node the journal does not), delete (ZooKeeper lacks one), setData (its
	// data or version differ), setACL (its aversion differs), overflow.
	Op string `json:"op"`
	// Zxid is ZooKeeper's zxid of the write: the node's czxid (create) or
	// mzxid (setData), its parent's pzxid (delete); 0 when ZooKeeper does
	// not say (setACL stamps no zxid).
	Zxid int64 `json:"zxid"`
	// Session is the ZooKeeper session that wrote, when known; SessionFrom
	// says how it is known: "ephemeralOwner" (an ephemeral's owner), "cons"
	// (the server's connection list showed a session whose last zxid was
	// Zxid), or empty (unknown).
	Session     int64  `json:"session,omitempty"`
	SessionFrom string `json:"session_from,omitempty"`
	// Expected is what the reverse mirror left in ZooKeeper, Found what
	// ZooKeeper has.
	Expected   string      `json:"expected"`
	Found      string      `json:"found"`
	DetectedAt time.Time   `json:"detected_at"`
	Resolved   *Resolution `json:"resolved,omitempty"`
}

// Resolution says how a split-brain write was resolved.
type Resolution struct {
	// By is "verified" (the sentry found ZooKeeper's copy agreeing with the
	// journal again) or "operator" (acknowledged with `cutover resolve`).
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Key is the record's checkpoint key.
func (w *SplitBrainWrite) Key() string { return SplitBrainKey(w.Zxid, w.Path) }

// SplitBrainKey is the checkpoint key of the record of a write at zxid on p.
func SplitBrainKey(zxid int64, p string) string {
	return SplitBrainPrefix + fmt.Sprintf("%016x", uint64(zxid)) + p
}

// String is the record in one line.
func (w *SplitBrainWrite) String() string {
	s := fmt.Sprintf("%s %s at ZooKeeper zxid %#x", w.Op, w.Path, w.Zxid)
	if w.Session != 0 {
		s += fmt.Sprintf(" by session %#x (%s)", w.Session, w.SessionFrom)
	} else {
		s += " by an unknown session"
	}
	return s + fmt.Sprintf(": expected %s, found %s", w.Expected, w.Found)
}

// SplitBrainWrites decodes the records among checkpoints, oldest zxid first.
func SplitBrainWrites(cps []raftjournal.Checkpoint) []SplitBrainWrite {
	var out []SplitBrainWrite
	for _, cp := range cps {
		if !strings.HasPrefix(cp.Key, SplitBrainPrefix) {
			continue
		}
		var w SplitBrainWrite
		if json.Unmarshal(cp.Value, &w) != nil {
			w = SplitBrainWrite{Path: strings.TrimPrefix(cp.Key, SplitBrainPrefix), Op: "unreadable record", Found: string(cp.Value)}
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b SplitBrainWrite) int {
		return cmp.Or(cmp.Compare(a.Zxid, b.Zxid), cmp.Compare(a.Path, b.Path))
	})
	return out
}

// SplitBrainCheckpoint is the entry that records (or updates) w.
func SplitBrainCheckpoint(w *SplitBrainWrite) *raftjournal.SetCheckpoint {
	v, err := json.Marshal(w)
	if err != nil {
		panic(err) // strings, integers and times only
	}
	return &raftjournal.SetCheckpoint{Checkpoint: raftjournal.Checkpoint{Key: w.Key(), Value: v}}
}

// sentry collects the paths to check: from its persistent recursive watch
// on Root, and from a scan of ZooKeeper against the journal whenever events
// may have been lost (a new watch, a reconnect). Paths are only suspects: the
// term checks each between two batches, when ZooKeeper holds exactly what
// the marker says (term.settle).
type sentry struct {
	m        *Mirror
	mu       sync.Mutex
	suspects map[string]bool
	own      map[ownEvent]int // events the mirror's multis will fire, not yet seen
	rescan   bool
	scans    uint64
	events   uint64 // events taken as suspects
	owned    uint64 // events matched to the mirror's own writes

	recorded prometheus.Counter
}

func newSentry(m *Mirror) *sentry {
	s := &sentry{m: m, suspects: map[string]bool{}, own: map[ownEvent]int{}}
	s.recorded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "zk2raft_reverse_mirror_split_brain_writes_total",
		Help: "Split-brain writes (writes ZooKeeper took around the proxies while the journal was primary) this node's reverse mirror recorded.",
	})
	reg := m.cfg.Node.Metrics()
	if err := reg.Register(s.recorded); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if c, ok := are.ExistingCollector.(prometheus.Counter); ok {
				s.recorded = c
			}
		}
	}
	fsm := m.cfg.Node.FSM()
	_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zk2raft_split_brain_writes_unresolved",
		Help: "Split-brain writes recorded in the journal and not resolved (cutover --to finalized refuses while any is).",
	}, func() float64 {
		n := 0
		for _, w := range SplitBrainWrites(fsm.Checkpoints(SplitBrainPrefix)) {
			if w.Resolved == nil {
				n++
			}
		}
		return float64(n)
	}))
	return s
}

// ownEvent is a watch event a write of the mirror fires.
type ownEvent struct {
	path string
	typ  zkwire.EventType
}

// appendOwn adds the event a multi op fires (creates, deletes and setData
// do; check and setACL fire none).
func appendOwn(own []ownEvent, op *raftjournal.MirrorOp) []ownEvent {
	switch op.Kind {
	case raftjournal.MirrorCreate:
		return append(own, ownEvent{op.Path, zkwire.EventNodeCreated})
	case raftjournal.MirrorDelete:
		return append(own, ownEvent{op.Path, zkwire.EventNodeDeleted})
	case raftjournal.MirrorSetData:
		return append(own, ownEvent{op.Path, zkwire.EventNodeDataChanged})
	}
	return own
}

// expectOwn announces the events a multi about to be sent will fire: an
// event that matches one is the mirror's own and is not checked, which
// spares ZooKeeper one read per write under load. The match is by path and
// type only, so a foreign event may take an own event's place; the own event
// then arrives unmatched and is checked, and the check compares state, which
// shows the foreign write whichever event brought the path in. A multi that
// fails is withdrawn (unexpectOwn); one whose outcome is unknown too: if it
// did apply, its events are checked, which costs a read and nothing else.
func (s *sentry) expectOwn(own []ownEvent) {
	if len(own) == 0 {
		return
	}
	s.mu.Lock()
	for _, e := range own {
		s.own[e]++
	}
	s.mu.Unlock()
}

func (s *sentry) unexpectOwn(own []ownEvent) {
	s.mu.Lock()
	for _, e := range own {
		if s.own[e] <= 1 {
			delete(s.own, e)
		} else {
			s.own[e]--
		}
	}
	s.mu.Unlock()
}

// event takes one watch event: the mirror's own, or a suspect.
func (s *sentry) event(ev zkwire.EventType, p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ownEvent{p, ev}
	if n := s.own[k]; n > 0 {
		if n == 1 {
			delete(s.own, k)
		} else {
			s.own[k] = n - 1
		}
		s.owned++
		return
	}
	s.events++
	s.suspects[p] = true
}

func (s *sentry) suspect(p string) {
	s.mu.Lock()
	s.suspects[p] = true
	s.mu.Unlock()
}

func (s *sentry) hasSuspects() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.suspects) > 0
}

func (s *sentry) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.suspects) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.suspects))
	for p := range s.suspects {
		out = append(out, p)
	}
	clear(s.suspects)
	slices.Sort(out)
	return out
}

// inScope reports whether p is watched: under Root, and not under /zookeeper
// (ZooKeeper's own nodes and the marker).
func (m *Mirror) inScope(p string) bool {
	if p == "/zookeeper" || strings.HasPrefix(p, "/zookeeper/") {
		return false
	}
	r := m.cfg.Root
	return r == "/" || p == r || strings.HasPrefix(p, r+"/")
}

// run keeps a watch on Root while the mirror is active, until ctx ends.
func (s *sentry) run(ctx context.Context) {
	for ctx.Err() == nil {
		if s.m.active() {
			if err := s.watch(ctx); err != nil && ctx.Err() == nil {
				s.m.logger.Warn("split-brain sentry: watch on ZooKeeper failed; retrying", "error", err, "retry-in", s.m.cfg.Retry)
				if !sleep(ctx, s.m.cfg.Retry) {
					return
				}
				continue
			}
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// watch holds one persistent recursive watch on Root while the mirror is
// active, and scans when it starts and whenever events may have been lost.
func (s *sentry) watch(ctx context.Context) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := zkclient.Dial(dctx, s.m.cfg.ZooKeeper)
	if err != nil {
		return fmt.Errorf("reversemirror: split-brain sentry: %w", err)
	}
	defer c.Close()
	// A scan in flight ends before the client closes.
	var scans sync.WaitGroup
	ctx, stop := context.WithCancel(dctx)
	defer func() { stop(); scans.Wait() }()
	if err := c.AddWatch(ctx, s.m.cfg.Root, zkwire.AddWatchPersistentRecursive); err != nil {
		return fmt.Errorf("reversemirror: split-brain sentry: addWatch %s: %w", s.m.cfg.Root, err)
	}
	s.mu.Lock()
	s.rescan = true // events from before the watch are lost
	// Announced events may have fired before the watch: forget them (their
	// events, if they come, are checked) so that none waits to hide another.
	clear(s.own)
	s.mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	scanning := make(chan struct{}, 1)
	for {
		s.mu.Lock()
		due := s.rescan
		s.mu.Unlock()
		if due {
			select {
			case scanning <- struct{}{}:
				s.mu.Lock()
				s.rescan = false
				s.mu.Unlock()
				scans.Add(1)
				go func() {
					defer scans.Done()
					defer func() { <-scanning }()
					if err := s.scan(ctx, c); err != nil && ctx.Err() == nil {
						s.m.logger.Warn("split-brain sentry: scan failed; scanning again", "error", err)
						s.mu.Lock()
						s.rescan = true
						s.mu.Unlock()
						sleep(ctx, s.m.cfg.Retry)
					}
				}()
			default:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-c.Events():
			if !ok {
				return fmt.Errorf("reversemirror: split-brain sentry: connection closed: %w", c.Err())
			}
			if ev.Missed {
				s.mu.Lock()
				s.rescan = true
				clear(s.own)
				s.mu.Unlock()
			}
			if ev.Type != zkwire.EventNone && s.m.inScope(ev.Path) {
				s.event(ev.Type, ev.Path)
			}
		case <-tick.C:
			if !s.m.active() {
				return nil
			}
		}
	}
}

// scan walks ZooKeeper's subtree and marks as suspects the nodes that differ
// from the journal's current state and the journal's nodes ZooKeeper lacks.
// Behind the journal (records not yet applied) that is many false suspects,
// each cleared by one exact check; what matters is that nothing that
// differs goes unchecked.
func (s *sentry) scan(ctx context.Context, c *zkclient.Client) error {
	fsm := s.m.cfg.Node.FSM()
	root := s.m.cfg.Root
	// A fence moves aversions on purpose; otherwise a different aversion is
	// a setACL around the proxies (which fires no watch event).
	aversions := !fenceTouchedIn(fsm, fsm.MirrorStatus().Start)
	level := []string{root}
	n := 0
	for len(level) > 0 {
		// ZooKeeper's side of a level, read scanReaders paths at a time
		// (pipelined on the session): one round trip per node in a row
		// would make a million-node scan take many minutes.
		reads := make([]scanRead, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(scanReaders)
		for i, p := range level {
			if !s.m.inScope(p) {
				reads[i].skip = true
				continue
			}
			g.Go(func() error { return reads[i].read(gctx, c, p) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		var next []string
		for i, p := range level {
			r := &reads[i]
			if r.skip {
				continue
			}
			jn, jok := fsm.Node(p)
			if r.gone {
				if jok {
					s.suspect(p)
				}
				continue
			}
			n++
			if !jok || jn.Stat.Version != r.st.Version || !bytes.Equal(jn.Data, r.data) || aversions && jn.Stat.Aversion != r.st.Aversion {
				s.suspect(p)
			}
			if r.kidsGone {
				continue
			}
			if jok {
				zk := make(map[string]struct{}, len(r.kids))
				for _, k := range r.kids {
					zk[k] = struct{}{}
				}
				jk, _, _ := fsm.Children(p, nil)
				for _, k := range jk {
					if _, ok := zk[k]; !ok {
						s.suspect(path.Join(p, k))
					}
				}
			}
			for _, k := range r.kids {
				next = append(next, path.Join(p, k))
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		level = next
	}
	s.mu.Lock()
	s.scans++
	s.mu.Unlock()
	s.m.logger.Info("split-brain sentry: scanned ZooKeeper against the journal", "root", root, "nodes", n)
	return nil
}

// scanReaders is how many nodes the scan reads from ZooKeeper at once.
const scanReaders = 32

// scanRead is ZooKeeper's side of one node in a scan.
type scanRead struct {
	skip, gone, kidsGone bool
	data                 []byte
	st                   znode.WireStat
	kids                 []string
}

func (r *scanRead) read(ctx context.Context, c *zkclient.Client, p string) error {
	data, st, err := c.GetData(ctx, p)
	switch {
	case errors.Is(err, zkclient.ErrNoNode):
		r.gone = true
		return nil
	case err != nil:
		return fmt.Errorf("reversemirror: split-brain scan: read %s: %w", p, err)
	}
	r.data, r.st = data, st
	kids, _, err := c.GetChildren(ctx, p)
	switch {
	case errors.Is(err, zkclient.ErrNoNode):
		r.kidsGone = true
	case err != nil:
		return fmt.Errorf("reversemirror: split-brain scan: children of %s: %w", p, err)
	}
	r.kids = kids
	return nil
}

// expectation is what ZooKeeper should hold for a path, given what the
// mirror has applied.
type expectation struct {
	known    bool // false: no expectation (ZooKeeper may have cleaned it up itself)
	exists   bool
	version  int32 // −1: any
	aversion int32 // −1: any
	data     []byte
	hasData  bool
	cleanup  bool // a missing node is ZooKeeper's own clean-up (ephemeral, container, TTL)
}

func (e expectation) String() string {
	if !e.exists {
		return "no node"
	}
	s := "the node"
	if e.version >= 0 {
		s += fmt.Sprintf(" at version %d", e.version)
	}
	if e.aversion >= 0 {
		s += fmt.Sprintf(", aversion %d", e.aversion)
	}
	if e.hasData {
		s += fmt.Sprintf(", %d bytes", len(e.data))
	}
	return s
}

// firstPending maps each path the records not yet applied touch to the
// first op on it.
func (t *term) firstPending() map[string]*raftjournal.MirrorOp {
	out := map[string]*raftjournal.MirrorOp{}
	for _, r := range t.fsm.MirrorPending(t.applied, 0) {
		for i := range r.Ops {
			op := &r.Ops[i]
			if _, ok := out[op.Path]; !ok && op.Kind != raftjournal.MirrorCloseSession {
				out[op.Path] = op
			}
		}
	}
	return out
}

// expect derives ZooKeeper's expected copy of p: the state before the first
// record not yet applied that touches p (pending, from firstPending), or the
// journal's node when none does. Exact between two batches, when ZooKeeper
// holds every record up to t.applied and nothing after.
func (t *term) expect(p string, pending map[string]*raftjournal.MirrorOp, anyAversion bool) expectation {
	if op := pending[p]; op != nil {
		e := expectation{known: true, exists: true, version: -1, aversion: -1}
		switch op.Kind {
		case raftjournal.MirrorCreate:
			e.exists = false
		case raftjournal.MirrorDelete:
			e.version = op.Version
			e.cleanup = op.Cleanup
		case raftjournal.MirrorSetData, raftjournal.MirrorCheck:
			e.version = op.Version
		case raftjournal.MirrorSetACL:
			if !anyAversion {
				e.aversion = op.Version
			}
		}
		return e
	}
	n, ok := t.fsm.Node(p)
	if !ok {
		return expectation{known: true, version: -1, aversion: -1}
	}
	e := expectation{known: true, exists: true, version: n.Stat.Version, aversion: n.Stat.Aversion, data: n.Data, hasData: true,
		cleanup: n.Stat.EphemeralOwner != 0}
	if anyAversion {
		e.aversion = -1
	}
	return e
}

// check compares ZooKeeper's copy of p with the expectation; nil when they
// agree.
func (t *term) check(ctx context.Context, p string, pending map[string]*raftjournal.MirrorOp, anyAversion bool) (*SplitBrainWrite, error) {
	e := t.expect(p, pending, anyAversion)
	data, st, err := t.zk.GetData(ctx, p)
	zkExists := err == nil
	if err != nil && !errors.Is(err, zkclient.ErrNoNode) {
		return nil, fmt.Errorf("reversemirror: split-brain check of %s: %w", p, err)
	}
	w := &SplitBrainWrite{Path: p, Expected: e.String(), DetectedAt: time.Now().UTC()}
	switch {
	case !e.known:
		return nil, nil
	case e.exists && !zkExists:
		if e.cleanup {
			// An ephemeral, container or TTL node: ZooKeeper deletes those
			// itself (an expired session, its ContainerManager). The mirror
			// skips its own delete of it (Status.CleanupGone).
			return nil, nil
		}
		w.Op, w.Found = "delete", "no node"
		if pst, ok, err := t.zk.Exists(ctx, path.Dir(p)); err == nil && ok {
			w.Zxid = pst.Pzxid
		}
	case !e.exists && zkExists:
		w.Op, w.Zxid = "create", st.Czxid
		w.Found = fmt.Sprintf("a node created at zxid %#x, version %d, %d bytes", st.Czxid, st.Version, len(data))
		if st.EphemeralOwner != 0 {
			w.Session, w.SessionFrom = st.EphemeralOwner, "ephemeralOwner"
		}
	case e.exists && zkExists:
		switch {
		case e.version >= 0 && st.Version != e.version, e.hasData && !bytes.Equal(data, e.data):
			w.Op, w.Zxid = "setData", st.Mzxid
			w.Found = fmt.Sprintf("version %d, %d bytes, changed at zxid %#x", st.Version, len(data), st.Mzxid)
		case e.aversion >= 0 && st.Aversion != e.aversion:
			w.Op = "setACL"
			w.Found = fmt.Sprintf("aversion %d", st.Aversion)
		default:
			return nil, nil
		}
	default:
		return nil, nil
	}
	if w.Session == 0 && w.Zxid != 0 {
		w.Session = t.attribute(ctx, w.Zxid)
		if w.Session != 0 {
			w.SessionFrom = "cons"
		}
	}
	return w, nil
}

// attribute looks for the session that wrote zxid in the servers'
// connection lists (cons: a connection's lzxid is the zxid of its last
// reply). Best effort: the session may have moved on, or gone.
func (t *term) attribute(ctx context.Context, zxid int64) int64 {
	want := "lzxid=0x" + strconv.FormatInt(zxid, 16)
	for _, h := range t.m.cfg.ZooKeeper.Hosts {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		out, err := zkclient.FourLetterWord(cctx, h, "cons")
		cancel()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			i := strings.Index(line, want)
			if i < 0 || (len(line) > i+len(want) && line[i+len(want)] != ',' && line[i+len(want)] != ')') {
				continue
			}
			j := strings.Index(line, "sid=0x")
			if j < 0 {
				continue
			}
			hex := line[j+len("sid=0x"):]
			if k := strings.IndexAny(hex, ",)"); k >= 0 {
				hex = hex[:k]
			}
			if id, err := strconv.ParseUint(hex, 16, 64); err == nil && id != 0 {
				return int64(id)
			}
		}
	}
	return 0
}

// settle checks the sentry's suspects, and now and then the unresolved
// records, between two batches (no multi of this mirror in flight).
func (t *term) settle(ctx context.Context) {
	s := t.m.sentry
	if time.Now().Before(t.settleAfter) {
		return // a check failed: ZooKeeper or the journal is not answering
	}
	paths := s.take()
	verify := time.Since(t.verifiedAt) >= t.m.cfg.Verify
	if len(paths) == 0 && !verify {
		return
	}
	pending, anyAversion := t.firstPending(), t.fenceTouched()
	// The checks go out together (the client pipelines them): under load
	// every path the mirror writes comes back as a suspect, and one round
	// trip per path would halve the mirror's pace.
	found := make([]*SplitBrainWrite, len(paths))
	errs := make([]error, len(paths))
	var eg errgroup.Group
	eg.SetLimit(settleParallel)
	for i, p := range paths {
		eg.Go(func() error {
			found[i], errs[i] = t.check(ctx, p, pending, anyAversion)
			return nil
		})
	}
	eg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			s.suspect(paths[i])
			if failed++; failed == 1 {
				t.m.logger.Warn("split-brain sentry: checks failed; retrying", "path", paths[i], "error", err, "retry-in", t.m.cfg.Retry)
			}
		}
	}
	if failed > 0 {
		t.settleAfter = time.Now().Add(t.m.cfg.Retry)
	}
	for _, w := range found {
		if w != nil {
			t.record(ctx, w)
		}
	}
	if !verify {
		return
	}
	t.verifiedAt = time.Now()
	for _, w := range SplitBrainWrites(t.fsm.Checkpoints(SplitBrainPrefix)) {
		if w.Resolved != nil || w.Op == "overflow" {
			continue
		}
		again, err := t.check(ctx, w.Path, pending, anyAversion)
		if err != nil || again != nil {
			continue
		}
		w.Resolved = &Resolution{By: "verified", At: time.Now().UTC(), Note: "ZooKeeper's copy agrees with the journal again"}
		if err := t.submit(ctx, SplitBrainCheckpoint(&w)); err != nil {
			t.m.logger.Warn("split-brain sentry: recording a resolution failed; retrying later", "path", w.Path, "error", err)
			continue
		}
		t.m.logger.Info("split-brain write resolved: ZooKeeper's copy agrees with the journal again", "path", w.Path, "zxid", fmt.Sprintf("%#x", w.Zxid))
	}
}

// record writes a split-brain record into the journal, once.
func (t *term) record(ctx context.Context, w *SplitBrainWrite) {
	if _, ok := t.fsm.Checkpoint(w.Key()); ok {
		return
	}
	if n := len(t.fsm.Checkpoints(SplitBrainPrefix)); n >= MaxSplitBrainRecords {
		over := &SplitBrainWrite{Op: "overflow", Zxid: 0, Expected: fmt.Sprintf("at most %d records", MaxSplitBrainRecords),
			Found: "more split-brain writes than the journal records; the log lines name each", DetectedAt: time.Now().UTC()}
		if _, ok := t.fsm.Checkpoint(over.Key()); !ok {
			_ = t.submit(ctx, SplitBrainCheckpoint(over))
		}
		t.m.logger.Error("SPLIT-BRAIN WRITE (not recorded: too many records): ZooKeeper took a write around the proxies while the journal is primary", "write", w.String())
		t.m.sentry.recorded.Inc()
		return
	}
	if err := t.submit(ctx, SplitBrainCheckpoint(w)); err != nil {
		t.m.logger.Warn("split-brain sentry: recording failed; checking again", "path", w.Path, "error", err, "retry-in", t.m.cfg.Retry)
		t.m.sentry.suspect(w.Path)
		t.settleAfter = time.Now().Add(t.m.cfg.Retry)
		return
	}
	t.m.sentry.recorded.Inc()
	t.m.update(func(s *Status) { s.SplitBrain++ })
	t.m.logger.Error("SPLIT-BRAIN WRITE: ZooKeeper took a write around the proxies while the journal is primary; it is not in the journal",
		"path", w.Path, "op", w.Op, "zxid", fmt.Sprintf("%#x", w.Zxid), "session", fmt.Sprintf("%#x", w.Session), "session-from", w.SessionFrom,
		"expected", w.Expected, "found", w.Found)
}

// submit commits one command through this (leading) node.
func (t *term) submit(ctx context.Context, c raftjournal.Command) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	res, err := t.m.cfg.Node.Submit(sctx, c)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	return err
}
