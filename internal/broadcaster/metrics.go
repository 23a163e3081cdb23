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
