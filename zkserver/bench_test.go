package zkserver_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

var (
	benchRound   = flag.Duration("zkbench.round", 3*time.Second, "length of one benchmark round (BenchmarkVsZooKeeper)")
	benchPairs   = flag.Int("zkbench.pairs", 4, "alternating round pairs per workload (BenchmarkVsZooKeeper)")
	benchProfile = flag.String("zkbench.profile", "", "directory for CPU, block and mutex profiles of the journal node processes (BenchmarkVsZooKeeper)")
)

// benchZooKeeper starts the ZooKeeper side of the benchmarks: three servers
// with forceSync=yes (the journal fsyncs too), on zktest's JVM settings (C1
// only, serial GC). Those are kinder to ZooKeeper on the 2-core machines
// than the JDK's defaults that Debian runs it with (G1 and C2 compiler
// threads compete with three JVMs for two cores): in one alternating run,
// 64 sessions writing got 2,029 ops/s from C1 and serial GC, 979 from G1
// and C2, 1,263 from C2 and serial GC, and reads within 20% either way.
func benchZooKeeper(b *testing.B, extra map[string]string) *zktest.Ensemble {
	b.Helper()
	cfg := map[string]string{"forceSync": "yes"}
	for k, v := range extra {
		cfg[k] = v
	}
	return zktest.New(b, zktest.Options{Servers: 3, Config: cfg})
}

// BenchmarkVsZooKeeper: the journal (three `zk2raft serve`-configured node
// processes, raft-wal with fsync, each serving the protocol) against
// ZooKeeper 3.8 (three JVMs, forceSync=yes) on the same machine in the same
// run. 64 go-zookeeper sessions, spread over the three servers of each
// side, run reads (getData of 1,000 100-byte nodes), writes (setData) and a
// 90/10 mix, one request at a time each. Each workload first warms both
// sides up (a round each, discarded; the JVM compiles), then runs
// -zkbench.pairs pairs of rounds of -zkbench.round, alternating which side
// goes first (ZJ JZ ZJ ...), so both see the same drift in the machine's
// load. Reported: each side's ops/s over all its rounds, p50 and p99 of all
// its requests, the journal/ZooKeeper ratio, and the lowest and highest
// per-pair ratio.
func BenchmarkVsZooKeeper(b *testing.B) {
	zkE := benchZooKeeper(b, nil)
	j := startProcJournal(b, 3, 200*time.Millisecond)
	sides := []struct {
		name  string
		hosts []string
	}{{"zookeeper", zkE.Hosts()}, {"journal", j.addrs()}}
	const sessions, nodes = 64, 1000
	connsBySide := map[string][]*zk.Conn{}
	for _, s := range sides {
		conns := make([]*zk.Conn, sessions)
		for i := range conns {
			conns[i], _ = connect(b, []string{s.hosts[i%len(s.hosts)]})
		}
		c := conns[0]
		if _, err := c.Create("/bench", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			b.Fatal(err)
		}
		for i := range nodes {
			_, _ = c.Create(fmt.Sprintf("/bench/n%04d", i), make([]byte, 100), 0, zk.WorldACL(zk.PermAll))
		}
		for _, sess := range conns {
			_, _ = sess.Sync("/bench")
		}
		connsBySide[s.name] = conns
	}
	b.ResetTimer()
	for range b.N {
		for _, w := range []string{"reads", "writes", "mixed"} {
			for _, s := range sides {
				runLoad(connsBySide[s.name], nodes, w, *benchRound) // warm-up
			}
			var stop func()
			if *benchProfile != "" && w == "writes" {
				stop = j.profile(b, *benchProfile)
			}
			phases := j.metricSums(b, "zk2raft_zkserver_write_phase_seconds", "phase")
			var z, jn loadResult
			var pairRatios []float64
			for pair := range *benchPairs {
				order := []string{"zookeeper", "journal"}
				if pair%2 == 1 {
					order = []string{"journal", "zookeeper"}
				}
				got := map[string]*loadResult{}
				for _, name := range order {
					r := runLoad(connsBySide[name], nodes, w, *benchRound)
					got[name] = &r
				}
				z.add(*got["zookeeper"])
				jn.add(*got["journal"])
				pairRatios = append(pairRatios, got["journal"].opsPerSec()/got["zookeeper"].opsPerSec())
			}
			if stop != nil {
				stop()
			}
			if w != "reads" {
				after := j.metricSums(b, "zk2raft_zkserver_write_phase_seconds", "phase")
				for _, phase := range []string{"commit", "local_apply"} {
					sum, count := after[phase][0]-phases[phase][0], after[phase][1]-phases[phase][1]
					if count > 0 {
						b.ReportMetric(sum/count*1e6, w+"-journal-"+phase+"-us")
					}
				}
			}
			slices.Sort(pairRatios)
			b.ReportMetric(z.opsPerSec(), w+"-zk-ops/s")
			b.ReportMetric(jn.opsPerSec(), w+"-journal-ops/s")
			b.ReportMetric(jn.opsPerSec()/z.opsPerSec(), w+"-ratio")
			b.ReportMetric(pairRatios[0], w+"-ratio-min")
			b.ReportMetric(pairRatios[len(pairRatios)-1], w+"-ratio-max")
			for _, q := range []struct {
				name string
				at   float64
			}{{"p50", 0.50}, {"p99", 0.99}} {
				zq, jq := z.quantile(q.at), jn.quantile(q.at)
				b.ReportMetric(float64(zq.Microseconds()), w+"-zk-"+q.name+"-us")
				b.ReportMetric(float64(jq.Microseconds()), w+"-journal-"+q.name+"-us")
				b.ReportMetric(float64(jq)/float64(zq), w+"-"+q.name+"-ratio")
			}
		}
	}
}

// loadResult accumulates rounds of one side.
type loadResult struct {
	ops     int64
	elapsed time.Duration
	lat     []time.Duration
}

func (r *loadResult) add(o loadResult) {
	r.ops += o.ops
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
}

func (r *loadResult) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r *loadResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

// runLoad runs one workload on every session for d: every session issues
// one request at a time.
func runLoad(conns []*zk.Conn, nodes int, workload string, d time.Duration) loadResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var total atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			var mine []time.Duration
			data := make([]byte, 100)
			for ctx.Err() == nil {
				p := fmt.Sprintf("/bench/n%04d", r.IntN(nodes))
				write := workload == "writes" || (workload == "mixed" && r.IntN(10) == 0)
				start := time.Now()
				var err error
				if write {
					_, err = c.Set(p, data, -1)
				} else {
					_, _, err = c.Get(p)
				}
				if err == nil {
					mine = append(mine, time.Since(start))
				}
			}
			total.Add(int64(len(mine)))
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return loadResult{ops: total.Load(), elapsed: time.Since(start), lat: lat}
}
