package deploy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are deploy tracking's instruments beside the flow's push → Ready histograms.
type Metrics struct {
	syncStart *prometheus.HistogramVec
}

// NewMetrics registers them with reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{syncStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagehook_push_to_sync_start_seconds",
		Help:    "Time from following a pushed commit (right after the push) to its GitOps tool first seen syncing it, by whether the tool was asked to look now (refresh: asked, not asked).",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600}}, []string{"refresh"})}
	reg.MustRegister(m.syncStart)
	return m
}

// observe records one commit's sync start.
func (m *Metrics) observe(seconds float64, asked bool) {
	if m == nil {
		return
	}
	label := "not asked"
	if asked {
		label = "asked"
	}
	m.syncStart.WithLabelValues(label).Observe(seconds)
}
