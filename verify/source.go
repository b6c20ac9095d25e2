package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/zk2raft/zk2raft/znode"
)

var (
	// ErrUnsorted is matched by the error a comparison returns when a side's
	// stream is not in canonical order (znode.ComparePaths): a merge-join of
	// unsorted streams would report differences that do not exist. The error is
	// an *UnsortedError naming the side and the two paths.
	ErrUnsorted = errors.New("verify: node stream not in canonical order")
	// ErrUnsupported is returned (wrapped) for a source this build cannot open,
	// such as journal:// without a journal opener.
	ErrUnsupported = errors.New("verify: not supported")
	// ErrInvalidURI is returned (wrapped) for a side's URI that does not parse.
	ErrInvalidURI = errors.New("verify: invalid URI")
	// ErrNothingCompared is matched by the error of a comparison that compared
	// no node: a path that exists on neither side, or a scope whose every
	// node is excluded. Zero nodes compared is not equality.
	ErrNothingCompared = errors.New("verify: nothing compared")
	// ErrInvalidConfig is returned (wrapped) by Config.Validate and when the
	// scope asked for lies outside what a side holds.
	ErrInvalidConfig = errors.New("verify: invalid config")
)

// UnsortedError reports a stream out of canonical order.
type UnsortedError struct {
	Side  string // "source" or "target"
	URI   string
	Index int64  // 0-based position in the stream of the node out of order
	Prev  string // the node before it
	Path  string // the node out of order (equal to Prev for a duplicate)
}

func (e *UnsortedError) Error() string {
	what := "comes after"
	if e.Prev == e.Path {
		what = "is repeated after"
	}
	return fmt.Sprintf("%v: %s %s: node %d %q %s %q; every side must stream parents before children and siblings in byte order (znode.ComparePaths)",
		ErrUnsorted, e.Side, e.URI, e.Index, e.Path, what, e.Prev)
}

func (e *UnsortedError) Is(target error) bool { return target == ErrUnsorted }

// Info describes a side of a comparison.
type Info struct {
	// URI names the side as given (zk://…, snap://…, journal://…), without
	// credentials.
	URI string
	// Scheme is "zk", "snap", "journal" or "memory".
	Scheme string
	// Description says what the side is, for reports: "live ensemble",
	// "export snapshot, zxid 0x10..0x12".
	Description string
	// Live says the tree may change while it is read, so a difference may be
	// a write in flight; a live side implements Rereader.
	Live bool
	// RawOwners says ephemeralOwner values are raw. A side read through the
	// client API sees 0 for container and TTL nodes (zookeeper-internals §5).
	RawOwners bool
	// ExtendedTypes says the side's ensemble ran with extended ephemeral types,
	// which decides whether a raw owner with top byte 0xFF is a TTL.
	ExtendedTypes bool
	// Root is the subtree the side holds: the chroot of a zk:// URI, the path
	// an export was taken at, "/" for a whole tree.
	Root string
	// Exclude are the subtrees (path.Match globs) the side does not hold, as
	// recorded by the export that wrote it.
	Exclude []string
	// SkipsEphemerals says the side left ephemeral nodes out (an export with
	// ephemerals skipped).
	SkipsEphemerals bool
	// Nodes is the number of nodes the side holds when known without a walk,
	// −1 otherwise.
	Nodes int64
}

// Scope is what a comparison covers.
type Scope struct {
	// Root is the subtree compared, root included.
	Root string
	// Exclude are absolute path.Match globs (where * does not cross a slash);
	// a node matching one is left out with its whole subtree.
	Exclude []string
}

// Contains reports whether path is in the subtree at s.Root (exclusions not
// considered).
func (s Scope) Contains(path string) bool { return inSubtree(path, s.Root) }

// inSubtree reports whether p is root or below it.
func inSubtree(p, root string) bool {
	if root == "/" || p == root {
		return true
	}
	return len(p) > len(root) && p[:len(root)] == root && p[len(root)] == '/'
}

// Source is one side of a comparison: a tree that can be streamed in canonical
// order. Implementations are ZooKeeper ensembles (zk://), snapshot files
// (snap://) and journal data directories (journal://), or any stream wrapped
// with FuncSource or MemorySource.
//
// Optional capabilities are separate interfaces: Rereader for live sides,
// Digester for sides that know their tree digest without a walk.
type Source interface {
	// Info describes the side. It does no I/O.
	Info() Info
	// Walk calls fn with every node of the subtree at scope.Root, the root
	// included, in canonical order: depth-first, a parent before its children,
	// siblings in bytewise name order (znode.ComparePaths). It may leave out
	// the subtrees scope.Exclude names, or not: the comparison filters again.
	// A missing root yields no nodes. fn's error stops the walk and is
	// returned. fn may keep the nodes but must not modify them.
	Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error
	// Close releases the side's resources. It is idempotent.
	Close() error
}

// Rereader is implemented by live sides. The comparison re-reads a node whose
// difference may be a write in flight.
type Rereader interface {
	// Reread returns the node at path as it is now, or nil when it does not
	// exist.
	Reread(ctx context.Context, path string) (*znode.Node, error)
}

// Syncer is implemented by live sides whose reads may lag behind the newest
// state (a ZooKeeper follower): the comparison syncs before each round of
// re-reads, so that each round sees at least what was committed before it.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Digester is implemented by sides that know ZooKeeper's tree digest without
// walking the tree: a snapshot's trailer, a ZooKeeper server's digest log (the
// `hash` four-letter word), a journal's digest and its history.
type Digester interface {
	Digests(ctx context.Context) (DigestInfo, error)
}

// IntegrityChecker is implemented by sides whose digest comes from a
// stored summary of a body that may be damaged (a snapshot file's trailer):
// CheckIntegrity reads the body and returns an error, naming where, unless
// it is intact and the summary is the body's; what says what was checked.
type IntegrityChecker interface {
	CheckIntegrity(ctx context.Context) (what string, err error)
}

// ZxidDigest is ZooKeeper's tree digest as of a zxid.
type ZxidDigest struct {
	Zxid   int64
	Digest znode.Digest
}

// DigestInfo is what a Digester knows.
type DigestInfo struct {
	// Method says where the digests come from, for reports: "snapshot
	// trailer", "hash four-letter word of 127.0.0.1:2181", "journal FSM".
	Method string
	// HasCurrent says Current holds the digest of the nodes the side holds
	// (Coverage) as of Zxid.
	HasCurrent bool
	Current    znode.Digest
	Zxid       int64
	// Exact says Current is the tree exactly as of Zxid. An export of a live
	// tree that saw writes during its walk is fuzzy: not exact.
	Exact bool
	// Nodes is the number of nodes in Current, −1 when unknown.
	Nodes int64
	// Coverage is the set of nodes Current covers.
	Coverage Coverage
	// History are digests of the whole tree (ZooKeeper's definition: every
	// node, /zookeeper itself included and its children contributing 0) as
	// of past zxids, oldest first: the lines of the `hash` four-letter word,
	// the journal's digest history.
	History []ZxidDigest
}

// Coverage is the set of nodes a digest covers.
type Coverage struct {
	Root    string   // the subtree ("/" for the whole tree)
	Exclude []string // subtrees left out, /zookeeper not listed
	// SystemNode says the /zookeeper node itself is counted, as ZooKeeper
	// counts it. Exports of the whole tree leave it out.
	SystemNode bool
	// SkipsEphemerals says ephemeral nodes are left out.
	SkipsEphemerals bool
}

// WholeTree is the coverage of ZooKeeper's own digest.
func WholeTree() Coverage { return Coverage{Root: "/", SystemNode: true} }
