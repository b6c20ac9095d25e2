package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/zkclient"
)

type devSeedOptions struct {
	zk          string
	profile     string
	nodes       int
	seed        int64
	root        string
	concurrency int
	conns       int
	hold        bool
	json        bool
	timeout     time.Duration
}

func newDevSeedCommand(g *globalOptions) *cobra.Command {
	var o devSeedOptions
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Write a deterministic realistic or adversarial tree into a live ensemble",
		Long: `Writes a tree generated from --seed into a live ensemble with many requests in
flight, and prints what it wrote. The same flags always give the same tree (paths,
data, ACLs, kinds, versions and sequential names); zxids and times are ZooKeeper's.

Profiles: ` + strings.Join(treegen.Profiles(), ", ") + `. The adversarial profile
covers the tree-shaped input classes of the prior-art notes (binary, nil vs empty,
data near 1 MiB, 100k children, a 500-level path, unicode names, a child named
zookeeper, sequential children after deletes, ephemerals, containers, TTL nodes,
ACLs including a subtree readable only with the generator's digest credential).

Ephemerals live as long as the generator's sessions: they are deleted when this
command exits, unless --hold keeps it running until SIGINT or SIGTERM.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts, err := zkclient.ParseHosts(o.zk)
			if err != nil {
				return usageErrorf("--zk: %v", err)
			}
			// 0 asks for the generator's default.
			if err := firstErr(intFlagIn("--concurrency", o.concurrency, 0, 1<<16),
				intFlagIn("--conns", o.conns, 0, 1024)); err != nil {
				return err
			}
			opts := treegen.Options{
				Profile: o.profile, Nodes: o.nodes, Seed: o.seed, Root: o.root,
				Concurrency: o.concurrency, Conns: o.conns, Logger: g.logger,
			}
			if err := opts.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			seedCtx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			tree, err := treegen.Seed(seedCtx, hosts, opts)
			if err != nil {
				return err
			}
			defer tree.Close()
			if err := printSeedSummary(g, o, tree); err != nil {
				return err
			}
			if o.hold {
				g.logger.Info("holding the ephemerals' sessions until interrupted")
				<-ctx.Done()
			}
			return tree.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.zk, "zk", "", "ZooKeeper hosts, host:port[,host:port...]")
	f.StringVar(&o.profile, "profile", treegen.ProfileKafka, "tree profile: "+strings.Join(treegen.Profiles(), ", "))
	f.IntVar(&o.nodes, "nodes", 10_000, "approximate number of nodes")
	f.Int64Var(&o.seed, "seed", 1, "generator seed")
	f.StringVar(&o.root, "root", "/", "where the tree goes")
	f.IntVar(&o.concurrency, "concurrency", 0, "requests in flight (0 = the generator's default)")
	f.IntVar(&o.conns, "conns", 0, "client connections (0 = the generator's default)")
	f.BoolVar(&o.hold, "hold", false, "keep the ephemerals' sessions open until interrupted")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	return cmd
}

func printSeedSummary(g *globalOptions, o devSeedOptions, tree *treegen.Tree) error {
	c := tree.Counts
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"profile": o.profile, "seed": o.seed, "root": o.root,
			"nodes": c.Nodes, "ops": len(tree.Plan.Ops), "counts": c,
			"write_seconds": tree.WriteTime.Seconds(), "ops_per_second": tree.OpsPerSecond(),
			"extended_types": tree.ExtendedTypes, "sessions": len(tree.SessionIDs),
		})
	}
	_, err := fmt.Fprintf(g.stdout,
		"seeded %d nodes (%s, seed %d, root %s) with %d writes in %.2fs (%.0f writes/s)\n"+
			"  persistent %d, ephemeral %d, container %d, ttl %d, sequential %d, protected %d, data %d bytes, depth %d, widest %d\n",
		c.Nodes, o.profile, o.seed, o.root, len(tree.Plan.Ops), tree.WriteTime.Seconds(), tree.OpsPerSecond(),
		c.Persistent, c.Ephemeral, c.Container, c.TTL, c.Sequential, c.Protected, c.DataBytes, c.MaxDepth, c.MaxFanout)
	return err
}
