package raftjournal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestOpenReadOnly: a node writes, snapshots, writes more and is closed; the
// data dir opened read-only holds the same tree and digest, for either log
// store, and nothing under it changed but the LOCK file.
func TestOpenReadOnly(t *testing.T) {
	for _, kind := range []LogStoreKind{LogStoreWAL, LogStoreBolt} {
		t.Run(string(kind), func(t *testing.T) {
			c := newTestCluster(t, 1, func(cfg *NodeConfig) { cfg.LogStore = kind })
			n := c.nodes[0]
			ctx := t.Context()
			c.primary()
			write := func(from, to int) {
				for i := from; i < to; i++ {
					if _, _, err := n.Create(ctx, fmt.Sprintf("/n%03d", i), []byte(strconv.Itoa(i)), ModePersistent); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(0, 50)
			if err := n.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			write(50, 80)
			if err := n.Delete(ctx, "/n010", -1); err != nil {
				t.Fatal(err)
			}
			wantTree, wantDigest := treeOf(t, n), n.Digest()
			wantStatus := n.FSM().Status()
			wantHistory := n.FSM().DigestHistory()

			// While the node runs, its directory is refused, naming it and the pid.
			dir := c.cfgs[0].DataDir
			_, _, err := OpenReadOnly(dir, nil)
			if !errors.Is(err, ErrDataDirLocked) || !strings.Contains(err.Error(), dir) ||
				!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("open a running node's dir: %v", err)
			}

			c.stop(0)
			before := listDirState(t, dir)
			fsm, info, err := OpenReadOnly(dir, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := fsm.Digest(); got != wantDigest {
				t.Errorf("digest %s, want %s", got, wantDigest)
			}
			if got := dumpTree(t, fsm); !reflect.DeepEqual(got, wantTree) {
				t.Errorf("tree differs: %d nodes, want %d", len(got), len(wantTree))
			}
			if st := fsm.Status(); st.LastZxid != wantStatus.LastZxid || st.AppliedIndex != wantStatus.AppliedIndex {
				t.Errorf("status %+v, want %+v", st, wantStatus)
			}
			if got := fsm.DigestHistory(); !reflect.DeepEqual(got, wantHistory) {
				t.Errorf("digest history %v, want %v", got, wantHistory)
			}
			if info.LogStore != kind || info.SnapshotID == "" || info.Commands < 31 || info.LastIndex < wantStatus.AppliedIndex || info.LastTerm == 0 {
				t.Errorf("info %+v", info)
			}
			if after := listDirState(t, dir); !reflect.DeepEqual(before, after) {
				t.Errorf("the data dir changed:\nbefore %v\nafter  %v", before, after)
			}
			// The lock was released: the node starts again.
			c.restart(0)
		})
	}
}

func TestOpenReadOnlyNotADataDir(t *testing.T) {
	if _, _, err := OpenReadOnly(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not a journal data directory") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, _, err := OpenReadOnly("/nonexistent/zk2raft", nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/zk2raft") {
		t.Fatalf("missing dir: %v", err)
	}
}

// listDirState maps every file under dir but LOCK to its size and mtime.
func listDirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, p); rel != "LOCK" {
			out[rel] = fmt.Sprintf("%d %s", fi.Size(), fi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
