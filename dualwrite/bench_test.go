package dualwrite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/importer"
)

// The Tap's cost is measured as a ratio: the same load, in the same run,
// against the same ensemble, once directly and once through a Tap in front
// of it. Absolute figures depend on the machine and on zktest's JVMs (C1
// only, forceSync off); the ratio is what is held to a target. In async
// mode (writes answered by ZooKeeper, mirrored to the journal afterwards)
// the Tap must keep
//
//	throughput through the Tap ≥ 0.8 × direct throughput   (loadTargetThroughputRatio)
//	read p50 through the Tap  ≤ direct read p50 + 0.3 ms   (loadTargetAddedReadP50)
//
// for every mix in loadMixes. BenchmarkDirect measures the baseline alone. A
// proxy benchmark runs benchCompare per mix, which measures direct then
// through the Tap back to back and reports both and the ratio:
//
//	for _, mix := range loadMixes {
//		b.Run(mix.Name, func(b *testing.B) { benchCompare(b, ens.ConnectString(), tap.Addr(), mix) })
//	}

var (
	loadDur     = flag.Duration("load.dur", 5*time.Second, "measured duration of each runLoad (after its warm-up)")
	loadClients = flag.Int("load.clients", 64, "concurrent sessions of runLoad, one request in flight each")
	loadValue   = flag.Int("load.value", 128, "bytes of each value runLoad reads and writes")
)

const (
	// loadRoot holds the loadKeys keys every runLoad reads and writes.
	loadRoot = "/dualwrite-load"
	loadKeys = 1024
	// loadWarmup runs unmeasured before each measurement, so the JVMs'
	// JIT has compiled the paths timed.
	loadWarmup = 2 * time.Second
	// loadSetupParallel bounds the sessions dialled and keys written at once.
	loadSetupParallel = 16

	loadTargetThroughputRatio = 0.8
	loadTargetAddedReadP50    = 300 * time.Microsecond
)

// loadMix is one read/write mix of the comparison.
type loadMix struct {
	Name     string
	ReadFrac float64 // share of requests that are reads, 0..1
}

// loadMixes are the mixes the Tap is compared on.
var loadMixes = []loadMix{
	{Name: "read90", ReadFrac: 0.9},
	{Name: "write100", ReadFrac: 0},
}

// latencies is a sorted set of request latencies.
type latencies []time.Duration

// quantile returns the q-quantile (0..1, nearest rank), 0 when empty.
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(q*float64(len(l))+0.5) - 1
	return l[min(max(i, 0), len(l)-1)]
}

// loadResult is what one or more runLoad measurements saw.
type loadResult struct {
	Addr    string
	Clients int
	// Elapsed is the measured time: from the end of the warm-up until the
	// last request started before the deadline was answered.
	Elapsed time.Duration
	Reads   latencies // getData latencies, sorted
	Writes  latencies // setData latencies, sorted
	// Err is the first failure; the figures are then not to be trusted.
	Err error
}

func (r loadResult) ops() int { return len(r.Reads) + len(r.Writes) }

// OpsPerSec is the measured throughput, reads and writes together.
func (r loadResult) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.ops()) / r.Elapsed.Seconds()
}

func (r loadResult) String() string {
	return fmt.Sprintf("%s, %d clients: %.0f ops/s over %v; reads %d p50 %v p99 %v; writes %d p50 %v p99 %v",
		r.Addr, r.Clients, r.OpsPerSec(), r.Elapsed.Round(time.Millisecond),
		len(r.Reads), r.Reads.quantile(0.5), r.Reads.quantile(0.99),
		len(r.Writes), r.Writes.quantile(0.5), r.Writes.quantile(0.99))
}

// merge adds another measurement of the same load.
func (r *loadResult) merge(o loadResult) {
	r.Addr, r.Clients = o.Addr, o.Clients
	r.Elapsed += o.Elapsed
	r.Reads = mergeSorted(r.Reads, o.Reads)
	r.Writes = mergeSorted(r.Writes, o.Writes)
	r.Err = errors.Join(r.Err, o.Err)
}

func mergeSorted(a, b latencies) latencies {
	out := append(append(latencies(nil), a...), b...)
	slices.Sort(out)
	return out
}

// runLoad drives a closed-loop load at addr (a connect string: one
// ZooKeeper server, several separated by commas, or a Tap) from clients
// sessions, each with one request in flight: with probability readFrac a
// getData, otherwise a setData (any version) of valueSize bytes, of one of
// loadKeys keys under loadRoot picked at random. The keys are created (or
// overwritten) first; then the load runs loadWarmup unmeasured and dur
// measured. A failed request stops the load and is returned in Err.
func runLoad(ctx context.Context, addr string, clients int, dur time.Duration, readFrac float64, valueSize int) loadResult {
	res := loadResult{Addr: addr, Clients: clients}
	hosts := strings.Split(addr, ",")
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}

	conns := make([]*zk.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadSetupParallel)
	for i := range conns {
		g.Go(func() error {
			c, err := dialLoad(gctx, hosts)
			conns[i] = c
			return err
		})
	}
	if res.Err = g.Wait(); res.Err != nil {
		return res
	}
	if res.Err = seedLoadKeys(ctx, conns, value); res.Err != nil {
		return res
	}

	start := time.Now()
	measureFrom, deadline := start.Add(loadWarmup), start.Add(loadWarmup+dur)
	var (
		mu            sync.Mutex
		reads, writes latencies
		last          time.Time
	)
	g, gctx = errgroup.WithContext(ctx)
	for i, c := range conns {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(i), 0x10ad))
			var r, w latencies
			var end time.Time
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				key := loadKey(rng.IntN(loadKeys))
				read := rng.Float64() < readFrac
				op, err := "get", error(nil)
				if read {
					_, _, err = c.Get(key)
				} else {
					op = "set"
					_, err = c.Set(key, value, -1)
				}
				end = time.Now()
				if err != nil {
					return fmt.Errorf("dualwrite: load on %s: %s %s: %w", addr, op, key, err)
				}
				if t0.Before(measureFrom) {
					continue
				}
				if read {
					r = append(r, end.Sub(t0))
				} else {
					w = append(w, end.Sub(t0))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			reads, writes = append(reads, r...), append(writes, w...)
			if end.After(last) {
				last = end
			}
			return nil
		})
	}
	res.Err = g.Wait()
	slices.Sort(reads)
	slices.Sort(writes)
	res.Reads, res.Writes = reads, writes
	res.Elapsed = max(last.Sub(measureFrom), 0)
	return res
}

func loadKey(i int) string { return fmt.Sprintf("%s/k%04d", loadRoot, i) }

// dialLoad opens one load session and waits until it is established.
func dialLoad(ctx context.Context, hosts []string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(hosts, workloadSessionTimeout, zk.WithLogger(silentLogger{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("dualwrite: load: connect %v: %w", hosts, err)
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("dualwrite: load: connect %v: connection closed", hosts)
			}
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("dualwrite: load: connect %v: %w", hosts, ctx.Err())
		}
	}
}

// silentLogger drops go-zookeeper's log lines, which a benchmark has no test
// log to keep in.
type silentLogger struct{}

func (silentLogger) Printf(string, ...any) {}

// seedLoadKeys creates loadRoot and its keys, or overwrites the keys a
// previous load left, so that every read returns value.
func seedLoadKeys(ctx context.Context, conns []*zk.Conn, value []byte) error {
	if _, err := conns[0].Create(loadRoot, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("dualwrite: load: create %s: %w", loadRoot, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(loadSetupParallel)
	for i := range loadKeys {
		c := conns[i%len(conns)]
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := loadKey(i)
			_, err := c.Create(key, value, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				_, err = c.Set(key, value, -1)
			}
			if err != nil {
				return fmt.Errorf("dualwrite: load: seed %s: %w", key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// benchLoad runs mix against addr b.N times with the -load.* flags, fails
// the benchmark on any error, and reports ops/s and read and write latency
// percentiles (in ms) in place of ns/op.
func benchLoad(b *testing.B, addr string, mix loadMix) loadResult {
	b.Helper()
	var res loadResult
	for range b.N {
		res.merge(runLoad(b.Context(), addr, *loadClients, *loadDur, mix.ReadFrac, *loadValue))
	}
	if res.Err != nil {
		b.Fatal(res.Err)
	}
	b.Logf("%s: %v", mix.Name, res)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(res.OpsPerSec(), "ops/s")
	report := func(name string, l latencies) {
		if len(l) > 0 {
			b.ReportMetric(ms(l.quantile(0.5)), name+"-p50-ms")
			b.ReportMetric(ms(l.quantile(0.99)), name+"-p99-ms")
		}
	}
	report("read", res.Reads)
	report("write", res.Writes)
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadComparison is one mix measured directly and through a Tap in the
// same run.
type loadComparison struct {
	Mix           loadMix
	Direct, Proxy loadResult
}

// ThroughputRatio is the Tap's throughput as a share of direct throughput.
func (c loadComparison) ThroughputRatio() float64 {
	if d := c.Direct.OpsPerSec(); d > 0 {
		return c.Proxy.OpsPerSec() / d
	}
	return 0
}

// AddedReadP50 is how much the Tap adds to the median read.
func (c loadComparison) AddedReadP50() time.Duration {
	return c.Proxy.Reads.quantile(0.5) - c.Direct.Reads.quantile(0.5)
}

// AddedWriteP50 is how much the Tap adds to the median write.
func (c loadComparison) AddedWriteP50() time.Duration {
	return c.Proxy.Writes.quantile(0.5) - c.Direct.Writes.quantile(0.5)
}

func (c loadComparison) String() string {
	return fmt.Sprintf("%s: tap/direct throughput %.2f× (%.0f / %.0f ops/s), read p50 %+v, write p50 %+v",
		c.Mix.Name, c.ThroughputRatio(), c.Proxy.OpsPerSec(), c.Direct.OpsPerSec(), c.AddedReadP50(), c.AddedWriteP50())
}

// Check reports whether the Tap met the async-mode targets.
func (c loadComparison) Check() error {
	var errs []error
	if r := c.ThroughputRatio(); r < loadTargetThroughputRatio {
		errs = append(errs, fmt.Errorf("dualwrite: %s: throughput through the tap is %.2f× direct, want ≥ %.2f×", c.Mix.Name, r, loadTargetThroughputRatio))
	}
	if len(c.Direct.Reads) > 0 {
		if d := c.AddedReadP50(); d > loadTargetAddedReadP50 {
			errs = append(errs, fmt.Errorf("dualwrite: %s: the tap adds %v to the read p50, want ≤ %v", c.Mix.Name, d, loadTargetAddedReadP50))
		}
	}
	return errors.Join(errs...)
}

// benchCompare measures mix against direct and then through proxy, b.N
// times each, reports the proxy's figures as the benchmark's metrics plus
// tap-ratio and added-read-p50-ms, and logs the comparison. It does not fail
// the benchmark on a missed target (a loaded machine would make that flaky);
// callers that want to enforce the targets call Check on the result.
func benchCompare(b *testing.B, direct, proxy string, mix loadMix) loadComparison {
	b.Helper()
	c := loadComparison{Mix: mix}
	for range b.N {
		c.Direct.merge(runLoad(b.Context(), direct, *loadClients, *loadDur, mix.ReadFrac, *loadValue))
		c.Proxy.merge(runLoad(b.Context(), proxy, *loadClients, *loadDur, mix.ReadFrac, *loadValue))
	}
	if err := errors.Join(c.Direct.Err, c.Proxy.Err); err != nil {
		b.Fatal(err)
	}
	b.Logf("direct: %v", c.Direct)
	b.Logf("proxy:  %v", c.Proxy)
	b.Logf("%v", c)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(c.Proxy.OpsPerSec(), "ops/s")
	b.ReportMetric(c.ThroughputRatio(), "tap-ratio")
	if len(c.Proxy.Reads) > 0 {
		b.ReportMetric(ms(c.Proxy.Reads.quantile(0.5)), "read-p50-ms")
		b.ReportMetric(ms(c.AddedReadP50()), "added-read-p50-ms")
	}
	if len(c.Proxy.Writes) > 0 {
		b.ReportMetric(ms(c.Proxy.Writes.quantile(0.5)), "write-p50-ms")
	}
	return c
}

// BenchmarkDirect is the baseline: the load mixes straight at the shared
// ensemble (its connect string, so sessions spread over the three servers).
func BenchmarkDirect(b *testing.B) {
	ens := testEnsemble(b)
	for _, mix := range loadMixes {
		b.Run(mix.Name, func(b *testing.B) { benchLoad(b, ens.ConnectString(), mix) })
	}
}

func TestLatencyQuantile(t *testing.T) {
	l := latencies{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		name string
		l    latencies
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", latencies{7}, 0.99, 7},
		{"median", l, 0.5, 5},
		{"p99", l, 0.99, 10},
		{"min", l, 0, 1},
		{"max", l, 1, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.quantile(tc.q); got != tc.want {
				t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// BenchmarkProxy compares every load mix directly and through a Tap in front
// of the same ensemble, mirroring into a one-node journal on disk: async (the
// default, held to the targets above) and sync (reported).
//
//	go test ./dualwrite -run '^$' -bench Proxy -benchtime 1x
func BenchmarkProxy(b *testing.B) {
	ens := testEnsemble(b)
	for _, mode := range []struct {
		name string
		sync bool
	}{{"async", false}, {"sync", true}} {
		b.Run(mode.name, func(b *testing.B) {
			n := journalNode(b)
			tap := startTap(b, ens.Hosts(), importer.NodeJournal(n), func(c *Config) { c.Sync = mode.sync })
			for _, mix := range loadMixes {
				b.Run(mix.Name, func(b *testing.B) {
					c := benchCompare(b, ens.ConnectString(), tap.Addr(), mix)
					if !mode.sync {
						if err := c.Check(); err != nil {
							b.Logf("target missed: %v", err)
						}
					}
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := tap.WaitDelivered(ctx); err != nil {
				b.Fatal(err)
			}
			st := tap.Status()
			b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
		})
	}
}
