package spec

import (
	"slices"
	"testing"
	"time"
)

// The bundled example fleet is what new users copy: it must load, and its
// rollout and concurrency limits must read back as its comments say.
func TestLoadExampleFleet(t *testing.T) {
	st, errs := LoadDir("../examples/fleet")
	if errs != nil {
		t.Fatalf("examples/fleet: %v", errs)
	}
	pct := func(p float64) Quantity { return Quantity{Percent: p, IsPercent: true} }
	stages := st.RolloutStages("stable/cloud")
	type stage struct {
		groups           []string
		canaries         Quantity
		bake             time.Duration
		success, failure Quantity
		implicit         bool
	}
	want := []stage{
		{[]string{"us-east-canary"}, Quantity{Count: 1}, 2 * time.Hour, pct(100), Quantity{Count: 1}, false},
		{[]string{"us-east-prod", "eu-prod"}, pct(10), 4 * time.Hour, pct(95), pct(2), false},
		{[]string{}, Quantity{}, 0, pct(100), Quantity{Count: 1}, true},
	}
	if len(stages) != len(want) {
		t.Fatalf("stable/cloud has %d stages %+v, want %d", len(stages), stages, len(want))
	}
	for i, w := range want {
		s := stages[i]
		got := stage{s.Groups, s.Canaries, s.BakeTime, s.SuccessThreshold, s.FailureThreshold, s.Implicit}
		if !slices.Equal(got.groups, w.groups) || got.canaries != w.canaries || got.bake != w.bake ||
			got.success != w.success || got.failure != w.failure || got.implicit != w.implicit {
			t.Errorf("stage %d = %+v, want %+v", i, got, w)
		}
		if s.Pos.File != "channels/stable.yaml" || s.Pos.Line == 0 {
			t.Errorf("stage %d position %s, want a line of channels/stable.yaml", i, s.Pos)
		}
	}
	for _, ch := range st.Channels {
		if ch.Name != "stable/cloud" && st.RolloutStages(ch.Name) != nil {
			t.Errorf("%s has stages; only stable/cloud has a rollout", ch.Name)
		}
	}
	for name, want := range map[string]Quantity{"us-east-canary": {Count: 1}, "us-east-prod": pct(25), "eu-prod": {Count: 3}, "eu-canary": {}} {
		if g := st.Group(name); g == nil || g.MaxConcurrent != want {
			t.Errorf("%s maxConcurrent = %+v, want %s", name, g, want)
		}
	}
}
