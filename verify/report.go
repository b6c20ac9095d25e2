package verify

import (
	"fmt"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// ReportVersion is the version of the JSON report schema (see the package
// documentation). It changes only when a field changes meaning or goes away;
// new fields may appear without a change.
const ReportVersion = 1

// Verdict is a comparison's outcome.
type Verdict uint8

// The verdicts.
const (
	VerdictEqual     Verdict = iota + 1 // no differences (allowed and converged ones aside)
	VerdictDifferent                    // at least one difference, or digests that differ
)

func (v Verdict) String() string {
	switch v {
	case VerdictEqual:
		return "equal"
	case VerdictDifferent:
		return "different"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// MarshalText renders the verdict as String does.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Mode says how a comparison was made.
type Mode uint8

// The modes.
const (
	// ModeFull compared every node, field by field.
	ModeFull Mode = iota + 1
	// ModeDigest compared digests only (Config.DigestOnly), each side's known
	// without a walk.
	ModeDigest
	// ModeDigestWalk was asked for digests only, but at least one side could
	// not give a comparable digest without a walk, so both sides were walked
	// and compared node by node, digests computed on the way.
	ModeDigestWalk
)

func (m Mode) String() string {
	switch m {
	case ModeFull:
		return "full"
	case ModeDigest:
		return "digest"
	case ModeDigestWalk:
		return "digest-walk"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// MarshalText renders the mode as String does.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Report is the outcome of a comparison: the verdict, counts, the first
// differences and where they are.
type Report struct {
	Verdict Verdict
	Mode    Mode
	Source  SideReport
	Target  SideReport
	// Scope is the subtree compared and what was left out of it.
	Scope ScopeReport
	// Compared is the number of distinct paths compared (nodes on either side).
	Compared int64
	Counts   Counts
	// Differences are the first MaxDiffs differences in canonical path order;
	// Counts.Differences has them all.
	Differences []Difference
	// Allowed are the first MaxDiffs differences an allowance excused.
	Allowed []AllowedDifference
	// Converged are the first MaxDiffs differences that went away when a live
	// side was read again: writes in flight, not divergence.
	Converged []ConvergedDifference
	// Subtrees has one entry per top-level subtree of the scope (each child
	// of the scope's root, and the root itself), in canonical order.
	Subtrees []SubtreeResult
	// Digest is set in the digest modes.
	Digest *DigestResult
	// Notes explain what the verdict rests on: narrowed scopes, adjustments,
	// fallbacks.
	Notes []string
	// MaxDiffs is the listing limit the report was made with.
	MaxDiffs int
	// Elapsed is how long the comparison took; reports leave it out when zero.
	Elapsed time.Duration
}

// Equal reports whether the verdict is VerdictEqual.
func (r *Report) Equal() bool { return r.Verdict == VerdictEqual }

// SideReport describes one side as compared.
type SideReport struct {
	URI         string
	Scheme      string
	Description string
	Live        bool
	RawOwners   bool
	// Nodes is the number of nodes of the side within the scope (full
	// comparison), or the node count its digest covers (−1 when unknown).
	Nodes int64
	// Digest is ZooKeeper's digest of those nodes, computed on the way in a
	// full comparison.
	Digest znode.Digest
}

// ScopeReport is what a comparison covered.
type ScopeReport struct {
	Path    string
	Exclude []Exclusion
	Allow   []RuleReport
}

// Exclusion is one pattern left out of the comparison and why.
type Exclusion struct {
	Pattern string
	Origin  string // "default", "source", "target", "flag"
	Reason  string
}

// RuleReport describes an allowance in force.
type RuleReport struct {
	Rule   string // RuleClientOwner, RuleEphemeralsSkipped, or "PATTERN WHAT,…"
	Origin string // "default", "flag", FILE:LINE
	Reason string
}

// Counts are exact, whatever the listing limits.
type Counts struct {
	Differences int64
	Missing     int64
	Extra       int64
	Mismatch    int64
	// Fields counts KindMismatch differences by field; a node can differ in
	// several fields, each counted.
	Fields [fieldCount]int64
	// Allowed counts differences an allowance excused, by rule in AllowedBy.
	Allowed   int64
	AllowedBy []RuleCount
	// Converged counts differences that went away on re-reading a live side.
	Converged int64
	// Rechecked counts nodes whose difference was re-checked; NotRechecked
	// those that would have been but exceeded the re-check budget and were
	// reported at once.
	Rechecked    int64
	NotRechecked int64
}

// ByKind returns the count of one kind.
func (c *Counts) ByKind(k Kind) int64 {
	switch k {
	case KindMissing:
		return c.Missing
	case KindExtra:
		return c.Extra
	case KindMismatch:
		return c.Mismatch
	}
	return 0
}

// RuleCount is how many differences one allowance excused.
type RuleCount struct {
	Rule   string
	Origin string
	Count  int64
}

// AllowedDifference is a difference an allowance excused.
type AllowedDifference struct {
	Difference
	Rule   string
	Origin string
}

// ConvergedDifference is a difference that went away when a live side was
// read again.
type ConvergedDifference struct {
	Path string
	// What differed when first seen.
	What []Allowed
	// Rechecks is the number of re-reads it took to see the sides agree.
	Rechecks int
}

// SubtreeResult is the outcome for one top-level subtree.
type SubtreeResult struct {
	Path        string
	Nodes       int64 // distinct paths compared in the subtree
	Differences int64
	Allowed     int64
	Converged   int64
	// First are its first differences, in canonical path order.
	First []Difference
}

// DigestResult is the digest part of a report.
type DigestResult struct {
	// Method is "constant-time" when both digests came without a walk, "walk"
	// when they were computed by walking.
	Method string
	Source DigestSide
	Target DigestSide
	// Zxid is the zxid the digests were compared at, when both sides were
	// matched on one (0 otherwise).
	Zxid  int64
	Equal bool
	// Reason says why the digests were computed by walking.
	Reason string
}

// DigestSide is one side's digest.
type DigestSide struct {
	Digest znode.Digest
	How    string // "snapshot trailer", "hash four-letter word of …", "computed from the walk"
	Zxid   int64  // the zxid it is as of (0 when unknown)
	Exact  bool   // the tree exactly as of Zxid
	Nodes  int64  // nodes it covers, −1 when unknown
	// Adjusted says the /zookeeper node's pristine digest was added to make
	// the coverage equal to the other side's.
	Adjusted bool
}
