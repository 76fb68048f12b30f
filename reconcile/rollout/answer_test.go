package rollout

import (
	"testing"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/spec"
)

func TestAnswer(t *testing.T) {
	stages := twoStages(v2).Stages
	rollout := func(state string, stage int, step string, canaries ...string) fleet.Rollout {
		return fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: state, Stage: stage, Step: step, Canaries: canaries}
	}
	type ask struct {
		group, agent string
		version      string
		reason       string // "" not held
	}
	cases := []struct {
		name  string
		r     fleet.Rollout
		on    []string
		asks  []ask
		group []ask // GroupVersion (agent unused)
	}{
		{
			name:  "a done rollout answers its version to every agent, staged or not",
			r:     rollout(fleet.StateDone, 2, fleet.StepAll),
			asks:  []ask{{"canary-hosts", "a", v2, ""}, {"prod", "b", v2, ""}, {"", "c", v2, ""}, {"unknown", "d", v2, ""}},
			group: []ask{{"prod", "", v2, ""}},
		},
		{
			name: "in the canary step only the canaries get the version; later stages wait",
			r:    rollout(fleet.StateCanary, 0, fleet.StepCanary, "canary-hosts-1"),
			asks: []ask{
				{"canary-hosts", "canary-hosts-1", v2, ""},
				{"canary-hosts", "canary-hosts-0", v1, HeldNotCanary},
				{"prod", "canary-hosts-1", v1, HeldStageLater}, // a canary id is a canary of its stage only
				{"", "x", v1, HeldStageLater},
			},
			group: []ask{{"canary-hosts", "", v1, HeldNotCanary}, {"prod", "", v1, HeldStageLater}},
		},
		{
			name: "baking after the canary step still holds the non-canaries",
			r:    rollout(fleet.StateBaking, 0, fleet.StepCanary, "canary-hosts-1"),
			asks: []ask{{"canary-hosts", "canary-hosts-1", v2, ""}, {"canary-hosts", "canary-hosts-2", v1, HeldNotCanary}},
		},
		{
			name:  "in a stage's all step its agents and every earlier stage get the version",
			r:     rollout(fleet.StateActive, 1, fleet.StepAll),
			asks:  []ask{{"canary-hosts", "a", v2, ""}, {"prod", "b", v2, ""}, {"", "c", v1, HeldStageLater}, {"elsewhere", "d", v1, HeldStageLater}},
			group: []ask{{"prod", "", v2, ""}, {"canary-hosts", "", v2, ""}, {"", "", v1, HeldStageLater}},
		},
		{
			name:  "a pending stage holds its agents; done stages keep the version",
			r:     rollout(fleet.StatePending, 1, ""),
			asks:  []ask{{"canary-hosts", "a", v2, ""}, {"prod", "b", v1, HeldPending}, {"", "c", v1, HeldStageLater}},
			group: []ask{{"prod", "", v1, HeldPending}},
		},
		{
			name:  "halted: nobody new gets the version, agents already on it and done stages keep it",
			r:     rollout(fleet.StateHalted, 1, fleet.StepAll),
			on:    []string{"prod-0"},
			asks:  []ask{{"canary-hosts", "a", v2, ""}, {"prod", "prod-0", v2, ""}, {"prod", "prod-1", v1, HeldHalted}, {"", "c", v1, HeldHalted}},
			group: []ask{{"prod", "", v1, HeldHalted}, {"canary-hosts", "", v2, ""}},
		},
		{
			name: "superseded: like halted until the next rollout starts",
			r:    rollout(fleet.StateSuperseded, 0, fleet.StepCanary, "canary-hosts-1"),
			asks: []ask{{"canary-hosts", "canary-hosts-1", v1, HeldSuperseded}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAnswer(c.r, stages, c.on)
			for _, q := range c.asks {
				v, held, reason := a.VersionFor(q.group, q.agent)
				if v != q.version || held != (q.reason != "") || reason != q.reason {
					t.Errorf("VersionFor(%q, %q) = %s, %v, %q; want %s, %v, %q", q.group, q.agent, v, held, reason, q.version, q.reason != "", q.reason)
				}
				if held && a.Header(reason) != "version="+v2+"; state="+c.r.State+"; stage="+itoa(c.r.Stage)+"; reason="+reason {
					t.Errorf("header %q", a.Header(reason))
				}
			}
			for _, q := range c.group {
				v, held, reason := a.GroupVersion(q.group)
				if v != q.version || held != (q.reason != "") || reason != q.reason {
					t.Errorf("GroupVersion(%q) = %s, %v, %q; want %s, %v, %q", q.group, v, held, reason, q.version, q.reason != "", q.reason)
				}
			}
		})
	}
	if NewAnswers().Channel("x") != nil || (*Answers)(nil).Channel("x") != nil {
		t.Error("an unknown channel has an answer")
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

// benchAnswer is a rollout in its canary step over 10 groups of stages.
func benchAnswer(b *testing.B) *Answer {
	var stages []spec.ResolvedStage
	for i := range 10 {
		stages = append(stages, stage(0, n(1), "group-"+string(rune('a'+i))))
	}
	stages = append(stages, implicit())
	canaries := make([]string, 100)
	for i := range canaries {
		canaries[i] = "group-e-" + itoa(i%10) + itoa(i/10)
	}
	return NewAnswer(fleet.Rollout{Channel: "stable", Version: v2, FromVersion: v1, State: fleet.StateCanary,
		Stage: 4, Step: fleet.StepCanary, Canaries: canaries}, stages, nil)
}

var sinkV, sinkR string
var sinkH bool

func BenchmarkVersionFor(b *testing.B) {
	a := benchAnswer(b)
	b.ReportAllocs()
	for b.Loop() {
		sinkV, sinkH, sinkR = a.VersionFor("group-e", "group-e-55")
	}
}

func BenchmarkVersionForHeld(b *testing.B) {
	a := benchAnswer(b)
	b.ReportAllocs()
	for b.Loop() {
		sinkV, sinkH, sinkR = a.VersionFor("group-e", "some-other-agent-id")
	}
}

func BenchmarkGroupVersion(b *testing.B) {
	a := benchAnswer(b)
	b.ReportAllocs()
	for b.Loop() {
		sinkV, sinkH, sinkR = a.GroupVersion("group-c")
	}
}

// BenchmarkChannelMapLookup is the plain channel answer, for comparison:
// one map lookup of the channel's version.
func BenchmarkChannelMapLookup(b *testing.B) {
	m := map[string]string{"stable": v2, "beta": v3, "group/x": v1}
	b.ReportAllocs()
	for b.Loop() {
		sinkV = m["stable"]
	}
}

// BenchmarkAnswersLookup is the server's whole path: the channel's
// answer from the published tables, then the agent's version.
func BenchmarkAnswersLookup(b *testing.B) {
	t := NewAnswers(benchAnswer(b))
	b.ReportAllocs()
	for b.Loop() {
		sinkV, sinkH, sinkR = t.Channel("stable").VersionFor("group-e", "group-e-55")
	}
}
