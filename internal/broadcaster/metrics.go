package broadcaster

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/revocast/revocast/internal/hub"
)

// metrics live in a registry of the server's own, so that several servers in
// one process (tests) never collide and nothing global is touched.
type metrics struct {
	registry       *prometheus.Registry
	published      *prometheus.CounterVec
	publishLatency prometheus.Histogram
	replays        prometheus.Counter
	resets         prometheus.Counter
	rejected       *prometheus.CounterVec
	currentChecks  *prometheus.CounterVec
	// receipts
	agentsConnected prometheus.Gauge
	appliedLag      prometheus.Histogram
	enforced        prometheus.Histogram
	reports         prometheus.Counter
}

func newMetrics(current func() *hub.Hub) *metrics {
	stat := func(f func(*hub.Hub) float64) func() float64 {
		return func() float64 {
			if h := current(); h != nil {
				return f(h)
			}
			return 0
		}
	}
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "events_published_total",
			Help: "Revocations and lifts acknowledged by the log (retries with a known idempotency key excluded).",
		}, []string{"type"}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "publish_duration_seconds",
			Help:    "Time from receiving a write to its JetStream acknowledgement.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "replays_total",
			Help: "Subscriptions that resumed from a Last-Event-ID.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "resets_total",
			Help: "Subscriptions told to reset because their Last-Event-ID could not be honoured.",
		}),
		currentChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "leader_checks_total",
			Help: "Checks (one per heartbeat interval) that this node caught up with the stream leader, by result; heartbeats are sent only while the last one succeeded.",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "requests_rejected_total",
			Help: "Requests refused, by reason.",
		}, []string{"reason"}),
	}
	m.agentsConnected = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "revocast", Subsystem: "broadcaster", Name: "agents_connected",
		Help: "Subscribers of this node that named themselves (Revocast-Agent header).",
	})
	m.appliedLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "revocast", Subsystem: "broadcaster", Name: "agent_applied_lag",
		Help:    "Stream sequences between this node's head and the position an agent reported applied, per report.",
		Buckets: []float64{0, 1, 2, 5, 10, 50, 100, 1000, 10000},
	})
	m.enforced = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "revocast", Subsystem: "broadcaster", Name: "enforced_everywhere_seconds",
		Help:    "Time from the log's acknowledgement of a write taken by this node until every connected agent of the cluster reported it applied.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.reports = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "revocast", Subsystem: "broadcaster", Name: "agent_reports_total",
		Help: "Applied-position reports received from agents.",
	})
	reg.MustRegister(m.agentsConnected, m.appliedLag, m.enforced, m.reports)
	reg.MustRegister(m.published, m.publishLatency, m.replays, m.resets, m.rejected, m.currentChecks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "subscribers",
			Help: "Connected SSE subscribers.",
		}, stat(func(h *hub.Hub) float64 { return float64(h.Stats().Subscribers) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "slow_subscriber_disconnects_total",
			Help: "Subscribers disconnected because their buffer was full.",
		}, stat(func(h *hub.Hub) float64 { return float64(h.Stats().SlowDisconnects) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "live_entries",
			Help: "Live revocations and lifts held in the in-memory mirror.",
		}, stat(func(h *hub.Hub) float64 { return float64(h.Stats().Entries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "revocast", Subsystem: "broadcaster", Name: "head_sequence",
			Help: "Stream sequence of the last event fanned out.",
		}, stat(func(h *hub.Hub) float64 { return float64(h.Head()) })),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, t := range []string{"revoke", "lift"} {
		m.published.WithLabelValues(t)
	}
	for _, r := range []string{"caught_up", "not_caught_up"} {
		m.currentChecks.WithLabelValues(r)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
