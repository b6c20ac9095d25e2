package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

type exportOptions struct {
	zk             string
	path           string
	out            string
	workers        int
	readMode       string
	sessions       int
	rate           float64
	exclude        []string
	zkAuth         zkAuthOptions
	ephemerals     string
	allowPartial   bool
	extendedTypes  bool
	compress       bool
	json           bool
	maxListed      int
	sessionTimeout time.Duration
	connectTimeout time.Duration
	retryTimeout   time.Duration
	tls            bool
	tlsOpts        zkclient.TLSOptions
	datadir        datadirExportOptions
}

func (o *exportOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.zk, "zk", "", "ZooKeeper hosts, host:port[,host:port...] (required)")
	f.StringVar(&o.path, "path", "/", "subtree to export")
	f.StringVar(&o.out, "out", "", "snapshot file to write (default zk-export-<start zxid>.snap in the current directory)")
	f.IntVar(&o.workers, "workers", exporter.DefaultWorkers, "nodes read at once")
	f.StringVar(&o.readMode, "read-mode", "auto", "how nodes are read: multiread (getData and getChildren batched in multiRead requests, ZooKeeper 3.6+), classic (one request per read, and the only mode over TLS) or auto (multiread when the ensemble answers it)")
	f.IntVar(&o.sessions, "sessions", exporter.DefaultSessions, "ZooKeeper sessions to read over (spread over the servers)")
	f.Float64Var(&o.rate, "rate", 0, "at most this many requests per second to the ensemble (0: no limit)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out nodes matching this absolute path glob, with their subtrees (repeatable; * and ? stop at /)")
	o.zkAuth.addFlags(cmd, "credentials added to every session")
	f.StringVar(&o.ephemerals, "ephemerals", "include", "ephemeral nodes: include (with their owner's session id) or skip")
	f.BoolVar(&o.allowPartial, "allow-partial", false, "succeed even if some nodes cannot be read in full with the given credentials: NoAuth subtrees are left out, nodes whose ACL comes back masked are kept with it (all are listed)")
	f.BoolVar(&o.extendedTypes, "extended-types", false, "record that the ensemble runs with zookeeper.extendedTypesEnabled (TTL nodes)")
	f.BoolVar(&o.compress, "compress", false, "compress the snapshot body with zstd")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON")
	f.IntVar(&o.maxListed, "max-listed", exporter.DefaultMaxListed, "list at most this many changed or unreadable nodes in the summary")
	f.DurationVar(&o.sessionTimeout, "session-timeout", exporter.DefaultSessionTimeout, "ZooKeeper session timeout")
	f.DurationVar(&o.connectTimeout, "connect-timeout", exporter.DefaultConnectTimeout, "give up if no session is established within this")
	f.DurationVar(&o.retryTimeout, "retry-timeout", exporter.DefaultRetryTimeout, "give up if a node cannot be read for want of a server for this long")
	f.BoolVar(&o.tls, "tls", false, "connect with TLS (implied by the other --tls-* flags)")
	f.StringVar(&o.tlsOpts.CAFile, "tls-ca", "", "PEM bundle of the CAs to verify the servers with (default: system roots)")
	f.StringVar(&o.tlsOpts.CertFile, "tls-cert", "", "client certificate (PEM), for x509 authentication")
	f.StringVar(&o.tlsOpts.KeyFile, "tls-key", "", "client certificate's private key (PEM)")
	f.StringVar(&o.tlsOpts.ServerName, "tls-server-name", "", "name to verify the servers' certificates against (default: each host)")
	f.BoolVar(&o.tlsOpts.InsecureSkipVerify, "tls-insecure-skip-verify", false, "accept any server certificate (testing only)")
	o.datadir.addFlags(cmd, "export")
}

// config turns the flags into a walker configuration.
func (o *exportOptions) config(g *globalOptions) (exporter.Config, error) {
	if o.zk == "" {
		return exporter.Config{}, usageErrorf("--zk is required (or --from-datadir)")
	}
	hosts, err := zkclient.ParseHosts(o.zk)
	if err != nil {
		return exporter.Config{}, usageErrorf("--zk: %v", err)
	}
	cfg := exporter.DefaultConfig(hosts)
	cfg.Root = o.path
	cfg.Exclude = o.exclude
	cfg.AllowPartial = o.allowPartial
	cfg.ExtendedTypes = o.extendedTypes
	cfg.Workers = o.workers
	if cfg.ReadMode, err = exporter.ParseReadMode(o.readMode); err != nil {
		return exporter.Config{}, usageErrorf("--read-mode: %v", err)
	}
	cfg.Sessions = o.sessions
	cfg.RateLimit = o.rate
	cfg.MaxListed = o.maxListed
	cfg.SessionTimeout = o.sessionTimeout
	cfg.ConnectTimeout = o.connectTimeout
	cfg.RetryTimeout = o.retryTimeout
	cfg.ToolVersion = buildinfo.Read().Version
	cfg.Logger = g.logger
	if cfg.Ephemerals, err = exporter.ParseEphemeralPolicy(o.ephemerals); err != nil {
		return cfg, usageErrorf("--ephemerals: %v", err)
	}
	if cfg.Auth, err = o.zkAuth.parsed(); err != nil {
		return cfg, err
	}
	if o.tls || o.tlsOpts != (zkclient.TLSOptions{}) {
		if cfg.Dialer, err = o.tlsOpts.Dialer(); err != nil {
			return cfg, usageErrorf("%v", err)
		}
	}
	if err := firstErr(intFlagIn("--workers", o.workers, 1, exporter.MaxWorkers),
		intFlagIn("--sessions", o.sessions, 1, exporter.MaxSessions),
		rateFlag("--rate", o.rate)); err != nil {
		return cfg, err
	}
	if o.maxListed < 1 {
		return cfg, usageErrorf("--max-listed %d: want at least 1", o.maxListed)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageErrorf("%v", err)
	}
	return cfg, nil
}

func newExportCommand(g *globalOptions) *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Snapshot a live ZooKeeper ensemble's tree, or a server's data directory, into a snapshot file",
		Long: `Reads the tree (or the --path subtree) of a live ensemble into a snapshot file:
data, ACL and the full persisted stat of every node, parents before children, in
depth-first order with children sorted. Many requests are in flight over a few
sessions (--workers, --sessions), capped by --rate for production ensembles.

The walk syncs each session first and records the zxid it starts at in the file's
header and the highest zxid it observed in the trailer; nodes that change during
the walk are recorded in a state they really had, counted and listed. Connection
loss is retried, an expired session is replaced, a server may die mid-export.

Nodes the credentials cannot read (NoAuth) are listed and fail the export unless
--allow-partial is given, which leaves them out with their subtrees. So do nodes
whose ACL ZooKeeper masks (digest:USER:x) because the credentials lack ADMIN on
them; --allow-partial keeps those, subtrees included, with the masked ACL, which no
one can authenticate as. /zookeeper is left out when exporting from the root.
Container and TTL nodes are recorded as the client API shows them (ephemeralOwner
0, like persistent nodes). The file is written to a temporary name and renamed into
place only when complete.

A summary (nodes, bytes, zxid range, digest, duration, changed, skipped) goes to
stdout, as JSON with --json; a progress bar goes to stderr when it is a terminal.

With --from-datadir DIR (and --datalog-dir when ZooKeeper's dataLogDir differs)
the tree is read from a server's own files instead, read-only, while it runs or
not: the newest snapshot that reads cleanly, then every txn after it up to the
last complete one (or --to-zxid). The file holds ZooKeeper's tree exactly as of
that zxid, with the raw ephemeralOwner of containers, TTL nodes and ephemerals,
and one session record per session; the export fails, naming the zxid, unless
the tree's digest equals the one ZooKeeper wrote into its log or snapshot there.
A damaged file, a missing log or a snapshot newer than every log is an error
naming the file and offset. /zookeeper is left out.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := outFlag("--out", o.out); err != nil {
				return err
			}
			if o.datadir.dir != "" {
				return runDatadirExport(cmd, g, &o.datadir, o.out, o.compress, o.extendedTypes, o.json)
			}
			if o.datadir.logDir != "" || o.datadir.toZxid != "" {
				return usageErrorf("--datalog-dir and --to-zxid need --from-datadir")
			}
			cfg, err := o.config(g)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w, err := exporter.NewWalker(cfg)
			if err != nil {
				return err
			}
			defer w.Close()

			var snapOpts znode.SnapshotWriterOptions
			snapOpts.Compress = o.compress
			var prog *exportProgress
			started := func(w *exporter.Walker, path string) {
				g.logger.Info("exporting", "source", exporter.Source(cfg.Hosts, cfg.Root), "out", path,
					"start-zxid", fmt.Sprintf("%#x", w.StartZxid()), "workers", cfg.Workers, "sessions", cfg.Sessions)
				if g.showProgress() {
					prog = startExportProgress(ctx, g.stderr, w, cfg, o.tls || o.tlsOpts != (zkclient.TLSOptions{}))
				}
			}
			sum, err := exporter.ExportFile(ctx, w, exporter.FileOptions{Path: o.out, Snapshot: snapOpts, Started: started})
			prog.stop()
			if sum != nil {
				if perr := printExportSummary(g.stdout, sum, o.json); perr != nil && err == nil {
					err = perr
				}
			}
			var ue *exporter.UnreadableError
			if errors.As(err, &ue) {
				return fmt.Errorf("%w; %s (no file was written)", err, unreadableHint(ue))
			}
			return err
		},
	}
	o.addFlags(cmd)
	return cmd
}

// exportProgress draws a progress bar while an export runs.
type exportProgress struct {
	bar  *progressbar.ProgressBar
	done chan struct{}
	quit context.CancelFunc
}

// startExportProgress draws nodes, data bytes and rate on w, with an ETA when
// the ensemble tells its node count (mntr's zk_znode_count, which counts the
// whole tree, so only for exports of the whole tree without exclusions).
func startExportProgress(ctx context.Context, out io.Writer, w *exporter.Walker, cfg exporter.Config, tls bool) *exportProgress {
	total := int64(-1)
	if cfg.Root == "/" && len(cfg.Exclude) == 0 && !tls {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if n, err := zkclient.ZnodeCount(cctx, cfg.Hosts); err == nil && n > 0 {
			total = n
		}
		cancel()
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("exporting"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("nodes"),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
		// No spinner goroutine of the bar's own: it reads the bar's state
		// without its lock (a data race); our ticker redraws often enough.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	ctx, quit := context.WithCancel(ctx)
	p := &exportProgress{bar: bar, done: make(chan struct{}), quit: quit}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				pr := w.Progress()
				if total > 0 && pr.Nodes > total {
					total = pr.Nodes
					bar.ChangeMax64(total)
				}
				bar.Describe(fmt.Sprintf("exporting %s", humanBytes(pr.DataBytes)))
				_ = bar.Set64(pr.Nodes)
			}
		}
	}()
	return p
}

// stop ends the bar and waits for its goroutine; nil-safe and idempotent.
func (p *exportProgress) stop() {
	if p == nil {
		return
	}
	p.quit()
	<-p.done
	_ = p.bar.Finish()
	_ = p.bar.Exit()
}

func printExportSummary(w io.Writer, s *exporter.Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	var b strings.Builder
	file := "no file written"
	if s.File != "" {
		file = fmt.Sprintf("%s (%s)", s.File, humanBytes(s.FileBytes))
	}
	fmt.Fprintf(&b, "exported     %d nodes, %s of data, from %s\n", s.Nodes, humanBytes(s.DataBytes), s.Source)
	fmt.Fprintf(&b, "file         %s\n", file)
	fmt.Fprintf(&b, "zxid range   %#x .. %#x\n", s.StartZxid, s.MaxZxid)
	fmt.Fprintf(&b, "digest       %v\n", s.Digest)
	fmt.Fprintf(&b, "duration     %v (%.0f nodes/s, %d requests", s.Duration.Round(time.Millisecond), s.NodesPerSecond(), s.Requests)
	if s.Retries > 0 || s.SessionsRenewed > 0 {
		fmt.Fprintf(&b, ", %d retries, %d sessions renewed", s.Retries, s.SessionsRenewed)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "changed      %d during the walk, %d deleted, %d re-read\n", s.Changed, s.Deleted, s.Rereads)
	listChanged := s.ChangedList
	for _, c := range listChanged {
		fmt.Fprintf(&b, "  %s (%v)\n", c.Path, c.Change)
	}
	if n := s.Changed + s.Deleted - int64(len(listChanged)); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", n)
	}
	noAuth, noAuthList := s.Unreadable-s.ACLMasked, exporter.NoAuthPaths(s.UnreadableList, s.ACLMaskedList)
	fmt.Fprintf(&b, "skipped      %d excluded subtrees, %d ephemerals, %d unreadable (NoAuth)\n", s.Excluded, s.EphemeralsSkipped, noAuth)
	for _, p := range noAuthList {
		fmt.Fprintf(&b, "  unreadable %s\n", p)
	}
	if n := noAuth - int64(len(noAuthList)); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", n)
	}
	if s.ACLMasked > 0 {
		if s.File != "" {
			fmt.Fprintf(&b, "acl masked   %d node(s) kept with a masked ACL (digest:USER:x) that no one can authenticate as; "+
				"re-export with --auth of an identity with ADMIN on them, or super\n", s.ACLMasked)
		} else {
			fmt.Fprintf(&b, "acl masked   %d node(s) whose ACL ZooKeeper masked (digest:USER:x): the credentials lack ADMIN on them\n", s.ACLMasked)
		}
		for _, p := range s.ACLMaskedList {
			fmt.Fprintf(&b, "  masked %s\n", p)
		}
		if n := s.ACLMasked - int64(len(s.ACLMaskedList)); n > 0 {
			fmt.Fprintf(&b, "  ... and %d more\n", n)
		}
	}
	if s.Partial {
		var why []string
		if noAuth > 0 {
			why = append(why, "the unreadable subtrees are missing")
		}
		if s.ACLMasked > 0 {
			why = append(why, "the masked ACLs are not the nodes' real ones")
		}
		fmt.Fprintf(&b, "partial      yes: %s\n", strings.Join(why, "; "))
	}
	fmt.Fprintf(&b, "ephemerals   %d recorded\n", s.Ephemerals)
	fmt.Fprintf(&b, "note         %s\n", exporter.OwnerNote)
	_, err := io.WriteString(w, b.String())
	return err
}

// unreadableHint says what the operator can do about a failed export's
// unreadable nodes, for each reason the error holds. The error itself says
// which credentials a masked ACL needs.
func unreadableHint(e *exporter.UnreadableError) string {
	var hints []string
	if e.Count > e.ACLMasked {
		hints = append(hints, "pass --auth with credentials that can read the NoAuth nodes, or --allow-partial to export without their subtrees")
	}
	if e.ACLMasked > 0 {
		hints = append(hints, "--allow-partial keeps the nodes whose ACL is masked, with that ACL, which no one can authenticate as")
	}
	return strings.Join(hints, "; ")
}

// humanBytes renders a byte count in IEC units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
