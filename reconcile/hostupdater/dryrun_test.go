package hostupdater

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	fleetstore "upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/spec"
)

// entry is what a dry run must not change about one path of the state
// directory: kind and mode, size, modification time and content.
type entry struct {
	mode    fs.FileMode
	size    int64
	mtime   time.Time
	content string
}

func (e entry) String() string {
	return fmt.Sprintf("%v %d bytes, modified %s, %q", e.mode, e.size, e.mtime.Format(time.RFC3339Nano), e.content)
}

// snapshotDir maps every path under dir (dir itself included, since a file
// created and removed again still changes its folder's mtime) to its entry;
// nil when dir does not exist.
func snapshotDir(t *testing.T, dir string) map[string]entry {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	m := map[string]entry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode(), size: info.Size(), mtime: info.ModTime()}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			e.content = string(b)
		}
		m[path] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// agePaths sets every path under dir to an old mtime, so that a rewrite
// within the same clock tick still shows as a change.
func agePaths(t *testing.T, dir string) {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	var paths []string
	filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, path)
		}
		return nil
	})
	slices.Reverse(paths) // children first: a folder's mtime last
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// countingInstaller counts what must never run in a dry run: a refresh,
// and a version lookup through Resolve (package managers write caches
// while they look; only ResolveReadOnly may be asked).
type countingInstaller struct {
	*memInstaller
	refreshes, resolves, readOnly int
}

func (c *countingInstaller) Refresh(context.Context) error { c.refreshes++; return nil }
func (c *countingInstaller) Resolve(_ context.Context, _, v string) (string, error) {
	c.resolves++
	return v + "-1", nil
}
func (c *countingInstaller) ResolveReadOnly(_ context.Context, _, v string) (string, error) {
	c.readOnly++
	return v + "-1", nil
}

var _ installers.ReadOnlyResolver = (*countingInstaller)(nil)

// wallWindow is a daily window in UTC opening at offset from now's time of
// day, lasting d.
func wallWindow(now time.Time, offset, d time.Duration) spec.Window {
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	start := (now.Sub(midnight) + offset + 24*time.Hour) % (24 * time.Hour)
	return spec.Window{Start: start.Truncate(time.Minute), Duration: d}
}

// TestDryRunWritesNothing runs a `--dry-run` pass in every path of the
// decision chain the host updater can reach, against the real version
// server over HTTP on a SQLite fleet store, and proves it leaves the state
// directory as it was (paths, modes, sizes, mtimes, contents), creates no
// lock, takes no lease, sends no report, and neither refreshes nor installs.
// ControlPlaneBounds and Frozen are the two rules the host updater does not
// reach: it is told no bounds, and a freeze reaches it as a schedule
// without windows (the "group frozen now" scenario).
func TestDryRunWritesNothing(t *testing.T) {
	now := time.Now().UTC()
	outside := wallWindow(now, 6*time.Hour, time.Hour)
	inside := wallWindow(now, -time.Hour, 4*time.Hour)
	savedWindows := []calendar.Interval{{Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}}

	withState := func(st apply.State) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := apply.WriteState(dir, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	lastDecision := apply.State{LastDecision: &apply.DecisionRecord{At: now.Add(-time.Hour), Action: "Wait",
		Rule: reconcile.RuleWaitForWindow, Reason: "OutsideWindow", Message: "an earlier pass"}}

	tests := []struct {
		scenario    string
		window      spec.Window
		edit        func(st *spec.State)
		answers     func(st *spec.State) *rollout.Answers
		installed   string // "" is not installed
		bad         bool   // the agent's health endpoint fails
		config      string // extra config lines
		prepare     func(t *testing.T, dir string)
		absentDir   bool // the state directory does not exist
		unreachable bool // nothing listens at the server's address
		otherHolds  bool // web-02 holds the group's only lease
		rules       []string
		action      reconcile.Action
		unfinished  bool // the pass names an unfinished update
	}{
		{scenario: "outside the window the pass waits for it, and rewrites neither the state nor the saved schedule",
			window: outside, installed: "17.3.0",
			prepare: func(t *testing.T, dir string) {
				withState(lastDecision)(t, dir)
				if err := schedule.WriteFile(filepath.Join(dir, "schedule"), savedWindows); err != nil {
					t.Fatal(err)
				}
			},
			rules: []string{reconcile.RuleWaitForWindow}, action: reconcile.ActionWait},
		{scenario: "inside the window the pass would update, and only lists the commands",
			window: inside, installed: "17.3.0", prepare: withState(lastDecision),
			rules: []string{reconcile.RuleInWindow}, action: reconcile.ActionUpdate},
		{scenario: "a critical update outside the window would be applied at once",
			window: outside, installed: "17.3.0", edit: func(st *spec.State) { st.Channels[0].Critical = true },
			rules: []string{reconcile.RuleCritical}, action: reconcile.ActionUpdate},
		{scenario: "an unhealthy agent outside the window would be updated at once",
			window: outside, installed: "17.3.0", bad: true,
			rules: []string{reconcile.RuleUnhealthy}, action: reconcile.ActionUpdate},
		{scenario: "without a schedule the first unusable check waits, and the count is not saved",
			window: outside, installed: "17.3.0", config: "schedule:\n  source: none\n",
			rules: []string{reconcile.RuleScheduleUnusable}, action: reconcile.ActionWait},
		{scenario: "without a schedule the check that reaches the threshold would update, and the count is not reset",
			window: outside, installed: "17.3.0", config: "schedule:\n  source: none\n",
			prepare: withState(apply.State{UnusableChecks: 1}),
			rules:   []string{reconcile.RuleScheduleUnusable}, action: reconcile.ActionUpdate},
		{scenario: "a group frozen now waits, and its schedule is not saved",
			window: inside, installed: "17.3.0",
			edit: func(st *spec.State) {
				st.Groups[0].Freezes = []spec.Freeze{{Name: "year-end", Start: now.Add(-24 * time.Hour), End: now.Add(30 * 24 * time.Hour)}}
			},
			rules: []string{reconcile.RuleScheduleUnusable, reconcile.RuleWaitForWindow}, action: reconcile.ActionWait},
		{scenario: "an agent held back by a rollout's canary step waits",
			window: inside, installed: "17.3.0",
			answers: func(st *spec.State) *rollout.Answers {
				st.Channels[0].Rollout = &spec.Rollout{Stages: []spec.Stage{{Groups: []string{"eu-prod"}, Canaries: spec.Quantity{Count: 1},
					SuccessThreshold: spec.DefaultSuccessThreshold, FailureThreshold: spec.DefaultFailureThreshold}}}
				ro := fleetstore.Rollout{Channel: "stable/cloud", Version: "17.4.0", FromVersion: "17.3.0", State: fleetstore.StateCanary,
					Step: fleetstore.StepCanary, Canaries: []string{"web-09"}}
				return rollout.NewAnswers(rollout.NewAnswer(ro, st.RolloutStages("stable/cloud"), nil))
			},
			rules: []string{reconcile.RuleRolloutHeld}, action: reconcile.ActionWait},
		{scenario: "with the group's only lease held by another agent the pass asks for none and takes no place",
			window: inside, installed: "17.3.0", otherHolds: true,
			rules: []string{reconcile.RuleInWindow}, action: reconcile.ActionUpdate},
		{scenario: "an agent already on the target does nothing",
			window: inside, installed: "17.4.0", prepare: withState(lastDecision),
			rules: []string{reconcile.RuleUpToDate}, action: reconcile.ActionNothing},
		{scenario: "a channel offering no version does nothing",
			window: inside, installed: "17.3.0", edit: func(st *spec.State) { st.Channels[0].Version = spec.NoVersion },
			rules: []string{reconcile.RuleUpToDate}, action: reconcile.ActionNothing},
		{scenario: "a skipped target is kept away from, and the skip list is not pruned or rewritten",
			window: inside, installed: "17.3.0",
			prepare: withState(apply.State{Skipped: []apply.Skip{
				{Version: "17.4.0", Since: now.Add(-time.Hour), From: "17.3.0", Reason: "Unhealthy", Message: "rolled back"},
				{Version: "17.2.0", Since: now.Add(-48 * time.Hour), From: "17.1.0", Reason: "Unhealthy", Message: "older"},
			}}),
			rules: []string{reconcile.RuleSkipped}, action: reconcile.ActionKeep},
		{scenario: "a package that is not installed would be installed at once",
			window: outside, installed: "",
			rules: []string{reconcile.RuleFirstInstall}, action: reconcile.ActionUpdate},
		{scenario: "an update a crash cut short is named, not recovered, and the crash's temporary files stay",
			window: outside, installed: "17.3.0",
			prepare: func(t *testing.T, dir string) {
				j := apply.Journal{ID: "u-1", From: "17.3.0", To: "17.4.0", Step: apply.StepInstalling,
					Started: now.Add(-time.Minute), Updated: now.Add(-time.Minute), Attempt: 1}
				if err := apply.WriteJournal(dir, j); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, ".journal.json.123.tmp"), []byte("{\"form"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			rules: []string{reconcile.RuleWaitForWindow}, action: reconcile.ActionWait, unfinished: true},
		{scenario: "with the server unreachable the target is unknown and the saved schedule is read, not rewritten",
			window: inside, installed: "17.3.0", unreachable: true,
			prepare: func(t *testing.T, dir string) {
				if err := schedule.WriteFile(filepath.Join(dir, "schedule"), savedWindows); err != nil {
					t.Fatal(err)
				}
			},
			rules: []string{reconcile.RuleTargetUnknown}, action: reconcile.ActionKeep},
		{scenario: "a channel the server does not know leaves the target unknown",
			window: inside, installed: "17.3.0", config: "channel: stable/nope\n",
			rules: []string{reconcile.RuleTargetUnknown}, action: reconcile.ActionKeep},
		{scenario: "a state directory that does not exist is not created",
			window: inside, installed: "17.3.0", absentDir: true,
			rules: []string{reconcile.RuleInWindow}, action: reconcile.ActionUpdate},
	}
	seen, ran := map[string]bool{}, 0
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			ran++
			ctx := context.Background()
			st := &spec.State{
				ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.5.0"}},
				Channels:      []*spec.Channel{{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.4.0"}},
				Groups: []*spec.Group{{Name: "eu-prod", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC,
					Windows: []spec.Window{tc.window}, MaxConcurrent: spec.Quantity{Count: 1}}},
			}
			if tc.edit != nil {
				tc.edit(st)
			}
			var answers func() *rollout.Answers
			if tc.answers != nil {
				a := tc.answers(st)
				answers = func() *rollout.Answers { return a }
			}
			s := startRealServer(t, st, answers)
			url := s.url
			if tc.unreachable {
				url = closedURL(t)
			}
			if tc.otherHolds {
				if _, err := s.store.AcquireLease(ctx, leaseFor("web-02"), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			leasesBefore := leaseEvents(t, s.store)

			dir := filepath.Join(t.TempDir(), "state")
			if !tc.absentDir {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if tc.prepare != nil {
					tc.prepare(t, dir)
				}
				agePaths(t, dir)
			}
			mem := &memInstaller{installed: tc.installed}
			inst := &countingInstaller{memInstaller: mem}
			bad := ""
			if tc.bad {
				bad = tc.installed
			}
			yaml := fmt.Sprintf("server: %s\nchannel: stable/cloud\ngroup: eu-prod\nagentID: web-01\npackage: teleport\ntokenFile: %s\nstateDir: %s\n"+
				"health:\n  systemd: false\n  http:\n    url: %s\n  settle: 200ms\n  interval: 40ms\n",
				url, s.tokenFile, dir, agentHealth(t, mem, bad))
			yaml = mergeConfig(yaml, tc.config)
			u, _ := newWiredUpdater(t, yaml, inst, true)

			before := snapshotDir(t, dir)
			p := u.Once(ctx, true)
			after := snapshotDir(t, dir)

			seen[p.Decision.Rule] = true
			t.Logf("decided %s by %s (%s): %s", p.Decision.Action, p.Decision.Rule, p.Decision.Reason, p.Decision.Message)
			if !slices.Contains(tc.rules, p.Decision.Rule) || p.Decision.Action != tc.action {
				t.Errorf("decided %s by %s (%s): %s; want %s by one of %v", p.Decision.Action, p.Decision.Rule, p.Decision.Reason,
					p.Decision.Message, tc.action, tc.rules)
			}
			if p.Err != nil {
				t.Errorf("pass error: %v", p.Err)
			}
			for path, b := range before {
				if a, ok := after[path]; !ok {
					t.Errorf("%s was removed", path)
				} else if a != b {
					t.Errorf("%s changed:\nbefore %s\nafter  %s", path, b, a)
				}
			}
			for path, a := range after {
				if _, ok := before[path]; !ok {
					t.Errorf("%s was created: %s", path, a)
				}
			}
			if tc.absentDir && after != nil {
				t.Errorf("the state directory %s was created", dir)
			}
			if _, err := os.Lstat(apply.LockPath(dir)); !os.IsNotExist(err) {
				t.Errorf("a lock file exists after the dry run: %v", err)
			}
			if got := leaseEvents(t, s.store); got != leasesBefore {
				t.Errorf("the store's lease log went from %q to %q", leasesBefore, got)
			}
			if _, ok, err := s.store.Agent(ctx, "web-01", time.Now()); err != nil || ok {
				t.Errorf("the store holds a report of web-01 (%v, %v): a dry run sends none", ok, err)
			}
			if inst.refreshes != 0 || inst.resolves != 0 || len(mem.installs) != 0 {
				t.Errorf("%d refreshes, %d lookups through Resolve and installs %v in a dry run", inst.refreshes, inst.resolves, mem.installs)
			}
			if p.Decision.Action == reconcile.ActionUpdate && (inst.readOnly != 1 || p.Unresolved ||
				!strings.Contains(fmt.Sprint(p.Commands), "="+p.Target+"-1")) {
				t.Errorf("a dry run that would update looked the package version up %d times read-only (unresolved %v); commands %v",
					inst.readOnly, p.Unresolved, p.Commands)
			}
			if p.Lease.State != reconcile.LeaseNotAsked || p.Result != nil || p.Recovered != nil {
				t.Errorf("the dry run asked a lease (%s) or applied (%+v, recovered %+v)", p.Lease.State, p.Result, p.Recovered)
			}
			if p.Decision.Action == reconcile.ActionUpdate && len(p.Commands) == 0 {
				t.Errorf("a dry run that would update lists no commands")
			}
			if (p.Unfinished != nil) != tc.unfinished {
				t.Errorf("unfinished update named: %+v, want %v", p.Unfinished, tc.unfinished)
			}

			// The control: the same pass for real does change the directory,
			// so the comparison above can fail.
			u.Once(ctx, false)
			if real := snapshotDir(t, dir); maps.EqualFunc(before, real, func(a, b entry) bool { return a == b }) {
				t.Errorf("a real pass left the state directory as it was: the dry-run check proves nothing here")
			}
		})
	}
	if ran < len(tests) {
		return // -run picked some scenarios: the coverage below needs them all
	}
	for _, rule := range reconcile.RuleNames() {
		switch rule {
		case reconcile.RuleControlPlane, reconcile.RuleFrozen, reconcile.RuleConcurrencyLimit:
			// not reached by a host updater's dry run (see the doc comment;
			// a dry run asks no lease, so ConcurrencyLimit cannot settle)
			continue
		}
		if !seen[rule] {
			t.Errorf("no dry-run scenario settled by %s", rule)
		}
	}
}

// mergeConfig replaces base's top-level keys that extra sets and appends
// the rest of extra.
func mergeConfig(base, extra string) string {
	if extra == "" {
		return base
	}
	lines := strings.Split(base, "\n")
	for _, e := range strings.Split(strings.TrimSpace(extra), "\n") {
		key, _, ok := strings.Cut(e, ":")
		if !ok || strings.HasPrefix(e, " ") {
			continue
		}
		for i, l := range lines {
			if strings.HasPrefix(l, key+":") {
				lines[i] = "" // extra's line replaces it
			}
		}
	}
	return strings.Join(lines, "\n") + extra
}

// closedURL is a loopback address nothing listens at.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func leaseFor(agent string) fleetstore.LeaseRequest {
	return fleetstore.LeaseRequest{Group: "eu-prod", AgentID: agent, Channel: "stable/cloud", Version: "17.4.0", Max: 1, TTL: 10 * time.Minute}
}

func leaseEvents(t *testing.T, store interface {
	LeaseLog(ctx context.Context, group string) ([]fleetstore.LeaseEvent, error)
}) string {
	t.Helper()
	log, err := store.LeaseLog(context.Background(), "eu-prod")
	if err != nil {
		t.Fatal(err)
	}
	var evs []string
	for _, e := range log {
		evs = append(evs, e.AgentID+":"+e.Event)
	}
	return strings.Join(evs, " ")
}

// TestDryRunDoesNotAskAWritingLookup: with an installer that cannot look a
// version up without writing, a dry run does not ask it and says so; the
// commands name the release version.
func TestDryRunDoesNotAskAWritingLookup(t *testing.T) {
	s := newSetup(t, false, nil, "")
	inst := &writingLookup{memInstaller: s.inst}
	s.u.installer = inst
	p := s.u.Once(context.Background(), true)
	if p.Decision.Action != reconcile.ActionUpdate || !p.Unresolved || inst.resolves != 0 {
		t.Fatalf("decision %s, unresolved %v, %d lookups; want an Update, unresolved, no lookup", p.Decision.Action, p.Unresolved, inst.resolves)
	}
	if got := fmt.Sprint(p.Commands); !strings.Contains(got, "teleport=17.4.0") {
		t.Errorf("commands %s do not name the release version", got)
	}
}

// writingLookup is an installer whose Resolve would write (no ResolveReadOnly).
type writingLookup struct {
	*memInstaller
	resolves int
}

func (w *writingLookup) Resolve(_ context.Context, _, v string) (string, error) {
	w.resolves++
	return v + "-1", nil
}
