package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/sources/fleetclient"
)

// DefaultServer is where the operator commands look without --server or
// UPKEEP_SERVER: `upkeep serve`'s default address.
const defaultServer = "http://127.0.0.1:8080"

// serverFlags are the connection flags of the commands that read the
// server's fleet routes: fleet, rollout and diff --server.
type serverFlags struct {
	server, tokenFile, caFile string
	timeout                   time.Duration
}

// flagSet is the part of a cobra command's flag set the flags need.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

// add registers the flags. defaultURL "" leaves --server empty and
// ignores UPKEEP_SERVER (diff reads a server only when asked to);
// otherwise UPKEEP_SERVER, when set, is the default.
func (f *serverFlags) add(fl flagSet, defaultURL string) {
	usage := "the version server's root URL (https://, or http:// to loopback only)"
	if defaultURL != "" {
		if env := os.Getenv("UPKEEP_SERVER"); env != "" {
			defaultURL = env
		}
		usage += "; default $UPKEEP_SERVER, else"
	}
	fl.StringVar(&f.server, "server", defaultURL, usage)
	fl.StringVar(&f.tokenFile, "token-file", os.Getenv("UPKEEP_TOKEN_FILE"), "file holding one bearer token of the server's --report-token-file (read on every request, never printed); default $UPKEEP_TOKEN_FILE")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM bundle of the authorities to trust instead of the system's (a server on a private PKI)")
	fl.DurationVar(&f.timeout, "timeout", fleetclient.DefaultTimeout, "time limit of each request to the server")
}

func (f *serverFlags) client() (*fleetclient.Client, error) {
	c, err := fleetclient.New(f.server, fleetclient.Options{TokenFile: f.tokenFile, CAFile: f.caFile, Timeout: f.timeout,
		UserAgent: "upkeep-cli/" + buildVersion()})
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// outputFormat checks -o: table or json.
func outputFormat(o string) error {
	if o != "table" && o != "json" {
		return usageError{fmt.Errorf("-o %q: use table or json", o)}
	}
	return nil
}

func newFleetCmd() *cobra.Command {
	var f serverFlags
	var output string
	cmd := &cobra.Command{
		Use:   "fleet [--server URL] [--token-file FILE] [-o table|json]",
		Short: "Show the fleet: agents on target, behind, unhealthy and stale, by channel and group",
		Long: `fleet reads the version server's fleet routes (GET /v1/fleet, every page;
/v1/channels, /v1/groups, /v1/rollouts) and judges every agent against the
version the server answers it now: its channel's served version, or under a
running rollout the version its stage (and canary choice) allows. An agent
below that version, or that does not know its version, is behind.

It needs a bearer token of the server's --report-token-file, in the file of
--token-file (or $UPKEEP_TOKEN_FILE). Plain http:// is allowed to loopback
only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := outputFormat(output); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			return runFleet(cmd.Context(), cmd.OutOrStdout(), c, output)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f.add(cmd.Flags(), defaultServer)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runFleet(ctx context.Context, out io.Writer, c *fleetclient.Client, output string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	snap, err := c.Fetch(ctx)
	if err != nil {
		return err
	}
	v := fleetclient.Build(snap)
	if output == "json" {
		return fleetclient.JSON(out, v)
	}
	return fleetclient.FleetTable(out, v)
}
