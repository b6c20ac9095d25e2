package reversemirror_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zk2raft/zk2raft/raftjournal"
	"github.com/zk2raft/zk2raft/reversemirror"
)

var (
	benchWriters = flag.Int("rm.writers", 64, "BenchmarkReverseMirror: concurrent writers on the journal")
	benchWrites  = flag.Int("rm.writes", 6000, "BenchmarkReverseMirror: writes per run (creates and setData, half each)")
	benchSentry  = flag.Bool("rm.sentry", true, "BenchmarkReverseMirror: the split-brain sentry watches the written subtree (as in production, where it watches /)")
	benchFlight  = flag.Int("rm.inflight", 0, "BenchmarkReverseMirror: the mirror's MaxInFlight (0: the default; 1: one multi at a time)")
)

// BenchmarkReverseMirror measures the reverse mirror against the journal's
// native write rate in the same run: 64 writers (the embedded API, so the
// journal side is as fast as it gets) create and set nodes on a one-node
// journal in primary while the mirror applies to the shared one-server
// ensemble. Reported: the journal's writes/s under that load, the mirror's
// entries/s over the same span plus its drain, their ratio (target ≥ 1: it
// keeps up), the largest outbox seen during the load, and how long the
// mirror took to drain after the load stopped.
func BenchmarkReverseMirror(b *testing.B) {
	for i := range b.N {
		b.StopTimer()
		root := fmt.Sprintf("/bench-rm-%d-%d", time.Now().UnixNano(), i)
		res := runMirrorLoad(b, root, false, *benchFlight)
		b.StartTimer()
		b.ReportMetric(res.journalRate, "journal-writes/s")
		b.ReportMetric(res.mirrorRate, "mirror-entries/s")
		b.ReportMetric(res.mirrorRate/res.journalRate, "mirror/journal")
		b.ReportMetric(float64(res.maxPending), "max-pending")
		b.ReportMetric(float64(res.drain.Milliseconds()), "drain-ms")
		b.ReportMetric(float64(res.multis), "multis")
		b.ReportMetric(float64(res.inFlight), "max-in-flight")
		b.Logf("run %d (load %s): journal %.0f writes/s, mirror %.0f entries/s, ratio %.3f, max pending %d, drain %v, %d multis, at most %d in flight",
			i+1, loadavg(), res.journalRate, res.mirrorRate, res.mirrorRate/res.journalRate, res.maxPending, res.drain.Round(time.Millisecond), res.multis, res.inFlight)
	}
}

type mirrorLoad struct {
	journalRate, mirrorRate float64
	maxPending              int
	drain                   time.Duration
	multis                  uint64
	inFlight                int
}

// loadavg is the machine's load average over the last minute.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// BenchmarkReverseMirrorBacklog measures what the mirror can apply, against
// the journal's native write rate in the same run: the same load as
// BenchmarkReverseMirror with no mirror running, then the mirror starts and
// applies the whole outbox. Reported: the journal's writes/s, the mirror's
// entries/s from its start until the outbox is empty, their ratio (the
// mirror's headroom: above 1 it can keep up with that load), multis, and
// the most in flight at once.
func BenchmarkReverseMirrorBacklog(b *testing.B) {
	for i := range b.N {
		b.StopTimer()
		root := fmt.Sprintf("/bench-rmb-%d-%d", time.Now().UnixNano(), i)
		res := runMirrorLoad(b, root, true, *benchFlight)
		b.StartTimer()
		b.ReportMetric(res.journalRate, "journal-writes/s")
		b.ReportMetric(res.mirrorRate, "backlog-entries/s")
		b.ReportMetric(res.mirrorRate/res.journalRate, "backlog/journal")
		b.ReportMetric(float64(res.multis), "multis")
		b.ReportMetric(float64(res.inFlight), "max-in-flight")
		b.Logf("run %d (load %s): journal %.0f writes/s, mirror applied the backlog at %.0f entries/s, ratio %.3f, %d multis, at most %d in flight",
			i+1, loadavg(), res.journalRate, res.mirrorRate, res.mirrorRate/res.journalRate, res.multis, res.inFlight)
	}
}

// BenchmarkReverseMirrorPipeline measures what pipelining buys, same run:
// each iteration applies two equal backlogs (BenchmarkReverseMirrorBacklog's
// load), one with one multi in flight at a time and one with
// DefaultMaxInFlight, in alternating order, against the same ZooKeeper.
// Reported: both backlog rates and their ratio (pipelined / one at a time).
func BenchmarkReverseMirrorPipeline(b *testing.B) {
	var one, many float64
	for i := range b.N {
		b.StopTimer()
		var r1, r4 mirrorLoad
		for k := range 2 {
			root := fmt.Sprintf("/bench-rmp-%d-%d-%d", time.Now().UnixNano(), i, k)
			if (i+k)%2 == 0 {
				r1 = runMirrorLoad(b, root, true, 1)
			} else {
				r4 = runMirrorLoad(b, root, true, reversemirror.DefaultMaxInFlight)
			}
		}
		b.StartTimer()
		one, many = one+r1.mirrorRate, many+r4.mirrorRate
		b.Logf("run %d (load %s): backlog one at a time %.0f entries/s (journal %.0f/s), pipelined %.0f entries/s (journal %.0f/s, at most %d in flight): %.3fx",
			i+1, loadavg(), r1.mirrorRate, r1.journalRate, r4.mirrorRate, r4.journalRate, r4.inFlight, r4.mirrorRate/r1.mirrorRate)
	}
	b.ReportMetric(one/float64(b.N), "one-at-a-time-entries/s")
	b.ReportMetric(many/float64(b.N), "pipelined-entries/s")
	b.ReportMetric(many/one, "pipelined/one-at-a-time")
}

// runMirrorLoad runs the benchmarks' load, with the mirror's MaxInFlight at
// inFlight; with backlog the mirror starts only once the load ended.
func runMirrorLoad(b *testing.B, root string, backlog bool, inFlight int) mirrorLoad {
	n, _ := startNode(b, raftjournal.PhasePrimary)
	f := n.FSM()
	var m *reversemirror.Mirror
	startMirror := func() {
		m = runMirror(b, n, func(c *reversemirror.Config) {
			c.Marker += strings.ReplaceAll(root, "/", "-") // a journal of its own: a marker of its own
			c.MaxInFlight = inFlight
			if *benchSentry {
				c.Root = root
			}
		})
	}
	if !backlog {
		startMirror()
	}
	ctx := context.Background()
	if _, _, err := n.Create(ctx, root, nil, raftjournal.ModePersistent); err != nil {
		b.Fatal(err)
	}
	var maxPending atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if p := int64(f.MirrorStatus().Pending); p > maxPending.Load() {
				maxPending.Store(p)
			}
		}
	}()
	var next atomic.Int64
	per := *benchWrites
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("%s/w%d", root, w)
			if _, _, err := n.Create(ctx, p, nil, raftjournal.ModePersistent); err != nil {
				b.Error(err)
				return
			}
			for i := 0; next.Add(1) <= int64(per); i++ {
				var err error
				if i%2 == 0 {
					_, _, err = n.Create(ctx, p+"/item-", []byte("x"), raftjournal.ModePersistentSequential)
				} else {
					_, err = n.Set(ctx, p, []byte(fmt.Sprint(i)), -1)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	loadEnd := time.Now()
	applyStart := start
	if backlog {
		startMirror()
		applyStart = time.Now()
	}
	for f.MirrorStatus().Pending > 0 {
		if time.Since(loadEnd) > 5*time.Minute {
			b.Fatalf("mirror did not drain: %+v, %+v", f.MirrorStatus(), m.Status())
		}
		time.Sleep(time.Millisecond)
	}
	drained := time.Now()
	close(done)
	st := m.Status()
	writes := float64(per + *benchWriters + 1)
	return mirrorLoad{
		journalRate: writes / loadEnd.Sub(start).Seconds(),
		mirrorRate:  float64(st.Records) / drained.Sub(applyStart).Seconds(),
		maxPending:  int(maxPending.Load()),
		drain:       drained.Sub(loadEnd),
		multis:      st.Multis,
		inFlight:    st.MaxInFlight,
	}
}
