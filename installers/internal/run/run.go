// Package run executes one external command for an installer: with a timeout,
// a controlled environment, no standard input, and a bounded tail of its
// combined output kept for error messages.
//
// Two kinds of command, because stopping them differs:
//
//   - A query (the default: listing versions, reading the database, a
//     metadata refresh) changes nothing the package manager cannot redo, so
//     cancelling the context kills its process group at once.
//   - A transaction (Cmd.Transaction: apt-get install, dnf install, zypper
//     install, dpkg --configure -a) may be half way through unpacking or a
//     maintainer script. It is never killed by upkeep: it does not start once
//     the context is done ("stop": no new steps), but once started it runs
//     under context.WithoutCancel plus its own timeout, in its own session
//     (so a terminal's ^C or hang-up does not reach it), with its output in an
//     unlinked file rather than a pipe (so it can outlive the updater without
//     dying of SIGPIPE). When its timeout passes, or the context's abort
//     channel (WithAbort) closes, Run stops waiting and returns
//     ErrLeftRunning: the package manager is left to finish on its own.
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
	// Transaction marks a command that changes installed packages: it is
	// never killed (see the package comment).
	Transaction bool
}

// ErrLeftRunning is wrapped by Run's error when a transaction was still
// running at its timeout or at an abort: upkeep stopped waiting for it, and
// it goes on (Result.PID says which process).
var ErrLeftRunning = errors.New("left running: a package manager transaction is never killed mid-way")

type abortKey struct{}

// WithAbort returns a context carrying abort: when abort closes, a running
// transaction is no longer waited for (it is left running, never killed).
// Cancelling the context itself only keeps new commands from starting.
func WithAbort(ctx context.Context, abort <-chan struct{}) context.Context {
	return context.WithValue(ctx, abortKey{}, abort)
}

// abortOf is ctx's abort channel; nil (never closes) when there is none.
func abortOf(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(abortKey{}).(<-chan struct{})
	return ch
}

// Result is what a finished (or failed to start) command left behind.
type Result struct {
	Argv      []string
	ExitCode  int    // -1 when the command did not start or was killed
	Output    string // tail of combined stdout+stderr
	Truncated bool   // Output lost its beginning
	Duration  time.Duration
	TimedOut  bool
	// PID is the command's process id (0 when it did not start); with
	// LeftRunning, the transaction still running when Run returned.
	PID         int
	LeftRunning bool
}

// Run executes c. It returns a non-nil error when the command could not start,
// timed out, was cancelled, or exited non-zero; Result is filled in every case.
func Run(ctx context.Context, c Cmd) (Result, error) {
	res := Result{Argv: c.Argv, ExitCode: -1}
	if len(c.Argv) == 0 {
		return res, errors.New("run: empty command line")
	}
	if c.Transaction {
		return runTransaction(ctx, c)
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
	err := cmd.Start()
	if err == nil {
		res.PID = cmd.Process.Pid
		err = cmd.Wait()
	}
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

// runTransaction runs a command that must never be killed: see the package
// comment.
func runTransaction(ctx context.Context, c Cmd) (Result, error) {
	res := Result{Argv: c.Argv, ExitCode: -1}
	// Stop: once the context is done, no new transaction starts.
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s: not started: %w", c.Argv[0], context.Cause(ctx))
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	max := c.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	// A file, not a pipe: a pipe whose reader (this process) is gone kills
	// the writer with SIGPIPE in the middle of its transaction. Unlinked at
	// once, so nothing is left behind; both processes keep their descriptor.
	out, err := os.CreateTemp("", "upkeep-transaction-*.log")
	if err != nil {
		return res, fmt.Errorf("%s: output file: %w", c.Argv[0], err)
	}
	rd, err := os.Open(out.Name())
	os.Remove(out.Name())
	if err != nil {
		out.Close()
		return res, fmt.Errorf("%s: output file: %w", c.Argv[0], err)
	}
	defer rd.Close()
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env = Environ(os.Environ(), c.Env)
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	// Own session (and so own process group): a terminal's SIGINT, SIGQUIT
	// and SIGHUP go to the updater's group only, never to dpkg or rpm.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	err = cmd.Start()
	out.Close() // the child has its own descriptor
	if err != nil {
		return res, fmt.Errorf("%s could not start: %w", c.Argv[0], err)
	}
	res.PID = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // reaps it even when nobody waits any more
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		res.TimedOut, res.LeftRunning = true, true
	case <-abortOf(ctx):
		res.LeftRunning = true
	}
	res.Duration = time.Since(start)
	if res.LeftRunning {
		res.Output, res.Truncated = readTail(rd, max)
		why := "upkeep was told to stop"
		if res.TimedOut {
			why = fmt.Sprintf("its timeout (%s) passed", timeout)
		}
		slog.Warn("package manager transaction left running", "argv", strings.Join(c.Argv, " "), "pid", res.PID, "why", why)
		return res, fmt.Errorf("%s (pid %d) was still running after %s when %s; it is %w and finishes on its own",
			c.Argv[0], res.PID, res.Duration.Round(time.Millisecond), why, ErrLeftRunning)
	}
	res.Output, res.Truncated = readTail(rd, max)
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	slog.Debug("command finished", "argv", strings.Join(c.Argv, " "), "exit", res.ExitCode, "duration", res.Duration.Round(time.Millisecond))
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return res, fmt.Errorf("%s was killed by %v (not by upkeep)", c.Argv[0], ws.Signal())
			}
			return res, fmt.Errorf("%s exited with status %d", c.Argv[0], res.ExitCode)
		}
		return res, fmt.Errorf("%s: %w", c.Argv[0], err)
	}
	return res, nil
}

// readTail reads the last max bytes of the output file f.
func readTail(f *os.File, max int) (string, bool) {
	fi, err := f.Stat()
	if err != nil {
		return "", false
	}
	off := fi.Size() - int64(max)
	truncated := off > 0
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(buf, off)
	return string(buf[:n]), truncated
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
