package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"upkeep.dev/upkeep/reconcile/fleet"
)

func TestRolloutCommand(t *testing.T) {
	s := startFleetServer(t, fleetRepoFiles)
	s.seed(t, fleetAgents)
	s.seedRollout(t)
	auth := []string{"--server", s.URL, "--token-file", s.TokenFile}
	run := func(t *testing.T, args ...string) (string, int, error) {
		t.Helper()
		return runCmd(t, append(append([]string{"rollout"}, args...), auth...)...)
	}
	stored := func(t *testing.T) fleet.Rollout {
		t.Helper()
		r, ok, err := s.Store.Rollout(context.Background(), "stable/cloud")
		if err != nil || !ok {
			t.Fatalf("the store has no rollout of stable/cloud: %v", err)
		}
		return r
	}

	for _, tc := range []struct {
		scenario, golden string
		args             []string
	}{
		{"status shows the stages with their progress, the canaries, the bake's end and the last rule", "rollout-status.txt", []string{"status", "stable/cloud"}},
		{"status -o json is the server's rollout detail", "rollout-status.json", []string{"status", "stable/cloud", "-o", "json"}},
		{"status without a channel lists every rollout", "rollout-list.txt", []string{"status"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			out, code, _ := run(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			golden(t, tc.golden, s.stable(out))
		})
	}

	t.Run("halt records HaltedByOperator in the store with the note, and a second halt is a conflict", func(t *testing.T) {
		out, code, _ := run(t, "halt", "stable/cloud", "--note", "canary logs errors")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		r := stored(t)
		if r.State != fleet.StateHalted || r.Rule != "HaltedByOperator" || !strings.Contains(r.Message, "canary logs errors") {
			t.Errorf("stored rollout after halt: %+v", r)
		}
		if !strings.Contains(out, "Baking → Halted (HaltedByOperator/") || !strings.Contains(out, "by operator:token-") {
			t.Errorf("halt's output:\n%s", out)
		}
		_, code, err := run(t, "halt", "stable/cloud")
		if code != 1 || err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "upkeep rollout status") {
			t.Errorf("second halt: exit %d: %v", code, err)
		}
	})

	t.Run("resume records ResumedByOperator in the store; -o json is the step", func(t *testing.T) {
		out, code, _ := run(t, "resume", "stable/cloud", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var step struct {
			Rollout    fleet.Rollout
			Transition fleet.Transition
		}
		if err := json.Unmarshal([]byte(out), &step); err != nil {
			t.Fatalf("%v in:\n%s", err, out)
		}
		r := stored(t)
		if r.State == fleet.StateHalted || r.Rule != "ResumedByOperator" || step.Transition.Rule != "ResumedByOperator" || step.Rollout.State != r.State {
			t.Errorf("stored %+v; answered %+v", r, step)
		}
	})
}
