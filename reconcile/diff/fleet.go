package diff

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// The fleet-aware part of a diff (`upkeep diff --server`): which agents
// merging head would move, read from a version server's fleet store,
// grouped by channel and by rollout stage, with each group's first usable
// window after the merge. Compare stays pure; the caller fetches the
// counts (AffectedGroups says which) and AddFleet folds them in.

// UngroupedName stands for the agents that report no group (the store's
// report.NoGroup): they follow their channel on a schedule of their own.
const UngroupedName = "_none"

// Versions counts agents by their current version ("unknown" when they
// do not know it).
type Versions map[string]int

// FleetCounts is what the server's fleet store says about the affected
// agents.
type FleetCounts struct {
	Server string    // the server's root URL, for people
	Time   time.Time // the store's time of the counts
	// Groups are the agents of each group AffectedGroups named.
	Groups map[string]Versions
	// Ungrouped are the agents without a group, by the channel they report.
	Ungrouped map[string]Versions
	// ServedRevision is the revision the server serves; BaseRevision the
	// commit id of base. When the server serves a Git commit and it is not
	// base, the report says so (its agents may be on their way elsewhere).
	ServedRevision, BaseRevision string
}

// FleetImpact is what merging would do to the fleet.
type FleetImpact struct {
	Server string    `json:"server"`
	Time   time.Time `json:"time"`
	// Summary is one sentence, e.g. "merging this moves 1,240 agents in 3
	// groups, first window Tue 02:00 Europe/Berlin".
	Summary string `json:"summary"`
	// Agents are all the agents of the affected groups; Moving those whose
	// version the merge changes; Groups the groups with a moving agent.
	Agents int `json:"agents"`
	Moving int `json:"moving"`
	Groups int `json:"groups"`
	// FirstWindow is the earliest first usable window of a group with a
	// moving agent that waits for a window (not a critical one); nil when
	// there is none.
	FirstWindow *GroupWindow    `json:"firstWindow,omitempty"`
	Channels    []ChannelImpact `json:"channels"`
	// ServedRevision is what the server serves; NotBase is set when that is
	// not base's commit: the counts are today's agents all the same, but
	// some may still be moving to what the server serves.
	ServedRevision string `json:"servedRevision,omitempty"`
	NotBase        bool   `json:"notBase,omitempty"`
}

// ChannelImpact is one channel whose agents merging changes.
type ChannelImpact struct {
	Name string `json:"name"`
	// From and Target are the versions base and head serve; "" or "none"
	// when a side serves none.
	From     string `json:"from"`
	Target   string `json:"target"`
	Critical bool   `json:"critical"`
	// Staged is true when head gives the channel a rollout: Stages are
	// then its stages in order (spec.State.RolloutStages), with only the
	// affected groups; else one stage holds every affected group.
	Staged bool          `json:"staged"`
	Stages []StageImpact `json:"stages"`
	Agents int           `json:"agents"`
	Moving int           `json:"moving"`
	Groups int           `json:"groups"` // with a moving agent
	// First is the earliest first usable window of the groups with a
	// moving agent in the first stage that has one (later stages wait);
	// nil for a critical channel, whose groups do not wait for windows.
	First *GroupWindow   `json:"firstWindow,omitempty"`
	Other *UngroupedPart `json:"ungrouped,omitempty"`
}

// UngroupedPart is a channel's agents without a group.
type UngroupedPart struct {
	Agents    int      `json:"agents"`
	ByVersion Versions `json:"byVersion"`
	Moving    int      `json:"moving"`
}

// StageImpact is one stage of a channel's rollout.
type StageImpact struct {
	Index    int           `json:"index"` // as the server counts, from 0
	Implicit bool          `json:"implicit,omitempty"`
	Canaries string        `json:"canaries,omitempty"`
	BakeTime string        `json:"bakeTime,omitempty"`
	Groups   []GroupImpact `json:"groups"`
}

// GroupImpact is one group's agents and its first usable window.
type GroupImpact struct {
	Name      string   `json:"name"`
	Timezone  string   `json:"timezone"`
	Agents    int      `json:"agents"`
	ByVersion Versions `json:"byVersion"`
	// From is what base serves the group (its base channel's version);
	// Moving the agents not on head's target when the target changes.
	From   string       `json:"from"`
	Moving int          `json:"moving"`
	Window *GroupWindow `json:"firstWindow,omitempty"`
	// AfterEarlierStages: the group is in a later stage than the first one
	// with a moving agent, so it moves only once those stages are done,
	// whatever its window.
	AfterEarlierStages bool `json:"afterEarlierStages,omitempty"`
	// When says when the group's updaters may start: "window" (Window),
	// "now" (a usable window is open), "critical" (at once: a critical
	// update skips windows), "held" (critical, but a freeze without
	// allowCritical holds it until HeldUntil, then at once), "none" (no
	// usable window in the schedule the server serves).
	When string `json:"when"`
	// Rule and Reason say why When is what it is, except in the ordinary
	// case (a window of the published horizon, rule WindowsInHorizon):
	// schedule.Publish's FirstWindowAfterFreeze or NothingOpen, or the
	// decision chain's Critical or CriticalHeldByFreeze.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// HeldUntil is when a critical update held by a freeze passes (When
	// "held"): the end of the freeze, or of freezes back to back.
	HeldUntil time.Time `json:"heldUntil,omitzero"`
}

// GroupWindow is a group's first usable window after the merge.
type GroupWindow struct {
	Group    string `json:"group"`
	Timezone string `json:"timezone"`
	calendar.Interval
}

// Short is "Tue 02:00 Europe/Berlin".
func (w *GroupWindow) Short() string {
	return w.Start.In(location(w.Timezone)).Format("Mon 15:04") + " " + w.Timezone
}

// ShortFrom is Short, with the date when the window opens a week or more
// after now (the first window after a long freeze): "Tue 2027-01-05 02:00
// Europe/Berlin".
func (w *GroupWindow) ShortFrom(now time.Time) string {
	if w.Start.Sub(now) < 6*24*time.Hour {
		return w.Short()
	}
	return w.Start.In(location(w.Timezone)).Format("Mon 2006-01-02 15:04") + " " + w.Timezone
}

// AffectedGroups are the groups whose agents merging may move: every head
// group of a channel the report lists (except removed ones) and every group
// added or moved to another channel. The caller fetches their counts; it
// also fetches the ungrouped agents when channels is not empty.
func AffectedGroups(r *Report, head *spec.State) (groups []string, channels []string) {
	for _, a := range affected(r, head) {
		channels = append(channels, a.channel)
		groups = append(groups, a.groups...)
	}
	slices.Sort(groups)
	return slices.Compact(groups), channels
}

type affectedChannel struct {
	channel string
	groups  []string
	whole   bool // the channel itself changed: its ungrouped agents move too
}

func affected(r *Report, head *spec.State) []affectedChannel {
	if head == nil || len(r.HeadErrors) > 0 {
		return nil
	}
	changed := map[string]bool{}
	for _, c := range r.Channels {
		if c.Change != Removed && head.Channel(c.Name) != nil {
			changed[c.Name] = true
		}
	}
	moved := map[string]bool{}
	for _, g := range r.Groups {
		if g.Change == Added || slices.Contains(g.Fields, "channel") {
			moved[g.Name] = true
		}
	}
	byChannel := map[string]*affectedChannel{}
	for name := range changed {
		byChannel[name] = &affectedChannel{channel: name, whole: true}
	}
	for _, g := range head.Groups {
		if !changed[g.Channel] && !moved[g.Name] {
			continue
		}
		if head.Channel(g.Channel) == nil {
			continue
		}
		a := byChannel[g.Channel]
		if a == nil {
			a = &affectedChannel{channel: g.Channel}
			byChannel[g.Channel] = a
		}
		a.groups = append(a.groups, g.Name)
	}
	out := make([]affectedChannel, 0, len(byChannel))
	for _, a := range byChannel {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b affectedChannel) int { return cmp.Compare(a.channel, b.channel) })
	return out
}

// AddFleet sets r.Fleet from the counts of the affected agents. base and
// head are the states Compare was given; now places the windows.
func AddFleet(r *Report, base, head *spec.State, fc FleetCounts, now time.Time) {
	if base == nil {
		base = &spec.State{}
	}
	f := &FleetImpact{Server: fc.Server, Time: fc.Time.UTC(), Channels: []ChannelImpact{}, ServedRevision: fc.ServedRevision,
		// Only a Git source's revision is a commit id; a folder's
		// ("sha256:…") names content and cannot be compared with a commit.
		NotBase: fc.ServedRevision != "" && fc.BaseRevision != "" && !strings.Contains(fc.ServedRevision, ":") &&
			fc.ServedRevision != fc.BaseRevision}
	r.Fleet = f
	if len(r.HeadErrors) > 0 {
		f.Summary = "merging this moves no agents: head is invalid, and the version server never serves an invalid revision"
		return
	}
	for _, a := range affected(r, head) {
		c := head.Channel(a.channel)
		ci := ChannelImpact{Name: a.channel, Target: versionOrNone(head, c), Critical: c.Critical, Stages: []StageImpact{}}
		if bc := base.Channel(a.channel); bc != nil {
			ci.From = versionOrNone(base, bc)
		}
		stages := head.RolloutStages(a.channel)
		ci.Staged = stages != nil
		if stages == nil {
			gs := slices.Clone(a.groups)
			slices.SortFunc(gs, func(x, y string) int {
				return cmp.Or(cmp.Compare(head.Group(x).Order, head.Group(y).Order), cmp.Compare(x, y))
			})
			stages = []spec.ResolvedStage{{Stage: spec.Stage{Groups: gs}}}
		}
		firstStage := -1 // the first stage with a moving agent
		for i, st := range stages {
			si := StageImpact{Index: i, Implicit: st.Implicit, Groups: []GroupImpact{}}
			if ci.Staged {
				if !st.Canaries.IsZero() {
					si.Canaries = st.Canaries.String()
				}
				if st.BakeTime > 0 {
					si.BakeTime = shortDuration(st.BakeTime)
				}
			}
			for _, name := range st.Groups {
				if !slices.Contains(a.groups, name) {
					continue
				}
				g := head.Group(name)
				gi := groupImpact(base, g, ci.Target, c.Critical, fc.Groups[name], now)
				ci.Agents += gi.Agents
				ci.Moving += gi.Moving
				if gi.Moving > 0 {
					ci.Groups++
					if firstStage < 0 {
						firstStage = i
					}
					if i == firstStage {
						ci.First = earlier(ci.First, gi.Window)
					}
				}
				gi.AfterEarlierStages = ci.Staged && firstStage >= 0 && i > firstStage
				si.Groups = append(si.Groups, gi)
			}
			if len(si.Groups) > 0 {
				ci.Stages = append(ci.Stages, si)
			}
		}
		if vs := fc.Ungrouped[a.channel]; a.whole && len(vs) > 0 {
			u := &UngroupedPart{ByVersion: vs}
			for v, n := range vs {
				u.Agents += n
				if ci.From != ci.Target && movesTo(v, ci.Target) {
					u.Moving += n
				}
			}
			ci.Other = u
			ci.Agents += u.Agents
			ci.Moving += u.Moving
		}
		f.Agents += ci.Agents
		f.Moving += ci.Moving
		f.Groups += ci.Groups
		f.FirstWindow = earlier(f.FirstWindow, ci.First)
		f.Channels = append(f.Channels, ci)
	}
	f.Summary = fleetSentence(f, now)
}

func groupImpact(base *spec.State, g *spec.Group, target string, critical bool, vs Versions, now time.Time) GroupImpact {
	if vs == nil {
		vs = Versions{}
	}
	gi := GroupImpact{Name: g.Name, Timezone: g.Timezone, ByVersion: vs}
	if bg := base.Group(g.Name); bg != nil {
		if bc := base.Channel(bg.Channel); bc != nil {
			gi.From = versionOrNone(base, bc)
		}
	}
	for v, n := range gi.ByVersion {
		gi.Agents += n
		if gi.From != target && movesTo(v, target) {
			gi.Moving += n
		}
	}
	if critical {
		// A critical update skips windows: only a freeze that does not
		// allow critical updates holds it, as the server's group-scoped
		// critical answer and the decision chain do.
		at, fz, held := calendar.CriticalPasses(g, now)
		if !held {
			gi.When, gi.Rule, gi.Reason = "critical", reconcile.RuleCritical, "a critical update skips windows, and no freeze forbids it now"
			if f, ok := calendar.Frozen(g, now); ok {
				gi.Reason = fmt.Sprintf("a critical update skips windows, and freeze %q allows critical updates", f.Name)
			}
			return gi
		}
		gi.When, gi.Rule, gi.HeldUntil = "held", "CriticalHeldByFreeze", at.UTC()
		// The server holds it for requests that name the group: upkeep's
		// updaters (Upkeep-Group) and the group-scoped channel. Teleport's
		// own updaters asking the plain channel route name no group.
		gi.Reason = fmt.Sprintf("freeze %q does not allow critical updates; until %s the server answers critical \"no\" to upkeep's updaters of the group and on the group-scoped channel %s%s (Teleport's updaters asking the plain channel route still get \"yes\")",
			fz.Name, at.UTC().Format(time.RFC3339), spec.GroupChannelPrefix, g.Name)
		return gi
	}
	gi.When = "none"
	if g.Location == nil {
		return gi // head is invalid and says so
	}
	need := effectiveUpdateDuration(g)
	pub := schedule.Publish(g, now, WindowHorizon)
	if r := unusualRule(pub); r != nil {
		gi.Rule, gi.Reason = r.Rule, r.Reason
	}
	iv, ok := pub.NextUsable(now, need)
	if !ok {
		if pub.Rule != schedule.RuleNothingOpen {
			gi.Rule = pub.Rule
			gi.Reason = pub.Reason + "; no window there is long enough for the update (" + shortDuration(need) + ")"
		}
		return gi
	}
	gi.Window = &GroupWindow{Group: g.Name, Timezone: g.Timezone, Interval: iv}
	gi.When = "window"
	if !iv.Start.After(now) {
		gi.When = "now"
	}
	return gi
}

// movesTo reports whether an agent on version v is moved by a target: a
// target that is a version, and that v is not.
func movesTo(v, target string) bool {
	if target == "" || target == spec.NoVersion {
		return false
	}
	if v == target {
		return false
	}
	a, err1 := semver.NewVersion(v)
	b, err2 := semver.NewVersion(target)
	return err1 != nil || err2 != nil || !a.Equal(b)
}

func versionOrNone(st *spec.State, c *spec.Channel) string {
	if v := st.ResolvedVersion(c); v != "" {
		return v
	}
	if c.Version == spec.NoVersion {
		return spec.NoVersion
	}
	return ""
}

func earlier(a, b *GroupWindow) *GroupWindow {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.Start.Before(a.Start):
		return b
	}
	return a
}

// fleetSentence is the summary people read first.
func fleetSentence(f *FleetImpact, now time.Time) string {
	switch {
	case len(f.Channels) == 0:
		return "merging this moves no agents: it changes no channel or group that agents follow"
	case f.Agents == 0:
		return "merging this moves no agents: no agent of the affected groups has reported to " + f.Server
	case f.Moving == 0:
		return fmt.Sprintf("merging this moves no agents: the %s of the affected groups keep their version", countOf(f.Agents, "agent"))
	}
	s := "merging this moves " + countOf(f.Moving, "agent")
	if f.Groups > 0 {
		s += " in " + countOf(f.Groups, "group")
	}
	atOnce, held, first := criticalMoves(f)
	switch {
	case atOnce && held > 0:
		s += ", at once (critical: windows are skipped), except in " + countOf(held, "group") + " held by a freeze until " + first.stamp()
	case atOnce:
		s += ", at once (critical: windows are skipped)"
	case held > 0:
		s += ", critical but held by a freeze until " + first.stamp()
		if held > 1 {
			s += " (the earliest of " + countOf(held, "group") + ")"
		}
	case f.FirstWindow != nil:
		s += ", first window " + f.FirstWindow.ShortFrom(now)
	case f.Groups > 0:
		s += ", but no group has a usable window in the schedule the server serves"
	}
	return s
}

// heldGroup is a group whose critical update a freeze holds back.
type heldGroup struct {
	until    time.Time
	timezone string
}

// stamp is "Mon 2027-01-04 00:00 CET" in the group's zone.
func (h heldGroup) stamp() string {
	return h.until.In(location(h.timezone)).Format("Mon 2006-01-02 15:04 MST")
}

// criticalMoves says whether some moving agent of a critical channel
// updates at once, how many groups with moving agents a freeze holds
// back, and the one released first.
func criticalMoves(f *FleetImpact) (atOnce bool, held int, first heldGroup) {
	for _, c := range f.Channels {
		if !c.Critical || c.Moving == 0 {
			continue
		}
		if c.Other != nil && c.Other.Moving > 0 {
			atOnce = true // agents without a group have no freezes
		}
		for _, st := range c.Stages {
			for _, g := range st.Groups {
				switch {
				case g.Moving == 0:
				case g.When == "held":
					if held == 0 || g.HeldUntil.Before(first.until) {
						first = heldGroup{until: g.HeldUntil, timezone: g.Timezone}
					}
					held++
				default:
					atOnce = true
				}
			}
		}
	}
	return atOnce, held, first
}

// countOf is "1 agent", "1,240 agents".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// versionCounts is "17.3.0 ×790, 17.4.0 ×10", in version order.
func versionCounts(vs Versions) string {
	if len(vs) == 0 {
		return "no agents"
	}
	keys := slices.Collect(maps.Keys(vs))
	slices.SortFunc(keys, report.CompareVersions)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " ×" + thousands(vs[k])
	}
	return strings.Join(parts, ", ")
}

// stageTitle is "stage 0 (1 canary, bake 2h)", "stage 2 (implicit)", or
// "all at once" for a channel without a rollout.
func stageTitle(c ChannelImpact, s StageImpact) string {
	if !c.Staged {
		return "all at once"
	}
	var set []string
	if s.Implicit {
		set = append(set, "implicit: the channel's other groups")
	}
	if s.Canaries != "" {
		if s.Canaries == "1" {
			set = append(set, "1 canary")
		} else {
			set = append(set, s.Canaries+" canaries")
		}
	}
	if s.BakeTime != "" {
		set = append(set, "bake "+s.BakeTime)
	}
	t := fmt.Sprintf("stage %d", s.Index) // from 0, as the server and the engine number them
	if len(set) > 0 {
		t += " (" + strings.Join(set, ", ") + ")"
	}
	return t
}

// whenText is a group's first usable window for people.
func whenText(g GroupImpact) string {
	var s string
	switch g.When {
	case "critical":
		s = "at once (critical: windows are skipped)"
	case "held":
		s = "held by a freeze until " + heldGroup{until: g.HeldUntil, timezone: g.Timezone}.stamp() + ", then at once (critical) [" + g.Rule + "]: " + g.Reason
	case "none":
		s = "none"
		if g.Rule != "" {
			s += " [" + g.Rule + "]: " + g.Reason
		}
	case "now":
		s = "now, a usable window is open: " + formatInterval(g.Window.Interval, g.Timezone)
	default:
		s = g.Window.Short() + ": " + formatInterval(g.Window.Interval, g.Timezone)
		if g.Rule != "" {
			s += " [" + g.Rule + "]: " + g.Reason
		}
	}
	if g.AfterEarlierStages {
		s += "; moves only after the earlier stages"
	}
	return s
}

// moves is "1 moves", "3 move".
func moves(n int) string {
	if n == 1 {
		return "1 moves"
	}
	return thousands(n) + " move"
}

// channelLine is "stable/cloud 17.3.0 → 17.4.0: 5 of 6 agents move, in
// 3 groups"; name is the channel's name as the format writes it.
func channelLine(name string, c ChannelImpact) string {
	s := name + " " + arrow(orNone(c.From), orNone(c.Target)) + ": "
	if c.Moving == 0 {
		return s + "no agent moves (" + countOf(c.Agents, "agent") + ")"
	}
	verb := "move"
	if c.Moving == 1 {
		verb = "moves"
	}
	s += fmt.Sprintf("%s of %s %s", thousands(c.Moving), countOf(c.Agents, "agent"), verb)
	if c.Groups > 0 {
		s += ", in " + countOf(c.Groups, "group")
	}
	return s
}

// notBaseNote says that the server does not serve base.
func notBaseNote(f *FleetImpact) string {
	rev := f.ServedRevision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "note: the server serves revision " + rev + ", not base: the counts are of the agents as they are now, some perhaps still moving to what it serves"
}
