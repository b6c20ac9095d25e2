package dualwrite

import (
	"context"
	"errors"
	"sync"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// JournalView is how the reconciler reads the journal it repairs: a node in
// this process (NodeView) or one reached through its admin endpoint
// (RemoteView).
type JournalView interface {
	// Get returns the visible node at path (persisted stat with the raw
	// ephemeral owner, data with nil and empty kept apart, ACL), or false.
	Get(ctx context.Context, path string) (*znode.Node, bool, error)
	// Walk calls fn with every visible node of the subtree at root, root
	// included, in canonical order (znode.ComparePaths). A missing root
	// yields no nodes; fn's error stops the walk and is returned. fn may keep
	// the nodes but must not modify them.
	Walk(ctx context.Context, root string, fn func(*znode.Node) error) error
	// DigestHistory returns the journal's digest history, oldest first: the
	// tree digest after each mirrored txn whose zxid is a multiple of 128.
	DigestHistory(ctx context.Context) ([]raftjournal.DigestEntry, error)
	// LastSourceZxid returns the largest ZooKeeper zxid the journal has seen,
	// in imported stats or mirrored txns.
	LastSourceZxid(ctx context.Context) (int64, error)
}

// JournalDigester is implemented by views that also know the journal's
// digest now; both implementations here do. The reconciler uses it to compare
// with ZooKeeper's digest at a zxid the history does not hold.
type JournalDigester interface {
	// CurrentDigest returns ZooKeeper's digest of the journal's whole visible
	// tree and the largest ZooKeeper zxid seen, read together.
	CurrentDigest(ctx context.Context) (digest znode.Digest, sourceZxid int64, err error)
}

// NodeView reads a journal node of this process. Get and Walk first pass a
// read barrier (the node applies everything committed before the call, as a
// raftjournal.Linearizable read does), so a follower's view is as fresh as
// the leader's and a repair just submitted is seen; the digest reads are
// local.
//
// Walk uses FSM.Walk, which copies the whole tree's node records under the
// FSM's read lock (a few hundred milliseconds at 1M nodes; the data is shared,
// not copied), sorts them and streams without the lock. There is no subtree
// walk in the FSM: a subtree costs that copy of the whole tree, and the walk
// skips to it and stops after it.
func NodeView(n *raftjournal.Node) JournalView { return nodeView{n} }

type nodeView struct{ n *raftjournal.Node }

var (
	_ JournalView     = nodeView{}
	_ JournalDigester = nodeView{}
)

// barrier waits until the node has applied everything committed before it.
func (v nodeView) barrier(ctx context.Context) error {
	_, _, err := v.n.Exists(ctx, "/", raftjournal.Linearizable())
	return err
}

func (v nodeView) Get(ctx context.Context, path string) (*znode.Node, bool, error) {
	if err := v.barrier(ctx); err != nil {
		return nil, false, err
	}
	n, ok := v.n.FSM().Node(path)
	return n, ok, nil
}

// errViewWalkDone stops FSM.Walk once past the subtree.
var errViewWalkDone = errors.New("dualwrite: end of subtree")

func (v nodeView) Walk(ctx context.Context, root string, fn func(*znode.Node) error) error {
	if err := v.barrier(ctx); err != nil {
		return err
	}
	inside, i := false, 0
	err := v.n.FSM().Walk(func(n *znode.Node) error {
		if i++; i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !underRoot(n.Path, root) {
			if inside {
				return errViewWalkDone // canonical order keeps a subtree contiguous
			}
			return nil
		}
		inside = true
		return fn(n)
	})
	if errors.Is(err, errViewWalkDone) {
		return nil
	}
	return err
}

func (v nodeView) DigestHistory(context.Context) ([]raftjournal.DigestEntry, error) {
	return v.n.FSM().DigestHistory(), nil
}

func (v nodeView) LastSourceZxid(context.Context) (int64, error) {
	return v.n.FSM().Status().MaxSourceZxid, nil
}

func (v nodeView) CurrentDigest(context.Context) (znode.Digest, int64, error) {
	st := v.n.FSM().Status()
	return st.Digest, st.MaxSourceZxid, nil
}

// RemoteView reads a journal node through its admin endpoint: GET /node,
// /tree and /digests (raftjournal/admin_tree.go), with the client's cluster
// credentials and ZooKeeper credentials (the node enforces the ACLs, so give
// it those the reconciler reads ZooKeeper with). Get and Walk ask for
// linearizable reads (the node passes a read barrier through the leader
// first), so any member will do; the digest reads are that member's local
// state. A /tree stream cut short is an error, never a smaller tree.
func RemoteView(admin *raftjournal.AdminClient) JournalView { return remoteView{admin} }

type remoteView struct{ c *raftjournal.AdminClient }

var (
	_ JournalView     = remoteView{}
	_ JournalDigester = remoteView{}
)

func (v remoteView) Get(ctx context.Context, path string) (*znode.Node, bool, error) {
	return v.c.GetNode(ctx, path, true)
}

func (v remoteView) Walk(ctx context.Context, root string, fn func(*znode.Node) error) error {
	return v.c.WalkTree(ctx, root, true, fn)
}

func (v remoteView) DigestHistory(ctx context.Context) ([]raftjournal.DigestEntry, error) {
	d, err := v.c.Digests(ctx)
	if err != nil {
		return nil, err
	}
	return d.History, nil
}

func (v remoteView) LastSourceZxid(ctx context.Context) (int64, error) {
	d, err := v.c.Digests(ctx)
	if err != nil {
		return 0, err
	}
	return d.MaxSourceZxid, nil
}

func (v remoteView) CurrentDigest(ctx context.Context) (znode.Digest, int64, error) {
	d, err := v.c.Digests(ctx)
	if err != nil {
		return 0, 0, err
	}
	return d.Digest, d.MaxSourceZxid, nil
}

// underRoot reports whether p is root or below it.
func underRoot(p, root string) bool {
	if root == "/" || p == root {
		return true
	}
	return len(p) > len(root) && p[:len(root)] == root && p[len(root)] == '/'
}

// FailoverView reads the journal through whichever member answers: members
// returns the admin addresses to try, in order (importer.JournalCluster's
// AdminAddrs: the member that answered last first, then the others, those
// learned from the cluster included), and client makes the admin client for
// one (with the cluster's credentials and the ZooKeeper credentials the
// reads are checked against, as RemoteView takes it); clients are kept per
// address. Each read goes to the first member that answers. A Walk moves on
// to the next member only if the failing one yielded no node yet: one cut
// short midway is an error, never a tree pieced together from two members.
func FailoverView(members func() []string, client func(adminAddr string) *raftjournal.AdminClient) JournalView {
	return failoverView{members: members, client: client, clients: &sync.Map{}}
}

type failoverView struct {
	members func() []string
	client  func(string) *raftjournal.AdminClient
	clients *sync.Map // admin address → *raftjournal.AdminClient
}

var (
	_ JournalView     = failoverView{}
	_ JournalDigester = failoverView{}
)

func (v failoverView) view(addr string) remoteView {
	if c, ok := v.clients.Load(addr); ok {
		return remoteView{c.(*raftjournal.AdminClient)}
	}
	c, _ := v.clients.LoadOrStore(addr, v.client(addr))
	return remoteView{c.(*raftjournal.AdminClient)}
}

// each calls f with the members' views in turn until one succeeds.
func (v failoverView) each(ctx context.Context, f func(remoteView) error) error {
	var errs []error
	for _, a := range v.members() {
		err := f(v.view(a))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return errors.New("dualwrite: no journal member to read from")
	}
	return errors.Join(errs...)
}

func (v failoverView) Get(ctx context.Context, path string) (n *znode.Node, ok bool, err error) {
	err = v.each(ctx, func(r remoteView) error {
		n, ok, err = r.Get(ctx, path)
		return err
	})
	return n, ok, err
}

func (v failoverView) Walk(ctx context.Context, root string, fn func(*znode.Node) error) error {
	yielded := false
	var fnErr error
	var cut error
	err := v.each(ctx, func(r remoteView) error {
		if yielded {
			return nil
		}
		err := r.Walk(ctx, root, func(n *znode.Node) error {
			yielded = true
			if err := fn(n); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if err != nil && yielded {
			cut = err // cut short midway: no failover
			return nil
		}
		return err
	})
	switch {
	case fnErr != nil:
		return fnErr
	case cut != nil:
		return cut
	}
	return err
}

func (v failoverView) DigestHistory(ctx context.Context) (h []raftjournal.DigestEntry, err error) {
	err = v.each(ctx, func(r remoteView) error {
		h, err = r.DigestHistory(ctx)
		return err
	})
	return h, err
}

func (v failoverView) LastSourceZxid(ctx context.Context) (z int64, err error) {
	err = v.each(ctx, func(r remoteView) error {
		z, err = r.LastSourceZxid(ctx)
		return err
	})
	return z, err
}

func (v failoverView) CurrentDigest(ctx context.Context) (d znode.Digest, z int64, err error) {
	err = v.each(ctx, func(r remoteView) error {
		d, z, err = r.CurrentDigest(ctx)
		return err
	})
	return d, z, err
}

// JournalDigestState is a view's digest figures read together, after a read
// barrier (everything committed before the call applied), so that they
// describe one state of a member that is not behind: the digest history, the
// largest ZooKeeper zxid seen and the tree's digest now.
type JournalDigestState struct {
	History       []raftjournal.DigestEntry
	MaxSourceZxid int64
	Digest        znode.Digest
}

// journalDigestReader is implemented by the views here; the reconciler's
// digest check uses it, so that a member that restarted and has not replayed
// its log yet is not taken for the journal's state.
type journalDigestReader interface {
	DigestState(ctx context.Context) (JournalDigestState, error)
}

var (
	_ journalDigestReader = nodeView{}
	_ journalDigestReader = remoteView{}
	_ journalDigestReader = failoverView{}
)

func (v nodeView) DigestState(ctx context.Context) (JournalDigestState, error) {
	if err := v.barrier(ctx); err != nil {
		return JournalDigestState{}, err
	}
	st := v.n.FSM().Status()
	return JournalDigestState{History: v.n.FSM().DigestHistory(), MaxSourceZxid: st.MaxSourceZxid, Digest: st.Digest}, nil
}

func (v remoteView) DigestState(ctx context.Context) (JournalDigestState, error) {
	// A linearizable read is the barrier: the member answers it once it has
	// applied everything committed when it arrived.
	if _, _, err := v.Get(ctx, "/"); err != nil {
		return JournalDigestState{}, err
	}
	d, err := v.c.Digests(ctx)
	if err != nil {
		return JournalDigestState{}, err
	}
	return JournalDigestState{History: d.History, MaxSourceZxid: d.MaxSourceZxid, Digest: d.Digest}, nil
}

func (v failoverView) DigestState(ctx context.Context) (st JournalDigestState, err error) {
	err = v.each(ctx, func(r remoteView) error {
		st, err = r.DigestState(ctx)
		return err
	})
	return st, err
}
