package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// These run real commands through Exec.
func TestCommandCheck(t *testing.T) {
	tests := []struct {
		scenario string
		argv     []string
		timeout  time.Duration
		status   Status
		detail   string
	}{
		{"true exits 0 and is healthy", []string{"true"}, 0, Healthy, "exit status 0"},
		{"false exits 1 and is unhealthy", []string{"false"}, 0, Unhealthy, "false: exit status 1"},
		{"a failure quotes the last line of stderr", []string{"sh", "-c", "echo starting; echo 'first problem' >&2; echo 'auth server unreachable' >&2; exit 3"}, 0,
			Unhealthy, `sh: exit status 3: "auth server unreachable"`},
		{"a failure without stderr quotes stdout", []string{"sh", "-c", "echo 'not ready'; exit 2"}, 0, Unhealthy, `exit status 2: "not ready"`},
		{"control characters in output are escaped", []string{"sh", "-c", `printf 'bad\033[31m\n' >&2; exit 1`}, 0, Unhealthy, `"bad\x1b[31m"`},
		{"a command past its timeout is unhealthy", []string{"sleep", "10"}, 200 * time.Millisecond, Unhealthy, "timed out after 200ms"},
		{"a command whose child holds the pipes still times out promptly", []string{"sh", "-c", "sleep 10 & sleep 10"}, 200 * time.Millisecond, Unhealthy, "timed out after 200ms"},
		{"a command that does not exist is unknown", []string{"upkeep-no-such-command-4d1e"}, 0, Unknown, "cannot run"},
		{"a command killed by a signal is unhealthy", []string{"sh", "-c", "kill -KILL $$"}, 0, Unhealthy, "killed by a signal"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := NewCommandCheck(tt.argv, tt.timeout)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			o := c.Probe(t.Context())
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("probe took %s", elapsed)
			}
			if o.Status != tt.status || !strings.Contains(o.Detail, tt.detail) {
				t.Errorf("got %v %q, want %v containing %q", o.Status, o.Detail, tt.status, tt.detail)
			}
		})
	}
}

func TestNewCommandCheckRefusesEmpty(t *testing.T) {
	if _, err := NewCommandCheck(nil, 0); err == nil {
		t.Error("accepted an empty command line")
	}
	if _, err := NewCommandCheck([]string{"true"}, -time.Second); err == nil {
		t.Error("accepted a negative timeout")
	}
}

func TestExec(t *testing.T) {
	t.Run("output beyond the bound is dropped, and the command still ends", func(t *testing.T) {
		stdout, _, err := Exec(t.Context(), []string{"sh", "-c", "head -c 1000000 /dev/zero"})
		if err != nil {
			t.Fatal(err)
		}
		if len(stdout) != MaxOutput {
			t.Errorf("kept %d bytes, want %d", len(stdout), MaxOutput)
		}
	})
	t.Run("stdout and stderr are kept apart", func(t *testing.T) {
		stdout, stderr, err := Exec(t.Context(), []string{"sh", "-c", "echo out; echo err >&2"})
		if err != nil || string(stdout) != "out\n" || string(stderr) != "err\n" {
			t.Errorf("got %q %q %v", stdout, stderr, err)
		}
	})
	t.Run("a non-zero exit is an ExitError with its code", func(t *testing.T) {
		_, _, err := Exec(t.Context(), []string{"sh", "-c", "exit 7"})
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 7 {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a cancelled context is reported as such", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, _, err := Exec(ctx, []string{"sleep", "5"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("an empty command line is an error", func(t *testing.T) {
		if _, _, err := Exec(t.Context(), nil); err == nil {
			t.Error("no error")
		}
	})
}
