package reconcile

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/spec"
)

// vetoBounds admits nothing, with an error that is not a spec.AdmitError.
type vetoBounds struct{}

func (vetoBounds) Admits(version string) error { return fmt.Errorf("%s vetoed by policy", version) }

func TestDecide(t *testing.T) {
	// The fake clock: a Tuesday afternoon. Windows are relative to it.
	now := time.Date(2026, 6, 2, 14, 0, 0, 0, time.UTC)
	h := func(n float64) time.Time { return now.Add(time.Duration(n * float64(time.Hour))) }
	window := func(from, to float64) calendar.Interval { return calendar.Interval{Start: h(from), End: h(to)} }

	// Outside any window; the next opens in 12h and lasts 4h.
	outside := Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(-20, -16), window(12, 16)}}
	// Inside a window with 2h left.
	inside := Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(-1, 2), window(23, 27)}}
	freezeStrict := &spec.Freeze{Name: "year-end", Start: h(-48), End: h(72)}
	freezeLenient := &spec.Freeze{Name: "launch", Start: h(-48), End: h(72), AllowCritical: true}

	// base is an agent on 17.1.0 offered 17.1.1, healthy, outside its windows.
	base := func() DecisionInput {
		return DecisionInput{
			Now: now, Current: "17.1.0", Target: Target{Version: "v17.1.1"},
			Critical: CriticalNo, Health: Healthy, Schedule: outside,
			Bounds: &spec.ControlPlane{Name: "cloud", Version: "17.2.3"},
		}
	}
	tests := []struct {
		scenario string
		edit     func(in *DecisionInput)
		action   Action
		rule     string
		reason   string
		recheck  time.Time
		message  string // a substring the message must contain
	}{
		// TargetUnknown
		{
			scenario: "a target that could not be fetched keeps the current version",
			edit:     func(in *DecisionInput) { in.Target = Target{Err: errors.New("dial tcp: connection refused")} },
			action:   ActionKeep, rule: RuleTargetUnknown, reason: "TargetFetchFailed",
			message: "could not fetch the target version (dial tcp: connection refused); keeping 17.1.0",
		},
		{
			scenario: "an unknown target beats an unhealthy agent and a critical flag",
			edit: func(in *DecisionInput) {
				in.Target = Target{Err: errors.New("timeout")}
				in.Health, in.Critical = Unhealthy, CriticalYes
			},
			action: ActionKeep, rule: RuleTargetUnknown, reason: "TargetFetchFailed",
		},
		{
			scenario: "an empty target keeps the current version",
			edit:     func(in *DecisionInput) { in.Target = Target{} },
			action:   ActionKeep, rule: RuleTargetUnknown, reason: "TargetEmpty",
		},
		{
			scenario: "a target that is not a version keeps the current version",
			edit:     func(in *DecisionInput) { in.Target = Target{Version: "latest"} },
			action:   ActionKeep, rule: RuleTargetUnknown, reason: "TargetNotSemver",
			message: `the target "latest" is not a semantic version`,
		},
		// RolloutHeld
		{
			scenario: "an agent on the version it is answered, held back by a canary step, waits and names the rollout",
			edit: func(in *DecisionInput) {
				in.Current = "17.1.1"
				in.Target.Held = &RolloutHold{Version: "17.4.0", State: "Canary", Stage: 1, Reason: "NotCanary"}
			},
			action: ActionWait, rule: RuleRolloutHeld, reason: "NotCanary",
			message: "17.4.0 is rolling out (state Canary, stage 1); this agent is held back (NotCanary) and stays on 17.1.1 until the rollout reaches it",
		},
		{
			scenario: "a hold beats a critical flag and an unhealthy agent: the server's answer is the version before the rollout",
			edit: func(in *DecisionInput) {
				in.Current, in.Critical, in.Health = "17.1.1", CriticalYes, Unhealthy
				in.Target.Held = &RolloutHold{Version: "v17.4.0", State: "Halted", Stage: 0, Reason: "RolloutHalted"}
			},
			action: ActionWait, rule: RuleRolloutHeld, reason: "RolloutHalted",
			message: "17.4.0 is rolling out (state Halted, stage 0)",
		},
		{
			scenario: "an agent already on the version rolling out is not downgraded by a hold",
			edit: func(in *DecisionInput) {
				in.Current, in.Schedule = "17.4.0", inside
				in.Target.Held = &RolloutHold{Version: "17.4.0", State: "Halted", Stage: 0, Reason: "RolloutHalted"}
			},
			action: ActionWait, rule: RuleRolloutHeld, reason: "AlreadyOnRolloutVersion",
			message: "already runs it; the server answers 17.1.1 to agents the rollout has not reached (RolloutHalted), and a hold never downgrades",
		},
		{
			scenario: "a held agent offered no version before the rollout is left alone, with the rollout named",
			edit: func(in *DecisionInput) {
				in.Target = Target{Version: spec.NoVersion, Held: &RolloutHold{Version: "17.4.0", State: "Canary", Stage: 0}}
			},
			action: ActionWait, rule: RuleRolloutHeld, reason: "HeldByRollout",
			message: "offers no version before it",
		},
		{
			scenario: "a held agent on an older version still moves to the version it is answered, by the usual rules",
			edit: func(in *DecisionInput) {
				in.Schedule = inside
				in.Target.Held = &RolloutHold{Version: "17.4.0", State: "Canary", Stage: 1, Reason: "NotCanary"}
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: "updating from 17.1.0 to 17.1.1",
		},
		{
			scenario: "a hold does not beat an unknown target",
			edit: func(in *DecisionInput) {
				in.Target = Target{Err: errors.New("timeout"), Held: &RolloutHold{Version: "17.4.0", State: "Canary"}}
			},
			action: ActionKeep, rule: RuleTargetUnknown, reason: "TargetFetchFailed",
		},
		// UpToDate
		{
			scenario: "a channel offering none leaves the agent alone, even when unhealthy",
			edit:     func(in *DecisionInput) { in.Target, in.Health = Target{Version: spec.NoVersion}, Unhealthy },
			action:   ActionNothing, rule: RuleUpToDate, reason: "NoVersionOffered",
		},
		{
			scenario: "an agent on the target has nothing to do, a leading v notwithstanding",
			edit:     func(in *DecisionInput) { in.Current = "17.1.1" },
			action:   ActionNothing, rule: RuleUpToDate, reason: "AlreadyOnTarget",
			message: "already running the target 17.1.1",
		},
		{
			scenario: "an agent on the target has nothing to do even when critical and unhealthy",
			edit:     func(in *DecisionInput) { in.Current, in.Critical, in.Health = "v17.1.1", CriticalYes, Unhealthy },
			action:   ActionNothing, rule: RuleUpToDate, reason: "AlreadyOnTarget",
		},
		{
			scenario: "a release candidate of the target is not the target",
			edit:     func(in *DecisionInput) { in.Current, in.Schedule = "v17.1.1-rc.1", inside },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: "updating from 17.1.1-rc.1 to 17.1.1",
		},
		// Skipped
		{
			scenario: "a skipped target keeps the current version until the target changes",
			edit:     func(in *DecisionInput) { in.Skipped = []string{"17.0.9", "v17.1.1"} },
			action:   ActionKeep, rule: RuleSkipped, reason: "TargetSkipped",
			message: "target 17.1.1 was skipped after a failed rollout; keeping 17.1.0 until the channel offers another version",
		},
		{
			scenario: "the skip list beats a critical update",
			edit:     func(in *DecisionInput) { in.Skipped, in.Critical = []string{"17.1.1"}, CriticalYes },
			action:   ActionKeep, rule: RuleSkipped, reason: "TargetSkipped",
		},
		{
			scenario: "a skip list naming other versions does not hold the target back",
			edit:     func(in *DecisionInput) { in.Skipped, in.Schedule = []string{"17.1.2", "garbage"}, inside },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		// ControlPlaneBounds
		{
			scenario: "a target above the control plane is refused",
			edit:     func(in *DecisionInput) { in.Target = Target{Version: "17.3.0"} },
			action:   ActionRefuse, rule: RuleControlPlane, reason: spec.ReasonAboveControlPlane,
			message: `target 17.3.0 is outside the control plane's bounds ("17.3.0" is above control plane "cloud" version 17.2.3); keeping 17.1.0`,
		},
		{
			scenario: "the control-plane bounds beat an unhealthy agent",
			edit:     func(in *DecisionInput) { in.Target, in.Health = Target{Version: "15.4.0"}, Unhealthy },
			action:   ActionRefuse, rule: RuleControlPlane, reason: spec.ReasonBelowSupportedMajor,
			message: `"15.4.0" is below 16.0.0`,
		},
		{
			scenario: "the control-plane bounds beat a critical update",
			edit:     func(in *DecisionInput) { in.Target, in.Critical = Target{Version: "18.0.0"}, CriticalYes },
			action:   ActionRefuse, rule: RuleControlPlane, reason: spec.ReasonAboveControlPlane,
		},
		{
			scenario: "a target outside the control plane's agents constraint is refused",
			edit: func(in *DecisionInput) {
				in.Bounds = &spec.ControlPlane{Name: "cloud", Version: "17.2.3", Agents: ">= 16.0.0, < 17.1.0"}
			},
			action: ActionRefuse, rule: RuleControlPlane, reason: spec.ReasonOutsideAgentsAllowed,
			message: `agents constraint ">= 16.0.0, < 17.1.0"`,
		},
		{
			scenario: "bounds that give no reason are refused with a generic one",
			edit:     func(in *DecisionInput) { in.Bounds = vetoBounds{} },
			action:   ActionRefuse, rule: RuleControlPlane, reason: "OutsideControlPlaneBounds",
			message: "(17.1.1 vetoed by policy)",
		},
		{
			scenario: "unknown control-plane bounds are not checked",
			edit: func(in *DecisionInput) {
				in.Target, in.Bounds, in.Schedule = Target{Version: "18.0.0"}, nil, inside
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		{
			scenario: "a nil control plane counts as unknown bounds",
			edit: func(in *DecisionInput) {
				in.Target, in.Bounds, in.Schedule = Target{Version: "18.0.0"}, (*spec.ControlPlane)(nil), inside
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		// FirstInstall
		{
			scenario: "a package that is not installed is installed at once, outside its window",
			edit:     func(in *DecisionInput) { in.Current, in.NotInstalled, in.Health = "", true, Unhealthy },
			action:   ActionUpdate, rule: RuleFirstInstall, reason: "NotInstalled",
			message: "the agent is not installed; installing 17.1.1 at once",
		},
		{
			scenario: "a first install is not held back by a freeze that forbids critical updates",
			edit: func(in *DecisionInput) {
				in.Current, in.NotInstalled, in.Critical, in.Freeze = "", true, CriticalYes, freezeStrict
			},
			action: ActionUpdate, rule: RuleFirstInstall, reason: "NotInstalled",
		},
		{
			scenario: "a first install does not wait for unusable-schedule checks when the schedule is missing",
			edit:     func(in *DecisionInput) { in.Current, in.NotInstalled, in.Schedule = "", true, Schedule{} },
			action:   ActionUpdate, rule: RuleFirstInstall, reason: "NotInstalled",
		},
		{
			scenario: "a first install of a target above the control plane is refused",
			edit:     func(in *DecisionInput) { in.Current, in.NotInstalled, in.Target = "", true, Target{Version: "17.3.0"} },
			action:   ActionRefuse, rule: RuleControlPlane, reason: "AboveControlPlane",
		},
		{
			scenario: "a first install keeps away from a skipped version",
			edit:     func(in *DecisionInput) { in.Current, in.NotInstalled, in.Skipped = "", true, []string{"17.1.1"} },
			action:   ActionKeep, rule: RuleSkipped, reason: "TargetSkipped",
		},
		{
			scenario: "a first install on a channel that offers no version installs nothing",
			edit:     func(in *DecisionInput) { in.Current, in.NotInstalled, in.Target = "", true, Target{Version: "none"} },
			action:   ActionNothing, rule: RuleUpToDate, reason: "NoVersionOffered",
		},
		{
			scenario: "a held-back agent that is not installed installs the version it is answered",
			edit: func(in *DecisionInput) {
				in.Current, in.NotInstalled = "", true
				in.Target.Held = &RolloutHold{Version: "17.2.0", State: "Canary", Reason: "NotCanary"}
			},
			action: ActionUpdate, rule: RuleFirstInstall, reason: "NotInstalled", message: "installing 17.1.1",
		},
		{
			scenario: "an unknown current version (a failed read, not a missing package) is no first install",
			edit:     func(in *DecisionInput) { in.Current = "" },
			action:   ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(12),
		},
		// Critical
		{
			scenario: "a critical update outside the window is applied at once",
			edit:     func(in *DecisionInput) { in.Critical = CriticalYes },
			action:   ActionUpdate, rule: RuleCritical, reason: "CriticalUpdate",
			message: "critical update from 17.1.0 to 17.1.1, applied at once",
		},
		{
			scenario: "a critical update inside a freeze that forbids it waits until the freeze ends",
			edit:     func(in *DecisionInput) { in.Critical, in.Freeze, in.Schedule = CriticalYes, freezeStrict, Schedule{} },
			action:   ActionWait, rule: RuleFrozen, reason: "CriticalHeldByFreeze", recheck: h(72),
			message: `critical update from 17.1.0 to 17.1.1 held by freeze "year-end", which does not allow critical updates, until 2026-06-05T14:00:00Z`,
		},
		{
			scenario: "a critical update inside a freeze that allows it is applied at once",
			edit:     func(in *DecisionInput) { in.Critical, in.Freeze = CriticalYes, freezeLenient },
			action:   ActionUpdate, rule: RuleCritical, reason: "CriticalUpdate",
		},
		{
			scenario: "an unhealthy agent is updated even when a freeze holds back its critical update",
			edit:     func(in *DecisionInput) { in.Critical, in.Freeze, in.Health = CriticalYes, freezeStrict, Unhealthy },
			action:   ActionUpdate, rule: RuleUnhealthy, reason: "AgentUnhealthy",
		},
		{
			scenario: "a critical update with a schedule missing is applied at once, without waiting for checks",
			edit:     func(in *DecisionInput) { in.Critical, in.Schedule = CriticalYes, Schedule{} },
			action:   ActionUpdate, rule: RuleCritical, reason: "CriticalUpdate",
		},
		// The version server's CriticalHeldByFreeze answer (Upkeep-Freeze)
		{
			scenario: "a critical update the server holds by a freeze waits until the freeze ends, naming the freeze",
			edit: func(in *DecisionInput) {
				in.Critical = CriticalNo // the server's "no"
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: h(72)}
			},
			action: ActionWait, rule: RuleFrozen, reason: "CriticalHeldByFreeze", recheck: h(72),
			message: `critical update from 17.1.0 to 17.1.1 held by freeze "year-end", which does not allow critical updates, until 2026-06-05T14:00:00Z`,
		},
		{
			scenario: "a server-held critical update waits even with a schedule missing for many checks",
			edit: func(in *DecisionInput) {
				in.Schedule, in.UnusableChecks = Schedule{}, 5
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: h(72)}
			},
			action: ActionWait, rule: RuleFrozen, reason: "CriticalHeldByFreeze", recheck: h(72),
		},
		{
			scenario: "a server-held critical update overrides a freeze the caller passed that allows critical updates",
			edit: func(in *DecisionInput) {
				in.Freeze, in.Schedule = freezeLenient, inside
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: h(48)}
			},
			action: ActionWait, rule: RuleFrozen, reason: "CriticalHeldByFreeze", recheck: h(48),
		},
		{
			scenario: "an unhealthy agent is updated even when the server holds its critical update by a freeze",
			edit: func(in *DecisionInput) {
				in.Health = Unhealthy
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: h(72)}
			},
			action: ActionUpdate, rule: RuleUnhealthy, reason: "AgentUnhealthy",
		},
		{
			scenario: "a server hold whose end this clock has passed is a critical update at once",
			edit: func(in *DecisionInput) {
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: now}
			},
			action: ActionUpdate, rule: RuleCritical, reason: "CriticalUpdate",
		},
		{
			scenario: "a server hold on an agent already on the target changes nothing",
			edit: func(in *DecisionInput) {
				in.Current = "17.1.1"
				in.CriticalHold = &FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: h(72)}
			},
			action: ActionNothing, rule: RuleUpToDate, reason: "AlreadyOnTarget",
		},
		{
			scenario: "an unknown critical flag counts as not critical",
			edit:     func(in *DecisionInput) { in.Critical = CriticalUnknown },
			action:   ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(12),
		},
		// Unhealthy
		{
			scenario: "an unhealthy agent outside its window is updated at once",
			edit:     func(in *DecisionInput) { in.Health = Unhealthy },
			action:   ActionUpdate, rule: RuleUnhealthy, reason: "AgentUnhealthy",
			message: "agent is unhealthy; updating from 17.1.0 to 17.1.1 at once",
		},
		{
			scenario: "an unhealthy agent is updated during a freeze, since restarting it cuts nothing",
			edit:     func(in *DecisionInput) { in.Health, in.Freeze = Unhealthy, freezeStrict },
			action:   ActionUpdate, rule: RuleUnhealthy, reason: "AgentUnhealthy",
		},
		{
			scenario: "an agent of unknown health counts as healthy",
			edit:     func(in *DecisionInput) { in.Health = HealthUnknown },
			action:   ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(12),
		},
		// Frozen
		{
			scenario: "a healthy agent inside a freeze waits for it to end, even inside a window",
			edit:     func(in *DecisionInput) { in.Freeze, in.Schedule = freezeLenient, inside },
			action:   ActionWait, rule: RuleFrozen, reason: "InFreeze", recheck: h(72),
			message: `update from 17.1.0 to 17.1.1 waits for freeze "launch" to end at 2026-06-05T14:00:00Z`,
		},
		{
			scenario: "a freeze longer than the schedule's horizon does not count as no window ahead",
			edit: func(in *DecisionInput) {
				in.Freeze = freezeStrict
				in.Schedule = Schedule{State: ScheduleLoaded}
				in.UnusableChecks = 5
			},
			action: ActionWait, rule: RuleFrozen, reason: "InFreeze", recheck: h(72),
		},
		{
			scenario: "a freeze that does not contain now is ignored",
			edit: func(in *DecisionInput) {
				in.Freeze = &spec.Freeze{Name: "past", Start: h(-72), End: h(-24)}
				in.Schedule = inside
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		// ScheduleUnusable
		{
			scenario: "a missing schedule on the first check waits a short while",
			edit:     func(in *DecisionInput) { in.Schedule = Schedule{} },
			action:   ActionWait, rule: RuleScheduleUnusable, reason: ReasonScheduleMissing, recheck: now.Add(time.Minute),
			message: "no maintenance schedule is saved beside the agent (check 1 of 2 before updating at once); checking again at 2026-06-02T14:01:00Z",
		},
		{
			scenario: "a missing schedule on the second consecutive check updates at once",
			edit:     func(in *DecisionInput) { in.Schedule, in.UnusableChecks = Schedule{}, 1 },
			action:   ActionUpdate, rule: RuleScheduleUnusable, reason: ReasonScheduleMissing,
			message: "no maintenance schedule is saved beside the agent for 2 consecutive checks; treating the agent as unhealthy and updating from 17.1.0 to 17.1.1",
		},
		{
			scenario: "an unreadable schedule names its error and honours a custom threshold and recheck",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleUnreadable, Err: errors.New("schedule:2: want two unix times")}
				in.UnusableChecks, in.UnusableThreshold, in.ScheduleRecheck = 1, 3, 30*time.Second
			},
			action: ActionWait, rule: RuleScheduleUnusable, reason: ReasonScheduleUnreadable, recheck: now.Add(30 * time.Second),
			message: "the maintenance schedule is unreadable (schedule:2: want two unix times) (check 2 of 3",
		},
		{
			scenario: "an unreadable schedule at the custom threshold updates at once",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleUnreadable}
				in.UnusableChecks, in.UnusableThreshold = 2, 3
			},
			action: ActionUpdate, rule: RuleScheduleUnusable, reason: ReasonScheduleUnreadable,
		},
		{
			scenario: "a schedule whose windows are all past has no window ahead",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(-30, -26), window(-6, -2)}}
				in.UnusableChecks = 1
			},
			action: ActionUpdate, rule: RuleScheduleUnusable, reason: ReasonNoWindowAhead,
			message: "the maintenance schedule has no window ahead that fits an update of 15m0s for 2 consecutive checks",
		},
		{
			scenario: "a schedule whose windows are all shorter than the update has no window ahead",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(1, 1.25), window(25, 25.25)}}
				in.UpdateDuration = 20 * time.Minute
			},
			action: ActionWait, rule: RuleScheduleUnusable, reason: ReasonNoWindowAhead, recheck: now.Add(time.Minute),
		},
		{
			scenario: "an unhealthy agent with a missing schedule updates without waiting for more checks",
			edit:     func(in *DecisionInput) { in.Schedule, in.Health = Schedule{}, Unhealthy },
			action:   ActionUpdate, rule: RuleUnhealthy, reason: "AgentUnhealthy",
		},
		// InWindow
		{
			scenario: "inside a window with enough time left the update is applied",
			edit:     func(in *DecisionInput) { in.Schedule = inside },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: "inside the maintenance window until 2026-06-02T16:00:00Z (2h0m0s left, the update needs 15m0s); updating from 17.1.0 to 17.1.1",
		},
		{
			scenario: "inside a window with exactly the update duration left the update is applied",
			edit:     func(in *DecisionInput) { in.Schedule, in.UpdateDuration = inside, 2*time.Hour },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		{
			scenario: "at the very start of a window the update is applied",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(0, 1)}}
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		{
			scenario: "an agent of unknown version inside a window is updated",
			edit:     func(in *DecisionInput) { in.Current, in.Schedule = "", inside },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: "updating from the unknown current version to 17.1.1",
		},
		{
			scenario: "an agent with an unrecognised version inside a window is updated",
			edit:     func(in *DecisionInput) { in.Current, in.Schedule = "17.1.1-dirty+", inside },
			action:   ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: `from the unrecognised current version "17.1.1-dirty+" to 17.1.1`,
		},
		{
			scenario: "a lower target rolls the agent back inside a window",
			edit: func(in *DecisionInput) {
				in.Current, in.Target, in.Schedule = "17.2.0", Target{Version: "17.1.1"}, inside
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
			message: "updating from 17.2.0 to 17.1.1",
		},
		// ConcurrencyLimit
		{
			scenario: "an update inside a window whose group is at maxConcurrent waits until the earliest lease expires",
			edit: func(in *DecisionInput) {
				in.Schedule = inside
				in.Lease = Lease{State: LeaseRefused, Group: "eu-prod", Holders: 5, Max: 5, RetryAt: now.Add(7 * time.Minute)}
			},
			action: ActionWait, rule: RuleConcurrencyLimit, reason: "MaxConcurrentReached", recheck: now.Add(7 * time.Minute),
			message: `update from 17.1.0 to 17.1.1, wanted by InWindow (InsideWindow), waits for a place: group "eu-prod" has 5 of 5 agents updating (maxConcurrent); asking again at 2026-06-02T14:07:00Z`,
		},
		{
			scenario: "a critical update is held by the concurrency limit too",
			edit: func(in *DecisionInput) {
				in.Critical = CriticalYes
				in.Lease = Lease{State: LeaseRefused, Holders: 2, Max: 2}
			},
			action: ActionWait, rule: RuleConcurrencyLimit, reason: "MaxConcurrentReached", recheck: now.Add(DefaultLeaseRecheck),
			message: "wanted by Critical (CriticalUpdate), waits for a place: the agents without a group have 2 of 2 agents updating",
		},
		{
			scenario: "a refusal whose retry time has passed asks again after the default recheck",
			edit: func(in *DecisionInput) {
				in.Health = Unhealthy
				in.Lease = Lease{State: LeaseRefused, Group: "eu", Holders: 1, Max: 1, RetryAt: now.Add(-time.Second)}
			},
			action: ActionWait, rule: RuleConcurrencyLimit, reason: "MaxConcurrentReached", recheck: now.Add(DefaultLeaseRecheck),
		},
		{
			scenario: "a lease that could not be asked holds the update back rather than risk the limit",
			edit: func(in *DecisionInput) {
				in.Schedule = inside
				in.Lease = Lease{State: LeaseFailed, Group: "eu", Err: errors.New("POST /v1/leases: status 503")}
			},
			action: ActionWait, rule: RuleConcurrencyLimit, reason: "LeaseUnavailable", recheck: now.Add(DefaultLeaseRecheck),
			message: `the concurrency lease for group "eu" could not be asked (POST /v1/leases: status 503)`,
		},
		{
			scenario: "a granted lease lets the update go ahead",
			edit: func(in *DecisionInput) {
				in.Schedule, in.Lease = inside, Lease{State: LeaseGranted, Group: "eu"}
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		{
			scenario: "a server without leases lets the update go ahead",
			edit: func(in *DecisionInput) {
				in.Schedule, in.Lease = inside, Lease{State: LeaseUnsupported}
			},
			action: ActionUpdate, rule: RuleInWindow, reason: "InsideWindow",
		},
		{
			scenario: "a refused lease changes nothing when the chain does not say Update",
			edit: func(in *DecisionInput) {
				in.Lease = Lease{State: LeaseRefused, Group: "eu", Holders: 3, Max: 3}
			},
			action: ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(12),
		},
		// WaitForWindow
		{
			scenario: "outside the window a healthy agent waits for the next window's start",
			action:   ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(12),
			message: "outside maintenance windows; waiting for the window at 2026-06-03T02:00:00Z to update from 17.1.0 to 17.1.1",
		},
		{
			scenario: "inside a window with too little time left the agent waits for the next window",
			edit:     func(in *DecisionInput) { in.Schedule, in.UpdateDuration = inside, 3*time.Hour },
			action:   ActionWait, rule: RuleWaitForWindow, reason: "NotEnoughTimeLeft", recheck: h(23),
			message: "the window open until 2026-06-02T16:00:00Z has 2h0m0s left but the update needs 3h0m0s; waiting for the window at 2026-06-03T13:00:00Z",
		},
		{
			scenario: "a next window too short for the update is passed over for a longer one",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(1, 1.25), window(5, 9)}}
				in.UpdateDuration = 30 * time.Minute
			},
			action: ActionWait, rule: RuleWaitForWindow, reason: "OutsideWindow", recheck: h(5),
		},
		{
			scenario: "the default update duration applies when none is given",
			edit: func(in *DecisionInput) {
				in.Schedule = Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{window(-1, 0.2), window(5, 9)}}
			},
			action: ActionWait, rule: RuleWaitForWindow, reason: "NotEnoughTimeLeft", recheck: h(5),
			message: "has 12m0s left but the update needs 15m0s",
		},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			in := base()
			if tc.edit != nil {
				tc.edit(&in)
			}
			d := Decide(in)
			seen[d.Rule] = true
			if d.Action != tc.action || d.Rule != tc.rule || d.Reason != tc.reason {
				t.Fatalf("got %s by %s (%s): %s\nwant %s by %s (%s)", d.Action, d.Rule, d.Reason, d.Message, tc.action, tc.rule, tc.reason)
			}
			if !d.RecheckAt.Equal(tc.recheck) {
				t.Errorf("RecheckAt = %v, want %v", d.RecheckAt, tc.recheck)
			}
			if !strings.Contains(d.Message, tc.message) {
				t.Errorf("message %q\ndoes not contain %q", d.Message, tc.message)
			}
			if d.Message == "" {
				t.Errorf("empty message")
			}
		})
	}
	for _, name := range RuleNames() {
		if !seen[name] {
			t.Errorf("no scenario settles by rule %s", name)
		}
	}
}

// TestScheduleUnusable is what updaters use to count consecutive checks.
func TestScheduleUnusable(t *testing.T) {
	now := time.Date(2026, 6, 2, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		scenario string
		s        Schedule
		want     string
	}{
		{"a zero schedule is missing", Schedule{}, ReasonScheduleMissing},
		{"an unreadable schedule is unusable", Schedule{State: ScheduleUnreadable}, ReasonScheduleUnreadable},
		{"a loaded schedule without windows has no window ahead", Schedule{State: ScheduleLoaded}, ReasonNoWindowAhead},
		{"a loaded schedule with a window that fits is usable",
			Schedule{State: ScheduleLoaded, Windows: []calendar.Interval{{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			reason, bad := tc.s.Unusable(now, 15*time.Minute)
			if reason != tc.want || bad != (tc.want != "") {
				t.Fatalf("got %q, %v; want %q", reason, bad, tc.want)
			}
		})
	}
}

func TestRuleNamesAreInChainOrder(t *testing.T) {
	want := []string{RuleTargetUnknown, RuleRolloutHeld, RuleUpToDate, RuleSkipped, RuleControlPlane, RuleFirstInstall,
		RuleCritical, RuleUnhealthy, RuleFrozen, RuleScheduleUnusable, RuleInWindow, RuleWaitForWindow, RuleConcurrencyLimit}
	if got := RuleNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestEnumNames: logs and messages show enum values by name, in text and
// JSON logs alike; a value outside an enum still says what it is.
func TestEnumNames(t *testing.T) {
	tests := []struct {
		scenario string
		v        interface {
			String() string
			LogValue() slog.Value
		}
		want string
	}{
		{"a critical update is Yes", CriticalYes, "Yes"},
		{"an unfetched critical flag is Unknown", CriticalUnknown, "Unknown"},
		{"an unhealthy agent is Unhealthy", Unhealthy, "Unhealthy"},
		{"a refused lease is Refused", LeaseRefused, "Refused"},
		{"a lease not asked is NotAsked", LeaseNotAsked, "NotAsked"},
		{"a loaded schedule is Loaded", ScheduleLoaded, "Loaded"},
		{"a health value outside the enum names its type and number", Health(7), "Health(7)"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			if got := tc.v.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			var b strings.Builder
			slog.New(slog.NewJSONHandler(&b, nil)).Info("m", "v", tc.v)
			if want := fmt.Sprintf(`"v":%q`, tc.want); !strings.Contains(b.String(), want) {
				t.Errorf("JSON log %s does not contain %s", b.String(), want)
			}
		})
	}
}

// BenchmarkDecide runs the whole chain to its last rule with a 14-day schedule
// from calendar.Windows, the common case on every updater pass.
func BenchmarkDecide(b *testing.B) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 6, 2, 14, 0, 0, 0, time.UTC)
	g := &spec.Group{Name: "eu-prod", Timezone: "Europe/Berlin", Location: loc, Windows: []spec.Window{
		{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour},
		{Start: 23*time.Hour + 30*time.Minute, Duration: time.Hour},
		{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 10 * time.Hour, Duration: 6 * time.Hour},
	}}
	in := DecisionInput{
		Now: now, Current: "17.1.0", Target: Target{Version: "v17.1.1"}, Critical: CriticalNo, Health: Healthy,
		Schedule: Schedule{State: ScheduleLoaded, Windows: calendar.Windows(g, now, 14*24*time.Hour)},
		Skipped:  []string{"17.0.9"}, Bounds: &spec.ControlPlane{Name: "cloud", Version: "17.2.3"},
	}
	if d := Decide(in); d.Rule != RuleWaitForWindow {
		b.Fatalf("benchmark input settles by %s, want %s", d.Rule, RuleWaitForWindow)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(in)
	}
}
