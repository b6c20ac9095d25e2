package raftjournal

import (
	"encoding/binary"
	"fmt"

	"github.com/zk2raft/zk2raft/znode"
)

// EntryType is the first byte of a log entry. The high bit (EntryIgnorable) marks
// entries a node that does not know the type may skip; the low seven bits name the
// command.
type EntryType uint8

// The entry types.
const (
	EntryImportBatch       EntryType = 1
	EntrySourceTxn         EntryType = 2
	EntryWrite             EntryType = 3
	EntryCreateSession     EntryType = 4
	EntryCloseSession      EntryType = 5
	EntryExpireSessions    EntryType = 6
	EntryCleanupNodes      EntryType = 7
	EntrySetPhase          EntryType = 8
	EntryCompactTombstones EntryType = 9
	EntrySourceBatch       EntryType = 10
	EntrySourceSessions    EntryType = 11
	EntrySetCheckpoint     EntryType = 12
	EntryMirrorAck         EntryType = 13

	// EntryIgnorable flags a type older nodes may skip (Consul's
	// IgnoreUnknownTypeFlag). Only commands that do not change the replicated
	// state in ways later entries depend on may carry it.
	EntryIgnorable EntryType = 0x80
)

// entryVersion is the payload version every command is written in. A node reading
// a higher version of a known type stops (FatalEntryError) rather than guess.
const entryVersion = 1

// entryHeaderSize is the type byte and the version byte.
const entryHeaderSize = 2

func (t EntryType) String() string {
	var s string
	switch t &^ EntryIgnorable {
	case EntryImportBatch:
		s = "ImportBatch"
	case EntrySourceTxn:
		s = "SourceTxn"
	case EntryWrite:
		s = "Write"
	case EntryCreateSession:
		s = "CreateSession"
	case EntryCloseSession:
		s = "CloseSession"
	case EntryExpireSessions:
		s = "ExpireSessions"
	case EntryCleanupNodes:
		s = "CleanupNodes"
	case EntrySetPhase:
		s = "SetPhase"
	case EntryCompactTombstones:
		s = "CompactTombstones"
	case EntrySourceBatch:
		s = "SourceBatch"
	case EntrySourceSessions:
		s = "SourceSessions"
	case EntrySetCheckpoint:
		s = "SetCheckpoint"
	case EntryMirrorAck:
		s = "MirrorAck"
	default:
		s = fmt.Sprintf("EntryType(%d)", uint8(t&^EntryIgnorable))
	}
	if t&EntryIgnorable != 0 {
		s += "|ignorable"
	}
	return s
}

// Encode returns the log entry for a command.
func Encode(c Command) []byte { return AppendEntry(nil, c) }

// AppendEntry appends the log entry for a command to b.
func AppendEntry(b []byte, c Command) []byte {
	v := byte(entryVersion)
	if vc, ok := c.(versionedCommand); ok {
		v = vc.payloadVersion()
	}
	b = append(b, byte(c.EntryType()), v)
	return c.appendPayload(b)
}

// versionedCommand is a command whose payload has more than one version: it
// is written in the lowest version that holds it, so an entry that needs no
// newer field stays readable by older nodes and unchanged in meaning.
type versionedCommand interface {
	payloadVersion() byte
}

// readsVersion reports whether this build reads version v of type t.
func readsVersion(t EntryType, v byte) bool {
	switch t {
	case EntryWrite:
		return v == entryVersion || v == writeVersionACL
	case EntrySetPhase:
		return v == entryVersion || v == setPhaseVersionGuard
	}
	return v == entryVersion
}

// Decode parses a log entry into its command. An unknown type returns
// ErrUnknownEntry (also when flagged ignorable: the caller decides to skip).
func Decode(entry []byte) (Command, error) {
	if len(entry) < entryHeaderSize {
		return nil, fmt.Errorf("%w: %d-byte entry has no header", ErrCorruptEntry, len(entry))
	}
	t := EntryType(entry[0])
	v := entry[1]
	if !readsVersion(t, v) {
		return nil, fmt.Errorf("%w: %s version %d (this build reads %d)", ErrUnsupportedVersion, t, v, entryVersion)
	}
	d := &decoder{b: entry[entryHeaderSize:]}
	var c Command
	switch t {
	case EntryImportBatch:
		c = decodeImportBatch(d)
	case EntrySourceTxn:
		c = decodeSourceTxn(d)
	case EntryWrite:
		c = decodeWrite(d, v)
	case EntryCreateSession:
		c = &CreateSession{TimeoutMs: d.int32v("timeout"), Time: d.varint("time")}
	case EntryCloseSession:
		c = &CloseSession{Session: d.varint("session"), Time: d.varint("time")}
	case EntryExpireSessions:
		c = decodeExpireSessions(d)
	case EntryCleanupNodes:
		c = decodeCleanupNodes(d)
	case EntrySetPhase:
		c = decodeSetPhase(d, v)
	case EntryCompactTombstones:
		c = &CompactTombstones{UpToZxid: d.varint("zxid")}
	case EntrySourceBatch:
		c = decodeSourceBatch(d)
	case EntrySourceSessions:
		c = decodeSourceSessions(d)
	case EntrySetCheckpoint:
		c = &SetCheckpoint{Checkpoint{Key: d.string("checkpoint key"), Value: d.bytes("checkpoint value")}}
	case EntryMirrorAck:
		c = decodeMirrorAck(d)
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnknownEntry, t)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return c, nil
}

// EntryType implements Command.
func (*ImportBatch) EntryType() EntryType { return EntryImportBatch }

// ImportBatch payload:
//
//	flags byte (bit 0: checkpoint present, bit 1: size hint present)
//	[checkpoint key string, value bytes]
//	[size hint uvarint]
//	uvarint node count
//	count × { path string, data bytes, ACL list, stat }
func (b *ImportBatch) appendPayload(out []byte) []byte {
	var flags byte
	if b.Checkpoint != nil {
		flags |= 1
	}
	if b.SizeHint != 0 {
		flags |= 2
	}
	out = append(out, flags)
	if b.Checkpoint != nil {
		out = appendString(out, b.Checkpoint.Key)
		out = appendBytes(out, b.Checkpoint.Value)
	}
	if b.SizeHint != 0 {
		out = appendUvarint(out, b.SizeHint)
	}
	out = appendUvarint(out, uint64(len(b.Nodes)))
	for _, n := range b.Nodes {
		out = appendString(out, n.Path)
		out = appendBytes(out, n.Data)
		out = appendACL(out, n.ACL)
		out = appendStat(out, &n.Stat)
	}
	return out
}

// minImportNodeSize is the smallest encoding of a node: empty path, nil data,
// empty ACL list, nine one-byte varints.
const minImportNodeSize = 1 + 1 + 1 + 9

func decodeImportBatch(d *decoder) *ImportBatch {
	b := &ImportBatch{}
	flags := d.byte1("flags")
	if flags&^3 != 0 {
		d.fail(fmt.Sprintf("unknown flags %#x", flags))
	}
	if flags&1 != 0 {
		b.Checkpoint = &Checkpoint{Key: d.string("checkpoint key"), Value: d.bytes("checkpoint value")}
	}
	if flags&2 != 0 {
		b.SizeHint = d.uvarint("size hint")
	}
	n := d.count("node count", minImportNodeSize)
	b.Nodes = make([]*znode.Node, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		node := &znode.Node{Path: d.string("path"), Data: d.bytes("data"), ACL: d.acl()}
		d.stat(&node.Stat)
		b.Nodes = append(b.Nodes, node)
	}
	return b
}

// EntryType implements Command.
func (*SourceTxn) EntryType() EntryType { return EntrySourceTxn }

// SourceTxn payload:
//
//	zxid varint, multi byte, uvarint op count,
//	count × { kind byte, path string, then by kind:
//	  create: data, ACL, stat, parent cversion varint, parent pzxid varint
//	  delete: nothing
//	  setData: data, stat
//	  setACL: ACL, stat
//	  closeSession: session varint, uvarint n, n × path string }
func (t *SourceTxn) appendPayload(out []byte) []byte {
	out = appendVarint(out, t.Zxid)
	out = append(out, boolByte(t.Multi))
	out = appendUvarint(out, uint64(len(t.Ops)))
	for i := range t.Ops {
		op := &t.Ops[i]
		out = append(out, byte(op.Kind))
		out = appendString(out, op.Path)
		switch op.Kind {
		case SourceCreate:
			out = appendBytes(out, op.Data)
			out = appendACL(out, op.ACL)
			out = appendStat(out, &op.Stat)
			out = appendVarint(out, int64(op.ParentCversion))
			out = appendVarint(out, op.ParentPzxid)
		case SourceSetData:
			out = appendBytes(out, op.Data)
			out = appendStat(out, &op.Stat)
		case SourceSetACL:
			out = appendACL(out, op.ACL)
			out = appendStat(out, &op.Stat)
		case SourceCloseSession:
			out = appendVarint(out, op.Session)
			out = appendUvarint(out, uint64(len(op.Paths)))
			for _, p := range op.Paths {
				out = appendString(out, p)
			}
		}
	}
	return out
}

func decodeSourceTxn(d *decoder) *SourceTxn {
	t := &SourceTxn{Zxid: d.varint("zxid"), Multi: d.byte1("multi") != 0}
	n := d.count("op count", 2)
	t.Ops = make([]SourceOp, n)
	for i := 0; i < n && d.err == nil; i++ {
		op := &t.Ops[i]
		op.Kind = SourceOpKind(d.byte1("op kind"))
		op.Path = d.string("path")
		switch op.Kind {
		case SourceCreate:
			op.Data = d.bytes("data")
			op.ACL = d.acl()
			d.stat(&op.Stat)
			op.ParentCversion = d.int32v("parent cversion")
			op.ParentPzxid = d.varint("parent pzxid")
		case SourceDelete:
		case SourceSetData:
			op.Data = d.bytes("data")
			d.stat(&op.Stat)
		case SourceSetACL:
			op.ACL = d.acl()
			d.stat(&op.Stat)
		case SourceCloseSession:
			op.Session = d.varint("session")
			m := d.count("path count", 1)
			op.Paths = make([]string, 0, m)
			for j := 0; j < m && d.err == nil; j++ {
				op.Paths = append(op.Paths, d.string("path"))
			}
		default:
			d.fail(fmt.Sprintf("unknown source op kind %d", op.Kind))
		}
	}
	return t
}

// EntryType implements Command.
func (*Write) EntryType() EntryType { return EntryWrite }

// Write payload:
//
//	session varint, time varint, uvarint auth count × { scheme string, id string },
//	multi byte, uvarint op count,
//	count × { kind byte, path string, then by kind:
//	  create: data, ACL, mode varint, ttl varint
//	  delete, check: version varint
//	  setData: data, version varint
//	  setACL: ACL, version varint }
//	version 2 only: flags byte (bit 0: CheckACL)
//
// A Write without CheckACL is written as version 1, byte for byte what it
// was before version 2 existed, and applied without permission checks.
func (w *Write) appendPayload(out []byte) []byte {
	out = appendVarint(out, w.Session)
	out = appendVarint(out, w.Time)
	out = appendUvarint(out, uint64(len(w.Auth)))
	for _, id := range w.Auth {
		out = appendString(out, id.Scheme)
		out = appendString(out, id.ID)
	}
	out = append(out, boolByte(w.Multi))
	out = appendUvarint(out, uint64(len(w.Ops)))
	for i := range w.Ops {
		op := &w.Ops[i]
		out = append(out, byte(op.Kind))
		out = appendString(out, op.Path)
		switch op.Kind {
		case OpCreate:
			out = appendBytes(out, op.Data)
			out = appendACL(out, op.ACL)
			out = appendVarint(out, int64(op.Mode))
			out = appendVarint(out, op.TTL)
		case OpDelete, OpCheck:
			out = appendVarint(out, int64(op.Version))
		case OpSetData:
			out = appendBytes(out, op.Data)
			out = appendVarint(out, int64(op.Version))
		case OpSetACL:
			out = appendACL(out, op.ACL)
			out = appendVarint(out, int64(op.Version))
		}
	}
	if w.CheckACL {
		out = append(out, 1)
	}
	return out
}

// writeVersionACL is the Write payload version that carries CheckACL.
const writeVersionACL = 2

func (w *Write) payloadVersion() byte {
	if w.CheckACL {
		return writeVersionACL
	}
	return entryVersion
}

func decodeWrite(d *decoder, version byte) *Write {
	w := &Write{Session: d.varint("session"), Time: d.varint("time")}
	if n := d.count("auth count", 2); n > 0 {
		w.Auth = make([]znode.ID, n)
		for i := range w.Auth {
			w.Auth[i] = znode.ID{Scheme: d.string("auth scheme"), ID: d.string("auth id")}
		}
	}
	w.Multi = d.byte1("multi") != 0
	n := d.count("op count", 2)
	w.Ops = make([]Op, n)
	for i := 0; i < n && d.err == nil; i++ {
		op := &w.Ops[i]
		op.Kind = OpKind(d.byte1("op kind"))
		op.Path = d.string("path")
		switch op.Kind {
		case OpCreate:
			op.Data = d.bytes("data")
			op.ACL = d.acl()
			op.Mode = CreateMode(d.int32v("mode"))
			op.TTL = d.varint("ttl")
		case OpDelete, OpCheck:
			op.Version = d.int32v("version")
		case OpSetData:
			op.Data = d.bytes("data")
			op.Version = d.int32v("version")
		case OpSetACL:
			op.ACL = d.acl()
			op.Version = d.int32v("version")
		default:
			d.fail(fmt.Sprintf("unknown op kind %d", op.Kind))
		}
	}
	if version >= writeVersionACL {
		flags := d.byte1("flags")
		if flags&^1 != 0 {
			d.fail(fmt.Sprintf("unknown flags %#x", flags))
		}
		w.CheckACL = flags&1 != 0
		if !w.CheckACL {
			d.fail("version 2 write without CheckACL (written as version 1)")
		}
	}
	return w
}

// EntryType implements Command.
func (*CreateSession) EntryType() EntryType { return EntryCreateSession }

// CreateSession payload: timeout varint, time varint.
func (c *CreateSession) appendPayload(out []byte) []byte {
	out = appendVarint(out, int64(c.TimeoutMs))
	return appendVarint(out, c.Time)
}

// EntryType implements Command.
func (*CloseSession) EntryType() EntryType { return EntryCloseSession }

// CloseSession payload: session varint, time varint.
func (c *CloseSession) appendPayload(out []byte) []byte {
	out = appendVarint(out, c.Session)
	return appendVarint(out, c.Time)
}

// EntryType implements Command.
func (*ExpireSessions) EntryType() EntryType { return EntryExpireSessions }

// ExpireSessions payload: time varint, uvarint count × session varint.
func (c *ExpireSessions) appendPayload(out []byte) []byte {
	out = appendVarint(out, c.Time)
	out = appendUvarint(out, uint64(len(c.Sessions)))
	for _, s := range c.Sessions {
		out = appendVarint(out, s)
	}
	return out
}

func decodeExpireSessions(d *decoder) *ExpireSessions {
	c := &ExpireSessions{Time: d.varint("time")}
	n := d.count("session count", 1)
	c.Sessions = make([]int64, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c.Sessions = append(c.Sessions, d.varint("session"))
	}
	return c
}

// EntryType implements Command.
func (*CleanupNodes) EntryType() EntryType { return EntryCleanupNodes }

// CleanupNodes payload: time varint, uvarint count × path string.
func (c *CleanupNodes) appendPayload(out []byte) []byte {
	out = appendVarint(out, c.Time)
	out = appendUvarint(out, uint64(len(c.Paths)))
	for _, p := range c.Paths {
		out = appendString(out, p)
	}
	return out
}

func decodeCleanupNodes(d *decoder) *CleanupNodes {
	c := &CleanupNodes{Time: d.varint("time")}
	n := d.count("path count", 1)
	c.Paths = make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c.Paths = append(c.Paths, d.string("path"))
	}
	return c
}

// EntryType implements Command.
func (*SetPhase) EntryType() EntryType { return EntrySetPhase }

// setPhaseVersionGuard is the SetPhase payload version that carries Guard.
const setPhaseVersionGuard = 2

func (c *SetPhase) payloadVersion() byte {
	if c.Guard != nil {
		return setPhaseVersionGuard
	}
	return entryVersion
}

// SetPhase payload: phase byte, flags byte (bit 0: rollback), adopt timeout varint,
// time varint; version 2 adds the guard (key string, value bytes).
func (c *SetPhase) appendPayload(out []byte) []byte {
	out = append(out, byte(c.Phase), boolByte(c.Rollback))
	out = appendVarint(out, int64(c.AdoptTimeoutMs))
	out = appendVarint(out, c.Time)
	if c.Guard != nil {
		out = appendString(out, c.Guard.Key)
		out = appendBytes(out, c.Guard.Value)
	}
	return out
}

func decodeSetPhase(d *decoder, version byte) *SetPhase {
	c := &SetPhase{Phase: Phase(d.byte1("phase"))}
	flags := d.byte1("flags")
	if flags&^1 != 0 {
		d.fail(fmt.Sprintf("unknown flags %#x", flags))
	}
	c.Rollback = flags&1 != 0
	c.AdoptTimeoutMs = d.int32v("adopt timeout")
	c.Time = d.varint("time")
	if version >= setPhaseVersionGuard {
		c.Guard = &Checkpoint{Key: d.string("guard key"), Value: d.bytes("guard value")}
	}
	return c
}

// EntryType implements Command.
func (*CompactTombstones) EntryType() EntryType { return EntryCompactTombstones }

// CompactTombstones payload: zxid varint.
func (c *CompactTombstones) appendPayload(out []byte) []byte {
	return appendVarint(out, c.UpToZxid)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// EntryType implements Command.
func (*SourceBatch) EntryType() EntryType { return EntrySourceBatch }

// SourceBatch payload:
//
//	uvarint txn count, count × { uvarint length, SourceTxn payload }
func (b *SourceBatch) appendPayload(out []byte) []byte {
	out = appendUvarint(out, uint64(len(b.Txns)))
	for _, tx := range b.Txns {
		p := tx.appendPayload(nil)
		out = appendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

func decodeSourceBatch(d *decoder) *SourceBatch {
	n := d.count("txn count", 4)
	b := &SourceBatch{Txns: make([]*SourceTxn, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		p := d.rawString("txn")
		if d.err != nil {
			break
		}
		sub := &decoder{b: p}
		tx := decodeSourceTxn(sub)
		if err := sub.finish(); err != nil {
			d.fail(fmt.Sprintf("txn %d: %v", i, err))
			break
		}
		b.Txns = append(b.Txns, tx)
	}
	return b
}

// SourceTxnZxid returns the zxid of an encoded SourceTxn entry (Encode of a
// *SourceTxn) without decoding the rest; false if e is not one.
func SourceTxnZxid(e []byte) (int64, bool) {
	if len(e) <= entryHeaderSize || EntryType(e[0]) != EntrySourceTxn || e[1] != entryVersion {
		return 0, false
	}
	z, n := binary.Varint(e[entryHeaderSize:])
	return z, n > 0
}

// EncodeSourceBatch joins encoded SourceTxn entries (Encode of *SourceTxn, as
// the dual-write proxy queues them) into one SourceBatch entry without
// decoding them.
func EncodeSourceBatch(entries [][]byte) ([]byte, error) {
	size := entryHeaderSize + binary.MaxVarintLen64
	for _, e := range entries {
		size += len(e) + binary.MaxVarintLen64
	}
	out := make([]byte, 0, size)
	out = append(out, byte(EntrySourceBatch), entryVersion)
	out = appendUvarint(out, uint64(len(entries)))
	for i, e := range entries {
		if len(e) < entryHeaderSize || EntryType(e[0]) != EntrySourceTxn || e[1] != entryVersion {
			return nil, fmt.Errorf("%w: batch member %d is not a version %d SourceTxn entry", ErrBadCommand, i, entryVersion)
		}
		p := e[entryHeaderSize:]
		out = appendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// EntryType implements Command.
func (*SourceSessions) EntryType() EntryType { return EntrySourceSessions }

// SourceSessions payload:
//
//	uvarint open count, count × { session varint, timeout varint }
//	uvarint closed count, count × session varint
func (c *SourceSessions) appendPayload(out []byte) []byte {
	out = appendUvarint(out, uint64(len(c.Open)))
	for _, s := range c.Open {
		out = appendVarint(out, s.ID)
		out = appendVarint(out, int64(s.TimeoutMs))
	}
	out = appendUvarint(out, uint64(len(c.Closed)))
	for _, id := range c.Closed {
		out = appendVarint(out, id)
	}
	return out
}

func decodeSourceSessions(d *decoder) *SourceSessions {
	c := &SourceSessions{}
	n := d.count("open session count", 2)
	c.Open = make([]SourceSession, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c.Open = append(c.Open, SourceSession{ID: d.varint("session"), TimeoutMs: d.int32v("timeout")})
	}
	n = d.count("closed session count", 1)
	c.Closed = make([]int64, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c.Closed = append(c.Closed, d.varint("session"))
	}
	return c
}

// EntryType implements Command.
func (*SetCheckpoint) EntryType() EntryType { return EntrySetCheckpoint }

// SetCheckpoint payload: key string, value bytes (nil: remove).
func (c *SetCheckpoint) appendPayload(out []byte) []byte {
	out = appendString(out, c.Key)
	return appendBytes(out, c.Value)
}
