package raftjournal

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

// FSM snapshots use the shared snapshot format (znode, Kind "fsm"): every visible
// node as a node record, in path order so that parents come before children, then
// the rest of the state as application records:
//
//	64 meta        version, phase, epoch, counter, last zxid, max source zxid,
//	               applied index, digest, and the counts of nodes, pending
//	               records, tombstones and sessions (checked on restore)
//	65 session     id, timeout
//	66 tombstone   path, zxid, inclusive flag
//	67 checkpoint  key, value
//	68 digest log  count × (zxid, digest)
//	69 pending     path, flags, stat, data, ACL, cvKey, orphan names
//	70 cvKey       path, zxid: a visible node whose cversion is pinned to a zxid
//	               other than its pzxid (see "Child registers")
//	71 source session  id, timeout: a ZooKeeper session mirrored in shadow
//	               (SourceSessions); absent from older snapshots, which restore
//	               with none
//	72 mirror      the reverse mirror's cursor: start index, start time, acked index, its
//	               ZooKeeper zxid, ack time, outbox record count (absent from
//	               snapshots of a journal never primary: all zero)
//	73 mirror record  one outbox record (appendMirrorRecord), in index order,
//	               after the mirror record
//	74 zxid map    the journal → ZooKeeper zxid map of the primary periods
//	               (appendZxidMap; absent when empty)
//
// Payloads use the log entry codec. The meta record comes first; cvKey records
// come after every node.
const (
	recMeta       znode.RecordType = 64
	recSession    znode.RecordType = 65
	recTomb       znode.RecordType = 66
	recCheckpoint znode.RecordType = 67
	recDigestLog  znode.RecordType = 68
	recPending    znode.RecordType = 69
	recCvKey      znode.RecordType = 70
	recSourceSess znode.RecordType = 71
	recMirror     znode.RecordType = 72
	recMirrorRec  znode.RecordType = 73
	recZxidMap    znode.RecordType = 74
)

// snapshotStateVersion is the version of the application records' layout.
const snapshotStateVersion = 1

type snapMeta struct {
	phase                                 Phase
	epoch, counter                        uint32
	lastZxid, maxSourceZxid               int64
	appliedIndex                          uint64
	digest                                znode.Digest
	nodes, pending, tombstones, nsessions uint64
}

type snapNode struct {
	path        string
	data        []byte
	st          znode.Stat
	acl         aclID
	numChildren int32
	cvKey       int64
}

type snapTomb struct {
	path string
	tb   tomb
}

type snapPending struct {
	path    string
	g       ghost // n.kids replaced by cvKey
	cvKey   int64
	orphans []string
}

// fsmSnapshot is a consistent copy of the state, taken under the read lock in time
// proportional to the node count (no data is copied: node data is never modified
// in place), and written out without any lock.
type fsmSnapshot struct {
	meta        snapMeta
	nodes       []snapNode
	acls        []aclEntry
	pending     []snapPending
	tombs       []snapTomb
	sessions    []SessionInfo
	srcSessions []SessionInfo
	checkpoints []Checkpoint
	digests     []DigestEntry
	mirror      mirrorState // outbox shared with the state: records are never modified
	zmap        []ZxidPeriod
	compress    bool
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// capture copies the state. nodesOnly skips everything but the nodes (for Walk).
func (f *FSM) capture(nodesOnly bool) *fsmSnapshot {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.s
	t := s.t
	snap := &fsmSnapshot{nodes: make([]snapNode, 0, len(t.nodes)), acls: slices.Clone(t.acls.lists)}
	for p, n := range t.nodes {
		snap.nodes = append(snap.nodes, snapNode{path: p, data: n.data, st: n.stat(), acl: n.acl, numChildren: n.numChildren(), cvKey: n.cvKey()})
	}
	if nodesOnly {
		return snap
	}
	snap.meta = snapMeta{
		phase: s.phase, epoch: s.epoch, counter: s.counter, lastZxid: s.lastZxid,
		maxSourceZxid: s.maxSourceZxid, appliedIndex: s.appliedIndex, digest: t.digest,
		nodes: uint64(len(t.nodes)), pending: uint64(len(t.ghosts)), tombstones: uint64(len(t.tombs)),
		nsessions: uint64(len(s.sessions)),
	}
	for p, g := range t.ghosts {
		sp := snapPending{path: p, g: *g, cvKey: g.n.cvKey()}
		sp.g.n.kids, sp.g.orphans = nil, nil
		for name := range g.orphans {
			sp.orphans = append(sp.orphans, name)
		}
		slices.Sort(sp.orphans)
		snap.pending = append(snap.pending, sp)
	}
	for p, tb := range t.tombs {
		snap.tombs = append(snap.tombs, snapTomb{p, tb})
	}
	for id, ss := range s.sessions {
		snap.sessions = append(snap.sessions, SessionInfo{ID: id, TimeoutMs: ss.timeoutMs})
	}
	for id, ms := range s.sourceSessions {
		snap.srcSessions = append(snap.srcSessions, SessionInfo{ID: id, TimeoutMs: ms})
	}
	for k, v := range s.checkpoints {
		snap.checkpoints = append(snap.checkpoints, Checkpoint{Key: k, Value: v})
	}
	snap.digests = s.digests.list()
	snap.mirror = s.mirror
	snap.mirror.outbox = slices.Clone(s.mirror.outbox)
	snap.zmap = cloneZxidMap(s.zmap)
	snap.compress = f.compress
	return snap
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) { return f.capture(false), nil }

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// WriteSnapshot writes a snapshot of the current state to w and returns its
// trailer. The state is copied under the read lock; the writing happens outside it.
func (f *FSM) WriteSnapshot(w io.Writer) (znode.SnapshotTrailer, error) {
	return f.capture(false).writeTo(w)
}

// Walk calls fn with every visible node in znode.ComparePaths order (depth-first,
// children by name: the order verify merges streams in),
// from a consistent copy taken when Walk is called, so Apply is not held up while
// fn runs. fn may keep the node but must not modify its Data or ACL, which are
// shared with the tree.
func (f *FSM) Walk(fn func(*znode.Node) error) error {
	snap := f.capture(true)
	sortCanonical(snap.nodes)
	for i := range snap.nodes {
		sn := &snap.nodes[i]
		n := &znode.Node{Path: sn.path, Data: sn.data, ACL: snap.acls[sn.acl].acl, Stat: sn.st, NumChildren: sn.numChildren}
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

func (s *fsmSnapshot) writeTo(w io.Writer) (znode.SnapshotTrailer, error) {
	// The canonical order (depth-first, children by name) puts every parent before
	// its children and lets verify merge an FSM snapshot with an export file.
	sortCanonical(s.nodes)
	slices.SortFunc(s.pending, func(a, b snapPending) int { return cmp.Compare(a.path, b.path) })
	slices.SortFunc(s.tombs, func(a, b snapTomb) int { return cmp.Compare(a.path, b.path) })
	slices.SortFunc(s.sessions, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.srcSessions, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.checkpoints, func(a, b Checkpoint) int { return cmp.Compare(a.Key, b.Key) })

	h := znode.SnapshotHeader{
		Source:        "zk2raft journal",
		StartZxid:     s.meta.lastZxid,
		Kind:          znode.SnapshotKindFSM,
		ExtendedTypes: true,
		Meta: map[string]string{
			"applied_index": strconv.FormatUint(s.meta.appliedIndex, 10),
			"phase":         s.meta.phase.String(),
		},
	}
	sw, err := znode.NewSnapshotWriter(w, h, znode.SnapshotWriterOptions{Compress: s.compress})
	if err != nil {
		return znode.SnapshotTrailer{}, err
	}
	var b []byte
	m := &s.meta
	b = appendUvarint(b[:0], snapshotStateVersion)
	b = append(b, byte(m.phase))
	b = appendUvarint(b, uint64(m.epoch))
	b = appendUvarint(b, uint64(m.counter))
	b = appendVarint(b, m.lastZxid)
	b = appendVarint(b, m.maxSourceZxid)
	b = appendUvarint(b, m.appliedIndex)
	b = appendUvarint(b, uint64(m.digest))
	b = appendUvarint(b, m.nodes)
	b = appendUvarint(b, m.pending)
	b = appendUvarint(b, m.tombstones)
	b = appendUvarint(b, m.nsessions)
	if err := sw.WriteRecord(recMeta, b); err != nil {
		return znode.SnapshotTrailer{}, err
	}
	var zn znode.Node
	for i := range s.nodes {
		sn := &s.nodes[i]
		zn = znode.Node{Path: sn.path, Data: sn.data, ACL: s.acls[sn.acl].acl, Stat: sn.st, NumChildren: sn.numChildren}
		if err := sw.WriteNode(&zn); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	for i := range s.nodes {
		if sn := &s.nodes[i]; sn.cvKey != sn.st.Pzxid {
			b = appendString(b[:0], sn.path)
			b = appendVarint(b, sn.cvKey)
			if err := sw.WriteRecord(recCvKey, b); err != nil {
				return znode.SnapshotTrailer{}, err
			}
		}
	}
	for _, ss := range s.sessions {
		b = appendVarint(b[:0], ss.ID)
		b = appendVarint(b, int64(ss.TimeoutMs))
		if err := sw.WriteRecord(recSession, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	for _, ss := range s.srcSessions {
		b = appendVarint(b[:0], ss.ID)
		b = appendVarint(b, int64(ss.TimeoutMs))
		if err := sw.WriteRecord(recSourceSess, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	for _, tt := range s.tombs {
		b = appendString(b[:0], tt.path)
		b = appendVarint(b, tt.tb.zxid)
		b = append(b, boolByte(tt.tb.incl))
		if err := sw.WriteRecord(recTomb, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	for _, cp := range s.checkpoints {
		b = appendString(b[:0], cp.Key)
		b = appendBytes(b, cp.Value)
		if err := sw.WriteRecord(recCheckpoint, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	b = appendUvarint(b[:0], uint64(len(s.digests)))
	for _, e := range s.digests {
		b = appendVarint(b, e.Zxid)
		b = appendUvarint(b, uint64(e.Digest))
	}
	if err := sw.WriteRecord(recDigestLog, b); err != nil {
		return znode.SnapshotTrailer{}, err
	}
	for i := range s.pending {
		p := &s.pending[i]
		var flags byte
		if p.g.hasData {
			flags |= 1
		}
		if p.g.n.acl != 0 {
			flags |= 2
		}
		b = appendString(b[:0], p.path)
		b = append(b, flags)
		st := p.g.n.stat()
		b = appendStat(b, &st)
		if p.g.hasData {
			b = appendBytes(b, p.g.n.data)
		}
		if p.g.n.acl != 0 {
			b = appendACL(b, s.acls[p.g.n.acl].acl)
		}
		b = appendVarint(b, p.cvKey)
		b = appendUvarint(b, uint64(len(p.orphans)))
		for _, name := range p.orphans {
			b = appendString(b, name)
		}
		if err := sw.WriteRecord(recPending, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	if mr := &s.mirror; mr.start != 0 || len(mr.outbox) > 0 {
		b = appendUvarint(b[:0], mr.start)
		b = appendVarint(b, mr.startTime)
		b = appendUvarint(b, mr.acked)
		b = appendVarint(b, mr.ackedZkZxid)
		b = appendVarint(b, mr.ackTime)
		b = appendUvarint(b, mr.prevStart)
		b = appendVarint(b, mr.prevStartTime)
		b = appendUvarint(b, uint64(len(mr.outbox)))
		if err := sw.WriteRecord(recMirror, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
		for i := range mr.outbox {
			b = appendMirrorRecord(b[:0], &mr.outbox[i])
			if err := sw.WriteRecord(recMirrorRec, b); err != nil {
				return znode.SnapshotTrailer{}, err
			}
		}
	}
	if len(s.zmap) > 0 {
		b = appendZxidMap(b[:0], s.zmap)
		if err := sw.WriteRecord(recZxidMap, b); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	sw.ObserveZxid(m.lastZxid)
	return sw.Close()
}

// Restore implements raft.FSM: it replaces the state with the snapshot's, or
// leaves it untouched and returns an error.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readState(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.s = s
	f.lastZxid.Store(s.lastZxid)
	f.restores.Add(1)
	f.mu.Unlock()
	f.logger.Info("restored fsm snapshot", "applied-index", s.appliedIndex, "nodes", len(s.t.nodes), "digest", s.t.digest.String())
	return nil
}

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
}

// readState rebuilds a state from a snapshot, checking it as it goes: the reader
// checks every record's CRC and the trailer (node count, digest); this checks
// that the tree is well formed, that the recomputed digest and the counts match
// the meta record, and that the digest matches the trailer's.
func readState(r io.Reader) (*state, error) {
	sr, err := znode.NewSnapshotReader(r)
	if err != nil {
		return nil, err
	}
	defer sr.Close()
	if k := sr.Header().Kind; k != znode.SnapshotKindFSM {
		return nil, badSnapshot("snapshot kind %q, want %q", k, znode.SnapshotKindFSM)
	}
	t := &tree{
		nodes:      make(map[string]*node),
		acls:       newACLCache(),
		ephemerals: make(map[int64]map[string]struct{}),
		containers: make(map[string]struct{}),
		ttls:       make(map[string]struct{}),
		ghosts:     make(map[string]*ghost),
		tombs:      make(map[string]tomb),
	}
	s := &state{t: t, sessions: make(map[int64]*session), checkpoints: make(map[string][]byte), sourceSessions: make(map[int64]int32)}
	var meta *snapMeta
	var childSum int64
	mirrorSeen, mirrorWant := false, uint64(0)
	for {
		rec, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if meta == nil && rec.Type != recMeta {
			return nil, badSnapshot("first record is %s, want the meta record", rec.Type)
		}
		if rec.Node != nil {
			if err := t.restoreNode(rec.Node); err != nil {
				return nil, err
			}
			childSum += int64(rec.Node.NumChildren)
			continue
		}
		d := &decoder{b: rec.Payload}
		switch rec.Type {
		case recMeta:
			if meta != nil {
				return nil, badSnapshot("two meta records")
			}
			meta = decodeMeta(d)
		case recCvKey:
			p := d.string("path")
			k := d.varint("cvKey")
			n := t.nodes[p]
			if n == nil {
				return nil, badSnapshot("cvKey record for missing node %q", p)
			}
			if n.kids == nil {
				n.kids = &kidSet{}
			}
			n.kids.cvZxid = k
		case recSession:
			id := d.varint("session")
			s.sessions[id] = &session{timeoutMs: d.int32v("timeout")}
		case recSourceSess:
			id := d.varint("session")
			s.sourceSessions[id] = d.int32v("timeout")
		case recTomb:
			p := d.string("path")
			t.tombs[p] = tomb{zxid: d.varint("zxid"), incl: d.byte1("incl") != 0}
		case recCheckpoint:
			k := d.string("key")
			s.checkpoints[k] = d.bytes("value")
		case recDigestLog:
			n := d.count("digest entries", 2)
			for i := 0; i < n && d.err == nil; i++ {
				s.digests.add(DigestEntry{Zxid: d.varint("zxid"), Digest: znode.Digest(d.uvarint("digest"))})
			}
		case recPending:
			p := d.string("path")
			g := decodePending(d, t.acls)
			if d.err == nil {
				if _, dup := t.ghosts[p]; dup || t.nodes[p] != nil {
					return nil, badSnapshot("pending record for %q duplicates a node or record", p)
				}
				t.ghosts[p] = g
			}
		case recMirror:
			if mirrorSeen {
				return nil, badSnapshot("two mirror records")
			}
			mirrorSeen = true
			s.mirror.start = d.uvarint("mirror start")
			s.mirror.startTime = d.varint("mirror start time")
			s.mirror.acked = d.uvarint("mirror acked")
			s.mirror.ackedZkZxid = d.varint("mirror zookeeper zxid")
			s.mirror.ackTime = d.varint("mirror ack time")
			s.mirror.prevStart = d.uvarint("mirror previous start")
			s.mirror.prevStartTime = d.varint("mirror previous start time")
			mirrorWant = d.uvarint("mirror records")
		case recMirrorRec:
			r := decodeMirrorRecord(d)
			if d.err == nil {
				ob := s.mirror.outbox
				if !mirrorSeen || r.Index <= s.mirror.acked || len(ob) > 0 && r.Index <= ob[len(ob)-1].Index {
					return nil, badSnapshot("mirror record of index %d out of order", r.Index)
				}
				s.mirror.outbox = append(ob, r)
			}
		case recZxidMap:
			if s.zmap != nil {
				return nil, badSnapshot("two zxid map records")
			}
			s.zmap = decodeZxidMap(d)
			t.rebased = rebaseWindowOf(s.zmap)
		default:
			return nil, badSnapshot("unknown application record type %d", rec.Type)
		}
		if err := d.finish(); err != nil {
			return nil, badSnapshot("%s record: %v", rec.Type, err)
		}
	}
	if meta == nil {
		return nil, badSnapshot("no meta record")
	}
	for _, p := range []string{"/", zookeeperPath, quotaPath, configPath} {
		if t.nodes[p] == nil {
			return nil, badSnapshot("system node %s missing", p)
		}
	}
	switch tr := sr.Trailer(); {
	case !meta.phase.valid():
		return nil, badSnapshot("phase %d", meta.phase)
	case t.digest != tr.Digest || t.digest != meta.digest:
		return nil, badSnapshot("tree digest %s, trailer says %s, meta says %s", t.digest, tr.Digest, meta.digest)
	case uint64(len(t.nodes)) != meta.nodes || childSum != int64(len(t.nodes))-1:
		return nil, badSnapshot("%d nodes with %d children in all, meta says %d nodes", len(t.nodes), childSum, meta.nodes)
	case uint64(len(t.ghosts)) != meta.pending || uint64(len(t.tombs)) != meta.tombstones || uint64(len(s.sessions)) != meta.nsessions:
		return nil, badSnapshot("counts of pending records, tombstones or sessions differ from the meta record")
	}
	if uint64(len(s.mirror.outbox)) != mirrorWant {
		return nil, badSnapshot("%d mirror records, the mirror record says %d", len(s.mirror.outbox), mirrorWant)
	}
	s.phase, s.epoch, s.counter = meta.phase, meta.epoch, meta.counter
	s.lastZxid, s.maxSourceZxid, s.appliedIndex = meta.lastZxid, meta.maxSourceZxid, meta.appliedIndex
	t.acls.commit()
	return s, nil
}

func decodeMeta(d *decoder) *snapMeta {
	if v := d.uvarint("version"); v != snapshotStateVersion && d.err == nil {
		d.err = fmt.Errorf("%w: state version %d, this build reads %d", ErrUnsupportedVersion, v, snapshotStateVersion)
	}
	m := &snapMeta{phase: Phase(d.byte1("phase"))}
	m.epoch = uint32(d.uvarint("epoch"))
	m.counter = uint32(d.uvarint("counter"))
	m.lastZxid = d.varint("last zxid")
	m.maxSourceZxid = d.varint("max source zxid")
	m.appliedIndex = d.uvarint("applied index")
	m.digest = znode.Digest(d.uvarint("digest"))
	m.nodes = d.uvarint("nodes")
	m.pending = d.uvarint("pending")
	m.tombstones = d.uvarint("tombstones")
	m.nsessions = d.uvarint("sessions")
	return m
}

func decodePending(d *decoder, acls *aclCache) *ghost {
	g := &ghost{}
	flags := d.byte1("flags")
	var st znode.Stat
	d.stat(&st)
	g.n.setStat(&st)
	if flags&1 != 0 {
		g.hasData = true
		g.n.data = d.bytes("data")
	}
	if flags&2 != 0 {
		if raw := d.rawACL(); d.err == nil {
			g.n.acl = acls.acquireKey(raw)
		}
	}
	pinCvKey(&g.n, d.varint("cvKey"))
	n := d.count("orphans", 1)
	for i := 0; i < n && d.err == nil; i++ {
		g.addOrphan(d.string("orphan"))
	}
	return g
}

// restoreNode inserts a node read from a snapshot under its parent, which must
// already be there.
func (t *tree) restoreNode(zn *znode.Node) error {
	p := zn.Path
	if t.nodes[p] != nil {
		return badSnapshot("node %q twice", p)
	}
	if p != "/" && t.nodes[znode.Parent(p)] == nil {
		return badSnapshot("node %q comes before its parent", p)
	}
	data := zn.Data
	n := &node{data: data, acl: t.acls.acquire(zn.ACL)}
	n.setStat(&zn.Stat)
	t.insertVisible(p, n)
	return nil
}
