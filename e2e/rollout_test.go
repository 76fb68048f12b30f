package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/simfleet"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
)

// The rollout tests run `upkeep serve` over a fleet folder whose channel
// "prod" has staged rollouts, and a simulated fleet (e2e/simfleet) of
// updaters speaking its HTTP API. Every assertion is made from what the
// server answered and recorded (GET /v1/rollouts/<channel>, /v1/fleet, the
// store's lease log) against the simulation's own log of answers.

const rolloutChannel = "prod"

// stageYAML is one rollout stage of the fleet file.
type stageYAML struct {
	groups           []string
	canaries         string // "" for the default
	bakeTime         time.Duration
	successThreshold string
	failureThreshold string
}

// groupYAML is one Group of the fleet file.
type groupYAML struct {
	name          string
	maxConcurrent string // "" for unlimited
}

// rolloutFleetYAML is a fleet with channel prod at version, rolled out
// through stages, and groups following it.
func rolloutFleetYAML(version string, stages []stageYAML, groups []groupYAML) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 1.9.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: %s
spec:
  controlPlane: cloud
  version: %s
  rollout:
    stages:
`, rolloutChannel, version)
	for _, s := range stages {
		fmt.Fprintf(&b, "      - groups: [%s]\n", strings.Join(s.groups, ", "))
		if s.canaries != "" {
			fmt.Fprintf(&b, "        canaries: %s\n", quantity(s.canaries))
		}
		if s.bakeTime > 0 {
			fmt.Fprintf(&b, "        bakeTime: %s\n", s.bakeTime)
		}
		if s.successThreshold != "" {
			fmt.Fprintf(&b, "        successThreshold: %s\n", quantity(s.successThreshold))
		}
		if s.failureThreshold != "" {
			fmt.Fprintf(&b, "        failureThreshold: %s\n", quantity(s.failureThreshold))
		}
	}
	for _, g := range groups {
		fmt.Fprintf(&b, `---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: %s
spec:
  channel: %s
  timezone: UTC
`, g.name, rolloutChannel)
		if g.maxConcurrent != "" {
			fmt.Fprintf(&b, "  maxConcurrent: %s\n", quantity(g.maxConcurrent))
		}
	}
	return b.String()
}

// quantity spells a count as a YAML integer and a percent as a string, as
// the schema's #Quantity wants.
func quantity(q string) string {
	if strings.HasSuffix(q, "%") {
		return fmt.Sprintf("%q", q)
	}
	return q
}

// rolloutView is GET /v1/rollouts/<channel>.
type rolloutView struct {
	fleet.Rollout
	Transitions []fleet.Transition `json:"transitions"`
}

// rolloutEnv is one or more `upkeep serve` replicas over a fleet folder and a store.
type rolloutEnv struct {
	t         *testing.T
	dir       string // the fleet folder every replica serves
	token     string
	tokenFile string
	storeURL  string
	stages    []stageYAML
	groups    []groupYAML
	srvs      []*server
	c         *simfleet.Client // the operator's client
}

const rolloutToken = "e2e-rollout-token-0123456789abcdef"

func newRolloutEnv(t *testing.T, storeURL string, stages []stageYAML, groups []groupYAML) *rolloutEnv {
	t.Helper()
	e := &rolloutEnv{t: t, dir: t.TempDir(), token: rolloutToken, storeURL: storeURL, stages: stages, groups: groups}
	e.tokenFile = filepath.Join(t.TempDir(), "report-tokens")
	if err := os.WriteFile(e.tokenFile, []byte(e.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.c = simfleet.NewClient(e.token, 4)
	return e
}

// write puts version in the fleet folder; the replicas see it within their 1s interval.
func (e *rolloutEnv) write(version string) {
	e.t.Helper()
	doc := rolloutFleetYAML(version, e.stages, e.groups)
	tmp := filepath.Join(e.dir, ".fleet.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "fleet.yaml")); err != nil {
		e.t.Fatal(err)
	}
}

// start starts one more replica on the store and waits until it is ready.
func (e *rolloutEnv) start(extra ...string) *server {
	e.t.Helper()
	args := append([]string{"--source", e.dir, "--interval", "1s", "--report-token-file", e.tokenFile, "--store", e.storeURL}, extra...)
	s := startServe(e.t, args...)
	waitFor(e.t, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(e.t, s.URL+"/readyz")
		return code == http.StatusOK
	})
	e.srvs = append(e.srvs, s)
	return s
}

func (e *rolloutEnv) urls() []string {
	var out []string
	for _, s := range e.srvs {
		out = append(out, s.URL)
	}
	return out
}

// rollout reads the channel's rollout from base; ok false while there is none (404).
func (e *rolloutEnv) rollout(base string) (rolloutView, bool) {
	e.t.Helper()
	var v rolloutView
	err := e.c.GetJSON(context.Background(), base, "/v1/rollouts/"+rolloutChannel, &v)
	if se, isStatus := err.(*simfleet.StatusError); isStatus && se.Code == http.StatusNotFound {
		return v, false
	}
	if err != nil {
		e.t.Fatalf("reading the rollout: %v", err)
	}
	return v, true
}

// waitState waits until base's rollout of version is in one of states.
func (e *rolloutEnv) waitState(base, version string, within time.Duration, states ...string) rolloutView {
	e.t.Helper()
	var v rolloutView
	var ok bool
	start := time.Now()
	for {
		v, ok = e.rollout(base)
		if ok && v.Version == version && slices.Contains(states, v.State) {
			return v
		}
		if time.Since(start) > within {
			e.t.Fatalf("rollout of %s not %v within %s; last seen %+v%s", version, states, within, v.Rollout, describe(v.Transitions))
		}
		e.checkSource(base)
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSource fails the test at once when the server refused the fleet
// folder: waiting for a rollout would only time out.
func (e *rolloutEnv) checkSource(base string) {
	e.t.Helper()
	var st struct {
		LastError *struct {
			Message string `json:"message"`
		} `json:"lastError"`
	}
	if err := e.c.GetJSON(context.Background(), base, "/status", &st); err != nil {
		e.t.Fatalf("reading /status: %v", err)
	}
	if st.LastError != nil {
		e.t.Fatalf("the server refused the test's fleet: %s", st.LastError.Message)
	}
}

// fleetView is GET /v1/fleet.
type fleetView struct {
	Agents []struct {
		AgentID        string    `json:"agentId"`
		Group          string    `json:"group"`
		CurrentVersion string    `json:"currentVersion"`
		Outcome        string    `json:"outcome"`
		ReceivedAt     time.Time `json:"receivedAt"`
	} `json:"agents"`
	Counts struct {
		Agents    int            `json:"agents"`
		ByVersion map[string]int `json:"byVersion"`
		ByGroup   map[string]int `json:"byGroup"`
	} `json:"counts"`
	Next *fleet.Cursor `json:"next"`
}

func (e *rolloutEnv) fleet(base string) fleetView {
	e.t.Helper()
	var v fleetView
	if err := e.c.GetJSON(context.Background(), base, "/v1/fleet?limit=10000", &v); err != nil {
		e.t.Fatalf("reading the fleet: %v", err)
	}
	return v
}

// simAgents names n agents of each group, in order.
func simAgents(counts map[string]int, order ...string) []simfleet.Agent {
	var out []simfleet.Agent
	for _, g := range order {
		for i := range counts[g] {
			out = append(out, simfleet.Agent{ID: fmt.Sprintf("%s-%03d", g, i), Group: g})
		}
	}
	return out
}

// startSim starts the simulated fleet on every replica and waits until the
// store knows each of its agents, on version start.
func (e *rolloutEnv) startSim(agents []simfleet.Agent, start string, broken ...string) *simfleet.Sim {
	e.t.Helper()
	sim, err := simfleet.Start(context.Background(), simfleet.Config{
		URLs: e.urls(), Token: e.token, Channel: rolloutChannel, Agents: agents,
		Start: start, Broken: broken, Duration: 150 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		sim.Stop()
		if errs, n := sim.Errors(10); n > 0 {
			e.t.Logf("the simulated fleet logged %d failed calls; the first: %s", n, strings.Join(errs, "\n  "))
		}
	})
	waitFor(e.t, 30*time.Second, "every simulated agent known to the store", func() bool {
		return e.fleet(e.srvs[0].URL).Counts.ByVersion[start] == len(agents)
	})
	return sim
}

// settle waits until version is what the channel's rollout stands at, done:
// the first version a channel is seen with needs no rollout.
func (e *rolloutEnv) settle(version string) {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, "the first version settled", func() bool {
		e.checkSource(e.srvs[0].URL)
		v, ok := e.rollout(e.srvs[0].URL)
		return !ok || v.Version == version && v.State == fleet.StateDone
	})
}

// watcher polls the rollout while it runs and keeps each stage's canaries,
// since the rollout names only the current stage's.
type watcher struct {
	mu       sync.Mutex
	canaries map[int][]string
	stop     chan struct{}
	done     chan struct{}
}

func (e *rolloutEnv) watch(base string) *watcher {
	w := &watcher{canaries: map[int][]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			var v rolloutView
			if e.c.GetJSON(context.Background(), base, "/v1/rollouts/"+rolloutChannel, &v) == nil && len(v.Canaries) > 0 {
				w.mu.Lock()
				if len(w.canaries[v.Stage]) == 0 {
					w.canaries[v.Stage] = slices.Clone(v.Canaries)
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(w.end)
	return w
}

func (w *watcher) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *watcher) stage(i int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.canaries[i])
}

// ofVersion is the rollout's transitions of version, in the order the
// server lists them: the store's, oldest first.
func ofVersion(ts []fleet.Transition, version string) []fleet.Transition {
	var out []fleet.Transition
	for _, tr := range ts {
		if tr.Version == version {
			out = append(out, tr)
		}
	}
	return out
}

func describe(ts []fleet.Transition) string {
	var b strings.Builder
	for _, tr := range ts {
		fmt.Fprintf(&b, "\n  %s %s→%s stage %d %s rule %s reason %s actor %s: %s",
			tr.At.Format("15:04:05.000000"), tr.From, tr.To, tr.Stage, tr.Step, tr.Rule, tr.Reason, tr.Actor, tr.Message)
	}
	return b.String()
}

// allowedFrom is, per agent group of the channel's stages, when an agent
// that is not a canary may first be answered version: when its stage's all
// step began.
func allowedFrom(ts []fleet.Transition) map[int]time.Time {
	out := map[int]time.Time{}
	for _, tr := range ts {
		if tr.Step == fleet.StepAll && tr.To == fleet.StateActive {
			if _, seen := out[tr.Stage]; !seen {
				out[tr.Stage] = tr.At
			}
		}
	}
	return out
}

// replayLeases is the most unexpired leases each group held at once, from
// the store's own lease log.
func replayLeases(log []fleet.LeaseEvent) map[string]int {
	held := map[string]int{}
	peak := map[string]int{}
	for _, ev := range log {
		switch ev.Event {
		case fleet.LeaseAcquired:
			held[ev.Group]++
		case fleet.LeaseReleased, fleet.LeaseExpired:
			held[ev.Group]--
		}
		peak[ev.Group] = max(peak[ev.Group], held[ev.Group])
	}
	return peak
}

// leaseLog reads the lease log from the store itself.
func leaseLog(t *testing.T, storeURL string) []fleet.LeaseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sqlstore.Open(ctx, storeURL, fleet.Options{})
	if err != nil {
		t.Fatalf("opening the store %s: %v", sqlstore.Redact(storeURL), err)
	}
	defer st.Close()
	log, err := st.LeaseLog(ctx, "")
	if err != nil {
		t.Fatalf("reading the lease log: %v", err)
	}
	return log
}

func sqliteURL(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "fleet.db")
}

// The main fleet: 20 canary hosts, then two production groups.
var (
	mainStages = []stageYAML{
		{groups: []string{"canary"}, canaries: "2", bakeTime: 2 * time.Second, failureThreshold: "1"},
		{groups: []string{"eu"}, bakeTime: time.Second},
		{groups: []string{"us"}},
	}
	mainGroups = []groupYAML{{name: "canary"}, {name: "eu", maxConcurrent: "10"}, {name: "us", maxConcurrent: "10%"}}
	mainCounts = map[string]int{"canary": 20, "eu": 90, "us": 90}
	mainMax    = map[string]int{"eu": 10, "us": 9}
	mainOrder  = []string{"canary", "eu", "us"}
)

func stageOfGroup(stages []stageYAML) map[string]int {
	m := map[string]int{}
	for i, s := range stages {
		for _, g := range s.groups {
			m[g] = i
		}
	}
	return m
}

// TestRolloutGoodVersion: a good version reaches 200 agents canaries
// first, stage by stage in order with their bake times, never more than a
// group's maxConcurrent updating at once.
func TestRolloutGoodVersion(t *testing.T) {
	e := newRolloutEnv(t, sqliteURL(t), mainStages, mainGroups)
	e.write("1.0.0")
	srv := e.start()
	agents := simAgents(mainCounts, mainOrder...)
	sim := e.startSim(agents, "1.0.0")
	e.settle("1.0.0")

	w := e.watch(srv.URL)
	began := time.Now()
	e.write("1.1.0")
	done := e.waitState(srv.URL, "1.1.0", 90*time.Second, fleet.StateDone)
	w.end()
	t.Logf("1.1.0 rolled out to %d agents in %s", len(agents), time.Since(began).Round(time.Millisecond))
	ts := ofVersion(done.Transitions, "1.1.0")
	t.Logf("transitions:%s", describe(ts))

	t.Run("every stage passes in order", func(t *testing.T) {
		last := -1
		for i, tr := range ts {
			if i > 0 && tr.At.Before(ts[i-1].At) {
				t.Errorf("transition %d is listed after a later one:%s", i, describe(ts))
			}
			if tr.Stage < last {
				t.Errorf("stage %d after stage %d:%s", tr.Stage, last, describe(ts))
			}
			last = max(last, tr.Stage)
			if tr.Rule == "" || tr.Reason == "" {
				t.Errorf("a transition without rule or reason: %+v", tr)
			}
		}
		allowed := allowedFrom(ts)
		for i := range mainStages {
			if _, ok := allowed[i]; !ok {
				t.Errorf("stage %d never reached its all step:%s", i, describe(ts))
			}
		}
		if len(ts) == 0 || ts[len(ts)-1].To != fleet.StateDone {
			t.Errorf("the last transition is not to Done:%s", describe(ts))
		}
	})

	t.Run("bake times are respected", func(t *testing.T) {
		baked := map[int]int{}
		for i, tr := range ts {
			if tr.From != fleet.StateBaking || i == 0 {
				continue
			}
			entered := ts[i-1]
			if entered.To != fleet.StateBaking {
				t.Errorf("leaving Baking at %s, but the transition before entered %s:%s", tr.At, entered.To, describe(ts))
				continue
			}
			want := mainStages[entered.Stage].bakeTime
			if got := tr.At.Sub(entered.At); got < want-time.Millisecond {
				t.Errorf("stage %d %s step baked %s, want at least %s:%s", entered.Stage, entered.Step, got, want, describe(ts))
			}
			baked[entered.Stage]++
		}
		for i, s := range mainStages {
			if s.bakeTime > 0 && baked[i] == 0 {
				t.Errorf("stage %d (bakeTime %s) never baked:%s", i, s.bakeTime, describe(ts))
			}
		}
	})

	t.Run("canaries first, then each stage's all step", func(t *testing.T) {
		canaries := w.stage(0)
		if len(canaries) != 2 {
			t.Fatalf("stage 0 named canaries %v, want 2", canaries)
		}
		var chosen time.Time
		for _, tr := range ts {
			if tr.To == fleet.StateCanary {
				chosen = tr.At
				break
			}
		}
		if chosen.IsZero() {
			t.Fatalf("no transition to Canary:%s", describe(ts))
		}
		allowed := allowedFrom(ts)
		stageOf := stageOfGroup(mainStages)
		for _, ev := range sim.Filter(simfleet.EvAnswer, "1.1.0") {
			from := allowed[stageOf[ev.Group]]
			if slices.Contains(canaries, ev.Agent) {
				from = chosen
			}
			if ev.At.Before(from) {
				t.Errorf("%s (group %s) was answered 1.1.0 at %s, before it was allowed at %s:%s",
					ev.Agent, ev.Group, ev.At.Format("15:04:05.000000"), from.Format("15:04:05.000000"), describe(ts))
			}
		}
		// The canaries' step baked only once both ran the version.
		for _, c := range canaries {
			var installed time.Time
			for _, ev := range sim.Filter(simfleet.EvInstalled, "1.1.0") {
				if ev.Agent == c {
					installed = ev.At
				}
			}
			if installed.IsZero() || !installed.Before(allowed[0]) {
				t.Errorf("canary %s installed at %s, but the canary group's all step began at %s", c, installed, allowed[0])
			}
		}
	})

	t.Run("maxConcurrent is never exceeded", func(t *testing.T) {
		peak := replayLeases(leaseLog(t, e.storeURL))
		t.Logf("peak leases by the store's log %v, seen by the simulation %v, %d refusals", peak, sim.MaxInstalling(), len(sim.Filter(simfleet.EvLeaseRefused, "")))
		for g, limit := range mainMax {
			if peak[g] > limit {
				t.Errorf("group %s held %d leases at once by the store's lease log, maxConcurrent %d", g, peak[g], limit)
			}
			if peak[g] < 2 {
				t.Errorf("group %s never held two leases at once (peak %d): the limit was not exercised", g, peak[g])
			}
			if seen := sim.MaxInstalling()[g]; seen > limit {
				t.Errorf("the simulation saw %d agents of %s installing at once, maxConcurrent %d", seen, g, limit)
			}
		}
		if len(sim.Filter(simfleet.EvLeaseRefused, "")) == 0 {
			t.Errorf("no lease was ever refused: the limit was not exercised")
		}
	})

	t.Run("the whole fleet runs the version", func(t *testing.T) {
		waitFor(t, 10*time.Second, "every agent reports 1.1.0", func() bool {
			return e.fleet(srv.URL).Counts.ByVersion["1.1.0"] == len(agents)
		})
		if n := sim.CountOn("1.1.0"); n != len(agents) {
			t.Errorf("the simulation has %d agents on 1.1.0, want %d", n, len(agents))
		}
	})
}

// TestRolloutBrokenVersionHalts: a version that rolls back on the canaries
// halts the rollout at the failure threshold, and no agent outside the
// canaries is ever answered it.
func TestRolloutBrokenVersionHalts(t *testing.T) {
	e := newRolloutEnv(t, sqliteURL(t), mainStages, mainGroups)
	e.write("1.0.0")
	srv := e.start()
	agents := simAgents(mainCounts, mainOrder...)
	sim := e.startSim(agents, "1.0.0", "1.2.0")
	e.settle("1.0.0")

	w := e.watch(srv.URL)
	e.write("1.2.0")
	halted := e.waitState(srv.URL, "1.2.0", 30*time.Second, fleet.StateHalted)
	// Let the fleet keep asking for a while: a halt is for good.
	time.Sleep(3 * time.Second)
	w.end()
	v, _ := e.rollout(srv.URL)
	ts := ofVersion(v.Transitions, "1.2.0")
	if v.State != fleet.StateHalted {
		t.Fatalf("the rollout left Halted by itself: %+v%s", v.Rollout, describe(ts))
	}
	if halted.Rule != "FailureThreshold" {
		t.Errorf("halted by rule %q (%s), want FailureThreshold", halted.Rule, halted.Message)
	}
	last := ts[len(ts)-1]
	if last.To != fleet.StateHalted || last.Rule != "FailureThreshold" || last.Stage != 0 {
		t.Errorf("the last transition is not the halt of stage 0 by FailureThreshold:%s", describe(ts))
	}

	canaries := w.stage(0)
	if len(canaries) != 2 {
		t.Fatalf("stage 0 named canaries %v, want 2", canaries)
	}
	got := map[string]bool{}
	for _, ev := range sim.Filter(simfleet.EvAnswer, "1.2.0") {
		got[ev.Agent] = true
		if !slices.Contains(canaries, ev.Agent) {
			t.Errorf("%s, not a canary, was answered 1.2.0 at %s (header %q)", ev.Agent, ev.At.Format("15:04:05.000"), ev.Rollout)
		}
	}
	if len(got) == 0 {
		t.Errorf("no canary was ever answered 1.2.0")
	}
	rolled := sim.Filter(simfleet.EvRolledBack, "1.2.0")
	if len(rolled) == 0 || len(rolled) > len(canaries) {
		t.Errorf("%d agents rolled 1.2.0 back, want 1 to %d", len(rolled), len(canaries))
	}
	f := e.fleet(srv.URL)
	if n := f.Counts.ByVersion["1.2.0"]; n != 0 {
		t.Errorf("/v1/fleet counts %d agents on the broken 1.2.0", n)
	}
	if n := f.Counts.ByVersion["1.0.0"]; n != len(agents) {
		t.Errorf("/v1/fleet counts %d agents on 1.0.0, want all %d", n, len(agents))
	}
	rolledBack := 0
	for _, a := range f.Agents {
		if a.Outcome == simfleet.OutcomeRolledBack {
			rolledBack++
			if !slices.Contains(canaries, a.AgentID) {
				t.Errorf("/v1/fleet shows %s rolled back, not a canary", a.AgentID)
			}
		}
	}
	if rolledBack == 0 {
		t.Errorf("/v1/fleet shows no agent with outcome rolledBack")
	}

	t.Run("a commit with a new version supersedes the halted rollout", func(t *testing.T) {
		e.write("1.2.1")
		e.waitState(srv.URL, "1.2.1", 60*time.Second, fleet.StateDone)
		v, _ := e.rollout(srv.URL)
		var superseded bool
		for _, tr := range v.Transitions {
			if tr.Version == "1.2.0" && tr.To == fleet.StateSuperseded && tr.Rule == "Superseded" {
				superseded = true
			}
		}
		if !superseded {
			t.Errorf("the halted 1.2.0 was not recorded Superseded:%s", describe(v.Transitions))
		}
	})
}

// TestRolloutHaltAndResumeByOperator: an operator's POST halts a running
// rollout (nobody new gets the version) and another resumes it.
func TestRolloutHaltAndResumeByOperator(t *testing.T) {
	stages := []stageYAML{
		{groups: []string{"canary"}, canaries: "1", bakeTime: 2 * time.Second},
		{groups: []string{"eu"}},
	}
	groups := []groupYAML{{name: "canary"}, {name: "eu", maxConcurrent: "5"}}
	e := newRolloutEnv(t, sqliteURL(t), stages, groups)
	e.write("1.0.0")
	srv := e.start()
	agents := simAgents(map[string]int{"canary": 5, "eu": 30}, "canary", "eu")
	sim := e.startSim(agents, "1.0.0")
	e.settle("1.0.0")

	ctx := context.Background()
	if code, body, err := (&simfleet.Client{HTTP: client}).Post(ctx, srv.URL, "/v1/rollouts/"+rolloutChannel+"/halt"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("halt without a token: %d %s %v, want 401", code, body, err)
	}

	e.write("1.1.0")
	e.waitState(srv.URL, "1.1.0", 30*time.Second, fleet.StateCanary, fleet.StateBaking)
	code, body, err := e.c.Post(ctx, srv.URL, "/v1/rollouts/"+rolloutChannel+"/halt")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST halt: %d %s %v", code, body, err)
	}
	haltedAt := time.Now()
	v := e.waitState(srv.URL, "1.1.0", 5*time.Second, fleet.StateHalted)
	if v.Rule != "HaltedByOperator" {
		t.Errorf("halted by rule %q, want HaltedByOperator", v.Rule)
	}
	ts := ofVersion(v.Transitions, "1.1.0")
	if last := ts[len(ts)-1]; last.Rule != "HaltedByOperator" || !strings.HasPrefix(last.Actor, "operator:") {
		t.Errorf("the halt is recorded by %q rule %q, want an operator:<token> actor and HaltedByOperator:%s", last.Actor, last.Rule, describe(ts))
	}
	// Halted longer than the bake: nothing moves and nobody new is answered 1.1.0.
	time.Sleep(3 * time.Second)
	if v, _ := e.rollout(srv.URL); v.State != fleet.StateHalted {
		t.Fatalf("the halted rollout moved to %s by itself (%s)", v.State, v.Rule)
	}
	for _, ev := range sim.Filter(simfleet.EvAnswer, "1.1.0") {
		if ev.Group != "canary" {
			t.Errorf("%s of %s was answered 1.1.0 at %s, halted since %s", ev.Agent, ev.Group, ev.At.Format("15:04:05.000"), haltedAt.Format("15:04:05.000"))
		}
	}

	code, body, err = e.c.Post(ctx, srv.URL, "/v1/rollouts/"+rolloutChannel+"/resume")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST resume: %d %s %v", code, body, err)
	}
	v = e.waitState(srv.URL, "1.1.0", 60*time.Second, fleet.StateDone)
	var resumed bool
	for _, tr := range ofVersion(v.Transitions, "1.1.0") {
		if tr.Rule == "ResumedByOperator" && tr.From == fleet.StateHalted && strings.HasPrefix(tr.Actor, "operator:") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no ResumedByOperator transition from Halted:%s", describe(v.Transitions))
	}
	waitFor(t, 10*time.Second, "every agent on 1.1.0", func() bool { return sim.CountOn("1.1.0") == len(agents) })
}

// TestRolloutDeadUpdaterLeaseExpires: an updater that takes a lease and
// dies keeps its place only until the lease expires.
func TestRolloutDeadUpdaterLeaseExpires(t *testing.T) {
	groups := []groupYAML{{name: "solo", maxConcurrent: "1"}}
	e := newRolloutEnv(t, sqliteURL(t), []stageYAML{{groups: []string{"solo"}}}, groups)
	e.write("1.0.0")
	srv := e.start()
	ctx := context.Background()

	const ttl = 2 * time.Second
	dead := simfleet.LeaseRequest{AgentID: "dead-host", Group: "solo", Channel: rolloutChannel, Version: "1.1.0", TTL: ttl.String()}
	grant, err := e.c.AcquireLease(ctx, srv.URL, dead)
	if err != nil || !grant.Granted {
		t.Fatalf("the first lease: %+v %v", grant, err)
	}
	if d := time.Until(grant.ExpiresAt); d > ttl+time.Second || d <= 0 {
		t.Errorf("a %s lease expires in %s", ttl, d)
	}
	alive := simfleet.LeaseRequest{AgentID: "alive-host", Group: "solo", Channel: rolloutChannel, Version: "1.1.0"}
	refused, err := e.c.AcquireLease(ctx, srv.URL, alive)
	if err != nil || refused.Granted {
		t.Fatalf("a second lease under maxConcurrent 1: %+v %v, want 409", refused, err)
	}
	if refused.Max != 1 || refused.Holders != 1 {
		t.Errorf("refused with holders %d max %d, want 1 and 1", refused.Holders, refused.Max)
	}
	if !refused.RetryAfter.Equal(grant.ExpiresAt) {
		t.Errorf("retryAfter %s, want the dead lease's expiry %s", refused.RetryAfter, grant.ExpiresAt)
	}
	// The dead updater never releases; its place frees itself at expiry.
	took := waitFor(t, ttl+5*time.Second, "the dead updater's lease expires", func() bool {
		g, err := e.c.AcquireLease(ctx, srv.URL, alive)
		if err != nil {
			t.Fatal(err)
		}
		return g.Granted
	})
	if time.Now().Before(grant.ExpiresAt) {
		t.Errorf("granted %s after asking, before the dead lease expired at %s", took, grant.ExpiresAt)
	}
	if held, err := e.c.ReleaseLease(ctx, srv.URL, "solo", "alive-host"); err != nil || !held {
		t.Errorf("releasing the live lease: held %t, %v", held, err)
	}
	if held, err := e.c.ReleaseLease(ctx, srv.URL, "solo", "dead-host"); err != nil || held {
		t.Errorf("releasing the expired lease: held %t, %v; want 404", held, err)
	}

	var events []string
	for _, ev := range leaseLog(t, e.storeURL) {
		events = append(events, ev.AgentID+" "+ev.Event)
	}
	want := []string{"dead-host acquired", "dead-host expired", "alive-host acquired", "alive-host released"}
	if !slices.Equal(events, want) {
		t.Errorf("the store's lease log is %q, want %q", events, want)
	}
}
