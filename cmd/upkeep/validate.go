package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"upkeep.dev/upkeep/spec"
)

func newValidateCmd() *cobra.Command {
	var output string
	var opts spec.Options
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a fleet repository: schema, references and version bounds",
		Long: `validate reads every YAML document under DIR (default: the current folder),
checks each against the schema and all of them against each other (names,
references, semver, time zones, windows, freezes, control-plane bounds),
and prints every problem as FILE:LINE:COL: FIELD: MESSAGE, then a summary.
File names start with DIR, so editors and CI annotations find them.

Files matching DIR/.upkeepignore (gitignore syntax), hidden folders and
files not ending in .yaml or .yml are skipped.

Exit code: 0 valid, 1 invalid, 2 usage error (including a DIR that is not
a folder).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return &exitCodeError{Code: 2, Err: fmt.Errorf("validate takes one folder, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runValidate(cmd.OutOrStdout(), dir, output, opts)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitCodeError{Code: 2, Err: err} })
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().IntVar(&opts.MaxRepositoryBytes, "max-repository-bytes", spec.MaxRepositorySize, "limit repository-bytes: the most bytes of YAML the fleet repository may hold; a load costs time and memory in proportion (at worst some 1.7 s of CPU and 50 MB per MiB), so raise it knowingly; 0 means the default")
	return cmd
}

// validateReport is the JSON form of a validation.
type validateReport struct {
	Valid  bool           `json:"valid"`
	Errors spec.Errors    `json:"errors"`
	Counts validateCounts `json:"counts"`
}

type validateCounts struct {
	ControlPlanes int `json:"controlPlanes"`
	Channels      int `json:"channels"`
	Groups        int `json:"groups"`
}

func runValidate(out io.Writer, dir, output string, opts spec.Options) error {
	if output != "text" && output != "json" {
		return &exitCodeError{Code: 2, Err: fmt.Errorf("--output %q: use text or json", output)}
	}
	if fi, err := os.Stat(dir); err != nil {
		return &exitCodeError{Code: 2, Err: fmt.Errorf("%s: %w; give the root folder of the fleet repository", dir, pathErrorCause(err))}
	} else if !fi.IsDir() {
		return &exitCodeError{Code: 2, Err: fmt.Errorf("%s is not a folder; give the root folder of the fleet repository", dir)}
	}

	st, errs := spec.LoadDirWith(dir, opts)
	errs = underDir(dir, errs)
	counts := validateCounts{len(st.ControlPlanes), len(st.Channels), len(st.Groups)}

	var err error
	if output == "json" {
		if errs == nil {
			errs = spec.Errors{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(validateReport{Valid: len(errs) == 0, Errors: errs, Counts: counts})
	} else {
		err = writeValidateText(out, dir, errs, counts)
	}
	if err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	if len(errs) > 0 {
		// The errors are printed already; only the exit code is left to set.
		return &exitCodeError{Code: 1}
	}
	return nil
}

func writeValidateText(out io.Writer, dir string, errs spec.Errors, c validateCounts) error {
	for _, e := range errs {
		if _, err := fmt.Fprintln(out, e.Error()); err != nil {
			return err
		}
	}
	verdict := "valid"
	if len(errs) > 0 {
		verdict = countOf(len(errs), "error", "errors")
	}
	_, err := fmt.Fprintf(out, "%s: %s, %s, %s: %s\n", spec.DisplayName(filepath.ToSlash(dir)),
		countOf(c.ControlPlanes, "control plane", "control planes"),
		countOf(c.Channels, "channel", "channels"),
		countOf(c.Groups, "group", "groups"), verdict)
	return err
}

// underDir prefixes the errors' files (relative to the repository root)
// with dir, so that they are paths from where the command ran.
func underDir(dir string, errs spec.Errors) spec.Errors {
	prefix := filepath.ToSlash(filepath.Clean(dir))
	if prefix == "." {
		return errs
	}
	for i := range errs {
		if f := errs[i].Pos.File; f != "" && f != dir {
			errs[i].Pos.File = path.Join(prefix, f)
		}
	}
	return errs
}

// countOf is "1 channel" or "3 channels".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pathErrorCause drops the path an *fs.PathError repeats.
func pathErrorCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
