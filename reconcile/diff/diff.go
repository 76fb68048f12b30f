// Package diff compares two fleet states — the base and the head of a pull
// request — and says what merging would change: channel versions, group
// schedules, control-plane bounds and the errors head would bring. Compare
// is pure (the clock is a parameter); Text, Markdown and JSON render its
// Report for a terminal, a pull-request comment and tools.
package diff

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// WindowHorizon is the horizon the version server publishes schedules for.
// Compare shows a group's windows as the server publishes them
// (schedule.Publish): those within it, or, when a freeze empties it, the
// first window after the freeze.
const WindowHorizon = reconcile.ScheduleHorizon

// NextWindows is how many upcoming windows a group change shows per side.
const NextWindows = 3

// Change says how an object differs between base and head.
type Change string

const (
	Added    Change = "added"
	Removed  Change = "removed"
	Modified Change = "modified"
	// Unchanged objects are listed only when head makes them invalid (a
	// control plane moved under a channel), so that the reader sees why.
	Unchanged Change = "unchanged"
)

// Movement classifies how a version moves from base to head.
type Movement string

const (
	Same      Movement = "unchanged"
	Upgrade   Movement = "upgrade"
	Downgrade Movement = "downgrade"
	MajorJump Movement = "major jump" // the major version differs, up or down
	Offered   Movement = "offered"    // no version before, one now
	Withdrawn Movement = "withdrawn"  // a version before, none now
	Unordered Movement = "changed"    // at least one side is not semver (head is invalid)
)

// Report is everything merging head onto base would change.
type Report struct {
	// Base and Head name the two sides for people ("HEAD (1a2b3c4d)",
	// "work tree"). Compare leaves them empty; the caller that read the
	// revisions fills them.
	Base string `json:"base,omitempty"`
	Head string `json:"head,omitempty"`
	// BaseErrors are the problems of the base revision. Compare leaves it
	// nil; a caller that loaded an invalid base records them here so the
	// report can say that base was already broken.
	BaseErrors spec.Errors `json:"baseErrors,omitempty"`

	Now           time.Time          `json:"now"`
	Summary       Summary            `json:"summary"`
	ControlPlanes []ControlPlaneDiff `json:"controlPlanes"`
	Channels      []ChannelDiff      `json:"channels"`
	Groups        []GroupDiff        `json:"groups"`
	// Updaters says what an updater of each affected group would do now
	// under head, by the shared decision chain (reconcile.Decide). Empty
	// when head is invalid: the version server would not serve it.
	Updaters   []UpdaterPreview `json:"updaters"`
	HeadErrors spec.Errors      `json:"headErrors"`
	// Fleet is what merging would do to the agents a version server's
	// fleet store knows (AddFleet); nil without one (diff without --server).
	Fleet *FleetImpact `json:"fleet,omitempty"`
}

// Summary counts what changed.
type Summary struct {
	// Text is the summary in one sentence (see Line).
	Text    string `json:"text"`
	Changed bool   `json:"changed"`

	ChannelsAdded    int `json:"channelsAdded"`
	ChannelsRemoved  int `json:"channelsRemoved"`
	ChannelsModified int `json:"channelsModified"`
	Upgrades         int `json:"upgrades"`
	Downgrades       int `json:"downgrades"`
	MajorJumps       int `json:"majorJumps"`
	CriticalToggled  int `json:"criticalToggled"`

	GroupsAdded    int `json:"groupsAdded"`
	GroupsRemoved  int `json:"groupsRemoved"`
	GroupsModified int `json:"groupsModified"`

	ControlPlanesAdded    int `json:"controlPlanesAdded"`
	ControlPlanesRemoved  int `json:"controlPlanesRemoved"`
	ControlPlanesModified int `json:"controlPlanesModified"`
	// InvalidatedChannels counts channels whose version head's control
	// plane no longer admits.
	InvalidatedChannels int `json:"invalidatedChannels"`

	HeadErrors int `json:"headErrors"`
}

// ChannelSide is a channel as one side sees it.
type ChannelSide struct {
	ControlPlane string `json:"controlPlane"`
	// Follow is true for a channel that follows its control plane's version.
	Follow bool `json:"follow"`
	// Pinned is the pinned version as written ("none" included); "" when following.
	Pinned string `json:"pinned,omitempty"`
	// Version is the resolved version, without "v"; "" when the channel
	// offers none or its control plane is missing.
	Version  string `json:"version"`
	Critical bool   `json:"critical"`
	// Default: the channel answers as Teleport's "default" channel.
	Default bool `json:"default,omitempty"`
	// Rollout describes the channel's stages for people (see
	// describeRollout); "" when its version reaches every agent at once.
	Rollout string `json:"rollout,omitempty"`
}

// ChannelDiff is one channel that differs, or that head makes invalid.
type ChannelDiff struct {
	Name   string       `json:"name"`
	Change Change       `json:"change"`
	Base   *ChannelSide `json:"base,omitempty"` // nil when added
	Head   *ChannelSide `json:"head,omitempty"` // nil when removed
	// Movement of the resolved version; Same when only other fields changed.
	Movement Movement `json:"movement"`
	// Cause says why the resolved version moved, e.g. "control plane cloud
	// moved" for a following channel whose own document did not change.
	Cause           string `json:"cause,omitempty"`
	CriticalToggled bool   `json:"criticalToggled,omitempty"`
	ModeSwitched    bool   `json:"modeSwitched,omitempty"` // follow ↔ pinned
	// RolloutChanged is set when the stages, their thresholds or resume changed.
	RolloutChanged bool `json:"rolloutChanged,omitempty"`
	// Violations are head's errors about this channel's document.
	Violations spec.Errors `json:"violations,omitempty"`
}

// GroupSide is a group as one side sees it.
type GroupSide struct {
	Channel        string   `json:"channel"`
	Timezone       string   `json:"timezone"`
	Windows        []string `json:"windows"` // e.g. "Tue,Thu 02:00 for 4h"
	Freezes        []string `json:"freezes"` // e.g. "year-end 2026-12-20T00:00:00+01:00 until 2027-01-05T00:00:00+01:00"
	UpdateDuration string   `json:"updateDuration"`
	Order          int      `json:"order"`
	// MaxConcurrent is "3" or "20%"; "" when unlimited.
	MaxConcurrent string `json:"maxConcurrent,omitempty"`
}

// GroupDiff is one group that differs.
type GroupDiff struct {
	Name   string     `json:"name"`
	Change Change     `json:"change"`
	Base   *GroupSide `json:"base,omitempty"`
	Head   *GroupSide `json:"head,omitempty"`
	// Fields names what changed: channel, timezone, windows, freezes,
	// updateDuration, order, maxConcurrent.
	Fields []string `json:"fields,omitempty"`
	// NextBefore and NextAfter are the next windows (at most NextWindows)
	// under base and head, as the version server would publish them at Now
	// (schedule.Publish). They are filled when the schedule changed
	// (timezone, windows, freezes, updateDuration) or the group was added
	// or removed.
	NextBefore []calendar.Interval `json:"nextBefore,omitempty"`
	NextAfter  []calendar.Interval `json:"nextAfter,omitempty"`
	// BeforeRule and AfterRule are set when a side's windows are not
	// simply those within WindowHorizon: FirstWindowAfterFreeze (the next
	// windows are the first one after a freeze) or NothingOpen (none, and
	// the server serves a placeholder that never opens).
	BeforeRule *ScheduleRule `json:"nextBeforeRule,omitempty"`
	AfterRule  *ScheduleRule `json:"nextAfterRule,omitempty"`
}

// ScheduleRule is the rule by which the version server publishes a group's
// schedule (schedule.Publish) and its reason.
type ScheduleRule struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// ControlPlaneSide is a control plane as one side sees it.
type ControlPlaneSide struct {
	Version string `json:"version"`
	Agents  string `json:"agents,omitempty"`
}

// Invalidation is a channel whose version a changed control plane no
// longer admits.
type Invalidation struct {
	Channel string        `json:"channel"`
	Version string        `json:"version"`
	Reason  string        `json:"reason"`
	Pos     spec.Position `json:"pos"`
}

// ControlPlaneDiff is one control plane that differs.
type ControlPlaneDiff struct {
	Name     string            `json:"name"`
	Change   Change            `json:"change"`
	Base     *ControlPlaneSide `json:"base,omitempty"`
	Head     *ControlPlaneSide `json:"head,omitempty"`
	Movement Movement          `json:"movement"`
	// Invalidated lists head's channels on this control plane whose
	// resolved version it no longer admits (base's admitted it).
	Invalidated []Invalidation `json:"invalidated,omitempty"`
}

// Compare returns what merging head onto base would change. headErrs are
// the errors spec.Load reported for head; they are listed in full and the
// ones about a channel are attached to it. A nil state counts as empty.
// now only positions the groups' next windows.
func Compare(base, head *spec.State, headErrs spec.Errors, now time.Time) *Report {
	if base == nil {
		base = &spec.State{}
	}
	if head == nil {
		head = &spec.State{}
	}
	r := &Report{
		Now:           now,
		HeadErrors:    slices.Clone(headErrs),
		ControlPlanes: []ControlPlaneDiff{},
		Channels:      []ChannelDiff{},
		Groups:        []GroupDiff{},
		Updaters:      []UpdaterPreview{},
	}
	if r.HeadErrors == nil {
		r.HeadErrors = spec.Errors{}
	}
	r.ControlPlanes = compareControlPlanes(base, head)
	invalidated := map[string]bool{}
	for _, cp := range r.ControlPlanes {
		for _, inv := range cp.Invalidated {
			invalidated[inv.Channel] = true
		}
	}
	r.Channels = compareChannels(base, head, headErrs, invalidated)
	r.Groups = compareGroups(base, head, now)
	if len(headErrs) == 0 {
		// An invalid revision is never served: its updaters keep what base
		// gives them, and the renderers say so instead of a preview.
		r.Updaters = previewUpdaters(base, head, r, now)
	}
	r.Summary = summarize(r)
	return r
}

func compareControlPlanes(base, head *spec.State) []ControlPlaneDiff {
	out := []ControlPlaneDiff{}
	for _, name := range unionNames(base.ControlPlanes, head.ControlPlanes, func(cp *spec.ControlPlane) string { return cp.Name }) {
		b, h := base.ControlPlane(name), head.ControlPlane(name)
		d := ControlPlaneDiff{Name: name, Movement: Same}
		if b != nil {
			d.Base = &ControlPlaneSide{Version: b.Version, Agents: b.Agents}
		}
		if h != nil {
			d.Head = &ControlPlaneSide{Version: h.Version, Agents: h.Agents}
		}
		switch {
		case b == nil:
			d.Change = Added
		case h == nil:
			d.Change = Removed
		case *d.Base != *d.Head:
			d.Change = Modified
			d.Movement = classify(b.Version, h.Version)
		default:
			continue
		}
		if h != nil {
			d.Invalidated = invalidatedBy(b, h, head)
		}
		out = append(out, d)
	}
	return out
}

// invalidatedBy lists head's channels on h whose resolved version h rejects
// although base's control plane of the same name (b, nil when h is new)
// admitted it: the ones the control-plane change itself breaks.
func invalidatedBy(b, h *spec.ControlPlane, head *spec.State) []Invalidation {
	var out []Invalidation
	for _, c := range head.Channels {
		if c.ControlPlane != h.Name {
			continue
		}
		v := head.ResolvedVersion(c)
		if v == "" {
			continue
		}
		err := h.Admits(v)
		if err == nil || (b != nil && b.Admits(v) != nil) {
			continue
		}
		out = append(out, Invalidation{Channel: c.Name, Version: v, Reason: err.Error(), Pos: c.Pos})
	}
	return out
}

func channelSide(st *spec.State, c *spec.Channel) *ChannelSide {
	if c == nil {
		return nil
	}
	return &ChannelSide{
		ControlPlane: c.ControlPlane,
		Follow:       c.Follow != "",
		Pinned:       c.Version,
		Version:      st.ResolvedVersion(c),
		Critical:     c.Critical,
		Default:      st.DefaultChannel() == c,
		Rollout:      describeRollout(c.Rollout),
	}
}

func compareChannels(base, head *spec.State, headErrs spec.Errors, invalidated map[string]bool) []ChannelDiff {
	docs := documentStarts(head)
	out := []ChannelDiff{}
	for _, name := range unionNames(base.Channels, head.Channels, func(c *spec.Channel) string { return c.Name }) {
		bc, hc := base.Channel(name), head.Channel(name)
		d := ChannelDiff{Name: name, Base: channelSide(base, bc), Head: channelSide(head, hc), Movement: Same}
		if hc != nil {
			d.Violations = errorsOfDocument(headErrs, hc.Pos, docs)
		}
		switch {
		case bc == nil:
			d.Change = Added
		case hc == nil:
			d.Change = Removed
		case *d.Base != *d.Head:
			d.Change = Modified
			d.Movement = classify(d.Base.Version, d.Head.Version)
			if d.Movement != Same {
				d.Cause = cause(base, head, d.Base, d.Head)
			}
			d.CriticalToggled = d.Base.Critical != d.Head.Critical
			d.ModeSwitched = d.Base.Follow != d.Head.Follow
			d.RolloutChanged = d.Base.Rollout != d.Head.Rollout
		case len(d.Violations) > 0 || invalidated[name]:
			d.Change = Unchanged
		default:
			continue
		}
		out = append(out, d)
	}
	return out
}

// cause explains why a channel's resolved version moved.
func cause(base, head *spec.State, b, h *ChannelSide) string {
	switch {
	case b.Follow && !h.Follow:
		return "now pinned instead of following"
	case !b.Follow && h.Follow:
		return "now follows control plane " + h.ControlPlane
	case h.Follow && b.ControlPlane != h.ControlPlane:
		return "now follows control plane " + h.ControlPlane + " instead of " + b.ControlPlane
	case h.Follow:
		from, to := "(missing)", "(missing)"
		if cp := base.ControlPlane(b.ControlPlane); cp != nil {
			from = cp.Version
		}
		if cp := head.ControlPlane(h.ControlPlane); cp != nil {
			to = cp.Version
		}
		return fmt.Sprintf("control plane %s moved %s → %s", h.ControlPlane, from, to)
	}
	return "pin changed"
}

func groupSide(g *spec.Group) *GroupSide {
	if g == nil {
		return nil
	}
	s := &GroupSide{
		Channel:        g.Channel,
		Timezone:       g.Timezone,
		Windows:        []string{},
		Freezes:        []string{},
		UpdateDuration: shortDuration(effectiveUpdateDuration(g)),
		Order:          g.Order,
	}
	if !g.MaxConcurrent.IsZero() {
		s.MaxConcurrent = g.MaxConcurrent.String()
	}
	for _, w := range g.Windows {
		s.Windows = append(s.Windows, describeWindow(w))
	}
	for _, f := range g.Freezes {
		s.Freezes = append(s.Freezes, describeFreeze(f))
	}
	return s
}

func effectiveUpdateDuration(g *spec.Group) time.Duration {
	if g.UpdateDuration == 0 {
		return spec.DefaultUpdateDuration
	}
	return g.UpdateDuration
}

func compareGroups(base, head *spec.State, now time.Time) []GroupDiff {
	out := []GroupDiff{}
	for _, name := range unionNames(base.Groups, head.Groups, func(g *spec.Group) string { return g.Name }) {
		bg, hg := base.Group(name), head.Group(name)
		d := GroupDiff{Name: name}
		switch {
		case bg == nil:
			d.Change = Added
		case hg == nil:
			d.Change = Removed
		default:
			d.Fields = changedGroupFields(bg, hg)
			if len(d.Fields) == 0 {
				continue
			}
			d.Change = Modified
		}
		d.Base, d.Head = groupSide(bg), groupSide(hg)
		if showsSchedule(d) {
			d.NextBefore, d.BeforeRule = nextWindows(bg, now)
			d.NextAfter, d.AfterRule = nextWindows(hg, now)
		}
		out = append(out, d)
	}
	return out
}

func changedGroupFields(b, h *spec.Group) []string {
	var fields []string
	if b.Channel != h.Channel {
		fields = append(fields, "channel")
	}
	if b.Timezone != h.Timezone {
		fields = append(fields, "timezone")
	}
	if !slices.EqualFunc(b.Windows, h.Windows, func(x, y spec.Window) bool {
		return x.Start == y.Start && x.Duration == y.Duration && slices.Equal(x.Days, y.Days)
	}) {
		fields = append(fields, "windows")
	}
	if !slices.EqualFunc(b.Freezes, h.Freezes, func(x, y spec.Freeze) bool {
		return x.Name == y.Name && x.Start.Equal(y.Start) && x.End.Equal(y.End) && x.AllowCritical == y.AllowCritical
	}) {
		fields = append(fields, "freezes")
	}
	if effectiveUpdateDuration(b) != effectiveUpdateDuration(h) {
		fields = append(fields, "updateDuration")
	}
	if b.Order != h.Order {
		fields = append(fields, "order")
	}
	if b.MaxConcurrent != h.MaxConcurrent {
		fields = append(fields, "maxConcurrent")
	}
	return fields
}

// nextWindows returns the group's next windows as the server publishes
// them, with the rule when it is not WindowsInHorizon; nil for a missing
// group or one whose timezone did not load (head is then invalid, and says
// so).
func nextWindows(g *spec.Group, now time.Time) ([]calendar.Interval, *ScheduleRule) {
	if g == nil || g.Location == nil {
		return nil, nil
	}
	p := schedule.Publish(g, now, WindowHorizon)
	ws := p.Windows
	if len(ws) > NextWindows {
		ws = ws[:NextWindows]
	}
	return ws, unusualRule(p)
}

// unusualRule is p's rule and reason, or nil for the ordinary case
// (WindowsInHorizon), which the reports do not spell out.
func unusualRule(p schedule.Published) *ScheduleRule {
	if p.Rule == schedule.RuleWindowsInHorizon {
		return nil
	}
	return &ScheduleRule{Rule: p.Rule, Reason: p.Reason}
}

// classify says how version old moves to version new. "" is no version.
func classify(old, new string) Movement {
	switch {
	case old == new:
		return Same
	case old == "":
		return Offered
	case new == "":
		return Withdrawn
	}
	ov, err1 := semver.NewVersion(old)
	nv, err2 := semver.NewVersion(new)
	switch {
	case err1 != nil || err2 != nil:
		return Unordered
	case ov.Equal(nv):
		return Same
	case ov.Major() != nv.Major():
		return MajorJump
	case nv.GreaterThan(ov):
		return Upgrade
	}
	return Downgrade
}

// documentStarts returns, per file, the sorted lines of head's documents
// (their metadata.name positions), so errors can be traced to the document
// they fall in.
func documentStarts(st *spec.State) map[string][]int {
	m := map[string][]int{}
	add := func(p spec.Position) { m[p.File] = append(m[p.File], p.Line) }
	for _, cp := range st.ControlPlanes {
		add(cp.Pos)
	}
	for _, c := range st.Channels {
		add(c.Pos)
	}
	for _, g := range st.Groups {
		add(g.Pos)
	}
	for f := range m {
		slices.Sort(m[f])
	}
	return m
}

// errorsOfDocument returns the errors that fall in the document whose name
// is at pos: the metadata.name line itself, or a spec field between it and
// the next loaded document of the same file. Spec fields follow metadata in
// every document we write and in the examples; an error the heuristic cannot
// place still shows in the full error list.
func errorsOfDocument(errs spec.Errors, pos spec.Position, docs map[string][]int) spec.Errors {
	next := int(^uint(0) >> 1)
	for _, l := range docs[pos.File] {
		if l > pos.Line {
			next = l
			break
		}
	}
	var out spec.Errors
	for _, e := range errs {
		if e.Pos.File != pos.File {
			continue
		}
		onName := e.Pos.Line == pos.Line
		inSpec := strings.HasPrefix(e.Path, "spec") && e.Pos.Line > pos.Line && e.Pos.Line < next
		if onName || inSpec {
			out = append(out, e)
		}
	}
	return out
}

func unionNames[T any](a, b []T, name func(T) string) []string {
	var names []string
	for _, x := range a {
		names = append(names, name(x))
	}
	for _, x := range b {
		names = append(names, name(x))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func summarize(r *Report) Summary {
	s := Summary{HeadErrors: len(r.HeadErrors)}
	for _, c := range r.Channels {
		switch c.Change {
		case Added:
			s.ChannelsAdded++
		case Removed:
			s.ChannelsRemoved++
		case Modified:
			s.ChannelsModified++
		}
		switch c.Movement {
		case Upgrade:
			s.Upgrades++
		case Downgrade:
			s.Downgrades++
		case MajorJump:
			s.MajorJumps++
		}
		if c.CriticalToggled {
			s.CriticalToggled++
		}
	}
	for _, g := range r.Groups {
		switch g.Change {
		case Added:
			s.GroupsAdded++
		case Removed:
			s.GroupsRemoved++
		case Modified:
			s.GroupsModified++
		}
	}
	for _, cp := range r.ControlPlanes {
		switch cp.Change {
		case Added:
			s.ControlPlanesAdded++
		case Removed:
			s.ControlPlanesRemoved++
		case Modified:
			s.ControlPlanesModified++
		}
		s.InvalidatedChannels += len(cp.Invalidated)
	}
	s.Changed = s.ChannelsAdded+s.ChannelsRemoved+s.ChannelsModified+
		s.GroupsAdded+s.GroupsRemoved+s.GroupsModified+
		s.ControlPlanesAdded+s.ControlPlanesRemoved+s.ControlPlanesModified > 0
	s.Text = s.Line()
	return s
}

// Line is the summary in one sentence, e.g. "2 channels changed (1
// upgrade, 1 major jump), 1 group changed; head is invalid: 1 error".
func (s Summary) Line() string {
	var parts []string
	if !s.Changed {
		parts = append(parts, "no changes")
	}
	if n := s.ChannelsModified; n > 0 {
		var moves []string
		for _, m := range []struct {
			n    int
			what string
		}{{s.Upgrades, "upgrade"}, {s.Downgrades, "downgrade"}, {s.MajorJumps, "major jump"}} {
			if m.n > 0 {
				moves = append(moves, plural(m.n, m.what))
			}
		}
		if s.CriticalToggled > 0 {
			moves = append(moves, fmt.Sprintf("%d critical toggled", s.CriticalToggled))
		}
		p := plural(n, "channel") + " changed"
		if len(moves) > 0 {
			p += " (" + strings.Join(moves, ", ") + ")"
		}
		parts = append(parts, p)
	}
	parts = appendCount(parts, s.ChannelsAdded, "channel", "added")
	parts = appendCount(parts, s.ChannelsRemoved, "channel", "removed")
	parts = appendCount(parts, s.GroupsModified, "group", "changed")
	parts = appendCount(parts, s.GroupsAdded, "group", "added")
	parts = appendCount(parts, s.GroupsRemoved, "group", "removed")
	parts = appendCount(parts, s.ControlPlanesModified, "control plane", "changed")
	parts = appendCount(parts, s.ControlPlanesAdded, "control plane", "added")
	parts = appendCount(parts, s.ControlPlanesRemoved, "control plane", "removed")
	parts = appendCount(parts, s.InvalidatedChannels, "channel", "made invalid by a control-plane change")
	line := strings.Join(parts, ", ")
	if s.HeadErrors > 0 {
		line += "; head is invalid: " + plural(s.HeadErrors, "error")
	}
	return line
}

func appendCount(parts []string, n int, noun, verb string) []string {
	if n == 0 {
		return parts
	}
	return append(parts, plural(n, noun)+" "+verb)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "h") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
