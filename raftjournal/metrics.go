package raftjournal

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics is the node's Prometheus registry: its own, never the global
// one, so several nodes can live in one process (tests) and an embedding
// program decides what it exposes. Gauges of raft and FSM state are read at
// scrape time.
type nodeMetrics struct {
	reg *prometheus.Registry

	applySeconds    *prometheus.HistogramVec // submit → result, by entry type
	fsmApply        prometheus.Histogram     // one FSM batch
	snapshotSeconds *prometheus.HistogramVec // capture, persist, restore
	snapshotBytes   prometheus.Gauge
	restores        prometheus.Counter
	forwardedOut    prometheus.Counter
	forwardedIn     prometheus.Counter
	sessionsExpired prometheus.Counter
	nodesCleaned    prometheus.Counter
	leaderChanges   prometheus.Counter
}

func newNodeMetrics(n *Node) *nodeMetrics {
	const ns = "zk2raft_journal"
	m := &nodeMetrics{
		reg: prometheus.NewRegistry(),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "apply_seconds",
			Help:    "Time from submitting a log entry on this node to its result (committed and applied on the leader), by entry type.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"type"}),
		fsmApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "fsm_apply_batch_seconds",
			Help:    "Time the state machine takes to apply one batch of committed entries.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 20),
		}),
		snapshotSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "snapshot_seconds",
			Help:    "Snapshot timings: capture (state copied under the FSM lock), persist (written to disk), restore.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"op"}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "snapshot_bytes", Help: "Size of the last snapshot written."}),
		restores:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "snapshot_restores_total", Help: "Snapshots restored (at start or installed from the leader)."}),
		forwardedOut:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "forwarded_requests_total", Help: "Requests this node sent to the leader."}),
		forwardedIn:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "forwarded_writes_received_total", Help: "Writes other nodes forwarded to this node as leader."}),
		sessionsExpired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sessions_expired_total",
			Help: "Sessions this node, as leader, expired."}),
		nodesCleaned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "cleanup_deleted_nodes_total",
			Help: "Empty containers and expired TTL nodes this node, as leader, deleted."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "leadership_changes_total",
			Help: "Times this node gained or lost leadership."}),
	}
	// Series that exist before their first observation, so dashboards see them.
	for _, op := range []string{"capture", "persist", "restore"} {
		m.snapshotSeconds.WithLabelValues(op)
	}
	for _, t := range []EntryType{EntryImportBatch, EntrySourceTxn, EntrySourceBatch, EntryWrite, EntryCreateSession, EntryCloseSession,
		EntryExpireSessions, EntryCleanupNodes, EntrySetPhase} {
		m.applySeconds.WithLabelValues(t.String())
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f)
	}
	ready := func() bool { return n.raft != nil && n.fsm != nil }
	m.reg.MustRegister(
		m.applySeconds, m.fsmApply, m.snapshotSeconds, m.snapshotBytes, m.restores,
		m.forwardedOut, m.forwardedIn, m.sessionsExpired, m.nodesCleaned, m.leaderChanges,
		gauge("commit_index", "Raft commit index known to this node.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.raft.CommitIndex())
		}),
		gauge("applied_index", "Index of the last entry this node's state machine applied.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.applied.Load())
		}),
		gauge("last_log_index", "Index of the last entry in this node's log.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.raft.LastIndex())
		}),
		gauge("term", "Current Raft term.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.raft.CurrentTerm())
		}),
		gauge("is_leader", "1 when this node leads.", func() float64 {
			if ready() && n.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("members", "Members in the Raft configuration.", func() float64 {
			if !ready() {
				return 0
			}
			f := n.raft.GetConfiguration()
			if f.Error() != nil {
				return 0
			}
			return float64(len(f.Configuration().Servers))
		}),
		gauge("reverse_mirror_pending_entries", "Journal entries committed in primary that ZooKeeper is not known to hold yet (the reverse mirror's outbox).", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.MirrorStatus().Pending)
		}),
		gauge("reverse_mirror_lag_seconds", "How long the oldest entry owed to ZooKeeper has waited; 0 when none is.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.MirrorStatus().LagMillis(time.Now().UnixMilli())) / 1000
		}),
		gauge("znodes", "Znodes in the tree, the system nodes included.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.NodeCount())
		}),
		gauge("sessions", "Open sessions.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.Status().Sessions)
		}),
		gauge("watches", "Watch registrations on this node.", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.Status().Watches)
		}),
		gauge("log_bytes_since_snapshot", "Entry bytes applied since the last snapshot (the snapshot policy's input).", func() float64 {
			if !ready() {
				return 0
			}
			return float64(n.fsm.appliedBytes.Load() - n.fsm.snapMark.Load())
		}),
	)
	return m
}

func (m *nodeMetrics) observeApply(t EntryType, d time.Duration) {
	m.applySeconds.WithLabelValues(t.String()).Observe(d.Seconds())
}

// Metrics returns the node's Prometheus registry (what /metrics serves).
func (n *Node) Metrics() *prometheus.Registry { return n.metrics.reg }
