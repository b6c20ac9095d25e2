package raftjournal

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"github.com/hashicorp/raft"

	"github.com/zk2raft/zk2raft/znode"
)

func sampleCommands() []Command {
	st := znode.Stat{Czxid: 0x500000001, Mzxid: 0x500000002, Ctime: 1, Mtime: 2, Version: 3, Cversion: 4, Aversion: 5, EphemeralOwner: znode.ContainerOwner, Pzxid: 0x500000003}
	acl := []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "world", ID: "anyone"}}, {Perms: znode.PermRead, ID: znode.ID{Scheme: "digest", ID: "u:h"}}}
	return []Command{
		&ImportBatch{Nodes: []*znode.Node{
			{Path: "/a", Data: []byte("x"), ACL: acl, Stat: st},
			{Path: "/a/b", Data: []byte{}, ACL: acl[:1], Stat: st},
			{Path: "/a/c", Data: nil, ACL: acl[:1], Stat: st},
		}, Checkpoint: &Checkpoint{Key: "k", Value: []byte("v")}, SizeHint: 1_000_000},
		&ImportBatch{Nodes: []*znode.Node{}},
		&SourceTxn{Zxid: 0x500000002, Multi: true, Ops: []SourceOp{
			{Kind: SourceCreate, Path: "/a", Data: []byte("x"), ACL: acl, Stat: st, ParentCversion: 9, ParentPzxid: 0x500000002},
			{Kind: SourceDelete, Path: "/b"},
			{Kind: SourceSetData, Path: "/c", Data: nil, Stat: st},
			{Kind: SourceSetACL, Path: "/d", ACL: acl, Stat: st},
		}},
		&SourceTxn{Zxid: 7, Ops: []SourceOp{{Kind: SourceCloseSession, Path: "", Session: 0x100, Paths: []string{"/e1", "/e2"}}}},
		&Write{Session: 0x7a00000000000001, Time: 1_700_000_000_000, Auth: []znode.ID{{Scheme: "digest", ID: "u:h"}}, Multi: true, Ops: []Op{
			{Kind: OpCreate, Path: "/a", Data: []byte("x"), ACL: acl, Mode: ModePersistentSequentialTTL, TTL: 1000},
			{Kind: OpDelete, Path: "/b", Version: -1},
			{Kind: OpSetData, Path: "/c", Data: []byte{}, Version: 3},
			{Kind: OpSetACL, Path: "/d", ACL: acl, Version: 2},
			{Kind: OpCheck, Path: "/e", Version: 0},
		}},
		&CreateSession{TimeoutMs: 30000, Time: 5},
		&CloseSession{Session: -5, Time: 6},
		&ExpireSessions{Sessions: []int64{1, 2, 3}, Time: 7},
		&CleanupNodes{Paths: []string{"/c1", "/c2"}, Time: 8},
		&SetPhase{Phase: PhasePrimary, Rollback: true, AdoptTimeoutMs: 4000, Time: 9},
		&CompactTombstones{UpToZxid: 0x500000000},
		&MirrorAck{Index: 7, ZkZxid: 0x300000009, Time: 11},
		&SourceBatch{Txns: []*SourceTxn{
			{Zxid: 0x500000004, Ops: []SourceOp{{Kind: SourceDelete, Path: "/x"}}},
			{Zxid: 0x500000005, Ops: []SourceOp{{Kind: SourceSetData, Path: "/y", Data: []byte("z"), Stat: st}}},
		}},
		&SourceBatch{Txns: []*SourceTxn{}},
		&SourceSessions{Open: []SourceSession{{ID: 0x100000a2b3c0001, TimeoutMs: 10000}, {ID: 5, TimeoutMs: 4000}}, Closed: []int64{0x100000a2b3c0002}},
		&SourceSessions{Open: []SourceSession{}, Closed: []int64{}},
		&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/p1", Value: []byte(`{"id":"p1"}`)}},
		&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/p1"}},
		&SetPhase{Phase: PhasePrimary, AdoptTimeoutMs: 4000, Time: 10, Guard: &Checkpoint{Key: "zk2raft/cutover/token", Value: []byte("c1/hold")}},
	}
}

// TestEncodeSourceBatch: joining queued SourceTxn entries gives the entry of
// the batch of those txns; anything else is refused.
func TestEncodeSourceBatch(t *testing.T) {
	var txns []*SourceTxn
	var entries [][]byte
	for _, c := range sampleCommands() {
		if tx, ok := c.(*SourceTxn); ok {
			txns = append(txns, tx)
			entries = append(entries, Encode(tx))
		}
	}
	got, err := EncodeSourceBatch(entries)
	if err != nil {
		t.Fatal(err)
	}
	if want := Encode(&SourceBatch{Txns: txns}); !bytes.Equal(got, want) {
		t.Fatalf("EncodeSourceBatch % x\nwant % x", got, want)
	}
	if _, err := EncodeSourceBatch([][]byte{Encode(&CompactTombstones{UpToZxid: 1})}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("a non-SourceTxn member: %v", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		b := Encode(c)
		want := byte(entryVersion)
		if vc, ok := c.(versionedCommand); ok {
			want = vc.payloadVersion()
		}
		if EntryType(b[0]) != c.EntryType() || b[1] != want {
			t.Errorf("%T: header % x", c, b[:2])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", c, got, c)
		}
		// Every strict prefix is corrupt, never a shorter command.
		for i := entryHeaderSize; i < len(b); i++ {
			if _, err := Decode(b[:i]); !errors.Is(err, ErrCorruptEntry) {
				t.Fatalf("%T cut at %d of %d: %v", c, i, len(b), err)
			}
		}
		if _, err := Decode(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("%T with a trailing byte: %v", c, err)
		}
	}
}

func TestUnknownEntries(t *testing.T) {
	h := newHarness(t)
	before := h.f.Digest()

	// Unknown, not ignorable: the node must stop.
	_, err := h.f.ApplyEntry(1, []byte{0x7e, 1, 1, 2, 3})
	var fatal *FatalEntryError
	if !errors.As(err, &fatal) || !errors.Is(err, ErrUnknownEntry) || fatal.Index != 1 {
		t.Fatalf("unknown entry: %v", err)
	}
	// Unknown but flagged ignorable: skipped.
	res, err := h.f.ApplyEntry(2, []byte{0x80 | 0x7e, 1, 1, 2, 3})
	if err != nil || !errors.Is(res.Err, ErrIgnoredEntry) {
		t.Fatalf("ignorable entry: %+v, %v", res, err)
	}
	// A known type in a newer version: stop.
	e := Encode(&CreateSession{TimeoutMs: 1, Time: 1})
	e[1] = entryVersion + 1
	if _, err := h.f.ApplyEntry(3, e); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer version: %v", err)
	}
	ib := Encode(&ImportBatch{})
	ib[1] = entryVersion + 1
	if _, err := h.f.ApplyEntry(3, ib); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer import batch version: %v", err)
	}
	// Undecodable payloads and headers: stop.
	for _, bad := range [][]byte{nil, {1}, {byte(EntryWrite), 1, 0xff}, {byte(EntryImportBatch), 1, 0, 5, 1}} {
		if _, err := h.f.ApplyEntry(4, bad); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("corrupt entry % x: %v", bad, err)
		}
	}
	if h.f.Digest() != before {
		t.Error("rejected entries changed the tree")
	}
	// Through the raft interface the node panics with the fatal error.
	defer func() {
		r := recover()
		if err, ok := r.(error); !ok || !errors.Is(err, ErrUnknownEntry) {
			t.Errorf("raft Apply of an unknown entry: recovered %v", r)
		}
	}()
	h.f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: []byte{0x7e, 1}})
	t.Error("Apply did not panic")
}

func TestApplyBatchAndNonCommandLogs(t *testing.T) {
	h := newHarness(t)
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: []byte("cfg")},
		{Index: 2, Type: raft.LogCommand, Data: Encode(&CreateSession{TimeoutMs: 1000, Time: 1})},
		{Index: 3, Type: raft.LogCommand, Data: Encode(&SetPhase{Phase: PhasePrimary})},
	}
	out := h.f.ApplyBatch(logs)
	if len(out) != 3 || out[0] != nil || out[1].(*Result).Session == 0 || out[2].(*Result).Err != nil {
		t.Fatalf("ApplyBatch: %+v", out)
	}
	if h.f.Status().AppliedIndex != 3 || h.f.Apply(&raft.Log{Index: 4, Type: raft.LogNoop}) != nil {
		t.Error("applied index or non-command log")
	}
}

func TestImportBatch(t *testing.T) {
	h := newHarness(t)
	st := func(z int64) znode.Stat { return znode.Stat{Czxid: z, Mzxid: z, Pzxid: z} }
	nodes := []*znode.Node{
		{Path: "/", Data: []byte("root data"), ACL: znode.WorldAnyone(), Stat: znode.Stat{Mzxid: 9, Version: 1, Cversion: 1, Pzxid: 2}},
		{Path: "/a", Data: []byte("x"), ACL: znode.WorldAnyone(), Stat: st(2)},
		{Path: "/a/b", Data: nil, ACL: znode.WorldAnyone(), Stat: st(3)},
	}
	res := h.apply(&ImportBatch{Nodes: nodes, Checkpoint: &Checkpoint{Key: "cursor", Value: []byte("/a/b")}})
	if res.Err != nil || res.Changed != 3 {
		t.Fatalf("import: %+v", res)
	}
	for _, n := range nodes[1:] {
		got, ok := h.f.Node(n.Path)
		if !ok || !got.Equal(&znode.Node{Path: n.Path, Data: n.Data, ACL: n.ACL, Stat: n.Stat, NumChildren: got.NumChildren}) {
			t.Errorf("imported %s: %+v", n.Path, got)
		}
	}
	if root, _ := h.f.Node("/"); string(root.Data) != "root data" || root.Stat.Version != 1 {
		t.Errorf("root not merged: %+v", root)
	}
	if v, ok := h.f.Checkpoint("cursor"); !ok || string(v) != "/a/b" {
		t.Errorf("checkpoint %q %t", v, ok)
	}
	// The same batch again changes nothing.
	if res := h.apply(&ImportBatch{Nodes: nodes}); res.Changed != 0 {
		t.Errorf("re-import changed %d nodes", res.Changed)
	}
	// A bad path rejects the whole batch, checkpoint included.
	before := h.f.Digest()
	res = h.apply(&ImportBatch{Nodes: []*znode.Node{{Path: "/ok", ACL: znode.WorldAnyone(), Stat: st(4)}, {Path: "bad", Stat: st(5)}}, Checkpoint: &Checkpoint{Key: "cursor", Value: []byte("x")}})
	if !errors.Is(res.Err, ErrBadCommand) || h.f.Digest() != before {
		t.Errorf("bad batch: %v", res.Err)
	}
	if v, _ := h.f.Checkpoint("cursor"); string(v) != "/a/b" {
		t.Errorf("a rejected batch moved the checkpoint to %q", v)
	}
	// Not after cutover.
	h.primary()
	if res := h.apply(&ImportBatch{Nodes: []*znode.Node{{Path: "/late", ACL: znode.WorldAnyone(), Stat: st(6)}}}); !errors.Is(res.Err, ErrWrongPhase) {
		t.Errorf("import in primary: %v", res.Err)
	}
	checkInvariants(t, h.f)
}

func TestSourceTxnValidation(t *testing.T) {
	h := newHarness(t)
	st := znode.Stat{Czxid: 10, Mzxid: 10, Pzxid: 10}
	tests := []struct {
		name string
		tx   SourceTxn
	}{
		{"zero zxid", SourceTxn{Ops: []SourceOp{{Kind: SourceDelete, Path: "/a"}}}},
		{"two ops without multi", SourceTxn{Zxid: 10, Ops: []SourceOp{{Kind: SourceDelete, Path: "/a"}, {Kind: SourceDelete, Path: "/b"}}}},
		{"bad path", SourceTxn{Zxid: 10, Ops: []SourceOp{{Kind: SourceDelete, Path: "a"}}}},
		{"create stat without the zxid", SourceTxn{Zxid: 11, Ops: []SourceOp{{Kind: SourceCreate, Path: "/a", ACL: znode.WorldAnyone(), Stat: st}}}},
		{"setData stat without the zxid", SourceTxn{Zxid: 11, Ops: []SourceOp{{Kind: SourceSetData, Path: "/a", Stat: st}}}},
		{"create root", SourceTxn{Zxid: 10, Ops: []SourceOp{{Kind: SourceCreate, Path: "/", ACL: znode.WorldAnyone(), Stat: st}}}},
	}
	for _, tc := range tests {
		if res := h.apply(&tc.tx); !errors.Is(res.Err, ErrBadCommand) {
			t.Errorf("%s: %v", tc.name, res.Err)
		}
	}
	if h.f.Digest() != znode.EmptyTreeDigest {
		t.Error("rejected txns changed the tree")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(Encode(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again, err := Decode(Encode(c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoding %+v: %+v, %v", c, again, err)
		}
	})
}

// FuzzApplyEntry feeds arbitrary entries to an FSM: it may refuse them (a fatal
// error), but must not panic or break its invariants.
func FuzzApplyEntry(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(Encode(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fsm, _ := NewFSM(DefaultConfig())
		fsm.ApplyEntry(1, Encode(&SetPhase{Phase: PhasePrimary}))
		fsm.ApplyEntry(2, b)
		fsm.ApplyEntry(3, Encode(&SetPhase{Phase: PhaseShadow, Rollback: true}))
		fsm.ApplyEntry(4, b)
		checkInvariants(t, fsm)
	})
}

// FuzzRestore feeds arbitrary snapshots to Restore, which must fail cleanly or
// produce a state that keeps its invariants.
func FuzzRestore(f *testing.F) {
	h := newHarness(f)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/a", "x", ModeEphemeral))
	var b bytes.Buffer
	if _, err := h.f.WriteSnapshot(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	// A rolled-back period and a new one: the zxid map (record 74).
	h.apply(&MirrorAck{Index: h.index, ZkZxid: 0x100000010})
	h.apply(&SetPhase{Phase: PhaseShadow, Rollback: true})
	h.primary()
	b.Reset()
	if _, err := h.f.WriteSnapshot(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm, _ := NewFSM(DefaultConfig())
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			return
		}
		checkInvariants(t, fsm)
	})
}

// The fast path of path validation must never accept what ZooKeeper rejects.
func TestFastValidPath(t *testing.T) {
	cases := []string{"/", "/a", "/a/b", "/a/", "//", "/a//b", "/.", "/..", "/a/.", "/.a", "/a..", "/a b", "/a\x1f", "/a\x7f", "/é", "", "a", "/zookeeper/quota"}
	for _, p := range cases {
		fast := fastValidPath(p)
		full := znode.ValidatePath(p) == nil
		if fast && !full {
			t.Errorf("%q: fast path accepts what ValidatePath rejects", p)
		}
		if (validatePath(p) == nil) != full {
			t.Errorf("%q: validatePath disagrees with ValidatePath", p)
		}
	}
	f := func(s string) bool {
		for _, p := range []string{s, "/" + s, "/" + strings.ReplaceAll(s, "x", "/")} {
			if fastValidPath(p) && znode.ValidatePath(p) != nil {
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 20000}); err != nil {
		t.Error(err)
	}
}

func TestNodeDigestMatchesZnode(t *testing.T) {
	tr := newTree()
	f := func(name string, data []byte, st znode.Stat, nilData bool) bool {
		for _, p := range []string{"/" + name, "/", "/zookeeper", "/zookeeper/" + name, "/a/" + name} {
			n := &node{data: data}
			if nilData {
				n.data = nil
			}
			n.setStat(&st)
			if tr.nodeDigest(p, n) != znode.NodeDigest(p, n.data, st) {
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 5000}); err != nil {
		t.Error(err)
	}
	big := &node{data: bytes.Repeat([]byte("x"), 5000)}
	if tr.nodeDigest("/big", big) != znode.NodeDigest("/big", big.data, big.stat()) {
		t.Error("large node digest")
	}
}

func TestSourceTxnZxid(t *testing.T) {
	for _, z := range []int64{1, 0x7f, 0x100000001, 0x7fffffff_ffffffff} {
		e := Encode(&SourceTxn{Zxid: z, Ops: []SourceOp{{Kind: SourceDelete, Path: "/a"}}})
		if got, ok := SourceTxnZxid(e); !ok || got != z {
			t.Errorf("SourceTxnZxid of a txn at %#x = %#x, %v", z, got, ok)
		}
	}
	for _, e := range [][]byte{nil, {byte(EntrySourceTxn), entryVersion}, Encode(&CreateSession{TimeoutMs: 1, Time: 1})} {
		if got, ok := SourceTxnZxid(e); ok {
			t.Errorf("SourceTxnZxid(%x) = %#x, true; want false", e, got)
		}
	}
}
