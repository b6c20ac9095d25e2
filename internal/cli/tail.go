package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
)

type tailOptions struct {
	cluster     clusterOptions
	datadir     string
	logDir      string
	journal     string
	fromZxid    string
	name        string
	zkServer    string
	adminAddr   string
	batch       int
	insecure    bool
	openMetrics bool
	openStatus  bool
}

func newTailCommand(g *globalOptions) *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail --datadir DIR --journal ADMIN_ADDR",
		Short: "Mirror a ZooKeeper server's transaction log into the journal, without touching a client",
		Long: `Follows one ZooKeeper server's transaction log (--datadir, and --datalog-dir when its
dataLogDir differs) as it grows, new log files included, and mirrors every txn into
the journal as the dual-write proxy does: the same ops with ZooKeeper's zxid and
resulting stat, merged by the same idempotent rule. The stats come from the tree the
tail rebuilds from the server's snapshot and log, checked txn by txn against the
digest ZooKeeper wrote into the log. Run it on (or beside) any one server of the
ensemble: every server's log holds every committed txn. It sees writes that bypass the
proxies, session expiries, and ZooKeeper's own removal of empty containers and
expired TTL nodes; clients are not re-pointed.

Where it starts: the progress it recorded in the journal (checkpoint zk2raft/tail, or
zk2raft/tail/NAME with --name), so a restarted tail (after kill -9 too) resumes where
the journal is; otherwise --from-zxid, the zxid the journal's copy was taken at (the
zxid of an export --from-datadir, or a live export's start zxid); otherwise, on a
journal that holds nothing of ZooKeeper's yet, the end of the log (take the copy
after starting the tail). A journal that already holds a copy and no checkpoint is
refused without --from-zxid.

--zk-server (the tailed server's client address) makes the tail mirror only txns that
server has applied (a proposal logged but not committed may be dropped by a new
leader) and report its lag against that server's zxid. A log the server truncates
under the tail stops it: re-run the copy.

--admin-addr serves /status (JSON) and /metrics (Prometheus: zk2raft_tail_*), to
callers holding the cluster secret (the file given with --cluster-secret-file, or
$` + envClusterSecretFile + `, which the tail also needs to reach the journal), unless
--open-status and --open-metrics open them. The tail runs until SIGINT or SIGTERM;
it exits non-zero if it cannot go on.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.datadir == "":
				return usageErrorf("--datadir is required")
			case o.journal == "":
				return usageErrorf("--journal is required")
			}
			if err := intFlagIn("--batch", o.batch, 1, maxTailBatch); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTail(ctx, g, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.datadir, "datadir", "", "the ZooKeeper server's dataDir (required)")
	f.StringVar(&o.logDir, "datalog-dir", "", "the server's dataLogDir, when it differs from its dataDir")
	f.StringVar(&o.journal, "journal", "", "admin address of a journal member (required)")
	f.StringVar(&o.fromZxid, "from-zxid", "", "when the journal holds no checkpoint of this tail: the zxid its copy was taken at (0x… or decimal)")
	f.StringVar(&o.name, "name", "", "tells several tails of one journal apart (their checkpoints)")
	f.StringVar(&o.zkServer, "zk-server", "", "the tailed server's client address host:port: mirror only what it has applied, and report the lag against it")
	f.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:0", "HTTP address for /status and /metrics")
	f.IntVar(&o.batch, "batch", 1000, "txns per journal entry at most")
	f.BoolVar(&o.openMetrics, "open-metrics", false, "serve /metrics to callers without the cluster secret")
	f.BoolVar(&o.openStatus, "open-status", false, "serve /status to callers without the cluster secret")
	f.BoolVar(&o.insecure, "insecure", false, "reach a journal that runs without a cluster secret, and serve the admin port to anyone")
	o.cluster.addFlags(cmd)
	return cmd
}

func runTail(ctx context.Context, g *globalOptions, o *tailOptions) error {
	creds, err := o.cluster.clientCredentials(o.insecure)
	if err != nil {
		return err
	}
	admin := raftjournal.NewAdminClient(trimScheme(o.journal), creds)
	cfg := dualwrite.TailConfig{DataDir: o.datadir, LogDir: o.logDir, Name: o.name, Batch: o.batch,
		Logger: g.logger.With("component", "tail")}
	if o.fromZxid != "" {
		z, err := parseZxid(o.fromZxid)
		if err != nil {
			return usageErrorf("--from-zxid: %v", err)
		}
		cfg.From, cfg.FromSet = z, true
	}
	if o.zkServer != "" {
		addr := o.zkServer
		cfg.ServerZxid = func(ctx context.Context) (int64, error) { return zkclient.ServerZxid(ctx, addr) }
	}
	j, err := importer.DialJournal(ctx, admin, g.logger)
	if err != nil {
		return o.cluster.explain(err)
	}
	defer j.Close()
	cfg.Journal = j
	cfg.SourceZxid = func(ctx context.Context) (int64, error) { return journalSourceZxid(ctx, admin) }
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	ln, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return fmt.Errorf("admin address %s: %w", o.adminAddr, err)
	}
	if creds.TLS != nil {
		ln = tls.NewListener(ln, creds.TLS.ServerConfig())
	}
	defer ln.Close()
	tl, err := dualwrite.StartTail(ctx, cfg)
	if err != nil {
		return err
	}
	defer tl.Close()
	guard := raftjournal.AdminGuard{Secret: creds.Secret, Insecure: o.insecure}
	open := func(open bool, h http.Handler) http.Handler {
		if open {
			return h
		}
		return guard.Require(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", open(o.openMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle("GET /status", open(o.openStatus, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(tl.Status())
	})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	st := tl.Status()
	if !g.quiet {
		scheme := "http"
		if creds.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(g.stdout, "tail running: %s from zxid %s (%s), journal %s, admin %s://%s\n", o.datadir, st.StartZxid, st.StartedFrom, admin.Addr(), scheme, ln.Addr())
	}
	select {
	case <-ctx.Done():
		g.logger.Info("stopping the tail")
		return tl.Close()
	case <-tl.Done():
		return tl.Err()
	}
}

// journalSourceZxid asks a journal member for the largest ZooKeeper zxid the
// journal holds.
func journalSourceZxid(ctx context.Context, admin *raftjournal.AdminClient) (int64, error) {
	cs, err := admin.ClusterStatus(ctx, true)
	if err != nil {
		return 0, err
	}
	return parseZxid0(cs.MaxSourceZxid)
}

// parseZxid0 reads a zxid a status reports ("0x…"), 0 included.
func parseZxid0(s string) (int64, error) {
	var z int64
	if _, err := fmt.Sscanf(s, "0x%x", &z); err != nil {
		return 0, fmt.Errorf("zxid %q: %w", s, err)
	}
	return z, nil
}

// printTailProgress adds the tail's checkpoint, when the journal holds one, to
// `journal status`: the shadow route's progress as the journal records it.
func printTailProgress(ctx context.Context, w io.Writer, admin *raftjournal.AdminClient) error {
	var out struct {
		Value []byte `json:"value"`
	}
	err := admin.Call(ctx, http.MethodGet, "/checkpoint?key="+url.QueryEscape(dualwrite.TailCheckpointKey), nil, &out)
	if err != nil || out.Value == nil {
		return nil // a node without the endpoint, or no tail: nothing to add
	}
	var p dualwrite.TailProgress
	if err := json.Unmarshal(out.Value, &p); err != nil {
		return fmt.Errorf("journal status: tail checkpoint: %w", err)
	}
	_, err = fmt.Fprintf(w, "\ntail     %s: every txn of ZooKeeper up to %#x applied (ZooKeeper's digest there %v), lag %.1fs, read to %#x, recorded %s ago, from %s\n",
		dualwrite.TailCheckpointKey, p.Zxid, p.Digest, p.LagSeconds, p.ReadZxid, time.Since(p.UpdatedAt).Round(time.Second), p.DataDir)
	return err
}
