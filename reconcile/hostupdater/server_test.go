package hostupdater

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile"
	fleetstore "upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

// servedFleet is the real version server's backend: one snapshot.
type servedFleet struct{ snap *reconcile.Snapshot }

func (b servedFleet) Snapshot() *reconcile.Snapshot { return b.snap }
func (b servedFleet) Status() reconcile.Status      { return reconcile.Status{Source: "test"} }
func (b servedFleet) Trigger()                      {}

// hookInstaller runs a hook while the install is under way.
type hookInstaller struct {
	*memInstaller
	during func()
}

func (h hookInstaller) Install(ctx context.Context, pkg, v string) error {
	if h.during != nil {
		h.during()
	}
	return h.memInstaller.Install(ctx, pkg, v)
}

// realServer is `upkeep serve`'s handler over st on a SQLite fleet store,
// with answers for rollouts (nil: none).
type realServer struct {
	url, tokenFile string
	store          *sqlstore.Store
}

func startRealServer(t *testing.T, st *spec.State, answers func() *rollout.Answers) *realServer {
	t.Helper()
	store, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "fleet.db"), fleetstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	const token = "0123456789abcdef-host-updater-test"
	tokens, err := report.ParseTokens("tokens", []byte(token+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(servedFleet{reconcile.BuildSnapshot(st, "r1", time.Now())}, server.Options{
		ReportTokens: tokens, Store: store, Answers: answers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return &realServer{url: srv.URL, tokenFile: tf, store: store}
}

// agent is a host updater of group eu-prod on channel stable/cloud against
// s, with no schedule (one unusable check updates) and an HTTP health check
// on mem's state.
func (s *realServer) agent(t *testing.T, id string, inst installers.Installer, mem *memInstaller) *Updater {
	t.Helper()
	yaml := fmt.Sprintf(`server: %s
channel: stable/cloud
group: eu-prod
agentID: %s
package: teleport
tokenFile: %s
stateDir: %s
schedule:
  source: none
unusableThreshold: 1
health:
  systemd: false
  http:
    url: %s
  settle: 200ms
  interval: 40ms
`, s.url, id, s.tokenFile, t.TempDir(), agentHealth(t, mem, ""))
	u, _ := newWiredUpdater(t, yaml, inst, true)
	return u
}

// TestTwoAgentsAgainstTheRealServer runs two host updaters of a group with
// maxConcurrent 1 against the real `upkeep serve` handler on a SQLite fleet
// store: while web-01 installs, web-02's pass is refused a lease
// (ConcurrencyLimit) and installs nothing; once web-01 has given its lease
// back, web-02 updates. The store's own lease log and reports are the proof.
func TestTwoAgentsAgainstTheRealServer(t *testing.T) {
	ctx := context.Background()
	st := &spec.State{
		ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.5.0"}},
		Channels:      []*spec.Channel{{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.4.0"}},
		Groups:        []*spec.Group{{Name: "eu-prod", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC, MaxConcurrent: spec.Quantity{Count: 1}}},
	}
	s := startRealServer(t, st, nil)
	store := s.store
	newAgent := func(id string, inst installers.Installer, mem *memInstaller) *Updater {
		return s.agent(t, id, inst, mem)
	}

	inst2 := &memInstaller{installed: "17.3.0"}
	web2 := newAgent("web-02", inst2, inst2)
	var during atomic.Pointer[Pass]
	inst1 := hookInstaller{memInstaller: &memInstaller{installed: "17.3.0"}, during: func() {
		during.Store(web2.Once(ctx, false))
	}}
	web1 := newAgent("web-01", inst1, inst1.memInstaller)

	p1 := web1.Once(ctx, false)
	if p1.Err != nil || p1.Result == nil || p1.Outcome() != report.OutcomeUpdated {
		t.Fatalf("web-01: %+v, %v; want updated", p1.Result, p1.Err)
	}
	p2 := during.Load()
	if p2 == nil || p2.Decision.Rule != reconcile.RuleConcurrencyLimit || p2.Result != nil {
		t.Fatalf("web-02 during web-01's install: %+v; want ConcurrencyLimit and no install", p2)
	}
	if !strings.Contains(p2.Decision.Message, `group "eu-prod" has 1 of 1 agents updating`) || p2.Decision.RecheckAt.IsZero() {
		t.Errorf("ConcurrencyLimit decision %+v: want the holders and when to ask again", p2.Decision)
	}
	if v, _, _ := inst2.Installed(ctx, ""); v != "17.3.0" {
		t.Fatalf("web-02 installed %s without a lease", v)
	}
	p2 = web2.Once(ctx, false)
	if p2.Err != nil || p2.Outcome() != report.OutcomeUpdated {
		t.Fatalf("web-02 after web-01 gave its lease back: %+v (%s), %v", p2.Result, p2.Decision.Message, p2.Err)
	}

	// The store's records: acquired, released; never two at once.
	log, err := store.LeaseLog(ctx, "eu-prod")
	if err != nil {
		t.Fatal(err)
	}
	var evs []string
	for _, e := range log {
		evs = append(evs, e.AgentID+":"+e.Event)
	}
	if got, want := strings.Join(evs, " "), "web-01:acquired web-01:released web-02:acquired web-02:released"; got != want {
		t.Errorf("the store's lease log: %s\nwant %s", got, want)
	}
	for _, id := range []string{"web-01", "web-02"} {
		a, ok, err := store.Agent(ctx, id, time.Now())
		if err != nil || !ok {
			t.Fatalf("agent %s in the store: %v, %v", id, ok, err)
		}
		if a.Outcome != report.OutcomeUpdated || a.CurrentVersion != "17.4.0" {
			t.Errorf("the store's latest report of %s: outcome %q, version %q; want updated on 17.4.0", id, a.Outcome, a.CurrentVersion)
		}
	}
}

// TestCanaryStepAgainstTheRealServer: in a rollout's canary step, the real
// server answers the canary the new version and holds the other agent back;
// the canary updates, the other waits by RolloutHeld, naming the rollout.
func TestCanaryStepAgainstTheRealServer(t *testing.T) {
	ctx := context.Background()
	st := &spec.State{
		ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.5.0"}},
		Channels: []*spec.Channel{{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.4.0",
			Rollout: &spec.Rollout{Stages: []spec.Stage{{Groups: []string{"eu-prod"}, Canaries: spec.Quantity{Count: 1},
				SuccessThreshold: spec.DefaultSuccessThreshold, FailureThreshold: spec.DefaultFailureThreshold}}}}},
		Groups: []*spec.Group{{Name: "eu-prod", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC}},
	}
	ro := fleetstore.Rollout{Channel: "stable/cloud", Version: "17.4.0", FromVersion: "17.3.0", State: fleetstore.StateCanary,
		Stage: 0, Step: fleetstore.StepCanary, Canaries: []string{"web-01"}}
	answers := rollout.NewAnswers(rollout.NewAnswer(ro, st.RolloutStages("stable/cloud"), nil))
	s := startRealServer(t, st, func() *rollout.Answers { return answers })

	canary, other := &memInstaller{installed: "17.3.0"}, &memInstaller{installed: "17.3.0"}
	p := s.agent(t, "web-01", canary, canary).Once(ctx, false)
	if p.Err != nil || p.Outcome() != report.OutcomeUpdated || p.Target != "17.4.0" {
		t.Fatalf("the canary: target %s, %+v, %v; want 17.4.0 updated", p.Target, p.Result, p.Err)
	}
	p = s.agent(t, "web-02", other, other).Once(ctx, false)
	d := p.Decision
	if p.Err != nil || d.Rule != reconcile.RuleRolloutHeld || d.Reason != "NotCanary" || p.Target != "17.3.0" ||
		!strings.Contains(d.Message, "17.4.0 is rolling out (state Canary, stage 0)") {
		t.Fatalf("the other agent: target %s, %+v, %v; want a RolloutHeld wait on 17.3.0", p.Target, d, p.Err)
	}
	if v, _, _ := other.Installed(ctx, ""); v != "17.3.0" {
		t.Errorf("the held agent installed %s", v)
	}
	a, ok, err := s.store.Agent(ctx, "web-02", time.Now())
	if err != nil || !ok || a.Rule != reconcile.RuleRolloutHeld {
		t.Errorf("the store's report of web-02: %+v, %v, %v", a.Report, ok, err)
	}
}
