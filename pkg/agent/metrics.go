package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created per Agent and registered by the embedding service
// (see Collectors); nothing global is touched.
type metrics struct {
	checksVec  *prometheus.CounterVec
	checks     [numResults]prometheus.Counter // resolved once: Inc does not allocate
	eventsVec  *prometheus.CounterVec
	revokes    prometheus.Counter
	lifts      prometheus.Counter
	reconnects prometheus.Counter
	resets     prometheus.Counter
	state      *stateCollector
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		checksVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "agent", Name: "checks_total",
			Help: "Token checks by result: allowed, allowed_stale (admitted while stale under the open policy), revoked, invalid, stale (refused under the closed policy), no_token.",
		}, []string{"result"}),
		eventsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "agent", Name: "events_total",
			Help: "Revoke and lift events applied to the denylist.",
		}, []string{"type"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "agent", Name: "reconnects_total",
			Help: "Connections to a broadcaster after the first one.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "revocast", Subsystem: "agent", Name: "resets_total",
			Help: "Reset events: the stream could not be resumed and the denylist was rebuilt from the full state.",
		}),
		state: &stateCollector{a: a},
	}
	for r := range numResults {
		m.checks[r] = m.checksVec.WithLabelValues(r.String())
	}
	m.revokes = m.eventsVec.WithLabelValues("revoke")
	m.lifts = m.eventsVec.WithLabelValues("lift")
	return m
}

// Collectors returns the agent's Prometheus collectors, for the embedding
// service to register:
//
//	reg.MustRegister(a.Collectors()...)
//
// Metric names start with revocast_agent_. Two agents in one registry need
// distinguishing labels: register through prometheus.WrapRegistererWith.
func (a *Agent) Collectors() []prometheus.Collector {
	m := a.metrics
	return []prometheus.Collector{m.checksVec, m.eventsVec, m.reconnects, m.resets, m.state}
}

// stateCollector reads gauges from the agent at scrape time.
type stateCollector struct{ a *Agent }

var (
	descDenylist = prometheus.NewDesc("revocast_agent_denylist_revocations",
		"Live revocations held, by tier: exact, spilled (compact tier past the capacity), claim_rules.", []string{"tier"}, nil)
	descSpilled = prometheus.NewDesc("revocast_agent_denylist_spilled_total",
		"Live revocations moved from the exact tier to the spill tier: if it grows, raise the denylist capacity.", nil, nil)
	descSince = prometheus.NewDesc("revocast_agent_seconds_since_last_activity",
		"Seconds since anything (event or heartbeat) arrived from the broadcaster; -1 before the first byte.", nil, nil)
	descReady = prometheus.NewDesc("revocast_agent_ready",
		"1 once the agent has received the full revocation state (and loaded its JWKS, if any).", nil, nil)
	descFresh = prometheus.NewDesc("revocast_agent_fresh",
		"1 when the agent is ready and not stale.", nil, nil)
	descCached = prometheus.NewDesc("revocast_agent_verified_tokens",
		"Tokens in the verified-token cache.", nil, nil)
	descJWKS = prometheus.NewDesc("revocast_agent_jwks_refreshes_total",
		"JWKS fetches by result: unchanged, changed (the first load included), error.", []string{"result"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDenylist, descSpilled, descSince, descReady, descFresh, descCached, descJWKS} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	st := a.Stats()
	ch <- prometheus.MustNewConstMetric(descDenylist, prometheus.GaugeValue, float64(st.Denylist.Exact), "exact")
	ch <- prometheus.MustNewConstMetric(descDenylist, prometheus.GaugeValue, float64(st.Denylist.Spilled), "spilled")
	ch <- prometheus.MustNewConstMetric(descDenylist, prometheus.GaugeValue, float64(st.Denylist.ClaimRules), "claim_rules")
	ch <- prometheus.MustNewConstMetric(descSpilled, prometheus.CounterValue, float64(st.SpilledTotal))
	since := -1.0
	if !st.LastActivity.IsZero() {
		since = a.now().Sub(st.LastActivity).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descSince, prometheus.GaugeValue, since)
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, boolFloat(st.Ready))
	ch <- prometheus.MustNewConstMetric(descFresh, prometheus.GaugeValue, boolFloat(st.Ready && !st.Stale))
	ch <- prometheus.MustNewConstMetric(descCached, prometheus.GaugeValue, float64(st.CachedTokens))
	if a.verifier.HasJWKS() {
		total, changed, failures := a.verifier.JWKSStats()
		ch <- prometheus.MustNewConstMetric(descJWKS, prometheus.CounterValue, float64(total-changed), "unchanged")
		ch <- prometheus.MustNewConstMetric(descJWKS, prometheus.CounterValue, float64(changed), "changed")
		ch <- prometheus.MustNewConstMetric(descJWKS, prometheus.CounterValue, float64(failures), "error")
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
