package raftjournal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/types"
)

func smallSegments() *NodeConfig {
	cfg := DefaultNodeConfig()
	cfg.WALSegmentBytes = 16 << 10
	return &cfg
}

func appendEntries(t *testing.T, st *stores, from, to uint64) {
	t.Helper()
	data := make([]byte, 500)
	for i := from; i <= to; i++ {
		data[0] = byte(i)
		if err := st.log.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func reopen(t *testing.T, dir string, cfg *NodeConfig) *stores {
	t.Helper()
	st, err := openStores(dir, cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWALTailTruncationSurvivesRestart is hashicorp/raft-wal#31 (fixed in
// v0.4.1): truncating the log's suffix inside the open segment, as a follower
// does when a new leader overrules it, left a segment that could not be read
// after a restart.
func TestWALTailTruncationSurvivesRestart(t *testing.T) {
	dir, cfg := t.TempDir(), smallSegments()
	st := reopen(t, dir, cfg)
	appendEntries(t, st, 1, 10)
	if err := st.log.DeleteRange(10, 10); err != nil {
		t.Fatal(err)
	}
	appendEntries(t, st, 10, 12)
	st.close()
	st = reopen(t, dir, cfg)
	defer st.close()
	if err := st.log.verify(1, 12); err != nil {
		t.Fatal(err)
	}
}

// TestWALRepairsInterruptedRotation: a crash between raft-wal sealing a full
// segment and recording the seal leaves a tail raft-wal cannot append to;
// openStores completes the rotation.
func TestWALRepairsInterruptedRotation(t *testing.T) {
	dir, cfg := t.TempDir(), smallSegments()
	st := reopen(t, dir, cfg)
	appendEntries(t, st, 1, 100)
	st.close()
	walDir := filepath.Join(dir, walDirName)

	// Undo the metadata half of the last rotation, as a kill -9 right after
	// the seal would have left it.
	meta := &metadb.BoltMetaDB{}
	ps, err := meta.Load(walDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Segments) < 2 {
		t.Fatalf("no rotation happened: %d segments", len(ps.Segments))
	}
	last := ps.Segments[len(ps.Segments)-1]
	lastIndex := last.BaseIndex - 1
	ps.Segments = ps.Segments[:len(ps.Segments)-1]
	sealed := &ps.Segments[len(ps.Segments)-1]
	sealed.SealTime, sealed.MaxIndex, sealed.IndexStart = time.Time{}, 0, 0
	ps.NextSegmentID--
	if err := meta.CommitState(ps); err != nil {
		t.Fatal(err)
	}
	meta.Close()
	newTail := filepath.Join(walDir, fmt.Sprintf("%020d-%016x.wal", last.BaseIndex, last.ID))
	os.Remove(newTail)
	// Entries after the last sealed one went to the removed segment.
	from := lastIndex + 1

	// raft-wal on its own opens the directory and then refuses every append.
	raw := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(raw), wal.WithSegmentSize(cfg.WALSegmentBytes))
	if err != nil {
		t.Fatal(err)
	}
	err = w.StoreLogs([]*raft.Log{{Index: from, Term: 1, Type: raft.LogCommand, Data: []byte("x")}})
	w.Close()
	raw.Close()
	if !errors.Is(err, types.ErrSealed) {
		t.Logf("raft-wal now handles the interrupted rotation itself (append: %v)", err)
	}

	st = reopen(t, dir, cfg)
	appendEntries(t, st, from, from+50)
	if err := st.log.verify(1, from+50); err != nil {
		t.Fatal(err)
	}
	st.close()
	st = reopen(t, dir, cfg)
	defer st.close()
	if err := st.log.verify(1, from+50); err != nil {
		t.Fatal(err)
	}
}
