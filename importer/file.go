package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// ErrWrongKind is returned for a snapshot that is not an export (a journal's
// own FSM snapshot carries sessions and merge state an import would drop).
var ErrWrongKind = errors.New("importer: not an export snapshot")

// Result is what an import of a snapshot file did.
type Result struct {
	File    string
	Header  znode.SnapshotHeader
	Trailer znode.SnapshotTrailer
	// Expected is the journal the stream must produce in a fresh journal.
	Expected Expectation
	// Journal is the resulting journal's digest and node count.
	JournalDigest znode.Digest
	JournalNodes  int64
	Entries       int64
	Bytes         int64 // encoded entry bytes
	Duration      time.Duration

	// Offline: the snapshot installed in the data dir.
	Installed *raftjournal.InitialSnapshot

	// Online: what this run sent and skipped, and whether the journal's
	// state was checked against the stream (it was fresh when the import began).
	Online      bool
	Sent        int64
	Skipped     int64
	Retries     int64
	LastIndex   uint64
	Checked     bool
	AlreadyDone bool // a finished import of this snapshot was found: nothing sent
	// CheckpointUnsupported says the journal could not report checkpoints, so
	// the import could not resume and started from the beginning.
	CheckpointUnsupported bool
}

// openChecked checks the file's header and footer (without reading the body)
// and opens it for streaming.
func openChecked(path string) (*znode.SnapshotReader, znode.SnapshotHeader, znode.SnapshotTrailer, error) {
	h, tr, err := znode.ReadSnapshotTrailer(path)
	if err != nil {
		return nil, h, tr, diagnose(path, err)
	}
	if h.Kind != znode.SnapshotKindExport {
		return nil, h, tr, fmt.Errorf("%w: %s is a %q snapshot; import takes an export (zk2raft export or migrate --keep-snapshot)", ErrWrongKind, path, h.Kind)
	}
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		return nil, h, tr, err
	}
	return r, h, tr, nil
}

// diagnose reads a snapshot whose footer failed its check from the start:
// a file cut short then reports where its records end (ErrTruncatedSnapshot)
// rather than only that the footer is missing.
func diagnose(path string, footerErr error) error {
	if !errors.Is(footerErr, znode.ErrCorruptSnapshot) {
		return footerErr
	}
	r, err := znode.OpenSnapshotFile(path)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		if _, err := r.Next(); err != nil {
			if err == io.EOF {
				return footerErr
			}
			return err
		}
	}
}

// stream feeds every node of r to write and returns the verified trailer,
// which must match the footer read up front.
func stream(ctx context.Context, r *znode.SnapshotReader, want znode.SnapshotTrailer, write func(*znode.Node) error) (znode.SnapshotTrailer, error) {
	for i := 0; ; i++ {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return znode.SnapshotTrailer{}, err
			}
		}
		n, err := r.NextNode()
		if err == io.EOF {
			break
		}
		if err != nil {
			return znode.SnapshotTrailer{}, err
		}
		if err := write(n); err != nil {
			return znode.SnapshotTrailer{}, err
		}
	}
	tr := r.Trailer()
	if tr != want {
		return tr, fmt.Errorf("%w: the body's trailer %+v differs from the footer read first %+v (file changed while read?)", znode.ErrCorruptSnapshot, tr, want)
	}
	return tr, nil
}

// ImportFile is the offline import: it builds a fresh journal's state from
// the snapshot at path and installs it in cfg.DataDir as the journal's
// initial snapshot with a one-voter configuration (cfg.NodeID at cfg.RaftAddr),
// so that the first `zk2raft serve` on that directory starts with the tree.
//
// It refuses a data dir that is not fresh before reading anything, reads and
// verifies the whole file (every record's CRC, the trailer's count and
// digest) before writing anything, checks the journal against the stream,
// and reads the installed snapshot back. On any error the data dir is left as
// it was (at most the LOCK file and an empty snapshots dir are created).
func ImportFile(ctx context.Context, path string, cfg raftjournal.NodeConfig, opts Options) (*Result, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := raftjournal.CheckFreshDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	r, h, want, err := openChecked(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if opts.SizeHint == 0 {
		opts.SizeHint = want.NodeCount
	}
	opts.CompressSnapshots = opts.CompressSnapshots || cfg.CompressSnapshots
	b, err := NewBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	tr, err := stream(ctx, r, want, b.WriteNode)
	if err != nil {
		b.Abort()
		return nil, err
	}
	cp := CheckpointValue{Source: h.Source, Nodes: int64(tr.NodeCount), Total: int64(tr.NodeCount), Digest: tr.Digest.String(), Done: true, BaseFresh: true}
	built, err := b.Finish(&raftjournal.Checkpoint{Key: SnapshotCheckpointKey(h, tr), Value: cp.Encode()})
	if err != nil {
		return nil, err
	}
	if built.Expected.StreamDigest != tr.Digest || built.Expected.StreamNodes != int64(tr.NodeCount) {
		return nil, fmt.Errorf("%w: read %d nodes with digest %v, the trailer says %d with %v", ErrMismatch,
			built.Expected.StreamNodes, built.Expected.StreamDigest, tr.NodeCount, tr.Digest)
	}
	info, err := built.Install(cfg)
	if err != nil {
		return nil, err
	}
	return &Result{
		File: path, Header: h, Trailer: tr, Expected: built.Expected,
		JournalDigest: built.Digest, JournalNodes: built.Nodes, Entries: built.Entries, Bytes: built.Bytes,
		Duration: time.Since(start), Installed: &info,
	}, nil
}

// ImportFileOnline imports the snapshot at path into a running journal
// through j, resuming from the checkpoint a previous run of the same snapshot
// left, and doing nothing when that run finished. The whole file is verified
// as it streams; a damaged file fails the import, with what was sent before
// the damage applied (and merged idempotently by a rerun with a good file).
func ImportFileOnline(ctx context.Context, path string, j Journal, opts Options) (*Result, error) {
	start := time.Now()
	r, h, want, err := openChecked(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if opts.SizeHint == 0 {
		opts.SizeHint = want.NodeCount
	}
	res := &Result{File: path, Header: h, Trailer: want, Online: true}
	key := SnapshotCheckpointKey(h, want)
	base := CheckpointValue{Source: h.Source, Total: int64(want.NodeCount), Digest: want.Digest.String()}
	raw, ok, err := j.Checkpoint(ctx, key)
	switch {
	case errors.Is(err, ErrCheckpointUnsupported):
		res.CheckpointUnsupported = true
	case err != nil:
		return nil, err
	case ok:
		cp, err := DecodeCheckpoint(raw)
		if err != nil {
			return nil, err
		}
		if cp.Total != base.Total || cp.Digest != base.Digest {
			return nil, fmt.Errorf("importer: checkpoint %s describes %d nodes with digest %s, the snapshot %d with %s", key, cp.Total, cp.Digest, base.Total, base.Digest)
		}
		base = cp
	}
	if !ok || res.CheckpointUnsupported {
		st, err := j.State(ctx, 0)
		if err != nil {
			return nil, err
		}
		base.BaseFresh = st.fresh()
	}
	if base.Done {
		// A finished import: check the file all the same, send nothing.
		if _, err := stream(ctx, r, want, func(*znode.Node) error { return nil }); err != nil {
			return nil, err
		}
		st, err := j.State(ctx, 0)
		if err != nil {
			return nil, err
		}
		res.AlreadyDone, res.Skipped = true, base.Nodes
		res.JournalDigest, res.JournalNodes = st.Digest, st.Nodes
		res.Duration = time.Since(start)
		return res, nil
	}
	o, err := NewOnline(ctx, j, key, base, opts)
	if err != nil {
		return nil, err
	}
	tr, err := stream(ctx, r, want, o.WriteNode)
	if err != nil {
		o.Abort()
		return nil, err
	}
	or, err := o.Finish(int64(tr.NodeCount), tr.Digest)
	if or != nil {
		res.Expected, res.Sent, res.Skipped, res.Entries, res.Bytes = or.Expected, or.Sent, or.Skipped, or.Entries, or.Bytes
		res.Retries, res.LastIndex, res.Checked = or.Retries, or.LastIndex, or.Checked
		res.JournalDigest, res.JournalNodes = or.Journal.Digest, or.Journal.Nodes
	}
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	return res, nil
}
