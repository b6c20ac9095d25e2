package raftjournal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

// Config configures an FSM.
type Config struct {
	// Logger receives the FSM's few log lines (skipped ignorable entries,
	// restores). Nil drops them.
	Logger *slog.Logger
	// CompressSnapshots stores FSM snapshot bodies zstd-compressed.
	CompressSnapshots bool
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config { return Config{} }

// Validate reports whether the configuration can be used.
func (c Config) Validate() error { return nil }

// FSM is the journal's replicated state machine: the znode tree with ZooKeeper's
// semantics and digest, the session table, the zxid counter, the migration phase
// and the importer's checkpoints. It implements raft.FSM and raft.BatchingFSM.
//
// Apply is called from one goroutine (raft's FSM goroutine); the read methods may
// be called from any number of goroutines concurrently with it.
type FSM struct {
	mu       sync.RWMutex
	s        *state
	watches  *watchManager
	logger   *slog.Logger
	compress bool

	// scratch buffers reused across applies (guarded by mu)
	undo    []undoRec
	imports []importRec

	// lastZxid mirrors s.lastZxid for lock-free readers (the protocol
	// server's reply headers); restores counts snapshot restores.
	lastZxid atomic.Int64
	restores atomic.Uint64
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// state is everything that is replicated. Restore builds a new one and swaps it in.
type state struct {
	t        *tree
	sessions map[int64]*session

	epoch         uint32 // the journal's zxid epoch; 0 until the first journal zxid
	counter       uint32 // low half of the last journal zxid
	lastZxid      int64  // largest zxid applied, journal-minted or from the source
	maxSourceZxid int64  // largest zxid seen from ZooKeeper (import or mirror)
	phase         Phase
	appliedIndex  uint64

	checkpoints map[string][]byte
	digests     digestLog
	mirror      mirrorState // the reverse mirror's outbox and cursor (reverse.go)

	// sourceSessions are ZooKeeper's sessions mirrored in shadow (id →
	// negotiated timeout), adopted into sessions at the change to primary.
	sourceSessions map[int64]int32

	// zmap is the journal → ZooKeeper zxid map of the primary periods
	// (rollback.go), for the proxies' rewrite of clients' zxids at a rollback.
	zmap []ZxidPeriod
}

type session struct {
	timeoutMs int32
}

func newState() *state {
	return &state{
		t:           newTree(),
		sessions:    make(map[int64]*session),
		phase:       PhaseShadow,
		checkpoints: make(map[string][]byte),

		sourceSessions: make(map[int64]int32),
	}
}

// NewFSM returns an FSM holding a fresh ZooKeeper tree (the root, /zookeeper,
// /zookeeper/quota and /zookeeper/config) in the shadow phase.
func NewFSM(cfg Config) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{s: newState(), watches: newWatchManager(), logger: logger, compress: cfg.CompressSnapshots}, nil
}

// Apply implements raft.FSM. It returns a *Result. An entry this node cannot
// apply (unknown type without the ignorable flag, newer version, undecodable)
// panics with a *FatalEntryError: stopping is better than diverging.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res, err := f.applyLocked(l.Index, l.Data)
	if err != nil {
		panic(err)
	}
	return res
}

// ApplyBatch implements raft.BatchingFSM: one lock acquisition for the batch.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		res, err := f.applyLocked(l.Index, l.Data)
		if err != nil {
			panic(err)
		}
		out[i] = res
	}
	return out
}

// ApplyEntry applies one encoded entry at a log index, as Apply does, but returns
// a *FatalEntryError instead of panicking. It is for embedding without raft and
// for tests; a node must treat the error as fatal.
func (f *FSM) ApplyEntry(index uint64, entry []byte) (*Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(index, entry)
}

func (f *FSM) applyLocked(index uint64, entry []byte) (*Result, error) {
	s := f.s
	t := s.t
	t.collect = f.watches.active()
	t.events = t.events[:0]
	t.evZxid = 0
	res := &Result{Index: index}
	if len(entry) < entryHeaderSize {
		return nil, &FatalEntryError{Index: index, Err: fmt.Errorf("%w: %d-byte entry has no header", ErrCorruptEntry, len(entry))}
	}
	typ := EntryType(entry[0])
	if typ == EntryImportBatch {
		if err := f.applyImport(entry, res); err != nil {
			return nil, &FatalEntryError{Index: index, Type: typ, Err: err}
		}
	} else {
		cmd, err := Decode(entry)
		if err != nil {
			if typ&EntryIgnorable == 0 {
				return nil, &FatalEntryError{Index: index, Type: typ, Err: err}
			}
			f.logger.Warn("skipping ignorable log entry", "index", index, "type", typ.String(), "error", err)
			res.Err = ErrIgnoredEntry
		} else {
			f.applyCommand(cmd, index, res)
			s.recordMirror(cmd, index, res)
		}
	}
	s.appliedIndex = index
	f.lastZxid.Store(s.lastZxid)
	t.acls.commit()
	if len(t.events) > 0 {
		f.watches.dispatch(t.events)
		t.events = t.events[:0]
	}
	return res, nil
}

func (f *FSM) applyCommand(cmd Command, index uint64, res *Result) {
	s := f.s
	switch c := cmd.(type) {
	case *SourceTxn:
		if s.phase != PhaseShadow {
			res.Err = fmt.Errorf("%w: mirrored ZooKeeper txn %#x in phase %s", ErrWrongPhase, c.Zxid, s.phase)
			return
		}
		if err := validateSourceTxn(c); err != nil {
			res.Err = err
			return
		}
		s.forgetClosedSources(c)
		res.Changed = f.applySourceTxn(c)
		res.Zxid = c.Zxid
	case *SourceBatch:
		if s.phase != PhaseShadow {
			res.Err = fmt.Errorf("%w: %d mirrored ZooKeeper txns in phase %s", ErrWrongPhase, len(c.Txns), s.phase)
			return
		}
		var bad []error
		for _, tx := range c.Txns {
			if err := validateSourceTxn(tx); err != nil {
				bad = append(bad, err)
				continue
			}
			s.forgetClosedSources(tx)
			res.Changed += f.applySourceTxn(tx)
			res.Zxid = max(res.Zxid, tx.Zxid)
		}
		if len(bad) > 0 {
			res.Err = fmt.Errorf("%d of %d txns refused: %w", len(bad), len(c.Txns), errors.Join(bad...))
		}
	case *Write:
		f.applyWrite(c, res)
	case *CreateSession:
		s.applyCreateSession(c, index, res)
	case *CloseSession:
		s.applyCloseSession(c, res)
	case *ExpireSessions:
		s.applyExpireSessions(c, res)
	case *CleanupNodes:
		s.applyCleanup(c, res)
	case *SetPhase:
		s.applySetPhase(c, res)
	case *SourceSessions:
		s.applySourceSessions(c, res)
	case *SetCheckpoint:
		if c.Key == "" {
			res.Err = fmt.Errorf("%w: checkpoint with an empty key", ErrBadCommand)
			return
		}
		s.setCheckpoint(&c.Checkpoint)
	case *MirrorAck:
		s.applyMirrorAck(c, res)
	case *CompactTombstones:
		for p, tb := range s.t.tombs {
			if tb.zxid <= c.UpToZxid {
				delete(s.t.tombs, p)
				res.Changed++
			}
		}
	default:
		res.Err = fmt.Errorf("%w: %T", ErrBadCommand, cmd)
	}
}

// mint returns the next journal zxid: (epoch << 32) | counter, in an epoch above
// every source epoch seen, so journal zxids continue ZooKeeper's sequence.
func (s *state) mint() int64 {
	if src := uint32(uint64(s.maxSourceZxid) >> 32); s.epoch <= src {
		s.epoch, s.counter = src+1, 0
	}
	if s.counter == math.MaxUint32 {
		s.epoch, s.counter = s.epoch+1, 0
	}
	s.counter++
	z := int64(uint64(s.epoch)<<32 | uint64(s.counter))
	s.lastZxid = max(s.lastZxid, z)
	s.t.evZxid = z
	return z
}

// applySourceTxn merges a validated mirrored txn and keeps the digest history
// true to ZooKeeper's (ZooKeeper's digest at a zxid Z is that of its tree
// right after txn Z: every txn up to Z applied, none after it):
//
//   - The digest at the txn's zxid is logged only when it is the newest source
//     zxid yet, and the txn holds no state newer than itself: a txn arriving
//     late (a retry, a repair) is merged, but the tree then holds newer txns
//     too; and a create whose parent registers were read back later (its
//     ParentPzxid above its zxid) brings the parent's state as of that zxid,
//     which also counts as seen, so that no digest below it is logged.
//   - A late txn that changes the tree proves every entry logged at a higher
//     zxid wrong: those were logged without it. They are dropped. The tap's
//     queue keeps ZooKeeper's commit order per connection only, so a txn of
//     one connection can follow a higher zxid of another; a txn delivered
//     again changes nothing and drops nothing.
func (f *FSM) applySourceTxn(c *SourceTxn) int {
	s := f.s
	s.t.evZxid = c.Zxid
	n := s.t.applySource(c)
	seen := c.Zxid
	for i := range c.Ops {
		seen = max(seen, c.Ops[i].ParentPzxid)
	}
	newest := c.Zxid > s.maxSourceZxid && seen == c.Zxid
	late := c.Zxid < s.maxSourceZxid
	s.observeSourceZxid(seen)
	switch {
	case newest:
		s.logDigest(c.Zxid)
	case late && n > 0:
		f.dropDigestsAbove(c.Zxid, "a late mirrored txn changed the tree", "txn", describeSourceTxn(c))
	}
	return n
}

// dropDigestsAbove drops the digests logged above zxid z, after a change whose
// state is as of z was applied late (a mirrored txn behind newer ones, or an
// import: a repair after lost mirrors, typically). ZooKeeper had that change
// at every zxid from z on, and the journal did not when it logged them. cause
// and attrs say what changed, for the log.
func (f *FSM) dropDigestsAbove(z int64, cause string, attrs ...any) {
	dropped := f.s.digests.dropAbove(z)
	if len(dropped) == 0 {
		return
	}
	f.logger.Warn(cause+": the digests logged at higher zxids lack it and are dropped from the history",
		append([]any{"zxid", fmt.Sprintf("%#x", z), "dropped-from", fmt.Sprintf("%#x", dropped[0].Zxid),
			"dropped-to", fmt.Sprintf("%#x", dropped[len(dropped)-1].Zxid), "entries", len(dropped),
			"dropped-digest", dropped[0].Digest.String()}, attrs...)...)
}

// describeSourceTxn names a txn's first op for the log.
func describeSourceTxn(c *SourceTxn) string {
	if len(c.Ops) == 0 {
		return "empty"
	}
	op := &c.Ops[0]
	d := op.Kind.String() + " " + op.Path
	if op.Kind == SourceCloseSession {
		d += fmt.Sprintf("%#x %v", op.Session, op.Paths)
	}
	if len(c.Ops) > 1 {
		d += fmt.Sprintf(" (+%d ops)", len(c.Ops)-1)
	}
	return d
}

func (s *state) observeSourceZxid(z int64) {
	s.maxSourceZxid = max(s.maxSourceZxid, z)
	s.lastZxid = max(s.lastZxid, z)
}

// digestLogInterval and digestLogLimit are ZooKeeper's DIGEST_LOG_INTERVAL and
// DIGEST_LOG_LIMIT: the digest is logged after txns whose zxid is a multiple of
// 128, and the last 1024 entries are kept.
const (
	digestLogInterval = 128
	digestLogLimit    = 1024
)

// DigestEntry is the tree digest right after the txn with this zxid.
type DigestEntry struct {
	Zxid   int64
	Digest znode.Digest
}

type digestLog struct{ entries []DigestEntry }

func (l *digestLog) add(e DigestEntry) {
	l.entries = append(l.entries, e)
	if len(l.entries) >= 2*digestLogLimit {
		l.entries = slices.Clone(l.entries[len(l.entries)-digestLogLimit:])
	}
}

// dropAbove removes the entries above zxid and returns them.
func (l *digestLog) dropAbove(zxid int64) []DigestEntry {
	i := len(l.entries)
	for i > 0 && l.entries[i-1].Zxid > zxid {
		i--
	}
	if i == len(l.entries) {
		return nil
	}
	dropped := slices.Clone(l.entries[i:])
	l.entries = l.entries[:i]
	return dropped
}

func (l *digestLog) list() []DigestEntry {
	e := l.entries
	if len(e) > digestLogLimit {
		e = e[len(e)-digestLogLimit:]
	}
	return slices.Clone(e)
}

func (s *state) logDigest(zxid int64) {
	if zxid%digestLogInterval == 0 {
		s.digests.add(DigestEntry{Zxid: zxid, Digest: s.t.digest})
	}
}

// maxSizeHint bounds ImportBatch.SizeHint, so that a corrupt hint cannot make
// every node allocate a huge table.
const maxSizeHint = 1 << 28

// importRec is one node of an import batch, its fields still pointing into the
// entry.
type importRec struct {
	path, data []byte
	dataNil    bool
	acl        []byte
	st         znode.Stat
}

// applyImport applies an ImportBatch straight from its encoding: paths and data
// are copied into two arenas per batch and nodes into one slab, so a node costs no
// allocation of its own (see "Memory" in the package documentation).
func (f *FSM) applyImport(entry []byte, res *Result) error {
	if v := entry[1]; v != entryVersion {
		return fmt.Errorf("%w: %s version %d (this build reads %d)", ErrUnsupportedVersion, EntryImportBatch, v, entryVersion)
	}
	s := f.s
	d := &decoder{b: entry[entryHeaderSize:]}
	flags := d.byte1("flags")
	if flags&^3 != 0 {
		d.fail(fmt.Sprintf("unknown flags %#x", flags))
	}
	var cp *Checkpoint
	if flags&1 != 0 {
		cp = &Checkpoint{Key: d.string("checkpoint key"), Value: d.bytes("checkpoint value")}
	}
	var hint uint64
	if flags&2 != 0 {
		hint = d.uvarint("size hint")
	}
	n := d.count("node count", minImportNodeSize)
	recs := f.imports[:0]
	pathTotal, dataTotal := 0, 0
	for i := 0; i < n && d.err == nil; i++ {
		var r importRec
		r.path = d.rawString("path")
		r.data, r.dataNil = d.rawBytes("data")
		r.acl = d.rawACL()
		d.stat(&r.st)
		pathTotal += len(r.path)
		dataTotal += len(r.data)
		recs = append(recs, r)
	}
	f.imports = recs[:0]
	if err := d.finish(); err != nil {
		return fmt.Errorf("%s: %w", EntryImportBatch, err)
	}
	if s.phase != PhaseShadow {
		res.Err = fmt.Errorf("%w: import in phase %s", ErrWrongPhase, s.phase)
		return nil
	}

	pathArena := make([]byte, 0, pathTotal)
	for i := range recs {
		pathArena = append(pathArena, recs[i].path...)
	}
	// The arena is never written again, so the string may share its bytes.
	paths := unsafe.String(unsafe.SliceData(pathArena), len(pathArena))
	off := 0
	for i := range recs {
		p := paths[off : off+len(recs[i].path)]
		off += len(recs[i].path)
		if err := validatePath(p); err != nil {
			res.Err = fmt.Errorf("%w: import node %d: %v", ErrBadCommand, i, err)
			return nil
		}
	}
	t := s.t
	// A table far smaller than the import is rebuilt at its final size once
	// (capacity is not state: replicas may differ in it freely).
	if hint > t.sizedFor && hint > uint64(8*len(t.nodes)) && hint <= maxSizeHint {
		t.sizedFor = hint
		grown := make(map[string]*node, hint+uint64(len(t.nodes)))
		for p, n := range t.nodes {
			grown[p] = n
		}
		t.nodes = grown
	}
	dataArena := make([]byte, 0, dataTotal)
	slab := make([]node, len(recs))
	t.evZxid = -1
	off = 0
	maxZxid := int64(0)
	// changedFrom is the least zxid of a change this batch brought: the
	// digests logged above it lacked that change (see dropDigestsAbove).
	changedFrom := int64(math.MaxInt64)
	lastACL := aclID(0)
	var lastParentPath string
	var lastParent *node
	for i := range recs {
		r := &recs[i]
		o := obs{path: paths[off : off+len(r.path)], st: r.st, hasData: true, slab: &slab[i]}
		off += len(r.path)
		if !r.dataNil {
			start := len(dataArena)
			dataArena = append(dataArena, r.data...)
			o.data = dataArena[start:len(dataArena):len(dataArena)]
		}
		// Most nodes share their predecessor's ACL list: skip the cache lookup.
		if lastACL != 0 && string(r.acl) == t.acls.lists[lastACL].key {
			t.acls.ref(lastACL)
			o.acl = lastACL
		} else {
			o.acl = t.acls.acquireKey(r.acl)
			lastACL = o.acl
		}
		maxZxid = max(maxZxid, r.st.Czxid, r.st.Mzxid, r.st.Pzxid)
		// The common case of a fresh journal, inlined: nothing pending, nothing
		// deleted, the node new, its parent visible and older (and usually the
		// previous node's parent too, in parent-first order).
		if c := o.st.Czxid; c > 0 && len(t.tombs) == 0 && len(t.ghosts) == 0 && !isSystemNode(o.path) {
			pp := znode.Parent(o.path)
			if pp != lastParentPath || lastParent == nil {
				lastParentPath, lastParent = pp, t.nodes[pp]
			}
			if lastParent != nil && lastParent.czxid <= c {
				if _, exists := t.nodes[o.path]; !exists {
					n := o.slab
					*n = node{
						data: o.data, czxid: c, mzxid: o.st.Mzxid, ctime: o.st.Ctime, mtime: o.st.Mtime,
						owner: o.st.EphemeralOwner, pzxid: o.st.Pzxid, version: o.st.Version,
						cversion: o.st.Cversion, aversion: o.st.Aversion, acl: o.acl,
					}
					t.insertUnder(o.path, n, lastParent)
					res.Changed++
					changedFrom = min(changedFrom, max(c, o.st.Mzxid, o.st.Pzxid))
					continue
				}
			}
		}
		lastParentPath, lastParent = "", nil // observe may remove or replace nodes
		if t.observe(&o) {
			res.Changed++
			changedFrom = min(changedFrom, max(r.st.Czxid, r.st.Mzxid, r.st.Pzxid))
		}
	}
	f.dropDigestsAbove(changedFrom, "an import changed the tree")
	s.observeSourceZxid(maxZxid)
	if cp != nil {
		s.setCheckpoint(cp)
	}
	return nil
}

func (s *state) setCheckpoint(cp *Checkpoint) {
	if cp.Value == nil {
		delete(s.checkpoints, cp.Key)
		return
	}
	s.checkpoints[cp.Key] = cp.Value
}

func (s *state) applySetPhase(c *SetPhase, res *Result) {
	if !c.Phase.valid() {
		res.Err = fmt.Errorf("%w: phase %d", ErrBadCommand, c.Phase)
		return
	}
	if c.Guard != nil {
		if v, ok := s.checkpoints[c.Guard.Key]; !ok || !bytes.Equal(v, c.Guard.Value) {
			res.Err = fmt.Errorf("%w: checkpoint %q holds %q, want %q", ErrGuardFailed, c.Guard.Key, v, c.Guard.Value)
			return
		}
	}
	from, to := s.phase, c.Phase
	switch {
	case from == to:
		return
	case from == PhaseShadow && to == PhasePrimary, from == PhasePrimary && to == PhaseFinalized:
	case from == PhasePrimary && to == PhaseShadow && c.Rollback:
		if n := len(s.mirror.outbox); n > 0 {
			res.Err = fmt.Errorf("%w: rollback while the reverse mirror owes ZooKeeper %d entries (from index %d)",
				ErrPhaseTransition, n, s.mirror.outbox[0].Index)
			return
		}
	default:
		res.Err = fmt.Errorf("%w: %s → %s (rollback flag %t)", ErrPhaseTransition, from, to, c.Rollback)
		return
	}
	if from == PhaseShadow {
		res.Purged = s.t.purgePending()
		timeout := c.AdoptTimeoutMs
		if timeout <= 0 {
			timeout = DefaultAdoptTimeoutMs
		}
		// ZooKeeper's sessions mirrored by the proxies keep their negotiated
		// timeouts; owners of ephemerals nobody mirrored get the adopt timeout.
		for id, ms := range s.sourceSessions {
			if s.sessions[id] == nil {
				s.sessions[id] = &session{timeoutMs: ms}
			}
		}
		clear(s.sourceSessions)
		for owner := range s.t.ephemerals {
			if s.sessions[owner] == nil {
				s.sessions[owner] = &session{timeoutMs: timeout}
			}
		}
		// Fix the epoch now, so that status shows where journal zxids start.
		if src := uint32(uint64(s.maxSourceZxid) >> 32); s.epoch <= src {
			s.epoch, s.counter = src+1, 0
		}
		s.zxidMapStart()
	}
	if from == PhasePrimary && to == PhaseShadow {
		s.applyRollback(res)
	}
	s.mirrorPhaseChange(from, to, res.Index, c.Time)
	s.phase = to
}

// applySourceSessions records and forgets mirrored ZooKeeper sessions (shadow
// only). Open of a known session updates its timeout; Closed of an unknown one
// is a no-op: proxies may report the same event twice.
func (s *state) applySourceSessions(c *SourceSessions, res *Result) {
	if s.phase != PhaseShadow {
		res.Err = fmt.Errorf("%w: mirrored ZooKeeper sessions in phase %s", ErrWrongPhase, s.phase)
		return
	}
	for _, ss := range c.Open {
		if ss.ID == 0 || ss.TimeoutMs <= 0 {
			res.Err = fmt.Errorf("%w: mirrored session %#x with timeout %d ms", ErrBadCommand, ss.ID, ss.TimeoutMs)
			return
		}
	}
	for _, ss := range c.Open {
		if old, ok := s.sourceSessions[ss.ID]; !ok || old != ss.TimeoutMs {
			res.Changed++
		}
		s.sourceSessions[ss.ID] = ss.TimeoutMs
	}
	for _, id := range c.Closed {
		if _, ok := s.sourceSessions[id]; ok {
			delete(s.sourceSessions, id)
			res.Changed++
		}
	}
}

// forgetClosedSources drops the mirrored sessions a mirrored closeSession ends.
func (s *state) forgetClosedSources(tx *SourceTxn) {
	for i := range tx.Ops {
		if tx.Ops[i].Kind == SourceCloseSession {
			delete(s.sourceSessions, tx.Ops[i].Session)
		}
	}
}

// purgePending drops every pending record and tombstone: once the journal is
// primary nothing more comes from ZooKeeper to resolve them.
func (t *tree) purgePending() int {
	n := len(t.ghosts)
	for _, g := range t.ghosts {
		t.acls.releaseLater(g.n.acl)
	}
	clear(t.ghosts)
	clear(t.tombs)
	return n
}

// errNoNode builds the error of a read on a missing path.
func errNoNode(op OpKind, path string) error {
	return &OpError{Op: op, Path: path, Code: CodeNoNode}
}

// Get returns a node's data and stat, setting a one-shot data watch when w is not
// nil and the node exists (getData).
func (f *FSM) Get(path string, w *Watcher) ([]byte, znode.WireStat, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, errNoNode(OpGetData, path)
	}
	if w != nil {
		f.watches.add(w, path, watchData, modeStandard)
	}
	return cloneData(n.data), n.wireStat(), nil
}

// Exists returns a node's stat and whether it exists, setting a one-shot watch
// when w is not nil whether or not it exists (it then fires NodeCreated).
func (f *FSM) Exists(path string, w *Watcher) (znode.WireStat, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if w != nil {
		f.watches.add(w, path, watchData, modeStandard)
	}
	n := f.s.t.nodes[path]
	if n == nil {
		return znode.WireStat{}, false
	}
	return n.wireStat(), true
}

// Children returns a node's child names, sorted, and its stat, setting a
// one-shot child watch when w is not nil and the node exists (getChildren2).
func (f *FSM) Children(path string, w *Watcher) ([]string, znode.WireStat, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, errNoNode(OpGetChildren, path)
	}
	if w != nil {
		f.watches.add(w, path, watchChild, modeStandard)
	}
	return sortedChildren(n), n.wireStat(), nil
}

// GetACL returns a node's ACL list and stat.
func (f *FSM) GetACL(path string) ([]znode.ACL, znode.WireStat, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, znode.WireStat{}, errNoNode(OpGetACL, path)
	}
	return slices.Clone(f.s.t.acls.get(n.acl)), n.wireStat(), nil
}

// Node returns a copy of a node with its persisted stat, as a snapshot holds it.
func (f *FSM) Node(path string) (*znode.Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.s.t.nodes[path]
	if n == nil {
		return nil, false
	}
	zn := f.s.t.toZnode(path, n)
	zn.Data = cloneData(zn.Data)
	zn.ACL = slices.Clone(zn.ACL)
	return zn, true
}

// AddWatch sets a persistent watch on path, recursive or not (addWatch). It does
// not need the node to exist.
func (f *FSM) AddWatch(path string, w *Watcher, recursive bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if recursive {
		f.watches.add(w, path, watchData, modeRecursive)
		return
	}
	f.watches.add(w, path, watchData, modePersistent)
	f.watches.add(w, path, watchChild, modePersistent)
}

// Digest returns ZooKeeper's tree digest of the visible tree.
func (f *FSM) Digest() znode.Digest {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.t.digest
}

// DigestHistory returns the logged digests, oldest first: entries only for zxids
// that are multiples of 128, the last 1024 of them (ZooKeeper's `hash` command).
func (f *FSM) DigestHistory() []DigestEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.digests.list()
}

// NodeCount returns the number of visible nodes, the system nodes included.
func (f *FSM) NodeCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.s.t.nodes)
}

// Phase returns the migration phase.
func (f *FSM) Phase() Phase {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.phase
}

// Checkpoint returns the importer's checkpoint value for key.
func (f *FSM) Checkpoint(key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.s.checkpoints[key]
	return cloneData(v), ok
}

// FSMStatus summarizes the replicated state.
type FSMStatus struct {
	AppliedIndex  uint64
	Phase         Phase
	Epoch         uint32 // journal zxid epoch (0 before the first journal zxid)
	LastZxid      int64  // largest zxid applied, from either side
	JournalZxid   int64  // the last zxid the journal minted
	MaxSourceZxid int64  // the largest ZooKeeper zxid seen
	Nodes         int
	Digest        znode.Digest
	Sessions      int
	// SourceSessions counts ZooKeeper's sessions mirrored in shadow.
	SourceSessions int
	Ephemerals     int
	Pending        int // unresolved mirror records (see the package documentation)
	Tombstones     int
	Watches        int
}

// Status returns a summary of the state.
func (f *FSM) Status() FSMStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	eph := 0
	for _, set := range s.t.ephemerals {
		eph += len(set)
	}
	st := FSMStatus{
		AppliedIndex:   s.appliedIndex,
		Phase:          s.phase,
		Epoch:          s.epoch,
		LastZxid:       s.lastZxid,
		MaxSourceZxid:  s.maxSourceZxid,
		Nodes:          len(s.t.nodes),
		Digest:         s.t.digest,
		Sessions:       len(s.sessions),
		SourceSessions: len(s.sourceSessions),
		Ephemerals:     eph,
		Pending:        len(s.t.ghosts),
		Tombstones:     len(s.t.tombs),
		Watches:        f.watches.count(),
	}
	if s.counter != 0 {
		st.JournalZxid = int64(uint64(s.epoch)<<32 | uint64(s.counter))
	}
	return st
}

func cloneData(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
