package apply

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

var errSignature = errors.New("apt-get install failed (exit 100): signature verification failed: NO_PUBKEY 1234")

func TestApply(t *testing.T) {
	tests := []struct {
		scenario  string
		from, to  string
		installed string // before Apply; defaults to from
		target    fakeTarget

		outcome        Outcome
		reason         string
		endInstalled   string
		skipped        []string
		calls          []string
		journal        Step // expected journal step at the end; "" means no journal
		errHas         string
		rollbackErrHas string
		messageHas     []string
	}{
		{
			scenario: "a new version that settles healthy is kept",
			from:     "1.2.0", to: "1.3.0",
			outcome: Updated, reason: ReasonHealthy, endInstalled: "1.3.0",
			calls:      []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]"},
			journal:    StepDone,
			messageHas: []string{"updated from 1.2.0 to 1.3.0", "3 checks passed"},
		},
		{
			scenario: "a new version that does not settle healthy is rolled back and skipped",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{unhealthy: map[string]string{"1.3.0": "unit agent.service restarted 4 times"}},
			outcome: RolledBack, reason: ReasonUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "restarted 4 times",
			messageHas: []string{"1.3.0 did not settle healthy", "1.2.0 is installed and healthy again", "1.3.0 is skipped until the channel offers another version"},
		},
		{
			scenario: "a refused install changes nothing, so nothing is rolled back or skipped",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{refuse: map[string]error{"1.3.0": errSignature}},
			outcome: Failed, reason: ReasonInstallRefused, endInstalled: "1.2.0",
			calls:   []string{"install 1.3.0 [installing]"},
			journal: StepDone, errHas: "NO_PUBKEY",
			messageHas: []string{"1.2.0 is still installed", "1.3.0 is not skipped"},
		},
		{
			scenario: "an install that fails after changing the package is rolled back and skipped",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{breaks: map[string]string{"1.3.0": "1.3.0"}},
			outcome: RolledBack, reason: ReasonInstallFailed, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "post-installation script",
			messageHas: []string{"installing 1.3.0 failed after changing the installed version (now 1.3.0)"},
		},
		{
			scenario: "an install that fails half way, leaving nothing installed, is rolled back",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{breaks: map[string]string{"1.3.0": ""}},
			outcome: RolledBack, reason: ReasonInstallFailed, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, messageHas: []string{"(now nothing)"},
		},
		{
			scenario: "a new version whose restart fails is rolled back and skipped",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{restartErr: map[string]error{"1.3.0": errors.New("systemctl restart agent.service: exit status 1")}},
			outcome: RolledBack, reason: ReasonRestartFailed, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "systemctl restart",
		},
		{
			scenario: "health that cannot be judged after the update counts as not healthy",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{settleErr: map[string]error{"1.3.0": errors.New("systemctl: command not found")}},
			outcome: RolledBack, reason: ReasonHealthUnknown, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "command not found",
		},
		{
			scenario: "a rollback whose reinstall fails is RollbackFailed with both errors",
			from:     "1.2.0", to: "1.3.0",
			target: fakeTarget{
				unhealthy: map[string]string{"1.3.0": "http://127.0.0.1:3000/readyz answered 503"},
				refuse:    map[string]error{"1.2.0": errors.New("1.2.0 is not offered by any configured repository")},
			},
			outcome: RollbackFailed, reason: ReasonRollbackInstallFailed, endInstalled: "1.3.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "answered 503", rollbackErrHas: "not offered by any configured repository",
			messageHas: []string{"answered 503", "rolling back to 1.2.0 failed", "not offered by any configured repository", "The agent may be down"},
		},
		{
			scenario: "a rollback whose restart fails is RollbackFailed",
			from:     "1.2.0", to: "1.3.0",
			target: fakeTarget{
				unhealthy:  map[string]string{"1.3.0": "crash loop"},
				restartErr: map[string]error{"1.2.0": errors.New("unit agent.service is masked")},
			},
			outcome: RollbackFailed, reason: ReasonRollbackRestartFailed, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "crash loop", rollbackErrHas: "masked",
		},
		{
			scenario: "an old version that does not settle after the rollback is RollbackFailed, the new one still skipped",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{unhealthy: map[string]string{"1.3.0": "crash loop", "1.2.0": "auth server unreachable"}},
			outcome: RollbackFailed, reason: ReasonRollbackUnhealthy, endInstalled: "1.2.0", skipped: []string{"1.3.0"},
			calls: []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]",
				"install 1.2.0 [rolling-back]", "restart 1.2.0 [rolling-back]", "settle 1.2.0 [rolling-back]"},
			journal: StepDone, errHas: "crash loop", rollbackErrHas: "auth server unreachable",
		},
		{
			scenario: "a first install that proves unhealthy has nothing to roll back to: it stays and is skipped",
			from:     "", to: "1.3.0",
			target:  fakeTarget{unhealthy: map[string]string{"1.3.0": "crash loop"}},
			outcome: Failed, reason: ReasonNoPreviousVersion, endInstalled: "1.3.0", skipped: []string{"1.3.0"},
			calls:   []string{"install 1.3.0 [installing]", "restart 1.3.0 [restarting]", "settle 1.3.0 [settling]"},
			journal: StepDone, messageHas: []string{"nothing to roll back to", "1.3.0 stays installed"},
		},
		{
			scenario: "a refused first install leaves nothing installed and skips nothing",
			from:     "", to: "1.3.0",
			target:  fakeTarget{refuse: map[string]error{"1.3.0": errSignature}},
			outcome: Failed, reason: ReasonInstallRefused, endInstalled: "",
			calls:   []string{"install 1.3.0 [installing]"},
			journal: StepDone,
		},
		{
			scenario: "an apply from a version that is not installed changes nothing",
			from:     "1.2.0", to: "1.3.0", installed: "1.1.0",
			outcome: Failed, reason: ReasonFromMismatch, endInstalled: "1.1.0",
			messageHas: []string{"asked to update from 1.2.0 but 1.1.0 is installed"},
		},
		{
			scenario: "an unreadable installed version changes nothing",
			from:     "1.2.0", to: "1.3.0",
			target:  fakeTarget{currentErr: errors.New("dpkg-query: exit status 2")},
			outcome: Failed, reason: ReasonCurrentUnknown, endInstalled: "1.2.0",
		},
		{
			scenario: "asking for the installed version is an invalid request",
			from:     "1.3.0", to: "v1.3.0",
			outcome: Failed, reason: ReasonInvalidRequest, endInstalled: "1.3.0",
		},
		{
			scenario: "asking for no version is an invalid request",
			from:     "1.2.0", to: " ",
			outcome: Failed, reason: ReasonInvalidRequest, endInstalled: "1.2.0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			tgt := &tc.target
			tgt.dir = dir
			tgt.installed = tc.from
			if tc.installed != "" {
				tgt.installed = tc.installed
			}
			res := newApplier(t, dir, tgt).Apply(context.Background(), tc.from, tc.to)

			if res.Outcome != tc.outcome || res.Reason != tc.reason {
				t.Fatalf("got %s/%s, want %s/%s: %s", res.Outcome, res.Reason, tc.outcome, tc.reason, res.Message)
			}
			tgt.currentErr = nil
			if got, _ := tgt.Current(context.Background()); got != tc.endInstalled {
				t.Errorf("installed at the end: %q, want %q", got, tc.endInstalled)
			}
			if got := tgt.takeCalls(); !equalStrings(got, tc.calls) {
				t.Error(callsDiff(got, tc.calls))
			}
			st := mustState(t, dir)
			if got := st.SkippedVersions(); !equalStrings(got, tc.skipped) {
				t.Errorf("skip list %q, want %q", got, tc.skipped)
			}
			if res.Skipped != (len(tc.skipped) > 0) {
				t.Errorf("Result.Skipped = %v with skip list %q", res.Skipped, tc.skipped)
			}
			for _, k := range st.Skipped {
				if k.Reason == "" || strings.HasPrefix(k.Reason, "Rollback") || k.Message == "" || k.Since.IsZero() || k.From != tc.from {
					t.Errorf("skip entry %+v: want reason, message, time and from %q", k, tc.from)
				}
			}
			if st.LastResult == nil || st.LastResult.Outcome != res.Outcome || st.LastResult.Message != res.Message {
				t.Errorf("state's last result %+v, want the returned one", st.LastResult)
			}
			j := mustJournal(t, dir)
			switch {
			case tc.journal == "" && j != nil:
				t.Errorf("journal written (%+v) for an apply that did not start", j)
			case tc.journal != "" && (j == nil || j.Step != tc.journal || j.Outcome != tc.outcome):
				t.Errorf("journal %+v, want step %s outcome %s", j, tc.journal, tc.outcome)
			case j != nil && (j.ID != res.ID || j.From != tc.from || j.To != strings.TrimSpace(tc.to) || j.Attempt != 1):
				t.Errorf("journal %+v does not match the result %s", j, res.ID)
			}
			if tc.errHas != "" && !strings.Contains(res.Error, tc.errHas) || tc.outcome == Updated && res.Error != "" {
				t.Errorf("Error %q, want it to contain %q", res.Error, tc.errHas)
			}
			if tc.rollbackErrHas == "" && res.RollbackError != "" || !strings.Contains(res.RollbackError, tc.rollbackErrHas) {
				t.Errorf("RollbackError %q, want %q", res.RollbackError, tc.rollbackErrHas)
			}
			for _, m := range tc.messageHas {
				if !strings.Contains(res.Message, m) {
					t.Errorf("message %q lacks %q", res.Message, m)
				}
			}
			if len(res.Steps) != len(tc.calls) {
				t.Errorf("%d steps recorded for %d calls: %+v", len(res.Steps), len(tc.calls), res.Steps)
			}
			for _, s := range res.Steps {
				if s.Took != time.Second { // the fake clock ticks once before and once after a call
					t.Errorf("step %+v: took %s, want 1s", s, s.Took)
				}
			}
			if len(res.Warnings) > 0 {
				t.Errorf("warnings: %q", res.Warnings)
			}
		})
	}
}

func TestApplyRefusesWhileAnEarlierApplyIsUnfinished(t *testing.T) {
	dir := t.TempDir()
	j := Journal{ID: "x", From: "1.1.0", To: "1.2.0", Step: StepSettling, Attempt: 1}
	if err := WriteJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	tgt := &fakeTarget{dir: dir, installed: "1.2.0"}
	res := newApplier(t, dir, tgt).Apply(context.Background(), "1.2.0", "1.3.0")
	if res.Outcome != Failed || res.Reason != ReasonUnfinishedJournal || !strings.Contains(res.Message, "Recover must finish it") {
		t.Fatalf("got %s/%s: %s", res.Outcome, res.Reason, res.Message)
	}
	if calls := tgt.takeCalls(); len(calls) != 0 {
		t.Errorf("target called: %q", calls)
	}
	if got := mustJournal(t, dir); *got != (Journal{Format: 1, ID: "x", From: "1.1.0", To: "1.2.0", Step: StepSettling, Attempt: 1}) {
		t.Errorf("journal changed: %+v", got)
	}
}

func TestApplyRefusesWhenTheStateFileIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	bad := []byte(`{"format":1,"skipped":[{"version":"1.3.0"`)
	if err := os.WriteFile(StatePath(dir), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	tgt := &fakeTarget{dir: dir, installed: "1.2.0"}
	res := newApplier(t, dir, tgt).Apply(context.Background(), "1.2.0", "1.3.0")
	if res.Outcome != Failed || res.Reason != ReasonStateUnreadable || !strings.Contains(res.Message, StatePath(dir)) {
		t.Fatalf("got %s/%s: %s", res.Outcome, res.Reason, res.Message)
	}
	if calls := tgt.takeCalls(); len(calls) != 0 {
		t.Errorf("target called: %q", calls)
	}
	if got, _ := os.ReadFile(StatePath(dir)); string(got) != string(bad) {
		t.Errorf("the corrupt state file was rewritten: %q", got)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "could not save the result") {
		t.Errorf("warnings %q, want one about the unsaved result", res.Warnings)
	}
}

func TestApplyRefusesWhenTheJournalCannotBeWritten(t *testing.T) {
	// /proc/self exists and refuses new files even to root: the journal
	// cannot be written, so nothing may be installed.
	dir := "/proc/self"
	if f, err := os.CreateTemp(dir, ".probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("/proc/self accepts new files here")
	}
	tgt := &fakeTarget{dir: t.TempDir(), installed: "1.2.0"}
	res := newApplier(t, dir, tgt).Apply(context.Background(), "1.2.0", "1.3.0")
	if res.Outcome != Failed || res.Reason != ReasonJournalUnwritable || res.ID != "" ||
		!strings.Contains(res.Message, "nothing was changed") || !strings.Contains(res.Message, JournalPath(dir)) {
		t.Fatalf("got %s/%s id %q: %s", res.Outcome, res.Reason, res.ID, res.Message)
	}
	if calls := tgt.takeCalls(); len(calls) != 0 {
		t.Errorf("target called: %q", calls)
	}
}

// A SIGTERM (the context ending) mid-apply leaves the journal at its step;
// Recover at the next start finishes the update.
func TestApplyInterruptedIsFinishedByRecover(t *testing.T) {
	for _, tc := range []struct {
		scenario  string
		cancelAt  string
		unhealthy bool
		// transaction: Install runs to its end after the stop, as a
		// package manager's transaction does.
		transaction bool
		step        Step
		outcome     Outcome
		installed   string
		skipped     []string
	}{
		{"stopped while settling a healthy version: kept", "settle 1.3.0", false, false, StepSettling, Updated, "1.3.0", nil},
		{"stopped while settling an unhealthy version: rolled back and skipped", "settle 1.3.0", true, false, StepSettling, RolledBack, "1.2.0", []string{"1.3.0"}},
		{"stopped before the package command started: nothing changed, old version restarted", "install 1.3.0", false, false, StepInstalling, Failed, "1.2.0", nil},
		{"stopped during the package command: it finishes, the journal says installed, restart and settle run next start", "install 1.3.0", false, true, StepRestarting, Updated, "1.3.0", nil},
		{"stopped during the package command of an unhealthy version: it finishes, next start rolls back", "install 1.3.0", true, true, StepRestarting, RolledBack, "1.2.0", []string{"1.3.0"}},
		{"stopped while restarting a healthy version: kept", "restart 1.3.0", false, false, StepRestarting, Updated, "1.3.0", nil},
		{"stopped during the rollback's package command: it finishes, the rollback is finished next start", "install 1.2.0", true, true, StepRollingBack, RolledBack, "1.2.0", []string{"1.3.0"}},
		{"stopped while rolling back: the rollback is finished", "restart 1.2.0", true, false, StepRollingBack, RolledBack, "1.2.0", []string{"1.3.0"}},
		{"stopped while settling the restored version: the rollback is finished", "settle 1.2.0", true, false, StepRollingBack, RolledBack, "1.2.0", []string{"1.3.0"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tgt := &fakeTarget{dir: dir, installed: "1.2.0", cancelAt: tc.cancelAt, cancel: cancel, transaction: tc.transaction}
			if tc.unhealthy {
				tgt.unhealthy = map[string]string{"1.3.0": "crash loop"}
			}
			a := newApplier(t, dir, tgt)
			res := a.Apply(ctx, "1.2.0", "1.3.0")
			if res.Outcome != Interrupted || !strings.Contains(res.Message, "the next start finishes the update") {
				t.Fatalf("got %s/%s: %s", res.Outcome, res.Reason, res.Message)
			}
			if j := mustJournal(t, dir); j.Step != tc.step {
				t.Fatalf("journal at %s, want %s", j.Step, tc.step)
			}
			if st := mustState(t, dir); st.LastResult == nil || st.LastResult.Outcome != Interrupted {
				t.Errorf("last result %+v, want Interrupted", st.LastResult)
			}
			again := a.Apply(context.Background(), "1.2.0", "1.3.0")
			if again.Reason != ReasonUnfinishedJournal {
				t.Errorf("Apply before Recover: %s/%s", again.Outcome, again.Reason)
			}

			tgt.cancelAt = ""
			rec, err := a.Recover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rec == nil || rec.Outcome != tc.outcome || !rec.Recovered || rec.ID != res.ID {
				t.Fatalf("Recover: %+v, want outcome %s for %s", rec, tc.outcome, res.ID)
			}
			if got := tgt.get(); got != tc.installed {
				t.Errorf("installed %q, want %q", got, tc.installed)
			}
			if got := mustState(t, dir).SkippedVersions(); !equalStrings(got, tc.skipped) {
				t.Errorf("skipped %q, want %q", got, tc.skipped)
			}
		})
	}
}

func TestApplyCountsAttemptsOfTheSameVersion(t *testing.T) {
	dir := t.TempDir()
	tgt := &fakeTarget{dir: dir, installed: "1.2.0", refuse: map[string]error{"1.3.0": errSignature, "1.4.0": errSignature}}
	a := newApplier(t, dir, tgt)
	for want := 1; want <= 3; want++ {
		res := a.Apply(context.Background(), "1.2.0", "1.3.0")
		if res.Outcome != Failed || res.Attempt != want || mustJournal(t, dir).Attempt != want {
			t.Fatalf("apply %d: %s attempt %d (journal %d)", want, res.Outcome, res.Attempt, mustJournal(t, dir).Attempt)
		}
	}
	if res := a.Apply(context.Background(), "1.2.0", "1.4.0"); res.Attempt != 1 {
		t.Errorf("another version: attempt %d, want 1", res.Attempt)
	}
	delete(tgt.refuse, "1.3.0")
	if res := a.Apply(context.Background(), "1.2.0", "1.3.0"); res.Outcome != Updated || res.Attempt != 1 {
		t.Errorf("after another version: %s attempt %d, want Updated attempt 1", res.Outcome, res.Attempt)
	}
}

func TestApplyKeepsEarlierSkipsAndRecordsTheResult(t *testing.T) {
	dir := t.TempDir()
	earlier := Skip{Version: "1.2.5", Since: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), From: "1.2.0", Reason: ReasonUnhealthy, Message: "crash loop"}
	if err := WriteState(dir, State{Skipped: []Skip{earlier}, UnusableChecks: 2}); err != nil {
		t.Fatal(err)
	}
	tgt := &fakeTarget{dir: dir, installed: "1.2.0", unhealthy: map[string]string{"1.3.0": "503"}}
	res := newApplier(t, dir, tgt).Apply(context.Background(), "1.2.0", "1.3.0")
	st := mustState(t, dir)
	if len(st.Skipped) != 2 || !st.Skipped[0].Since.Equal(earlier.Since) || st.Skipped[1].Version != "1.3.0" || st.UnusableChecks != 2 {
		t.Fatalf("state after a rollback: %+v", st)
	}
	if st.LastResult.ID != res.ID || len(st.LastResult.Steps) != 6 || st.LastResult.Steps[2].Error != "unhealthy: 503" {
		t.Errorf("last result %+v", st.LastResult)
	}
}
