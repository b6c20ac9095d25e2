package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
	"github.com/zk2raft/zk2raft/znode"
)

// newDevCommand groups the hidden developer verbs used by demos and benchmarks.
func newDevCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "dev",
		Short:  "Developer tools for demos and benchmarks (not part of the stable interface)",
		Hidden: true,
		Args:   noArgs,
		RunE:   func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newDevEnsembleCommand(g),
		newDevDigestCommand(g),
		newDevSeedCommand(g),
		newDevRehearseCommand(g),
	)
	return cmd
}

type devEnsembleOptions struct {
	dir           string
	servers       int
	extendedTypes bool
}

func newDevEnsembleCommand(g *globalOptions) *cobra.Command {
	var o devEnsembleOptions
	cmd := &cobra.Command{
		Use:   "ensemble",
		Short: "Run a local ZooKeeper ensemble on free loopback ports until interrupted",
		Long: `Starts a ZooKeeper 3.8 ensemble from Debian's zookeeper package on free loopback
ports, prints its connect string on stdout as soon as it serves, and runs until
SIGINT or SIGTERM, then stops the servers. Data lives under --dir.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.dir == "" {
				return usageErrorf("--dir is required")
			}
			if err := os.MkdirAll(o.dir, 0o755); err != nil {
				return err
			}
			ens, err := zktest.Start(ctx, zktest.Options{Servers: o.servers, ExtendedTypes: o.extendedTypes, BaseDir: o.dir})
			if err != nil {
				return err
			}
			defer ens.Close()
			fmt.Fprintln(g.stdout, ens.ConnectString())
			g.logger.Info("ensemble serving", "connect", ens.ConnectString(), "servers", o.servers, "dir", o.dir)
			<-ctx.Done()
			g.logger.Info("stopping ensemble")
			return ens.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory for the servers' data and logs")
	f.IntVar(&o.servers, "servers", 1, "ensemble size: 1 or 3")
	f.BoolVar(&o.extendedTypes, "extended-types", true, "enable TTL nodes (zookeeper.extendedTypesEnabled)")
	return cmd
}

type devDigestOptions struct {
	zk      string
	zkAuth  zkAuthOptions
	align   string
	timeout time.Duration
	journal string
	cluster clusterOptions
}

func newDevDigestCommand(g *globalOptions) *cobra.Command {
	var o devDigestOptions
	cmd := &cobra.Command{
		Use:   "digest",
		Short: "Recompute ZooKeeper's tree digest from the client API and compare it with the server's hash log",
		Long: `Walks the whole tree one request at a time, recomputes ZooKeeper's DataTree digest
from what the client API returns, and compares it with the newest entry of the first
server's digest log (the hash four-letter word), which ZooKeeper keeps only for
zxids that are multiples of 128. The comparison is exact only when the tree holds
no container or TTL nodes (clients cannot see their raw owner) and when no write
landed after the logged zxid; the output says which zxid was compared. Against a
journal node's client port, --journal ADMIN_ADDR takes the raw owners of container
and TTL nodes from the journal's tree (its admin port), so that the tree read
through the client port is checked against the journal's digest with them.
Exits 3 when a comparable entry exists and differs.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			hosts, err := zkclient.ParseHosts(o.zk)
			if err != nil {
				return usageErrorf("--zk: %v", err)
			}
			auths, err := o.zkAuth.parsed()
			if err != nil {
				return err
			}
			conn, err := exporter.Connect(ctx, hosts, exporter.ConnectOptions{Auth: auths, Logger: g.logger})
			if err != nil {
				return err
			}
			defer conn.Close()
			if o.align != "" {
				zxid, err := alignZxid(conn, o.align)
				if err != nil {
					return err
				}
				g.logger.Info("aligned the last zxid on a digest-log entry", "zxid", fmt.Sprintf("%#x", zxid), "node", o.align)
			}
			var wo exporter.WalkOptions
			if o.journal != "" {
				raw, err := o.rawOwners(ctx)
				if err != nil {
					return err
				}
				g.logger.Info("raw owners of container and TTL nodes from the journal", "nodes", len(raw))
				wo.RawOwner = func(path string, clientOwner int64) int64 {
					if r, ok := raw[path]; ok && clientOwner == 0 {
						return r
					}
					return clientOwner
				}
			}
			digest, nodes, err := exporter.ClientDigest(ctx, conn, wo)
			if err != nil {
				return err
			}
			out, err := zkclient.FourLetterWord(ctx, hosts[0], "hash")
			if err != nil {
				return err
			}
			entries, err := zkclient.ParseDigestLog(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "client-api digest: %v over %d nodes\n", digest, nodes)
			if len(entries) == 0 {
				fmt.Fprintf(g.stdout, "server %s: no digest logged yet (ZooKeeper logs one every 128 zxids)\n", hosts[0])
				return nil
			}
			newest := entries[len(entries)-1]
			current, err := zkclient.ServerZxid(ctx, hosts[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "server %s: digest %v at zxid %#x; server's last zxid %#x\n", hosts[0], newest.Digest, newest.Zxid, current)
			if current != newest.Zxid {
				fmt.Fprintln(g.stdout, "not comparable: writes landed after the last logged zxid")
				return nil
			}
			if newest.Digest == digest {
				fmt.Fprintln(g.stdout, "match: the tree read through the client API is exactly what ZooKeeper digested")
				return nil
			}
			return &ExitError{Code: ExitDifferences, Err: fmt.Errorf("digest %v differs from the server's %v at zxid %#x (container or TTL nodes, or a real difference)", digest, newest.Digest, newest.Zxid)}
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.zk, "zk", "", "ZooKeeper hosts, host:port[,host:port...]")
	o.zkAuth.addFlags(cmd, "credentials")
	f.StringVar(&o.align, "align", "", "first write this scratch node until the last zxid is a multiple of 128 (changes the tree)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	f.StringVar(&o.journal, "journal", "", "when --zk is a journal node's client port: its admin address, to take the raw owner of container and TTL nodes (which clients see as 0) from the journal's tree")
	o.cluster.addFlags(cmd)
	return cmd
}

// rawOwners reads the journal's tree through its admin port and returns the
// raw ephemeralOwner of every node that has one (ephemerals, containers, TTL
// nodes).
func (o *devDigestOptions) rawOwners(ctx context.Context) (map[string]int64, error) {
	creds, err := o.cluster.credentials()
	if err != nil {
		return nil, err
	}
	var members []string
	for _, a := range strings.Split(o.journal, ",") {
		if a = strings.TrimSpace(a); a != "" {
			members = append(members, a)
		}
	}
	view := dualwrite.FailoverView(func() []string { return members }, func(addr string) *raftjournal.AdminClient {
		return raftjournal.NewAdminClient(addr, creds)
	})
	raw := map[string]int64{}
	err = view.Walk(ctx, "/", func(n *znode.Node) error {
		if n.Stat.EphemeralOwner != 0 {
			raw[n.Path] = n.Stat.EphemeralOwner
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dev digest: reading the journal's tree: %w", o.cluster.explain(err))
	}
	return raw, nil
}

// alignZxid writes path (creating it) until the ensemble's last zxid is a multiple
// of 128, the only zxids ZooKeeper logs a digest for. It assumes no other client
// writes meanwhile.
func alignZxid(conn *zk.Conn, path string) (int64, error) {
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return 0, fmt.Errorf("align: create %s: %w", path, err)
	}
	for {
		st, err := conn.Set(path, []byte("zk2raft digest alignment"), -1)
		if err != nil {
			return 0, fmt.Errorf("align: set %s: %w", path, err)
		}
		if st.Mzxid%128 == 0 {
			return st.Mzxid, nil
		}
	}
}
