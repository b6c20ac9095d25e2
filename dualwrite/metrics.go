package dualwrite

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the tap's Prometheus metrics (namespace zk2raft_dualwrite).
type metrics struct {
	connections      prometheus.Gauge
	connectionsTotal prometheus.Counter
	requests         prometheus.Counter
	malformed        prometheus.Counter
	oversized        prometheus.Counter
	fourLetterWords  prometheus.Counter
	dialFailures     prometheus.Counter
	mirrored         *prometheus.CounterVec
	failed           *prometheus.CounterVec
	readbacks        *prometheus.CounterVec
	delivered        prometheus.Counter
	deliveryErrors   prometheus.Counter
	syncWait         prometheus.Histogram
	syncTimeouts     prometheus.Counter
	lastZxid         prometheus.Gauge
	sessionsMirrored prometheus.Counter

	all []prometheus.Collector
}

func newMetrics(t *Tap) *metrics {
	const ns = "zk2raft_dualwrite"
	m := &metrics{
		connections:      prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections", Help: "Client connections relayed now."}),
		connectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_total", Help: "Client connections accepted and relayed."}),
		requests:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "requests_total", Help: "Client requests relayed."}),
		malformed:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "malformed_total", Help: "Client connections closed for malformed bytes."}),
		oversized:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "oversized_frames_total", Help: "Client connections closed for a request frame over jute.maxbuffer (Config.MaxRequestFrame, --jute-maxbuffer); counted in malformed_total too."}),
		fourLetterWords:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "four_letter_words_total", Help: "Four-letter-word connections passed through."}),
		dialFailures:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "dial_failures_total", Help: "Client connections closed because no ZooKeeper server could be reached."}),
		mirrored:         prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "mirrored_total", Help: "Committed writes queued for the journal, by opcode."}, []string{"op"}),
		failed:           prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "failed_total", Help: "Committed writes the journal did not or will not get from the tap, by reason (divergence the reconciler must repair)."}, []string{"reason"}),
		readbacks:        prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "readbacks_total", Help: "Values read back from ZooKeeper at delivery for what a reply lacks, by kind (parent: a parent's cversion; ctime: a multi's txn time; acl: an ACL the tap could not predict) and result (ok; gone: the incarnation is dead, the value does not matter; error: unknown, a repair pass is owed)."}, []string{"kind", "result"}),
		delivered:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "delivered_total", Help: "Mirrored writes committed by the journal."}),
		deliveryErrors:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "delivery_errors_total", Help: "Delivery attempts that failed and will be retried."}),
		syncWait:         prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "sync_wait_seconds", Help: "Time a write reply was held for the journal's commit (sync mode).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		syncTimeouts:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sync_timeouts_total", Help: "Write replies released before the journal committed them (sync mode)."}),
		lastZxid:         prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_mirrored_zxid", Help: "Zxid of the last write queued for the journal."}),
		sessionsMirrored: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sessions_mirrored_total", Help: "ZooKeeper session events (opened or resumed, expired) recorded in the journal."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f)
	}
	m.all = []prometheus.Collector{
		m.connections, m.connectionsTotal, m.requests, m.malformed, m.oversized, m.fourLetterWords, m.dialFailures,
		m.mirrored, m.failed, m.readbacks, m.delivered, m.deliveryErrors, m.syncWait, m.syncTimeouts, m.lastZxid, m.sessionsMirrored,
		gauge("queue_records", "Mirrored writes queued and not yet committed by the journal.", func() float64 { return float64(t.queue.Stats().Records) }),
		gauge("queue_bytes", "Bytes of the queued mirrored writes.", func() float64 { return float64(t.queue.Stats().Bytes) }),
		gauge("lag_seconds", "Age of the oldest mirrored write not yet committed by the journal (0 when none).", func() float64 { return t.lag().Seconds() }),
		gauge("held", "1 while the cutover holds the clients' requests (nothing reaches ZooKeeper), 0 otherwise.", func() float64 {
			if held, _ := t.Held(); held {
				return 1
			}
			return 0
		}),
		gauge("relays_to_journal", "1 once the cutover switched the proxy's clients to the journal's client ports, 0 while it relays to ZooKeeper.", func() float64 {
			if t.Backend() == BackendJournal {
				return 1
			}
			return 0
		}),
		gauge("journal_connections", "Client connections relayed to the journal's client ports (after the cutover).", func() float64 {
			t.sw.mu.Lock()
			defer t.sw.mu.Unlock()
			return float64(len(t.sw.jconns))
		}),
		gauge("journal_reachable", "1 while the journal answers (the last delivery or ping succeeded), 0 while mirrored writes wait for it in the queue.", func() float64 {
			if t.journalState().State == "reachable" {
				return 1
			}
			return 0
		}),
		gauge("lost", "1 while the journal is known to miss mirrored writes (queue overflow, unmirrorable reply) and a repair pass is owed.", func() float64 {
			if _, ok := t.queue.Lost(); ok {
				return 1
			}
			return 0
		}),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.all {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// lag is the age of the oldest undelivered mirror.
func (t *Tap) lag() time.Duration {
	st := t.queue.Stats()
	if st.Records == 0 || st.OldestAppended.IsZero() {
		return 0
	}
	return time.Since(st.OldestAppended)
}

// Status is the tap's state, for /status and `zk2raft proxy`'s logs.
type Status struct {
	Listen         string    `json:"listen"`
	ZooKeeper      []string  `json:"zookeeper"`
	Sync           bool      `json:"sync"`
	Connections    int       `json:"connections"`
	QueueRecords   int       `json:"queue_records"`
	QueueBytes     int64     `json:"queue_bytes"`
	LagSeconds     float64   `json:"lag_seconds"`
	Mirrored       uint64    `json:"mirrored"`
	Delivered      uint64    `json:"delivered"`
	Lost           *LostInfo `json:"lost,omitempty"`
	LastMirrorZxid string    `json:"last_mirrored_zxid,omitempty"`
	// Journal is whether the journal answers, and through which members.
	Journal JournalState `json:"journal"`
	// Cutover is the tap's hold, backend and the figures the cutover's
	// gates read.
	Cutover SwitchStatus `json:"cutover"`
}

// Status returns the tap's state.
func (t *Tap) Status() Status {
	st := t.queue.Stats()
	t.mu.Lock()
	n := len(t.conns)
	t.mu.Unlock()
	s := Status{
		Listen: t.Addr(), ZooKeeper: t.cfg.ZK, Sync: t.cfg.Sync, Connections: n,
		QueueRecords: st.Records, QueueBytes: st.Bytes, LagSeconds: t.lag().Seconds(),
		Mirrored: st.Appended, Delivered: st.Acked, Journal: t.journalState(), Cutover: t.SwitchStatus(),
	}
	if l, ok := t.queue.Lost(); ok {
		s.Lost = &l
	}
	if z := t.lastZxid.Load(); z != 0 {
		s.LastMirrorZxid = fmt.Sprintf("%#x", z)
	}
	return s
}

// WaitDelivered waits until every write request relayed so far is answered
// and its mirror committed by the journal (or the connection that carried it
// ended unanswered).
func (t *Tap) WaitDelivered(ctx context.Context) error {
	for {
		if t.inflight.Load() == 0 && t.queue.Stats().Records == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
