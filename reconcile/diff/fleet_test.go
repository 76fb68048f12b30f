package diff

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/spec"
)

type fleetScenario struct {
	name     string // the golden files' base name, when golden
	sentence string
	golden   bool
	now      time.Time // default now
	edit     func(head *spec.State) spec.Errors
	counts   FleetCounts
	check    func(t *testing.T, f *FleetImpact)
}

var fleetScenarios = []fleetScenario{
	{
		name:     "fleet-pinned-upgrade",
		sentence: "a pinned upgrade without a rollout moves every agent not on the new version, all at once, from the group's first window",
		golden:   true,
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			return nil
		},
		counts: FleetCounts{
			Groups:    map[string]Versions{"eu-prod": {"17.3.0": 1238, "17.4.0": 1, "unknown": 1}},
			Ungrouped: map[string]Versions{"stable/cloud": {"17.3.0": 2}, "stable/rolling": {"17.4.2": 5}},
		},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves 1,241 agents in 1 group, first window Tue 02:00 Europe/Berlin" {
				t.Errorf("summary %q", f.Summary)
			}
			c := f.Channels[0]
			if len(f.Channels) != 1 || c.Staged || len(c.Stages) != 1 || c.Other == nil || c.Other.Moving != 2 || c.Agents != 1242 {
				t.Errorf("got %+v", f.Channels)
			}
		},
	},
	{
		sentence: "a critical upgrade moves its agents at once, whatever the windows",
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			channel(h, "stable/cloud").Critical = true
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 3}}},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves 3 agents in 1 group, at once (critical: windows are skipped)" || f.Channels[0].Stages[0].Groups[0].When != "critical" {
				t.Errorf("got %q, %+v", f.Summary, f.Channels)
			}
		},
	},
	{
		name:     "fleet-server-behind-base",
		sentence: "a server serving another commit than base is named, since its agents may still be moving",
		golden:   true,
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 3}},
			ServedRevision: "1111111111111111111111111111111111111111", BaseRevision: "2222222222222222222222222222222222222222"},
		check: func(t *testing.T, f *FleetImpact) {
			if !f.NotBase {
				t.Errorf("got %+v", f)
			}
		},
	},
	{
		sentence: "a folder's content hash is not compared with base's commit",
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			return nil
		},
		counts: FleetCounts{ServedRevision: "sha256:0123", BaseRevision: "2222222222222222222222222222222222222222"},
		check: func(t *testing.T, f *FleetImpact) {
			if f.NotBase {
				t.Errorf("got %+v", f)
			}
		},
	},
	{
		sentence: "an invalid head moves nobody: it is never served",
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.9.0"
			return spec.Errors{{Pos: spec.Position{File: "channels/stable.yaml", Line: 7, Col: 12}, Path: "spec.version", Msg: "above the control plane"}}
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 3}}},
		check: func(t *testing.T, f *FleetImpact) {
			if !strings.HasPrefix(f.Summary, "merging this moves no agents: head is invalid") || len(f.Channels) != 0 {
				t.Errorf("got %+v", f)
			}
		},
	},
	{
		sentence: "toggling critical alone moves no agent: the version stays",
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Critical = true
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 4, "17.2.0": 1}}},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves no agents: the 5 agents of the affected groups keep their version" || f.Moving != 0 {
				t.Errorf("got %q", f.Summary)
			}
		},
	},
	{
		sentence: "when no agent of the affected groups has reported, the summary says so and names the server",
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			return nil
		},
		counts: FleetCounts{Server: "https://upkeep.example.com"},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves no agents: no agent of the affected groups has reported to https://upkeep.example.com" {
				t.Errorf("got %q", f.Summary)
			}
		},
	},
	{
		sentence: "a group moved to an unchanged channel moves only that group, and not the channel's ungrouped agents",
		edit: func(h *spec.State) spec.Errors {
			group(h, "eu-prod").Channel = "stable/rolling"
			return nil
		},
		counts: FleetCounts{
			Groups:    map[string]Versions{"eu-prod": {"17.3.0": 2}, "us-east-prod": {"17.4.2": 9}},
			Ungrouped: map[string]Versions{"stable/rolling": {"17.4.1": 5}},
		},
		check: func(t *testing.T, f *FleetImpact) {
			c := f.Channels
			if len(c) != 1 || c[0].Name != "stable/rolling" || c[0].Other != nil || c[0].Moving != 2 || c[0].Target != "17.4.2" ||
				len(c[0].Stages[0].Groups) != 1 || c[0].Stages[0].Groups[0].From != "17.3.0" {
				t.Errorf("got %+v", c)
			}
		},
	},
	{
		name:     "fleet-staged-window-open",
		sentence: "under a rollout the stages come in order, the summary's window is the first moving stage's, and a window open now says now",
		golden:   true,
		// Tuesday 01:30 UTC: eu-prod's window (02:00–06:00 Berlin) is open.
		now: time.Date(2026, 11, 24, 1, 30, 0, 0, time.UTC),
		edit: func(h *spec.State) spec.Errors {
			h.Groups = append(h.Groups, &spec.Group{Name: "eu-canary", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin(),
				Windows: []spec.Window{{Days: []time.Weekday{time.Wednesday}, Start: 9 * time.Hour, Duration: 2 * time.Hour}}})
			c := channel(h, "stable/cloud")
			c.Version = "17.4.0"
			c.Rollout = &spec.Rollout{Stages: []spec.Stage{{Groups: []string{"eu-canary"}, Canaries: spec.Quantity{Count: 1}, BakeTime: 2 * time.Hour,
				SuccessThreshold: spec.DefaultSuccessThreshold, FailureThreshold: spec.DefaultFailureThreshold}}}
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 10}, "eu-canary": {"17.3.0": 2}}},
		check: func(t *testing.T, f *FleetImpact) {
			c := f.Channels[0]
			if !c.Staged || len(c.Stages) != 2 || c.Stages[0].Groups[0].Name != "eu-canary" || !c.Stages[1].Implicit {
				t.Fatalf("stages %+v", c.Stages)
			}
			prod := c.Stages[1].Groups[0]
			if prod.When != "now" || !prod.AfterEarlierStages {
				t.Errorf("eu-prod %+v", prod)
			}
			if f.Summary != "merging this moves 12 agents in 2 groups, first window Wed 09:00 Europe/Berlin" {
				t.Errorf("summary %q", f.Summary)
			}
		},
	},
	{
		name:     "fleet-critical-held-by-freeze",
		sentence: "a critical update goes at once only where no freeze forbids it; a group in such a freeze waits for its end, with the rule and the reason",
		golden:   true,
		now:      inYearEnd,
		edit: func(h *spec.State) spec.Errors {
			c := channel(h, "stable/cloud")
			c.Version, c.Critical = "17.4.0", true
			group(h, "eu-prod").Freezes[0].AllowCritical = false
			// eu-lab is frozen too, but its freeze lets critical updates through.
			lab := *group(h, "eu-prod")
			lab.Name, lab.Order = "eu-lab", 1
			lab.Freezes = []spec.Freeze{{Name: "lab-quiet", Start: lab.Freezes[0].Start, End: lab.Freezes[0].End, AllowCritical: true}}
			h.Groups = append(h.Groups, &lab)
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 40}, "eu-lab": {"17.3.0": 2}}},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves 42 agents in 2 groups, at once (critical: windows are skipped), except in 1 group held by a freeze until Tue 2027-01-05 00:00 CET" {
				t.Errorf("summary %q", f.Summary)
			}
			gs := f.Channels[0].Stages[0].Groups
			if len(gs) != 2 || gs[0].Name != "eu-lab" || gs[0].When != "critical" || gs[0].Rule != "Critical" || gs[0].Window != nil {
				t.Fatalf("eu-lab %+v", gs)
			}
			if prod := gs[1]; prod.When != "held" || prod.Rule != "CriticalHeldByFreeze" || !prod.HeldUntil.Equal(time.Date(2027, 1, 4, 23, 0, 0, 0, time.UTC)) ||
				!strings.Contains(prod.Reason, `freeze "year-end" does not allow critical updates`) {
				t.Errorf("eu-prod %+v", prod)
			}
			if f.FirstWindow != nil || f.Channels[0].First != nil {
				t.Errorf("a critical channel waits for no window: %+v", f.FirstWindow)
			}
		},
	},
	{
		sentence: "when every moving group's critical update is held, the summary names the earliest end",
		now:      inYearEnd,
		edit: func(h *spec.State) spec.Errors {
			c := channel(h, "stable/cloud")
			c.Version, c.Critical = "17.4.0", true
			group(h, "eu-prod").Freezes[0].AllowCritical = false
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 3}}},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves 3 agents in 1 group, critical but held by a freeze until Tue 2027-01-05 00:00 CET" {
				t.Errorf("summary %q", f.Summary)
			}
		},
	},
	{
		name:     "fleet-long-freeze",
		sentence: "inside a freeze longer than the horizon a group's first usable window is the first after the freeze, as the server serves it, and a group that never opens says NothingOpen",
		golden:   true,
		now:      inYearEnd,
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			h.Groups = append(h.Groups, &spec.Group{Name: "lab", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin(), Order: 9})
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 40}, "lab": {"17.3.0": 1}}},
		check: func(t *testing.T, f *FleetImpact) {
			if f.Summary != "merging this moves 41 agents in 2 groups, first window Tue 2027-01-05 02:00 Europe/Berlin" {
				t.Errorf("summary %q", f.Summary)
			}
			gs := f.Channels[0].Stages[0].Groups
			if len(gs) != 2 || gs[0].Name != "eu-prod" || gs[0].When != "window" || gs[0].Rule != "FirstWindowAfterFreeze" ||
				!gs[0].Window.Start.Equal(time.Date(2027, 1, 5, 1, 0, 0, 0, time.UTC)) {
				t.Fatalf("eu-prod %+v", gs)
			}
			if lab := gs[1]; lab.When != "none" || lab.Rule != "NothingOpen" || lab.Window != nil {
				t.Errorf("lab %+v", lab)
			}
		},
	},
	{
		sentence: "a first window after a freeze that is too short for the update is no usable window, and says why",
		now:      inYearEnd,
		edit: func(h *spec.State) spec.Errors {
			channel(h, "stable/cloud").Version = "17.4.0"
			group(h, "eu-prod").UpdateDuration = 5 * time.Hour
			return nil
		},
		counts: FleetCounts{Groups: map[string]Versions{"eu-prod": {"17.3.0": 3}}},
		check: func(t *testing.T, f *FleetImpact) {
			g := f.Channels[0].Stages[0].Groups[0]
			if g.When != "none" || g.Rule != "FirstWindowAfterFreeze" || !strings.HasSuffix(g.Reason, "no window there is long enough for the update (5h)") {
				t.Errorf("eu-prod %+v", g)
			}
			if f.Summary != "merging this moves 3 agents in 1 group, but no group has a usable window in the schedule the server serves" {
				t.Errorf("summary %q", f.Summary)
			}
		},
	},
}

// berlin is Europe/Berlin (time/tzdata is linked in by diff_test.go).
func berlin() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}

func TestAddFleet(t *testing.T) {
	for _, sc := range fleetScenarios {
		t.Run(sc.sentence, func(t *testing.T) {
			at := now
			if !sc.now.IsZero() {
				at = sc.now
			}
			base, head := fleet(t), fleet(t)
			errs := sc.edit(head)
			r := Compare(base, head, errs, at)
			fc := sc.counts
			fc.Server = cmpOr(fc.Server, "https://upkeep.example.com")
			fc.Time = at
			AddFleet(r, base, head, fc, at)
			sc.check(t, r.Fleet)
			if !sc.golden {
				return
			}
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

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAffectedGroups(t *testing.T) {
	base, head := fleet(t), fleet(t)
	channel(head, "stable/rolling").ControlPlane = "cloud"
	controlPlane(head, "cloud").Version = "17.4.3" // moves stable/rolling
	r := Compare(base, head, nil, now)
	groups, channels := AffectedGroups(r, head)
	if !slices.Equal(groups, []string{"us-east-prod"}) || !slices.Equal(channels, []string{"stable/rolling"}) {
		t.Errorf("a control plane moving a following channel affects its groups: groups %v, channels %v", groups, channels)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1240: "1,240", 1234567: "1,234,567", -1240: "-1,240"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
