package webui_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/reconcile/webui"
	"upkeep.dev/upkeep/spec"
)

// testNow is the fixed clock of every test: Thursday 3 December 2026,
// 12:00 UTC (13:00 in Berlin, after eu-prod's Thursday window).
var testNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

const (
	testToken  = "0123456789abcdef-the-test-token"
	otherToken = "fedcba9876543210-another-token"
	revision   = "4f1c2a9e"
)

// backend serves one snapshot of testdata/fleet, as the reconciler would.
type backend struct {
	snap atomic.Pointer[reconcile.Snapshot]
}

func (b *backend) Snapshot() *reconcile.Snapshot { return b.snap.Load() }
func (b *backend) Status() reconcile.Status {
	return reconcile.Status{Source: "testdata/fleet", Revision: revision, LastSync: testNow, LastSuccess: testNow}
}
func (b *backend) Trigger() {}

func loadBackend(t testing.TB, now time.Time) *backend {
	t.Helper()
	st, errs := spec.LoadDir(filepath.Join("testdata", "fleet"))
	if len(errs) > 0 {
		t.Fatalf("testdata/fleet: %v", errs)
	}
	b := &backend{}
	b.snap.Store(reconcile.BuildSnapshot(st, revision, now))
	return b
}

func openStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "fleet.db"), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hostReport(id, group, channel, current, target, health string) report.Report {
	r := report.Report{AgentID: id, Group: group, Channel: channel, Kind: report.KindHost, Hostname: id + ".example.net",
		CurrentVersion: current, TargetVersion: target, Health: health, UpdaterVersion: "1.4.0", Time: testNow}
	switch {
	case channel == "stable/cloud" && current == "17.3.0":
		// Held back by the rollout: answered 17.3.0 with Upkeep-Rollout.
		reason := "StageNotReached"
		if group == "canary-hosts" {
			reason = "NotCanary"
		}
		r.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleRolloutHeld, Reason: reason,
			Message: "17.4.0 is rolling out on stable/cloud (" + reason + "); 17.3.0 is installed"})
	default:
		r.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: current + " is installed"})
	}
	return r
}

func put(t testing.TB, s fleet.Store, r report.Report, at time.Time) {
	t.Helper()
	if _, err := s.PutReport(context.Background(), r, at); err != nil {
		t.Fatalf("report of %s: %v", r.AgentID, err)
	}
}

// seed fills the store as a fleet in the middle of two rollouts: n agents
// in all (at least 12), 8 of them named below, the rest split between
// eu-prod and us-prod, one in 7 of those unhealthy and one in 11 stale.
func seed(t testing.TB, s fleet.Store, now time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	// The canary: on 17.3.0, then updated to 17.4.0, healthy (three reports of history).
	c1 := hostReport("c-1", "canary-hosts", "stable/cloud", "17.3.0", "17.3.0", report.HealthHealthy)
	put(t, s, c1, now.Add(-3*time.Hour))
	c1.TargetVersion = "17.4.0"
	c1.SetDecision(reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleInWindow, Reason: "WindowOpen", Message: "the window is open until 00:00 UTC"})
	c1.Time = now.Add(-100 * time.Minute)
	put(t, s, c1, now.Add(-100*time.Minute))
	c1 = hostReport("c-1", "canary-hosts", "stable/cloud", "17.4.0", "17.4.0", report.HealthHealthy)
	c1.Outcome = report.OutcomeUpdated
	put(t, s, c1, now.Add(-2*time.Minute))
	for i := 2; i <= 4; i++ {
		put(t, s, hostReport(fmt.Sprintf("c-%d", i), "canary-hosts", "stable/cloud", "17.3.0", "17.3.0", report.HealthHealthy), now.Add(-time.Minute))
	}
	put(t, s, hostReport("onprem-1", "onprem", "stable/onprem", "16.4.3", "16.4.3", report.HealthHealthy), now.Add(-time.Minute))
	bad := hostReport("onprem-2", "onprem", "stable/onprem", "16.4.3", "16.5.0", report.HealthHealthy)
	bad.SetDecision(reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleInWindow, Reason: "WindowOpen", Message: "the window is open"})
	bad.Outcome, bad.LastError = report.OutcomeRolledBack, "16.5.0 stayed unhealthy for the settle period: health check http://127.0.0.1:3000/readyz answered 503"
	put(t, s, bad, now.Add(-5*time.Minute))
	put(t, s, hostReport("lab-1", "edge-lab", "edge", "17.4.2", "17.4.2", report.HealthHealthy), now.Add(-time.Minute))
	kube := report.Report{AgentID: "kube-7f3a", Channel: "edge", Kind: report.KindKubernetes, Workload: "teleport/Deployment/agent",
		CurrentVersion: "17.4.2", TargetVersion: "17.4.2", Health: report.HealthUnknown, UpdaterVersion: "1.4.0", Time: now}
	kube.SetDecision(reconcile.Decision{Action: reconcile.ActionNothing, Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: "17.4.2 is installed"})
	put(t, s, kube, now.Add(-time.Minute))
	for i := range n - 8 {
		group, prefix := "eu-prod", "eu"
		if i%2 == 1 {
			group, prefix = "us-prod", "us"
		}
		health, at := report.HealthHealthy, now.Add(-time.Duration(i%5)*time.Minute)
		if i%7 == 3 {
			health = report.HealthUnhealthy
		}
		if i%11 == 5 {
			at = now.Add(-time.Hour) // past the 15-minute stale period
		}
		put(t, s, hostReport(fmt.Sprintf("%s-%05d", prefix, i), group, "stable/cloud", "17.3.0", "17.3.0", health), at)
	}

	// stable/cloud: started 2 h ago, its canary chosen, now baking 40 more minutes.
	save := func(r fleet.Rollout, from string, at time.Time, actor string) fleet.Rollout {
		t.Helper()
		r.Since = at
		saved, err := s.SaveRollout(ctx, r, fleet.Transition{Channel: r.Channel, Version: r.Version, From: from, To: r.State,
			Stage: r.Stage, Step: r.Step, Rule: r.Rule, Reason: r.Reason, Message: r.Message, Actor: actor, At: at})
		if err != nil {
			t.Fatalf("saving the rollout of %s: %v", r.Channel, err)
		}
		return saved
	}
	const leader = "upkeep-0:4711"
	r := fleet.Rollout{Channel: "stable/cloud", Version: "17.4.0", FromVersion: "17.3.0", State: fleet.StatePending, Stage: 0,
		Step: fleet.StepCanary, Revision: revision, StartedAt: now.Add(-2 * time.Hour),
		Rule: rollout.RuleRolloutStarted, Reason: "VersionChanged", Message: "stable/cloud moved from 17.3.0 to 17.4.0 at revision " + revision}
	r = save(r, "", now.Add(-2*time.Hour), leader)
	r.State, r.Canaries, r.Rule, r.Reason, r.Message = fleet.StateCanary, []string{"c-1"}, rollout.RuleCanariesChosen, "CanariesChosen", "1 canary of stage 0 (canary-hosts): c-1"
	r = save(r, fleet.StatePending, now.Add(-2*time.Hour), leader)
	r.State, r.BakeUntil, r.Rule, r.Reason, r.Message = fleet.StateBaking, now.Add(40*time.Minute), rollout.RuleSuccessThreshold, "CanariesHealthy", "1 of 1 canaries run 17.4.0 healthy (threshold 100% = 1); baking 1h"
	save(r, fleet.StateCanary, now.Add(-20*time.Minute), leader)

	// stable/onprem: halted by onprem-2's rollback.
	o := fleet.Rollout{Channel: "stable/onprem", Version: "16.5.0", FromVersion: "16.4.3", State: fleet.StatePending, Stage: 0,
		Step: fleet.StepAll, Revision: revision, StartedAt: now.Add(-time.Hour),
		Rule: rollout.RuleRolloutStarted, Reason: "VersionChanged", Message: "stable/onprem moved from 16.4.3 to 16.5.0 at revision " + revision}
	o = save(o, "", now.Add(-time.Hour), leader)
	o.State, o.Rule, o.Reason, o.Message = fleet.StateActive, rollout.RuleStageStarted, "StageStarted", "stage 0 (onprem): all agents"
	o = save(o, fleet.StatePending, now.Add(-time.Hour), leader)
	o.State, o.HaltedAt, o.Rule, o.Reason = fleet.StateHalted, now.Add(-30*time.Minute), rollout.RuleFailureThreshold, "FailureThreshold"
	o.Message = "1 of 2 agents of stage 0 failed version 16.5.0 (failure threshold 1 = 1): onprem-2 (rolledBack); nobody new gets it until Git changes the version, rollout.resume is set after now, or an operator resumes"
	save(o, fleet.StateActive, now.Add(-30*time.Minute), leader)
}

// env is a served fleet page over a seeded store: the version server's
// handler and the page on one real loopback listener, as serve mounts them.
type env struct {
	store   *sqlstore.Store
	srv     *httptest.Server
	page    *webui.Handler
	cache   *rollout.Cache
	backend *backend
}

type envOptions struct {
	agents  int
	operate bool
	secure  bool
	now     func() time.Time
	refresh time.Duration
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.agents == 0 {
		o.agents = 24
	}
	if o.now == nil {
		o.now = func() time.Time { return testNow }
	}
	e := &env{store: openStore(t), backend: loadBackend(t, o.now())}
	seed(t, e.store, o.now(), o.agents)
	tokens, err := report.ParseTokens("tokens", []byte(testToken+"\n"+otherToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	desired := func() []rollout.Desired {
		s := e.backend.Snapshot()
		return rollout.DesiredFrom(s.State, s.Revision, func(ch string) string {
			if c := s.Channel(ch); c != nil {
				return c.Version
			}
			return ""
		})
	}
	if e.cache, err = rollout.NewCache(e.store, rollout.CacheOptions{Source: desired, Now: o.now}); err != nil {
		t.Fatal(err)
	}
	if err := e.cache.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	api := server.New(e.backend, server.Options{ReportTokens: tokens, Store: e.store, Answers: e.cache.Answers, Now: o.now, Logger: log})
	e.page, err = webui.New(webui.Options{Backend: e.backend, Store: e.store, Tokens: tokens, Answers: e.cache.Answers,
		Operate: o.operate, API: api, SecureCookie: o.secure, Now: o.now, Refresh: o.refresh, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(webui.Prefix, e.page)
	mux.Handle("/", api)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}
