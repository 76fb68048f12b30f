package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTarget is an in-memory Target for the step logic. It records each call
// with the journal step on disk at that moment ("install 1.3.0 [installing]"),
// which proves the journal was written before the step. Calls come from one
// goroutine, so it has no lock. With file set, the
// installed version lives in that file, so it survives the test process
// being killed (the crash tests).
type fakeTarget struct {
	dir       string // state directory, to read the journal step at each call
	file      string
	installed string

	unhealthy  map[string]string // Settle finds this version unhealthy, with this reason
	refuse     map[string]error  // Install(version) fails and changes nothing
	breaks     map[string]string // Install(version) fails, leaving this version installed
	restartErr map[string]error  // Restart fails while this version is installed
	settleErr  map[string]error  // Settle cannot judge this version
	currentErr error

	// crashAt is a call ("install 1.3.0", "restart 1.2.0") at whose start the
	// process SIGKILLs itself; a trailing "!" ("install 1.3.0!") kills it
	// after the install changed the version.
	crashAt string
	// cancelAt is a call during which cancel is called (a SIGTERM).
	cancelAt string
	cancel   context.CancelFunc
	// transaction makes Install behave as a package manager's transaction
	// does under a stop: it runs to its end although ctx is done.
	transaction bool
	// repairs are what Repair returns, in turn (the last one repeats); no
	// entries: nothing to repair. repairKeeps records the keep arguments.
	repairs     []fakeRepair
	repairKeeps []string

	calls []string
}

func (f *fakeTarget) get() string {
	if f.file == "" {
		return f.installed
	}
	b, err := os.ReadFile(f.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		panic(err)
	}
	return strings.TrimSpace(string(b))
}

func (f *fakeTarget) set(v string) {
	f.installed = v
	if f.file != "" {
		if err := os.WriteFile(f.file, []byte(v), 0o644); err != nil {
			panic(err)
		}
	}
}

func (f *fakeTarget) record(call string) {
	step := "no journal"
	if j, err := ReadJournal(f.dir); err != nil {
		step = "corrupt journal"
	} else if j != nil {
		step = string(j.Step)
	}
	f.calls = append(f.calls, fmt.Sprintf("%s [%s]", call, step))
	if f.crashAt == call {
		killSelf()
	}
	if f.cancelAt == call && f.cancel != nil {
		f.cancel()
	}
}

func (f *fakeTarget) Current(ctx context.Context) (string, error) {
	if f.currentErr != nil {
		return "", f.currentErr
	}
	return f.get(), nil
}

func (f *fakeTarget) Install(ctx context.Context, v string) error {
	call := "install " + v
	f.record(call)
	if err := ctx.Err(); err != nil && !f.transaction {
		return err
	}
	if err := f.refuse[v]; err != nil {
		return err
	}
	if left, ok := f.breaks[v]; ok {
		f.set(left)
		return fmt.Errorf("post-installation script of %s returned exit status 1", v)
	}
	f.set(v)
	if f.crashAt == call+"!" {
		killSelf()
	}
	return nil
}

func (f *fakeTarget) Restart(ctx context.Context) error {
	v := f.get()
	f.record("restart " + v)
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.restartErr[v]
}

func (f *fakeTarget) Settle(ctx context.Context) (bool, string, error) {
	v := f.get()
	f.record("settle " + v)
	if err := ctx.Err(); err != nil {
		return false, "settling stopped", err
	}
	if err := f.settleErr[v]; err != nil {
		return false, "", err
	}
	if why, bad := f.unhealthy[v]; bad {
		return false, why, nil
	}
	return true, "3 checks passed", nil
}

type fakeRepair struct {
	rep Repair
	err error
}

func (f *fakeTarget) Repair(ctx context.Context, keep string) (Repair, error) {
	f.repairKeeps = append(f.repairKeeps, keep)
	if len(f.repairs) == 0 {
		return Repair{Rule: RepairNothing}, nil
	}
	r := f.repairs[0]
	if len(f.repairs) > 1 {
		f.repairs = f.repairs[1:]
	}
	return r.rep, r.err
}

func (f *fakeTarget) takeCalls() []string {
	c := f.calls
	f.calls = nil
	return c
}

// fakeClock advances one second on every reading, so step durations are
// non-zero and exact.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 5, 2, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newApplier(t testing.TB, dir string, tgt Target) *Applier {
	t.Helper()
	return &Applier{Dir: dir, Target: tgt, Now: newClock().Now, Logger: quietLogger()}
}

func mustState(t testing.TB, dir string) State {
	t.Helper()
	s, err := ReadState(dir)
	if err != nil {
		t.Fatalf("ReadState: %v", err)
	}
	return s
}

func mustJournal(t testing.TB, dir string) *Journal {
	t.Helper()
	j, err := ReadJournal(dir)
	if err != nil {
		t.Fatalf("ReadJournal: %v", err)
	}
	return j
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func callsDiff(got, want []string) string {
	return fmt.Sprintf("calls:\n  got  %q\n  want %q", got, want)
}
