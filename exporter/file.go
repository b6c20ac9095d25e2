package exporter

import (
	"context"
	"fmt"
	"os"

	"github.com/zk2raft/zk2raft/znode"
)

// DefaultFileName is the name an export gets when none is given: it carries the
// walk's start zxid, so that successive exports sort by the state they hold.
func DefaultFileName(startZxid int64) string {
	return fmt.Sprintf("zk-export-%016x.snap", uint64(startZxid))
}

// FileOptions tune ExportFile.
type FileOptions struct {
	// Path is the file to write; empty means DefaultFileName in the current
	// directory.
	Path string
	// Snapshot are the snapshot writer's options (compression).
	Snapshot znode.SnapshotWriterOptions
	// Started, if set, is called once the walk has its start zxid and file name,
	// before the first node is read.
	Started func(w *Walker, path string)
}

// ExportFile runs a whole export with w: Start, a snapshot file written
// atomically (temporary file, fsync, rename), Walk, Commit. On any failure,
// unreadable nodes without AllowPartial included, nothing is left under the final
// name. The summary is returned whenever the walk finished, also with the
// unreadable-nodes error, so the caller can list them.
func ExportFile(ctx context.Context, w *Walker, opts FileOptions) (*Summary, error) {
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	path := opts.Path
	if path == "" {
		path = DefaultFileName(w.StartZxid())
	}
	f, err := znode.CreateSnapshotFile(path, w.Header(), opts.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	defer f.Abort()
	if opts.Started != nil {
		opts.Started(w, path)
	}
	sum, err := w.Walk(ctx, f)
	if err != nil {
		return sum, err
	}
	tr, err := f.Commit()
	if err != nil {
		return sum, fmt.Errorf("exporter: %w", err)
	}
	if tr.Digest != sum.Digest || tr.NodeCount != uint64(sum.Nodes) {
		return sum, fmt.Errorf("exporter: internal error: %s holds %d nodes with digest %v, the walk wrote %d with %v", path, tr.NodeCount, tr.Digest, sum.Nodes, sum.Digest)
	}
	sum.File = path
	sum.MaxZxid = max(sum.MaxZxid, tr.MaxZxid)
	if fi, err := os.Stat(path); err == nil {
		sum.FileBytes = fi.Size()
	}
	return sum, nil
}
