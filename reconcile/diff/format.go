package diff

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/spec"
)

var weekdayAbbrev = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// describeWindow writes a weekly window the way the repository says it:
// "Tue,Thu 02:00 for 4h", "every day 22:30 for 1h30m".
func describeWindow(w spec.Window) string {
	days := "every day"
	if len(w.Days) > 0 {
		names := make([]string, len(w.Days))
		for i, d := range w.Days {
			names[i] = weekdayAbbrev[d%7]
		}
		days = strings.Join(names, ",")
	}
	start := fmt.Sprintf("%02d:%02d", int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute))
	return days + " " + start + " for " + shortDuration(w.Duration)
}

func describeFreeze(f spec.Freeze) string {
	s := fmt.Sprintf("%s %s until %s", f.Name, f.Start.Format(time.RFC3339), f.End.Format(time.RFC3339))
	if f.AllowCritical {
		s += " (critical allowed)"
	}
	return s
}

// shortDuration drops the zero units time.Duration.String keeps: "4h", "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var (
	locMu    sync.Mutex
	locCache = map[string]*time.Location{}
)

// location loads an IANA zone once; an unknown name falls back to UTC
// (head is invalid then, and its errors say so).
func location(name string) *time.Location {
	locMu.Lock()
	defer locMu.Unlock()
	if l, ok := locCache[name]; ok {
		return l
	}
	l, err := time.LoadLocation(name)
	if err != nil || name == "" {
		l = time.UTC
	}
	locCache[name] = l
	return l
}

// formatInterval shows a window in its group's zone and in UTC:
// "Tue 2026-11-24 02:00–06:00 CET (01:00–05:00 UTC)".
func formatInterval(iv calendar.Interval, tz string) string {
	loc := location(tz)
	return span(iv.Start.In(loc), iv.End.In(loc)) + " (" + clockSpan(iv.Start.UTC(), iv.End.UTC()) + ")"
}

func span(start, end time.Time) string {
	return start.Format("Mon 2006-01-02 ") + clockSpan(start, end)
}

// clockSpan is "02:00–06:00 CET", or with the end's weekday when the window
// ends on another day.
func clockSpan(start, end time.Time) string {
	ey, em, ed := end.Date()
	sy, sm, sd := start.Date()
	endFmt := "15:04 MST"
	if ey != sy || em != sm || ed != sd {
		endFmt = "Mon 15:04 MST"
	}
	if start.Format("MST") != end.Format("MST") || endFmt != "15:04 MST" {
		return start.Format("15:04 MST") + " – " + end.Format(endFmt)
	}
	return start.Format("15:04") + "–" + end.Format(endFmt)
}

// versionOf is a channel side's resolved version for people.
func versionOf(s *ChannelSide) string {
	switch {
	case s == nil:
		return ""
	case s.Version != "":
		return s.Version
	case s.Pinned == spec.NoVersion:
		return "none"
	}
	return "unresolved"
}

// modeOf is "pinned" or "follows <cp>".
func modeOf(s *ChannelSide) string {
	if s.Follow {
		return "follows " + s.ControlPlane
	}
	return "pinned"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// arrow is "a → b", or just "a" when they are equal.
func arrow(a, b string) string {
	if a == b {
		return a
	}
	return a + " → " + b
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// formatInstant shows a time in a group's zone and in UTC:
// "Tue 2026-11-24 02:00 CET (01:00 UTC)".
func formatInstant(t time.Time, tz string) string {
	local, utc := t.In(location(tz)), t.UTC()
	utcFmt := "15:04 MST"
	if local.YearDay() != utc.YearDay() {
		utcFmt = "Mon 15:04 MST"
	}
	return local.Format("Mon 2006-01-02 15:04 MST") + " (" + utc.Format(utcFmt) + ")"
}

// actionText is an updater's action for people: "Update now", "Wait until
// Tue 2026-11-24 02:00 CET (01:00 UTC)", "Refuse".
func actionText(u UpdaterPreview) string {
	switch {
	case u.Action == reconcile.ActionUpdate:
		return "Update now"
	case !u.RecheckAt.IsZero():
		return string(u.Action) + " until " + formatInstant(u.RecheckAt, u.Timezone)
	}
	return string(u.Action)
}

// describeRollout is a rollout for people, on one line: each stage's
// groups and the settings it does not leave at their defaults, then the
// implicit last stage and resume, e.g. "eu-canary (1 canary, bake 2h);
// us-prod, eu-prod (10% canaries, success 95%, failure 2%); then the
// channel's other groups; resume after 2026-12-03T10:00:00Z". "" for nil.
func describeRollout(ro *spec.Rollout) string {
	if ro == nil {
		return ""
	}
	var stages []string
	for _, st := range ro.Stages {
		var set []string
		switch {
		case st.Canaries.IsZero():
		case !st.Canaries.IsPercent && st.Canaries.Count == 1:
			set = append(set, "1 canary")
		default:
			set = append(set, st.Canaries.String()+" canaries")
		}
		if st.BakeTime > 0 {
			set = append(set, "bake "+shortDuration(st.BakeTime))
		}
		if st.SuccessThreshold != spec.DefaultSuccessThreshold {
			set = append(set, "success "+st.SuccessThreshold.String())
		}
		if st.FailureThreshold != spec.DefaultFailureThreshold {
			set = append(set, "failure "+st.FailureThreshold.String())
		}
		s := strings.Join(st.Groups, ", ")
		if len(set) > 0 {
			s += " (" + strings.Join(set, ", ") + ")"
		}
		stages = append(stages, s)
	}
	stages = append(stages, "then the channel's other groups")
	if !ro.Resume.IsZero() {
		stages = append(stages, "resume after "+ro.Resume.UTC().Format(time.RFC3339))
	}
	return strings.Join(stages, "; ")
}
