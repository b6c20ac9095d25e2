package raftjournal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stoppedNode runs a single-node journal, writes before entries, snapshots,
// writes after entries past the snapshot (each its own log batch), and stops
// it cleanly. It returns the config to restart it with and the paths written.
func stoppedNode(t *testing.T, before, after int, tweak func(*NodeConfig)) (NodeConfig, []string) {
	t.Helper()
	c := newTestCluster(t, 1, tweak)
	c.primary()
	n := c.nodes[0]
	ctx := t.Context()
	var paths []string
	for i := range before + after {
		p := fmt.Sprintf("/n%04d", i)
		if _, _, err := n.Create(ctx, p, []byte(strings.Repeat("v", 100)), ModePersistent); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		if i == before-1 {
			if err := n.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.stop(0)
	cfg := c.cfgs[0]
	cfg.Bootstrap, cfg.Join = false, ""
	return cfg, paths
}

// tailSegment returns the open segment file and the end of its data.
func tailSegment(t *testing.T, dataDir string) (string, int) {
	t.Helper()
	ps, ok, err := readWALMeta(filepath.Join(dataDir, walDirName))
	if err != nil || !ok || len(ps.Segments) == 0 {
		t.Fatalf("wal meta: %v %v %+v", ok, err, ps)
	}
	seg := ps.Segments[len(ps.Segments)-1]
	file := filepath.Join(dataDir, walDirName, fmt.Sprintf("%020d-%016x.wal", seg.BaseIndex, seg.ID))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return file, end
}

// wantDamage checks that both Open and OpenReadOnly refuse the data dir with
// a data-dir-damaged error naming want (a file).
func wantDamage(t *testing.T, cfg NodeConfig, want string) {
	t.Helper()
	n, err := Open(cfg)
	if err == nil {
		n.Close()
		t.Fatalf("a node started on the damaged data dir (want an error naming %s)", want)
	}
	if !errors.Is(err, ErrDataDirDamaged) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "raftjournal: data dir damaged: ") {
		t.Fatalf("open: %v\nwant a data-dir-damaged error naming %s", err, want)
	}
	t.Logf("open: %v", err)
	if _, _, err := OpenReadOnly(cfg.DataDir, nil); !errors.Is(err, ErrDataDirDamaged) || !strings.Contains(err.Error(), want) {
		t.Fatalf("read-only open: %v\nwant a data-dir-damaged error naming %s", err, want)
	}
}

// Item 6: a node whose Raft log lost entries it held refuses to serve (and an
// offline read refuses to replay it), naming the file; a loss accepted by the
// operator starts the node on what is left.
func TestDamagedLogRefused(t *testing.T) {
	small := func(cfg *NodeConfig) { cfg.WALSegmentBytes = 32 << 10 }
	walDir := func(cfg NodeConfig) string { return filepath.Join(cfg.DataDir, walDirName) }
	tests := []struct {
		name   string
		tweak  func(*NodeConfig)
		damage func(t *testing.T, cfg NodeConfig) string // returns the file the error names
	}{
		{"segment files removed", nil, func(t *testing.T, cfg NodeConfig) string {
			segs, _ := filepath.Glob(filepath.Join(walDir(cfg), "*.wal"))
			for _, s := range segs {
				if err := os.Remove(s); err != nil {
					t.Fatal(err)
				}
			}
			return segs[len(segs)-1]
		}},
		{"wal-meta.db removed", nil, func(t *testing.T, cfg NodeConfig) string {
			p := filepath.Join(walDir(cfg), "wal-meta.db")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"whole raft-wal dir removed", nil, func(t *testing.T, cfg NodeConfig) string {
			if err := os.RemoveAll(walDir(cfg)); err != nil {
				t.Fatal(err)
			}
			return "wal-meta.db"
		}},
		{"tail segment truncated", nil, func(t *testing.T, cfg NodeConfig) string {
			file, end := tailSegment(t, cfg.DataDir)
			if err := os.Truncate(file, int64(end/2)); err != nil {
				t.Fatal(err)
			}
			return file
		}},
		{"tail segment truncated, after a crash", nil, func(t *testing.T, cfg NodeConfig) string {
			file, end := tailSegment(t, cfg.DataDir)
			if err := os.Truncate(file, int64(end/2)); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(cfg.DataDir, stoppedFileName)); err != nil {
				t.Fatal(err)
			}
			return file
		}},
		{"tail segment zeroed, after a crash", nil, func(t *testing.T, cfg NodeConfig) string {
			file, end := tailSegment(t, cfg.DataDir)
			f, err := os.OpenFile(file, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 4096), int64(end/3)); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(cfg.DataDir, stoppedFileName)); err != nil {
				t.Fatal(err)
			}
			return file
		}},
		{"a sealed segment removed", small, func(t *testing.T, cfg NodeConfig) string {
			ps, _, err := readWALMeta(walDir(cfg))
			if err != nil || len(ps.Segments) < 2 {
				t.Fatalf("want two segments or more: %+v %v", ps.Segments, err)
			}
			seg := ps.Segments[len(ps.Segments)-2]
			p := filepath.Join(walDir(cfg), fmt.Sprintf("%020d-%016x.wal", seg.BaseIndex, seg.ID))
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"bolt store removed", func(cfg *NodeConfig) { cfg.LogStore = LogStoreBolt }, func(t *testing.T, cfg NodeConfig) string {
			p := filepath.Join(cfg.DataDir, boltFileName)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := stoppedNode(t, 50, 200, tc.tweak)
			want := tc.damage(t, cfg)
			wantDamage(t, cfg, want)
		})
	}
}

// Item 6: an operator may accept the loss; the node then starts on the
// snapshot and the intact prefix of the log, and says what it dropped.
func TestDamagedLogAccepted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, file string, end int)
	}{
		{"truncated", func(t *testing.T, file string, end int) {
			if err := os.Truncate(file, int64(end/2)); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeroed", func(t *testing.T, file string, end int) {
			if err := zeroFrom(file, int64(end/2), int64(end/2+4096)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testDamagedLogAccepted(t, tc.damage) })
	}
}

func testDamagedLogAccepted(t *testing.T, damage func(t *testing.T, file string, end int)) {
	cfg, paths := stoppedNode(t, 50, 200, nil)
	file, end := tailSegment(t, cfg.DataDir)
	damage(t, file, end)
	if err := os.Remove(filepath.Join(cfg.DataDir, stoppedFileName)); err != nil {
		t.Fatal(err) // as after a crash: the structural checks find it
	}
	if _, err := Open(cfg); !errors.Is(err, ErrDataDirDamaged) {
		t.Fatalf("open: %v, want the damage", err)
	}
	cfg.AcceptLogLoss = true
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("open accepting the loss: %v", err)
	}
	defer n.Close()
	waitFor(t, 20*time.Second, "the node to lead", func() error {
		if !n.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	// Everything in the snapshot is there; what was past the cut is not.
	for _, p := range paths[:50] {
		if _, ok := n.FSM().Node(p); !ok {
			t.Fatalf("%s (in the snapshot) is missing", p)
		}
	}
	if _, ok := n.FSM().Node(paths[len(paths)-1]); ok {
		t.Fatalf("%s survived a log cut before it", paths[len(paths)-1])
	}
	// The node writes again, and a clean restart checks against the new end.
	if _, _, err := n.Create(t.Context(), "/after", nil, ModePersistent); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.AcceptLogLoss = false
	n2, err := Open(cfg)
	if err != nil {
		t.Fatalf("restart after the accepted loss: %v", err)
	}
	n2.Close()
}

// Item 7: an emptied snapshots/ directory is reported as damage, by a node
// (which panicked in raft before) and by an offline read (which reported the
// snapshot's nodes missing).
func TestEmptiedSnapshotsRefused(t *testing.T) {
	cfg, _ := stoppedNode(t, 200, 20, func(cfg *NodeConfig) {
		cfg.MinTrailingLogs, cfg.MaxTrailingLogs, cfg.TrailingLogBytes = 10, 10, 1
	})
	first, _, err := func() (uint64, uint64, error) {
		st, err := openStores(cfg.DataDir, &cfg, newHclog(testLogger(t), "x"))
		if err != nil {
			return 0, 0, err
		}
		defer st.close()
		f, err := st.log.FirstIndex()
		return f, 0, err
	}()
	if err != nil || first <= 1 {
		t.Fatalf("the log was not compacted behind the snapshot: first index %d, %v", first, err)
	}
	snapDir := filepath.Join(cfg.DataDir, snapshotDirName)
	ents, _ := os.ReadDir(snapDir)
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(snapDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	wantDamage(t, cfg, snapDir)
	_, err = Open(cfg)
	if !strings.Contains(err.Error(), "holds no snapshot") {
		t.Fatalf("open: %v", err)
	}
	cfg.AcceptLogLoss = true
	if n, err := Open(cfg); err == nil {
		n.Close()
		t.Fatal("accepting the loss started a node without its snapshot")
	}
}

// Item 8: a data dir belongs to the member its Raft configuration names.
func TestDataDirIdentity(t *testing.T) {
	cfg, _ := stoppedNode(t, 5, 5, nil)
	t.Run("another node id", func(t *testing.T) {
		other := cfg
		other.NodeID = "n9"
		_, err := Open(other)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `"n1"`) || !strings.Contains(err.Error(), `"n9"`) {
			t.Fatalf("open as n9: %v", err)
		}
	})
	t.Run("another raft address", func(t *testing.T) {
		other := cfg
		other.RaftAddr = freeAddr(t)
		_, err := Open(other)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), cfg.RaftAddr) || !strings.Contains(err.Error(), other.RaftAddr) {
			t.Fatalf("open at %s: %v", other.RaftAddr, err)
		}
	})
	t.Run("the right identity", func(t *testing.T) {
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.Close()
	})
	t.Run("an empty dir without bootstrap or join", func(t *testing.T) {
		fresh := testNodeConfig(t, "x", testLogger(t))
		fresh.Secret = cfg.Secret
		_, err := Open(fresh)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Bootstrap") {
			t.Fatalf("open of an empty dir: %v", err)
		}
	})
	for _, tc := range []struct{ name, file, want string }{
		{"bootstrap over foreign files", "notes.txt", "notes.txt"},
		{"bootstrap over a crashed import's snapshot", "snapshots/1-2-3.tmp/state.bin", "1-2-3.tmp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := testNodeConfig(t, "x", testLogger(t))
			fresh.Bootstrap = true
			p := filepath.Join(fresh.DataDir, tc.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			n, err := Open(fresh)
			if err == nil {
				n.Close()
				t.Fatal("bootstrapped over it")
			}
			if !errors.Is(err, ErrDataDirNotEmpty) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("bootstrap: %v", err)
			}
		})
	}
}
