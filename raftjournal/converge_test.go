package raftjournal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// refTree is a deliberately plain, sequential model of ZooKeeper's DataTree: it
// applies writes in zxid order exactly as DataTree.processTxn does and is what the
// FSM's order-insensitive merge must converge to.
type refTree struct {
	nodes map[string]*refNode
}

type refNode struct {
	data []byte
	acl  []znode.ACL
	st   znode.Stat
	kids map[string]bool
}

func newRefTree() *refTree {
	r := &refTree{nodes: map[string]*refNode{}}
	for _, p := range []string{"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"} {
		r.nodes[p] = &refNode{data: []byte{}, acl: znode.WorldAnyone(), kids: map[string]bool{}}
		if p != "/" {
			r.nodes[znode.Parent(p)].kids[znode.Base(p)] = true
		}
	}
	cfg := r.nodes["/zookeeper/config"]
	cfg.acl = []znode.ACL{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}}
	cfg.st.Aversion = -1
	return r
}

func (r *refTree) node(path string) *znode.Node {
	n := r.nodes[path]
	return &znode.Node{Path: path, Data: bytes.Clone(n.data), ACL: slices.Clone(n.acl), Stat: n.st, NumChildren: int32(len(n.kids))}
}

func (r *refTree) all() map[string]*znode.Node {
	out := map[string]*znode.Node{}
	for p := range r.nodes {
		out[p] = r.node(p)
	}
	return out
}

func (r *refTree) digest() znode.Digest {
	var d znode.Digest
	for p, n := range r.nodes {
		d.Add(znode.NodeDigest(p, n.data, n.st))
	}
	return d
}

func (r *refTree) sortedPaths() []string {
	ps := make([]string, 0, len(r.nodes))
	for p := range r.nodes {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// historyGen generates a random ZooKeeper-like history on a refTree and records
// each txn as the dual-write proxy would mirror it.
type historyGen struct {
	rng      *rand.Rand
	ref      *refTree
	epoch    int64
	counter  int64
	time     int64
	txns     []*SourceTxn
	sessions []int64
	// readBacks are creates whose parent registers the mirror reads back
	// later, as the tap does for a create whose reply does not carry them.
	readBacks []readBack
}

// readBack is a pending read of a parent's stat for a mirrored create.
type readBack struct {
	op     *SourceOp
	parent string
	czxid  int64 // the parent incarnation the create was made under
	due    int   // len(txns) at which the read happens
}

func newHistoryGen(seed int64) *historyGen {
	return &historyGen{
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		ref:      newRefTree(),
		epoch:    1,
		time:     1_600_000_000_000,
		sessions: []int64{0x0100_0000_0000_0001, 0x0200_0000_0000_0002, 0x0100_0000_0000_0003},
	}
}

var (
	genNames = []string{"a", "b", "c", "d"}
	genACLs  = [][]znode.ACL{
		znode.WorldAnyone(),
		{{Perms: znode.PermRead, ID: znode.ID{Scheme: "world", ID: "anyone"}}},
		{{Perms: znode.PermAll, ID: znode.ID{Scheme: "digest", ID: "u:h"}}, {Perms: znode.PermRead, ID: znode.ID{Scheme: "ip", ID: "10.0.0.1"}}},
	}
)

func (g *historyGen) nextZxid() int64 {
	if g.rng.IntN(60) == 0 {
		g.epoch++ // a leader election
		g.counter = 0
	}
	g.counter++
	g.time += int64(1 + g.rng.IntN(50))
	return g.epoch<<32 | g.counter
}

func (g *historyGen) data() []byte {
	switch g.rng.IntN(10) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return fmt.Appendf(nil, "d%d", g.rng.IntN(1000))
}

// pick returns a random existing path accepted by ok, or "".
func (g *historyGen) pick(ok func(string, *refNode) bool) string {
	var cands []string
	for _, p := range g.ref.sortedPaths() {
		if ok(p, g.ref.nodes[p]) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	return cands[g.rng.IntN(len(cands))]
}

func userPath(p string) bool { return !znode.IsSystemPath(p) }

// create applies a create at zxid z; parent "" picks one.
func (g *historyGen) create(z int64, parent, name string) (SourceOp, bool) {
	r := g.ref
	if parent == "" {
		parent = g.pick(func(p string, n *refNode) bool {
			return userPath(p) && znode.EphemeralTypeOf(n.st.EphemeralOwner, true) != znode.Ephemeral && strings.Count(p, "/") < 4
		})
	}
	pn := r.nodes[parent]
	if pn == nil || znode.EphemeralTypeOf(pn.st.EphemeralOwner, true) == znode.Ephemeral {
		return SourceOp{}, false
	}
	var owner int64
	seq := false
	switch k := g.rng.IntN(20); {
	case k < 9:
	case k < 12:
		owner = g.sessions[g.rng.IntN(len(g.sessions))]
	case k < 14:
		owner = znode.ContainerOwner
	case k < 16:
		owner, _ = znode.TTLOwner(int64(1 + g.rng.IntN(100000)))
	default:
		seq = true
		if g.rng.IntN(3) == 0 {
			owner = g.sessions[g.rng.IntN(len(g.sessions))]
		}
	}
	if name == "" {
		name = genNames[g.rng.IntN(len(genNames))]
	}
	if seq {
		name = fmt.Sprintf("%s%010d", name, pn.st.Cversion)
	}
	path := znode.Join(parent, name)
	if r.nodes[path] != nil {
		return SourceOp{}, false
	}
	n := &refNode{data: g.data(), acl: genACLs[g.rng.IntN(len(genACLs))], kids: map[string]bool{}}
	n.st = znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: g.time, Mtime: g.time, EphemeralOwner: owner}
	r.nodes[path] = n
	pn.kids[name] = true
	pn.st.Cversion++
	pn.st.Pzxid = z
	return SourceOp{Kind: SourceCreate, Path: path, Data: bytes.Clone(n.data), ACL: n.acl, Stat: n.st, ParentCversion: pn.st.Cversion, ParentPzxid: z}, true
}

func (g *historyGen) delete(z int64, path string) (SourceOp, bool) {
	r := g.ref
	n := r.nodes[path]
	if n == nil || !userPath(path) || path == "/" || len(n.kids) > 0 {
		return SourceOp{}, false
	}
	delete(r.nodes, path)
	pn := r.nodes[znode.Parent(path)]
	delete(pn.kids, znode.Base(path))
	pn.st.Pzxid = max(pn.st.Pzxid, z)
	return SourceOp{Kind: SourceDelete, Path: path}, true
}

func (g *historyGen) setData(z int64, path string) (SourceOp, bool) {
	n := g.ref.nodes[path]
	if n == nil || (path != "/" && !userPath(path)) {
		return SourceOp{}, false
	}
	n.data = g.data()
	n.st.Version++
	n.st.Mzxid = z
	n.st.Mtime = g.time
	return SourceOp{Kind: SourceSetData, Path: path, Data: bytes.Clone(n.data), Stat: n.st}, true
}

func (g *historyGen) setACL(path string) (SourceOp, bool) {
	n := g.ref.nodes[path]
	if n == nil || (path != "/" && !userPath(path)) {
		return SourceOp{}, false
	}
	n.acl = genACLs[g.rng.IntN(len(genACLs))]
	n.st.Aversion++
	return SourceOp{Kind: SourceSetACL, Path: path, ACL: n.acl, Stat: n.st}, true
}

func (g *historyGen) anyUser(p string, _ *refNode) bool { return userPath(p) && p != "/" }

func (g *historyGen) leaf(p string, n *refNode) bool { return g.anyUser(p, n) && len(n.kids) == 0 }

// step generates and applies one committed txn.
func (g *historyGen) step() {
	z := g.nextZxid()
	tx := &SourceTxn{Zxid: z}
	add := func(op SourceOp, ok bool) bool {
		if ok {
			tx.Ops = append(tx.Ops, op)
		}
		return ok
	}
	switch k := g.rng.IntN(100); {
	case k < 35:
		add(g.create(z, "", ""))
	case k < 55:
		add(g.delete(z, g.pick(g.leaf)))
	case k < 70:
		add(g.setData(z, g.pick(func(p string, n *refNode) bool { return p == "/" || g.anyUser(p, n) })))
	case k < 75:
		add(g.setACL(g.pick(g.anyUser)))
	case k < 80:
		// closeSession: ZooKeeper deletes every ephemeral of the session.
		s := g.sessions[g.rng.IntN(len(g.sessions))]
		op := SourceOp{Kind: SourceCloseSession, Session: s}
		for _, p := range g.ref.sortedPaths() {
			if n := g.ref.nodes[p]; n.st.EphemeralOwner == s {
				g.delete(z, p)
				op.Paths = append(op.Paths, p)
			}
		}
		tx.Ops = append(tx.Ops, op)
	default:
		tx.Multi = true
		g.multi(z, tx, add)
	}
	if len(tx.Ops) > 0 {
		g.txns = append(g.txns, tx)
		g.deferParentStats(tx)
	}
	g.readParentStats(false)
}

// deferParentStats turns some creates of tx into creates whose parent
// registers are unknown at mirror time and read back a few txns later: in a
// multi, every create under the parent is unknown and the last one carries the
// read. A parent created in the same txn keeps the exact values.
func (g *historyGen) deferParentStats(tx *SourceTxn) {
	last := map[string]int{}
	for i := range tx.Ops {
		if tx.Ops[i].Kind == SourceCreate {
			last[znode.Parent(tx.Ops[i].Path)] = i
		}
	}
	for parent, li := range last {
		pn := g.ref.nodes[parent]
		if pn == nil || pn.st.Czxid == tx.Zxid || g.rng.IntN(3) != 0 {
			continue
		}
		for i := range tx.Ops {
			if op := &tx.Ops[i]; op.Kind == SourceCreate && znode.Parent(op.Path) == parent {
				op.ParentCversion, op.ParentPzxid = 0, 0
			}
		}
		g.readBacks = append(g.readBacks, readBack{op: &tx.Ops[li], parent: parent, czxid: pn.st.Czxid, due: len(g.txns) + g.rng.IntN(5)})
	}
}

// readParentStats performs the due read-backs (all of them with all set): the
// parent's stat as read then, if the incarnation is still the one the create
// was made under; otherwise the parent died and its cversion stays unknown.
func (g *historyGen) readParentStats(all bool) {
	keep := g.readBacks[:0]
	for _, rb := range g.readBacks {
		if !all && rb.due > len(g.txns) {
			keep = append(keep, rb)
			continue
		}
		if pn := g.ref.nodes[rb.parent]; pn != nil && pn.st.Czxid == rb.czxid {
			rb.op.ParentPzxid, rb.op.ParentCversion = pn.st.Pzxid, pn.st.Cversion
		}
	}
	g.readBacks = keep
}

func (g *historyGen) multi(z int64, tx *SourceTxn, add func(SourceOp, bool) bool) {
	switch g.rng.IntN(5) {
	case 0: // a parent and its children in one txn
		if add(g.create(z, "", "")) {
			p := tx.Ops[len(tx.Ops)-1].Path
			if znode.EphemeralTypeOf(tx.Ops[len(tx.Ops)-1].Stat.EphemeralOwner, true) != znode.Ephemeral {
				add(g.create(z, p, "x"))
				add(g.create(z, p, ""))
			}
			add(g.setData(z, p))
		}
	case 1: // a child and then its parent deleted
		p := g.pick(func(p string, n *refNode) bool { return g.anyUser(p, n) && len(n.kids) == 1 })
		if p != "" {
			for k := range g.ref.nodes[p].kids {
				if add(g.delete(z, znode.Join(p, k))) {
					add(g.delete(z, p))
				}
			}
		}
	case 2: // delete and re-create the same path
		p := g.pick(g.leaf)
		if p != "" && add(g.delete(z, p)) {
			add(g.create(z, znode.Parent(p), znode.Base(p)))
		}
	case 3: // create and delete the same path
		if add(g.create(z, "", "")) {
			add(g.delete(z, tx.Ops[len(tx.Ops)-1].Path))
		}
	default:
		for range 2 + g.rng.IntN(3) {
			switch g.rng.IntN(3) {
			case 0:
				add(g.create(z, "", ""))
			case 1:
				add(g.delete(z, g.pick(g.leaf)))
			default:
				add(g.setData(z, g.pick(g.anyUser)))
			}
		}
	}
}

// fuzzyWalk copies the tree depth-first the way the exporter walks a live
// ensemble: writes keep committing between the node reads.
func (g *historyGen) fuzzyWalk(writeProb float64) []*znode.Node {
	var out []*znode.Node
	stack := []string{"/"}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for g.rng.Float64() < writeProb {
			g.step()
		}
		n := g.ref.nodes[p]
		if n == nil {
			continue
		}
		out = append(out, g.ref.node(p))
		kids := make([]string, 0, len(n.kids))
		for k := range n.kids {
			kids = append(kids, k)
		}
		slices.Sort(kids)
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, znode.Join(p, kids[i]))
		}
	}
	return out
}

// scenario is one generated history: the import batches and mirrored txns a
// journal receives, and the tree it must end up with.
type scenario struct {
	entries [][]byte
	want    map[string]*znode.Node
	digest  znode.Digest
}

func genScenario(seed int64) scenario {
	g := newHistoryGen(seed)
	for range 20 + g.rng.IntN(100) {
		g.step()
	}
	walkStart := len(g.txns)
	nodes := g.fuzzyWalk(0.3)
	for range g.rng.IntN(80) {
		g.step()
	}
	if g.rng.IntN(3) == 0 {
		// An importer that restarted walks again, later: both copies arrive.
		nodes = append(nodes, g.fuzzyWalk(0.3)...)
		for range g.rng.IntN(40) {
			g.step()
		}
	}
	g.readParentStats(true)
	// The mirror stream starts at or before the walk (a fuzzy snapshot is
	// replayed from before it began).
	from := max(0, walkStart-g.rng.IntN(15))
	var sc scenario
	for len(nodes) > 0 {
		k := min(len(nodes), 1+g.rng.IntN(30))
		sc.entries = append(sc.entries, Encode(&ImportBatch{Nodes: nodes[:k]}))
		nodes = nodes[k:]
	}
	// The proxy delivers runs of txns in commit order as one SourceBatch.
	for txns := g.txns[from:]; len(txns) > 0; {
		k := 1
		if g.rng.IntN(2) == 0 {
			k = min(len(txns), 1+g.rng.IntN(8))
			sc.entries = append(sc.entries, Encode(&SourceBatch{Txns: txns[:k]}))
		} else {
			sc.entries = append(sc.entries, Encode(txns[0]))
		}
		txns = txns[k:]
	}
	sc.want = g.ref.all()
	sc.digest = g.ref.digest()
	return sc
}

func applyAll(t testing.TB, entries [][]byte) *FSM {
	t.Helper()
	f, err := NewFSM(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		res, err := f.ApplyEntry(uint64(i+1), e)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			t.Fatalf("entry %d: %v", i, res.Err)
		}
	}
	return f
}

// TestConvergence is the property behind DESIGN.md's "zxid-ordered, idempotent
// apply": for random histories, a fuzzy snapshot imported in batches and the
// mirrored txn stream, applied in any interleaving with duplicates, end in the
// reference tree and its digest.
func TestConvergence(t *testing.T) {
	base := seed(t)
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	for i := range iterations {
		s := base + int64(i)
		sc := genScenario(s)
		rng := rand.New(rand.NewPCG(uint64(s), 7))
		orders := map[string][][]byte{"in order": sc.entries}
		shuffled := slices.Clone(sc.entries)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		orders["shuffled"] = shuffled
		dup := slices.Clone(shuffled)
		for range len(dup)/4 + 1 {
			e := sc.entries[rng.IntN(len(sc.entries))]
			at := rng.IntN(len(dup) + 1)
			dup = slices.Insert(dup, at, e)
		}
		dup = append(dup, sc.entries...) // and the whole input replayed
		orders["shuffled with duplicates"] = dup
		for name, entries := range orders {
			f := applyAll(t, entries)
			if d := diffTrees(sc.want, dumpTree(t, f)); d != "" {
				t.Fatalf("seed %d, %s (%d entries): tree differs from the reference:\n%s", s, name, len(entries), d)
			}
			if got := f.Digest(); got != sc.digest {
				t.Fatalf("seed %d, %s: digest %s, reference %s", s, name, got, sc.digest)
			}
			checkInvariants(t, f)
			if p := f.Status().Pending; p != 0 {
				t.Logf("seed %d, %s: %d pending records left (garbage of dead incarnations)", s, name, p)
			}
		}
	}
}

// TestSourceCreateParentRegisters: a create whose parent cversion is unknown
// (ParentPzxid 0) moves only the parent's pzxid; a stat read back later sets
// the cversion as of its pzxid, and an older pair never overrides it.
func TestSourceCreateParentRegisters(t *testing.T) {
	const z1, z2, z3 = 0x100000001, 0x100000002, 0x100000003
	create := func(z int64, path string, pcv int32, ppz int64) []byte {
		st := znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: 1, Mtime: 1}
		return Encode(&SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceCreate, Path: path, ACL: znode.WorldAnyone(), Stat: st, ParentCversion: pcv, ParentPzxid: ppz}}})
	}
	f := applyAll(t, [][]byte{
		create(z1, "/p", 1, z1),
		create(z2, "/p/a", 0, 0),  // unknown: /p's cversion stays 0
		create(z3, "/p/b", 2, z3), // as of z3
		create(z2, "/p/a", 1, z2), // an older pair arrives late
		create(z2, "/p/a", 0, 0),  // and the unknown one again
	})
	n, ok := f.Node("/p")
	if !ok {
		t.Fatal("/p missing")
	}
	if n.Stat.Cversion != 2 || n.Stat.Pzxid != z3 {
		t.Fatalf("/p cversion %d pzxid %#x, want 2 and %#x", n.Stat.Cversion, n.Stat.Pzxid, int64(z3))
	}
	g := applyAll(t, [][]byte{create(z1, "/p", 1, z1), create(z2, "/p/a", 0, 0)})
	if n, _ := g.Node("/p"); n.Stat.Cversion != 0 || n.Stat.Pzxid != z2 {
		t.Fatalf("unknown cversion: /p cversion %d pzxid %#x, want 0 and %#x", n.Stat.Cversion, n.Stat.Pzxid, int64(z2))
	}
}

// TestSourceDigestHistory: ZooKeeper's digest at a zxid is logged only when
// every txn before it has been applied in order; a txn that arrives late is
// merged without logging a digest ZooKeeper never had.
func TestSourceDigestHistory(t *testing.T) {
	root := func(z int64, v int32) *SourceTxn {
		st := znode.Stat{Mzxid: z, Mtime: z, Version: v}
		return &SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceSetData, Path: "/", Data: fmt.Appendf(nil, "%d", z), Stat: st}}}
	}
	inOrder := applyAll(t, [][]byte{Encode(&SourceBatch{Txns: []*SourceTxn{root(128, 1), root(256, 2)}})})
	if h := inOrder.DigestHistory(); len(h) != 2 || h[0].Zxid != 128 || h[1].Zxid != 256 {
		t.Fatalf("in order: history %v, want entries at 128 and 256", h)
	}
	late := applyAll(t, [][]byte{Encode(root(256, 2)), Encode(root(128, 1))})
	if h := late.DigestHistory(); len(h) != 1 || h[0].Zxid != 256 {
		t.Fatalf("late txn: history %v, want only 256", h)
	}
	if inOrder.Digest() != late.Digest() {
		t.Fatalf("final digests differ: %s vs %s", inOrder.Digest(), late.Digest())
	}
}

// TestSourceDigestHistoryLate: a late txn that changes the tree drops the
// digests logged at higher zxids (they were logged without it); one that
// changes nothing (delivered again) drops nothing; and a create whose parent
// registers were read back at a later zxid logs no digest below that zxid.
func TestSourceDigestHistoryLate(t *testing.T) {
	root := func(z int64, v int32) []byte {
		st := znode.Stat{Mzxid: z, Mtime: z, Version: v}
		return Encode(&SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceSetData, Path: "/", Data: fmt.Appendf(nil, "%d", z), Stat: st}}})
	}
	create := func(z int64, path string, pcv int32, ppz int64) []byte {
		st := znode.Stat{Czxid: z, Mzxid: z, Pzxid: z, Ctime: 1, Mtime: 1}
		return Encode(&SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceCreate, Path: path, ACL: znode.WorldAnyone(), Stat: st, ParentCversion: pcv, ParentPzxid: ppz}}})
	}
	zxids := func(h []DigestEntry) []int64 {
		var out []int64
		for _, e := range h {
			out = append(out, e.Zxid)
		}
		return out
	}
	f := applyAll(t, [][]byte{root(128, 1), root(256, 2), root(384, 3), root(128, 1)})
	if got := zxids(f.DigestHistory()); !slices.Equal(got, []int64{128, 256, 384}) {
		t.Fatalf("after a txn delivered again: history %v, want 128 256 384", got)
	}
	// /x created at 200 arrives after 256 and 384 were logged without it.
	f = applyAll(t, [][]byte{root(128, 1), root(256, 2), root(384, 3), create(200, "/x", 1, 200)})
	if got := zxids(f.DigestHistory()); !slices.Equal(got, []int64{128}) {
		t.Fatalf("after a late create: history %v, want 128 only", got)
	}
	// In order, the same txns log 128, 256 and 384, and 256's digest then
	// differs from the one the late create left out.
	inOrder := applyAll(t, [][]byte{root(128, 1), create(200, "/x", 1, 200), root(256, 2), root(384, 3)})
	if got := zxids(inOrder.DigestHistory()); !slices.Equal(got, []int64{128, 256, 384}) {
		t.Fatalf("in order: history %v, want 128 256 384", got)
	}
	if inOrder.Digest() != f.Digest() {
		t.Fatalf("final digests differ: %s vs %s", inOrder.Digest(), f.Digest())
	}
	// A repair imports /z, created at 200 and lost to the mirror: the digests
	// logged at 256 and 384 lacked it. Imported again, it changes nothing.
	imp := Encode(&ImportBatch{Nodes: []*znode.Node{{Path: "/z", ACL: znode.WorldAnyone(), Stat: znode.Stat{Czxid: 200, Mzxid: 200, Pzxid: 200, Ctime: 1, Mtime: 1}}}})
	h := applyAll(t, [][]byte{root(128, 1), root(256, 2), root(384, 3), imp, root(512, 4), imp})
	if got := zxids(h.DigestHistory()); !slices.Equal(got, []int64{128, 512}) {
		t.Fatalf("after a repair's import: history %v, want 128 512", got)
	}
	// A create at 512 whose parent was read back as of 700: the tree holds
	// the parent's state at 700, so nothing below 700 is logged.
	g := applyAll(t, [][]byte{root(128, 1), create(512, "/y", 5, 700), root(640, 4), root(768, 5)})
	if got := zxids(g.DigestHistory()); !slices.Equal(got, []int64{128, 768}) {
		t.Fatalf("with read-back parent registers: history %v, want 128 768", got)
	}
}
