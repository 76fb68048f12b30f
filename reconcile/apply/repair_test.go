package apply

import (
	"context"
	"errors"
	"strings"
	"testing"
)

var errBusy = errors.New("package manager is locked: another package manager (pid 4242, dpkg, holds /var/lib/dpkg/lock-frontend) is running; retry later")

// The package manager is repaired before anything reads or changes the
// version: in Recover with the version the interrupted transaction was
// installing, in Apply with none; while another package manager runs
// nothing else happens and the journal is kept.
func TestRepairComesFirst(t *testing.T) {
	repaired := Repair{Rule: "DpkgInterrupted", Message: "dpkg had left upkeep-demo-agent half-configured; `dpkg --configure -a` finished it",
		Commands: [][]string{{"dpkg", "--configure", "-a"}}}
	for _, tc := range []struct {
		scenario    string
		journalStep Step // "" for no unfinished journal: Apply runs
		repairs     []fakeRepair
		wantKeep    string
		wantErr     bool // Recover returns an error, or Apply refuses
		wantOutcome Outcome
		wantCalls   int // Target calls after the repair
	}{
		{scenario: "Recover of an interrupted install repairs toward the target, then judges it",
			journalStep: StepInstalling, repairs: []fakeRepair{{rep: repaired}}, wantKeep: "1.3.0", wantOutcome: Updated, wantCalls: 2},
		{scenario: "Recover of an interrupted rollback repairs toward the previous version",
			journalStep: StepRollingBack, repairs: []fakeRepair{{rep: repaired}}, wantKeep: "1.2.0", wantOutcome: RolledBack, wantCalls: 2},
		{scenario: "Recover while another package manager runs does nothing and keeps the journal",
			journalStep: StepInstalling, repairs: []fakeRepair{{rep: Repair{Rule: "PackageManagerRunning"}, err: errBusy}}, wantKeep: "1.3.0", wantErr: true},
		{scenario: "Apply repairs what someone else's interrupted run left, then updates",
			repairs: []fakeRepair{{rep: repaired}}, wantKeep: "", wantOutcome: Updated, wantCalls: 3},
		{scenario: "Apply while another package manager runs refuses without a journal",
			repairs: []fakeRepair{{rep: Repair{Rule: "PackageManagerRunning"}, err: errBusy}}, wantKeep: "", wantErr: true, wantOutcome: Failed},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			installed := "1.2.0"
			if tc.journalStep != "" {
				installed = "1.3.0"
				if tc.journalStep == StepRollingBack {
					installed = "1.2.0"
				}
				if err := WriteJournal(dir, Journal{ID: "j1", From: "1.2.0", To: "1.3.0", Step: tc.journalStep, Attempt: 1,
					Reason: ReasonUnhealthy, Error: "1.3.0 did not settle healthy"}); err != nil {
					t.Fatal(err)
				}
			}
			tgt := &fakeTarget{dir: dir, installed: installed, repairs: tc.repairs}
			a := newApplier(t, dir, tgt)
			var res *Result
			var err error
			if tc.journalStep != "" {
				res, err = a.Recover(context.Background())
			} else {
				r := a.Apply(context.Background(), "1.2.0", "1.3.0")
				res = &r
				if r.Reason == ReasonRepairFailed {
					err = errors.New(r.Message)
				}
			}
			if len(tgt.repairKeeps) != 1 || tgt.repairKeeps[0] != tc.wantKeep {
				t.Fatalf("Repair called with %q, want once with %q", tgt.repairKeeps, tc.wantKeep)
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "pid 4242") || strings.Contains(err.Error(), "--configure") {
					t.Fatalf("error %v: want it to name the running package manager and never advise dpkg --configure -a", err)
				}
				if calls := tgt.takeCalls(); len(calls) != 0 {
					t.Errorf("target called while another package manager runs: %q", calls)
				}
				if j := mustJournal(t, dir); tc.journalStep != "" && (j == nil || j.Step != tc.journalStep) {
					t.Errorf("journal %+v, want kept at %s", j, tc.journalStep)
				} else if tc.journalStep == "" && j != nil {
					t.Errorf("Apply wrote a journal: %+v", j)
				}
				return
			}
			if err != nil || res == nil || res.Outcome != tc.wantOutcome {
				t.Fatalf("result %+v, %v; want %s", res, err, tc.wantOutcome)
			}
			if res.Repair == nil || res.Repair.Rule != "DpkgInterrupted" || !strings.HasPrefix(res.Message, "first repaired the package manager (DpkgInterrupted: ") {
				t.Errorf("result does not name the repair: %+v", res)
			}
			if len(res.Steps) == 0 || res.Steps[0].Action != "repair" || res.Steps[0].Rule != "DpkgInterrupted" {
				t.Errorf("first step %+v, want the repair", res.Steps)
			}
			if calls := tgt.takeCalls(); len(calls) != tc.wantCalls {
				t.Errorf("calls after the repair: %q", calls)
			}
		})
	}
}
