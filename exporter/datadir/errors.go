package datadir

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Sentinel errors. Damage to a file is reported as a *FileError naming the
// file and the offset, which matches ErrCorrupt (and the more specific
// sentinel it carries); problems with the directory as a whole (a missing
// log, a snapshot no log reaches) name the files involved.
var (
	// ErrCorrupt is matched by every error that reports a snapshot or
	// transaction log as damaged: a bad magic number, a checksum (Adler32)
	// that does not match, a record that does not decode, a length out of
	// range, a file that ends inside a snapshot.
	ErrCorrupt = errors.New("datadir: corrupt file")
	// ErrChecksum is matched by the corruption errors that found a stored
	// Adler32 (a txn's, or a snapshot's seal) different from the bytes'.
	ErrChecksum = errors.New("datadir: checksum mismatch")
	// ErrUnknownTxn is matched by the error for a txn (or a multi's sub-txn)
	// of a type this package does not know: replaying around it would
	// silently lose what it did.
	ErrUnknownTxn = errors.New("datadir: unknown txn type")
	// ErrMissingLog is returned (wrapped) when the transaction logs do not
	// continue the sequence of zxids: a log file between the snapshot and the
	// next log, or between two logs, is missing.
	ErrMissingLog = errors.New("datadir: missing transaction log")
	// ErrNoLogs is matched, with ErrMissingLog, when the log directory holds
	// no transaction log at all: a server that has not logged a txn yet, or
	// the wrong directory.
	ErrNoLogs = errors.New("datadir: no transaction log yet")
	// ErrSnapshotAhead is returned (wrapped) when a snapshot is newer than
	// every transaction log: its state is fuzzy up to a zxid no log reaches,
	// so it cannot be brought to a point ZooKeeper vouched for.
	ErrSnapshotAhead = errors.New("datadir: snapshot newer than every transaction log")
	// ErrNoSnapshot is returned (wrapped) when the directory holds no valid
	// snapshot to start from.
	ErrNoSnapshot = errors.New("datadir: no valid snapshot")
	// ErrDigestMismatch is returned (wrapped) when the replayed tree's digest
	// differs from the one ZooKeeper recorded at the same zxid (a TxnDigest
	// or a snapshot's ZxidDigest): the replay is not ZooKeeper's tree.
	ErrDigestMismatch = errors.New("datadir: tree digest differs from ZooKeeper's")
	// ErrUnverified is returned (wrapped) when no digest ZooKeeper recorded
	// proves the tree at the zxid asked for (digests disabled on the server,
	// or the zxid inside a snapshot's fuzzy range).
	ErrUnverified = errors.New("datadir: no digest record proves the tree")
	// ErrZxidNotReached is returned (wrapped) when the logs end before the
	// zxid asked for (--to-zxid).
	ErrZxidNotReached = errors.New("datadir: transaction logs end before the zxid asked for")
	// ErrTruncatedLog is returned (wrapped) by a Follower when a log file it
	// has read from shrinks or changes under it: ZooKeeper truncated its log
	// (a follower resyncing with a new leader), dropping txns already read.
	ErrTruncatedLog = errors.New("datadir: transaction log truncated under the reader")
)

// FileError reports damage in one file of the data directory and where it is.
// It matches ErrCorrupt and, through Err, the specific sentinel.
type FileError struct {
	File   string // the file's path
	Offset int64  // byte offset in the file, or in the decompressed stream when Stream
	// Stream says Offset counts decompressed bytes (a gz or snappy snapshot).
	Stream bool
	Reason string
	Err    error // a more specific sentinel (ErrChecksum, ErrUnknownTxn), or a cause
}

func (e *FileError) Error() string {
	where := "offset"
	if e.Stream {
		where = "decompressed offset"
	}
	return fmt.Sprintf("datadir: %s %s %d: %s", filepath.Base(e.File), where, e.Offset, e.Reason)
}

// Is makes every FileError match ErrCorrupt.
func (e *FileError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the specific sentinel or cause.
func (e *FileError) Unwrap() error { return e.Err }

// Position names a place in a file: the start of a txn record.
type Position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

func (p Position) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s offset %d", filepath.Base(p.File), p.Offset)
}
