//go:build unix

package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// killSelf ends the test process as a crash or power loss would: no
// deferred function, no flush.
func killSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Minute) // the signal is on its way
}

// The real thing: the updater process is SIGKILLed at each step of an apply
// (before and after the installed version changes), and Recover in a new
// process — followed, when nothing had changed, by the next check's Apply —
// ends with the new version healthy, or the old one restored and the new
// one skipped.
func TestSIGKILLAtEachStepIsRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts helper processes")
	}
	type crash struct {
		at        string
		unhealthy bool
	}
	var crashes []crash
	for _, at := range []string{"install 1.3.0", "install 1.3.0!", "restart 1.3.0", "settle 1.3.0"} {
		crashes = append(crashes, crash{at, false}, crash{at, true})
	}
	for _, at := range []string{"install 1.2.0", "install 1.2.0!", "restart 1.2.0", "settle 1.2.0"} {
		crashes = append(crashes, crash{at, true}) // only an unhealthy version is rolled back
	}
	for _, c := range crashes {
		name := c.at + " healthy"
		if c.unhealthy {
			name = c.at + " unhealthy"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			host := filepath.Join(t.TempDir(), "installed")
			if err := os.WriteFile(host, []byte("1.2.0"), 0o644); err != nil {
				t.Fatal(err)
			}
			unhealthy := ""
			if c.unhealthy {
				unhealthy = "1.3.0"
			}
			cmd, _, out := helper(t, "apply", "UPKEEP_DIR="+dir, "UPKEEP_HOST_FILE="+host,
				"UPKEEP_CRASH_AT="+c.at, "UPKEEP_UNHEALTHY="+unhealthy)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed: %v; said %q", err, readLine(t, out))
			}
			if j := mustJournal(t, dir); !j.Unfinished() {
				t.Fatalf("journal after the crash: %+v", j)
			}

			tgt := &fakeTarget{dir: dir, file: host, unhealthy: map[string]string{}}
			if c.unhealthy {
				tgt.unhealthy["1.3.0"] = "crash loop"
			}
			a := newApplier(t, dir, tgt)
			res, err := a.Recover(context.Background())
			if err != nil || res == nil {
				t.Fatalf("Recover: %+v, %v", res, err)
			}
			st := mustState(t, dir)
			if res.Outcome == Failed && res.Reason == ReasonInterruptedBeforeChange && !st.IsSkipped("1.3.0") {
				// Nothing had changed; the next check updates as if nothing happened.
				res2 := a.Apply(context.Background(), "1.2.0", "1.3.0")
				res = &res2
				st = mustState(t, dir)
			}
			if j := mustJournal(t, dir); j.Unfinished() {
				t.Errorf("journal unfinished at the end: %+v", j)
			}
			if c.unhealthy {
				if tgt.get() != "1.2.0" || !st.IsSkipped("1.3.0") || res.Outcome != RolledBack {
					t.Errorf("end: %s installed, skipped %q, %s: %s; want 1.2.0 restored and 1.3.0 skipped",
						tgt.get(), st.SkippedVersions(), res.Outcome, res.Message)
				}
			} else if tgt.get() != "1.3.0" || len(st.Skipped) != 0 || res.Outcome != Updated {
				t.Errorf("end: %s installed, skipped %q, %s: %s; want 1.3.0 kept", tgt.get(), st.SkippedVersions(), res.Outcome, res.Message)
			}
		})
	}
}
