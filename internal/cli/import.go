package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/znode"
)

// Defaults of the identity an offline import gives the journal's first node;
// `zk2raft serve` must be started with the same ones.
const (
	defaultNodeID   = "node-1"
	defaultRaftAddr = "127.0.0.1:7000"
)

type importOptions struct {
	clusterOptions
	snapshot   string
	dataDir    string
	nodeID     string
	raftAddr   string
	logStore   string
	journal    string
	batchBytes int
	inFlight   int
	compress   bool
	json       bool
}

func newImportCommand(g *globalOptions) *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import --snapshot FILE (--data-dir DIR | --journal ADMIN_ADDR)",
		Short: "Replay an export snapshot into a fresh journal data dir, or into a running journal",
		Long: `Offline (--data-dir): builds the journal's state from the snapshot and installs it as
the data dir's initial Raft snapshot, with a configuration of one voter (--node-id at
--raft-addr). Start that node with 'zk2raft serve --data-dir DIR --node-id ID --raft-addr
ADDR' (no --bootstrap needed); nodes that --join it catch up by snapshot install. The
data dir must be empty or missing: a directory that holds a journal or anything else
is refused, never wiped. The whole file is verified (every record's CRC, the trailer's
node count and digest) before anything is written, and the installed snapshot is read
back; the journal's digest is printed next to the snapshot's.

Online (--journal): sends the nodes through the leader of a running cluster in
batches sized by bytes (--batch-bytes), many in flight (--in-flight). Each batch
carries a checkpoint stored in the journal, so a rerun after a crash continues where
the applied prefix ends, and a rerun of a finished import sends nothing. The journal
must be in the shadow phase.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runImport(ctx, g, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.snapshot, "snapshot", "", "the export snapshot to import")
	f.StringVar(&o.dataDir, "data-dir", "", "offline: the new journal's data dir (empty or missing)")
	f.StringVar(&o.nodeID, "node-id", defaultNodeID, "offline: the id of the node that will serve the data dir")
	f.StringVar(&o.raftAddr, "raft-addr", defaultRaftAddr, "offline: that node's Raft address (as given to serve --raft-addr)")
	f.StringVar(&o.logStore, "log-store", string(raftjournal.LogStoreWAL), "offline: the Raft log store serve will use: wal or bolt")
	f.StringVar(&o.journal, "journal", "", "online: the admin address of a running journal node")
	f.IntVar(&o.batchBytes, "batch-bytes", importer.DefaultBatchBytes, "target size of one import entry in bytes")
	f.IntVar(&o.inFlight, "in-flight", importer.DefaultInFlight, "online: import entries submitted at once")
	f.BoolVar(&o.compress, "compress", false, "offline: store the journal's snapshot zstd-compressed")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	o.clusterOptions.addFlags(cmd)
	return cmd
}

func (o *importOptions) validate(cmd *cobra.Command) error {
	switch {
	case o.snapshot == "":
		return usageErrorf("--snapshot is required")
	case (o.dataDir == "") == (o.journal == ""):
		return usageErrorf("give exactly one of --data-dir (offline) and --journal (online)")
	case o.journal != "" && (cmd.Flags().Changed("node-id") || cmd.Flags().Changed("raft-addr") || cmd.Flags().Changed("log-store") || o.compress):
		return usageErrorf("--node-id, --raft-addr, --log-store and --compress apply to an offline import (--data-dir)")
	case o.dataDir != "" && (o.secretFile != "" || o.tls != (raftjournal.TLSFiles{})):
		return usageErrorf("--cluster-secret-file and --cluster-tls-* apply to an online import (--journal); give them to serve")
	}
	return firstErr(intFlagIn("--in-flight", o.inFlight, 1, importer.MaxInFlight),
		intFlagIn("--batch-bytes", o.batchBytes, 1, importer.MaxBatchBytes))
}

func runImport(ctx context.Context, g *globalOptions, o *importOptions) error {
	opts := importer.DefaultOptions()
	opts.BatchBytes, opts.InFlight, opts.Logger = o.batchBytes, o.inFlight, g.logger
	if err := opts.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	var total int64
	if _, tr, err := znode.ReadSnapshotTrailer(o.snapshot); err == nil {
		total = int64(tr.NodeCount)
	}
	bar := newPhaseBar(g, "import", total)
	opts.Progress = func(p importer.Progress) { bar.set(p.Nodes + p.Skipped) }

	var res *importer.Result
	var err error
	if o.dataDir != "" {
		cfg := offlineNodeConfig(o.dataDir, o.nodeID, o.raftAddr, o.compress, g)
		cfg.LogStore = raftjournal.LogStoreKind(o.logStore)
		if verr := cfg.Validate(); verr != nil {
			bar.done()
			return usageErrorf("%v", verr)
		}
		g.logger.Info("offline import", "snapshot", o.snapshot, "data-dir", o.dataDir, "node-id", o.nodeID, "raft-addr", o.raftAddr)
		res, err = importer.ImportFile(ctx, o.snapshot, cfg, opts)
	} else {
		var j *importer.RemoteJournal
		var admin *raftjournal.AdminClient
		if admin, err = o.admin(o.journal); err != nil {
			bar.done()
			return err
		}
		j, err = importer.DialJournal(ctx, admin, g.logger)
		err = o.explain(err)
		if err == nil {
			defer j.Close()
			g.logger.Info("online import", "snapshot", o.snapshot, "journal", o.journal)
			res, err = importer.ImportFileOnline(ctx, o.snapshot, j, opts)
		}
	}
	bar.done()
	if err != nil {
		return err
	}
	if res.CheckpointUnsupported {
		g.logger.Warn("the journal cannot report import checkpoints: this run could not resume and sent every node (safe: applying a node again changes nothing)")
	}
	if o.json {
		return writeJSON(g, importJSON(res, o))
	}
	return printImport(g, res, o)
}

// offlineNodeConfig is the configuration of the node that will serve an
// offline-imported data dir.
func offlineNodeConfig(dataDir, nodeID, raftAddr string, compress bool, g *globalOptions) raftjournal.NodeConfig {
	cfg := raftjournal.DefaultNodeConfig()
	cfg.DataDir, cfg.NodeID, cfg.RaftAddr = dataDir, nodeID, raftAddr
	cfg.CompressSnapshots = compress
	cfg.Logger = g.logger
	return cfg
}

// serveCommand is the command line that starts the node an offline import
// prepared: the identity the import put in the data dir's Raft configuration
// and the log store it created (serve refuses any other).
func serveCommand(dataDir, nodeID, raftAddr, logStore string) string {
	s := fmt.Sprintf("zk2raft serve --data-dir %s --node-id %s --raft-addr %s", dataDir, nodeID, raftAddr)
	if logStore != "" && logStore != string(raftjournal.LogStoreWAL) {
		s += " --log-store " + logStore
	}
	return s + " --cluster-secret-file FILE"
}

func printImport(g *globalOptions, res *importer.Result, o *importOptions) error {
	w := g.stdout
	tr := res.Trailer
	rate := 0.0
	if s := res.Duration.Seconds(); s > 0 {
		rate = float64(tr.NodeCount) / s
	}
	switch {
	case res.AlreadyDone:
		fmt.Fprintf(w, "already imported: the journal's checkpoint says every one of the %d nodes of %s was applied; nothing sent\n", tr.NodeCount, res.File)
		fmt.Fprintf(w, "  journal: %d nodes, digest %v\n", res.JournalNodes, res.JournalDigest)
		return nil
	case res.Online:
		fmt.Fprintf(w, "imported %d nodes from %s into the journal at %s in %s (%.0f nodes/s)\n", tr.NodeCount, res.File, o.journal, res.Duration.Round(time.Millisecond), rate)
		if res.Skipped > 0 {
			fmt.Fprintf(w, "  resumed: %d nodes already applied by an earlier run were not sent again; %d sent\n", res.Skipped, res.Sent)
		}
		fmt.Fprintf(w, "  %d entries, %d bytes, %d retries, last at log index %d\n", res.Entries, res.Bytes, res.Retries, res.LastIndex)
	default:
		fmt.Fprintf(w, "imported %d nodes from %s in %s (%.0f nodes/s)\n", tr.NodeCount, res.File, res.Duration.Round(time.Millisecond), rate)
	}
	h := res.Header
	fmt.Fprintf(w, "  snapshot: %s, zxid %#x..%#x, trailer verified: %d nodes, digest %v\n", h.Source, h.StartZxid, tr.MaxZxid, tr.NodeCount, tr.Digest)
	switch {
	case !res.Online || res.Checked:
		fmt.Fprintf(w, "  %s: equal\n", res.Expected.Explain())
	default:
		fmt.Fprintf(w, "  journal digest %v over %d nodes (the journal held other nodes before, so it is not compared with the snapshot's)\n", res.JournalDigest, res.JournalNodes)
	}
	if in := res.Installed; in != nil {
		fmt.Fprintf(w, "  installed %s (index %d, term %d, %d bytes), voter %s at %s\n", in.Path, in.Index, in.Term, in.Bytes, in.NodeID, in.RaftAddr)
		fmt.Fprintf(w, "  start it with: %s\n", serveCommand(o.dataDir, o.nodeID, o.raftAddr, o.logStore))
	}
	return nil
}

func importJSON(res *importer.Result, o *importOptions) map[string]any {
	out := map[string]any{
		"file": res.File, "source": res.Header.Source, "nodes": res.Trailer.NodeCount,
		"start_zxid": fmt.Sprintf("%#x", res.Header.StartZxid), "max_zxid": fmt.Sprintf("%#x", res.Trailer.MaxZxid),
		"snapshot_digest": res.Trailer.Digest.String(), "journal_digest": res.JournalDigest.String(),
		"journal_nodes": res.JournalNodes, "entries": res.Entries, "bytes": res.Bytes,
		"duration_seconds": res.Duration.Seconds(), "online": res.Online,
	}
	if !res.Online || res.Checked {
		out["expected_digest"] = res.Expected.Digest.String()
		out["system_nodes_added"] = res.Expected.Added
		out["digest_equal"] = res.JournalDigest == res.Expected.Digest
	}
	if res.Online {
		out["journal"] = o.journal
		out["sent"], out["skipped"], out["retries"], out["last_index"] = res.Sent, res.Skipped, res.Retries, res.LastIndex
		out["already_done"], out["checkpoint_unsupported"] = res.AlreadyDone, res.CheckpointUnsupported
	}
	if in := res.Installed; in != nil {
		out["installed"] = map[string]any{"path": in.Path, "index": in.Index, "term": in.Term, "bytes": in.Bytes, "node_id": in.NodeID, "raft_addr": in.RaftAddr}
		out["serve"] = serveCommand(o.dataDir, o.nodeID, o.raftAddr, o.logStore)
	}
	return out
}

func writeJSON(g *globalOptions, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// phaseBar is a progress bar on stderr, drawn only when stderr is a terminal
// (and neither --quiet nor --no-progress); otherwise every method does nothing.
type phaseBar struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// newPhaseBar starts a bar; total −1 or 0 means unknown (a counter).
func newPhaseBar(g *globalOptions, desc string, total int64) *phaseBar {
	if !g.showProgress() {
		return &phaseBar{}
	}
	if total <= 0 {
		total = -1
	}
	return &phaseBar{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("nodes"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *phaseBar) set(n int64) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Set64(n)
}

func (p *phaseBar) done() {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
