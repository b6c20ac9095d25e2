package dualwrite

// Digest checks: ZooKeeper's hash log against the journal's digests.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/znode"
)

// DigestResult is a digest check's verdict.
type DigestResult uint8

// The digest verdicts.
const (
	DigestUnknown   DigestResult = iota // nothing comparable
	DigestEqual                         // equal as of DigestVerdict.Zxid
	DigestDifferent                     // different, or the journal missed ZooKeeper's logged zxids
)

func (d DigestResult) String() string {
	switch d {
	case DigestUnknown:
		return "unknown"
	case DigestEqual:
		return "equal"
	case DigestDifferent:
		return "different"
	}
	return fmt.Sprintf("DigestResult(%d)", uint8(d))
}

// DigestVerdict is the outcome of a digest check.
type DigestVerdict struct {
	Result DigestResult
	// Zxid is the zxid both digests are as of (0 when none).
	Zxid int64
	// ZooKeeper and Journal are the digests compared.
	ZooKeeper, Journal znode.Digest
	// How says what was compared: "history" (both logs at Zxid) or "current"
	// (ZooKeeper's tree exactly at its last zxid against the journal's now).
	How string
	// Reason explains an unknown or different verdict without a common zxid.
	Reason string
	// Time is when the check ran.
	Time time.Time
}

// DigestCheck compares ZooKeeper's digest log (`hash`, the first server that
// answers) with the journal's digest history at the newest zxid both hold.
//
// With AlignPath set, a check that finds nothing comparable makes a
// comparable point with alignment writes and checks again (align.go).
func (r *Reconciler) DigestCheck(ctx context.Context) (DigestVerdict, error) {
	v, err := r.digestCheck(ctx)
	if err != nil {
		return v, err
	}
	if v.Result == DigestUnknown && r.cfg.AlignPath != "" {
		z, aerr := r.align(ctx)
		if aerr != nil {
			if ctx.Err() != nil {
				return v, ctx.Err()
			}
			r.logger.Warn("digest check: alignment failed", "path", r.cfg.AlignPath, "error", aerr)
			v.Reason += "; alignment failed: " + aerr.Error()
		} else if v2, err := r.digestCheck(ctx); err == nil {
			v = v2
			v.How += fmt.Sprintf(", after an alignment write at %#x", z)
		} else {
			return v, err
		}
	}
	v.Time = time.Now()
	switch v.Result {
	case DigestEqual:
		r.stats.digestEqual.Add(1)
	case DigestDifferent:
		r.stats.digestDifferent.Add(1)
	default:
		r.stats.digestUnknown.Add(1)
	}
	r.metrics.digestChecks.WithLabelValues(v.Result.String()).Inc()
	r.lastMu.Lock()
	r.lastDig = v
	r.lastMu.Unlock()
	r.logger.Info("digest check", "result", v.Result.String(), "zxid", fmt.Sprintf("%#x", v.Zxid), "how", v.How,
		"zookeeper", v.ZooKeeper.String(), "journal", v.Journal.String(), "reason", v.Reason)
	return v, nil
}

func (r *Reconciler) digestCheck(ctx context.Context) (DigestVerdict, error) {
	src, err := verify.NewZooKeeperSource(verify.ZKOptions{Hosts: r.cfg.ZK, Auth: r.zkAuth, Logger: r.logger})
	if err != nil {
		return DigestVerdict{}, err
	}
	defer src.Close()
	zi, err := src.Digests(ctx)
	if err != nil {
		return DigestVerdict{}, err
	}
	var hist []raftjournal.DigestEntry
	var last int64
	var cur *journalCurrent
	if dr, ok := r.cfg.View.(journalDigestReader); ok {
		// Read together, after a read barrier: a member that restarted and
		// has not replayed its log yet would report an old state.
		ds, err := dr.DigestState(ctx)
		if err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal digests: %w", err)
		}
		hist, last, cur = ds.History, ds.MaxSourceZxid, &journalCurrent{digest: ds.Digest, zxid: ds.MaxSourceZxid}
	} else {
		if hist, err = r.cfg.View.DigestHistory(ctx); err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal digest history: %w", err)
		}
		if last, err = r.cfg.View.LastSourceZxid(ctx); err != nil {
			return DigestVerdict{}, fmt.Errorf("dualwrite: journal last source zxid: %w", err)
		}
		if d, ok := r.cfg.View.(JournalDigester); ok {
			dg, z, err := d.CurrentDigest(ctx)
			if err != nil {
				return DigestVerdict{}, fmt.Errorf("dualwrite: journal digest: %w", err)
			}
			cur = &journalCurrent{digest: dg, zxid: z}
		}
	}
	return judgeDigests(zi, hist, last, cur), nil
}

// journalCurrent is the journal's digest now and the largest source zxid it
// has seen.
type journalCurrent struct {
	digest znode.Digest
	zxid   int64
}

// judgeDigests compares ZooKeeper's digests with the journal's. Equal digests
// at a zxid prove the trees equal as of that zxid, and nothing about the
// writes after it: "equal" is said only at ZooKeeper's latest state.
//
//  1. ZooKeeper's tree exactly at its last zxid Z, logged (HasCurrent, Exact),
//     and the journal's digest now when the largest source zxid it saw is Z:
//     equal or different as of Z ("current"). An equal digest means the
//     same tree; a journal that saw Z but lacks an older write differs, and a
//     repair pass is right.
//  2. Otherwise the newest zxid E both histories hold ("history"): different
//     there is a difference; equal there is equal only if E is ZooKeeper's
//     last zxid, and otherwise unknown (ZooKeeper logs every 128 zxids, so on
//     a quiet ensemble its newest entry predates its latest writes). The
//     journal logs a digest only for the newest source zxid, and drops the
//     entries a late txn proved wrong (raftjournal's applySourceTxn), so it
//     holds one entry per zxid; should it hold several, one that matches
//     makes it equal.
//  3. Otherwise unknown: no zxid both logged (ZooKeeper logs only every 128
//     zxids, in memory, the last 1024; the journal only for txns it was sent
//     in order, and not while a create's parent read back later is ahead).
//
// An unknown verdict gets a comparable point from an alignment write
// (ReconcilerConfig.AlignPath) or not at all; the event checks and repair
// passes do not depend on it.
func judgeDigests(zi verify.DigestInfo, hist []raftjournal.DigestEntry, lastSource int64, cur *journalCurrent) DigestVerdict {
	if cur != nil && zi.HasCurrent && zi.Exact && cur.zxid == zi.Zxid {
		v := DigestVerdict{Zxid: zi.Zxid, ZooKeeper: zi.Current, Journal: cur.digest, How: "current", Result: DigestDifferent}
		if zi.Current == cur.digest {
			v.Result = DigestEqual
		}
		return v
	}
	byZxid := make(map[int64][]znode.Digest, len(hist))
	for _, e := range hist {
		byZxid[e.Zxid] = append(byZxid[e.Zxid], e.Digest)
	}
	for i := len(zi.History) - 1; i >= 0; i-- {
		e := zi.History[i]
		ds, ok := byZxid[e.Zxid]
		if !ok {
			continue
		}
		v := DigestVerdict{Zxid: e.Zxid, ZooKeeper: e.Digest, Journal: ds[len(ds)-1], How: "history", Result: DigestDifferent}
		if !slices.Contains(ds, e.Digest) {
			return v
		}
		v.Journal = e.Digest
		if zi.Exact && zi.Zxid == e.Zxid {
			v.Result = DigestEqual
			return v
		}
		v.Result = DigestUnknown
		v.Reason = fmt.Sprintf("equal at %#x, but zookeeper is at %#x: the writes since are not covered", e.Zxid, zi.Zxid)
		return v
	}
	if len(zi.History) == 0 {
		return DigestVerdict{Result: DigestUnknown, Reason: "zookeeper has logged no digest yet (one every 128 zxids)"}
	}
	return DigestVerdict{Result: DigestUnknown, Reason: fmt.Sprintf(
		"no common zxid: zookeeper logs %#x..%#x and is at %#x; the journal has seen up to %#x and logged %s",
		zi.History[0].Zxid, zi.History[len(zi.History)-1].Zxid, zi.Zxid, lastSource, journalLogged(hist))}
}

// journalLogged describes the journal's digest history for a reason.
func journalLogged(hist []raftjournal.DigestEntry) string {
	if len(hist) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%#x..%#x", hist[0].Zxid, hist[len(hist)-1].Zxid)
}
