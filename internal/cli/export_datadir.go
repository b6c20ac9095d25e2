package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/znode"
)

// datadirExportOptions are export's flags for the data-directory route.
type datadirExportOptions struct {
	dir    string
	logDir string
	toZxid string
}

func (o *datadirExportOptions) addFlags(cmd *cobra.Command, verb string) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "from-datadir", "", verb+" from a ZooKeeper server's dataDir (its snapshots and transaction logs) instead of a live ensemble; read-only, the server may be running")
	f.StringVar(&o.logDir, "datalog-dir", "", "the server's dataLogDir, when it differs from its dataDir (with --from-datadir)")
	f.StringVar(&o.toZxid, "to-zxid", "", "stop at this zxid (0x… or decimal; with --from-datadir; default: the last complete txn)")
}

// clientOnlyFlags are the export flags that only mean something for a live
// walk.
var clientOnlyFlags = []string{"zk", "path", "workers", "read-mode", "sessions", "rate", "exclude", "auth",
	"ephemerals", "allow-partial", "max-listed", "session-timeout", "connect-timeout", "retry-timeout",
	"tls", "tls-ca", "tls-cert", "tls-key", "tls-server-name", "tls-insecure-skip-verify"}

// parseZxid reads a zxid given as 0x… hex or decimal.
func parseZxid(s string) (int64, error) {
	z, err := strconv.ParseInt(s, 0, 64)
	if err != nil || z <= 0 {
		return 0, fmt.Errorf("zxid %q: want a positive number, 0x… for hex", s)
	}
	return z, nil
}

// runDatadirExport is `export --from-datadir`.
func runDatadirExport(cmd *cobra.Command, g *globalOptions, o *datadirExportOptions, out string, compress, extended, asJSON bool) error {
	for _, name := range clientOnlyFlags {
		if cmd.Flags().Changed(name) {
			return usageErrorf("--%s is for exports from a live ensemble, not --from-datadir", name)
		}
	}
	opts := datadir.Options{DataDir: o.dir, LogDir: o.logDir, Logger: g.logger}
	if o.toZxid != "" {
		z, err := parseZxid(o.toZxid)
		if err != nil {
			return usageErrorf("--to-zxid: %v", err)
		}
		opts.ToZxid = z
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fo := datadir.FileOptions{Path: out, Snapshot: znode.SnapshotWriterOptions{Compress: compress}}
	fo.Loaded = func(st *datadir.State, path string) {
		g.logger.Info("data directory loaded", "zxid", fmt.Sprintf("%#x", st.Zxid), "snapshot", filepath.Base(st.Snapshot.File.Path),
			"txns", st.Txns, "logs", len(st.Logs), "proof", st.Check.Record, "out", path)
	}
	eo := datadir.ExportOptions{ToolVersion: buildinfo.Read().Version, ExtendedTypes: extended}
	sum, err := datadir.ExportFile(ctx, opts, eo, fo)
	if err != nil {
		return err
	}
	return printDatadirSummary(g.stdout, sum, asJSON)
}

func printDatadirSummary(w io.Writer, s *datadir.Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "exported     %d nodes, %s of data, from %s\n", s.Nodes, humanBytes(s.DataBytes), s.Source)
	fmt.Fprintf(&b, "file         %s (%s)\n", s.File, humanBytes(s.FileBytes))
	fmt.Fprintf(&b, "zxid         %#x: ZooKeeper's tree exactly as of this txn\n", s.Zxid)
	fmt.Fprintf(&b, "digest       %v (the nodes written; /zookeeper left out)\n", s.Digest)
	how := "exact"
	if !s.Check.Exact {
		how = fmt.Sprintf("the txns after %#x changed nothing in the tree", s.Check.Zxid)
	}
	fmt.Fprintf(&b, "verified     tree digest %v equals ZooKeeper's %s (%s); %d digest record(s) matched during the replay\n",
		s.TreeDigest, s.Check.Record, how, s.Check.Compared)
	fmt.Fprintf(&b, "source       %s, fuzzy until %#x, then %d txns from %d log(s) (%d ops already in the snapshot)\n",
		filepath.Base(s.Snapshot), s.FuzzyUntil, s.Txns, len(s.Logs), s.Reapplied)
	for _, sk := range s.Skipped {
		fmt.Fprintf(&b, "skipped      %s: %s\n", filepath.Base(sk.File), sk.Reason)
	}
	if s.Torn != nil {
		fmt.Fprintf(&b, "stopped      before a torn txn record at %s (still being written)\n", s.Torn)
	}
	if s.LastLogged > s.Zxid {
		fmt.Fprintf(&b, "logged       up to %#x (beyond --to-zxid)\n", s.LastLogged)
	}
	fmt.Fprintf(&b, "owners       %d ephemerals, %d containers, %d TTL nodes (raw ephemeralOwner, as ZooKeeper stores it)\n", s.Ephemerals, s.Containers, s.TTLNodes)
	fmt.Fprintf(&b, "sessions     %d\n", s.Sessions)
	fmt.Fprintf(&b, "duration     %v (%.0f nodes/s)\n", s.Duration.Round(time.Millisecond), s.NodesPerSecond())
	_, err := io.WriteString(w, b.String())
	return err
}
