package verify

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
)

// fsmSnapshotOf imports an export into a fresh journal FSM, as the importer
// does, and writes the FSM's snapshot: the journal's own file, in the shared
// format, holding "/" and ZooKeeper's system nodes besides the import.
func fsmSnapshotOf(t testing.TB, export string) (string, *raftjournal.FSM) {
	t.Helper()
	fsm, err := raftjournal.NewFSM(raftjournal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	nodes := readSnapshot(t, export)
	index := uint64(2)
	for len(nodes) > 0 {
		n := min(len(nodes), 1000)
		res, err := fsm.ApplyEntry(index, raftjournal.Encode(&raftjournal.ImportBatch{Nodes: nodes[:n]}))
		if err != nil || res.Err != nil {
			t.Fatalf("import: %v %v", err, res.Err)
		}
		nodes, index = nodes[n:], index+1
	}
	path := filepath.Join(t.TempDir(), "fsm.snap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fsm.WriteSnapshot(f); err != nil {
		t.Fatal(err)
	}
	return path, fsm
}

// TestJournalSnapshot compares a live tree with the journal that imported its
// export, through the journal's own FSM snapshot file and through its
// in-memory tree (FSM.Walk, as journal:// will): equal, and the FSM snapshot is
// in canonical order. Digest-only against the export agrees in constant time
// over the journal's whole tree, once the /zookeeper node is accounted for.
func TestJournalSnapshot(t *testing.T) {
	root := "/journal"
	tree := seed(t, treegen.ProfileAdversarial, root, 800)
	auth := treeAuth(tree)
	hosts := ensemble.Hosts()
	exp := export(t, hosts, root, auth)
	fsmPath, fsm := fsmSnapshotOf(t, exp)

	r := mustCompare(t, zkSource(t, hosts, root, auth), snapSource(t, fsmPath), testConfig())
	requireEqual(t, r)
	if r.Compared != int64(tree.Len()) {
		t.Errorf("compared %d, the tree has %d", r.Compared, tree.Len())
	}

	r = mustCompare(t, snapSource(t, exp), journalOf(fsm), testConfig())
	requireEqual(t, r)

	// The export covers the subtree, the FSM snapshot the whole tree: only a
	// walk can compare them, and says so.
	cfg := testConfig()
	cfg.DigestOnly = true
	r = mustCompare(t, snapSource(t, exp), snapSource(t, fsmPath), cfg)
	if r.Mode != ModeDigestWalk || !r.Equal() || r.Digest.Reason == "" {
		t.Fatalf("subtree digest: mode %v, %+v", r.Mode, r.Digest)
	}
	// Whole tree: an export of "/" against the FSM snapshot, in constant time.
	whole := export(t, hosts, "/", fullAuth(t))
	wholeFSM, wholeJournal := fsmSnapshotOf(t, whole)
	for _, target := range []Source{snapSource(t, wholeFSM), journalOf(wholeJournal)} {
		r = mustCompare(t, snapSource(t, whole), target, cfg)
		if r.Mode != ModeDigest || !r.Digest.Source.Adjusted || !r.Equal() {
			full := mustCompare(t, snapSource(t, whole), target, testConfig())
			t.Fatalf("whole-tree digest against %s: mode %v, %+v; a full comparison finds %v", target.Info().URI, r.Mode, r.Digest, full.Differences)
		}
	}
}

func journalOf(fsm *raftjournal.FSM) Source {
	st := fsm.Status()
	var history []ZxidDigest
	for _, e := range fsm.DigestHistory() {
		history = append(history, ZxidDigest{Zxid: e.Zxid, Digest: e.Digest})
	}
	return NewJournalSource("journal://test", JournalState{Tree: fsm, LastZxid: st.LastZxid, Nodes: int64(st.Nodes), History: history})
}

// fullAuth is the credentials of every tree seeded in the shared ensemble so
// far (each generator plan has its own).
func fullAuth(t testing.TB) []zkclient.Auth {
	t.Helper()
	seededMu.Lock()
	defer seededMu.Unlock()
	return append([]zkclient.Auth(nil), seededAuth...)
}
