package rollout

import (
	"strings"
	"time"

	"upkeep.dev/upkeep/spec"
)

// Desired is one channel's desired state, as the engine needs it.
type Desired struct {
	Channel string
	// Version is the version the channel serves (canonical, without "v");
	// "" when it serves none (pinned "none", or withheld): no step is taken.
	Version  string
	Critical bool
	Revision string // the Git revision it was read from
	// Resume resumes a rollout halted before it (spec.Rollout.Resume).
	Resume time.Time
	// Stages are the channel's resolved stages, the implicit last one
	// included (spec.State.RolloutStages); nil when the channel has no
	// rollout: its version is served to every agent at once.
	Stages []spec.ResolvedStage
}

// Source returns the desired state of every channel; nil before the first
// good sync of the fleet repository (the engine then does nothing).
type Source func() []Desired

// effective is a stage's thresholds as Next applies them: the loader
// refuses zero thresholds and fills in the defaults, so a zero here is a
// stage built by hand, and gets the default rather than passing (success
// 0) or halting (failure 0) every step at once.
func effective(s spec.ResolvedStage) spec.ResolvedStage {
	if s.SuccessThreshold.IsZero() {
		s.SuccessThreshold = spec.DefaultSuccessThreshold
	}
	if s.FailureThreshold.IsZero() {
		s.FailureThreshold = spec.DefaultFailureThreshold
	}
	return s
}

// DesiredFrom is the desired state of every channel of st. served is the
// version the version server offers for a channel ("" for none): the
// snapshot's ChannelView.Version, which has passed the control plane's
// checks; the rollout follows what is served, never more.
func DesiredFrom(st *spec.State, revision string, served func(channel string) string) []Desired {
	if st == nil {
		return nil
	}
	out := make([]Desired, 0, len(st.Channels))
	for _, c := range st.Channels {
		d := Desired{
			Channel:  c.Name,
			Version:  strings.TrimPrefix(served(c.Name), "v"),
			Critical: c.Critical,
			Revision: revision,
			Stages:   st.RolloutStages(c.Name),
		}
		if c.Rollout != nil {
			d.Resume = c.Rollout.Resume
		}
		out = append(out, d)
	}
	return out
}
