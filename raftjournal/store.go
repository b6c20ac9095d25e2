package raftjournal

// Storage:
//
// The Raft log lives in hashicorp/raft-wal (LogStoreWAL, the default);
// raft-boltdb/v2 (LogStoreBolt) stays selectable for comparison. Both were
// measured with BenchmarkLogStore (bench_raft_test.go), which drives each store
// the way raft does (StoreLogs of a batch, one fsync per call, DeleteRange to
// compact behind a snapshot), through checkedLogStore, on the journal's two
// workloads:
//
//   - import: 2,500 entries of 1,000 nodes with 100-byte data (~160 KB each),
//     8 per write, ~400 MB in all, compacted to the last 100 entries whenever
//     more than 128 MB are retained;
//   - native: 256k single-create entries (~150 bytes), 64 per write (64
//     concurrent writers), compacted from 200k retained entries to 20k.
//
// Project machine (2 cores, shared, ext4 on a virtual disk), 2026-11-27, three
// runs under load averages of 8 to 11, lowest–highest:
//
//	                        raft-wal              raft-boltdb/v2        wal/bolt
//	import                  180–548 MB/s          63–308 MB/s           1.8–2.9×
//	  p99 write             5–64 ms               8–196 ms
//	native                  73k–222k entries/s    8.6k–77k entries/s    2.9–8.5×
//	  p99 write             0.7–5.3 ms            1.9–147 ms
//	disk after compaction   67 MB (one segment)   104–138 MB, never shrinks
//
// raft-wal wins where it matters for a migration. It appends each batch
// sequentially to a segment file with one fsync and frees a compacted log by
// deleting whole segments; bbolt copies every page of the B+tree path it
// touches, writes large values to fresh overflow pages, keeps freed pages in a
// freelist that grows with the retained log (its write cost rises with it: on
// a fresh, small database the two are close), and its file never shrinks. A
// bulk import retains a large log between snapshots by design (see
// "Snapshots" in compaction.go), which is bbolt's worst case. raft-wal is
// pinned at v0.4.2, which fixes hashicorp/raft-wal#31 (a log truncated inside
// the open segment could not be read after a restart; TestWALTailTruncation-
// SurvivesRestart); walrepair.go handles a crash in the middle of a segment
// rotation, which v0.4.2 does not.
//
// Neither store checks the entries it returns (raft-wal only checks its last
// commit on recovery), so every entry carries a CRC-32C of its index, term,
// type and data (checkedLogStore, below): a flipped bit in a log file is an
// error naming the file, never a silently different tree.
//
// On disk, under the data dir:
//
//	LOCK                          flock'd by the running process (pid inside)
//	raft/wal/NNN-ID.wal           raft-wal segments, and wal-meta.db (bbolt) holding
//	raft/wal/wal-meta.db          the segment list and Raft's term and vote
//	raft/raft.db                  or, with LogStoreBolt, one bbolt file for both
//	snapshots/ID/state.bin        FSM snapshots in the shared snapshot format
//	snapshots/ID/meta.json        raft's snapshot metadata (index, term, members, CRC-64)

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/zk2raft/zk2raft/znode"
)

var (
	// ErrCorruptLog is returned (wrapped, naming the file and index) when a Raft
	// log entry read back from disk fails its checksum or cannot be read.
	ErrCorruptLog = errors.New("raftjournal: corrupt raft log")
	// ErrDataDirLocked is returned by Open when another process holds the data
	// dir's lock file.
	ErrDataDirLocked = errors.New("raftjournal: data dir is locked by another process")
)

const (
	walDirName      = "raft/wal"
	boltFileName    = "raft/raft.db"
	snapshotDirName = "snapshots"
	stateFileName   = "state.bin"
)

// stores is a node's on-disk state.
type stores struct {
	log    *checkedLogStore
	stable raft.StableStore
	snaps  *snapshotStore
	close  func() error
}

// openStores opens (creating if needed) the log, stable and snapshot stores
// under dir.
func openStores(dir string, cfg *NodeConfig, logger hclog.Logger) (*stores, error) {
	kind := cfg.LogStore
	walDir := filepath.Join(dir, walDirName)
	boltPath := filepath.Join(dir, boltFileName)
	// A data dir written with one store must not be reopened with the other: the
	// snapshots would survive and the log and term would silently be empty.
	switch other := map[LogStoreKind]string{LogStoreWAL: boltPath, LogStoreBolt: walDir}[kind]; {
	case other == "":
	default:
		if _, err := os.Stat(other); err == nil {
			return nil, fmt.Errorf("raftjournal: data dir %s holds a log store at %s, but the node is configured for the %q store", dir, other, kind)
		}
	}
	st := &stores{}
	switch kind {
	case LogStoreWAL:
		if err := os.MkdirAll(walDir, 0o755); err != nil {
			return nil, fmt.Errorf("raftjournal: create log dir: %w", err)
		}
		segSize := wal.DefaultSegmentSize
		if cfg.WALSegmentBytes > 0 {
			segSize = cfg.WALSegmentBytes
		}
		if err := repairSealedTail(walDir, segSize, cfg.Logger); err != nil {
			return nil, err
		}
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(walDir, wal.WithMetaStore(meta), wal.WithLogger(logger.Named("wal")), wal.WithSegmentSize(segSize))
		if err != nil {
			_ = meta.Close()
			return nil, fmt.Errorf("%w: open log store %s: %v", ErrCorruptLog, walDir, err)
		}
		st.log = &checkedLogStore{LogStore: w, locate: func(index uint64) string { return walSegmentFor(walDir, index) }}
		st.stable = w
		// raft-wal's Close leaves its metadata database open (and flock'd).
		st.close = func() error { return errors.Join(w.Close(), meta.Close()) }
	case LogStoreBolt:
		if err := os.MkdirAll(filepath.Dir(boltPath), 0o755); err != nil {
			return nil, fmt.Errorf("raftjournal: create log dir: %w", err)
		}
		b, err := raftboltdb.New(raftboltdb.Options{Path: boltPath})
		if err != nil {
			return nil, fmt.Errorf("%w: open log store %s: %v", ErrCorruptLog, boltPath, err)
		}
		st.log = &checkedLogStore{LogStore: b, locate: func(uint64) string { return boltPath }}
		st.stable = b
		st.close = b.Close
	}
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, cfg.SnapshotRetain, logger.Named("snapshots"))
	if err != nil {
		_ = st.close()
		return nil, fmt.Errorf("raftjournal: open snapshot store in %s: %w", dir, err)
	}
	st.snaps = &snapshotStore{FileSnapshotStore: fss, dir: filepath.Join(dir, snapshotDirName)}
	return st, nil
}

// walSegmentFor names the raft-wal segment file that holds index: segments are
// named %020d-%016x.wal after their first index and id.
func walSegmentFor(dir string, index uint64) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dir
	}
	best, bestBase := "", uint64(0)
	for _, e := range ents {
		name := e.Name()
		base, _, ok := strings.Cut(strings.TrimSuffix(name, ".wal"), "-")
		if !ok || !strings.HasSuffix(name, ".wal") {
			continue
		}
		b, err := strconv.ParseUint(base, 10, 64)
		if err != nil || b > index {
			continue
		}
		if best == "" || b >= bestBase {
			best, bestBase = name, b
		}
	}
	if best == "" {
		return dir
	}
	return filepath.Join(dir, best)
}

// logCRCSize is the checksum trailer checkedLogStore appends to every entry.
const logCRCSize = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func logCRC(l *raft.Log, data []byte) uint32 {
	var h [17]byte
	binary.BigEndian.PutUint64(h[0:8], l.Index)
	binary.BigEndian.PutUint64(h[8:16], l.Term)
	h[16] = byte(l.Type)
	return crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, data)
}

// checkedLogStore stores every entry with a CRC-32C trailer over its index, term,
// type and data, and checks it on every read: neither raft-wal (outside its tail)
// nor bbolt checksums what it returns. The trailer is invisible to raft and the
// FSM. The caller's Log values are never modified (raft keeps using them).
type checkedLogStore struct {
	raft.LogStore
	locate func(index uint64) string // the file an index lives in, for errors
}

var _ raft.MonotonicLogStore = (*checkedLogStore)(nil)

// IsMonotonic passes raft-wal's requirement through: raft must then reset the
// whole log after installing a snapshot instead of leaving a gap.
func (s *checkedLogStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (s *checkedLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *checkedLogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	out := make([]*raft.Log, len(logs))
	cp := make([]raft.Log, len(logs))
	for i, l := range logs {
		cp[i] = *l
		d := make([]byte, len(l.Data), len(l.Data)+logCRCSize)
		copy(d, l.Data)
		cp[i].Data = binary.BigEndian.AppendUint32(d, logCRC(l, l.Data))
		out[i] = &cp[i]
	}
	if err := s.LogStore.StoreLogs(out); err != nil {
		return fmt.Errorf("raftjournal: append entries %d..%d to %s: %w", logs[0].Index, logs[len(logs)-1].Index, s.locate(logs[0].Index), err)
	}
	return nil
}

func (s *checkedLogStore) GetLog(index uint64, l *raft.Log) error {
	if err := s.LogStore.GetLog(index, l); err != nil {
		if errors.Is(err, raft.ErrLogNotFound) {
			return err
		}
		return fmt.Errorf("%w: %s: entry %d: %v", ErrCorruptLog, s.locate(index), index, err)
	}
	if l.Index != index {
		return fmt.Errorf("%w: %s: entry %d reads back as entry %d", ErrCorruptLog, s.locate(index), index, l.Index)
	}
	n := len(l.Data) - logCRCSize
	if n < 0 {
		return fmt.Errorf("%w: %s: entry %d has no checksum (%d bytes)", ErrCorruptLog, s.locate(index), index, len(l.Data))
	}
	want := binary.BigEndian.Uint32(l.Data[n:])
	if got := logCRC(l, l.Data[:n]); got != want {
		return fmt.Errorf("%w: %s: entry %d (term %d) fails its checksum (%08x, stored %08x)", ErrCorruptLog, s.locate(index), index, l.Term, got, want)
	}
	l.Data = l.Data[:n:n]
	return nil
}

// verify reads every entry in [from, to] and returns the first error: the
// entries a node replays after its snapshot are checked before raft, which
// would panic on them, ever sees them.
func (s *checkedLogStore) verify(from, to uint64) error {
	var l raft.Log
	for i := from; i <= to && i != 0; i++ {
		if err := s.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return fmt.Errorf("%w: %s: entry %d of %d..%d is missing", ErrCorruptLog, s.locate(i), i, from, to)
			}
			return err
		}
	}
	return nil
}

// snapshotStore is raft's file snapshot store with errors that name the file,
// and readers that carry their path so Restore can name it too.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir string
}

// snapshotFile is an open snapshot's state file.
type snapshotFile struct {
	io.ReadCloser
	path  string
	index uint64 // the raft index the snapshot covers
}

func (s *snapshotStore) statePath(id string) string { return filepath.Join(s.dir, id, stateFileName) }

// Open implements raft.SnapshotStore. raft's store checks the file's CRC-64
// before returning it; a mismatch becomes an error matching
// znode.ErrCorruptSnapshot that names the file.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err != nil {
		if strings.Contains(err.Error(), "CRC mismatch") {
			err = fmt.Errorf("%w: checksum of the whole file does not match meta.json", znode.ErrCorruptSnapshot)
		}
		return nil, nil, fmt.Errorf("raftjournal: snapshot %s: %w", s.statePath(id), err)
	}
	return meta, &snapshotFile{ReadCloser: rc, path: s.statePath(id), index: meta.Index}, nil
}

// checkDirs reports a snapshot directory whose metadata cannot be read: raft's
// store would skip it silently and fall back to an older snapshot.
func (s *snapshotStore) checkDirs() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("raftjournal: read snapshot dir: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		p := filepath.Join(s.dir, e.Name(), "meta.json")
		b, err := os.ReadFile(p)
		if err == nil {
			var m raft.SnapshotMeta
			err = json.Unmarshal(b, &m)
		}
		if err != nil {
			return fmt.Errorf("raftjournal: snapshot metadata %s: %w: %v", p, znode.ErrCorruptSnapshot, err)
		}
	}
	return nil
}

// recovered is what recoverState found on disk.
type recovered struct {
	snapshotIndex uint64
	snapshotTerm  uint64
	snapshotSize  int64
	firstLog      uint64
	lastLog       uint64
	// config is the newest Raft configuration: the snapshot's, or that of a
	// configuration entry after it.
	config raft.Configuration
	// accepted is the damage AcceptLogLoss let through (the log was cut).
	accepted []*DamageError
}

// recoverState restores the newest snapshot into the FSM and checks the log
// entries after it, before raft starts (raft runs with NoSnapshotRestoreOnStart).
// raft on its own would try older snapshots when the newest fails and panic on a
// bad log entry; here either is an error that names the file, and the node does
// not start. The log must reach the index of the last clean stop (stopped, when
// there is a record). With accept, damage that can be accepted (see datadir.go)
// cuts the log back to the entries that are intact and follow the snapshot.
func recoverState(fsm *nodeFSM, st *stores, stopped *stoppedRecord, accept bool) (recovered, error) {
	var rec recovered
	if err := st.snaps.checkDirs(); err != nil {
		return rec, err
	}
	metas, err := st.snaps.List()
	if err != nil {
		return rec, fmt.Errorf("raftjournal: list snapshots in %s: %w", st.snaps.dir, err)
	}
	if len(metas) > 0 {
		m := metas[0]
		_, rc, err := st.snaps.Open(m.ID)
		if err != nil {
			return rec, err
		}
		if err := fsm.Restore(rc); err != nil {
			return rec, err
		}
		rec.snapshotIndex, rec.snapshotTerm, rec.snapshotSize = m.Index, m.Term, m.Size
		rec.config = m.Configuration
	}
	if rec.firstLog, err = st.log.FirstIndex(); err != nil {
		return rec, fmt.Errorf("%w: read first index: %v", ErrCorruptLog, err)
	}
	if rec.lastLog, err = st.log.LastIndex(); err != nil {
		return rec, fmt.Errorf("%w: read last index: %v", ErrCorruptLog, err)
	}
	if len(metas) == 0 && rec.firstLog > 1 {
		return rec, damaged(st.snaps.dir, false, "holds no snapshot, and the Raft log starts at index %d: entries 1..%d are in neither (was the directory emptied?); restore the snapshots, or rebuild the node (wipe it and join again)",
			rec.firstLog, rec.firstLog-1)
	}
	// good is the last index that follows the snapshot without a gap and
	// passes its checksum; cut, when not 0, the first one that does not.
	good, cut := rec.snapshotIndex, uint64(0)
	var dmg *DamageError
	if from := max(rec.firstLog, rec.snapshotIndex+1); rec.lastLog >= from {
		if rec.snapshotIndex > 0 && rec.firstLog > rec.snapshotIndex+1 {
			dmg = damaged(st.log.locate(rec.firstLog), true, "log entries %d..%d after snapshot %d are missing (the log starts at %d)",
				rec.snapshotIndex+1, rec.firstLog-1, rec.snapshotIndex, rec.firstLog)
			cut = rec.firstLog
		} else {
			var l raft.Log
			for i := from; i <= rec.lastLog; i++ {
				if err := st.log.GetLog(i, &l); err != nil {
					what := err.Error()
					if errors.Is(err, raft.ErrLogNotFound) {
						what = fmt.Sprintf("entry %d of %d..%d is missing", i, from, rec.lastLog)
					}
					dmg = damaged(st.log.locate(i), true, "%s; the entries from %d on cannot be replayed", strings.TrimPrefix(what, ErrCorruptLog.Error()+": "), i)
					cut = i
					break
				}
				if l.Type == raft.LogConfiguration {
					rec.config = raft.DecodeConfiguration(l.Data)
				}
				good = i
			}
		}
	}
	if dmg == nil && stopped != nil && stopped.LastIndex > max(good, rec.lastLog) {
		dmg = damaged(st.log.locate(good+1), true, "the Raft log ends at index %d, but the node stopped cleanly at index %d (%s): entries %d..%d are lost",
			max(good, rec.lastLog), stopped.LastIndex, stoppedFileName, max(good, rec.lastLog)+1, stopped.LastIndex)
	}
	if dmg == nil {
		return rec, nil
	}
	if !accept || !dmg.Acceptable {
		return rec, dmg
	}
	rec.accepted = append(rec.accepted, dmg)
	if cut > 0 && cut <= rec.lastLog {
		if err := st.log.DeleteRange(cut, rec.lastLog); err != nil {
			return rec, fmt.Errorf("raftjournal: cut the damaged log back to index %d: %w", cut-1, err)
		}
		if rec.firstLog, err = st.log.FirstIndex(); err == nil {
			rec.lastLog, err = st.log.LastIndex()
		}
		if err != nil {
			return rec, fmt.Errorf("%w: read the log after cutting it: %v", ErrCorruptLog, err)
		}
	}
	return rec, nil
}

// snapshotIDs lists the snapshot ids on disk, newest first (for tests and tools).
func (s *snapshotStore) snapshotIDs() ([]string, error) {
	metas, err := s.List()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(metas))
	for i, m := range metas {
		ids[i] = m.ID
	}
	return slices.Clip(ids), nil
}
