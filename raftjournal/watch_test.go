package raftjournal

import (
	"errors"
	"slices"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

// drain returns the events queued on a watcher without waiting: delivery happens
// inside Apply, so after Apply returns everything is already queued.
func drain(w *Watcher) []Event { return w.Take() }

func evs(es ...Event) []Event { return es }

func TestWatchesOneShot(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	h.mustWrite(s, create("/a", "", ModePersistent))

	data, exist, child := NewWatcher(16), NewWatcher(16), NewWatcher(16)
	if _, _, err := h.f.Get("/a", data); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.f.Exists("/a/b", exist); ok {
		t.Fatal("/a/b exists")
	}
	if _, _, err := h.f.Children("/a", child); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.f.Get("/missing", NewWatcher(1)); err == nil {
		t.Fatal("getData on a missing node succeeded")
	}
	if n := h.f.Status().Watches; n != 3 {
		t.Fatalf("%d watches registered, want 3 (none for a failed getData)", n)
	}

	res := h.write(s, create("/a/b", "", ModePersistent))
	z := res.Zxid
	if got := drain(exist); !slices.Equal(got, evs(Event{EventNodeCreated, "/a/b", z})) {
		t.Errorf("exist watch: %v", got)
	}
	if got := drain(child); !slices.Equal(got, evs(Event{EventNodeChildrenChanged, "/a", z})) {
		t.Errorf("child watch: %v", got)
	}
	if got := drain(data); len(got) != 0 {
		t.Errorf("data watch fired on a child create: %v", got)
	}
	// One-shot: the exist and child watches are used up.
	h.mustWrite(s, create("/a/c", "", ModePersistent))
	if got := append(drain(exist), drain(child)...); len(got) != 0 {
		t.Errorf("used-up watches fired again: %v", got)
	}
	res = h.write(s, setData("/a", "x", -1))
	if got := drain(data); !slices.Equal(got, evs(Event{EventNodeDataChanged, "/a", res.Zxid})) {
		t.Errorf("data watch: %v", got)
	}
	// A node with both a data and a child watch from one watcher gets one
	// NodeDeleted.
	both := NewWatcher(16)
	h.f.Get("/a/c", both)
	h.f.Children("/a/c", both)
	parent := NewWatcher(16)
	h.f.Children("/a", parent)
	res = h.write(s, del("/a/c", -1))
	if got := drain(both); !slices.Equal(got, evs(Event{EventNodeDeleted, "/a/c", res.Zxid})) {
		t.Errorf("data+child watch on a deleted node: %v", got)
	}
	if got := drain(parent); !slices.Equal(got, evs(Event{EventNodeChildrenChanged, "/a", res.Zxid})) {
		t.Errorf("parent child watch on delete: %v", got)
	}
	// A failed multi fires nothing.
	w := NewWatcher(16)
	h.f.Children("/a", w)
	h.multi(s, create("/a/x", "", ModePersistent), del("/nope", -1))
	if got := drain(w); len(got) != 0 {
		t.Errorf("failed multi fired %v", got)
	}
	if n := h.f.Status().Watches; n != 1 {
		t.Errorf("%d watches left, want 1", n)
	}
}

func TestWatchesPersistent(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	pers, rec := NewWatcher(64), NewWatcher(64)
	h.f.AddWatch("/a", pers, false)
	h.f.AddWatch("/a", rec, true)

	var zs []int64
	for _, op := range []Op{
		create("/a", "", ModePersistent),
		create("/a/b", "", ModePersistent),
		create("/a/b/c", "", ModePersistent),
		setData("/a/b/c", "x", -1),
		setData("/a", "y", -1),
		del("/a/b/c", -1),
	} {
		zs = append(zs, h.write(s, op).Zxid)
	}
	wantPers := evs(
		Event{EventNodeCreated, "/a", zs[0]},
		Event{EventNodeChildrenChanged, "/a", zs[1]},
		Event{EventNodeDataChanged, "/a", zs[4]},
	)
	if got := drain(pers); !slices.Equal(got, wantPers) {
		t.Errorf("persistent watch:\n got %v\nwant %v", got, wantPers)
	}
	// Recursive: every create, change and delete below, never NodeChildrenChanged.
	wantRec := evs(
		Event{EventNodeCreated, "/a", zs[0]},
		Event{EventNodeCreated, "/a/b", zs[1]},
		Event{EventNodeCreated, "/a/b/c", zs[2]},
		Event{EventNodeDataChanged, "/a/b/c", zs[3]},
		Event{EventNodeDataChanged, "/a", zs[4]},
		Event{EventNodeDeleted, "/a/b/c", zs[5]},
	)
	if got := drain(rec); !slices.Equal(got, wantRec) {
		t.Errorf("recursive watch:\n got %v\nwant %v", got, wantRec)
	}
	if !h.f.RemoveWatches("/a", rec, 5) || h.f.RemoveWatches("/a", rec, 5) {
		t.Error("RemoveWatches of the recursive watch")
	}
	h.mustWrite(s, create("/a/z", "", ModePersistent))
	if got := drain(rec); len(got) != 0 {
		t.Errorf("removed recursive watch fired: %v", got)
	}
	if got := drain(pers); !slices.Equal(got, evs(Event{EventNodeChildrenChanged, "/a", h.f.Status().JournalZxid})) {
		t.Errorf("persistent watch after the recursive one was removed: %v", got)
	}
	pers.Close()
	closed := false // Ready may hold a signal from before the close
	for i := 0; i < 2 && !closed; i++ {
		select {
		case _, ok := <-pers.Ready():
			closed = !ok
		default:
		}
	}
	if !closed || !errors.Is(pers.Err(), ErrWatcherClosed) {
		t.Error("closed watcher's Ready channel still open")
	}
	if n := h.f.Status().Watches; n != 0 {
		t.Errorf("%d watches left after Close and RemoveWatches", n)
	}
}

// A watcher that does not keep up overflows: its channel is closed and its
// watches dropped, and Apply is never blocked.
func TestWatcherOverflow(t *testing.T) {
	h := newHarness(t)
	h.primary()
	s := h.session()
	w := NewWatcher(2)
	h.f.AddWatch("/", w, true)
	for i := range 5 {
		h.mustWrite(s, create("/n-", string(rune('a'+i)), ModePersistentSequential))
	}
	got := drain(w)
	if len(got) != 2 || !errors.Is(w.Err(), ErrWatcherOverflow) {
		t.Fatalf("after overflow: %d events, err %v", len(got), w.Err())
	}
	if n := h.f.Status().Watches; n != 0 {
		t.Errorf("%d watches left on an overflowed watcher", n)
	}
}

// Mirrored ZooKeeper writes fire watches like native ones.
func TestWatchesOnSourceTxns(t *testing.T) {
	h := newHarness(t)
	w := NewWatcher(16)
	h.f.AddWatch("/", w, true)
	st := znode.Stat{Czxid: 0x100000001, Mzxid: 0x100000001, Pzxid: 0x100000001}
	h.apply(&SourceTxn{Zxid: 0x100000001, Ops: []SourceOp{{Kind: SourceCreate, Path: "/m", Data: []byte("1"), ACL: znode.WorldAnyone(), Stat: st, ParentCversion: 1, ParentPzxid: 0x100000001}}})
	st.Mzxid, st.Version = 0x100000002, 1
	h.apply(&SourceTxn{Zxid: 0x100000002, Ops: []SourceOp{{Kind: SourceSetData, Path: "/m", Data: []byte("2"), Stat: st}}})
	h.apply(&SourceTxn{Zxid: 0x100000002, Ops: []SourceOp{{Kind: SourceSetData, Path: "/m", Data: []byte("2"), Stat: st}}}) // a duplicate: no event
	h.apply(&SourceTxn{Zxid: 0x100000003, Ops: []SourceOp{{Kind: SourceDelete, Path: "/m"}}})
	want := evs(
		Event{EventNodeCreated, "/m", 0x100000001},
		Event{EventNodeDataChanged, "/m", 0x100000002},
		Event{EventNodeDeleted, "/m", 0x100000003},
	)
	if got := drain(w); !slices.Equal(got, want) {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}
