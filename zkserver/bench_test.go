package zkserver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
	"github.com/zk2raft/zk2raft/raftjournal"
)

// BenchmarkVsZooKeeper: the journal (three in-process nodes, fsync on, each
// serving the protocol) against ZooKeeper 3.8 (three servers, forceSync=yes)
// on the same machine in the same run: 64 concurrent go-zookeeper sessions
// spread over the servers, alternating rounds (ZooKeeper, journal, twice),
// reads (getData of 1,000 100-byte nodes), writes (setData) and a 90/10 mix.
// It reports each side's ops/s, p50 and p99, and the journal/ZooKeeper
// ratios. -bench.round sets a round's length.
func BenchmarkVsZooKeeper(b *testing.B) {
	zkE := zktest.New(b, zktest.Options{Servers: 3, Config: map[string]string{"forceSync": "yes"}})
	j, err := startJournal(3, raftjournal.PhasePrimary, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(j.close)
	sides := []struct {
		name  string
		hosts []string
	}{{"zookeeper", zkE.Hosts()}, {"journal", j.addrs()}}
	const sessions, nodes = 64, 1000
	round := 3 * time.Second
	type result struct {
		ops      float64
		p50, p99 time.Duration
	}
	results := map[string]map[string][]result{}
	for _, s := range sides {
		results[s.name] = map[string][]result{}
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
		b.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		connsBySide[s.name] = conns
	}
	b.ResetTimer()
	for range b.N {
		for pass := 0; pass < 2; pass++ {
			for _, s := range sides {
				for _, w := range []string{"reads", "writes", "mixed"} {
					ops, p50, p99 := runLoad(connsBySide[s.name], nodes, w, round)
					results[s.name][w] = append(results[s.name][w], result{ops, p50, p99})
				}
			}
		}
	}
	b.StopTimer()
	best := func(rs []result) result {
		slices.SortFunc(rs, func(a, b result) int {
			switch {
			case a.ops > b.ops:
				return -1
			case a.ops < b.ops:
				return 1
			}
			return 0
		})
		return rs[0]
	}
	for _, w := range []string{"reads", "writes", "mixed"} {
		z, jn := best(results["zookeeper"][w]), best(results["journal"][w])
		b.ReportMetric(z.ops, w+"-zk-ops/s")
		b.ReportMetric(jn.ops, w+"-journal-ops/s")
		b.ReportMetric(jn.ops/z.ops, w+"-ratio")
		b.ReportMetric(float64(z.p99.Microseconds()), w+"-zk-p99-us")
		b.ReportMetric(float64(jn.p99.Microseconds()), w+"-journal-p99-us")
		b.ReportMetric(float64(z.p50.Microseconds()), w+"-zk-p50-us")
		b.ReportMetric(float64(jn.p50.Microseconds()), w+"-journal-p50-us")
	}
}

var connsBySide = map[string][]*zk.Conn{}

// runLoad runs one workload on every session for d and returns ops/s and
// the latency percentiles.
func runLoad(conns []*zk.Conn, nodes int, workload string, d time.Duration) (float64, time.Duration, time.Duration) {
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
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	return float64(total.Load()) / d.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100]
}
