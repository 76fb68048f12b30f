package rollout_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/spec"
)

// BenchmarkEvaluate10k is one leader pass over a channel whose current
// step holds 10,000 agents in a real SQLite store, the last of which has
// not yet updated: the pass reads every agent's state, finds the success
// threshold unmet and writes nothing. A step is taken at the first tick
// after its threshold is met, so the delay is at most Tick plus this.
func BenchmarkEvaluate10k(b *testing.B) {
	ctx := context.Background()
	const agents = 10_000
	const from, to = "17.3.0", "17.4.0"
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	store, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "fleet.db"), fleet.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	for i := range agents {
		version := to
		if i == agents-1 {
			version = from
		}
		r := report.Report{AgentID: fmt.Sprintf("agent-%05d", i), Group: "prod", Channel: "stable", Kind: report.KindHost,
			Hostname: fmt.Sprintf("agent-%05d", i), CurrentVersion: version, TargetVersion: to, Health: report.HealthHealthy,
			UpdaterVersion: "1.4.0", Time: now}
		r.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: "up to date"})
		if _, err := store.PutReport(ctx, r, now); err != nil {
			b.Fatal(err)
		}
	}
	stage := spec.ResolvedStage{Stage: spec.Stage{Groups: []string{"prod"}, SuccessThreshold: spec.DefaultSuccessThreshold,
		FailureThreshold: spec.DefaultFailureThreshold}}
	d := rollout.Desired{Channel: "stable", Version: to, Revision: "abc", Stages: []spec.ResolvedStage{stage}}
	active := fleet.Rollout{Channel: "stable", Version: to, FromVersion: from, State: fleet.StateActive, Step: fleet.StepAll,
		StartedAt: now, Since: now, Rule: rollout.RuleStageStarted, Reason: "NoCanaries", Message: "all of stage 0"}
	if _, err := store.SaveRollout(ctx, active, fleet.Transition{Channel: "stable", Version: to, To: fleet.StateActive,
		Step: fleet.StepAll, Rule: rollout.RuleStageStarted, Reason: "NoCanaries", At: now}); err != nil {
		b.Fatal(err)
	}
	e, err := rollout.NewEngine(store, rollout.Options{Source: func() []rollout.Desired { return []rollout.Desired{d} },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		steps, err := e.Evaluate(ctx)
		if err != nil || steps != 0 {
			b.Fatalf("evaluate: %d steps, %v; want 0 steps with one agent behind", steps, err)
		}
	}
	// The last agent updates: the next pass takes the step, so the pass
	// timed above is one that would have stepped.
	b.StopTimer()
	last := report.Report{AgentID: fmt.Sprintf("agent-%05d", agents-1), Group: "prod", Channel: "stable", Kind: report.KindHost,
		Hostname: fmt.Sprintf("agent-%05d", agents-1), CurrentVersion: to, TargetVersion: to, Health: report.HealthHealthy,
		UpdaterVersion: "1.4.0", Time: now, Outcome: report.OutcomeUpdated}
	last.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: "up to date"})
	if _, err := store.PutReport(ctx, last, now); err != nil {
		b.Fatal(err)
	}
	if steps, err := e.Evaluate(ctx); err != nil || steps == 0 {
		b.Fatalf("evaluate after the last agent updated: %d steps, %v; want the success threshold step", steps, err)
	}
}
