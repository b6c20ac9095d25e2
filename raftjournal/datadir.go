package raftjournal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/types"
	"go.etcd.io/bbolt"
)

// Never serve from damaged or foreign storage.
//
// A node that starts on a log missing entries it once held would lead at an
// older index, or vote as if it had never seen them, and a write the cluster
// acknowledged could be lost. So before raft starts (Open) or a state is
// rebuilt offline (OpenReadOnly), the data dir is checked, and damage is an
// error matching ErrDataDirDamaged that names the file:
//
//   - raft/stopped.json, written when a node closes cleanly (and by the
//     offline bootstrap), records the last index the log held; the log must
//     still reach it. Open removes the record before raft writes again, so a
//     crash never leaves a stale one.
//   - raft-wal: wal-meta.db lists the segments. Every segment it lists must
//     exist at its full size (raft-wal preallocates them, so a truncated file
//     is shorter), segment files must not exist without the list, and past
//     the point where the open segment's recovery stops (its last committed
//     batch) there must be no later batch whose commit checks out: a zeroed
//     or overwritten range in the middle, not a torn last write.
//   - A log store missing beside snapshots (wal-meta.db, raft.db) is damage,
//     except after an offline bootstrap interrupted between its snapshot and
//     its log store (a term-1 snapshot, nothing else).
//   - No snapshot, and a log that starts after index 1 (snapshots/ emptied):
//     the entries before it are nowhere. Not recoverable.
//   - After the snapshot, every entry up to the last is present and passes
//     its checksum (recoverState).
//
// A log cut short in a way that leaves no trace (a crash, or the tail of the
// open segment zeroed from some point to its end, with no clean stop since) is
// indistinguishable from writes that never happened; in a cluster, the
// leader's log matching brings the entries back to such a node.
//
// NodeConfig.AcceptLogLoss lets an operator start anyway (serve
// --accept-data-loss): the log is cut back to the last entry that is intact and
// contiguous with the snapshot, loudly. That is only sane for a single-node
// journal with no copy elsewhere; a member of a cluster is better removed,
// wiped and joined again.
//
// Identity: a data dir with Raft state belongs to the member its Raft
// configuration names. Open refuses a NodeID that is not in it (unless Join
// asks to be added again) and a raft address that differs from the one the
// configuration holds for the node (unless Join re-addresses it). A data dir
// without state starts only with Bootstrap or Join, and only if it holds
// nothing but what a node creates itself: a foreign file or the unfinished
// snapshot of a crashed import is refused.

// ErrDataDirDamaged is matched by a *DamageError.
var ErrDataDirDamaged = errors.New("raftjournal: data dir damaged")

// DamageError reports a data dir that must not be served as it is.
type DamageError struct {
	// Path is the file or directory at fault.
	Path string
	// Problem says what is wrong, and what is lost.
	Problem string
	// Acceptable says AcceptLogLoss can start the node anyway (cutting the
	// log back to its intact prefix); otherwise the data must be restored or
	// the node rebuilt.
	Acceptable bool

	// repair, when set, makes the files consistent with the loss once it is
	// accepted, so that the next start does not find the same damage.
	repair func() error
}

func (e *DamageError) Error() string {
	return "raftjournal: data dir damaged: " + e.Path + ": " + e.Problem
}

// Is makes a DamageError match ErrDataDirDamaged and ErrCorruptLog.
func (e *DamageError) Is(target error) bool {
	return target == ErrDataDirDamaged || target == ErrCorruptLog
}

func damaged(path string, acceptable bool, format string, args ...any) *DamageError {
	return &DamageError{Path: path, Problem: fmt.Sprintf(format, args...), Acceptable: acceptable}
}

// stoppedFileName is the record of a clean stop.
const stoppedFileName = "raft/stopped.json"

type stoppedRecord struct {
	LastIndex uint64       `json:"last_index"`
	LastTerm  uint64       `json:"last_term"`
	LogStore  LogStoreKind `json:"log_store"`
	Time      time.Time    `json:"time"`
}

func readStopped(dataDir string) (*stoppedRecord, error) {
	p := filepath.Join(dataDir, stoppedFileName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var r stoppedRecord
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		return nil, damaged(p, true, "unreadable record of the last clean stop: %v", err)
	}
	return &r, nil
}

// writeStopped records a clean stop durably (temp file, fsync, rename, fsync).
func writeStopped(dataDir string, r stoppedRecord) error {
	p := filepath.Join(dataDir, stoppedFileName)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncOfflineDir(filepath.Dir(p))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("raftjournal: record the clean stop in %s: %w", p, err)
	}
	return nil
}

// removeStopped removes the record before raft writes again.
func removeStopped(dataDir string) error {
	p := filepath.Join(dataDir, stoppedFileName)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("raftjournal: %w", err)
	}
	return syncOfflineDir(filepath.Dir(p))
}

// checkBeforeOpen reads the record of the last clean stop and checks the log
// store's files (checkLogFiles) before Open opens them. With AcceptLogLoss, a
// damage that can be accepted is returned in accepted instead of as an error,
// its files are made consistent with the loss, and the record is set aside.
func checkBeforeOpen(cfg *NodeConfig) (stopped *stoppedRecord, accepted []*DamageError, err error) {
	stopped, err = readStopped(cfg.DataDir)
	if err != nil && !cfg.AcceptLogLoss {
		return nil, nil, err
	}
	if err := checkLogFiles(cfg.DataDir, cfg.LogStore, stopped); err != nil {
		var dmg *DamageError
		if !cfg.AcceptLogLoss || !errors.As(err, &dmg) || !dmg.Acceptable {
			return nil, nil, err
		}
		accepted = append(accepted, dmg)
		stopped = nil // the loss is accepted: the log need not reach it
		if dmg.repair != nil {
			if err := dmg.repair(); err != nil {
				return nil, nil, fmt.Errorf("raftjournal: make %s consistent with the accepted loss: %w", dmg.Path, err)
			}
		}
	}
	return stopped, accepted, nil
}

// recordStop writes the record of a clean stop (datadir.go) once raft is down:
// the log's last index, which the next start checks the log still reaches.
func (n *Node) recordStop() {
	rec := stoppedRecord{LogStore: n.cfg.LogStore, Time: time.Now().UTC()}
	last, err := n.st.log.LastIndex()
	if err == nil && last > 0 {
		var l raft.Log
		if err = n.st.log.GetLog(last, &l); err == nil {
			rec.LastIndex, rec.LastTerm = last, l.Term
		}
	} else if err == nil {
		if metas, lerr := n.st.snaps.List(); lerr == nil && len(metas) > 0 {
			rec.LastIndex, rec.LastTerm = metas[0].Index, metas[0].Term
		}
	}
	if err == nil && rec.LastIndex > 0 {
		err = writeStopped(n.cfg.DataDir, rec)
	}
	if err != nil {
		n.logger.Warn("could not record the clean stop; the next start checks the log's structure only", "error", err)
	}
}

// snapshotFacts is what checkLogFiles needs to know of the snapshots.
type snapshotFacts struct {
	any         bool   // a finished snapshot exists
	newest      string // its directory, for messages
	offlineOnly bool   // the only snapshots are term-1 offline bootstraps
}

func scanSnapshots(snapDir string) snapshotFacts {
	var f snapshotFacts
	ents, err := os.ReadDir(snapDir)
	if err != nil {
		return f
	}
	f.offlineOnly = true
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		f.any = true
		f.newest = filepath.Join(snapDir, e.Name())
		var m raft.SnapshotMeta
		if b, err := os.ReadFile(filepath.Join(snapDir, e.Name(), "meta.json")); err != nil || json.Unmarshal(b, &m) != nil || m.Term != bootstrapTerm {
			f.offlineOnly = false
		}
	}
	f.offlineOnly = f.any && f.offlineOnly
	return f
}

// checkLogFiles checks the log store's files before anything opens them (see
// the top of this file). It never writes.
func checkLogFiles(dataDir string, kind LogStoreKind, stopped *stoppedRecord) error {
	snaps := scanSnapshots(filepath.Join(dataDir, snapshotDirName))
	walDir := filepath.Join(dataDir, walDirName)
	if kind == LogStoreWAL && exists(filepath.Join(dataDir, boltFileName)) || kind == LogStoreBolt && exists(walDir) {
		return nil // the other store: openStores refuses the mismatch
	}
	missingStore := func(path string) error {
		switch {
		case stopped != nil:
			return damaged(path, true, "missing, but the node stopped cleanly at index %d (%s): the log and Raft's term and vote are lost", stopped.LastIndex, stoppedFileName)
		case snaps.any && !snaps.offlineOnly:
			return damaged(path, true, "missing beside snapshot %s: the log after the snapshot and Raft's term and vote are lost", snaps.newest)
		}
		return nil
	}
	if kind == LogStoreBolt {
		p := filepath.Join(dataDir, boltFileName)
		if !exists(p) {
			return missingStore(p)
		}
		return nil
	}
	metaPath := filepath.Join(walDir, metadb.FileName)
	ps, ok, err := readWALMeta(walDir)
	if err != nil {
		return err
	}
	if !ok {
		if segs := walSegmentFiles(walDir); len(segs) > 0 {
			return damaged(metaPath, true, "missing beside %d segment files (%s): the list of the log's segments and Raft's term and vote are lost", len(segs), segs[0])
		}
		return missingStore(metaPath)
	}
	for i, seg := range ps.Segments {
		tail := i == len(ps.Segments)-1 && seg.SealTime.IsZero()
		file := filepath.Join(walDir, fmt.Sprintf("%020d-%016x.wal", seg.BaseIndex, seg.ID))
		fi, err := os.Stat(file)
		if err != nil {
			what := fmt.Sprintf("missing: the log entries from index %d on are lost", seg.BaseIndex)
			if !seg.SealTime.IsZero() {
				what = fmt.Sprintf("missing: log entries %d..%d are lost", seg.BaseIndex, seg.MaxIndex)
			}
			return damaged(file, tail, "%s (%s lists the segment)", what, metadb.FileName)
		}
		if fi.Size() < int64(seg.SizeLimit) {
			d := damaged(file, tail, "truncated to %d bytes; raft-wal writes its segments at %d bytes", fi.Size(), seg.SizeLimit)
			d.repair = func() error { return os.Truncate(file, int64(seg.SizeLimit)) }
			return d
		}
		if tail {
			if err := checkWALTail(file); err != nil {
				return err
			}
		}
	}
	return nil
}

// readWALMeta reads raft-wal's segment list with bbolt's read-only mode;
// ok is false when there is no wal-meta.db.
func readWALMeta(walDir string) (ps types.PersistentState, ok bool, err error) {
	metaPath := filepath.Join(walDir, metadb.FileName)
	if !exists(metaPath) {
		return ps, false, nil
	}
	db, err := bbolt.Open(metaPath, 0o644, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return ps, false, fmt.Errorf("%w: open %s read-only: %v", ErrCorruptLog, metaPath, err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(metadb.MetaBucket))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(metadb.MetaKey))
		if raw == nil {
			return nil
		}
		return json.Unmarshal(raw, &ps)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ps, false, fmt.Errorf("%w: read %s: %v", ErrCorruptLog, metaPath, err)
	}
	return ps, true, nil
}

// walSegmentFiles lists the segment files in a raft-wal directory.
func walSegmentFiles(walDir string) []string {
	ents, _ := os.ReadDir(walDir)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal") {
			out = append(out, e.Name())
		}
	}
	return out
}

// raft-wal's segment format (segment/format.go): a 32-byte file header, then
// 8-byte-aligned frames, each an 8-byte header (type, 3 zero bytes, and the
// payload length, or for a commit frame the CRC-32C of everything written
// since the previous commit frame, the file header included for the first)
// and the payload padded to 8 bytes.
const (
	walFileHeaderLen  = 32
	walFrameHeaderLen = 8
	walFrameEntry     = 1
	walFrameIndex     = 2
	walFrameCommit    = 3
	walMaxEntry       = 64 << 20
)

// walFrame reads the frame header at off; ok is false for zeros, a bad
// header, or a frame that runs past the end.
func walFrame(b []byte, off int) (typ byte, length uint32, next int, ok bool) {
	if off+walFrameHeaderLen > len(b) {
		return 0, 0, 0, false
	}
	h := b[off : off+walFrameHeaderLen]
	typ, v := h[0], binary.LittleEndian.Uint32(h[4:8])
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, 0, 0, false
	}
	switch typ {
	case walFrameCommit:
		return typ, v, off + walFrameHeaderLen, true
	case walFrameEntry, walFrameIndex:
		if v > walMaxEntry {
			return 0, 0, 0, false
		}
		size := walFrameHeaderLen + int(v) + (walFrameHeaderLen-int(v)%walFrameHeaderLen)%walFrameHeaderLen
		if off+size > len(b) {
			return 0, 0, 0, false
		}
		return typ, v, off + size, true
	}
	return 0, 0, 0, false
}

// checkWALTail looks for a committed batch past the point where raft-wal's
// recovery of the open segment will stop.
func checkWALTail(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorruptLog, file, err)
	}
	if len(b) < walFileHeaderLen {
		return nil
	}
	// Recovery: frames from the header on, up to the first that does not
	// parse; the log ends after the last commit frame whose CRC checks.
	end, lastCommitEnd := walFileHeaderLen, 0
	for off := walFileHeaderLen; ; {
		typ, v, next, ok := walFrame(b, off)
		if !ok {
			break
		}
		if typ == walFrameCommit {
			if crc32.Checksum(b[lastCommitEnd:off], castagnoli) != v {
				break
			}
			lastCommitEnd, end = next, next
		}
		off = next
	}
	// Past it: a chain of frames holding two commit frames, the second of
	// which checks out over the frames between them, is a batch raft-wal
	// wrote (and synced) after everything before it: the log was damaged in
	// between. A torn last write leaves at most one batch, never that.
	for off := end; off+walFrameHeaderLen <= len(b); off += walFrameHeaderLen {
		for off+walFrameHeaderLen <= len(b) && binary.LittleEndian.Uint64(b[off:]) == 0 {
			off += walFrameHeaderLen
		}
		commit1 := -1
		for pos := off; ; {
			typ, v, next, ok := walFrame(b, pos)
			if !ok {
				break
			}
			if typ == walFrameCommit {
				if commit1 >= 0 && crc32.Checksum(b[commit1:pos], castagnoli) == v {
					d := damaged(file, true, "the open segment's data stops at byte %d, but a batch written after it was committed at byte %d: the entries in between were zeroed or overwritten, and every entry after them is lost", end, pos)
					d.repair = func() error { return zeroFrom(file, int64(end), int64(len(b))) }
					return d
				}
				commit1 = next
			}
			pos = next
		}
	}
	return nil
}

// zeroFrom zeroes a file from off to size, and syncs it.
func zeroFrom(file string, off, size int64) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off < size && err == nil {
		n := min(int64(len(zeros)), size-off)
		_, err = f.WriteAt(zeros[:n], off)
		off += n
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// checkFreshForStart checks that a data dir without Raft state holds nothing but
// what a node creates (the LOCK file, an empty log store, an empty snapshots
// dir): Bootstrap and Join never adopt a foreign directory or a crashed
// import's leftovers.
func checkFreshForStart(dataDir string) error {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("raftjournal: read data dir: %w", err)
	}
	var foreign []string
	for _, e := range ents {
		switch name := e.Name(); {
		case name == "LOCK" || name == "raft" && e.IsDir():
		case name == snapshotDirName && e.IsDir():
			snaps, _ := os.ReadDir(filepath.Join(dataDir, name))
			for _, s := range snaps {
				p := filepath.Join(dataDir, name, s.Name())
				if strings.HasSuffix(s.Name(), ".tmp") {
					return fmt.Errorf("%w: %s holds the unfinished snapshot %s (a crashed import or migrate?): rerun the import into an empty directory, or remove it", ErrDataDirNotEmpty, dataDir, p)
				}
				return fmt.Errorf("%w: %s holds %s", ErrDataDirNotEmpty, dataDir, p)
			}
		default:
			foreign = append(foreign, name)
		}
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		more := ""
		if len(foreign) > 3 {
			more = fmt.Sprintf(" and %d more", len(foreign)-3)
			foreign = foreign[:3]
		}
		return fmt.Errorf("%w: %s holds %s%s, which are not a journal's: a new node needs an empty directory", ErrDataDirNotEmpty, dataDir, strings.Join(foreign, ", "), more)
	}
	return nil
}

// sameAddr reports whether two Raft addresses name the same endpoint (as
// written, or once resolved).
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ta, err1 := net.ResolveTCPAddr("tcp", a)
	tb, err2 := net.ResolveTCPAddr("tcp", b)
	return err1 == nil && err2 == nil && ta.Port == tb.Port && ta.IP.Equal(tb.IP)
}

// checkIdentity refuses to serve a data dir whose Raft configuration does not
// know this node as id at addr (see the top of this file). join says the node
// asks to be added (or re-addressed) anyway.
func checkIdentity(dataDir string, conf raft.Configuration, id raft.ServerID, addr raft.ServerAddress, join bool) error {
	if len(conf.Servers) == 0 {
		return nil // no configuration seen yet (a joining node's first terms)
	}
	var members []string
	for _, s := range conf.Servers {
		members = append(members, fmt.Sprintf("%s at %s", s.ID, s.Address))
		if s.ID == id {
			if sameAddr(string(s.Address), string(addr)) || join {
				return nil
			}
			return fmt.Errorf("%w: data dir %s belongs to node %q at raft address %s (its Raft configuration), but this node's raft address is %s: start it with that address, or join it again under the new one",
				ErrInvalidConfig, dataDir, id, s.Address, addr)
		}
	}
	for _, s := range conf.Servers {
		if sameAddr(string(s.Address), string(addr)) && !join {
			return fmt.Errorf("%w: data dir %s belongs to node %q at raft address %s (its Raft configuration), but this node's id is %q",
				ErrInvalidConfig, dataDir, s.ID, s.Address, id)
		}
	}
	if join {
		return nil
	}
	return fmt.Errorf("%w: node %q is not in the Raft configuration of data dir %s (members: %s): the directory belongs to another node, or this one was removed (wipe it and join again)",
		ErrInvalidConfig, id, dataDir, strings.Join(members, ", "))
}
