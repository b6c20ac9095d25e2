package raftjournal

import (
	"errors"
	"testing"
)

// TestSourceSessionsAdoptedAtPrimary: ZooKeeper sessions mirrored in shadow are
// kept apart from the session table (never expired there), survive a
// snapshot, are forgotten by a mirrored closeSession or an expiry report, and
// join the table with their own timeouts at the change to primary; after
// that, mirroring sessions is refused.
func TestSourceSessionsAdoptedAtPrimary(t *testing.T) {
	h := newHarness(t)
	const a, b, c, d = 0x100000a2b3c0001, 0x100000a2b3c0002, 0x100000a2b3c0003, 0x100000a2b3c0004
	res := h.apply(&SourceSessions{Open: []SourceSession{{ID: a, TimeoutMs: 6000}, {ID: b, TimeoutMs: 4000}, {ID: c, TimeoutMs: 9000}, {ID: d, TimeoutMs: 5000}}})
	if res.Err != nil || res.Changed != 4 {
		t.Fatalf("open: %+v", res)
	}
	if res := h.apply(&SourceSessions{Open: []SourceSession{{ID: a, TimeoutMs: 6000}}}); res.Err != nil || res.Changed != 0 {
		t.Fatalf("repeated open changed something: %+v", res)
	}
	// b closed by its client through a proxy, c told expired by ZooKeeper.
	if res := h.apply(&SourceTxn{Zxid: 0x100000010, Ops: []SourceOp{{Kind: SourceCloseSession, Session: b}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.apply(&SourceSessions{Closed: []int64{c, 0x999}}); res.Err != nil || res.Changed != 1 {
		t.Fatalf("closed: %+v", res)
	}
	if got := h.f.Sessions(); len(got) != 0 {
		t.Fatalf("shadow session table %+v, want none (mirrored sessions are kept apart)", got)
	}
	src := h.f.SourceSessions()
	if len(src) != 2 || src[0].ID != a || src[0].TimeoutMs != 6000 || src[1].ID != d {
		t.Fatalf("source sessions %+v", src)
	}
	if diff := stateDiff(h.f, roundTrip(t, h.f)); diff != "" {
		t.Fatalf("snapshot round trip:\n%s", diff)
	}
	if res := h.apply(&SourceSessions{Open: []SourceSession{{ID: 7, TimeoutMs: 0}}}); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("zero timeout: %v", res.Err)
	}
	h.primary()
	got := h.f.Sessions()
	if len(got) != 2 || got[0].ID != a || got[0].TimeoutMs != 6000 || got[1].ID != d || got[1].TimeoutMs != 5000 {
		t.Fatalf("adopted sessions %+v", got)
	}
	if len(h.f.SourceSessions()) != 0 {
		t.Fatal("source sessions kept after the change to primary")
	}
	if res := h.apply(&SourceSessions{Open: []SourceSession{{ID: 9, TimeoutMs: 4000}}}); !errors.Is(res.Err, ErrWrongPhase) {
		t.Fatalf("mirrored session in primary: %v", res.Err)
	}
}

// TestSetCheckpointAnyPhase: SetCheckpoint stores and removes checkpoints in
// every phase, and Checkpoints lists them by prefix.
func TestSetCheckpointAnyPhase(t *testing.T) {
	h := newHarness(t)
	h.apply(&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/b", Value: []byte("B")}})
	h.apply(&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/a", Value: []byte("A")}})
	h.apply(&SetCheckpoint{Checkpoint{Key: "other", Value: []byte("x")}})
	h.primary()
	h.apply(&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/c", Value: []byte("C")}})
	h.apply(&SetCheckpoint{Checkpoint{Key: "zk2raft/proxy/b"}})
	got := h.f.Checkpoints("zk2raft/proxy/")
	if len(got) != 2 || got[0].Key != "zk2raft/proxy/a" || string(got[1].Value) != "C" {
		t.Fatalf("checkpoints %+v", got)
	}
	if res := h.apply(&SetCheckpoint{}); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("empty key: %v", res.Err)
	}
}

// TestSetPhaseGuard: a guarded phase change applies only while its
// checkpoint holds the expected value; a failed guard changes nothing.
func TestSetPhaseGuard(t *testing.T) {
	h := newHarness(t)
	guard := &Checkpoint{Key: "zk2raft/cutover/token", Value: []byte("c1/hold")}
	if res := h.apply(&SetPhase{Phase: PhasePrimary, Guard: guard}); !errors.Is(res.Err, ErrGuardFailed) {
		t.Fatalf("guard on a missing checkpoint: %v", res.Err)
	}
	h.apply(&SetCheckpoint{Checkpoint{Key: guard.Key, Value: []byte("c1/expired")}})
	if res := h.apply(&SetPhase{Phase: PhasePrimary, Guard: guard}); !errors.Is(res.Err, ErrGuardFailed) || h.f.Phase() != PhaseShadow {
		t.Fatalf("guard on an expired hold: %v, phase %s", res.Err, h.f.Phase())
	}
	h.apply(&SetCheckpoint{Checkpoint{Key: guard.Key, Value: []byte("c1/hold")}})
	if res := h.apply(&SetPhase{Phase: PhasePrimary, Guard: guard}); res.Err != nil || h.f.Phase() != PhasePrimary {
		t.Fatalf("guard holding: %v, phase %s", res.Err, h.f.Phase())
	}
	if res := h.apply(&SetPhase{Phase: PhasePrimary, Guard: guard}); res.Err != nil {
		t.Fatalf("repeated guarded change: %v", res.Err)
	}
}
