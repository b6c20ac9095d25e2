package exporter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/internal/treegen"
	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/znode"
)

var (
	benchNodes    = flag.Int("export.nodes", 100_000, "size of the kafka tree BenchmarkExport walks")
	benchSeed     = flag.Int64("export.seed", 1, "seed of the kafka tree BenchmarkExport walks")
	benchWorkers  = flag.Int("export.workers", 0, "Config.Workers for BenchmarkExport (0: default)")
	benchSessions = flag.Int("export.sessions", 0, "Config.Sessions for BenchmarkExport (0: default)")
)

// benchEnv is an ensemble and a seeded kafka tree shared by benchmarks, started
// and seeded once per binary and closed by TestMain.
//
// Benchmark ensembles run their JVMs with the full JIT (zktest stops at C1 to
// start fast; a production ZooKeeper runs C2), so that the figures are about
// the exporter, not about an interpreter-bound server, and the tree is read
// once each way before anything is timed, which warms the JIT up.
type benchEnv struct {
	once sync.Once
	ens  *zktest.Ensemble
	tree *treegen.Tree
	err  error
}

var (
	bench3 benchEnv // three servers: BenchmarkExport, BenchmarkWalk
	bench1 benchEnv // one server, for trees too big for a loaded quorum: BenchmarkExportRSS
)

func closeBenchEnsemble() error {
	var errs []error
	for _, e := range []*benchEnv{&bench3, &bench1} {
		if e.tree != nil {
			e.tree.Close()
		}
		if e.ens != nil {
			errs = append(errs, e.ens.Close())
		}
	}
	return errors.Join(errs...)
}

// seededKafka returns the three-server benchmark ensemble's tree.
func seededKafka(b *testing.B) (*zktest.Ensemble, *treegen.Tree) { return bench3.get(b, 3) }

func (e *benchEnv) get(b *testing.B, servers int) (*zktest.Ensemble, *treegen.Tree) {
	b.Helper()
	e.once.Do(func() {
		e.ens, e.err = zktest.Start(context.Background(), zktest.Options{
			Servers: servers, ExtendedTypes: true, MaxHeapMB: 3072,
			JVMArgs: []string{"-XX:TieredStopAtLevel=4"},
		})
		if e.err != nil {
			return
		}
		start := time.Now()
		e.tree, e.err = treegen.Seed(context.Background(), e.ens.Hosts(), treegen.Options{
			Profile: treegen.ProfileKafka, Nodes: *benchNodes, Seed: *benchSeed,
			Root: fmt.Sprintf("/bench-kafka-%d-%d", *benchNodes, *benchSeed),
		})
		if e.err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "seeded kafka tree on %d server(s): %d nodes in %v\n", servers, e.tree.Len(), time.Since(start).Round(time.Millisecond))
		e.err = warmUp(e.ens, e.tree)
	})
	if e.err != nil {
		b.Fatal(e.err)
	}
	return e.ens, e.tree
}

// warmUp reads the tree once each way, unmeasured, so that the servers' JIT has
// compiled the read paths before anything is timed.
func warmUp(ens *zktest.Ensemble, tree *treegen.Tree) error {
	start := time.Now()
	// The last walker, node by node, keeps its sessions for the getData pass.
	var w *Walker
	for _, mode := range []ReadMode{ReadModeAuto, ReadModeClassic} {
		cfg := benchConfig(ens, tree.Root)
		cfg.ReadMode = mode
		var err error
		if w, err = NewWalker(cfg); err != nil {
			return err
		}
		defer w.Close()
		if err := w.Start(context.Background()); err != nil {
			return err
		}
		if _, err := w.Walk(context.Background(), SinkFunc(func(*znode.Node) error { return nil })); err != nil {
			return err
		}
	}
	w.Close()
	cfg := benchConfig(ens, tree.Root)
	cfg.ReadMode = ReadModeClassic
	w, err := NewWalker(cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Start(context.Background()); err != nil {
		return err
	}
	if err := rawGetData(w, append([]string{tree.Root}, tree.Paths()...), w.Config().Workers); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "warmed up in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func benchConfig(ens *zktest.Ensemble, root string) Config {
	cfg := DefaultConfig(ens.Hosts())
	cfg.Root = root
	if *benchWorkers > 0 {
		cfg.Workers = *benchWorkers
	}
	if *benchSessions > 0 {
		cfg.Sessions = *benchSessions
	}
	return cfg
}

// BenchmarkExport compares, on the shared three-server ensemble and one seeded
// kafka tree (-export.nodes, default 100k), in interleaved rounds so that a
// change in the machine's load hits all three alike:
//
//   - walker: a whole export, Walker into a snapshot file, in its default
//     read mode (multiRead batches where the ensemble has them);
//   - classic: the same with ReadModeClassic, node by node (getData, getACL,
//     getChildren2);
//   - sequential: SequentialWalk, one request at a time (the baseline);
//   - ceiling: getData alone for every path of the tree, known in advance, with
//     as many requests in flight over as many sessions as the walker (no ACL, no
//     children, no file);
//
// and reports each rate and walker/sequential and walker/ceiling (and
// classic/ceiling), in nodes per second, and prints them on one line.
//
//	go test -run '^$' -bench 'BenchmarkExport$' -benchtime 3x ./exporter/ -args -export.nodes=100000
func BenchmarkExport(b *testing.B) {
	ens, tree := seededKafka(b)
	dir := b.TempDir()
	paths := append([]string{tree.Root}, tree.Paths()...)
	conn := dialZK(b, ens.Hosts())
	var walker, classic, seq, ceil phase
	mode := "?"
	for i := range b.N {
		file := filepath.Join(dir, fmt.Sprintf("x%d.snap", i))
		export := func(readMode ReadMode) func() (int64, int64) {
			return func() (int64, int64) {
				cfg := benchConfig(ens, tree.Root)
				cfg.ReadMode = readMode
				w, err := NewWalker(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				sum, err := ExportFile(b.Context(), w, FileOptions{Path: file})
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(file)
				if readMode == ReadModeAuto {
					mode = sum.ReadMode
				}
				return sum.Nodes, sum.Requests
			}
		}
		walker.measure(export(ReadModeAuto))
		classic.measure(export(ReadModeClassic))

		// The ceiling is go-zookeeper's pipelined getData, node by node.
		ceilCfg := benchConfig(ens, tree.Root)
		ceilCfg.ReadMode = ReadModeClassic
		w, err := NewWalker(ceilCfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		ceil.measure(func() (int64, int64) {
			if err := rawGetData(w, paths, w.Config().Workers); err != nil {
				b.Fatal(err)
			}
			return int64(len(paths)), int64(len(paths))
		})
		w.Close()

		seq.measure(func() (int64, int64) {
			var nodes int64
			err := SequentialWalk(b.Context(), conn, tree.Root, WalkOptions{}, func(*znode.Node) error {
				nodes++
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			return nodes, 0
		})
	}
	b.ReportMetric(walker.nodeRate(), "walker-nodes/s")
	b.ReportMetric(classic.nodeRate(), "classic-nodes/s")
	b.ReportMetric(seq.nodeRate(), "sequential-nodes/s")
	b.ReportMetric(ceil.nodeRate(), "ceiling-getData/s")
	b.ReportMetric(walker.nodeRate()/seq.nodeRate(), "x-sequential")
	b.ReportMetric(walker.nodeRate()/ceil.nodeRate(), "x-ceiling")
	b.ReportMetric(classic.nodeRate()/ceil.nodeRate(), "classic-x-ceiling")
	fmt.Printf("export ratios (%d-node kafka tree, 3 servers, %d rounds): walker (%s) %.0f nodes/s, classic %.0f, sequential %.0f, ceiling %.0f getData/s; "+
		"walker/sequential %.2fx (target >= 5), walker/ceiling %.2fx (target >= 0.7), classic/ceiling %.2fx\n",
		len(paths), b.N, mode, walker.nodeRate(), classic.nodeRate(), seq.nodeRate(), ceil.nodeRate(),
		walker.nodeRate()/seq.nodeRate(), walker.nodeRate()/ceil.nodeRate(), classic.nodeRate()/ceil.nodeRate())
	fmt.Printf("export requests: walker %.2f requests/node, %.0f requests/s (%.2fx the ceiling's), classic %.2f requests/node; "+
		"ensemble CPU per request: walker %.0f us, ceiling %.0f us; per node: walker %.0f us, classic %.0f us, ceiling %.0f us\n",
		walker.requestsPerNode(), walker.requestRate(), walker.requestRate()/ceil.requestRate(), classic.requestsPerNode(),
		walker.serverCPUPerRequest(), ceil.serverCPUPerRequest(), walker.serverCPUPerNode(), classic.serverCPUPerNode(), ceil.serverCPUPerNode())
}

// phase accumulates the measurements of one contender over the rounds.
type phase struct {
	wall, serverCPU time.Duration
	nodes, requests int64
}

// measure runs fn, which returns the nodes and requests it did, and adds its wall
// time and the ensemble's CPU time.
func (p *phase) measure(fn func() (nodes, requests int64)) {
	cpu0, t0 := ensembleCPU(bench3.ens.Dir()), time.Now()
	n, r := fn()
	p.wall += time.Since(t0)
	p.serverCPU += ensembleCPU(bench3.ens.Dir()) - cpu0
	p.nodes += n
	p.requests += r
}

func (p *phase) nodeRate() float64        { return float64(p.nodes) / p.wall.Seconds() }
func (p *phase) requestRate() float64     { return float64(p.requests) / p.wall.Seconds() }
func (p *phase) requestsPerNode() float64 { return float64(p.requests) / float64(p.nodes) }
func (p *phase) serverCPUPerNode() float64 {
	return float64(p.serverCPU.Microseconds()) / float64(p.nodes)
}
func (p *phase) serverCPUPerRequest() float64 {
	return float64(p.serverCPU.Microseconds()) / float64(p.requests)
}

// ensembleCPU is the CPU time (user and system) used so far by the JVMs whose
// command line names dir, from /proc; 0 where there is no /proc.
func ensembleCPU(dir string) time.Duration {
	var total time.Duration
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !strings.Contains(string(cmd), dir) || !strings.Contains(string(cmd), "java") {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return total
}

// BenchmarkWalk is the walker alone into a snapshot file, for profiling and
// tuning (-export.workers, -export.sessions).
func BenchmarkWalk(b *testing.B) {
	ens, tree := seededKafka(b)
	dir := b.TempDir()
	var nodes int64
	b.ResetTimer()
	for i := range b.N {
		w, err := NewWalker(benchConfig(ens, tree.Root))
		if err != nil {
			b.Fatal(err)
		}
		sum, err := ExportFile(b.Context(), w, FileOptions{Path: filepath.Join(dir, fmt.Sprintf("x%d.snap", i))})
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		nodes += sum.Nodes
	}
	b.ReportMetric(float64(nodes)/b.Elapsed().Seconds(), "nodes/s")
}

// rawGetData sends getData for every path, workers at a time over the
// sessions of w (a walker started with ReadModeClassic), and checks nothing
// but the error.
func rawGetData(w *Walker, paths []string, workers int) error {
	var g errgroup.Group
	next := make(chan string, workers)
	for i := range workers {
		sc, _ := w.sessions[i%len(w.sessions)].current()
		conn, ok := sc.(*zk.Conn)
		if !ok {
			return errors.New("rawGetData: not a go-zookeeper session")
		}
		g.Go(func() error {
			for p := range next {
				if _, _, err := conn.Get(p); err != nil && err != zk.ErrNoNode {
					return fmt.Errorf("get %s: %w", p, err)
				}
			}
			return nil
		})
	}
	for _, p := range paths {
		next <- p
	}
	close(next)
	return g.Wait()
}
