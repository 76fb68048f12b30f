package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// MaxOutput bounds what is kept of each of a command's stdout and stderr;
// the rest is read and dropped so the command never blocks on a full pipe.
const MaxOutput = 64 << 10

// Runner runs a command line (argv[0] looked up in PATH) and returns its
// output. It returns *ExitError when the command ran and exited non-zero,
// an error wrapping context.DeadlineExceeded (or Canceled) when ctx ended
// first, and another error when the command could not start. Tests of the
// pure parts inject canned runners; Exec is the real one.
type Runner func(ctx context.Context, argv []string) (stdout, stderr []byte, err error)

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Argv []string
	Code int // -1 when killed by a signal
}

func (e *ExitError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("%s: killed by a signal", e.Argv[0])
	}
	return fmt.Sprintf("%s: exit status %d", e.Argv[0], e.Code)
}

// Exec runs argv with no stdin, keeping at most MaxOutput bytes of each
// output stream. When ctx ends, the command's whole process group is killed,
// so children holding its pipes cannot keep it waiting.
func Exec(ctx context.Context, argv []string) ([]byte, []byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, nil, errors.New("empty command line")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr boundedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killProcessGroup(cmd)
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil {
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("%s: %w", argv[0], ctxErr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), stderr.Bytes(), &ExitError{Argv: argv, Code: ee.ExitCode()}
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// boundedBuffer keeps the first MaxOutput bytes written and drops the rest.
// The buffer is a field, not embedded, so that io.Copy cannot bypass Write
// through bytes.Buffer's ReadFrom.
type boundedBuffer struct{ buf bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := MaxOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *boundedBuffer) Bytes() []byte { return b.buf.Bytes() }

// lastLine is the last non-blank line of out, at most 200 bytes, quoted so
// that nothing in it can forge a log line.
func lastLine(out []byte) string {
	s := strings.TrimRight(string(out), " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = "..." + s[len(s)-200:]
	}
	return fmt.Sprintf("%+q", s)
}

func lastLineSuffix(out []byte) string {
	if l := lastLine(out); l != "" {
		return ": " + l
	}
	return ""
}
