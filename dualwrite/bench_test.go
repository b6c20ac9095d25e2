package dualwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zk2raft/zk2raft/internal/testlog"
	"github.com/zk2raft/zk2raft/internal/testproc"
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
// through the Tap back to back and reports both and the ratio: the
// throughput with closed loops (the ensemble saturated), the latency with a
// paced load (the ensemble lightly loaded; a saturated closed loop's latency
// is clients / throughput, so it restates the throughput lost, and is
// reported as saturated-added-read-p50-ms).
//
// The Tap runs in a process of its own with a one-node journal on disk, as
// `zk2raft serve --proxy-addr` runs it, so that its CPU time is accounted
// apart from the load's and the ensemble's: each comparison also reports
// the CPU each side spent per request (tap-cpu-us/op, zk-cpu-us/op). Where
// the Tap runs decides what the throughput ratio measures:
//
//   - shared: ZooKeeper, the load and the Tap share every core. On a small
//     machine the ensemble is CPU-bound, so the ratio is the share of the
//     CPU the Tap takes from ZooKeeper (roughly zk-cpu / (zk-cpu + tap-cpu)
//     per request).
//   - own-cpu: ZooKeeper and the load are pinned to CPU 0, the Tap to CPU 1,
//     for the direct run as well: the deployment where the proxy has a core
//     (or a machine) of its own, and the ratio measures what the extra hop
//     costs the clients.

var (
	loadDur     = flag.Duration("load.dur", 5*time.Second, "measured duration of each runLoad (after its warm-up)")
	loadClients = flag.Int("load.clients", 64, "concurrent sessions of runLoad, one request in flight each")
	loadValue   = flag.Int("load.value", 128, "bytes of each value runLoad reads and writes")
	pacedShare  = flag.Float64("load.paced-share", 0.25, "share of the direct closed-loop throughput the paced loads run at")
	tapProfile  = flag.String("load.tap-cpuprofile", "", "write a CPU profile of each benchmark's tap and relay processes to this file, suffixed with the benchmark's name and the process's kind")
	tapTrace    = flag.String("load.tap-trace", "", "write a runtime/trace of each benchmark's tap and relay processes to this file, suffixed with the benchmark's name and the process's kind")
	tapDisk     = flag.String("load.tap-dir", "", "directory for the tap process's queue and journal (default: the test's temporary directory, on ZooKeeper's disk); a tmpfs such as /dev/shm stands in for a disk of the proxy's own")
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
	Rate    float64 // the paced rate, 0 for a closed loop
	// Elapsed is the measured time: from the end of the warm-up until the
	// last request started before the deadline was answered.
	Elapsed time.Duration
	Reads   latencies // getData latencies, sorted
	Writes  latencies // setData latencies, sorted
	// CPU is the CPU time (user and system) each group of processes spent
	// during the measured time.
	CPU map[string]time.Duration
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

// CPUPerOp is the CPU time group spent per request measured, 0 if unknown.
func (r loadResult) CPUPerOp(group string) time.Duration {
	if r.ops() == 0 {
		return 0
	}
	return r.CPU[group] / time.Duration(r.ops())
}

func (r loadResult) String() string {
	paced := ""
	if r.Rate > 0 {
		paced = fmt.Sprintf(" paced at %.0f/s", r.Rate)
	}
	return fmt.Sprintf("%s, %d clients%s: %.0f ops/s over %v; reads %d p50 %v p99 %v; writes %d p50 %v p99 %v",
		r.Addr, r.Clients, paced, r.OpsPerSec(), r.Elapsed.Round(time.Millisecond),
		len(r.Reads), r.Reads.quantile(0.5), r.Reads.quantile(0.99),
		len(r.Writes), r.Writes.quantile(0.5), r.Writes.quantile(0.99)) + r.cpuString()
}

func (r loadResult) cpuString() string {
	var b strings.Builder
	for _, g := range slices.Sorted(maps.Keys(r.CPU)) {
		fmt.Fprintf(&b, "; %s CPU %v/op", g, r.CPUPerOp(g).Round(100*time.Nanosecond))
	}
	return b.String()
}

// merge adds another measurement of the same load.
func (r *loadResult) merge(o loadResult) {
	r.Addr, r.Clients, r.Rate = o.Addr, o.Clients, o.Rate
	r.Elapsed += o.Elapsed
	r.Reads = mergeSorted(r.Reads, o.Reads)
	r.Writes = mergeSorted(r.Writes, o.Writes)
	for g, d := range o.CPU {
		if r.CPU == nil {
			r.CPU = make(map[string]time.Duration)
		}
		r.CPU[g] += d
	}
	r.Err = errors.Join(r.Err, o.Err)
}

func mergeSorted(a, b latencies) latencies {
	out := append(append(latencies(nil), a...), b...)
	slices.Sort(out)
	return out
}

// loadSpec is one load runLoad drives.
type loadSpec struct {
	Clients   int           // concurrent sessions, one request in flight each
	Dur       time.Duration // measured time, after loadWarmup
	ReadFrac  float64       // share of requests that are getData, the rest setData
	ValueSize int           // bytes of each value read and written
	// Rate, if > 0, paces the load at Rate requests per second in all (an
	// open loop: each session sends on a fixed schedule, and a latency is
	// counted from the request's scheduled time, so a server that falls
	// behind is charged for the wait). 0 is a closed loop: each session
	// sends its next request as soon as the last is answered.
	Rate float64
	// CPU names groups of processes whose CPU time is measured over the
	// measured time.
	CPU map[string][]int
}

// specFor is the closed-loop load of mix with the -load.* flags.
func specFor(mix loadMix) loadSpec {
	return loadSpec{Clients: *loadClients, Dur: *loadDur, ReadFrac: mix.ReadFrac, ValueSize: *loadValue}
}

// runLoad drives the load spec at addr (a connect string: one ZooKeeper
// server, several separated by commas, or a Tap): each request is with
// probability spec.ReadFrac a getData, otherwise a setData (any version),
// of one of loadKeys keys under loadRoot picked at random. The keys are
// created (or overwritten) first; then the load runs loadWarmup unmeasured
// and spec.Dur measured. A failed request stops the load and is returned in
// Err.
func runLoad(ctx context.Context, addr string, spec loadSpec) loadResult {
	clients := spec.Clients
	res := loadResult{Addr: addr, Clients: clients, Rate: spec.Rate}
	hosts := strings.Split(addr, ",")
	value := make([]byte, spec.ValueSize)
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
	measureFrom, deadline := start.Add(loadWarmup), start.Add(loadWarmup+spec.Dur)
	cpuDone := make(chan map[string]time.Duration, 1)
	go func() { cpuDone <- measureCPU(ctx, spec.CPU, measureFrom, deadline) }()
	// A paced session sends every interval, the sessions staggered evenly.
	var interval time.Duration
	if spec.Rate > 0 {
		interval = time.Duration(float64(clients) / spec.Rate * float64(time.Second))
	}
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
			next := start.Add(interval * time.Duration(i) / time.Duration(clients))
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				t0 := time.Now()
				if interval > 0 {
					if wait := next.Sub(t0); wait > 0 {
						time.Sleep(wait)
					}
					t0, next = next, next.Add(interval)
				}
				if !t0.Before(deadline) {
					break
				}
				key := loadKey(rng.IntN(loadKeys))
				read := rng.Float64() < spec.ReadFrac
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
	res.CPU = <-cpuDone
	slices.Sort(reads)
	slices.Sort(writes)
	res.Reads, res.Writes = reads, writes
	res.Elapsed = max(last.Sub(measureFrom), 0)
	return res
}

// measureCPU returns the CPU time each group of processes spent between from
// and to (nil if the context ends first). A process that is gone counts 0.
func measureCPU(ctx context.Context, groups map[string][]int, from, to time.Time) map[string]time.Duration {
	if len(groups) == 0 {
		return nil
	}
	sample := func() map[string]time.Duration {
		m := make(map[string]time.Duration, len(groups))
		for g, pids := range groups {
			for _, pid := range pids {
				m[g] += processCPU(pid)
			}
		}
		return m
	}
	sleepUntil := func(t time.Time) bool {
		select {
		case <-time.After(time.Until(t)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleepUntil(from) {
		return nil
	}
	before := sample()
	if !sleepUntil(to) {
		return nil
	}
	after := sample()
	for g := range after {
		after[g] -= before[g]
	}
	return after
}

// processCPU is the user and system time of process pid (all its threads)
// from /proc, in clock ticks of 10 ms; 0 if it cannot be read.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it are
	// state (3) ... utime (14), stime (15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick
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
		res.merge(runLoad(b.Context(), addr, specFor(mix)))
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
// same run: closed loops, which saturate the ensemble and give the
// throughput, then loads paced at -load.paced-share of the direct
// throughput (a quarter by default: the ensemble lightly loaded), which give
// the latency the Tap adds when nothing is saturated.
type loadComparison struct {
	Mix                     loadMix
	Direct, Proxy           loadResult // closed loop
	PacedDirect, PacedProxy loadResult // paced
}

// ThroughputRatio is the Tap's throughput as a share of direct throughput.
func (c loadComparison) ThroughputRatio() float64 {
	if d := c.Direct.OpsPerSec(); d > 0 {
		return c.Proxy.OpsPerSec() / d
	}
	return 0
}

// AddedReadP50 is how much the Tap adds to the median read at the paced
// rate.
func (c loadComparison) AddedReadP50() time.Duration {
	return c.PacedProxy.Reads.quantile(0.5) - c.PacedDirect.Reads.quantile(0.5)
}

// AddedWriteP50 is how much the Tap adds to the median write at the paced
// rate.
func (c loadComparison) AddedWriteP50() time.Duration {
	return c.PacedProxy.Writes.quantile(0.5) - c.PacedDirect.Writes.quantile(0.5)
}

// SaturatedAddedReadP50 is how much the Tap adds to the median read in the
// closed loops. With the ensemble saturated, a closed loop's latency is
// clients / throughput, so this restates the throughput lost rather than
// measuring the hop.
func (c loadComparison) SaturatedAddedReadP50() time.Duration {
	return c.Proxy.Reads.quantile(0.5) - c.Direct.Reads.quantile(0.5)
}

func (c loadComparison) String() string {
	return fmt.Sprintf("%s: tap/direct throughput %.2f× (%.0f / %.0f ops/s); at %.0f ops/s paced the tap adds %v to the read p50, %v to the write p50 (saturated: %v)",
		c.Mix.Name, c.ThroughputRatio(), c.Proxy.OpsPerSec(), c.Direct.OpsPerSec(), c.PacedDirect.Rate,
		c.AddedReadP50(), c.AddedWriteP50(), c.SaturatedAddedReadP50())
}

// Check reports whether the Tap met the async-mode targets.
func (c loadComparison) Check() error {
	var errs []error
	if r := c.ThroughputRatio(); r < loadTargetThroughputRatio {
		errs = append(errs, fmt.Errorf("dualwrite: %s: throughput through the tap is %.2f× direct, want ≥ %.2f×", c.Mix.Name, r, loadTargetThroughputRatio))
	}
	if len(c.PacedDirect.Reads) > 0 {
		if d := c.AddedReadP50(); d > loadTargetAddedReadP50 {
			errs = append(errs, fmt.Errorf("dualwrite: %s: the tap adds %v to the read p50, want ≤ %v", c.Mix.Name, d, loadTargetAddedReadP50))
		}
	}
	return errors.Join(errs...)
}

// benchCompare measures mix directly and then through proxy, b.N times
// each, closed loop and then paced; reports the proxy's figures as the
// benchmark's metrics plus tap-ratio, added-read-p50-ms (paced) and the CPU
// per request of the ensemble (the processes zkPids), of the clients (this
// process) and of the Tap (tapPid, 0 if unknown); and logs the comparison.
// It does not fail the benchmark on a missed target (a loaded machine would
// make that flaky); callers that want to enforce the targets call Check on
// the result.
func benchCompare(b *testing.B, direct, proxy string, mix loadMix, zkPids []int, tapPid int) loadComparison {
	b.Helper()
	c := loadComparison{Mix: mix}
	directSpec, proxySpec := specFor(mix), specFor(mix)
	// This process runs the load's 64 go-zookeeper clients and nothing else.
	directSpec.CPU = map[string][]int{"zk": zkPids, "load": {os.Getpid()}}
	proxySpec.CPU = map[string][]int{"zk": zkPids, "load": {os.Getpid()}}
	if tapPid > 0 {
		proxySpec.CPU["tap"] = []int{tapPid}
	}
	for range b.N {
		c.Direct.merge(runLoad(b.Context(), direct, directSpec))
		c.Proxy.merge(runLoad(b.Context(), proxy, proxySpec))
	}
	directSpec.Rate = *pacedShare * c.Direct.OpsPerSec()
	proxySpec.Rate = directSpec.Rate
	for range b.N {
		c.PacedDirect.merge(runLoad(b.Context(), direct, directSpec))
		c.PacedProxy.merge(runLoad(b.Context(), proxy, proxySpec))
	}
	if err := errors.Join(c.Direct.Err, c.Proxy.Err, c.PacedDirect.Err, c.PacedProxy.Err); err != nil {
		b.Fatal(err)
	}
	b.Logf("direct: %v", c.Direct)
	b.Logf("proxy:  %v", c.Proxy)
	b.Logf("direct: %v", c.PacedDirect)
	b.Logf("proxy:  %v", c.PacedProxy)
	b.Logf("%v", c)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(c.Proxy.OpsPerSec(), "ops/s")
	b.ReportMetric(c.ThroughputRatio(), "tap-ratio")
	if len(c.PacedProxy.Reads) > 0 {
		b.ReportMetric(ms(c.PacedProxy.Reads.quantile(0.5)), "read-p50-ms")
		b.ReportMetric(ms(c.AddedReadP50()), "added-read-p50-ms")
		b.ReportMetric(ms(c.SaturatedAddedReadP50()), "saturated-added-read-p50-ms")
	}
	if len(c.PacedProxy.Writes) > 0 {
		b.ReportMetric(ms(c.PacedProxy.Writes.quantile(0.5)), "write-p50-ms")
		b.ReportMetric(ms(c.AddedWriteP50()), "added-write-p50-ms")
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	if len(zkPids) > 0 {
		b.ReportMetric(us(c.Direct.CPUPerOp("zk")), "zk-cpu-us/op")
	}
	b.ReportMetric(us(c.Direct.CPUPerOp("load")), "client-cpu-us/op")
	if tapPid > 0 {
		b.ReportMetric(us(c.Proxy.CPUPerOp("tap")), "tap-cpu-us/op")
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
// of the same ensemble, mirroring into a one-node journal on disk in the
// Tap's process: async (the default, held to the targets above) and sync
// (reported), each with the Tap sharing the cores and on a CPU of its own.
//
//	go test ./dualwrite -run '^$' -bench Proxy -benchtime 1x
func BenchmarkProxy(b *testing.B) {
	ens := testEnsemble(b)
	for _, mode := range []struct {
		name       string
		sync       bool
		ownCPU     bool
		bytesRelay bool
	}{
		{name: "async"}, {name: "sync", sync: true},
		{name: "async-own-cpu", ownCPU: true}, {name: "sync-own-cpu", sync: true, ownCPU: true},
		// Not the Tap: a relay that only copies bytes, the least any proxy
		// costs, for scale.
		{name: "bytes-relay", bytesRelay: true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			tapCPU := ""
			if mode.ownCPU {
				if runtime.NumCPU() < 2 {
					b.Skipf("%s needs 2 CPUs, this machine has %d", mode.name, runtime.NumCPU())
				}
				// The ensemble and the load on CPU 0, the Tap on CPU 1.
				pinCPUs(b, "0", append(ens.Pids(), os.Getpid()))
				tapCPU = "1"
			}
			tap := startTapProcess(b, tapSpec{ZK: ens.Hosts(), Sync: mode.sync, BytesRelay: mode.bytesRelay}, tapCPU)
			for _, mix := range loadMixes {
				b.Run(mix.Name, func(b *testing.B) {
					c := benchCompare(b, ens.ConnectString(), tap.addr, mix, ens.Pids(), tap.pid())
					if !mode.sync && !mode.bytesRelay {
						if err := c.Check(); err != nil {
							b.Logf("target missed: %v", err)
						}
					}
				})
			}
			if st := tap.stop(b); !mode.bytesRelay {
				b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
			}
		})
	}
}

// pinCPUs sets the CPU affinity of every thread of pids to cpus (taskset's
// list syntax) and puts back all CPUs when b ends. Threads started later
// inherit it.
func pinCPUs(b *testing.B, cpus string, pids []int) {
	b.Helper()
	set := func(list string) error {
		for _, pid := range pids {
			if out, err := exec.Command("taskset", "-a", "-p", "-c", list, strconv.Itoa(pid)).CombinedOutput(); err != nil {
				return fmt.Errorf("taskset -a -p -c %s %d: %v: %s (taskset is in Debian's util-linux)", list, pid, err, bytes.TrimSpace(out))
			}
		}
		return nil
	}
	if err := set(cpus); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := set(fmt.Sprintf("0-%d", runtime.NumCPU()-1)); err != nil {
			b.Error(err)
		}
	})
}

// tapProcess is a Tap with a one-node journal in a child process (the test
// binary re-executed into TestTapProcess).
type tapProcess struct {
	addr string
	proc *testproc.Process
}

// startTapProcess starts a Tap process in front of spec.ZK as spec says
// (its addresses and directories filled in here), on the CPUs cpus
// (taskset's list syntax; all if empty), waits until it serves, and kills it
// when b ends.
func startTapProcess(b *testing.B, spec tapSpec, cpus string) *tapProcess {
	b.Helper()
	dir := b.TempDir()
	if *tapDisk != "" {
		var err error
		if dir, err = os.MkdirTemp(*tapDisk, "zk2raft-tap-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	spec.Listen, spec.QueueDir = testlog.FreeAddr(b), filepath.Join(dir, "queue")
	if !spec.NoJournal {
		spec.JournalDir, spec.RaftAddr = filepath.Join(dir, "journal"), testlog.FreeAddr(b)
	}
	// One file per process: the benchmark's name, then what the process is
	// when it is not the plain tap (a relay or a variant of the tap).
	file := strings.ReplaceAll(b.Name(), "/", "-") + spec.variant()
	if *tapProfile != "" {
		spec.CPUProfile = *tapProfile + "." + file
	}
	if *tapTrace != "" {
		spec.Trace = *tapTrace + "." + file
	}
	p := &tapProcess{addr: spec.Listen}
	p.proc = testproc.Start(b, testproc.Options{Test: "TestTapProcess", Env: tapProcessEnv, Spec: spec, CPUs: cpus})
	p.proc.WaitListening(b, p.addr, 30*time.Second)
	return p
}

// pid is the Tap process's id (taskset execs it in place).
func (p *tapProcess) pid() int { return p.proc.Pid() }

// stop ends the process with SIGTERM, which waits for the queue to reach
// the journal, and returns the Tap's final Status; it fails b unless every
// mirror was delivered and none was lost.
func (p *tapProcess) stop(b *testing.B) Status {
	b.Helper()
	err := p.proc.Stop(2 * time.Minute)
	var st Status
	out := p.proc.Stdout()
	if i := bytes.IndexByte(out, '{'); i >= 0 {
		out = out[i:] // the testing package may print before it
	}
	if jerr := json.NewDecoder(bytes.NewReader(out)).Decode(&st); jerr != nil {
		b.Fatalf("tap process status: %v (exit %v): %s", jerr, err, p.proc.Stderr())
	}
	if err != nil {
		b.Fatalf("tap process: %v (mirrored %d, delivered %d, lost %v): %s", err, st.Mirrored, st.Delivered, st.Lost, p.proc.Stderr())
	}
	return st
}

// waitSession waits until conn, whose event channel is events, holds a
// session.
func waitSession(ctx context.Context, conn *zk.Conn, events <-chan zk.Event) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("dualwrite: connection closed before a session was established")
			}
			if ev.State == zk.StateHasSession {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("dualwrite: waiting for a session on %s: %w", conn.Server(), ctx.Err())
		}
	}
}
