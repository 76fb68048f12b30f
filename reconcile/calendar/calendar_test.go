package calendar

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/spec"
)

const day = 24 * time.Hour

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// win builds a window from "Mon,Thu 02:30 4h" ("* 02:30 4h" for every day).
func win(s string) spec.Window {
	f := strings.Fields(s)
	var w spec.Window
	if f[0] != "*" {
		names := map[string]time.Weekday{"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday,
			"Wed": time.Wednesday, "Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday}
		for _, d := range strings.Split(f[0], ",") {
			wd, ok := names[d]
			if !ok {
				panic("bad day " + d)
			}
			w.Days = append(w.Days, wd)
		}
	}
	var h, m int
	if _, err := fmt.Sscanf(f[1], "%d:%d", &h, &m); err != nil {
		panic(err)
	}
	w.Start = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	d, err := time.ParseDuration(f[2])
	if err != nil {
		panic(err)
	}
	w.Duration = d
	return w
}

// dateFreeze is a freeze written in date form: from midnight of its first
// day to the end of its last day, in the group's timezone.
func dateFreeze(loc *time.Location, first, last string) spec.Freeze {
	a, err := time.ParseInLocation(time.DateOnly, first, loc)
	if err != nil {
		panic(err)
	}
	b, err := time.ParseInLocation(time.DateOnly, last, loc)
	if err != nil {
		panic(err)
	}
	y, m, d := b.Date()
	return spec.Freeze{Name: "dates", Start: a, End: time.Date(y, m, d+1, 0, 0, 0, 0, loc)}
}

func format(ivs []Interval) []string {
	out := make([]string, len(ivs))
	for i, iv := range ivs {
		out[i] = iv.Start.Format(time.RFC3339) + "/" + iv.End.Format(time.RFC3339)
	}
	return out
}

func TestWindows(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	tests := []struct {
		scenario string
		tz       string
		windows  []string
		freezes  []spec.Freeze
		from     string
		horizon  time.Duration
		want     []string // "start/end" in UTC; nil with wantCount to only count
		count    int
	}{
		{
			scenario: "a Tue/Thu window over 14 days gives four intervals",
			tz:       "Europe/Berlin", windows: []string{"Tue,Thu 02:00 4h"},
			from: "2026-06-01T00:00:00Z", horizon: 14 * day,
			want: []string{
				"2026-06-02T00:00:00Z/2026-06-02T04:00:00Z",
				"2026-06-04T00:00:00Z/2026-06-04T04:00:00Z",
				"2026-06-09T00:00:00Z/2026-06-09T04:00:00Z",
				"2026-06-11T00:00:00Z/2026-06-11T04:00:00Z",
			},
		},
		{
			scenario: "an every-day window over 14 days gives fourteen intervals",
			tz:       "Europe/Berlin", windows: []string{"* 12:00 1h"},
			from: "2026-06-01T00:00:00Z", horizon: 14 * day, count: 14,
		},
		{
			scenario: "three windows a week over 14 days across the spring change give six intervals",
			tz:       "Europe/Berlin", windows: []string{"Mon 01:00 1h", "Sun 02:30 1h", "Wed 23:00 2h"},
			from: "2026-03-22T00:00:00Z", horizon: 14 * day, count: 6,
		},
		{
			scenario: "a window already open at from is included with its real start",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			from: "2026-06-01T03:00:00Z", horizon: day,
			want: []string{
				"2026-06-01T02:00:00Z/2026-06-01T06:00:00Z",
				"2026-06-02T02:00:00Z/2026-06-02T06:00:00Z",
			},
		},
		{
			scenario: "a window ending exactly at from and one starting exactly at the horizon are left out",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			from: "2026-06-01T06:00:00Z", horizon: 20 * time.Hour,
			want: nil,
		},
		{
			scenario: "the last window keeps its real end past the horizon",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			from: "2026-06-01T00:00:00Z", horizon: 3 * time.Hour,
			want: []string{"2026-06-01T02:00:00Z/2026-06-01T06:00:00Z"},
		},
		{
			scenario: "a window crossing local midnight ends the next day",
			tz:       "America/New_York", windows: []string{"Mon 22:00 3h"},
			from: "2026-06-01T00:00:00Z", horizon: 7 * day,
			want: []string{"2026-06-02T02:00:00Z/2026-06-02T05:00:00Z"},
		},
		{
			scenario: "a Sunday window crossing the end of the week is still open on Monday",
			tz:       "UTC", windows: []string{"Sun 23:00 3h"},
			from: "2026-06-08T01:00:00Z", horizon: 7 * day,
			want: []string{
				"2026-06-07T23:00:00Z/2026-06-08T02:00:00Z",
				"2026-06-14T23:00:00Z/2026-06-15T02:00:00Z",
			},
		},
		{
			scenario: "a days list picks only its weekdays",
			tz:       "UTC", windows: []string{"Mon,Wed,Fri 08:00 1h"},
			from: "2026-06-01T00:00:00Z", horizon: 7 * day,
			want: []string{
				"2026-06-01T08:00:00Z/2026-06-01T09:00:00Z",
				"2026-06-03T08:00:00Z/2026-06-03T09:00:00Z",
				"2026-06-05T08:00:00Z/2026-06-05T09:00:00Z",
			},
		},
		{
			scenario: "a whole-week window open at from keeps its real start days back",
			tz:       "UTC", windows: []string{"Mon 00:00 168h"},
			from: "2026-06-03T00:00:00Z", horizon: day,
			want: []string{"2026-06-01T00:00:00Z/2026-06-08T00:00:00Z"},
		},
		{
			scenario: "a whole-week window that opened late the day a week before is still found",
			tz:       "Europe/Berlin", windows: []string{"Mon 23:00 168h"},
			from: "2026-06-08T20:59:00Z", horizon: time.Minute,
			want: []string{"2026-06-01T21:00:00Z/2026-06-08T21:00:00Z"},
		},
		{
			scenario: "overlapping windows are merged",
			tz:       "UTC", windows: []string{"* 02:00 3h", "Mon 04:00 2h"},
			from: "2026-06-01T00:00:00Z", horizon: day,
			want: []string{"2026-06-01T02:00:00Z/2026-06-01T06:00:00Z"},
		},
		{
			scenario: "adjacent windows are merged",
			tz:       "UTC", windows: []string{"* 04:00 1h", "* 02:00 2h"},
			from: "2026-06-01T00:00:00Z", horizon: day,
			want: []string{"2026-06-01T02:00:00Z/2026-06-01T05:00:00Z"},
		},
		{
			scenario: "daily all-day windows merge into one interval",
			tz:       "UTC", windows: []string{"* 00:00 24h"},
			from: "2026-06-01T12:00:00Z", horizon: 2 * day,
			want: []string{"2026-06-01T00:00:00Z/2026-06-04T00:00:00Z"},
		},
		{
			scenario: "a freeze covering a window removes it wholly",
			tz:       "UTC", windows: []string{"* 02:00 2h"},
			freezes: []spec.Freeze{{Name: "f", Start: at("2026-06-02T00:00:00Z"), End: at("2026-06-03T00:00:00Z")}},
			from:    "2026-06-01T00:00:00Z", horizon: 3 * day,
			want: []string{
				"2026-06-01T02:00:00Z/2026-06-01T04:00:00Z",
				"2026-06-03T02:00:00Z/2026-06-03T04:00:00Z",
			},
		},
		{
			scenario: "a freeze inside a window keeps the parts before and after it",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			freezes: []spec.Freeze{{Name: "f", Start: at("2026-06-01T03:00:00Z"), End: at("2026-06-01T04:00:00Z")}},
			from:    "2026-06-01T00:00:00Z", horizon: day,
			want: []string{
				"2026-06-01T02:00:00Z/2026-06-01T03:00:00Z",
				"2026-06-01T04:00:00Z/2026-06-01T06:00:00Z",
			},
		},
		{
			scenario: "a freeze over a window's start keeps its tail, its end is exclusive",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			freezes: []spec.Freeze{{Name: "f", Start: at("2026-06-01T01:00:00Z"), End: at("2026-06-01T03:00:00Z")}},
			from:    "2026-06-01T00:00:00Z", horizon: 12 * time.Hour,
			want: []string{"2026-06-01T03:00:00Z/2026-06-01T06:00:00Z"},
		},
		{
			scenario: "freezes that only touch a window or lie outside the range change nothing",
			tz:       "UTC", windows: []string{"* 02:00 4h"},
			freezes: []spec.Freeze{
				{Name: "before", Start: at("2026-05-01T00:00:00Z"), End: at("2026-06-01T02:00:00Z")},
				{Name: "after", Start: at("2026-06-01T06:00:00Z"), End: at("2026-06-02T02:00:00Z")},
				{Name: "empty", Start: at("2026-06-01T04:00:00Z"), End: at("2026-06-01T04:00:00Z")},
			},
			from: "2026-06-01T00:00:00Z", horizon: 12 * time.Hour,
			want: []string{"2026-06-01T02:00:00Z/2026-06-01T06:00:00Z"},
		},
		{
			scenario: "a freeze over the only window in range leaves nothing",
			tz:       "UTC", windows: []string{"Mon 02:00 4h"},
			freezes: []spec.Freeze{{Name: "f", Start: at("2026-05-31T00:00:00Z"), End: at("2026-06-02T00:00:00Z")}},
			from:    "2026-06-01T00:00:00Z", horizon: 2 * day,
			want: nil,
		},
		{
			scenario: "a date-form freeze runs from local midnight of its first day through the end of its last day",
			tz:       "Europe/Berlin", windows: []string{"* 22:00 4h"},
			freezes: []spec.Freeze{dateFreeze(berlin, "2026-12-20", "2027-01-04")},
			from:    "2026-12-19T00:00:00Z", horizon: 18 * day,
			want: []string{
				"2026-12-18T21:00:00Z/2026-12-19T01:00:00Z",
				"2026-12-19T21:00:00Z/2026-12-19T23:00:00Z", // cut at Dec 20 00:00 CET
				"2027-01-04T23:00:00Z/2027-01-05T01:00:00Z", // resumes at Jan 5 00:00 CET
				"2027-01-05T21:00:00Z/2027-01-06T01:00:00Z",
			},
		},
		{
			scenario: "Berlin spring forward: 02:30 on the change day starts at 03:00 CEST",
			tz:       "Europe/Berlin", windows: []string{"* 02:30 1h"},
			from: "2026-03-28T00:00:00Z", horizon: 3 * day,
			want: []string{
				"2026-03-28T01:30:00Z/2026-03-28T02:30:00Z", // 02:30 CET
				"2026-03-29T01:00:00Z/2026-03-29T02:00:00Z", // 03:00 CEST, right after the gap
				"2026-03-30T00:30:00Z/2026-03-30T01:30:00Z", // 02:30 CEST
			},
		},
		{
			scenario: "Berlin spring forward: a window spanning the gap lasts its elapsed duration",
			tz:       "Europe/Berlin", windows: []string{"Sun 01:30 2h"},
			from: "2026-03-29T00:00:00Z", horizon: day,
			want: []string{"2026-03-29T00:30:00Z/2026-03-29T02:30:00Z"}, // 01:30 CET to 04:30 CEST
		},
		{
			scenario: "Berlin fall back: 02:30 starts at its first (CEST) occurrence",
			tz:       "Europe/Berlin", windows: []string{"Sun 02:30 1h"},
			from: "2026-10-24T00:00:00Z", horizon: 2 * day,
			want: []string{"2026-10-25T00:30:00Z/2026-10-25T01:30:00Z"},
		},
		{
			scenario: "Berlin fall back: a 4h window from midnight is 4h long and ends at 03:00 CET",
			tz:       "Europe/Berlin", windows: []string{"Sun 00:00 4h"},
			from: "2026-10-24T00:00:00Z", horizon: 2 * day,
			want: []string{"2026-10-24T22:00:00Z/2026-10-25T02:00:00Z"},
		},
		{
			scenario: "New York spring forward: 02:15 on the change day starts at 03:00 EDT",
			tz:       "America/New_York", windows: []string{"* 02:15 30m"},
			from: "2026-03-07T00:00:00Z", horizon: 3 * day,
			want: []string{
				"2026-03-07T07:15:00Z/2026-03-07T07:45:00Z", // 02:15 EST
				"2026-03-08T07:00:00Z/2026-03-08T07:30:00Z", // 03:00 EDT
				"2026-03-09T06:15:00Z/2026-03-09T06:45:00Z", // 02:15 EDT
			},
		},
		{
			scenario: "New York fall back: 01:30 starts at its first (EDT) occurrence",
			tz:       "America/New_York", windows: []string{"Sun 01:30 1h"},
			from: "2026-10-31T00:00:00Z", horizon: 2 * day,
			want: []string{"2026-11-01T05:30:00Z/2026-11-01T06:30:00Z"},
		},
		{
			scenario: "Santiago: a window in the gap at local midnight starts at 01:00",
			tz:       "America/Santiago", windows: []string{"Sun 00:30 1h"},
			from: "2026-09-05T00:00:00Z", horizon: 2 * day,
			want: []string{"2026-09-06T04:00:00Z/2026-09-06T05:00:00Z"},
		},
		{
			scenario: "Lord Howe: a window in a half-hour gap starts at its end",
			tz:       "Australia/Lord_Howe", windows: []string{"Sun 02:15 1h"},
			from: "2026-10-03T00:00:00Z", horizon: 2 * day,
			want: []string{"2026-10-03T15:30:00Z/2026-10-03T16:30:00Z"},
		},
		{
			scenario: "a group without windows has no intervals",
			tz:       "UTC", from: "2026-06-01T00:00:00Z", horizon: 14 * day,
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			g := &spec.Group{Name: "g", Timezone: tc.tz, Location: mustLoc(t, tc.tz), Freezes: tc.freezes}
			for _, w := range tc.windows {
				g.Windows = append(g.Windows, win(w))
			}
			got := Windows(g, at(tc.from), tc.horizon)
			for _, iv := range got {
				if iv.Start.Location() != time.UTC || iv.End.Location() != time.UTC {
					t.Errorf("interval %v is not in UTC", iv)
				}
			}
			for i := 1; i < len(got); i++ {
				if !got[i].Start.After(got[i-1].End) {
					t.Errorf("intervals %d and %d are not sorted and disjoint: %v", i-1, i, format(got))
				}
			}
			if tc.count > 0 {
				if len(got) != tc.count {
					t.Fatalf("got %d intervals, want %d:\n%s", len(got), tc.count, strings.Join(format(got), "\n"))
				}
				return
			}
			if g, w := strings.Join(format(got), "\n"), strings.Join(tc.want, "\n"); g != w {
				t.Fatalf("got:\n%s\nwant:\n%s", g, w)
			}
			if tc.want == nil && got != nil {
				t.Fatalf("got empty non-nil slice, want nil")
			}
		})
	}
}

func TestWindowsUsesTimezoneNameWithoutLocation(t *testing.T) {
	g := &spec.Group{Timezone: "Europe/Berlin", Windows: []spec.Window{win("* 02:00 1h")}}
	got := format(Windows(g, at("2026-06-01T00:00:00Z"), day))
	want := []string{"2026-06-01T00:00:00Z/2026-06-01T01:00:00Z"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestResolveWall checks the DST rules for every quarter hour of a year in
// zones with gaps and repeats of several sizes, including the whole day
// Samoa skipped in December 2011: an existing reading resolves to its first
// occurrence, a missing one to the transition that skips it.
func TestResolveWall(t *testing.T) {
	zones := []struct {
		name string
		year int
	}{
		{"Europe/Berlin", 2026}, {"America/New_York", 2026}, {"America/Santiago", 2026},
		{"Australia/Lord_Howe", 2026}, {"Asia/Kolkata", 2026}, {"Pacific/Apia", 2011},
		{"UTC", 2026},
	}
	readAs := func(u time.Time, loc *time.Location) time.Time {
		l := u.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	}
	for _, z := range zones {
		loc := mustLoc(t, z.name)
		gaps, repeats := 0, 0
		end := time.Date(z.year+1, 1, 1, 0, 0, 0, 0, time.UTC)
		// Every offset the zone uses around the year, largest first, so
		// candidate instants come out in time order.
		var offsets []time.Duration
		for u := time.Date(z.year-1, 12, 1, 0, 0, 0, 0, time.UTC); u.Before(end.AddDate(0, 1, 0)); u = u.Add(time.Hour) {
			_, off := u.In(loc).Zone()
			if d := time.Duration(off) * time.Second; !slices.Contains(offsets, d) {
				offsets = append(offsets, d)
			}
		}
		slices.Sort(offsets)
		slices.Reverse(offsets)
		for wall := time.Date(z.year, 1, 1, 0, 0, 0, 0, time.UTC); wall.Before(end); wall = wall.Add(15 * time.Minute) {
			got := resolveWall(loc, wall)
			// Every instant whose reading is wall, in offset order.
			var occurrences []time.Time
			for _, off := range offsets {
				if u := wall.Add(-off); readAs(u, loc).Equal(wall) {
					occurrences = append(occurrences, u)
				}
			}
			switch {
			case len(occurrences) > 0:
				if len(occurrences) > 1 {
					repeats++
				}
				if !got.Equal(occurrences[0]) {
					t.Fatalf("%s %s: got %s, want first occurrence %s", z.name, wall.Format("2006-01-02 15:04"), got.UTC(), occurrences[0])
				}
			default:
				gaps++
				_, before := got.Add(-time.Nanosecond).In(loc).Zone()
				_, after := got.In(loc).Zone()
				if after <= before || !readAs(got.Add(-time.Nanosecond), loc).Before(wall) || !readAs(got, loc).After(wall) {
					t.Fatalf("%s %s (missing): got %s, want the transition that skips it", z.name, wall.Format("2006-01-02 15:04"), got.UTC())
				}
			}
		}
		t.Logf("%s %d: %d missing and %d repeated quarter hours", z.name, z.year, gaps, repeats)
		if z.name == "Pacific/Apia" && gaps != 100 {
			t.Errorf("Pacific/Apia 2011: %d missing quarter hours, want 100 (an hour in September, all of 30 December)", gaps)
		}
	}
}

func TestOpenNextFirstFit(t *testing.T) {
	ws := []Interval{
		{at("2026-06-01T02:00:00Z"), at("2026-06-01T06:00:00Z")},
		{at("2026-06-02T02:00:00Z"), at("2026-06-02T02:10:00Z")},
		{at("2026-06-03T02:00:00Z"), at("2026-06-03T06:00:00Z")},
	}
	show := func(iv Interval, ok bool) string {
		if !ok {
			return "none"
		}
		return format([]Interval{iv})[0]
	}
	first, second, third := format(ws[:1])[0], format(ws[1:2])[0], format(ws[2:])[0]
	tests := []struct {
		scenario string
		got      func() (Interval, bool)
		want     string
	}{
		{"a time inside a window is open in it", func() (Interval, bool) { return Open(ws, at("2026-06-01T03:00:00Z")) }, first},
		{"a window's start is inside it", func() (Interval, bool) { return Open(ws, at("2026-06-01T02:00:00Z")) }, first},
		{"a window's end is outside it", func() (Interval, bool) { return Open(ws, at("2026-06-01T06:00:00Z")) }, "none"},
		{"a time between windows is in none", func() (Interval, bool) { return Open(ws, at("2026-06-02T12:00:00Z")) }, "none"},
		{"no schedule has no open window", func() (Interval, bool) { return Open(nil, at("2026-06-02T12:00:00Z")) }, "none"},
		{"the next window after an open one is the following one", func() (Interval, bool) { return Next(ws, at("2026-06-01T03:00:00Z")) }, second},
		{"the next window before all is the first", func() (Interval, bool) { return Next(ws, at("2026-05-01T00:00:00Z")) }, first},
		{"there is no next window after the last starts", func() (Interval, bool) { return Next(ws, at("2026-06-03T02:00:00Z")) }, "none"},
		{"an open window with enough time left fits", func() (Interval, bool) { return FirstFit(ws, at("2026-06-01T03:00:00Z"), time.Hour) }, first},
		{"exactly enough time left fits", func() (Interval, bool) { return FirstFit(ws, at("2026-06-01T05:00:00Z"), time.Hour) }, first},
		{"a window too short is skipped for the next that fits", func() (Interval, bool) { return FirstFit(ws, at("2026-06-01T05:30:00Z"), time.Hour) }, third},
		{"a short task fits the short window", func() (Interval, bool) { return FirstFit(ws, at("2026-06-01T05:55:00Z"), 10*time.Minute) }, second},
		{"nothing fits after the last window has too little left", func() (Interval, bool) { return FirstFit(ws, at("2026-06-03T05:30:00Z"), time.Hour) }, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			if got := show(tc.got()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestFrozen(t *testing.T) {
	g := &spec.Group{Freezes: []spec.Freeze{
		{Name: "long", Start: at("2026-12-01T00:00:00Z"), End: at("2026-12-10T00:00:00Z"), AllowCritical: true},
		{Name: "strict", Start: at("2026-12-05T00:00:00Z"), End: at("2026-12-08T00:00:00Z")},
		{Name: "strict-short", Start: at("2026-12-05T00:00:00Z"), End: at("2026-12-06T00:00:00Z")},
	}}
	tests := []struct {
		scenario string
		t        string
		want     string
	}{
		{"before every freeze nothing is frozen", "2026-11-30T23:59:59Z", ""},
		{"a freeze's start is frozen", "2026-12-01T00:00:00Z", "long"},
		{"a freeze that forbids critical updates wins over one that allows them", "2026-12-05T12:00:00Z", "strict"},
		{"of two strict freezes the one ending last wins", "2026-12-05T00:00:00Z", "strict"},
		{"after the strict freeze ends the lenient one remains", "2026-12-08T00:00:00Z", "long"},
		{"a freeze's end is not frozen", "2026-12-10T00:00:00Z", ""},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			f, ok := Frozen(g, at(tc.t))
			if ok != (tc.want != "") || f.Name != tc.want {
				t.Fatalf("got %q (%v), want %q", f.Name, ok, tc.want)
			}
		})
	}
}

func TestCriticalPasses(t *testing.T) {
	g := &spec.Group{Freezes: []spec.Freeze{
		{Name: "long", Start: at("2026-12-01T00:00:00Z"), End: at("2026-12-10T00:00:00Z"), AllowCritical: true},
		{Name: "strict", Start: at("2026-12-05T00:00:00Z"), End: at("2026-12-08T00:00:00Z")},
		{Name: "strict-next", Start: at("2026-12-08T00:00:00Z"), End: at("2026-12-09T00:00:00Z")},
		{Name: "strict-later", Start: at("2026-12-20T00:00:00Z"), End: at("2026-12-21T00:00:00Z")},
	}}
	tests := []struct {
		scenario string
		t        string
		want     string // when a critical update passes
		held     string // the last freeze that held it; "" when none
	}{
		{"outside every freeze a critical update passes at once", "2026-11-30T00:00:00Z", "2026-11-30T00:00:00Z", ""},
		{"a freeze that allows critical updates does not hold one", "2026-12-02T00:00:00Z", "2026-12-02T00:00:00Z", ""},
		{"freezes that forbid critical updates back to back hold it until the last ends", "2026-12-06T00:00:00Z", "2026-12-09T00:00:00Z", "strict-next"},
		{"a later strict freeze does not hold it now", "2026-12-09T00:00:00Z", "2026-12-09T00:00:00Z", ""},
		{"inside a strict freeze it passes at its end", "2026-12-20T12:00:00Z", "2026-12-21T00:00:00Z", "strict-later"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			got, f, held := CriticalPasses(g, at(tc.t))
			if !got.Equal(at(tc.want)) || held != (tc.held != "") || f.Name != tc.held {
				t.Fatalf("got %s, %q (%v); want %s, %q", got, f.Name, held, tc.want, tc.held)
			}
			if _, now := CriticalHeld(g, at(tc.t)); now != held {
				t.Errorf("CriticalHeld says %v, CriticalPasses %v", now, held)
			}
		})
	}
	if got, _, held := CriticalPasses(nil, at("2026-12-06T00:00:00Z")); held || !got.Equal(at("2026-12-06T00:00:00Z")) {
		t.Errorf("a nil group holds nothing: %s %v", got, held)
	}
}

func BenchmarkWindows(b *testing.B) {
	g := &spec.Group{
		Name: "eu-prod", Timezone: "Europe/Berlin", Location: mustLoc(b, "Europe/Berlin"),
		Windows: []spec.Window{win("Tue,Thu 02:00 4h"), win("* 23:30 1h"), win("Sat,Sun 10:00 6h")},
		Freezes: []spec.Freeze{{Name: "f", Start: at("2026-03-30T00:00:00Z"), End: at("2026-04-01T00:00:00Z")}},
	}
	from := at("2026-03-22T09:00:00Z") // the 14 days span the spring change
	b.ReportAllocs()
	for b.Loop() {
		if ws := Windows(g, from, 14*day); len(ws) == 0 {
			b.Fatal("no windows")
		}
	}
}
