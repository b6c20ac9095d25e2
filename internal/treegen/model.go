package treegen

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// Expected is what ZooKeeper holds for one generated node once the plan
// has run. Stat fields that depend on the run (zxids, times, the session
// ids of ephemerals) are not predicted; everything else is.
type Expected struct {
	Path string
	// Data exactly as stored: nil (sent as length -1) and empty differ,
	// and ZooKeeper returns each as it was written.
	Data []byte
	// ACL as ZooKeeper stores it: "auth" entries resolved to the
	// generator's digest identity, exact duplicates removed.
	ACL []znode.ACL
	// Kind of node; TTL is set for TTL nodes.
	Kind znode.EphemeralType
	TTL  time.Duration
	// Sequential says the node was created with the sequential flag.
	Sequential bool
	// Session is the index (into Tree.SessionIDs) of an ephemeral's owner.
	Session int
	// Version and Aversion are the data and ACL versions.
	Version  int32
	Aversion int32
	// Cversion is the persisted cversion: children created so far, deleted
	// or not. Clients see 2·Cversion − NumChildren.
	Cversion    int32
	NumChildren int32
	// Protected says a client without the plan's credential cannot read
	// the node: its ACL or an ancestor's denies READ to world and to
	// 127.0.0.1.
	Protected bool
	// Classes are the adversarial input classes the node exercises.
	Classes ClassSet
}

// RawOwner is the raw ephemeralOwner ZooKeeper persists for the node, given
// the session ids of the tree (Tree.SessionIDs).
func (e *Expected) RawOwner(sessionIDs []int64) int64 {
	switch e.Kind {
	case znode.Ephemeral:
		return sessionIDs[e.Session]
	case znode.Container:
		return znode.ContainerOwner
	case znode.TTL:
		owner, _ := znode.TTLOwner(e.TTL.Milliseconds())
		return owner
	}
	return 0
}

// Counts summarizes a model.
type Counts struct {
	Nodes      int // nodes in the tree (created and not deleted)
	Persistent int
	Ephemeral  int
	Container  int
	TTL        int
	Sequential int // nodes created with the sequential flag
	Protected  int // nodes an exporter without credentials cannot read
	NilData    int
	DataBytes  int64
	MaxDepth   int // below the root
	MaxFanout  int // most children of one node
	Creates    int // ops by type
	Deletes    int
	SetData    int
	SetACL     int
}

// Model is the expected tree: every node a plan creates and does not
// delete, keyed by path.
type Model struct {
	Root   string
	Counts Counts
	nodes  map[string]*Expected
	order  []string // creation order
}

// Node returns the expected node at path.
func (m *Model) Node(path string) (*Expected, bool) {
	e, ok := m.nodes[path]
	return e, ok
}

// Len is the number of nodes.
func (m *Model) Len() int { return len(m.order) }

// Paths returns every path in creation order (parents before children).
func (m *Model) Paths() []string { return slices.Clone(m.order) }

// WithClass returns the paths of nodes exercising class c, in creation order.
func (m *Model) WithClass(c Class) []string {
	var out []string
	for _, p := range m.order {
		if m.nodes[p].Classes.Has(c) {
			out = append(out, p)
		}
	}
	return out
}

// Model replays the plan on an empty tree and returns the expected result.
// extendedTypes false drops the TTL nodes (and everything under them), as
// Apply does against an ensemble without zookeeper.extendedTypesEnabled.
// Replaying also checks the plan: every sequential name must be the one
// ZooKeeper will assign.
func (p *Plan) Model(extendedTypes bool) (*Model, error) {
	q := p
	if !extendedTypes {
		q = p.withoutTTL()
	}
	m := &Model{Root: p.Options.Root, nodes: make(map[string]*Expected)}
	// existing holds the persisted cversion of nodes outside the model that
	// get children (the root's parent, or "/").
	outside := make(map[string]*Expected)
	lookup := func(path string) *Expected {
		if e, ok := m.nodes[path]; ok {
			return e
		}
		if e, ok := outside[path]; ok {
			return e
		}
		if path == "/" || path == znode.Parent(p.Options.Root) {
			e := &Expected{Path: path}
			outside[path] = e
			return e
		}
		return nil
	}
	deleted := make(map[string]bool)
	for i := range q.Ops {
		op := &q.Ops[i]
		if op.After >= i {
			return nil, fmt.Errorf("op %d (%s %s) runs after later op %d", i, op.Type, op.Path, op.After)
		}
		switch op.Type {
		case OpCreate:
			parent := lookup(znode.Parent(op.Path))
			if parent == nil {
				return nil, fmt.Errorf("op %d: create %s: no parent", i, op.Path)
			}
			if _, dup := m.nodes[op.Path]; dup {
				return nil, fmt.Errorf("op %d: create %s: exists", i, op.Path)
			}
			if op.Sequential && znode.SequentialName(op.SendPath(), parent.Cversion) != op.Path {
				return nil, fmt.Errorf("op %d: sequential create %s: ZooKeeper will name it %s",
					i, op.Path, znode.SequentialName(op.SendPath(), parent.Cversion))
			}
			parent.Cversion++
			parent.NumChildren++
			e := &Expected{
				Path: op.Path, Data: op.Data, ACL: storedACL(op.ACL, p.Credential),
				Kind: op.Kind, Sequential: op.Sequential, Classes: op.Classes,
			}
			if op.Kind == znode.TTL {
				e.TTL = op.TTL
			}
			if op.Kind == znode.Ephemeral {
				e.Session = op.Session
			}
			m.nodes[op.Path] = e
			if deleted[op.Path] {
				return nil, fmt.Errorf("op %d: %s re-created", i, op.Path)
			}
		case OpDelete:
			e, ok := m.nodes[op.Path]
			if !ok || e.NumChildren > 0 {
				return nil, fmt.Errorf("op %d: delete %s: missing or not a leaf", i, op.Path)
			}
			delete(m.nodes, op.Path)
			deleted[op.Path] = true
			lookup(znode.Parent(op.Path)).NumChildren--
		case OpSetData:
			e, ok := m.nodes[op.Path]
			if !ok || e.Version != op.Version {
				return nil, fmt.Errorf("op %d: set-data %s: missing or version mismatch", i, op.Path)
			}
			e.Data = op.Data
			e.Version++
		case OpSetACL:
			e, ok := m.nodes[op.Path]
			if !ok || e.Aversion != op.Version {
				return nil, fmt.Errorf("op %d: set-acl %s: missing or version mismatch", i, op.Path)
			}
			e.ACL = storedACL(op.ACL, p.Credential)
			e.Aversion++
			e.Classes |= op.Classes
		}
	}
	// Creation order, minus deletes; parents precede children because
	// every create follows its parent's.
	for i := range q.Ops {
		op := &q.Ops[i]
		if op.Type == OpCreate {
			if _, ok := m.nodes[op.Path]; ok {
				m.order = append(m.order, op.Path)
			}
		}
		switch op.Type {
		case OpCreate:
			m.Counts.Creates++
		case OpDelete:
			m.Counts.Deletes++
		case OpSetData:
			m.Counts.SetData++
		case OpSetACL:
			m.Counts.SetACL++
		}
	}
	rootDepth := depth(p.Options.Root)
	for _, path := range m.order {
		e := m.nodes[path]
		if parent, ok := m.nodes[znode.Parent(path)]; ok && parent.Protected {
			e.Protected = true
		}
		if !anonymousCan(e.ACL, znode.PermRead) {
			e.Protected = true
		}
		c := &m.Counts
		c.Nodes++
		switch e.Kind {
		case znode.Persistent:
			c.Persistent++
		case znode.Ephemeral:
			c.Ephemeral++
		case znode.Container:
			c.Container++
		case znode.TTL:
			c.TTL++
		}
		if e.Sequential {
			c.Sequential++
		}
		if e.Protected {
			c.Protected++
		}
		if e.Data == nil {
			c.NilData++
		}
		c.DataBytes += int64(len(e.Data))
		c.MaxDepth = max(c.MaxDepth, depth(path)-rootDepth)
		c.MaxFanout = max(c.MaxFanout, int(e.NumChildren))
	}
	for _, e := range outside {
		m.Counts.MaxFanout = max(m.Counts.MaxFanout, int(e.NumChildren))
	}
	return m, nil
}

// storedACL is what ZooKeeper's fixupACL stores for a requested ACL: each
// "auth" entry becomes one entry per authenticated identity of the session
// (the generator's digest credential; ip identities do not count), and
// exact duplicates are dropped keeping the first.
func storedACL(acl []znode.ACL, cred Credential) []znode.ACL {
	out := make([]znode.ACL, 0, len(acl))
	for _, a := range acl {
		if a.ID.Scheme == "auth" {
			a.ID = cred.ID()
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func depth(path string) int {
	if path == "/" {
		return 0
	}
	return strings.Count(path, "/")
}
