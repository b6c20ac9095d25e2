package raftjournal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// stateDiff compares two FSMs' replicated state field by field, internals
// included (pending records, tombstones, cvKeys), and describes the first
// differences.
func stateDiff(a, b *FSM) string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	b.mu.RLock()
	defer b.mu.RUnlock()
	x, y := a.s, b.s
	var out []string
	add := func(format string, args ...any) {
		if len(out) < 10 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	if x.phase != y.phase || x.epoch != y.epoch || x.counter != y.counter || x.lastZxid != y.lastZxid ||
		x.maxSourceZxid != y.maxSourceZxid || x.appliedIndex != y.appliedIndex {
		add("meta: %v/%d/%d/%#x/%#x/%d vs %v/%d/%d/%#x/%#x/%d", x.phase, x.epoch, x.counter, x.lastZxid, x.maxSourceZxid, x.appliedIndex,
			y.phase, y.epoch, y.counter, y.lastZxid, y.maxSourceZxid, y.appliedIndex)
	}
	if x.t.digest != y.t.digest {
		add("digest %s vs %s", x.t.digest, y.t.digest)
	}
	nodeStr := func(t *tree, n *node) string {
		return fmt.Sprintf("%+v data=%q nil=%t acl=%v kids=%d cv=%#x", n.stat(), n.data, n.data == nil, t.acls.get(n.acl), n.numChildren(), n.cvKey())
	}
	for p, n := range x.t.nodes {
		m := y.t.nodes[p]
		if m == nil {
			add("node %s only in the first", p)
		} else if s1, s2 := nodeStr(x.t, n), nodeStr(y.t, m); s1 != s2 {
			add("node %s:\n  %s\n  %s", p, s1, s2)
		}
	}
	for p := range y.t.nodes {
		if x.t.nodes[p] == nil {
			add("node %s only in the second", p)
		}
	}
	ghostStr := func(t *tree, g *ghost) string {
		var o []string
		for k := range g.orphans {
			o = append(o, k)
		}
		slices.Sort(o)
		return fmt.Sprintf("%s hasData=%t orphans=%v", nodeStr(t, &g.n), g.hasData, o)
	}
	for p, g := range x.t.ghosts {
		h := y.t.ghosts[p]
		if h == nil {
			add("pending %s only in the first", p)
		} else if s1, s2 := ghostStr(x.t, g), ghostStr(y.t, h); s1 != s2 {
			add("pending %s:\n  %s\n  %s", p, s1, s2)
		}
	}
	if len(x.t.ghosts) != len(y.t.ghosts) {
		add("%d vs %d pending records", len(x.t.ghosts), len(y.t.ghosts))
	}
	if fmt.Sprint(x.t.tombs) != fmt.Sprint(y.t.tombs) {
		add("tombstones differ: %d vs %d", len(x.t.tombs), len(y.t.tombs))
	}
	sess := func(s *state) string {
		var ids []string
		for id, ss := range s.sessions {
			ids = append(ids, fmt.Sprintf("%#x:%d", id, ss.timeoutMs))
		}
		slices.Sort(ids)
		return strings.Join(ids, ",")
	}
	if sess(x) != sess(y) {
		add("sessions %s vs %s", sess(x), sess(y))
	}
	if fmt.Sprint(x.sourceSessions) != fmt.Sprint(y.sourceSessions) {
		add("source sessions %v vs %v", x.sourceSessions, y.sourceSessions)
	}
	if fmt.Sprint(x.checkpoints) != fmt.Sprint(y.checkpoints) {
		add("checkpoints %v vs %v", x.checkpoints, y.checkpoints)
	}
	if !slices.Equal(x.digests.list(), y.digests.list()) {
		add("digest logs differ")
	}
	return strings.Join(out, "\n")
}

func roundTrip(t *testing.T, f *FSM) *FSM {
	t.Helper()
	var buf bytes.Buffer
	tr, err := f.WriteSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Digest != f.Digest() || tr.NodeCount != uint64(f.NodeCount()) {
		t.Fatalf("trailer %+v, fsm digest %s nodes %d", tr, f.Digest(), f.NodeCount())
	}
	g, err := NewFSM(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	return g
}

// richShadowState builds a shadow-phase journal with pending records and
// tombstones in it: a mirrored stream applied out of order and cut short.
func richShadowState(t *testing.T, seed int64) *harness {
	t.Helper()
	sc := genScenario(seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 9))
	entries := slices.Clone(sc.entries)
	rng.Shuffle(len(entries), func(a, b int) { entries[a], entries[b] = entries[b], entries[a] })
	h := newHarness(t)
	for _, e := range entries[:len(entries)/2] {
		h.index++
		if _, err := h.f.ApplyEntry(h.index, e); err != nil {
			t.Fatal(err)
		}
	}
	h.apply(&ImportBatch{Checkpoint: &Checkpoint{Key: "walk", Value: []byte("cursor-42")}})
	h.session()
	return h
}

func TestSnapshotRestoreExact(t *testing.T) {
	base := seed(t)
	for i := range 20 {
		h := richShadowState(t, base+int64(i))
		g := roundTrip(t, h.f)
		if d := stateDiff(h.f, g); d != "" {
			t.Fatalf("seed %d: restored state differs:\n%s", base+int64(i), d)
		}
		checkInvariants(t, g)
	}

	// After cutover: native writes, sessions, ephemerals, containers, TTLs,
	// a digest log and compressed snapshots.
	h := newHarness(t)
	h.f.compress = true
	h.primary()
	s := h.session()
	for i := range 50 {
		h.mustWrite(s, create(fmt.Sprintf("/n%d", i), "", ModePersistent))
	}
	for i := range 300 {
		mode := []CreateMode{ModePersistent, ModeEphemeral, ModeContainer, ModePersistentSequential}[i%4]
		r := h.mustWrite(s, create(fmt.Sprintf("/n%d/c%d", i%50, i), strings.Repeat("x", i%7), mode))
		if i%5 == 0 {
			h.mustWrite(s, del(r.Path, -1))
		}
	}
	h.mustWrite(s, Op{Kind: OpCreate, Path: "/ttl", ACL: znode.WorldAnyone(), Mode: ModePersistentTTL, TTL: 5000})
	g := roundTrip(t, h.f)
	if d := stateDiff(h.f, g); d != "" {
		t.Fatalf("restored state differs:\n%s", d)
	}
	if len(g.DigestHistory()) == 0 || len(g.Sessions()) != 1 || len(g.Ephemerals(s)) == 0 {
		t.Errorf("restored: %d digest entries, sessions %v", len(g.DigestHistory()), g.Sessions())
	}
	// Both go on identically.
	h2 := &harness{t: t, f: g, index: h.index, now: h.now}
	for _, x := range []*harness{h, h2} {
		x.mustWrite(s, create("/after", "x", ModeEphemeralSequential))
		x.apply(&CloseSession{Session: s, Time: x.tick()})
	}
	if d := stateDiff(h.f, g); d != "" {
		t.Fatalf("states diverge after restore:\n%s", d)
	}
	checkInvariants(t, g)
}

// A snapshot taken in the middle of an out-of-order mirror stream, restored on
// another node, must converge with the rest of the stream as if nothing happened.
func TestSnapshotMidStream(t *testing.T) {
	base := seed(t)
	for i := range 40 {
		s := base + int64(i)
		sc := genScenario(s)
		rng := rand.New(rand.NewPCG(uint64(s), 11))
		entries := slices.Clone(sc.entries)
		rng.Shuffle(len(entries), func(a, b int) { entries[a], entries[b] = entries[b], entries[a] })
		cut := rng.IntN(len(entries) + 1)
		f := applyAll(t, entries[:cut])
		g := roundTrip(t, f)
		for j, e := range entries[cut:] {
			idx := uint64(cut + j + 1)
			if _, err := f.ApplyEntry(idx, e); err != nil {
				t.Fatal(err)
			}
			if _, err := g.ApplyEntry(idx, e); err != nil {
				t.Fatal(err)
			}
		}
		if d := stateDiff(f, g); d != "" {
			t.Fatalf("seed %d: restored node diverged:\n%s", s, d)
		}
		if d := diffTrees(sc.want, dumpTree(t, g)); d != "" {
			t.Fatalf("seed %d: tree differs from the reference:\n%s", s, d)
		}
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	h := richShadowState(t, 1)
	var good bytes.Buffer
	if _, err := h.f.WriteSnapshot(&good); err != nil {
		t.Fatal(err)
	}
	corrupt := func(mut func([]byte) []byte) []byte { return mut(bytes.Clone(good.Bytes())) }

	// A valid file whose content is not a valid journal state.
	writeWith := func(h znode.SnapshotHeader, fill func(w *znode.SnapshotWriter)) []byte {
		var b bytes.Buffer
		w, err := znode.NewSnapshotWriter(&b, h, znode.SnapshotWriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fill(w)
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	meta := func(nodes uint64, digest znode.Digest) []byte {
		b := appendUvarint(nil, snapshotStateVersion)
		b = append(b, byte(PhaseShadow))
		for range 2 {
			b = appendUvarint(b, 0)
		}
		b = appendVarint(b, 0)
		b = appendVarint(b, 0)
		b = appendUvarint(b, 0)
		b = appendUvarint(b, uint64(digest))
		b = appendUvarint(b, nodes)
		for range 3 {
			b = appendUvarint(b, 0)
		}
		return b
	}
	fsmHeader := znode.SnapshotHeader{Kind: znode.SnapshotKindFSM}
	root := &znode.Node{Path: "/", Data: []byte{}, ACL: znode.WorldAnyone(), NumChildren: 0}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"flipped byte", corrupt(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), znode.ErrCorruptSnapshot},
		{"truncated", corrupt(func(b []byte) []byte { return b[:len(b)-100] }), znode.ErrCorruptSnapshot},
		{"empty", nil, znode.ErrCorruptSnapshot},
		{"export kind", writeWith(znode.SnapshotHeader{Kind: znode.SnapshotKindExport}, func(w *znode.SnapshotWriter) {}), ErrBadSnapshot},
		{"no meta", writeWith(fsmHeader, func(w *znode.SnapshotWriter) { w.WriteNode(root) }), ErrBadSnapshot},
		{"child before parent", writeWith(fsmHeader, func(w *znode.SnapshotWriter) {
			w.WriteRecord(recMeta, meta(1, 0))
			w.WriteNode(&znode.Node{Path: "/a/b", Data: []byte{}, ACL: znode.WorldAnyone()})
		}), ErrBadSnapshot},
		{"no system nodes", writeWith(fsmHeader, func(w *znode.SnapshotWriter) {
			w.WriteRecord(recMeta, meta(1, znode.Digest(root.Digest())))
			w.WriteNode(root)
		}), ErrBadSnapshot},
		{"meta digest differs", writeWith(fsmHeader, func(w *znode.SnapshotWriter) {
			w.WriteRecord(recMeta, meta(1, 12345))
			w.WriteNode(root)
		}), ErrBadSnapshot},
		{"unknown record", writeWith(fsmHeader, func(w *znode.SnapshotWriter) {
			w.WriteRecord(recMeta, meta(0, 0))
			w.WriteRecord(200, []byte("?"))
		}), ErrBadSnapshot},
		{"garbage record", writeWith(fsmHeader, func(w *znode.SnapshotWriter) {
			w.WriteRecord(recMeta, meta(0, 0))
			w.WriteRecord(recSession, []byte{0xff})
		}), ErrBadSnapshot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.f.Digest()
			err := h.f.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Restore: %v, want %v", err, tc.want)
			}
			if h.f.Digest() != before {
				t.Fatal("a failed restore changed the state")
			}
		})
	}
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(good.Bytes()))); err != nil {
		t.Fatalf("the good snapshot: %v", err)
	}
}

func TestWalkSorted(t *testing.T) {
	h := newHarness(t)
	h.primary()
	for _, p := range []string{"/b", "/a", "/a-b", "/a/z", "/a/b"} {
		h.mustWrite(0, create(p, "", ModePersistent))
	}
	var got []string
	if err := h.f.Walk(func(n *znode.Node) error { got = append(got, n.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	// znode.ComparePaths order: a whole subtree before the next sibling.
	want := []string{"/", "/a", "/a/b", "/a/z", "/a-b", "/b", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"}
	if !slices.Equal(got, want) {
		t.Errorf("walk order %v", got)
	}
	stop := errors.New("stop")
	if err := h.f.Walk(func(*znode.Node) error { return stop }); err != stop {
		t.Errorf("walk error %v", err)
	}
}
