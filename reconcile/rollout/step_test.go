package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/spec"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

const (
	v1 = "17.3.0"
	v2 = "17.4.0"
	v3 = "17.5.0"
)

func stage(bake time.Duration, canaries spec.Quantity, groups ...string) spec.ResolvedStage {
	return spec.ResolvedStage{Stage: spec.Stage{Groups: groups, Canaries: canaries, BakeTime: bake,
		SuccessThreshold: spec.DefaultSuccessThreshold, FailureThreshold: spec.DefaultFailureThreshold}}
}

func implicit(groups ...string) spec.ResolvedStage {
	s := stage(0, spec.Quantity{}, groups...)
	s.Implicit = true
	return s
}

func n(c int) spec.Quantity       { return spec.Quantity{Count: c} }
func pct(p float64) spec.Quantity { return spec.Quantity{Percent: p, IsPercent: true} }
func desired(version string) Desired {
	return Desired{Channel: "stable", Version: version, Revision: "abc"}
}

// twoStages: canary-hosts (1 canary, bake 30m), then prod (no canaries,
// bake 1h), then the implicit stage.
func twoStages(version string) Desired {
	d := desired(version)
	d.Stages = []spec.ResolvedStage{
		stage(30*time.Minute, n(1), "canary-hosts"),
		stage(time.Hour, spec.Quantity{}, "prod"),
		implicit(),
	}
	return d
}

// agentSet builds agents "<group>-<i>" on version, healthy, heard at t0.
func agentSet(group string, n int, version string) []fleet.AgentState {
	out := make([]fleet.AgentState, n)
	for i := range out {
		out[i] = fleet.AgentState{AgentID: fmt.Sprintf("%s-%d", group, i), Group: group, Channel: "stable",
			CurrentVersion: version, Health: report.HealthHealthy, ReceivedAt: t0}
	}
	return out
}

func fleetOf(parts ...[]fleet.AgentState) []fleet.AgentState { return slices.Concat(parts...) }

// set returns agents with those named changed by f.
func set(agents []fleet.AgentState, f func(*fleet.AgentState), ids ...string) []fleet.AgentState {
	out := slices.Clone(agents)
	for i := range out {
		if slices.Contains(ids, out[i].AgentID) {
			f(&out[i])
		}
	}
	return out
}

func on(version string) func(*fleet.AgentState) {
	return func(a *fleet.AgentState) {
		a.CurrentVersion, a.Health, a.Outcome = version, report.HealthHealthy, report.OutcomeUpdated
	}
}

func rolledBack(version string, at time.Time) func(*fleet.AgentState) {
	return func(a *fleet.AgentState) {
		a.FailedVersion, a.Outcome, a.ReceivedAt = version, report.OutcomeRolledBack, at
	}
}

func stale(a *fleet.AgentState) { a.Health = report.HealthStale }

func unhealthyOn(version string) func(*fleet.AgentState) {
	return func(a *fleet.AgentState) { a.CurrentVersion, a.Health = version, report.HealthUnhealthy }
}

// tick is one call of the step function (or of an operator's step).
type tick struct {
	at     time.Duration // after t0
	d      *Desired      // nil: the scenario's
	agents func(r fleet.Rollout) []fleet.AgentState
	op     func(r fleet.Rollout, now time.Time) (fleet.Rollout, fleet.Transition, error)
	rule   string // "": no step is due
	state  string
	check  func(t *testing.T, r fleet.Rollout, tr fleet.Transition)
}

func TestNext(t *testing.T) {
	base := fleetOf(agentSet("canary-hosts", 3, v1), agentSet("prod", 4, v1), agentSet("", 1, v1))
	done1 := &fleet.Rollout{Channel: "stable", Version: v1, FromVersion: v1, State: fleet.StateDone, Generation: 3}
	all := func(version string) func(fleet.Rollout) []fleet.AgentState {
		return func(fleet.Rollout) []fleet.AgentState {
			return fleetOf(agentSet("canary-hosts", 3, version), agentSet("prod", 4, version), agentSet("", 1, version))
		}
	}
	baseAgents := func(fleet.Rollout) []fleet.AgentState { return base }
	canariesOn := func(version string) func(fleet.Rollout) []fleet.AgentState {
		return func(r fleet.Rollout) []fleet.AgentState { return set(base, on(version), r.Canaries...) }
	}
	stageOneOn := func(r fleet.Rollout) []fleet.AgentState {
		return fleetOf(agentSet("canary-hosts", 3, v2), agentSet("prod", 4, v1), agentSet("", 1, v1))
	}
	toCanary := []tick{
		{agents: baseAgents, rule: RuleRolloutStarted, state: fleet.StatePending, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
			if r.FromVersion != v1 || r.Version != v2 || r.Stage != 0 || r.Generation != 3 || tr.From != fleet.StateDone {
				t.Errorf("started %+v / %+v; want v2 from v1 at stage 0, generation 3 kept, from Done", r, tr)
			}
		}},
		{agents: baseAgents, rule: RuleCanariesChosen, state: fleet.StateCanary, check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
			want := ChooseCanaries("stable", v2, []string{"canary-hosts-0", "canary-hosts-1", "canary-hosts-2"}, 1)
			if !slices.Equal(r.Canaries, want) || r.Step != fleet.StepCanary {
				t.Errorf("canaries %v step %s; want %v in the canary step", r.Canaries, r.Step, want)
			}
		}},
	}
	withCritical := func(d Desired) *Desired { d.Critical = true; return &d }
	resumeAt := func(d Desired, at time.Time) *Desired { d.Resume = at; return &d }
	noRollout := desired(v2)

	cases := []struct {
		name  string
		d     Desired
		start *fleet.Rollout
		ticks []tick
	}{
		{
			name: "first sight of a channel with no stored rollout records its version as done, so nothing rolls out",
			d:    twoStages(v2), start: nil,
			ticks: []tick{
				{agents: baseAgents, rule: RuleAdopted, state: fleet.StateDone, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if r.Version != v2 || r.FromVersion != v2 || tr.From != "" {
						t.Errorf("adopted %+v / %+v; want v2 done from v2, a transition from no state", r, tr)
					}
				}},
				{agents: baseAgents},
			},
		},
		{
			name: "a new version goes to the canaries first and to nobody else until they are healthy",
			d:    twoStages(v2), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: baseAgents},
				tick{at: 2 * time.Minute, agents: func(r fleet.Rollout) []fleet.AgentState {
					// every non-canary jumps to v2: the canary step still waits for the canary
					others := slices.DeleteFunc(slices.Clone(base), func(a fleet.AgentState) bool { return slices.Contains(r.Canaries, a.AgentID) })
					ids := make([]string, 0, len(others))
					for _, a := range others {
						ids = append(ids, a.AgentID)
					}
					return set(base, on(v2), ids...)
				}},
			),
		},
		{
			name: "healthy canaries bake for the stage's bake time, then the stage's all step begins",
			d:    twoStages(v2), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: canariesOn(v2), rule: RuleSuccessThreshold, state: fleet.StateBaking,
					check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
						if !r.BakeUntil.Equal(t0.Add(31*time.Minute)) || tr.Reason != "CanariesHealthy" {
							t.Errorf("bake until %s reason %s; want t0+31m CanariesHealthy", r.BakeUntil, tr.Reason)
						}
					}},
				tick{at: 30*time.Minute + time.Minute - time.Nanosecond, agents: canariesOn(v2)},
				tick{at: 31 * time.Minute, agents: canariesOn(v2), rule: RuleBakeTimeElapsed, state: fleet.StateActive,
					check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
						if r.Step != fleet.StepAll || r.Stage != 0 || !r.BakeUntil.IsZero() {
							t.Errorf("after the bake: %+v; want stage 0 all step", r)
						}
					}},
				tick{at: 32 * time.Minute, agents: canariesOn(v2)},
				tick{at: 33 * time.Minute, agents: stageOneOn, rule: RuleSuccessThreshold, state: fleet.StateBaking},
				tick{at: 93 * time.Minute, agents: stageOneOn, rule: RuleStageComplete, state: fleet.StatePending,
					check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
						if r.Stage != 1 || tr.Reason != "BakeTimeElapsed" || len(r.Canaries) != 0 {
							t.Errorf("after stage 0: %+v / %s; want stage 1 pending, no canaries", r, tr.Reason)
						}
					}},
				tick{at: 93 * time.Minute, agents: stageOneOn, rule: RuleStageStarted, state: fleet.StateActive},
			),
		},
		{
			name: "the last stage completing makes the rollout done",
			d:    twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 2,
				Step: fleet.StepAll, Generation: 9},
			ticks: []tick{
				{agents: all(v2), rule: RuleStageComplete, state: fleet.StateDone, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if tr.Reason != "NoBakeTime" {
						t.Errorf("reason %s; want NoBakeTime", tr.Reason)
					}
				}},
				{agents: all(v2)},
			},
		},
		{
			name: "a canary that rolls back halts the rollout at the failure threshold",
			d:    twoStages(v2), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: func(r fleet.Rollout) []fleet.AgentState {
					return set(base, rolledBack(v2, t0.Add(time.Minute)), r.Canaries...)
				}, rule: RuleFailureThreshold, state: fleet.StateHalted, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if !r.HaltedAt.Equal(t0.Add(time.Minute)) || tr.Reason != "AgentsFailed" || !strings.Contains(tr.Message, r.Canaries[0]) {
						t.Errorf("halt %+v / %+v; want halted at t0+1m naming the canary", r, tr)
					}
				}},
				tick{at: 2 * time.Minute, agents: canariesOn(v2)},
			),
		},
		{
			name: "an agent that is not allowed the version does not count as failed",
			d:    twoStages(v2), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: func(r fleet.Rollout) []fleet.AgentState {
					return set(base, rolledBack(v2, t0), "prod-0", "prod-1", "prod-2")
				}},
			),
		},
		{
			name:  "an agent of a done stage that turns unhealthy on the version halts a later stage",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{{agents: func(fleet.Rollout) []fleet.AgentState {
				return set(stageOneOn(fleet.Rollout{}), unhealthyOn(v2), "canary-hosts-1")
			}, rule: RuleFailureThreshold, state: fleet.StateHalted}},
		},
		{
			name: "a critical update skips the bake time but still starts with its canaries",
			d:    *withCritical(twoStages(v2)), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: canariesOn(v2), rule: RuleSuccessThreshold, state: fleet.StateActive,
					check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
						if tr.Reason != "CriticalSkipsBake" || r.Step != fleet.StepAll || r.Stage != 0 {
							t.Errorf("critical: %+v / %s; want stage 0 all step, CriticalSkipsBake", r, tr.Reason)
						}
					}},
				tick{at: time.Minute, agents: canariesOn(v2)}, // stage order: prod waits for all of canary-hosts
				tick{at: 2 * time.Minute, agents: stageOneOn, rule: RuleStageComplete, state: fleet.StatePending},
			),
		},
		{
			name: "a critical update never skips the halt",
			d:    *withCritical(twoStages(v2)), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, agents: func(r fleet.Rollout) []fleet.AgentState {
					return set(base, unhealthyOn(v2), r.Canaries...)
				}, rule: RuleFailureThreshold, state: fleet.StateHalted},
			),
		},
		{
			name: "a channel turning critical mid-bake ends the bake at once",
			d:    *withCritical(twoStages(v2)),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateBaking, Stage: 1,
				Step: fleet.StepAll, BakeUntil: t0.Add(time.Hour)},
			ticks: []tick{{agents: stageOneOn, rule: RuleStageComplete, state: fleet.StatePending,
				check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if tr.Reason != "CriticalSkipsBake" || r.Stage != 2 {
						t.Errorf("%+v / %s; want stage 2 pending, CriticalSkipsBake", r, tr.Reason)
					}
				}}},
		},
		{
			name:  "stale agents are left out of the success threshold",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{
				{agents: func(fleet.Rollout) []fleet.AgentState {
					return set(set(stageOneOn(fleet.Rollout{}), on(v2), "prod-0", "prod-1", "prod-2"), stale, "prod-3")
				}, rule: RuleSuccessThreshold, state: fleet.StateBaking, check: func(t *testing.T, _ fleet.Rollout, tr fleet.Transition) {
					if !strings.Contains(tr.Message, "3 of 3 live agents") {
						t.Errorf("message %q; want 3 of 3 live agents", tr.Message)
					}
				}},
			},
		},
		{
			name:  "a live agent not yet updated keeps the step from succeeding",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{{agents: func(fleet.Rollout) []fleet.AgentState {
				return set(stageOneOn(fleet.Rollout{}), on(v2), "prod-0", "prod-1", "prod-2")
			}}},
		},
		{
			name:  "a step whose agents are all stale never succeeds",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{{agents: func(fleet.Rollout) []fleet.AgentState {
				return set(stageOneOn(fleet.Rollout{}), stale, "prod-0", "prod-1", "prod-2", "prod-3")
			}}},
		},
		{
			name:  "a stage with no agents at all passes at once",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StatePending, Stage: 1},
			ticks: []tick{
				{agents: func(fleet.Rollout) []fleet.AgentState { return agentSet("canary-hosts", 3, v2) }, rule: RuleStageStarted, state: fleet.StateActive},
				{agents: func(fleet.Rollout) []fleet.AgentState { return agentSet("canary-hosts", 3, v2) }, rule: RuleSuccessThreshold, state: fleet.StateBaking},
			},
		},
		{
			name: "a percent of canaries rounds up: 10% of 3 live agents is one canary, chosen among live agents only",
			d: func() Desired {
				d := twoStages(v2)
				d.Stages[0].Canaries = pct(10)
				return d
			}(),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StatePending},
			ticks: []tick{{agents: func(fleet.Rollout) []fleet.AgentState {
				return set(fleetOf(agentSet("canary-hosts", 4, v1)), stale, "canary-hosts-0")
			}, rule: RuleCanariesChosen, state: fleet.StateCanary, check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
				if len(r.Canaries) != 1 || r.Canaries[0] == "canary-hosts-0" {
					t.Errorf("canaries %v; want one live agent", r.Canaries)
				}
			}}},
		},
		{
			name: "a new version mid-canary supersedes the rollout, and the next one starts from the last done version",
			d:    twoStages(v2), start: done1,
			ticks: append(slices.Clone(toCanary),
				tick{at: time.Minute, d: ptr(twoStages(v3)), agents: canariesOn(v2), rule: RuleSuperseded, state: fleet.StateSuperseded,
					check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
						if r.Version != v2 || tr.From != fleet.StateCanary || tr.Version != v2 {
							t.Errorf("superseded %+v / %+v; want the v2 row superseded from Canary", r, tr)
						}
					}},
				tick{at: time.Minute, d: ptr(twoStages(v3)), agents: canariesOn(v2), rule: RuleRolloutStarted, state: fleet.StatePending,
					check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
						if r.Version != v3 || r.FromVersion != v1 || len(r.Canaries) != 0 || !r.HaltedAt.IsZero() {
							t.Errorf("new rollout %+v; want v3 from v1 (the last done), fresh", r)
						}
					}},
			),
		},
		{
			name: "Git going back to the last done version after a halt serves it to everyone at once",
			d:    twoStages(v1),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateHalted, Stage: 0,
				Step: fleet.StepCanary, HaltedAt: t0},
			ticks: []tick{
				{agents: baseAgents, rule: RuleSuperseded, state: fleet.StateSuperseded},
				{agents: baseAgents, rule: RuleRolledBack, state: fleet.StateDone, check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
					if r.Version != v1 {
						t.Errorf("rolled back to %s; want %s", r.Version, v1)
					}
				}},
			},
		},
		{
			name: "a channel without stages serves a new version to every agent at once",
			d:    noRollout, start: done1,
			ticks: []tick{
				{agents: baseAgents, rule: RuleNoRollout, state: fleet.StateDone, check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
					if r.Version != v2 || r.FromVersion != v1 {
						t.Errorf("%+v; want v2 done after v1", r)
					}
				}},
			},
		},
		{
			name: "a channel serving no version takes no step",
			d:    desired(""), start: done1,
			ticks: []tick{{agents: baseAgents}},
		},
		{
			name: "rollout.resume set before the halt does not resume; set after it, it does",
			d:    *resumeAt(twoStages(v2), t0.Add(-time.Hour)),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateHalted, Stage: 0,
				Step: fleet.StepCanary, Canaries: []string{"canary-hosts-1"}, HaltedAt: t0},
			ticks: []tick{
				{at: time.Minute, agents: baseAgents},
				{at: 2 * time.Minute, d: resumeAt(twoStages(v2), t0), agents: baseAgents},
				// A resume time still ahead does not resume yet, so a far-future
				// value cannot undo halts that come after the commit at once.
				{at: 150 * time.Second, d: resumeAt(twoStages(v2), t0.Add(time.Hour)), agents: baseAgents},
				{at: 3 * time.Minute, d: resumeAt(twoStages(v2), t0.Add(time.Second)), agents: baseAgents, rule: RuleResumedByGit, state: fleet.StateCanary,
					check: func(t *testing.T, r fleet.Rollout, _ fleet.Transition) {
						if !slices.Equal(r.Canaries, []string{"canary-hosts-1"}) || !r.HaltedAt.Equal(t0) {
							t.Errorf("resumed %+v; want the same canaries, HaltedAt kept", r)
						}
					}},
			},
		},
		{
			name: "after a resume, a failure reported before the halt is accepted and a new one halts again",
			d:    *resumeAt(twoStages(v2), t0.Add(time.Minute)),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateHalted, Stage: 0,
				Step: fleet.StepCanary, Canaries: []string{"canary-hosts-1"}, HaltedAt: t0},
			ticks: []tick{
				{at: 2 * time.Minute, agents: func(fleet.Rollout) []fleet.AgentState {
					return set(base, rolledBack(v2, t0.Add(-time.Second)), "canary-hosts-1")
				}, rule: RuleResumedByGit, state: fleet.StateCanary},
				{at: 3 * time.Minute, agents: func(fleet.Rollout) []fleet.AgentState {
					a := set(base, rolledBack(v2, t0.Add(-time.Second)), "canary-hosts-1")
					return set(a, func(a *fleet.AgentState) { a.ReceivedAt = t0.Add(3 * time.Minute); a.Outcome = "" }, "canary-hosts-1")
				}},
				{at: 4 * time.Minute, agents: func(fleet.Rollout) []fleet.AgentState {
					return set(base, rolledBack(v2, t0.Add(4*time.Minute)), "canary-hosts-1")
				}, rule: RuleFailureThreshold, state: fleet.StateHalted},
			},
		},
		{
			name:  "an operator halts a running rollout and resumes it, named as the actor",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{
				{op: func(r fleet.Rollout, now time.Time) (fleet.Rollout, fleet.Transition, error) {
					return Halt(r, "alice", "pager went off", now)
				}, rule: RuleHaltedByOperator, state: fleet.StateHalted, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if tr.Actor != "operator:alice" || !strings.Contains(tr.Message, "pager went off") || !r.HaltedAt.Equal(t0) {
						t.Errorf("halt %+v / %+v; want actor operator:alice, the note, halted at t0", r, tr)
					}
				}},
				{at: time.Minute, agents: all(v2)}, // halted: even a met threshold takes no step
				{at: 2 * time.Minute, op: func(r fleet.Rollout, now time.Time) (fleet.Rollout, fleet.Transition, error) {
					return Resume(r, "bob", "", now)
				}, rule: RuleResumedByOperator, state: fleet.StateActive, check: func(t *testing.T, r fleet.Rollout, tr fleet.Transition) {
					if tr.Actor != "operator:bob" || r.Stage != 1 || r.Step != fleet.StepAll {
						t.Errorf("resume %+v / %+v; want stage 1 all step by operator:bob", r, tr)
					}
				}},
				{at: 3 * time.Minute, agents: all(v2), rule: RuleSuccessThreshold, state: fleet.StateBaking},
			},
		},
		{
			name:  "no double step: a step taken is not taken again from its result",
			d:     twoStages(v2),
			start: &fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			ticks: []tick{
				{agents: all(v2), rule: RuleSuccessThreshold, state: fleet.StateBaking},
				{agents: all(v2)},
				{at: time.Minute, agents: all(v2)},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := c.start
			for i, tk := range c.ticks {
				now := t0.Add(tk.at)
				d := c.d
				if tk.d != nil {
					d = *tk.d
				}
				var r fleet.Rollout
				var tr fleet.Transition
				var changed bool
				if tk.op != nil {
					var err error
					r, tr, err = tk.op(*cur, now)
					if err != nil {
						t.Fatalf("tick %d: %v", i, err)
					}
					changed = true
				} else {
					var agents []fleet.AgentState
					if tk.agents != nil {
						var cr fleet.Rollout
						if cur != nil {
							cr = *cur
						}
						agents = tk.agents(cr)
					}
					r, tr, changed = Next(d, cur, agents, now)
				}
				switch {
				case tk.rule == "" && changed:
					t.Fatalf("tick %d: took step %s (%s: %s); want none", i, tr.Rule, tr.Reason, tr.Message)
				case tk.rule == "":
					continue
				case !changed:
					t.Fatalf("tick %d: no step; want %s", i, tk.rule)
				}
				if tr.Rule != tk.rule || r.State != tk.state || tr.To != r.State || r.Rule != tr.Rule {
					t.Fatalf("tick %d: step %s to %s (%s: %s); want %s to %s", i, tr.Rule, r.State, tr.Reason, tr.Message, tk.rule, tk.state)
				}
				if tr.Reason == "" || tr.Message == "" || !tr.At.Equal(now) || !r.Since.Equal(now) {
					t.Errorf("tick %d: transition %+v lacks a reason, message or time", i, tr)
				}
				if tk.check != nil {
					tk.check(t, r, tr)
				}
				cur = &r
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestOperatorRefusals(t *testing.T) {
	cases := []struct {
		name  string
		state string
		op    func(fleet.Rollout, string, string, time.Time) (fleet.Rollout, fleet.Transition, error)
		want  error
	}{
		{"a done rollout cannot be halted", fleet.StateDone, Halt, ErrNotRunning},
		{"a halted rollout cannot be halted again", fleet.StateHalted, Halt, ErrNotRunning},
		{"a superseded rollout cannot be halted", fleet.StateSuperseded, Halt, ErrNotRunning},
		{"a running rollout cannot be resumed", fleet.StateCanary, Resume, ErrNotHalted},
		{"a done rollout cannot be resumed", fleet.StateDone, Resume, ErrNotHalted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := c.op(fleet.Rollout{Channel: "stable", Version: v2, State: c.state}, "alice", "", t0)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "stable") {
				t.Fatalf("err %v; want %v naming the channel", err, c.want)
			}
		})
	}
}

func TestChooseCanaries(t *testing.T) {
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("host-%03d", i)
	}
	a := ChooseCanaries("stable", v2, ids, 5)
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if b := ChooseCanaries("stable", v2, rev, 5); !slices.Equal(a, b) {
		t.Errorf("the order of the agents changed the canaries: %v vs %v", a, b)
	}
	if c := ChooseCanaries("stable", v3, ids, 5); slices.Equal(a, c) {
		t.Errorf("another version chose the same canaries %v", a)
	}
	if d := ChooseCanaries("beta", v2, ids, 5); slices.Equal(a, d) {
		t.Errorf("another channel chose the same canaries %v", a)
	}
	if !slices.Equal(a[:0], ChooseCanaries("stable", v2, ids, 0)) || len(ChooseCanaries("stable", v2, ids[:2], 5)) != 2 {
		t.Errorf("n is not bounded by 0 and the agents")
	}
	// Spread: the first five hosts by id are not the canaries.
	if slices.Equal(a, ids[:5]) {
		t.Errorf("canaries %v are the first agents by id", a)
	}
}
