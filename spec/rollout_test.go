package spec

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// rolloutFleet adds, to the base fleet, groups eu-canary, us-prod and
// ap-prod on stable/cloud and lab on a second channel, edge.
const rolloutFleet = `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: edge
spec:
  controlPlane: cloud
  follow: controlPlane
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu-canary
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  order: 1
  maxConcurrent: 2
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: us-prod
spec:
  channel: stable/cloud
  timezone: America/New_York
  maxConcurrent: "12.5%"
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: ap-prod
spec:
  channel: stable/cloud
  timezone: Asia/Tokyo
  order: 5
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: lab
spec:
  channel: edge
  timezone: UTC
`

// channelWith is stable/cloud pinned at 17.1.0 with the given spec.rollout
// (indented by four spaces), in its own file c.yaml (rollout at line 7).
func channelWith(rollout string) map[string]string {
	return map[string]string{
		"groups.yaml": rolloutFleet,
		"base.yaml":   strings.Replace(baseFleet, "  version: 17.1.0\n", "  version: 17.1.0\n  rollout:\n"+rollout, 1),
	}
}

func TestLoadDecodesARollout(t *testing.T) {
	st, errs := Load(fleet(channelWith(`    resume: 2026-12-03T10:00:00+01:00
    stages:
      - groups: [eu-canary]
        canaries: 1
        bakeTime: 30m
        successThreshold: "95%"
        failureThreshold: 2
      - groups: [us-prod, eu-prod]
        canaries: 10%
        failureThreshold: "0.5%"
`)))
	if errs != nil {
		t.Fatalf("load: %v", errs)
	}
	want := &Rollout{
		Resume: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC),
		Pos:    Position{"base.yaml", 16, 3},
		Stages: []Stage{
			{
				Groups:   []string{"eu-canary"},
				Canaries: Quantity{Count: 1}, BakeTime: 30 * time.Minute,
				SuccessThreshold: Quantity{Percent: 95, IsPercent: true},
				FailureThreshold: Quantity{Count: 2},
				Pos:              Position{"base.yaml", 19, 9},
			},
			{
				// Left out: bakeTime 0 and successThreshold 100%.
				Groups:           []string{"us-prod", "eu-prod"},
				Canaries:         Quantity{Percent: 10, IsPercent: true},
				SuccessThreshold: Quantity{Percent: 100, IsPercent: true},
				FailureThreshold: Quantity{Percent: 0.5, IsPercent: true},
				Pos:              Position{"base.yaml", 24, 9},
			},
		},
	}
	got := st.Channel("stable/cloud").Rollout
	if got == nil || !got.Resume.Equal(want.Resume) {
		t.Fatalf("rollout = %+v, want resume %s", got, want.Resume)
	}
	got.Resume = want.Resume
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rollout:\n got %+v\nwant %+v", *got, *want)
	}
	if st.Channel("edge").Rollout != nil {
		t.Error("edge has no rollout, want nil")
	}
	for name, want := range map[string]Quantity{
		"eu-canary": {Count: 2},
		"us-prod":   {Percent: 12.5, IsPercent: true},
		"ap-prod":   {}, // unlimited
	} {
		if got := st.Group(name).MaxConcurrent; got != want {
			t.Errorf("%s maxConcurrent = %+v, want %+v", name, got, want)
		}
	}
}

func TestLoadAppliesStageDefaults(t *testing.T) {
	st, errs := Load(fleet(channelWith("    stages:\n      - groups: [eu-prod]\n")))
	if errs != nil {
		t.Fatalf("load: %v", errs)
	}
	ro := st.Channel("stable/cloud").Rollout
	want := Stage{Groups: []string{"eu-prod"}, SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: DefaultFailureThreshold, Pos: Position{"base.yaml", 18, 9}}
	if ro == nil || len(ro.Stages) != 1 || !reflect.DeepEqual(ro.Stages[0], want) || !ro.Resume.IsZero() {
		t.Errorf("rollout = %+v, want one stage %+v and no resume", ro, want)
	}
	if DefaultSuccessThreshold.String() != "100%" || DefaultFailureThreshold.String() != "1" {
		t.Errorf("defaults = %s, %s; want 100%%, 1", DefaultSuccessThreshold, DefaultFailureThreshold)
	}
}

func TestLoadReportsInvalidRollouts(t *testing.T) {
	// In base.yaml, stable/cloud's rollout key is at line 16, its first
	// stage at line 18 (after "stages:" at 17).
	tests := []struct {
		scenario string
		files    map[string]string
		want     []string
	}{
		{
			scenario: "a stage names a group that is not defined, and is told the groups that follow the channel",
			files:    channelWith("    stages:\n      - groups: [eu-canery]\n"),
			want:     []string{`base.yaml:18:18: spec.rollout.stages[0].groups[0]: group "eu-canery" is not defined; define a Group with that name or use one that follows this channel: ap-prod, eu-canary, eu-prod, us-prod`},
		},
		{
			scenario: "a stage names a group that follows another channel, and both channels are named",
			files:    channelWith("    stages:\n      - groups: [eu-canary, lab]\n"),
			want:     []string{`base.yaml:18:29: spec.rollout.stages[0].groups[1]: group "lab" follows channel "edge" (groups.yaml:42:12), not "stable/cloud", so its agents never ask this channel; set the group's channel to "stable/cloud" or remove it from this stage`},
		},
		{
			scenario: "a group in two stages points at the second",
			files:    channelWith("    stages:\n      - groups: [eu-canary]\n      - groups: [eu-prod, eu-canary]\n"),
			want:     []string{`base.yaml:19:27: spec.rollout.stages[1].groups[1]: group "eu-canary" is already in stages[0]; a group belongs to one stage of a channel: remove one of them`},
		},
		{
			scenario: "a group twice in one stage",
			files:    channelWith("    stages:\n      - groups: [eu-prod, eu-prod]\n"),
			want:     []string{`base.yaml:18:27: spec.rollout.stages[0].groups[1]: group "eu-prod" is already in this stage; a group belongs to one stage of a channel: remove one of them`},
		},
		{
			scenario: "a stage with no groups",
			files:    channelWith("    stages:\n      - groups: []\n        canaries: 1\n"),
			want:     []string{`base.yaml:18:9: spec.rollout.stages[0].groups: stage lists no groups; name at least one group, or remove the stage`},
		},
		{
			scenario: "a stage without groups",
			files:    channelWith("    stages:\n      - canaries: 1\n"),
			want:     []string{`base.yaml:18:9: spec.rollout.stages[0].groups: required field is missing`},
		},
		{
			scenario: "a rollout with no stages",
			files:    channelWith("    stages: []\n"),
			want:     []string{`base.yaml:17:5: spec.rollout.stages: rollout has no stages; list at least one stage of groups, or remove rollout to serve the version to every agent at once`},
		},
		{
			scenario: "a rollout without stages",
			files:    channelWith("    resume: 2026-12-03T10:00:00Z\n"),
			want:     []string{`base.yaml:16:3: spec.rollout.stages: required field is missing`},
		},
		{
			scenario: "an unknown field in a stage lists the allowed ones",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        bake: 30m\n"),
			want:     []string{`base.yaml:19:9: spec.rollout.stages[0].bake: unknown field; allowed here: groups, canaries, bakeTime, successThreshold, failureThreshold`},
		},
		{
			scenario: "a percent above 100",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        successThreshold: 150%\n"),
			want:     []string{`base.yaml:19:27: spec.rollout.stages[0].successThreshold: got "150%"; a percent must be at most 100%`},
		},
		{
			scenario: "a percent of zero is refused, and 0 suggested",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        canaries: 0.0%\n"),
			want:     []string{`base.yaml:19:19: spec.rollout.stages[0].canaries: got "0.0%"; a percent must be above 0% (write 0 for none)`},
		},
		{
			scenario: "canaries of the whole stage would make the canary step the all step",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        canaries: 100%\n"),
			want:     []string{`base.yaml:19:19: spec.rollout.stages[0].canaries: canaries "100%" are the whole stage, so the canary step would be the all step; use a lower percent, or 0 for no canaries`},
		},
		{
			scenario: "a negative count of canaries",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        canaries: -1\n"),
			want:     []string{`base.yaml:19:19: spec.rollout.stages[0].canaries: got -1; want a count such as 1 or a percent such as "10%" of the stage's agents`},
		},
		{
			scenario: "a fractional count",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        failureThreshold: 1.5\n"),
			want:     []string{`base.yaml:19:27: spec.rollout.stages[0].failureThreshold: got 1.5; want a count such as 1 or a percent such as "5%" of the step's agents`},
		},
		{
			scenario: "a failure threshold of 0 would halt every rollout",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        failureThreshold: 0\n"),
			want:     []string{`base.yaml:19:27: spec.rollout.stages[0].failureThreshold: got 0, which would halt every rollout before any agent fails; want at least 1, or a percent such as "5%" (default 1)`},
		},
		{
			scenario: "a success threshold of 0 would pass a step with no agent updated",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        successThreshold: 0\n"),
			want:     []string{`base.yaml:19:27: spec.rollout.stages[0].successThreshold: got 0, which would let a step pass with no agent updated; want at least 1, or a percent such as "95%" (default "100%")`},
		},
		{
			scenario: "a bake time of zero is out of range",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        bakeTime: 0s\n"),
			want:     []string{`base.yaml:19:19: spec.rollout.stages[0].bakeTime: got "0s"; want a duration above 0 and at most 168h (one week); leave bakeTime out for no bake`},
		},
		{
			scenario: "a bake time without a unit",
			files:    channelWith("    stages:\n      - groups: [eu-prod]\n        bakeTime: 30\n"),
			want:     []string{`base.yaml:19:19: spec.rollout.stages[0].bakeTime: got 30; want a duration such as "30m" or "4h"`},
		},
		{
			scenario: "a resume time without an offset",
			files:    channelWith("    resume: 2026-12-03T10:00:00\n    stages:\n      - groups: [eu-prod]\n"),
			want:     []string{`base.yaml:17:13: spec.rollout.resume: got "2026-12-03T10:00:00"; want an RFC 3339 time with an offset such as 2026-12-03T10:00:00Z`},
		},
		{
			scenario: "a resume date without a time",
			files:    channelWith("    resume: 2026-12-03\n    stages:\n      - groups: [eu-prod]\n"),
			want:     []string{`base.yaml:17:13: spec.rollout.resume: got "2026-12-03"; want an RFC 3339 time such as 2026-12-03T10:00:00Z`},
		},
		{
			scenario: "a maxConcurrent percent above 100",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: us
spec:
  channel: stable/cloud
  timezone: UTC
  maxConcurrent: 101%
`},
			want: []string{`g.yaml:8:18: spec.maxConcurrent: got "101%"; a percent must be at most 100%`},
		},
		{
			scenario: "a maxConcurrent that is not a quantity",
			files: map[string]string{"g.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: us
spec:
  channel: stable/cloud
  timezone: UTC
  maxConcurrent: five
`},
			want: []string{`g.yaml:8:18: spec.maxConcurrent: got "five"; want a count such as 5 or a percent such as "20%" of the group's agents`},
		},
		{
			scenario: "a channel name in the group-scoped path is refused",
			files: map[string]string{"c.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: group/eu-prod
spec:
  controlPlane: cloud
  version: 17.0.0
`},
			want: []string{`c.yaml:4:9: metadata.name: channel name "group/eu-prod" starts with "group/", which is reserved for the group-scoped channel Teleport's updaters ask (group/<group>); rename the channel`},
		},
		{
			scenario: "a group of a stage that broke the schema is not also judged",
			files: map[string]string{
				"base.yaml": strings.Replace(baseFleet, "  version: 17.1.0\n", "  version: 17.1.0\n  rollout:\n    stages:\n      - groups: [eu-prod, broken]\n", 1),
				"g.yaml":    "apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: broken\nspec:\n  channel: elsewhere\n  timezone: UTC\n  typo: 1\n",
			},
			want: []string{`g.yaml:8:3: spec.typo: unknown field; allowed here: channel, timezone, updateDuration, order, windows, freezes, maxConcurrent`},
		},
		{
			scenario: "the groups of a channel that breaks its own rules are still checked",
			files:    channelWith("    stages:\n      - groups: [nowhere]\n        canaries: 200%\n"),
			want: []string{
				`base.yaml:18:18: spec.rollout.stages[0].groups[0]: group "nowhere" is not defined; define a Group with that name or use one that follows this channel: ap-prod, eu-canary, eu-prod, us-prod`,
				`base.yaml:19:19: spec.rollout.stages[0].canaries: got "200%"; a percent must be at most 100%`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, errs := Load(fleet(tt.files))
			got := errorLines(errs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func TestRolloutStages(t *testing.T) {
	st, errs := Load(fleet(channelWith(`    stages:
      - groups: [eu-canary]
        canaries: 1
        bakeTime: 1h
      - groups: [eu-prod]
        failureThreshold: "5%"
`)))
	if errs != nil {
		t.Fatalf("load: %v", errs)
	}
	got := st.RolloutStages("stable/cloud")
	want := []ResolvedStage{
		{Stage: Stage{Groups: []string{"eu-canary"}, Canaries: Quantity{Count: 1}, BakeTime: time.Hour,
			SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: DefaultFailureThreshold, Pos: Position{"base.yaml", 18, 9}}},
		{Stage: Stage{Groups: []string{"eu-prod"},
			SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: Quantity{Percent: 5, IsPercent: true}, Pos: Position{"base.yaml", 21, 9}}},
		// us-prod (order 0) before ap-prod (order 5); lab follows edge.
		{Implicit: true, Stage: Stage{Groups: []string{"us-prod", "ap-prod"},
			SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: DefaultFailureThreshold, Pos: Position{"base.yaml", 16, 3}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RolloutStages:\n got %+v\nwant %+v", got, want)
	}
	got[0].Groups[0] = "changed"
	if st.Channel("stable/cloud").Rollout.Stages[0].Groups[0] != "eu-canary" {
		t.Error("RolloutStages shares its groups with the State")
	}

	for _, tt := range []struct {
		scenario, group string
		want            int
	}{
		{"a group of the first stage", "eu-canary", 0},
		{"a group of the second stage", "eu-prod", 1},
		{"a group in no stage is in the implicit last stage", "ap-prod", 2},
		{"an agent that reports no group is in the last stage", "", 2},
		{"an agent that reports an unknown group is in the last stage", "mars", 2},
	} {
		if got := StageOf(want, tt.group); got != tt.want {
			t.Errorf("%s: StageOf(%q) = %d, want %d", tt.scenario, tt.group, got, tt.want)
		}
	}
	if got := StageOf(nil, "eu-prod"); got != -1 {
		t.Errorf("StageOf(nil) = %d, want -1", got)
	}
}

func TestRolloutStagesOfChannelsWithoutARollout(t *testing.T) {
	onlyStaged := &State{
		Channels: []*Channel{{Name: "c", Version: "1.0.0", Rollout: &Rollout{Stages: []Stage{{Groups: []string{"a"}, SuccessThreshold: DefaultSuccessThreshold, FailureThreshold: DefaultFailureThreshold}}}}},
		Groups:   []*Group{{Name: "a", Channel: "c"}, {Name: "b", Channel: "other"}},
	}
	paused := &State{Channels: []*Channel{{Name: "c", Version: NoVersion, Rollout: onlyStaged.Channels[0].Rollout}}}
	plain := &State{Channels: []*Channel{{Name: "c", Version: "1.0.0"}}}
	for _, tt := range []struct {
		scenario string
		st       *State
		channel  string
		stages   int
	}{
		{"a channel without a rollout has no stages", plain, "c", 0},
		{"an unknown channel has no stages", plain, "nope", 0},
		{"a paused channel keeps its rollout but has no stages", paused, "c", 0},
		{"every group staged: the implicit last stage is there, empty, for agents without a group", onlyStaged, "c", 2},
	} {
		got := tt.st.RolloutStages(tt.channel)
		if len(got) != tt.stages {
			t.Errorf("%s: %d stages %+v, want %d", tt.scenario, len(got), got, tt.stages)
			continue
		}
		if n := len(got); n > 0 && (!got[n-1].Implicit || len(got[n-1].Groups) != 0 || got[n-1].Groups == nil) {
			t.Errorf("%s: last stage %+v, want implicit with no groups", tt.scenario, got[n-1])
		}
	}
}

func TestQuantityOf(t *testing.T) {
	pct := func(p float64) Quantity { return Quantity{Percent: p, IsPercent: true} }
	for _, tt := range []struct {
		scenario string
		q        Quantity
		n, want  int
	}{
		{"a count", Quantity{Count: 3}, 10, 3},
		{"a count above the agents is all of them", Quantity{Count: 30}, 10, 10},
		{"a percent rounds up", pct(10), 3, 1},
		{"a whole result is not rounded up", pct(10), 30, 3},
		{"a decimal percent that binary cannot hold exactly is not rounded up past the whole number", pct(16.1), 1000, 161},
		{"a sliver above a whole number of a small percent still rounds up", pct(0.5), 201, 2},
		{"100% is everyone", pct(100), 7, 7},
		{"any percent of nobody is nobody", pct(50), 0, 0},
		{"the zero quantity is none", Quantity{}, 10, 0},
	} {
		if got := tt.q.Of(tt.n); got != tt.want {
			t.Errorf("%s: %s of %d = %d, want %d", tt.scenario, tt.q, tt.n, got, tt.want)
		}
	}
}

func TestParseQuantity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Quantity
		err  string
	}{
		{"10%", Quantity{Percent: 10, IsPercent: true}, ""},
		{"12.5%", Quantity{Percent: 12.5, IsPercent: true}, ""},
		{"100%", Quantity{Percent: 100, IsPercent: true}, ""},
		{"0.01%", Quantity{Percent: 0.01, IsPercent: true}, ""},
		{"7", Quantity{Count: 7}, ""},
		{"0%", Quantity{}, `got "0%"; a percent must be above 0% (write 0 for none)`},
		{"100.5%", Quantity{}, `got "100.5%"; a percent must be at most 100%`},
		{"x%", Quantity{}, `got "x%"; want a percent such as "20%" or "12.5%"`},
		{"-3", Quantity{}, `got "-3"; want a count such as 5 or a percent such as "20%"`},
	} {
		got, err := parseQuantity(tt.in)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if got != tt.want || msg != tt.err {
			t.Errorf("parseQuantity(%q) = %+v, %q; want %+v, %q", tt.in, got, msg, tt.want, tt.err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}
