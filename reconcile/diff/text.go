package diff

import (
	"bufio"
	"fmt"
	"io"
	"slices"

	"upkeep.dev/upkeep/reconcile/calendar"
)

// changeMark is the one-character sign of a change in text output.
var changeMark = map[Change]string{Added: "+", Removed: "-", Modified: "~", Unchanged: "!"}

// Text writes the report for a terminal.
func Text(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format+"\n", a...) }

	p("upkeep diff: %s", sidesTitle(r))
	if r.Fleet != nil {
		p("%s", capitalize(r.Fleet.Summary))
	}
	p("%s", r.Summary.Text)
	if len(r.BaseErrors) > 0 {
		p("note: base is itself invalid (%s); compared anyway", plural(len(r.BaseErrors), "error"))
	}

	if len(r.ControlPlanes) > 0 {
		p("\nControl planes:")
		for _, d := range r.ControlPlanes {
			switch d.Change {
			case Added:
				p("  + %s: %s", d.Name, d.Head.Version)
				if d.Head.Agents != "" {
					p("      agents: %s", d.Head.Agents)
				}
			case Removed:
				p("  - %s: was %s", d.Name, d.Base.Version)
			default:
				p("  ~ %s: %s", d.Name, versionLine(d.Base.Version, d.Head.Version, d.Movement, ""))
				if d.Base.Agents != d.Head.Agents {
					p("      agents: %s", arrow(orNone(d.Base.Agents), orNone(d.Head.Agents)))
				}
			}
			for _, inv := range d.Invalidated {
				p("      now invalid: channel %s at %s (%s): %s", inv.Channel, inv.Version, inv.Pos, inv.Reason)
			}
		}
	}

	if len(r.Channels) > 0 {
		p("\nChannels:")
		for _, d := range r.Channels {
			switch d.Change {
			case Added:
				p("  + %s: %s, %s, critical %s, control plane %s", d.Name, versionOf(d.Head), modeOf(d.Head), yesNo(d.Head.Critical), d.Head.ControlPlane)
				if d.Head.Rollout != "" {
					p("      rollout: %s", d.Head.Rollout)
				}
				if d.Head.Default {
					p("      answers as Teleport's default channel")
				}
			case Removed:
				p("  - %s: was %s, %s, critical %s", d.Name, versionOf(d.Base), modeOf(d.Base), yesNo(d.Base.Critical))
			case Unchanged:
				p("  ! %s: %s (unchanged, now invalid)", d.Name, versionOf(d.Head))
			default:
				p("  ~ %s: %s", d.Name, versionLine(versionOf(d.Base), versionOf(d.Head), d.Movement, d.Cause))
				if d.Base.ControlPlane != d.Head.ControlPlane {
					p("      control plane: %s", arrow(d.Base.ControlPlane, d.Head.ControlPlane))
				}
				if d.ModeSwitched {
					p("      mode: %s", arrow(modeOf(d.Base), modeOf(d.Head)))
				} else if !d.Head.Follow && d.Base.Pinned != d.Head.Pinned && d.Movement == Same {
					p("      pin: %s", arrow(d.Base.Pinned, d.Head.Pinned))
				}
				if d.CriticalToggled {
					p("      critical: %s", arrow(yesNo(d.Base.Critical), yesNo(d.Head.Critical)))
				}
				if d.Base.Default != d.Head.Default {
					p("      Teleport's default channel: %s", arrow(yesNo(d.Base.Default), yesNo(d.Head.Default)))
				}
				if d.RolloutChanged {
					p("      rollout: %s", arrow(orNone(d.Base.Rollout), orNone(d.Head.Rollout)))
				}
			}
			for _, e := range d.Violations {
				p("      error: %s", e)
			}
		}
	}

	if len(r.Groups) > 0 {
		p("\nGroups:")
		for _, d := range r.Groups {
			switch d.Change {
			case Added:
				p("  + %s: channel %s, timezone %s, order %d", d.Name, d.Head.Channel, d.Head.Timezone, d.Head.Order)
				p("      windows: %s", listOrNone(d.Head.Windows))
				if len(d.Head.Freezes) > 0 {
					p("      freezes: %s", listOrNone(d.Head.Freezes))
				}
			case Removed:
				p("  - %s: was on channel %s", d.Name, d.Base.Channel)
			default:
				p("  ~ %s:", d.Name)
				for _, f := range d.Fields {
					b, h := groupField(d.Base, f), groupField(d.Head, f)
					p("      %s: %s", f, arrow(b, h))
				}
			}
			if showsSchedule(d) {
				if d.Base != nil {
					writeTextWindows(bw, "before", d.Base.Timezone, d.NextBefore, d.BeforeRule)
				}
				if d.Head != nil {
					writeTextWindows(bw, "after", d.Head.Timezone, d.NextAfter, d.AfterRule)
				}
			}
		}
	}

	if r.Fleet != nil {
		writeTextFleet(bw, r.Fleet)
	}

	if len(r.Updaters) > 0 {
		p("\nUpdaters now, under head (healthy agents on base's version):")
		for _, u := range r.Updaters {
			p("  %s on %s: %s [%s/%s]", u.Group, u.Channel, actionText(u), u.Rule, u.Reason)
			p("      %s", u.Message)
		}
	}

	if len(r.HeadErrors) > 0 && r.Summary.Changed {
		p("\nUpdaters: no change; %s", invalidHeadNote)
	}

	if len(r.HeadErrors) > 0 {
		p("\nErrors in head (%d):", len(r.HeadErrors))
		for _, e := range r.HeadErrors {
			p("  %s", e)
		}
	}
	return bw.Flush()
}

func writeTextWindows(w io.Writer, when, tz string, ivs []calendar.Interval, rule *ScheduleRule) {
	fmt.Fprintf(w, "      next windows %s (%s):\n", when, tz)
	switch {
	case rule != nil:
		fmt.Fprintf(w, "        %s\n", ruleText(rule, len(ivs) > 0))
	case len(ivs) == 0:
		fmt.Fprintf(w, "        none within %s\n", horizonText)
	}
	for _, iv := range ivs {
		fmt.Fprintf(w, "        %s\n", formatInterval(iv, tz))
	}
}

// invalidHeadNote says why an invalid head changes nothing for updaters.
const invalidHeadNote = "the version server never serves an invalid revision and keeps serving the last valid one"

// horizonText is WindowHorizon for people.
const horizonText = "14 days"

// ruleText says why a side's windows are what they are, for people:
// "FirstWindowAfterFreeze: freeze … covers …" above the window, or
// "none (NothingOpen: the group has no windows; …)".
func ruleText(r *ScheduleRule, windows bool) string {
	if windows {
		return r.Rule + ": " + r.Reason
	}
	return "none (" + r.Rule + ": " + r.Reason + ")"
}

func sidesTitle(r *Report) string {
	b, h := r.Base, r.Head
	if b == "" {
		b = "base"
	}
	if h == "" {
		h = "head"
	}
	return b + " → " + h
}

// versionLine is "17.1.0 → 17.2.0 (upgrade; pin changed)" or "17.1.0 (unchanged)".
func versionLine(base, head string, m Movement, cause string) string {
	if m == Same {
		return head + " (version unchanged)"
	}
	why := string(m)
	if cause != "" {
		why += "; " + cause
	}
	return base + " → " + head + " (" + why + ")"
}

// groupField is one field of a group side, for people.
func groupField(s *GroupSide, field string) string {
	switch field {
	case "channel":
		return s.Channel
	case "timezone":
		return s.Timezone
	case "windows":
		return listOrNone(s.Windows)
	case "freezes":
		return listOrNone(s.Freezes)
	case "updateDuration":
		return s.UpdateDuration
	case "order":
		return fmt.Sprint(s.Order)
	case "maxConcurrent":
		if s.MaxConcurrent == "" {
			return "unlimited"
		}
		return s.MaxConcurrent
	}
	return ""
}

// scheduleFields are the group fields that move its windows.
var scheduleFields = []string{"timezone", "windows", "freezes", "updateDuration"}

func showsSchedule(d GroupDiff) bool {
	if d.Change == Added || d.Change == Removed {
		return true
	}
	return slices.ContainsFunc(d.Fields, func(f string) bool { return slices.Contains(scheduleFields, f) })
}

// writeTextFleet writes the agents merging moves, per channel and stage.
func writeTextFleet(w io.Writer, f *FleetImpact) {
	fmt.Fprintf(w, "\nAgents (from %s at %s):\n", f.Server, f.Time.Format("2006-01-02 15:04 MST"))
	if f.NotBase {
		fmt.Fprintf(w, "  %s\n", notBaseNote(f))
	}
	if len(f.Channels) == 0 {
		fmt.Fprintf(w, "  %s\n", f.Summary)
	}
	for _, c := range f.Channels {
		fmt.Fprintf(w, "  %s\n", channelLine(c.Name, c))
		for _, s := range c.Stages {
			fmt.Fprintf(w, "    %s:\n", stageTitle(c, s))
			for _, g := range s.Groups {
				fmt.Fprintf(w, "      %s: %s (%s), %s; first usable window %s\n", g.Name, countOf(g.Agents, "agent"),
					versionCounts(g.ByVersion), moves(g.Moving), whenText(g))
			}
		}
		if u := c.Other; u != nil {
			fmt.Fprintf(w, "    without a group: %s (%s), %s on their own schedules\n", countOf(u.Agents, "agent"),
				versionCounts(u.ByVersion), moves(u.Moving))
		}
	}
}
