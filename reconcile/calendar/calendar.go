// Package calendar turns a group's weekly maintenance windows and freezes into
// absolute UTC intervals. It is pure: every function takes the time it works
// from, so tests use a fixed clock.
package calendar

import (
	"time"

	"upkeep.dev/upkeep/spec"
)

// Interval is a half-open span of absolute time [Start, End), in UTC.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"stop"`
}

// Windows returns the group's maintenance windows that overlap [from,
// from+horizon), in order, with freezes cut out and overlaps merged.
// A window already open at from is included with its real start.
func Windows(g *spec.Group, from time.Time, horizon time.Duration) []Interval {
	panic("calendar.Windows: being written") // replaced by the calendar work
}
