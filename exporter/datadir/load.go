package datadir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/zk2raft/zk2raft/znode"
)

// Options says what to load.
type Options struct {
	// DataDir is ZooKeeper's dataDir (or its version-2 directory): the
	// snapshots, and the logs unless LogDir is set.
	DataDir string
	// LogDir is ZooKeeper's dataLogDir when it differs from DataDir.
	LogDir string
	// ToZxid stops the replay after the last txn at or below it; 0 replays
	// to the last complete txn.
	ToZxid int64
	// MaxRecordBytes bounds a txn, string or buffer read from a file (0:
	// DefaultMaxRecordBytes).
	MaxRecordBytes int
	// Logger receives what the load decided (snapshots skipped, where the
	// replay stopped). Nil discards.
	Logger *slog.Logger
}

// SkippedSnapshot is a snapshot newer than the one used, and why it was not.
type SkippedSnapshot struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// DigestCheck says which digest ZooKeeper recorded proves the tree, and how.
type DigestCheck struct {
	// Zxid and Digest are the record the tree was compared with: a txn's
	// TxnDigest, or a snapshot's ZxidDigest.
	Zxid   int64        `json:"zxid"`
	Digest znode.Digest `json:"digest"`
	// Record names it: "TxnDigest at log.100000001 offset 4411", "ZxidDigest
	// of snapshot.1f".
	Record string `json:"record"`
	// Exact says the record is at the end zxid itself. Otherwise the txns
	// after it, up to the end, changed nothing in the tree (failed writes,
	// sessions without ephemerals), so the tree at the end equals the tree at
	// Zxid: that is what the record proves.
	Exact bool `json:"exact"`
	// Compared counts the digest records compared during the replay once the
	// tree left the snapshot's fuzzy range; every one matched.
	Compared int `json:"compared"`
}

// State is ZooKeeper's tree as of one zxid, rebuilt from a data directory and
// proven by a digest ZooKeeper recorded.
type State struct {
	Tree *Tree
	// Zxid is the zxid the tree is ZooKeeper's at: the last txn applied (or
	// the snapshot's, when no txn followed it).
	Zxid int64
	// Files is what the directory held.
	Files *Files
	// Snapshot is the snapshot the replay started from; Skipped are newer
	// ones that could not be read (a snapshot being written is one).
	Snapshot *SnapshotInfo
	Skipped  []SkippedSnapshot
	// Logs are the log files read, oldest first.
	Logs []string
	// Txns counts the txns applied after the snapshot; Reapplied the ops
	// that were already reflected in the fuzzy snapshot (ZooKeeper's
	// tolerated NoNode and NodeExists); LateSkips the ops that failed after
	// the fuzzy range (the digest checks say whether that mattered).
	Txns, Reapplied, LateSkips int
	// FuzzyUntil is the zxid from which the tree was proven consistent: the
	// first digest record that matched.
	FuzzyUntil int64
	// LastLogged is the last complete txn read from the logs: beyond Zxid
	// when ToZxid stopped the replay early.
	LastLogged int64
	// Torn is where the replay stopped on a record cut short (a server
	// still writing), nil otherwise.
	Torn *TornError
	// Check is the digest check that proved the tree.
	Check DigestCheck

	cur *cursor   // where the replay stopped (a Follower goes on from there)
	rp  *replayer // the digest checks' state
}

// Load rebuilds ZooKeeper's tree from a data directory: the newest snapshot
// that reads cleanly (at or before opts.ToZxid), then every txn after it in
// the logs, up to the last complete one or opts.ToZxid. It is read-only and
// works while the server runs.
//
// The result is checked against the digests ZooKeeper recorded (see the
// package documentation, "Proof"): Load fails with ErrDigestMismatch,
// ErrUnverified, ErrMissingLog, ErrSnapshotAhead or a *FileError rather than
// return a tree it cannot vouch for.
func Load(ctx context.Context, opts Options) (*State, error) {
	return load(ctx, opts, false)
}

// load is Load; keepCursor leaves the last log open for a Follower.
func load(ctx context.Context, opts Options, keepCursor bool) (*State, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files, err := Scan(opts.DataDir, opts.LogDir)
	if err != nil {
		return nil, err
	}
	if len(files.Snapshots) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoSnapshot, files.SnapDir)
	}
	if len(files.Logs) == 0 {
		hint := ""
		if opts.LogDir == "" {
			hint = " (if ZooKeeper's dataLogDir differs from its dataDir, pass it as the log directory)"
		}
		return nil, fmt.Errorf("%w: %w: %s holds no transaction log%s", ErrMissingLog, ErrNoLogs, files.LogDir, hint)
	}
	var skipped []SkippedSnapshot
	for _, sf := range files.Snapshots {
		if opts.ToZxid > 0 && sf.Zxid > opts.ToZxid {
			continue
		}
		tree := NewTree()
		info, err := tree.LoadSnapshot(sf, opts.MaxRecordBytes)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !isNotExist(err) {
				return nil, err
			}
			// ZooKeeper too falls back to an older snapshot: the newest may be
			// one it is still writing. The logs must then reach back to it.
			log.Warn("skipping snapshot", "file", sf.Path, "err", err)
			skipped = append(skipped, SkippedSnapshot{File: sf.Path, Reason: err.Error()})
			continue
		}
		if d := info.Digest; opts.ToZxid > 0 && d != nil && d.Zxid > opts.ToZxid {
			reason := fmt.Sprintf("its fuzzy range ends at %#x, after the zxid asked for", d.Zxid)
			log.Info("skipping snapshot", "file", sf.Path, "reason", reason)
			skipped = append(skipped, SkippedSnapshot{File: sf.Path, Reason: reason})
			continue
		}
		st := &State{Tree: tree, Zxid: sf.Zxid, Files: files, Snapshot: info, Skipped: skipped}
		err = st.replay(ctx, opts, log)
		if err != nil || !keepCursor {
			st.cur.close()
		}
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("%w in %s: %d snapshot(s) could not be used, the newest: %s", ErrNoSnapshot, files.SnapDir, len(skipped), skipped[0].Reason)
	}
	return nil, fmt.Errorf("%w in %s at or before zxid %#x", ErrNoSnapshot, files.SnapDir, opts.ToZxid)
}

// logsFrom returns the logs that hold the txns after zxid: the newest that
// starts at or before it, and every later one (FileTxnLog.getLogFiles).
func logsFrom(logs []LogFile, zxid int64) []LogFile {
	start := 0
	for i, l := range logs {
		if l.Zxid <= zxid {
			start = i
		}
	}
	return logs[start:]
}

// nextZxid reports whether z may follow prev in a log: the next counter in
// the same epoch, or the first txn (counter 1) of a later epoch.
func nextZxid(prev, z int64) bool {
	pe, pc := prev>>32, prev&0xffffffff
	ze, zc := z>>32, z&0xffffffff
	if ze == pe {
		return zc == pc+1
	}
	return ze > pe && zc == 1
}

// replayer carries the digest-check state of a replay.
type replayer struct {
	st         *State
	snapDigest *SnapshotDigest
	fuzzy      bool
	last       *DigestCheck // the last record that matched
	mutated    bool         // the tree changed since last
	compared   int
	res        Result // the last txn's
}

func (st *State) replay(ctx context.Context, opts Options, log *slog.Logger) error {
	snap := st.Snapshot
	c := newCursor(st.Files, snap.File, opts.MaxRecordBytes)
	rp := &replayer{st: st, snapDigest: snap.Digest, fuzzy: true}
	st.cur, st.rp = c, rp
	for {
		tx, err := c.next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if opts.ToZxid > 0 && tx.Zxid > opts.ToZxid {
			c.unread(tx)
			break
		}
		if err := rp.apply(tx, false); err != nil {
			return err
		}
	}
	st.Logs, st.LastLogged, st.Torn = c.read, c.lastLogged, c.torn
	if opts.ToZxid > 0 && st.LastLogged < opts.ToZxid {
		// The logs end before the zxid asked for; unless they end exactly
		// there, the tree at ToZxid is not known.
		where := "the end of " + filepath.Base(c.read[len(c.read)-1])
		if st.Torn != nil {
			where = "a torn record at " + st.Torn.Pos.String()
		}
		return fmt.Errorf("%w: the logs end at zxid %#x (%s), --to-zxid is %#x", ErrZxidNotReached, st.LastLogged, where, opts.ToZxid)
	}
	st.Zxid = c.prev
	if err := rp.finish(c.applied, log); err != nil {
		return err
	}
	if p, idx, bad := st.Tree.Unresolved(); bad {
		// ZooKeeper's digest does not cover ACLs: check them apart.
		return fmt.Errorf("%w: at zxid %#x node %q refers to ACL %d, which neither %s's ACL cache nor any txn after it defines",
			ErrCorrupt, st.Zxid, p, idx, filepath.Base(st.Snapshot.File.Path))
	}
	return nil
}

// apply applies tx to the tree and checks its digest records.
func (rp *replayer) apply(tx *Txn, keep bool) error {
	st := rp.st
	res, err := st.Tree.Apply(tx, keep)
	if err != nil {
		return err
	}
	st.Txns++
	if rp.fuzzy {
		st.Reapplied += len(res.Skips)
	} else {
		st.LateSkips += len(res.Skips)
	}
	rp.res = res
	return rp.check(tx, res.Mutated)
}

// check compares the tree after tx with the digests ZooKeeper recorded for
// tx's zxid (its TxnDigest, the snapshot's ZxidDigest at that zxid).
//
// Until one of them matches, the tree may hold later changes than tx's (the
// snapshot is fuzzy), and a mismatch says nothing. The snapshot's own
// ZxidDigest is no exception: it is the digest ZooKeeper had logged when the
// snapshot ended, while the next txn may already have been half applied to
// nodes written into it. From the first match on the tree is ZooKeeper's, and
// every record must match.
func (rp *replayer) check(tx *Txn, mutated bool) error {
	t := rp.st.Tree
	got := t.Digest()
	if d := rp.snapDigest; d != nil && d.Zxid == tx.Zxid && d.Version == znode.DigestVersion {
		rec := "ZxidDigest of " + filepath.Base(rp.st.Snapshot.File.Path)
		switch {
		case got == d.Digest:
			rp.match(tx.Zxid, got, rec)
		case !rp.fuzzy:
			return fmt.Errorf("%w: at zxid %#x the tree's digest is %v, the %s says %v", ErrDigestMismatch, tx.Zxid, got, rec, d.Digest)
		}
	}
	if tx.HasDigest && tx.DigestVersion == znode.DigestVersion {
		rec := "TxnDigest at " + tx.Pos.String()
		switch {
		case got == tx.Digest:
			rp.match(tx.Zxid, got, rec)
			return nil
		case !rp.fuzzy:
			return fmt.Errorf("%w: at zxid %#x the tree's digest is %v, the %s says %v", ErrDigestMismatch, tx.Zxid, got, rec, tx.Digest)
		}
	}
	if mutated {
		rp.mutated = true
	}
	return nil
}

func (rp *replayer) match(zxid int64, d znode.Digest, rec string) {
	if rp.fuzzy {
		rp.st.FuzzyUntil = zxid
		rp.fuzzy = false
		rp.compared = 0
	}
	rp.compared++
	rp.last = &DigestCheck{Zxid: zxid, Digest: d, Record: rec}
	rp.mutated = false
}

// finish decides whether a digest record proves the tree at st.Zxid.
func (rp *replayer) finish(applied bool, log *slog.Logger) error {
	st := rp.st
	snapName := filepath.Base(st.Snapshot.File.Path)
	sd := rp.snapDigest
	if !applied {
		return rp.finishAtSnapshot(snapName)
	}
	if rp.fuzzy || rp.last == nil {
		if sd != nil && sd.Zxid > st.LastLogged && st.Torn == nil {
			return fmt.Errorf("%w: %s holds changes up to zxid %#x (its digest's), but the logs end at %#x", ErrSnapshotAhead, snapName, sd.Zxid, st.LastLogged)
		}
		if sd != nil && sd.Zxid > st.Zxid {
			return fmt.Errorf("%w at zxid %#x: it is inside %s's fuzzy range, which ends at zxid %#x", ErrUnverified, st.Zxid, snapName, sd.Zxid)
		}
		return fmt.Errorf("%w at zxid %#x: no txn after %s carries a digest that matched (digest disabled on the server?)", ErrUnverified, st.Zxid, snapName)
	}
	if rp.mutated {
		return fmt.Errorf("%w at zxid %#x: the last digest record, at zxid %#x (%s), is followed by txns that changed the tree and carry no digest", ErrUnverified, st.Zxid, rp.last.Zxid, rp.last.Record)
	}
	st.Check = *rp.last
	st.Check.Exact = rp.last.Zxid == st.Zxid
	st.Check.Compared = rp.compared
	if st.Torn != nil {
		log.Info("replay stopped before a torn txn record", "at", st.Torn.Pos.String(), "reason", st.Torn.Reason)
	}
	return nil
}

// finishAtSnapshot decides for a replay that found no txn after the
// snapshot: only the snapshot's own digest can vouch for the tree, and only
// when the logs show nothing was lost between it and them.
func (rp *replayer) finishAtSnapshot(snapName string) error {
	st, sd := rp.st, rp.snapDigest
	sz := st.Zxid
	newEpoch := sz&0xffffffff == 0
	switch {
	case st.LastLogged < sz && !newEpoch:
		// ZooKeeper logs a txn before it applies it: the log that held the
		// snapshot's last txn is missing (or the logs are elsewhere).
		return fmt.Errorf("%w: %s is at zxid %#x, but the logs end at %#x", ErrSnapshotAhead, snapName, sz, st.LastLogged)
	case sd == nil:
		return fmt.Errorf("%w: no txn follows %s and it carries no digest (digest disabled on the server?)", ErrUnverified, snapName)
	case sd.Version != znode.DigestVersion:
		return fmt.Errorf("%w: %s carries a digest of version %d, this build computes version %d", ErrUnverified, snapName, sd.Version, znode.DigestVersion)
	case sd.Zxid > st.LastLogged:
		return fmt.Errorf("%w: %s holds changes up to zxid %#x (its digest's), but the logs end at %#x", ErrSnapshotAhead, snapName, sd.Zxid, st.LastLogged)
	case sd.Zxid < sz && !(newEpoch && sd.Zxid == st.LastLogged):
		return fmt.Errorf("%w: %s carries a digest for zxid %#x, before its own zxid %#x, and no txn follows it", ErrUnverified, snapName, sd.Zxid, sz)
	}
	// The digest is at the snapshot's zxid, or, for the snapshot a new leader
	// takes at the start of an epoch (zxid epoch<<32), at the previous
	// epoch's last txn, which is the last txn logged: nothing lies between.
	if st.Tree.Digest() != sd.Digest {
		return fmt.Errorf("%w: %s: the tree's digest is %v, its ZxidDigest (zxid %#x) says %v", ErrDigestMismatch, snapName, st.Tree.Digest(), sd.Zxid, sd.Digest)
	}
	st.Check = DigestCheck{Zxid: sd.Zxid, Digest: sd.Digest, Record: "ZxidDigest of " + snapName, Exact: sd.Zxid == sz, Compared: 1}
	st.FuzzyUntil = sz
	return nil
}
