package cli

import (
	"math"

	"github.com/zk2raft/zk2raft/znode"
)

// Upper bounds of sizing flags that have no natural one.
const (
	// maxJuteMaxBuffer: a request of jute.maxbuffer bytes becomes one
	// journal entry, and the journal's log takes entries of up to 64 MiB.
	maxJuteMaxBuffer = 32 << 20
	// maxPerConnection bounds --max-outstanding and --max-client-cnxns.
	maxPerConnection = 1 << 20
	// maxTailBatch bounds the txns of one tail entry (--batch-bytes-like
	// limits still apply on top).
	maxTailBatch = 1_000_000
	// maxListedDiffs bounds the differences a verify report keeps in memory.
	maxListedDiffs = 10_000_000
	// maxRechecks bounds verify's re-reads of a live side per difference.
	maxRechecks = 100
)

// intFlagIn returns a usage error naming the flag when v is outside lo..hi:
// counts such as --workers size what the tool allocates, so an absurd one
// must stop at the command line, not in the runtime's out-of-memory dump.
func intFlagIn(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usageErrorf("%s %d: want %d..%d", flag, v, lo, hi)
	}
	return nil
}

// rateFlag returns a usage error naming the flag unless v is a finite
// number >= 0 (0: no limit).
func rateFlag(flag string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return usageErrorf("%s %v: want a finite number of requests per second, or 0 for no limit", flag, v)
	}
	return nil
}

// outFlag returns a usage error naming the flag when a snapshot file cannot
// be written at path ("" is checked as a file in the current directory), so a
// long export does not fail only at its final rename.
func outFlag(flag, path string) error {
	p := path
	if p == "" {
		p = "zk-export.snap"
	}
	if err := znode.CheckSnapshotPath(p); err != nil {
		return usageErrorf("%s %s: %v", flag, path, err)
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
