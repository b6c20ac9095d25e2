package dualwrite

// The reconciler's counters and metrics.

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/zkclient"
)

// ReconcilerStats are the reconciler's counters since it was made.
type ReconcilerStats struct {
	Events        int64 // node events in scope received
	Skipped       int64 // event checks skipped because the tap mirrored the path
	Checks        int64 // paths compared (events, CheckPath, RepairAll)
	NodeRepairs   int64 // nodes imported from ZooKeeper
	DeleteRepairs int64 // deletes submitted
	Errors        int64 // checks that failed
	RepairPasses  int64 // RepairAll runs
	// Digest checks by verdict.
	DigestEqual, DigestDifferent, DigestUnknown int64
	// LastRepair is when the last repair was submitted (zero if none).
	LastRepair time.Time
	// LastDigest is the last digest check's verdict (zero if none).
	LastDigest DigestVerdict
	// Unreadable counts the nodes the reconciler's credentials cannot read
	// (NoAuth, or a masked ACL): it cannot compare or repair them.
	// UnreadablePaths lists the first of them.
	Unreadable      int64
	UnreadablePaths []string
	// Sessions are the reconciler's own ZooKeeper sessions (its event
	// session and its alignment session, when open): the cutover's
	// direct-clients gate tells them from clients that bypass the proxies.
	Sessions []int64 `json:",omitempty"`
}

type reconcileCounters struct {
	events, skipped, checks, nodeRepairs, deleteRepairs, errors, passes atomic.Int64
	digestEqual, digestDifferent, digestUnknown                         atomic.Int64
	lastRepair                                                          atomic.Int64 // unix ns
}

// Stats returns the counters.
func (r *Reconciler) Stats() ReconcilerStats {
	s := &r.stats
	out := ReconcilerStats{
		Events: s.events.Load(), Skipped: s.skipped.Load(), Checks: s.checks.Load(),
		NodeRepairs: s.nodeRepairs.Load(), DeleteRepairs: s.deleteRepairs.Load(), Errors: s.errors.Load(),
		RepairPasses: s.passes.Load(), DigestEqual: s.digestEqual.Load(), DigestDifferent: s.digestDifferent.Load(),
		DigestUnknown: s.digestUnknown.Load(),
	}
	if ns := s.lastRepair.Load(); ns != 0 {
		out.LastRepair = time.Unix(0, ns)
	}
	// TryLock: r.mu is held while a session is dialled; Stats serves
	// /status and must not wait for that (the sessions then show next time).
	if r.mu.TryLock() {
		for _, c := range []*zkclient.Client{r.client, r.alignConn} {
			if c != nil {
				if id := c.SessionID(); id != 0 {
					out.Sessions = append(out.Sessions, id)
				}
			}
		}
		r.mu.Unlock()
	}
	r.lastMu.Lock()
	out.LastDigest = r.lastDig
	r.lastMu.Unlock()
	out.Unreadable, out.UnreadablePaths = r.unreadableStats(20)
	return out
}

// reconcileMetrics are zk2raft_reconcile_*.
type reconcileMetrics struct {
	events, skipped, checks, passes prometheus.Counter
	repairs                         *prometheus.CounterVec // kind: node, delete
	digestChecks                    *prometheus.CounterVec // result: equal, different, unknown
	lastRepair                      prometheus.Gauge
	unreadable                      prometheus.Gauge
}

func newReconcileMetrics(reg prometheus.Registerer) (*reconcileMetrics, error) {
	const ns, sub = "zk2raft", "reconcile"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &reconcileMetrics{
		events:  counter("events_total", "ZooKeeper node events received under the reconciled root."),
		skipped: counter("skipped_total", "Event checks skipped because the tap mirrored a write on the path."),
		checks:  counter("checks_total", "Paths compared between ZooKeeper and the journal."),
		passes:  counter("repair_passes_total", "Full compare-and-repair passes."),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "repairs_total",
			Help: "Repairs submitted to the journal: node (imported from ZooKeeper) or delete."}, []string{"kind"}),
		digestChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "digest_checks_total",
			Help: "Digest checks by verdict."}, []string{"result"}),
		lastRepair: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_repair_timestamp",
			Help: "Unix time of the last repair submitted."}),
		unreadable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "unreadable_nodes",
			Help: "Nodes the reconciler's credentials cannot read (NoAuth, or a masked ACL), which it therefore cannot compare or repair."}),
	}
	for _, k := range []string{"node", "delete"} {
		m.repairs.WithLabelValues(k)
	}
	for _, d := range []DigestResult{DigestEqual, DigestDifferent, DigestUnknown} {
		m.digestChecks.WithLabelValues(d.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.skipped, m.checks, m.passes, m.repairs, m.digestChecks, m.lastRepair, m.unreadable} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("dualwrite: registering reconciler metrics: %w", err)
			}
		}
	}
	return m, nil
}
