// Package run executes one external command for an installer: with a timeout,
// a controlled environment, no standard input, and a bounded tail of its
// combined output kept for error messages.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMaxOutput is how much of a command's combined output is kept: the
// last 64 KiB, which always holds the error lines package managers print last.
const DefaultMaxOutput = 64 << 10

// DefaultTimeout bounds a command when neither the context nor Cmd sets a
// shorter limit; package installs over a slow mirror can take minutes.
const DefaultTimeout = 15 * time.Minute

// Cmd is one command to run.
type Cmd struct {
	Argv []string
	// Env is added to a minimal inherited environment (PATH, HOME, proxy
	// variables); later entries win. LC_ALL=C is always set so output is parseable.
	Env     []string
	Timeout time.Duration // 0 = DefaultTimeout
	// MaxOutput bounds the kept output tail; 0 = DefaultMaxOutput.
	MaxOutput int
}

// Result is what a finished (or failed to start) command left behind.
type Result struct {
	Argv      []string
	ExitCode  int    // -1 when the command did not start or was killed
	Output    string // tail of combined stdout+stderr
	Truncated bool   // Output lost its beginning
	Duration  time.Duration
	TimedOut  bool
}

// Run executes c. It returns a non-nil error when the command could not start,
// timed out, was cancelled, or exited non-zero; Result is filled in every case.
func Run(ctx context.Context, c Cmd) (Result, error) {
	res := Result{Argv: c.Argv, ExitCode: -1}
	if len(c.Argv) == 0 {
		return res, errors.New("run: empty command line")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	max := c.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	out := &Tail{Max: max}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = Environ(os.Environ(), c.Env)
	cmd.Stdin = nil // /dev/null: a prompt must fail, never hang
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group, so a timeout also stops children (dpkg, gpg, rpm).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output, res.Truncated = out.String(), out.Truncated()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	slog.Debug("command finished", "argv", strings.Join(c.Argv, " "), "exit", res.ExitCode, "duration", res.Duration.Round(time.Millisecond))
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil {
		res.TimedOut = errors.Is(ctxErr, context.DeadlineExceeded)
		res.ExitCode = -1
		return res, fmt.Errorf("%s: stopped after %s: %w", c.Argv[0], res.Duration.Round(time.Millisecond), ctxErr)
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return res, fmt.Errorf("%s exited with status %d", c.Argv[0], res.ExitCode)
		}
		return res, fmt.Errorf("%s could not start: %w", c.Argv[0], err)
	}
	return res, nil
}

// keptVariables are the host variables a package manager legitimately needs;
// everything else (for example a caller's APT_CONFIG or GNUPGHOME) is dropped
// so the environment is explicit.
var keptVariables = []string{"PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// Environ builds a command environment: the kept variables of base, LC_ALL=C,
// then extra (later entries replace earlier ones with the same name).
func Environ(base, extra []string) []string {
	vals := map[string]string{}
	var order []string
	set := func(kv string) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			return
		}
		if _, seen := vals[k]; !seen {
			order = append(order, k)
		}
		vals[k] = kv
	}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		for _, keep := range keptVariables {
			if k == keep {
				set(kv)
			}
		}
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	set("LC_ALL=C")
	for _, kv := range extra {
		set(kv)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, vals[k])
	}
	return env
}

// Tail is an io.Writer that keeps only the last Max bytes written.
type Tail struct {
	Max int

	mu      sync.Mutex
	buf     []byte
	dropped bool
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.Max {
		t.buf = append(t.buf[:0], p[len(p)-t.Max:]...)
		t.dropped = true
		return n, nil
	}
	// Let the buffer grow to twice Max before moving bytes, so each byte is
	// copied a bounded number of times.
	if len(t.buf)+len(p) > 2*t.Max {
		keep := t.buf[len(t.buf)-(t.Max-len(p)):]
		t.buf = append(t.buf[:0], keep...)
		t.dropped = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept bytes.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.Max {
		return string(t.buf[len(t.buf)-t.Max:])
	}
	return string(t.buf)
}

// Truncated reports whether earlier output was dropped.
func (t *Tail) Truncated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped || len(t.buf) > t.Max
}
