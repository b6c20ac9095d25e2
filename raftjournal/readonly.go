package raftjournal

// Read-only opening of a data directory (zk2raft verify journal://DATA_DIR).
//
// OpenReadOnly rebuilds a node's state machine from its data directory without
// starting raft: the newest snapshot is restored into a fresh FSM, and the log
// entries after it are replayed through the FSM's apply path. It writes nothing
// to the directory except the LOCK file (see below):
//
//   - snapshots are read straight from snapshots/ID/{meta.json,state.bin}, with
//     raft's CRC-64 checked, instead of through raft's file snapshot store (which
//     creates directories and a permission-test file when opened);
//   - a raft-wal log is read without raft-wal itself (which recovers and may
//     rewrite its tail segment and metadata when opened): wal-meta.db is opened
//     with bbolt's read-only mode (a shared flock) for the segment list, and the
//     segment files are read with raft-wal's own segment reader, committed
//     frames only, bounded by the list's logical ranges (head and tail
//     truncations honoured);
//   - a bbolt log (LogStoreBolt) is opened with bbolt's read-only mode.
//
// Every entry's CRC-32C trailer (checkedLogStore) is checked; a bad entry, a
// corrupt newest snapshot or a gap between the snapshot and the log is an
// error naming the file, as it is when a node starts (recoverState): the view
// never silently falls back to an older snapshot.
//
// Locking: the data dir's LOCK is taken with lockDataDir (non-blocking; like a
// node, it records this process's pid in the file while held), so a directory a
// running node holds is refused with ErrDataDirLocked naming the file and the
// holder's pid. The lock is released before OpenReadOnly returns: the state is
// then in memory, and a node may start on the directory while it is examined.
//
// Uncommitted tail: offline, entries after the cluster's commit index cannot be
// told from committed ones (the commit index is not persisted), so the view
// replays every entry the log holds. For a node that crashed, or was cut off
// from its leader, it may include a tail of entries the cluster never committed
// (and that a new leader would truncate). ReadOnlyInfo reports the last index
// and term replayed, to compare with the cluster's.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
	"go.etcd.io/bbolt"

	"github.com/zk2raft/zk2raft/znode"
)

// ReadOnlyInfo describes what OpenReadOnly read.
type ReadOnlyInfo struct {
	DataDir  string
	LogStore LogStoreKind // "" when the directory holds no log store
	// SnapshotID, SnapshotIndex and SnapshotTerm name the snapshot restored
	// (empty and zero without one).
	SnapshotID    string
	SnapshotIndex uint64
	SnapshotTerm  uint64
	// Entries is the number of log entries replayed after the snapshot (every
	// type), Commands the LogCommand entries among them applied to the FSM.
	Entries, Commands int
	// LastIndex and LastTerm are the last raft entry the view reflects: the last
	// one replayed, or the snapshot's. They may lie past the cluster's commit
	// index (see "Uncommitted tail" above).
	LastIndex, LastTerm uint64
}

// OpenReadOnly rebuilds the state machine of the node whose data directory is
// dataDir, without starting raft and without writing to the directory (but for
// its LOCK file), and returns it with a description of what was read. It fails
// with ErrDataDirLocked while a node runs on the directory. See the comment at
// the top of readonly.go.
func OpenReadOnly(dataDir string, logger *slog.Logger) (*FSM, ReadOnlyInfo, error) {
	info := ReadOnlyInfo{DataDir: dataDir}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, info, fmt.Errorf("raftjournal: data dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, info, fmt.Errorf("raftjournal: data dir %s is not a directory", dataDir)
	}
	walDir := filepath.Join(dataDir, walDirName)
	boltPath := filepath.Join(dataDir, boltFileName)
	snapDir := filepath.Join(dataDir, snapshotDirName)
	hasWAL, hasBolt, hasSnaps := exists(walDir), exists(boltPath), exists(snapDir)
	switch {
	case hasWAL && hasBolt:
		return nil, info, fmt.Errorf("raftjournal: data dir %s holds two log stores (%s and %s)", dataDir, walDir, boltPath)
	case hasWAL:
		info.LogStore = LogStoreWAL
	case hasBolt:
		info.LogStore = LogStoreBolt
	case !hasSnaps:
		return nil, info, fmt.Errorf("raftjournal: %s is not a journal data directory (no %s, %s or %s)", dataDir, walDirName, boltFileName, snapshotDirName)
	}

	lock, err := lockDataDir(dataDir)
	if err != nil {
		if errors.Is(err, ErrDataDirLocked) {
			return nil, info, fmt.Errorf("%w; a running node's directory cannot be opened read-only: stop the node, or compare with its ZooKeeper port (zk://) or a snapshot (snap://)", err)
		}
		return nil, info, err
	}
	defer func() { _ = lock.release() }()

	// The checks a node makes before it starts (datadir.go): a damaged log
	// is never replayed as if it were whole.
	stopped, err := readStopped(dataDir)
	if err != nil {
		return nil, info, err
	}
	if info.LogStore != "" || stopped != nil {
		kind := info.LogStore
		if kind == "" {
			kind = stopped.LogStore
		}
		if err := checkLogFiles(dataDir, kind, stopped); err != nil {
			return nil, info, err
		}
	}

	fsm, err := NewFSM(Config{Logger: logger})
	if err != nil {
		return nil, info, err
	}
	if err := readOnlyRestore(fsm, snapDir, &info); err != nil {
		return nil, info, err
	}
	info.LastIndex, info.LastTerm = info.SnapshotIndex, info.SnapshotTerm
	r := &replayer{fsm: fsm, info: &info, prev: info.SnapshotIndex}
	switch info.LogStore {
	case LogStoreWAL:
		err = r.walLog(walDir)
	case LogStoreBolt:
		err = r.boltLog(boltPath)
	}
	if err != nil {
		return nil, info, err
	}
	if stopped != nil && info.LastIndex < stopped.LastIndex {
		file := snapDir
		switch info.LogStore {
		case LogStoreWAL:
			file = walSegmentFor(walDir, info.LastIndex+1)
		case LogStoreBolt:
			file = boltPath
		}
		return nil, info, damaged(file, true, "the Raft log ends at index %d, but the node stopped cleanly at index %d (%s): entries %d..%d are lost",
			info.LastIndex, stopped.LastIndex, stoppedFileName, info.LastIndex+1, stopped.LastIndex)
	}
	logger.Info("opened data dir read-only", "dir", dataDir, "log-store", string(info.LogStore),
		"snapshot", info.SnapshotID, "snapshot-index", info.SnapshotIndex, "entries", info.Entries,
		"last-index", info.LastIndex, "last-term", info.LastTerm)
	return fsm, info, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readOnlyRestore restores the newest snapshot under snapDir (raft's order:
// term, index, id) into fsm, checking its CRC-64 as raft's store does.
func readOnlyRestore(fsm *FSM, snapDir string, info *ReadOnlyInfo) error {
	ents, err := os.ReadDir(snapDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("raftjournal: read snapshot dir: %w", err)
	}
	type fileMeta struct {
		raft.SnapshotMeta
		CRC []byte
	}
	var metas []*fileMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		p := filepath.Join(snapDir, e.Name(), "meta.json")
		b, err := os.ReadFile(p)
		m := &fileMeta{}
		if err == nil {
			err = json.Unmarshal(b, m)
		}
		if err == nil && (m.Version < raft.SnapshotVersionMin || m.Version > raft.SnapshotVersionMax) {
			err = fmt.Errorf("unsupported snapshot version %d", m.Version)
		}
		if err != nil {
			return fmt.Errorf("raftjournal: snapshot metadata %s: %w: %v", p, znode.ErrCorruptSnapshot, err)
		}
		metas = append(metas, m)
	}
	if len(metas) == 0 {
		return nil
	}
	m := slices.MaxFunc(metas, func(a, b *fileMeta) int {
		return cmp.Or(cmp.Compare(a.Term, b.Term), cmp.Compare(a.Index, b.Index), cmp.Compare(a.ID, b.ID))
	})
	path := filepath.Join(snapDir, m.ID, stateFileName)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("raftjournal: snapshot %s: %w", path, err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return fmt.Errorf("raftjournal: snapshot %s: %w", path, err)
	}
	if !bytes.Equal(h.Sum(nil), m.CRC) {
		f.Close()
		return fmt.Errorf("raftjournal: snapshot %s: %w: checksum of the whole file does not match meta.json", path, znode.ErrCorruptSnapshot)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("raftjournal: snapshot %s: %w", path, err)
	}
	if err := fsm.Restore(f); err != nil { // Restore closes f
		return fmt.Errorf("raftjournal: restore snapshot %s: %w", path, err)
	}
	info.SnapshotID, info.SnapshotIndex, info.SnapshotTerm = m.ID, m.Index, m.Term
	return nil
}

// replayer applies the log entries after the snapshot, in order, checking each
// one's CRC-32C and that none is missing.
type replayer struct {
	fsm  *FSM
	info *ReadOnlyInfo
	prev uint64 // the last index applied (or covered by the snapshot)
}

func (r *replayer) apply(l *raft.Log, file string) error {
	if l.Index <= r.info.SnapshotIndex {
		return nil
	}
	n := len(l.Data) - logCRCSize
	if n < 0 {
		return fmt.Errorf("%w: %s: entry %d has no checksum (%d bytes)", ErrCorruptLog, file, l.Index, len(l.Data))
	}
	want := binary.BigEndian.Uint32(l.Data[n:])
	if got := logCRC(l, l.Data[:n]); got != want {
		return fmt.Errorf("%w: %s: entry %d (term %d) fails its checksum (%08x, stored %08x)", ErrCorruptLog, file, l.Index, l.Term, got, want)
	}
	switch {
	case r.prev == 0 && r.info.SnapshotIndex == 0 && l.Index != 1:
		return damaged(filepath.Join(r.info.DataDir, snapshotDirName), false, "holds no snapshot, and the Raft log starts at index %d: entries 1..%d are in neither (was the directory emptied?)", l.Index, l.Index-1)
	case r.prev == 0 && r.info.SnapshotIndex == 0:
		// No snapshot: the log starts at its beginning.
	case l.Index != r.prev+1:
		return fmt.Errorf("%w: %s: entries %d..%d after %d are missing", ErrCorruptLog, file, r.prev+1, l.Index-1, r.prev)
	}
	if l.Type == raft.LogCommand {
		if _, err := r.fsm.ApplyEntry(l.Index, l.Data[:n:n]); err != nil {
			return fmt.Errorf("raftjournal: %s: replay entry %d: %w", file, l.Index, err)
		}
		r.info.Commands++
	}
	r.info.Entries++
	r.prev = l.Index
	r.info.LastIndex, r.info.LastTerm = l.Index, l.Term
	return nil
}

// walLog replays a raft-wal directory without opening it with raft-wal.
func (r *replayer) walLog(dir string) error {
	ps, ok, err := readWALMeta(dir)
	if err != nil || !ok {
		return err // no wal-meta.db: raft-wal never committed a segment list
	}
	filer := segment.NewFiler(dir, fs.New())
	codec := &wal.BinaryCodec{}
	for i, seg := range ps.Segments {
		lo := max(seg.BaseIndex, seg.MinIndex)
		var hi uint64 // inclusive; 0: to the segment's last committed entry
		if !seg.SealTime.IsZero() && seg.MaxIndex > 0 {
			hi = seg.MaxIndex
		}
		if i+1 < len(ps.Segments) {
			if next := ps.Segments[i+1].BaseIndex; next > 0 && (hi == 0 || next-1 < hi) {
				hi = next - 1
			}
		}
		if hi != 0 && hi <= r.info.SnapshotIndex {
			continue
		}
		if seg.Codec != wal.CodecBinaryV1 {
			return fmt.Errorf("%w: %s: unknown codec %d", ErrCorruptLog, walSegmentFor(dir, seg.BaseIndex), seg.Codec)
		}
		file := filepath.Join(dir, fmt.Sprintf("%020d-%016x.wal", seg.BaseIndex, seg.ID))
		after := max(lo-1, r.info.SnapshotIndex) // DumpSegment's bounds are exclusive
		var before uint64
		if hi != 0 {
			before = hi + 1
		}
		var derr error
		err := filer.DumpSegment(seg.BaseIndex, seg.ID, after, before, func(_ types.SegmentInfo, e types.LogEntry) (bool, error) {
			var l raft.Log
			if err := codec.Decode(e.Data, &l); err != nil {
				derr = fmt.Errorf("%w: %s: entry %d: %v", ErrCorruptLog, file, e.Index, err)
				return false, derr
			}
			if l.Index != e.Index {
				derr = fmt.Errorf("%w: %s: entry %d reads back as entry %d", ErrCorruptLog, file, e.Index, l.Index)
				return false, derr
			}
			l.Data = bytes.Clone(l.Data) // e.Data is reused by the reader
			if derr = r.apply(&l, file); derr != nil {
				return false, derr
			}
			return true, nil
		})
		if derr != nil {
			return derr
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorruptLog, file, err)
		}
	}
	return nil
}

// boltLog replays a raft-boltdb file opened read-only.
func (r *replayer) boltLog(path string) error {
	b, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		return fmt.Errorf("%w: open log store %s read-only: %v", ErrCorruptLog, path, err)
	}
	defer b.Close()
	first, err := b.FirstIndex()
	if err != nil {
		return fmt.Errorf("%w: %s: read first index: %v", ErrCorruptLog, path, err)
	}
	last, err := b.LastIndex()
	if err != nil {
		return fmt.Errorf("%w: %s: read last index: %v", ErrCorruptLog, path, err)
	}
	if last == 0 {
		return nil
	}
	for i := max(first, r.info.SnapshotIndex+1); i <= last; i++ {
		var l raft.Log
		if err := b.GetLog(i, &l); err != nil {
			return fmt.Errorf("%w: %s: entry %d of %d..%d: %v", ErrCorruptLog, path, i, first, last, err)
		}
		if l.Index != i {
			return fmt.Errorf("%w: %s: entry %d reads back as entry %d", ErrCorruptLog, path, i, l.Index)
		}
		if err := r.apply(&l, path); err != nil {
			return err
		}
	}
	return nil
}
