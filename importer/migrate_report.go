package importer

import (
	"fmt"
	"strings"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/verify"
)

// MigrateSummary is the report of a migration (`zk2raft migrate --json`
// prints it as is).
type MigrateSummary struct {
	Source        string   `json:"source"`
	Target        string   `json:"target"`
	Nodes         int64    `json:"nodes"`
	DataBytes     int64    `json:"data_bytes"`
	EntryBytes    int64    `json:"entry_bytes"`
	StartZxid     string   `json:"start_zxid"`
	MaxZxid       string   `json:"max_zxid"`
	ExportDigest  string   `json:"export_digest"`
	JournalDigest string   `json:"journal_digest"`
	JournalNodes  int64    `json:"journal_nodes"`
	SystemAdded   []string `json:"system_nodes_added"`
	Verification  []Check  `json:"verification"`
	// Verdict is what the checks add up to (verdict): verified only when a
	// check compared the journal's final state and found it equal and none
	// found a difference. VerdictReason says why it is not verified.
	Verdict       Verdict `json:"verdict"`
	VerdictReason string  `json:"verdict_reason,omitempty"`
	// Verified is Verdict == VerdictVerified.
	Verified     bool             `json:"verified"`
	Phases       []PhaseTime      `json:"phases"`
	Seconds      float64          `json:"seconds"`
	Skipped      SkippedReport    `json:"skipped"`
	Preflight    *PreflightReport `json:"preflight"`
	KeptSnapshot string           `json:"kept_snapshot,omitempty"`
	// Swept is what the sweep of a journal that held nodes before the run
	// found and deleted (migrate_sweep.go).
	Swept     *SweepReport     `json:"swept,omitempty"`
	Installed *InstalledReport `json:"installed,omitempty"`
	// Serve is the command that starts the installed journal; the caller,
	// which knows its own command line, fills it in.
	Serve string         `json:"serve,omitempty"`
	Full  *verify.Report `json:"-"`
}

// CheckName names one verification step of a migration.
type CheckName string

// The verification steps, in the order a migration runs them.
const (
	// CheckKeptSnapshot: the kept snapshot's trailer against the walk.
	CheckKeptSnapshot CheckName = "kept snapshot trailer = export"
	// CheckJournalExport: the journal's digest and node count against the
	// stream's plus the system nodes (Expectation).
	CheckJournalExport CheckName = "journal = export"
	// CheckInstalled: the installed snapshot read back against the journal.
	CheckInstalled CheckName = "installed snapshot = journal"
	// CheckZooKeeperDigest: the journal's digest against ZooKeeper's own
	// (the hash four-letter word).
	CheckZooKeeperDigest CheckName = "journal = ZooKeeper's own digest (hash)"
	// CheckNodeByNode: verify's field-by-field comparison.
	CheckNodeByNode CheckName = "node by node (verify)"
)

// Outcome is what one check found.
type Outcome uint8

const (
	// Equal: the check compared both sides and found them the same.
	Equal Outcome = iota + 1
	// Different: the check compared both sides and found a difference.
	Different
	// NotComparable: the check could not compare; Check.Detail says why.
	NotComparable
)

func (o Outcome) String() string {
	switch o {
	case Equal:
		return "equal"
	case Different:
		return "different"
	case NotComparable:
		return "not comparable"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// MarshalText renders the outcome as its String.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Check is one verification step and what it found.
type Check struct {
	Check  CheckName `json:"check"`
	Result Outcome   `json:"result"`
	// Detail says what was compared, or why nothing could be.
	Detail string `json:"detail"`
}

// Verdict is a migration's outcome, from its checks.
type Verdict uint8

const (
	// VerdictVerified: at least one check compared the journal's final
	// state (FinalState) and found it equal, and no check found a
	// difference.
	VerdictVerified Verdict = iota + 1
	// VerdictDifferent: a check found a difference.
	VerdictDifferent
	// VerdictUnverified: no check could compare the final state ("not
	// comparable" is not success), or the run was interrupted.
	VerdictUnverified
)

func (v Verdict) String() string {
	switch v {
	case VerdictVerified:
		return "verified"
	case VerdictDifferent:
		return "different"
	case VerdictUnverified:
		return "unverified"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// MarshalText renders the verdict as its String.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// FinalState reports whether the check compares the journal's final state
// with the source (the export stream, ZooKeeper's own digest, or ZooKeeper
// node by node); the kept-snapshot and installed-snapshot checks compare
// copies of the stream with each other.
func (c CheckName) FinalState() bool {
	switch c {
	case CheckJournalExport, CheckZooKeeperDigest, CheckNodeByNode:
		return true
	}
	return false
}

// verdict adds the checks up: any difference makes it different; otherwise
// it is verified only if a final-state check compared and found equality,
// and unverified, with the reasons the checks gave, if none could.
func verdict(checks []Check) (Verdict, string) {
	var diff, why []string
	equal := false
	for _, c := range checks {
		switch {
		case c.Result == Different:
			diff = append(diff, fmt.Sprintf("%s: %s", c.Check, c.Detail))
		case c.Result == Equal && c.Check.FinalState():
			equal = true
		case c.Result == NotComparable && c.Check.FinalState():
			why = append(why, fmt.Sprintf("%s: %s", c.Check, c.Detail))
		}
	}
	switch {
	case len(diff) > 0:
		return VerdictDifferent, strings.Join(diff, "; ")
	case equal:
		return VerdictVerified, ""
	case len(why) == 0:
		return VerdictUnverified, "no check compared the journal's final state with the source"
	}
	return VerdictUnverified, "no check could compare the journal's final state with the source: " + strings.Join(why, "; ")
}

// PhaseTime is how long one phase of a migration took.
type PhaseTime struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	Nodes   int64   `json:"nodes,omitempty"`
}

// SkippedReport is what a migration left out, and why.
type SkippedReport struct {
	System            string   `json:"system"`
	Excluded          int64    `json:"excluded_subtrees"`
	ExcludePatterns   []string `json:"exclude_patterns,omitempty"`
	EphemeralsSkipped int64    `json:"ephemerals_skipped"`
	Unreadable        int64    `json:"unreadable"` // NoAuth and masked-ACL nodes, as in the export summary
	UnreadableList    []string `json:"unreadable_list,omitempty"`
	ACLMasked         int64    `json:"acl_masked"` // of Unreadable: copied with their masked ACL
	ACLMaskedList     []string `json:"acl_masked_list,omitempty"`
	ChangedInWalk     int64    `json:"changed_during_walk"`
	DeletedInWalk     int64    `json:"deleted_during_walk"`
	OwnerNote         string   `json:"owner_note"`
}

// SweepReport is what a migration into a journal that already held nodes
// did about the ones the walk did not read.
type SweepReport struct {
	Extra   int `json:"extra"`   // journal nodes in scope the walk did not read
	Deleted int `json:"deleted"` // deletes submitted (a subtree counts once)
	Kept    int `json:"kept"`    // extra nodes ZooKeeper still has
}

// InstalledReport is the initial snapshot an offline migration installed.
type InstalledReport struct {
	Path     string `json:"path"`
	Index    uint64 `json:"index"`
	Term     uint64 `json:"term"`
	Bytes    int64  `json:"bytes"`
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
}

// fillWalk copies the walk's summary into the migration's.
func fillWalk(sum *MigrateSummary, ws *exporter.Summary, cfg exporter.Config) {
	sum.Nodes, sum.DataBytes = ws.Nodes, ws.DataBytes
	sum.StartZxid, sum.MaxZxid = fmt.Sprintf("%#x", ws.StartZxid), fmt.Sprintf("%#x", ws.MaxZxid)
	sum.ExportDigest = ws.Digest.String()
	sum.Skipped = SkippedReport{
		System:   "/zookeeper (ZooKeeper's own subtree; the journal has its own)",
		Excluded: ws.Excluded, ExcludePatterns: cfg.Exclude,
		EphemeralsSkipped: ws.EphemeralsSkipped, Unreadable: ws.Unreadable, UnreadableList: ws.UnreadableList,
		ACLMasked: ws.ACLMasked, ACLMaskedList: ws.ACLMaskedList,
		ChangedInWalk: ws.Changed, DeletedInWalk: ws.Deleted, OwnerNote: exporter.OwnerNote,
	}
	if cfg.Root != "/" {
		sum.Skipped.System = "everything outside " + cfg.Root
	}
	if ws.Excluded > 0 && cfg.Root == "/" {
		sum.Skipped.Excluded-- // /zookeeper is counted among the excluded subtrees
	}
}
