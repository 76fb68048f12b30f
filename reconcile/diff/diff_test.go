package diff

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the groups' zones must load on hosts without a zoneinfo database

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// now is Monday 23 November 2026, 22:00 UTC (23:00 in Berlin).
var now = time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)

// inYearEnd is Monday 21 December 2026, 22:00 UTC: inside eu-prod's
// year-end freeze (19 December to 5 January in Berlin), which covers the
// whole 14-day horizon.
var inYearEnd = time.Date(2026, 12, 21, 22, 0, 0, 0, time.UTC)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fleet is the base state every scenario starts from: two control planes,
// a pinned, a following and an on-prem channel, and two groups.
func fleet(t testing.TB) *spec.State {
	berlin, ny := mustLoc(t, "Europe/Berlin"), mustLoc(t, "America/New_York")
	return &spec.State{
		ControlPlanes: []*spec.ControlPlane{
			{Name: "cloud", Version: "17.4.2", Agents: ">= 16.4.0, != 17.2.1", Pos: spec.Position{File: "control-planes.yaml", Line: 4, Col: 9}},
			{Name: "onprem", Version: "16.5.1", Pos: spec.Position{File: "control-planes.yaml", Line: 11, Col: 9}},
		},
		Channels: []*spec.Channel{
			{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.3.0", Pos: spec.Position{File: "channels/stable.yaml", Line: 4, Col: 9}},
			{Name: "stable/onprem", ControlPlane: "onprem", Version: "16.4.3", Pos: spec.Position{File: "channels/stable.yaml", Line: 18, Col: 9}},
			{Name: "stable/rolling", ControlPlane: "cloud", Follow: spec.FollowControlPlane, Pos: spec.Position{File: "channels/stable.yaml", Line: 11, Col: 9}},
		},
		Groups: []*spec.Group{
			{
				Name: "eu-prod", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin,
				Windows:        []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}},
				Freezes:        []spec.Freeze{{Name: "year-end", Start: time.Date(2026, 12, 19, 0, 0, 0, 0, berlin), End: time.Date(2027, 1, 5, 0, 0, 0, 0, berlin), AllowCritical: true}},
				UpdateDuration: 30 * time.Minute, Order: 3,
				Pos: spec.Position{File: "groups/eu-prod.yaml", Line: 4, Col: 9},
			},
			{
				Name: "us-east-prod", Channel: "stable/rolling", Timezone: "America/New_York", Location: ny,
				Windows: []spec.Window{{Start: 23 * time.Hour, Duration: 3 * time.Hour}},
				Order:   2,
				Pos:     spec.Position{File: "groups/us-east-prod.yaml", Line: 4, Col: 9},
			},
		},
	}
}

type scenario struct {
	name     string // also the golden files' base name
	sentence string
	now      time.Time // default now
	edit     func(t testing.TB, head *spec.State) spec.Errors
	check    func(t *testing.T, r *Report)
}

func channel(st *spec.State, name string) *spec.Channel {
	for _, c := range st.Channels {
		if c.Name == name {
			return c
		}
	}
	panic("no channel " + name)
}

func group(st *spec.State, name string) *spec.Group {
	for _, g := range st.Groups {
		if g.Name == name {
			return g
		}
	}
	panic("no group " + name)
}

func controlPlane(st *spec.State, name string) *spec.ControlPlane {
	for _, cp := range st.ControlPlanes {
		if cp.Name == name {
			return cp
		}
	}
	panic("no control plane " + name)
}

func findChannel(t *testing.T, r *Report, name string) ChannelDiff {
	t.Helper()
	for _, c := range r.Channels {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("channel %s not in the report; channels: %+v", name, r.Channels)
	return ChannelDiff{}
}

var scenarios = []scenario{
	{
		name:     "pinned-upgrade",
		sentence: "raising a pinned channel's minor version is an upgrade caused by the pin",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			return nil
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/cloud")
			if c.Movement != Upgrade || c.Cause != "pin changed" || c.Base.Version != "17.3.0" || c.Head.Version != "17.4.0" {
				t.Errorf("got %+v", c)
			}
			// Monday 22:00 UTC; eu-prod's next window opens Tuesday 02:00 in Berlin.
			if len(r.Updaters) != 1 || r.Updaters[0].Action != "Wait" || !r.Updaters[0].RecheckAt.Equal(time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)) {
				t.Errorf("eu-prod should wait for Tuesday's window: %+v", r.Updaters)
			}
			if len(r.Channels) != 1 || len(r.Groups) != 0 || len(r.ControlPlanes) != 0 {
				t.Errorf("only stable/cloud changed, got %d channels, %d groups, %d control planes", len(r.Channels), len(r.Groups), len(r.ControlPlanes))
			}
		},
	},
	{
		name:     "pinned-downgrade",
		sentence: "lowering a pinned channel is a downgrade",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.1.4"
			return nil
		},
		check: func(t *testing.T, r *Report) {
			if c := findChannel(t, r, "stable/cloud"); c.Movement != Downgrade {
				t.Errorf("movement %q, want downgrade", c.Movement)
			}
			if r.Summary.Downgrades != 1 {
				t.Errorf("summary %+v", r.Summary)
			}
		},
	},
	{
		name:     "major-jump",
		sentence: "moving a pinned channel to another major version is a major jump",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "16.9.1"
			return nil
		},
		check: func(t *testing.T, r *Report) {
			if c := findChannel(t, r, "stable/cloud"); c.Movement != MajorJump {
				t.Errorf("movement %q, want major jump", c.Movement)
			}
		},
	},
	{
		name: "long-freeze-critical",
		sentence: "inside a freeze longer than the horizon each side shows the first window after it, a group that never opens says NothingOpen, " +
			"and a critical update waits out a freeze that forbids it",
		now: inYearEnd,
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			c := channel(h, "stable/cloud")
			c.Version, c.Critical = "17.4.0", true
			group(h, "eu-prod").Freezes[0].AllowCritical = false
			h.Groups = append(h.Groups, &spec.Group{Name: "lab", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin(), Order: 9,
				Pos: spec.Position{File: "groups/lab.yaml", Line: 4, Col: 9}})
			return nil
		},
		check: func(t *testing.T, r *Report) {
			freezeEnd := time.Date(2027, 1, 4, 23, 0, 0, 0, time.UTC)
			afterFreeze := time.Date(2027, 1, 5, 1, 0, 0, 0, time.UTC) // Tuesday 02:00 in Berlin
			if len(r.Groups) != 2 {
				t.Fatalf("groups %+v", r.Groups)
			}
			eu, lab := r.Groups[0], r.Groups[1]
			for side, ws := range map[string][]calendar.Interval{"before": eu.NextBefore, "after": eu.NextAfter} {
				if len(ws) != 1 || !ws[0].Start.Equal(afterFreeze) {
					t.Errorf("eu-prod %s: %v, want only the window after the freeze", side, ws)
				}
			}
			if eu.BeforeRule == nil || eu.BeforeRule.Rule != schedule.RuleFirstWindowAfterFreeze || eu.AfterRule == nil ||
				!strings.Contains(eu.AfterRule.Reason, `freeze "year-end" until 2027-01-04T23:00:00Z`) {
				t.Errorf("eu-prod rules %+v %+v", eu.BeforeRule, eu.AfterRule)
			}
			if lab.Change != Added || len(lab.NextAfter) != 0 || lab.AfterRule == nil || lab.AfterRule.Rule != schedule.RuleNothingOpen {
				t.Errorf("lab %+v", lab)
			}
			// The updaters: eu-prod's critical update waits for the freeze's
			// end, lab's (no freeze) goes at once.
			want := map[string]string{"eu-prod": "Wait/CriticalHeldByFreeze", "lab": "Update/CriticalUpdate"}
			for _, u := range r.Updaters {
				if got := string(u.Action) + "/" + u.Reason; got != want[u.Group] {
					t.Errorf("%s: %s, want %s (%s)", u.Group, got, want[u.Group], u.Message)
				}
				if u.Group == "eu-prod" && !u.RecheckAt.Equal(freezeEnd) {
					t.Errorf("eu-prod rechecks at %s, want the freeze's end %s", u.RecheckAt, freezeEnd)
				}
			}
		},
	},
	{
		name:     "follow-moved-by-control-plane",
		sentence: "a following channel moves when only its control plane's version moves",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			controlPlane(h, "cloud").Version = "17.5.0"
			return nil
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/rolling")
			if c.Movement != Upgrade || c.Cause != "control plane cloud moved 17.4.2 → 17.5.0" {
				t.Errorf("got movement %q cause %q", c.Movement, c.Cause)
			}
			if len(r.Channels) != 1 {
				t.Errorf("the pinned stable/cloud did not move, got %+v", r.Channels)
			}
			if len(r.ControlPlanes) != 1 || r.ControlPlanes[0].Movement != Upgrade {
				t.Errorf("control planes %+v", r.ControlPlanes)
			}
		},
	},
	{
		name:     "control-plane-invalidates-channel",
		sentence: "lowering a control plane below a pinned channel makes that channel invalid",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			controlPlane(h, "cloud").Version = "17.2.3"
			return spec.Errors{{
				Pos:  spec.Position{File: "channels/stable.yaml", Line: 7, Col: 12},
				Path: "spec.version",
				Msg:  `"17.3.0" is above control plane "cloud" version 17.2.3`,
			}}
		},
		check: func(t *testing.T, r *Report) {
			cp := r.ControlPlanes[0]
			if cp.Movement != Downgrade || len(cp.Invalidated) != 1 || cp.Invalidated[0].Channel != "stable/cloud" {
				t.Fatalf("control plane diff %+v", cp)
			}
			c := findChannel(t, r, "stable/cloud")
			if c.Change != Unchanged || len(c.Violations) != 1 || c.Violations[0].Pos.Line != 7 {
				t.Errorf("stable/cloud should be listed as unchanged with its error, got %+v", c)
			}
			if r.Summary.InvalidatedChannels != 1 || r.Summary.HeadErrors != 1 {
				t.Errorf("summary %+v", r.Summary)
			}
		},
	},
	{
		name:     "agents-constraint-invalidates-channel",
		sentence: "narrowing a control plane's agents constraint invalidates the channels it now excludes",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			controlPlane(h, "cloud").Agents = ">= 17.4.0"
			return spec.Errors{{
				Pos:  spec.Position{File: "channels/stable.yaml", Line: 7, Col: 12},
				Path: "spec.version",
				Msg:  `"17.3.0" is outside control plane "cloud" agents constraint ">= 17.4.0"`,
			}}
		},
		check: func(t *testing.T, r *Report) {
			cp := r.ControlPlanes[0]
			if cp.Movement != Same || len(cp.Invalidated) != 1 || cp.Invalidated[0].Channel != "stable/cloud" {
				t.Fatalf("control plane diff %+v", cp)
			}
		},
	},
	{
		name:     "critical-toggled",
		sentence: "marking a channel critical shows the toggle without a version movement",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Critical = true
			return nil
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/cloud")
			if !c.CriticalToggled || c.Movement != Same || c.Change != Modified {
				t.Errorf("got %+v", c)
			}
		},
	},
	{
		name:     "critical-upgrade",
		sentence: "a critical upgrade is applied at once, outside the group's windows",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			c := channel(h, "stable/cloud")
			c.Version, c.Critical = "17.4.1", true
			return nil
		},
		check: func(t *testing.T, r *Report) {
			if len(r.Updaters) != 1 {
				t.Fatalf("updaters %+v", r.Updaters)
			}
			u := r.Updaters[0]
			if u.Group != "eu-prod" || u.Action != "Update" || u.Rule != "Critical" || u.Current != "17.3.0" || u.Target != "17.4.1" {
				t.Errorf("got %+v", u)
			}
		},
	},
	{
		name:     "pin-to-follow",
		sentence: "switching a pinned channel to follow its control plane names the switch as the cause",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			c := channel(h, "stable/cloud")
			c.Version, c.Follow = "", spec.FollowControlPlane
			return nil
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/cloud")
			if !c.ModeSwitched || c.Movement != Upgrade || c.Cause != "now follows control plane cloud" {
				t.Errorf("got %+v", c)
			}
		},
	},
	{
		name:     "channel-added-removed",
		sentence: "a new channel is added and the on-prem channel removed",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			h.Channels = []*spec.Channel{
				{Name: "edge/cloud", ControlPlane: "cloud", Version: spec.NoVersion, Critical: true, Pos: spec.Position{File: "channels/edge.yaml", Line: 4, Col: 9}},
				channel(h, "stable/cloud"),
				channel(h, "stable/rolling"),
			}
			return nil
		},
		check: func(t *testing.T, r *Report) {
			if a := findChannel(t, r, "edge/cloud"); a.Change != Added || a.Head.Version != "" {
				t.Errorf("edge/cloud %+v", a)
			}
			if d := findChannel(t, r, "stable/onprem"); d.Change != Removed {
				t.Errorf("stable/onprem %+v", d)
			}
		},
	},
	{
		name:     "group-window-change",
		sentence: "moving a group's window and lengthening its update shows the next windows before and after",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			g := group(h, "eu-prod")
			g.Windows = []spec.Window{{Days: []time.Weekday{time.Wednesday}, Start: 3 * time.Hour, Duration: 2 * time.Hour}}
			g.UpdateDuration = 45 * time.Minute
			return nil
		},
		check: func(t *testing.T, r *Report) {
			if len(r.Groups) != 1 {
				t.Fatalf("groups %+v", r.Groups)
			}
			g := r.Groups[0]
			if strings.Join(g.Fields, ",") != "windows,updateDuration" {
				t.Errorf("fields %v", g.Fields)
			}
			// Berlin is at UTC+1 in November: Tue 24 Nov 02:00 CET is 01:00 UTC.
			wantBefore := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
			wantAfter := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
			if len(g.NextBefore) != NextWindows || !g.NextBefore[0].Start.Equal(wantBefore) {
				t.Errorf("before %v, want %d windows from %v", g.NextBefore, NextWindows, wantBefore)
			}
			if len(g.NextAfter) != 2 || !g.NextAfter[0].Start.Equal(wantAfter) {
				t.Errorf("after %v, want 2 windows from %v", g.NextAfter, wantAfter)
			}
		},
	},
	{
		name:     "group-timezone-and-channel",
		sentence: "moving a group to another channel and timezone lists both and recomputes its windows",
		edit: func(t testing.TB, h *spec.State) spec.Errors {
			g := group(h, "us-east-prod")
			g.Channel, g.Timezone, g.Location = "stable/cloud", "America/Los_Angeles", mustLoc(t, "America/Los_Angeles")
			return nil
		},
		check: func(t *testing.T, r *Report) {
			g := r.Groups[0]
			if strings.Join(g.Fields, ",") != "channel,timezone" || len(g.NextBefore) == 0 || len(g.NextAfter) == 0 {
				t.Errorf("got %+v", g)
			}
			if g.NextAfter[0].Start.Sub(g.NextBefore[0].Start) != 3*time.Hour {
				t.Errorf("23:00 in Los Angeles is 3h after 23:00 in New York: %v vs %v", g.NextBefore[0], g.NextAfter[0])
			}
		},
	},
	{
		name:     "invalid-head",
		sentence: "head errors are all listed and the one inside a channel document is attached to it",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/onprem").Version = "17.0.0"
			return spec.Errors{
				{Pos: spec.Position{File: "channels/stable.yaml", Line: 21, Col: 12}, Path: "spec.version", Msg: `"17.0.0" is above control plane "onprem" version 16.5.1`},
				{Pos: spec.Position{File: "groups/broken.yaml", Line: 7, Col: 13}, Path: "spec.timezone", Msg: `unknown timezone "Europe/Berln": use an IANA name such as Europe/Berlin`},
			}
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/onprem")
			if len(c.Violations) != 1 || c.Movement != MajorJump {
				t.Errorf("got %+v", c)
			}
			if len(r.Updaters) != 0 {
				t.Errorf("an invalid head is never served, so no updater preview: %+v", r.Updaters)
			}
			if len(r.HeadErrors) != 2 || !strings.Contains(r.Summary.Text, "head is invalid: 2 errors") {
				t.Errorf("summary %q errors %v", r.Summary.Text, r.HeadErrors)
			}
		},
	},
	{
		name:     "rollout-and-concurrency",
		sentence: "adding a rollout to a channel and a concurrency limit to a group shows both, though no version moves",
		edit: func(_ testing.TB, h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Rollout = &spec.Rollout{
				Resume: time.Date(2026, 12, 3, 11, 0, 0, 0, time.FixedZone("CET", 3600)),
				Stages: []spec.Stage{{
					Groups: []string{"eu-prod"}, Canaries: spec.Quantity{Count: 1}, BakeTime: 2 * time.Hour,
					SuccessThreshold: spec.Quantity{Percent: 95, IsPercent: true}, FailureThreshold: spec.DefaultFailureThreshold,
				}},
			}
			group(h, "us-east-prod").MaxConcurrent = spec.Quantity{Percent: 25, IsPercent: true}
			return nil
		},
		check: func(t *testing.T, r *Report) {
			c := findChannel(t, r, "stable/cloud")
			want := "eu-prod (1 canary, bake 2h, success 95%); then the channel's other groups; resume after 2026-12-03T10:00:00Z"
			if c.Change != Modified || c.Movement != Same || !c.RolloutChanged || c.Base.Rollout != "" || c.Head.Rollout != want {
				t.Errorf("got %+v, head rollout %q; want modified, same version, rollout %q", c, c.Head.Rollout, want)
			}
			if len(r.Groups) != 1 || strings.Join(r.Groups[0].Fields, ",") != "maxConcurrent" || r.Groups[0].Head.MaxConcurrent != "25%" || r.Groups[0].Base.MaxConcurrent != "" {
				t.Errorf("groups %+v", r.Groups)
			}
			if r.Summary.ChannelsModified != 1 || r.Summary.GroupsModified != 1 || r.Summary.Upgrades != 0 {
				t.Errorf("summary %+v", r.Summary)
			}
		},
	},
	{
		name:     "no-changes",
		sentence: "identical states say no changes",
		edit:     func(testing.TB, *spec.State) spec.Errors { return nil },
		check: func(t *testing.T, r *Report) {
			if r.Summary.Changed || r.Summary.Text != "no changes" {
				t.Errorf("summary %+v", r.Summary)
			}
			if len(r.Channels)+len(r.Groups)+len(r.ControlPlanes) != 0 {
				t.Errorf("report lists changes: %+v", r)
			}
		},
	},
}

func TestCompare(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Log(sc.sentence)
			base, head := fleet(t), fleet(t)
			errs := sc.edit(t, head)
			at := now
			if !sc.now.IsZero() {
				at = sc.now
			}
			r := Compare(base, head, errs, at)
			sc.check(t, r)
			r.Base, r.Head = "main (0123456789ab)", "work tree"
			for _, format := range []struct {
				ext    string
				render func(*bytes.Buffer, *Report) error
			}{
				{"txt", func(b *bytes.Buffer, r *Report) error { return Text(b, r) }},
				{"md", func(b *bytes.Buffer, r *Report) error { return Markdown(b, r) }},
				{"json", func(b *bytes.Buffer, r *Report) error { return JSON(b, r) }},
			} {
				var b bytes.Buffer
				if err := format.render(&b, r); err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", sc.name+"."+format.ext), b.Bytes())
			}
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reconcile/diff -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test ./reconcile/diff -update rewrites it); got:\n%s", path, got)
	}
}

func TestCompareTreatsNilAsEmpty(t *testing.T) {
	r := Compare(nil, fleet(t), nil, now)
	if r.Summary.ChannelsAdded != 3 || r.Summary.GroupsAdded != 2 || r.Summary.ControlPlanesAdded != 2 {
		t.Errorf("everything in head is new, got %+v", r.Summary)
	}
	r = Compare(fleet(t), nil, nil, now)
	if r.Summary.ChannelsRemoved != 3 || r.Summary.GroupsRemoved != 2 || r.Summary.ControlPlanesRemoved != 2 {
		t.Errorf("everything in base is gone, got %+v", r.Summary)
	}
	for _, g := range r.Groups {
		if len(g.NextBefore) == 0 || g.NextAfter != nil {
			t.Errorf("a removed group shows only its windows before: %+v", g)
		}
	}
}

func TestBaseErrorsAreReported(t *testing.T) {
	r := Compare(fleet(t), fleet(t), nil, now)
	r.BaseErrors = spec.Errors{{Pos: spec.Position{File: "a.yaml", Line: 1, Col: 1}, Msg: "broken"}}
	var text, md bytes.Buffer
	if err := Text(&text, r); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "base is itself invalid (1 error); compared anyway") {
		t.Errorf("text does not say base is invalid:\n%s", text.String())
	}
	if !strings.Contains(md.String(), "Base is itself invalid (1 error); compared anyway") {
		t.Errorf("markdown does not say base is invalid:\n%s", md.String())
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		sentence  string
		old, new_ string
		want      Movement
	}{
		{"same version", "17.1.0", "17.1.0", Same},
		{"patch up", "17.1.0", "17.1.1", Upgrade},
		{"minor down", "17.2.0", "17.1.9", Downgrade},
		{"major up", "16.9.9", "17.0.0", MajorJump},
		{"major down", "17.0.0", "16.9.9", MajorJump},
		{"prerelease to release", "17.0.0-rc.1", "17.0.0", Upgrade},
		{"none to a version", "", "17.0.0", Offered},
		{"a version to none", "17.0.0", "", Withdrawn},
		{"head not semver", "17.0.0", "banana", Unordered},
	} {
		if got := classify(tc.old, tc.new_); got != tc.want {
			t.Errorf("%s: classify(%q, %q) = %q, want %q", tc.sentence, tc.old, tc.new_, got, tc.want)
		}
	}
}

func TestErrorsOfDocument(t *testing.T) {
	st := fleet(t)
	docs := documentStarts(st)
	errs := spec.Errors{
		{Pos: spec.Position{File: "channels/stable.yaml", Line: 4, Col: 9}, Path: "metadata.name", Msg: "duplicate channel"},
		{Pos: spec.Position{File: "channels/stable.yaml", Line: 7, Col: 12}, Path: "spec.version", Msg: "in stable/cloud"},
		{Pos: spec.Position{File: "channels/stable.yaml", Line: 13, Col: 12}, Path: "spec.follow", Msg: "in stable/rolling"},
		{Pos: spec.Position{File: "channels/other.yaml", Line: 7, Col: 12}, Path: "spec.version", Msg: "other file"},
		{Pos: spec.Position{File: "channels/stable.yaml", Line: 6, Col: 1}, Path: "", Msg: "not a spec field"},
	}
	got := errorsOfDocument(errs, channel(st, "stable/cloud").Pos, docs)
	if len(got) != 2 || got[0].Msg != "duplicate channel" || got[1].Msg != "in stable/cloud" {
		t.Errorf("stable/cloud's errors: %v", got)
	}
	got = errorsOfDocument(errs, channel(st, "stable/onprem").Pos, docs)
	if len(got) != 0 {
		t.Errorf("the last document of the file has no errors, got %v", got)
	}
}

func TestMarkdownStaysUnderGitHubLimit(t *testing.T) {
	base, head := fleet(t), fleet(t)
	var errs spec.Errors
	for i := range 3000 {
		name := "bulk/" + strings.Repeat("x", 40) + "-" + string(rune('a'+i%26)) + "-" + strconv.Itoa(i)
		head.Channels = append(head.Channels, &spec.Channel{Name: name, ControlPlane: "cloud", Version: "17.0.0", Pos: spec.Position{File: "bulk.yaml", Line: i*8 + 4, Col: 9}})
		errs = append(errs, spec.Error{Pos: spec.Position{File: "bulk.yaml", Line: i*8 + 7, Col: 12}, Path: "spec.version", Msg: "some long problem ``` with backticks in it"})
	}
	r := Compare(base, head, errs, now)
	var b bytes.Buffer
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if len(out) > MarkdownLimit {
		t.Fatalf("markdown is %d bytes, over %d", len(out), MarkdownLimit)
	}
	if !strings.Contains(out, "This report was cut") {
		t.Error("the cut report does not say it was cut")
	}
	if !strings.HasPrefix(out, "### upkeep diff") {
		t.Error("the heading was lost")
	}

	var small bytes.Buffer
	if err := Markdown(&small, Compare(base, fleet(t), nil, now)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(small.String(), "cut") {
		t.Error("a small report must not be cut")
	}
}

func TestTruncateMarkdownClosesFence(t *testing.T) {
	doc := "# title\n\n````\n" + strings.Repeat("an error line\n", 200) + "````\n"
	out := string(truncateMarkdown([]byte(doc), 1000))
	if len(out) > 1000 {
		t.Fatalf("%d bytes, over 1000", len(out))
	}
	fences := regexp.MustCompile("(?m)^````$").FindAllString(out, -1)
	if len(fences) != 2 {
		t.Errorf("want the fence opened and closed, got %d fence lines in:\n%s", len(fences), out)
	}
}

func TestMarkdownEscapesTableCells(t *testing.T) {
	base, head := fleet(t), fleet(t)
	controlPlane(head, "cloud").Agents = ">= 16.4.0 || <1.0.0"
	r := Compare(base, head, nil, now)
	var b bytes.Buffer
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "| `cloud`") {
			if strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") != 7 {
				t.Errorf("a pipe in a cell breaks the table row: %s", line)
			}
			if !strings.Contains(line, `\<1.0.0`) {
				t.Errorf("< is not escaped: %s", line)
			}
			return
		}
	}
	t.Errorf("no row for cloud in:\n%s", b.String())
}

func TestJSONIsStable(t *testing.T) {
	r := Compare(fleet(t), fleet(t), nil, now)
	var b bytes.Buffer
	if err := JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"channels", "groups", "controlPlanes", "headErrors"} {
		if v, ok := m[key].([]any); !ok || len(v) != 0 {
			t.Errorf("%s is %v, want an empty list", key, m[key])
		}
	}
}

func TestFormatInterval(t *testing.T) {
	for _, tc := range []struct {
		sentence string
		start    time.Time
		d        time.Duration
		tz       string
		want     string
	}{
		{"same day", time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC), 4 * time.Hour, "Europe/Berlin",
			"Tue 2026-11-24 02:00–06:00 CET (01:00–05:00 UTC)"},
		{"crossing midnight locally", time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC), 3 * time.Hour, "America/New_York",
			"Mon 2026-11-23 23:00 EST – Tue 02:00 EST (04:00–07:00 UTC)"},
		{"over a DST change", time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), 2 * time.Hour, "Europe/Berlin",
			"Sun 2026-03-29 01:30 CET – 04:30 CEST (00:30–02:30 UTC)"},
	} {
		got := formatInterval(calendar.Interval{Start: tc.start, End: tc.start.Add(tc.d)}, tc.tz)
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.sentence, got, tc.want)
		}
	}
}

func TestDescribeWindow(t *testing.T) {
	if got := describeWindow(spec.Window{Days: []time.Weekday{time.Tuesday, time.Sunday}, Start: 2*time.Hour + 30*time.Minute, Duration: 90 * time.Minute}); got != "Tue,Sun 02:30 for 1h30m" {
		t.Errorf("got %q", got)
	}
	if got := describeWindow(spec.Window{Start: 0, Duration: 168 * time.Hour}); got != "every day 00:00 for 168h" {
		t.Errorf("got %q", got)
	}
}

// BenchmarkCompare measures a pull request that bumps the control plane
// under a large fleet: 500 channels (half following it) with two groups
// each, every group getting a preview from the decision chain.
func BenchmarkCompare(b *testing.B) {
	berlin := mustLoc(b, "Europe/Berlin")
	big := func(cpVersion string) *spec.State {
		st := &spec.State{ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: cpVersion}}}
		for i := range 500 {
			c := &spec.Channel{Name: "ch-" + strconv.Itoa(i), ControlPlane: "cloud", Version: "17.0.0", Pos: spec.Position{File: "channels.yaml", Line: i*10 + 4}}
			if i%2 == 0 {
				c.Version, c.Follow = "", spec.FollowControlPlane
			}
			st.Channels = append(st.Channels, c)
			for j := range 2 {
				st.Groups = append(st.Groups, &spec.Group{
					Name: c.Name + "-g" + strconv.Itoa(j), Channel: c.Name, Timezone: "Europe/Berlin", Location: berlin,
					Windows: []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}},
				})
			}
		}
		// Sorted by name, as spec.Load returns them.
		slices.SortFunc(st.Channels, func(a, b *spec.Channel) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(st.Groups, func(a, b *spec.Group) int { return strings.Compare(a.Name, b.Name) })
		return st
	}
	base, head := big("17.4.2"), big("17.5.0")
	b.ReportAllocs()
	for b.Loop() {
		r := Compare(base, head, nil, now)
		if len(r.Updaters) != 500 {
			b.Fatalf("%d updater previews, want 500", len(r.Updaters))
		}
	}
}
