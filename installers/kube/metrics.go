package kube

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics, served by the manager's metrics endpoint beside
// controller-runtime's own (reconcile counts and latencies, work queues).
// Labels are bounded: kinds, actions, rules and reasons are fixed sets.
var (
	metricDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_kube_decisions_total",
		Help: "Decisions of the update chain, by workload kind, action and rule.",
	}, []string{"kind", "action", "rule"})
	metricOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_kube_outcomes_total",
		Help: "What the updater did: Updating (image changed), Updated, RolledBack, Refused (verification failed), Failed.",
	}, []string{"kind", "outcome", "reason"})
	metricPodsDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "upkeep_kube_stuck_pods_deleted_total",
		Help: "Unhealthy pods of an old revision deleted to unblock a StatefulSet rollout.",
	})
	metricSkippedReconciles = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "upkeep_kube_skip_reconcile_total",
		Help: "Reconciles left alone because of the upkeep.dev/skip-reconcile annotation.",
	})
	metricServerChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upkeep_kube_server_changes_total",
		Help: "Changes of a channel's target or a group's schedule seen by the poller (each enqueues the workloads that follow it).",
	}, []string{"what"})
	metricReportErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "upkeep_kube_report_errors_total",
		Help: "Reports to the server's /v1/reports that failed.",
	})
)

var registerMetrics = sync.OnceFunc(func() {
	ctrlmetrics.Registry.MustRegister(metricDecisions, metricOutcomes, metricPodsDeleted,
		metricSkippedReconciles, metricServerChanges, metricReportErrors)
})
