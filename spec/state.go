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
