//go:build !kube

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newNoKubeUpdaterCmd) }

// errNoKube says why this build has no Kubernetes updater and how to get
// one, where cobra would only say "unknown command".
var errNoKube = errors.New(`this build of upkeep lacks the Kubernetes updater: the host binary links neither client-go nor cosign. ` +
	"Build it with `make build-kube` (bin/upkeep-kube; or `go build -tags kube ./cmd/upkeep`), " +
	"or run the upkeep-kube image (examples/kubernetes/updater/)")

// newNoKubeUpdaterCmd stands in for `upkeep kube-updater` in the default
// build, hidden from the command list, and exits 2 with errNoKube.
func newNoKubeUpdaterCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kube-updater",
		Short:              "The Kubernetes updater (not in this build: see make build-kube)",
		Hidden:             true,
		DisableFlagParsing: true, // any flags meant for the real one get the same answer
		Args:               cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return &exitCodeError{Code: 2, Err: errNoKube}
		},
	}
}
