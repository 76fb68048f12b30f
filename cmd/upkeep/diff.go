package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/reconcile/diff"
	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/spec"
)

type diffFlags struct {
	repo, base, head, output string
}

func newDiffCmd() *cobra.Command { return newDiffCmdAt(time.Now) }

// newDiffCmdAt is newDiffCmd with the clock that places the groups' next
// windows; tests pass a fixed one.
func newDiffCmdAt(now func() time.Time) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff [--repo DIR] [--base REV] [--head REV] [--output text|markdown|json]",
		Short: "Preview what merging a fleet pull request would change",
		Long: `diff compares two revisions of a fleet repository and says what merging
head would change: channel versions (upgrade, downgrade, major jump,
including channels that follow a control plane that moved), critical flags,
group schedules with their next windows before and after, control-plane
bounds and the channels they make invalid, and every error head has.

By default it compares the commit HEAD (base) with the work tree as it is
(head); in a pull-request check, pass --base with the target branch or the
merge base. The exit code is 1 when head is invalid (it would never be
served), 2 on a usage error, 0 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(cmd.OutOrStdout(), f, now())
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", ".", "the fleet repository: a local Git work tree")
	fl.StringVar(&f.base, "base", "HEAD", "base revision (a commit, branch or tag, e.g. origin/main)")
	fl.StringVar(&f.head, "head", "", "head revision (default: the work tree as it is, uncommitted edits included)")
	fl.StringVar(&f.output, "output", "text", "output format: text, markdown (for a pull-request comment) or json")
	return cmd
}

func runDiff(out io.Writer, f diffFlags, now time.Time) error {
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

	baseState, baseErrs := spec.Load(baseRev.Files)
	headState, headErrs := spec.Load(headRev.Files)
	report := diff.Compare(baseState, headState, headErrs, now)
	report.Base = revisionName(f.base, baseRev.ID)
	report.Head = headName
	report.BaseErrors = baseErrs

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
