//go:build linux

package dualwrite

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/importer"
	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/zkload"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/zkclient"
)

var (
	tailRate    = flag.Float64("tail.rate", 5000, "BenchmarkTailLag: writes per second the load aims at")
	tailDur     = flag.Duration("tail.dur", 10*time.Second, "BenchmarkTailLag: how long the load runs")
	tailServers = flag.Int("tail.servers", 3, "BenchmarkTailLag: ZooKeeper servers (1 or 3)")
)

// BenchmarkTailLag runs a tail beside one server of an ensemble under a
// write load aimed at -tail.rate writes per second (zkload: creates,
// setData, deletes, multis, ephemerals, containers, TTL nodes, session
// closes), mirroring into a one-node journal in the same process. Sampled
// every 20 ms: the tail's lag (the age, by ZooKeeper's txn times, of the
// oldest txn read and not yet in the journal). Reported: the write rate
// ZooKeeper achieved, the tail's mirroring rate over the same window and
// their ratio (x-load: 1 means it kept up), the lag's p50, p99 and max, and
// how long it took to catch up once the load stopped. Two ways: "logged"
// mirrors what the server has logged; "applied" (--zk-server) waits for the
// server to have applied each txn, asking it with srvr.
func BenchmarkTailLag(b *testing.B) {
	ens := zktest.New(b, zktest.Options{Servers: *tailServers, ExtendedTypes: true,
		SystemProperties: map[string]string{"znode.container.checkIntervalMs": "1000"}})
	hosts := ens.Hosts()
	n := journalNode(b)
	// The server must have logged something before a tail can follow it.
	c := dialZK(b, hosts)
	if _, err := c.Create("/bench-tail", nil, 0, openACL()); err != nil {
		b.Fatal(err)
	}
	server := ens.Servers()[len(ens.Servers())-1]
	for _, applied := range []bool{false, true} {
		name := "logged"
		if applied {
			name = "applied"
		}
		b.Run(name, func(b *testing.B) { benchTailLag(b, hosts, n, server, name, applied) })
	}
	b.Run("backlog", func(b *testing.B) { benchTailBacklog(b, hosts, n, server) })
}

// benchTailBacklog measures how fast the tail mirrors when it is not waiting
// for ZooKeeper: the load runs first with no tail, then a tail starts at the
// zxid before the load and works through the backlog. Its rate is the most
// the tail can follow, whatever rate ZooKeeper manages on this machine.
func benchTailBacklog(b *testing.B, hosts []string, n *raftjournal.Node, server zktest.Server) {
	var txns, secs float64
	for i := range b.N {
		z0, err := zkclient.ServerZxid(b.Context(), server.ClientAddr)
		if err != nil {
			b.Fatal(err)
		}
		load, err := zkload.Start(hosts, zkload.Options{Root: fmt.Sprintf("/bench-tail/backlog-%d", i), Workers: 64, Rate: *tailRate, TTL: true})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(*tailDur) // the load runs; nothing is measured meanwhile
		if _, err := load.Stop(); err != nil {
			b.Fatalf("load: %v", err)
		}
		zEnd, err := zkclient.ServerZxid(b.Context(), server.ClientAddr)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		tl, err := StartTail(b.Context(), TailConfig{DataDir: server.DataDir, Journal: importer.NodeJournal(n),
			Name: fmt.Sprintf("bench-backlog-%d", i), From: z0, FromSet: true, Logger: testlog.New(b)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
		if err := tl.WaitMirrored(ctx, zEnd); err != nil {
			b.Fatal(err)
		}
		cancel()
		elapsed := time.Since(start)
		if err := tl.Close(); err != nil {
			b.Fatal(err)
		}
		txns += float64(zEnd - z0)
		secs += elapsed.Seconds()
		b.Logf("round %d: a backlog of %d txns mirrored in %v (tail start included)", i, zEnd-z0, elapsed.Round(time.Millisecond))
	}
	b.ReportMetric(txns/secs, "backlog-txns/s")
	b.ReportMetric(txns/float64(b.N), "backlog-txns")
}

func benchTailLag(b *testing.B, hosts []string, n *raftjournal.Node, server zktest.Server, name string, applied bool) {
	var lags []time.Duration
	var zkRate, tailRateGot, catchup float64
	for i := range b.N {
		cfg := TailConfig{DataDir: server.DataDir, Journal: importer.NodeJournal(n), Name: "bench-" + name,
			// The journal already holds the other run's mirror: start at the
			// end of the log.
			SourceZxid: func(context.Context) (int64, error) { return 0, nil },
			Logger:     testlog.New(b)}
		if applied {
			cfg.ServerZxid = func(ctx context.Context) (int64, error) { return zkclient.ServerZxid(ctx, server.ClientAddr) }
		}
		tl, err := StartTail(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		z0, err := zkclient.ServerZxid(b.Context(), server.ClientAddr)
		if err != nil {
			b.Fatal(err)
		}
		load, err := zkload.Start(hosts, zkload.Options{Root: "/bench-tail/" + name, Workers: 64, Rate: *tailRate, TTL: true})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		m0 := tl.Mirrored()
		tick := time.NewTicker(20 * time.Millisecond)
		for time.Since(t0) < *tailDur {
			<-tick.C
			lags = append(lags, tl.lag())
		}
		tick.Stop()
		elapsed := time.Since(t0)
		z1, err := zkclient.ServerZxid(b.Context(), server.ClientAddr)
		if err != nil {
			b.Fatal(err)
		}
		m1 := tl.Mirrored()
		stats, err := load.Stop()
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		stopped := time.Now()
		zEnd, err := zkclient.ServerZxid(b.Context(), server.ClientAddr)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
		if err := tl.WaitMirrored(ctx, zEnd); err != nil {
			b.Fatal(err)
		}
		cancel()
		catchup += time.Since(stopped).Seconds()
		zkRate += float64(z1-z0) / elapsed.Seconds()
		tailRateGot += float64(m1-m0) / elapsed.Seconds()
		b.Logf("round %d: %d writes from the load, ZooKeeper %d txns in %v, the tail mirrored %d", i, stats.Writes, z1-z0, elapsed.Round(time.Millisecond), m1-m0)
		if err := tl.Close(); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(lags)
	q := func(f float64) float64 { return float64(lags[int(f*float64(len(lags)-1))]) / float64(time.Millisecond) }
	rounds := float64(b.N)
	b.ReportMetric(zkRate/rounds, "zk-txns/s")
	b.ReportMetric(tailRateGot/rounds, "mirrored-txns/s")
	b.ReportMetric(tailRateGot/zkRate, "x-load")
	b.ReportMetric(q(0.5), "lag-p50-ms")
	b.ReportMetric(q(0.99), "lag-p99-ms")
	b.ReportMetric(q(1), "lag-max-ms")
	b.ReportMetric(catchup/rounds*1000, "catchup-ms")
}
