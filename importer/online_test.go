package importer

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// TestOnlineImportResumes interrupts an online import into a three-node
// cluster, reruns it (it continues from the checkpoint stored in the
// journal), and reruns it once more (nothing is sent).
func TestOnlineImportResumes(t *testing.T) {
	nodes := cluster(t, 3)
	snap := filepath.Join(t.TempDir(), "export.snap")
	tr := synthetic(t, snap, 20_000, false)
	h, _, err := znode.ReadSnapshotTrailer(snap)
	if err != nil {
		t.Fatal(err)
	}
	key := SnapshotCheckpointKey(h, tr)
	want := tr.Digest + znode.Digest(PristineDigest("/zookeeper"))
	j := NodeJournal(nodes[1]) // a follower: entries are forwarded to the leader

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := Options{BatchBytes: 16 << 10, InFlight: 4, Progress: func(p Progress) {
		if p.Entries >= 20 {
			cancel()
		}
	}}
	if _, err := ImportFileOnline(ctx, snap, j, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want context.Canceled", err)
	}
	raw, ok, err := j.Checkpoint(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("checkpoint after the interrupted run: %v, present %v", err, ok)
	}
	cp, err := DecodeCheckpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Done || cp.Nodes <= 0 || cp.Nodes >= int64(tr.NodeCount) || !cp.BaseFresh {
		t.Fatalf("checkpoint after the interrupted run: %+v", cp)
	}
	t.Logf("interrupted with %d of %d nodes known applied", cp.Nodes, tr.NodeCount)

	res, err := ImportFileOnline(t.Context(), snap, j, Options{BatchBytes: 16 << 10, InFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped <= 0 || res.Sent+res.Skipped != int64(tr.NodeCount) {
		t.Errorf("resumed run skipped %d and sent %d of %d nodes", res.Skipped, res.Sent, tr.NodeCount)
	}
	if !res.Checked || res.JournalDigest != want {
		t.Errorf("resumed run: checked %v, journal digest %v, want %v", res.Checked, res.JournalDigest, want)
	}
	if got := converged(t, nodes); got != want {
		t.Fatalf("cluster digest %v, want %v", got, want)
	}
	checkAgainstSnapshot(t, nodes[2].FSM(), snap)

	index := nodes[0].AppliedIndex()
	res, err = ImportFileOnline(t.Context(), snap, j, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.AlreadyDone || res.Sent != 0 {
		t.Errorf("rerun of a finished import: done %v, sent %d", res.AlreadyDone, res.Sent)
	}
	if got := nodes[0].AppliedIndex(); got != index {
		t.Errorf("rerun of a finished import appended entries: index %d → %d", index, got)
	}

	// A journal past the shadow phase refuses imports: no retrying.
	if err := nodes[0].SetPhase(t.Context(), raftjournal.PhasePrimary, false); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.snap")
	synthetic(t, other, 500, false)
	ctx2, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	_, err = ImportFileOnline(ctx2, other, j, Options{})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, raftjournal.ErrWrongPhase) {
		t.Fatalf("import into a primary journal: %v, want ErrRefused and ErrWrongPhase", err)
	}
}

// TestOnlineMatchesOffline imports the same stream online and offline and
// compares the resulting trees node by node.
func TestOnlineMatchesOffline(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "export.snap")
	synthetic(t, snap, 5000, true)
	off, err := ImportFile(t.Context(), snap, nodeConfig(t, "node-1", filepath.Join(dir, "off"), testLogger(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	nodes := cluster(t, 1)
	on, err := ImportFileOnline(t.Context(), snap, NodeJournal(nodes[0]), Options{BatchBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if on.JournalDigest != off.JournalDigest || on.JournalNodes != off.JournalNodes {
		t.Fatalf("online %v over %d nodes, offline %v over %d", on.JournalDigest, on.JournalNodes, off.JournalDigest, off.JournalNodes)
	}
	checkAgainstSnapshot(t, nodes[0].FSM(), snap)
}
