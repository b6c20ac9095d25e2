package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/cutover"
	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/buildinfo"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/zkwire"
)

// tapOptions are the dual-write flags shared by `proxy` and `serve`.
type tapOptions struct {
	zk                string
	queueDir          string
	queueMaxBytes     int64
	sync              bool
	queueFsync        bool
	syncTimeout       time.Duration
	reconcileInterval time.Duration
	reconcileGrace    time.Duration
	noReconcile       bool
	reconcileAlign    string
	zkAuth            zkAuthOptions
	juteMaxBuffer     int
	held              bool // start the tap holding (a proxy that switched before)
}

// hosts parses --zk; a malformed host is a usage error naming it.
func (o *tapOptions) hosts() ([]string, error) {
	hosts, err := zkclient.ParseHosts(o.zk)
	if err != nil {
		return nil, usageErrorf("--zk: %v", err)
	}
	return hosts, nil
}

// addFlags adds the dual-write flags. withJute adds --jute-maxbuffer, which
// serve has already (one jute.maxbuffer for its client port and its proxy).
func (o *tapOptions) addFlags(cmd *cobra.Command, queueHelp string, withJute bool) {
	f := cmd.Flags()
	if withJute {
		f.IntVar(&o.juteMaxBuffer, "jute-maxbuffer", zkwire.DefaultMaxBuffer, "the ensemble's jute.maxbuffer in bytes (-Djute.maxbuffer on its servers): the largest request a client may send; a larger one closes that client's connection, as ZooKeeper would, and is logged")
	}
	f.StringVar(&o.zk, "zk", "", "the ZooKeeper ensemble, host:port,host:port")
	f.StringVar(&o.queueDir, "queue-dir", "", queueHelp)
	f.Int64Var(&o.queueMaxBytes, "queue-max-bytes", 1<<30, "bound on the queued mirrors; past it writes are counted as lost and the reconciler repairs")
	f.BoolVar(&o.sync, "sync", false, "hold each write's reply until the journal committed its mirror (default: until it is written to the queue)")
	f.BoolVar(&o.queueFsync, "queue-fsync", false, "hold each write's reply until its mirror is fsynced in the queue (default: fsynced within 10ms; a machine crash may lose that window, which the repair pass then makes good)")
	f.DurationVar(&o.syncTimeout, "sync-timeout", 10*time.Second, "with --sync, the longest a reply is held for a journal that does not commit")
	f.DurationVar(&o.reconcileInterval, "reconcile-interval", time.Minute, "how often the reconciler compares digests and repairs (0: never)")
	f.DurationVar(&o.reconcileGrace, "reconcile-grace", 2*time.Second, "how long the reconciler lets the tap mirror a write before it checks the node itself")
	f.StringVar(&o.reconcileAlign, "reconcile-align", "", "a node the reconciler may write through the proxy to make a comparable digest point when a digest check finds none (on a quiet ensemble: up to 128 small setData per check); empty: such a check says \"unknown\"")
	f.BoolVar(&o.noReconcile, "no-reconcile", false, "run the tap without the reconciler (writes that bypass the proxy are then not repaired)")
	o.zkAuth.addFlags(cmd, "credentials the reconciler and the proxy's read-backs read ZooKeeper with (and, through the proxy's --journal, the journal's ACL'd nodes); they need READ and ADMIN on every node, which a super digest gives")
}

// runningTap is a started tap with its reconciler and repair-owed loop.
type runningTap struct {
	tap  *dualwrite.Tap
	rec  *dualwrite.Reconciler
	mu   sync.Mutex // guards cancel (OnSwitch, OnSwitchBack, close)
	stop func()     // stops the reconciler's loops (rt.halt)
	done chan error

	cancel context.CancelFunc
}

// start starts the tap, and unless --no-reconcile the reconciler and the
// repair-owed loop, mirroring into j.
func (o *tapOptions) start(ctx context.Context, g *globalOptions, listen string, j dualwrite.Journal, view dualwrite.JournalView, reg prometheus.Registerer) (*runningTap, error) {
	hosts, err := o.hosts()
	if err != nil {
		return nil, err
	}
	if err := intFlagIn("--jute-maxbuffer", o.juteMaxBuffer, 1, maxJuteMaxBuffer); err != nil {
		return nil, err
	}
	auth, err := o.zkAuth.list()
	if err != nil {
		return nil, err
	}
	cfg := dualwrite.DefaultConfig()
	cfg.Listen = listen
	cfg.ZK = hosts
	cfg.Journal = j
	cfg.QueueDir = o.queueDir
	cfg.QueueMaxBytes = o.queueMaxBytes
	cfg.Sync = o.sync
	cfg.QueueSyncOnAppend = o.queueFsync
	cfg.SyncTimeout = o.syncTimeout
	cfg.Auth = auth
	cfg.MaxRequestFrame = o.juteMaxBuffer
	cfg.Logger = g.logger.With("component", "dualwrite")
	cfg.Registerer = reg
	cfg.Held = o.held
	t, err := dualwrite.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rt := &runningTap{tap: t, done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	rt.cancel = cancel
	rt.stop = rt.halt
	if o.noReconcile {
		rt.done <- nil
		return rt, nil
	}
	rc := dualwrite.ReconcilerConfig{
		ZK: hosts, Auth: auth, Journal: j, View: view,
		Grace: o.reconcileGrace, Interval: o.reconcileInterval,
		Mirrored: t.MirroredZxid, Logger: g.logger.With("component", "reconcile"), Registerer: reg,
	}
	if o.reconcileAlign != "" {
		rc.AlignPath, rc.AlignVia = o.reconcileAlign, []string{t.Addr()}
	}
	rec, err := dualwrite.NewReconciler(rc)
	if err != nil {
		cancel()
		t.Close()
		return nil, err
	}
	rt.rec = rec
	rt.runReconciler(rctx)
	return rt, nil
}

func (rt *runningTap) runReconciler(rctx context.Context) {
	owed := make(chan error, 1)
	go func() { owed <- dualwrite.RepairOwed(rctx, rt.tap, rt.rec, 10*time.Second) }()
	go func() { rt.done <- errors.Join(rt.rec.Run(rctx), <-owed) }()
}

// halt stops the reconciler's loops (at the switch to the journal, and at
// close).
func (rt *runningTap) halt() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.cancel()
}

// restartReconciler runs the reconciler and its repair-owed loop again
// after a rollback switched the tap back to ZooKeeper.
func (rt *runningTap) restartReconciler(ctx context.Context, logger *slog.Logger) {
	if rt.rec == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.cancel()
	if err := <-rt.done; err != nil && !ctxErr(err) {
		logger.Warn("the reconciler had stopped with an error", "err", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	rt.cancel = cancel
	rt.runReconciler(rctx)
}

func (rt *runningTap) close() error {
	rt.stop()
	err := <-rt.done
	if ctxErr(err) {
		err = nil
	}
	if rt.rec != nil {
		err = errors.Join(err, rt.rec.Close())
	}
	return errors.Join(err, rt.tap.Close())
}

type proxyOptions struct {
	tapOptions
	cluster     clusterOptions
	listen      string
	journal     string
	adminAddr   string
	insecure    bool
	openMetrics bool
	openStatus  bool
	proxyID     string
	advertise   string
}

func newProxyCommand(g *globalOptions) *cobra.Command {
	var o proxyOptions
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR --zk HOSTS --journal ADMIN_ADDR --queue-dir DIR",
		Short: "Run a standalone dual-write proxy in front of ZooKeeper",
		Long: `Relays ZooKeeper clients to the ensemble, unchanged as far as they can tell (a create
is sent as create2 and its reply cut back, for the stat; a closeSession is preceded by the
session's own getEphemerals, whose reply is dropped), and mirrors every write ZooKeeper
committed (create of every mode, delete, setData, setACL, multi, and the ephemerals a
closeSession deletes) into the journal, with ZooKeeper's own zxid and stat.

Point clients at --listen instead of the ensemble. Sessions, watches, auth and
ephemerals stay ZooKeeper's; when a ZooKeeper server dies, a client's reconnect through
the proxy reaches another server with its session.

The proxy reaches the journal through any of its members: --journal names one or
more, the rest are learned from the cluster, and when a member stops answering the
mirrors go through another. It starts and serves ZooKeeper's clients whether or not
the journal answers; mirrors wait in the queue until it does, and the log and
/status ("journal": reachable or unreachable, since when, why) say so.

Delivery is asynchronous by default: a write's reply is released once its mirror is
written to the durable queue (--queue-dir; fsynced within 10 ms, or before the reply
with --queue-fsync), so a journal outage or a proxy crash or restart loses nothing,
and ZooKeeper traffic never waits for the journal. --sync holds the reply until the
journal committed the mirror. The reconciler repairs what the proxy cannot
see: writes that bypass it and ephemerals of expired sessions.

The proxy registers itself with the journal (--proxy-id, its client address and
--advertise-admin) and follows the cutover (zk2raft cutover): it holds its clients'
requests when the cutover asks, and relays them to the journal's client ports once
the journal's committed phase is primary — by itself if the cutover command died,
when its hold's deadline passes. A proxy that restarts after the cutover relays
nothing before it has read the phase (it remembers the switch in --queue-dir).

--admin-addr serves /status (JSON), /metrics (Prometheus) and the cutover's
/cutover/ calls, to callers holding the cluster secret (the file given with --cluster-secret-file, or $` + envClusterSecretFile + `,
which the proxy also needs to reach the journal), unless --open-status and
--open-metrics open them.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.listen == "":
				return usageErrorf("--listen is required")
			case o.zk == "":
				return usageErrorf("--zk is required")
			case o.journal == "":
				return usageErrorf("--journal is required")
			case o.queueDir == "":
				return usageErrorf("--queue-dir is required")
			}
			if err := intFlagIn("--jute-maxbuffer", o.juteMaxBuffer, 1, maxJuteMaxBuffer); err != nil {
				return err
			}
			if _, err := o.hosts(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProxy(ctx, g, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "address clients connect to, host:port (required)")
	f.StringVar(&o.journal, "journal", "", "admin addresses of journal members, host:port[,host:port...] (required); the others are learned from the cluster, and the proxy moves to another member when one stops answering")
	f.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:0", "HTTP address for /status, /metrics and the cutover's /cutover/ calls")
	f.BoolVar(&o.openMetrics, "open-metrics", false, "serve /metrics to callers without the cluster secret")
	f.BoolVar(&o.openStatus, "open-status", false, "serve /status to callers without the cluster secret")
	f.BoolVar(&o.insecure, "insecure", false, "reach a journal that runs without a cluster secret, and serve the admin port to anyone")
	f.StringVar(&o.proxyID, "proxy-id", "", "this proxy's id in the journal's registry of proxies (default: its client address)")
	f.StringVar(&o.advertise, "advertise-admin", "", "the admin address the cutover reaches this proxy at, when --admin-addr listens on a wildcard or behind NAT (default: the admin listener's address)")
	o.addFlags(cmd, "directory of the durable queue of mirrors not yet committed (required)", true)
	o.cluster.addFlags(cmd)
	return cmd
}

func runProxy(ctx context.Context, g *globalOptions, o *proxyOptions) error {
	creds, err := o.cluster.clientCredentials(o.insecure)
	if err != nil {
		return err
	}
	auth, err := o.zkAuth.list()
	if err != nil {
		return err
	}
	var admins []string
	for _, a := range strings.Split(o.journal, ",") {
		if a = strings.TrimSpace(a); a != "" {
			admins = append(admins, a)
		}
	}
	// The journal is not dialled here: the proxy serves ZooKeeper's clients
	// whether or not it answers, and delivers what it queued once it does.
	j, err := importer.NewJournalCluster(admins, creds, g.logger.With("component", "journal-client"))
	if err != nil {
		return usageErrorf("--journal: %v", err)
	}
	defer j.Close()
	reg := prometheus.NewRegistry()
	view := dualwrite.FailoverView(j.AdminAddrs, func(addr string) *raftjournal.AdminClient {
		return raftjournal.NewAdminClient(addr, creds).WithZooKeeperAuth(auth)
	})
	// A proxy that switched, or that a cutover held when it stopped, relays
	// nothing before it has settled with the journal.
	startHeld := cutover.StartHeld(o.queueDir)
	o.held = startHeld
	rt, err := o.start(ctx, g, o.listen, j, view, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		rt.close()
		return fmt.Errorf("admin address %s: %w", o.adminAddr, err)
	}
	advertise := o.advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	id := o.proxyID
	if id == "" {
		id = rt.tap.Addr()
	}
	hosts, _ := o.hosts()
	acfg := cutover.AgentConfig{Tap: rt.tap, Journal: j, Members: j.AdminAddrs, Credentials: creds,
		Record:   cutover.ProxyRecord{ID: id, Listen: rt.tap.Addr(), Admin: advertise, ZooKeeper: hosts, Version: buildinfo.Version()},
		StateDir: o.queueDir, ExpectJournal: startHeld, Logger: g.logger.With("component", "cutover")}
	if rt.rec != nil {
		acfg.Reconcile = rt.rec.Stats
		acfg.OnSwitch = func() {
			g.logger.Info("the journal is primary: stopping the reconciler (ZooKeeper is no longer the source of truth)")
			rt.stop()
		}
		acfg.OnSwitchBack = func() {
			g.logger.Info("rolled back to ZooKeeper: starting the reconciler again")
			rt.restartReconciler(ctx, g.logger)
		}
	}
	agent, err := cutover.NewAgent(acfg)
	if err != nil {
		ln.Close()
		rt.close()
		return err
	}
	actx, astop := context.WithCancel(ctx)
	adone := make(chan struct{})
	go func() { defer close(adone); agent.Run(actx) }()
	defer func() { astop(); <-adone }()
	if creds.TLS != nil {
		ln = tls.NewListener(ln, creds.TLS.ServerConfig())
	}
	guard := raftjournal.AdminGuard{Secret: creds.Secret, Insecure: o.insecure}
	open := func(open bool, h http.Handler) http.Handler {
		if open {
			return h
		}
		return guard.Require(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", open(o.openMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle("/cutover/", guard.Require(agent.Handler()))
	mux.Handle("GET /status", open(o.openStatus, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(proxyStatus(rt))
	})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if !g.quiet {
		scheme := "http"
		if creds.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(g.stdout, "proxy serving: clients %s, zookeeper %s, journal %s, admin %s://%s\n", rt.tap.Addr(), o.zk, strings.Join(admins, ","), scheme, ln.Addr())
	}
	<-ctx.Done()
	g.logger.Info("shutting down the proxy")
	srv.Close()
	return rt.close()
}

// proxyStatus is /status of a proxy.
func proxyStatus(rt *runningTap) any {
	out := struct {
		Tap       dualwrite.Status           `json:"tap"`
		Reconcile *dualwrite.ReconcilerStats `json:"reconcile,omitempty"`
	}{Tap: rt.tap.Status()}
	if rt.rec != nil {
		s := rt.rec.Stats()
		out.Reconcile = &s
	}
	return out
}

// defaultQueueDir is where serve keeps the tap's queue.
func defaultQueueDir(dataDir string) string { return filepath.Join(dataDir, "dualwrite-queue") }

// ctxErr reports whether err is only the cancellation of a stopping context.
func ctxErr(err error) bool {
	if err == nil {
		return true
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !ctxErr(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, context.Canceled)
}
