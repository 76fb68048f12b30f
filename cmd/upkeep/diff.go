package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/reconcile/diff"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/sources/fleetclient"
	"upkeep.dev/upkeep/spec"
)

type diffFlags struct {
	repo, base, head, output string
	// srv is --server and its token: with them the report adds the agents
	// merging moves, from the server's fleet store.
	srv  serverFlags
	load spec.Options
}

func newDiffCmd() *cobra.Command { return newDiffCmdAt(time.Now) }

// newDiffCmdAt is newDiffCmd with the clock that places the groups' next
// windows; tests pass a fixed one.
func newDiffCmdAt(now func() time.Time) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff [--repo DIR] [--base REV] [--head REV] [--output text|markdown|json] [--server URL --token-file FILE]",
		Short: "Preview what merging a fleet pull request would change",
		Long: `diff compares two revisions of a fleet repository and says what merging
head would change: channel versions (upgrade, downgrade, major jump,
including channels that follow a control plane that moved), critical flags,
group schedules with their next windows before and after (as the version
server publishes them: inside a freeze longer than its 14-day horizon, the
first window after the freeze, rule FirstWindowAfterFreeze; for a group that
never opens, rule NothingOpen), control-plane bounds and the channels they
make invalid, and every error head has.

By default it compares the commit HEAD (base) with the work tree as it is
(head); in a pull-request check, pass --base with the target branch or the
merge base. The exit code is 1 when head is invalid (it would never be
served), 2 on a usage error, 0 otherwise.

With --server (and --token-file, a bearer token of the server's
--report-token-file), the report starts with what merging does to the
fleet ("merging this moves 1,240 agents in 3 groups, first window Tue 02:00
Europe/Berlin") and adds, per changed channel, the agents of each affected
group by current version (from the server's fleet store), the order of the
rollout stages, and each group's first usable window after the merge, in
the group's timezone. For a critical channel a group moves at once unless
a freeze with allowCritical: false holds it (rule CriticalHeldByFreeze);
then it moves when that freeze ends. Without --server it reads nothing but
the repository.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(cmd.Context(), cmd.OutOrStdout(), f, now())
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", ".", "the fleet repository: a local Git work tree")
	fl.StringVar(&f.base, "base", "HEAD", "base revision (a commit, branch or tag, e.g. origin/main)")
	fl.StringVar(&f.head, "head", "", "head revision (default: the work tree as it is, uncommitted edits included)")
	fl.StringVar(&f.output, "output", "text", "output format: text, markdown (for a pull-request comment) or json")
	fl.IntVar(&f.load.MaxRepositoryBytes, "max-repository-bytes", spec.MaxRepositorySize, "limit repository-bytes: the most bytes of YAML the fleet repository may hold; a load costs time and memory in proportion (at worst some 1.7 s of CPU and 50 MB per MiB), so raise it knowingly; 0 means the default")
	// No $UPKEEP_SERVER default: diff reads a server only when asked to.
	f.srv.add(fl, "")
	return cmd
}

func runDiff(ctx context.Context, out io.Writer, f diffFlags, now time.Time) error {
	render, ok := map[string]func(io.Writer, *diff.Report) error{
		"text":     diff.Text,
		"markdown": diff.Markdown,
		"json":     diff.JSON,
	}[f.output]
	if !ok {
		return usageError{fmt.Errorf("--output %q: use text, markdown or json", f.output)}
	}
	if f.base == "" {
		return usageError{fmt.Errorf("--base is empty: give a revision such as HEAD or origin/main")}
	}
	var client *fleetclient.Client
	if f.srv.server != "" {
		c, err := f.srv.client()
		if err != nil {
			return err
		}
		client = c
	}

	baseRev, err := sources.ReadRevision(f.repo, f.base)
	if err != nil {
		return fmt.Errorf("--base: %w", err)
	}
	var headRev sources.Revision
	headName := "work tree"
	if f.head == "" {
		headRev, err = sources.ReadWorkTree(f.repo)
	} else {
		headRev, err = sources.ReadRevision(f.repo, f.head)
		headName = revisionName(f.head, headRev.ID)
	}
	if err != nil {
		if f.head == "" {
			return fmt.Errorf("reading the work tree: %w", err)
		}
		return fmt.Errorf("--head: %w", err)
	}

	baseState, baseErrs := spec.LoadWith(baseRev.Files, f.load)
	headState, headErrs := spec.LoadWith(headRev.Files, f.load)
	report := diff.Compare(baseState, headState, headErrs, now)
	report.Base = revisionName(f.base, baseRev.ID)
	report.Head = headName
	report.BaseErrors = baseErrs
	if client != nil {
		fc, err := fleetCounts(orBackground(ctx), client, report, headState, now)
		fc.BaseRevision = baseRev.ID
		if err != nil {
			return fmt.Errorf("--server: reading the fleet: %w", err)
		}
		diff.AddFleet(report, baseState, headState, fc, now)
	}

	if err := render(out, report); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if len(headErrs) > 0 {
		noun := "errors"
		if len(headErrs) == 1 {
			noun = "error"
		}
		return &exitCodeError{Code: 1, Err: fmt.Errorf(
			"%s is invalid (%d %s, listed in the report): the version server would not serve it; fix them before merging",
			headName, len(headErrs), noun)}
	}
	return nil
}

// fleetCounts reads, for the groups and channels merging affects, the
// agents' counts by version: one page of one agent per group (its counts
// cover the whole group), and every agent without a group.
func fleetCounts(ctx context.Context, c *fleetclient.Client, r *diff.Report, head *spec.State, now time.Time) (diff.FleetCounts, error) {
	fc := diff.FleetCounts{Server: c.String(), Time: now, Groups: map[string]diff.Versions{}, Ungrouped: map[string]diff.Versions{}}
	rev, _, err := c.Channels(ctx)
	if err != nil {
		return fc, err
	}
	fc.ServedRevision = rev
	groups, channels := diff.AffectedGroups(r, head)
	if len(groups) > maxGroupRequests {
		// Fewer requests: every agent, page by page, counted here.
		all, err := c.Fleet(ctx, "")
		if err != nil {
			return fc, err
		}
		fc.Time = all.Time
		for _, a := range all.Agents {
			if a.Group != "" && slices.Contains(groups, a.Group) {
				count(fc.Groups, a.Group, a.CurrentVersion)
			}
			if a.Group == "" && slices.Contains(channels, a.Channel) {
				count(fc.Ungrouped, a.Channel, a.CurrentVersion)
			}
		}
		return fc, nil
	}
	for _, g := range groups {
		p, err := c.FleetPage(ctx, g, "", 1)
		if err != nil {
			return fc, err
		}
		fc.Groups[g], fc.Time = p.Counts.ByVersion, p.Time
	}
	if len(channels) == 0 {
		return fc, nil
	}
	ungrouped, err := c.Fleet(ctx, report.NoGroup)
	if err != nil {
		return fc, err
	}
	fc.Time = ungrouped.Time
	for _, a := range ungrouped.Agents {
		if slices.Contains(channels, a.Channel) {
			count(fc.Ungrouped, a.Channel, a.CurrentVersion)
		}
	}
	return fc, nil
}

// maxGroupRequests is how many groups fleetCounts asks one by one (a
// one-agent page each, whose counts cover the group); beyond, it reads the
// whole fleet once. A variable so that a test takes both paths.
var maxGroupRequests = 20

// count adds an agent on version to m[key].
func count(m map[string]diff.Versions, key, version string) {
	vs := m[key]
	if vs == nil {
		vs = diff.Versions{}
		m[key] = vs
	}
	vs[cmp.Or(version, report.UnknownVersion)]++
}

// revisionName is "origin/main (1a2b3c4d5e6f)", or just the revision when
// it already is the commit hash.
func revisionName(rev, id string) string {
	short := id
	if len(short) > 12 {
		short = short[:12]
	}
	if short == "" || rev == id || rev == short {
		return rev
	}
	return rev + " (" + short + ")"
}
