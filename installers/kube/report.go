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
