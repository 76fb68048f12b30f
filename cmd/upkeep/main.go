// Command upkeep keeps fleets of agents on the right version: it validates and
// previews a fleet repository, serves it as a version server, and updates
// agents beside them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the process exit code:
// 0 success, 1 a failed check or operation, 2 a usage error.
func run(args []string) int { return runWith(args, os.Stdout, os.Stderr) }

// runWith is run with the command's output and errors sent to stdout and
// stderr (tests read them).
func runWith(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var coded *exitCodeError
	if errors.As(err, &coded) {
		if coded.Err != nil {
			fmt.Fprintln(stderr, "upkeep:", coded.Err)
		}
		return coded.Code
	}
	fmt.Fprintln(stderr, "upkeep:", err)
	if isUsageError(err) {
		return 2
	}
	return 1
}
