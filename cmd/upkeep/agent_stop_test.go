//go:build unix

package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/hostupdater"
)

// The exit status of a pass a signal ended: 143 (SIGTERM) when nothing was
// left running, 75 when the abort left a package command running, nil when
// no signal came.
func TestStopExit(t *testing.T) {
	leftRunningPass := &hostupdater.Pass{Result: &apply.Result{Outcome: apply.Interrupted, Steps: []apply.StepRecord{
		{Action: "install", Version: "1.1.0", Error: "apt-get install failed: apt-get (pid 42) was still running ...; it is " + installers.ErrLeftRunning.Error()}}}}
	stoppedPass := &hostupdater.Pass{Result: &apply.Result{Outcome: apply.Interrupted, Steps: []apply.StepRecord{{Action: "install", Version: "1.1.0"}}}}
	for _, tc := range []struct {
		scenario string
		signals  int // SIGTERMs sent; 2 aborts
		pass     *hostupdater.Pass
		want     int // 0: no error
	}{
		{"no signal: the pass's own status", 0, stoppedPass, 0},
		{"SIGTERM, the package command finished: 143", 1, stoppedPass, exitStoppedTerm},
		{"a second SIGTERM while the package command ran: 75", 2, leftRunningPass, exitLeftRunning},
		{"a second SIGTERM with nothing running: still 143", 2, stoppedPass, exitStoppedTerm},
		{"a pass that failed because the command was left running: 75", 2, &hostupdater.Pass{Err: installers.ErrLeftRunning}, exitLeftRunning},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			// SIGTERM would end the test binary if nobody listened: the
			// Stopper listens, as in runAgent.
			ctx, s := apply.NotifyStop(context.Background(), time.Hour, nil, syscall.SIGTERM)
			defer s.Close()
			for i := 0; i < tc.signals; i++ {
				syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
				if i == 0 {
					<-ctx.Done()
				}
			}
			if tc.signals == 2 {
				select {
				case <-s.Abort():
				case <-time.After(5 * time.Second):
					t.Fatal("no abort")
				}
			}
			err := stopExit(s, tc.pass)
			var coded *exitCodeError
			switch {
			case tc.want == 0 && err != nil:
				t.Fatalf("stopExit = %v, want nil", err)
			case tc.want != 0 && (!errors.As(err, &coded) || coded.Code != tc.want):
				t.Fatalf("stopExit = %v, want exit %d", err, tc.want)
			}
		})
	}
}
