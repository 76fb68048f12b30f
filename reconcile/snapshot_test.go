package reconcile_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the golden schedules must not depend on the host's zoneinfo

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestBuildSnapshotResolvesChannels(t *testing.T) {
	cloud := &spec.ControlPlane{Name: "cloud", Version: "17.4.2"}
	narrow := &spec.ControlPlane{Name: "narrow", Version: "17.4.2", Agents: ">= 17.2.0"}
	cases := []struct {
		scenario     string
		channel      spec.Channel
		wantVersion  string
		wantBody     string
		wantCritical string
		wantWithheld string // substring; "" means not withheld
	}{
		{
			scenario:    "a pinned channel offers its pinned version with a leading v",
			channel:     spec.Channel{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.3.0"},
			wantVersion: "17.3.0", wantBody: "v17.3.0", wantCritical: "no",
		},
		{
			scenario:    "a following channel offers its control plane's version",
			channel:     spec.Channel{Name: "rolling", ControlPlane: "cloud", Follow: spec.FollowControlPlane},
			wantVersion: "17.4.2", wantBody: "v17.4.2", wantCritical: "no",
		},
		{
			scenario:    "a channel pinned to none offers no version",
			channel:     spec.Channel{Name: "paused", ControlPlane: "cloud", Version: spec.NoVersion},
			wantVersion: "", wantBody: "none", wantCritical: "no",
		},
		{
			scenario:    "a critical channel says yes",
			channel:     spec.Channel{Name: "hotfix", ControlPlane: "cloud", Version: "17.4.1", Critical: true},
			wantVersion: "17.4.1", wantBody: "v17.4.1", wantCritical: "yes",
		},
		{
			scenario:    "a pinned version written with a v is served with exactly one",
			channel:     spec.Channel{Name: "v-prefixed", ControlPlane: "cloud", Version: "v17.0.0"},
			wantVersion: "17.0.0", wantBody: "v17.0.0", wantCritical: "no",
		},
		{
			scenario:    "the oldest version one major below the control plane is offered",
			channel:     spec.Channel{Name: "old", ControlPlane: "cloud", Version: "16.0.0"},
			wantVersion: "16.0.0", wantBody: "v16.0.0", wantCritical: "no",
		},
		{
			scenario: "a version above the control plane is withheld",
			channel:  spec.Channel{Name: "ahead", ControlPlane: "cloud", Version: "17.9.0"},
			wantBody: "none", wantCritical: "no",
			wantWithheld: `"17.9.0" is above control plane "cloud" version 17.4.2`,
		},
		{
			scenario: "a version two majors below the control plane is withheld",
			channel:  spec.Channel{Name: "ancient", ControlPlane: "cloud", Version: "15.4.0"},
			wantBody: "none", wantCritical: "no",
			wantWithheld: "below 16.0.0",
		},
		{
			scenario: "a version outside the agents constraint is withheld",
			channel:  spec.Channel{Name: "narrowed", ControlPlane: "narrow", Version: "17.1.0"},
			wantBody: "none", wantCritical: "no",
			wantWithheld: `"17.1.0" is outside control plane "narrow" agents constraint ">= 17.2.0"`,
		},
		{
			scenario: "a channel following a missing control plane offers nothing",
			channel:  spec.Channel{Name: "orphan", ControlPlane: "gone", Follow: spec.FollowControlPlane},
			wantBody: "none", wantCritical: "no",
			wantWithheld: `control plane "gone" does not exist`,
		},
		{
			scenario: "a version that is not semver is withheld",
			channel:  spec.Channel{Name: "garbage", ControlPlane: "cloud", Version: "17.3"},
			wantBody: "none", wantCritical: "no",
			wantWithheld: "want a semantic version",
		},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			ch := tc.channel
			st := &spec.State{ControlPlanes: []*spec.ControlPlane{cloud, narrow}, Channels: []*spec.Channel{&ch}}
			snap := reconcile.BuildSnapshot(st, "rev1", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC))
			v := snap.Channel(ch.Name)
			if v == nil {
				t.Fatalf("channel %q missing from the snapshot", ch.Name)
			}
			if v.Version != tc.wantVersion {
				t.Errorf("Version = %q, want %q", v.Version, tc.wantVersion)
			}
			if string(v.VersionBody) != tc.wantBody {
				t.Errorf("VersionBody = %q, want %q", v.VersionBody, tc.wantBody)
			}
			if string(v.CriticalBody) != tc.wantCritical {
				t.Errorf("CriticalBody = %q, want %q", v.CriticalBody, tc.wantCritical)
			}
			if tc.wantWithheld == "" && v.Withheld != "" {
				t.Errorf("withheld: %s", v.Withheld)
			}
			if tc.wantWithheld != "" && !strings.Contains(v.Withheld, tc.wantWithheld) {
				t.Errorf("Withheld = %q, want it to say %q", v.Withheld, tc.wantWithheld)
			}
		})
	}
}

func fleetState(t *testing.T) *spec.State {
	t.Helper()
	berlin := mustLoc(t, "Europe/Berlin")
	return &spec.State{
		ControlPlanes: []*spec.ControlPlane{
			{Name: "cloud", Version: "17.4.2"},
			{Name: "onprem", Version: "16.5.1"},
		},
		// Deliberately out of order: the snapshot sorts.
		Channels: []*spec.Channel{
			{Name: "stable/rolling", ControlPlane: "cloud", Follow: spec.FollowControlPlane},
			{Name: "paused", ControlPlane: "onprem", Version: spec.NoVersion},
			{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.3.0", Critical: true},
		},
		Groups: []*spec.Group{
			{
				Name: "eu-prod", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin,
				UpdateDuration: 90 * time.Minute, Order: 2,
				Windows: []spec.Window{
					{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour},
					// 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 → 03:00).
					{Days: []time.Weekday{time.Sunday}, Start: 2*time.Hour + 30*time.Minute, Duration: time.Hour},
				},
				Freezes: []spec.Freeze{{
					Name:  "release-day",
					Start: time.Date(2026, 4, 2, 0, 0, 0, 0, berlin),
					End:   time.Date(2026, 4, 2, 3, 0, 0, 0, berlin),
				}},
			},
			{
				Name: "ops", Channel: "stable/rolling", Timezone: "UTC", Location: time.UTC,
				Windows: []spec.Window{{Start: 11*time.Hour + 30*time.Minute, Duration: time.Hour}},
			},
			{Name: "lab", Channel: "paused", Timezone: "UTC", Location: time.UTC},
		},
	}
}

// fixedNow is a Saturday, the day before Europe/Berlin springs forward.
var fixedNow = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

func TestBuildSnapshotChannelDocuments(t *testing.T) {
	snap := reconcile.BuildSnapshot(fleetState(t), "0123abcd", fixedNow)

	var names []string
	for _, c := range snap.Channels() {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "paused,stable/cloud,stable/rolling" {
		t.Errorf("Channels() order = %s, want sorted by name", got)
	}
	if snap.Channel("no/such") != nil {
		t.Errorf("Channel of an unknown name is not nil")
	}
	if snap.Revision != "0123abcd" || !snap.Built.Equal(fixedNow) {
		t.Errorf("Revision %q Built %v", snap.Revision, snap.Built)
	}

	wantDetail := `{"name":"stable/cloud","version":"17.3.0","critical":true,"follow":false,"controlPlane":{"name":"cloud","version":"17.4.2"},"revision":"0123abcd"}` + "\n"
	if got := string(snap.Channel("stable/cloud").JSON); got != wantDetail {
		t.Errorf("detail JSON\n got %s\nwant %s", got, wantDetail)
	}
	wantPaused := `{"name":"paused","version":"none","critical":false,"follow":false,"controlPlane":{"name":"onprem","version":"16.5.1"},"revision":"0123abcd"}` + "\n"
	if got := string(snap.Channel("paused").JSON); got != wantPaused {
		t.Errorf("paused detail JSON\n got %s\nwant %s", got, wantPaused)
	}

	wantList := `{"revision":"0123abcd","channels":[` +
		`{"name":"paused","version":"none","critical":false,"follow":false,"controlPlane":{"name":"onprem","version":"16.5.1"}},` +
		`{"name":"stable/cloud","version":"17.3.0","critical":true,"follow":false,"controlPlane":{"name":"cloud","version":"17.4.2"}},` +
		`{"name":"stable/rolling","version":"17.4.2","critical":false,"follow":true,"controlPlane":{"name":"cloud","version":"17.4.2"}}` +
		"]}\n"
	if got := string(snap.ChannelsJSON); got != wantList {
		t.Errorf("list JSON\n got %s\nwant %s", got, wantList)
	}
}

func TestBuildSnapshotGroupSchedules(t *testing.T) {
	snap := reconcile.BuildSnapshot(fleetState(t), "0123abcd", fixedNow)
	utc := func(month time.Month, day, hour, min int) time.Time {
		return time.Date(2026, month, day, hour, min, 0, 0, time.UTC)
	}

	cases := []struct {
		scenario string
		group    string
		want     []calendar.Interval
	}{
		{
			scenario: "Berlin windows across spring-forward, with a freeze cutting one short",
			group:    "eu-prod",
			want: []calendar.Interval{
				// Sun 29 Mar 02:30 does not exist: opens at the change (03:00 CEST = 01:00Z).
				{Start: utc(3, 29, 1, 0), End: utc(3, 29, 2, 0)},
				// From here on CEST (UTC+2): 02:00 local is 00:00Z.
				{Start: utc(3, 31, 0, 0), End: utc(3, 31, 4, 0)},
				// Thu 2 Apr: frozen until 03:00 CEST (01:00Z).
				{Start: utc(4, 2, 1, 0), End: utc(4, 2, 4, 0)},
				{Start: utc(4, 5, 0, 30), End: utc(4, 5, 1, 30)},
				{Start: utc(4, 7, 0, 0), End: utc(4, 7, 4, 0)},
				{Start: utc(4, 9, 0, 0), End: utc(4, 9, 4, 0)},
			},
		},
		{
			scenario: "a window open at the build time is listed with its real start",
			group:    "ops",
			want: func() []calendar.Interval {
				var ws []calendar.Interval
				for d := 0; d < 15; d++ { // 28 Mar (open at 12:00) through 11 Apr 11:30
					start := utc(3, 28+d, 11, 30)
					ws = append(ws, calendar.Interval{Start: start, End: start.Add(time.Hour)})
				}
				return ws
			}(),
		},
		// Never an empty schedule, which Teleport's updaters read as "update
		// now": one zero-length window (schedule.Publish, rule NothingOpen).
		{scenario: "a group without windows serves a never-open placeholder", group: "lab"},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			g := snap.Group(tc.group)
			if g == nil {
				t.Fatalf("group %q missing", tc.group)
			}
			if len(g.Windows) != len(tc.want) {
				t.Fatalf("%d windows, want %d: %v", len(g.Windows), len(tc.want), g.Windows)
			}
			for i := range tc.want {
				if !g.Windows[i].Start.Equal(tc.want[i].Start) || !g.Windows[i].End.Equal(tc.want[i].End) {
					t.Errorf("window %d = %v–%v, want %v–%v", i, g.Windows[i].Start, g.Windows[i].End, tc.want[i].Start, tc.want[i].End)
				}
			}
			golden(t, "schedule-"+tc.group+".json", g.ScheduleJSON)
			golden(t, "schedule-"+tc.group+".systemd", g.ScheduleSystemd)
			if len(tc.want) > 0 { // the placeholder is no real window; see reconcile/schedule
				checkScheduleFormats(t, g)
			}
		})
	}
}

// checkScheduleFormats reads both schedule bodies back the way Teleport's
// updaters do and compares them with the windows.
func checkScheduleFormats(t *testing.T, g *reconcile.GroupView) {
	t.Helper()
	// Kubernetes: types.AgentUpgradeSchedule.
	var kube struct {
		Windows []struct {
			Start time.Time `json:"start"`
			Stop  time.Time `json:"stop"`
		} `json:"windows"`
	}
	dec := json.NewDecoder(bytes.NewReader(g.ScheduleJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kube); err != nil {
		t.Fatalf("schedule JSON %s: %v", g.ScheduleJSON, err)
	}
	if len(kube.Windows) != len(g.Windows) {
		t.Fatalf("schedule JSON has %d windows, want %d", len(kube.Windows), len(g.Windows))
	}
	for i, w := range kube.Windows {
		if !w.Start.Equal(g.Windows[i].Start) || !w.Stop.Equal(g.Windows[i].End) {
			t.Errorf("JSON window %d = %v–%v", i, w.Start, w.Stop)
		}
	}
	// systemd: lines starting with "# " are comments, the rest "<start> <stop>".
	lines := strings.Split(string(g.ScheduleSystemd), "\n")
	if !strings.HasPrefix(lines[0], "# ") {
		t.Errorf("first systemd line %q is not a comment", lines[0])
	}
	if len(lines)-1 != len(g.Windows) {
		t.Fatalf("systemd schedule has %d windows, want %d", len(lines)-1, len(g.Windows))
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("systemd line %q is not two fields", l)
		}
		start, err1 := strconv.ParseInt(f[0], 10, 64)
		stop, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("systemd line %q: %v %v", l, err1, err2)
		}
		if start != g.Windows[i].Start.Unix() || stop != g.Windows[i].End.Unix() {
			t.Errorf("systemd line %q, want window %v", l, g.Windows[i])
		}
	}
}

func TestBuildSnapshotGroupList(t *testing.T) {
	snap := reconcile.BuildSnapshot(fleetState(t), "0123abcd", fixedNow)
	var list struct {
		Revision string    `json:"revision"`
		Built    time.Time `json:"built"`
		Groups   []struct {
			Name           string             `json:"name"`
			Channel        string             `json:"channel"`
			Timezone       string             `json:"timezone"`
			Order          int                `json:"order"`
			UpdateDuration string             `json:"updateDuration"`
			Windows        int                `json:"windows"`
			Open           *calendar.Interval `json:"open"`
			Next           *calendar.Interval `json:"next"`
			NextUsable     *calendar.Interval `json:"nextUsable"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(snap.GroupsJSON, &list); err != nil {
		t.Fatalf("%s: %v", snap.GroupsJSON, err)
	}
	if list.Revision != "0123abcd" || !list.Built.Equal(fixedNow) || len(list.Groups) != 3 {
		t.Fatalf("group list %s", snap.GroupsJSON)
	}
	eu, lab, ops := list.Groups[0], list.Groups[1], list.Groups[2]
	if eu.Name != "eu-prod" || lab.Name != "lab" || ops.Name != "ops" {
		t.Fatalf("groups not sorted by name: %s", snap.GroupsJSON)
	}
	if eu.Order != 2 || eu.UpdateDuration != "1h30m0s" || eu.Windows != 6 || eu.Timezone != "Europe/Berlin" || eu.Channel != "stable/cloud" {
		t.Errorf("eu-prod: %+v", eu)
	}
	// The Sunday window (1h) is next, but a 90m update only fits Tuesday's.
	if eu.Open != nil || eu.Next == nil || !eu.Next.Start.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) ||
		eu.NextUsable == nil || !eu.NextUsable.Start.Equal(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("eu-prod open/next/usable: %v %v %v", eu.Open, eu.Next, eu.NextUsable)
	}
	if lab.UpdateDuration != spec.DefaultUpdateDuration.String() || lab.Windows != 0 || lab.Next != nil || lab.NextUsable != nil {
		t.Errorf("lab: %+v", lab)
	}
	if ops.Open == nil || !ops.Open.Start.Equal(time.Date(2026, 3, 28, 11, 30, 0, 0, time.UTC)) {
		t.Errorf("ops open window: %v", ops.Open)
	}
}

func TestBuildSnapshotGroupDetail(t *testing.T) {
	snap := reconcile.BuildSnapshot(fleetState(t), "0123abcd", fixedNow)
	var detail struct {
		Name, Channel, Timezone, UpdateDuration, Revision string
		Built                                             time.Time
		Windows                                           int
		Next                                              *calendar.Interval
	}
	g := snap.Group("eu-prod")
	if err := json.Unmarshal(g.JSON, &detail); err != nil {
		t.Fatalf("%s: %v", g.JSON, err)
	}
	if detail.Name != "eu-prod" || detail.Channel != "stable/cloud" || detail.Timezone != "Europe/Berlin" ||
		detail.Revision != "0123abcd" || !detail.Built.Equal(fixedNow) || detail.Windows != 6 ||
		detail.Next == nil || !detail.Next.Start.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("eu-prod detail %s", g.JSON)
	}
	if !bytes.HasSuffix(g.JSON, []byte("}\n")) {
		t.Errorf("detail %q: want one JSON line", g.JSON)
	}
	// The detail is the list's entry plus revision and built.
	if !bytes.Contains(snap.GroupsJSON, g.JSON[:bytes.Index(g.JSON, []byte(`,"revision"`))]) {
		t.Errorf("detail %s is not the list's entry in %s", g.JSON, snap.GroupsJSON)
	}
}

func TestBuildSnapshotOfNothing(t *testing.T) {
	snap := reconcile.BuildSnapshot(nil, "r", fixedNow)
	if got := string(snap.ChannelsJSON); got != `{"revision":"r","channels":[]}`+"\n" {
		t.Errorf("channels of an empty state: %s", got)
	}
	if len(snap.Channels()) != 0 || len(snap.Groups()) != 0 || snap.Group("x") != nil {
		t.Errorf("an empty state has views")
	}
}

func TestBuildSnapshotDoesNotAliasTheState(t *testing.T) {
	st := fleetState(t)
	snap := reconcile.BuildSnapshot(st, "r", fixedNow)
	st.Channels[2].Version = "17.4.0"
	st.ControlPlanes[0].Version = "18.0.0"
	if v := snap.Channel("stable/cloud"); v.Version != "17.3.0" || string(v.VersionBody) != "v17.3.0" {
		t.Errorf("changing the state changed the snapshot: %q", v.VersionBody)
	}
	if v := snap.Channel("stable/rolling"); v.Version != "17.4.2" {
		t.Errorf("changing the control plane changed the snapshot: %q", v.Version)
	}
}

func TestScheduleSystemdHeaderIsOneLine(t *testing.T) {
	st := fleetState(t)
	snap := reconcile.BuildSnapshot(st, "evil\nrevision", fixedNow)
	body, _, _ := strings.Cut(string(snap.Group("lab").ScheduleSystemd), "\n1") // a window line follows
	if strings.Contains(body, "\n") || !strings.HasPrefix(body, "# ") {
		t.Errorf("header of a group without windows: %q", body)
	}
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n got %q\nwant %q", name, path, got, want)
	}
}
