package dualwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

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
// tap to CPU 1, for the direct run too); and, for scale, with a relay that
// copies bytes and decodes nothing in the tap's place (bytes-relay-own-cpu):
// the floor of any proxy's cost.

const (
	createTargetRatio = 0.8
	kazooTargetRatio  = 1.2
)

// createRun creates nodes under a fresh parent through addr for dur with
// inFlight calls outstanding on one connection, after a warm-up, and returns
// the creates per second.
func createRun(b *testing.B, addr string, inFlight int, dur time.Duration) float64 {
	b.Helper()
	conn, events, err := zk.Connect([]string{addr}, 30*time.Second, zk.WithLogger(discardZK{}))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := waitSession(context.Background(), conn, events); err != nil {
		b.Fatal(err)
	}
	parent := fmt.Sprintf("/bench-create-%d", time.Now().UnixNano())
	if _, err := conn.Create(parent, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		b.Fatal(err)
	}
	var (
		seq      atomic.Int64
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
				p := fmt.Sprintf("%s/n%d", parent, seq.Add(1))
				if _, err := conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
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
	time.Sleep(loadWarmup)
	counting.Store(true)
	start := time.Now()
	time.Sleep(dur)
	n := counted.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("create through %s: %v", addr, firstErr)
	}
	return float64(n) / elapsed.Seconds()
}

// BenchmarkProxyCreates: creates with 1 and 3,000 in flight on one
// connection, direct and through the tap, alternated b.N times.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyCreates$' -benchtime 2x -load.dur 3s
func BenchmarkProxyCreates(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0] // one connection: one server, the same as through the tap
	for _, mode := range []struct {
		name       string
		own, relay bool
	}{
		{name: "shared"}, {name: "own-cpu", own: true},
		{name: "bytes-relay-own-cpu", own: true, relay: true}, // the floor of any proxy, for scale
	} {
		b.Run(mode.name, func(b *testing.B) {
			tapCPU := ""
			if mode.own {
				if runtime.NumCPU() < 2 {
					b.Skipf("needs 2 CPUs, this machine has %d", runtime.NumCPU())
				}
				pinCPUs(b, "0", append(ens.Pids(), os.Getpid()))
				tapCPU = "1"
			}
			tap := startTapProcess(b, tapSpec{ZK: []string{direct}, BytesRelay: mode.relay}, tapCPU)
			for _, inFlight := range []int{1, 3000} {
				b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
					var d, p float64
					for range b.N {
						d += createRun(b, direct, inFlight, *loadDur)
						p += createRun(b, tap.addr, inFlight, *loadDur)
					}
					d, p = d/float64(b.N), p/float64(b.N)
					ratio := p / d
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(d, "direct-creates/s")
					b.ReportMetric(p, "tap-creates/s")
					b.ReportMetric(ratio, "tap-ratio")
					b.Logf("%d in flight: direct %.0f creates/s, through the tap %.0f (%.2fx; target >= %.1fx)", inFlight, d, p, ratio, createTargetRatio)
					if ratio < createTargetRatio {
						b.Logf("target missed: %.2fx < %.1fx", ratio, createTargetRatio)
					}
				})
			}
			if st := tap.stop(b); !mode.relay {
				b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
			}
		})
	}
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
// direct and through the tap, alternated b.N times.
//
//	go test ./dualwrite -run '^$' -bench 'ProxyKazoo$' -benchtime 2x
func BenchmarkProxyKazoo(b *testing.B) {
	ens := testEnsemble(b)
	direct := ens.Hosts()[0]
	const n = 2000
	for _, mode := range []struct {
		name       string
		own, relay bool
	}{
		{name: "shared"}, {name: "own-cpu", own: true},
		// Not the tap: a relay that copies bytes and decodes nothing, the
		// floor of any proxy's cost, on a CPU of its own.
		{name: "bytes-relay-own-cpu", own: true, relay: true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			tapCPU := ""
			if mode.own {
				if runtime.NumCPU() < 2 {
					b.Skipf("needs 2 CPUs, this machine has %d", runtime.NumCPU())
				}
				pinCPUs(b, "0", append(ens.Pids(), os.Getpid()))
				tapCPU = "1"
			}
			tap := startTapProcess(b, tapSpec{ZK: []string{direct}, BytesRelay: mode.relay}, tapCPU)
			path := fmt.Sprintf("/bench-kazoo-%d", time.Now().UnixNano())
			var d, p kazooLatency
			for range b.N {
				dl := runKazooLatency(b, direct, path, n)
				pl := runKazooLatency(b, tap.addr, path, n)
				d.SetP50Ms += dl.SetP50Ms / float64(b.N)
				d.GetP50Ms += dl.GetP50Ms / float64(b.N)
				d.SetMeanMs += dl.SetMeanMs / float64(b.N)
				d.GetMeanMs += dl.GetMeanMs / float64(b.N)
				p.SetP50Ms += pl.SetP50Ms / float64(b.N)
				p.GetP50Ms += pl.GetP50Ms / float64(b.N)
				p.SetMeanMs += pl.SetMeanMs / float64(b.N)
				p.GetMeanMs += pl.GetMeanMs / float64(b.N)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(p.SetP50Ms/d.SetP50Ms, "set-p50-ratio")
			b.ReportMetric(p.GetP50Ms/d.GetP50Ms, "get-p50-ratio")
			b.ReportMetric(p.SetMeanMs/d.SetMeanMs, "set-mean-ratio")
			b.ReportMetric(p.GetMeanMs/d.GetMeanMs, "get-mean-ratio")
			b.ReportMetric(d.SetP50Ms, "direct-set-p50-ms")
			b.ReportMetric(d.GetP50Ms, "direct-get-p50-ms")
			b.Logf("kazoo, %d sequential each: set p50 %.3f ms direct, %.3f through the tap (%.2fx); get p50 %.3f / %.3f (%.2fx); means set %.2fx, get %.2fx (target <= %.1fx)",
				n, d.SetP50Ms, p.SetP50Ms, p.SetP50Ms/d.SetP50Ms, d.GetP50Ms, p.GetP50Ms, p.GetP50Ms/d.GetP50Ms,
				p.SetMeanMs/d.SetMeanMs, p.GetMeanMs/d.GetMeanMs, kazooTargetRatio)
			if st := tap.stop(b); !mode.relay {
				b.Logf("tap: %d mirrored, %d delivered, lost %v", st.Mirrored, st.Delivered, st.Lost)
			}
		})
	}
}
