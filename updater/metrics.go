package updater

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the flow's Prometheus instruments.
type Metrics struct {
	events       *prometheus.CounterVec
	pushLatency  prometheus.Histogram
	applyLatency prometheus.Histogram
	gitDuration  *prometheus.HistogramVec
	gitRetries   prometheus.Counter
	gitCommits   prometheus.Counter
	notify       *prometheus.CounterVec
	// pushToReady and acceptToReady measure deploy tracking: from the push (or the webhook) to the
	// workloads being ready.
	pushToReady, acceptToReady *prometheus.HistogramVec
}

// NewMetrics registers the flow's metrics with reg (nil: a private registry, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	latency := []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagehook_events_total",
			Help: "Finished events by hook, source and outcome (succeeded, failed, ignored)."}, []string{"hook", "source", "outcome"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imagehook_accept_to_pushed_seconds",
			Help: "Time from accepting a webhook to its commit being pushed.", Buckets: latency}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imagehook_accept_to_applied_seconds",
			Help: "Time from accepting a webhook to its direct apply on a cluster.", Buckets: latency}),
		gitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagehook_git_batch_seconds",
			Help: "Duration of one git batch (fetch, commit, push and retries) by result.", Buckets: latency}, []string{"result"}),
		gitRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "imagehook_git_push_retries_total",
			Help: "Pushes retried after the branch moved."}),
		gitCommits: prometheus.NewCounter(prometheus.CounterOpts{Name: "imagehook_git_commits_total",
			Help: "Commits pushed."}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagehook_notifications_total",
			Help: "Reports sent, by result (sent, failed)."}, []string{"result"}),
	}
	ready := []float64{5, 10, 20, 30, 60, 120, 300, 600, 900, 1800}
	m.pushToReady = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagehook_push_to_ready_seconds",
		Help: "Time from pushing a commit to its workloads being ready, by hook.", Buckets: ready}, []string{"hook"})
	m.acceptToReady = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imagehook_accept_to_ready_seconds",
		Help: "Time from accepting a webhook to its workloads being ready, by hook.", Buckets: ready}, []string{"hook"})
	reg.MustRegister(m.pushToReady, m.acceptToReady)
	reg.MustRegister(m.events, m.pushLatency, m.applyLatency, m.gitDuration, m.gitRetries, m.gitCommits, m.notify)
	return m
}
