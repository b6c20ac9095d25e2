package exporter

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// Change says how a node differed from its state at the walk's start zxid.
type Change uint8

// The changes, combined as bits.
const (
	ChangeCreated  Change = 1 << iota // czxid after the start: created during the walk
	ChangeData                        // mzxid after the start: setData during the walk
	ChangeChildren                    // pzxid after the start: a child created or deleted
	ChangeReread                      // its stat moved between the reads of one attempt (a write of any kind, setACL included)
	ChangeDeleted                     // listed by its parent, gone when read
)

func (c Change) String() string {
	if c == 0 {
		return "none"
	}
	var parts []string
	for _, f := range []struct {
		bit  Change
		name string
	}{
		{ChangeCreated, "created"}, {ChangeData, "data"}, {ChangeChildren, "children"},
		{ChangeReread, "reread"}, {ChangeDeleted, "deleted"},
	} {
		if c&f.bit != 0 {
			parts = append(parts, f.name)
			c &^= f.bit
		}
	}
	if c != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint8(c)))
	}
	return strings.Join(parts, ",")
}

// MarshalText renders the change as String does.
func (c Change) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ChangedNode is one node that changed during the walk.
type ChangedNode struct {
	Path   string `json:"path"`
	Change Change `json:"change"`
}

// Summary is the outcome of a walk.
//
// A live walk is fuzzy: each node is recorded in a state it really had, at some
// zxid between StartZxid and MaxZxid, and nodes changed in that window are counted
// in Changed (or Deleted). Replaying ZooKeeper's transactions after StartZxid
// over the snapshot converges on the ensemble's tree.
type Summary struct {
	Source    string        `json:"source"`
	Root      string        `json:"root"`
	File      string        `json:"file,omitempty"`       // set by the caller that wrote one
	FileBytes int64         `json:"file_bytes,omitempty"` // set by the caller that wrote one
	Nodes     int64         `json:"nodes"`                // nodes written
	DataBytes int64         `json:"data_bytes"`           // bytes of node data written
	StartZxid int64         `json:"start_zxid"`           // every node reflects at least this zxid
	MaxZxid   int64         `json:"max_zxid"`             // no node reflects a later one
	Digest    znode.Digest  `json:"-"`                    // of the nodes written (ZooKeeper's algorithm)
	Duration  time.Duration `json:"-"`
	// ReadMode is how the nodes were read: "multiread" (batches of one
	// multiRead and a getACL per node) or "classic" (node by node).
	ReadMode string `json:"read_mode"`
	Requests int64  `json:"requests"` // requests sent to the ensemble
	Rereads  int64  `json:"rereads"`  // nodes read again because their stat moved
	Retries  int64  `json:"retries"`  // reads retried after connection loss
	// SessionsRenewed counts sessions the ensemble expired and the walk replaced.
	SessionsRenewed int64 `json:"sessions_renewed"`
	// Evicted counts reads done ahead and dropped from the full reorder buffer to
	// make room for nodes earlier in file order; they were read again later.
	Evicted int64 `json:"readahead_evicted"`

	Changed     int64         `json:"changed"` // recorded nodes changed during the walk
	ChangedList []ChangedNode `json:"changed_list"`
	Deleted     int64         `json:"deleted"` // nodes listed by their parent and gone when read
	// Unreadable counts the nodes the credentials could not read in full:
	// answered NoAuth (left out with their subtrees) or with their ACL masked
	// (ACLMasked, recorded as ZooKeeper showed them). UnreadableList lists
	// both, in file order.
	Unreadable     int64    `json:"unreadable"`
	UnreadableList []string `json:"unreadable_list"`
	// ACLMasked counts the nodes, among Unreadable, whose ACL ZooKeeper
	// masked (digest:user:x) because the credentials lack ADMIN on them: their
	// recorded ACL is not their real one (IsMaskedACL).
	ACLMasked     int64    `json:"acl_masked"`
	ACLMaskedList []string `json:"acl_masked_list"`
	// Excluded counts the subtrees left out by exclusion (each counted once, at
	// its top), /zookeeper included.
	Excluded          int64 `json:"excluded"`
	Ephemerals        int64 `json:"ephemerals"`         // ephemerals recorded
	EphemeralsSkipped int64 `json:"ephemerals_skipped"` // ephemerals left out (EphemeralsSkip)
	// Partial says the export is not the whole tree as it is: nodes were left
	// out because they could not be read, or recorded with a masked ACL.
	Partial bool `json:"partial"`
}

// NodesPerSecond is the walk's rate.
func (s *Summary) NodesPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Nodes) / s.Duration.Seconds()
}

// OwnerNote explains what a live walk cannot see.
const OwnerNote = "container and TTL nodes are recorded as the client API shows them: ephemeralOwner 0, like persistent nodes"

// MarshalJSON adds the digest (as ZooKeeper prints it, a signed decimal string),
// the zxids in hex, the duration in seconds and the rate.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	return json.Marshal(struct {
		plain
		StartZxidHex   string  `json:"start_zxid_hex"`
		MaxZxidHex     string  `json:"max_zxid_hex"`
		Digest         string  `json:"digest"`
		Seconds        float64 `json:"duration_seconds"`
		NodesPerSecond float64 `json:"nodes_per_second"`
		Note           string  `json:"note"`
	}{
		plain:          plain(s),
		StartZxidHex:   fmt.Sprintf("%#x", s.StartZxid),
		MaxZxidHex:     fmt.Sprintf("%#x", s.MaxZxid),
		Digest:         s.Digest.String(),
		Seconds:        s.Duration.Seconds(),
		NodesPerSecond: s.NodesPerSecond(),
		Note:           OwnerNote,
	})
}

// NoAuthPaths returns the paths of unreadable (a summary's UnreadableList)
// that answered NoAuth, leaving out those in masked (its ACLMaskedList).
func NoAuthPaths(unreadable, masked []string) []string {
	isMasked := make(map[string]bool, len(masked))
	for _, p := range masked {
		isMasked[p] = true
	}
	var out []string
	for _, p := range unreadable {
		if !isMasked[p] {
			out = append(out, p)
		}
	}
	return out
}
