package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/sources/fleetclient"
)

// rolloutTransitions is how many of a rollout's latest transitions status shows.
const rolloutTransitions = 10

func newRolloutCmd() *cobra.Command { return newRolloutCmdAt(time.Now) }

// newRolloutCmdAt is newRolloutCmd with the clock that places a bake's
// end; tests pass a fixed one.
func newRolloutCmdAt(now func() time.Time) *cobra.Command {
	var f serverFlags
	var output, note string
	cmd := &cobra.Command{
		Use:   "rollout status|halt|resume CHANNEL",
		Short: "Show, halt or resume a channel's progressive rollout",
		Long: `rollout reads and steps the rollouts the version server's engine runs
(GET /v1/rollouts/<channel>, POST /v1/rollouts/<channel>/halt|resume).

  status [CHANNEL]  the rollout's state, stages with their progress, canaries,
                    the bake's end and the rule and reason of the last
                    transition; without CHANNEL, every channel's rollout
  halt CHANNEL      nobody new gets the version (rule HaltedByOperator)
  resume CHANNEL    a halted rollout continues (rule ResumedByOperator)

halt and resume are recorded in the store with the actor
"operator:token-<8 hex digits of the token's SHA-256>" and --note, if given.
They need a bearer token of the server's --report-token-file (--token-file
or $UPKEEP_TOKEN_FILE), as status does.`,
		SilenceUsage: true,
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := cmd.PersistentFlags()
	f.add(pf, defaultServer)
	pf.StringVarP(&output, "output", "o", "table", "output format: table or json")

	status := &cobra.Command{
		Use:   "status [CHANNEL]",
		Short: "Show a channel's rollout (every channel's without CHANNEL)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rolloutClient(&f, output)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return runRolloutList(cmd.Context(), cmd.OutOrStdout(), c, output)
			}
			return runRolloutStatus(cmd.Context(), cmd.OutOrStdout(), c, args[0], output, now())
		},
	}
	step := func(use, short string, halt bool) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " CHANNEL",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := rolloutClient(&f, output)
				if err != nil {
					return err
				}
				return runRolloutStep(cmd.Context(), cmd.OutOrStdout(), c, args[0], note, halt, output)
			},
		}
		c.Flags().StringVar(&note, "note", "", "why, for the transition's message and the log")
		return c
	}
	for _, c := range []*cobra.Command{status,
		step("halt", "Halt a channel's rollout: nobody new gets its version", true),
		step("resume", "Resume a channel's halted rollout", false)} {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
		cmd.AddCommand(c)
	}
	return cmd
}

func rolloutClient(f *serverFlags, output string) (*fleetclient.Client, error) {
	if err := outputFormat(output); err != nil {
		return nil, err
	}
	return f.client()
}

func runRolloutList(ctx context.Context, out io.Writer, c *fleetclient.Client, output string) error {
	rs, err := c.Rollouts(orBackground(ctx))
	if err != nil {
		return err
	}
	if output == "json" {
		if rs == nil {
			rs = []fleet.Rollout{}
		}
		return fleetclient.JSON(out, struct {
			Rollouts []fleet.Rollout `json:"rollouts"`
		}{rs})
	}
	return fleetclient.RolloutList(out, rs)
}

func runRolloutStatus(ctx context.Context, out io.Writer, c *fleetclient.Client, channel, output string, now time.Time) error {
	d, err := c.Rollout(orBackground(ctx), channel, rolloutTransitions)
	if err != nil {
		return err
	}
	if output == "json" {
		return fleetclient.JSON(out, d)
	}
	return fleetclient.RolloutTable(out, d, now)
}

func runRolloutStep(ctx context.Context, out io.Writer, c *fleetclient.Client, channel, note string, halt bool, output string) error {
	step := c.Resume
	if halt {
		step = c.Halt
	}
	s, err := step(orBackground(ctx), channel, note)
	if err != nil {
		return err
	}
	if output == "json" {
		return fleetclient.JSON(out, s)
	}
	return fleetclient.StepText(out, s)
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
