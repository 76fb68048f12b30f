// Package spec holds the desired state of a fleet — control planes, release
// channels and maintenance groups — as read from the YAML documents of a fleet
// repository, with the file position of everything it reads so that every
// error can name its file, line and field.
package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// APIVersion is the apiVersion every document carries.
const APIVersion = "upkeep.dev/v1alpha1"

// Document kinds.
const (
	KindControlPlane = "ControlPlane"
	KindChannel      = "Channel"
	KindGroup        = "Group"
)

// FollowControlPlane is the value of Channel.Follow for a rolling channel
// that always offers its control plane's version.
const FollowControlPlane = "controlPlane"

// Position names a place in a file of the fleet repository. File is the
// slash-separated path relative to the repository root.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Position) String() string {
	file := DisplayName(p.File)
	switch {
	case p.File == "":
		return "-"
	case p.Line == 0:
		return file
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", file, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Col)
}

// DisplayName is a file name as error and log lines show it: as it is, or,
// when it holds what could break or forge a line (a control character such
// as a newline, any other character that does not print, invalid UTF-8, a
// ':' that would read as a line number) or starts with a quote, quoted
// as Go quotes strings. One error is then always one line, and its
// file:line:col always parses.
func DisplayName(name string) string {
	if utf8.ValidString(name) && !strings.HasPrefix(name, `"`) && !strings.ContainsFunc(name, func(r rune) bool {
		return r == ':' || !unicode.IsPrint(r)
	}) {
		return name
	}
	return strconv.Quote(name)
}

// oneLine escapes, as Go quotes strings, what would break a message over
// lines or hide in it (control and other non-printing characters, invalid
// UTF-8); a message without any is returned as it is.
func oneLine(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// Error is one problem with the fleet repository. Path is the field's path
// inside its document (for example "spec.windows[0].start"); it is empty when
// the problem concerns the whole document or file.
type Error struct {
	Pos  Position `json:"pos"`
	Path string   `json:"path,omitempty"`
	Msg  string   `json:"message"`
}

// Error is one line: the position, the path and the message, each with
// anything that would break the line escaped (see DisplayName), whatever
// the repository's file names and values hold.
func (e Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.Pos, oneLine(e.Msg))
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, oneLine(e.Path), oneLine(e.Msg))
}

// Errors is every problem found in one load, in a stable order (see Sort).
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// ControlPlane is the version the servers agents talk to run now.
type ControlPlane struct {
	Name    string
	Version string // semver as written, without a leading "v"
	// Agents optionally narrows the versions agents may run, in
	// Masterminds semver constraint syntax (for example ">= 16.2, < 17.1").
	Agents string
	Pos    Position // of the document's metadata.name
}

// Channel is a named release channel. Exactly one of Version and Follow is set.
type Channel struct {
	Name         string // may contain "/", e.g. "stable/cloud"
	ControlPlane string // name of the ControlPlane it is bound to
	Version      string // pinned version, without a leading "v"; "" when following
	Follow       string // FollowControlPlane, or ""
	Critical     bool
	// Default: the channel answers as Teleport's "default" channel, the
	// one Teleport's proxy always has and its install scripts ask for. At
	// most one channel is the default; a channel named "default" is it
	// without the field (State.DefaultChannel).
	Default bool
	// Rollout is how a new version reaches the channel's groups; nil
	// serves it to every agent at once. A channel whose version is "none"
	// may keep its rollout, which then does not apply: pausing stops every
	// agent at once (see State.RolloutStages).
	Rollout *Rollout
	Pos     Position
}

// Rollout orders the stages a channel's new version goes through
// (spec.rollout). Groups that follow the channel but are in no stage form
// an implicit last stage, which State.RolloutStages appends.
type Rollout struct {
	// Stages is never empty; each names at least one group, every group
	// follows this channel and is in one stage at most.
	Stages []Stage
	// Resume, when set, resumes a rollout of this channel halted before it
	// (an RFC 3339 time; zero when absent).
	Resume time.Time
	Pos    Position // of the rollout key
}

// Stage is one step of a rollout: some groups, canaries first. The loader
// fills in the default of every field a document leaves out.
type Stage struct {
	Groups []string // as written, at least one
	// Canaries is how many of the stage's agents get the version first
	// (a count, or a percent of the stage's agents below 100%); default 0:
	// no canary step.
	Canaries Quantity
	// BakeTime is how long updated agents must stay healthy before the
	// next step (above 0 and at most 168h when set); default 0. Critical
	// updates skip it.
	BakeTime time.Duration
	// SuccessThreshold is how many of a step's live agents must run the
	// version healthy before it bakes: at least 1, or a percent above 0;
	// default 100% (DefaultSuccessThreshold).
	SuccessThreshold Quantity
	// FailureThreshold is how many rolled-back or unhealthy-after-update
	// agents halt the rollout: at least 1, or a percent above 0; default 1
	// (DefaultFailureThreshold).
	FailureThreshold Quantity
	Pos              Position // of the stage's list element
}

// Quantity is a count (3) or a percent ("10%") of some agents. As
// written in a document, a count is 0 or more and a percent is above 0
// and at most 100, with decimals allowed ("12.5%").
type Quantity struct {
	Count   int
	Percent float64 // used when IsPercent
	// IsPercent says Percent applies; the zero Quantity is the count 0.
	IsPercent bool
}

// Of is q applied to n agents: a percent rounds up, so "10%" of 3 is 1,
// and never exceeds n.
func (q Quantity) Of(n int) int {
	v := q.Count
	if q.IsPercent {
		// A decimal percent is not exact in binary ("16.1%" of 1000 is
		// 161.00000000000003): a sliver above a whole number is that number.
		v = int(math.Ceil(q.Percent*float64(n)/100 - 1e-9))
	}
	return max(min(v, n), 0)
}

func (q Quantity) String() string {
	if q.IsPercent {
		return strconv.FormatFloat(q.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(q.Count)
}

// IsZero says q is the count 0 (unset).
func (q Quantity) IsZero() bool { return !q.IsPercent && q.Count == 0 }

// DefaultChannelName is the channel Teleport's proxy always serves and its
// install scripts ask for.
const DefaultChannelName = "default"

// DefaultChannel returns the channel that answers as Teleport's "default":
// the one marked spec.default, else one named "default", else nil (the
// loader refuses a repository where these disagree).
func (s *State) DefaultChannel() *Channel {
	var named *Channel
	for _, c := range s.Channels {
		if c.Default {
			return c
		}
		if c.Name == DefaultChannelName {
			named = c
		}
	}
	return named
}

// GroupChannelPrefix starts the group-scoped channel name that Teleport's
// own updaters use to ask for a group's version ("group/eu-prod");
// fleet channel names may not start with it.
const GroupChannelPrefix = "group/"

// Group is a set of agents that share a channel and a maintenance schedule.
type Group struct {
	Name     string
	Channel  string
	Timezone string // IANA name
	Location *time.Location
	Windows  []Window
	Freezes  []Freeze
	// UpdateDuration is how long an update needs; a window is only usable
	// while at least this much of it remains.
	UpdateDuration time.Duration
	// Order places the group in the rollout among groups (lower first).
	Order int
	// MaxConcurrent bounds how many of the group's agents may update at
	// once (a count or a percent of its agents, a percent rounding up so
	// it never allows 0 of a non-empty group); the zero Quantity (absent,
	// or written 0): unlimited.
	MaxConcurrent Quantity
	Pos           Position
}

// DefaultUpdateDuration applies when a group does not say how long an update takes.
const DefaultUpdateDuration = 15 * time.Minute

// Window is a weekly maintenance window in the group's timezone.
type Window struct {
	Days     []time.Weekday // empty means every day
	Start    time.Duration  // wall-clock offset from local midnight ("02:30" = 2h30m)
	Duration time.Duration  // > 0 and <= 7 days
}

// Freeze is a period in which no window opens. Start is inclusive, End exclusive.
type Freeze struct {
	Name          string
	Start, End    time.Time
	AllowCritical bool // a critical update may still be applied during the freeze
}

// State is a whole, loaded fleet repository. Slices are sorted by name.
type State struct {
	ControlPlanes []*ControlPlane
	Channels      []*Channel
	Groups        []*Group
}

// NoVersion is the channel version that offers no version at all: updaters
// leave their agents alone (Teleport's "none").
const NoVersion = "none"
