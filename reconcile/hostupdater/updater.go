package hostupdater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/health"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/sources/versionclient"
)

// VersionServer is what the updater asks about its channel and group;
// versionclient.Client is the real one.
type VersionServer interface {
	Target(ctx context.Context, channel string) (versionclient.Target, error)
	// CriticalAnswer is the channel's critical flag asked as this agent
	// (its group), with the server's freeze hold (Upkeep-Freeze), if any.
	CriticalAnswer(ctx context.Context, channel string) (versionclient.Critical, error)
	Schedule(ctx context.Context, group string) ([]calendar.Interval, error)
}

// LeaseServer hands out the concurrency leases that cap how many agents of
// a group update at once; *report.Client is the real one.
type LeaseServer interface {
	Acquire(ctx context.Context, req report.LeaseRequest) (report.LeaseAnswer, error)
	Release(ctx context.Context, group, agentID string) error
}

// releaseTimeout bounds giving a lease back, even after the pass's context
// ended (SIGTERM after an update finished): a lease left behind holds a
// place until the server's TTL.
const releaseTimeout = 10 * time.Second

// ScheduleSource gives the agent's maintenance schedule, judged at now.
type ScheduleSource interface {
	Load(ctx context.Context, now time.Time, save bool) schedule.Schedule
	String() string
}

// Updater runs passes over one agent.
type Updater struct {
	cfg       *Config
	server    VersionServer
	installer installers.Installer
	schedule  ScheduleSource
	health    *health.Checker
	systemctl Systemctl
	report    func(ctx context.Context, p *Pass) error
	leases    LeaseServer
	now       func() time.Time
	log       *slog.Logger
}

// Parts are the updater's collaborators; New fills what is left nil from the
// configuration.
type Parts struct {
	Server    VersionServer
	Installer installers.Installer
	Schedule  ScheduleSource
	Health    *health.Checker
	Systemctl Systemctl
	Report    func(ctx context.Context, p *Pass) error
	// Leases, when set, is asked for a lease before every update (and the
	// lease given back after it); nil updates without one.
	Leases LeaseServer
	Now    func() time.Time
	Logger *slog.Logger
}

// New assembles an Updater. Server and Installer are required.
func New(cfg *Config, p Parts) (*Updater, error) {
	if p.Server == nil || p.Installer == nil {
		return nil, errors.New("hostupdater: a version server and an installer are required")
	}
	u := &Updater{
		cfg: cfg, server: p.Server, installer: p.Installer, schedule: p.Schedule,
		health: p.Health, systemctl: p.Systemctl, report: p.Report, leases: p.Leases, now: p.Now, log: p.Logger,
	}
	if u.now == nil {
		u.now = time.Now
	}
	if u.log == nil {
		u.log = slog.Default()
	}
	if u.systemctl == nil {
		u.systemctl = ExecSystemctl
	}
	if u.schedule == nil {
		switch cfg.Schedule.Source {
		case "server":
			u.schedule = &schedule.ServerSource{
				Fetch:  p.Server.Schedule,
				Group:  cfg.Group,
				Path:   filepath.Join(cfg.StateDir, "schedule"),
				Logger: u.log,
			}
		case "file":
			u.schedule = schedule.FileSource{Path: cfg.Schedule.File}
		default:
			u.schedule = schedule.NoSource{}
		}
	}
	if u.health == nil {
		checker, err := NewChecker(cfg, u.systemctl)
		if err != nil {
			return nil, err
		}
		checker.Logger = u.log // settle progress in the agent's log format, not slog's default
		u.health = checker
	}
	return u, nil
}

// NewChecker builds the health checks the configuration names.
func NewChecker(cfg *Config, sc Systemctl) (*health.Checker, error) {
	var checks []health.Check
	timeout := time.Duration(cfg.Health.Timeout)
	if h := cfg.Health.HTTP; h != nil {
		c, err := health.NewHTTPCheck(h.URL, h.Status, timeout)
		if err != nil {
			return nil, fmt.Errorf("health.http: %w", err)
		}
		checks = append(checks, c)
	}
	if *cfg.Health.Systemd {
		c, err := health.NewUnitCheck(cfg.Unit, health.Runner(sc))
		if err != nil {
			return nil, fmt.Errorf("health.systemd: %w", err)
		}
		checks = append(checks, c)
	}
	if len(cfg.Health.Command) > 0 {
		c, err := health.NewCommandCheck(cfg.Health.Command, timeout)
		if err != nil {
			return nil, fmt.Errorf("health.command: %w", err)
		}
		checks = append(checks, c)
	}
	return health.NewChecker(checks...), nil
}

// Pass is what one pass saw, decided and did.
type Pass struct {
	At        time.Time
	Current   string // installed release version, "" when not installed or unknown
	Target    string // the channel's version, "none", or "" when it could not be read
	TargetErr error
	// Critical is the update's critical flag: Yes when the server holds a
	// critical update back by a freeze (CriticalHold), though it answered no.
	Critical reconcile.Critical
	// CriticalHold is the version server's freeze that holds the critical
	// update back (header Upkeep-Freeze); nil when none.
	CriticalHold *reconcile.FreezeHold
	Health       health.Result
	Schedule     schedule.Schedule
	Decision     reconcile.Decision
	// Lease is the answer to the concurrency lease asked because the chain
	// said Update (LeaseNotAsked otherwise, and in a dry run).
	Lease     reconcile.Lease
	Recovered *apply.Result // an unfinished update finished before this pass
	// Unfinished is the journal of an update a crash cut short, which a
	// real pass finishes first; set by a dry run only, which leaves it.
	Unfinished *apply.Journal
	Result     *apply.Result // the update this pass made, if any
	Commands   [][]string    // what an update runs (dry run: would run)
	// Unresolved: a dry run did not look up the exact package version
	// (the installer cannot do it without writing), so Commands name the
	// release version; a real pass resolves it first.
	Unresolved bool
	Err        error // what stopped the pass early, if anything
}

// Once runs one pass. With dryRun it decides and lists the commands an update
// would run, but changes nothing: no lock, no recovery (an unfinished update
// is only named in Pass.Unfinished), no metadata refresh, no state, journal
// or schedule written, no lease asked, no report sent.
func (u *Updater) Once(ctx context.Context, dryRun bool) *Pass {
	p := &Pass{At: u.now()}
	p.Err = u.pass(ctx, p, dryRun)
	if p.Err != nil {
		u.log.Error("pass failed", "error", p.Err)
	}
	if !dryRun && u.report != nil && *u.cfg.Report {
		if err := u.report(ctx, p); err != nil {
			u.log.Warn("report not sent", "error", err)
		}
	}
	return p
}

func (u *Updater) pass(ctx context.Context, p *Pass, dryRun bool) error {
	dir := u.cfg.StateDir
	applier := &apply.Applier{Dir: dir, Target: u.target(), Now: u.now, Logger: u.log}
	if dryRun {
		// Read, never recovered: recovery installs, restarts and writes the
		// journal. The decision below is the one a real pass takes after it.
		j, err := apply.ReadJournal(dir)
		if err != nil {
			return err
		}
		if j.Unfinished() {
			p.Unfinished = j
		}
	} else {
		unlock, err := apply.Lock(dir)
		if err != nil {
			return err
		}
		defer unlock()
		// A crash in the middle of an update is finished before anything else.
		if p.Recovered, err = applier.Recover(ctx); err != nil {
			return err
		}
		if p.Recovered != nil {
			u.log.Info("finished an interrupted update", "outcome", p.Recovered.Outcome, "reason", p.Recovered.Reason, "message", p.Recovered.Message)
			// The interrupted run held a lease for it, which is given back
			// now rather than at the server's TTL (unless recovery itself
			// was cut short: the agent is still mid-update).
			if p.Recovered.Outcome != apply.Interrupted {
				u.releaseLease(ctx)
			}
		}
	}
	state, err := apply.ReadState(dir)
	if err != nil {
		return err
	}

	in := reconcile.DecisionInput{
		Now:               p.At,
		UpdateDuration:    time.Duration(u.cfg.UpdateDuration),
		UnusableThreshold: u.cfg.UnusableThreshold,
	}

	current, err := u.currentVersion(ctx)
	currentUnknown := err != nil
	if currentUnknown {
		u.log.Warn("installed version unknown", "package", u.cfg.Package, "error", err)
	} else {
		p.Current = current
	}
	in.Current = p.Current

	target, err := u.server.Target(ctx, u.cfg.Channel)
	switch {
	case err != nil:
		p.TargetErr = err
		in.Target = reconcile.Target{Err: err}
	case target.None:
		p.Target = "none"
		in.Target = reconcile.Target{Version: "none"}
	default:
		p.Target = target.Version
		in.Target = reconcile.Target{Version: target.Version}
	}
	in.Target.Held = target.Held
	p.Critical = reconcile.CriticalUnknown
	if err == nil {
		switch crit, cerr := u.server.CriticalAnswer(ctx, u.cfg.Channel); {
		case cerr != nil:
			u.log.Warn("critical flag unknown", "channel", u.cfg.Channel, "error", cerr)
		case crit.Held != nil:
			// The server's "no" holds a critical update by the group's
			// freeze: the chain's Frozen rule waits for its end by name.
			p.Critical, p.CriticalHold = reconcile.CriticalYes, crit.Held
		case crit.Critical:
			p.Critical = reconcile.CriticalYes
		default:
			p.Critical = reconcile.CriticalNo
		}
	}
	in.Critical, in.CriticalHold = p.Critical, p.CriticalHold

	p.Schedule = u.schedule.Load(ctx, p.At, !dryRun) // a dry run writes nothing
	in.Schedule = decisionSchedule(p.Schedule)
	// The chain counts earlier unusable checks; the state remembers this one too.
	unusable := 0
	if _, bad := in.Schedule.Unusable(p.At, in.UpdateDuration); bad {
		in.UnusableChecks = state.UnusableChecks
		unusable = state.UnusableChecks + 1
	}

	p.Health = u.health.Probe(ctx)
	in.Health = decisionHealth(p.Health.Status)
	if p.Current == "" && !currentUnknown {
		// Nothing installed is nothing running, whatever a probe could tell.
		p.Health = health.Result{Status: health.Unhealthy, Reason: "NotInstalled",
			Message: fmt.Sprintf("package %s is not installed", u.cfg.Package)}
		in.Health = reconcile.Unhealthy
		in.NotInstalled = true // FirstInstall: installed at once, windows or not
	}

	state.Skipped, _ = apply.PruneSkipped(state.Skipped, p.Target)
	for _, s := range state.Skipped {
		in.Skipped = append(in.Skipped, s.Version)
	}

	p.Decision = reconcile.Decide(in)
	// The lease is asked only when the chain says Update (so a waiting
	// agent never holds a place), then the chain decides again with the
	// answer: a refusal becomes ConcurrencyLimit.
	holding := false
	if p.Decision.Action == reconcile.ActionUpdate && !dryRun && u.leases != nil {
		p.Lease = u.acquireLease(ctx, p)
		in.Lease = p.Lease
		p.Decision = reconcile.Decide(in)
		holding = p.Lease.State == reconcile.LeaseGranted
	}
	attrs := []any{"decision", p.Decision, "current", p.Current, "target", p.Target,
		"critical", p.Critical, "health", p.Health.Status, "schedule", p.Schedule.String()}
	if h := p.CriticalHold; h != nil {
		attrs = append(attrs, "heldBy", slog.GroupValue(slog.String("rule", h.Rule), slog.String("freeze", h.Freeze), slog.Time("until", h.Until)))
	}
	u.log.Info("decision", attrs...)
	if holding {
		// Given back on every way out of the pass, once the update is
		// finished or rolled back; an interrupted apply keeps it (the agent
		// is mid-update until the next pass recovers it, or the TTL ends).
		defer func() {
			if p.Result == nil || p.Result.Outcome != apply.Interrupted {
				u.releaseLease(ctx)
			}
		}()
	}

	if p.Decision.Action == reconcile.ActionUpdate {
		pkgVersion := p.Target
		if !dryRun {
			if err := u.installer.Refresh(ctx); err != nil {
				return u.saveState(dir, p, unusable, fmt.Errorf("refreshing package metadata: %w", err))
			}
		}
		resolve := u.installer.Resolve
		if dryRun {
			// Most package managers write while they look a version up
			// (caches, logs, pid files): a dry run asks only one that can
			// answer without writing, and otherwise says it did not ask.
			resolve = nil
			if ro, ok := u.installer.(installers.ReadOnlyResolver); ok {
				resolve = ro.ResolveReadOnly
			}
		}
		if resolve == nil {
			p.Unresolved = true
		} else if v, err := resolve(ctx, u.cfg.Package, p.Target); err == nil {
			pkgVersion = v
		} else if !dryRun {
			return u.saveState(dir, p, unusable, err)
		}
		p.Commands = u.installer.Commands(u.cfg.Package, pkgVersion)
		if argv := restartArgv(u.cfg.Restart, u.cfg.Unit); argv != nil {
			p.Commands = append(p.Commands, argv)
		}
		if !dryRun {
			res := applier.Apply(ctx, p.Current, p.Target)
			p.Result = &res
			if v, err := u.currentVersion(ctx); err == nil {
				p.Current = v // what runs now, after the update or its rollback
			}
			u.log.Info("update finished", "outcome", res.Outcome, "from", res.From, "to", res.To, "reason", res.Reason, "message", res.Message)
		}
	}
	if dryRun {
		return nil
	}
	return u.saveState(dir, p, unusable, nil)
}

// saveState records the decision and the unusable-schedule count. It re-reads
// the state because Apply may have added to the skip list meanwhile.
func (u *Updater) saveState(dir string, p *Pass, unusable int, passErr error) error {
	state, err := apply.ReadState(dir)
	if err != nil {
		return errors.Join(passErr, err)
	}
	state.Skipped, _ = apply.PruneSkipped(state.Skipped, p.Target)
	state.UnusableChecks = unusable
	if p.Decision.Action == reconcile.ActionUpdate && passErr == nil {
		state.UnusableChecks = 0
	}
	state.LastDecision = &apply.DecisionRecord{
		At: p.At, Action: string(p.Decision.Action), Rule: p.Decision.Rule,
		Reason: p.Decision.Reason, Message: p.Decision.Message, RecheckAt: p.Decision.RecheckAt,
	}
	if p.Result != nil {
		state.LastResult = p.Result
	}
	return errors.Join(passErr, apply.WriteState(dir, state))
}

// acquireLease asks for a place among the group's updating agents.
func (u *Updater) acquireLease(ctx context.Context, p *Pass) reconcile.Lease {
	a, err := u.leases.Acquire(ctx, report.LeaseRequest{AgentID: u.cfg.AgentID, Group: u.cfg.Group, Channel: u.cfg.Channel, Version: p.Target})
	l := report.LeaseInput(u.cfg.Group, a, err)
	switch l.State {
	case reconcile.LeaseGranted:
		u.log.Info("lease granted", "group", u.cfg.Group, "expiresAt", a.ExpiresAt)
	case reconcile.LeaseUnsupported:
		u.log.Info("updating without a lease: the server keeps none", "reason", err)
	case reconcile.LeaseRefused:
		u.log.Info("lease refused", "group", u.cfg.Group, "holders", a.Holders, "max", a.Max, "retryAfter", a.RetryAfter)
	case reconcile.LeaseFailed:
		u.log.Warn("lease could not be asked", "group", u.cfg.Group, "error", err)
	}
	return l
}

// releaseLease gives the agent's lease back, even when ctx has ended.
func (u *Updater) releaseLease(ctx context.Context) {
	if u.leases == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := u.leases.Release(ctx, u.cfg.Group, u.cfg.AgentID); err != nil {
		u.log.Warn("lease not given back; it frees its place when it expires", "group", u.cfg.Group, "error", err)
	}
}

func (u *Updater) currentVersion(ctx context.Context) (string, error) {
	v, ok, err := u.installer.Installed(ctx, u.cfg.Package)
	if err != nil || !ok {
		return "", err
	}
	return installers.ReleaseVersion(v), nil
}

// Run runs passes until ctx ends: every interval ± jitter, or sooner when the
// decision asks to look again at a given time (a window's start).
func (u *Updater) Run(ctx context.Context) {
	for {
		p := u.Once(ctx, false)
		wait := u.nextWait(p)
		u.log.Debug("next pass", "in", wait.Round(time.Second))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (u *Updater) nextWait(p *Pass) time.Duration {
	interval, jitter := time.Duration(u.cfg.Interval), time.Duration(u.cfg.Jitter)
	wait := interval
	if jitter > 0 {
		wait += time.Duration(rand.Int64N(int64(2*jitter))) - jitter
	}
	if at := p.Decision.RecheckAt; !at.IsZero() {
		if until := at.Sub(u.now()); until > 0 && until < wait {
			wait = until
		}
	}
	return max(wait, time.Second)
}

func decisionSchedule(s schedule.Schedule) reconcile.Schedule {
	switch s.State {
	case schedule.Missing:
		return reconcile.Schedule{State: reconcile.ScheduleMissing}
	case schedule.Unreadable:
		return reconcile.Schedule{State: reconcile.ScheduleUnreadable, Err: s.Err}
	}
	return reconcile.Schedule{State: reconcile.ScheduleLoaded, Windows: s.Windows}
}

func decisionHealth(s health.Status) reconcile.Health {
	switch s {
	case health.Healthy:
		return reconcile.Healthy
	case health.Unhealthy:
		return reconcile.Unhealthy
	}
	return reconcile.HealthUnknown
}
