package raftjournal

import (
	"errors"
	"reflect"
	"testing"

	"github.com/zk2raft/zk2raft/znode"
)

func TestMirrorOutbox(t *testing.T) {
	h := newHarness(t)
	// Nothing is recorded in shadow: no native writes, and no outbox.
	if st := h.f.MirrorStatus(); st.Active || st.Start != 0 || st.Pending != 0 {
		t.Fatalf("shadow mirror status %+v", st)
	}
	h.primary()
	start := h.index
	if st := h.f.MirrorStatus(); !st.Active || st.Start != start || st.Acked != start || st.Pending != 0 {
		t.Fatalf("mirror status after primary %+v, want start=acked=%d", st, start)
	}
	s := h.session()
	h.mustWrite(0, create("/app", "a", ModePersistent))                            // 1 record
	seq := h.mustWrite(0, create("/app/job-", "j", ModePersistentSequential)).Path // 2
	h.mustWrite(0, setData("/app", "b", -1))                                       // 3
	h.mustWrite(s, create("/app/eph", "e", ModeEphemeral))                         // 4
	if res := h.write(0, create("/app", "dup", ModePersistent)); res.Err == nil {  // failed: none
		t.Fatal("duplicate create succeeded")
	}
	res := h.multi(0, check("/app", 1), create("/app/m", "", ModePersistent), setData("/app/m", "x", 0)) // 5
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	h.multi(0, check("/app", 1)) // checks only: none
	auth := znode.ID{Scheme: "digest", ID: "bob:hash"}
	h.apply(&Write{Time: h.tick(), Auth: []znode.ID{auth}, Ops: []Op{{Kind: OpSetACL, Path: "/app/m",
		ACL: []znode.ACL{{Perms: znode.PermAll, ID: znode.ID{Scheme: "auth"}}}, Version: -1}}}) // 6
	h.mustWrite(0, del(seq, -1))                       // 7
	h.apply(&CloseSession{Session: s, Time: h.tick()}) // 8

	recs := h.f.MirrorPending(0, 0)
	if len(recs) != 8 {
		t.Fatalf("%d records, want 8: %+v", len(recs), recs)
	}
	if op := recs[1].Ops[0]; op.Kind != MirrorCreate || op.Path != "/app/job-0000000000" || op.Mode != ModePersistent {
		t.Errorf("sequential create recorded as %+v", op)
	}
	if op := recs[2].Ops[0]; op.Kind != MirrorSetData || op.Version != 0 || string(op.Data) != "b" {
		t.Errorf("setData recorded as %+v, want expected version 0", op)
	}
	if op := recs[3].Ops[0]; op.Mode != ModeEphemeral || op.Session != s {
		t.Errorf("ephemeral create recorded as %+v, want owner %#x", op, s)
	}
	if ops := recs[4].Ops; len(ops) != 3 || ops[0].Kind != MirrorCheck || ops[2].Version != 0 {
		t.Errorf("multi recorded as %+v", ops)
	}
	if op := recs[5].Ops[0]; op.Kind != MirrorSetACL || op.Version != 0 || len(op.ACL) != 1 || op.ACL[0].ID != auth {
		t.Errorf("setACL recorded as %+v, want auth expanded to %v and expected aversion 0", op, auth)
	}
	if ops := recs[7].Ops; len(ops) != 2 || ops[0].Path != "/app/eph" || !ops[0].Cleanup || ops[1].Kind != MirrorCloseSession || ops[1].Session != s {
		t.Errorf("session close recorded as %+v", ops)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Index <= recs[i-1].Index || recs[i].Zxid <= recs[i-1].Zxid || recs[i].Time == 0 {
			t.Errorf("record %d %+v after %+v: not in commit order or no time", i, recs[i], recs[i-1])
		}
	}

	// A rollback is refused while ZooKeeper lacks some of it.
	if res := h.apply(&SetPhase{Phase: PhaseShadow, Rollback: true}); !errors.Is(res.Err, ErrPhaseTransition) {
		t.Fatalf("rollback with a full outbox: %v", res.Err)
	}
	// The outbox survives a snapshot and restore exactly.
	restored := roundTrip(t, h.f)
	if got := restored.MirrorPending(0, 0); !reflect.DeepEqual(got, recs) {
		t.Errorf("restored outbox differs:\n got %+v\nwant %+v", got, recs)
	}
	if a, b := restored.MirrorStatus(), h.f.MirrorStatus(); a != b {
		t.Errorf("restored status %+v, want %+v", a, b)
	}

	// Acks drop what ZooKeeper has; a repeated or older ack changes nothing;
	// one beyond the log is refused.
	if res := h.apply(&MirrorAck{Index: recs[3].Index, ZkZxid: 0x500000010, Time: h.tick()}); res.Err != nil || res.Changed != 4 {
		t.Fatalf("ack: %+v", res)
	}
	if res := h.apply(&MirrorAck{Index: recs[1].Index, ZkZxid: 1}); res.Err != nil || res.Changed != 0 {
		t.Fatalf("old ack: %+v", res)
	}
	if res := h.apply(&MirrorAck{Index: h.index + 10}); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("ack beyond the log: %+v", res)
	}
	st := h.f.MirrorStatus()
	if st.Acked != recs[3].Index || st.AckedZkZxid != 0x500000010 || st.Pending != 4 || st.OldestTime != recs[4].Time || st.LastIndex != recs[7].Index {
		t.Errorf("status after ack %+v", st)
	}
	if lag := st.LagMillis(recs[4].Time + 250); lag != 250 {
		t.Errorf("lag %d ms, want 250", lag)
	}
	if got := h.f.MirrorPending(recs[5].Index, 1); len(got) != 1 || got[0].Index != recs[6].Index {
		t.Errorf("MirrorPending(after %d, 1) = %+v", recs[5].Index, got)
	}
	if st := roundTrip(t, h.f).MirrorStatus(); st != h.f.MirrorStatus() {
		t.Errorf("restored status after ack %+v", st)
	}
	h.apply(&MirrorAck{Index: recs[7].Index, ZkZxid: 0x500000020})
	if res := h.apply(&SetPhase{Phase: PhaseShadow, Rollback: true}); res.Err != nil {
		t.Fatalf("rollback with an empty outbox: %v", res.Err)
	}
	if res := h.apply(&MirrorAck{Index: h.index}); !errors.Is(res.Err, ErrWrongPhase) {
		t.Errorf("ack in shadow: %v", res.Err)
	}
	// Primary again: a new start, nothing owed; finalized empties and stops it.
	h.primary()
	h.mustWrite(0, create("/again", "", ModePersistent))
	if st := h.f.MirrorStatus(); st.Start != h.index-1 || st.Pending != 1 {
		t.Errorf("second primary: %+v", st)
	}
	h.apply(&SetPhase{Phase: PhaseFinalized})
	h.mustWrite(0, create("/final", "", ModePersistent))
	if st := h.f.MirrorStatus(); st.Active || st.Pending != 0 {
		t.Errorf("finalized: %+v", st)
	}
}
