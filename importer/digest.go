package importer

import (
	"fmt"
	"strings"
	"sync"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// SystemPaths are the nodes a fresh journal holds before any import, as a
// fresh ZooKeeper does.
var SystemPaths = []string{"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}

var pristine = sync.OnceValue(func() map[string]uint32 {
	fsm, err := raftjournal.NewFSM(raftjournal.DefaultConfig())
	if err != nil {
		panic(err)
	}
	out := make(map[string]uint32, len(SystemPaths))
	for _, p := range SystemPaths {
		n, ok := fsm.Node(p)
		if !ok {
			panic("importer: a fresh FSM has no " + p)
		}
		out[p] = n.Digest()
	}
	return out
})

// PristineDigest is the digest contribution of a system node as a fresh
// journal (and a fresh ZooKeeper) holds it.
func PristineDigest(path string) uint32 { return pristine()[path] }

// streamTally accounts for a node stream: count, digest, bytes, zxids, and
// which system nodes it carried.
type streamTally struct {
	nodes     int64
	dataBytes int64
	digest    znode.Digest
	maxZxid   int64
	system    map[string]bool
}

func (t *streamTally) add(n *znode.Node) {
	t.nodes++
	t.dataBytes += int64(len(n.Data))
	t.digest.Add(n.Digest())
	t.maxZxid = max(t.maxZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
	if isSystem(n.Path) {
		if t.system == nil {
			t.system = make(map[string]bool)
		}
		t.system[n.Path] = true
	}
}

func isSystem(p string) bool {
	return p == "/" || p == "/zookeeper" || strings.HasPrefix(p, "/zookeeper/") && (p == "/zookeeper/quota" || p == "/zookeeper/config")
}

// Expectation is what a fresh journal must hold after importing a stream:
// the stream's nodes, plus the system nodes the stream did not carry
// (exports of the whole tree leave /zookeeper out) as a fresh journal holds
// them.
type Expectation struct {
	StreamNodes  int64
	StreamDigest znode.Digest
	// Added are the system nodes not in the stream, which the journal keeps
	// pristine, and AddedDigest their digest contributions (/zookeeper's is
	// the only non-zero one besides the root's).
	Added       []string
	AddedDigest znode.Digest
	Nodes       int64        // StreamNodes + len(Added)
	Digest      znode.Digest // StreamDigest + AddedDigest
}

func (t *streamTally) expect() Expectation {
	e := Expectation{StreamNodes: t.nodes, StreamDigest: t.digest}
	for _, p := range SystemPaths {
		if !t.system[p] {
			e.Added = append(e.Added, p)
			e.AddedDigest.Add(PristineDigest(p))
		}
	}
	e.Nodes = e.StreamNodes + int64(len(e.Added))
	e.Digest = e.StreamDigest + e.AddedDigest
	return e
}

// Explain says how the journal digest relates to the stream's, for reports.
func (e Expectation) Explain() string {
	if len(e.Added) == 0 || e.AddedDigest == 0 {
		return fmt.Sprintf("journal digest %v = snapshot digest %v", e.Digest, e.StreamDigest)
	}
	var named []string
	for _, p := range e.Added {
		if PristineDigest(p) != 0 {
			named = append(named, p)
		}
	}
	return fmt.Sprintf("journal digest %v = snapshot digest %v + pristine %s (%v), which exports leave out and ZooKeeper's own digest counts",
		e.Digest, e.StreamDigest, strings.Join(named, ", "), e.AddedDigest)
}
