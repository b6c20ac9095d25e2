package znode

import (
	"encoding/binary"
	"fmt"
)

// RecordSession is the application record an export from a ZooKeeper data
// directory writes for each of ZooKeeper's sessions, after the nodes:
//
//	session id i64 | timeout ms i32        (12 bytes, big-endian)
//
// Its ephemerals are the nodes whose raw ephemeralOwner is the id. Readers
// that only want nodes skip it (NextNode); the journal's own FSM snapshots
// use other application types.
const RecordSession RecordType = 96

// Session is a ZooKeeper session: its id and negotiated timeout.
type Session struct {
	ID        int64 `json:"id"`
	TimeoutMs int32 `json:"timeout_ms"`
}

// AppendSessionPayload appends s as a RecordSession payload.
func AppendSessionPayload(b []byte, s Session) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(s.ID))
	return binary.BigEndian.AppendUint32(b, uint32(s.TimeoutMs))
}

// DecodeSessionPayload decodes a RecordSession payload.
func DecodeSessionPayload(p []byte) (Session, error) {
	if len(p) != 12 {
		return Session{}, fmt.Errorf("znode: session record of %d bytes, want 12", len(p))
	}
	return Session{ID: int64(binary.BigEndian.Uint64(p)), TimeoutMs: int32(binary.BigEndian.Uint32(p[8:]))}, nil
}
