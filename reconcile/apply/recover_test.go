package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A crash is simulated by leaving the journal at each step with the target
// in the state that step can leave it in; Recover must reach a consistent
// end: the new version healthy and kept, or the previous one restored.
func TestRecoverFinishesAnInterruptedApply(t *testing.T) {
	tests := []struct {
		scenario  string
		step      Step
		from      string
		installed string // what the crash left installed
		unhealthy []string
		refuse    []string
		journal   Journal // extra journal fields (Error, Reason)

		outcome      Outcome
		reason       string
		endInstalled string
		skipped      []string
		calls        []string
	}{
		{
			scenario: "installing, the new version was installed and is healthy: kept",
			step:     StepInstalling, installed: "1.3.0",
			outcome: Updated, reason: ReasonHealthy, endInstalled: "1.3.0",
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]"},
		},
		{
			scenario: "installing, the new version was installed but is unhealthy: rolled back and skipped",
			step:     StepInstalling, installed: "1.3.0", unhealthy: []string{"1.3.0"},
			outcome: RolledBack, reason: ReasonUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "installing, nothing changed yet: the old version is restarted and nothing skipped",
			step:     StepInstalling, installed: "1.2.0", unhealthy: []string{"1.3.0"},
			outcome: Failed, reason: ReasonInterruptedBeforeChange, endInstalled: "1.2.0",
			calls: []string{"restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "installing, the install was cut half way leaving nothing: the old version is reinstalled, nothing skipped",
			step:     StepInstalling, installed: "",
			outcome: RolledBack, reason: ReasonInterruptedInstall, endInstalled: "1.2.0",
			calls: []string{"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "restarting, the new version is healthy: kept",
			step:     StepRestarting, installed: "1.3.0",
			outcome: Updated, reason: ReasonHealthy, endInstalled: "1.3.0",
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]"},
		},
		{
			scenario: "restarting, the new version is unhealthy: rolled back and skipped",
			step:     StepRestarting, installed: "1.3.0", unhealthy: []string{"1.3.0"},
			outcome: RolledBack, reason: ReasonUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "settling, the new version is healthy: kept",
			step:     StepSettling, installed: "1.3.0",
			outcome: Updated, reason: ReasonHealthy, endInstalled: "1.3.0",
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]"},
		},
		{
			scenario: "settling, the new version is unhealthy: rolled back and skipped",
			step:     StepSettling, installed: "1.3.0", unhealthy: []string{"1.3.0"},
			outcome: RolledBack, reason: ReasonUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "settling, but the old version is back: it is restarted and the new one skipped",
			step:     StepSettling, installed: "1.2.0",
			outcome: RolledBack, reason: ReasonVersionChanged, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "restarting, a third version is installed: the old one is reinstalled and the new one skipped",
			step:     StepRestarting, installed: "1.2.7",
			outcome: RolledBack, reason: ReasonVersionChanged, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "rolling-back with the new version still installed: the rollback is finished with its reason",
			step:     StepRollingBack, installed: "1.3.0", unhealthy: []string{"1.3.0"},
			journal: Journal{Reason: ReasonUnhealthy, Error: "1.3.0 did not settle healthy: crash loop"},
			outcome: RolledBack, reason: ReasonUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "rolling-back with the old version already reinstalled: restarted and settled",
			step:     StepRollingBack, installed: "1.2.0",
			journal: Journal{Reason: ReasonRestartFailed, Error: "restarting the agent on 1.3.0 failed"},
			outcome: RolledBack, reason: ReasonRestartFailed, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "rolling-back when the old version can no longer be installed: RollbackFailed",
			step:     StepRollingBack, installed: "1.3.0", refuse: []string{"1.2.0"},
			journal: Journal{Reason: ReasonUnhealthy, Error: "1.3.0 did not settle healthy: crash loop"},
			outcome: RollbackFailed, reason: ReasonRollbackInstallFailed, endInstalled: "1.3.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.2.0 [rolling-back]"},
		},
		{
			scenario: "rolling-back after an install interrupted before any change: finished, still nothing skipped",
			step:     StepRollingBack, installed: "1.2.0",
			journal: Journal{Reason: ReasonInterruptedBeforeChange, Error: "the update to 1.3.0 was interrupted before the installed version changed"},
			outcome: Failed, reason: ReasonInterruptedBeforeChange, endInstalled: "1.2.0",
			calls: []string{"restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "rolling-back after a half-finished install: the old version is reinstalled, nothing skipped",
			step:     StepRollingBack, installed: "",
			journal: Journal{Reason: ReasonInterruptedInstall, Error: "the install of 1.3.0 was interrupted and left nothing installed"},
			outcome: RolledBack, reason: ReasonInterruptedInstall, endInstalled: "1.2.0",
			calls: []string{"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
		},
		{
			scenario: "installing a first install that changed nothing: nothing to restore or restart",
			step:     StepInstalling, from: "-", installed: "",
			outcome: Failed, reason: ReasonNoPreviousVersion, endInstalled: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			from := tc.from
			switch from {
			case "":
				from = "1.2.0"
			case "-":
				from = ""
			}
			j := tc.journal
			j.ID, j.From, j.To, j.Step, j.Attempt = "crashed", from, "1.3.0", tc.step, 1
			j.Started = time.Date(2026, 5, 5, 2, 0, 0, 0, time.UTC)
			if err := WriteJournal(dir, j); err != nil {
				t.Fatal(err)
			}
			// A crash mid-write leaves a temporary file behind; it must not matter.
			stale := filepath.Join(dir, ".journal.json.123.tmp")
			if err := os.WriteFile(stale, []byte(`{"step":"`), 0o644); err != nil {
				t.Fatal(err)
			}
			tgt := &fakeTarget{dir: dir, installed: tc.installed, unhealthy: map[string]string{}, refuse: map[string]error{}}
			for _, v := range tc.unhealthy {
				tgt.unhealthy[v] = "crash loop"
			}
			for _, v := range tc.refuse {
				tgt.refuse[v] = errors.New(v + " is not offered by any configured repository")
			}
			a := newApplier(t, dir, tgt)

			res, err := a.Recover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res == nil || res.Outcome != tc.outcome || res.Reason != tc.reason {
				t.Fatalf("got %+v, want %s/%s", res, tc.outcome, tc.reason)
			}
			if !res.Recovered || res.ID != "crashed" || res.From != from || res.To != "1.3.0" {
				t.Errorf("result %+v does not describe the recovered apply", res)
			}
			if got := tgt.get(); got != tc.endInstalled {
				t.Errorf("installed %q, want %q", got, tc.endInstalled)
			}
			if got := tgt.takeCalls(); !equalStrings(got, tc.calls) {
				t.Error(callsDiff(got, tc.calls))
			}
			st := mustState(t, dir)
			if got := st.SkippedVersions(); !equalStrings(got, tc.skipped) {
				t.Errorf("skipped %q, want %q", got, tc.skipped)
			}
			if st.LastResult == nil || st.LastResult.Outcome != tc.outcome || !st.LastResult.Recovered {
				t.Errorf("last result %+v", st.LastResult)
			}
			end := mustJournal(t, dir)
			if end.Step != StepDone || end.Outcome != tc.outcome || end.ID != "crashed" || !end.Started.Equal(j.Started) {
				t.Errorf("journal after Recover: %+v", end)
			}
			if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale temporary file left: %v", err)
			}

			// Idempotent: a second run finds nothing to do and changes nothing.
			before, _ := os.ReadFile(StatePath(dir))
			again, err := a.Recover(context.Background())
			if err != nil || again != nil {
				t.Fatalf("second Recover: %+v, %v", again, err)
			}
			if calls := tgt.takeCalls(); len(calls) != 0 {
				t.Errorf("second Recover called the target: %q", calls)
			}
			if after, _ := os.ReadFile(StatePath(dir)); string(after) != string(before) {
				t.Errorf("second Recover changed the state file")
			}
		})
	}
}

func TestRecoverWithNothingToFinish(t *testing.T) {
	dir := t.TempDir()
	tgt := &fakeTarget{dir: dir, installed: "1.2.0"}
	a := newApplier(t, dir, tgt)
	if res, err := a.Recover(context.Background()); res != nil || err != nil {
		t.Fatalf("no journal: %+v, %v", res, err)
	}
	if res := a.Apply(context.Background(), "1.2.0", "1.3.0"); res.Outcome != Updated {
		t.Fatalf("apply: %+v", res)
	}
	tgt.takeCalls()
	if res, err := a.Recover(context.Background()); res != nil || err != nil {
		t.Fatalf("finished journal: %+v, %v", res, err)
	}
	if calls := tgt.takeCalls(); len(calls) != 0 {
		t.Errorf("target called: %q", calls)
	}
}

func TestRecoverKeepsTheJournalWhenTheInstalledVersionCannotBeRead(t *testing.T) {
	dir := t.TempDir()
	j := Journal{ID: "x", From: "1.2.0", To: "1.3.0", Step: StepSettling, Attempt: 1}
	if err := WriteJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	tgt := &fakeTarget{dir: dir, installed: "1.3.0", currentErr: errors.New("dpkg: status database locked")}
	a := newApplier(t, dir, tgt)
	res, err := a.Recover(context.Background())
	if err == nil || res != nil || !strings.Contains(err.Error(), "status database locked") || !strings.Contains(err.Error(), "the next start tries again") {
		t.Fatalf("Recover: %+v, %v", res, err)
	}
	if got := mustJournal(t, dir); got.Step != StepSettling {
		t.Errorf("journal moved to %s", got.Step)
	}
	tgt.currentErr = nil
	if res, err := a.Recover(context.Background()); err != nil || res.Outcome != Updated {
		t.Fatalf("Recover once the version is readable: %+v, %v", res, err)
	}
}

func TestRecoverRefusesACorruptJournal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(JournalPath(dir), []byte("{\n  \"step\": installing\n}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tgt := &fakeTarget{dir: dir, installed: "1.3.0"}
	_, err := newApplier(t, dir, tgt).Recover(context.Background())
	var ce *CorruptFileError
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), JournalPath(dir)+":2:11: ") || !strings.Contains(err.Error(), "move the file aside") {
		t.Fatalf("error %v", err)
	}
	if calls := tgt.takeCalls(); len(calls) != 0 {
		t.Errorf("target called: %q", calls)
	}
}
