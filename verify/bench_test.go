package verify

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/exporter"
	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/verify/verifytest"
	"github.com/zk2raft/zk2raft/znode"
)

var benchNodes = flag.Int("verify.nodes", 100_000, "size of the trees the verify benchmarks compare")

// largePair writes two identical synthetic snapshots of about n nodes with
// 100-byte data under dir.
func largePair(b *testing.B, dir string, n int) (string, string) {
	b.Helper()
	var p [2]string
	for i := range p {
		p[i] = filepath.Join(dir, fmt.Sprintf("large-%d-%d.snap", n, i))
		verifytest.WriteLarge(b, p[i], verifytest.LargeOptions{Nodes: n, DataSize: 100})
	}
	return p[0], p[1]
}

// BenchmarkCompareSnapshots is a full comparison of two identical snapshot
// files (-verify.nodes, default 100k), against the baseline of reading both
// files at once without comparing (CRCs, path checks and digests, which the
// comparison needs too). Rates are in nodes compared (pairs) per second.
//
//	go test -run '^$' -bench CompareSnapshots -benchtime 5x ./verify/
func BenchmarkCompareSnapshots(b *testing.B) {
	a, c := largePair(b, b.TempDir(), *benchNodes)
	rates := map[string]float64{}
	b.Run("read-both", func(b *testing.B) {
		var nodes int64
		for range b.N {
			var wg sync.WaitGroup
			counts := make([]int64, 2)
			for i, p := range []string{a, c} {
				wg.Go(func() {
					r, err := znode.OpenSnapshotFile(p)
					if err != nil {
						panic(err)
					}
					defer r.Close()
					for {
						if _, err := r.NextNode(); err != nil {
							return
						}
						counts[i]++
					}
				})
			}
			wg.Wait()
			nodes += counts[0]
		}
		rates["read"] = reportRate(b, nodes)
	})
	b.Run("compare", func(b *testing.B) {
		var nodes int64
		for range b.N {
			r := mustCompare(b, snapSource(b, a), snapSource(b, c), DefaultConfig())
			if !r.Equal() {
				b.Fatal("not equal")
			}
			nodes += r.Compared
		}
		rates["compare"] = reportRate(b, nodes)
	})
	if rates["read"] > 0 && rates["compare"] > 0 {
		fmt.Printf("verify snap vs snap (%d nodes): compare %.0f nodes/s, reading both files %.0f nodes/s, compare/read %.2fx\n",
			*benchNodes, rates["compare"], rates["read"], rates["compare"]/rates["read"])
	}
}

// benchKafka is the kafka tree the ZooKeeper benchmark walks, seeded once.
var benchKafka struct {
	once sync.Once
	tree *treegen.Tree
	err  error
}

// BenchmarkCompareZooKeeper compares a live 100k-node kafka tree
// (-verify.nodes) with an export of it, against the export itself (the same
// walker into a file) measured in the same run: verify is bound by
// ZooKeeper's reads, so it should reach at least 0.8× the export rate.
//
//	go test -run '^$' -bench CompareZooKeeper -benchtime 3x ./verify/
func BenchmarkCompareZooKeeper(b *testing.B) {
	benchKafka.once.Do(func() {
		start := time.Now()
		benchKafka.tree, benchKafka.err = treegen.Seed(b.Context(), ensemble.Hosts(), treegen.Options{
			Profile: treegen.ProfileKafka, Nodes: *benchNodes, Seed: 1, Root: fmt.Sprintf("/bench-kafka-%d", *benchNodes)})
		if benchKafka.err == nil {
			fmt.Fprintf(os.Stderr, "seeded kafka tree: %d nodes in %v\n", benchKafka.tree.Len(), time.Since(start).Round(time.Millisecond))
		}
	})
	if benchKafka.err != nil {
		b.Fatal(benchKafka.err)
	}
	tree := benchKafka.tree
	hosts := ensemble.Hosts()
	dir := b.TempDir()
	snap := filepath.Join(dir, "kafka.snap")
	rates := map[string]float64{}
	b.Run("export", func(b *testing.B) {
		var nodes int64
		for range b.N {
			cfg := exporter.DefaultConfig(hosts)
			cfg.Root = tree.Root
			w, err := exporter.NewWalker(cfg)
			if err != nil {
				b.Fatal(err)
			}
			sum, err := exporter.ExportFile(b.Context(), w, exporter.FileOptions{Path: snap})
			w.Close()
			if err != nil {
				b.Fatal(err)
			}
			nodes += sum.Nodes
		}
		rates["export"] = reportRate(b, nodes)
	})
	b.Run("zk-vs-snap", func(b *testing.B) {
		var nodes int64
		for range b.N {
			r := mustCompare(b, zkSource(b, hosts, tree.Root, nil), snapSource(b, snap), DefaultConfig())
			if !r.Equal() {
				b.Fatalf("not equal: %d differences", r.Counts.Differences)
			}
			nodes += r.Compared
		}
		rates["compare"] = reportRate(b, nodes)
	})
	if rates["export"] > 0 && rates["compare"] > 0 {
		fmt.Printf("verify zk vs snap (%d-node kafka tree, 1 server): compare %.0f nodes/s, export %.0f nodes/s, compare/export %.2fx (target >= 0.8)\n",
			tree.Len(), rates["compare"], rates["export"], rates["compare"]/rates["export"])
	}
}

// BenchmarkDigestOnly compares two snapshot files by digest: constant time,
// whatever their size.
//
//	go test -run '^$' -bench DigestOnly ./verify/
func BenchmarkDigestOnly(b *testing.B) {
	dir := b.TempDir()
	for _, n := range []int{100_000, 1_000_000} {
		a, c := largePair(b, dir, n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.DigestOnly = true
			b.ResetTimer()
			for range b.N {
				src, err := OpenSnapshot(a)
				if err != nil {
					b.Fatal(err)
				}
				tgt, err := OpenSnapshot(c)
				if err != nil {
					b.Fatal(err)
				}
				r, err := Compare(b.Context(), src, tgt, cfg)
				if err != nil || !r.Equal() || r.Mode != ModeDigest {
					b.Fatalf("%v %+v", err, r)
				}
			}
		})
	}
}

func reportRate(b *testing.B, nodes int64) float64 {
	rate := float64(nodes) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "nodes/s")
	return rate
}
