package dualwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/spawn"
	"github.com/zk2raft/zk2raft/internal/testlog"
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
// proxies to CPU 1, for the direct run too). Relays that copy bytes and
// decode nothing, the floor of any proxy's cost, run beside the tap in the
// same placement and the same rounds (-load.relays): by default the Go byte
// relay (bytesRelay) and socat (Debian's), which is neither ours nor Go.
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

// benchRelays are the proxies measured beside the tap, in the same rounds
// (-load.relays). The default, "relay,socat": the byte relay in Go, and
// Debian's socat forwarding TCP, a relay neither written here nor in Go.
// The others find where the time goes: the Go relay's variants
// (relayModes), the tap without its journal or its fsyncs, and either with
// GOMAXPROCS=1.
var benchRelays = flag.String("load.relays", "relay,socat", "comma-separated proxies measured beside the tap in BenchmarkProxyCreates and BenchmarkProxyKazoo: socat, relay, relay-rw, relay-locked, relay-epoll, relay-p1, tap-nojournal, tap-nosync, tap-p1")

// benchTapVariants are the tap processes -load.relays may name besides
// the relays.
var benchTapVariants = map[string]tapSpec{
	// GOMAXPROCS=1: no second P to wake and spin.
	"tap-p1":   {GOMAXPROCS: 1},
	"relay-p1": {BytesRelay: true, GOMAXPROCS: 1},
	// Mirrors queued and never delivered: no Raft, no read-backs.
	"tap-nojournal": {NoJournal: true},
	// No delivery and no queue fsyncs either: what is left is the reply
	// path's own work.
	"tap-nosync": {NoJournal: true, QueueNoSync: true},
}

// benchProxy is one way to the server measured beside direct: the tap or a
// relay, in a process of its own.
type benchProxy struct {
	name string
	addr string
	// cpu is the CPU time the proxy's processes have spent so far.
	cpu func() time.Duration
}

// proxySet is the tap and the proxies of -load.relays, started in one
// placement; proxies[0] is the tap.
type proxySet struct {
	tap     *tapProcess
	proxies []benchProxy
}

func startProxySet(b *testing.B, ens *zktest.Ensemble, server string, own bool) proxySet {
	b.Helper()
	cpus := ""
	if own {
		if runtime.NumCPU() < 2 {
			b.Skipf("needs 2 CPUs, this machine has %d", runtime.NumCPU())
		}
		pinCPUs(b, "0", append(ens.Pids(), os.Getpid()))
		cpus = "1"
	}
	tap := startTapProcess(b, tapSpec{ZK: []string{server}}, cpus)
	ps := proxySet{tap: tap, proxies: []benchProxy{procProxy("tap", tap)}}
	for _, name := range strings.Split(*benchRelays, ",") {
		name = strings.TrimSpace(name)
		spec, variant := benchTapVariants[name]
		if mode, ok := relayModes[name]; ok {
			spec, variant = tapSpec{BytesRelay: true, RelayMode: mode}, true
		}
		switch {
		case name == "":
		case name == "socat":
			ps.proxies = append(ps.proxies, startSocat(b, server, cpus))
		case variant:
			spec.ZK = []string{server}
			ps.proxies = append(ps.proxies, procProxy(name, startTapProcess(b, spec, cpus)))
		default:
			b.Fatalf("-load.relays: unknown proxy %q", name)
		}
	}
	return ps
}

func procProxy(name string, p *tapProcess) benchProxy {
	return benchProxy{name: name, addr: p.addr, cpu: func() time.Duration { return processCPU(p.pid()) }}
}

// startSocat runs Debian's socat forwarding a listening port to server
// (TCP_NODELAY on both sides, as the tap and Go set it; a child process per
// connection, socat's fork option), on the CPUs cpus (taskset's list syntax;
// all if empty), and kills it when b ends.
func startSocat(b *testing.B, server, cpus string) benchProxy {
	b.Helper()
	bin, err := exec.LookPath("socat")
	if err != nil {
		b.Fatalf("socat is not installed: apt-get install socat (Debian's package; `make deps` installs it): %v", err)
	}
	addr := testlog.FreeAddr(b)
	_, port, _ := net.SplitHostPort(addr)
	args := []string{bin, "TCP-LISTEN:" + port + ",bind=127.0.0.1,reuseaddr,fork,nodelay", "TCP:" + server + ",nodelay"}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := spawn.Start(cmd); err != nil {
		b.Fatalf("start socat: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			b.Fatalf("socat exited (%v) before listening on %s: %s", err, addr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("socat never listened on %s: %s", addr, stderr.String())
		}
	}
	pid := cmd.Process.Pid
	return benchProxy{name: "socat", addr: addr, cpu: func() time.Duration { return processTreeCPU(pid) }}
}

// processTreeCPU is the CPU time of process pid, of its children still
// running and of those it has reaped (socat's forked connections).
func processTreeCPU(pid int) time.Duration {
	d := processCPU(pid) + reapedChildrenCPU(pid)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return d
	}
	for _, f := range strings.Fields(string(raw)) {
		if c, err := strconv.Atoi(f); err == nil {
			d += processCPU(c)
		}
	}
	return d
}

// reapedChildrenCPU is the cutime and cstime of process pid.
func reapedChildrenCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	cu, _ := strconv.ParseInt(f[13], 10, 64)
	cs, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(cu+cs) * 10 * time.Millisecond
}

// createTarget is one way to the server: direct or a proxy, with its
// connection, opened once, and what its rounds measured.
type createTarget struct {
	name   string
	addr   string
	cpuNow func() time.Duration // nil for direct
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
	if c.cpuNow != nil {
		cpu0 = c.cpuNow()
	}
	counting.Store(true)
	start := time.Now()
	time.Sleep(dur)
	n := counted.Load()
	elapsed := time.Since(start)
	if c.cpuNow != nil {
		c.cpu += c.cpuNow() - cpu0
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
// connection, direct, through the tap and through the relays of
// -load.relays, in b.N interleaved rounds of -load.dur each.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyCreates$' -benchtime 7x -load.dur 1s
func BenchmarkProxyCreates(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0] // one connection: one server, the same as through the proxies
	for _, pl := range benchPlacements {
		b.Run(pl.name, func(b *testing.B) {
			ps := startProxySet(b, ens, direct, pl.own)
			for _, inFlight := range []int{1, 3000} {
				b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
					targets := []*createTarget{{name: "direct", addr: direct}}
					for _, p := range ps.proxies {
						targets = append(targets, &createTarget{name: p.name, addr: p.addr, cpuNow: p.cpu})
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
					d, tp := targets[0], targets[1]
					ratio := medianRatio(tp.rates, d.rates)
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(medianOf(d.rates), "direct-creates/s")
					b.ReportMetric(medianOf(tp.rates), "tap-creates/s")
					var line strings.Builder
					for _, t := range targets[1:] {
						r := medianRatio(t.rates, d.rates)
						cpu := float64(t.cpu.Microseconds()) / float64(max(t.ops, 1))
						b.ReportMetric(r, t.name+"-ratio")
						b.ReportMetric(cpu, t.name+"-cpu-us/op")
						fmt.Fprintf(&line, "; %s %.2fx, %.0f us CPU per create", t.name, r, cpu)
					}
					b.Logf("%d in flight, %d rounds (median of per-round ratios): direct %.0f creates/s, tap %.0f (target >= %.1fx)%s; load %s",
						inFlight, b.N, medianOf(d.rates), medianOf(tp.rates), createTargetRatio, line.String(), loadAvg())
					if ratio < createTargetRatio {
						b.Logf("target missed: %.2fx < %.1fx", ratio, createTargetRatio)
					}
				})
			}
			st := ps.tap.stop(b)
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
// direct, through the tap and through the relays of -load.relays, in b.N
// interleaved rounds of -load.kazoo-n calls of each.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyKazoo$' -benchtime 7x
func BenchmarkProxyKazoo(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0]
	for _, pl := range benchPlacements {
		b.Run(pl.name, func(b *testing.B) {
			ps := startProxySet(b, ens, direct, pl.own)
			path := fmt.Sprintf("/bench-kazoo-%d", time.Now().UnixNano())
			type target struct {
				name, addr string
				sets, gets []float64 // p50 per round, ms
				setM, getM []float64 // mean per round, ms
			}
			targets := []*target{{name: "direct", addr: direct}}
			for _, p := range ps.proxies {
				targets = append(targets, &target{name: p.name, addr: p.addr})
			}
			for r := range b.N {
				for i := range targets {
					t := targets[(i+r)%len(targets)]
					l := runKazooLatency(b, t.addr, path, *kazooN)
					t.sets, t.gets = append(t.sets, l.SetP50Ms), append(t.gets, l.GetP50Ms)
					t.setM, t.getM = append(t.setM, l.SetMeanMs), append(t.getM, l.GetMeanMs)
				}
			}
			d, tp := targets[0], targets[1]
			set, get := medianRatio(tp.sets, d.sets), medianRatio(tp.gets, d.gets)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(set, "set-p50-ratio")
			b.ReportMetric(get, "get-p50-ratio")
			b.ReportMetric(medianRatio(tp.setM, d.setM), "set-mean-ratio")
			b.ReportMetric(medianRatio(tp.getM, d.getM), "get-mean-ratio")
			var line strings.Builder
			for _, t := range targets[2:] {
				rset, rget := medianRatio(t.sets, d.sets), medianRatio(t.gets, d.gets)
				b.ReportMetric(rset, t.name+"-set-p50-ratio")
				b.ReportMetric(rget, t.name+"-get-p50-ratio")
				fmt.Fprintf(&line, "; %s set %.2fx get %.2fx", t.name, rset, rget)
			}
			b.ReportMetric(medianOf(d.sets), "direct-set-p50-ms")
			b.ReportMetric(medianOf(d.gets), "direct-get-p50-ms")
			b.Logf("kazoo, %d rounds of %d sequential each (median of per-round ratios): set p50 %.3f ms direct, %.3f through the tap (%.2fx); get p50 %.3f / %.3f (%.2fx) (target <= %.1fx)%s; load %s",
				b.N, *kazooN, medianOf(d.sets), medianOf(tp.sets), set, medianOf(d.gets), medianOf(tp.gets), get, kazooTargetRatio, line.String(), loadAvg())
			st := ps.tap.stop(b)
			b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
		})
	}
}
