package kube

import (
	"context"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/report"
)

// Reporter sends a workload's report to the server's /v1/reports;
// *report.Client is the real one.
type Reporter interface {
	Send(ctx context.Context, r report.Report) error
}

// LeaseServer hands out the concurrency leases that cap how many agents of
// a group update at once; *report.Client is the real one.
type LeaseServer interface {
	Acquire(ctx context.Context, req report.LeaseRequest) (report.LeaseAnswer, error)
	Release(ctx context.Context, group, agentID string) error
}

// Pass is what one reconcile of a workload saw, decided and did.
type Pass struct {
	At       time.Time
	Kind     string
	Workload string // <namespace>/<kind>/<name>
	UID      string
	Config   Config
	Status   Status
	Decision reconcile.Decision // zero when the pass failed before deciding
	Err      error
}

// Report is the pass as the server's report document.
func (p *Pass) Report(updaterVersion string) report.Report {
	r := report.Report{
		AgentID:        p.UID,
		Group:          p.Config.Group,
		Channel:        p.Config.Channel,
		Kind:           report.KindKubernetes,
		Workload:       p.Workload,
		CurrentVersion: p.Status.Current,
		TargetVersion:  p.Status.Target,
		Health:         report.HealthUnknown,
		NextWindow:     p.Status.NextWindow,
		UpdaterVersion: updaterVersion,
		Time:           p.At,
	}
	switch p.Status.Health {
	case healthText(reconcile.Healthy):
		r.Health = report.HealthHealthy
	case healthText(reconcile.Unhealthy):
		r.Health = report.HealthUnhealthy
	}
	if p.Decision.Action != "" {
		r.SetDecision(p.Decision)
	}
	r.Outcome = reportOutcome(p.Status.Outcome)
	switch {
	case p.Err != nil:
		r.LastError = p.Err.Error()
	case p.Status.Outcome == OutcomeRefused || p.Status.Outcome == OutcomeRolledBack || p.Status.Outcome == OutcomeFailed:
		r.LastError = p.Status.Outcome + " (" + p.Status.OutcomeReason + "): " + p.Status.OutcomeMessage
	}
	r.LastError = truncate(r.LastError, report.MaxErrorLength)
	r.Message = truncate(r.Message, report.MaxMessageLength)
	return r
}

func healthText(h reconcile.Health) string {
	switch h {
	case reconcile.Healthy:
		return "Healthy"
	case reconcile.Unhealthy:
		return "Unhealthy"
	}
	return "Unknown"
}

// reportOutcome is the report's word for how the pass's update ended. A
// refused image (it failed verification) is a failed update: the version
// could not be installed. A rollout still in progress has no outcome yet.
func reportOutcome(o string) string {
	switch o {
	case OutcomeUpdated:
		return report.OutcomeUpdated
	case OutcomeRolledBack:
		return report.OutcomeRolledBack
	case OutcomeRefused:
		return report.OutcomeFailed
	}
	return ""
}
