package schedule

import (
	"fmt"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/spec"
)

// What the version server publishes for a group.
//
// Teleport's updaters read a schedule without a window ahead as "no
// schedule": the kube updater's window trigger calls such a schedule
// stale and lets the update through at once, and Teleport blanks the
// systemd file to reset a schedule, which its teleport-upgrade script
// treats the same way. So a group's published schedule is never empty:
//
//   - Rule WindowsInHorizon: the windows overlapping [now, now+horizon),
//     freezes cut out, as calendar.Windows computes them.
//   - Rule FirstWindowAfterFreeze: when a freeze (or sparse windows) leaves
//     the horizon without a window, the horizon extends to the first
//     window found within MaxLookahead: one window, after the freeze.
//   - Rule NothingOpen: when no window opens within MaxLookahead (a group
//     without windows, or a freeze longer than that), the published
//     schedule holds one zero-length window at now+horizon. Both of
//     Teleport's readers call a schedule with a window that has not
//     ended valid, and a zero-length window is never open (the kube
//     updater's test is start < now < stop), so the updater waits:
//     the repository said when updates may happen, and "never" must not
//     read as "no schedule, update now". The placeholder moves with every
//     snapshot, so it expires only when the server stops answering, as a
//     real schedule does: an agent cut off from the server for the
//     horizon still updates by Teleport's stale-schedule rule.
//
// The group's real windows (Published.Windows) never hold the placeholder,
// so "next window" in the JSON API stays true.

// MaxLookahead bounds how far past the horizon Publish looks for the first
// window after a freeze: a year-long freeze and a yearly window are still
// found, and the search stays bounded (about a millisecond per group).
const MaxLookahead = 400 * 24 * time.Hour

// Rule names of Publish, for logs and documents.
const (
	RuleWindowsInHorizon       = "WindowsInHorizon"
	RuleFirstWindowAfterFreeze = "FirstWindowAfterFreeze"
	RuleNothingOpen            = "NothingOpen"
)

// Published is a group's schedule as the version server serves it.
type Published struct {
	// Windows are the group's real windows: those of the horizon, or the
	// first one after it (FirstWindowAfterFreeze); nil under NothingOpen.
	Windows []calendar.Interval
	// Served is what the Teleport formats carry: Windows, or the
	// zero-length placeholder under NothingOpen. Never empty.
	Served []calendar.Interval
	// Rule names the rule that produced Served.
	Rule string
	// Reason says why for people, naming the freeze that emptied the
	// horizon: upkeep diff shows it beside Rule.
	Reason string
}

// NextUsable is the group's next usable window: the first published
// window (Windows, never the placeholder) in which an update needing need
// fits, started at now or at the window's start. The JSON API's
// nextUsable, the fleet page and upkeep diff all show this one. False under
// NothingOpen, and when no published window is long enough.
func (p Published) NextUsable(now time.Time, need time.Duration) (calendar.Interval, bool) {
	return calendar.FirstFit(p.Windows, now, need)
}

// Publish computes group g's published schedule at now.
func Publish(g *spec.Group, now time.Time, horizon time.Duration) Published {
	if ws := calendar.Windows(g, now, horizon); len(ws) > 0 {
		return Published{Windows: ws, Served: ws, Rule: RuleWindowsInHorizon,
			Reason: "the windows of the next " + days(horizon)}
	}
	if ws := calendar.Windows(g, now, horizon+MaxLookahead); len(ws) > 0 {
		first := ws[:1:1]
		why := "freezes cover every window of the next " + days(horizon)
		if f, ok := lastFreezeBefore(g, now, first[0].Start); ok {
			why = fmt.Sprintf("freeze %q until %s covers every window of the next %s", f.Name, stamp(f.End), days(horizon))
		}
		return Published{Windows: first, Served: first, Rule: RuleFirstWindowAfterFreeze,
			Reason: why + "; serving the first window after it"}
	}
	at := now.Add(horizon).UTC().Truncate(time.Second) // the systemd format has whole seconds
	why := "the group has no windows"
	if hasWindows(g) {
		why = "no window opens within " + days(horizon+MaxLookahead)
		if f, ok := lastFreezeBefore(g, now, now.Add(horizon+MaxLookahead)); ok {
			why = fmt.Sprintf("freeze %q until %s leaves no window within %s", f.Name, stamp(f.End), days(horizon+MaxLookahead))
		}
	}
	return Published{Served: []calendar.Interval{{Start: at, End: at}}, Rule: RuleNothingOpen,
		Reason: why + "; serving a zero-length placeholder at " + stamp(at) + ", which never opens"}
}

// lastFreezeBefore is the freeze ending last of those that overlap [now,
// until): the one that keeps the first window from opening sooner.
func lastFreezeBefore(g *spec.Group, now, until time.Time) (spec.Freeze, bool) {
	var best spec.Freeze
	found := false
	if g == nil {
		return best, false
	}
	for _, f := range g.Freezes {
		if !f.End.After(now) || !f.Start.Before(until) {
			continue
		}
		if !found || f.End.After(best.End) {
			best, found = f, true
		}
	}
	return best, found
}

func hasWindows(g *spec.Group) bool {
	if g == nil {
		return false
	}
	for _, w := range g.Windows {
		if w.Duration > 0 {
			return true
		}
	}
	return false
}

// days is "14 days" for a whole number of days, else the duration.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day != 0 {
		return d.String()
	}
	if d == day {
		return "1 day"
	}
	return fmt.Sprintf("%d days", d/day)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
