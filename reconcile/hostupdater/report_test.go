package hostupdater

import (
	"errors"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/health"
	"upkeep.dev/upkeep/reconcile/schedule"
)

func TestReport(t *testing.T) {
	cfg, err := ParseConfig("agent.yaml", []byte("server: https://u\nchannel: stable/cloud\ngroup: eu\npackage: p\nagentID: host-1\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	next := calendar.Interval{Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}
	pass := &Pass{
		At: now, Current: "1.1.0", Target: "1.2.0",
		Health:   health.Result{Status: health.Healthy},
		Schedule: schedule.Schedule{State: schedule.Usable, Windows: []calendar.Interval{{Start: now.Add(-3 * time.Hour), End: now.Add(-2 * time.Hour)}, next}},
		Decision: reconcile.Decision{Action: reconcile.ActionUpdate, Rule: "InWindow", Reason: "InsideWindow", Message: "inside"},
		Result:   &apply.Result{Outcome: apply.RolledBack, From: "1.1.0", To: "1.2.0", Message: "1.2.0 did not settle healthy"},
	}
	r := Report(cfg, pass, "v0.1.0")
	if err := r.Validate(); err != nil {
		t.Fatalf("the report would be refused: %v", err)
	}
	if r.AgentID != "host-1" || r.Group != "eu" || r.Channel != "stable/cloud" || r.Health != "healthy" {
		t.Errorf("identity or health: %+v", r)
	}
	if r.Rule != "InWindow" || r.Reason != "InsideWindow" || r.Message != "inside" {
		t.Errorf("the report does not carry the decision: %+v", r)
	}
	if r.NextWindow == nil || !r.NextWindow.Equal(next.Start) {
		t.Errorf("next window %v, want %v (the past window is not next)", r.NextWindow, next.Start)
	}
	if !strings.Contains(r.LastError, "RolledBack") || !strings.Contains(r.LastError, "did not settle healthy") {
		t.Errorf("a rolled-back update is not named as the last error: %q", r.LastError)
	}

	pass.Result, pass.Err = nil, errors.New("refreshing package metadata: signature")
	if r := Report(cfg, pass, "v0.1.0"); r.LastError != pass.Err.Error() {
		t.Errorf("a failed pass is not the last error: %q", r.LastError)
	}
}
