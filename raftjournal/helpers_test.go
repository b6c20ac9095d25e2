package raftjournal

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// harness drives an FSM with encoded entries at consecutive log indexes, the way
// raft would.
type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
	now   int64 // ms, stamped into commands like a leader would
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	f, err := NewFSM(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, f: f, now: 1_700_000_000_000}
}

// apply encodes and applies a command; a fatal entry error fails the test.
func (h *harness) apply(c Command) *Result {
	h.t.Helper()
	h.index++
	res, err := h.f.ApplyEntry(h.index, Encode(c))
	if err != nil {
		h.t.Fatalf("apply %T: %v", c, err)
	}
	return res
}

func (h *harness) primary() {
	h.t.Helper()
	if res := h.apply(&SetPhase{Phase: PhasePrimary}); res.Err != nil {
		h.t.Fatal(res.Err)
	}
}

func (h *harness) session() int64 {
	h.t.Helper()
	res := h.apply(&CreateSession{TimeoutMs: 30000, Time: h.tick()})
	if res.Err != nil {
		h.t.Fatal(res.Err)
	}
	return res.Session
}

func (h *harness) tick() int64 {
	h.now += 10
	return h.now
}

// write applies a single native op.
func (h *harness) write(session int64, op Op) *Result {
	h.t.Helper()
	return h.apply(&Write{Session: session, Time: h.tick(), Ops: []Op{op}})
}

// mustWrite applies a single native op that must succeed.
func (h *harness) mustWrite(session int64, op Op) OpResult {
	h.t.Helper()
	res := h.write(session, op)
	if res.Err != nil {
		h.t.Fatalf("%s %s: %v", op.Kind, op.Path, res.Err)
	}
	return res.Ops[0]
}

func (h *harness) multi(session int64, ops ...Op) *Result {
	h.t.Helper()
	return h.apply(&Write{Session: session, Time: h.tick(), Multi: true, Ops: ops})
}

func create(path, data string, mode CreateMode) Op {
	return Op{Kind: OpCreate, Path: path, Data: []byte(data), ACL: znode.WorldAnyone(), Mode: mode}
}

func del(path string, version int32) Op { return Op{Kind: OpDelete, Path: path, Version: version} }

func setData(path, data string, version int32) Op {
	return Op{Kind: OpSetData, Path: path, Data: []byte(data), Version: version}
}

func check(path string, version int32) Op { return Op{Kind: OpCheck, Path: path, Version: version} }

// seed returns the seed for a randomized test: $ZK2RAFT_SEED if set, else the
// clock. It is logged so a failure can be replayed.
func seed(t testing.TB) int64 {
	t.Helper()
	if s := os.Getenv("ZK2RAFT_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ZK2RAFT_SEED=%q: %v", s, err)
		}
		t.Logf("seed %d (from ZK2RAFT_SEED)", v)
		return v
	}
	v := time.Now().UnixNano()
	t.Logf("seed %d (replay with ZK2RAFT_SEED=%d)", v, v)
	return v
}

// dumpTree renders every visible node, for comparing whole states.
func dumpTree(t testing.TB, f *FSM) map[string]*znode.Node {
	t.Helper()
	out := map[string]*znode.Node{}
	if err := f.Walk(func(n *znode.Node) error {
		out[n.Path] = n
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffTrees describes how two trees differ (empty when equal).
func diffTrees(want, got map[string]*znode.Node) string {
	var b bytes.Buffer
	n := 0
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			fmt.Fprintf(&b, "missing %s %+v\n", p, w.Stat)
		case !w.Equal(g):
			fmt.Fprintf(&b, "differs %s\n  want %+v data=%q nil=%t acl=%v kids=%d\n  got  %+v data=%q nil=%t acl=%v kids=%d\n",
				p, w.Stat, w.Data, w.Data == nil, w.ACL, w.NumChildren, g.Stat, g.Data, g.Data == nil, g.ACL, g.NumChildren)
		default:
			continue
		}
		if n++; n > 10 {
			b.WriteString("...\n")
			return b.String()
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			fmt.Fprintf(&b, "extra %s %+v\n", p, g.Stat)
			if n++; n > 10 {
				b.WriteString("...\n")
				return b.String()
			}
		}
	}
	return b.String()
}
