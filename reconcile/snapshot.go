package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// ScheduleHorizon is how far ahead a snapshot lists each group's windows.
const ScheduleHorizon = 14 * 24 * time.Hour

// Snapshot is what the version server serves for one revision of the fleet
// repository at one moment: every channel resolved to the version it offers,
// every group's next windows, and every response body, precomputed.
//
// A Snapshot is immutable once built: it is shared by concurrent requests
// and swapped whole. Callers must not modify anything reachable from it,
// byte slices included.
type Snapshot struct {
	Revision string    // the source revision it was built from
	Built    time.Time // the moment its windows are computed from
	// State is the validated fleet repository it was built from (never
	// nil; shared and read-only): the rollout engine and the leases read
	// rollouts and maxConcurrent from it.
	State *spec.State

	// ChannelsJSON is the body of the channel list:
	// {"revision":…,"channels":[<channel>…]}, sorted by name.
	ChannelsJSON []byte
	// GroupsJSON is the body of the group list:
	// {"revision":…,"built":…,"groups":[…]}, sorted by name.
	GroupsJSON []byte

	channels     []*ChannelView
	channelIndex map[string]*ChannelView
	groups       []*GroupView
	groupIndex   map[string]*GroupView
}

// ChannelView is one channel as served.
type ChannelView struct {
	Name                string
	ControlPlane        string // name of the control plane it is bound to
	ControlPlaneVersion string // "" when the control plane is missing
	// Version is the version offered, without a leading "v"; "" when the
	// channel offers none ("none" pinned, or withheld).
	Version  string
	Critical bool
	Follow   bool // follows its control plane rather than pinning a version
	// Default: the channel answers as Teleport's "default" (spec.State.DefaultChannel).
	Default bool
	// Withheld says why a version the channel resolves to is not offered
	// (the last check before serving failed); "" normally.
	Withheld string

	// VersionBody and CriticalBody are the exact bodies of Teleport's
	// version server protocol: "v1.2.3" or "none"; "yes" or "no". No
	// trailing newline, as Teleport's proxy answers.
	VersionBody, CriticalBody []byte
	// JSON is the channel's detail document (see channelDoc), with a
	// trailing newline.
	JSON []byte
}

// GroupView is one group and its next maintenance windows.
type GroupView struct {
	Name, Channel, Timezone string
	Order                   int
	UpdateDuration          time.Duration
	// Windows are the group's windows overlapping [Built, Built+ScheduleHorizon),
	// freezes cut out, in UTC, or the first one after a freeze that covers
	// the horizon; nil when none opens (schedule.Publish).
	Windows []calendar.Interval

	// ScheduleJSON is Teleport's Kubernetes schedule document (Secret
	// <agent>-shared-state, key agent-maintenance-schedule):
	// {"windows":[{"start":"<RFC3339>","stop":"<RFC3339>"}]}, no trailing newline.
	ScheduleJSON []byte
	// ScheduleSystemd is Teleport's systemd schedule file
	// (/etc/teleport-upgrade.d/schedule): a "# " comment line, then one
	// "<start_unix> <stop_unix>" line per window, joined by "\n" with no
	// trailing newline, as Teleport's exporter writes it.
	ScheduleSystemd []byte
	// JSON is the group's detail document: its entry in the group list plus
	// "revision" and "built", with a trailing newline. Updaters that follow
	// a group rather than a channel read the channel from it.
	JSON []byte
}

// Channel returns the named channel, or nil if the snapshot has none by that name.
func (s *Snapshot) Channel(name string) *ChannelView { return s.channelIndex[name] }

// Channels returns every channel, sorted by name. The slice is shared: do not modify it.
func (s *Snapshot) Channels() []*ChannelView { return s.channels }

// Group returns the named group, or nil.
func (s *Snapshot) Group(name string) *GroupView { return s.groupIndex[name] }

// Groups returns every group, sorted by name. The slice is shared: do not modify it.
func (s *Snapshot) Groups() []*GroupView { return s.groups }

// BuildSnapshot resolves st as it stands at now. st should be valid
// (spec.Load returned no errors); even so, every channel's version is checked
// against its control plane once more, and one that fails is withheld
// (served as "none") rather than offered.
func BuildSnapshot(st *spec.State, revision string, now time.Time) *Snapshot {
	s := &Snapshot{
		Revision:     revision,
		Built:        now,
		channelIndex: map[string]*ChannelView{},
		groupIndex:   map[string]*GroupView{},
	}
	if st == nil {
		st = &spec.State{}
	}
	s.State = st
	list := channelList{Revision: revision, Channels: make([]channelDoc, 0, len(st.Channels))}
	for _, c := range st.Channels {
		v := resolveChannel(st, c)
		doc := v.doc()
		list.Channels = append(list.Channels, doc)
		doc.Revision = revision
		v.JSON = marshalLine(doc)
		s.channels = append(s.channels, v)
		s.channelIndex[v.Name] = v
	}
	slices.SortFunc(s.channels, func(a, b *ChannelView) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(list.Channels, func(a, b channelDoc) int { return strings.Compare(a.Name, b.Name) })
	s.ChannelsJSON = marshalLine(list)

	groups := groupList{Revision: revision, Built: now.UTC(), Groups: make([]groupDoc, 0, len(st.Groups))}
	for _, g := range st.Groups {
		pub := schedule.Publish(g, now, ScheduleHorizon)
		v := &GroupView{
			Name:           g.Name,
			Channel:        g.Channel,
			Timezone:       g.Timezone,
			Order:          g.Order,
			UpdateDuration: g.UpdateDuration,
			Windows:        pub.Windows,
		}
		if v.UpdateDuration <= 0 {
			v.UpdateDuration = spec.DefaultUpdateDuration
		}
		// Never empty: Teleport's updaters read an empty schedule as "update now".
		v.ScheduleJSON = ScheduleJSON(pub.Served)
		v.ScheduleSystemd = ScheduleSystemd(pub.Served, systemdHeader(g.Name, revision))
		s.groups = append(s.groups, v)
		s.groupIndex[v.Name] = v
		doc := v.doc(now)
		groups.Groups = append(groups.Groups, doc)
		v.JSON = marshalLine(groupDetail{groupDoc: doc, Revision: revision, Built: now.UTC()})
	}
	slices.SortFunc(s.groups, func(a, b *GroupView) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(groups.Groups, func(a, b groupDoc) int { return strings.Compare(a.Name, b.Name) })
	s.GroupsJSON = marshalLine(groups)
	return s
}

// resolveChannel decides the version a channel offers (spec's
// ResolvedVersion: pinned, or its control plane's when it follows; none for
// "none") and checks it once more against its control plane before it is
// offered: the rules of DESIGN.md, so that even a state that bypassed
// validation cannot strand agents on an incompatible version.
func resolveChannel(st *spec.State, c *spec.Channel) *ChannelView {
	cp := st.ControlPlane(c.ControlPlane)
	v := &ChannelView{
		Name:         c.Name,
		ControlPlane: c.ControlPlane,
		Critical:     c.Critical,
		Follow:       c.Follow == spec.FollowControlPlane,
		Default:      st.DefaultChannel() == c,
	}
	if cp != nil {
		v.ControlPlaneVersion = strings.TrimPrefix(cp.Version, "v")
	}
	want := st.ResolvedVersion(c)
	switch {
	case cp == nil && (want != "" || v.Follow):
		v.Withheld = fmt.Sprintf("control plane %q does not exist", c.ControlPlane)
	case want == "":
	default:
		if err := cp.Admits(want); err != nil {
			v.Withheld = err.Error()
		} else {
			v.Version = want
		}
	}
	v.VersionBody = VersionBody(v.Version)
	v.CriticalBody = CriticalBody(v.Critical)
	return v
}

// VersionBody is the body Teleport's version endpoint answers: "v" and the
// version, or "none" for no version (version ""). Teleport compares "none"
// before trimming, so neither carries a newline.
func VersionBody(version string) []byte {
	if version == "" {
		return []byte(spec.NoVersion)
	}
	return []byte("v" + strings.TrimPrefix(version, "v"))
}

// CriticalBody is the body Teleport's critical endpoint answers.
func CriticalBody(critical bool) []byte {
	if critical {
		return []byte("yes")
	}
	return []byte("no")
}

// ScheduleJSON encodes windows in Teleport's Kubernetes schedule format
// (types.AgentUpgradeSchedule as JSON). Times are UTC in RFC 3339, with
// fractional seconds only when present, as Go's time.Time marshals them.
func ScheduleJSON(ws []calendar.Interval) []byte {
	b := make([]byte, 0, 16+len(ws)*64)
	b = append(b, `{"windows":[`...)
	for i, w := range ws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"start":"`...)
		b = w.Start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","stop":"`...)
		b = w.End.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `"}`...)
	}
	return append(b, "]}"...)
}

// ScheduleSystemd encodes windows in the file format of Teleport's
// teleport-upgrade script: header (a comment; the script skips lines
// starting with "# "), then "<start_unix> <stop_unix>" per window, joined by
// "\n" without a trailing newline. Without windows it is the header alone,
// which the updater reads as "no usable schedule".
func ScheduleSystemd(ws []calendar.Interval, header string) []byte {
	b := make([]byte, 0, len(header)+len(ws)*24)
	b = append(b, header...)
	for _, w := range ws {
		b = append(b, '\n')
		b = strconv.AppendInt(b, w.Start.Unix(), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, w.End.Unix(), 10)
	}
	return b
}

func systemdHeader(group, revision string) string {
	h := "# exported by upkeep for group " + group
	if revision != "" {
		h += " at revision " + revision
	}
	h += ", modifications are not preserved"
	// The header is one line whatever the revision id holds.
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, h)
}

// channelDoc is a channel in upkeep's JSON API.
type channelDoc struct {
	Name string `json:"name"`
	// Version is the version offered without "v", or "none".
	Version      string          `json:"version"`
	Critical     bool            `json:"critical"`
	Follow       bool            `json:"follow"`
	Default      bool            `json:"default,omitempty"` // answers as Teleport's "default" channel
	ControlPlane controlPlaneDoc `json:"controlPlane"`
	Withheld     string          `json:"withheld,omitempty"`
	Revision     string          `json:"revision,omitempty"` // in the detail document only
}

type controlPlaneDoc struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type channelList struct {
	Revision string       `json:"revision"`
	Channels []channelDoc `json:"channels"`
}

func (v *ChannelView) doc() channelDoc {
	version := v.Version
	if version == "" {
		version = spec.NoVersion
	}
	return channelDoc{
		Name:         v.Name,
		Version:      version,
		Critical:     v.Critical,
		Follow:       v.Follow,
		Default:      v.Default,
		ControlPlane: controlPlaneDoc{Name: v.ControlPlane, Version: v.ControlPlaneVersion},
		Withheld:     v.Withheld,
	}
}

// groupDoc is a group in upkeep's JSON API.
type groupDoc struct {
	Name           string             `json:"name"`
	Channel        string             `json:"channel"`
	Timezone       string             `json:"timezone"`
	Order          int                `json:"order"`
	UpdateDuration string             `json:"updateDuration"`
	Windows        int                `json:"windows"`              // within the horizon
	Open           *calendar.Interval `json:"open,omitempty"`       // the window open at built
	Next           *calendar.Interval `json:"next,omitempty"`       // the next window to open after built
	NextUsable     *calendar.Interval `json:"nextUsable,omitempty"` // the first one an update fits in
}

// groupDetail is one group's document at /v1/groups/<name>.
type groupDetail struct {
	groupDoc
	Revision string    `json:"revision"`
	Built    time.Time `json:"built"`
}

type groupList struct {
	Revision string     `json:"revision"`
	Built    time.Time  `json:"built"`
	Groups   []groupDoc `json:"groups"`
}

func (v *GroupView) doc(now time.Time) groupDoc {
	d := groupDoc{
		Name:           v.Name,
		Channel:        v.Channel,
		Timezone:       v.Timezone,
		Order:          v.Order,
		UpdateDuration: v.UpdateDuration.String(),
		Windows:        len(v.Windows),
	}
	if iv, ok := calendar.Open(v.Windows, now); ok {
		d.Open = &iv
	}
	if iv, ok := calendar.Next(v.Windows, now); ok {
		d.Next = &iv
	}
	if iv, ok := calendar.FirstFit(v.Windows, now, v.UpdateDuration); ok {
		d.NextUsable = &iv
	}
	return d
}

// marshalLine encodes documents built from plain strings, bools and times,
// which cannot fail to encode.
func marshalLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("reconcile: encoding %T: %v", v, err))
	}
	return append(b, '\n')
}
