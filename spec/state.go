package spec

import (
	"cmp"
	"slices"
	"strings"
)

// Sort orders errors by file, line, column, path and message, so that one
// repository always yields the same list.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// find looks name up in a slice that Load sorted by name, and falls back
// to a scan for a State built by hand in another order.
func find[T any](items []*T, name string, nameOf func(*T) string) *T {
	if i, ok := slices.BinarySearchFunc(items, name, func(it *T, n string) int {
		return cmp.Compare(nameOf(it), n)
	}); ok {
		return items[i]
	}
	for _, it := range items {
		if nameOf(it) == name {
			return it
		}
	}
	return nil
}

// ControlPlane returns the control plane named name, or nil.
func (s *State) ControlPlane(name string) *ControlPlane {
	return find(s.ControlPlanes, name, func(c *ControlPlane) string { return c.Name })
}

// Channel returns the channel named name, or nil.
func (s *State) Channel(name string) *Channel {
	return find(s.Channels, name, func(c *Channel) string { return c.Name })
}

// Group returns the group named name, or nil.
func (s *State) Group(name string) *Group {
	return find(s.Groups, name, func(g *Group) string { return g.Name })
}

// ResolvedVersion is the version channel c offers, without a leading "v":
// its pinned version, or its control plane's when it follows it. It is ""
// when the channel offers no version ("none") or its control plane is unknown.
func (s *State) ResolvedVersion(c *Channel) string {
	switch {
	case c == nil || c.Version == NoVersion:
		return ""
	case c.Version != "":
		return strings.TrimPrefix(c.Version, "v")
	case c.Follow == FollowControlPlane:
		if cp := s.ControlPlane(c.ControlPlane); cp != nil {
			return strings.TrimPrefix(cp.Version, "v")
		}
	}
	return ""
}

// ResolvedStage is one stage of a channel's rollout as the rollout engine
// and the version server run it. Its thresholds are the effective ones:
// the loader fills in the defaults of fields a stage leaves out (canaries
// 0, bakeTime 0, successThreshold "100%", failureThreshold 1).
type ResolvedStage struct {
	Stage
	// Implicit marks the last stage, which no document writes: the groups
	// that follow the channel but are in no stage (by order, then name),
	// and every agent that names no group or a group not in the channel's
	// stages. It has the default thresholds and may have no groups.
	Implicit bool
}

// RolloutStages returns the stages a new version of channel goes through,
// in order, with the implicit last stage appended (see ResolvedStage). It
// is nil when the channel is unknown, has no rollout (its version reaches
// every agent at once), or serves no version ("none": pausing a channel
// stops every agent at once, so a paused channel may keep its rollout).
// The stages share no memory with the State.
func (s *State) RolloutStages(channel string) []ResolvedStage {
	ch := s.Channel(channel)
	if ch == nil || ch.Rollout == nil || ch.Version == NoVersion {
		return nil
	}
	out := make([]ResolvedStage, 0, len(ch.Rollout.Stages)+1)
	staged := map[string]bool{}
	for _, st := range ch.Rollout.Stages {
		st.Groups = slices.Clone(st.Groups)
		for _, g := range st.Groups {
			staged[g] = true
		}
		out = append(out, ResolvedStage{Stage: st})
	}
	var rest []*Group
	for _, g := range s.Groups {
		if g.Channel == channel && !staged[g.Name] {
			rest = append(rest, g)
		}
	}
	slices.SortStableFunc(rest, func(a, b *Group) int { return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name)) })
	last := ResolvedStage{Implicit: true, Stage: Stage{
		Groups:           make([]string, 0, len(rest)),
		SuccessThreshold: DefaultSuccessThreshold,
		FailureThreshold: DefaultFailureThreshold,
		Pos:              ch.Rollout.Pos,
	}}
	for _, g := range rest {
		last.Groups = append(last.Groups, g.Name)
	}
	return append(out, last)
}

// StageOf is the index in stages (as RolloutStages returns them) of the
// stage an agent of group belongs to: the stage that names the group, or
// else the implicit last stage ("" and unknown groups included). It is -1
// when stages is empty.
func StageOf(stages []ResolvedStage, group string) int {
	for i, st := range stages {
		if slices.Contains(st.Groups, group) {
			return i
		}
	}
	return len(stages) - 1
}
