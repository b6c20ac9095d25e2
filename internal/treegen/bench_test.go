package treegen

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

// BenchmarkSeedKafka100k seeds a 100k-node kafka tree into a fresh
// single-server ensemble and reports nodes/s (wall time of Apply: connect,
// probe, write every op) and ops/s (writes only).
//
//	go test -run '^$' -bench SeedKafka100k -benchtime 1x ./internal/treegen/
func BenchmarkSeedKafka100k(b *testing.B) { benchSeedKafka(b, 1) }

// BenchmarkSeedKafka100k3Servers is the same against three servers.
func BenchmarkSeedKafka100k3Servers(b *testing.B) { benchSeedKafka(b, 3) }

var (
	benchConcurrency = flag.Int("treegen.concurrency", 0, "Options.Concurrency for benchmarks (0: default)")
	benchConns       = flag.Int("treegen.conns", 0, "Options.Conns for benchmarks (0: default)")
)

func benchSeedKafka(b *testing.B, servers int) {
	e := zktest.New(b, zktest.Options{Servers: servers, ExtendedTypes: true, MaxHeapMB: 1024})
	var nodes, ops int
	var wall, write time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p, err := NewPlan(Options{Profile: ProfileKafka, Nodes: 100_000, Seed: int64(i + 1), Root: fmt.Sprintf("/bench%d", i),
			Concurrency: *benchConcurrency, Conns: *benchConns})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		tree, err := p.Apply(b.Context(), e.Hosts())
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(start)
		write += tree.WriteTime
		nodes += tree.Len()
		ops += len(tree.Plan.Ops)
		b.StopTimer()
		tree.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(nodes)/wall.Seconds(), "nodes/s")
	b.ReportMetric(float64(ops)/write.Seconds(), "ops/s")
	b.ReportMetric(float64(nodes)/float64(b.N), "nodes/op")
}

// BenchmarkSeedKafkaSequentialBaseline seeds a 20k-node kafka tree one request
// at a time over one connection: the baseline the pipelined seeding is measured
// against (scripts/bench.sh prints the ratio).
func BenchmarkSeedKafkaSequentialBaseline(b *testing.B) {
	e := zktest.New(b, zktest.Options{Servers: 1, ExtendedTypes: true, MaxHeapMB: 1024})
	var nodes int
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		p, err := NewPlan(Options{Profile: ProfileKafka, Nodes: 20_000, Seed: int64(i + 1), Root: fmt.Sprintf("/seq%d", i), Concurrency: 1, Conns: 1})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		tree, err := p.Apply(b.Context(), e.Hosts())
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(start)
		nodes += tree.Len()
		b.StopTimer()
		tree.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(nodes)/wall.Seconds(), "nodes/s")
}
