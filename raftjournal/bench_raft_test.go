package raftjournal

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

// The benchmarks behind BENCHMARKS.md's journal section. Each compares against a
// baseline measured in the same run (the machines are shared and noisy):
//
//	go test -run '^$' -bench 'LogStore' -benchtime 3x ./raftjournal/
//	go test -run '^$' -bench 'ClusterImport' -benchtime 1x ./raftjournal/
//	go test -run '^$' -bench 'ClusterNativeWrites' -benchtime 1x ./raftjournal/
//	go test -run '^$' -bench 'MemoryPerNode' -benchtime 1x ./raftjournal/

// BenchmarkLogStore drives raft-wal and raft-boltdb/v2 the way raft does
// (StoreLogs of a batch, one call per disk write, DeleteRange to compact
// behind a snapshot) with the journal's two workloads, through the
// checksumming wrapper the node uses, one whole workload per iteration
// (-benchtime 1x):
//
//   - import: 2,500 entries of 1,000 nodes with 100-byte data (~160 KB each),
//     8 per write, about 400 MB in all; whenever more than 128 MB are retained
//     the log is compacted down to its last 100 entries (what a snapshot does);
//   - native: 256k single-create entries (~150 bytes), 64 per write (64
//     concurrent writers), compacted from 200k entries down to 20k.
func BenchmarkLogStore(b *testing.B) {
	var importEntries [][]byte
	benchBatches(8_000, 100, 1_000, func(e []byte) { importEntries = append(importEntries, e) })
	native := Encode(&Write{Session: 1, Time: 1, Ops: []Op{{Kind: OpCreate, Path: "/bench/node-0000000001", Data: bytes.Repeat([]byte("d"), 100), ACL: znode.WorldAnyone(), Mode: ModePersistentSequential}}})
	workloads := []struct {
		name         string
		entries      [][]byte // one write's batch
		writes       int
		compactAbove uint64 // retained entries that trigger compaction
		keepAfter    uint64
	}{
		{"import", importEntries, 2_500 / len(importEntries), 128 << 20 / uint64(len(importEntries[0])), 100},
		{"native", repeatEntry(native, 64), 256_000 / 64, 200_000, 20_000},
	}
	for _, kind := range []LogStoreKind{LogStoreWAL, LogStoreBolt} {
		for _, w := range workloads {
			b.Run(fmt.Sprintf("%s/%s", kind, w.name), func(b *testing.B) {
				for range b.N {
					dir := b.TempDir()
					cfg := DefaultNodeConfig()
					cfg.LogStore = kind
					st, err := openStores(dir, &cfg, hclog.NewNullLogger())
					if err != nil {
						b.Fatal(err)
					}
					var next, first uint64 = 1, 1
					var bytesWritten, entries int64
					lat := make([]time.Duration, 0, w.writes)
					batch := make([]*raft.Log, len(w.entries))
					start := time.Now()
					for range w.writes {
						for i, e := range w.entries {
							batch[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: e}
							next++
							bytesWritten += int64(len(e))
						}
						entries += int64(len(batch))
						t0 := time.Now()
						if err := st.log.StoreLogs(batch); err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t0))
						if next-first > w.compactAbove {
							if err := st.log.DeleteRange(first, next-w.keepAfter-1); err != nil {
								b.Fatal(err)
							}
							first = next - w.keepAfter
						}
					}
					el := time.Since(start).Seconds()
					slices.Sort(lat)
					b.ReportMetric(float64(bytesWritten)/el/1e6, "MB/s")
					b.ReportMetric(float64(entries)/el, "entries/s")
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-write-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-write-ms")
					b.ReportMetric(float64(dirSize(dir))/1e6, "MB-on-disk")
					if err := st.close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func repeatEntry(e []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = e
	}
	return out
}

// dirSize is the disk space a directory's files take (allocated blocks: raft-wal
// preallocates its segments).
func dirSize(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fileBlocks(fi)
		}
		return nil
	})
	return total
}

// fileBlocks is the space a file takes on disk.
func fileBlocks(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}

// benchCluster starts a three-node cluster for a benchmark.
func benchCluster(b *testing.B, tweak func(*NodeConfig)) *testCluster {
	b.Helper()
	c := newTestCluster(b, 3, func(cfg *NodeConfig) {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		// The default (production) timings: the loopback test timings are too
		// tight for three nodes saturating two cores.
		def := DefaultNodeConfig()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout
		if tweak != nil {
			tweak(cfg)
		}
	})
	return c
}

// BenchmarkClusterImport measures ImportBatch on a three-node loopback cluster:
// 200k nodes of 100 bytes in batches of 1,000, 32 batches in flight, against
// the baseline of one awaited entry per node (2,000 nodes), in the same run.
// Targets: at least 20× the baseline and 100k nodes/s.
func BenchmarkClusterImport(b *testing.B) {
	const nodes, baselineNodes, batch, inFlight = 200_000, 2_000, 1_000, 32
	var entries [][]byte
	benchBatches(nodes, 100, batch, func(e []byte) { entries = append(entries, e) })
	for range b.N {
		b.StopTimer()
		c := benchCluster(b, nil)
		l := c.nodes[c.leader()]
		ctx := context.Background()
		b.StartTimer()

		start, cpu0 := time.Now(), cpuTime()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(inFlight)
		for _, e := range entries {
			g.Go(func() error {
				res, err := l.SubmitEntry(gctx, e)
				if err == nil {
					err = res.Err
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		pipelined := float64(nodes) / time.Since(start).Seconds()
		// The machine is shared: nodes per CPU-second of this process (three
		// nodes and the client, GC included) does not depend on what else runs.
		perCPU := float64(nodes) / (cpuTime() - cpu0).Seconds()

		// Baseline: the same kind of nodes, one entry each, each awaited.
		start = time.Now()
		for i := range baselineNodes {
			n := &znode.Node{Path: fmt.Sprintf("/base%06d", i), Data: bytes.Repeat([]byte("d"), 100), ACL: znode.WorldAnyone(),
				Stat: znode.Stat{Czxid: 1<<40 + int64(i), Mzxid: 1<<40 + int64(i), Pzxid: 1<<40 + int64(i), Ctime: 1, Mtime: 1}}
			res, err := l.ImportBatch(ctx, &ImportBatch{Nodes: []*znode.Node{n}})
			if err == nil {
				err = res.Err
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		single := float64(baselineNodes) / time.Since(start).Seconds()
		b.StopTimer()
		c.converge()
		if got := l.FSM().NodeCount(); got != nodes+baselineNodes+4 {
			b.Fatalf("%d nodes after the import", got)
		}
		b.ReportMetric(pipelined, "nodes/s")
		b.ReportMetric(perCPU, "nodes/cpu-s")
		b.ReportMetric(single, "baseline-nodes/s")
		b.ReportMetric(pipelined/single, "x-baseline")
		c.closeAll()
	}
}

// BenchmarkClusterNativeWrites runs 64 concurrent callers doing create then
// setData (100-byte data) on a three-node journal (callers spread over the
// nodes, followers forwarding) and, in the same run, on a three-server
// ZooKeeper 3.8 ensemble through go-zookeeper (the callers spread over eight
// connections to the three servers). The machine is shared, so the two take
// turns in short rounds (J Z Z J J Z Z J) and each side's time is summed.
// Target: the journal at least as fast.
func BenchmarkClusterNativeWrites(b *testing.B) {
	const callers, perRound, rounds = 64, 40, 8
	data := bytes.Repeat([]byte("d"), 100)
	for range b.N {
		b.StopTimer()
		c := benchCluster(b, nil)
		c.primary()
		ctx := context.Background()
		if _, _, err := c.nodes[0].Create(ctx, "/bench", nil, ModePersistent); err != nil {
			b.Fatal(err)
		}
		ens := zktest.New(b, zktest.Options{Servers: 3, Config: map[string]string{"forceSync": zkForceSync()}})
		conns := make([]*zk.Conn, 8)
		for i := range conns {
			hosts := ens.Hosts()
			conn, events, err := zk.Connect([]string{hosts[i%len(hosts)]}, 30*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			for conn.State() != zk.StateHasSession {
				<-events
			}
			go func() {
				for range events {
				}
			}()
			conns[i] = conn
		}
		if _, err := conns[0].Create("/bench", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		journalRound := func(r int) error {
			var g errgroup.Group
			for w := range callers {
				n := c.nodes[w%3]
				g.Go(func() error {
					for i := range perRound {
						p := fmt.Sprintf("/bench/r%d-c%02d-%d", r, w, i)
						if _, _, err := n.Create(ctx, p, data, ModePersistent); err != nil {
							return err
						}
						if _, err := n.Set(ctx, p, data, 0); err != nil {
							return err
						}
					}
					return nil
				})
			}
			return g.Wait()
		}
		zkRound := func(r int) error {
			var g errgroup.Group
			for w := range callers {
				conn := conns[w%len(conns)]
				g.Go(func() error {
					for i := range perRound {
						p := fmt.Sprintf("/bench/r%d-c%02d-%d", r, w, i)
						if _, err := conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
							return err
						}
						if _, err := conn.Set(p, data, 0); err != nil {
							return err
						}
					}
					return nil
				})
			}
			return g.Wait()
		}
		var tj, tz, cj time.Duration
		b.StartTimer()
		for r := range rounds {
			journalFirst := r%4 == 0 || r%4 == 3
			for k := range 2 {
				start, cpu0 := time.Now(), cpuTime()
				if (k == 0) == journalFirst {
					if err := journalRound(r); err != nil {
						b.Fatalf("journal round %d: %v", r, err)
					}
					tj += time.Since(start)
					cj += cpuTime() - cpu0
				} else {
					if err := zkRound(r); err != nil {
						b.Fatalf("zookeeper round %d: %v", r, err)
					}
					tz += time.Since(start)
				}
			}
		}
		b.StopTimer()
		ops := float64(2 * callers * perRound * rounds)
		journal, zookeeper := ops/tj.Seconds(), ops/tz.Seconds()
		for _, conn := range conns {
			conn.Close()
		}
		ens.Close()
		c.closeAll()
		b.ReportMetric(journal, "ops/s")
		b.ReportMetric(ops/cj.Seconds(), "ops/cpu-s")
		b.ReportMetric(zookeeper, "zookeeper-ops/s")
		b.ReportMetric(journal/zookeeper, "x-zookeeper")
	}
}

// BenchmarkClusterLeaderWrites is the same journal workload with every caller
// on the leader (no forwarding), to show what forwarding costs.
func BenchmarkClusterLeaderWrites(b *testing.B) {
	const callers, perCaller = 64, 150
	data := bytes.Repeat([]byte("d"), 100)
	for range b.N {
		b.StopTimer()
		c := benchCluster(b, nil)
		c.primary()
		ctx := context.Background()
		l := c.nodes[c.leader()]
		if _, _, err := l.Create(ctx, "/bench", nil, ModePersistent); err != nil {
			b.Fatal(err)
		}
		var ops atomic.Int64
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for w := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perCaller {
					p := fmt.Sprintf("/bench/c%02d-%d", w, i)
					if _, _, err := l.Create(ctx, p, data, ModePersistent); err == nil {
						ops.Add(1)
					}
					if _, err := l.Set(ctx, p, data, 0); err == nil {
						ops.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(ops.Load())/time.Since(start).Seconds(), "ops/s")
		b.StopTimer()
		c.closeAll()
	}
}

// zkForceSync is ZooKeeper's forceSync for the comparison: "yes" (fsync before
// acknowledging, as the journal does) unless ZK2RAFT_BENCH_ZK_FORCESYNC says
// otherwise (zktest's default is "no").
func zkForceSync() string {
	if v := os.Getenv("ZK2RAFT_BENCH_ZK_FORCESYNC"); v != "" {
		return v
	}
	return "yes"
}
