package reconcile

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/spec"
)

// The update decision: one ordered chain of small named rules (in the style
// of cert-manager's policy chains). Each rule either settles the question or
// passes; the first that settles wins, so "why is this agent (not) updating?"
// has one answer for the host updater, the Kubernetes updater and diff.

// Action is what an updater does after a decision.
type Action string

const (
	// ActionUpdate: install the target now.
	ActionUpdate Action = "Update"
	// ActionWait: the target is wanted but not now; decide again at RecheckAt.
	ActionWait Action = "Wait"
	// ActionNothing: nothing to do, the agent runs the target or none is offered.
	ActionNothing Action = "Nothing"
	// ActionRefuse: the target breaks the control-plane bounds and must not
	// be installed; the current version stays. Operators need to see this.
	ActionRefuse Action = "Refuse"
	// ActionKeep: keep the current version, because the target is unknown or
	// was skipped after a failed rollout.
	ActionKeep Action = "Keep"
)

// Rule names, in chain order. They are stable: logs, metrics and diff output
// carry them.
const (
	RuleTargetUnknown    = "TargetUnknown"
	RuleRolloutHeld      = "RolloutHeld"
	RuleUpToDate         = "UpToDate"
	RuleSkipped          = "Skipped"
	RuleControlPlane     = "ControlPlaneBounds"
	RuleFirstInstall     = "FirstInstall"
	RuleCritical         = "Critical"
	RuleUnhealthy        = "Unhealthy"
	RuleFrozen           = "Frozen"
	RuleScheduleUnusable = "ScheduleUnusable"
	RuleInWindow         = "InWindow"
	RuleWaitForWindow    = "WaitForWindow"
	// RuleConcurrencyLimit is not in the chain: it turns the chain's Update
	// into a Wait when the group's concurrency lease was refused (see
	// DecisionInput.Lease), so it is always the last name of RuleNames.
	RuleConcurrencyLimit = "ConcurrencyLimit"
)

// Reasons a schedule is unusable (see Schedule.Unusable).
const (
	ReasonScheduleMissing    = "ScheduleMissing"
	ReasonScheduleUnreadable = "ScheduleUnreadable"
	ReasonNoWindowAhead      = "NoWindowAhead"
)

const (
	// DefaultUnusableThreshold is how many consecutive checks must find the
	// schedule unusable before it counts as the agent being unhealthy (an
	// update at once), as Teleport's updater script does: one failed read
	// may be a file being rewritten.
	DefaultUnusableThreshold = 2
	// DefaultScheduleRecheck is how soon to look again at an unusable
	// schedule before the threshold is reached.
	DefaultScheduleRecheck = time.Minute
)

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Rule is the name of the rule that settled (Rule* constants).
	Rule string
	// Reason is a CamelCase reason, finer than Rule (e.g. NotEnoughTimeLeft).
	Reason string
	// Message says what was decided and why, with versions and times.
	Message string
	// RecheckAt is when to decide again (a window's or a freeze's start or
	// end); zero means the updater's normal interval.
	RecheckAt time.Time
}

// LogValue logs a decision as a group of its fields.
func (d Decision) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("action", string(d.Action)),
		slog.String("rule", d.Rule),
		slog.String("reason", d.Reason),
		slog.String("message", d.Message),
	}
	if !d.RecheckAt.IsZero() {
		attrs = append(attrs, slog.Time("recheckAt", d.RecheckAt))
	}
	return slog.GroupValue(attrs...)
}

// Target is what the version server offers: a version, spec.NoVersion
// ("none"), or the error met fetching it.
type Target struct {
	Version string // as served; a leading "v" is fine
	Err     error  // non-nil when the version could not be fetched
	// Held is set when the server answered Version (the rollout's
	// fromVersion) but holds this agent back from a rollout in progress
	// (the Upkeep-Rollout header); nil from Teleport's servers and for
	// agents the rollout has reached.
	Held *RolloutHold
}

// RolloutHold is the version server's account of why this agent does not
// get the version rolling out on its channel yet.
type RolloutHold struct {
	Version string // the version rolling out
	State   string // the rollout's state: Canary, Baking, Active, Halted, ...
	Stage   int    // the rollout's current stage, as the server numbers it
	Reason  string // CamelCase, e.g. NotCanary or StageNotReached; may be empty
}

// FreezeHold is the version server's account of a critical update it holds
// back: the agent's group is in a freeze that does not allow critical
// updates, so the server answered critical "no" (header Upkeep-Freeze:
// rule=CriticalHeldByFreeze; freeze=<name>; until=<RFC 3339>). The channel
// is critical all the same: the update is due when the freeze ends.
type FreezeHold struct {
	Rule   string    // the server's rule, CriticalHeldByFreeze
	Freeze string    // the freeze's name
	Until  time.Time // the freeze's end
}

// LeaseState is the answer to an updater's request for a concurrency lease.
type LeaseState int

const (
	// LeaseNotAsked: no lease was asked (the zero value): the chain's
	// decision stands. Updaters ask only when the chain says Update.
	LeaseNotAsked LeaseState = iota
	// LeaseGranted: the agent holds a place among its group's updating agents.
	LeaseGranted
	// LeaseUnsupported: the server keeps no leases (reports off, an older
	// or a Teleport server); the update goes ahead without one.
	LeaseUnsupported
	// LeaseRefused: the group already has its maxConcurrent agents updating.
	LeaseRefused
	// LeaseFailed: the server could not be asked; the update waits, since
	// going ahead could break the group's maxConcurrent.
	LeaseFailed
)

var leaseStateNames = [...]string{"NotAsked", "Granted", "Unsupported", "Refused", "Failed"}

// String names the state, as logs and messages show it.
func (s LeaseState) String() string { return enumName(leaseStateNames[:], int(s), "LeaseState") }

// LogValue logs the name, not the number, in text and JSON logs alike.
func (s LeaseState) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Lease is the concurrency lease an updater asked for before updating.
type Lease struct {
	State   LeaseState
	Group   string // the group asked for; "" for agents without one
	Holders int    // agents of the group holding a lease (when refused)
	Max     int    // the group's maxConcurrent (when refused)
	// RetryAt is when the earliest holder's lease expires (when refused);
	// zero when unknown.
	RetryAt time.Time
	Err     error // why the server could not be asked (LeaseFailed)
}

// DefaultLeaseRecheck is how soon to ask again for a lease that could not be
// asked, or was refused without a retry time.
const DefaultLeaseRecheck = time.Minute

// Critical is whether the version server marks the update critical.
type Critical int

const (
	CriticalUnknown Critical = iota // not fetched; treated as not critical
	CriticalNo
	CriticalYes
)

var criticalNames = [...]string{"Unknown", "No", "Yes"}

// String names the flag: Unknown, No or Yes.
func (c Critical) String() string { return enumName(criticalNames[:], int(c), "Critical") }

// LogValue logs the name, not the number.
func (c Critical) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Health is the agent's health as the updater judges it.
type Health int

const (
	HealthUnknown Health = iota // not judged; treated as healthy (no reason to restart)
	Healthy
	Unhealthy
)

var healthNames = [...]string{"Unknown", "Healthy", "Unhealthy"}

// String names the health: Unknown, Healthy or Unhealthy.
func (h Health) String() string { return enumName(healthNames[:], int(h), "Health") }

// LogValue logs the name, not the number.
func (h Health) LogValue() slog.Value { return slog.StringValue(h.String()) }

// ScheduleState says whether the agent's saved maintenance schedule could be read.
type ScheduleState int

const (
	ScheduleMissing    ScheduleState = iota // nothing saved beside the agent (the zero value)
	ScheduleUnreadable                      // saved but unreadable or malformed
	ScheduleLoaded                          // read; Windows holds its intervals, maybe none
)

var scheduleStateNames = [...]string{"Missing", "Unreadable", "Loaded"}

// String names the state: Missing, Unreadable or Loaded.
func (s ScheduleState) String() string {
	return enumName(scheduleStateNames[:], int(s), "ScheduleState")
}

// LogValue logs the name, not the number.
func (s ScheduleState) LogValue() slog.Value { return slog.StringValue(s.String()) }

// enumName is names[i], or "Type(i)" for a value outside the enum, so a
// bad value still reads as what it is.
func enumName(names []string, i int, typ string) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", typ, i)
}

// Schedule is the agent's maintenance schedule as its updater read it.
type Schedule struct {
	State   ScheduleState
	Windows []calendar.Interval // sorted, disjoint (as calendar.Windows returns them)
	Err     error               // why it is unreadable, for the message
}

// Unusable reports whether the schedule gives no way to update at or after
// now: it is missing, unreadable, or has no window ahead in which an update
// needing need fits. Updaters count consecutive checks for which it is true
// (and reset the count when it is false) to fill
// DecisionInput.UnusableChecks.
func (s Schedule) Unusable(now time.Time, need time.Duration) (reason string, unusable bool) {
	switch s.State {
	case ScheduleMissing:
		return ReasonScheduleMissing, true
	case ScheduleUnreadable:
		return ReasonScheduleUnreadable, true
	}
	if _, ok := calendar.FirstFit(s.Windows, now, need); !ok {
		return ReasonNoWindowAhead, true
	}
	return "", false
}

// Bounds are the control plane's limits on agent versions;
// *spec.ControlPlane is the real one (a nil one counts as unknown).
type Bounds interface {
	// Admits returns nil, or why the version breaks the bounds.
	Admits(version string) error
}

var _ Bounds = (*spec.ControlPlane)(nil)

// DecisionInput is everything Decide looks at. Zero values of the optional
// fields mean the documented defaults.
type DecisionInput struct {
	Now     time.Time
	Current string // installed version; "" when unknown (then any target needs an update)
	// NotInstalled says the package is known not to be installed (the
	// package manager said so, not a failed read): FirstInstall installs the
	// target at once. Current is "" then.
	NotInstalled bool
	Target       Target
	Critical     Critical
	Health       Health
	Schedule     Schedule
	// UpdateDuration is how long an update needs inside a window; 0 means
	// spec.DefaultUpdateDuration.
	UpdateDuration time.Duration
	// Freeze is the freeze in effect at Now (calendar.Frozen), nil when none.
	// A freeze that does not contain Now is ignored.
	Freeze *spec.Freeze
	// CriticalHold is set when the version server answered critical "no"
	// because the agent's group is in a freeze without critical updates
	// (FreezeHold). The update then counts as critical, held by that freeze
	// (a spec.Freeze without critical updates ending at Until, in place of
	// Freeze): updaters do not read freezes, only the server's answer.
	// Rule Frozen waits with reason CriticalHeldByFreeze until Until; after
	// it (by this clock) the update goes as Critical.
	CriticalHold *FreezeHold
	// Skipped lists versions skipped after a failed rollout.
	Skipped []string
	// Bounds are the control plane's limits; nil when unknown (not checked).
	Bounds Bounds
	// UnusableChecks counts the consecutive earlier checks that found the
	// schedule unusable; this check is one more.
	UnusableChecks int
	// UnusableThreshold is how many consecutive unusable checks (this one
	// included) lead to an update; 0 means DefaultUnusableThreshold.
	UnusableThreshold int
	// ScheduleRecheck is how soon to look again at an unusable schedule;
	// 0 means DefaultScheduleRecheck.
	ScheduleRecheck time.Duration
	// Lease is the answer to the concurrency lease asked because the chain
	// said Update; the zero value (LeaseNotAsked) changes nothing. Updaters
	// decide, ask for a lease only when the decision is Update, then decide
	// again with the answer here (ConcurrencyLimit).
	Lease Lease
}

// facts are the input with versions parsed and defaults applied, computed
// once per decision and shared by the rules.
type facts struct {
	in        *DecisionInput
	target    *semver.Version // nil when unknown or "none"
	targetStr string          // target without "v", for messages and Bounds
	none      bool            // the server offers no version
	current   *semver.Version // nil when unknown
	need      time.Duration
	freeze    *spec.Freeze // nil unless Now is inside it
	fit       calendar.Interval
	fits      bool // fit is the first window where an update fits
	threshold int
	recheck   time.Duration
}

type rule struct {
	name  string
	check func(f *facts) (bool, Decision)
}

// chain is the decision, in order. Its last rule always settles.
var chain = [...]rule{
	{RuleTargetUnknown, targetUnknown},
	{RuleRolloutHeld, rolloutHeld},
	{RuleUpToDate, upToDate},
	{RuleSkipped, skipped},
	{RuleControlPlane, outsideBounds},
	{RuleFirstInstall, firstInstall},
	{RuleCritical, critical},
	{RuleUnhealthy, unhealthy},
	{RuleFrozen, frozen},
	{RuleScheduleUnusable, scheduleUnusable},
	{RuleInWindow, inWindow},
	{RuleWaitForWindow, waitForWindow},
}

// RuleNames returns the names of the rules in the order Decide tries them:
// the chain, then RuleConcurrencyLimit, which only ever replaces an Update.
func RuleNames() []string {
	names := make([]string, 0, len(chain)+1)
	for _, r := range chain {
		names = append(names, r.name)
	}
	return append(names, RuleConcurrencyLimit)
}

// Decide runs the chain and returns the first decision a rule settles on.
func Decide(in DecisionInput) Decision {
	f := facts{in: &in, need: in.UpdateDuration, threshold: in.UnusableThreshold, recheck: in.ScheduleRecheck}
	if f.need <= 0 {
		f.need = spec.DefaultUpdateDuration
	}
	if f.threshold <= 0 {
		f.threshold = DefaultUnusableThreshold
	}
	if f.recheck <= 0 {
		f.recheck = DefaultScheduleRecheck
	}
	if in.Target.Err == nil {
		if in.Target.Version == spec.NoVersion {
			f.none = true
		} else {
			if f.target = parseVersion(in.Target.Version); f.target != nil {
				f.targetStr = f.target.String()
			}
		}
	}
	if in.Current != "" {
		f.current = parseVersion(in.Current)
	}
	if h := in.CriticalHold; h != nil {
		// The server's "no" stands for a critical update held back.
		in.Critical = CriticalYes
		in.Freeze = &spec.Freeze{Name: h.Freeze, End: h.Until}
	}
	if fz := in.Freeze; fz != nil && !in.Now.Before(fz.Start) && (fz.End.IsZero() || in.Now.Before(fz.End)) {
		f.freeze = fz
	}
	if in.Schedule.State == ScheduleLoaded {
		f.fit, f.fits = calendar.FirstFit(in.Schedule.Windows, in.Now, f.need)
	}
	for _, r := range chain {
		if ok, d := r.check(&f); ok {
			d.Rule = r.name
			if d.Action == ActionUpdate {
				if ok, ld := concurrencyLimit(&f, d); ok {
					ld.Rule = RuleConcurrencyLimit
					return ld
				}
			}
			return d
		}
	}
	panic("reconcile: the decision chain's last rule did not settle")
}

// rolloutHeld: the server holds this agent back from a rollout. It settles
// (Wait) when the agent already runs what it is answered, so "why is this
// agent not on 17.4.0?" names the rollout rather than UpToDate, and when the
// agent already runs the version rolling out (a canary of a halted rollout,
// say): the answer is the version before it, and agents already on the new
// one are never downgraded by a hold. An agent on some third version passes
// on to the chain, which moves it to the answered version as usual.
func rolloutHeld(f *facts) (bool, Decision) {
	h := f.in.Target.Held
	if h == nil {
		return false, Decision{}
	}
	hv := parseVersion(h.Version)
	rolling := strings.TrimPrefix(h.Version, "v")
	if hv != nil {
		rolling = hv.String()
	}
	where := fmt.Sprintf("%s is rolling out (state %s, stage %d)", rolling, h.State, h.Stage)
	reason := h.Reason
	if reason == "" {
		reason = "HeldByRollout"
	}
	switch {
	case f.current != nil && hv != nil && f.current.Equal(hv):
		return true, Decision{Action: ActionWait, Reason: "AlreadyOnRolloutVersion",
			Message: fmt.Sprintf("%s and this agent already runs it; the server answers %s to agents the rollout has not reached (%s), and a hold never downgrades",
				where, f.targetText(), reason)}
	case f.none:
		return true, Decision{Action: ActionWait, Reason: reason,
			Message: fmt.Sprintf("%s; this agent is held back (%s) and the channel offers no version before it; leaving %s alone",
				where, reason, f.currentText())}
	case f.current != nil && f.current.Equal(f.target):
		return true, Decision{Action: ActionWait, Reason: reason,
			Message: fmt.Sprintf("%s; this agent is held back (%s) and stays on %s until the rollout reaches it",
				where, reason, f.targetStr)}
	}
	return false, Decision{}
}

// concurrencyLimit replaces an Update when the group's lease was refused or
// could not be asked: at most maxConcurrent agents of a group update at once.
// The message names the rule that wanted the update, so the wait still
// says why an update is due.
func concurrencyLimit(f *facts, wanted Decision) (bool, Decision) {
	l := f.in.Lease
	why := fmt.Sprintf("wanted by %s (%s)", wanted.Rule, wanted.Reason)
	group, has := fmt.Sprintf("group %q", l.Group), "has"
	if l.Group == "" {
		group, has = "the agents without a group", "have"
	}
	switch l.State {
	case LeaseRefused:
		at := l.RetryAt
		if !at.After(f.in.Now) {
			at = f.in.Now.Add(DefaultLeaseRecheck)
		}
		return true, Decision{Action: ActionWait, Reason: "MaxConcurrentReached", RecheckAt: at,
			Message: fmt.Sprintf("update from %s to %s, %s, waits for a place: %s %s %d of %d agents updating (maxConcurrent); asking again at %s",
				f.currentText(), f.targetText(), why, group, has, l.Holders, l.Max, stamp(at))}
	case LeaseFailed:
		at := f.in.Now.Add(DefaultLeaseRecheck)
		return true, Decision{Action: ActionWait, Reason: "LeaseUnavailable", RecheckAt: at,
			Message: fmt.Sprintf("update from %s to %s, %s, waits: the concurrency lease for %s could not be asked (%v), and updating without it could break the group's maxConcurrent; asking again at %s",
				f.currentText(), f.targetText(), why, group, l.Err, stamp(at))}
	}
	return false, Decision{}
}

// targetUnknown keeps the current version when there is no usable target:
// an updater must never act on a guess.
func targetUnknown(f *facts) (bool, Decision) {
	t := f.in.Target
	switch {
	case t.Err != nil:
		return true, Decision{Action: ActionKeep, Reason: "TargetFetchFailed",
			Message: fmt.Sprintf("could not fetch the target version (%v); keeping %s", t.Err, f.currentText())}
	case t.Version == "":
		return true, Decision{Action: ActionKeep, Reason: "TargetEmpty",
			Message: fmt.Sprintf("the version server sent an empty target; keeping %s", f.currentText())}
	case !f.none && f.target == nil:
		return true, Decision{Action: ActionKeep, Reason: "TargetNotSemver",
			Message: fmt.Sprintf("the target %q is not a semantic version; keeping %s", t.Version, f.currentText())}
	}
	return false, Decision{}
}

func upToDate(f *facts) (bool, Decision) {
	if f.none {
		return true, Decision{Action: ActionNothing, Reason: "NoVersionOffered",
			Message: fmt.Sprintf("the channel offers no version; leaving %s alone", f.currentText())}
	}
	if f.current != nil && f.current.Equal(f.target) {
		return true, Decision{Action: ActionNothing, Reason: "AlreadyOnTarget",
			Message: fmt.Sprintf("already running the target %s", f.targetStr)}
	}
	return false, Decision{}
}

func skipped(f *facts) (bool, Decision) {
	for _, s := range f.in.Skipped {
		if v := parseVersion(s); v != nil && v.Equal(f.target) {
			return true, Decision{Action: ActionKeep, Reason: "TargetSkipped",
				Message: fmt.Sprintf("target %s was skipped after a failed rollout; keeping %s until the channel offers another version",
					f.targetStr, f.currentText())}
		}
	}
	return false, Decision{}
}

// outsideBounds refuses a target the control plane does not admit. The
// reason is the control plane's (spec.AdmitError.Reason, e.g.
// AboveControlPlane) when it gives one.
func outsideBounds(f *facts) (bool, Decision) {
	b := f.in.Bounds
	if cp, ok := b.(*spec.ControlPlane); b == nil || ok && cp == nil {
		return false, Decision{}
	}
	err := b.Admits(f.targetStr)
	if err == nil {
		return false, Decision{}
	}
	reason := "OutsideControlPlaneBounds"
	var ae *spec.AdmitError
	if errors.As(err, &ae) && ae.Reason != "" {
		reason = ae.Reason
	}
	return true, Decision{Action: ActionRefuse, Reason: reason,
		Message: fmt.Sprintf("target %s is outside the control plane's bounds (%v); keeping %s", f.targetStr, err, f.currentText())}
}

// firstInstall installs a package that is not installed at all, at once:
// windows and freezes protect a running agent from a restart, and nothing
// runs yet (a new host waiting days for its first window would be an agent
// missing from the fleet, not a safer one). It comes after the skip list and
// the control-plane bounds, which still hold a first install back.
func firstInstall(f *facts) (bool, Decision) {
	if !f.in.NotInstalled {
		return false, Decision{}
	}
	return true, Decision{Action: ActionUpdate, Reason: "NotInstalled",
		Message: fmt.Sprintf("the agent is not installed; installing %s at once (a first install restarts nothing, so windows and freezes do not hold it back)", f.targetStr)}
}

// critical updates at once, unless a freeze forbids critical updates: then
// it passes, so that an unhealthy agent is still updated and a healthy one
// waits in the frozen rule.
func critical(f *facts) (bool, Decision) {
	if f.in.Critical != CriticalYes || f.heldByFreeze() {
		return false, Decision{}
	}
	return true, Decision{Action: ActionUpdate, Reason: "CriticalUpdate",
		Message: fmt.Sprintf("critical update from %s to %s, applied at once", f.currentText(), f.targetStr)}
}

// unhealthy updates at once: restarting an agent that is not working cuts
// nothing, and the new version may be the fix. It beats freezes for that reason.
func unhealthy(f *facts) (bool, Decision) {
	if f.in.Health != Unhealthy {
		return false, Decision{}
	}
	return true, Decision{Action: ActionUpdate, Reason: "AgentUnhealthy",
		Message: fmt.Sprintf("agent is unhealthy; updating from %s to %s at once", f.currentText(), f.targetStr)}
}

// frozen waits out a freeze. It comes before the schedule rules because a
// freeze longer than the schedule's horizon leaves no window ahead, which
// must not turn into an update at once.
func frozen(f *facts) (bool, Decision) {
	fz := f.freeze
	if fz == nil {
		return false, Decision{}
	}
	if f.heldByFreeze() {
		return true, Decision{Action: ActionWait, Reason: "CriticalHeldByFreeze", RecheckAt: fz.End,
			Message: fmt.Sprintf("critical update from %s to %s held by freeze %q, which does not allow critical updates, until %s",
				f.currentText(), f.targetStr, fz.Name, stamp(fz.End))}
	}
	return true, Decision{Action: ActionWait, Reason: "InFreeze", RecheckAt: fz.End,
		Message: fmt.Sprintf("update from %s to %s waits for freeze %q to end at %s", f.currentText(), f.targetStr, fz.Name, stamp(fz.End))}
}

// heldByFreeze: the update is critical but the freeze in effect forbids
// critical updates.
func (f *facts) heldByFreeze() bool {
	return f.in.Critical == CriticalYes && f.freeze != nil && !f.freeze.AllowCritical
}

// scheduleUnusable treats an agent without a usable schedule as unhealthy
// (design rule 3), once enough consecutive checks agree.
func scheduleUnusable(f *facts) (bool, Decision) {
	reason, bad := f.in.Schedule.Unusable(f.in.Now, f.need)
	if !bad {
		return false, Decision{}
	}
	what := f.scheduleProblem(reason)
	n := f.in.UnusableChecks + 1
	if n >= f.threshold {
		return true, Decision{Action: ActionUpdate, Reason: reason,
			Message: fmt.Sprintf("%s for %d consecutive checks; treating the agent as unhealthy and updating from %s to %s",
				what, n, f.currentText(), f.targetStr)}
	}
	at := f.in.Now.Add(f.recheck)
	return true, Decision{Action: ActionWait, Reason: reason, RecheckAt: at,
		Message: fmt.Sprintf("%s (check %d of %d before updating at once); checking again at %s", what, n, f.threshold, stamp(at))}
}

func inWindow(f *facts) (bool, Decision) {
	if !f.fits || f.fit.Start.After(f.in.Now) {
		return false, Decision{}
	}
	return true, Decision{Action: ActionUpdate, Reason: "InsideWindow",
		Message: fmt.Sprintf("inside the maintenance window until %s (%s left, the update needs %s); updating from %s to %s",
			stamp(f.fit.End), f.fit.End.Sub(f.in.Now), f.need, f.currentText(), f.targetStr)}
}

func waitForWindow(f *facts) (bool, Decision) {
	if !f.fits { // scheduleUnusable settles this case; stay defined regardless
		return true, Decision{Action: ActionWait, Reason: ReasonNoWindowAhead,
			Message: fmt.Sprintf("no maintenance window ahead for the update from %s to %s", f.currentText(), f.targetStr)}
	}
	if open, ok := calendar.Open(f.in.Schedule.Windows, f.in.Now); ok {
		return true, Decision{Action: ActionWait, Reason: "NotEnoughTimeLeft", RecheckAt: f.fit.Start,
			Message: fmt.Sprintf("the window open until %s has %s left but the update needs %s; waiting for the window at %s to update from %s to %s",
				stamp(open.End), open.End.Sub(f.in.Now), f.need, stamp(f.fit.Start), f.currentText(), f.targetStr)}
	}
	return true, Decision{Action: ActionWait, Reason: "OutsideWindow", RecheckAt: f.fit.Start,
		Message: fmt.Sprintf("outside maintenance windows; waiting for the window at %s to update from %s to %s",
			stamp(f.fit.Start), f.currentText(), f.targetStr)}
}

func (f *facts) targetText() string {
	if f.none {
		return spec.NoVersion
	}
	if f.target == nil {
		return fmt.Sprintf("%q", f.in.Target.Version)
	}
	return f.targetStr
}

func (f *facts) currentText() string {
	switch {
	case f.in.Current == "":
		return "the unknown current version"
	case f.current == nil:
		return fmt.Sprintf("the unrecognised current version %q", f.in.Current)
	}
	return f.current.String()
}

func (f *facts) scheduleProblem(reason string) string {
	switch reason {
	case ReasonScheduleMissing:
		return "no maintenance schedule is saved beside the agent"
	case ReasonScheduleUnreadable:
		if err := f.in.Schedule.Err; err != nil {
			return fmt.Sprintf("the maintenance schedule is unreadable (%v)", err)
		}
		return "the maintenance schedule is unreadable"
	}
	return fmt.Sprintf("the maintenance schedule has no window ahead that fits an update of %s", f.need)
}

// parseVersion parses a semantic version, tolerating a leading "v". The
// strict parser is tried first because the lenient one runs a regular
// expression, which dominated Decide's cost.
func parseVersion(s string) *semver.Version {
	if v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v")); err == nil {
		return v
	}
	v, err := semver.NewVersion(s)
	if err != nil {
		return nil
	}
	return v
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
