package znode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The snapshot file format is drawn in the package documentation ("Snapshot file
// format"); the constants below are its vocabulary.

// SnapshotFormatVersion is the snapshot format version this package writes and reads.
const SnapshotFormatVersion = 1

const (
	// MaxSnapshotHeaderJSON bounds the header's JSON (1 MiB), so that a corrupt length
	// cannot make a reader allocate without bound.
	MaxSnapshotHeaderJSON = 1 << 20
	// MaxSnapshotRecordPayload bounds one record's payload (64 MiB). A larger length
	// is corruption.
	MaxSnapshotRecordPayload = 64 << 20
)

const (
	snapshotMagic    = "ZK2RSNAP"
	snapshotEndMagic = "ZK2REND\x00"

	snapshotFlagZstd   uint16 = 1 << 0
	snapshotKnownFlags        = snapshotFlagZstd

	snapshotHeaderPrefixSize = 16 // magic, version, flags, JSON length
	snapshotRecordHeaderSize = 5  // payload length, type
	snapshotRecordCRCSize    = 4
	snapshotTrailerSize      = 40
	snapshotFooterSize       = snapshotTrailerSize + 4 + 8 // trailer, CRC, end magic

	// snapshotZstdWindow is the zstd window the writer uses and the largest a reader
	// accepts, which bounds a reader's memory on a corrupt frame header.
	snapshotZstdWindow = 8 << 20
)

var (
	snapshotCRCTable = crc32.MakeTable(crc32.Castagnoli)
	snapshotBE       = binary.BigEndian
)

// RecordType is the type byte of a snapshot record.
//
// Types 2–63 are reserved for this package and a reader rejects them; types 64–254
// belong to applications (the Raft journal's sessions and metadata) and are passed
// through as raw payloads.
type RecordType uint8

// The record types.
const (
	RecordNode RecordType = 1 // a znode; see Node

	FirstApplicationRecord RecordType = 64  // lowest type an application may use
	LastApplicationRecord  RecordType = 254 // highest type an application may use

	RecordEnd RecordType = 255 // the last record of the body; its payload is the trailer
)

// IsApplication reports whether t is in the range left to applications.
func (t RecordType) IsApplication() bool {
	return t >= FirstApplicationRecord && t <= LastApplicationRecord
}

func (t RecordType) String() string {
	switch {
	case t == RecordNode:
		return "node"
	case t == RecordEnd:
		return "end"
	case t == RecordSession:
		return "session"
	case t.IsApplication():
		return fmt.Sprintf("application(%d)", uint8(t))
	}
	return fmt.Sprintf("reserved(%d)", uint8(t))
}

// SnapshotKind says what wrote a snapshot.
type SnapshotKind string

// The snapshot kinds.
const (
	SnapshotKindExport SnapshotKind = "export" // `zk2raft export`
	SnapshotKindFSM    SnapshotKind = "fsm"    // a Raft FSM snapshot of the journal
)

// SnapshotHeader describes a snapshot. It is stored as JSON so that fields can be
// added without a format version change; readers ignore fields they do not know.
type SnapshotHeader struct {
	// Source names where the tree came from: "zk://127.0.0.1:2181/" or "journal node-1".
	Source string `json:"source"`
	// StartZxid is the zxid at which the walk started (the journal's applied zxid for
	// an FSM snapshot).
	StartZxid int64 `json:"start_zxid"`
	// CreatedAt is when the snapshot was started, in UTC. The writer fills in the
	// current time when it is zero.
	CreatedAt time.Time `json:"created_at"`
	// ToolVersion is the version of the zk2raft build that wrote the file.
	ToolVersion string `json:"tool_version"`
	// Filters records what an export left out.
	Filters SnapshotFilters `json:"filters"`
	// Kind says whether this is an export or an FSM snapshot.
	Kind SnapshotKind `json:"kind"`
	// ExtendedTypes says whether the source ran with ZooKeeper's extended ephemeral
	// types, without which a raw owner with top byte 0xFF is a session id, not a TTL;
	// see EphemeralTypeOf.
	ExtendedTypes bool `json:"extended_types"`
	// Meta holds extensions.
	Meta map[string]string `json:"meta,omitempty"`
}

// SnapshotFilters records the options an export was taken with.
type SnapshotFilters struct {
	Path       string   `json:"path"`       // subtree exported ("/" for all)
	Exclude    []string `json:"exclude"`    // subtrees left out
	Ephemerals string   `json:"ephemerals"` // what was done with ephemeral nodes
}

// SnapshotTrailer summarizes a snapshot's body. It is stored twice: as the payload of
// the end record, inside the CRC-protected (and possibly compressed) body, and in the
// fixed-size footer, where ReadSnapshotTrailer finds it without reading the body.
type SnapshotTrailer struct {
	NodeCount   uint64 // node records
	RecordCount uint64 // records of every type except the end record
	Digest      Digest // sum of NodeDigest over the node records
	MaxZxid     int64  // largest czxid, mzxid or pzxid, or zxid given to ObserveZxid
	// BodyLength is the size of the body in the file, in bytes: the compressed size
	// when the body is compressed. In the end record it is always 0, because the end
	// record is part of the body it would have to measure.
	BodyLength int64
}

func (t SnapshotTrailer) appendTo(b []byte) []byte {
	b = snapshotBE.AppendUint64(b, t.NodeCount)
	b = snapshotBE.AppendUint64(b, t.RecordCount)
	b = snapshotBE.AppendUint64(b, uint64(t.Digest))
	b = snapshotBE.AppendUint64(b, uint64(t.MaxZxid))
	return snapshotBE.AppendUint64(b, uint64(t.BodyLength))
}

func decodeSnapshotTrailer(b []byte) SnapshotTrailer {
	return SnapshotTrailer{
		NodeCount:   snapshotBE.Uint64(b[0:]),
		RecordCount: snapshotBE.Uint64(b[8:]),
		Digest:      Digest(snapshotBE.Uint64(b[16:])),
		MaxZxid:     int64(snapshotBE.Uint64(b[24:])),
		BodyLength:  int64(snapshotBE.Uint64(b[32:])),
	}
}

var (
	// ErrCorruptSnapshot is matched (with errors.Is) by every error that reports a
	// snapshot file as damaged, truncated or not a snapshot at all. Such errors are
	// *SnapshotError values and name the offset of the damage.
	ErrCorruptSnapshot = errors.New("znode: corrupt snapshot")
	// ErrTruncatedSnapshot is matched by the corruption errors that found the file
	// ending early.
	ErrTruncatedSnapshot = errors.New("znode: truncated snapshot")
	// ErrUnsupportedSnapshot is returned (wrapped) for an intact snapshot of a format
	// version or with flags this build does not know.
	ErrUnsupportedSnapshot = errors.New("znode: unsupported snapshot format")
	// ErrSnapshotWriterClosed is returned by writes after Close, Commit or Abort.
	ErrSnapshotWriterClosed = errors.New("znode: snapshot writer closed")
	// ErrSnapshotReaderClosed is returned by Next after Close, unless it had already
	// returned io.EOF.
	ErrSnapshotReaderClosed = errors.New("znode: snapshot reader closed")
)

// SnapshotError reports a damaged snapshot and where the damage was found.
// It matches ErrCorruptSnapshot, and ErrTruncatedSnapshot when Truncated.
type SnapshotError struct {
	Path string // the file, when known
	// Offset is where the problem was found: a byte offset in the file, or, when
	// Compressed is set, in the decompressed body.
	Offset     int64
	Compressed bool
	Truncated  bool   // the file ends early
	Reason     string // what is wrong
	Err        error  // the underlying error, if any
}

func (e *SnapshotError) Error() string {
	s := "znode: snapshot "
	if e.Path != "" {
		s += e.Path + " "
	}
	if e.Truncated {
		s += "truncated at "
	} else {
		s += "corrupt at "
	}
	if e.Compressed {
		s += fmt.Sprintf("body offset %d (uncompressed): ", e.Offset)
	} else {
		s += fmt.Sprintf("offset %d: ", e.Offset)
	}
	s += e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is match ErrCorruptSnapshot and, for truncation, ErrTruncatedSnapshot.
func (e *SnapshotError) Is(target error) bool {
	return target == ErrCorruptSnapshot || (e.Truncated && target == ErrTruncatedSnapshot)
}

func (e *SnapshotError) Unwrap() error { return e.Err }

// Record is one record read from a snapshot body.
type Record struct {
	Type RecordType
	// Node is set for node records. It is a fresh value the caller may keep.
	Node *Node
	// Payload is set for application records. It is only valid until the next call
	// to the reader; copy it to keep it.
	Payload []byte
}

// nodePayloadSize is the encoded size of n's record payload, computed in int64 so
// that nothing overflows before the size check.
func nodePayloadSize(n *Node) int64 {
	size := int64(4+len(n.Path)) + 4 + int64(len(n.Data)) + 4 + 60 + 4
	for i := range n.ACL {
		size += int64(12 + len(n.ACL[i].ID.Scheme) + len(n.ACL[i].ID.ID))
	}
	return size
}

// appendNodePayload appends n's record payload: jute-style big-endian path, data, ACL list,
// StatPersisted and child count.
func appendNodePayload(b []byte, n *Node) []byte {
	b = appendSnapshotUstring(b, n.Path)
	if n.Data == nil {
		b = snapshotBE.AppendUint32(b, 0xFFFF_FFFF)
	} else {
		b = snapshotBE.AppendUint32(b, uint32(len(n.Data)))
		b = append(b, n.Data...)
	}
	if n.ACL == nil {
		b = snapshotBE.AppendUint32(b, 0xFFFF_FFFF)
	} else {
		b = snapshotBE.AppendUint32(b, uint32(len(n.ACL)))
		for _, a := range n.ACL {
			b = snapshotBE.AppendUint32(b, uint32(a.Perms))
			b = appendSnapshotUstring(b, a.ID.Scheme)
			b = appendSnapshotUstring(b, a.ID.ID)
		}
	}
	st := &n.Stat
	b = snapshotBE.AppendUint64(b, uint64(st.Czxid))
	b = snapshotBE.AppendUint64(b, uint64(st.Mzxid))
	b = snapshotBE.AppendUint64(b, uint64(st.Ctime))
	b = snapshotBE.AppendUint64(b, uint64(st.Mtime))
	b = snapshotBE.AppendUint32(b, uint32(st.Version))
	b = snapshotBE.AppendUint32(b, uint32(st.Cversion))
	b = snapshotBE.AppendUint32(b, uint32(st.Aversion))
	b = snapshotBE.AppendUint64(b, uint64(st.EphemeralOwner))
	b = snapshotBE.AppendUint64(b, uint64(st.Pzxid))
	return snapshotBE.AppendUint32(b, uint32(n.NumChildren))
}

func appendSnapshotUstring(b []byte, s string) []byte {
	b = snapshotBE.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// nodePayloadDecoder walks a node record's payload. The first failure sets bad and
// every later read returns zero values.
type nodePayloadDecoder struct {
	b      []byte
	bad    string
	intern map[string]string
}

func (d *nodePayloadDecoder) fail(reason string) {
	if d.bad == "" {
		d.bad = reason
	}
	d.b = nil
}

func (d *nodePayloadDecoder) u32(what string) uint32 {
	if len(d.b) < 4 {
		d.fail("payload ends inside " + what)
		return 0
	}
	v := snapshotBE.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *nodePayloadDecoder) u64(what string) uint64 {
	if len(d.b) < 8 {
		d.fail("payload ends inside " + what)
		return 0
	}
	v := snapshotBE.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// bytes returns the next length-prefixed field without copying; nil for length −1
// when nilOK.
func (d *nodePayloadDecoder) bytes(what string, nilOK bool) []byte {
	if len(d.b) < 4 {
		d.fail("payload ends inside " + what + " length")
		return nil
	}
	n := int32(snapshotBE.Uint32(d.b))
	d.b = d.b[4:]
	switch {
	case n == -1 && nilOK:
		return nil
	case n < 0:
		d.fail(fmt.Sprintf("%s length %d", what, n))
		return nil
	case int64(n) > int64(len(d.b)):
		d.fail(fmt.Sprintf("%s length %d exceeds the %d bytes left in the payload", what, n, len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// internedString returns a string for b, sharing one copy between the many nodes
// that carry the same ACL scheme and id.
func (d *nodePayloadDecoder) internedString(b []byte) string {
	const maxLen, maxEntries = 256, 4096
	if len(b) > maxLen {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < maxEntries {
		d.intern[s] = s
	}
	return s
}

// decodeNodePayload parses a node record's payload into a fresh Node, copying everything
// out of p. It returns a reason instead of a Node when the payload is malformed.
func decodeNodePayload(p []byte, intern map[string]string) (*Node, string) {
	d := nodePayloadDecoder{b: p, intern: intern}
	n := new(Node)
	path := d.bytes("path", false)
	data := d.bytes("data", true)
	if d.bad == "" {
		n.Path = string(path)
		if data != nil {
			n.Data = append(make([]byte, 0, len(data)), data...)
		}
	}
	if count := int32(d.u32("ACL count")); d.bad == "" && count != -1 {
		// Each entry takes at least 12 bytes, which bounds the allocation by the
		// payload actually read.
		if count < 0 || int64(count)*12 > int64(len(d.b)) {
			d.fail(fmt.Sprintf("ACL count %d does not fit the %d bytes left in the payload", count, len(d.b)))
		} else {
			n.ACL = make([]ACL, count)
			for i := range n.ACL {
				n.ACL[i].Perms = Perm(d.u32("ACL perms"))
				n.ACL[i].ID.Scheme = d.internedString(d.bytes("ACL scheme", false))
				n.ACL[i].ID.ID = d.internedString(d.bytes("ACL id", false))
			}
		}
	}
	st := &n.Stat
	st.Czxid = int64(d.u64("stat"))
	st.Mzxid = int64(d.u64("stat"))
	st.Ctime = int64(d.u64("stat"))
	st.Mtime = int64(d.u64("stat"))
	st.Version = int32(d.u32("stat"))
	st.Cversion = int32(d.u32("stat"))
	st.Aversion = int32(d.u32("stat"))
	st.EphemeralOwner = int64(d.u64("stat"))
	st.Pzxid = int64(d.u64("stat"))
	n.NumChildren = int32(d.u32("child count"))
	if d.bad != "" {
		return nil, d.bad
	}
	if len(d.b) != 0 {
		return nil, fmt.Sprintf("%d unexpected bytes after the child count", len(d.b))
	}
	return n, ""
}
