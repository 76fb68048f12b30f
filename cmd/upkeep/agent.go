package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
	"upkeep.dev/upkeep/installers/auto"
	"upkeep.dev/upkeep/installers/dnf"
	"upkeep.dev/upkeep/installers/zypper"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/hostupdater"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/sources/versionclient"
)

type agentFlags struct {
	config              string
	once, dryRun        bool
	logFormat, logLevel string
	stopTimeout         time.Duration
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --config FILE [--once] [--dry-run]",
		Short: "Keep the agent on this host at its channel's version, inside its maintenance windows",
		Long: `agent fetches the channel's target version, decides with upkeep's decision
chain whether the agent may restart now (maintenance window, critical update,
unhealthy agent, unusable schedule), installs the exact version through the
host's package manager, judges the agent's health over a settle period, and
rolls back by itself when the new version is unhealthy.

Without --once it loops every interval ± jitter; with --once it makes one pass
(for a systemd timer). --dry-run prints the decision, its reason and the exact
commands an update would run, and changes nothing: no lock, no recovery of an
unfinished update (it is only named), no package metadata refresh, nothing
written to the state directory, no lease, no report.

Exit status of --once and --dry-run (docs/agent.md):
  0  the pass decided: nothing to do, wait, keep (also when the server could
     not be reached: the reason says so), or an update that ended healthy
  1  the pass failed (lock held, state or journal unreadable, metadata
     refresh or version lookup failed), or an update it made or finished
     after a crash did not end Updated (rolled back, failed, interrupted)
  2  usage or configuration error (flags, the config file, the server URL)
  143, 130  stopped by SIGTERM or SIGINT between steps; the next pass finishes
     the update (docs/sigterm.md)
  75 stopped while a package command ran, which was left running to finish`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, f) },
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.config, "config", "/etc/upkeep/agent.yaml", "the updater's configuration file")
	cmd.Flags().BoolVar(&f.once, "once", false, "make one pass and exit")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "decide and print, change nothing (implies --once)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.Flags().DurationVar(&f.stopTimeout, "stop-timeout", 280*time.Second, "after SIGTERM, how long a running package command is waited for before the updater exits leaving it running (keep it below the unit's TimeoutStopSec)")
	cmd.AddCommand(newAgentStatusCmd(&f))
	return cmd
}

func loadAgentConfig(path string) (*hostupdater.Config, error) {
	cfg, err := hostupdater.LoadConfig(path)
	if err != nil {
		return nil, &exitCodeError{Code: 2, Err: err}
	}
	return cfg, nil
}

func runAgent(cmd *cobra.Command, f agentFlags) error {
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := loadAgentConfig(f.config)
	if err != nil {
		return err
	}
	server, err := versionclient.New(cfg.Server, versionclient.Options{CAFile: cfg.CAFile, Version: buildVersion(), AgentID: cfg.AgentID, Group: cfg.Group})
	if err != nil {
		return &exitCodeError{Code: 2, Err: fmt.Errorf("%s: server: %w", f.config, err)}
	}
	installer, err := newInstaller(cfg)
	if err != nil {
		return err
	}
	if !f.dryRun {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	sc, err := newServerClient(cfg)
	if err != nil {
		return err
	}
	parts := hostupdater.Parts{Server: server, Installer: installer, Logger: log, Report: newReporter(cfg, sc)}
	if *cfg.Leases && sc != nil {
		parts.Leases = sc
	} else {
		log.Debug("updating without concurrency leases: the group's maxConcurrent does not count this agent", "why", "leases: false, or no tokenFile")
	}
	u, err := hostupdater.New(cfg, parts)
	if err != nil {
		return err
	}

	// SIGTERM/SIGINT stop: no new step starts, a running package command is
	// let finish and journaled. A second signal, or --stop-timeout after the
	// first, aborts: the command is left running (never killed) and the
	// process exits exitLeftRunning, after a last grace to write the journal.
	ctx, stopper := apply.NotifyStop(cmd.Context(), f.stopTimeout, func() {
		time.AfterFunc(abortGrace, func() { os.Exit(exitLeftRunning) })
	}, syscall.SIGTERM, os.Interrupt)
	defer stopper.Close()
	ctx = installers.WithAbort(ctx, stopper.Abort())
	if !f.once && !f.dryRun {
		log.Info("upkeep agent started", "version", buildVersion(), "server", server.String(),
			"channel", cfg.Channel, "package", cfg.Package, "installer", installer.Name())
		u.Run(ctx)
		return stopExit(stopper, nil)
	}
	p := u.Once(ctx, f.dryRun)
	printPass(cmd.OutOrStdout(), p, f.dryRun, cfg)
	if err := stopExit(stopper, p); err != nil {
		return err
	}
	if p.Err != nil {
		return &exitCodeError{Code: 1}
	}
	for _, r := range []*apply.Result{p.Recovered, p.Result} {
		if r != nil && r.Outcome != apply.Updated {
			return &exitCodeError{Code: 1} // the update (or the one recovered) did not end healthy
		}
	}
	return nil
}

// Exit statuses of a pass ended by a signal (documented in docs/sigterm.md).
const (
	exitStoppedTerm = 143 // SIGTERM: stopped between steps; nothing left running
	exitStoppedInt  = 130 // SIGINT (^C): the same
	exitLeftRunning = 75  // aborted while a package command ran: it was left running
	abortGrace      = 10 * time.Second
)

// stopExit is the exit status for a pass (or loop) a signal ended; nil when
// no signal came.
func stopExit(s *apply.Stopper, p *hostupdater.Pass) error {
	sig := s.Signal()
	if sig == nil {
		return nil
	}
	if s.Aborted() && leftRunning(p) {
		return &exitCodeError{Code: exitLeftRunning, Err: fmt.Errorf("stopped by %v while the package manager ran: it was left running to finish on its own (never killed); the next pass waits for it, then finishes the update", sig)}
	}
	code := exitStoppedTerm
	if sig == os.Interrupt {
		code = exitStoppedInt
	}
	return &exitCodeError{Code: code, Err: fmt.Errorf("stopped by %v: the update's journal keeps its step and the next pass finishes it", sig)}
}

// leftRunning reports whether a pass left a package command running.
func leftRunning(p *hostupdater.Pass) bool {
	if p == nil {
		return true // the loop: assume the worst, the message says what to expect
	}
	if errors.Is(p.Err, installers.ErrLeftRunning) {
		return true
	}
	for _, r := range []*apply.Result{p.Recovered, p.Result} {
		if r == nil {
			continue
		}
		for _, st := range r.Steps {
			if strings.Contains(st.Error, installers.ErrLeftRunning.Error()) {
				return true
			}
		}
	}
	return false
}

func newInstaller(cfg *hostupdater.Config) (installers.Installer, error) {
	switch cfg.Installer {
	case "auto":
		if cfg.Root != "" {
			return nil, &exitCodeError{Code: 2, Err: errors.New("root: name the installer (apt, dnf, yum or zypper) to use an isolated root")}
		}
		inst, _, err := auto.Detect()
		if err != nil {
			return nil, fmt.Errorf("choosing the package manager: %w (set installer: apt, dnf, yum or zypper)", err)
		}
		if _, isApt := inst.(*apt.Installer); isApt {
			// The same host apt, told the agent's package so that a failed
			// refresh can say whether the broken source is its source.
			return apt.New(apt.Config{Package: cfg.Package}), nil
		}
		return inst, nil
	case "apt":
		return apt.New(apt.Config{Root: cfg.Root, Package: cfg.Package}), nil
	case "dnf", "yum":
		return dnf.New(dnf.Config{Binary: cfg.Installer, Root: cfg.Root}), nil
	case "zypper":
		return zypper.New(zypper.Config{Root: cfg.Root}), nil
	}
	return nil, &exitCodeError{Code: 2, Err: fmt.Errorf("installer %q is not one of auto, apt, dnf, yum, zypper", cfg.Installer)}
}

// printPass shows one pass for a person: the decision and its reason first.
func printPass(w io.Writer, p *hostupdater.Pass, dryRun bool, cfg *hostupdater.Config) {
	d := p.Decision
	if d.Action == "" {
		// The pass stopped before the chain ran (recovery or the state
		// file failed): say so rather than print empty fields.
		fmt.Fprintf(w, "decision: none: the pass stopped before deciding (see error below)\n")
	} else {
		fmt.Fprintf(w, "decision: %s (%s/%s)\n", d.Action, d.Rule, d.Reason)
		fmt.Fprintf(w, "reason:   %s\n", d.Message)
	}
	fmt.Fprintf(w, "current:  %s\n", orDash(p.Current))
	target := orDash(p.Target)
	if p.TargetErr != nil {
		target = "unknown: " + p.TargetErr.Error()
	}
	fmt.Fprintf(w, "target:   %s\n", target)
	fmt.Fprintf(w, "health:   %s\n", p.Health.String())
	fmt.Fprintf(w, "schedule: %s\n", p.Schedule.String())
	if !d.RecheckAt.IsZero() {
		fmt.Fprintf(w, "recheck:  %s\n", d.RecheckAt.UTC().Format(time.RFC3339))
	}
	if l := leaseText(p.Lease); l != "" {
		fmt.Fprintf(w, "lease:    %s\n", l)
	} else if dryRun && d.Action == reconcile.ActionUpdate && *cfg.Leases {
		fmt.Fprintf(w, "lease:    not asked in a dry run; a real pass asks the server for one first (leases: true)\n")
	}
	if len(p.Commands) > 0 {
		label := "ran"
		if dryRun {
			label = "would run"
		}
		fmt.Fprintf(w, "%s:\n", label)
		for _, argv := range p.Commands {
			fmt.Fprintf(w, "  %s\n", strings.Join(argv, " "))
		}
		if p.Unresolved {
			fmt.Fprintf(w, "  (the exact package version of %s is looked up when installing: this package manager writes its caches while it looks, so a dry run does not ask it)\n", p.Target)
		}
	}
	if j := p.Unfinished; j != nil {
		fmt.Fprintf(w, "unfinished: the update %s → %s stopped while %s; a real pass finishes it first (journal %s), then decides\n",
			orDash(j.From), j.To, j.Step, apply.JournalPath(cfg.StateDir))
	}
	if r := p.Recovered; r != nil {
		fmt.Fprintf(w, "recovered: %s %s → %s (%s): %s\n", r.Outcome, orDash(r.From), r.To, r.Reason, r.Message)
	}
	if r := p.Result; r != nil {
		fmt.Fprintf(w, "update:   %s %s → %s (%s): %s\n", r.Outcome, orDash(r.From), r.To, r.Reason, r.Message)
	}
	if p.Err != nil {
		fmt.Fprintf(w, "error:    %v\n", p.Err)
	}
}

// leaseText says what became of the pass's concurrency lease; "" when none was asked.
func leaseText(l reconcile.Lease) string {
	switch l.State {
	case reconcile.LeaseGranted:
		return "granted (given back after the update)"
	case reconcile.LeaseUnsupported:
		return "none: the server keeps no leases"
	case reconcile.LeaseRefused:
		return fmt.Sprintf("refused: %d of %d agents of the group are updating", l.Holders, l.Max)
	case reconcile.LeaseFailed:
		return fmt.Sprintf("could not be asked: %v", l.Err)
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAgentStatusCmd(f *agentFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the last decision, its reason, the versions and the next window",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadAgentConfig(f.config)
			if err != nil {
				return err
			}
			st, err := apply.ReadState(cfg.StateDir)
			if err != nil {
				return err
			}
			journal, err := apply.ReadJournal(cfg.StateDir)
			if err != nil {
				return err
			}
			sched := agentSchedule(cfg, time.Now())
			return printAgentStatus(cmd.OutOrStdout(), output, cfg, st, journal, sched, time.Now())
		},
	}
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	return cmd
}

// agentSchedule reads the schedule the updater last used, without asking the
// server: the saved copy for schedule source server, the agent's file otherwise.
func agentSchedule(cfg *hostupdater.Config, now time.Time) schedule.Schedule {
	switch cfg.Schedule.Source {
	case "server":
		return schedule.ReadFile(filepath.Join(cfg.StateDir, "schedule"), now)
	case "file":
		return schedule.ReadFile(cfg.Schedule.File, now)
	}
	return schedule.Schedule{}
}

func printAgentStatus(w io.Writer, output string, cfg *hostupdater.Config, st apply.State, j *apply.Journal, sched schedule.Schedule, now time.Time) error {
	// The window open now is shown by its end, the next by its start: a
	// start in the past answers neither "may it update now?" nor "when next?".
	var openUntil, next *time.Time
	var nextEnd time.Time
	if win, ok := calendar.Open(sched.Windows, now); ok {
		openUntil = &win.End
	}
	if win, ok := calendar.Next(sched.Windows, now); ok {
		next, nextEnd = &win.Start, win.End
	}
	if !j.Unfinished() {
		j = nil // a finished journal is the last update, shown from the state file
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Channel      string                `json:"channel"`
			Package      string                `json:"package"`
			LastDecision *apply.DecisionRecord `json:"lastDecision,omitempty"`
			LastResult   *apply.Result         `json:"lastResult,omitempty"`
			Skipped      []apply.Skip          `json:"skipped"`
			Journal      *apply.Journal        `json:"unfinishedUpdate,omitempty"`
			OpenUntil    *time.Time            `json:"windowOpenUntil,omitempty"`
			NextWindow   *time.Time            `json:"nextWindow,omitempty"`
			Schedule     string                `json:"schedule"`
		}{cfg.Channel, cfg.Package, st.LastDecision, st.LastResult, st.Skipped, j, openUntil, next, sched.String()})
	}
	if output != "text" {
		return usageError{fmt.Errorf("--output %q: use text or json", output)}
	}
	fmt.Fprintf(w, "channel:  %s\npackage:  %s\n", cfg.Channel, cfg.Package)
	if d := st.LastDecision; d != nil {
		fmt.Fprintf(w, "decision: %s (%s/%s) at %s\nreason:   %s\n", d.Action, d.Rule, d.Reason, d.At.UTC().Format(time.RFC3339), d.Message)
	} else {
		fmt.Fprintln(w, "decision: none yet")
	}
	if r := st.LastResult; r != nil {
		fmt.Fprintf(w, "update:   %s %s → %s (%s) at %s: %s\n", r.Outcome, orDash(r.From), r.To, r.Reason, r.Finished.UTC().Format(time.RFC3339), r.Message)
	}
	for _, s := range st.Skipped {
		fmt.Fprintf(w, "skipped:  %s (%s)\n", s.Version, s.Reason)
	}
	if j != nil {
		fmt.Fprintf(w, "unfinished update: %s → %s at step %s (finished at the next pass)\n", orDash(j.From), j.To, j.Step)
	}
	if openUntil != nil {
		fmt.Fprintf(w, "window:   open now, until %s (%s left)\n", openUntil.UTC().Format(time.RFC3339), openUntil.Sub(now).Round(time.Minute))
	}
	if next != nil {
		fmt.Fprintf(w, "next window: %s to %s\n", next.UTC().Format(time.RFC3339), nextEnd.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "next window: none (%s)\n", sched.String())
	}
	return nil
}
