package cutover

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/internal/zktest"
)

var (
	benchNodes    = flag.Int("cutover.nodes", 10_000, "BenchmarkCutoverPause: znodes in the tree before the cutover")
	benchSessions = flag.Int("cutover.sessions", 64, "BenchmarkCutoverPause: client sessions writing through the proxy")
	benchLoad     = flag.Duration("cutover.load", 3*time.Second, "BenchmarkCutoverPause: steady load before and after the cutover")
	benchHeap     = flag.Int("cutover.zk-heap-mb", 0, "BenchmarkCutoverPause: ZooKeeper's -Xmx in MiB (0: zktest's default, 512; 1M znodes want more)")
	benchTwice    = flag.Bool("cutover.addr-twice", false, "BenchmarkCutoverPause: give the clients the proxy's address twice (go-zookeeper waits 1 s before it tries its only address again; with two entries it reconnects at once)")
)

// BenchmarkCutoverPause measures what clients see of a cutover: -cutover.sessions
// go-zookeeper sessions write their own node through the proxy, one setData
// at a time, before, across and after the switch, on a tree of
// -cutover.nodes znodes. Reported: the p99 latency of the load before the
// cutover (the baseline, same run), the longest any request took across the
// switch (a request that failed with a connection loss counts from its
// first attempt to its success), their ratio, the proxies' hold as the
// orchestrator measured it, errors other than connection loss, and sessions
// lost (expired, or a different session id after the switch). go-zookeeper
// waits a second before it tries its only address again, which the longest
// request shows; -cutover.addr-twice lists the proxy twice to measure
// without that wait.
func BenchmarkCutoverPause(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runCutoverPause(b)
	}
}

type sample struct {
	start time.Time
	took  time.Duration
}

func runCutoverPause(b *testing.B) {
	b.StopTimer()
	r := newRigWith(b, zktest.Options{Servers: 1, MaxHeapMB: *benchHeap})
	p := r.startProxy("p1", false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	seed, _, err := gozk.Connect([]string{p.tap.Addr()}, 20*time.Second, gozk.WithLogger(silentLog{}))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := seed.Create("/bench", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		b.Fatal(err)
	}
	for done := 0; done < *benchNodes; {
		var ops []any
		for j := 0; j < 200 && done < *benchNodes; j++ {
			ops = append(ops, &gozk.CreateRequest{Path: fmt.Sprintf("/bench/n%07d", done), Data: []byte("0123456789abcdef"), Acl: gozk.WorldACL(gozk.PermAll)})
			done++
		}
		if _, err := seed.Multi(ops...); err != nil {
			b.Fatal(err)
		}
	}
	seed.Close()
	if err := p.tap.WaitDelivered(ctx); err != nil {
		b.Fatal(err)
	}

	type worker struct {
		conn    *gozk.Conn
		session int64
		expired atomic.Bool
		samples []sample
		errs    []error
	}
	ws := make([]*worker, *benchSessions)
	hosts := []string{p.tap.Addr()}
	if *benchTwice {
		hosts = append(hosts, p.tap.Addr())
	}
	for i := range ws {
		c, events, err := gozk.Connect(hosts, 20*time.Second, gozk.WithLogger(silentLog{}))
		if err != nil {
			b.Fatal(err)
		}
		w := &worker{conn: c}
		ws[i] = w
		go func() {
			for ev := range events {
				if ev.State == gozk.StateExpired {
					w.expired.Store(true)
				}
			}
		}()
		path := fmt.Sprintf("/bench/w%03d", i)
		if _, err := c.Create(path, nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			b.Fatal(err)
		}
		w.session = c.SessionID()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, w := range ws {
		path := fmt.Sprintf("/bench/w%03d", i)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				for {
					_, err := w.conn.Set(path, []byte(t0.String()), -1)
					if err == nil {
						break
					}
					if errors.Is(err, gozk.ErrConnectionClosed) || errors.Is(err, gozk.ErrNoServer) {
						continue // the one error a ZooKeeper client retries
					}
					mu.Lock()
					w.errs = append(w.errs, err)
					mu.Unlock()
					break
				}
				mu.Lock()
				w.samples = append(w.samples, sample{start: t0, took: time.Since(t0)})
				mu.Unlock()
			}
		})
	}
	waitFor(*benchLoad)
	cutStart := time.Now()
	b.StartTimer()
	rep, err := ToPrimary(ctx, r.options())
	b.StopTimer()
	if err != nil {
		close(stop)
		wg.Wait()
		b.Fatalf("cutover: %v", err)
	}
	cutEnd := time.Now()
	waitFor(*benchLoad)
	close(stop)
	wg.Wait()

	var before, across []time.Duration
	var errs []error
	lost, total := 0, 0
	for _, w := range ws {
		for _, s := range w.samples {
			total++
			switch {
			case s.start.Add(s.took).Before(cutStart):
				before = append(before, s.took)
			case s.start.Before(cutEnd):
				across = append(across, s.took)
			}
		}
		errs = append(errs, w.errs...)
		if w.expired.Load() || w.conn.SessionID() != w.session {
			lost++
		}
		w.conn.Close()
	}
	slices.Sort(before)
	slices.Sort(across)
	if len(before) == 0 || len(across) == 0 {
		b.Fatalf("no samples: %d before, %d across the cutover", len(before), len(across))
	}
	p99 := before[len(before)*99/100]
	maxAcross := across[len(across)-1]
	pause, _ := time.ParseDuration(rep.Pause)
	b.ReportMetric(float64(p99.Microseconds())/1000, "baseline-p99-ms")
	b.ReportMetric(float64(maxAcross.Microseconds())/1000, "max-across-ms")
	b.ReportMetric(float64(maxAcross)/float64(p99), "max/p99")
	b.ReportMetric(float64(pause.Microseconds())/1000, "hold-ms")
	b.ReportMetric(float64(len(errs)), "errors")
	b.ReportMetric(float64(lost), "sessions-lost")
	b.ReportMetric(float64(total), "requests")
	if len(errs) > 0 {
		b.Errorf("errors other than connection loss: %v", errs[:min(len(errs), 5)])
	}
	if lost > 0 {
		b.Errorf("%d sessions lost across the cutover", lost)
	}
}

// waitFor lets the load run; a benchmark's steady phase, not a wait for an
// event.
func waitFor(d time.Duration) { <-time.After(d) }

type silentLog struct{}

func (silentLog) Printf(string, ...any) {}
