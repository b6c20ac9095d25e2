package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/verify"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

type migrateOptions struct {
	clusterOptions
	zkAuth        zkAuthOptions
	zk            string
	path          string
	exclude       []string
	workers       int
	sessions      int
	rate          float64
	ephemerals    string
	extendedTypes bool

	dataDir  string
	nodeID   string
	raftAddr string
	logStore string
	compress bool
	journal  string

	keepSnapshot string
	dryRun       bool
	accept       []string
	verifyMode   string
	batchBytes   int
	inFlight     int
	json         bool
	timeout      time.Duration
}

func newMigrateCommand(g *globalOptions) *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --zk HOSTS (--data-dir DIR | --journal ADMIN_ADDR | --dry-run)",
		Short: "Export a live ensemble straight into a journal, verify it, and report",
		Long: `Walks the live ensemble (the parallel export walk) and streams every node straight into
the import: into a fresh journal data dir (--data-dir, installed as its initial Raft
snapshot; start it with the 'zk2raft serve' line printed at the end), or into a running
journal (--journal ADMIN_ADDR, through its leader). No intermediate file is written
unless --keep-snapshot FILE asks for one. Then it verifies and prints a summary: nodes,
bytes, the zxid range the walk saw, digests, durations per phase, and what was skipped
and why (--json for JSON).

Verification (--verify): digest (default) checks that the journal's digest equals the
digest of what the walk read (plus the pristine /zookeeper node, which exports leave
out and ZooKeeper's digest counts), that the installed snapshot reads back with that
digest, and, when no write landed during the walk and ZooKeeper logged a digest at
its last zxid, that ZooKeeper's own digest is the same. full also compares every node
field by field (verify), against the kept snapshot, or by walking ZooKeeper again.

Pre-flight: every migration checks the stream for what the journal cannot honour or
the operator must decide: container and TTL nodes (ZooKeeper shows them
ephemeralOwner 0 to clients), data near jute.maxbuffer, ACL schemes, unreadable
subtrees (NoAuth), ACLs ZooKeeper masked (digest:USER:x, shown to credentials
without ADMIN on the node), ephemerals and the sessions owning them, sequential
counters near 2^31, quotas and other tools' control znodes. --dry-run walks and
reports only, and exits 1 when something blocks; a real migration with a blocker
stops before anything is written to the target. --accept KIND lets a blocker through:
unreadable migrates without the NoAuth subtrees; acl-masked copies the masked ACLs
as they are, and as no one can authenticate as digest:USER:x, only super gets past
those entries. Kinds: ` + strings.Join(importer.AcceptableKinds(), ", ") + `.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.timeout)
				defer cancel()
			}
			return runMigrate(ctx, g, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.zk, "zk", "", "ZooKeeper hosts, host:port[,host:port...]")
	f.StringVar(&o.path, "path", "/", "subtree to migrate")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out subtrees matching this path glob (repeatable)")
	o.zkAuth.addFlags(cmd, "ZooKeeper credentials")
	f.IntVar(&o.workers, "workers", exporter.DefaultWorkers, "nodes read at once")
	f.IntVar(&o.sessions, "sessions", exporter.DefaultSessions, "ZooKeeper sessions the walk reads over")
	f.Float64Var(&o.rate, "rate", 0, "cap on requests per second to the ensemble (0: none)")
	f.StringVar(&o.ephemerals, "ephemerals", "include", "ephemeral nodes: include (with their owner's session id) or skip")
	f.BoolVar(&o.extendedTypes, "extended-types", true, "the ensemble runs with zookeeper.extendedTypesEnabled (TTL nodes possible)")
	f.StringVar(&o.dataDir, "data-dir", "", "the new journal's data dir (empty or missing)")
	f.StringVar(&o.nodeID, "node-id", defaultNodeID, "with --data-dir: the id of the node that will serve it")
	f.StringVar(&o.raftAddr, "raft-addr", defaultRaftAddr, "with --data-dir: that node's Raft address (as given to serve --raft-addr)")
	f.StringVar(&o.logStore, "log-store", string(raftjournal.LogStoreWAL), "with --data-dir: the Raft log store serve will use: wal or bolt")
	f.BoolVar(&o.compress, "compress", false, "with --data-dir: store the journal's snapshot zstd-compressed")
	f.StringVar(&o.journal, "journal", "", "migrate into the running journal at this admin address instead")
	f.StringVar(&o.keepSnapshot, "keep-snapshot", "", "also write the export to this snapshot file")
	f.BoolVar(&o.dryRun, "dry-run", false, "walk and report the pre-flight findings only")
	f.StringArrayVar(&o.accept, "accept", nil, "let a blocker of this kind through (repeatable): "+strings.Join(importer.AcceptableKinds(), ", "))
	f.StringVar(&o.verifyMode, "verify", "digest", "verification: digest, full or none")
	f.IntVar(&o.batchBytes, "batch-bytes", importer.DefaultBatchBytes, "target size of one import entry in bytes")
	f.IntVar(&o.inFlight, "in-flight", importer.DefaultInFlight, "with --journal: import entries submitted at once")
	f.BoolVar(&o.json, "json", false, "print the summary (or the dry-run report) as JSON")
	f.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: never)")
	o.clusterOptions.addFlags(cmd)
	return cmd
}

func (o *migrateOptions) validate() error {
	switch {
	case o.zk == "":
		return usageErrorf("--zk is required")
	case o.dataDir != "" && o.journal != "":
		return usageErrorf("--data-dir and --journal are exclusive")
	case !o.dryRun && o.dataDir == "" && o.journal == "":
		return usageErrorf("give --data-dir (a new journal) or --journal (a running one), or --dry-run")
	case o.verifyMode != "digest" && o.verifyMode != "full" && o.verifyMode != "none":
		return usageErrorf("--verify %q: want digest, full or none", o.verifyMode)
	case o.verifyMode == "full" && o.journal != "":
		return usageErrorf("--verify full compares the installed snapshot of a --data-dir migration; for --journal, run 'zk2raft verify'")
	}
	known := importer.AcceptableKinds()
	for _, k := range o.accept {
		if !slices.Contains(known, k) {
			return usageErrorf("--accept %q: want one of %s", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// migrateSummary is the report of a migration (--json prints it as is).
type migrateSummary struct {
	Source        string                    `json:"source"`
	Target        string                    `json:"target"`
	Nodes         int64                     `json:"nodes"`
	DataBytes     int64                     `json:"data_bytes"`
	EntryBytes    int64                     `json:"entry_bytes"`
	StartZxid     string                    `json:"start_zxid"`
	MaxZxid       string                    `json:"max_zxid"`
	ExportDigest  string                    `json:"export_digest"`
	JournalDigest string                    `json:"journal_digest"`
	JournalNodes  int64                     `json:"journal_nodes"`
	SystemAdded   []string                  `json:"system_nodes_added"`
	Verification  []verifyCheck             `json:"verification"`
	Verified      bool                      `json:"verified"`
	Phases        []phaseTime               `json:"phases"`
	Seconds       float64                   `json:"seconds"`
	Skipped       skippedReport             `json:"skipped"`
	Preflight     *importer.PreflightReport `json:"preflight"`
	KeptSnapshot  string                    `json:"kept_snapshot,omitempty"`
	Installed     *installedReport          `json:"installed,omitempty"`
	Serve         string                    `json:"serve,omitempty"`
	Full          *verify.Report            `json:"-"`
}

type verifyCheck struct {
	Check  string `json:"check"`
	Result string `json:"result"` // "equal", "different", "not comparable"
	Detail string `json:"detail"`
}

type phaseTime struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	Nodes   int64   `json:"nodes,omitempty"`
}

type skippedReport struct {
	System            string   `json:"system"`
	Excluded          int64    `json:"excluded_subtrees"`
	ExcludePatterns   []string `json:"exclude_patterns,omitempty"`
	EphemeralsSkipped int64    `json:"ephemerals_skipped"`
	Unreadable        int64    `json:"unreadable"` // NoAuth and masked-ACL nodes, as in the export summary
	UnreadableList    []string `json:"unreadable_list,omitempty"`
	ACLMasked         int64    `json:"acl_masked"` // of Unreadable: copied with their masked ACL
	ACLMaskedList     []string `json:"acl_masked_list,omitempty"`
	ChangedInWalk     int64    `json:"changed_during_walk"`
	DeletedInWalk     int64    `json:"deleted_during_walk"`
	OwnerNote         string   `json:"owner_note"`
}

type installedReport struct {
	Path     string `json:"path"`
	Index    uint64 `json:"index"`
	Term     uint64 `json:"term"`
	Bytes    int64  `json:"bytes"`
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
}

// teeSink writes every node to each sink in turn.
type teeSink []exporter.Sink

func (t teeSink) WriteNode(n *znode.Node) error {
	for _, s := range t {
		if err := s.WriteNode(n); err != nil {
			return err
		}
	}
	return nil
}

func (t teeSink) ObserveZxid(z int64) {
	for _, s := range t {
		s.ObserveZxid(z)
	}
}

func runMigrate(ctx context.Context, g *globalOptions, o *migrateOptions) error {
	start := time.Now()
	hosts, err := zkclient.ParseHosts(o.zk)
	if err != nil {
		return usageErrorf("--zk: %v", err)
	}
	auths, err := o.zkAuth.parsed()
	if err != nil {
		return err
	}
	eph, err := exporter.ParseEphemeralPolicy(o.ephemerals)
	if err != nil {
		return usageErrorf("--ephemerals: %v", err)
	}
	wcfg := exporter.DefaultConfig(hosts)
	wcfg.Root, wcfg.Exclude, wcfg.Auth, wcfg.Ephemerals = o.path, o.exclude, auths, eph
	wcfg.Workers, wcfg.Sessions, wcfg.RateLimit, wcfg.ExtendedTypes = o.workers, o.sessions, o.rate, o.extendedTypes
	// The walk fails on either reason unless told otherwise; the pre-flight
	// still blocks on the one not accepted.
	wcfg.AllowPartial = slices.Contains(o.accept, importer.KindUnreadable) || slices.Contains(o.accept, importer.KindACLMasked)
	wcfg.ToolVersion, wcfg.Logger = buildinfo.Read().Version, g.logger
	if err := wcfg.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	opts := importer.DefaultOptions()
	opts.BatchBytes, opts.InFlight, opts.Logger = o.batchBytes, o.inFlight, g.logger
	if err := opts.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	var ncfg raftjournal.NodeConfig
	sum := &migrateSummary{Source: exporter.Source(hosts, o.path)}
	phase := func(name string, since time.Time, nodes int64) time.Time {
		now := time.Now()
		sum.Phases = append(sum.Phases, phaseTime{Phase: name, Seconds: now.Sub(since).Seconds(), Nodes: nodes})
		g.logger.Info("phase done", "phase", name, "took", now.Sub(since).Round(time.Millisecond), "nodes", nodes)
		return now
	}

	// Pre-flight of the target: fail before the walk, not after it.
	var journal *importer.RemoteJournal
	switch {
	case o.dataDir != "":
		ncfg = offlineNodeConfig(o.dataDir, o.nodeID, o.raftAddr, o.compress, g)
		ncfg.LogStore = raftjournal.LogStoreKind(o.logStore)
		if err := ncfg.Validate(); err != nil {
			return usageErrorf("%v", err)
		}
		if err := raftjournal.CheckFreshDataDir(o.dataDir); err != nil {
			return err
		}
		sum.Target = o.dataDir
	case o.journal != "":
		admin, err := o.admin(o.journal)
		if err != nil {
			return err
		}
		if journal, err = importer.DialJournal(ctx, admin, g.logger); err != nil {
			return o.explain(err)
		}
		defer journal.Close()
		st, err := journal.State(ctx, 0)
		if err != nil {
			return err
		}
		if st.Phase != raftjournal.PhaseShadow.String() {
			return fmt.Errorf("importer: the journal at %s is in phase %s; imports need the shadow phase", o.journal, st.Phase)
		}
		sum.Target = "journal " + o.journal
	}

	pre := importer.NewPreflight(importer.PreflightConfig{ExtendedTypes: o.extendedTypes, Accept: o.accept})
	if o.path == "/" {
		if quotas, err := listQuotas(ctx, hosts, auths, g); err != nil {
			g.logger.Warn("cannot list quotas under /zookeeper/quota", "error", err)
		} else {
			pre.AddQuotas(quotas)
		}
	}

	w, err := exporter.NewWalker(wcfg)
	if err != nil {
		return err
	}
	defer w.Close()
	t := time.Now()
	if err := w.Start(ctx); err != nil {
		return err
	}
	t = phase("connect", t, 0)

	sinks := teeSink{pre}
	var builder *importer.Builder
	var online *importer.Online
	var keep *znode.SnapshotFile
	if !o.dryRun {
		if o.keepSnapshot != "" {
			if keep, err = znode.CreateSnapshotFile(o.keepSnapshot, w.Header(), znode.SnapshotWriterOptions{}); err != nil {
				return err
			}
			defer keep.Abort()
			sinks = append(sinks, keep)
		}
		if o.dataDir != "" {
			opts.CompressSnapshots = o.compress
			if builder, err = importer.NewBuilder(ctx, opts); err != nil {
				return err
			}
			defer builder.Abort()
			sinks = append(sinks, builder)
		} else {
			st, err := journal.State(ctx, 0)
			if err != nil {
				return err
			}
			base := importer.CheckpointValue{Source: sum.Source, BaseFresh: st.Nodes == int64(len(importer.SystemPaths)) && st.Digest == znode.EmptyTreeDigest}
			key := fmt.Sprintf("import/migrate/%s/%d", sum.Source, w.StartZxid())
			if online, err = importer.NewOnline(ctx, journal, key, base, opts); err != nil {
				return err
			}
			defer online.Abort()
			sinks = append(sinks, online)
		}
	}

	desc := "export+import"
	if o.dryRun {
		desc = "pre-flight walk"
	}
	bar := newPhaseBar(g, desc, -1)
	stopBar := make(chan struct{})
	var barDone sync.WaitGroup
	barDone.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopBar:
				return
			case <-tick.C:
				bar.set(w.Progress().Nodes)
			}
		}
	})
	walkSum, werr := w.Walk(ctx, sinks)
	close(stopBar)
	barDone.Wait()
	bar.done()
	var unreadable *exporter.UnreadableError
	switch {
	case werr == nil:
	case errors.As(werr, &unreadable) && walkSum != nil:
	default:
		return werr
	}
	pre.AddUnreadable(walkSum.Unreadable-walkSum.ACLMasked, noAuthPaths(walkSum.UnreadableList, walkSum.ACLMaskedList))
	pre.AddACLMasked(walkSum.ACLMasked, walkSum.ACLMaskedList)
	report := pre.Report()
	report.Source = sum.Source
	t = phase(desc, t, walkSum.Nodes)
	fillWalk(sum, walkSum, wcfg)
	sum.Preflight = report

	if o.dryRun {
		if o.json {
			if err := report.WriteJSON(g.stdout); err != nil {
				return err
			}
		} else if err := report.WriteText(g.stdout); err != nil {
			return err
		}
		if !report.OK() {
			return fmt.Errorf("pre-flight: %d blocker(s) in %s", report.Blockers, sum.Source)
		}
		return nil
	}
	if !report.OK() {
		if !o.json {
			_ = report.WriteText(g.stdout)
		} else {
			_ = report.WriteJSON(g.stdout)
		}
		return fmt.Errorf("migration refused: %d pre-flight blocker(s); nothing was written to %s", report.Blockers, sum.Target)
	}
	if werr != nil {
		return werr
	}

	// Finish the import and install.
	if keep != nil {
		tr, err := keep.Commit()
		if err != nil {
			return err
		}
		if tr.Digest != walkSum.Digest || int64(tr.NodeCount) != walkSum.Nodes {
			return fmt.Errorf("%w: kept snapshot %s holds %d nodes with digest %v, the walk read %d with %v", importer.ErrMismatch, o.keepSnapshot, tr.NodeCount, tr.Digest, walkSum.Nodes, walkSum.Digest)
		}
		sum.KeptSnapshot = o.keepSnapshot
		sum.Verification = append(sum.Verification, verifyCheck{"kept snapshot trailer = export", "equal",
			fmt.Sprintf("%s: %d nodes, digest %v", o.keepSnapshot, tr.NodeCount, tr.Digest)})
	}
	var built *importer.Built
	nodeMax := walkSum.MaxZxid // the newest node zxid, when the import knows it
	if builder != nil {
		cp := importer.CheckpointValue{Source: sum.Source, Nodes: walkSum.Nodes, Total: walkSum.Nodes, Digest: walkSum.Digest.String(), Done: true, BaseFresh: true}
		built, err = builder.Finish(&raftjournal.Checkpoint{Key: fmt.Sprintf("import/migrate/%s/%d", sum.Source, walkSum.StartZxid), Value: cp.Encode()})
		if err != nil {
			return err
		}
		if built.Expected.StreamDigest != walkSum.Digest || built.Expected.StreamNodes != walkSum.Nodes {
			return fmt.Errorf("%w: the import received %d nodes with digest %v, the walk wrote %d with %v", importer.ErrMismatch,
				built.Expected.StreamNodes, built.Expected.StreamDigest, walkSum.Nodes, walkSum.Digest)
		}
		sum.EntryBytes, nodeMax = built.Bytes, built.MaxZxid
		sum.JournalDigest, sum.JournalNodes, sum.SystemAdded = built.Digest.String(), built.Nodes, built.Expected.Added
		sum.Verification = append(sum.Verification, verifyCheck{"journal = export", "equal", built.Expected.Explain()})
		info, err := built.Install(ncfg)
		if err != nil {
			return err
		}
		sum.Installed = &installedReport{Path: info.Path, Index: info.Index, Term: info.Term, Bytes: info.Bytes, NodeID: info.NodeID, RaftAddr: info.RaftAddr}
		sum.Serve = serveCommand(o.dataDir, o.nodeID, o.raftAddr, o.logStore)
		sum.Verification = append(sum.Verification, verifyCheck{"installed snapshot = journal", "equal",
			fmt.Sprintf("%s read back in full: %d nodes, digest %v", info.Path, info.Trailer.NodeCount, info.Trailer.Digest)})
		t = phase("install", t, built.Nodes)
	} else {
		res, err := online.Finish(walkSum.Nodes, walkSum.Digest)
		if res != nil {
			sum.EntryBytes, nodeMax = res.Bytes, res.MaxZxid
			sum.JournalDigest, sum.JournalNodes, sum.SystemAdded = res.Journal.Digest.String(), res.Journal.Nodes, res.Expected.Added
		}
		if err != nil {
			return err
		}
		if res.Checked {
			sum.Verification = append(sum.Verification, verifyCheck{"journal = export", "equal", res.Expected.Explain()})
		} else {
			sum.Verification = append(sum.Verification, verifyCheck{"journal = export", "not comparable",
				"the journal held other nodes before the import, so its digest is not the export's"})
		}
		t = phase("import-finish", t, res.Sent)
	}

	// Verify.
	sum.Verified = true
	if o.verifyMode != "none" {
		sum.Verification = append(sum.Verification, zookeeperDigestCheck(ctx, hosts, walkSum, wcfg, nodeMax, sum.JournalDigest))
	}
	if o.verifyMode == "full" {
		rep, err := fullVerify(ctx, g, hosts, auths, wcfg, o.keepSnapshot, built, sum.Installed.Path)
		if err != nil {
			return err
		}
		sum.Full = rep
		res := "equal"
		if !rep.Equal() {
			res, sum.Verified = "different", false
		}
		sum.Verification = append(sum.Verification, verifyCheck{"node by node (verify)", res,
			fmt.Sprintf("%s vs %s: %d paths compared, %d differences", rep.Source.URI, rep.Target.URI, rep.Compared, rep.Counts.Differences)})
	}
	if o.verifyMode != "none" {
		t = phase("verify", t, 0)
	}
	_ = t
	sum.Seconds = time.Since(start).Seconds()

	if o.json {
		if err := writeJSON(g, sum); err != nil {
			return err
		}
	} else {
		if report.Warnings > 0 && !g.quiet {
			if err := report.WriteText(g.stdout); err != nil {
				return err
			}
		}
		if err := printMigrate(g.stdout, sum); err != nil {
			return err
		}
	}
	if !sum.Verified {
		return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("verification found differences between %s and the journal", sum.Source)}
	}
	return nil
}

func fillWalk(sum *migrateSummary, ws *exporter.Summary, cfg exporter.Config) {
	sum.Nodes, sum.DataBytes = ws.Nodes, ws.DataBytes
	sum.StartZxid, sum.MaxZxid = fmt.Sprintf("%#x", ws.StartZxid), fmt.Sprintf("%#x", ws.MaxZxid)
	sum.ExportDigest = ws.Digest.String()
	sum.Skipped = skippedReport{
		System:   "/zookeeper (ZooKeeper's own subtree; the journal has its own)",
		Excluded: ws.Excluded, ExcludePatterns: cfg.Exclude,
		EphemeralsSkipped: ws.EphemeralsSkipped, Unreadable: ws.Unreadable, UnreadableList: ws.UnreadableList,
		ACLMasked: ws.ACLMasked, ACLMaskedList: ws.ACLMaskedList,
		ChangedInWalk: ws.Changed, DeletedInWalk: ws.Deleted, OwnerNote: exporter.OwnerNote,
	}
	if cfg.Root != "/" {
		sum.Skipped.System = "everything outside " + cfg.Root
	}
	if ws.Excluded > 0 && cfg.Root == "/" {
		sum.Skipped.Excluded-- // /zookeeper is counted among the excluded subtrees
	}
}

// zookeeperDigestCheck compares the journal's digest with ZooKeeper's own
// (the hash four-letter word, logged at zxids that are multiples of 128).
// That is possible when the walk saw no change and ZooKeeper logged a digest
// at a zxid Z with nodeMax <= Z <= the walk's start zxid, where nodeMax is the
// newest zxid in any node's stat: every change to the tree (create, delete,
// setData) leaves its zxid in some node's stat, so the tree at Z is the tree
// the walk read. (setACL leaves none, but ACLs are not part of the digest;
// session txns take zxids without touching the tree.)
func zookeeperDigestCheck(ctx context.Context, hosts []string, ws *exporter.Summary, cfg exporter.Config, nodeMax int64, journal string) verifyCheck {
	c := verifyCheck{Check: "journal = ZooKeeper's own digest (hash)", Result: "not comparable"}
	// Nodes copied with a masked ACL do not stop it: the digest leaves ACLs out.
	switch {
	case cfg.Root != "/" || len(cfg.Exclude) > 0 || cfg.Ephemerals != exporter.EphemeralsInclude || ws.Unreadable > ws.ACLMasked:
		c.Detail = "the migration did not copy the whole tree"
		return c
	case ws.Changed > 0 || ws.Deleted > 0:
		c.Detail = fmt.Sprintf("writes landed during the walk (zxid %#x..%#x); the journal holds a fuzzy copy that the mirror stream completes", ws.StartZxid, ws.MaxZxid)
		return c
	}
	out, err := zkclient.FourLetterWord(ctx, hosts[0], "hash")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	entries, err := zkclient.ParseDigestLog(out)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Zxid < nodeMax || e.Zxid > ws.StartZxid {
			continue
		}
		c.Detail = fmt.Sprintf("ZooKeeper's digest at zxid %#x is %v, the journal's %s", e.Zxid, e.Digest, journal)
		if e.Digest.String() == journal {
			c.Result = "equal"
		} else {
			c.Result = "different"
			c.Detail += " (expected when the tree holds container or TTL nodes, which the client API shows as persistent; otherwise a real difference: run with --verify full)"
		}
		return c
	}
	c.Detail = fmt.Sprintf("ZooKeeper logs its digest only at zxids that are multiples of 128, and none lies between the tree's last change (zxid %#x) and the walk's start (%#x)", nodeMax, ws.StartZxid)
	return c
}

// fullVerify compares the source (the kept snapshot, or the live ensemble)
// with the journal node by node. The journal side is the built state, which
// the installed snapshot was just read back against; it is streamed in the
// canonical order verify needs (FSM snapshots are in plain byte order).
func fullVerify(ctx context.Context, g *globalOptions, hosts []string, auths []zkclient.Auth, cfg exporter.Config, kept string, built *importer.Built, installed string) (*verify.Report, error) {
	var src verify.Source
	var err error
	if kept != "" {
		src, err = verify.OpenSnapshot(kept)
	} else {
		uri := "zk://" + strings.Join(hosts, ",")
		if cfg.Root != "/" {
			uri += cfg.Root
		}
		src, err = verify.Open(ctx, uri, verify.OpenOptions{Auth: auths, Logger: g.logger})
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var nodes []*znode.Node
	if err := built.FSM.Walk(func(n *znode.Node) error {
		nodes = append(nodes, n)
		return nil
	}); err != nil {
		return nil, err
	}
	tgt := verify.MemorySource(verify.Info{
		URI: "journal snapshot " + installed, Scheme: "journal", Description: "the migrated journal",
		RawOwners: true, ExtendedTypes: true, Root: "/", Exclude: []string{"/zookeeper"},
	}, nodes, nil)
	defer tgt.Close()
	vc := verify.DefaultConfig()
	vc.Path, vc.Exclude, vc.Logger = cfg.Root, cfg.Exclude, g.logger
	return verify.Compare(ctx, src, tgt, vc)
}

// listQuotas returns the paths that have a quota under /zookeeper/quota.
func listQuotas(ctx context.Context, hosts []string, auths []zkclient.Auth, g *globalOptions) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := exporter.Connect(cctx, hosts, exporter.ConnectOptions{Auth: auths, Logger: g.logger})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []string
	err = exporter.SequentialWalk(cctx, conn, "/zookeeper/quota", exporter.WalkOptions{}, func(n *znode.Node) error {
		if strings.HasSuffix(n.Path, "/zookeeper_limits") {
			out = append(out, strings.TrimPrefix(strings.TrimSuffix(n.Path, "/zookeeper_limits"), "/zookeeper/quota"))
		}
		return nil
	})
	if errors.Is(err, zk.ErrNoNode) {
		err = nil
	}
	return out, err
}

func printMigrate(w io.Writer, s *migrateSummary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "migrated %s into %s in %.2fs\n", s.Source, s.Target, s.Seconds)
	fmt.Fprintf(&b, "  nodes        %d (%d bytes of data, %d bytes of import entries), zxid %s..%s\n", s.Nodes, s.DataBytes, s.EntryBytes, s.StartZxid, s.MaxZxid)
	fmt.Fprintf(&b, "  digest       export %s, journal %s over %d nodes\n", s.ExportDigest, s.JournalDigest, s.JournalNodes)
	for _, c := range s.Verification {
		fmt.Fprintf(&b, "  check        %s: %s — %s\n", c.Check, c.Result, c.Detail)
	}
	var phases []string
	for _, p := range s.Phases {
		ps := fmt.Sprintf("%s %.2fs", p.Phase, p.Seconds)
		if p.Nodes > 0 && p.Seconds > 0 {
			ps += fmt.Sprintf(" (%.0f nodes/s)", float64(p.Nodes)/p.Seconds)
		}
		phases = append(phases, ps)
	}
	fmt.Fprintf(&b, "  phases       %s\n", strings.Join(phases, ", "))
	sk := s.Skipped
	fmt.Fprintf(&b, "  skipped      %s; %d excluded subtree(s)%s; %d ephemeral(s) skipped; %d unreadable (NoAuth) subtree(s)%s\n",
		sk.System, sk.Excluded, listSuffix(sk.ExcludePatterns), sk.EphemeralsSkipped,
		sk.Unreadable-sk.ACLMasked, listSuffix(noAuthPaths(sk.UnreadableList, sk.ACLMaskedList)))
	if sk.ACLMasked > 0 {
		fmt.Fprintf(&b, "  acl masked   %d node(s) copied with a masked ACL (digest:USER:x) that no one can authenticate as%s\n",
			sk.ACLMasked, listSuffix(sk.ACLMaskedList))
	}
	fmt.Fprintf(&b, "  during walk  %d node(s) changed, %d deleted (a live walk is fuzzy: each node as it was at some zxid in the range above)\n", sk.ChangedInWalk, sk.DeletedInWalk)
	fmt.Fprintf(&b, "  note         %s\n", sk.OwnerNote)
	if p := s.Preflight; p != nil {
		fmt.Fprintf(&b, "  pre-flight   %d blocker(s), %d warning(s)", p.Blockers, p.Warnings)
		var kinds []string
		for _, f := range p.Findings {
			if f.Severity != importer.Info {
				kinds = append(kinds, f.Kind)
			}
		}
		if len(kinds) > 0 {
			fmt.Fprintf(&b, ": %s (details above)", strings.Join(kinds, ", "))
		}
		b.WriteString("\n")
	}
	if s.KeptSnapshot != "" {
		fmt.Fprintf(&b, "  snapshot     kept at %s\n", s.KeptSnapshot)
	}
	if in := s.Installed; in != nil {
		fmt.Fprintf(&b, "  installed    %s (index %d, term %d, %d bytes), voter %s at %s\n", in.Path, in.Index, in.Term, in.Bytes, in.NodeID, in.RaftAddr)
		fmt.Fprintf(&b, "  start it     %s\n", s.Serve)
	}
	verdict := "verified"
	if !s.Verified {
		verdict = "NOT verified: differences found"
	}
	fmt.Fprintf(&b, "  result       %s\n", verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

func listSuffix(l []string) string {
	if len(l) == 0 {
		return ""
	}
	if len(l) > 3 {
		return fmt.Sprintf(" (%s, ...)", strings.Join(l[:3], ", "))
	}
	return " (" + strings.Join(l, ", ") + ")"
}
