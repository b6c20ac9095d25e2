package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
	"github.com/zk2raft/zk2raft/zkserver"
	"github.com/zk2raft/zk2raft/zkwire"
	"github.com/zk2raft/zk2raft/znode"
)

type serveOptions struct {
	clusterOptions
	insecure    bool
	openMetrics bool
	openStatus  bool
	acceptLoss  bool
	yes         bool

	dataDir       string
	nodeID        string
	raftAddr      string
	advertise     string
	adminAddr     string
	bootstrap     bool
	join          string
	logStore      string
	commitTimeout time.Duration
	compress      bool

	proxyAddr string
	tap       tapOptions

	reverseMirror bool
	reverseMarker string
	reverseRoot   string

	clientAddr      string
	secureAddr      string
	tlsCert         string
	tlsKey          string
	tlsCA           string
	tlsClientAuth   string
	x509SuperUser   string
	replyMaxBuffer  int
	tickTime        time.Duration
	minSession      time.Duration
	maxSession      time.Duration
	superDigest     string
	superDigestFile string
	fourLetterWords string
	juteMaxBuffer   int
	maxClientCnxns  int
	maxOutstanding  int
}

func (o *serveOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the node's Raft log, snapshots and lock file (required)")
	f.StringVar(&o.nodeID, "node-id", "", "the node's Raft id, unique in the cluster and stable across restarts (required)")
	f.StringVar(&o.raftAddr, "raft-addr", "", "TCP address for Raft and the journal's RPCs, host:port (required)")
	f.StringVar(&o.advertise, "advertise-addr", "", "Raft address other nodes dial, when it differs from --raft-addr")
	f.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:0", "HTTP address for /status, /metrics and membership changes")
	f.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster with this node as its only member (empty data dir only)")
	f.StringVar(&o.join, "join", "", "admin address of a running member to join through (empty data dir only)")
	f.StringVar(&o.logStore, "log-store", string(raftjournal.LogStoreWAL), "on-disk Raft log: wal or bolt")
	f.DurationVar(&o.commitTimeout, "commit-timeout", 0, fmt.Sprintf("how soon followers learn of a commit when no write follows it (Raft's CommitTimeout); default %v with a client port, where a follower answers its clients' writes only once it applied them, %v without", zkserver.DefaultCommitTimeout, raftjournal.DefaultNodeConfig().CommitTimeout))
	f.BoolVar(&o.compress, "compress-snapshots", false, "zstd-compress FSM snapshots")
	f.StringVar(&o.clientAddr, "client-addr", "", "serve the ZooKeeper client protocol on this address, host:port (any ZooKeeper client, zkCli, kazoo, Curator)")
	f.StringVar(&o.secureAddr, "secure-client-addr", "", "also serve the ZooKeeper client protocol over TLS on this address (ZooKeeper's secureClientPort; needs --client-tls-cert and --client-tls-key)")
	f.StringVar(&o.tlsCert, "client-tls-cert", "", "PEM certificate (chain) of the secure client port")
	f.StringVar(&o.tlsKey, "client-tls-key", "", "PEM private key of --client-tls-cert")
	f.StringVar(&o.tlsCA, "client-tls-ca", "", "PEM CA certificates that client certificates must chain to; a verified client certificate authenticates its connection as x509:<subject DN>")
	f.StringVar(&o.tlsClientAuth, "client-tls-client-auth", "", "client certificates on the secure port: need, want or none (ZooKeeper's ssl.clientAuth; default need with --client-tls-ca, none without)")
	f.StringVar(&o.x509SuperUser, "client-tls-super-user", "", "subject DN (RFC 2253, as Java prints it) of a client certificate that may do anything (zookeeper.X509AuthenticationProvider.superUser)")
	f.IntVar(&o.replyMaxBuffer, "reply-maxbuffer", 0, "largest reply in bytes a client is sent; a larger one closes the connection instead, as a client with that jute.maxbuffer would (0: no limit, as ZooKeeper)")
	f.DurationVar(&o.tickTime, "tick-time", zkserver.DefaultTickTime, "ZooKeeper's tickTime: session timeouts default to 2 and 20 ticks")
	f.DurationVar(&o.minSession, "min-session-timeout", 0, "smallest session timeout a client may negotiate (default 2 × --tick-time)")
	f.DurationVar(&o.maxSession, "max-session-timeout", 0, "largest session timeout a client may negotiate (default 20 × --tick-time)")
	f.StringVar(&o.superDigest, "super-digest", "", "ZooKeeper's DigestAuthenticationProvider.superDigest, user:base64(sha1(user:password)): a client port user or admin-port tree reader that adds that digest auth may do anything (prefer --super-digest-file or $ZK2RAFT_SUPER_DIGEST)")
	f.StringVar(&o.superDigestFile, "super-digest-file", "", "file holding the super digest (one line)")
	f.StringVar(&o.fourLetterWords, "4lw-whitelist", "srvr", "four-letter words answered on the client port, comma-separated, or * for all (ZooKeeper's 4lw.commands.whitelist)")
	f.IntVar(&o.juteMaxBuffer, "jute-maxbuffer", zkwire.DefaultMaxBuffer, "largest client request in bytes (ZooKeeper's jute.maxbuffer), on the client port and, with --proxy-addr, through the proxy (give the ensemble's)")
	f.IntVar(&o.maxClientCnxns, "max-client-cnxns", zkserver.DefaultMaxClientConnsPerIP, "connections allowed from one IP address (0: unlimited; ZooKeeper's maxClientCnxns)")
	f.IntVar(&o.maxOutstanding, "max-outstanding", zkserver.DefaultMaxOutstanding, "requests a connection may have unanswered before the server stops reading it")
	f.StringVar(&o.proxyAddr, "proxy-addr", "", "also run a dual-write proxy for ZooKeeper clients on this address (needs --zk)")
	o.tap.addFlags(cmd, "directory of the proxy's durable queue (default DATA_DIR/dualwrite-queue)", false)
	f.BoolVar(&o.reverseMirror, "reverse-mirror", true, "with --zk: while the journal is primary and this node leads, apply every journal write to ZooKeeper (the reverse mirror, so that a rollback loses nothing); give --zk to every node, and --auth as ZooKeeper's super user")
	f.StringVar(&o.reverseMarker, "reverse-mirror-marker", reversemirror.DefaultMarker, "the reverse mirror's marker node in ZooKeeper (which journal entry ZooKeeper holds)")
	f.StringVar(&o.reverseRoot, "reverse-mirror-root", "/", "the subtree of ZooKeeper the reverse mirror watches for split-brain writes and fences (cutover fence)")
	o.clusterOptions.addFlags(cmd)
	f.BoolVar(&o.insecure, "insecure", false, "run without a cluster secret: anyone who reaches the admin or Raft port controls the cluster (tests and demos on loopback only)")
	f.BoolVar(&o.openMetrics, "open-metrics", false, "serve /metrics to callers without the cluster secret")
	f.BoolVar(&o.openStatus, "open-status", false, "serve a minimal /status (id, role, leader, term, indexes, phase) to callers without the cluster secret")
	f.BoolVar(&o.acceptLoss, "accept-data-loss", false, "start even though the data dir's Raft log lost entries, cutting it back to what is intact (asks for confirmation; for a single-node journal with no other copy: a cluster member is better wiped and joined again)")
	f.BoolVar(&o.yes, "yes", false, "with --accept-data-loss: do not ask for confirmation")
}

func (o *serveOptions) config(g *globalOptions) (raftjournal.NodeConfig, error) {
	switch {
	case o.dataDir == "":
		return raftjournal.NodeConfig{}, usageErrorf("--data-dir is required")
	case o.nodeID == "":
		return raftjournal.NodeConfig{}, usageErrorf("--node-id is required")
	case o.raftAddr == "":
		return raftjournal.NodeConfig{}, usageErrorf("--raft-addr is required")
	case o.bootstrap && o.join != "":
		return raftjournal.NodeConfig{}, usageErrorf("--bootstrap and --join are exclusive")
	case o.proxyAddr != "" && o.tap.zk == "":
		return raftjournal.NodeConfig{}, usageErrorf("--proxy-addr needs --zk")
	case o.yes && !o.acceptLoss:
		return raftjournal.NodeConfig{}, usageErrorf("--yes confirms --accept-data-loss, which was not given")
	}
	if err := firstErr(intFlagIn("--jute-maxbuffer", o.juteMaxBuffer, 1, maxJuteMaxBuffer),
		intFlagIn("--max-client-cnxns", o.maxClientCnxns, 0, maxPerConnection),
		intFlagIn("--max-outstanding", o.maxOutstanding, 1, maxPerConnection)); err != nil {
		return raftjournal.NodeConfig{}, err
	}
	if o.tap.zk != "" {
		if _, err := o.tap.hosts(); err != nil {
			return raftjournal.NodeConfig{}, err
		}
		if err := znode.ValidatePath(o.reverseMarker); o.reverseMirror && err != nil {
			return raftjournal.NodeConfig{}, usageErrorf("--reverse-mirror-marker: %v", err)
		}
		if err := znode.ValidatePath(o.reverseRoot); o.reverseMirror && err != nil {
			return raftjournal.NodeConfig{}, usageErrorf("--reverse-mirror-root: %v", err)
		}
	}
	if o.tap.queueDir == "" {
		o.tap.queueDir = defaultQueueDir(o.dataDir)
	}
	o.tap.juteMaxBuffer = o.juteMaxBuffer
	cfg := raftjournal.DefaultNodeConfig()
	cfg.DataDir = o.dataDir
	cfg.NodeID = o.nodeID
	cfg.RaftAddr = o.raftAddr
	cfg.AdvertiseAddr = o.advertise
	cfg.AdminAddr = o.adminAddr
	cfg.Bootstrap = o.bootstrap
	cfg.Join = trimScheme(o.join)
	cfg.LogStore = raftjournal.LogStoreKind(o.logStore)
	cfg.CompressSnapshots = o.compress
	switch {
	case o.commitTimeout > 0:
		cfg.CommitTimeout = o.commitTimeout
	case o.commitTimeout < 0:
		return raftjournal.NodeConfig{}, usageErrorf("--commit-timeout must be positive")
	case o.clientAddr != "" || o.secureAddr != "":
		cfg.CommitTimeout = zkserver.DefaultCommitTimeout
	}
	cfg.Logger = g.logger
	creds, err := o.credentials()
	if err != nil {
		return cfg, err
	}
	cfg.Secret, cfg.TLS = creds.Secret, creds.TLS
	switch {
	case o.insecure && creds.Secret != nil:
		return cfg, usageErrorf("--insecure and a cluster secret exclude each other")
	case !o.insecure && creds.Secret == nil:
		return cfg, usageErrorf("no cluster secret: give --cluster-secret-file FILE (or $%s) with the file every node, proxy and zk2raft command of the cluster shares (make one with 'zk2raft journal new-secret --out FILE'); --insecure runs without one, and then anyone who reaches the admin or Raft port controls the cluster", envClusterSecretFile)
	}
	cfg.Insecure = o.insecure
	cfg.OpenMetrics, cfg.OpenStatus = o.openMetrics, o.openStatus
	if cfg.SuperDigest, err = o.resolveSuperDigest(); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, &ExitError{Code: ExitUsage, Err: err}
	}
	if o.insecure {
		g.logger.Warn("running without a cluster secret (--insecure): anyone who reaches the admin or raft port can change the membership, write and read every znode")
	}
	return cfg, nil
}

// resolveSuperDigest is the super digest the client port and the admin port's
// tree reads share: --super-digest, --super-digest-file or $ZK2RAFT_SUPER_DIGEST.
func (o *serveOptions) resolveSuperDigest() (string, error) {
	switch {
	case o.superDigest != "" && o.superDigestFile != "":
		return "", usageErrorf("--super-digest and --super-digest-file are exclusive")
	case o.superDigestFile != "":
		b, err := os.ReadFile(o.superDigestFile)
		if err != nil {
			return "", usageErrorf("--super-digest-file: %v", err)
		}
		return strings.TrimSpace(string(b)), nil
	case o.superDigest != "":
		return o.superDigest, nil
	}
	return os.Getenv("ZK2RAFT_SUPER_DIGEST"), nil
}

// clientConfig is the client port's configuration, or ok=false without
// --client-addr.
func (o *serveOptions) clientConfig(g *globalOptions) (cfg zkserver.Config, ok bool, err error) {
	if o.clientAddr == "" && o.secureAddr == "" {
		if o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "" || o.tlsClientAuth != "" || o.x509SuperUser != "" {
			return cfg, false, usageErrorf("the --client-tls-* flags need --secure-client-addr")
		}
		return cfg, false, nil
	}
	cfg = zkserver.DefaultConfig()
	cfg.Addr = o.clientAddr
	cfg.SecureAddr = o.secureAddr
	cfg.X509SuperUser = o.x509SuperUser
	cfg.MaxReplyBuffer = o.replyMaxBuffer
	if o.secureAddr != "" || o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "" || o.tlsClientAuth != "" {
		if cfg.TLS, err = clientTLSConfig(o); err != nil {
			return cfg, false, err
		}
	}
	cfg.TickTime = o.tickTime
	cfg.MinSessionTimeout = o.minSession
	cfg.MaxSessionTimeout = o.maxSession
	cfg.MaxBuffer = o.juteMaxBuffer
	cfg.MaxClientConnsPerIP = o.maxClientCnxns
	cfg.MaxOutstanding = o.maxOutstanding
	cfg.FourLetterWords = nil
	for _, w := range strings.Split(o.fourLetterWords, ",") {
		if w = strings.TrimSpace(w); w != "" {
			cfg.FourLetterWords = append(cfg.FourLetterWords, w)
		}
	}
	if cfg.SuperDigest, err = o.resolveSuperDigest(); err != nil {
		return cfg, false, err
	}
	cfg.Logger = g.logger.With("component", "zkserver")
	if err := cfg.Validate(); err != nil {
		return cfg, false, &ExitError{Code: ExitUsage, Err: err}
	}
	return cfg, true, nil
}

func newServeCommand(g *globalOptions) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a journal node",
		Long: `Runs one node of the Raft journal until SIGINT or SIGTERM.

A node with an empty data dir either bootstraps a new cluster (--bootstrap) or
asks a running member to add it (--join ADMIN_ADDR; the request reaches the
leader wherever it is sent). A node whose data dir holds Raft state restarts as
the member it was, and both flags are ignored.

The admin address serves /status (JSON), /metrics (Prometheus), the membership
endpoints used by --join and 'zk2raft journal', and tree reads for the proxy.

Security: every node, proxy and zk2raft command of a cluster shares one cluster
secret, a file given with --cluster-secret-file (or $` + envClusterSecretFile + `; make one
with 'zk2raft journal new-secret'). The Raft port admits only peers that prove
they hold it, and the admin port asks for it on every request (/metrics and a
minimal /status only if --open-metrics and --open-status say so); tree reads
there also honour the znodes' ZooKeeper ACLs. A node refuses to start without a
secret unless --insecure. --cluster-tls-cert, --cluster-tls-key and
--cluster-tls-ca put both ports behind mutual TLS too.

With --client-addr the node serves the ZooKeeper client protocol: any
ZooKeeper client (zkCli.sh, kazoo, Curator, go-zookeeper) connects to it with
a connect string of the nodes' client addresses. Sessions live in the
journal, so a client resumes its session on any node. In the shadow phase the
port serves reads of the mirrored tree and answers writes NOTREADONLY
(ZooKeeper stays the source of truth); in primary and finalized it is
read-write. Four-letter words (ruok, srvr, stat, mntr, conf, cons, envi,
wchs, isro, hash, ...) answer when --4lw-whitelist allows them.

With --secure-client-addr the node serves the same protocol over TLS
(ZooKeeper's secureClientPort), with --client-tls-cert and --client-tls-key.
With --client-tls-ca clients present certificates (--client-tls-client-auth
need by default, or want), and a verified certificate authenticates its
connection as x509:<subject DN> for ACLs (ZooKeeper's x509 scheme; the DN as
Java prints it, e.g. CN=app,OU=payments,O=example). SASL is not served.

With --zk and --proxy-addr the node also runs the dual-write proxy (see
'zk2raft proxy --help'): clients connect to --proxy-addr, and every write
ZooKeeper commits is mirrored into the journal through this node.

With --zk the node also runs the reverse mirror (unless --reverse-mirror=false):
while the journal is primary and this node leads, every write the journal
commits is applied to the ensemble, in commit order and exactly once (a marker
node, --reverse-mirror-marker, records which journal entry ZooKeeper holds), so
that a rollback to ZooKeeper loses nothing. Give --zk to every node (whichever
leads applies) and --auth (or --auth-file) as ZooKeeper's super user. Its lag
is in /status (reverse_mirror) and in the metrics. While primary it also watches
ZooKeeper (--reverse-mirror-root) and records every write made there around the
proxies as a split-brain write (cutover status lists them; a log line and the
metric zk2raft_reverse_mirror_split_brain_writes_total say so), and it sets and
lifts the active fence (cutover fence). Once the journal is finalized it stops
and closes the ZooKeeper sessions it kept.

When it is ready the node prints one line with its addresses on stdout (and one
with the proxy's). On SIGTERM a leader hands leadership to a follower, then the
node stops cleanly.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(g)
			if err != nil {
				return err
			}
			if _, _, err := o.clientConfig(g); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, g, cfg, &o)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// clientTLSConfig builds the secure client port's TLS configuration from the
// --client-tls-* flags.
func clientTLSConfig(o *serveOptions) (*tls.Config, error) {
	switch {
	case o.secureAddr == "":
		return nil, usageErrorf("the --client-tls-* flags need --secure-client-addr")
	case o.tlsCert == "" || o.tlsKey == "":
		return nil, usageErrorf("--secure-client-addr needs --client-tls-cert and --client-tls-key")
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, usageErrorf("--client-tls-cert %s, --client-tls-key %s: %v", o.tlsCert, o.tlsKey, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, usageErrorf("--client-tls-ca: %v", err)
		}
		c.ClientCAs = x509.NewCertPool()
		if !c.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--client-tls-ca %s: no PEM certificate in it", o.tlsCA)
		}
	}
	mode := o.tlsClientAuth
	if mode == "" {
		mode = "none"
		if o.tlsCA != "" {
			mode = "need"
		}
	}
	switch mode {
	case "need":
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case "want":
		c.ClientAuth = tls.VerifyClientCertIfGiven
	case "none":
		c.ClientAuth = tls.NoClientCert
	default:
		return nil, usageErrorf("--client-tls-client-auth %q: want need, want or none", o.tlsClientAuth)
	}
	if mode != "none" && o.tlsCA == "" {
		return nil, usageErrorf("--client-tls-client-auth %s needs --client-tls-ca to verify client certificates with", mode)
	}
	if o.x509SuperUser != "" && mode == "none" {
		return nil, usageErrorf("--client-tls-super-user needs client certificates (--client-tls-ca)")
	}
	return c, nil
}

// serve runs a node until ctx ends.
func serve(ctx context.Context, g *globalOptions, cfg raftjournal.NodeConfig, o *serveOptions) error {
	n, err := raftjournal.OpenContext(ctx, cfg)
	var dmg *raftjournal.DamageError
	if err != nil && o != nil && o.acceptLoss && errors.As(err, &dmg) && dmg.Acceptable {
		if err := confirmLoss(g, dmg, o.yes); err != nil {
			return err
		}
		cfg.AcceptLogLoss = true
		n, err = raftjournal.OpenContext(ctx, cfg)
	}
	if err != nil {
		if errors.As(err, &dmg) {
			hint := "restore the files, or rebuild the node (wipe the data dir and --join the cluster again)"
			if dmg.Acceptable {
				hint += "; a single-node journal with no other copy can start on what is left with --accept-data-loss"
			}
			return fmt.Errorf("%w; %s", err, hint)
		}
		return err
	}
	var zs *zkserver.Server
	if o != nil {
		zcfg, ok, err := o.clientConfig(g)
		if err != nil {
			n.Close()
			return err
		}
		if ok {
			zcfg.Registerer = n.Metrics()
			if zs, err = zkserver.New(n, zcfg); err != nil {
				n.Close()
				return err
			}
		}
	}
	var rt *runningTap
	if o != nil && o.proxyAddr != "" {
		rt, err = o.tap.start(ctx, g, o.proxyAddr, importer.NodeJournal(n), dualwrite.NodeView(n), n.Metrics())
		if err != nil {
			if zs != nil {
				zs.Close()
			}
			n.Close()
			return err
		}
		n.SetStatusExtension("proxy", func() any { return proxyStatus(rt) })
	}
	var rm *runningMirror
	if o != nil && o.tap.zk != "" && o.reverseMirror {
		if rm, err = o.startReverseMirror(ctx, g, n); err != nil {
			if rt != nil {
				_ = rt.close()
			}
			if zs != nil {
				zs.Close()
			}
			n.Close()
			return err
		}
		n.SetStatusExtension("reverse_mirror", func() any { return rm.m.Status() })
	}
	if !g.quiet {
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(g.stdout, "node %s serving: raft %s, admin %s://%s\n", n.ID(), n.RaftAddr(), scheme, n.AdminAddr())
		if zs != nil && zs.Addr() != "" {
			fmt.Fprintf(g.stdout, "zookeeper clients: %s\n", zs.Addr())
		}
		if zs != nil && zs.SecureAddr() != "" {
			fmt.Fprintf(g.stdout, "zookeeper clients over tls: %s\n", zs.SecureAddr())
		}
		if rt != nil {
			fmt.Fprintf(g.stdout, "dual-write proxy: clients %s, zookeeper %s\n", rt.tap.Addr(), o.tap.zk)
		}
		if rm != nil {
			fmt.Fprintf(g.stdout, "reverse mirror: zookeeper %s (while primary, on the leader)\n", o.tap.zk)
		}
	}
	// raft stops on its own when the node is removed from the cluster; the
	// process then has nothing left to serve.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var removed error
	for removed == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if n.Status().Role == "shutdown" {
				removed = fmt.Errorf("node %s: raft stopped (removed from the cluster?); see the log", n.ID())
			}
		}
	}
	g.logger.Info("shutting down", "node-id", n.ID())
	if rm != nil {
		rm.stop()
	}
	if zs != nil {
		zs.Close()
	}
	if rt != nil {
		if err := rt.close(); err != nil {
			g.logger.Warn("dual-write proxy shutdown", "error", err)
		}
	}
	if n.IsLeader() && len(n.Status().Members) > 1 {
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.TransferLeadership(tctx, ""); err != nil {
			g.logger.Warn("leadership transfer before shutdown failed", "error", err)
		}
		cancel()
	}
	if err := n.Close(); err != nil {
		return fmt.Errorf("close node %s: %w", cfg.NodeID, err)
	}
	return removed
}

// confirmLoss asks the operator to confirm starting on a damaged log.
func confirmLoss(g *globalOptions, dmg *raftjournal.DamageError, yes bool) error {
	fmt.Fprintf(g.stderr, "zk2raft: %s\n", oneLine(dmg.Error()))
	fmt.Fprintln(g.stderr, "zk2raft: --accept-data-loss starts the node on what is left: the lost log entries are dropped for good, and writes")
	fmt.Fprintln(g.stderr, "zk2raft: acknowledged by this node may be gone. In a cluster, rebuild the node instead (wipe it and --join again).")
	if yes {
		g.logger.Error("accepting the loss of log entries (--accept-data-loss --yes)", "file", dmg.Path, "damage", dmg.Problem)
		return nil
	}
	fmt.Fprint(g.stderr, "Type 'yes' to start anyway: ")
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(g.stderr) // no answer: end the prompt's line
	}
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("serve: the loss was not accepted (answer %q); nothing was changed", strings.TrimSpace(line))
	}
	g.logger.Error("accepting the loss of log entries (--accept-data-loss, confirmed)", "file", dmg.Path, "damage", dmg.Problem)
	return nil
}

// trimScheme accepts an admin address written as a URL.
func trimScheme(addr string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(addr) > len(p) && addr[:len(p)] == p {
			addr = addr[len(p):]
		}
	}
	for len(addr) > 0 && addr[len(addr)-1] == '/' {
		addr = addr[:len(addr)-1]
	}
	return addr
}

// runningMirror is the reverse mirror serve runs beside its node.
type runningMirror struct {
	m      *reversemirror.Mirror
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *runningMirror) stop() {
	r.cancel()
	<-r.done
}

// startReverseMirror starts the reverse mirror to --zk with --auth.
func (o *serveOptions) startReverseMirror(ctx context.Context, g *globalOptions, n *raftjournal.Node) (*runningMirror, error) {
	hosts, err := o.tap.hosts()
	if err != nil {
		return nil, err
	}
	auth, err := o.tap.zkAuth.parsed()
	if err != nil {
		return nil, err
	}
	cfg := reversemirror.Config{Node: n, Marker: o.reverseMarker, Root: o.reverseRoot, Logger: g.logger.With("component", "reversemirror")}
	cfg.ZooKeeper.Hosts, cfg.ZooKeeper.Auth = hosts, auth
	m, err := reversemirror.New(cfg)
	if err != nil {
		return nil, usageErrorf("--reverse-mirror-marker: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &runningMirror{m: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = m.Run(ctx)
	}()
	return r, nil
}
