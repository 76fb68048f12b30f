package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultCommandTimeout bounds one run of a command check.
const DefaultCommandTimeout = 10 * time.Second

// CommandCheck runs a command: exit status 0 is healthy, any other status or
// running past the timeout is unhealthy, and a command that cannot start is
// Unknown.
type CommandCheck struct {
	Argv []string
	// Timeout bounds one run; 0 means DefaultCommandTimeout.
	Timeout time.Duration
	// Run runs the command; nil means Exec.
	Run Runner
}

// NewCommandCheck returns the check of argv (argv[0] looked up in PATH).
func NewCommandCheck(argv []string, timeout time.Duration) (*CommandCheck, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("health command check: the command line is empty")
	}
	if timeout < 0 {
		return nil, fmt.Errorf("health command check: timeout %s is negative", timeout)
	}
	return &CommandCheck{Argv: argv, Timeout: timeout}, nil
}

// Name is "command <argv...>".
func (c *CommandCheck) Name() string { return "command " + strings.Join(c.Argv, " ") }

// Probe runs the command once.
func (c *CommandCheck) Probe(ctx context.Context) Observation {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	run := c.Run
	if run == nil {
		run = Exec
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout, stderr, err := run(ctx, c.Argv)
	var exit *ExitError
	switch {
	case err == nil:
		return Observation{Status: Healthy, Detail: "exit status 0"}
	case errors.As(err, &exit):
		detail := exit.Error()
		if l := lastLine(stderr); l != "" {
			detail += ": " + l
		} else if l := lastLine(stdout); l != "" {
			detail += ": " + l
		}
		return Observation{Status: Unhealthy, Detail: detail}
	case errors.Is(err, context.DeadlineExceeded):
		return Observation{Status: Unhealthy, Detail: fmt.Sprintf("timed out after %s%s", timeout, lastLineSuffix(stderr))}
	case errors.Is(err, context.Canceled):
		return Observation{Status: Unknown, Detail: "cancelled"}
	}
	return Observation{Status: Unknown, Detail: fmt.Sprintf("cannot run: %v", err)}
}
