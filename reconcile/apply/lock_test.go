//go:build unix

package apply

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestLockExcludesAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	holder, stdin, out := helper(t, "lock", "UPKEEP_DIR="+dir)
	if line := readLine(t, out); line != "LOCKED" {
		t.Fatalf("helper: %q", line)
	}

	unlock, err := Lock(dir)
	if err == nil {
		unlock()
		t.Fatal("Lock succeeded while another process holds it")
	}
	want := fmt.Sprintf("another upkeep agent (pid %d) holds %s", holder.Process.Pid, LockPath(dir))
	var le *LockedError
	if !errors.As(err, &le) || le.PID != holder.Process.Pid || !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q (%T), want one containing %q", err, err, want)
	}

	stdin.Close() // the holder unlocks and exits
	if err := holder.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	unlock, err = Lock(dir)
	if err != nil {
		t.Fatalf("Lock after the holder exited: %v", err)
	}
	defer unlock()

	// Now this process holds it: another one is refused, naming this pid.
	other, _, out := helper(t, "lock", "UPKEEP_DIR="+dir)
	line := readLine(t, out)
	if !strings.Contains(line, fmt.Sprintf("another upkeep agent (pid %d) holds %s", os.Getpid(), LockPath(dir))) {
		t.Errorf("second process said %q", line)
	}
	var ee *exec.ExitError
	if err := other.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("second process: %v, want exit status 3", err)
	}
}

func TestLockIsReleasedWhenTheHolderIsKilled(t *testing.T) {
	dir := t.TempDir()
	holder, _, out := helper(t, "lock", "UPKEEP_DIR="+dir)
	if line := readLine(t, out); line != "LOCKED" {
		t.Fatalf("helper: %q", line)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	// The killed holder's pid is still in the file; the lock is free anyway.
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after SIGKILL of the holder: %v", err)
	}
	defer unlock()
	if b, _ := os.ReadFile(LockPath(dir)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want this pid %d", b, os.Getpid())
	}
}

func TestLockTwiceInOneProcessFailsAndUnlockIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(LockPath(dir)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want pid %d", b, os.Getpid())
	}
	if u2, err := Lock(dir); !errors.Is(err, ErrLocked) {
		if u2 != nil {
			u2()
		}
		t.Fatalf("second Lock in the same process: %v, want ErrLocked", err)
	}
	unlock()
	unlock()
	if b, _ := os.ReadFile(LockPath(dir)); len(b) != 0 {
		t.Errorf("lock file still holds %q after unlock", b)
	}
	unlock2, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

// Commands the updater runs must not inherit the lock: a package manager or
// the agent left running would otherwise keep it after the updater exits.
func TestLockIsNotInheritedByChildProcesses(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	unlock()

	_, _, out := helper(t, "lock", "UPKEEP_DIR="+dir)
	if line := readLine(t, out); line != "LOCKED" {
		t.Fatalf("with a child of the former holder still running, another process got %q", line)
	}
}

func TestLockCreatesTheStateDirectory(t *testing.T) {
	dir := t.TempDir() + "/var/lib/upkeep"
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(LockPath(dir)); err != nil {
		t.Fatal(err)
	}
}
