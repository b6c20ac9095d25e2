package datadir

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/zk2raft/zk2raft/znode"
)

// Sink receives an export: a znode.SnapshotWriter or znode.SnapshotFile.
type Sink interface {
	WriteNode(*znode.Node) error
	WriteRecord(znode.RecordType, []byte) error
	ObserveZxid(int64)
}

// ExportOptions tune what an export writes.
type ExportOptions struct {
	// ToolVersion goes into the header.
	ToolVersion string
	// ExtendedTypes records that the source ran with extended ephemeral
	// types. It is also set when the tree shows a TTL node.
	ExtendedTypes bool
}

// Summary describes an export from a data directory.
type Summary struct {
	Source string `json:"source"`
	File   string `json:"file,omitempty"`
	// FileBytes is the snapshot file's size.
	FileBytes int64 `json:"file_bytes,omitempty"`
	// Zxid is the zxid the tree is ZooKeeper's at.
	Zxid int64 `json:"zxid"`
	// Nodes and DataBytes count what was written (/zookeeper left out);
	// Digest is the digest of those nodes.
	Nodes      int64        `json:"nodes"`
	DataBytes  int64        `json:"data_bytes"`
	Digest     znode.Digest `json:"digest"`
	Ephemerals int64        `json:"ephemerals"`
	Containers int64        `json:"containers"`
	TTLNodes   int64        `json:"ttl_nodes"`
	Sessions   int          `json:"sessions"`
	// TreeDigest is ZooKeeper's digest of the whole tree at Zxid, which
	// Check compared with ZooKeeper's record.
	TreeDigest znode.Digest `json:"tree_digest"`
	Check      DigestCheck  `json:"check"`
	// Snapshot is the ZooKeeper snapshot the replay started from; Skipped
	// are newer ones that could not be read.
	Snapshot string            `json:"snapshot"`
	Skipped  []SkippedSnapshot `json:"skipped,omitempty"`
	Logs     []string          `json:"logs"`
	// Txns, Reapplied and LateSkips are State's counts.
	Txns       int   `json:"txns"`
	Reapplied  int   `json:"reapplied"`
	LateSkips  int   `json:"late_skips,omitempty"`
	FuzzyUntil int64 `json:"fuzzy_until"`
	LastLogged int64 `json:"last_logged"`
	// Torn is where the replay stopped on a record still being written.
	Torn     *Position     `json:"torn,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// NodesPerSecond is the export's rate.
func (s *Summary) NodesPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Nodes) / s.Duration.Seconds()
}

// SourceURI names a data directory as verify and the header do:
// datadir://DIR, with the log directory as ?log=DIR when it differs.
func SourceURI(dataDir, logDir string) string {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	s := "datadir://" + abs(dataDir)
	if logDir != "" && filepath.Clean(logDir) != filepath.Clean(dataDir) {
		s += "?log=" + abs(logDir)
	}
	return s
}

// Header is the snapshot header of an export of st.
func (st *State) Header(source string, opts ExportOptions) znode.SnapshotHeader {
	meta := map[string]string{
		// The owners are ZooKeeper's raw values: containers and TTL nodes
		// are told apart from persistent nodes.
		"owner_source":  "datadir",
		"zk_zxid":       fmt.Sprintf("%#x", st.Zxid),
		"zk_snapshot":   filepath.Base(st.Snapshot.File.Path),
		"zk_digest":     st.Tree.Digest().String(),
		"digest_record": st.Check.Record,
		"sessions":      fmt.Sprint(len(st.Tree.Sessions())),
	}
	return znode.SnapshotHeader{
		Source:        source,
		StartZxid:     st.Zxid,
		ToolVersion:   opts.ToolVersion,
		Filters:       znode.SnapshotFilters{Path: "/", Exclude: []string{"/zookeeper"}, Ephemerals: "include"},
		Kind:          znode.SnapshotKindExport,
		ExtendedTypes: opts.ExtendedTypes || st.Tree.ExtendedTypes(),
		Meta:          meta,
	}
}

// Export writes st's tree to sink in canonical order (/zookeeper left out,
// as a live export of the whole tree does), then one RecordSession per
// session, and fills a summary of what it wrote.
func (st *State) Export(ctx context.Context, sink Sink) (*Summary, error) {
	sum := &Summary{
		Zxid: st.Zxid, TreeDigest: st.Tree.Digest(), Check: st.Check,
		Snapshot: st.Snapshot.File.Path, Skipped: st.Skipped, Logs: st.Logs,
		Txns: st.Txns, Reapplied: st.Reapplied, LateSkips: st.LateSkips,
		FuzzyUntil: st.FuzzyUntil, LastLogged: st.LastLogged,
	}
	if st.Torn != nil {
		p := st.Torn.Pos
		sum.Torn = &p
	}
	skip := func(p string) bool { return p == "/zookeeper" }
	i := 0
	err := st.Tree.Walk("/", skip, func(n *znode.Node) error {
		if i++; i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := sink.WriteNode(n); err != nil {
			return err
		}
		sum.Nodes++
		sum.DataBytes += int64(len(n.Data))
		sum.Digest.Add(n.Digest())
		switch n.Kind() {
		case znode.Ephemeral:
			sum.Ephemerals++
		case znode.Container:
			sum.Containers++
		case znode.TTL:
			sum.TTLNodes++
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	system := 0
	_ = st.Tree.Walk("/zookeeper", nil, func(*znode.Node) error { system++; return nil })
	if n := st.Tree.Len() - int(sum.Nodes) - system; n != 0 {
		// DataTree can hold nodes no parent lists while a replay is in a
		// fuzzy snapshot's range; past it, ZooKeeper's digest would not
		// have matched with them.
		return sum, fmt.Errorf("datadir: internal error: %d nodes at zxid %#x have no parent listing them, yet the digest matched", n, st.Zxid)
	}
	sessions := make([]znode.Session, 0, len(st.Tree.Sessions()))
	for id, to := range st.Tree.Sessions() {
		sessions = append(sessions, znode.Session{ID: id, TimeoutMs: to})
	}
	slices.SortFunc(sessions, func(a, b znode.Session) int { return cmp.Compare(a.ID, b.ID) })
	var buf []byte
	for _, s := range sessions {
		buf = znode.AppendSessionPayload(buf[:0], s)
		if err := sink.WriteRecord(znode.RecordSession, buf); err != nil {
			return sum, err
		}
	}
	sum.Sessions = len(sessions)
	sink.ObserveZxid(st.Zxid)
	return sum, nil
}

// FileOptions say where ExportFile writes.
type FileOptions struct {
	// Path is the file; empty means DefaultFileName in the current directory.
	Path string
	// Snapshot are the snapshot writer's options (compression).
	Snapshot znode.SnapshotWriterOptions
	// Loaded, if set, is called once the tree is rebuilt and checked, with
	// the file name, before anything is written.
	Loaded func(st *State, path string)
}

// DefaultFileName is the name of an export at zxid when none is given.
func DefaultFileName(zxid int64) string {
	return fmt.Sprintf("zk-datadir-%016x.snap", uint64(zxid))
}

// ExportFile loads the data directory (Load) and writes its tree to a
// snapshot file atomically (temporary file, fsync, rename): on any failure
// nothing is left under the final name.
func ExportFile(ctx context.Context, opts Options, eo ExportOptions, fo FileOptions) (*Summary, error) {
	start := time.Now()
	st, err := Load(ctx, opts)
	if err != nil {
		return nil, err
	}
	path := fo.Path
	if path == "" {
		path = DefaultFileName(st.Zxid)
	}
	if fo.Loaded != nil {
		fo.Loaded(st, path)
	}
	source := SourceURI(opts.DataDir, opts.LogDir)
	f, err := znode.CreateSnapshotFile(path, st.Header(source, eo), fo.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	defer f.Abort()
	sum, err := st.Export(ctx, f)
	sum.Source = source
	if err != nil {
		return sum, err
	}
	tr, err := f.Commit()
	if err != nil {
		return sum, fmt.Errorf("datadir: %w", err)
	}
	if tr.Digest != sum.Digest || tr.NodeCount != uint64(sum.Nodes) {
		return sum, fmt.Errorf("datadir: internal error: %s holds %d nodes with digest %v, the export wrote %d with %v", path, tr.NodeCount, tr.Digest, sum.Nodes, sum.Digest)
	}
	sum.File = path
	if fi, err := os.Stat(path); err == nil {
		sum.FileBytes = fi.Size()
	}
	sum.Duration = time.Since(start)
	return sum, nil
}
