package dualwrite

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// tailMetrics are the tail's Prometheus metrics (namespace zk2raft_tail).
type tailMetrics struct {
	mirrored    *prometheus.CounterVec
	skipped     prometheus.Counter
	batches     prometheus.Counter
	checkpoints prometheus.Counter
	errors      *prometheus.CounterVec
	delay       prometheus.Histogram
	all         []prometheus.Collector
}

func newTailMetrics(t *Tail) *tailMetrics {
	const ns = "zk2raft_tail"
	m := &tailMetrics{
		mirrored:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "mirrored_total", Help: "Txns read from the log and mirrored into the journal, by type."}, []string{"type"}),
		skipped:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "skipped_total", Help: "Txns read that change nothing the journal mirrors (failed writes, session creations)."}),
		batches:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "batches_total", Help: "SourceBatch entries the journal committed."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "checkpoints_total", Help: "Progress checkpoints recorded in the journal."}),
		errors:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "errors_total", Help: "Failed journal calls, by reason (submit and checkpoint are retried; refused ends the tail)."}, []string{"reason"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "delay_seconds",
			Help:    "Time from a txn's commit in ZooKeeper (its txn time) to its mirror's commit in the journal.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f)
	}
	zx := func(z int64) float64 {
		if z <= 0 {
			return math.NaN()
		}
		return float64(z)
	}
	m.all = []prometheus.Collector{
		m.mirrored, m.skipped, m.batches, m.checkpoints, m.errors, m.delay,
		gauge("read_zxid", "Zxid of the last txn read from the log.", func() float64 { return zx(t.readZxid.Load()) }),
		gauge("mirrored_zxid", "Zxid up to which every txn of the log is applied in the journal.", func() float64 { return zx(t.applied.Load()) }),
		gauge("server_zxid", "The tailed server's last applied zxid (srvr), when the tail is told its address.", func() float64 { return zx(t.server.Load()) }),
		gauge("lag_seconds", "Age, by ZooKeeper's txn times, of the oldest txn read and not yet applied in the journal (0 when none).", func() float64 { return t.lag().Seconds() }),
		gauge("lag_txns", "Txns read from the log and not yet applied in the journal.", func() float64 {
			t.mu.Lock()
			defer t.mu.Unlock()
			return float64(len(t.pending))
		}),
	}
	return m
}

func (m *tailMetrics) register(r prometheus.Registerer) error {
	for _, c := range m.all {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *tailMetrics) unregister(r prometheus.Registerer) {
	for _, c := range m.all {
		r.Unregister(c)
	}
}
