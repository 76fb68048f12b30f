package apply

import (
	"context"
	"fmt"
)

// Recover finishes an apply that was cut short (crash, SIGKILL, power
// loss), so that it ends with the target healthy or the previous version
// restored; call it at start, holding the lock, before any Apply. It returns
// nil and no error when there is nothing to finish. The table in the package
// comment says what it does for each journal step.
//
// An error means recovery could not start (the journal or state file is
// unreadable, the installed version cannot be read); the journal is left as
// it is, so a later Recover tries again. Recover is idempotent: once it has
// finished, the journal is done and another call returns nil.
func (a *Applier) Recover(ctx context.Context) (*Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	j, err := ReadJournal(a.Dir)
	if err != nil {
		return nil, err
	}
	if !j.Unfinished() {
		return nil, nil
	}
	removeStaleTemps(a.Dir)
	where := fmt.Sprintf("recovering the update from %s to %s (journal %s, stopped while %s)",
		versionText(j.From), j.To, JournalPath(a.Dir), j.Step)
	if _, err := ReadState(a.Dir); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	r := &run{a: a, ctx: ctx, j: *j, res: Result{
		ID: j.ID, From: j.From, To: j.To, Attempt: j.Attempt, Recovered: true, Started: a.now(),
	}}
	// The package manager first: an install cut short may have left dpkg
	// half-configured or two rpm versions installed, or may still be
	// running (the updater was killed, not the package manager).
	keep := j.To
	if j.Step == StepRollingBack {
		keep = j.From
	}
	if err := r.repair(keep); err != nil {
		return nil, fmt.Errorf("%s: %w; the journal is kept and the next start tries again", where, err)
	}
	cur, err := a.Target.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the installed version: %w; the journal is kept and the next start tries again", where, err)
	}
	a.log().Warn("apply: "+where, "id", j.ID, "installed", cur)

	switch {
	case j.Step == StepRollingBack:
		reason, cause := j.Reason, j.Error
		if reason == "" {
			reason = ReasonInterrupted
		}
		if cause == "" {
			cause = fmt.Sprintf("a rollback from %s was interrupted", j.To)
		}
		// Finish as it was started: a restore after an interrupted install
		// skips nothing.
		skip, ok := true, RolledBack
		switch reason {
		case ReasonInterruptedBeforeChange:
			skip, ok = false, Failed
		case ReasonInterruptedInstall:
			skip = false
		}
		return ptr(r.rollBack(reason, cause, skip, ok)), nil
	case SameVersion(cur, j.To):
		// The install had finished (or the interrupted one completed): judge
		// the new version as Apply would have.
		return ptr(r.restartAndSettle()), nil
	case j.Step == StepInstalling && SameVersion(cur, j.From):
		// Nothing changed, but the package manager may have stopped the
		// agent before it was cut short: restart and settle the old version.
		return ptr(r.rollBack(ReasonInterruptedBeforeChange, fmt.Sprintf(
			"the update to %s was interrupted before the installed version changed", j.To), false, Failed)), nil
	case j.Step == StepInstalling:
		// An interrupted install is no verdict on the release: restore, do not skip.
		return ptr(r.rollBack(ReasonInterruptedInstall, fmt.Sprintf(
			"the install of %s was interrupted and left %s installed", j.To, versionText(cur)), false, RolledBack)), nil
	default:
		// restarting or settling: the target had been installed and read
		// back, yet something else is installed now.
		return ptr(r.rollBack(ReasonVersionChanged, fmt.Sprintf(
			"%s was installed when the update stopped while %s, but %s is installed now", j.To, j.Step, versionText(cur)), true, RolledBack)), nil
	}
}

func ptr[T any](v T) *T { return &v }
