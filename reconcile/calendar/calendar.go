// Package calendar turns a group's weekly maintenance windows and freezes into
// absolute UTC intervals. It is pure: every function takes the time it works
// from, so tests use a fixed clock.
//
// # Wall clock and daylight saving time
//
// A window (spec.Window) is written in the group's IANA timezone: on each of
// its days it starts at a wall-clock time (Start, an offset from local
// midnight) and lasts Duration of elapsed time. Daylight saving changes are
// resolved by these rules:
//
//   - A window starts at its wall-clock time on its local day.
//   - If that wall time does not exist on that day (the clocks spring forward
//     over it, e.g. 02:30 in Europe/Berlin on the last Sunday of March), the
//     window starts at the first instant after the gap: the moment of the
//     change, which reads 03:00 local there.
//   - If that wall time occurs twice (the clocks fall back), the window starts
//     at the first occurrence (the one at the summer offset).
//   - Duration is elapsed time: a 4h window is always 4h long, so its local
//     end time shifts by the size of the change when a change falls inside it.
//
// Gaps and repeats are found explicitly from the zone's transitions
// (time.Time.ZoneBounds); time.Date's unspecified choice for such wall times
// is never relied on.
//
// # Freezes and merging
//
// A freeze (spec.Freeze) covers [Start, End) in absolute time. Freezes are cut
// out of windows: a window partly inside a freeze keeps its unfrozen parts.
// Windows that overlap or touch are merged into one interval, so an interval
// is the span during which some window is open.
package calendar

import (
	"slices"
	"time"

	"upkeep.dev/upkeep/spec"
)

// Interval is a half-open span of absolute time [Start, End), in UTC.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"stop"`
}

// Contains reports whether t lies in [Start, End).
func (iv Interval) Contains(t time.Time) bool {
	return !t.Before(iv.Start) && t.Before(iv.End)
}

// Duration is End minus Start.
func (iv Interval) Duration() time.Duration { return iv.End.Sub(iv.Start) }

// Windows returns the group's maintenance windows that overlap [from,
// from+horizon), in order, with freezes cut out and overlaps merged, in UTC.
//
// A window already open at from is included with its real start, and the
// last window keeps its real end even past the horizon. Only window
// occurrences that themselves overlap [from, from+horizon) are considered, so
// a merged interval never reaches back before the start of the first
// occurrence open at from. A group without windows yields nil.
func Windows(g *spec.Group, from time.Time, horizon time.Duration) []Interval {
	if g == nil || len(g.Windows) == 0 || horizon <= 0 {
		return nil
	}
	loc := location(g)
	to := from.Add(horizon)

	// Local days whose occurrences can overlap the range: an occurrence open
	// at from started less than the longest duration before it, on its day
	// or (for starts of 24h or more) days before; one more day covers a
	// start that a DST gap pushed past midnight.
	var longest, maxStart, minStart time.Duration
	for i, w := range g.Windows {
		longest = max(longest, w.Duration)
		if i == 0 || w.Start > maxStart {
			maxStart = w.Start
		}
		if i == 0 || w.Start < minStart {
			minStart = w.Start
		}
	}
	first := civilDate(from.Add(-longest), loc).AddDate(0, 0, -1-daysFloor(maxStart))
	last := civilDate(to, loc).AddDate(0, 0, daysCeil(-minStart))

	out := make([]Interval, 0, (int(last.Sub(first)/(24*time.Hour))+1)*len(g.Windows))
	for day := first; !day.After(last); day = day.AddDate(0, 0, 1) {
		wd := day.Weekday()
		for _, w := range g.Windows {
			if w.Duration <= 0 || !onDay(w.Days, wd) {
				continue
			}
			start := resolveWall(loc, day.Add(w.Start))
			end := start.Add(w.Duration)
			if end.After(from) && start.Before(to) {
				out = append(out, Interval{Start: start.UTC(), End: end.UTC()})
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	out = merge(out)
	for _, f := range g.Freezes {
		out = cut(out, f.Start, f.End)
	}
	// Cutting may leave pieces that no longer overlap the range.
	out = slices.DeleteFunc(out, func(iv Interval) bool {
		return !iv.End.After(from) || !iv.Start.Before(to)
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// Open returns the interval of ws that contains t.
func Open(ws []Interval, t time.Time) (Interval, bool) {
	i := firstEndingAfter(ws, t)
	if i < len(ws) && ws[i].Contains(t) {
		return ws[i], true
	}
	return Interval{}, false
}

// Next returns the first interval of ws that starts after t (an interval
// open at t is not "next": status pages show that one with Open, by its
// end, and this one as the next window).
func Next(ws []Interval, t time.Time) (Interval, bool) {
	for _, iv := range ws[firstEndingAfter(ws, t):] {
		if iv.Start.After(t) {
			return iv, true
		}
	}
	return Interval{}, false
}

// FirstFit returns the first interval of ws in which a task needing need,
// started at t or at the interval's start (whichever is later), ends inside
// the interval. It is either open at t with at least need left, or starts
// after t and lasts at least need.
func FirstFit(ws []Interval, t time.Time, need time.Duration) (Interval, bool) {
	for _, iv := range ws[firstEndingAfter(ws, t):] {
		begin := iv.Start
		if t.After(begin) {
			begin = t
		}
		if iv.End.Sub(begin) >= need {
			return iv, true
		}
	}
	return Interval{}, false
}

// Frozen returns the group's freeze in effect at t. When freezes overlap at
// t, the most restrictive wins: one that does not allow critical updates over
// one that does, then the one ending last.
func Frozen(g *spec.Group, t time.Time) (spec.Freeze, bool) {
	var best spec.Freeze
	found := false
	if g == nil {
		return best, false
	}
	for _, f := range g.Freezes {
		if t.Before(f.Start) || !t.Before(f.End) {
			continue
		}
		switch {
		case !found,
			best.AllowCritical && !f.AllowCritical,
			best.AllowCritical == f.AllowCritical && f.End.After(best.End):
			best, found = f, true
		}
	}
	return best, found
}

// CriticalHeld returns the freeze that holds a critical update back at t:
// the freeze in effect (Frozen) when it does not allow critical updates.
// The version server then answers "no" to the group's critical request
// and the decision chain waits (both name the rule CriticalHeldByFreeze).
func CriticalHeld(g *spec.Group, t time.Time) (spec.Freeze, bool) {
	f, ok := Frozen(g, t)
	if !ok || f.AllowCritical {
		return spec.Freeze{}, false
	}
	return f, true
}

// CriticalPasses returns the first instant at or after t at which no freeze
// holds a critical update back (CriticalHeld), and the last freeze that held
// it (held is false, and at is t, when none holds it at t). Freezes that
// follow one another without a gap hold it back together.
func CriticalPasses(g *spec.Group, t time.Time) (at time.Time, last spec.Freeze, held bool) {
	at = t
	if g == nil {
		return at, last, false
	}
	// Each step moves at to the end of a freeze containing it, so strictly
	// later, and past that freeze for good: at most one step per freeze.
	for range len(g.Freezes) {
		f, ok := CriticalHeld(g, at)
		if !ok {
			break
		}
		at, last, held = f.End, f, true
	}
	return at, last, held
}

// firstEndingAfter is the index of the first interval of the sorted,
// disjoint ws that ends after t.
func firstEndingAfter(ws []Interval, t time.Time) int {
	i, _ := slices.BinarySearchFunc(ws, t, func(iv Interval, t time.Time) int {
		if iv.End.After(t) {
			return 1
		}
		return -1
	})
	return i
}

func location(g *spec.Group) *time.Location {
	if g.Location != nil {
		return g.Location
	}
	if g.Timezone != "" {
		if loc, err := time.LoadLocation(g.Timezone); err == nil {
			return loc
		}
	}
	return time.UTC
}

func onDay(days []time.Weekday, wd time.Weekday) bool {
	return len(days) == 0 || slices.Contains(days, wd)
}

// civilDate is the local calendar date of t in loc, as midnight UTC (civil
// dates are stepped in UTC, where every day has 24 hours).
func civilDate(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysCeil is the number of whole days needed to cover d (0 for d <= 0).
func daysCeil(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// daysFloor is the number of whole days in d (0 for d <= 0).
func daysFloor(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(d / (24 * time.Hour))
}

// zonePeriod is a span [start, end) of constant UTC offset in a location;
// zero start or end means unbounded.
type zonePeriod struct {
	start, end time.Time
	offset     time.Duration
}

// resolveWall returns the instant at which loc's clocks read wall (a wall
// clock reading expressed as a UTC time), by the package's DST rules: the
// first occurrence when the reading repeats, the end of the gap when it is
// skipped.
func resolveWall(loc *time.Location, wall time.Time) time.Time {
	// The instant lies within about ±16h of the reading (real offsets span
	// -12h..+14h, historic local mean times a little more); collect every
	// zone period touching that range.
	var buf [4]zonePeriod
	periods := buf[:0]
	limit := wall.Add(16 * time.Hour)
	for t := wall.Add(-16 * time.Hour).In(loc); ; {
		_, off := t.Zone()
		s, e := t.ZoneBounds()
		periods = append(periods, zonePeriod{start: s, end: e, offset: time.Duration(off) * time.Second})
		if e.IsZero() || !e.Before(limit) || len(periods) == cap(buf) {
			break
		}
		t = e
	}

	// Each period whose offset maps the reading into the period itself is an
	// occurrence; periods are in order, so the first one found is earliest.
	for _, p := range periods {
		u := wall.Add(-p.offset)
		if (p.start.IsZero() || !u.Before(p.start)) && (p.end.IsZero() || u.Before(p.end)) {
			return u
		}
	}
	// No occurrence: the reading falls in a gap [T+before, T+after) at a
	// transition T where the offset grows; the first instant after it is T.
	for i := 1; i < len(periods); i++ {
		tr := periods[i].start
		if !wall.Before(tr.Add(periods[i-1].offset)) && wall.Before(tr.Add(periods[i].offset)) {
			return tr
		}
	}
	// Unreachable for real zone data; keep a defined answer all the same.
	return time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), wall.Nanosecond(), loc)
}

// merge sorts ivs by start and joins intervals that overlap or touch. It
// reuses ivs' storage.
func merge(ivs []Interval) []Interval {
	slices.SortFunc(ivs, func(a, b Interval) int { return a.Start.Compare(b.Start) })
	out := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &out[len(out)-1]
		if iv.Start.After(last.End) {
			out = append(out, iv)
			continue
		}
		if iv.End.After(last.End) {
			last.End = iv.End
		}
	}
	return out
}

// cut removes [from, to) from the sorted, disjoint ivs, keeping the parts of
// each interval before and after it.
func cut(ivs []Interval, from, to time.Time) []Interval {
	i := firstEndingAfter(ivs, from)
	if !to.After(from) || i == len(ivs) || !ivs[i].Start.Before(to) {
		return ivs // nothing to cut: the common case, without copying
	}
	out := ivs[:0:0]
	for _, iv := range ivs {
		if !iv.End.After(from) || !iv.Start.Before(to) {
			out = append(out, iv)
			continue
		}
		if iv.Start.Before(from) {
			out = append(out, Interval{Start: iv.Start, End: from.UTC()})
		}
		if iv.End.After(to) {
			out = append(out, Interval{Start: to.UTC(), End: iv.End})
		}
	}
	return out
}
