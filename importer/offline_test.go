package importer

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

func TestOfflineImportFile(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "export.snap")
	tr := synthetic(t, snap, 20_000, true)
	cfg := nodeConfig(t, "node-1", filepath.Join(dir, "journal"), testLogger(t))
	res, err := ImportFile(t.Context(), snap, cfg, Options{BatchBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trailer != tr {
		t.Errorf("trailer %+v, want %+v", res.Trailer, tr)
	}
	want := tr.Digest + znode.Digest(PristineDigest("/zookeeper"))
	if res.JournalDigest != want || res.Expected.Digest != want {
		t.Errorf("journal digest %v (expected %v), want snapshot %v + /zookeeper = %v", res.JournalDigest, res.Expected.Digest, tr.Digest, want)
	}
	if res.JournalNodes != int64(tr.NodeCount)+3 {
		t.Errorf("journal holds %d nodes, want %d + 3 system nodes", res.JournalNodes, tr.NodeCount)
	}
	if res.Entries < 10 {
		t.Errorf("%d entries for %d bytes of batches: batching by bytes did not cut", res.Entries, res.Bytes)
	}

	// The first serve of the directory starts with the tree.
	n := openNode(t, cfg)
	waitLeader(t, n)
	if n.Digest() != want {
		t.Fatalf("node digest %v, want %v", n.Digest(), want)
	}
	checkAgainstSnapshot(t, n.FSM(), snap)

	// The directory now holds a journal: a second import is refused.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, cfg.DataDir)
	_, err = ImportFile(t.Context(), snap, cfg, Options{})
	if !errors.Is(err, raftjournal.ErrDataDirNotEmpty) {
		t.Fatalf("import into a journal's data dir: %v, want ErrDataDirNotEmpty", err)
	}
	if after := dirState(t, cfg.DataDir); after != before {
		t.Errorf("refused import changed the data dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// checkAgainstSnapshot checks every node of the snapshot against the FSM,
// field by field (data nil vs empty, ACL, every stat field, child count).
func checkAgainstSnapshot(t testing.TB, fsm *raftjournal.FSM, snap string) {
	t.Helper()
	r, err := znode.OpenSnapshotFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bad := 0
	for {
		want, err := r.NextNode()
		if err != nil {
			if err == io.EOF {
				break
			}
			t.Fatal(err)
		}
		got, ok := fsm.Node(want.Path)
		switch {
		case !ok:
			t.Errorf("%s missing from the journal", want.Path)
			bad++
		case !got.Equal(want):
			t.Errorf("%s differs:\n journal  %+v\n snapshot %+v", want.Path, got, want)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
}

func TestOfflineImportRefusesAndLeavesTargetUntouched(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.snap")
	synthetic(t, good, 3000, false)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.snap")
	if err := os.WriteFile(truncated, data[:len(data)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.snap")
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x40
	if err := os.WriteFile(flipped, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	nonEmpty := filepath.Join(dir, "non-empty")
	if err := os.MkdirAll(nonEmpty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nonEmpty, "precious.txt"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	journalDir := filepath.Join(dir, "journal")
	if _, err := ImportFile(t.Context(), good, nodeConfig(t, "node-1", journalDir, testLogger(t)), Options{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		snap   string
		target string
		want   error
	}{
		{"non-empty target", good, nonEmpty, raftjournal.ErrDataDirNotEmpty},
		{"target holds a journal", good, journalDir, raftjournal.ErrDataDirNotEmpty},
		{"truncated snapshot", truncated, filepath.Join(dir, "t1"), znode.ErrTruncatedSnapshot},
		{"flipped byte", flipped, filepath.Join(dir, "t2"), znode.ErrCorruptSnapshot},
		{"missing snapshot", filepath.Join(dir, "nope.snap"), filepath.Join(dir, "t3"), os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dirState(t, tc.target)
			_, err := ImportFile(t.Context(), tc.snap, nodeConfig(t, "node-1", tc.target, testLogger(t)), Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
			if after := dirState(t, tc.target); after != before {
				t.Errorf("target changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestClusterFromOfflineImport forms a three-node cluster from an offline
// import: the first node serves the imported directory, two empty nodes join
// and catch up by snapshot install, and every digest is the same; writes after
// that reach all three, and the first node restarts from its own snapshot.
func TestClusterFromOfflineImport(t *testing.T) {
	size := 20_000
	if *heavy {
		size = 300_000
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "export.snap")
	tr := synthetic(t, snap, size, false)
	logger := testLogger(t)
	cfg1 := nodeConfig(t, "node-1", filepath.Join(dir, "n1"), logger)
	res, err := ImportFile(t.Context(), snap, cfg1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := res.JournalDigest

	n1, err := raftjournal.Open(cfg1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n1.Close() }()
	waitLeader(t, n1)
	nodes := []*raftjournal.Node{n1}
	for _, id := range []string{"node-2", "node-3"} {
		cfg := nodeConfig(t, id, filepath.Join(dir, id), logger)
		cfg.Join = n1.AdminAddr()
		nodes = append(nodes, openNode(t, cfg))
	}
	if got := converged(t, nodes); got != want {
		t.Fatalf("cluster digest %v, want the import's %v", got, want)
	}
	for _, n := range nodes {
		if got := n.FSM().NodeCount(); got != int(tr.NodeCount)+3 {
			t.Errorf("%s holds %d nodes, want %d", n.ID(), got, tr.NodeCount+3)
		}
	}
	if st := n1.Status(); st.MemberCount != 3 {
		t.Fatalf("%d members, want 3", st.MemberCount)
	}

	// Another import through the cluster reaches every node.
	extra := &raftjournal.ImportBatch{Nodes: []*znode.Node{{Path: "/extra", Data: []byte("x"), ACL: znode.WorldAnyone(),
		Stat: znode.Stat{Czxid: 0x200000001, Mzxid: 0x200000001, Pzxid: 0x200000001}}}}
	if _, err := nodes[2].ImportBatch(ctxTimeout(t, 30*time.Second), extra); err != nil {
		t.Fatal(err)
	}
	after := converged(t, nodes)
	if after == want {
		t.Fatal("digest did not move after an import")
	}

	// The first node restarts from its data dir as the member it was.
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	n1 = openNode(t, cfg1)
	nodes[0] = n1
	waitFor(t, 30*time.Second, "node-1 to catch up after restart", func() error {
		if n1.Digest() != after {
			return errors.New("digest " + n1.Digest().String())
		}
		return nil
	})
}
