package rollout

import (
	"strconv"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/spec"
)

// Reasons of a held answer: why an agent is answered FromVersion.
const (
	HeldPending    = "Pending"         // the stage has not begun its first step
	HeldNotCanary  = "NotCanary"       // the stage is in its canary step, and the agent is not one
	HeldStageLater = "StageNotReached" // the agent's stage comes later
	HeldHalted     = "Halted"          // the rollout is halted: nobody new gets the version
	HeldSuperseded = "Superseded"      // a newer version is about to start its rollout
)

// Answer is one channel's version answer, built from its stored rollout
// and resolved stages. It is immutable: the version server shares it
// between requests and the Cache swaps it whole. Its methods do not
// allocate.
type Answer struct {
	Channel     string
	Version     string // the rollout's version
	FromVersion string // what held agents are answered
	State       string
	Stage       int
	Step        string

	groups   map[string]int      // group → stage index
	last     int                 // the implicit last stage: unknown groups, no group
	canaries map[string]struct{} // of the current stage, during its canary step
	stay     map[string]struct{} // halted: agents already on Version keep it
	headers  map[string]string   // reason → Upkeep-Rollout header value
}

// NewAnswer builds the answer table of r over stages (Stages' result).
// onVersion names the agents that run r.Version now; it matters only
// while the rollout is Halted or Superseded, when agents already on the
// version keep it (no forced downgrade) and nobody else gets it.
func NewAnswer(r fleet.Rollout, stages []spec.ResolvedStage, onVersion []string) *Answer {
	a := &Answer{
		Channel: r.Channel, Version: r.Version, FromVersion: r.FromVersion, State: r.State,
		Stage: r.Stage, Step: r.Step,
		groups:  stageIndex(stages),
		last:    max(len(stages)-1, 0),
		headers: map[string]string{},
	}
	if r.Step == fleet.StepCanary && len(r.Canaries) > 0 {
		a.canaries = make(map[string]struct{}, len(r.Canaries))
		for _, id := range r.Canaries {
			a.canaries[id] = struct{}{}
		}
	}
	if (r.State == fleet.StateHalted || r.State == fleet.StateSuperseded) && len(onVersion) > 0 {
		a.stay = make(map[string]struct{}, len(onVersion))
		for _, id := range onVersion {
			a.stay[id] = struct{}{}
		}
	}
	for _, reason := range []string{HeldPending, HeldNotCanary, HeldStageLater, HeldHalted, HeldSuperseded} {
		a.headers[reason] = "version=" + r.Version + "; state=" + r.State + "; stage=" + strconv.Itoa(r.Stage) + "; reason=" + reason
	}
	return a
}

// stageOf is the stage index of group.
func (a *Answer) stageOf(group string) int {
	if s, ok := a.groups[group]; ok {
		return s
	}
	return a.last
}

// VersionFor is the version agentID of group is answered: the rollout's
// version when its stage is done, is the current one in its all step, or
// it is one of the current canaries; FromVersion otherwise, with held
// true and the reason (one of the Held* constants). A Halted or Superseded
// rollout gives the version to nobody new: done stages and agents already
// on it keep it.
func (a *Answer) VersionFor(group, agentID string) (version string, held bool, reason string) {
	s := a.stageOf(group)
	switch a.State {
	case fleet.StateDone:
		return a.Version, false, ""
	case fleet.StateHalted, fleet.StateSuperseded:
		if s < a.Stage {
			return a.Version, false, ""
		}
		if _, ok := a.stay[agentID]; ok {
			return a.Version, false, ""
		}
		if a.State == fleet.StateHalted {
			return a.FromVersion, true, HeldHalted
		}
		return a.FromVersion, true, HeldSuperseded
	case fleet.StatePending:
		if s < a.Stage {
			return a.Version, false, ""
		}
		if s == a.Stage {
			return a.FromVersion, true, HeldPending
		}
		return a.FromVersion, true, HeldStageLater
	}
	// Canary, Baking, Active.
	switch {
	case s < a.Stage:
		return a.Version, false, ""
	case s > a.Stage:
		return a.FromVersion, true, HeldStageLater
	case a.Step == fleet.StepAll:
		return a.Version, false, ""
	}
	if _, ok := a.canaries[agentID]; ok {
		return a.Version, false, ""
	}
	return a.FromVersion, true, HeldNotCanary
}

// GroupVersion is the group-scoped answer (channel "group/<group>", for
// Teleport's own updaters, which send no agent id): what the group's all
// step allows, never the canary-only answer. While Halted or Superseded,
// a group whose stage was not done is answered FromVersion.
func (a *Answer) GroupVersion(group string) (version string, held bool, reason string) {
	s := a.stageOf(group)
	switch {
	case a.State == fleet.StateDone, s < a.Stage:
		return a.Version, false, ""
	case a.State == fleet.StateHalted:
		return a.FromVersion, true, HeldHalted
	case a.State == fleet.StateSuperseded:
		return a.FromVersion, true, HeldSuperseded
	case s > a.Stage:
		return a.FromVersion, true, HeldStageLater
	case a.State == fleet.StatePending:
		return a.FromVersion, true, HeldPending
	case a.Step == fleet.StepAll:
		return a.Version, false, ""
	}
	return a.FromVersion, true, HeldNotCanary
}

// Header is the Upkeep-Rollout header value of an answer held for reason
// ("version=17.4.0; state=Canary; stage=1; reason=NotCanary"; stage is the
// index into the channel's stages); "" for an answer not held.
func (a *Answer) Header(reason string) string { return a.headers[reason] }

// Answers are the answer tables of every channel with a rollout.
type Answers struct {
	byChannel map[string]*Answer
}

// NewAnswers indexes answers by channel.
func NewAnswers(as ...*Answer) *Answers {
	t := &Answers{byChannel: make(map[string]*Answer, len(as))}
	for _, a := range as {
		t.byChannel[a.Channel] = a
	}
	return t
}

// Channel is the named channel's answer; nil when it has no rollout yet
// (serve the channel's version as before). Safe on a nil *Answers.
func (t *Answers) Channel(name string) *Answer {
	if t == nil {
		return nil
	}
	return t.byChannel[name]
}

// Len is how many channels have an answer.
func (t *Answers) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byChannel)
}
