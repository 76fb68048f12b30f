//go:build unix

package run

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as an "updater" that starts a transaction and is
// then SIGKILLed by the test.
func TestMain(m *testing.M) {
	if marker := os.Getenv("UPKEEP_RUN_HELPER_MARKER"); marker != "" {
		res, err := Run(context.Background(), Cmd{Transaction: true, Argv: []string{"sh", "-c",
			"echo started; sleep 1.5; echo done; echo finished > " + marker}})
		os.Stdout.WriteString("returned " + strconv.Itoa(res.PID) + " " + strings.TrimSpace(res.Output) + "\n")
		if err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func waitForFile(t *testing.T, path string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %s", path, within)
	return ""
}

func TestTransactionStopAndAbort(t *testing.T) {
	tests := []struct {
		scenario string
		// act happens 300 ms into the 1.5 s command.
		act         func(cancel context.CancelFunc, abort chan struct{})
		timeout     time.Duration
		wantErr     error // nil: finished
		wantOut     string
		wantTimeout bool
	}{
		{scenario: "a transaction whose context is cancelled (SIGTERM: stop) runs to its end",
			act: func(cancel context.CancelFunc, _ chan struct{}) { cancel() }, wantOut: "started\ndone\n"},
		{scenario: "an abort stops the wait, and the transaction goes on and finishes",
			act: func(_ context.CancelFunc, abort chan struct{}) { close(abort) }, wantErr: ErrLeftRunning, wantOut: "started\n"},
		{scenario: "a transaction past its own timeout is left running, not killed",
			act: func(context.CancelFunc, chan struct{}) {}, timeout: 500 * time.Millisecond, wantErr: ErrLeftRunning, wantOut: "started\n", wantTimeout: true},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "marker")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			abort := make(chan struct{})
			ctx = WithAbort(ctx, abort)
			time.AfterFunc(300*time.Millisecond, func() { tt.act(cancel, abort) })
			res, err := Run(ctx, Cmd{Transaction: true, Timeout: tt.timeout, Argv: []string{"sh", "-c",
				"echo started; sleep 1.5; echo done; echo finished > " + marker}})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if res.Output != tt.wantOut || res.TimedOut != tt.wantTimeout || res.PID == 0 {
				t.Errorf("result = %+v, want output %q, timed out %v and a pid", res, tt.wantOut, tt.wantTimeout)
			}
			if tt.wantErr != nil {
				if res.ExitCode != -1 || !res.LeftRunning || !strings.Contains(err.Error(), "pid "+strconv.Itoa(res.PID)) {
					t.Errorf("left-running result %+v, error %v: want exit -1 and the pid named", res, err)
				}
			}
			// In every case the command ran to its end.
			if got := waitForFile(t, marker, 5*time.Second); got != "finished" {
				t.Errorf("marker = %q", got)
			}
		})
	}
}

func TestTransactionDoesNotStartOnceStopped(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "marker")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Cmd{Transaction: true, Argv: []string{"sh", "-c", "echo x > " + marker}})
	if !errors.Is(err, context.Canceled) || res.PID != 0 {
		t.Fatalf("Run after stop: %+v, %v; want not started", res, err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
}

func TestTransactionRunsInItsOwnSession(t *testing.T) {
	res, err := Run(context.Background(), Cmd{Transaction: true, Argv: []string{"sh", "-c", "ps -o sid= -p $$"}})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := strconv.Atoi(strings.TrimSpace(res.Output))
	mine, _ := unix.Getsid(0)
	if err != nil || sid != res.PID || sid == mine {
		t.Fatalf("transaction's session %q (pid %d), the test's %d: want its own session", res.Output, res.PID, mine)
	}
}

// SIGKILL of the updater in the middle of a transaction: the package
// manager's process, in its own session and writing to a file rather than a
// pipe, is not touched and finishes.
func TestTransactionOutlivesASIGKILLedUpdater(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "marker")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "UPKEEP_RUN_HELPER_MARKER="+marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got := waitForFile(t, marker, 5*time.Second); got != "finished" {
		t.Errorf("marker = %q", got)
	}
}
