package apply

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"
)

// Stopper turns signals into the two ways an updater can be told to end,
// which the apply step treats differently:
//
//   - stop, at the first signal: the context is cancelled, so no new step
//     starts (no new package command, restart or settle), and a package
//     command already running is waited for (it runs detached from the
//     context, see installers.WithAbort) and journaled;
//   - abort, at a second signal or when Bound has passed since the first:
//     the running package command is no longer waited for. It is left
//     running, never killed, and the next pass finds its lock held or its
//     work done.
//
// Bound sits a little below the service's stop timeout (TimeoutStopSec), so
// the updater journals and exits before systemd gives up on it.
type Stopper struct {
	abort    chan struct{}
	cancel   context.CancelCauseFunc
	sigs     chan os.Signal
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	first    os.Signal
	aborted  bool
	onAbort  func()
	stopOnce sync.Once
}

// NotifyStop returns a context that is cancelled at the first of sigs, and
// a Stopper whose Abort channel closes at the second, or bound after the
// first (bound <= 0: only a second signal aborts). onAbort, when not nil,
// runs once at the abort (an updater arms its final exit there). Call Close
// when done.
func NotifyStop(parent context.Context, bound time.Duration, onAbort func(), sigs ...os.Signal) (context.Context, *Stopper) {
	ctx, cancel := context.WithCancelCause(parent)
	s := &Stopper{abort: make(chan struct{}), cancel: cancel, sigs: make(chan os.Signal, 2), done: make(chan struct{}), onAbort: onAbort}
	signal.Notify(s.sigs, sigs...)
	go s.loop(bound)
	return ctx, s
}

func (s *Stopper) loop(bound time.Duration) {
	var timer <-chan time.Time
	for {
		select {
		case <-s.done:
			return
		case sig := <-s.sigs:
			s.mu.Lock()
			first := s.first == nil
			if first {
				s.first = sig
			}
			s.mu.Unlock()
			if first {
				s.cancel(fmt.Errorf("stopped by %v: no new step starts; a running package command is let finish", sig))
				if bound > 0 {
					timer = time.After(bound)
				}
				continue
			}
			s.doAbort(fmt.Sprintf("a second %v", sig))
		case <-timer:
			s.doAbort(fmt.Sprintf("the stop bound (%s)", bound))
		}
	}
}

func (s *Stopper) doAbort(why string) {
	s.once.Do(func() {
		s.mu.Lock()
		s.aborted = true
		s.mu.Unlock()
		slog.Warn("abort: a running package command is no longer waited for; it is left to finish, never killed", "why", why)
		close(s.abort)
		if s.onAbort != nil {
			s.onAbort()
		}
	})
}

// Abort closes at the abort; pass it to installers.WithAbort.
func (s *Stopper) Abort() <-chan struct{} { return s.abort }

// Signal is the first signal received, nil when none was.
func (s *Stopper) Signal() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// Aborted reports whether the abort came.
func (s *Stopper) Aborted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aborted
}

// Close stops listening for signals; the context is cancelled.
func (s *Stopper) Close() {
	s.stopOnce.Do(func() {
		signal.Stop(s.sigs)
		close(s.done)
		s.cancel(context.Canceled)
	})
}
