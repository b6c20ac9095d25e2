package zkserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zk2raft/zk2raft/zkwire"
)

// metrics are the client port's Prometheus series, on the node's registry
// (its /metrics) when Config.Registerer is set.
type metrics struct {
	reg prometheus.Registerer
	all []prometheus.Collector

	requests        *prometheus.CounterVec   // by op and result code
	latency         *prometheus.HistogramVec // by op
	connections     prometheus.Gauge
	outstanding     prometheus.Gauge
	events          prometheus.Counter
	refused         prometheus.Counter
	badRequests     prometheus.Counter
	oversizeReplies prometheus.Counter
	authFailures    prometheus.Counter
	sessionsCreated prometheus.Counter
	sessionsRefused prometheus.Counter
	sessionsMoved   prometheus.Counter
	touchBatches    prometheus.Counter
	fourLetter      *prometheus.CounterVec
	writePhase      *prometheus.HistogramVec // commit, local_apply
}

func newMetrics(s *Server, reg prometheus.Registerer) *metrics {
	const ns, sub = "zk2raft", "zkserver"
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Client requests answered, by opcode and result code."}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_seconds",
			Help:    "Time from reading a request to writing its reply, by opcode.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"op"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Open client connections."}),
		outstanding: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "outstanding_requests",
			Help: "Requests read and not yet answered, all connections."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "watch_events_total",
			Help: "Watch notifications sent to clients."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "connections_refused_total",
			Help: "Connections closed at accept because their address had too many (maxClientCnxns)."}),
		badRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bad_requests_total",
			Help: "Connections closed because they sent something that does not decode."}),
		oversizeReplies: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "oversize_replies_total",
			Help: "Connections closed instead of sending a reply over the reply limit (--reply-maxbuffer)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "auth_failures_total",
			Help: "addauth requests refused."}),
		sessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_created_total",
			Help: "Journal sessions this node opened for its clients."}),
		sessionsRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_refused_total",
			Help: "Reconnects told their session expired (or the password was wrong)."}),
		sessionsMoved: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_moved_total",
			Help: "Connections closed because their session reconnected to another node (ZooKeeper's SESSIONMOVED)."}),
		touchBatches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "session_touch_batches_total",
			Help: "Batches of session touches sent to the leader."}),
		fourLetter: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "four_letter_words_total",
			Help: "Four-letter words received, by word."}, []string{"word"}),
		writePhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "write_phase_seconds",
			Help: "Where client writes wait: commit (forwarding to the leader, the Raft round and the leader's apply) and " +
				"local_apply (until this node applied the write: on a follower, until the leader told it the write committed).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"phase"}),
	}
	watches := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "watches",
		Help: "Watch registrations of this node's clients."}, func() float64 {
		_, _, total := s.watchSummary()
		return float64(total)
	})
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions",
		Help: "Sessions with a connection on this node."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.bySession))
	})
	m.all = []prometheus.Collector{m.requests, m.latency, m.connections, m.outstanding, m.events, m.refused,
		m.badRequests, m.oversizeReplies, m.authFailures, m.sessionsCreated, m.sessionsRefused, m.sessionsMoved, m.touchBatches, m.fourLetter, m.writePhase, watches, sessions}
	if reg != nil {
		for _, c := range m.all {
			if err := reg.Register(c); err != nil {
				s.logger.Warn("metric not registered", "error", err)
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.all {
		m.reg.Unregister(c)
	}
}

func (m *metrics) observe(op zkwire.OpCode, code zkwire.Code, d time.Duration) {
	name := op.String()
	m.requests.WithLabelValues(name, code.String()).Inc()
	m.latency.WithLabelValues(name).Observe(d.Seconds())
}
