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
	r.Outcome = p.Outcome()
	if res := p.Result; res != nil && res.Outcome != apply.Updated {
		r.LastError = fmt.Sprintf("update %s → %s %s: %s", res.From, res.To, res.Outcome, res.Message)
	}
	if p.Err != nil {
		r.LastError = p.Err.Error()
	} else if p.TargetErr != nil {
		r.LastError = p.TargetErr.Error()
	}
	// The next window to open, never the one open now (whose start is past).
	if w, ok := calendar.Next(p.Schedule.Windows, p.At); ok {
		r.NextWindow = &w.Start
	}
	return r
}

// Outcome is how the pass's update ended, in the report's words: the
// update it made, or else the interrupted one it finished first; "" when
// it attempted none (or was interrupted, which the next pass finishes).
func (p *Pass) Outcome() string {
	res := p.Result
	if res == nil {
		res = p.Recovered
	}
	if res == nil {
		return ""
	}
	switch res.Outcome {
	case apply.Updated:
		return report.OutcomeUpdated
	case apply.RolledBack:
		return report.OutcomeRolledBack
	case apply.Failed, apply.RollbackFailed:
		return report.OutcomeFailed
	}
	return ""
}
