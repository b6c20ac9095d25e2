package datadir

import (
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// ChangeKind says what one applied op did.
type ChangeKind uint8

// The change kinds.
const (
	ChangeCreate ChangeKind = iota + 1
	ChangeDelete
	ChangeSetData
	ChangeSetACL
	ChangeCreateSession
	ChangeCloseSession
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeCreate:
		return "create"
	case ChangeDelete:
		return "delete"
	case ChangeSetData:
		return "setData"
	case ChangeSetACL:
		return "setACL"
	case ChangeCreateSession:
		return "createSession"
	case ChangeCloseSession:
		return "closeSession"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one effect of a txn on the tree, with the state it left: what a
// mirror of the txn needs to carry.
type Change struct {
	Kind ChangeKind
	Path string
	// Node is the node after a create, setData or setACL (shared with the
	// tree: valid until the tree changes, not to be modified).
	Node *znode.Node
	// ParentCversion and ParentPzxid are the parent's persisted cversion and
	// pzxid after a create.
	ParentCversion int32
	ParentPzxid    int64
	// Session is the session a createSession or closeSession names, with its
	// timeout (createSession) and the ephemerals the close deleted, in the
	// order they were deleted.
	Session   int64
	TimeoutMs int32
	Deleted   []string
}

// Skip is an op the tree could not apply, with ZooKeeper's error for it:
// DataTree.processTxn ignores these, which is right while a replay re-applies
// txns a fuzzy snapshot already holds and a sign of divergence after that.
type Skip struct {
	Op   int // the op's index in a multi, 0 otherwise
	Path string
	Err  string // "NoNode", "NodeExists"
}

// Result is what Apply did with one txn.
type Result struct {
	Changes []Change
	Skips   []Skip
	// Mutated says the tree changed (a node created, deleted or modified).
	Mutated bool
}

// Apply applies t to the tree as DataTree.processTxn (and
// FileTxnSnapLog.processTransaction, for the session table) does, and
// reports what changed. keepChanges says whether to fill Result.Changes.
// Only malformed txns are errors (a path that is not absolute, a TTL out of
// range); ops ZooKeeper would fail are Skips.
func (t *Tree) Apply(tx *Txn, keepChanges bool) (Result, error) {
	a := applier{t: t, tx: tx, keep: keepChanges}
	switch tx.Type {
	case TxnCreateSession:
		t.sessions[tx.Session] = tx.TimeoutMs
		a.change(Change{Kind: ChangeCreateSession, Session: tx.Session, TimeoutMs: tx.TimeoutMs})
	case TxnCloseSession:
		delete(t.sessions, tx.Session)
		a.closeSession()
	case TxnMulti:
		failed := tx.Failed()
		for i := range tx.Ops {
			op := &tx.Ops[i]
			if failed || op.Type == TxnError {
				continue
			}
			a.op = i
			if err := a.apply(op); err != nil {
				return a.res, fmt.Errorf("datadir: %s: multi op %d: %w", tx.Pos, i, err)
			}
		}
	default:
		if err := a.apply(&tx.Record); err != nil {
			return a.res, fmt.Errorf("datadir: %s: %w", tx.Pos, err)
		}
	}
	if tx.Zxid > t.zxid {
		t.zxid = tx.Zxid
	}
	return a.res, nil
}

type applier struct {
	t    *Tree
	tx   *Txn
	keep bool
	op   int
	res  Result
}

func (a *applier) change(c Change) {
	if a.keep {
		a.res.Changes = append(a.res.Changes, c)
	}
}

func (a *applier) skip(path, err string) {
	a.res.Skips = append(a.res.Skips, Skip{Op: a.op, Path: path, Err: err})
}

func checkPath(p string) error {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return fmt.Errorf("txn path %q is not a node path", p)
	}
	return nil
}

// apply applies one op (a txn's record, or a multi's sub-txn).
func (a *applier) apply(r *Record) error {
	switch r.Type {
	case TxnCreate, TxnCreate2, TxnCreateContainer, TxnCreateTTL:
		if err := checkPath(r.Path); err != nil {
			return err
		}
		var owner int64
		switch r.Type {
		case TxnCreateContainer:
			owner = znode.ContainerOwner
		case TxnCreateTTL:
			o, err := znode.TTLOwner(r.TTL)
			if err != nil {
				return err
			}
			owner = o
			a.t.extended = true
		default:
			if r.Ephemeral {
				owner = a.tx.Session
			}
		}
		err := a.create(r, owner)
		// DataTree.processTxn: a create (type 1, also inside a multi) that
		// finds its node already there raises the parent's cversion and
		// pzxid to the txn's, as a replay over a fuzzy snapshot needs.
		if err == "NodeExists" && r.Type == TxnCreate {
			a.setCversionPzxid(znode.Parent(r.Path), r.ParentCversion)
		}
		if err != "" {
			a.skip(r.Path, err)
		}
	case TxnDelete, TxnDeleteContainer:
		if err := checkPath(r.Path); err != nil {
			return err
		}
		if err := a.delete(r.Path); err != "" {
			a.skip(r.Path, err)
		} else {
			a.change(Change{Kind: ChangeDelete, Path: r.Path})
		}
	case TxnSetData, TxnReconfig:
		n := a.t.nodes[r.Path]
		if n == nil {
			a.skip(r.Path, "NoNode")
			return nil
		}
		a.t.preChange(n)
		n.data = r.Data
		n.stat.Mtime = a.tx.Time
		n.stat.Mzxid = a.tx.Zxid
		n.stat.Version = r.Version
		a.t.postChange(r.Path, n)
		a.res.Mutated = true
		a.changeNode(ChangeSetData, r.Path, n)
	case TxnSetACL:
		n := a.t.nodes[r.Path]
		if n == nil {
			a.skip(r.Path, "NoNode")
			return nil
		}
		a.t.acls.release(n.acl)
		a.t.preChange(n)
		n.stat.Aversion = r.Version
		n.acl = a.t.acls.convert(r.ACL)
		a.t.postChange(r.Path, n)
		a.res.Mutated = true
		a.changeNode(ChangeSetACL, r.Path, n)
	case TxnCheck, TxnError:
	default:
		// DecodeTxn refuses every other type; a Txn built by hand may not.
		return fmt.Errorf("%w: %s", ErrUnknownTxn, r.Type)
	}
	return nil
}

func (a *applier) changeNode(k ChangeKind, p string, n *node) {
	if a.keep {
		a.change(Change{Kind: k, Path: p, Node: a.t.view(p, n)})
	}
}

// create is DataTree.createNode; it returns ZooKeeper's error name or "".
func (a *applier) create(r *Record, owner int64) string {
	t := a.t
	pp := znode.Parent(r.Path)
	parent := t.nodes[pp]
	if parent == nil {
		return "NoNode"
	}
	// DataTree adds the list to the cache before it looks for the node, so
	// that a replay over a fuzzy snapshot hands out the same indices.
	acl := t.acls.convert(r.ACL)
	name := znode.Base(r.Path)
	if _, ok := parent.kids[name]; ok {
		return "NodeExists"
	}
	t.preChange(parent)
	pcv := r.ParentCversion
	if pcv == -1 {
		pcv = parent.stat.Cversion + 1
	}
	// A create replayed over a fuzzy snapshot may find the parent ahead of
	// it: only move forward.
	if pcv > parent.stat.Cversion {
		parent.stat.Cversion = pcv
		parent.stat.Pzxid = a.tx.Zxid
	}
	z, tm := a.tx.Zxid, a.tx.Time
	n := &node{data: r.Data, acl: acl, stat: znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: tm, Mtime: tm, EphemeralOwner: owner}}
	if parent.kids == nil {
		parent.kids = make(map[string]*node)
	}
	parent.kids[name] = n
	t.postChange(pp, parent)
	t.put(r.Path, n)
	t.index(r.Path, owner)
	a.res.Mutated = true
	if a.keep {
		a.change(Change{Kind: ChangeCreate, Path: r.Path, Node: t.view(r.Path, n), ParentCversion: parent.stat.Cversion, ParentPzxid: parent.stat.Pzxid})
	}
	return ""
}

// delete is DataTree.deleteNode: the parent's pzxid moves forward even when
// the node is already gone, and a node is removed without its children.
func (a *applier) delete(p string) string {
	t := a.t
	pp := znode.Parent(p)
	parent := t.nodes[pp]
	if parent == nil {
		return "NoNode"
	}
	t.preChange(parent)
	delete(parent.kids, znode.Base(p))
	if len(parent.kids) == 0 {
		parent.kids = nil
	}
	if a.tx.Zxid > parent.stat.Pzxid {
		parent.stat.Pzxid = a.tx.Zxid
	}
	t.postChange(pp, parent)
	a.res.Mutated = true
	n := t.nodes[p]
	if n == nil {
		return "NoNode"
	}
	delete(t.nodes, p)
	t.digest.Remove(n.dg)
	t.acls.release(n.acl)
	t.unindex(p, n.stat.EphemeralOwner)
	return ""
}

// setCversionPzxid is DataTree.setCversionPzxid.
func (a *applier) setCversionPzxid(p string, cv int32) {
	n := a.t.nodes[p]
	if n == nil {
		a.skip(p, "NoNode")
		return
	}
	if cv == -1 {
		cv = n.stat.Cversion + 1
	}
	if cv > n.stat.Cversion {
		a.t.preChange(n)
		n.stat.Cversion = cv
		n.stat.Pzxid = a.tx.Zxid
		a.t.postChange(p, n)
		a.res.Mutated = true
	}
}

// closeSession is DataTree.killSession: the paths the txn names (3.6+), then
// whatever else the session still owns.
func (a *applier) closeSession() {
	t, tx := a.t, a.tx
	owned := t.ephemerals[tx.Session]
	delete(t.ephemerals, tx.Session)
	var deleted []string
	del := func(p string) {
		if err := a.delete(p); err != "" {
			a.skip(p, err)
		} else {
			deleted = append(deleted, p)
		}
	}
	if tx.HasPaths {
		for _, p := range tx.Paths {
			del(p)
			delete(owned, p)
		}
	}
	if len(owned) > 0 {
		rest := make([]string, 0, len(owned))
		for p := range owned {
			rest = append(rest, p)
		}
		// DataTree walks a HashSet; the order does not change the outcome.
		slices.Sort(rest)
		for _, p := range rest {
			del(p)
		}
	}
	a.change(Change{Kind: ChangeCloseSession, Session: tx.Session, Deleted: deleted})
}
