package hostupdater

import (
	"context"
	"fmt"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/health"
)

// Systemctl runs a systemctl command line; ExecSystemctl is the real one.
// Tests inside a container pass one that runs it there.
type Systemctl = health.Runner

// ExecSystemctl runs argv on this host.
var ExecSystemctl Systemctl = health.Exec

// restartArgv is the command line that restarts the agent after an install;
// nil for restart: none.
func restartArgv(mode, unit string) []string {
	if mode == "none" {
		return nil
	}
	return []string{"systemctl", mode, "--", unit}
}

// hostTarget is the agent as a package and a systemd unit: what the apply
// step installs, restarts and judges.
type hostTarget struct {
	u *Updater
}

func (u *Updater) target() *hostTarget { return &hostTarget{u: u} }

func (t *hostTarget) Current(ctx context.Context) (string, error) {
	return t.u.currentVersion(ctx)
}

func (t *hostTarget) Install(ctx context.Context, version string) error {
	return t.u.installer.Install(ctx, t.u.cfg.Package, version)
}

// Repair finishes a package-manager transaction an earlier run left
// unfinished (apply.Repairer), when the installer can.
func (t *hostTarget) Repair(ctx context.Context, keep string) (apply.Repair, error) {
	r, ok := t.u.installer.(installers.Repairer)
	if !ok {
		return apply.Repair{Rule: apply.RepairNothing}, nil
	}
	rep, err := r.Repair(ctx, t.u.cfg.Package, keep)
	return apply.Repair{Rule: rep.Rule, Message: rep.Message, Commands: rep.Commands}, err
}

func (t *hostTarget) Restart(ctx context.Context) error {
	argv := restartArgv(t.u.cfg.Restart, t.u.cfg.Unit)
	if argv == nil {
		return nil
	}
	// A first install brings a unit file systemd has not loaded (a package
	// without maintainer scripts does not reload systemd): load it first.
	if out, _, err := t.u.systemctl(ctx, []string{"systemctl", "show", "--property=LoadState", "--value", "--", t.u.cfg.Unit}); err == nil && strings.TrimSpace(string(out)) != "loaded" {
		if _, stderr, err := t.u.systemctl(ctx, []string{"systemctl", "daemon-reload"}); err != nil {
			return fmt.Errorf("systemctl daemon-reload: %w: %s", err, installers.LastLines(string(stderr), 5))
		}
	}
	if _, stderr, err := t.u.systemctl(ctx, argv); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, installers.LastLines(string(stderr), 5))
	}
	return nil
}

func (t *hostTarget) Settle(ctx context.Context) (bool, string, error) {
	period := time.Duration(t.u.cfg.Health.Settle)
	if period == 0 {
		period = health.DefaultSettlePeriod
	}
	interval := time.Duration(t.u.cfg.Health.Interval)
	if interval == 0 {
		interval = min(health.DefaultSettleInterval, period/4)
	}
	r := t.u.health.Settle(ctx, period, interval)
	switch r.Status {
	case health.Healthy:
		return true, r.String(), nil
	case health.Unhealthy:
		return false, r.String(), nil
	}
	return false, r.String(), fmt.Errorf("health could not be judged: %s", r.Message)
}
