package raftjournal

import (
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// The reverse mirror's replicated half: while the journal is primary, every
// entry that changes the tree leaves a MirrorRecord in the FSM's outbox,
// saying what ZooKeeper must do to follow (see "Reverse mirror" in the package
// documentation). The outbox is state, so it survives snapshots and log
// compaction; a MirrorAck entry drops the records ZooKeeper has and moves the
// cursor. The applier that writes them to ZooKeeper lives outside this package
// (reversemirror).

// MirrorOpKind is the kind of a ZooKeeper write the reverse mirror makes.
type MirrorOpKind uint8

// The reverse mirror's op kinds.
const (
	MirrorCreate       MirrorOpKind = 1
	MirrorDelete       MirrorOpKind = 2
	MirrorSetData      MirrorOpKind = 3
	MirrorSetACL       MirrorOpKind = 4
	MirrorCheck        MirrorOpKind = 5
	MirrorCloseSession MirrorOpKind = 6
)

func (k MirrorOpKind) String() string {
	switch k {
	case MirrorCreate:
		return "create"
	case MirrorDelete:
		return "delete"
	case MirrorSetData:
		return "setData"
	case MirrorSetACL:
		return "setACL"
	case MirrorCheck:
		return "check"
	case MirrorCloseSession:
		return "closeSession"
	}
	return fmt.Sprintf("MirrorOpKind(%d)", uint8(k))
}

// MirrorOp is one ZooKeeper write that reproduces a journal effect.
type MirrorOp struct {
	Kind MirrorOpKind
	// Path is the node; for a sequential create, the name the journal gave it.
	Path string
	// Data (create, setData); nil and empty differ.
	Data []byte
	// ACL (create, setACL): the ACL the journal stored ("auth" expanded).
	ACL []znode.ACL
	// Mode (create) is never sequential: the name is already exact, and a
	// plain create bumps the parent's cversion as a sequential one does.
	Mode CreateMode
	// TTL in milliseconds (TTL modes).
	TTL int64
	// Version is the version the op expects: for delete and check the one
	// the client gave (−1 any); for setData and setACL the one the node had
	// before the journal's write (its result minus one), so that ZooKeeper
	// ends with the journal's number and a node changed behind the mirror's
	// back fails the write instead of being overwritten.
	Version int32
	// Session is the owner of an ephemeral create, or the closed session.
	Session int64
	// Cleanup marks a delete made by a session's end or by container/TTL
	// clean-up: ZooKeeper may already have made it itself (its own session
	// expiry, its own ContainerManager), so a missing node is not divergence.
	Cleanup bool
}

// MirrorRecord is what one journal entry committed in primary asks of
// ZooKeeper: its ops in order, as one multi.
type MirrorRecord struct {
	Index uint64 // the journal log index
	Zxid  int64  // the journal zxid the entry consumed (its last)
	Time  int64  // the entry's leader time, ms since the Unix epoch
	Ops   []MirrorOp
}

// MirrorAck tells the journal that ZooKeeper holds every record up to Index
// (the applier's marker write said so): the records up to it leave the
// outbox. ZkZxid is the ZooKeeper zxid of the write that brought Index, Time
// the applier's clock. An ack at or below the cursor changes nothing, so
// applying one twice is harmless; one beyond the log, or outside primary, is
// refused.
type MirrorAck struct {
	Index  uint64
	ZkZxid int64
	Time   int64
}

// MirrorStatus is the reverse mirror's replicated state.
type MirrorStatus struct {
	// Active: the journal is primary and the outbox fills.
	Active bool
	// Start is the index of the SetPhase entry that made the journal primary
	// (0 if it never was), StartTime its leader time: together they name the
	// primary period, in the marker too.
	Start     uint64
	StartTime int64
	// PrevStart and PrevStartTime name the primary period before this one,
	// if there was one (a marker of it is this journal's own).
	PrevStart     uint64
	PrevStartTime int64
	// Acked is the last journal index ZooKeeper is known to hold (Start when
	// nothing was acknowledged yet), AckedZkZxid ZooKeeper's zxid of it, and
	// AckTime the applier's clock at the ack.
	Acked       uint64
	AckedZkZxid int64
	AckTime     int64
	// Pending counts the records ZooKeeper is not known to hold; OldestTime
	// is the oldest one's leader time (0 when none) and LastIndex the newest
	// one's index.
	Pending    int
	OldestTime int64
	LastIndex  uint64
	LastZxid   int64
}

// LagMillis is how long the oldest pending record has waited at now (ms since
// the Unix epoch); 0 when nothing is pending.
func (s MirrorStatus) LagMillis(now int64) int64 {
	if s.Pending == 0 || s.OldestTime == 0 {
		return 0
	}
	return max(0, now-s.OldestTime)
}

// mirrorState is the replicated reverse-mirror state.
type mirrorState struct {
	start, acked uint64
	startTime    int64
	// prevStart and prevStartTime name the primary period before this one
	// (0 when there was none): a marker of that period is this journal's own
	// and restarts at the new period, any other is another journal's.
	prevStart     uint64
	prevStartTime int64
	ackedZkZxid   int64
	ackTime       int64
	outbox        []MirrorRecord
}

// MirrorStatus returns the reverse mirror's state.
func (f *FSM) MirrorStatus() MirrorStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := &f.s.mirror
	st := MirrorStatus{
		Active: f.s.phase == PhasePrimary, Start: m.start, StartTime: m.startTime,
		PrevStart: m.prevStart, PrevStartTime: m.prevStartTime, Acked: m.acked,
		AckedZkZxid: m.ackedZkZxid, AckTime: m.ackTime, Pending: len(m.outbox),
	}
	if len(m.outbox) > 0 {
		st.OldestTime = m.outbox[0].Time
		st.LastIndex = m.outbox[len(m.outbox)-1].Index
		st.LastZxid = m.outbox[len(m.outbox)-1].Zxid
	}
	return st
}

// MirrorPending returns up to limit (0: all) outbox records with an index
// above after, oldest first. The records share data with the state and must
// not be modified.
func (f *FSM) MirrorPending(after uint64, limit int) []MirrorRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ob := f.s.mirror.outbox
	i, _ := slices.BinarySearchFunc(ob, after+1, func(r MirrorRecord, idx uint64) int {
		switch {
		case r.Index < idx:
			return -1
		case r.Index > idx:
			return 1
		}
		return 0
	})
	ob = ob[i:]
	if limit > 0 && len(ob) > limit {
		ob = ob[:limit]
	}
	return slices.Clone(ob)
}

func (s *state) applyMirrorAck(c *MirrorAck, res *Result) {
	m := &s.mirror
	switch {
	case s.phase != PhasePrimary:
		res.Err = fmt.Errorf("%w: reverse-mirror ack in phase %s", ErrWrongPhase, s.phase)
		return
	case c.Index > s.appliedIndex:
		res.Err = fmt.Errorf("%w: reverse-mirror ack of index %d beyond the log (%d)", ErrBadCommand, c.Index, s.appliedIndex)
		return
	case c.Index <= m.acked:
		return
	}
	n := 0
	for n < len(m.outbox) && m.outbox[n].Index <= c.Index {
		n++
	}
	if n > 0 {
		s.zxidMapPoint(m.outbox[n-1].Zxid, c.ZkZxid)
	}
	clear(m.outbox[:n])
	m.outbox = m.outbox[n:]
	if len(m.outbox) == 0 {
		m.outbox = nil // let the backing array go
	}
	m.acked, m.ackedZkZxid, m.ackTime = c.Index, c.ZkZxid, c.Time
	res.Changed = n
}

// mirrorPhaseChange keeps the mirror state in step with a phase change at
// index, made at time (ms).
func (s *state) mirrorPhaseChange(from, to Phase, index uint64, time int64) {
	switch {
	case to == PhasePrimary:
		s.mirror = mirrorState{start: index, startTime: time, acked: index, prevStart: s.mirror.start, prevStartTime: s.mirror.startTime}
	case from == PhasePrimary:
		// finalized ends the reverse mirror; a rollback is only allowed with an
		// empty outbox (applySetPhase).
		s.mirror.outbox = nil
	}
}

// recordMirror adds the outbox record of an entry applied in primary, if it
// changed the tree.
func (s *state) recordMirror(cmd Command, index uint64, res *Result) {
	if s.phase != PhasePrimary || res.Err != nil {
		return
	}
	var ops []MirrorOp
	var t int64
	switch c := cmd.(type) {
	case *Write:
		ops, t = mirrorWrite(c, res), c.Time
	case *CloseSession:
		ops, t = mirrorClose(res.Deleted, []int64{c.Session}), c.Time
	case *ExpireSessions:
		ops, t = mirrorClose(res.Deleted, c.Sessions), c.Time
	case *CleanupNodes:
		ops, t = mirrorClose(res.Deleted, nil), c.Time
	}
	if len(ops) == 0 {
		return
	}
	s.mirror.outbox = append(s.mirror.outbox, MirrorRecord{Index: index, Zxid: res.Zxid, Time: t, Ops: ops})
}

func mirrorWrite(w *Write, res *Result) []MirrorOp {
	ops := make([]MirrorOp, 0, len(w.Ops))
	for i := range w.Ops {
		op, r := &w.Ops[i], &res.Ops[i]
		switch op.Kind {
		case OpCreate:
			acl, _ := fixupACL(op.ACL, w.Auth)
			mop := MirrorOp{Kind: MirrorCreate, Path: r.Path, Data: op.Data, ACL: acl, Mode: plainMode(op.Mode), TTL: op.TTL}
			if op.Mode.IsEphemeral() {
				mop.Session = w.Session
			}
			ops = append(ops, mop)
		case OpDelete:
			ops = append(ops, MirrorOp{Kind: MirrorDelete, Path: op.Path, Version: op.Version})
		case OpSetData:
			ops = append(ops, MirrorOp{Kind: MirrorSetData, Path: op.Path, Data: op.Data, Version: r.Stat.Version - 1})
		case OpSetACL:
			acl, _ := fixupACL(op.ACL, w.Auth)
			ops = append(ops, MirrorOp{Kind: MirrorSetACL, Path: op.Path, ACL: acl, Version: r.Stat.Aversion - 1})
		case OpCheck:
			if w.Multi {
				ops = append(ops, MirrorOp{Kind: MirrorCheck, Path: op.Path, Version: op.Version})
			}
		}
	}
	for _, op := range ops {
		if op.Kind != MirrorCheck {
			return ops
		}
	}
	return nil // checks alone change nothing
}

func mirrorClose(deleted []string, sessions []int64) []MirrorOp {
	ops := make([]MirrorOp, 0, len(deleted)+len(sessions))
	for _, p := range deleted {
		ops = append(ops, MirrorOp{Kind: MirrorDelete, Path: p, Version: -1, Cleanup: true})
	}
	for _, id := range sessions {
		ops = append(ops, MirrorOp{Kind: MirrorCloseSession, Session: id})
	}
	return ops
}

// plainMode is a create mode without its sequential flag.
func plainMode(m CreateMode) CreateMode {
	switch m {
	case ModePersistentSequential:
		return ModePersistent
	case ModeEphemeralSequential:
		return ModeEphemeral
	case ModePersistentSequentialTTL:
		return ModePersistentTTL
	}
	return m
}

// EntryType implements Command.
func (*MirrorAck) EntryType() EntryType { return EntryMirrorAck }

// MirrorAck payload: index uvarint, ZooKeeper zxid varint, time varint.
func (c *MirrorAck) appendPayload(out []byte) []byte {
	out = appendUvarint(out, c.Index)
	out = appendVarint(out, c.ZkZxid)
	return appendVarint(out, c.Time)
}

func decodeMirrorAck(d *decoder) *MirrorAck {
	return &MirrorAck{Index: d.uvarint("index"), ZkZxid: d.varint("zookeeper zxid"), Time: d.varint("time")}
}

// appendMirrorRecord encodes an outbox record (snapshots):
//
//	index uvarint, zxid varint, time varint, op count uvarint, then per op:
//	kind byte, flags byte (bit 0 cleanup), path string, version varint,
//	session varint, and by kind: create data bytes, ACL, mode varint,
//	ttl varint; setData data bytes; setACL ACL.
func appendMirrorRecord(b []byte, r *MirrorRecord) []byte {
	b = appendUvarint(b, r.Index)
	b = appendVarint(b, r.Zxid)
	b = appendVarint(b, r.Time)
	b = appendUvarint(b, uint64(len(r.Ops)))
	for i := range r.Ops {
		op := &r.Ops[i]
		b = append(b, byte(op.Kind), boolByte(op.Cleanup))
		b = appendString(b, op.Path)
		b = appendVarint(b, int64(op.Version))
		b = appendVarint(b, op.Session)
		switch op.Kind {
		case MirrorCreate:
			b = appendBytes(b, op.Data)
			b = appendACL(b, op.ACL)
			b = appendVarint(b, int64(op.Mode))
			b = appendVarint(b, op.TTL)
		case MirrorSetData:
			b = appendBytes(b, op.Data)
		case MirrorSetACL:
			b = appendACL(b, op.ACL)
		}
	}
	return b
}

func decodeMirrorRecord(d *decoder) MirrorRecord {
	r := MirrorRecord{Index: d.uvarint("index"), Zxid: d.varint("zxid"), Time: d.varint("time")}
	n := d.count("mirror ops", 5)
	r.Ops = make([]MirrorOp, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		op := MirrorOp{Kind: MirrorOpKind(d.byte1("kind"))}
		flags := d.byte1("flags")
		if flags&^1 != 0 && d.err == nil {
			d.err = fmt.Errorf("%w: mirror op flags %#x", ErrCorruptEntry, flags)
		}
		op.Cleanup = flags&1 != 0
		op.Path = d.string("path")
		op.Version = d.int32v("version")
		op.Session = d.varint("session")
		switch op.Kind {
		case MirrorCreate:
			op.Data = d.bytes("data")
			op.ACL = d.acl()
			op.Mode = CreateMode(d.int32v("mode"))
			op.TTL = d.varint("ttl")
		case MirrorSetData:
			op.Data = d.bytes("data")
		case MirrorSetACL:
			op.ACL = d.acl()
		case MirrorDelete, MirrorCheck, MirrorCloseSession:
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: mirror op kind %d", ErrCorruptEntry, op.Kind)
			}
		}
		r.Ops = append(r.Ops, op)
	}
	return r
}

// JournalSession reports whether a session id was minted by the journal
// (CreateSession) rather than adopted from ZooKeeper at the change to primary.
func JournalSession(id int64) bool { return byte(uint64(id)>>56) == sessionIDTag }

// ReverseMirrorStatus is the reverse mirror's lag as /status shows it.
type ReverseMirrorStatus struct {
	// Active: the journal is primary and its writes are owed to ZooKeeper.
	Active bool `json:"active"`
	// PendingEntries are the journal entries ZooKeeper is not known to hold;
	// LagSeconds is how long the oldest of them has waited (by the leader's
	// clock stamped into it and this node's clock now).
	PendingEntries int     `json:"pending_entries"`
	LagSeconds     float64 `json:"lag_seconds"`
	// StartIndex is the SetPhase(primary) entry; AckedIndex the last entry
	// ZooKeeper holds, at ZooKeeper zxid AckedZkZxid; LastIndex the newest
	// entry owed.
	StartIndex  uint64 `json:"start_index"`
	AckedIndex  uint64 `json:"acked_index"`
	AckedZkZxid string `json:"acked_zk_zxid"`
	LastIndex   uint64 `json:"last_index,omitempty"`
}

func reverseMirrorStatus(st MirrorStatus, now int64) *ReverseMirrorStatus {
	if st.Start == 0 {
		return nil
	}
	return &ReverseMirrorStatus{
		Active: st.Active, PendingEntries: st.Pending, LagSeconds: float64(st.LagMillis(now)) / 1000,
		StartIndex: st.Start, AckedIndex: st.Acked, AckedZkZxid: fmt.Sprintf("%#x", st.AckedZkZxid), LastIndex: st.LastIndex,
	}
}
