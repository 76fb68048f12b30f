package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Outcome is how an apply ended.
type Outcome string

const (
	// Updated: the target is installed and settled healthy.
	Updated Outcome = "Updated"
	// RolledBack: the target was installed but did not prove healthy (or its
	// install failed after changing the package); the previous version is
	// installed again and healthy, and the target is skipped.
	RolledBack Outcome = "RolledBack"
	// Failed: the update did not happen and there was nothing to roll back:
	// the installed version is unchanged (an install refused, a precondition
	// unmet, an apply interrupted before the package changed), or nothing
	// was installed before (Reason NoPreviousVersion).
	Failed Outcome = "Failed"
	// RollbackFailed: the target did not prove healthy and restoring the
	// previous version failed too; Error and RollbackError hold both causes.
	// The agent may be down. The target is skipped.
	RollbackFailed Outcome = "RollbackFailed"
	// Interrupted: the context ended in the middle; the journal keeps the
	// step, and Recover finishes the apply at the next start.
	Interrupted Outcome = "Interrupted"
)

func (o Outcome) valid() bool {
	switch o {
	case Updated, RolledBack, Failed, RollbackFailed, Interrupted:
		return true
	}
	return false
}

// Reasons of a Result, one word each, for logs, metrics and status.
const (
	ReasonHealthy = "Healthy" // Updated

	// Failed before anything changed.
	ReasonInvalidRequest    = "InvalidRequest"    // no target, or the target is already installed
	ReasonJournalUnreadable = "JournalUnreadable" // the previous journal is corrupt
	ReasonUnfinishedJournal = "UnfinishedJournal" // an earlier apply needs Recover first
	ReasonStateUnreadable   = "StateUnreadable"   // the state file is corrupt; a skip could not be saved
	ReasonCurrentUnknown    = "CurrentUnknown"    // the installed version could not be read
	ReasonFromMismatch      = "FromMismatch"      // the installed version is not the one the caller named
	ReasonJournalUnwritable = "JournalUnwritable" // without a journal a crash could not be recovered
	ReasonInstallRefused    = "InstallRefused"    // Install failed and the installed version is unchanged
	ReasonRepairFailed      = "RepairFailed"      // an interrupted package-manager transaction could not be finished now (another one runs, or it needs a person)

	// Why the target was rolled back (Reason of RolledBack, Error of RollbackFailed).
	ReasonInstallFailed = "InstallFailed" // Install failed after changing the installed version
	ReasonRestartFailed = "RestartFailed"
	ReasonUnhealthy     = "Unhealthy"
	ReasonHealthUnknown = "HealthUnknown" // Settle could not judge health
	// Recover only.
	ReasonVersionChanged          = "VersionChanged"          // installed version changed under an interrupted apply
	ReasonInterruptedInstall      = "InterruptedInstall"      // an interrupted install left another version
	ReasonInterruptedBeforeChange = "InterruptedBeforeChange" // an interrupted install changed nothing (Failed)
	ReasonNoPreviousVersion       = "NoPreviousVersion"       // nothing was installed before, nothing to restore (Failed)

	// Why the rollback failed (RollbackFailed).
	ReasonRollbackInstallFailed = "RollbackInstallFailed"
	ReasonRollbackRestartFailed = "RollbackRestartFailed"
	ReasonRollbackUnhealthy     = "RollbackUnhealthy"

	ReasonInterrupted = "Interrupted"
)

// Result is what an apply did. It is saved in the state file as LastResult.
type Result struct {
	ID      string  `json:"id,omitempty"` // the journal's id; "" when no journal was started
	Outcome Outcome `json:"outcome"`
	From    string  `json:"from"`
	To      string  `json:"to"`
	Reason  string  `json:"reason"`
	Message string  `json:"message"`
	// Error is what went wrong with the update (RolledBack, Failed,
	// RollbackFailed); RollbackError what went wrong restoring From.
	Error         string `json:"error,omitempty"`
	RollbackError string `json:"rollbackError,omitempty"`
	// Skipped is true when To was put on the skip list.
	Skipped bool `json:"skipped,omitempty"`
	// Recovered is true for a Result of Recover.
	Recovered bool `json:"recovered,omitempty"`
	// Repair is the package manager's repair that ran first, when it found
	// an interrupted transaction (see Repairer).
	Repair   *Repair      `json:"repair,omitempty"`
	Attempt  int          `json:"attempt,omitempty"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Steps    []StepRecord `json:"steps,omitempty"`
	// Warnings are bookkeeping failures (a journal or state write) that did
	// not change the outcome but weaken crash recovery or the skip list.
	Warnings []string `json:"warnings,omitempty"`
}

// StepRecord is one call to the Target, timed.
type StepRecord struct {
	Step    Step          `json:"step"`   // the journal step it ran under
	Action  string        `json:"action"` // install, restart or settle
	Version string        `json:"version"`
	Rule    string        `json:"rule,omitempty"` // for repair: the rule that found it (DpkgInterrupted, ...)
	Took    time.Duration `json:"-"`
	Error   string        `json:"error,omitempty"` // for settle: why it was not healthy
}

type stepRecordJSON struct {
	Step    Step   `json:"step"`
	Action  string `json:"action"`
	Version string `json:"version"`
	Rule    string `json:"rule,omitempty"`
	Took    string `json:"took"`
	Error   string `json:"error,omitempty"`
}

// MarshalJSON writes Took as a Go duration ("1.5s"), readable in the state file.
func (s StepRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(stepRecordJSON{s.Step, s.Action, s.Version, s.Rule, s.Took.String(), s.Error})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *StepRecord) UnmarshalJSON(data []byte) error {
	var j stepRecordJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	took, err := time.ParseDuration(j.Took)
	if err != nil {
		return fmt.Errorf("step %q: took: %w", j.Action, err)
	}
	*s = StepRecord{j.Step, j.Action, j.Version, j.Rule, took, j.Error}
	return nil
}

// LogValue logs a Result's main fields.
func (r Result) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("outcome", string(r.Outcome)),
		slog.String("reason", r.Reason),
		slog.String("from", r.From),
		slog.String("to", r.To),
		slog.String("message", r.Message),
	}
	if r.Skipped {
		attrs = append(attrs, slog.Bool("skipped", true))
	}
	if r.Recovered {
		attrs = append(attrs, slog.Bool("recovered", true))
	}
	if !r.Finished.IsZero() {
		attrs = append(attrs, slog.Duration("took", r.Finished.Sub(r.Started)))
	}
	return slog.GroupValue(attrs...)
}

// Applier runs applies over one Target, with its journal and state in Dir.
// Callers hold Lock(Dir) for as long as they use it; Apply and Recover of
// one Applier are serialised.
type Applier struct {
	Dir    string
	Target Target
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger

	mu sync.Mutex
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Applier) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// Apply updates the target from version from (what is installed now, ""
// for nothing) to version to: journal(installing), Install(to),
// journal(restarting), Restart, journal(settling), Settle. When the new
// version does not settle healthy, or Install or Restart fail after the
// installed version changed, it journals rolling-back, skips to, reinstalls
// from (when from is not ""), restarts and settles it. An Install that fails
// without changing the installed version is Failed: nothing is rolled back
// and nothing skipped. See the package comment for the skip rule.
//
// Apply refuses to start while an earlier apply is unfinished (run Recover
// first), when the installed version is not from, or when the journal or
// state file cannot be used.
func (a *Applier) Apply(ctx context.Context, from, to string) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	r := &run{a: a, ctx: ctx, res: Result{From: from, To: to, Started: a.now()}}
	switch {
	case to == "":
		return r.refuse(ReasonInvalidRequest, "no target version was given")
	case SameVersion(from, to):
		return r.refuse(ReasonInvalidRequest, fmt.Sprintf("%s is already installed", to))
	}
	prev, err := ReadJournal(a.Dir)
	if err != nil {
		return r.refuse(ReasonJournalUnreadable, err.Error())
	}
	if prev.Unfinished() {
		return r.refuse(ReasonUnfinishedJournal, fmt.Sprintf(
			"the update from %s to %s (journal %s) stopped while %s; Recover must finish it before another update starts",
			versionText(prev.From), prev.To, JournalPath(a.Dir), prev.Step))
	}
	if _, err := ReadState(a.Dir); err != nil {
		return r.refuse(ReasonStateUnreadable, fmt.Sprintf("a skip could not be saved: %v", err))
	}
	// A transaction interrupted outside upkeep (no journal of ours names it)
	// is finished first, or the update waits for whoever is running.
	if err := r.repair(""); err != nil {
		return r.refuse(ReasonRepairFailed, err.Error())
	}
	cur, err := a.Target.Current(ctx)
	if err != nil {
		return r.refuse(ReasonCurrentUnknown, fmt.Sprintf("reading the installed version: %v", err))
	}
	if !SameVersion(cur, from) {
		return r.refuse(ReasonFromMismatch, fmt.Sprintf(
			"asked to update from %s but %s is installed; decide again with the installed version", versionText(from), versionText(cur)))
	}

	now := a.now()
	r.j = Journal{ID: newID(now), From: from, To: to, Started: now, Attempt: 1}
	if prev != nil && SameVersion(prev.To, to) && prev.Outcome != Updated {
		r.j.Attempt = prev.Attempt + 1
	}
	r.res.ID, r.res.Attempt = r.j.ID, r.j.Attempt
	if err := r.enter(StepInstalling); err != nil {
		r.res.ID = ""
		return r.refuse(ReasonJournalUnwritable, fmt.Sprintf("without a journal an interrupted update could not be recovered: %v", err))
	}

	err = r.call("install", to, func() error { return a.Target.Install(ctx, to) })
	if ctx.Err() != nil {
		if err == nil {
			// Stopped while the package command ran, which was let finish
			// and read back: journal that, and start nothing more.
			r.enter(StepRestarting)
		}
		return r.interrupted()
	}
	if err != nil {
		after, cerr := a.Target.Current(ctx)
		if ctx.Err() != nil {
			return r.interrupted()
		}
		if cerr == nil && SameVersion(after, from) {
			r.res.Error = err.Error()
			return r.finish(Failed, ReasonInstallRefused, fmt.Sprintf(
				"installing %s failed and %s is still installed, so nothing was rolled back and %s is not skipped "+
					"(a refused install says nothing about the release; the next check tries again): %v",
				to, versionText(from), to, err))
		}
		state := versionText(after)
		if cerr != nil {
			state = fmt.Sprintf("unknown: %v", cerr)
		}
		return r.rollBack(ReasonInstallFailed, fmt.Sprintf(
			"installing %s failed after changing the installed version (now %s): %v", to, state, err), true, RolledBack)
	}
	return r.restartAndSettle()
}

// repair runs the Target's Repairer, if it has one, and records what it did
// when it found something. keep is the version an interrupted transaction
// was installing.
func (r *run) repair(keep string) error {
	rp, ok := r.a.Target.(Repairer)
	if !ok {
		return nil
	}
	start := r.a.now()
	rep, err := rp.Repair(r.ctx, keep)
	if rep.Rule == RepairNothing && err == nil {
		return nil
	}
	rec := StepRecord{Step: r.j.Step, Action: "repair", Version: keep, Rule: rep.Rule, Took: r.a.now().Sub(start)}
	if err != nil {
		rec.Error = err.Error()
		r.a.log().Warn("apply: repair: "+rep.Rule, "message", rep.Message, "error", err)
	} else {
		r.a.log().Warn("apply: repaired: "+rep.Rule, "message", rep.Message, "commands", len(rep.Commands))
		r.res.Repair = &rep
	}
	r.res.Steps = append(r.res.Steps, rec)
	if err != nil {
		return fmt.Errorf("repairing the package manager first (%s): %w", rep.Rule, err)
	}
	return nil
}

// run is one apply or recovery in progress.
type run struct {
	a   *Applier
	ctx context.Context
	j   Journal
	res Result
}

// enter records step in the journal before the step runs. Only the first
// write (installing) must succeed; a later failed write leaves the journal
// at an earlier step, from which Recover reaches the same end, so it is a
// warning.
func (r *run) enter(step Step) error {
	r.j.Step = step
	r.j.Updated = r.a.now()
	r.a.log().Info("apply: "+string(step), "id", r.j.ID, "from", r.j.From, "to", r.j.To, "attempt", r.j.Attempt)
	if err := WriteJournal(r.a.Dir, r.j); err != nil {
		r.warn(fmt.Sprintf("journal not updated to %s: %v", step, err))
		return err
	}
	return nil
}

func (r *run) warn(msg string) {
	r.res.Warnings = append(r.res.Warnings, msg)
	r.a.log().Error("apply: "+msg, "id", r.j.ID)
}

// call runs one Target call and records it.
func (r *run) call(action, version string, f func() error) error {
	start := r.a.now()
	err := f()
	rec := StepRecord{Step: r.j.Step, Action: action, Version: version, Took: r.a.now().Sub(start)}
	if err != nil {
		rec.Error = err.Error()
		r.a.log().Warn("apply: "+action+" failed", "id", r.j.ID, "version", version, "error", err)
	}
	r.res.Steps = append(r.res.Steps, rec)
	return err
}

// settle runs Settle and records it; unhealthy is recorded as the step's error.
func (r *run) settle(version string) (healthy bool, why string, err error) {
	start := r.a.now()
	healthy, why, err = r.a.Target.Settle(r.ctx)
	rec := StepRecord{Step: r.j.Step, Action: "settle", Version: version, Took: r.a.now().Sub(start)}
	switch {
	case err != nil:
		rec.Error = "health unknown: " + err.Error()
	case !healthy:
		rec.Error = "unhealthy: " + why
	}
	r.res.Steps = append(r.res.Steps, rec)
	r.a.log().Info("apply: settled", "id", r.j.ID, "version", version, "healthy", healthy, "reason", why, "error", err)
	return healthy, why, err
}

// restartAndSettle runs the steps after the target is installed.
func (r *run) restartAndSettle() Result {
	to := r.j.To
	r.enter(StepRestarting)
	err := r.call("restart", to, func() error { return r.a.Target.Restart(r.ctx) })
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	if err != nil {
		return r.rollBack(ReasonRestartFailed, fmt.Sprintf("restarting the agent on %s failed: %v", to, err), true, RolledBack)
	}
	r.enter(StepSettling)
	healthy, why, err := r.settle(to)
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	switch {
	case err != nil:
		return r.rollBack(ReasonHealthUnknown, fmt.Sprintf("the health of %s could not be judged after the update: %v", to, err), true, RolledBack)
	case !healthy:
		return r.rollBack(ReasonUnhealthy, fmt.Sprintf("%s did not settle healthy: %s", to, why), true, RolledBack)
	}
	return r.finish(Updated, ReasonHealthy, fmt.Sprintf("updated from %s to %s, healthy after the settle period: %s",
		versionText(r.j.From), to, why))
}

// rollBack restores the previous version after cause. skip puts the target
// on the skip list first (so that even a failed or interrupted rollback
// keeps the updater away from it); ok is the outcome when the previous
// version ends healthy.
func (r *run) rollBack(reason, cause string, skip bool, ok Outcome) Result {
	from := r.j.From
	r.res.Error = cause
	r.j.Error, r.j.Reason = cause, reason
	r.a.log().Warn("apply: rolling back", "id", r.j.ID, "reason", reason, "cause", cause)
	r.enter(StepRollingBack)
	if skip {
		r.skipTarget(reason, cause)
	}
	cur, cerr := r.a.Target.Current(r.ctx)
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	if from == "" {
		left := "nothing is installed now"
		switch {
		case cerr != nil:
			left = fmt.Sprintf("the installed version is unknown (%v)", cerr)
		case cur != "":
			left = fmt.Sprintf("%s stays installed", cur)
		}
		return r.finish(Failed, ReasonNoPreviousVersion, fmt.Sprintf(
			"%s; nothing was installed before, so there is nothing to roll back to: %s; %s", cause, left, r.skipNote()))
	}
	if cerr != nil || !SameVersion(cur, from) {
		err := r.call("install", from, func() error { return r.a.Target.Install(r.ctx, from) })
		if r.ctx.Err() != nil {
			return r.interrupted()
		}
		if err != nil {
			return r.rollbackFailed(ReasonRollbackInstallFailed, fmt.Sprintf("reinstalling %s failed: %v", from, err))
		}
	}
	err := r.call("restart", from, func() error { return r.a.Target.Restart(r.ctx) })
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	if err != nil {
		return r.rollbackFailed(ReasonRollbackRestartFailed, fmt.Sprintf("restarting the agent on %s failed: %v", from, err))
	}
	healthy, why, err := r.settle(from)
	if r.ctx.Err() != nil {
		return r.interrupted()
	}
	switch {
	case err != nil:
		return r.rollbackFailed(ReasonRollbackUnhealthy, fmt.Sprintf("the health of %s could not be judged: %v", from, err))
	case !healthy:
		return r.rollbackFailed(ReasonRollbackUnhealthy, fmt.Sprintf("%s did not settle healthy: %s", from, why))
	}
	return r.finish(ok, reason, fmt.Sprintf("%s; %s is installed and healthy again; %s", cause, from, r.skipNote()))
}

func (r *run) rollbackFailed(reason, rbErr string) Result {
	r.res.RollbackError = rbErr
	return r.finish(RollbackFailed, reason, fmt.Sprintf(
		"%s; then rolling back to %s failed: %s. The agent may be down: check it (its service log and health checks); "+
			"%s, and lowering or raising the channel starts a new update",
		r.res.Error, r.j.From, rbErr, r.skipNote()))
}

func (r *run) skipNote() string {
	if r.res.Skipped {
		return fmt.Sprintf("%s is skipped until the channel offers another version", r.j.To)
	}
	return fmt.Sprintf("%s is not skipped", r.j.To)
}

// skipTarget saves the target on the skip list.
func (r *run) skipTarget(reason, cause string) {
	k := Skip{Version: r.j.To, Since: r.a.now(), From: r.j.From, Reason: reason, Message: cause}
	if _, err := UpdateState(r.a.Dir, func(s *State) error { s.AddSkip(k); return nil }); err != nil {
		r.warn(fmt.Sprintf("could not save %s on the skip list, so the next check may install it again: %v", r.j.To, err))
		return
	}
	r.res.Skipped = true
	r.a.log().Warn("apply: skipping version", "version", r.j.To, "reason", reason)
}

// finish marks the journal done and saves the result.
func (r *run) finish(o Outcome, reason, msg string) Result {
	if rep := r.res.Repair; rep != nil {
		msg = fmt.Sprintf("first repaired the package manager (%s: %s); %s", rep.Rule, rep.Message, msg)
	}
	r.res.Outcome, r.res.Reason, r.res.Message = o, reason, msg
	r.res.Finished = r.a.now()
	r.j.Outcome = o
	r.j.Error = r.res.Error
	if r.res.RollbackError != "" {
		r.j.Error = r.res.Error + "; rollback: " + r.res.RollbackError
	}
	r.j.Reason = reason
	r.enter(StepDone)
	return r.save()
}

// refuse ends an apply that did not start: no journal is written.
func (r *run) refuse(reason, msg string) Result {
	r.res.Outcome, r.res.Reason, r.res.Message = Failed, reason, "nothing was changed: "+msg
	r.res.Finished = r.a.now()
	return r.save()
}

// interrupted leaves the journal at the current step for Recover.
//
// A stop (the context cancelled: SIGTERM) lets a running package command
// finish and starts no further step; the message names the last step run
// and, when it was left running, the package manager's process.
func (r *run) interrupted() Result {
	r.res.Outcome, r.res.Reason = Interrupted, ReasonInterrupted
	last := ""
	if n := len(r.res.Steps); n > 0 {
		s := r.res.Steps[n-1]
		if s.Error != "" {
			last = fmt.Sprintf("; the last step (%s %s) ended: %s", s.Action, s.Version, s.Error)
		} else {
			last = fmt.Sprintf("; the last step (%s %s) finished", s.Action, s.Version)
		}
	}
	r.res.Message = fmt.Sprintf("stopped while %s (%v)%s; the journal %s keeps the step and the next start finishes the update",
		r.j.Step, context.Cause(r.ctx), last, JournalPath(r.a.Dir))
	r.res.Finished = r.a.now()
	return r.save()
}

// save records the result as the state's LastResult and logs it.
func (r *run) save() Result {
	res := r.res
	if _, err := UpdateState(r.a.Dir, func(s *State) error { s.LastResult = &res; return nil }); err != nil {
		r.warn(fmt.Sprintf("could not save the result: %v", err))
	}
	lvl := slog.LevelInfo
	if r.res.Outcome != Updated {
		lvl = slog.LevelWarn
	}
	r.a.log().Log(context.Background(), lvl, "apply: finished", "result", r.res)
	return r.res
}

func versionText(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}

// newID names a journal: its start time and a random suffix.
func newID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
