package rollout

import (
	"slices"
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
	// included (see Stages); nil when the channel has no rollout: its
	// version is served to every agent at once.
	Stages []spec.Stage
}

// Source returns the desired state of every channel; nil before the first
// good sync of the fleet repository (the engine then does nothing).
type Source func() []Desired

// Stages resolves a channel's rollout: its stages in order, then the
// implicit last stage of the groups that follow the channel but are in no
// stage (sorted by order, then name). Agents whose group is in no stage, or
// who report none, belong to the last stage too (see Answer). Thresholds
// left unset take their defaults (canaries 0, bake 0, success 100%,
// failure 1). nil when the channel has no rollout.
func Stages(st *spec.State, c *spec.Channel) []spec.Stage {
	if c == nil || c.Rollout == nil || len(c.Rollout.Stages) == 0 {
		return nil
	}
	out := make([]spec.Stage, 0, len(c.Rollout.Stages)+1)
	staged := map[string]bool{}
	for _, s := range c.Rollout.Stages {
		s.Groups = slices.Clone(s.Groups)
		out = append(out, withDefaults(s))
		for _, g := range s.Groups {
			staged[g] = true
		}
	}
	var rest []*spec.Group
	if st != nil {
		for _, g := range st.Groups {
			if g.Channel == c.Name && !staged[g.Name] {
				rest = append(rest, g)
			}
		}
	}
	slices.SortFunc(rest, func(a, b *spec.Group) int {
		if a.Order != b.Order {
			return a.Order - b.Order
		}
		return strings.Compare(a.Name, b.Name)
	})
	last := spec.Stage{Pos: c.Rollout.Pos}
	for _, g := range rest {
		last.Groups = append(last.Groups, g.Name)
	}
	return append(out, withDefaults(last))
}

// Default thresholds of a stage.
var (
	DefaultSuccessThreshold = spec.Quantity{Percent: 100, IsPercent: true}
	DefaultFailureThreshold = spec.Quantity{Count: 1}
)

// withDefaults fills unset thresholds. A zero success threshold would pass
// a step before any agent updated, and a zero failure threshold would halt
// it at once, so zero means "unset" for both.
func withDefaults(s spec.Stage) spec.Stage {
	if s.SuccessThreshold.IsZero() {
		s.SuccessThreshold = DefaultSuccessThreshold
	}
	if s.FailureThreshold.IsZero() {
		s.FailureThreshold = DefaultFailureThreshold
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
			Stages:   Stages(st, c),
		}
		if c.Rollout != nil {
			d.Resume = c.Rollout.Resume
		}
		out = append(out, d)
	}
	return out
}
