package dualwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

var kazooN = flag.Int("load.kazoo-n", 1000, "sequential setData and getData calls of each kazoo round (BenchmarkProxyKazoo)")

// Issue 12's benchmarks, each as a same-run ratio through the tap (a process
// of its own with a one-node journal, as in BenchmarkProxy) against direct:
//
//   - BenchmarkProxyCreates: creates on one connection with 1 and with 3,000
//     requests in flight (go-zookeeper pipelines concurrent calls on its one
//     connection). Target: throughput through the tap ≥ 0.8 × direct.
//   - BenchmarkProxyKazoo: kazoo's sequential setData and getData, one at a
//     time on one connection, p50 and mean latency. Target: through the tap
//     ≤ 1.2 × direct.
//
// Each runs with the tap sharing the cores with ZooKeeper and the client,
// and on a CPU of its own (the ensemble and the client pinned to CPU 0, the
// tap to CPU 1, for the direct run too). A relay that copies bytes and
// decodes nothing (bytesRelay), the floor of any proxy's cost, runs beside
// the tap in the same placement and the same rounds.
//
// The machine is shared and noisy, and a create at one in flight waits for
// ZooKeeper's fsyncs on a disk other processes use too, so one long run per
// side says little. Instead each benchmark alternates short rounds, b.N of
// them (-benchtime Nx), each measuring direct, the tap and the relay one
// after the other (in an order that rotates), on connections opened once;
// the figure reported is the median over the rounds of the ratio within a
// round. The tap's CPU time per request (from /proc) is reported too: it is
// far steadier than a throughput on a busy machine.

const (
	createTargetRatio = 0.8
	kazooTargetRatio  = 1.2
)

// benchPlacements are where the proxies run: sharing the cores with
// ZooKeeper and the client, or on a CPU of their own.
var benchPlacements = []struct {
	name string
	own  bool
}{{name: "shared"}, {name: "own-cpu", own: true}}

// proxyPair is the tap and the byte relay, started in one placement.
type proxyPair struct {
	tap, relay *tapProcess
}

func startProxyPair(b *testing.B, ens *zktest.Ensemble, server string, own bool) proxyPair {
	b.Helper()
	tapCPU := ""
	if own {
		if runtime.NumCPU() < 2 {
			b.Skipf("needs 2 CPUs, this machine has %d", runtime.NumCPU())
		}
		pinCPUs(b, "0", append(ens.Pids(), os.Getpid()))
		tapCPU = "1"
	}
	return proxyPair{
		tap:   startTapProcess(b, tapSpec{ZK: []string{server}}, tapCPU),
		relay: startTapProcess(b, tapSpec{ZK: []string{server}, BytesRelay: true}, tapCPU),
	}
}

// createTarget is one way to the server: direct, the tap or the relay, with
// its connection, opened once, and what its rounds measured.
type createTarget struct {
	name   string
	addr   string
	proc   *tapProcess // nil for direct
	conn   *zk.Conn
	parent string
	seq    atomic.Int64
	rates  []float64
	cpu    time.Duration
	ops    int64
}

func (c *createTarget) open(b *testing.B) {
	b.Helper()
	conn, events, err := zk.Connect([]string{c.addr}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	if err := waitSession(context.Background(), conn, events); err != nil {
		b.Fatal(err)
	}
	c.conn = conn
	c.parent = fmt.Sprintf("/bench-create-%s-%d", c.name, time.Now().UnixNano())
	if _, err := conn.Create(c.parent, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		b.Fatal(err)
	}
}

// round creates fresh nodes with inFlight calls outstanding on the target's
// one connection for warm-up plus dur, and returns the creates per second of
// the dur part; it adds the proxy's CPU time and the creates to the totals.
func (c *createTarget) round(b *testing.B, inFlight int, warmup, dur time.Duration) float64 {
	b.Helper()
	var (
		counted  atomic.Int64
		counting atomic.Bool
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	data := []byte("created by the benchmark")
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				p := fmt.Sprintf("%s/n%d", c.parent, c.seq.Add(1))
				if _, err := c.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				if counting.Load() {
					counted.Add(1)
				}
			}
		}()
	}
	time.Sleep(warmup)
	var cpu0 time.Duration
	if c.proc != nil {
		cpu0 = processCPU(c.proc.pid())
	}
	counting.Store(true)
	start := time.Now()
	time.Sleep(dur)
	n := counted.Load()
	elapsed := time.Since(start)
	if c.proc != nil {
		c.cpu += processCPU(c.proc.pid()) - cpu0
		c.ops += n
	}
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("create through %s (%s): %v", c.name, c.addr, firstErr)
	}
	return float64(n) / elapsed.Seconds()
}

// medianRatio is the median over rounds of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return medianOf(r)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkProxyCreates: creates with 1 and 3,000 in flight on one
// connection, direct, through the tap and through the byte relay, in b.N
// interleaved rounds of -load.dur each.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyCreates$' -benchtime 7x -load.dur 1s
func BenchmarkProxyCreates(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0] // one connection: one server, the same as through the proxies
	for _, pl := range benchPlacements {
		b.Run(pl.name, func(b *testing.B) {
			pp := startProxyPair(b, ens, direct, pl.own)
			for _, inFlight := range []int{1, 3000} {
				b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
					targets := []*createTarget{
						{name: "direct", addr: direct},
						{name: "tap", addr: pp.tap.addr, proc: pp.tap},
						{name: "relay", addr: pp.relay.addr, proc: pp.relay},
					}
					for _, t := range targets {
						t.open(b)
						t.round(b, inFlight, 0, 500*time.Millisecond) // warm-up
					}
					for r := range b.N {
						for i := range targets {
							t := targets[(i+r)%len(targets)]
							t.rates = append(t.rates, t.round(b, inFlight, 200*time.Millisecond, *loadDur))
						}
					}
					d, tp, rl := targets[0], targets[1], targets[2]
					ratio, relay := medianRatio(tp.rates, d.rates), medianRatio(rl.rates, d.rates)
					tapCPU := float64(tp.cpu.Microseconds()) / float64(max(tp.ops, 1))
					relayCPU := float64(rl.cpu.Microseconds()) / float64(max(rl.ops, 1))
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(medianOf(d.rates), "direct-creates/s")
					b.ReportMetric(medianOf(tp.rates), "tap-creates/s")
					b.ReportMetric(ratio, "tap-ratio")
					b.ReportMetric(relay, "relay-ratio")
					b.ReportMetric(tapCPU, "tap-cpu-us/op")
					b.ReportMetric(relayCPU, "relay-cpu-us/op")
					b.Logf("%d in flight, %d rounds (median of per-round ratios): direct %.0f creates/s, tap %.0f (%.2fx; target >= %.1fx), byte relay %.2fx; CPU per create: tap %.0f us, relay %.0f us; load %s",
						inFlight, b.N, medianOf(d.rates), medianOf(tp.rates), ratio, createTargetRatio, relay, tapCPU, relayCPU, loadAvg())
					if ratio < createTargetRatio {
						b.Logf("target missed: %.2fx < %.1fx", ratio, createTargetRatio)
					}
				})
			}
			st := pp.tap.stop(b)
			b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
		})
	}
}

// loadAvg is the machine's load average (1, 5, 15 min), for the log.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// kazooLatency is what testdata/kazoo_latency.py prints.
type kazooLatency struct {
	SetP50Ms  float64 `json:"set_p50_ms"`
	SetMeanMs float64 `json:"set_mean_ms"`
	GetP50Ms  float64 `json:"get_p50_ms"`
	GetMeanMs float64 `json:"get_mean_ms"`
	N         int     `json:"n"`
}

// runKazooLatency runs kazoo's sequential set and get against addr.
func runKazooLatency(b *testing.B, addr, path string, n int) kazooLatency {
	b.Helper()
	ctx := context.Background()
	if err := kazooInstalled(ctx); err != nil {
		b.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "kazoo_latency.py"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(kazooPython, script, "--hosts", addr, "--path", path, "--n", fmt.Sprint(n))
	cmd.Env = kazooEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		b.Fatalf("kazoo latency against %s: %v: %s", addr, err, errOut.String())
	}
	var l kazooLatency
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &l); err != nil {
		b.Fatalf("kazoo latency output %q: %v", out.String(), err)
	}
	return l
}

// BenchmarkProxyKazoo: kazoo's sequential setData and getData latency,
// direct, through the tap and through the byte relay, in b.N interleaved
// rounds of -load.kazoo-n calls of each.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyKazoo$' -benchtime 7x
func BenchmarkProxyKazoo(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0]
	for _, pl := range benchPlacements {
		b.Run(pl.name, func(b *testing.B) {
			pp := startProxyPair(b, ens, direct, pl.own)
			path := fmt.Sprintf("/bench-kazoo-%d", time.Now().UnixNano())
			type target struct {
				addr       string
				sets, gets []float64 // p50 per round, ms
				setM, getM []float64 // mean per round, ms
			}
			targets := []*target{{addr: direct}, {addr: pp.tap.addr}, {addr: pp.relay.addr}}
			for r := range b.N {
				for i := range targets {
					t := targets[(i+r)%len(targets)]
					l := runKazooLatency(b, t.addr, path, *kazooN)
					t.sets, t.gets = append(t.sets, l.SetP50Ms), append(t.gets, l.GetP50Ms)
					t.setM, t.getM = append(t.setM, l.SetMeanMs), append(t.getM, l.GetMeanMs)
				}
			}
			d, tp, rl := targets[0], targets[1], targets[2]
			set, get := medianRatio(tp.sets, d.sets), medianRatio(tp.gets, d.gets)
			rset, rget := medianRatio(rl.sets, d.sets), medianRatio(rl.gets, d.gets)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(set, "set-p50-ratio")
			b.ReportMetric(get, "get-p50-ratio")
			b.ReportMetric(medianRatio(tp.setM, d.setM), "set-mean-ratio")
			b.ReportMetric(medianRatio(tp.getM, d.getM), "get-mean-ratio")
			b.ReportMetric(rset, "relay-set-p50-ratio")
			b.ReportMetric(rget, "relay-get-p50-ratio")
			b.ReportMetric(medianOf(d.sets), "direct-set-p50-ms")
			b.ReportMetric(medianOf(d.gets), "direct-get-p50-ms")
			b.Logf("kazoo, %d rounds of %d sequential each (median of per-round ratios): set p50 %.3f ms direct, %.3f through the tap (%.2fx), byte relay %.2fx; get p50 %.3f / %.3f (%.2fx), byte relay %.2fx (target <= %.1fx); load %s",
				b.N, *kazooN, medianOf(d.sets), medianOf(tp.sets), set, rset, medianOf(d.gets), medianOf(tp.gets), get, rget, kazooTargetRatio, loadAvg())
			st := pp.tap.stop(b)
			b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
		})
	}
}
