package verify

import (
	"context"
	"fmt"
	"sync"

	"github.com/zk2raft/zk2raft/znode"
)

// JournalTree is what a journal:// side reads from an opened journal's state
// machine (raftjournal.FSM has these methods): its visible tree, streamed in
// canonical order, and ZooKeeper's digest of it.
type JournalTree interface {
	Walk(fn func(*znode.Node) error) error
	Digest() znode.Digest
}

// JournalState describes an opened journal for NewJournalSource.
type JournalState struct {
	// Tree is the journal's state machine, frozen: nothing applies to it
	// while the source is used (a data directory opened read-only).
	Tree JournalTree
	// LastZxid is the largest zxid the state reflects.
	LastZxid int64
	// Nodes is the number of visible nodes, the system nodes included.
	Nodes int64
	// History is the journal's digest history (zxids that are multiples of
	// 128, as ZooKeeper logs them), oldest first.
	History []ZxidDigest
	// Description adds to the report's description ("applied index 1234").
	Description string
	// Close releases the journal (its data directory lock); may be nil.
	Close func() error
}

// NewJournalSource makes a journal's frozen state a static Source with raw
// owners and extended types, whose digest (the whole tree, /zookeeper
// included, exact at LastZxid) and history make --digest-only constant time.
func NewJournalSource(uri string, st JournalState) Source {
	desc := fmt.Sprintf("journal state, %d nodes, zxid %s", st.Nodes, FormatZxid(st.LastZxid))
	if st.Description != "" {
		desc += ", " + st.Description
	}
	return &journalSource{st: st, info: Info{
		URI: uri, Scheme: "journal", Description: desc,
		RawOwners: true, ExtendedTypes: true, Root: "/", Nodes: st.Nodes,
	}}
}

type journalSource struct {
	st   JournalState
	info Info
	once sync.Once
	err  error
}

func (j *journalSource) Info() Info { return j.info }

func (j *journalSource) Walk(ctx context.Context, scope Scope, fn func(*znode.Node) error) error {
	i := 0
	return j.st.Tree.Walk(func(n *znode.Node) error {
		if i++; i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !scope.Contains(n.Path) {
			return nil
		}
		return fn(n)
	})
}

func (j *journalSource) Digests(context.Context) (DigestInfo, error) {
	return DigestInfo{
		Method:     "journal digest",
		HasCurrent: true,
		Current:    j.st.Tree.Digest(),
		Zxid:       j.st.LastZxid,
		Exact:      true,
		Nodes:      j.st.Nodes,
		Coverage:   WholeTree(),
		History:    j.st.History,
	}, nil
}

func (j *journalSource) Close() error {
	j.once.Do(func() {
		if j.st.Close != nil {
			j.err = j.st.Close()
		}
	})
	return j.err
}
