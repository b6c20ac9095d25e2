package raftjournal

import (
	"fmt"
	"slices"

	"github.com/zk2raft/zk2raft/znode"
)

// This file merges what ZooKeeper did (imported nodes and mirrored txns) into the
// tree by the order-insensitive rule drawn in doc.go ("Merging ZooKeeper's
// writes"). Every input is an observation of one path at a zxid; the state kept
// per path is a join of the observations, so applying them in any order, any
// number of times, ends in the same visible tree.

// tomb records the newest delete of a path seen from the source.
type tomb struct {
	zxid int64
	// incl marks a delete that followed the path's create in the same multi, so
	// that it also kills the incarnation created at zxid itself.
	incl bool
}

// kills reports whether the incarnation created at czxid is dead by this delete.
// Read with a child's or an event's zxid, it also says whether the incarnation of
// the path that was alive at that zxid is dead.
func (tb tomb) kills(czxid int64) bool {
	return czxid < tb.zxid || (tb.incl && czxid == tb.zxid)
}

// ghost is a pending record: what is known about a path that is not (yet) in the
// visible tree. Either its incarnation is incomplete (a setData seen before its
// create: no ACL), or its parent is not visible (a child's create seen before the
// parent's), or it only holds child registers for an incarnation not seen yet.
type ghost struct {
	n       node // known fields; n.czxid == 0: no incarnation known; n.kids carries only cvZxid
	hasData bool
	// orphans are the names of complete pending children waiting for this path to
	// become visible.
	orphans map[string]struct{}
}

func (g *ghost) complete() bool { return g.n.czxid != 0 && g.hasData && g.n.acl != 0 }

func (g *ghost) addOrphan(name string) {
	if g.orphans == nil {
		g.orphans = make(map[string]struct{})
	}
	g.orphans[name] = struct{}{}
}

func (g *ghost) empty() bool {
	return g.n.czxid == 0 && g.n.pzxid == 0 && g.n.cversion == 0 && g.n.cvKey() == 0 && len(g.orphans) == 0
}

// obs is one observation of a path: the stat of one incarnation after a create,
// setData, setACL or in an import, with the data and ACL when the input carries
// them. acl is a reference the observation owns; observe keeps or releases it.
type obs struct {
	path    string
	st      znode.Stat
	data    []byte
	hasData bool
	acl     aclID
	// slab, when set, is where the fast path may place the node (import batches
	// allocate their nodes in one block).
	slab *node
}

// mergeRegs merges a child-register observation into n: its pzxid is at least pz,
// and, when cvAt is not 0, its cversion as of zxid cvAt was cv. The cversion is
// last-writer-wins on cvAt, ties going to the larger count (two creates in one
// multi share a zxid); within one incarnation that equals taking the maximum.
func mergeRegs(n *node, pz, cvAt int64, cv int32) bool {
	changed := false
	key := n.cvKey()
	if cvAt != 0 && (cvAt > key || (cvAt == key && cv > n.cversion)) {
		n.cversion, key = cv, cvAt
		changed = true
	}
	if pz > n.pzxid {
		n.pzxid = pz
		changed = true
	}
	pinCvKey(n, key)
	return changed
}

// pinCvKey records key as n's cvKey, allocating the child set only when the key
// differs from what the absence of one implies.
func pinCvKey(n *node, key int64) {
	if n.kids != nil {
		n.kids.cvZxid = key
	} else if key != n.pzxid {
		n.kids = &kidSet{cvZxid: key}
	}
}

// dropRegsBelow forgets child registers older than keepFrom: they belong to an
// incarnation that is dead.
func dropRegsBelow(n *node, keepFrom int64) {
	key, cv := n.cvKey(), n.cversion
	if key < keepFrom {
		key, cv = 0, 0
	}
	if n.pzxid < keepFrom {
		n.pzxid = 0
	}
	n.cversion = cv
	pinCvKey(n, key)
}

func (t *tree) newGhost(path string) *ghost {
	g := &ghost{}
	t.ghosts[path] = g
	return g
}

func (t *tree) setTomb(path string, tb tomb) {
	if old, ok := t.tombs[path]; ok {
		if old.zxid > tb.zxid {
			return
		}
		if old.zxid == tb.zxid {
			tb.incl = tb.incl || old.incl
		}
	}
	t.tombs[path] = tb
}

// parentAllows reports whether an incarnation of path created at c can still be
// alive as far as its parent says: not if the parent's incarnation alive at c is
// known to be dead (a later parent incarnation or delete). It also returns the
// visible parent, if there is one.
func (t *tree) parentAllows(path string, c int64) (bool, *node) {
	p := znode.Parent(path)
	if len(t.tombs) > 0 {
		if tb, ok := t.tombs[p]; ok && tb.kills(c) {
			return false, nil
		}
	}
	if pn := t.nodes[p]; pn != nil {
		return pn.czxid <= c, pn
	}
	if pg := t.ghosts[p]; pg != nil && pg.n.czxid > c {
		return false, nil
	}
	return true, nil
}

// observe merges one observation; it reports whether the state changed.
func (t *tree) observe(o *obs) bool {
	path, c := o.path, o.st.Czxid
	if isSystemNode(path) {
		// The root and ZooKeeper's own nodes exist from the start with czxid 0;
		// they only merge.
		if n := t.nodes[path]; n != nil && n.czxid == c {
			return t.mergeVisible(path, n, o)
		}
		t.acls.release(o.acl)
		return false
	}
	if c <= 0 {
		t.acls.release(o.acl)
		return false
	}
	if len(t.tombs) > 0 {
		if tb, ok := t.tombs[path]; ok && tb.kills(c) {
			t.acls.release(o.acl)
			return false
		}
	}
	ok, parent := t.parentAllows(path, c)
	if !ok {
		t.acls.release(o.acl)
		return false
	}
	if n := t.nodes[path]; n != nil {
		switch {
		case n.czxid > c:
			t.acls.release(o.acl)
			return false
		case n.czxid == c:
			return t.mergeVisible(path, n, o)
		}
		if t.rebased.twin(n, c) {
			// ZooKeeper's copy of a node the journal created in the primary
			// period a rollback ended: the same node (rollback.go). It takes
			// ZooKeeper's czxid and ctime; its children stay.
			t.pre(path, n)
			n.czxid, n.ctime = c, o.st.Ctime
			t.post(path, n)
			t.mergeVisible(path, n, o)
			return true
		}
		// n is an older incarnation, which must have been deleted before c.
		t.killVisible(path, n, func(z int64) bool { return z < c }, c)
	}
	var g *ghost
	if len(t.ghosts) > 0 {
		g = t.ghosts[path]
	}
	if g == nil && o.hasData && o.acl != 0 {
		if parent != nil {
			// The fast path: a complete incarnation under a visible parent, with
			// nothing pending for the path.
			n := o.slab
			if n == nil {
				n = new(node)
			}
			*n = node{
				data: o.data, czxid: c, mzxid: o.st.Mzxid, ctime: o.st.Ctime, mtime: o.st.Mtime,
				owner: o.st.EphemeralOwner, pzxid: o.st.Pzxid, version: o.st.Version,
				cversion: o.st.Cversion, aversion: o.st.Aversion, acl: o.acl,
			}
			if len(t.tombs) > 0 {
				delete(t.tombs, path)
			}
			t.insertUnder(path, n, parent)
			return true
		}
	}
	if g != nil && g.n.czxid != 0 {
		if g.n.czxid > c {
			t.acls.release(o.acl)
			return false
		}
		if g.n.czxid < c {
			t.forgetIncarnation(path, g, c)
		}
	}
	if g == nil {
		g = t.newGhost(path)
	}
	t.mergeGhost(g, o)
	// Any tombstone left is older than c, and the incarnation now rejects what it
	// would have.
	delete(t.tombs, path)
	t.settle(path, g)
	return true
}

// mergeVisible merges an observation of a visible node's own incarnation.
func (t *tree) mergeVisible(path string, n *node, o *obs) bool {
	before := t.nodeDigest(path, n)
	changed, dataChanged := false, false
	if o.hasData && (o.st.Mzxid > n.mzxid || (o.st.Mzxid == n.mzxid && o.st.Version > n.version)) {
		n.data, n.mzxid, n.mtime, n.version = o.data, o.st.Mzxid, o.st.Mtime, o.st.Version
		changed, dataChanged = true, true
	}
	if o.acl != 0 && o.st.Aversion > n.aversion {
		t.acls.releaseLater(n.acl)
		n.acl, n.aversion = o.acl, o.st.Aversion
		changed = true
	} else {
		t.acls.release(o.acl)
	}
	if mergeRegs(n, o.st.Pzxid, o.st.Pzxid, o.st.Cversion) {
		changed = true
	}
	if changed {
		t.digest.Remove(before)
		t.post(path, n)
	}
	if dataChanged {
		t.emit(EventNodeDataChanged, path)
	}
	return changed
}

// mergeGhost merges an observation into a pending record whose incarnation is
// unknown or the observation's own.
func (t *tree) mergeGhost(g *ghost, o *obs) {
	if g.n.czxid == 0 {
		g.n.czxid, g.n.ctime, g.n.owner = o.st.Czxid, o.st.Ctime, o.st.EphemeralOwner
		// Registers gathered before the incarnation was known may be older ones'.
		dropRegsBelow(&g.n, o.st.Czxid)
	}
	if o.hasData && (!g.hasData || o.st.Mzxid > g.n.mzxid || (o.st.Mzxid == g.n.mzxid && o.st.Version > g.n.version)) {
		g.n.data, g.n.mzxid, g.n.mtime, g.n.version = o.data, o.st.Mzxid, o.st.Mtime, o.st.Version
		g.hasData = true
	}
	if o.acl != 0 && (g.n.acl == 0 || o.st.Aversion > g.n.aversion) {
		t.acls.releaseLater(g.n.acl)
		g.n.acl, g.n.aversion = o.acl, o.st.Aversion
	} else {
		t.acls.release(o.acl)
	}
	mergeRegs(&g.n, o.st.Pzxid, o.st.Pzxid, o.st.Cversion)
}

// forgetIncarnation drops a pending record's incarnation, which is dead, keeping
// the child registers at or after keepFrom (a later incarnation's).
func (t *tree) forgetIncarnation(path string, g *ghost, keepFrom int64) {
	if pg := t.ghosts[znode.Parent(path)]; pg != nil && pg.orphans != nil {
		delete(pg.orphans, znode.Base(path))
	}
	t.acls.releaseLater(g.n.acl)
	kids := g.n.kids
	pz, cv := g.n.pzxid, g.n.cversion
	g.n = node{pzxid: pz, cversion: cv, kids: kids}
	g.hasData = false
	dropRegsBelow(&g.n, keepFrom)
}

// gcGhost removes a pending record that holds nothing, and its parent's if that
// becomes empty in turn.
func (t *tree) gcGhost(path string, g *ghost) {
	for g != nil && g.empty() {
		delete(t.ghosts, path)
		parent := znode.Parent(path)
		pg := t.ghosts[parent]
		if pg == nil {
			return
		}
		delete(pg.orphans, znode.Base(path))
		path, g = parent, pg
	}
}

// settle makes a complete pending record visible if its parent is, or registers it
// with its parent's pending record to wait.
func (t *tree) settle(path string, g *ghost) {
	if !g.complete() {
		return
	}
	parent := znode.Parent(path)
	if pn := t.nodes[parent]; pn != nil {
		if pn.czxid > g.n.czxid {
			t.forgetIncarnation(path, g, pn.czxid)
			t.gcGhost(path, g)
			return
		}
		t.promote(path, g)
		return
	}
	pg := t.ghosts[parent]
	if pg == nil {
		pg = t.newGhost(parent)
	}
	pg.addOrphan(znode.Base(path))
}

// promote moves a complete pending record into the visible tree under its visible
// parent, then its waiting children.
func (t *tree) promote(path string, g *ghost) {
	delete(t.ghosts, path)
	n := new(node)
	*n = g.n
	t.insertVisible(path, n)
	if len(g.orphans) == 0 {
		return
	}
	names := make([]string, 0, len(g.orphans))
	for name := range g.orphans {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		cp := znode.Join(path, name)
		cg := t.ghosts[cp]
		if cg == nil || !cg.complete() {
			continue
		}
		if cg.n.czxid < n.czxid {
			// Created under an older incarnation of this path: dead.
			t.forgetIncarnation(cp, cg, n.czxid)
			t.gcGhost(cp, cg)
			continue
		}
		t.promote(cp, cg)
	}
}

// killVisible removes a visible node whose incarnation is dead, and deals with its
// subtree: descendants kills says are dead go too; the others belong to a later
// incarnation of their parent path and wait as pending records. Child registers
// at or after keepFrom are kept for that later incarnation.
func (t *tree) killVisible(path string, n *node, kills func(int64) bool, keepFrom int64) {
	t.removeVisible(path, n)
	t.acls.releaseLater(n.acl)
	var g *ghost
	ensure := func() *ghost {
		if g == nil {
			g = t.ghosts[path]
			if g == nil {
				g = t.newGhost(path)
			}
		}
		return g
	}
	if n.kids != nil {
		names := slices.Sorted(slices.Values(n.kids.names))
		for _, name := range names {
			cp := znode.Join(path, name)
			cn := t.nodes[cp]
			if cn == nil {
				continue
			}
			if kills(cn.czxid) {
				t.killVisible(cp, cn, kills, keepFrom)
			} else {
				t.demoteVisible(cp, cn, ensure())
			}
		}
	}
	if k := n.cvKey(); k >= keepFrom {
		mergeRegs(&ensure().n, 0, k, n.cversion)
	}
	if n.pzxid >= keepFrom {
		mergeRegs(&ensure().n, n.pzxid, 0, 0)
	}
}

// demoteVisible moves a visible subtree into the pending records, under the
// pending record of its parent path.
func (t *tree) demoteVisible(path string, n *node, parent *ghost) {
	t.removeVisible(path, n)
	g := &ghost{n: *n, hasData: true}
	g.n.kids = nil
	if n.kids != nil {
		g.n.kids = &kidSet{cvZxid: n.kids.cvZxid}
	}
	t.ghosts[path] = g
	parent.addOrphan(znode.Base(path))
	if n.kids != nil {
		for _, name := range slices.Sorted(slices.Values(n.kids.names)) {
			cp := znode.Join(path, name)
			if cn := t.nodes[cp]; cn != nil {
				t.demoteVisible(cp, cn, g)
			}
		}
	}
}

// childEvent merges a child create or delete at zxid z into the parent path's
// registers: pzxid at least pz, and for a create the cversion cv as of z.
func (t *tree) childEvent(p string, z, pz, cvAt int64, cv int32) bool {
	if p == "" {
		return false
	}
	if tb, ok := t.tombs[p]; ok && tb.kills(z) {
		return false
	}
	if n := t.nodes[p]; n != nil {
		if n.czxid > z {
			return false
		}
		before := t.nodeDigest(p, n)
		if !mergeRegs(n, pz, cvAt, cv) {
			return false
		}
		t.digest.Remove(before)
		t.post(p, n)
		return true
	}
	g := t.ghosts[p]
	if g != nil && g.n.czxid > z {
		return false
	}
	if g == nil {
		g = t.newGhost(p)
	}
	return mergeRegs(&g.n, pz, cvAt, cv)
}

// deleteObs merges a delete of path at zxid d, and its effect on the parent's
// registers when parentEffect is set.
func (t *tree) deleteObs(path string, d int64, incl, parentEffect bool) bool {
	if isSystemNode(path) {
		return false
	}
	tb := tomb{zxid: d, incl: incl}
	changed := false
	if n := t.nodes[path]; n != nil {
		if tb.kills(n.czxid) {
			t.killVisible(path, n, tb.kills, d+1)
			t.setTomb(path, tb)
			changed = true
		}
	} else if g := t.ghosts[path]; g != nil {
		if g.n.czxid == 0 || tb.kills(g.n.czxid) {
			if g.n.czxid != 0 {
				t.forgetIncarnation(path, g, d+1)
			} else {
				dropRegsBelow(&g.n, d+1)
			}
			t.setTomb(path, tb)
			t.gcGhost(path, g)
			changed = true
		}
	} else {
		old, ok := t.tombs[path]
		t.setTomb(path, tb)
		changed = !ok || old != t.tombs[path]
	}
	if parentEffect && t.childEvent(znode.Parent(path), d, d, 0, 0) {
		changed = true
	}
	return changed
}

// validateSourceTxn checks a mirrored txn before any of it is applied.
func validateSourceTxn(tx *SourceTxn) error {
	if tx.Zxid <= 0 {
		return fmt.Errorf("%w: source txn zxid %#x", ErrBadCommand, tx.Zxid)
	}
	if len(tx.Ops) > 1 && !tx.Multi {
		return fmt.Errorf("%w: %d ops in a txn that is not a multi", ErrBadCommand, len(tx.Ops))
	}
	for i := range tx.Ops {
		op := &tx.Ops[i]
		bad := func(why string) error {
			return fmt.Errorf("%w: source txn %#x op %d (%s %s): %s", ErrBadCommand, tx.Zxid, i, op.Kind, op.Path, why)
		}
		if op.Kind != SourceCloseSession {
			if err := validatePath(op.Path); err != nil {
				return bad(err.Error())
			}
		}
		switch op.Kind {
		case SourceCreate:
			if op.Stat.Czxid != tx.Zxid || op.Stat.Mzxid != tx.Zxid {
				return bad("created stat does not carry the txn zxid")
			}
			if op.Path == "/" {
				return bad("cannot create the root")
			}
		case SourceSetData:
			if op.Stat.Mzxid != tx.Zxid || op.Stat.Czxid > tx.Zxid {
				return bad("stat does not carry the txn zxid")
			}
		case SourceSetACL:
			if op.Stat.Czxid > tx.Zxid {
				return bad("stat is newer than the txn")
			}
		case SourceDelete:
		case SourceCloseSession:
			for _, p := range op.Paths {
				if err := validatePath(p); err != nil {
					return bad(err.Error())
				}
			}
		default:
			return bad("unknown kind")
		}
	}
	return nil
}

// applySource merges a validated mirrored txn; it returns how many ops changed the
// state.
//
// The ops of a multi share one zxid, so zxids cannot order them; the txn's own op
// order does. Only the last incarnation of a path within the multi can be seen by
// anyone else (the multi is atomic), so an op whose path, or whose parent path
// (for a create's or delete's effect on the parent), is deleted later in the same
// multi is skipped: the incarnation it touched died at this zxid. The last delete
// of a path kills the incarnation created at this zxid too ("inclusive") when the
// multi created the path before deleting it and did not create it again after.
func (t *tree) applySource(tx *SourceTxn) int {
	z := tx.Zxid
	var lastDel map[string]int
	if tx.Multi {
		for i := range tx.Ops {
			if tx.Ops[i].Kind == SourceDelete {
				if lastDel == nil {
					lastDel = make(map[string]int)
				}
				lastDel[tx.Ops[i].Path] = i
			}
		}
	}
	diesLater := func(path string, i int) bool {
		j, ok := lastDel[path]
		return ok && j > i
	}
	createdIn := func(path string, from, to int) bool {
		for k := from; k < to; k++ {
			if tx.Ops[k].Kind == SourceCreate && tx.Ops[k].Path == path {
				return true
			}
		}
		return false
	}
	changed := 0
	for i := range tx.Ops {
		op := &tx.Ops[i]
		did := false
		parent := znode.Parent(op.Path)
		switch op.Kind {
		case SourceCreate:
			if !diesLater(op.Path, i) {
				o := obs{path: op.Path, st: op.Stat, data: op.Data, hasData: true, acl: t.acls.acquire(op.ACL)}
				did = t.observe(&o)
			}
			if !diesLater(parent, i) {
				// The parent's (pzxid, cversion) pair holds as of its pzxid: the
				// txn's zxid when it comes from the CreateTxn, a later one when
				// the mirror read the parent's stat back. ParentPzxid 0: the
				// cversion is unknown, only pzxid moves.
				pz, cvAt, cv := z, int64(0), int32(0)
				if op.ParentPzxid != 0 {
					pz = max(z, op.ParentPzxid)
					cvAt, cv = pz, op.ParentCversion
				}
				if t.childEvent(parent, z, pz, cvAt, cv) {
					did = true
				}
			}
		case SourceDelete:
			if diesLater(op.Path, i) {
				if !diesLater(parent, i) && t.childEvent(parent, z, z, 0, 0) {
					did = true
				}
				break
			}
			incl := createdIn(op.Path, 0, i) && !createdIn(op.Path, i+1, len(tx.Ops))
			did = t.deleteObs(op.Path, z, incl, !diesLater(parent, i))
		case SourceSetData:
			if !diesLater(op.Path, i) {
				o := obs{path: op.Path, st: op.Stat, data: op.Data, hasData: true}
				did = t.observe(&o)
			}
		case SourceSetACL:
			if !diesLater(op.Path, i) {
				o := obs{path: op.Path, st: op.Stat, acl: t.acls.acquire(op.ACL)}
				did = t.observe(&o)
			}
		case SourceCloseSession:
			for _, p := range op.Paths {
				if t.deleteObs(p, z, false, true) {
					did = true
				}
			}
		}
		if did {
			changed++
		}
	}
	return changed
}
