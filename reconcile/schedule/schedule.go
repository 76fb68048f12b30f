// Package schedule keeps an agent's maintenance schedule as the agent's
// updater sees it: it reads and writes the two formats Teleport's agents
// already export (the Kubernetes JSON form and the systemd file
// /etc/teleport-upgrade.d/schedule) and judges whether a schedule is usable.
//
// # When a schedule is usable
//
// The rule follows Teleport's kube-agent-updater: a schedule is usable when
// it holds at least one window that has not ended (stop after now). A window
// whose stop is before its start makes the whole schedule unusable; here
// that is a parse error, so the schedule is Unreadable. Teleport resets a
// schedule by blanking its file, so an empty (or all-blank) file counts as
// Missing, like an absent one. A schedule with no windows at all, or only
// windows that have ended, has NoWindowAhead. Whatever is not Usable means
// the updater cannot rely on the schedule and treats the agent as unhealthy.
package schedule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/internal/atomicfile"
)

// MaxFileSize bounds a schedule file or response; a larger one is refused,
// never silently cut.
const MaxFileSize = 1 << 20

// TeleportSchedulePath is where Teleport's agents write their schedule on
// systemd hosts.
const TeleportSchedulePath = "/etc/teleport-upgrade.d/schedule"

// State says whether a schedule can be relied on.
type State int

const (
	// Missing: no schedule (no file, a blank file, or no source configured).
	// It is the zero value, so an empty Schedule is never usable.
	Missing State = iota
	// Unreadable: the schedule exists but cannot be read or parsed; Err says why.
	Unreadable
	// NoWindowAhead: the schedule parsed, but every window has ended (or it has none).
	NoWindowAhead
	// Usable: at least one window has not ended yet.
	Usable
)

func (s State) String() string {
	switch s {
	case Missing:
		return "Missing"
	case Unreadable:
		return "Unreadable"
	case NoWindowAhead:
		return "NoWindowAhead"
	case Usable:
		return "Usable"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// LogValue logs the name, not the number, in JSON logs too.
func (s State) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Schedule is an agent's maintenance schedule with its verdict.
type Schedule struct {
	State State
	// Windows are the schedule's windows sorted by start, with overlapping
	// or touching windows merged (the shape the calendar package's Open,
	// Next and FirstFit expect). Ended windows are kept.
	Windows []calendar.Interval
	// Path is the file the schedule was read from, if any.
	Path string
	// Err is why the schedule is Unreadable, or (with any state) why a fresh
	// copy could not be fetched so that a saved one is used instead.
	Err error
	// Message says in one sentence why the schedule has its state.
	Message string
}

// Usable reports whether the schedule has a window that has not ended.
func (s Schedule) Usable() bool { return s.State == Usable }

func (s Schedule) String() string { return s.State.String() + ": " + s.Message }

// Evaluate judges windows at now. The result's Windows are sorted and merged
// copies; ws is not modified.
func Evaluate(ws []calendar.Interval, now time.Time) Schedule {
	norm := normalize(ws)
	if len(norm) == 0 {
		return Schedule{State: NoWindowAhead, Message: "the schedule has no windows"}
	}
	last := norm[len(norm)-1]
	if !last.End.After(now) {
		return Schedule{State: NoWindowAhead, Windows: norm, Message: fmt.Sprintf(
			"every window has ended; the last ended at %s", last.End.Format(time.RFC3339))}
	}
	if open, ok := calendar.Open(norm, now); ok {
		return Schedule{State: Usable, Windows: norm, Message: fmt.Sprintf(
			"a window is open until %s", open.End.Format(time.RFC3339))}
	}
	next, _ := calendar.Next(norm, now)
	return Schedule{State: Usable, Windows: norm, Message: fmt.Sprintf(
		"next window %s to %s", next.Start.Format(time.RFC3339), next.End.Format(time.RFC3339))}
}

// normalize returns ws in UTC, sorted by start, with windows that overlap or
// touch merged.
func normalize(ws []calendar.Interval) []calendar.Interval {
	if len(ws) == 0 {
		return nil
	}
	out := make([]calendar.Interval, len(ws))
	for i, w := range ws {
		out[i] = calendar.Interval{Start: w.Start.UTC(), End: w.End.UTC()}
	}
	slices.SortFunc(out, func(a, b calendar.Interval) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return a.End.Compare(b.End)
	})
	merged := out[:1]
	for _, w := range out[1:] {
		last := &merged[len(merged)-1]
		if w.Start.After(last.End) {
			merged = append(merged, w)
			continue
		}
		if w.End.After(last.End) {
			last.End = w.End
		}
	}
	return merged
}

// Parse reads a schedule in either format: JSON when the first non-blank
// byte is "{", Teleport's systemd format otherwise.
func Parse(data []byte) ([]calendar.Interval, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return ParseJSON(data)
	}
	return ParseSystemd(data)
}

// ReadFile reads the schedule at path (either format, see Parse) and judges
// it at now. It never fails: problems become the Missing or Unreadable
// state, with Err set for Unreadable. Files over MaxFileSize are Unreadable.
func ReadFile(path string, now time.Time) Schedule {
	s := readFile(path, now)
	s.Path = path
	return s
}

func readFile(path string, now time.Time) Schedule {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Schedule{State: Missing, Message: fmt.Sprintf("no schedule file at %s", path)}
	}
	if err != nil {
		return unreadable(fmt.Errorf("reading schedule: %w", err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return unreadable(fmt.Errorf("reading schedule %s: %w", path, err))
	}
	if len(data) > MaxFileSize {
		return unreadable(fmt.Errorf("schedule %s is larger than %d bytes; it cannot be a schedule, check what writes it", path, MaxFileSize))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Schedule{State: Missing, Message: fmt.Sprintf("schedule file %s is empty (a reset schedule)", path)}
	}
	ws, err := Parse(data)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			se.File = path
		}
		return unreadable(err)
	}
	s := Evaluate(ws, now)
	s.Message = path + ": " + s.Message
	return s
}

func unreadable(err error) Schedule {
	return Schedule{State: Unreadable, Err: err, Message: err.Error()}
}

// WriteFile saves windows at path atomically (a temporary file in the same
// directory, fsync, rename, fsync of the directory) with mode 0644, creating
// the directory (0755) if needed. The format follows the name: JSON when
// path ends in ".json", Teleport's systemd format otherwise. No windows
// write a blank systemd file (Teleport's reset) or {"windows":[]}.
func WriteFile(path string, windows []calendar.Interval) error {
	var data []byte
	var err error
	if strings.HasSuffix(path, ".json") {
		data, err = FormatJSON(windows)
	} else {
		data, err = FormatSystemd(windows)
	}
	if err != nil {
		return fmt.Errorf("writing schedule %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("writing schedule %s: %w", path, err)
	}
	return nil
}
