//go:build unix

package apply

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopperStopsThenAborts(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		bound    time.Duration
		second   bool // a second signal
	}{
		{scenario: "the bound after the first signal aborts", bound: 300 * time.Millisecond},
		{scenario: "a second signal aborts at once", bound: time.Hour, second: true},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			aborts := make(chan struct{}, 2)
			ctx, s := NotifyStop(context.Background(), tc.bound, func() { aborts <- struct{}{} }, syscall.SIGUSR1)
			defer s.Close()
			syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the first signal did not stop the context")
			}
			if s.Signal() != syscall.SIGUSR1 || !strings.Contains(context.Cause(ctx).Error(), "stopped by user defined signal 1") {
				t.Errorf("signal %v, cause %v", s.Signal(), context.Cause(ctx))
			}
			select {
			case <-s.Abort():
				t.Fatal("aborted at the first signal")
			case <-time.After(100 * time.Millisecond):
			}
			if tc.second {
				syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
			}
			select {
			case <-s.Abort():
			case <-time.After(5 * time.Second):
				t.Fatal("no abort")
			}
			<-aborts
			if !s.Aborted() || len(aborts) != 0 {
				t.Errorf("aborted %v, onAbort ran %d more times", s.Aborted(), len(aborts))
			}
		})
	}
}

func TestStopperWithoutSignalIsNotStopped(t *testing.T) {
	ctx, s := NotifyStop(context.Background(), time.Millisecond, nil, syscall.SIGUSR2)
	time.Sleep(50 * time.Millisecond)
	if ctx.Err() != nil || s.Signal() != nil || s.Aborted() {
		t.Fatalf("stopped without a signal: %v %v %v", ctx.Err(), s.Signal(), s.Aborted())
	}
	s.Close()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after Close: %v", ctx.Err())
	}
}
