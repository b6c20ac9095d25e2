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

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/exporter/datadir"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
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
	datadir       datadirExportOptions

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
		Use:   "migrate (--zk HOSTS | --from-datadir DIR) (--data-dir DIR | --journal ADMIN_ADDR | --dry-run)",
		Short: "Export a live ensemble straight into a journal, verify it, and report",
		Long: `Walks the live ensemble (the parallel export walk) and streams every node straight into
the import: into a fresh journal data dir (--data-dir, installed as its initial Raft
snapshot; start it with the 'zk2raft serve' line printed at the end), or into a running
journal (--journal ADMIN_ADDR, through its leader). No intermediate file is written
unless --keep-snapshot FILE asks for one. Then it verifies and prints a summary: nodes,
bytes, the zxid range the walk saw, digests, durations per phase, and what was skipped
and why (--json for JSON).

With --from-datadir DIR (and --datalog-dir when ZooKeeper's dataLogDir differs) the
tree comes from a ZooKeeper server's own files instead of a walk, read-only, while
it runs or not, exactly as 'export --from-datadir' reads them: ZooKeeper's tree at one
zxid (the last complete txn, or --to-zxid), proven by the digest ZooKeeper logged
there, with the raw ephemeralOwner of containers, TTL nodes and ephemerals. The
journal's digest is then checked against ZooKeeper's own at that zxid, and --verify
full compares node by node with the data directory at that zxid. --auth is then only
used to read the journal's tree back when it held nodes before the run.

Verification (--verify): digest (default) checks that the journal's digest equals the
digest of what the walk read (plus the pristine /zookeeper node, which exports leave
out and ZooKeeper's digest counts), that the installed snapshot reads back with that
digest, and, when no write landed during the walk and ZooKeeper logged a digest at
its last zxid, that ZooKeeper's own digest is the same. full also compares every node
field by field (verify), against the kept snapshot, or by walking ZooKeeper again.
The result is "verified" only when a check compared the journal's final state and
found it equal and none found a difference; "DIFFERENT" when one found a difference
(exit 3); "UNVERIFIED", with the reasons, when no check could compare (exit 1, or 0
with --verify none).

A journal that already held nodes (a rerun after an interrupted migration, or one
the mirror has been filling) is brought to the walk's tree: the walk's nodes are
merged in, and the journal's nodes in scope that the walk did not read are deleted
when ZooKeeper no longer has them (a node ZooKeeper still has is kept); then the
journal's scope is compared with the walk's.

Ctrl-C (or --timeout) stops the migration with exit 1 and a line saying what it
left: nothing, part of an online import (run it again to finish), or a complete
install that nothing verified.

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
those entries; ip-acl goes ahead although nodes carry ip: ACL entries, which the
dual-write proxy cannot honour (ZooKeeper sees the proxy's address, not the
client's: those clients must connect to ZooKeeper directly during the shadow phase,
or the entries be replaced by digest, x509 or sasl identities). Kinds: ` + strings.Join(importer.AcceptableKinds(), ", ") + `.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd); err != nil {
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
	f.StringVar(&o.zk, "zk", "", "ZooKeeper hosts, host:port[,host:port...] (or --from-datadir)")
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
	o.datadir.addFlags(cmd, "migrate")
	return cmd
}

// liveOnlyMigrateFlags mean something only for a live walk.
var liveOnlyMigrateFlags = []string{"path", "exclude", "workers", "sessions", "rate", "ephemerals"}

func (o *migrateOptions) validate(cmd *cobra.Command) error {
	if o.datadir.dir != "" {
		if o.zk != "" {
			return usageErrorf("--zk and --from-datadir are exclusive: one source")
		}
		for _, name := range liveOnlyMigrateFlags {
			if cmd.Flags().Changed(name) {
				return usageErrorf("--%s is for migrations from a live ensemble, not --from-datadir", name)
			}
		}
		if o.datadir.toZxid != "" {
			if _, err := parseZxid(o.datadir.toZxid); err != nil {
				return usageErrorf("--to-zxid: %v", err)
			}
		}
	} else if o.datadir.logDir != "" || o.datadir.toZxid != "" {
		return usageErrorf("--datalog-dir and --to-zxid need --from-datadir")
	}
	switch {
	case o.zk == "" && o.datadir.dir == "":
		return usageErrorf("--zk (or --from-datadir) is required")
	case o.dataDir != "" && o.journal != "":
		return usageErrorf("--data-dir and --journal are exclusive")
	case !o.dryRun && o.dataDir == "" && o.journal == "":
		return usageErrorf("give --data-dir (a new journal) or --journal (a running one), or --dry-run")
	case o.verifyMode != "digest" && o.verifyMode != "full" && o.verifyMode != "none":
		return usageErrorf("--verify %q: want digest, full or none", o.verifyMode)
	case o.verifyMode == "full" && o.journal != "":
		return usageErrorf("--verify full compares the installed snapshot of a --data-dir migration; for --journal, run 'zk2raft verify'")
	}
	if err := firstErr(intFlagIn("--workers", o.workers, 1, exporter.MaxWorkers),
		intFlagIn("--sessions", o.sessions, 1, exporter.MaxSessions),
		rateFlag("--rate", o.rate),
		intFlagIn("--in-flight", o.inFlight, 1, importer.MaxInFlight),
		intFlagIn("--batch-bytes", o.batchBytes, 1, importer.MaxBatchBytes)); err != nil {
		return err
	}
	if o.keepSnapshot != "" {
		if err := outFlag("--keep-snapshot", o.keepSnapshot); err != nil {
			return err
		}
	}
	known := importer.AcceptableKinds()
	for _, k := range o.accept {
		if !slices.Contains(known, k) {
			return usageErrorf("--accept %q: want one of %s", k, strings.Join(known, ", "))
		}
	}
	return nil
}

func runMigrate(ctx context.Context, g *globalOptions, o *migrateOptions) error {
	var hosts []string
	var err error
	if o.zk != "" {
		if hosts, err = zkclient.ParseHosts(o.zk); err != nil {
			return usageErrorf("--zk: %v", err)
		}
	}
	auths, err := o.zkAuth.parsed()
	if err != nil {
		return err
	}
	eph, err := exporter.ParseEphemeralPolicy(o.ephemerals)
	if err != nil {
		return usageErrorf("--ephemerals: %v", err)
	}
	mode, err := importer.ParseVerifyMode(o.verifyMode)
	if err != nil {
		return usageErrorf("--verify: %v", err)
	}
	mo := importer.MigrateOptions{
		Walk:         exporter.DefaultConfig(hosts),
		Import:       importer.DefaultOptions(),
		DryRun:       o.dryRun,
		Accept:       o.accept,
		KeepSnapshot: o.keepSnapshot,
		Verify:       mode,
		Logger:       g.logger,
	}
	w := &mo.Walk
	w.Root, w.Exclude, w.Auth, w.Ephemerals = o.path, o.exclude, auths, eph
	w.Workers, w.Sessions, w.RateLimit, w.ExtendedTypes = o.workers, o.sessions, o.rate, o.extendedTypes
	w.ToolVersion, w.Logger = buildinfo.Read().Version, g.logger
	mo.Import.BatchBytes, mo.Import.InFlight, mo.Import.Logger = o.batchBytes, o.inFlight, g.logger
	if o.datadir.dir != "" {
		mo.FromDataDir = datadir.Options{DataDir: o.datadir.dir, LogDir: o.datadir.logDir, Logger: g.logger}
		if o.datadir.toZxid != "" {
			mo.FromDataDir.ToZxid, _ = parseZxid(o.datadir.toZxid) // checked in validate
		}
	}
	if o.dataDir != "" {
		mo.Node = offlineNodeConfig(o.dataDir, o.nodeID, o.raftAddr, o.compress, g)
		mo.Node.LogStore = raftjournal.LogStoreKind(o.logStore)
	}
	if o.journal != "" {
		if mo.Journal, err = o.admin(o.journal); err != nil {
			return err
		}
	}
	if err := mo.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	mo.Walking = func(desc string, progress func() exporter.Progress) func() {
		bar := newPhaseBar(g, desc, -1)
		stop := make(chan struct{})
		var done sync.WaitGroup
		done.Go(func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					bar.set(progress().Nodes)
				}
			}
		})
		return func() {
			close(stop)
			done.Wait()
			bar.done()
		}
	}

	sum, err := importer.Migrate(ctx, mo)
	switch {
	case o.dryRun && sum != nil:
		if perr := writeReport(g, sum.Preflight, o.json); perr != nil {
			return perr
		}
		return err
	case errors.Is(err, importer.ErrBlocked) && sum != nil:
		_ = writeReport(g, sum.Preflight, o.json)
		return err
	case err != nil:
		return o.explain(err)
	}
	if sum.Installed != nil {
		sum.Serve = serveCommand(o.dataDir, o.nodeID, o.raftAddr, o.logStore)
	}
	if o.json {
		if err := writeJSON(g, sum); err != nil {
			return err
		}
	} else {
		if sum.Preflight.Warnings > 0 && !g.quiet {
			if err := sum.Preflight.WriteText(g.stdout); err != nil {
				return err
			}
		}
		if err := printMigrate(g.stdout, sum); err != nil {
			return err
		}
	}
	switch {
	case sum.Verdict == importer.VerdictDifferent:
		return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("verification found differences between %s and the journal: %s", sum.Source, sum.VerdictReason)}
	case sum.Verdict != importer.VerdictVerified && mode != importer.VerifyNone:
		return fmt.Errorf("unverified: %s", sum.VerdictReason)
	}
	return nil
}

// writeReport prints a pre-flight report, as JSON or text.
func writeReport(g *globalOptions, r *importer.PreflightReport, asJSON bool) error {
	if asJSON {
		return r.WriteJSON(g.stdout)
	}
	return r.WriteText(g.stdout)
}

func printMigrate(w io.Writer, s *importer.MigrateSummary) error {
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
		sk.Unreadable-sk.ACLMasked, listSuffix(exporter.NoAuthPaths(sk.UnreadableList, sk.ACLMaskedList)))
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
	switch s.Verdict {
	case importer.VerdictDifferent:
		verdict = "DIFFERENT: " + s.VerdictReason
	case importer.VerdictUnverified:
		verdict = "UNVERIFIED: " + s.VerdictReason
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
