package cutover

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/zk2raft/zk2raft/dualwrite"
	"github.com/zk2raft/zk2raft/raftjournal"
)

var (
	rbNodes    = flag.Int("rollback.nodes", 10_000, "BenchmarkRollback: znodes in the tree before the cutover")
	rbWritten  = flag.Int("rollback.primary-nodes", 1_000, "BenchmarkRollback: znodes created on the journal while it is primary")
	rbSessions = flag.Int("rollback.sessions", 16, "BenchmarkRollback: client sessions writing through the proxy")
	rbFanout   = flag.Int("rollback.fanout", 1000, "BenchmarkRollback: children per parent in the -rollback.nodes tree (/bench/dNNNN/nNNNNNNN; 0: all under /bench)")
	rbHeap     = flag.Int("rollback.zk-heap-mb", 0, "BenchmarkRollback: ZooKeeper's -Xmx in MiB (0: zktest's default, 512; 1M znodes want 2048)")
	rbFull     = flag.Bool("rollback.full-compare", true, "BenchmarkRollback: after the rollback (load stopped), time one full comparison of both sides (a repair pass over /: what the rebaseline did once per pass before it was targeted) as the same-run baseline")
	rbQuiet    = flag.Bool("rollback.quiet-rebaseline", false, "BenchmarkRollback: stop the load 2 s after the switch back, so that the rebaseline runs on a quiet ensemble (the default keeps it writing until the rollback returns)")
)

// BenchmarkRollback measures a round trip on a tree of -rollback.nodes
// znodes: the cutover to primary, -rollback.primary-nodes creates on the
// journal, then `cutover --to shadow` while -rollback.sessions go-zookeeper
// sessions (opened on ZooKeeper before the cutover) write their own node
// through the proxy without pause, until the rollback returns (with
// -rollback.quiet-rebaseline, until 2 s after the switch back, so that the
// rebaseline runs on a quiet ensemble). Reported: the rollback's whole
// duration and its ratio to the cutover's (same run, same tree), the
// clients' pause (hold to switch back), the rebaseline's duration (its
// targeted repair and digest proof, or the full comparison it falls back
// to) and whether the targeted repair was proven (targeted 1), the load's
// p99 before the rollback (the baseline) and the longest request whose life
// overlapped the rollback with their ratio, errors other than a connection
// loss, sessions lost.
func BenchmarkRollback(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runRollback(b)
	}
}

func runRollback(b *testing.B) {
	b.StopTimer()
	zo := rollbackEnsemble()
	zo.MaxHeapMB = *rbHeap
	r := newRigWith(b, zo)
	r.startMirror(b)
	p := r.startProxyWith("p1", r.jc, func(c *dualwrite.Config, _ *AgentConfig) { c.Auth = []string{"digest:" + rollbackSuper} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	hosts := []string{p.tap.Addr(), p.tap.Addr()}
	seed, _, err := gozk.Connect(hosts, 20*time.Second, gozk.WithLogger(silentLog{}))
	if err != nil {
		b.Fatal(err)
	}
	defer seed.Close()
	// The tree: n nodes under prefix, fanout to a parent (a parent is
	// created in the multi before its first child).
	create := func(prefix string, n, fanout int) {
		if _, err := seed.Create(prefix, nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			b.Fatal(err)
		}
		for done := 0; done < n; {
			var ops []any
			for j := 0; j < 200 && done < n; j++ {
				path := fmt.Sprintf("%s/n%07d", prefix, done)
				if fanout > 0 {
					dir := fmt.Sprintf("%s/d%04d", prefix, done/fanout)
					if done%fanout == 0 {
						ops = append(ops, &gozk.CreateRequest{Path: dir, Acl: gozk.WorldACL(gozk.PermAll)})
					}
					path = fmt.Sprintf("%s/n%07d", dir, done)
				}
				ops = append(ops, &gozk.CreateRequest{Path: path, Data: []byte("0123456789abcdef"), Acl: gozk.WorldACL(gozk.PermAll)})
				done++
			}
			if _, err := seed.Multi(ops...); err != nil {
				b.Fatal(err)
			}
		}
	}
	create("/bench", *rbNodes, *rbFanout)
	if err := p.tap.WaitDelivered(ctx); err != nil {
		b.Fatal(err)
	}
	type worker struct {
		conn    *gozk.Conn
		session int64
		samples []sample
		errs    []error
	}
	// The sessions start on ZooKeeper: the journal adopts them at the
	// cutover, and the rollback hands them back.
	ws := make([]*worker, *rbSessions)
	for i := range ws {
		c, _, err := gozk.Connect(hosts, 20*time.Second, gozk.WithLogger(silentLog{}))
		if err != nil {
			b.Fatal(err)
		}
		w := &worker{conn: c}
		ws[i] = w
		if _, err := c.Create(fmt.Sprintf("/bench/w%03d", i), nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
			b.Fatal(err)
		}
		w.session = c.SessionID()
	}
	for deadline := time.Now().Add(time.Minute); ; {
		known := map[int64]bool{}
		for _, ss := range r.node.FSM().SourceSessions() {
			known[ss.ID] = true
		}
		missing := 0
		for _, w := range ws {
			if !known[w.session] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions not mirrored into the journal", missing)
		}
		waitFor(50 * time.Millisecond)
	}
	waitQuiet(b, p)
	t0 := time.Now()
	if rep, err := ToPrimary(ctx, r.rollbackOptions()); err != nil {
		b.Fatalf("cutover: %v (%+v)", err, rep)
	}
	cutover := time.Since(t0)
	// Writes on the journal: new nodes, then the steady load.
	for {
		if _, err := seed.Sync("/bench"); err == nil {
			break
		}
	}
	create("/primary", *rbWritten, 0)
	for _, w := range ws {
		for {
			if _, err := w.conn.Sync("/bench"); err == nil {
				break
			}
		}
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
						continue
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
	waitFor(2 * time.Second)
	rbStart := time.Now()
	o := r.rollbackOptions()
	var afterSwitch time.Time
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad()
	o.stepHook = func(step string) error {
		if step == "switch" {
			if *rbQuiet {
				waitFor(2 * time.Second)
				stopLoad()
			}
			afterSwitch = time.Now()
		}
		return nil
	}
	b.StartTimer()
	rep, err := ToShadow(ctx, o)
	b.StopTimer()
	rbEnd := time.Now()
	rollback := rbEnd.Sub(rbStart)
	stopLoad()
	if err != nil {
		b.Fatalf("rollback: %v (%+v)", err, rep)
	}

	var held, drained, committed, switched, rebased time.Time
	targeted := 0.0
	for _, s := range rep.Steps {
		switch s.Name {
		case "hold":
			held = s.At
		case "drain":
			drained = s.At
		case "commit":
			committed = s.At
		case "switch":
			switched = s.At
		case "rebaseline":
			rebased = s.At
			b.Logf("rebaseline: %s", s.Detail)
			if strings.Contains(s.Detail, "; targeted repair of ") && !strings.Contains(s.Detail, "not proven") {
				targeted = 1
			}
		}
	}
	// The hold's parts: until the reverse mirror drained, until the commit
	// applied (the rebase walks the tree), until every proxy switched back
	// (the leader's mirror released its sessions first).
	b.ReportMetric(float64(drained.Sub(held).Microseconds())/1000, "drain-ms")
	b.ReportMetric(float64(committed.Sub(drained).Microseconds())/1000, "commit-ms")
	b.ReportMetric(float64(switched.Sub(committed).Microseconds())/1000, "switch-ms")
	var before, across []time.Duration
	var errs []error
	lost := 0
	for _, w := range ws {
		for _, s := range w.samples {
			switch {
			case s.start.Add(s.took).Before(rbStart):
				before = append(before, s.took)
			case s.start.Before(rbEnd):
				across = append(across, s.took)
			}
		}
		errs = append(errs, w.errs...)
		if w.conn.SessionID() != w.session {
			lost++
		}
		w.conn.Close()
	}
	slices.Sort(before)
	slices.Sort(across)
	if len(before) == 0 || len(across) == 0 {
		b.Fatalf("no samples: %d before, %d across the rollback", len(before), len(across))
	}
	p99 := before[len(before)*99/100]
	maxAcross := across[len(across)-1]
	pause, _ := time.ParseDuration(rep.Pause)
	rollback -= afterSwitch.Sub(switched) // -rollback.quiet-rebaseline's 2 s after the switch (0 otherwise)
	b.ReportMetric(rollback.Seconds(), "rollback-s")
	b.ReportMetric(cutover.Seconds(), "cutover-s")
	b.ReportMetric(rollback.Seconds()/cutover.Seconds(), "rollback/cutover")
	b.ReportMetric(float64(pause.Microseconds())/1000, "hold-ms")
	b.ReportMetric(rebased.Sub(afterSwitch).Seconds(), "rebaseline-s")
	b.ReportMetric(targeted, "targeted")
	b.ReportMetric(float64(p99.Microseconds())/1000, "baseline-p99-ms")
	b.ReportMetric(float64(maxAcross.Microseconds())/1000, "max-across-ms")
	b.ReportMetric(float64(maxAcross)/float64(p99), "max/p99")
	b.ReportMetric(float64(len(errs)), "errors")
	b.ReportMetric(float64(lost), "sessions-lost")
	if len(errs) > 0 {
		b.Errorf("errors other than connection loss: %v", errs[:min(len(errs), 5)])
	}
	if lost > 0 {
		b.Errorf("%d sessions lost across the rollback", lost)
	}
	// Now, not at the end of the benchmark: the full comparison below may
	// take minutes at 1M znodes.
	fmt.Fprintf(os.Stderr, "BenchmarkRollback: %d znodes: rollback %.3f s, rebaseline %.3f s (targeted %v), clients held %s, longest request across %s, baseline p99 %s, cutover %.3f s, errors %d, sessions lost %d\n",
		*rbNodes, rollback.Seconds(), rebased.Sub(afterSwitch).Seconds(), targeted == 1, rep.Pause, maxAcross, p99, cutover.Seconds(), len(errs), lost)
	if *rbFull {
		// The baseline, same run, same tree: one full comparison of both
		// sides, the load stopped and the mirrors in (a repair pass that
		// finds nothing: the least one pass of a whole-tree rebaseline
		// costs).
		if err := p.tap.WaitDelivered(ctx); err != nil {
			b.Fatal(err)
		}
		view := dualwrite.FailoverView(r.jc.AdminAddrs, func(addr string) *raftjournal.AdminClient {
			return raftjournal.NewAdminClient(addr, creds()).WithZooKeeperAuth([]string{"digest:" + rollbackSuper})
		})
		rc := dualwrite.DefaultReconcilerConfig()
		rc.ZK, rc.Auth, rc.Journal, rc.View = r.ens.Hosts(), []string{"digest:" + rollbackSuper}, r.jc, view
		rec, err := dualwrite.NewReconciler(rc)
		if err != nil {
			b.Fatal(err)
		}
		defer rec.Close()
		t0 := time.Now()
		rs, err := rec.RepairAll(ctx, "/")
		full := time.Since(t0)
		if err != nil {
			b.Fatalf("full comparison: %v", err)
		}
		b.Logf("full comparison after the rollback: %d nodes compared, %d differences, %d repaired, %s", rs.Compared, rs.Differences, rs.NodeRepairs+rs.DeleteRepairs, full.Round(time.Millisecond))
		b.ReportMetric(full.Seconds(), "full-compare-s")
		b.ReportMetric(rebased.Sub(afterSwitch).Seconds()/full.Seconds(), "rebaseline/full-compare")
	}
}

// waitQuiet waits until the proxy's reconciler has repaired nothing for two
// seconds (its repairs gate).
func waitQuiet(b *testing.B, p *proxy) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		rs := p.agent.State().Reconcile
		if rs.LastRepair.IsZero() || time.Since(rs.LastRepair) > 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the proxy's reconciler keeps repairing (last %s ago)", time.Since(rs.LastRepair))
		}
		waitFor(200 * time.Millisecond)
	}
}
