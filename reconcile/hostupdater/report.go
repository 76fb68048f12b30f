package hostupdater

import (
	"fmt"
	"os"

	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
)

// Report turns a pass into the report the server keeps for this agent, with
// the same decision and reason the log and `upkeep agent status` show.
func Report(cfg *Config, p *Pass, updaterVersion string) report.Report {
	r := report.Report{
		AgentID:        cfg.AgentID,
		Group:          cfg.Group,
		Channel:        cfg.Channel,
		Kind:           report.KindHost,
		CurrentVersion: p.Current,
		TargetVersion:  p.Target,
		Health:         report.HealthOf(p.Health.Status),
		UpdaterVersion: updaterVersion,
		Time:           p.At,
	}
	r.Hostname, _ = os.Hostname()
	if r.Hostname == "" {
		r.Hostname = cfg.AgentID
	}
	if p.Decision.Action != "" {
		r.SetDecision(p.Decision)
	}
	if res := p.Result; res != nil && res.Outcome != apply.Updated {
		r.LastError = fmt.Sprintf("update %s → %s %s: %s", res.From, res.To, res.Outcome, res.Message)
	}
	if p.Err != nil {
		r.LastError = p.Err.Error()
	} else if p.TargetErr != nil {
		r.LastError = p.TargetErr.Error()
	}
	if w, ok := calendar.Upcoming(p.Schedule.Windows, p.At); ok {
		r.NextWindow = &w.Start
	}
	return r
}
