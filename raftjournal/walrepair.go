package raftjournal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// raft-wal rolls a full segment in two steps: StoreLogs writes the segment's
// index block and commit (the file is sealed on disk), then a background
// goroutine records the seal and the next segment in wal-meta.db. A process
// killed between the two leaves a tail that wal-meta.db calls open but whose
// file is sealed; raft-wal (v0.4.2) then opens fine and fails every later
// append with "segment is sealed", so the node can never write again.
// repairSealedTail finishes the rotation before raft-wal opens the directory,
// exactly as raft-wal would have (rotateSegmentLocked).

// repairSealedTail completes an interrupted segment rotation in a raft-wal
// directory; it does nothing to a directory without one.
func repairSealedTail(dir string, segmentSize int, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(dir, metadb.FileName)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	ps, err := meta.Load(dir)
	if err != nil {
		return fmt.Errorf("%w: read %s/%s: %v", ErrCorruptLog, dir, metadb.FileName, err)
	}
	if len(ps.Segments) == 0 {
		return nil
	}
	tail := ps.Segments[len(ps.Segments)-1]
	if !tail.SealTime.IsZero() {
		return nil
	}
	filer := segment.NewFiler(dir, fs.New())
	w, err := filer.RecoverTail(tail)
	if errors.Is(err, os.ErrNotExist) {
		return nil // raft-wal creates a missing tail itself
	}
	if err != nil {
		return fmt.Errorf("%w: %s: recover tail segment: %v", ErrCorruptLog, walSegmentFor(dir, tail.BaseIndex), err)
	}
	sealed, indexStart, err := w.Sealed()
	last := w.LastIndex()
	w.Close()
	if err != nil || !sealed {
		return err
	}
	now := time.Now()
	tail.SealTime = now
	tail.MaxIndex = last
	tail.IndexStart = indexStart
	ps.Segments[len(ps.Segments)-1] = tail
	ps.Segments = append(ps.Segments, types.SegmentInfo{
		ID: ps.NextSegmentID, BaseIndex: last + 1, MinIndex: last + 1,
		SizeLimit: uint32(segmentSize), Codec: wal.CodecBinaryV1, CreateTime: now,
	})
	ps.NextSegmentID++
	if err := meta.CommitState(ps); err != nil {
		return fmt.Errorf("raftjournal: complete the interrupted rotation of %s: %w", walSegmentFor(dir, tail.BaseIndex), err)
	}
	logger.Warn("completed a segment rotation interrupted by a crash", "segment", walSegmentFor(dir, tail.BaseIndex), "last-index", last)
	return nil
}
