package rollout

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/spec"
)

// Rules named in transitions. The design note's ten, and four it left
// unnamed: Adopted, StageStarted, RolledBack and NoRollout.
const (
	// RuleAdopted: first sight of a channel with no stored rollout records
	// its current version as Done, so upgrading upkeep itself (or a new
	// store) rolls nothing out.
	RuleAdopted = "Adopted"
	// RuleRolloutStarted: Git changed the version of a channel whose last
	// rollout is Done (or was superseded): a new rollout waits at stage 0.
	RuleRolloutStarted = "RolloutStarted"
	// RuleCanariesChosen: a stage begins with its canary step.
	RuleCanariesChosen = "CanariesChosen"
	// RuleStageStarted: a stage without canaries begins with its all step.
	RuleStageStarted = "StageStarted"
	// RuleSuccessThreshold: a step's success threshold is met: it bakes,
	// or (canary step, no bake) the all step begins.
	RuleSuccessThreshold = "SuccessThreshold"
	// RuleBakeTimeElapsed: the canaries baked; the all step begins.
	RuleBakeTimeElapsed = "BakeTimeElapsed"
	// RuleStageComplete: the all step met its threshold and baked (or had
	// nothing to bake): the next stage waits, or the rollout is Done.
	RuleStageComplete = "StageComplete"
	// RuleFailureThreshold: too many allowed agents failed the version: Halted.
	RuleFailureThreshold = "FailureThreshold"
	// RuleSuperseded: Git changed the version before the rollout was Done.
	RuleSuperseded = "Superseded"
	// RuleRolledBack: the version Git now names is the last Done one: it
	// is served to every agent at once, with no stages to wait for.
	RuleRolledBack = "RolledBack"
	// RuleNoRollout: the channel has no rollout stages (any more): its
	// version is served to every agent at once.
	RuleNoRollout = "NoRollout"
	// RuleResumedByGit: the channel's rollout.resume is after the halt.
	RuleResumedByGit = "ResumedByGit"
	// RuleResumedByOperator and RuleHaltedByOperator: POST
	// /v1/rollouts/<channel>/resume|halt (see Resume and Halt).
	RuleResumedByOperator = "ResumedByOperator"
	RuleHaltedByOperator  = "HaltedByOperator"
)

// Rules lists every rule, for metrics and documentation.
var Rules = []string{
	RuleAdopted, RuleRolloutStarted, RuleCanariesChosen, RuleStageStarted,
	RuleSuccessThreshold, RuleBakeTimeElapsed, RuleStageComplete, RuleFailureThreshold,
	RuleSuperseded, RuleRolledBack, RuleNoRollout,
	RuleResumedByGit, RuleResumedByOperator, RuleHaltedByOperator,
}

// States lists every rollout state.
var States = []string{
	fleet.StatePending, fleet.StateCanary, fleet.StateBaking, fleet.StateActive,
	fleet.StateDone, fleet.StateHalted, fleet.StateSuperseded,
}

// Running says a rollout in state s is under way: it can halt, and its
// agents' failures count.
func Running(s string) bool {
	switch s {
	case fleet.StatePending, fleet.StateCanary, fleet.StateBaking, fleet.StateActive:
		return true
	}
	return false
}

// Next is the rollout's next step: given the channel's desired state, its
// stored rollout (nil when there is none), the agents of its groups and
// channel (fleet.Store.AgentStates) and the time, it returns the rollout
// to store and its transition, or changed false when nothing is due. It
// takes one step at a time; calling it again with the result takes the
// next one. The transition's Actor is left to the caller, and the
// rollout's Generation is cur's, for the store's compare-and-swap.
//
// Failures (an allowed agent whose FailedVersion is the version, or that
// runs it unhealthy) are counted per stage against that stage's failure
// threshold; after a halt was resumed, only failures reported after the
// halt count (a resume accepts what was seen before it). Success is
// counted over a step's live (non-stale) agents: those that run the
// version healthy must reach the step's threshold; a step with agents but
// none live never succeeds, a step with no agents at all does at once.
func Next(d Desired, cur *fleet.Rollout, agents []fleet.AgentState, now time.Time) (fleet.Rollout, fleet.Transition, bool) {
	if d.Version == "" {
		// Nothing served: there is nothing to roll out, and a rollout in
		// flight keeps its place until the channel serves a version again.
		return fleet.Rollout{}, fleet.Transition{}, false
	}
	if cur == nil {
		r := fleet.Rollout{
			Channel: d.Channel, Version: d.Version, FromVersion: d.Version, State: fleet.StateDone,
			Critical: d.Critical, Revision: d.Revision, StartedAt: now,
		}
		return move(fleet.Rollout{}, r, RuleAdopted, "FirstSight",
			fmt.Sprintf("first sight of channel %s: version %s is recorded as done, so nothing rolls out until Git changes it", d.Channel, d.Version), now)
	}
	prev := *cur
	r := prev
	r.Canaries = slices.Clone(prev.Canaries)
	r.Critical = d.Critical

	if r.Version != d.Version && r.State != fleet.StateDone && r.State != fleet.StateSuperseded {
		r.State = fleet.StateSuperseded
		r.BakeUntil = time.Time{}
		return move(prev, r, RuleSuperseded, "VersionChanged",
			fmt.Sprintf("Git changed channel %s to version %s: the rollout of %s (%s, stage %d) is superseded", d.Channel, d.Version, prev.Version, prev.State, prev.Stage), now)
	}
	if r.Version != d.Version || r.State == fleet.StateSuperseded {
		return start(d, prev, now)
	}
	if r.State == fleet.StateDone {
		return fleet.Rollout{}, fleet.Transition{}, false
	}
	if len(d.Stages) == 0 {
		r.State, r.Step, r.BakeUntil = fleet.StateDone, "", time.Time{}
		return move(prev, r, RuleNoRollout, "RolloutRemoved",
			fmt.Sprintf("channel %s has no rollout stages any more: version %s is served to every agent", d.Channel, d.Version), now)
	}
	if r.State == fleet.StateHalted {
		if !d.Resume.IsZero() && d.Resume.After(r.HaltedAt) && !d.Resume.After(now) { // a future resume waits for its time
			return resume(prev, RuleResumedByGit, "ResumeAfterHalt",
				fmt.Sprintf("rollout.resume of channel %s (%s) is after the halt at %s: the rollout of %s resumes",
					d.Channel, d.Resume.UTC().Format(time.RFC3339), prev.HaltedAt.UTC().Format(time.RFC3339), d.Version), now)
		}
		return fleet.Rollout{}, fleet.Transition{}, false
	}

	r.Stage = min(r.Stage, len(d.Stages)-1) // Git may have dropped stages
	st := effective(d.Stages[r.Stage])
	tl := tallyOf(d, r, agents)
	if r.State != fleet.StatePending {
		if msg, ok := tl.halts(d, r); ok {
			r.State, r.HaltedAt, r.BakeUntil = fleet.StateHalted, now, time.Time{}
			return move(prev, r, RuleFailureThreshold, "AgentsFailed", msg, now)
		}
	}
	bakes := st.BakeTime > 0 && !d.Critical
	skip := "NoBakeTime"
	if st.BakeTime > 0 {
		skip = "CriticalSkipsBake"
	}

	switch r.State {
	case fleet.StatePending:
		live := tl.stages[r.Stage].liveIDs
		n := 0
		if !st.Canaries.IsZero() {
			n = st.Canaries.Of(len(live))
		}
		if n == 0 {
			r.State, r.Step, r.Canaries = fleet.StateActive, fleet.StepAll, nil
			return move(prev, r, RuleStageStarted, "NoCanaries",
				fmt.Sprintf("stage %d of channel %s (%s) has no canaries: all its %d agents may update to %s", r.Stage, d.Channel, groupList(st), len(tl.stages[r.Stage].ids), d.Version), now)
		}
		r.State, r.Step, r.Canaries = fleet.StateCanary, fleet.StepCanary, ChooseCanaries(d.Channel, d.Version, live, n)
		return move(prev, r, RuleCanariesChosen, "CanaryStep",
			fmt.Sprintf("stage %d of channel %s (%s): %d of its %d live agents are canaries for %s: %s", r.Stage, d.Channel, groupList(st), n, len(live), d.Version, idList(r.Canaries)), now)

	case fleet.StateCanary, fleet.StateActive:
		c := tl.step(r)
		need, ok := c.success(st.SuccessThreshold)
		if !ok {
			return fleet.Rollout{}, fleet.Transition{}, false
		}
		what := fmt.Sprintf("%d of %d live %s of stage %d run %s healthy (threshold %s = %d)",
			c.healthy, c.live, stepNoun(r.Step), r.Stage, d.Version, st.SuccessThreshold, need)
		if bakes {
			r.State, r.BakeUntil = fleet.StateBaking, now.Add(st.BakeTime)
			reason := "CanariesHealthy"
			if r.Step == fleet.StepAll {
				reason = "StageHealthy"
			}
			return move(prev, r, RuleSuccessThreshold, reason, what+"; baking for "+st.BakeTime.String(), now)
		}
		if r.Step == fleet.StepCanary {
			r.State, r.Step = fleet.StateActive, fleet.StepAll
			return move(prev, r, RuleSuccessThreshold, skip, what+"; "+bakeNote(skip)+": every agent of the stage may update", now)
		}
		return complete(d, prev, r, skip, what+"; "+bakeNote(skip), now)

	case fleet.StateBaking:
		reason := "BakeTimeElapsed"
		if d.Critical && now.Before(r.BakeUntil) {
			reason = "CriticalSkipsBake"
		} else if now.Before(r.BakeUntil) {
			return fleet.Rollout{}, fleet.Transition{}, false
		}
		r.BakeUntil = time.Time{}
		if r.Step == fleet.StepCanary {
			r.State, r.Step = fleet.StateActive, fleet.StepAll
			return move(prev, r, RuleBakeTimeElapsed, reason,
				fmt.Sprintf("the canaries of stage %d of channel %s stayed healthy on %s for %s: every agent of the stage may update", r.Stage, d.Channel, d.Version, st.BakeTime), now)
		}
		return complete(d, prev, r, reason,
			fmt.Sprintf("stage %d of channel %s stayed healthy on %s for %s", r.Stage, d.Channel, d.Version, st.BakeTime), now)
	}
	return fleet.Rollout{}, fleet.Transition{}, false
}

// start begins a rollout of d.Version after prev (Done or Superseded).
func start(d Desired, prev fleet.Rollout, now time.Time) (fleet.Rollout, fleet.Transition, bool) {
	from := prev.FromVersion
	if prev.State == fleet.StateDone {
		from = prev.Version
	}
	r := fleet.Rollout{
		Channel: d.Channel, Version: d.Version, FromVersion: from, Critical: d.Critical, Revision: d.Revision,
		StartedAt: now, Generation: prev.Generation,
	}
	switch {
	case d.Version == from:
		r.State = fleet.StateDone
		return move(prev, r, RuleRolledBack, "LastDoneVersion",
			fmt.Sprintf("channel %s is back at %s, its last done version: every agent gets it at once", d.Channel, d.Version), now)
	case len(d.Stages) == 0:
		r.State = fleet.StateDone
		return move(prev, r, RuleNoRollout, "NoStages",
			fmt.Sprintf("channel %s has no rollout stages: version %s is served to every agent at once", d.Channel, d.Version), now)
	}
	r.State = fleet.StatePending
	crit := ""
	if d.Critical {
		crit = " (critical: bake times are skipped)"
	}
	return move(prev, r, RuleRolloutStarted, "VersionChanged",
		fmt.Sprintf("channel %s: %s rolls out after %s through %d stages%s", d.Channel, d.Version, cmp.Or(from, "no version"), len(d.Stages), crit), now)
}

// complete ends stage r.Stage: the next one waits, or the rollout is Done.
func complete(d Desired, prev, r fleet.Rollout, reason, what string, now time.Time) (fleet.Rollout, fleet.Transition, bool) {
	r.BakeUntil, r.Canaries = time.Time{}, nil
	if r.Stage+1 >= len(d.Stages) {
		r.State = fleet.StateDone
		return move(prev, r, RuleStageComplete, reason, what+": the rollout is done, every agent may update", now)
	}
	r.Stage, r.Step, r.State = r.Stage+1, "", fleet.StatePending
	return move(prev, r, RuleStageComplete, reason, fmt.Sprintf("%s: stage %d (%s) is next", what, r.Stage, groupList(d.Stages[r.Stage])), now)
}

// resume puts a halted rollout back into the step it halted in. HaltedAt
// stays: failures reported before it are accepted (see Next).
func resume(prev fleet.Rollout, rule, reason, msg string, now time.Time) (fleet.Rollout, fleet.Transition, bool) {
	r := prev
	r.Canaries = slices.Clone(prev.Canaries)
	switch r.Step {
	case fleet.StepCanary:
		r.State = fleet.StateCanary
	case fleet.StepAll:
		r.State = fleet.StateActive
	default:
		r.State = fleet.StatePending
	}
	return move(prev, r, rule, reason, msg, now)
}

func move(prev, r fleet.Rollout, rule, reason, msg string, now time.Time) (fleet.Rollout, fleet.Transition, bool) {
	r.Since, r.Rule, r.Reason, r.Message = now, rule, reason, msg
	return r, fleet.Transition{
		Channel: r.Channel, Version: r.Version, From: prev.State, To: r.State, Stage: r.Stage, Step: r.Step,
		Rule: rule, Reason: reason, Message: msg, At: now,
	}, true
}

// Errors of the operator's steps.
var (
	ErrNotRunning = errors.New("the rollout is not running")
	ErrNotHalted  = errors.New("the rollout is not halted")
)

// OperatorActor is the Actor of an operator's step, from the name of the
// token that authenticated it.
func OperatorActor(name string) string { return "operator:" + name }

// Halt is the operator's halt of r (POST /v1/rollouts/<channel>/halt):
// nobody new gets the version until Git or an operator resumes it or
// changes the version. It fails with ErrNotRunning unless r is Pending,
// Canary, Baking or Active.
func Halt(r fleet.Rollout, operator, note string, now time.Time) (fleet.Rollout, fleet.Transition, error) {
	if !Running(r.State) {
		return r, fleet.Transition{}, fmt.Errorf("halt channel %s: %w (it is %s at version %s); a new version in Git starts a new one", r.Channel, ErrNotRunning, r.State, r.Version)
	}
	prev := r
	r.Canaries = slices.Clone(prev.Canaries)
	r.State, r.HaltedAt, r.BakeUntil = fleet.StateHalted, now, time.Time{}
	msg := fmt.Sprintf("%s halted the rollout of %s on channel %s at stage %d", OperatorActor(operator), r.Version, r.Channel, r.Stage)
	if note != "" {
		msg += ": " + note
	}
	n, t, _ := move(prev, r, RuleHaltedByOperator, "OperatorHalt", msg, now)
	t.Actor = OperatorActor(operator)
	return n, t, nil
}

// Resume is the operator's resume of a halted r (POST
// /v1/rollouts/<channel>/resume); ErrNotHalted when it is not Halted.
func Resume(r fleet.Rollout, operator, note string, now time.Time) (fleet.Rollout, fleet.Transition, error) {
	if r.State != fleet.StateHalted {
		return r, fleet.Transition{}, fmt.Errorf("resume channel %s: %w (it is %s at version %s)", r.Channel, ErrNotHalted, r.State, r.Version)
	}
	msg := fmt.Sprintf("%s resumed the rollout of %s on channel %s at stage %d", OperatorActor(operator), r.Version, r.Channel, r.Stage)
	if note != "" {
		msg += ": " + note
	}
	n, t, _ := resume(r, RuleResumedByOperator, "OperatorResume", msg, now)
	t.Actor = OperatorActor(operator)
	return n, t, nil
}

// ChooseCanaries picks n of ids: sorted by a hash of (channel, version,
// agent id), the first n. Deterministic (every replica, every re-run
// agrees) and spread (a new version picks other canaries).
func ChooseCanaries(channel, version string, ids []string, n int) []string {
	type keyed struct {
		h  uint64
		id string
	}
	ks := make([]keyed, len(ids))
	for i, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(channel))
		h.Write([]byte{0})
		h.Write([]byte(version))
		h.Write([]byte{0})
		h.Write([]byte(id))
		ks[i] = keyed{h.Sum64(), id}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]string, 0, min(n, len(ks)))
	for _, k := range ks[:min(n, len(ks))] {
		out = append(out, k.id)
	}
	slices.Sort(out)
	return out
}

// count is what one step (or one stage) of agents did with the version.
type count struct {
	total, live, healthy int
	failed               []string // "id (why)"
	ids, liveIDs         []string
}

func (c *count) add(a *fleet.AgentState, version string, since time.Time) {
	c.total++
	c.ids = append(c.ids, a.AgentID)
	if a.Health != report.HealthStale {
		c.live++
		c.liveIDs = append(c.liveIDs, a.AgentID)
		if a.CurrentVersion == version && a.Health == report.HealthHealthy {
			c.healthy++
		}
	}
	if why, ok := failure(a, version, since); ok {
		c.failed = append(c.failed, a.AgentID+" ("+why+")")
	}
}

// success reports the number needed and whether the step reached it.
func (c *count) success(q spec.Quantity) (int, bool) {
	need := q.Of(c.live)
	return need, c.healthy >= need && (c.live > 0 || c.total == 0)
}

// Failure says whether a counts as failing r's version, and why
// ("rolledBack", "failed" or "unhealthy"): what the engine counts against
// the failure threshold, for views that list the failed agents.
func Failure(a fleet.AgentState, r fleet.Rollout) (why string, ok bool) {
	return failure(&a, r.Version, r.HaltedAt)
}

// failure says an agent failed version: it rolled back or failed the
// update, or runs it unhealthy. After a resume (since set), only a report
// received after since counts, and only one saying the update just
// ended badly (or just ended, unhealthy).
func failure(a *fleet.AgentState, version string, since time.Time) (string, bool) {
	fresh := since.IsZero() || a.ReceivedAt.After(since)
	if !fresh {
		return "", false
	}
	if a.FailedVersion == version && (since.IsZero() || a.Outcome == report.OutcomeRolledBack || a.Outcome == report.OutcomeFailed) {
		return cmp.Or(a.Outcome, "failed"), true
	}
	if a.CurrentVersion == version && a.Health == report.HealthUnhealthy && (since.IsZero() || a.Outcome == report.OutcomeUpdated) {
		return "unhealthy", true
	}
	return "", false
}

// tally sorts the agents into their stages and the canary step.
type tally struct {
	stages  []count
	canary  count
	version string
}

func tallyOf(d Desired, r fleet.Rollout, agents []fleet.AgentState) *tally {
	t := &tally{stages: make([]count, len(d.Stages)), version: d.Version}
	idx := stageIndex(d.Stages)
	canaries := make(map[string]bool, len(r.Canaries))
	for _, id := range r.Canaries {
		canaries[id] = true
	}
	for i := range agents {
		a := &agents[i]
		s, ok := idx[a.Group]
		if !ok {
			s = len(d.Stages) - 1
		}
		t.stages[s].add(a, d.Version, r.HaltedAt)
		if s == r.Stage && canaries[a.AgentID] {
			t.canary.add(a, d.Version, r.HaltedAt)
		}
	}
	// A canary that no longer reports is still a canary the step waits for.
	t.canary.total = max(t.canary.total, len(r.Canaries))
	return t
}

// step is the count of r's current step.
func (t *tally) step(r fleet.Rollout) *count {
	if r.Step == fleet.StepCanary {
		return &t.canary
	}
	return &t.stages[r.Stage]
}

// halts checks every stage the version reached against its failure threshold.
func (t *tally) halts(d Desired, r fleet.Rollout) (string, bool) {
	check := func(c *count, q spec.Quantity, what string) (string, bool) {
		limit := max(1, q.Of(c.live))
		if len(c.failed) < limit {
			return "", false
		}
		return fmt.Sprintf("%d of %d %s failed version %s (failure threshold %s = %d): %s; nobody new gets it until Git changes the version, rollout.resume is set after now, or an operator resumes",
			len(c.failed), c.total, what, d.Version, q, limit, idList(c.failed)), true
	}
	for s := range r.Stage {
		if msg, ok := check(&t.stages[s], effective(d.Stages[s]).FailureThreshold, fmt.Sprintf("agents of stage %d", s)); ok {
			return msg, true
		}
	}
	if r.Step == fleet.StepCanary {
		return check(&t.canary, effective(d.Stages[r.Stage]).FailureThreshold, fmt.Sprintf("canaries of stage %d", r.Stage))
	}
	return check(&t.stages[r.Stage], effective(d.Stages[r.Stage]).FailureThreshold, fmt.Sprintf("agents of stage %d", r.Stage))
}

// stageIndex maps each group to its stage; a group in two stages counts in the first.
func stageIndex(stages []spec.ResolvedStage) map[string]int {
	m := map[string]int{}
	for i, s := range stages {
		for _, g := range s.Groups {
			if _, ok := m[g]; !ok {
				m[g] = i
			}
		}
	}
	return m
}

func stepNoun(step string) string {
	if step == fleet.StepCanary {
		return "canaries"
	}
	return "agents"
}

func bakeNote(reason string) string {
	if reason == "CriticalSkipsBake" {
		return "the update is critical, so the bake time is skipped"
	}
	return "no bake time"
}

func groupList(s spec.ResolvedStage) string {
	if s.Implicit && len(s.Groups) == 0 {
		return "agents of no staged group"
	}
	if s.Implicit {
		return "groups " + strings.Join(s.Groups, ", ") + " and agents of no staged group"
	}
	return "groups " + strings.Join(s.Groups, ", ")
}

// idList names at most five ids, then how many more.
func idList(ids []string) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:show], ", "), len(ids)-show)
}
